#!/usr/bin/env bash
# What PostgreSQL on this machine can store with no client at all: the ingest example first
# records N observations (default 200,000, permuted addresses, verdicts on three in four)
# into a fresh database at 127.0.0.1:5432; then the server copies those very rows into new
# scans by `INSERT … SELECT`, in one session and in two sessions at once. No parsing, no
# network, no client CPU: heap, index and WAL work only, so rows/s here bounds what any
# client can reach on the same machine. Prints a Markdown table for docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -j2 -p surveyor-store --example ingest >&2
db=surveyor_server_only_bench
psql=(psql -h 127.0.0.1 -U postgres -d "$db" -qAt)
psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null 2>&1
trap 'psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1' EXIT
n=${N:-200000}
target/release/examples/ingest "postgres://postgres@127.0.0.1:5432/$db" "$n" 500 >&2

columns=$("${psql[@]}" -c "SELECT string_agg(attname, ', ' ORDER BY attnum) FROM pg_attribute
    WHERE attrelid = 'observations'::regclass AND attnum > 0 AND NOT attisdropped
    AND attname NOT IN ('id', 'scan_id')")
new_scan() {
    "${psql[@]}" -c "INSERT INTO scans (started_at, as_of, targets, ports, tool_version)
        VALUES (now(), '2026-11-23', 'server only', '{443}', 'bench') RETURNING id"
}
copy_into() { # scan id
    "${psql[@]}" -c "INSERT INTO observations (scan_id, $columns)
        SELECT $1, $columns FROM observations WHERE scan_id = 1" >/dev/null
}
"${psql[@]}" -c "CHECKPOINT"

echo "| sessions | rows | seconds | rows/s |"
echo "|---|---|---|---|"
for sessions in 1 2 1 2; do
    scans=()
    for _ in $(seq "$sessions"); do scans+=("$(new_scan)"); done
    start=$(date +%s.%N)
    for scan in "${scans[@]}"; do copy_into "$scan" & done
    wait
    end=$(date +%s.%N)
    rows=$((n * sessions))
    awk -v s="$sessions" -v r="$rows" -v a="$start" -v b="$end" \
        'BEGIN { printf "| %d | %d | %.2f | %.0f |\n", s, r, b - a, r / (b - a) }'
done
