#!/usr/bin/env bash
# Side by side with nmap (Debian package) on the same test-bed fleet, loopback only:
# nmap -p<port> --script http-title,ssl-cert,http-ntlm-info versus `surveyor scan`.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v nmap >/dev/null || { echo "nmap is not installed (apt-get install nmap)" >&2; exit 1; }
cargo build --release -j2 -p surveyor-cli >&2
bin=$PWD/target/release/surveyor
tmp=$(mktemp -d)
bed_pid=
cleanup() { [ -n "$bed_pid" ] && kill "$bed_pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
net=127.93.0.0/22
"$bin" testbed --hosts 500 --seed 4 --net "$net" --hostile-share 0 --truth "$tmp/truth.jsonl" >"$tmp/ready" 2>/dev/null &
bed_pid=$!
for _ in $(seq 1 100); do [ -s "$tmp/ready" ] && break; sleep 0.1; done
port=$(grep -o '"port":[0-9]*' "$tmp/ready" | cut -d: -f2)
exchange_truth=$(grep -c '"exchange":{' "$tmp/truth.jsonl")

start=$(date +%s.%N)
"$bin" scan "$net" --ports "$port" --allow-loopback --rate 0 --network-rate 0 --host-rate 0 \
    --db "sqlite:$tmp/s.db" --output "$tmp/s.jsonl" 2>/dev/null
s_wall=$(echo "$(date +%s.%N) - $start" | bc)
s_hosts=$(wc -l <"$tmp/s.jsonl")
s_exchange=$(grep -c '"exchange":{' "$tmp/s.jsonl" || true)
s_exact=$(grep -c '"build_precision":"exact"' "$tmp/s.jsonl" || true)
s_ntlm=$(grep -c '"ntlm-dns-domain"' "$tmp/s.jsonl" || true)

start=$(date +%s.%N)
nmap -n -Pn -sV --version-light -p "$port" --script http-title,ssl-cert,http-ntlm-info \
    --script-args http-ntlm-info.root=/EWS/Exchange.asmx -oX "$tmp/n.xml" "$net" >/dev/null 2>&1
n_wall=$(echo "$(date +%s.%N) - $start" | bc)
n_hosts=$(grep -c 'state="open"' "$tmp/n.xml" || true)
n_owa=$(grep -c 'id="http-title" output="Outlook' "$tmp/n.xml" || true)
n_ntlm=$(grep -c '<elem key="DNS_Domain_Name">' "$tmp/n.xml" || true)

echo "| tool | wall s | open ports found | Exchange recognised | exact build | NTLM AD domain |"
echo "|---|---|---|---|---|---|"
printf "| surveyor scan | %.1f | %s | %s of %s | %s | %s |\n" "$s_wall" "$s_hosts" "$s_exchange" "$exchange_truth" "$s_exact" "$s_ntlm"
printf "| nmap 7 -sV --version-light (http-title, ssl-cert, http-ntlm-info) | %.1f | %s | %s titled \"Outlook…\" (no build) | 0 | %s |\n" "$n_wall" "$n_hosts" "$n_owa" "$n_ntlm"
