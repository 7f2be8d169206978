#!/usr/bin/env bash
# The sidecar benchmark (issue 4): the real sidecar against an empty-handler server built from the
# same proto and gRPC settings, both driven by h2load with identical flags, over the Unix socket
# and over TCP. Every request carries a valid token and 3 references; the sidecar's cache is warm.
# h2load counts any HTTP 200 as a success, and a gRPC error is an HTTP 200 too, so real successes
# are counted from the DATA bytes: an error has none, a success has exactly the probed response.
#
# Then: throughput and p99 against concurrency (1, 4, 16, 64 streams in flight) for both servers
# over both transports, written to docs/bench/sidecar_concurrency.csv and plotted with gnuplot to
# docs/images/sidecar_concurrency.png; the empty handler through each gRPC C++ API (callback,
# sync, async) for the API choice; the sidecar's RSS with 100k secrets cached; start-to-ready on
# the embedded store.
#
#   tests/bench/sidecar/run.sh            (or: tools/dev bench)
#
# Each round measures both transports, alternating which server goes first; after ROUNDS rounds
# the median ratio per transport is the figure: single runs on this 2-core VM vary by up to 25%.
#
# Environment: DURATION (s, default 10), WARMUP (s, 2), ROUNDS (5), CLIENTS (8), STREAMS (streams
# per client, 4), SECRETS (cached for the RSS figure, 100000), ONLY (`rss`: the RSS figure alone),
# BAZEL (the bazel command, default
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
ONLY=${ONLY:-all}

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

# One state directory: KEK, fingerprint key, development signing key, store, config.
make_state() {
  local dir=$1
  mkdir -p "$dir"
  "$ctl" init --store "sqlite:$dir/secrets.db" --kek-file "$dir/kek" >/dev/null
  (umask 077 && openssl rand -base64 32 >"$dir/fingerprint.key")
  "$ctl" dev-key --private-key "$dir/dev.pem" --jwks "$dir/jwks.json" >/dev/null
  cat >"$dir/config.yaml" <<YAML
listen:
  unix_socket: $dir/resolver.sock
  tcp_address: 127.0.0.1:$2
store:
  sqlite:
    path: $dir/secrets.db
  kek:
    file: $dir/kek
auth:
  issuer: https://bench.test
  audience: secret-resolver
  jwks_file: $dir/jwks.json
redaction:
  fingerprint_key_file: $dir/fingerprint.key
admin:
  enabled: false
YAML
}

# Prints "<real successes> <seconds> <p50 us> <p99 us> <h2load successes>" for one h2load run.
drive() {
  local base=$1 token=$2 size=$3 log="$work/h2load.log"
  rm -f "$log"
  local flags=(-B "$base" -c "$CLIENTS" -m "$STREAMS" -t 1 -d "$work/request.bin"
    -H "content-type: application/grpc" -H "te: trailers" -H "authorization: Bearer $token"
    http://localhost/secretresolver.v1.SecretResolver/ResolveSecrets)
  # The sidecar's audit log grows by tens of megabytes a second on the disk. Written back by
  # the kernel about 30 s later, it would cost CPU in whichever run came then: flush it first.
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
for s in a b c; do
  (umask 077 && openssl rand -hex 16 >"$work/value")
  "$ctl" create --store "sqlite:$state/secrets.db" --kek-file "$state/kek" --stack stacks-1 \
    --name "bench/secret-$s" --decrypter grafana-workflows --value-file "$work/value" \
    --trim-newline >/dev/null
done
rm -f "$work/value"
(umask 077 && "$ctl" dev-token --private-key "$state/dev.pem" --issuer https://bench.test \
  --audience secret-resolver --stack stacks-1 --service grafana-workflows --ttl-seconds 7200 \
  >"$work/token")
token=$(<"$work/token")
"$tool" request --stack=stacks-1 --out="$work/request.bin"

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

if [[ $ONLY != rss ]]; then
echo "== sidecar vs empty handler: h2load -c $CLIENTS -m $STREAMS -t 1 -D $DURATION, 3 refs, warm cache, $ROUNDS rounds"
empty_port=$(free_port)
# The sidecar serves on the async API with one completion queue per core: so does its baseline.
run_empty async "$empty_port"
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

echo "== throughput and p99 against concurrency: streams in flight as min(N, 8) clients x N/clients streams"
mkdir -p "$RESULTS_DIR" "$(dirname "$PLOT")"
csv=$RESULTS_DIR/sidecar_concurrency.csv
echo "server,transport,streams,clients,calls_per_second,p50_us,p99_us" >"$csv"
for streams in 1 4 16 64; do
  clients=$((streams < 8 ? streams : 8))
  for transport in unix tcp; do
    for server in empty sidecar; do
      case $server-$transport in
        empty-unix) base="unix:$work/empty.sock" size=$empty_size ;;
        empty-tcp) base="http://127.0.0.1:$empty_port" size=$empty_size ;;
        sidecar-unix) base="unix:$state/resolver.sock" size=$sidecar_size ;;
        sidecar-tcp) base="http://127.0.0.1:$sidecar_port" size=$sidecar_size ;;
      esac
      read -r ok secs p50 p99 _ <<<"$(CLIENTS=$clients STREAMS=$((streams / clients)) \
        drive "$base" "$token" "$size")"
      awk -v s="$server" -v t="$transport" -v n="$streams" -v c="$clients" -v o="$ok" \
        -v secs="$secs" -v p50="$p50" -v p99="$p99" 'BEGIN {
          printf "%s,%s,%d,%d,%.0f,%d,%d\n", s, t, n, c, o / secs, p50, p99 }' | tee -a "$csv"
    done
  done
done
# Two panels over log2(streams): calls/s and p99, a line per server and transport.
for series in sidecar-unix sidecar-tcp empty-unix empty-tcp; do
  awk -F, -v s="${series%-*}" -v t="${series#*-}" '$1 == s && $2 == t' "$csv" >"$work/plot-$series.csv"
done
gnuplot <<GNUPLOT
set terminal pngcairo size 1100,450 font 'sans,10'
set output '$PLOT'
set datafile separator ','
set multiplot layout 1,2 title 'sidecar and empty handler: h2load, 3 references, warm cache'
set logscale x 2
set xrange [0.8:80]
set xtics (1, 4, 16, 64)
set xlabel 'streams in flight'
set grid
set key top left
series = 'sidecar-unix sidecar-tcp empty-unix empty-tcp'
set title 'throughput'
set ylabel 'calls/s'
set yrange [0:*]
plot for [s in series] '$work/plot-'.s.'.csv' using 3:5 with linespoints lw 2 title s
set title 'p99 latency'
set ylabel 'µs'
set logscale y 10
set yrange [*:*]
plot for [s in series] '$work/plot-'.s.'.csv' using 3:7 with linespoints lw 2 title s
unset multiplot
GNUPLOT
echo "wrote $csv and $PLOT"
stop_empty

echo "== gRPC C++ API, empty handler over the Unix socket (same h2load flags)"
for api in callback sync async; do
  run_empty "$api" "$(free_port)"
  read -r ok secs p50 p99 h2 <<<"$(drive "unix:$work/empty.sock" "$token" "$empty_size")"
  awk -v a="$api" -v o="$ok" -v s="$secs" -v p50="$p50" -v p99="$p99" -v h="$h2" 'BEGIN {
    printf "%-8s %9.0f req/s  p50 %6d us  p99 %6d us  (%d real successes of %d)\n", a, o / s, p50, p99, o, h }'
  stop_empty
done

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
