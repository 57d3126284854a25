#!/usr/bin/env bash
# Exports of a 1,000,000-host census (one scan generated in a fresh PostgreSQL database by the
# census_query example), streamed by `surveyor serve` (release) to curl on loopback: time,
# size and rows per format, and the server's peak resident memory (VmHWM) before and after,
# to show that memory stays flat however many rows go out. N overrides the size.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${N:-1000000}
db=surveyor_export_bench
url=postgres://postgres@127.0.0.1:5432/$db
port=${PORT:-18081}
cargo build --release -j2 -p surveyor-store --example census_query >&2
cargo build --release -j2 -p surveyor-cli >&2
out=$(mktemp -d)
cleanup() {
    [ -n "${server:-}" ] && kill "$server" 2>/dev/null || true
    psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
    rm -rf "$out"
}
trap cleanup EXIT
psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
target/release/examples/census_query "$url" "$n" 1 1 >&2
token=$(target/release/surveyor token create --role analyst --name bench --db "$url" 2>/dev/null)
target/release/surveyor serve --db "$url" --listen "127.0.0.1:$port" --rate-per-token 0 \
    2>/dev/null &
server=$!
for _ in $(seq 1 50); do
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
    sleep 0.2
done
hwm() { awk '/VmHWM/ {print $2 / 1024}' "/proc/$server/status"; }
echo "== $n hosts; server peak RSS before any export: $(hwm) MiB"
echo "| format | seconds | MiB out | rows/s | server peak RSS after, MiB |"
echo "|---|---|---|---|---|"
for format in csv jsonl parquet shadowserver; do
    file="$out/export.$format"
    seconds=$( { /usr/bin/time -f %e curl -sf -H "Authorization: Bearer $token" \
        -o "$file" "http://127.0.0.1:$port/api/v1/exports/$format" ; } 2>&1 )
    mib=$(awk -v b="$(stat -c %s "$file")" 'BEGIN {printf "%.1f", b / 1048576}')
    rate=$(awk -v n="$n" -v s="$seconds" 'BEGIN {printf "%.0f", n / s}')
    echo "| $format | $seconds | $mib | $rate | $(hwm) |"
    if [ "$format" = parquet ] && python3 -c 'import duckdb' 2>/dev/null; then
        python3 -c "import duckdb; print('   duckdb reads', duckdb.sql(\"SELECT count(*) FROM '$file'\").fetchall()[0][0], 'rows')" >&2
    fi
    rm -f "$file"
done
