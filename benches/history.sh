#!/usr/bin/env bash
# Benchmarks deployment history on a throwaway local control plane (`capstan local up` in a temp
# dir; your kubeconfig is never touched):
#   first deploy   1,000 ConfigMaps into an empty namespace, with history (the default) and with
#                  `history: {keep: 0}` (3 runs each, fresh namespaces and projects, median)
#   no-op redeploy the same stage again (5 runs): writes on configmaps and secrets the apiserver
#                  saw, which must be 0 (the stage lock's Lease is written, as without history)
#   prune scan     `capstan prune --dry-run` of that stage with 40 extra CRDs installed, with
#                  `--full-scan` (what every prune did before the inventory) and scoped by the
#                  recorded inventory (3 runs each): capstan's request count, and every request
#                  the apiserver saw (history reads and discovery included)
#   rollback       1,000 ConfigMaps all changed since revision 1: `capstan rollback --to 1`
#                  beside `capstan deploy` of the old manifests (3 runs each, alternating)
# Times are wall-clock seconds around each command.
#
# Run from anywhere:   benches/history.sh
#   CAPSTAN=path       capstan binary [default: ${CARGO_TARGET_DIR:-target}/release/capstan]
#   BENCH_OUT=file     also write the Markdown table there
#   N=1000             number of ConfigMaps
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
N="${N:-1000}"
# shellcheck source=benches/plane.sh
source benches/plane.sh

# gen NS VALUE: $N ConfigMaps for namespace NS, each holding VALUE.
gen() {
  awk -v n="$N" -v ns="$1" -v v="$2" 'BEGIN { for (i = 1; i <= n; i++) {
    printf "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-%04d\n  namespace: %s\n", i, ns
    printf "data:\n  host: service-%04d.%s.svc.cluster.local\n  port: \"%d\"\n", i, ns, 8000 + i
    printf "  message: the quick brown fox jumps over the lazy dog, config number %04d\n", i
    printf "  value: %s\n", v } }'
}

# project DIR NAME NS [HISTORY]: a project NAME whose stage `app` holds $N ConfigMaps of NS.
project() {
  mkdir -p "$1"
  printf 'name: %s\n%sstages:\n  app:\n    manifests: app.yaml\n    prune: true\n' "$2" "${4:-}" >"$1/capstan.yaml"
  gen "$3" v1 >"$1/app.yaml"
}

# Requests the apiserver counted, all of them or writes on configmaps and secrets.
requests() {
  "$kubectl" get --raw /metrics | awk -v only="$1" '/^apiserver_request_total\{/ {
    if (only == "writes" && !(/resource="(configmaps|secrets)"/ && /verb="(POST|PUT|PATCH|APPLY|DELETE|DELETECOLLECTION)"/)) next
    s += $NF } END { printf "%d\n", s }'
}

# timed OUT CMD...: runs CMD with stdout to OUT; sets $secs, $cpu (the command's own CPU
# seconds, steadier than wall time on a shared machine), $writes and $seen (the apiserver's
# apiserver_request_total, which leaves discovery out, less the metrics reads themselves).
timed() {
  local out="$1" t0 t1 w0 r0 rc=0
  shift
  w0="$(requests writes)"; r0="$(requests all)"
  t0="$(date +%s.%N)"
  { TIMEFORMAT='%U %S'; time "$@" >"$out" 2>"$out.err"; } 2>"$out.time" || rc=$?
  t1="$(date +%s.%N)"
  writes=$(($(requests writes) - w0)); seen=$(($(requests all) - r0 - 2))
  cpu="$(awk '{ printf "%.3f", $1 + $2 }' "$out.time")"
  [ "$rc" -eq 0 ] || { cat "$out.err" >&2; head -c 4000 "$out" >&2; die "command failed (exit $rc): $*"; }
  secs="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')"
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
check() { jq -e "$2" "$1" >/dev/null || die "unexpected capstan output ($2 is false): $(jq -c '{summary, requests, succeeded}' "$1")"; }
declare -A col
add() { col[$1]+="$2"$'\n'; }
med() { printf '%s' "${col[$1]:-}" | median; }
run() { "$capstan" "$1" --project "$2" --yes -o json "${@:3}"; }

say "first deploy of $N ConfigMaps with and without history (5 runs each, alternating)"
for i in 1 2 3 4 5; do
  for side in on off; do
    "$kubectl" create namespace "$side$i" >/dev/null
    history=""; [ "$side" = off ] && history=$'history: {keep: 0}\n'
    project "$tmp/$side$i" "$side$i" "$side$i" "$history"
    timed "$tmp/first-$side$i.json" run deploy "$tmp/$side$i"
    check "$tmp/first-$side$i.json" ".summary.create == $N and .succeeded"
    add "first-$side.s" "$secs"; add "first-$side.r" "$seen"; add "first-$side.cpu" "$cpu"
  done
done
revs="$("$capstan" history --project "$tmp/on3" -o json | jq '.items | length')"
[ "$revs" = 1 ] || die "expected one revision, found $revs"
chunks="$("$kubectl" -n capstan-system get secrets -l capstan.io/history-project=on3,capstan.io/history-role=chunk -o name | wc -l)"
say "revision 1 of on3: $chunks chunk Secrets"

say "no-op redeploy with history (5 runs)"
for i in 1 2 3 4 5; do
  timed "$tmp/noop$i.json" run deploy "$tmp/on3"
  check "$tmp/noop$i.json" ".summary.unchanged == $N"
  add noop.s "$secs"; add noop.w "$writes"; add noop.r "$seen"; add noop.cpu "$cpu"
done
revs="$("$capstan" history --project "$tmp/on3" -o json | jq '.items | length')"
[ "$revs" = 1 ] || die "a no-op redeploy recorded a revision ($revs revisions)"

install_crds 40
sleep 2

say "prune scan with 40 CRDs, full and scoped (3 runs each)"
for i in 1 2 3; do
  for mode in full scoped; do
    flag=(); [ "$mode" = full ] && flag=(--full-scan)
    timed "$tmp/prune-$mode$i.json" run prune "$tmp/on3" --dry-run "${flag[@]}"
    check "$tmp/prune-$mode$i.json" '.summary.prune == 0 and (.orphans | length) == 0'
    add "prune-$mode.s" "$secs"; add "prune-$mode.c" "$(jq .requests "$tmp/prune-$mode$i.json")"
    add "prune-$mode.r" "$seen"; add "prune-$mode.cpu" "$cpu"
  done
done

say "rollback of $N changed ConfigMaps vs deploying the old manifests (3 runs each)"
gen on3 v1 >"$tmp/v1.yaml"; gen on3 v2 >"$tmp/v2.yaml"
for i in 1 2 3; do
  cp "$tmp/v2.yaml" "$tmp/on3/app.yaml"; run deploy "$tmp/on3" >/dev/null 2>&1
  timed "$tmp/rollback$i.json" run rollback "$tmp/on3" --to 1
  check "$tmp/rollback$i.json" ".summary.update == $N and .succeeded"
  add rollback.s "$secs"; add rollback.r "$seen"; add rollback.cpu "$cpu"
  run deploy "$tmp/on3" >/dev/null 2>&1
  cp "$tmp/v1.yaml" "$tmp/on3/app.yaml"
  timed "$tmp/redeploy-old$i.json" run deploy "$tmp/on3"
  check "$tmp/redeploy-old$i.json" ".summary.update == $N and .succeeded"
  add old.s "$secs"; add old.r "$seen"; add old.cpu "$cpu"
done

for k in "${!col[@]}"; do say "samples $k: $(printf '%s' "${col[$k]}" | tr '\n' ' ')"; done
on="$(med first-on.s)"; off="$(med first-off.s)"
more() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.1f%%", (a / b - 1) * 100 }'; }
# line LABEL KEY [CAPSTAN-REQUESTS] [WRITES]
line() {
  printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "$(med "$2.s")" "$(med "$2.cpu")" "$(med "$2.r")" "${3:-}" "${4:-}"
}
table="$(
  printf '| scenario (median) | wall s | capstan CPU s | apiserver requests, all clients (no discovery) | capstan requests | cm+secret writes |\n'
  printf '|---|---:|---:|---:|---:|---:|\n'
  line "first deploy, $N ConfigMaps, history off (5 runs)" first-off
  line "first deploy, $N ConfigMaps, history on (5 runs): wall $(more "$on" "$off"), CPU $(more "$(med first-on.cpu)" "$(med first-off.cpu)")" first-on
  line "no-op redeploy, history on (5 runs)" noop "" "$(med noop.w)"
  line "prune scan, 40 CRDs, --full-scan (3 runs)" prune-full "$(med prune-full.c)"
  line "prune scan, 40 CRDs, recorded inventory (3 runs)" prune-scoped "$(med prune-scoped.c)"
  line "rollback --to 1, $N ConfigMaps changed (3 runs)" rollback
  line "deploy of the old manifests, the same change (3 runs)" old
)"
printf '%s\n' "$table"
if [ -n "${BENCH_OUT:-}" ]; then printf '%s\n' "$table" >"$BENCH_OUT"; fi
