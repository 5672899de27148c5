# Sourced by the bench scripts: finds kubectl and capstan (building a release capstan when
# CAPSTAN is unset and none is there), and starts a throwaway local control plane in a temp
# dir that is stopped and removed on exit. Sets $kubectl, $capstan, $tmp and KUBECONFIG, and
# defines say, die, server_cpu and install_crds.
KUBEBUILDER_ASSETS="$(scripts/envtest.sh)"
export KUBEBUILDER_ASSETS
kubectl="$KUBEBUILDER_ASSETS/kubectl"
capstan="${CAPSTAN:-${CARGO_TARGET_DIR:-target}/release/capstan}"
if [ -z "${CAPSTAN:-}" ] && [ ! -x "$capstan" ]; then
  cargo build --release -p capstan-cli >&2
fi
capstan="$(realpath "$capstan")"

command -v jq >/dev/null || { echo "bench: needs jq (apt-get install jq)" >&2; exit 1; }
say() { printf 'bench: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

tmp="$(mktemp -d)"
export HOME="$tmp/home" XDG_STATE_HOME="$tmp/state" KUBECONFIG="$tmp/kubeconfig"
mkdir -p "$HOME"
cleanup() {
  "$capstan" local down --dir "$tmp/local" >/dev/null 2>&1 || say "capstan local down failed"
  rm -rf "$tmp"
}
trap cleanup EXIT

say "starting the local control plane in $tmp/local"
"$capstan" local up --dir "$tmp/local" --no-switch >/dev/null
KUBECONFIG="$("$capstan" local status --dir "$tmp/local" -o json | jq -er .clusterKubeconfig)"
"$kubectl" version --short 2>/dev/null | sed 's/^/bench: /' >&2 || true

cores="$(nproc)"
ticks="$(getconf CLK_TCK)"
# server_cpu: CPU seconds the processes in $server_pids (the control planes') have used so far.
server_cpu() {
  local pid total=0
  for pid in "${server_pids[@]}"; do
    total=$((total + $(awk '{ print $14 + $15 }' "/proc/$pid/stat")))
  done
  awk -v t="$total" -v hz="$ticks" 'BEGIN { printf "%.3f", t / hz }'
}

# install_crds N: N CRDs of a group each (thing<i>s.bench<i>.example.com), Established, for the
# prune-scan benchmarks.
install_crds() {
  say "installing $1 CRDs"
  local i
  for i in $(seq 1 "$1"); do
    cat <<EOF
---
{apiVersion: apiextensions.k8s.io/v1, kind: CustomResourceDefinition,
 metadata: {name: thing${i}s.bench${i}.example.com}, spec: {group: bench${i}.example.com, scope: Namespaced,
 names: {plural: thing${i}s, singular: thing${i}, kind: Thing${i}, listKind: Thing${i}List},
 versions: [{name: v1, served: true, storage: true,
   schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}]}}
EOF
  done >"$tmp/crds.yaml"
  "$kubectl" apply -f "$tmp/crds.yaml" >/dev/null
  "$kubectl" wait --for condition=established --timeout=120s crd --all >/dev/null
}
