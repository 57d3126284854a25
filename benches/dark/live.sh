#!/usr/bin/env bash
# Inside a namespace made by netns.sh: makes the addresses in FILE live, so they answer
# while the rest of the dark nets stays silent.
#
#   benches/dark/live.sh FILE
#
# FILE is a test-bed truth file (JSON lines, the "ip" of each) or one IPv4 address per line.
set -euo pipefail
[ $# -eq 1 ] || { sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
if ! nft list set inet surveyor_dark live >/dev/null 2>&1; then
    echo "live.sh: no dark space here; run it inside benches/dark/netns.sh" >&2
    exit 2
fi
batch=$(mktemp)
trap 'rm -f "$batch"' EXIT
addresses=$(sed -nE -e 's/.*"ip":"([0-9]+(\.[0-9]+){3})".*/\1/p' -e t \
    -e 's/^[[:space:]]*([0-9]+(\.[0-9]+){3})[[:space:]]*$/\1/p' "$1")
[ -n "$addresses" ] || { echo "live.sh: no address in $1" >&2; exit 1; }
# One nft command per thousand addresses, all loaded in one transaction.
xargs -n 1000 <<<"$addresses" | tr ' ' ',' |
    sed 's/.*/add element inet surveyor_dark live { & }/' >"$batch"
nft -f "$batch"
echo "live.sh: $(wc -l <<<"$addresses") live addresses from $1" >&2
