#!/usr/bin/env bash
# The runtime image's file set, tested without a container engine: deploy/docker/assemble-runtime.sh
# assembles the real binaries and the libraries they need into a directory, and the sidecar and
# secretctl run with that directory as their root, as a container would run them: in new user,
# mount and PID namespaces (`unshare --map-user=65532 --pid --fork --mount-proc --root=DIR`), as
# the image's non-root user 65532, as PID 1, with /proc and nothing else of the host. So no
# library or file of the host can be picked up, and a library missing from the set fails the
# test.
#
# Checks: secretctl creates an embedded SQLite store, a KEK, a development signing key and a
# secret inside the root; the sidecar passes --check-config and starts; its Unix socket appears
# inside the root with mode 0660; from outside the root, grpc.health.v1.Health/Check is SERVING
# and ResolveSecrets returns the stored value (tests/deploy/runtime_probe.cc); /readyz on the
# admin port answers 200; SIGTERM stops it with status 0 and removes the socket. Finally one
# library is taken out of the set, and the sidecar must then fail to start.
#
# Arguments (from tests/deploy/BUILD): ASSEMBLE_SCRIPT SIDECAR SECRETCTL PROBE
set -euo pipefail

assemble=$(realpath "$1")
sidecar=$(realpath "$2")
secretctl=$(realpath "$3")
probe=$(realpath "$4")

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

if ! unshare --user --map-user=65532 --map-group=65532 --mount --pid --fork --mount-proc true \
  2>/dev/null; then
  fail "this machine does not allow user, mount and PID namespaces (unshare); the test needs them"
fi

# The socket path must stay short (sun_path is 108 bytes), so the work directory is under /tmp
# rather than under $TEST_TMPDIR.
work=$(mktemp -d /tmp/secret-resolver-deploy.XXXXXX)
unshare_pid=""
cleanup() {
  # unshare ignores SIGTERM while it waits; SIGKILL it, and --kill-child takes the sidecar along.
  if [[ -n $unshare_pid ]]; then kill -KILL "$unshare_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

root=$work/root
"$assemble" "$root" "$sidecar" "$secretctl"
[[ -x $root/usr/local/bin/secret-resolver && -x $root/usr/local/bin/secretctl ]] ||
  fail "the assembled root lacks the binaries"
if [[ -f /etc/ssl/certs/ca-certificates.crt && ! -s $root/etc/ssl/certs/ca-certificates.crt ]]; then
  fail "the CA bundle (for auth.jwks_url and PostgreSQL TLS) is not in the assembled set"
fi
echo "assembled: $(find "$root" -type f | wc -l) files, $(du -sh "$root" | cut -f1)"

# Runs a command inside the root as uid/gid 65532, PID 1 of its own PID namespace with its own
# /proc, with an empty environment. unshare forks, waits and exits with the command's status.
mkdir -p "$root/proc"
ns=(env -i unshare --user --map-user=65532 --map-group=65532 --mount --pid --fork --kill-child
  --root="$root" --mount-proc)
in_root() {
  "${ns[@]}" "$@"
}

# The image's layout: configuration and keys in /etc/secret-resolver, the store in
# /var/lib/secret-resolver, the socket in /run/secret-resolver.
mkdir -p "$root/etc/secret-resolver" "$root/var/lib/secret-resolver" "$root/run/secret-resolver"
ctl=/usr/local/bin/secretctl
in_root $ctl init --store sqlite:/var/lib/secret-resolver/secrets.db \
  --kek-file /etc/secret-resolver/kek --kek-id kek-test >/dev/null
in_root $ctl dev-key --private-key /etc/secret-resolver/dev-signing.pem \
  --jwks /etc/secret-resolver/jwks.json >/dev/null
(umask 077 && head -c 32 /dev/urandom | base64 -w0 >"$root/etc/secret-resolver/fingerprint.key")
(umask 077 && head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$root/etc/secret-resolver/value")
in_root $ctl create --store sqlite:/var/lib/secret-resolver/secrets.db \
  --kek-file /etc/secret-resolver/kek --stack stacks-1 --name workflows/http/auth-token \
  --decrypter grafana-workflows --value-file /etc/secret-resolver/value >/dev/null
# No USER variable in the root: the actor comes from /etc/passwd of the assembled set.
in_root $ctl get --store sqlite:/var/lib/secret-resolver/secrets.db \
  --kek-file /etc/secret-resolver/kek --stack stacks-1 --name workflows/http/auth-token --json \
  >"$work/get.json"
grep -q '"updated_by": *"nonroot@' "$work/get.json" ||
  fail "secretctl did not find user 65532 in the assembled /etc/passwd: $(cat "$work/get.json")"
in_root $ctl dev-token --private-key /etc/secret-resolver/dev-signing.pem \
  --issuer https://identity.test --audience secret-resolver --stack stacks-1 \
  --service grafana-workflows >"$work/token"

cat >"$root/etc/secret-resolver/config.yaml" <<'YAML'
listen:
  unix_socket: /run/secret-resolver/resolver.sock
store:
  sqlite:
    path: /var/lib/secret-resolver/secrets.db
  kek:
    env: SECRET_RESOLVER_KEK
auth:
  issuer: https://identity.test
  audience: secret-resolver
  jwks_file: /etc/secret-resolver/jwks.json
redaction:
  fingerprint_key_env: SECRET_RESOLVER_FINGERPRINT_KEY
admin:
  address: "127.0.0.1:0"
shutdown_grace: 2s
YAML

in_root /usr/local/bin/secret-resolver --config=/etc/secret-resolver/config.yaml --check-config \
  >/dev/null || fail "--check-config rejected the configuration"

# The keys come in as environment variables, as deploy/kubernetes passes them from a Secret.
# Not through in_root, which would put a subshell in between: $! is unshare itself (env execs
# it), and the sidecar is its child (PID 1 inside, as in a pod), found below.
env -i SECRET_RESOLVER_KEK="$(cat "$root/etc/secret-resolver/kek")" \
  SECRET_RESOLVER_FINGERPRINT_KEY="$(cat "$root/etc/secret-resolver/fingerprint.key")" \
  "${ns[@]:2}" /usr/local/bin/secret-resolver --config=/etc/secret-resolver/config.yaml \
  2>"$work/sidecar.log" &
unshare_pid=$!

socket=$root/run/secret-resolver/resolver.sock
for _ in $(seq 300); do
  [[ -S $socket ]] && grep -q '"msg":"serving"' "$work/sidecar.log" && break
  kill -0 "$unshare_pid" 2>/dev/null || break
  sleep 0.1
done
if [[ ! -S $socket ]] || ! grep -q '"msg":"serving"' "$work/sidecar.log"; then
  cat "$work/sidecar.log" >&2
  fail "the sidecar did not start from the assembled root"
fi
mode=$(stat -c %a "$socket")
[[ $mode == 660 ]] || fail "socket mode is $mode, want 660"

# From outside the root. gRPC takes a path relative to the working directory, which keeps the
# address short.
(cd "$(dirname "$socket")" && "$probe" resolver.sock "$work/token" \
  "$root/etc/secret-resolver/value") || { cat "$work/sidecar.log" >&2; fail "probe failed"; }

admin=$(sed -n 's/.*"admin":"\([^"]*\)".*/\1/p' "$work/sidecar.log" | head -1)
port=${admin##*:}
[[ $port =~ ^[0-9]+$ ]] || fail "no admin address in the serving line: $admin"
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
status_line=$(head -1 <&3 | tr -d '\r')
exec 3<&-
[[ $status_line == *" 200"* ]] || fail "/readyz answered: $status_line"
echo "readyz: $status_line"

# SIGTERM to the sidecar itself, as the kubelet sends it to a container's PID 1.
sidecar_pid=$(awk '{print $1}' "/proc/$unshare_pid/task/$unshare_pid/children")
[[ -n $sidecar_pid ]] || fail "cannot find the sidecar process under unshare $unshare_pid"
kill -TERM "$sidecar_pid"
status=0
wait "$unshare_pid" || status=$?
unshare_pid=""
[[ $status == 0 ]] || { cat "$work/sidecar.log" >&2; fail "sidecar exited with $status on SIGTERM"; }
[[ ! -e $socket ]] || fail "the socket was not removed on exit"
grep -q '"msg":"stopped"' "$work/sidecar.log" || fail "no 'stopped' line in the log"

# The isolation is real: without one of its libraries the sidecar cannot start in the root.
lib=$(find "$root" -name 'libyaml-cpp.so.*' -type f | head -1)
[[ -n $lib ]] || fail "libyaml-cpp is not in the assembled set"
mv "$lib" "$work/aside"
if in_root /usr/local/bin/secret-resolver --config=/etc/secret-resolver/config.yaml \
  --check-config >/dev/null 2>"$work/missing.log"; then
  fail "the sidecar ran without libyaml-cpp: the root is not isolated from the host"
fi
grep -q "error while loading shared libraries" "$work/missing.log" ||
  fail "unexpected failure without libyaml-cpp: $(cat "$work/missing.log")"
mv "$work/aside" "$lib"

echo "PASS: the sidecar starts and serves from the assembled runtime file set alone"
