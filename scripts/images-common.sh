# shellcheck shell=bash disable=SC2034 # sourced; the variables are used by the scripts
# Shared by scripts/build-images.sh and scripts/smoke-image.sh (sourced, not run).
# Image names, the fixed paths inside the images, and the workspace version, in one place so the
# build, the smoke test and the Containerfiles (images/*.Containerfile) cannot drift apart.

IMAGE_REPO_PREFIX=${IMAGE_REPO_PREFIX:-ghcr.io/instant-db}
IMAGES_DIR=target/images
# Paths inside the engine image. The engine finds ONNX Runtime and the model through the
# environment set in the image (INSTANT_DB_ONNXRUNTIME, INSTANT_DB_MODEL_DIR), not through a user
# cache directory; INSTANT_DB_HOME points at the same tree, laid out as `instant-db setup` makes it.
IMAGE_ASSET_HOME=/opt/instant-db
IMAGE_ORT_VERSION=1.31.1
IMAGE_ORT_LIB=$IMAGE_ASSET_HOME/onnxruntime/$IMAGE_ORT_VERSION/libonnxruntime.so.$IMAGE_ORT_VERSION
IMAGE_MODEL_NAME=all-MiniLM-L6-v2
IMAGE_MODEL_DIR=$IMAGE_ASSET_HOME/models/$IMAGE_MODEL_NAME
IMAGE_UID=65532

step() { printf '\n==> %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
die() {
  printf 'error: %s\n' "$1" >&2
  shift
  for line in "$@"; do printf '       %s\n' "$line" >&2; done
  exit 1
}

# Prints "VERSION|REPOSITORY|LICENSE" of the engine package, as cargo resolves them; the
# repository falls back to [workspace.package] (the crates do not inherit it).
workspace_metadata() {
  local json
  json=$(cargo metadata --no-deps --format-version 1 --locked) ||
    die "cargo metadata failed" "run it by hand in the repository root to see why (is Cargo.lock current?)"
  python3 -c '
import json, sys, tomllib
m = json.load(sys.stdin)
p = next(p for p in m["packages"] if p["name"] == "instant-db")
with open(m["workspace_root"] + "/Cargo.toml", "rb") as f:
    ws = tomllib.load(f).get("workspace", {}).get("package", {})
repo = p.get("repository") or ws.get("repository") or ""
print("|".join([p["version"], repo, p.get("license") or ws.get("license") or ""]))
' <<<"$json"
}

# Size of a directory tree in bytes (apparent size: what the image's layer holds).
tree_bytes() { du -sb --apparent-size "$1" | cut -f1; }
# Sizes in MB (10^6 bytes), the unit of the size targets.
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1000000 }'; }
