#!/usr/bin/env bash
# Peak memory and wall time of `capstan validate` on the benchmark's 50,000-object stage (about
# 20 MB), as a stream, a List and a GitOps tree: the goal is a peak under 4x the input size.
# Usage: crates/manifest/benches/memory.sh   (from anywhere in the workspace)
set -euo pipefail
cd "$(dirname "$0")/../../.."
cargo build --release --quiet -p capstan-cli
cargo build --release --quiet -p capstan-manifest --example generate-stage
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
target="${CARGO_TARGET_DIR:-target}/release"
"$target/examples/generate-stage" stream "$work/stream.yaml"
"$target/examples/generate-stage" list "$work/list.yaml"
"$target/examples/generate-stage" tree "$work/tree"
printf '%-8s %10s %10s %8s %8s\n' form input_kb peak_kb ratio seconds
for form in stream list tree; do
  path="$work/$form"; [ -d "$path" ] || path="$path.yaml"
  input_kb=$(( $(find "$path" -type f -printf '%s\n' | paste -sd+ | bc) / 1024 ))
  # GNU time: %M is the peak resident set in KiB, %e the wall time.
  /usr/bin/time -o "$work/time" -f '%M %e' "$target/capstan" validate -f "$path" --discriminator bench >/dev/null
  read -r peak seconds <"$work/time"
  printf '%-8s %10d %10d %8.2f %8.2f\n' "$form" "$input_kb" "$peak" \
    "$(echo "$peak / $input_kb" | bc -l)" "$seconds"
done
