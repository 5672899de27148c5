# Sourced by the bench scripts: finds kubectl and capstan (building a release capstan when
# CAPSTAN is unset and none is there), and starts a throwaway local control plane in a temp
# dir that is stopped and removed on exit. Sets $kubectl, $capstan, $tmp and KUBECONFIG, and
# defines say and die.
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
