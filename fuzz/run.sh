#!/usr/bin/env bash
# Runs every cargo-fuzz target in turn for a number of seconds each (default 60).
#
#   fuzz/run.sh            # 60 s per target
#   fuzz/run.sh 300        # 5 min per target
#   fuzz/run.sh 300 pages  # only the named targets
#
# Needs the nightly toolchain (`rustup toolchain install nightly`); installs cargo-fuzz if it
# is missing. New corpus entries go to fuzz/corpus/<target> (not committed), crashes to
# fuzz/artifacts/<target>. See docs/fuzzing.md.
set -euo pipefail

seconds="${1:-60}"
shift || true
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."

if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
    echo "usage: $0 [seconds per target, default 60] [target...]" >&2
    exit 2
fi
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "cargo fuzz needs the nightly toolchain: rustup toolchain install nightly" >&2
    exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

failed=()
for target in "${targets[@]}"; do
    echo "=== $target: ${seconds}s"
    mkdir -p "fuzz/corpus/$target"
    args=(-max_total_time="$seconds" -print_final_stats=1)
    if [ -f "fuzz/seeds/$target.dict" ]; then
        args+=(-dict="fuzz/seeds/$target.dict")
    fi
    # The first corpus directory receives new inputs; the committed seeds are only read.
    if ! cargo +nightly fuzz run "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" \
        -j1 -- "${args[@]}"; then
        failed+=("$target")
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "crashes or failures in: ${failed[*]} (inputs under fuzz/artifacts/)" >&2
    exit 1
fi
echo "all targets ran ${seconds}s without a crash"
