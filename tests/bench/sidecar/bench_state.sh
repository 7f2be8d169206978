# shellcheck shell=bash disable=SC2154
# Sourced by run.sh and instructions.sh: the state both benchmarks serve from. Needs $ctl (the
# secretctl binary), $tool (bench_tool) and $work (a private temporary directory).

# One state directory $1: KEK, fingerprint key, development signing key, store, and a config
# listening on $dir/resolver.sock and TCP port $2 (0: any), with SIDECAR_YAML appended.
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
  printf '%b\n' "${SIDECAR_YAML:-}" >>"$dir/config.yaml"
}

# The three random secrets bench/secret-{a,b,c} of stack stacks-1 in state $1, a two-hour token
# for grafana-workflows in $work/token, and the ResolveSecrets request naming them in
# $work/request.bin.
add_bench_secrets() {
  local dir=$1
  for s in a b c; do
    (umask 077 && openssl rand -hex 16 >"$work/value")
    "$ctl" create --store "sqlite:$dir/secrets.db" --kek-file "$dir/kek" --stack stacks-1 \
      --name "bench/secret-$s" --decrypter grafana-workflows --value-file "$work/value" \
      --trim-newline >/dev/null
  done
  rm -f "$work/value"
  (umask 077 && "$ctl" dev-token --private-key "$dir/dev.pem" --issuer https://bench.test \
    --audience secret-resolver --stack stacks-1 --service grafana-workflows --ttl-seconds 7200 \
    >"$work/token")
  "$tool" request --stack=stacks-1 --out="$work/request.bin"
}
