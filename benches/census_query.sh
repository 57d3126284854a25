#!/usr/bin/env bash
# Census query benchmark: 2 scans of 1,000,000 hosts each generated inside a fresh PostgreSQL
# database (127.0.0.1:5432), then finish_scan, statistics (stored aggregates and live) and
# trend timings. N, K (scans) and R (repeats) override the sizes; DB=sqlite runs it on a
# temporary SQLite file instead. Prints key=value lines for docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -j2 -p surveyor-store --example census_query >&2
bin=target/release/examples/census_query
n=${N:-1000000}
k=${K:-2}
r=${R:-200}
if [ "${DB:-postgres}" = sqlite ]; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    "$bin" "sqlite:$tmp/census.db" "$n" "$k" "$r"
else
    trap 'psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS surveyor_census_bench" >/dev/null 2>&1' EXIT
    psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS surveyor_census_bench" \
        -c "CREATE DATABASE surveyor_census_bench" >/dev/null 2>&1
    "$bin" postgres://postgres@127.0.0.1:5432/surveyor_census_bench "$n" "$k" "$r"
fi
