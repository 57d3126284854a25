#!/usr/bin/env bash
# Store ingest benchmark: census-shaped observations recorded through `ScanStore::record` into
# a fresh PostgreSQL database (127.0.0.1:5432) and a fresh SQLite file. Prints Markdown tables
# for docs/benchmarks.md:
#   1. 200,000 observations in batches of 500, with and without verdicts, and in batches of
#      5,000 with verdicts, both backends;
#   2. PostgreSQL with 1 and 2 concurrent writers, N_LARGE observations (default 1,000,000)
#      with verdicts, batches of 500 and 2,000.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -j2 -p surveyor-store --example ingest >&2
bin=target/release/examples/ingest
tmp=$(mktemp -d)
db=surveyor_ingest_bench
pg=postgres://postgres@127.0.0.1:5432/$db
fresh_pg() {
    psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null 2>&1
}
trap 'rm -rf "$tmp"; psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1' EXIT
field() { echo "$1" | grep -o "$2=[0-9.A-Za-z]*" | cut -d= -f2; }

n=${N:-200000}
echo "| backend | observations | verdicts | batch | seconds | observations/s |"
echo "|---|---|---|---|---|---|"
# 500 a batch is what a scan stores; 5,000 is what `surveyor ingest` stores.
for run in "yes 500" "no 500" "yes 5000"; do
    read -r verdicts batch <<<"$run"
    env=()
    [ "$verdicts" = no ] && env=(NO_VERDICT=1)
    fresh_pg
    for url in "$pg" "sqlite:$tmp/$verdicts-$batch.db"; do
        line=$(env "${env[@]}" "$bin" "$url" "$n" "$batch")
        label=$([ "$verdicts" = yes ] && echo "yes (3 in 4)" || echo none)
        echo "| $(field "$line" backend) | $n | $label | $batch | $(field "$line" seconds) | $(field "$line" per_second) |"
    done
done

large=${N_LARGE:-1000000}
echo
echo "| PostgreSQL writers | batch | observations | seconds | observations/s |"
echo "|---|---|---|---|---|"
for batch in 500 2000; do
    for writers in 1 2; do
        fresh_pg
        line=$(WRITERS=$writers "$bin" "$pg" "$large" "$batch")
        echo "| $writers | $batch | $large | $(field "$line" seconds) | $(field "$line" per_second) |"
    done
done
