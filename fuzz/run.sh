#!/usr/bin/env bash
# Runs every fuzz target for a few seconds from its seed corpus (fuzz/corpus/<target>), failing
# on the first crash (docs/contract.md, "Fuzzing"). cargo-fuzz needs nightly compiler flags:
# RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them. No sanitizer: the workspace forbids
# unsafe code, so what is looked for is panics (failed assertions included); an unoptimised
# build keeps CI's compile time down.
#
#   fuzz/run.sh                      # every target, 5 s each
#   FUZZ_SECONDS=300 fuzz/run.sh form
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v cargo-fuzz >/dev/null; then
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
seconds="${FUZZ_SECONDS:-5}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)

cargo fuzz build -s none --dev
for target in "${targets[@]}"; do
    # New inputs go to a scratch directory: the committed seeds stay as they are.
    scratch=$(mktemp -d)
    echo "== fuzz $target for ${seconds}s"
    if ! cargo fuzz run -s none --dev "$target" "$scratch" "corpus/$target" -- \
        -max_total_time="$seconds" -print_final_stats=0; then
        rm -rf "$scratch"
        echo "fuzz target $target crashed: the input is in fuzz/artifacts/$target/" >&2
        echo "reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run -s none --dev $target fuzz/artifacts/$target/<file>" >&2
        exit 1
    fi
    rm -rf "$scratch"
done
