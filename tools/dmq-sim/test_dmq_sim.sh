#!/usr/bin/env bash
# ctest tool_dmq_sim: dmq-sim on a tiny grid (seconds). Checks what the
# tool promises and what the protocol guarantees, nothing the seed happens
# to give:
#   - the CSV: the header, one line per grid point in grid order, 13 fields,
#     numbers where numbers belong, every phase finished (exit status 0);
#   - determinism: a second run gives the same figures (wall_s aside);
#   - the figures respond to the input: each line carries its own N, loss
#     and profile; with no loss nothing is declared dead falsely (no probe
#     is ever missed); the killed member is seen dead by all, never sooner
#     than Lifeguard's shortest suspicion when no member died falsely
#     (detect_floor_s, which grows with the profile's timers and log10 N);
#   - the chart: well-formed SVG / HTML, a polyline per series, no script
#     and no reference to the network;
#   - bad options: exit status 2.
# Usage: test_dmq_sim.sh <dmq-sim binary>
set -euo pipefail
bin=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

grid=(--nodes 12,4,12 --loss 0,0.2 --profile fast,lan --seed 7 --steady-s 2
      --settle-s 1 --max-sim-s 60 --quiet)
timeout 120 "$bin" "${grid[@]}" --out "$dir/a" || fail "exit status $?"
timeout 120 "$bin" "${grid[@]}" --out "$dir/b" --html || fail "html run"
[[ -s $dir/a.csv && -s $dir/a.svg && -s $dir/b.html ]] || fail "files missing"

header='profile,loss,nodes,seed,join_s,suspect_s,detect_s,detect_floor_s,false_deaths,bytes_per_member_s,pkts_per_member_s,sim_s,wall_s,transport'
[[ $(head -1 "$dir/a.csv") == "$header" ]] || fail "header"
[[ $(wc -l <"$dir/a.csv") -eq 9 ]] || fail "expected 8 rows"

# grid order: profile, then loss, then N fastest (ascending, each once)
expect="fast,0,4 fast,0,12 fast,0.2,4 fast,0.2,12 lan,0,4 lan,0,12 lan,0.2,4 lan,0.2,12"
got=$(tail -n +2 "$dir/a.csv" | cut -d, -f1-3 | tr '\n' ' ' | sed 's/ $//')
[[ $got == "$expect" ]] || fail "grid order: $got"

awk -F, 'NR > 1 {
  if (NF != 14) { print "fields " NR; bad = 1 }
  if ($14 != "udp+tcp") { print "transport " NR; bad = 1 }
  if ($4 != 7) { print "seed " NR; bad = 1 }
  for (i = 5; i <= 13; i++)
    if ($i !~ /^[0-9]+(\.[0-9]+)?$/) { print "field " i " line " NR ": " $i; bad = 1 }
  if ($5 <= 0) { print "join_s " NR; bad = 1 }
  # the floor holds when no other member was dead meanwhile (it assumes
  # N - 1 live members at the member that declares the death)
  if ($9 == 0 && $7 + 0 < $8 + 0) { print "detected before the floor " NR; bad = 1 }
  if ($7 + 0 < $6 + 0) { print "dead before suspect " NR; bad = 1 }
  if ($2 == 0 && $9 != 0) { print "false deaths without loss " NR; bad = 1 }
  if ($10 <= 0 || $11 <= 0) { print "no traffic " NR; bad = 1 }
  floor[$1 "," $3] = $8
} END {
  # the floor follows the timers: lan (4 x 1 s) above fast (4 x 0.2 s)
  if (!(floor["lan,12"] > floor["fast,12"])) { print "floor by profile"; bad = 1 }
  exit bad
}' "$dir/a.csv" || fail "figures"

# --udp-only: the same grid point without the stream, and it says so
timeout 60 "$bin" --nodes 4 --loss 0 --profile fast --seed 7 --steady-s 1 \
  --settle-s 1 --udp-only --quiet --out "$dir/u" || fail "udp-only run"
awk -F, 'NR == 2 && $14 == "udp" && $9 == 0 && $7 != "" { ok = 1 }
  END { exit !ok }' "$dir/u.csv" || fail "udp-only figures"
grep -q 'UDP only' "$dir/u.svg" || fail "udp-only chart title"

# deterministic: all but wall_s equal
diff <(cut -d, -f1-12,14 "$dir/a.csv") <(cut -d, -f1-12,14 "$dir/b.csv") ||
  fail "not deterministic"

python3 - "$dir/a.svg" "$dir/b.html" <<'PY' || fail "chart"
import sys, xml.etree.ElementTree as E
svg = open(sys.argv[1]).read()
E.fromstring(svg.split("?>", 1)[1])
html = open(sys.argv[2]).read()
for doc in (svg, html):
    low = doc.lower()
    assert "<script" not in low and "http://" not in low.replace(
        'xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in low
# 4 panels x 4 series
assert svg.count("<polyline") == 16, svg.count("<polyline")
assert html.count("<tr>") == 9
PY

for bad in "--nodes 0" "--loss 2" "--profile nope" "--seed 0" "--bogus 1" \
    "--nodes"; do
  set +e
  # shellcheck disable=SC2086
  "$bin" $bad --out "$dir/x" 2>/dev/null
  rc=$?
  set -e
  [[ $rc -eq 2 ]] || fail "'$bad' exit $rc"
done
# (not piped into grep -q: grep's early exit would make --help's write fail)
help=$("$bin" --help) || fail "--help exit status"
grep -q '^SYNOPSIS' <<<"$help" || fail "--help text"
echo "dmq-sim: ok"
