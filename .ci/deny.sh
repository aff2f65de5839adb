#!/usr/bin/env bash
# cargo deny (advisories, bans, licenses, sources; policy in deny.toml) with no network: the RustSec
# advisory database comes from the git bundle in shared/ beside the repository
# (shared/advisory-db.bundle, refreshed each wave), crates from `cargo fetch`. Checks the
# workspace, then fuzz/ (its own Cargo.lock, outside the workspace). Needs cargo-deny on PATH.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"

bundle="${TESSERA_ADVISORY_BUNDLE:-$repo/../shared/advisory-db.bundle}"
if [ ! -f "$bundle" ]; then
    echo "deny.sh: no advisory database bundle at $bundle (shared/ beside the repository);" >&2
    echo "         cargo deny cannot check advisories offline without it" >&2
    exit 1
fi

# cargo-deny looks for the database at <db-path>/<last URL component>-<hash of the URL>; for the
# default https://github.com/rustsec/advisory-db that is advisory-db-3157b0e258782691
# (cargo-deny 0.18 and later). deny.toml reads db-path from TESSERA_ADVISORY_DBS.
export TESSERA_ADVISORY_DBS="${CARGO_TARGET_DIR:-$repo/target}/advisory-dbs"
db="$TESSERA_ADVISORY_DBS/advisory-db-3157b0e258782691"
rm -rf "$db"
mkdir -p "$TESSERA_ADVISORY_DBS"
git -c init.defaultBranch=main clone --quiet "$bundle" "$db"
echo "advisory database: $(git -C "$db" log -1 --format='%h of %cs')"

# Offline, cargo-deny reads every crate's manifest (licenses) from the local cache: fetch them
# all, for every platform.
cargo fetch --locked
# An error names the crate and its Cargo.lock entry; `cargo tree -i <crate>` shows what pulls it in.
cargo deny --offline --locked check --hide-inclusion-graph advisories bans licenses sources

# deny.toml lets `rsa` in under openidconnect, a dev-dependency of the tests; nothing that ships
# (normal and build dependencies, every platform) may depend on it.
shipped_rsa="$(cargo tree --locked --workspace --target all -e normal,build -i rsa 2>/dev/null || true)"
if [ -n "$shipped_rsa" ]; then
    echo "deny.sh: the rsa crate (RUSTSEC-2023-0071) is a dependency of shipped code:" >&2
    echo "$shipped_rsa" >&2
    exit 1
fi

# fuzz/ follows the workspace's crates; its lock may lag behind them (fuzz/run.sh's build
# updates it the same way), so it is not --locked.
cargo fetch --manifest-path fuzz/Cargo.toml
cargo deny --offline --manifest-path fuzz/Cargo.toml --config "$repo/deny.toml" \
    check --hide-inclusion-graph advisories bans licenses sources
