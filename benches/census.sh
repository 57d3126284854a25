#!/usr/bin/env bash
# End-to-end census benchmark: `surveyor demo --no-serve` (test-bed + scan + store + report)
# at several fleet sizes, all on loopback. Prints Markdown rows for docs/benchmarks.md.
# Usage: benches/census.sh            (builds the release binary first)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -j2 -p surveyor-cli >&2
bin=target/release/surveyor
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "| fleet | addresses | wall s | scan s | CPU % | peak RSS MiB | Exchange found |"
echo "|---|---|---|---|---|---|---|"
run() {
    local hosts=$1 net=$2
    /usr/bin/time -v "$bin" demo --no-serve --hosts "$hosts" --net "$net" --db "sqlite:$tmp/$hosts.db" \
        >"$tmp/out" 2>"$tmp/err"
    local wall cpu rss scan found addresses
    wall=$(grep "Elapsed (wall clock)" "$tmp/err" | awk '{print $NF}' | awk -F: '{print $(NF-1)*60+$NF}')
    cpu=$(grep "Percent of CPU" "$tmp/err" | awk '{print $NF}')
    rss=$(grep "Maximum resident" "$tmp/err" | awk '{printf "%.0f", $NF/1024}')
    scan=$(grep -o "scanned in [0-9.]* s" "$tmp/err" | awk '{print $3}')
    found=$(grep -o "[0-9]* Exchange$" "$tmp/err" | awk '{print $1}')
    addresses=$(grep -o "scan [0-9]*: [0-9]* targets" "$tmp/err" | awk '{print $3}')
    echo "| $hosts hosts | $addresses ($net) | $wall | $scan | $cpu | $rss | $found |"
}
run 300 127.77.0.0/20
run 3000 127.80.0.0/16
run 10000 127.81.0.0/15
run 100000 127.64.0.0/14
