#!/usr/bin/env bash
# SYN discovery under Internet conditions, on this machine: inside a private network namespace
# this script makes (`unshare -n`, gone when it ends), a test-bed of 500 hosts in
# 127.60.0.0/20 and nftables dropping every packet to the rest of 127.48.0.0/12, so that space
# is silent. Measured in one run, side by side:
#   1. ZMap's send time for the /12 (`zmap -r 0`, no cooldown): the anchor;
#   2. `surveyor scan --discovery syn --rate 0` of the /12: sweep and L7 of every responder,
#      end to end (its 8 s default cooldown reported apart), peak RSS;
#   3. peak RSS of the same scan of a /16 and a /10 (memory flat in the space's size);
#   4. the dark /16 end to end with a 1 s cooldown, against nmap -sS over the same /16
#      (`--min-rate 20000 --max-retries 1`), when nmap is installed.
# Needs root (namespaces, raw sockets) and Debian's nftables and zmap; touches nothing outside
# the namespace. Prints a Markdown table for docs/benchmarks.md. SURVEYOR=… uses another binary.
set -euo pipefail
if [ -z "${SURVEYOR_BENCH_NETNS:-}" ]; then
    cd "$(dirname "$0")/.."
    if [ -z "${SURVEYOR:-}" ]; then cargo build --release -j2 -p surveyor-cli >&2; fi
    exec env SURVEYOR_BENCH_NETNS=1 CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-}" SURVEYOR="${SURVEYOR:-}" unshare -n "$(pwd)/benches/syn.sh"
fi
cd "$(dirname "$0")/.."
S=${SURVEYOR:-${CARGO_TARGET_DIR:-$(pwd)/target}/release/surveyor}
ip link set lo up
# SYN discovery sends frames on lo (AF_PACKET); lo takes frames from 127/8 to 127/8 only with
# these two, set in this namespace alone.
echo 1 >/proc/sys/net/ipv4/conf/lo/accept_local
echo 1 >/proc/sys/net/ipv4/conf/lo/route_localnet
tmp=$(mktemp -d)
trap 'kill $bed 2>/dev/null; rm -rf "$tmp"' EXIT
$S testbed --hosts 500 --seed 1 --net 127.60.0.0/20 --ports 443/https --hostile-share 0 \
    --truth "$tmp/truth.jsonl" >"$tmp/bed.out" 2>&1 &
bed=$!
for _ in $(seq 1 150); do [ -s "$tmp/truth.jsonl" ] && break; sleep 0.2; done
sleep 1
live=$(python3 -c "import json; print(', '.join(json.loads(l)['ip'] for l in open('$tmp/truth.jsonl')))")
nft -f - <<NFT
table ip dark {
  set live { type ipv4_addr; elements = { $live }; }
  chain in { type filter hook input priority 0; ip daddr 127.0.0.0/8 ip daddr != @live ip daddr != 127.0.0.1 drop; }
}
NFT
exchange=$(python3 -c "import json; print(sum(1 for l in open('$tmp/truth.jsonl') if json.loads(l).get('exchange')))")

now() { date +%s.%N; }
printf '' >"$tmp/empty"
t0=$(now)
zmap -q -i lo -S 127.0.0.1 -G 00:00:00:00:00:00 -r 0 -p 443 -c 0 -b "$tmp/empty" \
    -o /dev/null 127.48.0.0/12 2>"$tmp/zmap.err" || true
t1=$(now)
zmap_s=$(echo "$t1 - $t0" | bc -l)

scan() { # NET [FLAG]...: seconds, exchange found, peak RSS (KiB)
    local db="sqlite:$tmp/$RANDOM.db" start end net=$1
    shift
    start=$(now)
    /usr/bin/time -f "%M" -o "$tmp/rss" "$S" scan "$net" --ports 443 --allow-loopback \
        --discovery syn --rate 0 --network-rate 0 --host-rate 0 --concurrency 1024 \
        --db "$db" --output "$tmp/out.jsonl" "$@" 2>"$tmp/scan.err"
    end=$(now)
    found=$(python3 -c "import json; print(sum(1 for l in open('$tmp/out.jsonl') if json.loads(l).get('exchange')))")
    echo "$(echo "$end - $start" | bc -l) $found $(cat "$tmp/rss")"
}
read -r s12 f12 r12 < <(scan 127.48.0.0/12)
sweep=$(grep -o "[0-9]* SYNs sent" "$tmp/scan.err" | grep -o "[0-9]*" | head -1)
read -r s16 _ r16 < <(scan 127.60.0.0/16)
read -r s10 _ r10 < <(scan 127.0.0.0/10)
read -r s16c1 f16c1 _ < <(scan 127.60.0.0/16 --cooldown 1)
nmap_s=""
if command -v nmap >/dev/null; then
    t0=$(now)
    nmap -sS -Pn -n -p 443 --min-rate 20000 --max-retries 1 -oG "$tmp/nmap.txt" 127.60.0.0/16 >/dev/null 2>&1 || true
    nmap_s=$(echo "$(now) - $t0" | bc -l)
    nmap_live=$(grep -c "443/open" "$tmp/nmap.txt" || true)
fi

echo "| what | addresses | seconds | per second | Exchange found (truth) | peak RSS |"
echo "|---|---|---|---|---|---|"
printf "| ZMap 2.1.1 send, \`-r 0\`, no cooldown | 1,048,576 | %.1f | %.0f | – | – |\n" "$zmap_s" "$(echo "1048576 / $zmap_s" | bc -l)"
printf "| surveyor SYN + L7, end to end (8 s cooldown included) | %s | %.1f | %.0f | %s (%s) | %d MiB |\n" "$sweep" "$s12" "$(echo "1048576 / $s12" | bc -l)" "$f12" "$exchange" "$((r12 / 1024))"
printf "| same, without the cooldown | %s | %.1f | %.0f | | |\n" "$sweep" "$(echo "$s12 - 8" | bc -l)" "$(echo "1048576 / ($s12 - 8)" | bc -l)"
printf "| surveyor SYN + L7 of a /16 | 65,536 | %.1f | | | %d MiB |\n" "$s16" "$((r16 / 1024))"
printf "| surveyor SYN + L7 of a /10 | 4,194,304 | %.1f | %.0f | | %d MiB |\n" "$s10" "$(echo "4194304 / ($s10 - 8)" | bc -l)" "$((r10 / 1024))"
printf "| surveyor SYN + L7 of a /16, \`--cooldown 1\` | 65,536 | %.1f | %.0f | %s (%s) | |\n" "$s16c1" "$(echo "65536 / $s16c1" | bc -l)" "$f16c1" "$exchange"
if [ -n "$nmap_s" ]; then
    printf "| nmap 7.93 -sS of the /16, \`--min-rate 20000 --max-retries 1\` | 65,536 | %.1f | %.0f | %s of 500 live | |\n" "$nmap_s" "$(echo "65536 / $nmap_s" | bc -l)" "$nmap_live"
    printf "\nsurveyor's /16 against nmap's: %.0fx with the default 8 s cooldown, %.0fx with 1 s\n" "$(echo "$nmap_s / $s16" | bc -l)" "$(echo "$nmap_s / $s16c1" | bc -l)"
fi
