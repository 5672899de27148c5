#!/usr/bin/env bash
# Times capstan-secrets (through its `sops_file` example) against the `rops` command-line tool
# and the real Go `sops` on the same generated 10,000-value YAML file, and checks that each
# opens capstan's output and capstan opens theirs.
#
#   cargo install rops-cli --version 0.1.7 --root /tmp/rops-cli   # outside the repository
#   crates/secrets/benches/compare-rops.sh [path/to/rops] [path/to/sops]
#
# sops defaults to CAPSTAN_TEST_SOPS, else what scripts/sops.sh provisions. Uses hyperfine when
# installed, else a loop with `time`.
set -euo pipefail

ROPS=${1:-/tmp/rops-cli/bin/rops}
RUNS=${RUNS:-10}
here=$(cd "$(dirname "$0")/../../.." && pwd)
SOPS=${2:-${CAPSTAN_TEST_SOPS:-$("$here/scripts/sops.sh")}}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --quiet --release --manifest-path "$here/Cargo.toml" -p capstan-secrets --example sops_file
target=${CARGO_TARGET_DIR:-$here/target}
capstan="$target/release/examples/sops_file"

# The same file as benches/sops.rs: 100 groups of 100 keys.
awk 'BEGIN { for (g = 0; g < 100; g++) { printf "group_%03d:\n", g;
       for (k = 0; k < 100; k++) printf "    key_%03d: value-%03d-%03d-0123456789abcdef\n", k, g, k } }' \
    > "$work/plain.yaml"

# One age identity for both tools; rops reads it from ROPS_AGE, capstan the sops way.
age_key=$("$capstan" keygen)
identity=$(printf '%s\n' "$age_key" | grep '^AGE-SECRET-KEY-')
recipient=$(printf '%s\n' "$age_key" | sed -n 's/^# public key: //p')
printf '%s\n' "$identity" > "$work/keys.txt"
export SOPS_AGE_KEY_FILE="$work/keys.txt" ROPS_AGE="$identity"

"$capstan" encrypt "$work/plain.yaml" "$recipient" > "$work/capstan.enc.yaml"
if [ -x "$ROPS" ]; then
    "$ROPS" encrypt --age "$recipient" --format yaml < "$work/plain.yaml" > "$work/rops.enc.yaml"
else
    echo "rops: $ROPS is not there; timing capstan and sops only" >&2
fi
# sops looks for .sops.yaml from the working directory; the scratch folder has none.
sops_in() { (cd "$work" && XDG_CONFIG_HOME="$work/none" "$SOPS" "$@"); }
sops_in encrypt --age "$recipient" plain.yaml > "$work/sops.enc.yaml"

# Interoperability: each tool decrypts what the other wrote to the same plaintext tree.
"$capstan" decrypt "$work/capstan.enc.yaml" | cmp -s - "$work/plain.yaml" && echo "capstan round trip: identical"
if [ -x "$ROPS" ]; then
    "$ROPS" decrypt --format yaml < "$work/capstan.enc.yaml" > "$work/rops-of-capstan.yaml"
    "$capstan" decrypt "$work/rops.enc.yaml" > "$work/capstan-of-rops.yaml"
    same() { cmp -s <(grep -v '^$' "$1" | tr -s ' ') <(tr -s ' ' < "$work/plain.yaml") && echo same || echo DIFFERENT; }
    echo "rops opens capstan's file: $(same "$work/rops-of-capstan.yaml") plaintext (up to indentation)"
    echo "capstan opens rops's file: $(same "$work/capstan-of-rops.yaml") plaintext (up to indentation)"
fi
cp "$work/capstan.enc.yaml" "$work/capstan-copy.enc.yaml"
identical() { cmp -s - "$work/plain.yaml" && echo identical || echo DIFFERENT; }
echo "sops opens capstan's file: $(sops_in decrypt capstan-copy.enc.yaml | identical) plaintext"
echo "capstan opens sops's file: $("$capstan" decrypt "$work/sops.enc.yaml" | identical) plaintext"

seconds() { # mean seconds of a command, via hyperfine or a loop
    if command -v hyperfine > /dev/null; then
        hyperfine --runs "$RUNS" --warmup 2 --export-json "$work/h.json" --output=null "$1" > /dev/null
        python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][0]["mean"])' "$work/h.json"
    else
        local start end
        start=$(date +%s.%N)
        for _ in $(seq "$RUNS"); do bash -c "$1" > /dev/null; done
        end=$(date +%s.%N)
        echo "($end - $start) / $RUNS" | bc -l
    fi
}

report() { # name capstan-command rops-command sops-command
    local c r g rops=""
    c=$(seconds "$2")
    g=$(seconds "$4")
    if [ -x "$ROPS" ]; then
        r=$(seconds "$3")
        rops=$(printf 'rops %8.1f ms (%.2fx)   ' "$(echo "$r * 1000" | bc -l)" "$(echo "$r / $c" | bc -l)")
    fi
    printf '%-8s capstan %8.1f ms   %ssops %8.1f ms (%.2fx)\n' "$1" \
        "$(echo "$c * 1000" | bc -l)" "$rops" "$(echo "$g * 1000" | bc -l)" "$(echo "$g / $c" | bc -l)"
}

# rops takes a file argument only when stdin is a terminal, so it reads stdin here.
# Each tool decrypts its own file; the factors are how many times longer the other tool takes.
report encrypt "$capstan encrypt $work/plain.yaml $recipient" \
    "$ROPS encrypt --age $recipient --format yaml < $work/plain.yaml" \
    "cd $work && XDG_CONFIG_HOME=$work/none $SOPS encrypt --age $recipient plain.yaml"
report decrypt "$capstan decrypt $work/capstan.enc.yaml" \
    "$ROPS decrypt --format yaml < $work/rops.enc.yaml" \
    "cd $work && XDG_CONFIG_HOME=$work/none $SOPS decrypt sops.enc.yaml"
