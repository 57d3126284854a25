#!/usr/bin/env bash
# Scan-engine benchmarks on loopback (release build): empty-address sweep rate, Exchange
# fingerprinting rate against a separate test-bed process, and peak memory against the size of
# the target space. Prints Markdown for docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -j2 -p surveyor-cli >&2
bin=$PWD/target/release/surveyor
tmp=$(mktemp -d)
bed_pid=
cleanup() { [ -n "$bed_pid" ] && kill "$bed_pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
fast=(--allow-loopback --rate 0 --network-rate 0 --host-rate 0 --output /dev/null)

measure() { # label, then the scan arguments (stored in a fresh SQLite file unless DB is set)
    local label=$1; shift
    /usr/bin/time -v "$bin" scan "$@" --db "${DB:-sqlite:$tmp/$RANDOM.db}" 2>"$tmp/err" >/dev/null
    local wall cpu_s rss targets answered exchange
    wall=$(grep -o "targets in [0-9.]* s" "$tmp/err" | awk '{print $3}')
    cpu_s=$(awk '/User time|System time/ {s+=$NF} END {printf "%.2f", s}' "$tmp/err")
    rss=$(grep "Maximum resident" "$tmp/err" | awk '{printf "%.0f", $NF/1024}')
    targets=$(grep -o "[0-9]* targets in" "$tmp/err" | awk '{print $1}')
    answered=$(grep -o "s, [0-9]* answered" "$tmp/err" | awk '{print $2}')
    exchange=$(grep -o "[0-9]* Exchange$" "$tmp/err" | awk '{print $1}')
    local per_host=-
    [ "$answered" -gt 0 ] && per_host=$(awk -v c="$cpu_s" -v a="$answered" 'BEGIN{printf "%.2f", c*1000/a}')
    echo "| $label | $targets | $answered | $exchange | $wall | $(awk -v t="$targets" -v w="$wall" 'BEGIN{printf "%.0f", t/w}') | $(awk -v a="$answered" -v w="$wall" 'BEGIN{printf "%.0f", a/w}') | $cpu_s | $per_host | $rss |"
}

echo "| run | targets | answered | Exchange | scan s | targets/s | answered/s | CPU s | CPU ms per answered | peak RSS MiB |"
echo "|---|---|---|---|---|---|---|---|---|---|"
# 1. Empty addresses: nothing listens on port 9 anywhere in 127.90.0.0/16.
measure "empty /16, port 9, concurrency 1024" 127.90.0.0/16 --ports 9 --concurrency 1024 "${fast[@]}"
# 2. Memory against target space: a /20 and a /10 (the /10 stopped after 20 s).
measure "empty /20 (memory)" 127.92.0.0/20 --ports 9 --concurrency 1024 "${fast[@]}"
measure "empty /10, 20 s (memory)" 127.64.0.0/10 --ports 9 --concurrency 1024 --max-runtime 20 "${fast[@]}"
# 3. Exchange fingerprinting: 5,000 Exchange hosts, nothing else, in another process.
"$bin" testbed --hosts 5000 --seed 9 --net 127.91.0.0/18 --hostile-share 0 --non-exchange-share 0 --truth "$tmp/truth.jsonl" >"$tmp/ready" 2>/dev/null &
bed_pid=$!
for _ in $(seq 1 100); do [ -s "$tmp/ready" ] && break; sleep 0.1; done
port=$(grep -o '"port":[0-9]*' "$tmp/ready" | cut -d: -f2)
measure "5,000 Exchange hosts in a /18, NTLM on" 127.91.0.0/18 --ports "$port" --concurrency 512 "${fast[@]}"
# The fingerprinting stage alone: the 5,000 live addresses as a list, as ZMap's output gives
# them to the second stage.
grep -o '"ip":"[^"]*"' "$tmp/truth.jsonl" | cut -d'"' -f4 >"$tmp/hosts.txt"
measure "5,000 Exchange hosts as a list (ZMap output), NTLM on" --targets-file "$tmp/hosts.txt" --ports "$port" --concurrency 1024 "${fast[@]}"
measure "5,000 Exchange hosts in a /18, --no-ntlm" 127.91.0.0/18 --ports "$port" --concurrency 512 --no-ntlm "${fast[@]}"
# The same into PostgreSQL (127.0.0.1:5432), whose server process does the storing.
pg=postgres://postgres@127.0.0.1:5432/surveyor_engine_bench
psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS surveyor_engine_bench" -c "CREATE DATABASE surveyor_engine_bench" >/dev/null 2>&1
DB=$pg measure "5,000 Exchange hosts in a /18, NTLM on, into PostgreSQL" 127.91.0.0/18 --ports "$port" --concurrency 512 "${fast[@]}"
psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS surveyor_engine_bench" >/dev/null 2>&1
# 4. The floor: the same hosts, TLS handshake and one GET / each (--plan banner).
measure "5,000 Exchange hosts in a /18, floor (--plan banner)" 127.91.0.0/18 --ports "$port" --concurrency 512 --plan banner "${fast[@]}"
