#!/usr/bin/env bash
# Benchmarks the unchanged proof and drift detection on a throwaway local control plane
# (`capstan local up` in a temp dir; your kubeconfig is never touched):
#   no-op redeploy  $N Deployments + $N ServiceAccounts + $N Services, deployed once, then
#                   redeployed unchanged after the controller manager wrote its revision
#                   annotations (and, before 1.24, the ServiceAccounts' token `secrets`), 3 runs,
#                   median (kubectl diff: 1 run); side by side with `kubectl apply --server-side` of the same file and
#                   `kubectl diff --server-side` (a read and a dry run per object: what capstan's
#                   planner did for every object the proof gave up on), both on a copy of their
#                   own in another namespace
#   drift           `capstan drift` of a 1,000-object stage (the same three kinds plus
#                   ConfigMaps), in sync and with one object edited by hand, 3 runs each
#   watch idle      requests `capstan drift --watch` makes over $IDLE seconds with nothing changing,
#                   after its first check and watch connects, counted from its own JSON lines
# "requests" is what capstan reports in its JSON output; times are wall-clock seconds.
#
# Run from anywhere:   benches/drift.sh
#   CAPSTAN=path   capstan binary [default: ${CARGO_TARGET_DIR:-target}/release/capstan]
#   N=200          objects of each kind for the redeploy
#   IDLE=60        seconds of idle watching
#   BENCH_OUT=file also write the Markdown table there
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
N="${N:-200}"
IDLE="${IDLE:-60}"
# shellcheck source=benches/plane.sh
source benches/plane.sh

# gen NAMESPACE COUNT [CONFIGMAPS]: Deployments, ServiceAccounts and Services (and ConfigMaps).
gen() {
  awk -v n="$2" -v ns="$1" -v cms="${3:-0}" 'BEGIN {
    printf "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: %s}\n", ns
    for (i = 1; i <= n; i++) {
      printf "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web-%04d, namespace: %s, labels: {app: web-%04d}}\n", i, ns, i
      printf "spec:\n  replicas: 0\n  selector: {matchLabels: {app: web-%04d}}\n", i
      printf "  template:\n    metadata: {labels: {app: web-%04d}}\n", i
      printf "    spec: {serviceAccountName: web-%04d, containers: [{name: web, image: nginx:1.25, ports: [{containerPort: 80, protocol: TCP}]}]}\n", i
      printf "---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: web-%04d, namespace: %s}\n", i, ns
      printf "---\napiVersion: v1\nkind: Service\nmetadata: {name: web-%04d, namespace: %s}\n", i, ns
      printf "spec: {clusterIP: None, selector: {app: web-%04d}, ports: [{port: 80, protocol: TCP}]}\n", i
    }
    for (i = 1; i <= cms; i++)
      printf "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-%04d, namespace: %s}\ndata: {key: value-%04d}\n", i, ns, i
  }'
}

# All requests the apiserver has answered so far.
server_requests() {
  "$kubectl" get --raw /metrics | awk '/^apiserver_request_total\{/ { s += $NF } END { printf "%d\n", s }'
}

# timed CMD...: runs CMD with stdout to $tmp/out; sets $secs and $rc (1 is drift, not failure).
timed() {
  local t0 t1
  t0="$(date +%s.%N)"
  rc=0
  "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
  t1="$(date +%s.%N)"
  secs="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')"
  if [ "$rc" -gt 1 ]; then
    say "command failed (exit $rc): $*"
    head -c 4000 "$tmp/err" >&2
    exit 1
  fi
}
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
declare -A col
add() { col[$1]+="$2"$'\n'; }
med() { printf '%s' "${col[$1]:-}" | median; }

# Waits until every Deployment in namespace $1 carries the controller's revision annotation.
controllers_wrote() {
  local left
  for _ in $(seq 1 300); do
    left="$("$kubectl" get deploy -n "$1" -o json |
      jq '[.items[] | select(.metadata.annotations["deployment.kubernetes.io/revision"] == null)] | length')"
    [ "$left" -eq 0 ] && { sleep 2; return; }
    sleep 1
  done
  die "the controller manager never annotated the Deployments in $1"
}

# Headless Services: the test cluster's service range has 254 addresses.
gen redeploy "$N" >"$tmp/redeploy.yaml"
# kubectl gets objects of its own: applying capstan's with another field manager would make
# them shared, which the proof rightly sends to the dry run.
gen redeploy-kubectl "$N" >"$tmp/kubectl.yaml"
"$kubectl" apply --server-side -f "$tmp/kubectl.yaml" >/dev/null
deploy() { "$capstan" deploy -f "$tmp/redeploy.yaml" --discriminator bench-redeploy --yes -o json; }
say "first deploy of $N Deployments, ServiceAccounts and Services"
timed deploy
jq -e ".summary.errors == 0 and .succeeded" "$tmp/out" >/dev/null || die "first deploy: $(jq -c .summary "$tmp/out")"
controllers_wrote redeploy
sa_secrets="$("$kubectl" get sa -n redeploy -o json | jq '[.items[] | select(.secrets != null)] | length')"
say "the controllers wrote: $N revision annotations, $sa_secrets ServiceAccounts with secrets"

say "no-op redeploy (3 runs each of capstan and kubectl apply --server-side, 1 of kubectl diff)"
for _ in 1 2 3; do
  timed deploy
  jq -e ".summary.unchanged == $((3 * N + 1)) and .summary.errors == 0" "$tmp/out" >/dev/null ||
    die "redeploy was not a no-op: $(jq -c .summary "$tmp/out")"
  add redeploy.s "$secs"; add redeploy.r "$(jq .requests "$tmp/out")"
  r0="$(server_requests)"
  timed "$kubectl" apply --server-side -f "$tmp/kubectl.yaml"
  add kapply.s "$secs"; add kapply.r "$(($(server_requests) - r0 - 1))"
done
r0="$(server_requests)"
timed "$kubectl" diff --server-side -f "$tmp/kubectl.yaml"
add kdiff.s "$secs"; add kdiff.r "$(($(server_requests) - r0 - 1))"
say "no-op redeploy: capstan $(med redeploy.r) requests in $(med redeploy.s) s; kubectl apply" \
  "--server-side $(med kapply.r) in $(med kapply.s) s; kubectl diff --server-side $(med kdiff.r) in $(med kdiff.s) s"

if "$capstan" drift --help >/dev/null 2>&1; then
  cms=$((1000 - 3 * 200 - 1))
  gen drift 200 "$cms" >"$tmp/drift.yaml"
  timed "$capstan" deploy -f "$tmp/drift.yaml" --discriminator bench-drift --yes -o json
  jq -e ".summary.errors == 0 and .succeeded" "$tmp/out" >/dev/null || die "drift stage deploy: $(jq -c .summary "$tmp/out")"
  controllers_wrote drift
  drift() { "$capstan" drift -f "$tmp/drift.yaml" --discriminator bench-drift -o json; }
  say "drift of a 1,000-object stage (3 runs in sync, 3 with one Deployment edited)"
  for _ in 1 2 3; do
    timed drift
    [ "$rc" -eq 0 ] || die "drift found drift in a stage in sync: $(head -c 2000 "$tmp/out")"
    add sync.s "$secs"; add sync.r "$(jq .requests "$tmp/out")"
  done
  "$kubectl" -n drift patch deploy web-0001 --type merge -p '{"spec":{"replicas":2}}' >/dev/null
  for _ in 1 2 3; do
    timed drift
    [ "$rc" -eq 1 ] || die "drift missed the edited Deployment"
    add drifted.s "$secs"; add drifted.r "$(jq .requests "$tmp/out")"
  done
  "$kubectl" -n drift patch deploy web-0001 --type merge -p '{"spec":{"replicas":0}}' >/dev/null

  say "drift --watch idle for $IDLE s"
  "$capstan" drift -f "$tmp/drift.yaml" --discriminator bench-drift --watch --resync 10m -o json \
    >"$tmp/watch.jsonl" 2>"$tmp/watch.err" &
  watch_pid=$!
  sleep 10 # the first full check and the watches' start
  sleep "$IDLE"
  kill -TERM "$watch_pid"
  wait "$watch_pid" || die "drift --watch did not exit cleanly on SIGTERM: $(tail -5 "$tmp/watch.err")"
  # capstan's own requests, from its lines: every watch (re)connect is one, and every check
  # reports its own. (The apiserver's request count is dominated by the control plane's own
  # traffic, which varies by more than a watch's requests.)
  types="$(jq -s '[.[] | select(.event == "watching")] | length' "$tmp/watch.jsonl")"
  idle_client="$(jq -s '([.[] | select(.event == "watching")] | length) - ([.[] | select(.event == "watching") | .resource] | unique | length)
    + ([.[] | select(.event == "checked") | .requests] | .[1:] | add // 0)' "$tmp/watch.jsonl")"
  say "watch: $types watches; $idle_client requests after the first check and connects"
fi

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1fx", a / b }'; }
{
  echo "| scenario | capstan | kubectl apply --server-side | kubectl diff --server-side |"
  echo "|---|---|---|---|"
  echo "| no-op redeploy, $N+$N+$N objects: requests | $(med redeploy.r) | $(med kapply.r) | $(med kdiff.r) |"
  echo "| no-op redeploy: seconds | $(med redeploy.s) | $(med kapply.s) ($(ratio "$(med kapply.s)" "$(med redeploy.s)")) | $(med kdiff.s) ($(ratio "$(med kdiff.s)" "$(med redeploy.s)")) |"
  if [ -n "${idle_client:-}" ]; then
    echo "| drift of 1,000 objects in sync: requests, seconds | $(med sync.r), $(med sync.s) | | |"
    echo "| drift of 1,000 objects, one drifted: requests, seconds | $(med drifted.r), $(med drifted.s) | | |"
    echo "| drift --watch idle: capstan's own requests after its start, over ${IDLE}s | $idle_client | | |"
  fi
} | tee "${BENCH_OUT:-/dev/null}"
