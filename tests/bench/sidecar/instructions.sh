#!/usr/bin/env bash
# Instructions per call (issue 20 item 4): the sidecar (warm cache, audit lines on) against the
# empty async handler, each under valgrind's callgrind, driven by h2load over the Unix socket with
# the request and token of run.sh. Counts are zeroed after a warm-up and dumped after CALLS calls,
# so they cover every thread of the server during the measured calls only. Unlike CPU time, an
# instruction count does not move with the machine's load (this 2-core VM is shared), so it
# shows differences of a few percent that throughput runs cannot.
#
#   tests/bench/sidecar/instructions.sh      (or: tools/dev bench instructions)
#
# Environment: CALLS (measured calls, default 5000), WARMUP_CALLS (2000), CONNECTIONS (4) and
# STREAMS (16 per connection), SIDECARS (further secret-resolver binaries to measure beside the
# one built from this tree, e.g. an experimental build; space-separated paths), BAZEL and
# BAZEL_FLAGS as for run.sh, PROFILE_DIR (where to keep each server's callgrind file, for
# callgrind_annotate, as empty.callgrind, sidecar-0.callgrind (this tree's), sidecar-1...; default: not kept). Prints instructions per call and the ratio to the empty
# handler's. Everything else runs in a temporary directory that is removed at the end.
set -euo pipefail

cd "$(dirname "$0")/../../.."
CALLS=${CALLS:-5000}
WARMUP_CALLS=${WARMUP_CALLS:-2000}
CONNECTIONS=${CONNECTIONS:-4}
STREAMS=${STREAMS:-16}

# shellcheck disable=SC2086
${BAZEL:-bazel} build -c opt ${BAZEL_FLAGS:-} //server:secret-resolver //tools/secretctl:secretctl \
  //tests/bench/sidecar:empty_server //tests/bench/sidecar:bench_tool >&2
# shellcheck disable=SC2086
bin=$(${BAZEL:-bazel} info -c opt ${BAZEL_FLAGS:-} bazel-bin 2>/dev/null)

work=$(mktemp -d /tmp/sr-instructions-XXXXXX)
server_pid=
cleanup() {
  if [[ -n $server_pid ]]; then kill "$server_pid" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
install -m 755 "$bin/server/secret-resolver" "$bin/tools/secretctl/secretctl" \
  "$bin/tests/bench/sidecar/empty_server" "$bin/tests/bench/sidecar/bench_tool" "$work/"
ctl="$work/secretctl"
tool="$work/bench_tool"

# Waits (up to 60 s: valgrind starts slowly) until the health service answers on socket $1.
wait_ready() {
  for _ in $(seq 1 3000); do
    if [[ -S $1 ]] && "$tool" ready --socket="$1" 2>/dev/null; then return 0; fi
    sleep 0.02
  done
  echo "instructions.sh: nothing serves on $1" >&2
  return 1
}

# shellcheck source=tests/bench/sidecar/bench_state.sh
source tests/bench/sidecar/bench_state.sh
state="$work/state"
make_state "$state" 0
socket="$state/resolver.sock"  # the sidecar's, and the empty handler's in turn
add_bench_secrets "$state"

# Measures one server (the command in "$@"); prints its instructions per call.
measure() {
  local name=$1 out="$work/callgrind.out"
  shift
  rm -f "$socket" "$out"*
  valgrind --tool=callgrind --callgrind-out-file="$out" "$@" >/dev/null 2>"$work/valgrind.log" &
  server_pid=$!
  wait_ready "$socket"
  local flags=(-B "unix:$socket" -c "$CONNECTIONS" -m "$STREAMS" -t 1 -d "$work/request.bin"
    -H "content-type: application/grpc" -H "te: trailers"
    -H "authorization: Bearer $(<"$work/token")"
    http://localhost/secretresolver.v1.SecretResolver/ResolveSecrets)
  h2load -n "$WARMUP_CALLS" "${flags[@]}" >/dev/null 2>&1
  callgrind_control --zero "$server_pid" >/dev/null
  local succeeded
  succeeded=$(h2load -n "$CALLS" "${flags[@]}" 2>&1 |
    sed -nE 's/^requests: .* ([0-9]+) succeeded.*/\1/p')
  callgrind_control --dump "$server_pid" >/dev/null
  kill "$server_pid"
  wait "$server_pid" 2>/dev/null || true
  server_pid=
  # callgrind writes its first dump to "$out.1" (the file at "$out" covers only the shutdown).
  local dump="$out.1" instructions
  instructions=$(sed -nE 's/^(summary|totals): ([0-9]+).*/\2/p' "$dump" | sort -n | tail -1)
  if [[ -n ${PROFILE_DIR:-} ]]; then mkdir -p "$PROFILE_DIR" && cp "$dump" "$PROFILE_DIR/$name.callgrind"; fi
  if [[ $succeeded != "$CALLS" || -z $instructions ]]; then
    echo "instructions.sh: $name: $succeeded of $CALLS calls answered, count '$instructions'" >&2
    return 1
  fi
  echo $((instructions / CALLS))
}

echo "== instructions per call, h2load -c $CONNECTIONS -m $STREAMS, Unix socket, $CALLS calls"
empty=$(measure empty "$work/empty_server" --api=async --unix_socket="$socket" \
  --tcp_address=127.0.0.1:0)
printf '%-40s %8d\n' "empty async handler" "$empty"
read -r -a extra <<<"${SIDECARS:-}"
sidecars=("$work/secret-resolver" "${extra[@]}")
for i in "${!sidecars[@]}"; do
  own=$(measure "sidecar-$i" "${sidecars[$i]}" --config="$state/config.yaml")
  label="sidecar (this tree)"
  if ((i > 0)); then label=${sidecars[$i]}; fi
  awk -v n="$label" -v s="$own" -v e="$empty" 'BEGIN { printf "%-40s %8d  %.2fx\n", n, s, s / e }'
done
