#!/usr/bin/env bash
# Benchmarks `capstan node drain` against `kubectl drain` side by side on a throwaway local
# control plane (`capstan local up` in a temp dir; your kubeconfig is never touched):
#   one node   a Node with 200 pods, drained with --force --grace-period=0
#   four nodes 4 Nodes with 50 pods each, drained in one command (capstan drains them in
#              parallel, kubectl one after the other)
# Each side gets its own fresh Nodes and namespace with the same pods. There is no scheduler
# and no kubelet: pods are created bound to their Node, and grace period 0 lets the API server
# remove them at once, as a kubelet would finish a deletion.
# Times are wall-clock seconds around the single drain command. "requests" is the requests the
# tool sent: capstan's own count from its JSON output, kubectl's counted from its -v=6 log.
#
# Run from anywhere:   benches/drain.sh
#   CAPSTAN=path       capstan binary [default: ${CARGO_TARGET_DIR:-target}/release/capstan,
#                      built with `cargo build --release -p capstan-cli` when missing]
#   BENCH_OUT=file     also write the Markdown table there
#   RUNS=1             runs per scenario and side (the table shows the median)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
RUNS="${RUNS:-1}"
# shellcheck source=benches/plane.sh
source benches/plane.sh

# setup NAME NODES PODS: namespace NAME, Nodes NAME-1..NODES, PODS pods bound to each.
setup() {
  local name="$1" nodes="$2" pods="$3"
  "$kubectl" create namespace "$name" >/dev/null
  # Pods are admitted once the namespace's default service account exists.
  until "$kubectl" -n "$name" get serviceaccount default >/dev/null 2>&1; do sleep 0.2; done
  awk -v ns="$name" -v nodes="$nodes" -v pods="$pods" 'BEGIN {
    for (n = 1; n <= nodes; n++) {
      printf "---\napiVersion: v1\nkind: Node\nmetadata: {name: %s-%d}\n", ns, n
      for (p = 1; p <= pods; p++) {
        printf "---\napiVersion: v1\nkind: Pod\nmetadata: {name: pod-%d-%03d, namespace: %s}\n", n, p, ns
        printf "spec: {nodeName: %s-%d, automountServiceAccountToken: false, containers: [{name: main, image: none}]}\n", ns, n
      } } }' >"$tmp/$name.yaml"
  "$kubectl" apply -f "$tmp/$name.yaml" >/dev/null
}

node_names() { seq 1 "$2" | sed "s/^/$1-/"; }

# timed OUT CMD...: runs CMD with stdout to OUT and stderr to OUT.err; sets $secs.
timed() {
  local out="$1" t0 t1 rc=0
  shift
  t0="$(date +%s.%N)"
  "$@" >"$out" 2>"$out.err" || rc=$?
  t1="$(date +%s.%N)"
  if [ "$rc" -ne 0 ]; then
    say "command failed (exit $rc): $*"
    tail -n 20 "$out.err" >&2
    exit 1
  fi
  secs="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')"
}

left() { "$kubectl" -n "$1" get pods --no-headers 2>/dev/null | wc -l; }

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
declare -A col
add() { col[$1]+="$2"$'\n'; }
med() { printf '%s' "${col[$1]:-}" | median; }

# scenario KEY NODES PODS: one run of each side on fresh objects.
scenario() {
  local key="$1" nodes="$2" pods="$3" run="$4" ns
  ns="c-$key-$run"
  setup "$ns" "$nodes" "$pods"
  mapfile -t names < <(node_names "$ns" "$nodes")
  timed "$tmp/$ns.json" "$capstan" node drain "${names[@]}" --force --grace-period 0 -o json
  jq -e '[.items[].outcome] | all(. == "drained")' "$tmp/$ns.json" >/dev/null ||
    die "capstan did not drain: $(jq -c '[.items[] | {outcome, error}]' "$tmp/$ns.json")"
  [ "$(left "$ns")" -eq 0 ] || die "capstan left pods in $ns"
  add "$key.capstan.s" "$secs"; add "$key.capstan.r" "$(jq .requests "$tmp/$ns.json")"

  ns="k-$key-$run"
  setup "$ns" "$nodes" "$pods"
  mapfile -t names < <(node_names "$ns" "$nodes")
  timed "$tmp/$ns.out" "$kubectl" drain "${names[@]}" --force --grace-period=0 -v=6
  [ "$(left "$ns")" -eq 0 ] || die "kubectl left pods in $ns"
  add "$key.kubectl.s" "$secs"
  add "$key.kubectl.r" "$(grep -cE '(GET|POST|PUT|PATCH|DELETE) https?://' "$tmp/$ns.out.err")"
}

for run in $(seq 1 "$RUNS"); do
  say "run $run: 1 node with 200 pods"
  scenario one 1 200 "$run"
  say "run $run: 4 nodes with 50 pods each"
  scenario four 4 50 "$run"
done

row() {
  local c k
  c="$(med "$2.capstan.s")"
  k="$(med "$2.kubectl.s")"
  printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "$c" "$k" \
    "$(awk -v c="$c" -v k="$k" 'BEGIN { printf "%.2f", k / c }')" \
    "$(med "$2.capstan.r")" "$(med "$2.kubectl.r")"
}
table="$(
  printf '| drain (median of %s) | capstan s | kubectl s | ratio kubectl/capstan | capstan requests | kubectl requests |\n' "$RUNS"
  printf '|---|---:|---:|---:|---:|---:|\n'
  row "1 node, 200 pods, grace 0" one
  row "4 nodes, 50 pods each, grace 0" four
)"
printf '%s\n' "$table"
if [ -n "${BENCH_OUT:-}" ]; then printf '%s\n' "$table" >"$BENCH_OUT"; fi
