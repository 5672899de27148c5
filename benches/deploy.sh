#!/usr/bin/env bash
# Benchmarks `capstan deploy` against `kubectl apply --server-side` side by side on a throwaway
# local control plane (`capstan local up` in a temp dir; your kubeconfig is never touched):
#   first deploy  1,000 ConfigMaps into an empty namespace (3 runs, fresh namespaces, median)
#   redeploy      the same 1,000 unchanged ConfigMaps again (5 runs, median); capstan must
#                 report summary.unchanged == 1000
#   prune scan    `capstan prune --dry-run` with 40 extra CRDs installed (3 runs, median)
# Times are wall-clock seconds (`date +%s.%N`) around each single command. "requests" is the
# total capstan reports in its JSON output; "cm writes" counts POST/PUT/PATCH/APPLY/DELETE
# requests on configmaps the apiserver saw during the step (from its /metrics).
#
# Run from anywhere:   benches/deploy.sh
#   CAPSTAN=path       capstan binary [default: ${CARGO_TARGET_DIR:-target}/release/capstan,
#                      built with `cargo build --release -p capstan-cli` when missing]
#   BENCH_OUT=file     also write the Markdown table there
#   N=1000             number of ConfigMaps
#   CONCURRENCY=8      capstan deploy --concurrency
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
N="${N:-1000}"
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
KUBECONFIG="$("$capstan" local status --dir "$tmp/local" -o json | jq -er .cluster_kubeconfig)"
"$kubectl" version --short 2>/dev/null | sed 's/^/bench: /' >&2 || true

# One multi-document stream of $N ConfigMaps (4 keys, ~200 bytes of data each) for namespace $1.
gen() {
  awk -v n="$N" -v ns="$1" 'BEGIN { for (i = 1; i <= n; i++) {
    printf "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-%04d\n  namespace: %s\n", i, ns
    printf "data:\n  host: service-%04d.%s.svc.cluster.local\n  port: \"%d\"\n", i, ns, 8000 + i
    printf "  message: the quick brown fox jumps over the lazy dog, config number %04d\n", i
    printf "  flags: verbose=true,retries=3,timeout=30s,mode=benchmark,shard=%d\n", i % 16 } }' \
    >"$tmp/cms-$1.yaml"
}

# Sum of apiserver_request_total for writes on configmaps.
cm_writes() {
  "$kubectl" get --raw /metrics | awk '/^apiserver_request_total\{/ && /resource="configmaps"/ &&
    /verb="(POST|PUT|PATCH|APPLY|DELETE|DELETECOLLECTION)"/ { s += $NF } END { printf "%d\n", s }'
}

# timed OUTFILE CMD...: runs CMD with stdout to OUTFILE; sets $secs and $writes (configmaps).
timed() {
  local out="$1" w0 t0 t1 rc=0
  shift
  w0="$(cm_writes)"
  t0="$(date +%s.%N)"
  "$@" >"$out" 2>"$out.err" || rc=$?
  t1="$(date +%s.%N)"
  writes=$(($(cm_writes) - w0))
  if [ "$rc" -ne 0 ]; then
    say "command failed (exit $rc): $*"
    cat "$out.err" >&2
    head -c 4000 "$out" >&2
    exit 1
  fi
  secs="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')"
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# check FILE JQ-EXPR: fails loudly, with capstan's summary, when the expression is not true.
check() {
  jq -e "$2" "$1" >/dev/null || die "unexpected capstan output ($2 is false): $(jq -c '{summary, requests, succeeded, unavailableApis}' "$1")"
}

deploy() { "$capstan" deploy -f "$tmp/cms-$1.yaml" --discriminator bench --yes --concurrency "${CONCURRENCY:-8}" -o json; }
kapply() { "$kubectl" apply --server-side -f "$tmp/cms-$1.yaml"; }

declare -A col # col[scenario.field] = list of samples, one per line
add() { col[$1]+="$2"$'\n'; }

say "first deploy of $N ConfigMaps (3 runs)"
for i in 1 2 3; do
  "$kubectl" create namespace "a$i" >/dev/null
  "$kubectl" create namespace "b$i" >/dev/null
  gen "a$i"
  gen "b$i"
  timed "$tmp/first-a$i.json" deploy "a$i"
  check "$tmp/first-a$i.json" ".summary.create == $N and .summary.errors == 0 and .succeeded"
  add first.cs "$secs"; add first.cw "$writes"; add first.cr "$(jq .requests "$tmp/first-a$i.json")"
  timed "$tmp/first-b$i.out" kapply "b$i"
  add first.ks "$secs"; add first.kw "$writes"
done

say "redeploy of $N unchanged ConfigMaps (5 runs)"
for i in 1 2 3 4 5; do
  timed "$tmp/re-a$i.json" deploy a3
  check "$tmp/re-a$i.json" ".summary.unchanged == $N and .summary.create == 0 and .summary.update == 0 and .summary.errors == 0"
  add re.cs "$secs"; add re.cw "$writes"; add re.cr "$(jq .requests "$tmp/re-a$i.json")"
  timed "$tmp/re-b$i.out" kapply b3
  add re.ks "$secs"; add re.kw "$writes"
done

say "installing 40 CRDs"
for i in $(seq 1 40); do
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
# Only a3 may hold objects with the discriminator, or the prune scan finds a1's and a2's as orphans.
"$kubectl" delete namespace a1 a2 --wait --timeout=120s >/dev/null
sleep 2 # let discovery settle

say "prune scan with 40 CRDs (3 runs)"
for i in 1 2 3; do
  timed "$tmp/prune$i.json" "$capstan" prune -f "$tmp/cms-a3.yaml" --discriminator bench --dry-run -o json
  check "$tmp/prune$i.json" ".summary.errors == 0 and .summary.prune == 0 and (.orphans | length) == 0"
  add prune.cs "$secs"; add prune.cw "$writes"; add prune.cr "$(jq .requests "$tmp/prune$i.json")"
done

med() { printf '%s' "${col[$1]:-}" | median; }
row() { # scenario key
  local cs ks ratio kw
  cs="$(med "$2.cs")" ks="$(med "$2.ks")" kw="$(med "$2.kw")"
  ratio="$(awk -v c="$cs" -v k="$ks" 'BEGIN { printf (k == "" ? "n/a" : "%.2f"), k / c }')"
  printf '| %s | %s | %s | %s | %s | %s / %s |\n' "$1" "$cs" "${ks:-n/a}" "$ratio" "$(med "$2.cr")" "$(med "$2.cw")" "${kw:-n/a}"
}
for k in "${!col[@]}"; do say "samples $k: $(printf '%s' "${col[$k]}" | tr '\n' ' ')"; done
table="$(
  printf '| scenario (median) | capstan s | kubectl s | ratio kubectl/capstan | capstan requests | cm writes capstan / kubectl |\n'
  printf '|---|---:|---:|---:|---:|---:|\n'
  row "first deploy, $N ConfigMaps (3 runs)" first
  row "redeploy, $N unchanged (5 runs)" re
  row "prune scan --dry-run, 40 CRDs (3 runs)" prune
)"
printf '%s\n' "$table"
if [ -n "${BENCH_OUT:-}" ]; then printf '%s\n' "$table" >"$BENCH_OUT"; fi
