#!/usr/bin/env bash
# Exchange fingerprinting at a distance: a test-bed of HOSTS (default 20,000) Exchange hosts
# 20-200 ms away with 1 % stalling, all on loopback (no dark space needed: only live hosts are
# probed, as after a SYN sweep), scanned as a list with rates off and a window of CONC
# (default 8,192). The test-bed makes its keys before it reports ready (--eager-certs), as
# real servers hold theirs. Prints when the last non-stalled host's observation came out
# (counted from the scan's start), the rate that gives, the steady rate between the 10th and
# the 90th percentile, and the peak RSS and CPU seconds of scanner and test-bed. The delay is
# the test-bed's own (docs/testbed.md, "Dark space and distance"). SURVEYOR=… uses another binary;
# NET=… another test-bed net (the default /17 holds up to about 30,000 hosts; HOSTS=60000 wants
# NET=127.64.0.0/15).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${SURVEYOR:-}" ]; then cargo build --release -j2 -p surveyor-cli >&2; fi
S=${SURVEYOR:-$(pwd)/target/release/surveyor}
tmp=$(mktemp -d)
$S testbed --hosts ${HOSTS:-20000} --seed 5 --net ${NET:-127.70.0.0/17} --ports 0/https --hostile-share 0 --non-exchange-share 0 \
   --rtt 20-200 --stall-share 0.01 --eager-certs --truth $tmp/truth.jsonl > $tmp/bed.out 2>&1 &
bed=$!
for i in $(seq 1 600); do grep -q "port" $tmp/bed.out 2>/dev/null && [ -s $tmp/truth.jsonl ] && break; sleep 0.2; done
sleep 2
port=$(python3 -c "import json; print(json.loads(open('$tmp/truth.jsonl').readline())['port'])")
python3 -c "import json; [print(json.loads(l)['ip']) for l in open('$tmp/truth.jsonl')]" > $tmp/targets.txt
bed_cpu() { awk '{print $14+$15}' /proc/$bed/stat; }
b0=$(bed_cpu)
# The reader only stamps lines as they come; parsing waits until the scan is over, so the
# measurement takes no CPU from the scan.
/usr/bin/time -f "%M %e %U %S" -o $tmp/time $S scan --targets-file $tmp/targets.txt --ports $port --allow-loopback \
   --rate 0 --network-rate 0 --host-rate 0 --concurrency ${CONC:-8192} --db sqlite:$tmp/s.db --output - 2> $tmp/err | python3 -c "
import sys,time,json
t0=time.monotonic()
got=[(time.monotonic()-t0, line) for line in sys.stdin.buffer]
with open('$tmp/arrive.txt','w') as f:
    for t,line in got:
        o=json.loads(line)
        f.write(f'{t:.3f} {1 if o.get(\"exchange\") else 0} {o[\"status\"]}\n')
" || true
bed_ticks=$(( $(bed_cpu) - b0 ))
grep "^surveyor: scan" $tmp/err | tail -1
python3 - <<PY
rows=[l.split() for l in open('$tmp/arrive.txt')]
ex=sorted(float(r[0]) for r in rows if r[1]=='1' and r[2]=='success')
stall=sum(1 for l in open('$tmp/truth.jsonl') if '"stall"' in l)
n=len(ex); last=ex[-1]; a=ex[n//10]; b=ex[9*n//10]
print(f"Exchange hosts fingerprinted (success): {n}, stalling hosts {stall}")
print(f"the last non-stalled one done {last:.2f} s after the scan started -> {n/last:.0f}/s")
print(f"steady: {0.8*n/(b-a):.0f}/s between the 10th and 90th percentile ({a:.2f} s to {b:.2f} s)")
PY
read rss wall user sys < $tmp/time
echo "scanner: peak RSS $((rss/1024)) MiB, wall $wall s (stalls hold until the target timeout), CPU ${user}+${sys} s; test-bed CPU $(echo "scale=2; $bed_ticks/100" | bc) s"
kill $bed; wait $bed 2>/dev/null || true
rm -rf $tmp
