#!/usr/bin/env bash
# Benchmarks a fleet deploy against the loop a user would otherwise write: three throwaway
# local control planes (`capstan local up` in a temp dir each; your kubeconfig is never
# touched; benches/plane.sh starts the first), N ConfigMaps (and their Namespace) to each,
#   fleet       one `capstan deploy --all-targets --parallel 3` over three targets
#   sequential  three `capstan deploy` runs, one cluster after the other
# 3 runs each, fresh namespaces every run, medians. Times are wall-clock seconds around the
# whole step; "requests" is what capstan reports in its JSON (summed over the three runs of
# the sequential step). "server CPU" is the CPU time the three planes' etcd, kube-apiserver
# and kube-controller-manager spent during the step (from /proc/PID/stat), "client CPU"
# capstan's own; the "floor" is all of it spread over the machine's cores: on two cores three
# API servers doing the same writes cannot finish faster than that, however many run at once.
#
# Run from anywhere:   benches/fleet.sh
#   CAPSTAN=path       capstan binary [default: ${CARGO_TARGET_DIR:-target}/release/capstan,
#                      built with `cargo build --release -p capstan-cli` when missing]
#   BENCH_OUT=file     also write the Markdown table there
#   N=300              ConfigMaps per cluster
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
N="${N:-300}"
# shellcheck source=benches/plane.sh
source benches/plane.sh # the first plane, in $tmp/local
dirs=("$tmp/local" "$tmp/local2" "$tmp/local3")
planes=(0 1 2)
cleanup_all() {
  local dir
  for dir in "${dirs[@]:1}"; do
    "$capstan" local down --dir "$dir" >/dev/null 2>&1 || say "capstan local down $dir failed"
  done
  cleanup
}
trap cleanup_all EXIT
say "starting two more local control planes"
# `local up` adds its context to $KUBECONFIG, here the first plane's own file: not that one.
for dir in "${dirs[@]:1}"; do
  KUBECONFIG="$tmp/more-kubeconfig" "$capstan" local up --dir "$dir" --no-switch >/dev/null &
done
wait
server_pids=()
for p in "${planes[@]}"; do
  "$capstan" local status --dir "${dirs[p]}" -o json >"$tmp/status$p.json"
  kubeconfig[p]="$(jq -er .clusterKubeconfig "$tmp/status$p.json")"
  context[p]="$(jq -er .context "$tmp/status$p.json")"
  mapfile -t -O "${#server_pids[@]}" server_pids < <(jq -r '.components[].pid' "$tmp/status$p.json")
done

# A Namespace $1 and $N ConfigMaps in it.
gen() {
  awk -v n="$N" -v ns="$1" 'BEGIN {
    printf "apiVersion: v1\nkind: Namespace\nmetadata: {name: %s}\n", ns
    for (i = 1; i <= n; i++) {
    printf "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-%04d\n  namespace: %s\n", i, ns
    printf "data:\n  host: service-%04d.%s.svc.cluster.local\n  port: \"%d\"\n", i, ns, 8000 + i
    printf "  message: the quick brown fox jumps over the lazy dog, config number %04d\n", i } }' \
    >"$tmp/cms-$1.yaml"
}

# A project whose stage `cms` (discriminator $1) goes to the three planes.
project() {
  mkdir -p "$tmp/project-$1"
  {
    printf 'name: bench\ntargets:\n'
    for p in "${planes[@]}"; do
      printf '  p%s: {context: %s, kubeconfig: %s}\n' "$p" "${context[p]}" "${kubeconfig[p]}"
    done
    printf 'stages:\n  cms: {manifests: %s, discriminator: %s}\n' "$tmp/cms-$1.yaml" "$1"
  } >"$tmp/project-$1/capstan.yaml"
}

# timed CMD...: sets $secs, $server, $client and $floor for CMD.
timed() {
  local t0 t1 c0 c1 rc=0
  c0="$(server_cpu)"
  t0="$(date +%s.%N)"
  { TIMEFORMAT='%U %S'; time "$@" 2>"$tmp/err"; } 2>"$tmp/time" || rc=$?
  t1="$(date +%s.%N)"
  c1="$(server_cpu)"
  [ "$rc" -eq 0 ] || { cat "$tmp/err" >&2; die "command failed (exit $rc): $*"; }
  secs="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')"
  server="$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.3f", b - a }')"
  client="$(awk '{ printf "%.3f", $1 + $2 }' "$tmp/time")"
  floor="$(awk -v s="$server" -v c="$client" -v n="$cores" 'BEGIN { printf "%.3f", (s + c) / n }')"
}

fleet() {
  "$capstan" deploy --project "$tmp/project-$1" --stage cms --all-targets --parallel 3 --yes \
    -o json >"$tmp/fleet-$1.json"
}
sequential() {
  local p
  for p in "${planes[@]}"; do
    KUBECONFIG="${kubeconfig[p]}" "$capstan" deploy -f "$tmp/cms-$1.yaml" --discriminator "$1" \
      --yes -o json >"$tmp/seq-$1-$p.json"
  done
}

declare -A col
add() { col[$1]+="$2"$'\n'; }
sample() {
  add "$1.s" "$secs"; add "$1.server" "$server"; add "$1.client" "$client"; add "$1.floor" "$floor"
  add "$1.over" "$(awk -v w="$secs" -v f="$floor" 'BEGIN { printf "%.2f", w / f }')"
}

say "$N ConfigMaps to three clusters: fleet --parallel 3 and three sequential runs (3 runs each)"
for i in 1 2 3; do
  gen "f$i"; project "f$i"; gen "s$i"
  timed fleet "f$i"
  jq -e --argjson n "$((N + 1))" '.succeeded and ([.targets[].done.create] == [$n, $n, $n])' \
    "$tmp/fleet-f$i.json" >/dev/null || die "unexpected fleet output: $(jq -c '.targets' "$tmp/fleet-f$i.json")"
  sample fleet; add fleet.r "$(jq .requests "$tmp/fleet-f$i.json")"
  timed sequential "s$i"
  sample sequential
  add sequential.r "$(cat "$tmp"/seq-"s$i"-*.json | jq -s 'map(.requests) | add')"
done

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
med() { printf '%s' "${col[$1]:-}" | median; }
row() {
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$(med "$2.s")" "$(med "$2.r")" \
    "$(med "$2.server")" "$(med "$2.client")" "$(med "$2.floor")" "$(med "$2.over")"
}
for k in "${!col[@]}"; do say "samples $k: $(printf '%s' "${col[$k]}" | tr '\n' ' ')"; done
table="$(
  printf '| %s ConfigMaps to 3 clusters (median of 3) | wall s | requests | server CPU s | client CPU s | floor s | wall/floor |\n' "$N"
  printf '|---|---:|---:|---:|---:|---:|---:|\n'
  row "capstan deploy --all-targets --parallel 3" fleet
  row "3 x capstan deploy, one after the other" sequential
  printf '| sequential / fleet wall time | %s | | | | | |\n' \
    "$(awk -v s="$(med sequential.s)" -v f="$(med fleet.s)" 'BEGIN { printf "%.2f", s / f }')"
)"
printf '%s\n' "$table"
if [ -n "${BENCH_OUT:-}" ]; then printf '%s\n' "$table" >"$BENCH_OUT"; fi
