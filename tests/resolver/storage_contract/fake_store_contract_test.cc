// The SecretStore contract suite, run against the in-memory FakeSecretStore, so the suite itself
// is checked against the reference behaviour that the cache and resolver tests rely on.
//
// FakeSecretStore checks a name only for emptiness (it does not depend on secret_uri), so an
// adapter adds the real name check in front of it.
// TODO(lead): drop NameCheckingStore once the fake calls ValidateSecretName itself.
#include <memory>
#include <vector>

#include "gtest/gtest.h"
#include "resolver/secret_store.h"
#include "resolver/secret_uri.h"
#include "tests/fakes/fake_secret_store.h"
#include "tests/resolver/storage_contract/store_contract.h"

namespace secret_resolver {
namespace {

class NameCheckingStore : public SecretStore {
 public:
  absl::StatusOr<StoredSecret> Get(absl::string_view stack, absl::string_view name) override {
    return fake_.Get(stack, name);
  }
  absl::StatusOr<int64_t> Put(const SecretWrite& write) override {
    if (absl::Status s = ValidateSecretName(write.name); !s.ok()) return s;
    return fake_.Put(write);
  }
  absl::Status Delete(absl::string_view stack, absl::string_view name,
                      absl::string_view actor) override {
    return fake_.Delete(stack, name, actor);
  }
  absl::StatusOr<std::vector<SecretMetadata>> List(absl::string_view stack) override {
    return fake_.List(stack);
  }

 private:
  FakeSecretStore fake_;
};

INSTANTIATE_TEST_SUITE_P(
    Fake, StoreContractTest,
    ::testing::Values(StoreContractParam{
        "Fake", [] { return std::unique_ptr<SecretStore>(new NameCheckingStore); }}),
    StoreContractParamName);

}  // namespace
}  // namespace secret_resolver
