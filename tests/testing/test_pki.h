// TestPki: a throwaway PKI made with the openssl command in a test's directory: CAs, and
// certificates they sign, for TLS and mTLS tests against real listeners.
//
// Thread safety: use from one test thread.
#ifndef SECRET_RESOLVER_TESTS_TESTING_TEST_PKI_H_
#define SECRET_RESOLVER_TESTS_TESTING_TEST_PKI_H_

#include <string>
#include <utility>

namespace secret_resolver {
namespace testing {

class TestPki {
 public:
  // Files go to `dir`, which must exist.
  explicit TestPki(std::string dir) : dir_(std::move(dir)) {}

  // Creates `name`.key and a self-signed `name`.crt (CN=`name`). False if openssl failed.
  bool MakeCa(const std::string& name);

  // Creates `name`.key and `name`.crt (CN=`name`) signed by `ca`, with the subjectAltName
  // `san` (openssl's syntax, e.g. "DNS:localhost,IP:127.0.0.1,URI:spiffe://a/b").
  bool MakeLeaf(const std::string& name, const std::string& ca,
                const std::string& san = "DNS:localhost,IP:127.0.0.1");

  std::string Path(const std::string& name, const std::string& ext) const;
  // The contents of `name`.`ext` ("" if it cannot be read).
  std::string Read(const std::string& name, const std::string& ext) const;

 private:
  std::string dir_;
};

}  // namespace testing
}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_TESTS_TESTING_TEST_PKI_H_
