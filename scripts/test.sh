#!/usr/bin/env bash
# Build and run every test suite. This is the README's test command and what
# CI runs (.ci/run).
#
#   scripts/test.sh              release (build/) + sanitizers (build-asan/)
#                                + the Kamailio module and its tests (build-kam/)
#   CI=true scripts/test.sh      ... + clang (build-clang/; libFuzzer fuzzers
#                                with ASan + UBSan in build-fuzz/; the
#                                simulator suites under 200 more seeds)
#   scripts/test.sh asan clang   only the named suites (release|asan|clang|kamailio)
#
# Environment: JOBS (default: number of CPUs), DMQ_SKIP_DEPS=1 to skip
# scripts/deps.sh, CTEST_ARGS extra ctest arguments (e.g. "-L unit").
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 1

jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}

if [[ ${DMQ_SKIP_DEPS:-0} != 1 ]]; then
  bash scripts/deps.sh || { echo "test.sh: scripts/deps.sh failed" >&2; exit 1; }
fi

if [[ $# -gt 0 ]]; then
  suites=("$@")
else
  suites=(release asan kamailio)
  if [[ ${CI:-} == true ]]; then
    suites+=(clang)
  fi
fi

failed=()
passed=()

run_suite() { # name builddir cmake-args...
  local name=$1 dir=$2
  shift 2
  local t0=$SECONDS
  echo
  echo "=== test.sh: suite $name ($dir) ==="
  if ! cmake -S . -B "$dir" "$@"; then
    failed+=("$name(configure)")
    return
  fi
  if ! cmake --build "$dir" -j "$jobs"; then
    failed+=("$name(build)")
    return
  fi
  # shellcheck disable=SC2086 # CTEST_ARGS is a word list
  if ! ctest --test-dir "$dir" --output-on-failure -j "$jobs" ${CTEST_ARGS:-}; then
    failed+=("$name(tests)")
    return
  fi
  passed+=("$name")
  echo "=== test.sh: suite $name passed in $((SECONDS - t0))s ==="
}

for s in "${suites[@]}"; do
  case $s in
    release)
      run_suite release build \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDMQ_WERROR=ON -DDMQ_SANITIZE=OFF ;;
    asan)
      run_suite asan build-asan \
        -DCMAKE_BUILD_TYPE=Debug -DDMQ_WERROR=ON -DDMQ_SANITIZE=ON ;;
    clang)
      run_suite clang build-clang \
        -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DDMQ_WERROR=ON -DDMQ_SANITIZE=OFF
      # The libFuzzer targets with ASan + UBSan (build-fuzz/), each for a
      # bounded time (scripts/fuzz.sh --ci: 10 s per target, about 3 min in
      # all); any crash, leak or sanitizer report fails the suite.
      echo
      echo "=== test.sh: suite clang: fuzzing (scripts/fuzz.sh --ci) ==="
      t0=$SECONDS
      if JOBS=$jobs bash scripts/fuzz.sh --ci; then
        echo "=== test.sh: fuzzing passed in $((SECONDS - t0))s ==="
      else
        failed+=("clang(fuzz)")
      fi
      # The simulator suites under many seeds and with lanes (about 2 min):
      # one seed per suite is one trajectory of the protocol.
      echo
      echo "=== test.sh: suite clang: simulator seeds (scripts/sim-sweep.sh) ==="
      t0=$SECONDS
      if bash scripts/sim-sweep.sh --build build-clang; then
        echo "=== test.sh: simulator seeds passed in $((SECONDS - t0))s ==="
      else
        failed+=("clang(sim-sweep)")
      fi ;;
    kamailio)
      # The Kamailio module (adapters/kamailio) built against Debian's
      # Kamailio source, and its tests with real Kamailio instances.
      echo
      echo "=== test.sh: suite kamailio (tests/kamailio/run.sh) ==="
      t0=$SECONDS
      if bash tests/kamailio/run.sh; then
        passed+=(kamailio)
        echo "=== test.sh: suite kamailio passed in $((SECONDS - t0))s ==="
      else
        failed+=("kamailio(tests)")
      fi ;;
    *)
      echo "test.sh: unknown suite '$s' (release|asan|clang|kamailio)" >&2
      failed+=("$s(unknown)") ;;
  esac
done

echo
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "test.sh: FAILED: ${failed[*]}${passed[*]:+ (passed: ${passed[*]})}"
  exit 1
fi
echo "test.sh: all suites passed (${passed[*]})"
