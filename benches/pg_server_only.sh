#!/usr/bin/env bash
# What PostgreSQL on this machine can store with no client at all: the ingest example first
# records N observations (default 200,000, permuted addresses, verdicts on three in four)
# into a fresh database at 127.0.0.1:5432; then the server stores those very rows again into
# new scans, in one session and in two sessions at once, two ways:
#   - `INSERT … SELECT` from the stored rows: heap, index and WAL work only;
#   - `COPY … FROM` a binary file the server wrote itself: the store's own path (binary COPY,
#     JSON checked on the way in) without the client, the network or the client's CPU.
# rows/s here bounds what any client can reach on the same machine. Needs a superuser (the
# server reads and writes the files in /tmp). Prints a Markdown table for docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -j2 -p surveyor-store --example ingest >&2
db=surveyor_server_only_bench
psql=(psql -h 127.0.0.1 -U postgres -d "$db" -qAt)
psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null 2>&1
files=/tmp/surveyor_server_only_$$
trap 'rm -f "$files"_*.bin; psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1' EXIT
n=${N:-200000}
target/release/examples/ingest "postgres://postgres@127.0.0.1:5432/$db" "$n" 500 >&2

columns=$("${psql[@]}" -c "SELECT string_agg(attname, ', ' ORDER BY attnum) FROM pg_attribute
    WHERE attrelid = 'observations'::regclass AND attnum > 0 AND NOT attisdropped
    AND attname NOT IN ('id', 'scan_id')")
new_scan() {
    "${psql[@]}" -c "INSERT INTO scans (started_at, as_of, targets, ports, tool_version)
        VALUES (now(), '2026-11-23', 'server only', '{443}', 'bench') RETURNING id"
}
insert_select() { # scan id
    "${psql[@]}" -c "INSERT INTO observations (scan_id, $columns)
        SELECT $1, $columns FROM observations WHERE scan_id = 1" >/dev/null
}
copy_file() { # scan id; the file was written beforehand, see below
    "${psql[@]}" -c "COPY observations (scan_id, $columns) FROM '${files}_$1.bin'
        (FORMAT binary)" >/dev/null
}
"${psql[@]}" -c "CHECKPOINT"

echo "| method | sessions | rows | seconds | rows/s |"
echo "|---|---|---|---|---|"
for round in 1 2; do
    for method in insert_select copy_file; do
        for sessions in 1 2; do
            scans=()
            for _ in $(seq "$sessions"); do
                scan=$(new_scan)
                scans+=("$scan")
                [ "$method" = copy_file ] && "${psql[@]}" -c "COPY (SELECT $scan::int8, $columns
                    FROM observations WHERE scan_id = 1) TO '${files}_$scan.bin' (FORMAT binary)"
            done
            start=$(date +%s.%N)
            for scan in "${scans[@]}"; do "$method" "$scan" & done
            wait
            end=$(date +%s.%N)
            rm -f "$files"_*.bin
            rows=$((n * sessions))
            label=$([ "$method" = copy_file ] && echo "COPY from a server file" || echo "INSERT … SELECT")
            awk -v m="$label" -v s="$sessions" -v r="$rows" -v a="$start" -v b="$end" \
                'BEGIN { printf "| %s | %d | %d | %.2f | %.0f |\n", m, s, r, b - a, r / (b - a) }'
        done
    done
done
