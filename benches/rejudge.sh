#!/usr/bin/env bash
# Re-judging benchmark: a finished scan of N observations (default 1,000,000; three in four an
# Exchange server with a verdict) judged again by `surveyor rejudge` with a knowledge base
# that differs from the one it was judged with (the built-in data plus one security update),
# on a fresh SQLite file and a fresh PostgreSQL database (127.0.0.1:5432). Prints a Markdown
# table for docs/benchmarks.md: seconds, observations/s and the peak RSS of the rejudge.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -j2 -p surveyor-store --example ingest >&2
cargo build --release -j2 -p surveyor-cli >&2
ingest=target/release/examples/ingest
surveyor=target/release/surveyor
tmp=$(mktemp -d)
db=surveyor_rejudge_bench
pg=postgres://postgres@127.0.0.1:5432/$db
trap 'rm -rf "$tmp"; psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1' EXIT
psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null

# The newer knowledge base: the built-in one and a security update on SE's newest CU.
"$surveyor" kb export "$tmp/kb" 2>/dev/null
newest=$(grep '^Exchange Server SE,' "$tmp/kb/exchange-builds.csv" | tail -n1)
cu=$(echo "$newest" | cut -d, -f2 | cut -d' ' -f1)
build=$(echo "$newest" | cut -d, -f3)
next="${build%.*}.$(( ${build##*.} + 2 ))"
echo "Exchange Server SE,$cu Bench99SU,$next,2026-11-10,benchmark row,"  >> "$tmp/kb/exchange-builds.csv"
"$surveyor" kb check --kb "$tmp/kb" >/dev/null

n=${N:-1000000}
echo "| backend | observations | seconds | observations/s | peak RSS |"
echo "|---|---|---|---|---|"
for url in "sqlite:$tmp/rejudge.db" "$pg"; do
    FINISH=1 "$ingest" "$url" "$n" 5000 >/dev/null
    start=$(date +%s.%N)
    /usr/bin/time -f "%M" -o "$tmp/rss" "$surveyor" rejudge --db "$url" --kb "$tmp/kb" \
        --format json >"$tmp/out.json"
    end=$(date +%s.%N)
    secs=$(echo "$end - $start" | bc -l)
    judged=$(python3 -c "import json,sys; print(json.load(open('$tmp/out.json'))['changes']['observations'])")
    backend=$([ "${url%%:*}" = sqlite ] && echo SQLite || echo PostgreSQL)
    printf "| %s | %s | %.1f | %.0f | %d MiB |\n" "$backend" "$judged" "$secs" \
        "$(echo "$judged / $secs" | bc -l)" "$(( $(cat "$tmp/rss") / 1024 ))"
done
