#!/usr/bin/env bash
# Exchange fingerprinting at a distance: a test-bed of HOSTS (default 6,000) Exchange hosts
# 20-200 ms away with 1 % stalling, all on loopback (no dark space needed: only live hosts are
# probed, as after a SYN sweep), scanned as a list with rates off and a window of CONC
# (default 8,192). Prints when the last non-stalled host's observation came out, the rate that
# gives, and the scan's peak RSS. The delay is the test-bed's own (benches/dark, docs/testbed.md).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -j2 -p surveyor-cli >&2
S=$(pwd)/target/release/surveyor
tmp=$(mktemp -d)
$S testbed --hosts ${HOSTS:-6000} --seed 5 --net 127.70.0.0/17 --ports 0/https --hostile-share 0 --non-exchange-share 0 \
   --rtt 20-200 --stall-share 0.01 --truth $tmp/truth.jsonl > $tmp/bed.out 2>&1 &
bed=$!
for i in $(seq 1 300); do grep -q "port" $tmp/bed.out 2>/dev/null && [ -s $tmp/truth.jsonl ] && break; sleep 0.2; done
sleep 2
port=$(python3 -c "import json; print(json.loads(open('$tmp/truth.jsonl').readline())['port'])")
python3 -c "import json; [print(json.loads(l)['ip']) for l in open('$tmp/truth.jsonl')]" > $tmp/targets.txt
/usr/bin/time -f "%M %e" -o $tmp/time $S scan --targets-file $tmp/targets.txt --ports $port --allow-loopback --rate 0 --network-rate 0 --host-rate 0 \
   --concurrency ${CONC:-8192} --db sqlite:$tmp/s.db --output - 2> $tmp/err | python3 -c "
import sys,time,json
t0=time.monotonic()
with open('$tmp/arrive.txt','w') as f:
    for line in sys.stdin:
        o=json.loads(line)
        f.write(f'{time.monotonic()-t0:.3f} {1 if o.get(\"exchange\") else 0} {o[\"status\"]}\n')
" || true
grep "^surveyor: scan" $tmp/err | tail -1
python3 - <<PY
rows=[l.split() for l in open('$tmp/arrive.txt')]
ex=sorted(float(r[0]) for r in rows if r[1]=='1' and r[2]=='success')
stall=sum(1 for l in open('$tmp/truth.jsonl') if '"stall"' in l)
last=ex[-1]
print(f"Exchange hosts fingerprinted (success): {len(ex)}, stalling hosts {stall}; the last non-stalled one done {last:.2f} s after the first output line -> {len(ex)/last:.0f}/s")
PY
echo "peak RSS KiB, wall s: $(cat $tmp/time)"
kill $bed; wait $bed 2>/dev/null || true
rm -rf $tmp
