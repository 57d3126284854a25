#!/usr/bin/env bash
# API under load: a 1,000,000-host census (2 scans generated in a fresh PostgreSQL database by
# the census_query example), served by `surveyor serve` (release), loaded by wrk from a second
# process on loopback with the statistics and census requests a dashboard makes, rotating.
# Needs wrk (apt-get install wrk). N, C (connections), D (duration) override the sizes.
# Prints wrk's latency distribution per run for docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${N:-1000000}
c=${C:-16}
d=${D:-30s}
db=surveyor_api_load_bench
url=postgres://postgres@127.0.0.1:5432/$db
port=${PORT:-18080}
cargo build --release -j2 -p surveyor-store --example census_query >&2
cargo build --release -j2 -p surveyor-cli >&2
cleanup() {
    [ -n "${server:-}" ] && kill "$server" 2>/dev/null || true
    psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
    rm -f "${lua:-}"
}
trap cleanup EXIT
psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
# One repeat: the example's own timings are not what is measured here.
target/release/examples/census_query "$url" "$n" 2 1 >&2
target/release/surveyor serve --db "$url" --listen "127.0.0.1:$port" --public-aggregates \
    --rate-per-token 0 2>/dev/null &
server=$!
for _ in $(seq 1 50); do
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
    sleep 0.2
done
lua=$(mktemp --suffix=.lua)
cat >"$lua" <<'LUA'
-- The requests a dashboard makes, in turn.
local paths = {
  "/api/v1/census",
  "/api/v1/statistics?group_by=family,support",
  "/api/v1/statistics?group_by=sector,support",
  "/api/v1/statistics?group_by=version&family=2016",
  "/api/v1/statistics?group_by=patch&support=unsupported",
  "/api/v1/statistics?group_by=cu,support&family=2019",
  "/api/v1/trends?group_by=support",
}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1])
end
LUA
echo "== $n hosts x 2 scans, $c connections, $d, 7 dashboard requests in turn"
wrk -t2 -c"$c" -d"$d" --latency -s "$lua" "http://127.0.0.1:$port"
