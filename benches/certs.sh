#!/usr/bin/env bash
# Benchmarks `capstan certs list -A` against the runbook's way of reading expiry, one Secret at a
# time (`kubectl get secret ... | base64 -d | openssl x509 -noout -enddate`), on a throwaway
# local control plane (`capstan local up` in a temp dir; your kubeconfig is never touched) with
# cert-manager v1.10.0's CRDs from ../shared/testdata:
#   list     `capstan certs list -A -o json` over $N Certificates (and their Secrets) in $NS
#            namespaces (3 runs, median); capstan must list all of them without warnings
#   loop     the shell loop over a sample of $SAMPLE of those Secrets (3 runs, median), and
#            that time scaled to all $N
# Times are wall-clock seconds (`date +%s.%N`) around each command; "requests" is what capstan
# reports in its JSON, the loop's is one kubectl call per Secret.
#
# Run from anywhere:   benches/certs.sh
#   CAPSTAN=path       capstan binary [default: ${CARGO_TARGET_DIR:-target}/release/capstan,
#                      built with `cargo build --release -p capstan-cli` when missing]
#   BENCH_OUT=file     also write the Markdown table there
#   N=2000 NS=50 SAMPLE=100
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
N="${N:-2000}"
NS="${NS:-50}"
SAMPLE="${SAMPLE:-100}"
crds="$(realpath ../shared/testdata/crds/cert-manager-v1.10.0 2>/dev/null)" ||
  { echo "bench: needs ../shared/testdata/crds/cert-manager-v1.10.0" >&2; exit 1; }
for tool in openssl base64; do
  command -v "$tool" >/dev/null || { echo "bench: needs $tool" >&2; exit 1; }
done
# shellcheck source=benches/plane.sh
source benches/plane.sh
"$kubectl" apply -f "$crds" >/dev/null
"$kubectl" wait --for condition=established --timeout=120s crd --all >/dev/null
sleep 2 # let discovery settle

# One certificate for every Secret (a wildcard, so each Certificate's name is covered): the
# parsing work per Secret is the same as with distinct ones.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 90 \
  -subj "/CN=bench" -addext "subjectAltName=DNS:*.example.com" \
  -keyout "$tmp/tls.key" -out "$tmp/tls.crt" 2>/dev/null
crt="$(base64 -w0 <"$tmp/tls.crt")"
key="$(base64 -w0 <"$tmp/tls.key")"
say "creating $N Certificates and Secrets in $NS namespaces"
per=$((N / NS))
for n in $(seq 1 "$NS"); do
  printf -- '---\napiVersion: v1\nkind: Namespace\nmetadata: {name: certs-%02d}\n' "$n"
done >"$tmp/namespaces.yaml"
"$kubectl" apply -f "$tmp/namespaces.yaml" >/dev/null
for n in $(seq 1 "$NS"); do
  for i in $(seq 1 "$per"); do
    printf -- '---\napiVersion: v1\nkind: Secret\ntype: kubernetes.io/tls\nmetadata: {name: c-%03d-tls, namespace: certs-%02d}\ndata: {tls.crt: %s, tls.key: %s}\n' "$i" "$n" "$crt" "$key"
    printf -- '---\napiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: c-%03d, namespace: certs-%02d}\nspec: {secretName: c-%03d-tls, dnsNames: [c-%03d.example.com], issuerRef: {name: ca, kind: ClusterIssuer}}\n' "$i" "$n" "$i" "$i"
  done >"$tmp/objects-$n.yaml"
done
for n in $(seq 1 "$NS"); do "$kubectl" apply -f "$tmp/objects-$n.yaml" >/dev/null; done

timed() { # timed OUTFILE CMD...: sets $secs
  local out="$1" t0 t1
  shift
  t0="$(date +%s.%N)"
  "$@" >"$out" 2>"$out.err" || { cat "$out.err" >&2; die "command failed: $*"; }
  t1="$(date +%s.%N)"
  secs="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')"
}
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

list() { "$capstan" certs list -A -o json; }
# The runbook's loop: one kubectl call, base64 and openssl per Secret.
loop() {
  local line
  while read -r line; do
    "$kubectl" get secret -n "${line%% *}" "${line#* }" -o 'jsonpath={.data.tls\.crt}' |
      base64 -d | openssl x509 -noout -enddate
  done <"$tmp/sample.txt"
}
for n in $(seq 1 "$NS"); do for i in $(seq 1 "$per"); do printf 'certs-%02d c-%03d-tls\n' "$n" "$i"; done; done |
  awk -v n="$N" -v s="$SAMPLE" 'NR % int(n / s) == 0' | head -n "$SAMPLE" >"$tmp/sample.txt"

list_s="" loop_s="" requests=""
for run in 1 2 3; do
  timed "$tmp/list$run.json" list
  jq -e --argjson n "$N" '(.items | length) == $n and ([.items[].warnings[]] | length) == 0' \
    "$tmp/list$run.json" >/dev/null ||
    die "capstan did not list $N Certificates without warnings: $(jq -c '[.items[].warnings[]][:3]' "$tmp/list$run.json")"
  list_s+="$secs"$'\n'
  requests="$(jq .requests "$tmp/list$run.json")"
  timed "$tmp/loop$run.out" loop
  [ "$(grep -c '^notAfter=' "$tmp/loop$run.out")" -eq "$SAMPLE" ] || die "the loop read fewer than $SAMPLE dates"
  loop_s+="$secs"$'\n'
done
say "list samples: $(printf '%s' "$list_s" | tr '\n' ' ')"
say "loop samples: $(printf '%s' "$loop_s" | tr '\n' ' ')"
list_m="$(printf '%s' "$list_s" | median)"
loop_m="$(printf '%s' "$loop_s" | median)"
scaled="$(awk -v l="$loop_m" -v n="$N" -v s="$SAMPLE" 'BEGIN { printf "%.1f", l * n / s }')"
table="$(
  printf '| scenario (median of 3) | seconds | requests |\n|---|---:|---:|\n'
  printf '| capstan certs list -A, %s Certificates in %s namespaces | %s | %s |\n' "$N" "$NS" "$list_m" "$requests"
  printf '| kubectl get secret, base64 -d, openssl x509: %s Secrets | %s | %s |\n' "$SAMPLE" "$loop_m" "$SAMPLE"
  printf '| the same loop scaled to %s Secrets | %s | %s |\n' "$N" "$scaled" "$N"
)"
printf '%s\n' "$table"
if [ -n "${BENCH_OUT:-}" ]; then printf '%s\n' "$table" >"$BENCH_OUT"; fi
