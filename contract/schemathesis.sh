#!/usr/bin/env bash
# Fuzzes a live `tessera serve --dev` (SQLite in a temp data dir) against the OpenAPI document
# it serves, with schemathesis (docs/contract.md): no response may be a 5xx, and every response
# must conform to the document (status code, content type, headers, body schema). Exits
# non-zero on any failure. Installs schemathesis into contract/.venv (git-ignored) when missing.
#
#   contract/schemathesis.sh               # bounded: a few examples per operation
#   SCHEMATHESIS_MAX_EXAMPLES=200 contract/schemathesis.sh
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-25}"
# A hard cap on the run, whatever schemathesis decides to do.
TIME_CAP_SECS="${SCHEMATHESIS_TIME_CAP_SECS:-240}"

venv=contract/.venv
if [ ! -x "$venv/bin/schemathesis" ] || [ "$("$venv/bin/schemathesis" --version)" != "schemathesis, version $SCHEMATHESIS_VERSION" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

cargo build --locked --quiet --bin tessera
tessera="${CARGO_TARGET_DIR:-target}/debug/tessera"

data_dir=$(mktemp -d)
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$data_dir"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
export TESSERA_DATA_DIR="$data_dir" TESSERA_LISTEN="127.0.0.1:$port"
"$tessera" serve --dev >"$data_dir/serve.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
    curl -fsS "$base/readyz" >/dev/null 2>&1 && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$data_dir/serve.log"; echo "tessera serve exited" >&2; exit 1; }
    sleep 0.1
done
curl -fsS "$base/readyz" >/dev/null

# The dev client's credentials, as --dev keeps them, and a token minted for the dev user with
# the dev client's scopes (api id refresh_token web).
json_field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
client_id=$(json_field client_id <"$data_dir/dev-credentials.json")
client_secret=$(json_field client_secret <"$data_dir/dev-credentials.json")
tokens=$("$tessera" admin token mint --client-id "$client_id" --username demo@example.com --json)
bearer=$(json_field access_token <<<"$tokens")
identity_url=$(json_field id <<<"$tokens")
org_id=$(basename "$(dirname "$identity_url")")
user_id=$(basename "$identity_url")
# Notes for the record operations to find (one may be deleted along the way).
note_ids=()
for title in first second third; do
    note_ids+=("$(curl -fsS "$base/services/data/v65.0/sobjects/Note" -H "Authorization: Bearer $bearer" \
        -H 'Content-Type: application/json' -d "{\"Title\":\"$title\"}" | json_field id)")
done

# Values the generator mixes into path parameters, so that most requests get past "not found"
# to the handlers' logic: one dictionary per parameter (libFuzzer's dictionary format).
dictionary() {
    local name=$1; shift
    printf '"%s"\n' "$@" >"$data_dir/$name.dict"
}
dictionary versions v65.0 v20.0
dictionary objects Note User
dictionary records "${note_ids[@]}" "$user_id"
dictionary orgs "$org_id"
dictionary users "$user_id"
cat >"$data_dir/schemathesis.toml" <<TOML
[auth.openapi.bearer]
bearer = "$bearer"

[auth.openapi.clientBasic]
username = "$client_id"
password = "$client_secret"

[dictionaries.versions]
from-file = "$data_dir/versions.dict"
[dictionaries.objects]
from-file = "$data_dir/objects.dict"
[dictionaries.records]
from-file = "$data_dir/records.dict"
[dictionaries.orgs]
from-file = "$data_dir/orgs.dict"
[dictionaries.users]
from-file = "$data_dir/users.dict"

[parameters]
"path.version" = { dictionary = "versions", probability = 0.9 }
"path.object" = { dictionary = "objects", probability = 0.9 }
"path.id" = { dictionary = "records", probability = 0.8 }
"path.org_id" = { dictionary = "orgs", probability = 0.8 }
"path.user_id" = { dictionary = "users", probability = 0.8 }
TOML

# Redirects are not followed: a 302 to the client's redirect URI is the answer under test.
status=0
SCHEMATHESIS_HOOKS=schemathesis_hooks PYTHONPATH=contract \
    timeout --signal=INT --kill-after=10 "$TIME_CAP_SECS" \
    "$venv/bin/schemathesis" --config-file "$data_dir/schemathesis.toml" run "$base/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,unsupported_method,allow_header_conformance \
    --phases examples,coverage,fuzzing \
    --max-examples "$MAX_EXAMPLES" \
    --max-redirects 0 \
    --workers 1 \
    --seed "${SCHEMATHESIS_SEED:-11}" \
    --generation-database none \
    --report ndjson --report-ndjson-path "$data_dir/events.ndjson" \
    --no-color || status=$?
cp "$data_dir/events.ndjson" "${SCHEMATHESIS_EVENTS:-/dev/null}" 2>/dev/null || true
if [ "$status" -ne 0 ]; then
    echo "---- tessera serve log (last 50 lines)"
    tail -n 50 "$data_dir/serve.log"
    echo "schemathesis found non-conformances (exit $status): see above" >&2
    exit "$status"
fi
