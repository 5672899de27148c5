#!/usr/bin/env bash
# Runs capstan's whole test suite. Tests that talk to Kubernetes need a real control plane:
# scripts/envtest.sh provisions one (or reuses KUBEBUILDER_ASSETS / its cache) first.
# Arguments go to `cargo test` in place of `--workspace`, for example
# `scripts/test.sh -p capstan-testenv`.
set -euo pipefail
cd "$(dirname "$0")/.."

KUBEBUILDER_ASSETS="$(scripts/envtest.sh)"
export KUBEBUILDER_ASSETS
echo "test control plane: $("$KUBEBUILDER_ASSETS/kube-apiserver" --version) from $KUBEBUILDER_ASSETS" >&2

[ "$#" -gt 0 ] || set -- --workspace
exec cargo test --locked "$@"
