#!/usr/bin/env bash
# Internet conditions on one machine (docs/benchmarks.md, "Internet conditions (dark space,
# distance)"): in a private network namespace where 127.48.0.0/12 is dark except a 500-host
# test-bed in 127.60.0.0/20 (no hostile hosts, whose tarpits would hold the end of every
# scan for its target timeout), `surveyor scan` sweeps the dark /16 127.60.0.0/16 at its
# defaults (for RUNTIME seconds, default 40) and tuned (connect timeout 3 s, no rates,
# concurrency 16,384, no back-off); ZMap's send time for the /12 and nmap -sS over the /16
# when they are installed (Debian: zmap, nmap); then the tuned sweep again with the hosts
# 20-200 ms away and 1 % of them stalling. One markdown row per run on stdout.
#
#   benches/dark/internet.sh                 # builds target/release/surveyor first
#   SURVEYOR=path/to/surveyor RUNTIME=40 benches/dark/internet.sh
#
# Needs root (or user namespaces), util-linux, iproute2 and nftables; touches nothing outside
# the namespaces it makes (benches/dark/netns.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
if [ -z "${SURVEYOR:-}" ]; then
    (cd "$root" && cargo build --release -j2 -p surveyor-cli >&2)
    SURVEYOR=$root/target/release/surveyor
fi
export SURVEYOR RUNTIME=${RUNTIME:-40}
tuned=(--connect-timeout 3 --rate 0 --network-rate 0 --host-rate 0 --concurrency 16384
    --network-backoff 0)

# Inside a namespace (called back by testbed.sh): one run, one row.
if [ "${1:-}" = "--run" ]; then
    shift
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    scan() {
        /usr/bin/time -f "%M" -o "$tmp/rss" "$SURVEYOR" scan 127.60.0.0/16 --ports "$PORT" \
            --allow-loopback --db "sqlite:$tmp/s.db" --output "$tmp/s.jsonl" "$@" 2>"$tmp/err" || true
        summary=$(grep '^surveyor: scan ' "$tmp/err" | tail -n 1)
        targets=$(sed -nE 's/.*: ([0-9]+) targets in ([0-9.]+) s.*/\1/p' <<<"$summary")
        secs=$(sed -nE 's/.*: ([0-9]+) targets in ([0-9.]+) s.*/\2/p' <<<"$summary")
        timed_out=$(sed -nE 's/.* ([0-9]+) timed out.*/\1/p' <<<"$summary")
        refused=$(sed -nE 's/.* ([0-9]+) refused.*/\1/p' <<<"$summary")
        backed=$(sed -nE 's/.* ([0-9]+) backed off.*/\1/p' <<<"$summary")
        found=$(wc -l <"$tmp/s.jsonl")
        exchange=$(grep -c '"exchange":{' "$tmp/s.jsonl" || true)
        rss=$(($(cat "$tmp/rss") / 1024))
    }
    live=$(wc -l <"$TRUTH")
    answering=$(grep '"exchange":{' "$TRUTH" | grep -vc '"stall"' || true)
    row() {
        printf '| %s | %s | %s | %.1f | %.0f | %s | %s | %s | %s of %s live, %s of %s Exchange | %s |\n' \
            "$1" "$targets" "$(grep -c '"rtt_ms"' "$TRUTH" >/dev/null && echo "20-200 ms, 1 % stall" || echo "none")" \
            "$secs" "$(echo "$targets / $secs" | bc -l)" "$timed_out" "$refused" "$backed" \
            "$found" "$live" "$exchange" "$answering" "$rss"
    }
    for what in "$@"; do
        case "$what" in
        defaults)
            scan --max-runtime "$RUNTIME"
            row "surveyor scan, defaults, --max-runtime $RUNTIME"
            ;;
        tuned)
            scan "${tuned[@]}"
            row "surveyor scan ${tuned[*]}"
            ;;
        zmap)
            command -v zmap >/dev/null || continue
            : >"$tmp/empty"
            t0=$(date +%s.%N)
            zmap -q -i lo -S 127.0.0.1 -G 00:00:00:00:00:00 -r 0 -p "$PORT" -c 0 -b "$tmp/empty" \
                -o /dev/null 127.48.0.0/12 2>"$tmp/zmap.err" || true
            s=$(echo "$(date +%s.%N) - $t0" | bc -l)
            printf '| zmap -r 0 -c 0 (send only; receives nothing on lo) | 1048576 (/12) | none | %.1f | %.0f | – | – | – | – | – |\n' \
                "$s" "$(echo "1048576 / $s" | bc -l)"
            ;;
        nmap)
            command -v nmap >/dev/null || continue
            t0=$(date +%s.%N)
            nmap -sS -Pn -n -p "$PORT" --min-rate 20000 --max-retries 1 -oG "$tmp/n.txt" \
                127.60.0.0/16 >/dev/null 2>&1 || true
            s=$(echo "$(date +%s.%N) - $t0" | bc -l)
            printf '| nmap -sS -Pn -n --min-rate 20000 --max-retries 1 | 65536 | none | %.1f | %.0f | – | – | – | %s of %s live | – |\n' \
                "$s" "$(echo "65536 / $s" | bc -l)" "$(grep -c '/open/' "$tmp/n.txt" || true)" "$live"
            ;;
        esac
    done
    exit 0
fi

echo "| run | targets | distance | s | addresses/s | timed out | refused | backed off | found | peak RSS MiB |"
echo "|---|---|---|---|---|---|---|---|---|---|"
DARK=127.48.0.0/12 "$here/testbed.sh" --hosts 500 --net 127.60.0.0/20 --seed 1 --hostile-share 0 \
    -- "$0" --run defaults tuned zmap nmap
DARK=127.48.0.0/12 "$here/testbed.sh" --hosts 500 --net 127.60.0.0/20 --seed 1 --hostile-share 0 \
    --rtt 20-200 --stall-share 0.01 -- "$0" --run tuned
