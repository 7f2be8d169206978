#include "resolver/sqlite/sqlite_reader_pool.h"

#include <algorithm>
#include <utility>

namespace secret_resolver {

SqliteReaderPool::Lease::Lease(Lease&& other) noexcept
    : pool_(other.pool_), db_(other.db_), generation_(other.generation_) {
  other.pool_ = nullptr;
  other.db_ = nullptr;
}

SqliteReaderPool::Lease::~Lease() {
  if (pool_ != nullptr) pool_->Release(db_, generation_);
}

SqliteReaderPool::SqliteReaderPool(size_t max_open, Connector connect)
    : max_open_(std::max<size_t>(max_open, 1)), connect_(std::move(connect)) {}

SqliteReaderPool::~SqliteReaderPool() {
  for (sqlite3* db : idle_) sqlite3_close_v2(db);
}

absl::StatusOr<SqliteReaderPool::Lease> SqliteReaderPool::Acquire() {
  uint64_t generation;
  {
    std::unique_lock<std::mutex> lock(mu_);
    freed_.wait(lock, [this] { return !idle_.empty() || open_ < max_open_; });
    generation = generation_;
    if (!idle_.empty()) {
      sqlite3* db = idle_.back();
      idle_.pop_back();
      return Lease(this, db, generation);
    }
    ++open_;  // the slot is taken while connecting, outside the lock
  }
  absl::StatusOr<sqlite3*> db = connect_();
  if (!db.ok()) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      --open_;
    }
    freed_.notify_one();
    return db.status();
  }
  return Lease(this, *db, generation);
}

void SqliteReaderPool::Release(sqlite3* db, uint64_t generation) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (generation == generation_) {
      idle_.push_back(db);
      db = nullptr;
    } else {
      --open_;
    }
  }
  if (db != nullptr) sqlite3_close_v2(db);
  freed_.notify_one();
}

void SqliteReaderPool::CloseAll() {
  std::vector<sqlite3*> closing;
  {
    std::lock_guard<std::mutex> lock(mu_);
    closing.swap(idle_);
    open_ -= closing.size();
    ++generation_;
  }
  for (sqlite3* db : closing) sqlite3_close_v2(db);
  freed_.notify_all();
}

size_t SqliteReaderPool::open() const {
  std::lock_guard<std::mutex> lock(mu_);
  return open_;
}

}  // namespace secret_resolver
