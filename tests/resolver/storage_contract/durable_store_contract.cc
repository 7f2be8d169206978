#include "tests/resolver/storage_contract/durable_store_contract.h"

#include <atomic>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "resolver/crypto/envelope.h"
#include "resolver/secret_bytes.h"
#include "tests/testing/change_recorder.h"
#include "tests/testing/status_matchers.h"

namespace secret_resolver {

std::string DurableStoreParamName(const ::testing::TestParamInfo<DurableStoreParam>& info) {
  return info.param.name;
}

void PrintTo(const DurableStoreParam& param, std::ostream* os) { *os << param.name; }

namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kStack = kTestStack;
// Easy to spot if an error message, a file or a column showed a value.
constexpr char kMarker[] = "PLAINTEXT-MARKER-7f3a";

absl::Time In(absl::Duration d) { return absl::Now() + d; }

// --- opening and migrating ---

TEST_P(DurableStoreContractTest, ReopeningKeepsDataAndMigratesOnce) {
  {
    std::unique_ptr<EncryptedSecretStore> store = MustOpen();
    ASSERT_NE(store, nullptr);
    ASSERT_THAT(store->Put(TestWrite("kept", "value-1")), IsOk());
  }
  for (int i = 0; i < 3; ++i) {
    std::unique_ptr<EncryptedSecretStore> store = MustOpen();
    ASSERT_NE(store, nullptr);
    absl::StatusOr<StoredSecret> got = store->Get(kStack, "kept");
    ASSERT_THAT(got, IsOk());
    EXPECT_TRUE(got->value.Equals("value-1"));
  }
  EXPECT_EQ(QueryOne("SELECT COUNT(*) FROM schema_version"), "1");
}

TEST_P(DurableStoreContractTest, ProcessesOpeningANewStoreAtOnceMigrateItOnce) {
  std::vector<ChildProcess> children;
  for (int i = 0; i < 4; ++i) children.push_back(Helper({"open"}));
  std::unique_ptr<EncryptedSecretStore> store = MustOpen();
  EXPECT_NE(store, nullptr);
  for (ChildProcess& child : children) EXPECT_EQ(child.Wait(), 0);
  EXPECT_EQ(QueryOne("SELECT COUNT(*) FROM schema_version"), "1");
  EXPECT_EQ(QueryOne("SELECT MAX(version) FROM schema_version"), "1");
}

TEST_P(DurableStoreContractTest, SchemaNewerThanTheBinaryIsFailedPrecondition) {
  ASSERT_NE(MustOpen(), nullptr);
  Query("INSERT INTO schema_version (version, applied_at_us) VALUES (99, 0)");
  EXPECT_THAT(Open(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("schema version 99")));
}

TEST_P(DurableStoreContractTest, OpeningWithoutAKekIsFailedPrecondition) {
  KeyRing empty;
  EXPECT_THAT(OpenSecretStore(storage_->config(), &empty),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no KEK")));
  EXPECT_THAT(OpenSecretStore(storage_->config(), nullptr),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no KEK")));
}

// --- encryption at rest and keys ---

TEST_P(DurableStoreContractTest, ValuesAreEncryptedAtRestUnderOneDataKeyPerStack) {
  std::unique_ptr<EncryptedSecretStore> store = MustOpen();
  ASSERT_NE(store, nullptr);
  ASSERT_THAT(store->Put(TestWrite("a", kMarker, "stacks-1")), IsOk());
  ASSERT_THAT(store->Put(TestWrite("b", kMarker, "stacks-1")), IsOk());
  ASSERT_THAT(store->Put(TestWrite("a", kMarker, "stacks-2")), IsOk());
  EXPECT_EQ(QueryOne(absl::StrCat("SELECT COUNT(*) FROM secure_values WHERE ",
                                  storage_->HexOf("ciphertext"), " LIKE '%",
                                  absl::BytesToHexString(kMarker), "%'")),
            "0");
  EXPECT_THAT(Query("SELECT stack, kek_id, CASE WHEN active THEN 1 ELSE 0 END,"
                    " length(wrapped_key), length(kek_check) FROM data_keys ORDER BY stack"),
              ElementsAre(ElementsAre("stacks-1", "kek-1", "1", "61", "16"),
                          ElementsAre("stacks-2", "kek-1", "1", "61", "16")));
  // format byte + nonce + ciphertext + tag
  EXPECT_EQ(QueryOne("SELECT DISTINCT length(ciphertext) FROM secure_values"),
            absl::StrCat(1 + 12 + std::string(kMarker).size() + 16));
  EXPECT_EQ(QueryOne("SELECT COUNT(DISTINCT data_key_id) FROM secure_values"), "2");
}

TEST_P(DurableStoreContractTest, CiphertextMovedToAnotherRowOrDamagedIsDataLoss) {
  std::unique_ptr<EncryptedSecretStore> store = MustOpen();
  ASSERT_NE(store, nullptr);
  ASSERT_THAT(store->Put(TestWrite("source", kMarker)), IsOk());
  ASSERT_THAT(store->Put(TestWrite("target", "target-value")), IsOk());
  ASSERT_THAT(store->Put(TestWrite("versioned", "v1")), IsOk());
  ASSERT_THAT(store->Put(TestWrite("versioned", "v2")), IsOk());
  ASSERT_THAT(store->Put(TestWrite("flipped", "intact")), IsOk());

  // Another name, same stack and data key.
  Query(
      "UPDATE secure_values SET ciphertext = (SELECT ciphertext FROM secure_values"
      " WHERE name = 'source') WHERE name = 'target'");
  // An older version's ciphertext under the newest version number.
  Query(
      "UPDATE secure_values SET ciphertext = (SELECT ciphertext FROM secure_values"
      " WHERE name = 'versioned' AND version = 1) WHERE name = 'versioned' AND version = 2");
  // One flipped bit in the last byte (the tag).
  std::string sealed = absl::HexStringToBytes(QueryOne(absl::StrCat(
      "SELECT ", storage_->HexOf("ciphertext"), " FROM secure_values WHERE name = 'flipped'")));
  ASSERT_FALSE(sealed.empty());
  sealed.back() = static_cast<char>(sealed.back() ^ 1);
  Query(absl::StrCat("UPDATE secure_values SET ciphertext = ", storage_->BlobLiteral(sealed),
                     " WHERE name = 'flipped'"));
  for (const char* name : {"target", "versioned", "flipped"}) {
    EXPECT_THAT(store->Get(kStack, name),
                StatusIs(absl::StatusCode::kDataLoss, Not(HasSubstr(kMarker))))
        << name;
  }
  EXPECT_THAT(store->Get(kStack, "source"), IsOk());
}

TEST_P(DurableStoreContractTest, GetMetadataNeitherReadsNorDecryptsTheCiphertext) {
  {
    std::unique_ptr<EncryptedSecretStore> store = MustOpen();
    ASSERT_NE(store, nullptr);
    ASSERT_THAT(store->Put(TestWrite("damaged", kMarker)), IsOk());
    ASSERT_THAT(store->Put(TestWrite("damaged", kMarker)), IsOk());
  }
  // A ciphertext no key opens, and a store without the stack's KEK: Get cannot answer, the
  // metadata is still there.
  Query(absl::StrCat("UPDATE secure_values SET ciphertext = ", storage_->BlobLiteral("xx"),
                     " WHERE name = 'damaged'"));
  KeyRing other = RingWith("kek-2");
  std::unique_ptr<EncryptedSecretStore> store = MustOpen(&other);
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(store->Get(kStack, "damaged"), Not(IsOk()));
  EXPECT_THAT(store->GetVersion(kStack, "damaged", 1), Not(IsOk()));
  absl::StatusOr<SecretMetadata> meta = store->GetMetadata(kStack, "damaged");
  ASSERT_THAT(meta, IsOk());
  EXPECT_EQ(meta->version, 2);
  EXPECT_THAT(meta->decrypters, ElementsAre("grafana-workflows"));
}

TEST_P(DurableStoreContractTest, GetVersionOfADamagedOlderVersionIsDataLoss) {
  std::unique_ptr<EncryptedSecretStore> store = MustOpen();
  ASSERT_NE(store, nullptr);
  ASSERT_THAT(store->Put(TestWrite("versioned", "v1")), IsOk());
  ASSERT_THAT(store->Put(TestWrite("versioned", kMarker)), IsOk());
  // The newest version's ciphertext under version 1: bound to another version, so it fails.
  Query(
      "UPDATE secure_values SET ciphertext = (SELECT ciphertext FROM secure_values"
      " WHERE name = 'versioned' AND version = 2) WHERE name = 'versioned' AND version = 1");
  EXPECT_THAT(store->GetVersion(kStack, "versioned", 1),
              StatusIs(absl::StatusCode::kDataLoss, Not(HasSubstr(kMarker))));
  EXPECT_THAT(store->GetVersion(kStack, "versioned", 2), IsOk());
}

TEST_P(DurableStoreContractTest, DamagedRowsAreDataLoss) {
  std::unique_ptr<EncryptedSecretStore> store = MustOpen();
  ASSERT_NE(store, nullptr);
  ASSERT_THAT(store->Put(TestWrite("json", "v")), IsOk());
  ASSERT_THAT(store->Put(TestWrite("key", "v", "stacks-2")), IsOk());
  Query("UPDATE secure_values SET decrypters = '[\"unterminated' WHERE name = 'json'");
  Query(absl::StrCat("UPDATE data_keys SET wrapped_key = ",
                     storage_->BlobLiteral(std::string(61, '\0')), " WHERE stack = 'stacks-2'"));
  EXPECT_THAT(store->Get(kStack, "json"), StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(store->List(kStack), StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(store->Get("stacks-2", "key"), StatusIs(absl::StatusCode::kDataLoss));
  Query("DELETE FROM data_keys WHERE stack = 'stacks-2'");
  EXPECT_THAT(store->Get("stacks-2", "key"),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("missing")));
}

TEST_P(DurableStoreContractTest, MissingOrWrongKekIsFailedPreconditionNamingItsId) {
  {
    std::unique_ptr<EncryptedSecretStore> store = MustOpen();
    ASSERT_NE(store, nullptr);
    ASSERT_THAT(store->Put(TestWrite("api-token", kMarker)), IsOk());
  }
  KeyRing other = RingWith("kek-2");
  std::unique_ptr<EncryptedSecretStore> store = MustOpen(&other);
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(store->Get(kStack, "api-token"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("\"kek-1\"")));
  EXPECT_THAT(store->Put(TestWrite("api-token", "v2")),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("\"kek-1\"")));
  // Another stack gets a data key wrapped by the KEK this process has.
  EXPECT_THAT(store->Put(TestWrite("api-token", "v", "stacks-2")), IsOk());

  KeyRing wrong = RingWith("kek-1");  // the right id, other bytes
  store = MustOpen(&wrong);
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(store->Get(kStack, "api-token"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       ::testing::AllOf(HasSubstr("\"kek-1\""), Not(HasSubstr(kMarker)))));
  // Nothing was written by the failed puts.
  EXPECT_EQ(
      QueryOne(absl::StrCat("SELECT COUNT(*) FROM secure_values WHERE stack = '", kStack, "'")),
      "1");
}

TEST_P(DurableStoreContractTest, RewrapDataKeysMovesKeysToTheNewKekWithoutTouchingValues) {
  {
    std::unique_ptr<EncryptedSecretStore> store = MustOpen();
    ASSERT_NE(store, nullptr);
    ASSERT_THAT(store->Put(TestWrite("a", "value-a", "stacks-1")), IsOk());
    ASSERT_THAT(store->Put(TestWrite("b", "value-b", "stacks-2")), IsOk());
  }
  const std::string ciphertexts = absl::StrCat("SELECT ", storage_->HexOf("ciphertext"),
                                               " FROM secure_values ORDER BY stack, name");
  const Rows ciphertexts_before = Query(ciphertexts);

  // The rotated ring: a new active KEK, the old one kept for unwrapping.
  KeyRing rotated;
  absl::StatusOr<SecretBytes> new_kek = KeyRing::GenerateKek();
  ASSERT_TRUE(new_kek.ok());
  SecretBytes new_kek_copy = new_kek->Clone();
  ASSERT_TRUE(rotated.Add("kek-2", *std::move(new_kek)).ok());
  ASSERT_TRUE(rotated.Add("kek-1", (*ring_.Find("kek-1"))->Clone()).ok());
  {
    std::unique_ptr<EncryptedSecretStore> store = MustOpen(&rotated);
    ASSERT_NE(store, nullptr);
    EXPECT_THAT(store->RewrapDataKeys("kek-9"),
                StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("\"kek-9\"")));
    absl::StatusOr<int64_t> rewrapped = store->RewrapDataKeys(rotated.active_id());
    ASSERT_THAT(rewrapped, IsOk());
    EXPECT_EQ(*rewrapped, 2);
    rewrapped = store->RewrapDataKeys(rotated.active_id());
    ASSERT_THAT(rewrapped, IsOk());
    EXPECT_EQ(*rewrapped, 0);  // already done
  }
  EXPECT_EQ(Query(ciphertexts), ciphertexts_before);
  EXPECT_THAT(Query("SELECT DISTINCT kek_id FROM data_keys"), ElementsAre(ElementsAre("kek-2")));

  // The old KEK can go: the new one alone opens everything.
  KeyRing new_only;
  ASSERT_TRUE(new_only.Add("kek-2", std::move(new_kek_copy)).ok());
  std::unique_ptr<EncryptedSecretStore> store = MustOpen(&new_only);
  ASSERT_NE(store, nullptr);
  absl::StatusOr<StoredSecret> a = store->Get("stacks-1", "a");
  absl::StatusOr<StoredSecret> b = store->Get("stacks-2", "b");
  ASSERT_THAT(a, IsOk());
  ASSERT_THAT(b, IsOk());
  EXPECT_TRUE(a->value.Equals("value-a"));
  EXPECT_TRUE(b->value.Equals("value-b"));
}

TEST_P(DurableStoreContractTest, RewrapWithAnOldKekMissingChangesNothing) {
  {
    std::unique_ptr<EncryptedSecretStore> store = MustOpen();
    ASSERT_NE(store, nullptr);
    ASSERT_THAT(store->Put(TestWrite("a", "value-a")), IsOk());
  }
  const std::string keys =
      absl::StrCat("SELECT kek_id, ", storage_->HexOf("wrapped_key"), " FROM data_keys");
  const Rows keys_before = Query(keys);
  KeyRing new_only = RingWith("kek-2");
  std::unique_ptr<EncryptedSecretStore> store = MustOpen(&new_only);
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(store->RewrapDataKeys("kek-2"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("\"kek-1\"")));
  EXPECT_EQ(Query(keys), keys_before);
}

// Stores keep unwrapped data keys for reads (resolver/crypto/data_key_cache.h), but a cached key
// answers only for the wrapped bytes it was read from: a rewrap by the store itself is read
// through the new KEK, and a data key damaged after it was read is still DATA_LOSS.
TEST_P(DurableStoreContractTest, CachedDataKeysNeverHideARewrapOrDamage) {
  KeyRing both;
  ASSERT_TRUE(both.Add("kek-1", (*ring_.Find("kek-1"))->Clone()).ok());
  ASSERT_TRUE(both.Add("kek-2", RingWith("kek-2").Find("kek-2").value()->Clone()).ok());
  std::unique_ptr<EncryptedSecretStore> store = MustOpen(&both);
  ASSERT_NE(store, nullptr);
  ASSERT_THAT(store->Put(TestWrite("a", kMarker)), IsOk());
  ASSERT_THAT(store->Get(kStack, "a"), IsOk());  // its data key is now cached

  ASSERT_THAT(store->RewrapDataKeys("kek-2"), IsOk());
  EXPECT_THAT(Query("SELECT DISTINCT kek_id FROM data_keys"), ElementsAre(ElementsAre("kek-2")));
  absl::StatusOr<StoredSecret> read = store->Get(kStack, "a");
  ASSERT_THAT(read, IsOk());
  EXPECT_TRUE(read->value.Equals(kMarker));

  Query(absl::StrCat("UPDATE data_keys SET wrapped_key = ",
                     storage_->BlobLiteral(std::string(61, '\0')), " WHERE stack = '", kStack,
                     "'"));
  EXPECT_THAT(store->Get(kStack, "a"),
              StatusIs(absl::StatusCode::kDataLoss, Not(HasSubstr(kMarker))));
  EXPECT_THAT(store->GetVersion(kStack, "a", 1), StatusIs(absl::StatusCode::kDataLoss));
}

// --- the decrypter list is authenticated with the value (value format 2) ---

// Rewrites version `version` of (kStack, name) as the previous binary wrote it: value format 1,
// whose associated data does not bind the decrypter list.
void RewriteInFormat1(StoreStorage& storage, const KeyRing& ring, absl::string_view name,
                      int64_t version, absl::string_view value) {
  const Rows key = storage.Query(absl::StrCat(
      "SELECT k.id, k.kek_id, ", storage.HexOf("k.kek_check"), ", ", storage.HexOf("k.wrapped_key"),
      " FROM data_keys k JOIN secure_values v ON k.stack = v.stack AND k.id = v.data_key_id"
      " WHERE v.stack = '",
      kStack, "' AND v.name = '", name, "' AND v.version = ", version));
  ASSERT_EQ(key.size(), 1u);
  const WrappedDataKey wrapped{key[0][1], absl::HexStringToBytes(key[0][2]),
                               absl::HexStringToBytes(key[0][3])};
  absl::StatusOr<SecretBytes> data_key = UnwrapDataKey(ring, wrapped, kStack, key[0][0]);
  ASSERT_THAT(data_key, IsOk());
  absl::StatusOr<std::string> sealed =
      SealAesGcm(*data_key, value, ValueAad(kStack, name, version), kEnvelopeFormatV1);
  ASSERT_THAT(sealed, IsOk());
  storage.Query(absl::StrCat("UPDATE secure_values SET ciphertext = ", storage.BlobLiteral(*sealed),
                             " WHERE stack = '", kStack, "' AND name = '", name,
                             "' AND version = ", version));
}

// The first byte of each stored value of (kStack, name), oldest version first, as hex.
Rows ValueFormats(StoreStorage& storage, absl::string_view name) {
  return storage.Query(absl::StrCat("SELECT version, substr(", storage.HexOf("ciphertext"),
                                    ", 1, 2) FROM secure_values WHERE name = '", name,
                                    "' ORDER BY version"));
}

TEST_P(DurableStoreContractTest, DecryptersEditedInTheDatabaseMakeTheValueFailToOpen) {
  std::unique_ptr<EncryptedSecretStore> store = MustOpen();
  ASSERT_NE(store, nullptr);
  SecretWrite write = TestWrite("guarded", kMarker);
  write.decrypters = {"grafana-workflows", "step-runner"};
  ASSERT_THAT(store->Put(write), IsOk());
  EXPECT_THAT(ValueFormats(*storage_, "guarded"), ElementsAre(ElementsAre("1", "02")));

  // The same entries in another order still open: the canonical form is sorted.
  Query(
      "UPDATE secure_values SET decrypters = '[\"step-runner\",\"grafana-workflows\"]'"
      " WHERE name = 'guarded'");
  EXPECT_THAT(store->Get(kStack, "guarded"), IsOk());
  for (const char* edited : {"[\"grafana-workflows\",\"step-runner\",\"intruder\"]",
                             "[\"intruder\"]", "[\"grafana-workflows\"]", "[]"}) {
    Query(absl::StrCat("UPDATE secure_values SET decrypters = '", edited,
                       "' WHERE name = 'guarded'"));
    EXPECT_THAT(store->Get(kStack, "guarded"),
                StatusIs(absl::StatusCode::kDataLoss, Not(HasSubstr(kMarker))))
        << edited;
  }
}

TEST_P(DurableStoreContractTest, Format1ValuesStillReadUntilResealedIntoFormat2) {
  std::unique_ptr<EncryptedSecretStore> store = MustOpen();
  ASSERT_NE(store, nullptr);
  ASSERT_THAT(store->Put(TestWrite("old", "value-1")), IsOk());
  ASSERT_THAT(store->Put(TestWrite("old", "value-2")), IsOk());
  ASSERT_THAT(store->Put(TestWrite("new", "value-n")), IsOk());
  RewriteInFormat1(*storage_, ring_, "old", 1, "value-1");
  RewriteInFormat1(*storage_, ring_, "old", 2, "value-2");
  EXPECT_THAT(ValueFormats(*storage_, "old"),
              ElementsAre(ElementsAre("1", "01"), ElementsAre("2", "01")));

  // Read as before; a format 1 row binds no decrypter list, so an edit still opens.
  absl::StatusOr<StoredSecret> got = store->Get(kStack, "old");
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->version, 2);
  EXPECT_TRUE(got->value.Equals("value-2"));

  absl::StatusOr<int64_t> resealed = store->ResealValues();
  ASSERT_THAT(resealed, IsOk());
  EXPECT_EQ(*resealed, 2);  // both versions of "old", the retired one included
  EXPECT_THAT(ValueFormats(*storage_, "old"),
              ElementsAre(ElementsAre("1", "02"), ElementsAre("2", "02")));
  got = store->Get(kStack, "old");
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->version, 2);
  EXPECT_TRUE(got->value.Equals("value-2"));
  EXPECT_THAT(got->decrypters, ElementsAre("grafana-workflows"));
  resealed = store->ResealValues();
  ASSERT_THAT(resealed, IsOk());
  EXPECT_EQ(*resealed, 0);

  // Now the list is bound: an added identity makes the value fail to open.
  Query(
      "UPDATE secure_values SET decrypters = '[\"grafana-workflows\",\"intruder\"]'"
      " WHERE name = 'old'");
  EXPECT_THAT(store->Get(kStack, "old"), StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(store->Get(kStack, "new"), IsOk());
}

TEST_P(DurableStoreContractTest, ResealWithoutTheKekChangesNothing) {
  {
    std::unique_ptr<EncryptedSecretStore> store = MustOpen();
    ASSERT_NE(store, nullptr);
    ASSERT_THAT(store->Put(TestWrite("old", "value-1")), IsOk());
  }
  RewriteInFormat1(*storage_, ring_, "old", 1, "value-1");
  KeyRing other = RingWith("kek-2");
  std::unique_ptr<EncryptedSecretStore> store = MustOpen(&other);
  ASSERT_NE(store, nullptr);
  EXPECT_THAT(store->ResealValues(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("\"kek-1\"")));
  EXPECT_THAT(ValueFormats(*storage_, "old"), ElementsAre(ElementsAre("1", "01")));
}

// --- auditing ---

TEST_P(DurableStoreContractTest, DeleteKeepsEveryVersionAndRecordsWhoAndWhen) {
  std::unique_ptr<EncryptedSecretStore> store = MustOpen();
  ASSERT_NE(store, nullptr);
  ASSERT_THAT(store->Put(TestWrite("audited", "v1", kStack, "user:alice")), IsOk());
  ASSERT_THAT(store->Put(TestWrite("audited", "v2", kStack, "user:bob")), IsOk());
  ASSERT_THAT(store->Delete(kStack, "audited", "user:carol"), IsOk());
  EXPECT_THAT(store->Get(kStack, "audited"), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(store->Delete(kStack, "audited", "user:carol"),
              StatusIs(absl::StatusCode::kNotFound));

  EXPECT_THAT(Query("SELECT version, CASE WHEN active THEN 1 ELSE 0 END, created_by, updated_by"
                    " FROM secure_values WHERE name = 'audited' ORDER BY version"),
              ElementsAre(ElementsAre("1", "0", "user:alice", "user:bob"),
                          ElementsAre("2", "0", "user:bob", "user:carol")));
  EXPECT_THAT(
      Query("SELECT version, op, actor FROM change_log WHERE name = 'audited'"
            " ORDER BY seq"),
      ElementsAre(ElementsAre("1", "put", "user:alice"), ElementsAre("2", "put", "user:bob"),
                  ElementsAre("2", "delete", "user:carol")));
  EXPECT_EQ(QueryOne("SELECT COUNT(*) FROM change_log WHERE at_us <= 0"), "0");
}

// --- other processes ---

TEST_P(DurableStoreContractTest, AnotherProcessesWritesAreSeenThroughWatchWithinOneSecond) {
  ChangeRecorder recorder;  // outlives the store, whose thread calls it
  std::unique_ptr<EncryptedSecretStore> store = MustOpen();
  ASSERT_NE(store, nullptr);
  ASSERT_THAT(store->Put(TestWrite("before-watch", "v")), IsOk());
  ASSERT_THAT(store->Watch(recorder.Listener()), IsOk());

  ChildProcess put = Helper({"put", kStack, "watched", "new-value"});
  ASSERT_EQ(put.Wait(), 0);
  EXPECT_TRUE(recorder.WaitFor(kStack, "watched", In(absl::Seconds(1))))
      << "no change notification within 1 s of the other process's commit";
  // The change is already readable.
  absl::StatusOr<StoredSecret> got = store->Get(kStack, "watched");
  ASSERT_THAT(got, IsOk());
  EXPECT_TRUE(got->value.Equals("new-value"));

  ChildProcess del = Helper({"delete", kStack, "before-watch"});
  ASSERT_EQ(del.Wait(), 0);
  EXPECT_TRUE(recorder.WaitFor(kStack, "before-watch", In(absl::Seconds(1))));
  for (const SecretChange& change : recorder.changes()) EXPECT_FALSE(change.resync);
}

TEST_P(DurableStoreContractTest, WatchReportsEveryCommitToEveryListenerInOrder) {
  ChangeRecorder first;  // the recorders outlive the store, whose thread calls them
  ChangeRecorder second;
  std::unique_ptr<EncryptedSecretStore> watcher = MustOpen();
  std::unique_ptr<EncryptedSecretStore> writer = MustOpen();
  ASSERT_NE(watcher, nullptr);
  ASSERT_NE(writer, nullptr);
  ASSERT_THAT(watcher->Watch(first.Listener()), IsOk());
  ASSERT_THAT(watcher->Watch(second.Listener()), IsOk());
  for (int i = 0; i < 30; ++i) {
    ASSERT_THAT(writer->Put(TestWrite(absl::StrCat("s-", i), "v")), IsOk());
  }
  ASSERT_THAT(writer->Delete(kStack, "s-3", "user:bob"), IsOk());
  ASSERT_THAT(watcher->Put(TestWrite("own-write", "v")), IsOk());
  EXPECT_TRUE(first.WaitFor(kStack, "own-write", In(absl::Seconds(5))));
  EXPECT_TRUE(second.WaitFor(kStack, "own-write", In(absl::Seconds(5))));
  std::vector<std::string> names;
  for (const SecretChange& change : first.changes()) names.push_back(change.name);
  ASSERT_EQ(names.size(), 32u);
  for (int i = 0; i < 30; ++i) EXPECT_EQ(names[i], absl::StrCat("s-", i));
  EXPECT_EQ(names[30], "s-3");
  EXPECT_EQ(names[31], "own-write");
  EXPECT_EQ(second.changes().size(), 32u);
}

TEST_P(DurableStoreContractTest, TwoWriterProcessesAndReadersLoseNoUpdate) {
  constexpr int kPuts = 25;
  std::unique_ptr<EncryptedSecretStore> store = MustOpen();
  ASSERT_NE(store, nullptr);
  ASSERT_THAT(store->Put(TestWrite("contended", "initial")), IsOk());

  std::atomic<bool> done{false};
  std::mutex observed_mu;
  std::vector<std::pair<int64_t, std::string>> observed;  // (version, value) seen by readers
  std::atomic<int> reader_errors{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&] {
      int64_t last = 0;
      while (!done.load()) {
        absl::StatusOr<StoredSecret> got = store->Get(kStack, "contended");
        if (!got.ok() || got->version < last) {
          reader_errors.fetch_add(1);
          return;
        }
        last = got->version;
        std::lock_guard<std::mutex> lock(observed_mu);
        if (observed.size() < 10000) {
          observed.emplace_back(got->version, std::string(got->value.reveal()));
        }
      }
    });
  }
  ChildProcess a = Helper({"put-many", kStack, "contended", absl::StrCat(kPuts), "a"});
  ChildProcess b = Helper({"put-many", kStack, "contended", absl::StrCat(kPuts), "b"});
  const std::vector<int64_t> versions_a = a.ReadNumbers();
  const std::vector<int64_t> versions_b = b.ReadNumbers();
  EXPECT_EQ(a.Wait(), 0);
  EXPECT_EQ(b.Wait(), 0);
  done = true;
  for (std::thread& t : readers) t.join();
  EXPECT_EQ(reader_errors.load(), 0);

  // Each writer's versions strictly increase; together they are 2..2*kPuts+1, each once.
  ASSERT_EQ(versions_a.size(), static_cast<size_t>(kPuts));
  ASSERT_EQ(versions_b.size(), static_cast<size_t>(kPuts));
  std::map<int64_t, std::string> value_of{{1, "initial"}};
  for (int i = 0; i < kPuts; ++i) {
    if (i > 0) {
      EXPECT_LT(versions_a[i - 1], versions_a[i]);
      EXPECT_LT(versions_b[i - 1], versions_b[i]);
    }
    EXPECT_TRUE(value_of.emplace(versions_a[i], absl::StrCat("a-", i)).second);
    EXPECT_TRUE(value_of.emplace(versions_b[i], absl::StrCat("b-", i)).second);
  }
  ASSERT_EQ(value_of.size(), static_cast<size_t>(2 * kPuts + 1));
  EXPECT_EQ(value_of.begin()->first, 1);
  EXPECT_EQ(value_of.rbegin()->first, 2 * kPuts + 1);
  // Every value a reader saw is the one written under that version.
  for (const auto& [version, value] : observed) EXPECT_EQ(value_of[version], value) << version;
  absl::StatusOr<StoredSecret> final_value = store->Get(kStack, "contended");
  ASSERT_THAT(final_value, IsOk());
  EXPECT_EQ(final_value->version, 2 * kPuts + 1);
  EXPECT_TRUE(final_value->value.Equals(value_of[2 * kPuts + 1]));
}

}  // namespace
}  // namespace secret_resolver
