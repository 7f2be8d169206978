#include "tests/scale/scale_run.h"

#include <postgresql/libpq-fe.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <memory>
#include <thread>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "resolver/store/store_config.h"
#include "tests/faults/fault_env.h"
#include "tests/faults/fault_fixture.h"
#include "tests/faults/load_driver.h"
#include "tests/scale/invalidation_probe.h"
#include "tests/scale/scale_cluster.h"

namespace secret_resolver {
namespace testing {
namespace {

constexpr char kHarnessApplication[] = "scale-harness";
constexpr char kProbeName[] = "scale/probe";

std::string HotName(int64_t i) { return absl::StrCat("scale/hot-", i); }
std::string CycledName(int64_t i) { return absl::StrCat("scale/cycled-", i); }

// One libpq connection of the harness's own, for pg_stat_activity and pg_stat_database.
class StatsConnection {
 public:
  explicit StatsConnection(const std::string& dsn)
      : conn_(PQconnectdb((dsn + " application_name=" + kHarnessApplication).c_str())) {}
  ~StatsConnection() { PQfinish(conn_); }
  StatsConnection(const StatsConnection&) = delete;
  StatsConnection& operator=(const StatsConnection&) = delete;

  bool ok() const { return PQstatus(conn_) == CONNECTION_OK; }
  std::string error() const { return PQerrorMessage(conn_); }

  // Runs a statement that returns no rows; false on an error (error() says which).
  bool Command(const std::string& sql) {
    PGresult* result = PQexec(conn_, sql.c_str());
    const bool ok = PQresultStatus(result) == PGRES_COMMAND_OK;
    PQclear(result);
    return ok;
  }

  // Rows of `sql`, each as its columns' text; empty on an error.
  std::vector<std::vector<std::string>> Query(const std::string& sql) {
    std::vector<std::vector<std::string>> rows;
    PGresult* result = PQexec(conn_, sql.c_str());
    if (PQresultStatus(result) == PGRES_TUPLES_OK) {
      for (int r = 0; r < PQntuples(result); ++r) {
        std::vector<std::string> row;
        for (int c = 0; c < PQnfields(result); ++c) row.emplace_back(PQgetvalue(result, r, c));
        rows.push_back(std::move(row));
      }
    }
    PQclear(result);
    return rows;
  }

  // Client connections to this database by application_name, the harness's own left out.
  std::map<std::string, int> Connections() {
    std::map<std::string, int> by_app;
    for (const auto& row : Query(absl::StrCat(
             "SELECT application_name, count(*) FROM pg_stat_activity WHERE datname = "
             "current_database() AND backend_type = 'client backend' AND application_name <> '",
             kHarnessApplication, "' GROUP BY 1"))) {
      int count = 0;
      if (absl::SimpleAtoi(row[1], &count)) by_app[row[0]] = count;
    }
    return by_app;
  }

  // Transactions committed and rolled back in this database so far.
  double Transactions() {
    // A new snapshot each time: within one transaction the statistics would stay frozen.
    const auto rows = Query(
        "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = "
        "current_database()");
    double value = 0;
    return !rows.empty() && absl::SimpleAtod(rows[0][0], &value) ? value : 0;
  }

 private:
  PGconn* conn_;
};

absl::StatusOr<std::string> CreateDatabase(PostgresServer& server) {
  StatsConnection admin(server.DsnForDatabase("postgres"));
  if (!admin.ok()) return absl::UnavailableError(admin.error());
  static int counter = 0;
  const std::string name = absl::StrCat("scale_", getpid(), "_", ++counter);
  if (!admin.Command(absl::StrCat("CREATE DATABASE ", name, " STRATEGY FILE_COPY"))) {
    return absl::UnavailableError(
        absl::StrCat("CREATE DATABASE ", name, " failed: ", admin.error()));
  }
  return server.DsnForDatabase(name);
}

// Sums of one group's counters at one instant.
struct Counters {
  double calls = 0, hits = 0, misses = 0, store_fetches = 0;
  std::vector<double> calls_each;
};

Counters Scrape(const std::vector<std::unique_ptr<SidecarProcess>>& processes) {
  Counters sum;
  for (const std::unique_ptr<SidecarProcess>& process : processes) {
    absl::StatusOr<HttpAnswer> answer =
        HttpGet(process->ServingAddress("admin"), "/metrics", absl::Seconds(5));
    const std::string body = answer.ok() ? answer->body : "";
    const double calls =
        MetricSum(body, "secret_resolver_calls_total", {"method=\"ResolveSecrets\""}) +
        MetricSum(body, "secret_resolver_calls_total", {"method=\"DecryptSecureValues\""});
    sum.calls += calls;
    sum.calls_each.push_back(calls);
    sum.hits += MetricSum(body, "secret_resolver_cache_hits");
    sum.misses += MetricSum(body, "secret_resolver_cache_misses");
    sum.store_fetches += MetricSum(body, "secret_resolver_cache_store_fetches");
  }
  return sum;
}

MetricRates Rates(const Counters& before, const Counters& after, double seconds) {
  MetricRates rates;
  rates.calls = (after.calls - before.calls) / seconds;
  rates.hits = (after.hits - before.hits) / seconds;
  rates.misses = (after.misses - before.misses) / seconds;
  rates.store_fetches = (after.store_fetches - before.store_fetches) / seconds;
  return rates;
}

absl::Status WriteSecrets(SecretStore& store, const ScaleRunOptions& options) {
  auto write = [&store](const std::string& name) -> absl::Status {
    // Stand-in values of a realistic size, never credentials.
    return WriteSecret(store, name, absl::StrCat(name, std::string(48, 'v'))).status();
  };
  for (int i = 0; i < options.hot; ++i) {
    if (absl::Status s = write(HotName(i)); !s.ok()) return s;
  }
  for (int i = 0; i < options.secrets; ++i) {
    if (absl::Status s = write(CycledName(i)); !s.ok()) return s;
  }
  // The probe secret's first version, in a fresh database.
  return WriteSecret(store, kProbeName, ProbeValue(1)).status();
}

// Of every 20 calls: 14 hot names, 5 cycled names, 1 name that does not exist.
LoadOptions Load(const ScaleRunOptions& options, const std::vector<std::string>& targets,
                 const std::string& token, std::atomic<int64_t>* cycle) {
  LoadOptions load;
  load.targets = targets;
  load.callers = options.callers > 0 ? options.callers : static_cast<int>(targets.size());
  load.pause = options.pause;
  load.next = [&options, token, cycle](int caller, int64_t n) {
    LoadRequest next;
    next.token = token;
    const int64_t slot = (n + caller) % 20;
    if (slot < 14) {
      next.kind = "hot";
      next.request = RequestFor({HotName((n * 7 + caller) % options.hot)});
    } else if (slot < 19) {
      next.kind = "cycled";
      next.request = RequestFor({CycledName(cycle->fetch_add(1) % options.secrets)});
    } else {
      next.kind = "unknown";
      next.request = RequestFor({absl::StrCat("scale/unknown-", caller, "-", n)});
    }
    return next;
  };
  return load;
}

}  // namespace

absl::Duration Quantile(std::vector<absl::Duration> values, double q) {
  if (values.empty()) return absl::ZeroDuration();
  std::sort(values.begin(), values.end());
  const size_t rank = static_cast<size_t>(std::ceil(q * values.size()));
  return values[std::min(values.size() - 1, rank == 0 ? 0 : rank - 1)];
}

absl::StatusOr<ScaleReport> RunScale(const ScaleRunOptions& options, PostgresServer& server) {
  if (absl::Status valid = ValidateScaleOptions(options.cluster); !valid.ok()) return valid;
  if (options.hot < 1 || options.secrets < 1 || options.writes < 1) {
    return absl::InvalidArgumentError("hot, secrets and writes must be at least 1");
  }
  absl::StatusOr<std::string> dsn = CreateDatabase(server);
  if (!dsn.ok()) return dsn.status();
  absl::StatusOr<ScaleFiles> files = MakeScaleFiles(options.cluster.mode);
  if (!files.ok()) return files.status();
  const std::string files_dir = files->keys.dir;
  const std::string socket_dir =
      std::filesystem::path(files->keys.socket_path).parent_path().string();
  struct Cleanup {
    std::string a, b;
    ~Cleanup() {
      std::filesystem::remove_all(a);
      std::filesystem::remove_all(b);
    }
  } cleanup{files_dir, socket_dir};

  PostgresStoreConfig postgres;
  postgres.dsn = *dsn;
  postgres.max_connections = 1;
  postgres.application_name = kHarnessApplication;
  StoreConfig store_config;
  store_config.backend = postgres;
  absl::StatusOr<std::unique_ptr<EncryptedSecretStore>> store =
      OpenSecretStore(store_config, &files->keys.key_ring);
  if (!store.ok()) return store.status();
  if (absl::Status written = WriteSecrets(**store, options); !written.ok()) return written;

  absl::StatusOr<std::unique_ptr<ScaleCluster>> cluster =
      ScaleCluster::Start(options.cluster, *files, *dsn);
  if (!cluster.ok()) return cluster.status();
  const std::string token = files->keys.Token(kFaultStack, kFaultService, absl::Hours(2));
  absl::StatusOr<std::unique_ptr<InvalidationProbe>> probe =
      InvalidationProbe::Open((*cluster)->Targets(), token, kProbeName, absl::Seconds(30),
                              options.probe, options.poll_interval);
  if (!probe.ok()) return probe.status();
  StatsConnection stats(*dsn);
  if (!stats.ok()) return absl::UnavailableError(stats.error());

  ScaleReport report;
  report.cluster = options.cluster;
  report.probe = options.probe;
  report.poll_interval = options.poll_interval;
  std::atomic<int64_t> cycle{0};
  LoadOptions load_options = Load(options, (*cluster)->Targets(), token, &cycle);
  report.callers = load_options.callers;
  LoadDriver load(std::move(load_options));
  load.Start();
  absl::SleepFor(options.warmup);

  const absl::Time start = absl::Now();
  const Counters sidecars_before = Scrape((*cluster)->sidecars());
  const Counters tiers_before = Scrape((*cluster)->tiers());
  const double transactions_before = stats.Transactions();
  auto sample_connections = [&] {
    report.pg_connections_by_app = stats.Connections();
    report.pg_connections = 0;
    for (const auto& [app, count] : report.pg_connections_by_app) report.pg_connections += count;
    report.pg_connections_max = std::max(report.pg_connections_max, report.pg_connections);
  };
  sample_connections();
  for (int k = 0; k < options.writes; ++k) {
    const absl::Time before = absl::Now();
    // Only this run writes the probe secret: write k makes version k + 2.
    absl::StatusOr<int64_t> version = WriteSecret(**store, kProbeName, ProbeValue(k + 2));
    if (!version.ok()) return version.status();
    if (*version != k + 2) {
      return absl::InternalError(absl::StrCat("the probe secret's write ", k, " made version ",
                                              *version, ", not ", k + 2));
    }
    const std::vector<absl::Time> seen =
        (*probe)->WaitForVersion(*version, before + options.see_within);
    absl::Time last = before;
    bool all = true;
    for (absl::Time at : seen) {
      if (at == absl::InfiniteFuture()) {
        ++report.unseen;
        all = false;
        continue;
      }
      report.write_to_each.push_back(at - before);
      last = std::max(last, at);
    }
    if (all) report.write_to_all.push_back(last - before);
    sample_connections();
    absl::SleepFor(options.write_gap);
  }
  while (absl::Now() < start + options.load) {
    absl::SleepFor(std::min(absl::Seconds(1), start + options.load - absl::Now()));
    sample_connections();
  }
  const absl::Time end = absl::Now();
  const Counters sidecars_after = Scrape((*cluster)->sidecars());
  const Counters tiers_after = Scrape((*cluster)->tiers());
  report.seconds = absl::ToDoubleSeconds(end - start);
  report.pg_transactions_per_s = (stats.Transactions() - transactions_before) / report.seconds;
  report.sidecars = Rates(sidecars_before, sidecars_after, report.seconds);
  report.tiers = Rates(tiers_before, tiers_after, report.seconds);
  report.fewest_calls_on_a_sidecar = static_cast<int64_t>(sidecars_after.calls);
  for (size_t i = 0; i < sidecars_after.calls_each.size(); ++i) {
    report.fewest_calls_on_a_sidecar =
        std::min(report.fewest_calls_on_a_sidecar,
                 static_cast<int64_t>(sidecars_after.calls_each[i] - sidecars_before.calls_each[i]));
  }
  load.Stop();

  std::vector<absl::Duration> latencies;
  for (const CallRecord& record : CallsBetween(load.Records(), start, end)) {
    ++report.calls;
    latencies.push_back(record.latency);
    ++report.call_codes[record.code];
    for (int code : record.ref_codes) ++report.ref_codes[code];
    if (record.overran) ++report.overruns;
  }
  report.p50 = Quantile(latencies, 0.50);
  report.p99 = Quantile(latencies, 0.99);
  report.max_latency = Quantile(latencies, 1.0);
  report.streams_ended = (*probe)->Ended();
  probe->reset();
  report.exits_not_zero = (*cluster)->Stop();
  return report;
}

std::string FormatReport(const ScaleReport& report) {
  auto ms = [](absl::Duration d) { return absl::ToDoubleMilliseconds(d); };
  const ScaleOptions& c = report.cluster;
  std::string out = absl::StrFormat(
      "scale run: mode %s, %d sidecars%s, pool %d, %d workers, %d fetch threads, TTL %s; "
      "%d callers; window %.1f s\n",
      ScaleModeName(c.mode), c.sidecars,
      c.mode == ScaleMode::kTiered ? absl::StrCat(" on ", c.tiers, " central") : "", c.pool,
      c.worker_threads, c.fetch_threads, absl::FormatDuration(c.ttl), report.callers,
      report.seconds);
  absl::StrAppendFormat(&out, "PostgreSQL connections: %d at the end, %d at most (",
                        report.pg_connections, report.pg_connections_max);
  for (const auto& [app, count] : report.pg_connections_by_app) {
    absl::StrAppendFormat(&out, " %s=%d", app.empty() ? "(none)" : app, count);
  }
  absl::StrAppendFormat(&out,
                        " ); bound processes x (pool + 1) = %d; PostgreSQL transactions %.0f/s\n",
                        (c.mode == ScaleMode::kDirect ? c.sidecars : c.tiers) * (c.pool + 1),
                        report.pg_transactions_per_s);
  absl::StrAppendFormat(
      &out,
      "invalidation (write -> %s), %d writes: to all %d sidecars p50 %.1f ms "
      "p99 %.1f ms max %.1f ms; per sidecar p50 %.1f ms p99 %.1f ms; unseen %d, streams "
      "ended %d\n",
      report.probe == ProbeMethod::kWatch
          ? std::string("WatchSecrets event")
          : absl::StrCat("ResolveSecrets polled every ",
                         absl::FormatDuration(report.poll_interval), " returns it"),
      static_cast<int>(report.write_to_all.size()), c.sidecars,
      ms(Quantile(report.write_to_all, 0.5)), ms(Quantile(report.write_to_all, 0.99)),
      ms(Quantile(report.write_to_all, 1.0)), ms(Quantile(report.write_to_each, 0.5)),
      ms(Quantile(report.write_to_each, 0.99)), report.unseen, report.streams_ended);
  absl::StrAppendFormat(&out,
                        "load: %d calls, %.0f/s, p50 %.2f ms, p99 %.2f ms, max %.1f ms, "
                        "overruns %d, fewest calls on one sidecar %d; call codes",
                        report.calls, report.calls / report.seconds, ms(report.p50),
                        ms(report.p99), ms(report.max_latency), report.overruns,
                        report.fewest_calls_on_a_sidecar);
  for (const auto& [code, count] : report.call_codes) {
    absl::StrAppendFormat(&out, " %d=%d", static_cast<int>(code), count);
  }
  out += "; ref codes";
  for (const auto& [code, count] : report.ref_codes) {
    absl::StrAppendFormat(&out, " %d=%d", code, count);
  }
  auto rates = [&out](const char* who, const MetricRates& r) {
    absl::StrAppendFormat(&out,
                          "%s per second: calls %.0f, cache hits %.0f, misses %.1f, store "
                          "fetches %.1f (%.2f per miss)\n",
                          who, r.calls, r.hits, r.misses, r.store_fetches,
                          r.misses > 0 ? r.store_fetches / r.misses : 0.0);
  };
  out += "\n";
  rates("sidecars", report.sidecars);
  if (c.mode == ScaleMode::kTiered) rates("central sidecars", report.tiers);
  absl::StrAppendFormat(&out, "processes that did not exit 0 on SIGTERM: %d\n",
                        report.exits_not_zero);
  return out;
}

}  // namespace testing
}  // namespace secret_resolver
