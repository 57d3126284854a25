#!/usr/bin/env bash
# Runs `surveyor testbed` and a command in a private network namespace where the dark nets
# are silent except the test-bed's live hosts (benches/dark/netns.sh).
#
#   benches/dark/testbed.sh [TESTBED ARG]... -- COMMAND [ARG]...
#
# TESTBED ARGs go to `surveyor testbed` (e.g. --hosts 500 --net 127.48.16.0/20 --rtt 20-200
# --stall-share 0.01), except --truth. The command runs once the test-bed is ready and its
# hosts are live, with PORT (the HTTPS port), TRUTH (the truth file) and READY (the
# test-bed's readiness line) in its environment; the test-bed stops when it ends, and the
# script exits with the command's status.
#
# Environment: SURVEYOR, the binary (default target/release/surveyor); DARK, the dark nets,
# space separated (default the test-bed's --net); TRUTH, where to keep the truth (default a
# temporary file, removed at the end).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
SURVEYOR=${SURVEYOR:-$root/target/release/surveyor}
export SURVEYOR

usage() {
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

testbed=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    testbed+=("$1")
    shift
done
[ $# -gt 1 ] || usage
shift
[ -x "$SURVEYOR" ] || { echo "testbed.sh: no binary at $SURVEYOR (cargo build --release, or set SURVEYOR)" >&2; exit 2; }

if [ -z "${SURVEYOR_DARK_TESTBED:-}" ]; then
    net=127.77.0.0/22 # surveyor testbed's default
    for ((i = 0; i < ${#testbed[@]}; i++)); do
        case "${testbed[i]}" in
        --net) net=${testbed[i + 1]} ;;
        --net=*) net=${testbed[i]#--net=} ;;
        esac
    done
    read -r -a nets <<<"${DARK:-$net}"
    darks=()
    for n in "${nets[@]}"; do darks+=(--dark "$n"); done
    SURVEYOR_DARK_TESTBED=1 exec "$here/netns.sh" "${darks[@]}" -- "$0" "${testbed[@]}" -- "$@"
fi
unset SURVEYOR_DARK_TESTBED

work=$(mktemp -d)
TRUTH=${TRUTH:-$work/truth.jsonl}
tb=
cleanup() {
    if [ -n "$tb" ]; then
        kill -TERM "$tb" 2>/dev/null || true
        wait "$tb" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
# The truth is written before the readiness line, so the live set can follow it.
"$SURVEYOR" testbed "${testbed[@]}" --truth "$TRUTH" >"$work/ready" &
tb=$!
until grep -q '"ready":true' "$work/ready" 2>/dev/null; do
    if ! kill -0 "$tb" 2>/dev/null; then
        echo "testbed.sh: the test-bed did not start" >&2
        exit 1
    fi
    sleep 0.1
done
READY=$(head -n 1 "$work/ready")
PORT=$(sed -nE 's/.*"port":([0-9]+).*/\1/p' <<<"$READY")
export READY PORT TRUTH
"$here/live.sh" "$TRUTH"
status=0
"$@" || status=$?
exit "$status"
