#!/usr/bin/env bash
# Format the C sources with clang-format (.clang-format at the repo root).
# adapters/kamailio/dmqlib is a Kamailio module and keeps Kamailio's own
# code style (tabs, its .clang-format), so it is left out.
#   scripts/check-format.sh           reformat files in place
#   scripts/check-format.sh --check   fail if any file needs reformatting
# CLANG_FORMAT overrides the clang-format binary.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
cf=${CLANG_FORMAT:-clang-format}
command -v "$cf" >/dev/null || { echo "check-format: $cf not found" >&2; exit 1; }

mode=fix
case ${1:-} in
  --check) mode=check ;;
  "") ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

dirs=()
for d in include src transports adapters examples tests bench tools; do
  [[ -d $d ]] && dirs+=("$d")
done
[[ ${#dirs[@]} -gt 0 ]] || exit 0

mapfile -d '' files < <(find "${dirs[@]}" \
  \( -type d \( -name 'build*' -o -name '.*' -o -name CMakeFiles \) -prune \) -o \
  \( -path adapters/kamailio/dmqlib -prune \) -o \
  -type f \( -name '*.c' -o -name '*.h' \) -print0 | sort -z)
[[ ${#files[@]} -gt 0 ]] || { echo "check-format: no files"; exit 0; }

if [[ $mode == check ]]; then
  if "$cf" --dry-run -Werror "${files[@]}"; then
    echo "check-format: ${#files[@]} files OK"
  else
    echo "check-format: run scripts/check-format.sh to fix" >&2
    exit 1
  fi
else
  "$cf" -i "${files[@]}"
  echo "check-format: formatted ${#files[@]} files"
fi
