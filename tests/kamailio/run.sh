#!/usr/bin/env bash
# Build the dmqlib module (scripts/kamailio-module.sh) and run every
# tests/kamailio/test_*.sh, one at a time (each starts real Kamailio
# instances; the machine has 2 cores), each bounded by TEST_TIMEOUT seconds.
#
#   tests/kamailio/run.sh [NAME...]     e.g. run.sh htable usrloc
#
# Exit 0 when every test passed or was skipped (77; under CI=true a skip is
# a failure), 1 otherwise.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
TEST_TIMEOUT=${TEST_TIMEOUT:-300}

if [[ ! -x /usr/sbin/kamailio ]]; then
  if [[ ${CI:-} == true ]]; then echo "run.sh: kamailio not installed" >&2; exit 1; fi
  echo "run.sh: kamailio not installed: skipped" >&2
  exit 0
fi
"$root/scripts/kamailio-module.sh" || { echo "run.sh: module build failed" >&2; exit 1; }

if [[ $# -gt 0 ]]; then
  tests=()
  for n in "$@"; do tests+=("$here/test_$n.sh"); done
else
  tests=("$here"/test_*.sh)
fi
passed=() failed=() skipped=()
for t in "${tests[@]}"; do
  n=$(basename "$t" .sh)
  echo "=== $n"
  t0=$SECONDS
  timeout -k 10 "$TEST_TIMEOUT" bash "$t"
  rc=$?
  case $rc in
    0) passed+=("$n") ;;
    77) skipped+=("$n") ;;
    *) failed+=("$n(rc=$rc)") ;;
  esac
  echo "=== $n: rc=$rc in $((SECONDS - t0)) s"
done
echo "run.sh: passed: ${passed[*]:-none}; skipped: ${skipped[*]:-none}; failed: ${failed[*]:-none}"
if [[ ${#failed[@]} -gt 0 ]]; then exit 1; fi
if [[ ${CI:-} == true && ${#skipped[@]} -gt 0 ]]; then exit 1; fi
exit 0
