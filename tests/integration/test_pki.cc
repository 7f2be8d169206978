#include "tests/integration/test_pki.h"

#include <cstdlib>
#include <fstream>
#include <iterator>

#include "absl/strings/str_cat.h"

namespace secret_resolver {
namespace testing {
namespace {

bool Run(const std::string& command) {
  return std::system((command + " >/dev/null 2>&1").c_str()) == 0;
}

}  // namespace

bool TestPki::MakeCa(const std::string& name) {
  return Run(absl::StrCat("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 ",
                          "-nodes -days 1 -subj /CN=", name, " -keyout ", Path(name, "key"),
                          " -out ", Path(name, "crt")));
}

bool TestPki::MakeLeaf(const std::string& name, const std::string& ca) {
  const std::string ext = Path(name, "ext");
  std::ofstream(ext) << "subjectAltName=DNS:localhost,IP:127.0.0.1\n";
  return Run(absl::StrCat("openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes ",
                          "-subj /CN=", name, " -keyout ", Path(name, "key"), " -out ",
                          Path(name, "csr"))) &&
         Run(absl::StrCat("openssl x509 -req -days 1 -in ", Path(name, "csr"), " -CA ",
                          Path(ca, "crt"), " -CAkey ", Path(ca, "key"),
                          " -CAcreateserial -extfile ", ext, " -out ", Path(name, "crt")));
}

std::string TestPki::Path(const std::string& name, const std::string& ext) const {
  return absl::StrCat(dir_, "/", name, ".", ext);
}

std::string TestPki::Read(const std::string& name, const std::string& ext) const {
  std::ifstream file(Path(name, ext));
  return std::string(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
}

}  // namespace testing
}  // namespace secret_resolver
