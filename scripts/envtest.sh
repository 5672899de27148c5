#!/usr/bin/env bash
# Provisions the binaries of a real Kubernetes control plane for capstan's tests and for
# `capstan local`, and prints the folder to use as KUBEBUILDER_ASSETS (the envtest convention):
#
#   export KUBEBUILDER_ASSETS="$(scripts/envtest.sh)"
#
# The folder holds etcd, kube-apiserver, kube-controller-manager and kubectl. Order of preference:
#   1. KUBEBUILDER_ASSETS, when it already points at usable binaries;
#   2. the cache under ${XDG_CACHE_HOME:-$HOME/.cache}/capstan/envtest, filled by an earlier run;
#   3. on Debian: built from Debian's own packages (etcd-server, golang-go and the `kubernetes`
#      source package with its vendored dependencies; Kubernetes 1.20.2 on bookworm). The first
#      build takes about five minutes on two cores; later runs reuse the cache.
# Anywhere else it explains how to point KUBEBUILDER_ASSETS at binaries from setup-envtest.
#
# Only the folder goes to stdout; progress goes to stderr.
set -euo pipefail

cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/capstan/envtest"

say() { printf 'envtest: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

usable() {
  [ -x "$1/kube-apiserver" ] && [ -x "$1/etcd" ]
}

if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
  if usable "$KUBEBUILDER_ASSETS"; then
    printf '%s\n' "$KUBEBUILDER_ASSETS"
    exit 0
  fi
  say "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS has no executable kube-apiserver and etcd; provisioning instead"
fi

codename=""
if [ -r /etc/os-release ]; then
  # shellcheck disable=SC1091
  codename="$(. /etc/os-release && [ "${ID:-}" = debian ] && printf '%s' "${VERSION_CODENAME:-}")" || true
fi

if [ -z "$codename" ] || ! command -v apt-get >/dev/null; then
  cat >&2 <<'EOF'
envtest: this machine is not Debian, so capstan cannot build the control plane from packages.
Point KUBEBUILDER_ASSETS at a folder holding kube-apiserver and etcd (and, for the garbage
collector and deployment controllers, kube-controller-manager), for example with setup-envtest:

  go install sigs.k8s.io/controller-runtime/tools/setup-envtest@latest
  export KUBEBUILDER_ASSETS="$(setup-envtest use -p path)"

then run the tests again.
EOF
  exit 1
fi

# The suffix names the build recipe: a change to how the binaries are built (such as the reflect2
# replacement below) gets a new folder instead of reusing binaries built the old way.
assets="$cache_root/debian-$codename-r2"
if usable "$assets" && [ -f "$assets/.complete" ]; then
  printf '%s\n' "$assets"
  exit 0
fi

mkdir -p "$cache_root"
# Two test runs started at once must not build twice into the same folder.
exec 9>"$cache_root/.lock"
flock 9
if usable "$assets" && [ -f "$assets/.complete" ]; then
  printf '%s\n' "$assets"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || die "installing packages needs root or sudo"
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive

# `apt-get source` needs deb-src entries. They are derived from the system's own entries for
# this release, so whatever mirror the machine is configured with is the one used.
src_list=/etc/apt/sources.list.d/capstan-deb-src.sources
if [ ! -f "$src_list" ]; then
  say "adding deb-src entries for $codename to $src_list"
  derived="$(
    {
      for f in /etc/apt/sources.list.d/*.sources; do
        if [ -f "$f" ] && [ "$f" != "$src_list" ]; then cat "$f"; printf '\n'; fi
      done
    } | awk -v rel="$codename" '
      function flush() {
        if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " rel " ") && uris != "") {
          printf "Types: deb-src\nURIs: %s\nSuites: %s\nComponents: %s\n", uris, rel, comps
          if (signed != "") printf "Signed-By: %s\n", signed
          printf "\n"
        }
        types = uris = suites = comps = signed = ""
      }
      /^[[:space:]]*#/ { next }
      /^[[:space:]]*$/ { flush(); next }
      { key = $1; sub(/:$/, "", key); val = $0; sub(/^[^:]*:[[:space:]]*/, "", val) }
      key == "Types" { types = val }
      key == "URIs" { uris = val }
      key == "Suites" { suites = val }
      key == "Components" { comps = val }
      key == "Signed-By" { signed = val }
      END { flush() }
    '
    # One-line entries: `deb [options] URI SUITE COMPONENTS...`, in deb822 form.
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
      if [ -f "$f" ]; then cat "$f"; fi
    done | awk -v rel="$codename" '
      $1 != "deb" { next }
      {
        i = 2; opts = ""
        if ($i ~ /^\[/) { while ($i !~ /\]$/) { opts = opts " " $i; i++ } opts = opts " " $i; i++ }
        if ($(i + 1) != rel) next
        comps = ""; for (j = i + 2; j <= NF; j++) comps = comps (comps == "" ? "" : " ") $j
        printf "Types: deb-src\nURIs: %s\nSuites: %s\nComponents: %s\n", $i, rel, comps
        if (match(opts, /signed-by=[^] ]+/)) printf "Signed-By: %s\n", substr(opts, RSTART + 10, RLENGTH - 10)
        printf "\n"
      }
    '
  )"
  [ -n "$derived" ] || die "found no apt source entry for $codename to derive deb-src from"
  printf '%s\n' "$derived" | $sudo tee "$src_list" >/dev/null
fi

say "installing etcd-server, golang-go and build tools with apt"
$sudo apt-get update -qq >&2
$sudo apt-get install -y -qq --no-install-recommends \
  etcd-server golang-go dpkg-dev make rsync ca-certificates golang-github-modern-go-reflect2-dev >&2

work="$(mktemp -d "$cache_root/build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
cd "$work"

say "fetching the kubernetes source package"
apt_fetch=(apt-get -qq)
# As root, apt would hand the download to its `_apt` sandbox user, who cannot write here.
[ "$(id -u)" -eq 0 ] && apt_fetch+=(-o APT::Sandbox::User=root)
"${apt_fetch[@]}" source kubernetes >&2
"${apt_fetch[@]}" download kubernetes-client >&2
src="$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'kubernetes-*' | head -n 1)"
[ -n "$src" ] || die "apt-get source kubernetes unpacked nothing"

# Kubernetes 1.20 builds in GOPATH mode from its vendor folder, so the tree must sit at
# $GOPATH/src/k8s.io/kubernetes (Debian's packaging links it there the same way).
export GOPATH="$work/gopath" GOCACHE="$work/gocache" GO111MODULE=off GOFLAGS='' GOTOOLCHAIN=local
mkdir -p "$GOPATH/src/k8s.io"
ln -s "$src" "$GOPATH/src/k8s.io/kubernetes"
cd "$GOPATH/src/k8s.io/kubernetes"
# Kubernetes 1.20 vendors reflect2 1.0.1, which reads Go's map iterator with the layout of Go
# 1.17 and older: built with a newer Go, the API server segfaults the first time it encodes a
# custom resource (modern-go/reflect2#23). Debian's reflect2 1.0.2 has the fix.
reflect2=/usr/share/gocode/src/github.com/modern-go/reflect2
[ -f "$reflect2/reflect2.go" ] || die "golang-github-modern-go-reflect2-dev did not install $reflect2"
rm -rf vendor/github.com/modern-go/reflect2
cp -r "$reflect2" vendor/github.com/modern-go/reflect2
for what in cmd/kube-apiserver cmd/kube-controller-manager; do
  say "building $what (a few minutes)"
  make WHAT="$what" >&2
done

staging="$cache_root/.staging-$codename"
rm -rf "$staging"
mkdir -p "$staging"
cp _output/bin/kube-apiserver _output/bin/kube-controller-manager "$staging/"
cp "$(command -v etcd || echo /usr/bin/etcd)" "$staging/etcd"
dpkg-deb -x "$work"/kubernetes-client_*.deb "$work/client"
cp "$work/client/usr/bin/kubectl" "$staging/kubectl"
"$staging/kube-apiserver" --version >"$staging/.complete"
rm -rf "$assets"
mv "$staging" "$assets"
say "control plane binaries ready: $(cat "$assets/.complete")"
printf '%s\n' "$assets"
