#!/usr/bin/env bash
# Installs Azurite, Microsoft's Azure Storage emulator (npm `azurite`), that the engine's Azure
# Blob Storage backup test runs against, and prints the path of its `azurite-blob` command.
#
# Lands in ${INSTANT_DB_HOME:-~/.cache/instant-db}/tools/azurite-<version>/; a second run reuses it.
# `AZURITE_BLOB=/path/to/azurite-blob` or an `azurite-blob` on PATH takes precedence in scripts/test.sh.
set -euo pipefail

version='3.37.0'
home="${INSTANT_DB_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/instant-db}"
dest="$home/tools/azurite-$version"
bin="$dest/node_modules/.bin/azurite-blob"

if [ -x "$bin" ] && "$bin" --version >/dev/null 2>&1; then
  echo "$bin"
  exit 0
fi
command -v npm >/dev/null || { echo "npm not found: install Node.js and npm, or set AZURITE_BLOB to an azurite-blob command" >&2; exit 1; }
mkdir -p "$dest"
echo "installing azurite@$version (about 360 MB with its modules) from the npm registry" >&2
(cd "$dest" && npm install --silent --no-audit --no-fund "azurite@$version" >&2) \
  || { echo "npm install azurite@$version failed: check access to the npm registry (npm config get registry)" >&2; exit 1; }
"$bin" --version >/dev/null 2>&1 || { echo "the installed $bin does not run" >&2; exit 1; }
echo "$bin"
