#!/usr/bin/env bash
# Renders each Kubernetes overlay with `kubectl kustomize`, validates every object against the
# Kubernetes schema and checks the deployment invariants (tests/deploy/validate_manifests.js,
# which also breaks each invariant on purpose to see it reported), checks the alert rules'
# metric names against the sidecar's source, and runs `secret-resolver --check-config` on each
# overlay's sidecar configuration. Offline: the Node packages come from
# tests/deploy/node_modules, which `tools/dev setup` installs with `npm ci` from the committed
# package-lock.json.
#
# Arguments (from tests/deploy/BUILD): VALIDATOR PACKAGE_LOCK SIDECAR SIDECAR_SOURCE ALERTS
#   KUSTOMIZATION_FILE...  (every file under deploy/kubernetes/)
set -euo pipefail

validator=$(realpath "$1")
lock=$(realpath "$2")
sidecar=$(realpath "$3")
sidecar_source=$(realpath "$4")
alerts=$(realpath "$5")
shift 5

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# The Node packages live beside the real (source tree) package-lock.json: Bazel knows the lock
# file as an input, so a change of versions reruns the test; the installed tree must match it.
node_modules=$(dirname "$lock")/node_modules
if ! cmp -s "$lock" "$node_modules/.installed-lock"; then
  fail "$node_modules is missing or does not match tests/deploy/package-lock.json: run tools/dev setup"
fi
command -v node >/dev/null || fail "node is not installed"
command -v kubectl >/dev/null || fail "kubectl (with kustomize) is not installed"
echo "kubectl: $(kubectl version --client 2>/dev/null | tr '\n' ' ')"

# kustomize refuses files that resolve outside the kustomization root, and the runfiles are
# symbolic links into the source tree: copy the manifests (dereferenced) first.
work=$(mktemp -d "${TEST_TMPDIR:-/tmp}/manifests.XXXXXX")
trap 'rm -rf "$work"' EXIT
for f in "$@"; do
  rel=${f#*deploy/kubernetes/}
  install -D -m 644 "$(realpath "$f")" "$work/kubernetes/$rel"
done

renders=()
for overlay in embedded postgres tiered; do
  [[ -f $work/kubernetes/overlays/$overlay/kustomization.yaml ]] || fail "no overlay $overlay"
  kubectl kustomize "$work/kubernetes/overlays/$overlay" >"$work/$overlay.yaml" ||
    fail "kubectl kustomize overlays/$overlay failed"
  renders+=("$overlay=$work/$overlay.yaml")
done

mkdir -p "$work/configs"
NODE_PATH=$node_modules node "$validator" --alerts "$alerts" --metrics-source "$sidecar_source" \
  --config-out "$work/configs" "${renders[@]}"

# tiered: the workload pods' sidecars on store.upstream; tiered-central: its central tier.
for overlay in embedded postgres tiered tiered-central; do
  "$sidecar" --config="$work/configs/$overlay.yaml" --check-config >/dev/null ||
    fail "secret-resolver --check-config rejects the $overlay overlay's configuration"
  echo "ok: secret-resolver --check-config accepts the $overlay overlay's configuration"
done
