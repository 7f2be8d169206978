// SqliteReaderPool: the SQLite store's read connections. At most `max_open` are open at once;
// a read that finds them all in use waits for one rather than opening another. Each connection
// holds its own page cache and parsed schema, so a burst of parallel reads (the secret cache
// fetches a call's misses at once) would otherwise open and close a connection per extra read,
// and the churn left the sidecar's heap fragmented (docs/BENCHMARKS.md, RSS with 100k cached).
// Connections are kept open between reads for reuse.
//
// Thread safety: all methods may be called concurrently. A Lease belongs to one thread at a
// time and must end before the pool is destroyed.
#ifndef SECRET_RESOLVER_RESOLVER_SQLITE_SQLITE_READER_POOL_H_
#define SECRET_RESOLVER_RESOLVER_SQLITE_SQLITE_READER_POOL_H_

#include <sqlite3.h>

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

#include "absl/status/statusor.h"

namespace secret_resolver {

class SqliteReaderPool {
 public:
  // Opens one read connection; the pool closes it (sqlite3_close_v2).
  using Connector = std::function<absl::StatusOr<sqlite3*>()>;

  // One connection borrowed from the pool until the lease ends.
  class Lease {
   public:
    Lease(Lease&& other) noexcept;
    Lease& operator=(Lease&&) = delete;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease();

    sqlite3* db() const { return db_; }

   private:
    friend class SqliteReaderPool;
    Lease(SqliteReaderPool* pool, sqlite3* db, uint64_t generation)
        : pool_(pool), db_(db), generation_(generation) {}

    SqliteReaderPool* pool_;
    sqlite3* db_;
    uint64_t generation_;
  };

  // `max_open` at least 1.
  SqliteReaderPool(size_t max_open, Connector connect);
  // Closes the idle connections.
  ~SqliteReaderPool();
  SqliteReaderPool(const SqliteReaderPool&) = delete;
  SqliteReaderPool& operator=(const SqliteReaderPool&) = delete;

  // An idle connection, or a new one while fewer than max_open are open; otherwise waits until
  // a lease ends. Errors: the connector's (the slot it would have taken is given back).
  absl::StatusOr<Lease> Acquire();

  // Closes the idle connections now and the leased ones when their leases end (the store's file
  // was replaced: they read the old one). Later Acquires connect afresh.
  void CloseAll();

  // Connections open now, idle or leased.
  size_t open() const;

 private:
  void Release(sqlite3* db, uint64_t generation);

  const size_t max_open_;
  const Connector connect_;
  mutable std::mutex mu_;
  std::condition_variable freed_;  // notified when a connection goes idle or is closed
  std::vector<sqlite3*> idle_;     // guarded by mu_
  size_t open_ = 0;                // guarded by mu_: idle, leased and being connected
  uint64_t generation_ = 0;        // guarded by mu_: bumped by CloseAll
};

}  // namespace secret_resolver

#endif  // SECRET_RESOLVER_RESOLVER_SQLITE_SQLITE_READER_POOL_H_
