#!/usr/bin/env bash
# ABI check of a built libdmq.so against every committed baseline (abi/*.abi,
# one per earlier release), with libabigail (Debian: abigail-tools).
#
#   abi-check.sh [path/to/libdmq.so]        check (default: build/libdmq.so)
#   abi-check.sh --dump <libdmq.so> <out.abi> [<include/dmq>]
#                                           write a baseline (at a release;
#                                           headers default: this tree's)
#
# For each baseline: abidiff compares the public ABI (the types of
# include/dmq only). An incompatible change fails the check when the
# library's soname is the baseline's, and passes with the report printed when
# the soname changed (a deliberate break, announced by the soname). A change
# is incompatible when abidiff sets status bit 8 (ABIDIFF_ABI_INCOMPATIBLE_
# CHANGE: a symbol removed...) or when it sets bit 4 (ABIDIFF_ABI_CHANGE) for
# anything but additions: abidiff reports a changed public struct (a field
# inserted, a size changed) with bit 4 only, "to be reviewed", and a library
# that cannot review treats it as a break. Additions alone (new functions or
# variables) pass with the report printed. abi/*.suppr, if any, are abidiff
# suppression files for changes reviewed and judged compatible. The library
# must also export nothing outside dmq_ (scripts/check-symbols.sh).
#
# Exit status: 0 pass, 1 fail, 77 skipped (no abidiff or no debug info in
# the library; under CI=true both are failures instead). See docs/abi.md.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
headers="$root/include/dmq"
basedir=${DMQ_ABI_DIR:-$root/abi}

# The flags every baseline is written with: only the types of the public
# headers, no absolute paths, so a baseline is the same on every machine.
dump_flags=(--headers-dir "$headers" --drop-private-types --no-corpus-path
  --short-locs --no-comp-dir-path --drop-undefined-syms)

# Unavailable tool or input: skip, except in CI where the check must run.
unavailable() {
  if [[ ${CI:-} == true ]]; then
    echo "abi-check: FAIL: $* (CI=true: the ABI check must run)" >&2
    exit 1
  fi
  echo "abi-check: SKIPPED: $*"
  exit 77
}

soname_of() { # elf
  readelf -d "$1" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p'
}

if [[ ${1:-} == --dump ]]; then
  [[ $# -eq 3 || $# -eq 4 ]] || {
    echo "usage: abi-check.sh --dump <libdmq.so> <out.abi> [<include/dmq of its tree>]" >&2
    exit 2
  }
  command -v abidw >/dev/null || { echo "abi-check: abidw not found (abigail-tools)" >&2; exit 1; }
  headers=${4:-$headers}
  dump_flags[1]=$headers
  abidw "${dump_flags[@]}" --out-file "$3" "$2"
  echo "abi-check: wrote $3 (soname $(soname_of "$2"), headers $headers)"
  exit 0
fi

lib=${1:-$root/build/libdmq.so}
[[ -f $lib ]] || { echo "abi-check: $lib not found" >&2; exit 1; }

# Exports outside the dmq_ namespace are an ABI fault on their own.
bash "$root/scripts/check-symbols.sh" "$lib"

command -v abidiff >/dev/null || unavailable "abidiff not found (apt-get install abigail-tools)"
# (no grep -q: it would quit early, readelf would get SIGPIPE and pipefail
# would report the section missing)
if ! readelf -S "$lib" | grep '\.debug_info' >/dev/null; then
  unavailable "$lib has no debug info (build with RelWithDebInfo or Debug)"
fi

shopt -s nullglob
baselines=("$basedir"/*.abi)
if [[ ${#baselines[@]} -eq 0 ]]; then
  echo "abi-check: FAIL: no baseline in $basedir" >&2
  exit 1
fi

suppr=()
for f in "$basedir"/*.suppr; do
  suppr+=(--suppressions "$f")
done

soname=$(soname_of "$lib")
[[ -n $soname ]] || { echo "abi-check: FAIL: $lib has no soname" >&2; exit 1; }

fail=0
for base in "${baselines[@]}"; do
  name=$(basename "$base" .abi)
  base_soname=$(sed -n "1s/.* soname='\([^']*\)'.*/\1/p" "$base")
  if [[ -z $base_soname ]]; then
    echo "abi-check: FAIL: $base names no soname" >&2
    fail=1
    continue
  fi
  report=$(mktemp)
  status=0
  abidiff --drop-private-types --hd2 "$headers" --no-show-locs "${suppr[@]}" \
    "$base" "$lib" >"$report" 2>&1 || status=$?
  # removed or changed interfaces, from the "... changes summary:" lines
  removed_or_changed=$({ grep -E 'changes summary:' "$report" || true; } |
    { grep -oE '[0-9]+ (Removed|Changed)' || true; } |
    awk '{ n += $1 } END { print n + 0 }')
  if ((status & 3)); then # ABIDIFF_ERROR | ABIDIFF_USAGE_ERROR
    echo "abi-check: FAIL: abidiff could not compare $name (status $status):" >&2
    cat "$report" >&2
    fail=1
  elif ((status & 8)) || { ((status & 4)) && ((removed_or_changed > 0)); }; then
    if [[ $soname == "$base_soname" ]]; then
      echo "abi-check: FAIL: incompatible ABI change against $name with the same soname $soname:" >&2
      cat "$report" >&2
      echo "abi-check: keep the ABI, or change the soname (docs/abi.md)" >&2
      fail=1
    else
      echo "abi-check: $name: incompatible change, soname $base_soname -> $soname (a deliberate break):"
      cat "$report"
    fi
  elif ((status & 4)); then # additions only
    echo "abi-check: $name: additions only, compatible (soname $base_soname -> $soname):"
    cat "$report"
  else
    echo "abi-check: $name: no ABI change (soname $base_soname -> $soname)"
  fi
  rm -f "$report"
done

if ((fail)); then
  exit 1
fi
echo "abi-check: OK ($lib, soname $soname, ${#baselines[@]} baseline(s))"
