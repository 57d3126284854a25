#!/usr/bin/env bash
# What the hidden-Exchange plan costs and finds (docs/benchmarks.md, "Fingerprinting hidden
# Exchange"): the same target lists scanned by the scanner before the change (OLD, a release
# binary built from an earlier commit) and after it (this tree), each against a test-bed in
# its own process. Prints three Markdown tables.
#
#   git worktree add /tmp/surveyor-old 91deeab
#   (cd /tmp/surveyor-old && CARGO_TARGET_DIR=/tmp/old-target cargo build --release -j2 -p surveyor-cli)
#   OLD=/tmp/old-target/release/surveyor benches/hidden.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=${OLD:?a surveyor binary from before the change}
cargo build --release -j2 -p surveyor-cli >&2
NEW=$PWD/target/release/surveyor
ROUNDS=${ROUNDS:-3}
tmp=$(mktemp -d)
bed_pid=
cleanup() { [ -n "$bed_pid" ] && kill "$bed_pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
fast=(--allow-loopback --rate 0 --network-rate 0 --host-rate 0 --concurrency 512)

bed() { # hosts, seed, net, then testbed options; sets $port and $tmp/truth.jsonl
    [ -n "$bed_pid" ] && kill "$bed_pid" && wait "$bed_pid" 2>/dev/null || true
    rm -f "$tmp/ready"
    "$NEW" testbed --hosts "$1" --seed "$2" --net "$3" --hostile-share 0 "${@:4}" \
        --truth "$tmp/truth.jsonl" >"$tmp/ready" 2>/dev/null &
    bed_pid=$!
    for _ in $(seq 1 300); do [ -s "$tmp/ready" ] && break; sleep 0.1; done
    port=$(jq -r .port "$tmp/ready")
}
list() { jq -r "select($1)|.ip" "$tmp/truth.jsonl" | sed -n "1,${2:-100000}p" >"$tmp/$3.txt"; }
measure() { # label, binary, list name
    /usr/bin/time -v "$2" scan --targets-file "$tmp/$3.txt" --ports "$port" "${fast[@]}" \
        --output /dev/null --db "sqlite:$tmp/$RANDOM.db" 2>"$tmp/err" >/dev/null
    local n wall cpu ex
    n=$(wc -l <"$tmp/$3.txt")
    wall=$(grep -o "targets in [0-9.]* s" "$tmp/err" | awk '{print $3}')
    cpu=$(awk '/User time|System time/ {s+=$NF} END {printf "%.2f", s}' "$tmp/err")
    ex=$(grep -o "[0-9]* Exchange$" "$tmp/err" | awk '{print $1}')
    echo "| $1 | $n | $ex | $wall | $cpu | $(awk -v c="$cpu" -v n="$n" 'BEGIN{printf "%.3f", c*1000/n}') |"
}
header() {
    echo
    echo "| run | hosts | Exchange found | scan s | scanner CPU s | CPU ms per host |"
    echo "|---|---|---|---|---|---|"
}

# 1. Web servers that are not Exchange: plain ones (404 on /owa/, no reason) and SharePoint
#    (401 on /owa/: a reason, so autodiscover and the manifest are asked too).
bed 20000 21 127.97.0.0/16 --non-exchange-share 1
list '.persona|IN("iis-default","nginx","apache","roundcube","zimbra")' 100000 plain
list '.persona=="sharepoint"' 100000 sharepoint
# The SharePoint hosts nine times over, so that both lists are about as long and the two extra
# requests stand out of the noise (the scanner probes a target as often as it is listed).
for _ in $(seq 1 9); do cat "$tmp/sharepoint.txt"; done >"$tmp/sharepoint9.txt" && mv "$tmp/sharepoint9.txt" "$tmp/sharepoint.txt"
header
for _ in $(seq 1 "$ROUNDS"); do
    for l in plain sharepoint; do
        measure "$l, before" "$OLD" "$l"
        measure "$l, after" "$NEW" "$l"
    done
done

# 2. Exchange: direct hosts (the plan must not get dearer), BIG-IP APM portals (which close
#    after every answer: reconnections) and the other portals.
bed 40000 22 127.98.0.0/16 --non-exchange-share 0
list '.persona=="exchange"' 5000 exchange
list '.served_by=="big-ip-apm"' 100000 apm
list '.persona=="exchange-behind-portal" and .served_by!="big-ip-apm"' 100000 portals
header
for _ in $(seq 1 "$ROUNDS"); do
    for l in exchange apm portals; do
        measure "$l, before" "$OLD" "$l"
        measure "$l, after" "$NEW" "$l"
    done
done

# 3. The default mix without hostile hosts: what each scanner counts, per persona.
bed 20000 23 127.99.0.0/16
jq -r .ip "$tmp/truth.jsonl" >"$tmp/all.txt"
for b in OLD NEW; do
    "${!b}" scan --targets-file "$tmp/all.txt" --ports "$port" "${fast[@]}" --as-of 2026-11-23 \
        --db "sqlite:$tmp/$b.db" >"$tmp/$b.jsonl" 2>/dev/null
done
echo
python3 - "$tmp" <<'PY'
import collections, json, sys
d = sys.argv[1]
truth = {h["ip"]: h for h in map(json.loads, open(f"{d}/truth.jsonl"))}
rows = collections.defaultdict(lambda: [0, 0, 0, 0, 0])
for i, b in enumerate(["OLD", "NEW"]):
    for line in open(f"{d}/{b}.jsonl"):
        o = json.loads(line)
        h, ex = truth[o["ip"]], o["exchange"]
        r = rows[h["persona"]]
        if i == 0:
            r[0] += 1
            r[1] += h["exchange"] is not None
        r[2 + i] += ex is not None
        if i == 1:
            t = h["exchange"]
            r[4] += (ex is None) == (t is None) and (ex is None or ex["family"] == t["family"])
print("| persona | hosts | Exchange (truth) | counted before | counted after | right after |")
print("|---|---|---|---|---|---|")
for p, r in sorted(rows.items()):
    print(f"| `{p}` | {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]} |")
PY
