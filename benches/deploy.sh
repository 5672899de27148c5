#!/usr/bin/env bash
# Benchmarks `capstan deploy` against `kubectl apply --server-side` side by side on a throwaway
# local control plane (`capstan local up` in a temp dir; your kubeconfig is never touched):
#   first deploy  1,000 ConfigMaps into an empty namespace (3 runs, fresh namespaces, median),
#                 verified (every create dry-run before the first write: the default) and with
#                 --no-verify
#   redeploy      the same 1,000 unchanged ConfigMaps again (5 runs, median); capstan must
#                 report summary.unchanged == 1000
#   prune scan    `capstan prune --dry-run` with 40 extra CRDs installed (3 runs, median)
# Times are wall-clock seconds (`date +%s.%N`) around each single command. "requests" is the
# total capstan reports in its JSON output; "cm writes" counts POST/PUT/PATCH/APPLY/DELETE
# requests on configmaps the apiserver saw during the step (from its /metrics). "server CPU" is
# the CPU time etcd, kube-apiserver and kube-controller-manager spent during the command (from
# /proc/PID/stat), "client CPU" the command's own; the "floor" is all of it spread over the
# machine's cores: no client can finish the same work faster on this machine.
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
# shellcheck source=benches/plane.sh
source benches/plane.sh
mapfile -t server_pids < <("$capstan" local status --dir "$tmp/local" -o json | jq -r '.components[].pid')

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

# timed OUTFILE CMD...: runs CMD with stdout to OUTFILE; sets $secs, $writes (configmaps),
# $server (control-plane CPU seconds), $client (the command's CPU seconds) and $floor.
timed() {
  local out="$1" w0 t0 t1 c0 c1 rc=0
  shift
  w0="$(cm_writes)"
  c0="$(server_cpu)"
  t0="$(date +%s.%N)"
  { TIMEFORMAT='%U %S'; time "$@" >"$out" 2>"$out.err"; } 2>"$out.time" || rc=$?
  t1="$(date +%s.%N)"
  c1="$(server_cpu)"
  writes=$(($(cm_writes) - w0))
  server="$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.3f", b - a }')"
  client="$(awk '{ printf "%.3f", $1 + $2 }' "$out.time")"
  floor="$(awk -v s="$server" -v c="$client" -v n="$cores" 'BEGIN { printf "%.3f", (s + c) / n }')"
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

deploy() { "$capstan" deploy -f "$tmp/cms-$1.yaml" --discriminator bench --yes --concurrency "${CONCURRENCY:-8}" -o json "${@:2}"; }
kapply() { "$kubectl" apply --server-side -f "$tmp/cms-$1.yaml"; }

declare -A col # col[scenario.field] = list of samples, one per line
add() { col[$1]+="$2"$'\n'; }

# sample KEY: records the last timed command's wall time, CPU and floor under KEY.
sample() {
  add "$1.s" "$secs"; add "$1.w" "$writes"; add "$1.server" "$server"; add "$1.client" "$client"
  add "$1.floor" "$floor"
  add "$1.over" "$(awk -v w="$secs" -v f="$floor" 'BEGIN { printf "%.2f", w / f }')"
}

say "first deploy of $N ConfigMaps, verified, unverified and kubectl (3 runs each)"
for i in 1 2 3; do
  for side in a u b; do "$kubectl" create namespace "$side$i" >/dev/null; gen "$side$i"; done
  timed "$tmp/first-a$i.json" deploy "a$i"
  check "$tmp/first-a$i.json" ".summary.create == $N and .summary.errors == 0 and .succeeded"
  sample verified; add verified.r "$(jq .requests "$tmp/first-a$i.json")"
  timed "$tmp/first-u$i.json" deploy "u$i" --no-verify
  check "$tmp/first-u$i.json" ".summary.create == $N and .summary.errors == 0 and .succeeded"
  sample unverified; add unverified.r "$(jq .requests "$tmp/first-u$i.json")"
  timed "$tmp/first-b$i.out" kapply "b$i"
  sample kubectl
done
# Only a3 may hold objects with the discriminator, or later scans find the others' as orphans.
"$kubectl" delete namespace a1 a2 u1 u2 u3 --wait --timeout=180s >/dev/null

say "redeploy of $N unchanged ConfigMaps (5 runs)"
for i in 1 2 3 4 5; do
  timed "$tmp/re-a$i.json" deploy a3
  check "$tmp/re-a$i.json" ".summary.unchanged == $N and .summary.create == 0 and .summary.update == 0 and .summary.errors == 0"
  sample redeploy; add redeploy.r "$(jq .requests "$tmp/re-a$i.json")"
  timed "$tmp/re-b$i.out" kapply b3
  sample rekubectl
done

install_crds 40
sleep 2 # let discovery settle

say "prune scan with 40 CRDs (3 runs)"
for i in 1 2 3; do
  timed "$tmp/prune$i.json" "$capstan" prune -f "$tmp/cms-a3.yaml" --discriminator bench --dry-run -o json
  check "$tmp/prune$i.json" ".summary.errors == 0 and .summary.prune == 0 and (.orphans | length) == 0"
  sample prune; add prune.r "$(jq .requests "$tmp/prune$i.json")"
done

med() { printf '%s' "${col[$1]:-}" | median; }
# row LABEL KEY [PEER]: one scenario; the ratio is PEER's wall time over KEY's.
row() {
  local s ratio="n/a" peer=""
  s="$(med "$2.s")"
  if [ -n "${3:-}" ]; then
    peer="$(med "$3.s")"
    ratio="$(awk -v c="$s" -v k="$peer" 'BEGIN { printf "%.2f", k / c }')"
  fi
  printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$s" "${peer:-n/a}" "$ratio" \
    "$(med "$2.server")" "$(med "$2.client")" "$(med "$2.floor")" "$(med "$2.over")" \
    "$(med "$2.r")" "$(med "$2.w")"
}
for k in "${!col[@]}"; do say "samples $k: $(printf '%s' "${col[$k]}" | tr '\n' ' ')"; done
table="$(
  printf '| scenario (median) | capstan s | kubectl s | ratio kubectl/capstan | server CPU s | client CPU s | floor s | wall/floor | capstan requests | cm writes |\n'
  printf '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n'
  row "first deploy, $N ConfigMaps, verified (3 runs)" verified kubectl
  row "first deploy, $N ConfigMaps, --no-verify (3 runs)" unverified kubectl
  row "kubectl apply --server-side, $N ConfigMaps (3 runs)" kubectl
  row "redeploy, $N unchanged (5 runs)" redeploy rekubectl
  row "kubectl apply --server-side, $N unchanged (5 runs)" rekubectl
  row "prune scan --dry-run, 40 CRDs (3 runs)" prune
)"
printf '%s\n' "$table"
if [ -n "${BENCH_OUT:-}" ]; then printf '%s\n' "$table" >"$BENCH_OUT"; fi
