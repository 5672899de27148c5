#!/usr/bin/env bash
# Runs capstan's whole test suite. Tests that talk to Kubernetes need a real control plane:
# scripts/envtest.sh provisions one (or reuses KUBEBUILDER_ASSETS / its cache) first. The
# secrets interoperability tests need the real Go sops: scripts/sops.sh provisions it (or
# reuses CAPSTAN_TEST_SOPS / its cache). capstan itself never runs sops.
# Arguments go to `cargo test` in place of `--workspace`, for example
# `scripts/test.sh -p capstan-testenv`.
set -euo pipefail
cd "$(dirname "$0")/.."

KUBEBUILDER_ASSETS="$(scripts/envtest.sh)"
export KUBEBUILDER_ASSETS
echo "test control plane: $("$KUBEBUILDER_ASSETS/kube-apiserver" --version) from $KUBEBUILDER_ASSETS" >&2

CAPSTAN_TEST_SOPS="$(scripts/sops.sh)"
export CAPSTAN_TEST_SOPS
echo "sops for interoperability tests: $("$CAPSTAN_TEST_SOPS" --version --disable-version-check | head -n 1) from $CAPSTAN_TEST_SOPS" >&2

[ "$#" -gt 0 ] || set -- --workspace
exec cargo test --locked "$@"
