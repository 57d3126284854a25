#!/usr/bin/env bash
# The distributed census's worker path on loopback (release build): one `surveyor scan` into
# PostgreSQL, then the same test-bed as a census of 6 shards scanned by 1 and by 3
# `surveyor worker` processes. Prints Markdown for docs/benchmarks.md.
#
# Needs PostgreSQL at $PG (default postgres://postgres@127.0.0.1:5432); makes and drops
# one database per run. Every address is in 127.0.0.0/8.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -j2 -p surveyor-cli >&2
bin=$PWD/target/release/surveyor
pg=${PG:-postgres://postgres@127.0.0.1:5432}
tmp=$(mktemp -d)
bed_pid=
dbs=()
cleanup() {
    [ -n "$bed_pid" ] && kill "$bed_pid" 2>/dev/null
    for db in "${dbs[@]}"; do psql -q "$pg/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1; done
    rm -rf "$tmp"
}
trap cleanup EXIT
net=127.91.0.0/18
# Sets $db to the URL of a new database (not in a subshell, so that cleanup knows it).
fresh_db() {
    local name=surveyor_bench_$1_$$
    psql -q "$pg/postgres" -c "CREATE DATABASE $name" >/dev/null
    dbs+=("$name")
    db=$pg/$name
}
now() { date +%s.%N; }

# 5,000 Exchange hosts, nothing else, in their own process (as benches/engine.sh).
"$bin" testbed --hosts 5000 --seed 9 --net $net --hostile-share 0 --non-exchange-share 0 >"$tmp/ready" 2>/dev/null &
bed_pid=$!
for _ in $(seq 1 100); do [ -s "$tmp/ready" ] && break; sleep 0.1; done
port=$(grep -o '"port":[0-9]*' "$tmp/ready" | cut -d: -f2)
fast=(--allow-loopback --rate 0 --network-rate 0 --host-rate 0)

# census s: first lease to the scan finished (from the database); wall s: start until every
# process exited (idle workers poll every --lease/4 s before they see nothing is left).
echo "| run | workers | targets | observations | census s | wall s | targets/s | hosts/s | worker CPU s | database growth MiB |"
echo "|---|---|---|---|---|---|---|---|---|---|"

size() { psql -qtA "$1" -c "SELECT pg_database_size(current_database())"; }
growth() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.1f", (b-a)/1048576}'; }
fresh_db scan
"$bin" migrate --db "$db" 2>/dev/null
empty=$(size "$db")
start=$(now)
/usr/bin/time -f "%U %S" -o "$tmp/time" "$bin" scan $net --ports "$port" --concurrency 512 "${fast[@]}" --output /dev/null --db "$db" 2>/dev/null
end=$(now)
cpu=$(awk '{printf "%.2f", $1+$2}' "$tmp/time")
rm -f "$tmp/time"
obs=$(psql -qtA "$db" -c "SELECT count(*) FROM observations")
wall=$(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.1f", b-a}')
echo "| surveyor scan into PostgreSQL | 1 | 16384 | $obs | $wall | $wall | $(awk -v w="$wall" 'BEGIN{printf "%.0f", 16384/w}') | $(awk -v w="$wall" -v o="$obs" 'BEGIN{printf "%.0f", o/w}') | $cpu | $(growth "$empty" "$(size "$db")") |"

for workers in 1 3; do
    fresh_db "w$workers"
    "$bin" migrate --db "$db" 2>/dev/null
    empty=$(size "$db")
    "$bin" census create --db "$db" --name bench --targets $net --ports "$port" --shards 6 "${fast[@]}" >/dev/null 2>&1
    start=$(now)
    pids=()
    for i in $(seq 1 "$workers"); do
        /usr/bin/time -f "%U %S" -o "$tmp/time$i" "$bin" worker --db "$db" --id "w$i" --lease 10 --concurrency 512 >/dev/null 2>&1 &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
    end=$(now)
    cpu=$(cat "$tmp"/time* | awk 'NR>0 {s+=$1+$2} END {printf "%.2f", s}')
    rm -f "$tmp"/time*
    obs=$(psql -qtA "$db" -c "SELECT count(*) FROM observations")
    state=$(psql -qtA "$db" -c "SELECT state FROM census_jobs")
    [ "$state" = finished ] || { echo "census not finished: $state" >&2; exit 1; }
    wall=$(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.1f", b-a}')
    census=$(psql -qtA "$db" -c "SELECT round(extract(epoch FROM j.finished_at - min(s.started_at))::numeric, 1) FROM census_jobs j JOIN census_shards s ON s.job_id = j.id GROUP BY j.finished_at")
    echo "| census of 6 shards | $workers | 16384 | $obs | $census | $wall | $(awk -v w="$census" 'BEGIN{printf "%.0f", 16384/w}') | $(awk -v w="$census" -v o="$obs" 'BEGIN{printf "%.0f", o/w}') | $cpu | $(growth "$empty" "$(size "$db")") |"
done
