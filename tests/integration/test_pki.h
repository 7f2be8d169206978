// TestPki: a throwaway PKI made with the openssl command, for tests of TLS and mTLS through the
// real binary: CAs, and leaf certificates they sign (valid for localhost and 127.0.0.1, usable
// by a server and a client alike).
//
// Thread safety: use from one test thread.
#ifndef SECRET_RESOLVER_TESTS_INTEGRATION_TEST_PKI_H_
#define SECRET_RESOLVER_TESTS_INTEGRATION_TEST_PKI_H_

#include <string>
#include <utility>

namespace secret_resolver {
namespace testing {

class TestPki {
 public:
  // Keeps its files in `dir`, which must exist.
  explicit TestPki(std::string dir) : dir_(std::move(dir)) {}

  // Creates `name`.key and a self-signed `name`.crt. False when openssl failed.
  bool MakeCa(const std::string& name);

  // Creates `name`.key and `name`.crt signed by `ca`, valid for localhost and 127.0.0.1. False
  // when openssl failed.
  bool MakeLeaf(const std::string& name, const std::string& ca);

  // The path of `name`.`ext`.
  std::string Path(const std::string& name, const std::string& ext) const;

  // The contents of `name`.`ext` (empty if unreadable).
  std::string Read(const std::string& name, const std::string& ext) const;

 private:
  std::string dir_;
};

}  // namespace testing
}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_TESTS_INTEGRATION_TEST_PKI_H_
