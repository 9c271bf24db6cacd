#!/usr/bin/env bash
# Smoke test of the images scripts/build-images.sh made (CI runs it from scripts/test.sh):
#   usage: scripts/smoke-image.sh [ENGINE_ARCHIVE [OPERATOR_ARCHIVE]]
#   default: target/images/instant-db-<version>.tar and instant-db-operator-<version>.tar
#
# `podman run` cannot start containers on this machine kind (crun cannot set rlimits), so each
# archive is unpacked with umoci and its entrypoint run the way the image's config says (argv,
# environment, user) in a sandbox like a locked-down pod's: new mount, PID and network namespaces
# (`unshare --mount --pid --fork --net`, only loopback up, so no network), the root filesystem
# bind-mounted read-only, only /data (a host directory) and /tmp (tmpfs) writable, /proc and a
# minimal /dev. The test talks to the engine from the host side with `nsenter --net` + curl.
#
# Engine: /health/ready is 200, /health/detailed shows the embedding model loaded (384
# dimensions), two documents are ingested over POST /api/documents and a vector search for a
# paraphrase that shares no word with either finds the right one; the process runs as uid/gid
# 65532, cannot write its root filesystem, sees only loopback, and exits 0 on SIGTERM.
# Operator: `--help` and `--version` answer from the same kind of sandbox.
# Both archives: `ctr images import` (what `kind load image-archive` runs) names them right.
# Any failure prints what failed, what to do, and the engine's log.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/images-common.sh
. scripts/images-common.sh

started=$SECONDS
[ "$(id -u)" -eq 0 ] || die "run this script as root" "it mounts file systems and creates namespaces"
for tool in umoci unshare nsenter chroot ip curl python3 tar; do
  command -v "$tool" >/dev/null || die "$tool not found on PATH" "install it (Debian: apt-get install -y umoci util-linux iproute2 curl) and run again"
done

version=
if [ $# -lt 2 ]; then
  IFS='|' read -r version _ _ < <(workspace_metadata)
fi
engine_tar=${1:-$IMAGES_DIR/instant-db-$version.tar}
operator_tar=${2:-$IMAGES_DIR/instant-db-operator-$version.tar}
for f in "$engine_tar" "$operator_tar"; do
  [ -f "$f" ] || die "$f not found" "build the images first: scripts/build-images.sh"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/instant-db-smoke.XXXXXX")
sandbox_pid=
engine_log=$work/engine.log
containerd_pid=
cleanup() {
  if [ -n "$containerd_pid" ]; then
    kill -TERM "$containerd_pid" 2>/dev/null || true
    wait "$containerd_pid" 2>/dev/null || true
  fi
  if [ -n "$sandbox_pid" ] && kill -0 "$sandbox_pid" 2>/dev/null; then
    kill -KILL "$sandbox_pid" 2>/dev/null || true
    wait "$sandbox_pid" 2>/dev/null || true
  fi
  # The sandbox's mounts live in its own mount namespace and vanish with it.
  rm -rf "$work"
}
trap cleanup EXIT
# A command that fails without its own message still says where, with the engine's log.
set -E
trap 'fail "line $LINENO failed: $BASH_COMMAND" "read the messages above"' ERR
fail() {
  local what=$1
  shift
  if [ -s "$engine_log" ]; then
    printf '\n--- engine log (%s) ---\n' "$engine_log" >&2
    tail -n 200 "$engine_log" >&2
    printf -- '--- end of engine log ---\n' >&2
  fi
  die "smoke test: $what" "$@"
}

# unpack ARCHIVE NAME: OCI archive → $work/NAME/{layout,bundle}; prints the image reference.
unpack() {
  local archive=$1 name=$2 ref
  mkdir -p "$work/$name/layout"
  tar -xf "$archive" -C "$work/$name/layout"
  ref=$(python3 - "$work/$name/layout/index.json" <<'EOF'
import json, sys
index = json.load(open(sys.argv[1]))
(m,) = index["manifests"]
a = m.get("annotations", {})
ref, ctr = a.get("org.opencontainers.image.ref.name"), a.get("io.containerd.image.name")
if not ref or ref != ctr:
    sys.exit(f"index.json must name the image in org.opencontainers.image.ref.name and io.containerd.image.name, got {a}")
# Docker before 25 loads the archive through manifest.json: it must name the same image and blobs.
import os
layout = os.path.dirname(sys.argv[1])
blob = lambda d: "blobs/" + d.replace(":", "/", 1)
manifest = json.load(open(os.path.join(layout, blob(m["digest"]))))
(docker,) = json.load(open(os.path.join(layout, "manifest.json")))
want = {"Config": blob(manifest["config"]["digest"]), "RepoTags": [ref],
        "Layers": [blob(l["digest"]) for l in manifest["layers"]]}
if docker != want:
    sys.exit(f"manifest.json is {docker}, want {want}")
print(ref)
EOF
  ) || fail "$archive has no usable index.json or manifest.json" "rebuild it with scripts/build-images.sh"
  umoci unpack --image "$work/$name/layout:$ref" "$work/$name/bundle" >/dev/null ||
    fail "umoci could not unpack $archive" "rebuild it with scripts/build-images.sh"
  printf '%s\n' "$ref"
}

# check_config NAME REF WANT_ENTRYPOINT WANT_CMD: the image config's user, entrypoint, command
# and OCI labels are what the README and the Containerfiles promise.
check_config() {
  python3 - "$work/$1/layout" "$2" "$3" "$4" "$IMAGE_UID" <<'EOF' || fail "image config of $2 is not as documented" "see the message above; fix scripts/build-images.sh"
import json, os, sys
layout, ref, entrypoint, cmd, uid = sys.argv[1:]
def blob(digest):
    algo, hexd = digest.split(":")
    return json.load(open(os.path.join(layout, "blobs", algo, hexd)))
index = json.load(open(os.path.join(layout, "index.json")))
manifest = blob(index["manifests"][0]["digest"])
config = blob(manifest["config"]["digest"])["config"]
version = ref.rsplit(":", 1)[1]
labels = config.get("Labels", {})
problems = []
if config.get("User") != f"{uid}:{uid}":
    problems.append(f"User is {config.get('User')!r}, want {uid}:{uid}")
if config.get("Entrypoint") != [entrypoint]:
    problems.append(f"Entrypoint is {config.get('Entrypoint')}, want [{entrypoint!r}]")
if (config.get("Cmd") or []) != ([cmd] if cmd else []):
    problems.append(f"Cmd is {config.get('Cmd')}, want {[cmd] if cmd else []}")
for key in ("version", "source", "licenses", "title"):
    if not labels.get(f"org.opencontainers.image.{key}"):
        problems.append(f"label org.opencontainers.image.{key} missing")
if labels.get("org.opencontainers.image.version") != version:
    problems.append(f"label version {labels.get('org.opencontainers.image.version')!r} != tag {version!r}")
if problems:
    sys.exit("; ".join(problems))
print(f"    user {config['User']}, entrypoint {config['Entrypoint']}, cmd {config.get('Cmd')}, "
      f"labels: version={version} licenses={labels['org.opencontainers.image.licenses']}")
EOF
}

# The process the image's config describes (umoci writes it into the bundle's config.json):
# sets proc_args (argv), proc_env (KEY=VALUE list) and proc_uid/proc_gid.
read_process() {
  local cfg=$work/$1/bundle/config.json
  mapfile -t proc_args < <(python3 -c 'import json,sys; [print(a) for a in json.load(open(sys.argv[1]))["process"]["args"]]' "$cfg")
  mapfile -t proc_env < <(python3 -c 'import json,sys; [print(a) for a in json.load(open(sys.argv[1]))["process"]["env"]]' "$cfg")
  read -r proc_uid proc_gid < <(python3 -c 'import json,sys; u=json.load(open(sys.argv[1]))["process"]["user"]; print(u["uid"], u["gid"])' "$cfg")
}

# sandbox ROOTFS DATA_DIR ARGS...: runs ARGS (a path inside ROOTFS first) as the image's user
# (proc_uid/proc_gid) in new mount, PID and network namespaces, ROOTFS read-only, DATA_DIR on
# /data, and exactly the image's environment (sandbox_env, one KEY=VALUE a line: bash cannot
# export arrays). It execs unshare, so call it in a subshell: `sandbox ... &` (then $! is the
# unshare process, whose network namespace is the sandbox's) or `$(sandbox ...)`.
sandbox() {
  local rootfs=$1 data=$2
  shift 2
  # shellcheck disable=SC2016 # the inner script expands its own positional parameters
  exec unshare --mount --pid --fork --net --propagation private bash -euc '
    rootfs=$1 data=$2 uid=$3 gid=$4
    shift 4
    ip link set lo up
    mount --bind "$rootfs" "$rootfs"
    mount --bind "$data" "$rootfs/data"
    mount -t tmpfs -o mode=1777,size=64m,nosuid,nodev tmpfs "$rootfs/tmp"
    mount -t proc -o nosuid,nodev,noexec proc "$rootfs/proc"
    mount -t tmpfs -o mode=0755,size=1m,nosuid tmpfs "$rootfs/dev"
    for node in null zero full random urandom; do
      touch "$rootfs/dev/$node"
      mount --bind "/dev/$node" "$rootfs/dev/$node"
    done
    mount -o remount,bind,ro "$rootfs"
    image_env=()
    while IFS= read -r kv; do [ -z "$kv" ] || image_env+=("$kv"); done <<<"$sandbox_env"
    # env -i clears PATH too, so chroot (in /usr/sbin) is named by its full path.
    exec env -i "${image_env[@]}" "$(command -v chroot)" --userspec="$uid:$gid" --groups="$gid" "$rootfs" "$@"
  ' sandbox "$rootfs" "$data" "$proc_uid" "$proc_gid" "$@"
}
export sandbox_env=

# --- engine ---------------------------------------------------------------------------------
step "engine: unpack $engine_tar (umoci)"
t=$SECONDS
engine_ref=$(unpack "$engine_tar" engine)
check_config engine "$engine_ref" /usr/local/bin/instant-db serve
read_process engine
engine_root=$work/engine/bundle/rootfs
for f in bin/sh usr/bin/sh bin/bash usr/bin/apt-get usr/bin/dpkg; do
  [ ! -e "$engine_root/$f" ] || fail "the engine image contains /$f" "the runtime image must have no shell or package manager; fix the trim list in scripts/build-images.sh"
done
for want in "INSTANT_DB_DATA_DIR=/data" "INSTANT_DB_LISTEN=0.0.0.0:8080" \
  "INSTANT_DB_ONNXRUNTIME=$IMAGE_ORT_LIB" "INSTANT_DB_MODEL_DIR=$IMAGE_MODEL_DIR"; do
  grep -qxF "$want" <<<"$(printf '%s\n' "${proc_env[@]}")" || fail "the engine image's environment lacks $want" "set it in scripts/build-images.sh (engine_env)"
done
info "$engine_ref unpacked in $((SECONDS - t))s; $(printf '%s ' "${proc_env[@]}")"

step "engine: serve in a sandbox (read-only root, /data and /tmp writable, no network)"
data=$work/data
mkdir -p "$data"
chown "$proc_uid:$proc_gid" "$data"
chmod 0750 "$data"
# The image listens on 0.0.0.0:8080 for a pod; without API keys the engine serves /api open only
# on loopback, so the sandbox (which has nothing but loopback anyway) overrides the address.
args=("${proc_args[@]}" --listen 127.0.0.1:8080)
info "${args[*]} (uid $proc_uid, gid $proc_gid)"
t=$SECONDS
# The engine's readiness includes the machine's CPU usage, which sysinfo reads from /proc/stat
# for the whole machine (a sandbox or a pod sees the node's); on a shared build machine that is
# often 100 % and would make the engine "not ready" for reasons that have nothing to do with the
# image. Only the CPU thresholds are lifted, for this run alone; memory and disk stay as shipped.
sandbox_env=$(printf '%s\n' "${proc_env[@]}" \
  INSTANT_DB_HEALTH__THRESHOLDS__CPU_PERCENT_WARN=101 INSTANT_DB_HEALTH__THRESHOLDS__CPU_PERCENT_CRITICAL=101)
(sandbox "$engine_root" "$data" "${args[@]}") >"$engine_log" 2>&1 &
sandbox_pid=$!

# The unshare process itself is in the new network namespace (only the PID namespace applies
# to children alone), so nsenter --net into it reaches the engine's loopback.
api() { nsenter --target "$sandbox_pid" --net curl -sS --max-time 60 "$@"; }
engine_pid() { awk '{print $1}' "/proc/$sandbox_pid/task/$sandbox_pid/children" 2>/dev/null; }

deadline=$((SECONDS + 120))
code=
until [ "$code" = 200 ]; do
  kill -0 "$sandbox_pid" 2>/dev/null || fail "the engine exited before it was ready" "read its log above"
  [ $SECONDS -lt $deadline ] || fail "/health/ready was not 200 within 120 s (last: ${code:-no answer})" "read the engine log above"
  sleep 0.5
  code=$(api -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/health/ready 2>/dev/null || true)
done
info "/health/ready 200 after $((SECONDS - t))s"

detailed=$(api http://127.0.0.1:8080/health/detailed) || fail "GET /health/detailed failed" "read the engine log above"
python3 - "$detailed" <<'EOF' || fail "the embedding model is not loaded in the image" "the image must carry ONNX Runtime and the model at the paths its environment names; see the log above"
import json, sys
r = json.loads(sys.argv[1])
m = r["components"]["embedding_model"]
if m["status"] != "healthy" or m["details"].get("dimensions") != 384:
    sys.exit(f"embedding_model component: {m}")
print(f"    /health/detailed: status {r['status']} {r['reasons']}, ready {r['ready']}, embedding_model {m['status']} "
      f"({m['details'].get('model')}, {m['details'].get('dimensions')} dimensions), version {r['version']}")
EOF

step "engine: ingest two documents, vector-search a paraphrase"
ingest=$(api -f -H 'content-type: application/json' -X POST http://127.0.0.1:8080/api/documents -d '{
  "documents": [
    {"name": "smoke-lighthouse", "title": "Lighthouses",
     "text": "A lighthouse is a tower with a bright lamp that guides ships along the coast at night."},
    {"name": "smoke-bread", "title": "Bread",
     "text": "Knead the dough, let it rise for an hour, then bake the loaf in a hot oven."}
  ]}') || fail "POST /api/documents failed: $ingest" "read the engine log above"
python3 - "$ingest" <<'EOF' || fail "ingest did not embed the documents: $ingest" "read the engine log above"
import json, sys
r = json.loads(sys.argv[1])
if r["added"] + r["updated"] != 2 or r["failed"] or r["degraded"] or r["embedded_chunks"] < 2:
    sys.exit("unexpected ingest report")
print(f"    ingested: added {r['added']}, chunks {r['chunks']}, embedded {r['embedded_chunks']}")
EOF
# No word of the query occurs in either document: only the embedding model can find the answer.
search=$(api -f -H 'content-type: application/json' -X POST http://127.0.0.1:8080/api/search \
  -d '{"query": "which building warns sailors about rocks in the dark?", "mode": "vector", "top_k": 2}') ||
  fail "POST /api/search failed: $search" "read the engine log above"
python3 - "$search" <<'EOF' || fail "vector search did not find the right document: $search" "the model in the image may be wrong; rebuild with scripts/build-images.sh"
import json, sys
r = json.loads(sys.argv[1])
hits = r["hits"]
if r.get("degraded") or len(hits) != 2 or hits[0]["document"]["source"] != "api:smoke-lighthouse":
    sys.exit("want the lighthouse document first of two hits, not degraded")
print(f"    search: top hit {hits[0]['document']['source']} (cosine {hits[0]['score']:.3f}), "
      f"then {hits[1]['document']['source']} (cosine {hits[1]['score']:.3f})")
EOF

step "engine: user, read-only root, network"
pid=$(engine_pid)
[ -n "$pid" ] || fail "cannot find the engine process" "read the engine log above"
uids=$(awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$pid/status")
gids=$(awk '/^Gid:/ {print $2, $3, $4, $5}' "/proc/$pid/status")
[ "$uids" = "$IMAGE_UID $IMAGE_UID $IMAGE_UID $IMAGE_UID" ] || fail "the engine runs with uids $uids, want $IMAGE_UID" "keep --user $IMAGE_UID:$IMAGE_UID in scripts/build-images.sh"
[ "$gids" = "$IMAGE_UID $IMAGE_UID $IMAGE_UID $IMAGE_UID" ] || fail "the engine runs with gids $gids, want $IMAGE_UID" "keep --user $IMAGE_UID:$IMAGE_UID in scripts/build-images.sh"
info "engine pid $pid runs as uid/gid $IMAGE_UID ($(awk '/^Groups:/' "/proc/$pid/status"))"
if touch_err=$(nsenter --target "$pid" --mount touch "$engine_root/usr/local/bin/.write-test" 2>&1); then
  fail "the engine's root filesystem is writable in the sandbox" "the smoke test's read-only remount did not apply; check mount(8) supports remount,bind,ro"
fi
grep -q 'Read-only file system' <<<"$touch_err" || fail "writing the root filesystem failed, but not as read-only: $touch_err" "check the sandbox's mounts in this script"
info "root filesystem read-only (a write as root inside the sandbox: Read-only file system)"
links=$(nsenter --target "$pid" --net ip -o link show | awk -F': ' '{print $2}' | tr '\n' ' ')
[ "$links" = "lo " ] || fail "the sandbox has network interfaces besides lo: $links" "run it with unshare --net"
info "network interfaces in the sandbox: $links"
written=$(cd "$data" && find . -mindepth 1 -maxdepth 3 -printf "%P ")
written=${written:0:400}
info "/data holds: $written"

step "engine: SIGTERM, clean exit"
kill -TERM "$pid"
deadline=$((SECONDS + 40))
while kill -0 "$sandbox_pid" 2>/dev/null; do
  [ $SECONDS -lt $deadline ] || fail "the engine did not exit within 40 s of SIGTERM" "read the engine log above"
  sleep 0.5
done
status=0
wait "$sandbox_pid" || status=$?
sandbox_pid=
[ "$status" -eq 0 ] || fail "the engine exited with status $status after SIGTERM" "read the engine log above"
info "exited 0"

# --- operator -------------------------------------------------------------------------------
step "operator: unpack $operator_tar (umoci), --help and --version in the sandbox"
operator_ref=$(unpack "$operator_tar" operator)
check_config operator "$operator_ref" /usr/local/bin/instant-db-operator ""
read_process operator
operator_root=$work/operator/bundle/rootfs
sandbox_env=$(printf '%s\n' "${proc_env[@]}")
mkdir -p "$work/operator-data"
help=$(sandbox "$operator_root" "$work/operator-data" "${proc_args[@]}" --help 2>&1) ||
  fail "instant-db-operator --help failed: $help" "run target/release/instant-db-operator --help to see why"
grep -q -- '--engine-image' <<<"$help" || fail "instant-db-operator --help does not list its options: $help" "check operator/src/main.rs"
ver=$(sandbox "$operator_root" "$work/operator-data" "${proc_args[@]}" --version 2>&1) ||
  fail "instant-db-operator --version failed: $ver" "run target/release/instant-db-operator --version to see why"
[ "$ver" = "instant-db-operator ${operator_ref##*:}" ] || fail "instant-db-operator --version says '$ver', want 'instant-db-operator ${operator_ref##*:}'" "the image tag must be the workspace version"
info "--help lists $(grep -c -- '^ *--' <<<"$help") options; --version: $ver"

# --- the archives load where kind loads them --------------------------------------------------
# `kind load image-archive` runs `ctr images import --all-platforms --digests` in the node; do
# the same against a private containerd (own root, state and socket; no CRI plugin) and check
# the images arrive under their names.
step "archives: ctr images import (what kind load image-archive runs), private containerd"
if ! command -v containerd >/dev/null || ! command -v ctr >/dev/null; then
  info "containerd missing; installing it with apt-get (apt-get install -y containerd)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q containerd >/dev/null ||
    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q containerd >/dev/null; } ||
    die "apt-get install containerd failed" "install containerd by hand (it provides ctr) and run again"
fi
cdir=$work/containerd
mkdir -p "$cdir"
printf 'version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n' >"$cdir/config.toml"
containerd --config "$cdir/config.toml" --root "$cdir/root" --state "$cdir/state" \
  --address "$cdir/sock" >"$cdir/log" 2>&1 &
containerd_pid=$!
ctr_() { ctr --address "$cdir/sock" --namespace smoke "$@"; }
deadline=$((SECONDS + 30))
until ctr_ version >/dev/null 2>&1; do
  kill -0 "$containerd_pid" 2>/dev/null || die "containerd did not start: $(tail -n 5 "$cdir/log")" "see $cdir/log"
  [ $SECONDS -lt $deadline ] || die "containerd did not answer within 30 s" "see $cdir/log"
  sleep 0.5
done
for pair in "$engine_tar|$engine_ref" "$operator_tar|$operator_ref"; do
  IFS='|' read -r tarball ref <<<"$pair"
  out=$(ctr_ images import --all-platforms --digests "$tarball" 2>&1) ||
    die "ctr images import $tarball failed: $out" "rebuild it with scripts/build-images.sh"
  # The list is read whole first: `grep -q` closing the pipe early would fail it under pipefail.
  names=$(ctr_ images ls -q)
  grep -qxF "$ref" <<<"$names" ||
    die "ctr images import $tarball did not create $ref (images: $(tr '\n' ' ' <<<"$names"))" \
      "the archive's index.json must name the image; rebuild it with scripts/build-images.sh"
  info "ctr import $tarball → $ref"
done
kill -TERM "$containerd_pid" 2>/dev/null || true
wait "$containerd_pid" 2>/dev/null || true
containerd_pid=

step "smoke test passed in $((SECONDS - started))s"
