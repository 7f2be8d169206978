// SqliteReaderPool: at most max_open connections, reused rather than reopened, a read waiting
// for a free one, and CloseAll closing idle and (on return) leased connections.
#include "resolver/sqlite/sqlite_reader_pool.h"

#include <sqlite3.h>

#include <atomic>
#include <optional>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace secret_resolver {
namespace {

// A pool of in-memory databases that counts the connections it opens.
class CountingPool {
 public:
  explicit CountingPool(size_t max_open)
      : pool_(max_open, [this]() -> absl::StatusOr<sqlite3*> {
          if (fail_) return absl::UnavailableError("cannot open");
          sqlite3* db = nullptr;
          if (sqlite3_open(":memory:", &db) != SQLITE_OK) return absl::InternalError("open");
          ++connects_;
          return db;
        }) {}

  SqliteReaderPool& pool() { return pool_; }
  int connects() const { return connects_; }
  void set_fail(bool fail) { fail_ = fail; }

 private:
  std::atomic<int> connects_{0};
  std::atomic<bool> fail_{false};
  SqliteReaderPool pool_;
};

TEST(SqliteReaderPoolTest, ConnectionsAreReusedNotReopened) {
  CountingPool counting(4);
  for (int i = 0; i < 10; ++i) {
    absl::StatusOr<SqliteReaderPool::Lease> lease = counting.pool().Acquire();
    ASSERT_THAT(lease, IsOk());
    EXPECT_NE(lease->db(), nullptr);
  }
  EXPECT_EQ(counting.connects(), 1);
  EXPECT_EQ(counting.pool().open(), 1u);
}

TEST(SqliteReaderPoolTest, ReadBeyondMaxOpenWaitsForALeaseToEnd) {
  CountingPool counting(2);
  std::optional<absl::StatusOr<SqliteReaderPool::Lease>> first(counting.pool().Acquire());
  absl::StatusOr<SqliteReaderPool::Lease> second = counting.pool().Acquire();
  ASSERT_THAT(*first, IsOk());
  ASSERT_THAT(second, IsOk());
  sqlite3* const first_db = (*first)->db();
  absl::Notification acquired;
  sqlite3* third_db = nullptr;
  std::thread third([&] {
    absl::StatusOr<SqliteReaderPool::Lease> lease = counting.pool().Acquire();
    ASSERT_THAT(lease, IsOk());
    third_db = lease->db();
    acquired.Notify();
  });
  EXPECT_FALSE(acquired.WaitForNotificationWithTimeout(absl::Milliseconds(100)));
  EXPECT_EQ(counting.pool().open(), 2u);
  first.reset();  // the first lease ends: its connection goes to the waiting read
  EXPECT_TRUE(acquired.WaitForNotificationWithTimeout(absl::Seconds(5)));
  third.join();
  EXPECT_EQ(third_db, first_db);
  EXPECT_EQ(counting.connects(), 2);
}

TEST(SqliteReaderPoolTest, FailedConnectGivesItsSlotBack) {
  CountingPool counting(1);
  counting.set_fail(true);
  EXPECT_THAT(counting.pool().Acquire(), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(counting.pool().open(), 0u);
  counting.set_fail(false);
  EXPECT_THAT(counting.pool().Acquire(), IsOk());  // would wait forever had the slot leaked
}

TEST(SqliteReaderPoolTest, CloseAllClosesIdleAndReturnedConnections) {
  CountingPool counting(2);
  { ASSERT_THAT(counting.pool().Acquire(), IsOk()); }
  absl::StatusOr<SqliteReaderPool::Lease> leased = counting.pool().Acquire();
  ASSERT_THAT(leased, IsOk());
  absl::StatusOr<SqliteReaderPool::Lease> other = counting.pool().Acquire();
  ASSERT_THAT(other, IsOk());
  EXPECT_EQ(counting.connects(), 2);
  { SqliteReaderPool::Lease idle = *std::move(other); }  // back to the pool, idle
  counting.pool().CloseAll();
  EXPECT_EQ(counting.pool().open(), 1u);  // only the leased one, until it returns
  { SqliteReaderPool::Lease returned = *std::move(leased); }
  EXPECT_EQ(counting.pool().open(), 0u);
  ASSERT_THAT(counting.pool().Acquire(), IsOk());
  EXPECT_EQ(counting.connects(), 3);  // a fresh connection after CloseAll
}

}  // namespace
}  // namespace secret_resolver
