#!/usr/bin/env bash
# The sidecar benchmark (issue 4): the real sidecar against an empty-handler server built from the
# same proto and gRPC settings, both driven by h2load with identical flags, over the Unix socket
# and over TCP. Every request carries a valid token and 3 references; the sidecar's cache is warm.
# h2load counts any HTTP 200 as a success, and a gRPC error is an HTTP 200 too, so real successes
# are counted from the DATA bytes: an error has none, a success has exactly the probed response.
#
# Then: throughput and p99 against concurrency (each of SHAPES, connections x streams per
# connection) for both servers over both transports, written to docs/bench/sidecar_concurrency.csv
# and plotted with gnuplot to docs/images/sidecar_concurrency.png; RSS with IDLE_CONNECTIONS idle
# HTTP/2 connections open against RSS with none, for both servers; the empty handler through each
# gRPC C++ API (callback, sync, async) for the API choice; the sidecar's RSS with 100k secrets
# cached; start-to-ready on the embedded store.
#
#   tests/bench/sidecar/run.sh            (or: tools/dev bench sidecar)
#   WHAT="concurrency idle" DURATION=3 ROUNDS=2 tests/bench/sidecar/run.sh
#                                         (or: tools/dev bench concurrency)
#
# Each round measures both transports, alternating which server goes first; after ROUNDS rounds
# the median ratio per transport is the figure: single runs on this 2-core VM vary by up to 25%.
#
# Environment: WHAT (the parts to run, default "pair concurrency idle api startup rss"; pair is the
# 8x4 comparison above), DURATION (s, default 10), WARMUP (s, 2), ROUNDS (5), CLIENTS (8), STREAMS
# (streams per client, 4), SHAPES (connections x streams per connection for the concurrency
# matrix, default "1x1 1x4 1x16 4x1 ... 256x16": 1, 4, 16, 64 and 256 connections x 1, 4 and 16
# streams), IDLE_CONNECTIONS (10000), SIDECAR_YAML (appended to the sidecar's config, e.g.
# "limits:\n  grpc_memory_bytes: 1073741824"), SECRETS (cached for the RSS figure, 100000), BAZEL (the bazel command, default
# `bazel`; tools/dev passes its -c opt output base), BAZEL_FLAGS (flags for bazel build and info),
# RESULTS_DIR (where the CSV goes, default docs/bench; the plot goes to docs/images).
# Everything runs in a temporary directory that is removed at the end; the values are random.
set -euo pipefail

cd "$(dirname "$0")/../../.."
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-5}
CLIENTS=${CLIENTS:-8}
STREAMS=${STREAMS:-4}
SECRETS=${SECRETS:-100000}
WHAT=${WHAT:-pair concurrency idle api startup rss}
SHAPES=${SHAPES:-$(for c in 1 4 16 64 256; do for m in 1 4 16; do printf '%sx%s ' "$c" "$m"; done; done)}
IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-10000}
want() { [[ " $WHAT " == *" $1 "* ]]; }
# 256 connections per h2load run and IDLE_CONNECTIONS idle ones need their file descriptors
# (the servers started below inherit the limit).
ulimit -n "$(ulimit -Hn)"

RESULTS_DIR=${RESULTS_DIR:-docs/bench}
PLOT=${PLOT:-docs/images/sidecar_concurrency.png}

# shellcheck disable=SC2086
${BAZEL:-bazel} build -c opt ${BAZEL_FLAGS:-} //server:secret-resolver //tools/secretctl:secretctl \
  //tests/bench/sidecar:empty_server //tests/bench/sidecar:bench_tool >&2
# shellcheck disable=SC2086
bin=$(${BAZEL:-bazel} info -c opt ${BAZEL_FLAGS:-} bazel-bin 2>/dev/null)

work=$(mktemp -d /tmp/sr-bench-XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
install -m 755 "$bin/server/secret-resolver" "$bin/tools/secretctl/secretctl" \
  "$bin/tests/bench/sidecar/empty_server" "$bin/tests/bench/sidecar/bench_tool" "$work/"
idle_client=tests/bench/sidecar/idle_connections.py
ctl="$work/secretctl"
tool="$work/bench_tool"

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Waits until the health service answers SERVING on unix socket $1.
wait_ready() {
  local socket=$1
  for _ in $(seq 1 500); do
    if [[ -S $socket ]] && "$tool" ready --socket="$socket" 2>/dev/null; then
      return 0
    fi
    sleep 0.02
  done
  echo "run.sh: nothing serves on $socket" >&2
  return 1
}

# shellcheck source=tests/bench/sidecar/bench_state.sh
source tests/bench/sidecar/bench_state.sh

# Prints "<real successes> <seconds> <p50 us> <p99 us> <h2load successes>" for one h2load run.
drive() {
  local base=$1 token=$2 size=$3 log="$work/h2load.log"
  rm -f "$log"
  local flags=(-B "$base" -c "$CLIENTS" -m "$STREAMS" -t 1 -d "$work/request.bin"
    -H "content-type: application/grpc" -H "te: trailers" -H "authorization: Bearer $token"
    http://localhost/secretresolver.v1.SecretResolver/ResolveSecrets)
  # The sidecar's audit log grows by tens of megabytes a second on the disk. Written back by
  # the kernel about 30 s later, it would cost CPU in whichever run came then: flush it first.
  # Emptied first (the sidecar writes on at its offset, so the file stays sparse): the matrix
  # would otherwise fill gigabytes of disk with it.
  : >"$state/sidecar.log"
  sync
  # A separate warm-up run: h2load's own --warm-up-time leaves the warm-up's bytes in its
  # traffic totals, which would spoil the count of real successes.
  h2load -D "$WARMUP" "${flags[@]}" >/dev/null 2>&1
  local out
  out=$(h2load -D "$DURATION" --log-file="$log" "${flags[@]}" 2>&1)
  local seconds succeeded data
  seconds=$(sed -nE 's/^finished in ([0-9.]+)s.*/\1/p' <<<"$out")
  succeeded=$(sed -nE 's/^requests: .* ([0-9]+) succeeded.*/\1/p' <<<"$out")
  data=$(sed -nE 's/^traffic: .*\(([0-9]+)\) data.*/\1/p' <<<"$out")
  if [[ -z $seconds || -z $data ]]; then
    echo "run.sh: could not read h2load's output:" >&2
    echo "$out" | sed 's/Bearer [^ ]*/Bearer [HIDDEN]/' >&2
    return 1
  fi
  local percentiles
  percentiles=$(cut -f3 "$log" | sort -n | awk '{v[NR]=$1} END {
    if (NR == 0) { print "0 0"; exit }
    i50 = int(NR * 0.50); if (i50 < 1) i50 = 1
    i99 = int(NR * 0.99); if (i99 < 1) i99 = 1
    print v[i50], v[i99] }')
  if ((data % size != 0)); then
    echo "run.sh: $data DATA bytes are not a whole number of $size-byte responses" >&2
    return 1
  fi
  echo "$((data / size)) $seconds $percentiles $succeeded"
}

# Prints one round's figures and appends its ratios to the file $4.
report_pair() {
  local transport=$1 empty=$2 sidecar=$3 ratios=$4
  read -r e_ok e_s e_p50 e_p99 e_h2 <<<"$empty"
  read -r s_ok s_s s_p50 s_p99 s_h2 <<<"$sidecar"
  awk -v t="$transport" -v eo="$e_ok" -v es="$e_s" -v e50="$e_p50" -v e99="$e_p99" -v eh="$e_h2" \
      -v so="$s_ok" -v ss="$s_s" -v s50="$s_p50" -v s99="$s_p99" -v sh="$s_h2" -v out="$ratios" 'BEGIN {
    er = eo / es; sr = so / ss
    printf "%-5s empty handler: %9.0f req/s  p50 %6d us  p99 %6d us  (%d real successes of %d)\n", t, er, e50, e99, eo, eh
    printf "%-5s sidecar:       %9.0f req/s  p50 %6d us  p99 %6d us  (%d real successes of %d)\n", t, sr, s50, s99, so, sh
    printf "%-5s ratio:         throughput %.2fx  p50 %.2fx  p99 %.2fx\n", t, sr / er, s50 / e50, s99 / e99
    printf "%.4f %.4f %.4f\n", sr / er, s50 / e50, s99 / e99 >> out
  }'
}

# Prints the median and range of each ratio column in file $2.
report_median() {
  local transport=$1 ratios=$2
  for column in 1 2 3; do cut -d' ' -f"$column" "$ratios" | sort -n | tr '\n' ' '; echo; done |
    awk -v t="$transport" 'BEGIN { split("throughput p50 p99", name) }
      { n = split($0, v, " "); median[NR] = v[int((n + 1) / 2)]; low[NR] = v[1]; high[NR] = v[n] }
      END {
        printf "%-5s MEDIAN of %d rounds: throughput %.2fx (%.2f-%.2f; target >= 0.85x)  p50 %.2fx  p99 %.2fx (%.2f-%.2f; target <= 1.25x)\n",
          t, n, median[1], low[1], high[1], median[2], median[3], low[3], high[3] }'
}

echo "== setup" >&2
state="$work/sidecar"
sidecar_port=$(free_port)
make_state "$state" "$sidecar_port"
add_bench_secrets "$state"
token=$(<"$work/token")

"$work/secret-resolver" --config="$state/config.yaml" 2>"$state/sidecar.log" &
pids+=($!)
wait_ready "$state/resolver.sock"
sidecar_size=$("$tool" probe --target="unix:$state/resolver.sock" --token_file="$work/token")

run_empty() {
  local api=$1 port=$2
  rm -f "$work/empty.sock"
  "$work/empty_server" --api="$api" --unix_socket="$work/empty.sock" \
    --tcp_address="127.0.0.1:$port" >/dev/null &
  empty_pid=$!
  pids+=("$empty_pid")
  wait_ready "$work/empty.sock"
  empty_size=$("$tool" probe --target="unix:$work/empty.sock" --token_file="$work/token")
}
stop_empty() {
  kill "$empty_pid"
  wait "$empty_pid" 2>/dev/null || true
}

empty_port=$(free_port)
# The sidecar serves on the async API with one completion queue per core: so does its baseline.
run_empty async "$empty_port"
# The h2load target of `server` (empty, sidecar) over `transport` (unix, tcp), and its response
# size, in base and size.
target_of() {
  case $1-$2 in
    empty-unix) base="unix:$work/empty.sock" size=$empty_size ;;
    empty-tcp) base="http://127.0.0.1:$empty_port" size=$empty_size ;;
    sidecar-unix) base="unix:$state/resolver.sock" size=$sidecar_size ;;
    sidecar-tcp) base="http://127.0.0.1:$sidecar_port" size=$sidecar_size ;;
  esac
}

if want pair; then
echo "== sidecar vs empty handler: h2load -c $CLIENTS -m $STREAMS -t 1 -D $DURATION, 3 refs, warm cache, $ROUNDS rounds"
: >"$work/ratios-unix"
: >"$work/ratios-tcp"
for round in $(seq 1 "$ROUNDS"); do
  # Both transports in every round, so a drift in the machine's speed over the run (its load,
  # the page cache filling with the audit log) does not favour either.
  for transport in unix tcp; do
    if [[ $transport == unix ]]; then
      empty_base="unix:$work/empty.sock"; sidecar_base="unix:$state/resolver.sock"
    else
      empty_base="http://127.0.0.1:$empty_port"; sidecar_base="http://127.0.0.1:$sidecar_port"
    fi
    # Alternate which server goes first, so such a drift does not favour either of them.
    if ((round % 2 == 1)); then
      empty=$(drive "$empty_base" "$token" "$empty_size")
      sidecar=$(drive "$sidecar_base" "$token" "$sidecar_size")
    else
      sidecar=$(drive "$sidecar_base" "$token" "$sidecar_size")
      empty=$(drive "$empty_base" "$token" "$empty_size")
    fi
    report_pair "$transport" "$empty" "$sidecar" "$work/ratios-$transport"
  done
done
for transport in unix tcp; do report_median "$transport" "$work/ratios-$transport"; done

fi

if want concurrency; then
echo "== throughput and p99 against concurrency: connections x streams per connection, $ROUNDS rounds of ${DURATION}s points, load average $(cut -d' ' -f1-3 /proc/loadavg)"
mkdir -p "$RESULTS_DIR" "$(dirname "$PLOT")"
csv=$RESULTS_DIR/sidecar_concurrency.csv
points="$work/points.csv"
echo "round,connections,streams,transport,server,calls_per_second,p50_us,p99_us" >"$points"
for round in $(seq 1 "$ROUNDS"); do
  for shape in $SHAPES; do
    connections=${shape%x*} streams=${shape#*x}
    for transport in unix tcp; do
      # Alternate which server goes first, by round and by shape.
      if (((round + connections + streams) % 2 == 1)); then order="empty sidecar"; else order="sidecar empty"; fi
      for server in $order; do
        target_of "$server" "$transport"
        read -r ok secs p50 p99 _ <<<"$(CLIENTS=$connections STREAMS=$streams \
          drive "$base" "$token" "$size")"
        awk -v r="$round" -v c="$connections" -v m="$streams" -v t="$transport" -v s="$server" \
          -v o="$ok" -v secs="$secs" -v p50="$p50" -v p99="$p99" 'BEGIN {
            printf "%d,%d,%d,%s,%s,%.0f,%d,%d\n", r, c, m, t, s, o / secs, p50, p99 }' >>"$points"
      done
    done
    tail -n 4 "$points" | tr '\n' ' '; echo
  done
done
# Per shape and transport: the medians over the rounds of each server's calls/s and p99 and of
# the round's ratios (sidecar / empty handler), with the ratios' range.
/usr/bin/python3 - "$points" "$csv" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
key = lambda r: (int(r["connections"]), int(r["streams"]), r["transport"])
by = {}
for r in rows:
    by.setdefault(key(r), {}).setdefault(r["round"], {})[r["server"]] = r
out = open(sys.argv[2], "w")
out.write("connections,streams,transport,empty_calls_per_second,sidecar_calls_per_second,"
          "throughput_ratio,ratio_low,ratio_high,empty_p99_us,sidecar_p99_us,p99_ratio\n")
print(f"{'shape':>8} {'transport':>9} {'empty/s':>9} {'sidecar/s':>9} {'ratio':>6} {'range':>11}"
      f" {'p99 empty':>10} {'p99 sidecar':>11} {'p99 ratio':>9}")
for (c, m, t), rounds in sorted(by.items()):
    pairs = [v for v in rounds.values() if "empty" in v and "sidecar" in v]
    med = lambda f, s: statistics.median(float(p[s][f]) for p in pairs)
    ratios = [float(p["sidecar"]["calls_per_second"]) / max(1.0, float(p["empty"]["calls_per_second"])) for p in pairs]
    p99r = [float(p["sidecar"]["p99_us"]) / max(1.0, float(p["empty"]["p99_us"])) for p in pairs]
    row = (c, m, t, med("calls_per_second", "empty"), med("calls_per_second", "sidecar"),
           statistics.median(ratios), min(ratios), max(ratios), med("p99_us", "empty"),
           med("p99_us", "sidecar"), statistics.median(p99r))
    out.write("%d,%d,%s,%.0f,%.0f,%.3f,%.3f,%.3f,%.0f,%.0f,%.3f\n" % row)
    print(f"{c:>4}x{m:<3} {t:>9} {row[3]:>9.0f} {row[4]:>9.0f} {row[5]:>5.2f}x {row[6]:.2f}-{row[7]:.2f}"
          f" {row[8]:>10.0f} {row[9]:>11.0f} {row[10]:>8.2f}x")
PY
# Two panels over the shapes: the throughput ratio and the p99 ratio, a line per transport.
for transport in unix tcp; do
  awk -F, -v t="$transport" 'NR > 1 && $3 == t { printf "%sx%s,%s,%s\n", $1, $2, $6, $11 }' \
    "$csv" >"$work/plot-$transport.csv"
done
gnuplot <<GNUPLOT
set terminal pngcairo size 1200,450 font 'sans,10'
set output '$PLOT'
set datafile separator ','
set multiplot layout 1,2 title 'sidecar / empty handler by connections x streams: h2load, 3 references, warm cache (medians of $ROUNDS rounds)'
set xtics rotate by -45
set grid
set key bottom left
set title 'throughput ratio (target >= 0.9)'
set yrange [0:*]
plot '$work/plot-unix.csv' using 0:2:xtic(1) with linespoints lw 2 title 'unix', \
     '$work/plot-tcp.csv' using 0:2 with linespoints lw 2 title 'tcp', 0.9 with lines dt 2 title ''
set title 'p99 ratio'
set yrange [0:*]
plot '$work/plot-unix.csv' using 0:3:xtic(1) with linespoints lw 2 title 'unix', \
     '$work/plot-tcp.csv' using 0:3 with linespoints lw 2 title 'tcp'
unset multiplot
GNUPLOT
echo "wrote $csv and $PLOT"
fi

if want idle; then
echo "== RSS with $IDLE_CONNECTIONS idle HTTP/2 connections (Unix socket) against none"
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
for server in empty sidecar; do
  if [[ $server == sidecar ]]; then pid=${pids[0]} socket="unix:$state/resolver.sock"
  else pid=$empty_pid socket="unix:$work/empty.sock"; fi
  before=$(rss_kib "$pid")
  rm -f "$work/hold" "$work/idle.out"
  mkfifo "$work/hold"
  /usr/bin/python3 "$idle_client" --target="$socket" --connections="$IDLE_CONNECTIONS" \
    <"$work/hold" >"$work/idle.out" &
  idle_pid=$!
  exec 9>"$work/hold"
  while ! grep -q '^open' "$work/idle.out" 2>/dev/null; do
    kill -0 "$idle_pid" 2>/dev/null || { echo "run.sh: idle_connections.py failed" >&2; exit 1; }
    sleep 0.2
  done
  sleep 2  # let the server settle what each connection allocated
  open=$(sed -nE 's/^open ([0-9]+)/\1/p' "$work/idle.out")
  after=$(rss_kib "$pid")
  exec 9>&-
  wait "$idle_pid" 2>/dev/null || true
  awk -v s="$server" -v n="$open" -v b="$before" -v a="$after" 'BEGIN {
    printf "%-13s RSS %.1f MiB with none, %.1f MiB with %d open: %.0f bytes per connection\n", s, b / 1024, a / 1024, n, (a - b) * 1024 / n }'
done
fi
stop_empty

if want api; then
echo "== gRPC C++ API, empty handler over the Unix socket (same h2load flags)"
for api in callback sync async; do
  run_empty "$api" "$(free_port)"
  read -r ok secs p50 p99 h2 <<<"$(drive "unix:$work/empty.sock" "$token" "$empty_size")"
  awk -v a="$api" -v o="$ok" -v s="$secs" -v p50="$p50" -v p99="$p99" -v h="$h2" 'BEGIN {
    printf "%-8s %9.0f req/s  p50 %6d us  p99 %6d us  (%d real successes of %d)\n", a, o / s, p50, p99, o, h }'
  stop_empty
done

fi

if want startup; then
echo "== start-to-ready on the embedded store (fork to first SERVING health answer, 10 runs)"
kill "${pids[0]}"
wait "${pids[0]}" 2>/dev/null || true
read -r s_med s_min s_max <<<"$("$tool" startup --socket="$state/resolver.sock" --runs=10 -- \
  "$work/secret-resolver" --config="$state/config.yaml")"
read -r e_med e_min e_max <<<"$("$tool" startup --socket="$work/empty.sock" --runs=10 -- \
  "$work/empty_server" --api=async --unix_socket="$work/empty.sock")"
awk -v sm="$s_med" -v sn="$s_min" -v sx="$s_max" -v em="$e_med" -v en="$e_min" -v ex="$e_max" 'BEGIN {
  printf "sidecar:       median %.1f ms (min %.1f, max %.1f; target <= 200 ms)\n", sm, sn, sx
  printf "empty handler: median %.1f ms (min %.1f, max %.1f)\n", em, en, ex
  printf "ratio:         %.2fx\n", sm / em }'

fi

if want rss; then
echo "== RSS with $SECRETS secrets cached (10 stacks)"
big="$work/big"
make_state "$big" "$(free_port)"
per_stack=$((SECRETS / 10))
"$tool" populate --store="sqlite:$big/secrets.db" --kek_file="$big/kek" --stacks=10 \
  --per_stack="$per_stack"
"$work/secret-resolver" --config="$big/config.yaml" 2>"$big/sidecar.log" &
big_pid=$!
pids+=("$big_pid")
wait_ready "$big/resolver.sock"
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
rss_empty=$(rss_kib "$big_pid")
resolved=$("$tool" warm --target="unix:$big/resolver.sock" --signing_key="$big/dev.pem" \
  --stacks=10 --per_stack="$per_stack")
rss_full=$(rss_kib "$big_pid")
awk -v n="$resolved" -v e="$rss_empty" -v f="$rss_full" 'BEGIN {
  printf "resolved and cached: %d secrets\n", n
  printf "RSS empty cache:     %.1f MiB\n", e / 1024
  printf "RSS %d cached:   %.1f MiB (target <= 64 MiB); %.0f bytes per cached secret\n", n, f / 1024, (f - e) * 1024 / n }'
fi
