#!/usr/bin/env bash
# Store ingest benchmark: 200,000 census-shaped observations recorded in batches of 500 into
# a fresh PostgreSQL database (127.0.0.1:5432) and a fresh SQLite file, with and without
# verdicts. Prints Markdown rows for docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -j2 -p surveyor-store --example ingest >&2
bin=target/release/examples/ingest
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS surveyor_ingest_bench" >/dev/null 2>&1' EXIT
n=${N:-200000}
echo "| backend | observations | verdicts | seconds | observations/s |"
echo "|---|---|---|---|---|"
for verdicts in yes no; do
    env=()
    [ "$verdicts" = no ] && env=(NO_VERDICT=1)
    psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS surveyor_ingest_bench" -c "CREATE DATABASE surveyor_ingest_bench" >/dev/null 2>&1
    for url in postgres://postgres@127.0.0.1:5432/surveyor_ingest_bench "sqlite:$tmp/$verdicts.db"; do
        line=$(env "${env[@]}" "$bin" "$url" "$n" 500)
        backend=$(echo "$line" | grep -o 'backend=[A-Za-z]*' | cut -d= -f2)
        secs=$(echo "$line" | grep -o 'seconds=[0-9.]*' | cut -d= -f2)
        rate=$(echo "$line" | grep -o 'per_second=[0-9]*' | cut -d= -f2)
        echo "| $backend | $n | $verdicts (3 in 4) | $secs | $rate |" | sed "s/no (3 in 4)/none/"
    done
done
