#!/usr/bin/env bash
# The sidecar binary's own lines on stderr (server/main.cc): a configuration it refuses is one
# JSON log line, valid JSON whatever bytes the file held (a quote, a backslash, a byte that is
# not UTF-8), naming the field and the problem, and the exit status is 2; a valid one passes
# --check-config with status 0.
#
# Arguments (from tests/server/BUILD): SIDECAR
set -euo pipefail

sidecar=$(realpath "$1")
work=$(mktemp -d "${TEST_TMPDIR:-/tmp}/command_line.XXXXXX")
trap 'rm -rf "$work"' EXIT

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

printf '%s\n' "listen:" "  unix_socket: $work/sr.sock" "  tcp_address: 127.0.0.1:50051" \
  "store:" "  sqlite: {path: $work/sr.db}" "  kek: {file: $work/kek}" \
  "auth:" "  issuer: https://issuer.test" "  audience: secret-resolver" \
  "  jwks_file: $work/jwks.json" "redaction:" "  fingerprint_key_file: $work/fp.key" \
  >"$work/config.yaml"

out=$("$sidecar" --config="$work/config.yaml" --check-config 2>"$work/stderr") ||
  fail "a valid configuration was refused: $(cat "$work/stderr")"
[[ $out == "configuration OK" ]] || fail "--check-config printed: $out"
echo "ok: a valid configuration passes --check-config"

# An address with no port holding ', \, " and the byte 0xff (from the flag: yaml-cpp would
# have made the byte U+FFFD).
status=0
"$sidecar" --config="$work/config.yaml" --tcp-address="it's\\\"$(printf '\xff')" --check-config \
  >/dev/null 2>"$work/stderr" || status=$?
[[ $status == 2 ]] || fail "exit status $status for an invalid configuration, expected 2"
/usr/bin/python3 - "$work/stderr" <<'PY' || fail "stderr is not one JSON line naming the problem"
import json, sys
lines = open(sys.argv[1], "rb").read().decode("utf-8").splitlines()
assert len(lines) == 1, lines
line = json.loads(lines[0])
assert line["level"] == "error" and line["msg"] == "invalid configuration", line
expected = 'listen.tcp_address: "it\\\'s\\\\\\"\\xff" is not host:port (the port is missing)'
assert expected in line["error"], (expected, line["error"])
PY
echo "ok: an invalid configuration is one JSON line with the escaped value, exit status 2"
