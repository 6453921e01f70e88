#!/usr/bin/env bash
# Build the libFuzzer targets of tests/fuzz (clang, ASan + UBSan) and run
# them, each for a bounded time or number of executions (docs/testing.md).
#
#   scripts/fuzz.sh [options] [target...]     targets: envelope msgs ... (all)
#
#   --time S      seconds per target (default 600; --ci: 10)
#   --runs N      stop a target after N executions (per job) instead
#   --jobs J      parallel fuzzing jobs per target (default 1)
#   --build DIR   build directory (default build-fuzz)
#   --no-build    use the binaries already in DIR
#   --merge       afterwards, minimise the target's new inputs into
#                 tests/fuzz/corpus/<target>/ (libFuzzer -merge=1); without
#                 it the source tree is never written
#   --ci          the CI setting: --time 10 (14 targets: about the 135 s
#                 of 9 targets at 15 s before the sealed ones), the rest default
#
# Everything a run writes stays under DIR/fuzz-work/<target>/: the working
# corpus (a copy of the committed seeds plus what libFuzzer finds), crash
# and leak artefacts (artifacts/), the logs (fuzz-N.log of -jobs, run.log)
# and stats.txt (executions, exec/s). The committed corpus
# tests/fuzz/corpus/<target>/ is read as a second, read-only corpus
# directory. Exit status: 0 when every target ran without a finding, 1
# otherwise (the artefact paths are printed). Run long jobs under nice:
# this script already runs the fuzzers with nice -n 19.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 1

time_s=600
runs=""
jobs=1
build=build-fuzz
do_build=1
merge=0
targets=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --time) time_s=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --no-build) do_build=0; shift ;;
    --merge) merge=1; shift ;;
    --ci) time_s=10; shift ;;
    -h|--help) sed -n '2,27p' "${BASH_SOURCE[0]}"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[[ $build = /* ]] || build="$root/$build"

if [[ $do_build == 1 ]]; then
  cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDMQ_WERROR=ON -DDMQ_SANITIZE=ON \
    -DDMQ_FUZZ=ON -DDMQ_BUILD_BENCH=OFF -DDMQ_BUILD_EXAMPLES=OFF >/dev/null ||
    { echo "fuzz.sh: configure failed" >&2; exit 1; }
  cmake --build "$build" -j "${JOBS:-2}" --target fuzzers ||
    { echo "fuzz.sh: build failed" >&2; exit 1; }
fi

if [[ ${#targets[@]} -eq 0 ]]; then
  for f in tests/fuzz/fuzz_*.c; do
    t=${f##*/fuzz_}
    targets+=("${t%.c}")
  done
fi

# ASan: leaks are findings too; UBSan: any report stops the run.
# quarantine_size_mb=16 (default 256): freed blocks stay poisoned for the
# next ~100 executions of a stateful target (~130 KiB freed per execution),
# plenty for a use-after-free within one; with 256 MiB every allocation
# lands on fresh pages (page faults, 400 MB RSS), which halved the stateful
# targets' exec/s (docs/testing.md, "Speed").
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1:quarantine_size_mb=16}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

failed=()
summary=()
for t in "${targets[@]}"; do
  bin="$build/tests/fuzz/fuzz_$t"
  if [[ ! -x $bin ]]; then
    echo "fuzz.sh: no binary $bin" >&2
    failed+=("$t(missing)")
    continue
  fi
  work="$build/fuzz-work/$t"
  mkdir -p "$work/corpus" "$work/artifacts"
  seeds="$root/tests/fuzz/corpus/$t"
  dirs=("$work/corpus")
  [[ -d $seeds ]] && dirs+=("$seeds")
  limit=(-max_total_time="$time_s")
  [[ -n $runs ]] && limit=(-runs="$runs")
  echo "=== fuzz.sh: $t (${limit[*]}, jobs $jobs) ==="
  t0=$SECONDS
  # fuzz-N.log of -jobs land in the working directory: the work dir
  par=()
  [[ $jobs -gt 1 ]] && par=(-jobs="$jobs" -workers="$jobs")
  # -timeout is wall-clock: at nice 19 on a loaded machine one input was
  # starved for 26 s (it runs in milliseconds), so long runs allow 120 s
  # (a real hang still shows as a timeout-* artefact)
  (cd "$work" && nice -n 19 "$bin" "${limit[@]}" "${par[@]}" \
    -artifact_prefix="$work/artifacts/" \
    -print_final_stats=1 -timeout="${FUZZ_TIMEOUT_S:-120}" -rss_limit_mb=2048 \
    "${dirs[@]}") >"$work/run.log" 2>&1
  rc=$?
  logs=("$work/run.log")
  [[ $jobs -gt 1 ]] && logs+=("$work"/fuzz-*.log)
  execs=$(cat "${logs[@]}" 2>/dev/null |
    awk '/stat::number_of_executed_units/ {s += $2} END {print s + 0}')
  secs=$((SECONDS - t0))
  rate=$((execs / (secs > 0 ? secs : 1)))
  echo "$t executions=$execs seconds=$secs exec_per_s=$rate rc=$rc" |
    tee "$work/stats.txt"
  summary+=("$t: $execs execs in ${secs}s ($rate/s)")
  # slow-unit-* files are not findings: an input starved of CPU on a loaded
  # machine (a real hang is a timeout-*)
  if [[ $rc -ne 0 ]] || compgen -G "$work/artifacts/[!s]*" >/dev/null; then
    failed+=("$t")
    grep -h -m5 -E "ERROR|SUMMARY|CHECK failed|runtime error" "${logs[@]}" >&2
    ls "$work"/artifacts/* >&2 2>/dev/null
    continue
  fi
  if [[ $merge == 1 && -d $seeds ]]; then
    (cd "$work" && "$bin" -merge=1 "$seeds" "$work/corpus") >"$work/merge.log" 2>&1 ||
      { echo "fuzz.sh: merge of $t failed (see $work/merge.log)" >&2; failed+=("$t(merge)"); }
  fi
done

echo
printf '%s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz.sh: FAILED: ${failed[*]} (artefacts under $build/fuzz-work/)"
  exit 1
fi
echo "fuzz.sh: ${#targets[@]} targets, no findings"
