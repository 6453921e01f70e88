#!/usr/bin/env bash
# Same-session A/B comparison of two builds of libdmq (e.g. the commit before
# and after a change), alternating the runs so that the machine's drift hits
# both sides alike. Prints, per benchmark and figure, the median and the
# range of each side.
#
#   bench/ab.sh BUILD_A BUILD_B [ROUNDS]          (default 3 rounds)
#
# BUILD_A/BUILD_B are CMake build directories holding bench/cluster_bench and
# bench/delivery_bench. Environment: AB_OUT (results directory, default a new
# temporary one), AB_CLUSTER_ARGS and AB_DELIVERY_ARGS override the benchmark
# arguments (defaults: the figures the issues quote).
set -euo pipefail

if [[ $# -lt 2 ]]; then
  sed -n '2,12p' "$0" >&2
  exit 2
fi
a=$1 b=$2 rounds=${3:-3}
out=${AB_OUT:-$(mktemp -d /tmp/dmq-ab.XXXXXX)}
mkdir -p "$out"
cluster_args=${AB_CLUSTER_ARGS:---nodes 100 --profile lan --settle-s 30 --steady-s 20}
delivery_args=${AB_DELIVERY_ARGS:---modes reliable,best_effort --payload 100,1024}

for side in a b; do
  dir=${!side}
  for prog in cluster_bench delivery_bench; do
    [[ -x $dir/bench/$prog ]] || { echo "ab.sh: $dir/bench/$prog missing" >&2; exit 1; }
  done
done

for ((r = 1; r <= rounds; r++)); do
  for side in a b; do
    dir=${!side}
    echo "ab.sh: round $r/$rounds side $side ($dir)" >&2
    # shellcheck disable=SC2086 # argument lists
    timeout 600 "$dir/bench/cluster_bench" $cluster_args >"$out/cluster.$side.$r.json" 2>"$out/cluster.$side.$r.err" ||
      echo "ab.sh: cluster_bench $side round $r failed (status $?)" >&2
    # shellcheck disable=SC2086
    timeout 600 "$dir/bench/delivery_bench" $delivery_args >"$out/delivery.$side.$r.json" 2>"$out/delivery.$side.$r.err" ||
      echo "ab.sh: delivery_bench $side round $r failed (status $?)" >&2
  done
done

python3 - "$out" "$a" "$b" <<'PY'
import glob, json, os, statistics, sys
out, a, b = sys.argv[1:4]
CLUSTER = ["join_all_s", "fail_detect_all_s", "suspect_all_s", "false_dead", "cpu_pct",
           "bytes_per_member_s", "pkts_per_member_s", "rss_per_member_kib"]
DELIVERY = ["msgs_per_s", "p50_us", "p99_us", "cpu_pct", "loss", "retransmits"]
def rows(kind, side):
    res = {}
    for f in sorted(glob.glob(os.path.join(out, f"{kind}.{side}.*.json"))):
        for line in open(f):
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                j = json.loads(line)
            except ValueError:
                continue
            key = (j.get("mode", "cluster"), j.get("payload", j.get("nodes", "")))
            res.setdefault(key, []).append(j)
    return res
def fmt(v):
    if v is None: return "-"
    return f"{v:.3g}" if isinstance(v, float) else str(v)
def cell(js, field):
    vals = [j[field] for j in js if isinstance(j.get(field), (int, float))]
    if not vals: return "-"
    return f"{fmt(statistics.median(vals))} [{fmt(min(vals))}..{fmt(max(vals))}]"
print(f"A = {a}\nB = {b}\nresults in {out}\n")
for kind, fields in (("cluster", CLUSTER), ("delivery", DELIVERY)):
    ra, rb = rows(kind, "a"), rows(kind, "b")
    for key in sorted(set(ra) | set(rb), key=str):
        print(f"{kind} {key[0]} {key[1]}  (runs: A {len(ra.get(key, []))}, B {len(rb.get(key, []))})")
        print(f"  {'figure':<22} {'A median [min..max]':<32} B median [min..max]")
        for f in fields:
            if not any(f in j for j in ra.get(key, []) + rb.get(key, [])):
                continue
            print(f"  {f:<22} {cell(ra.get(key, []), f):<32} {cell(rb.get(key, []), f)}")
        print()
PY
