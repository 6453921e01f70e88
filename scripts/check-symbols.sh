#!/usr/bin/env bash
# Check that a shared libdmq exports only dmq_* symbols.
# Usage: check-symbols.sh [path/to/libdmq.so]   (default: build/libdmq.so)
set -euo pipefail

lib=${1:-build/libdmq.so}
[[ -f $lib ]] || { echo "check-symbols: $lib not found" >&2; exit 1; }

# Linker-provided symbols that every shared object defines.
ignore='^(_init|_fini|_edata|_end|__bss_start|_DYNAMIC|_GLOBAL_OFFSET_TABLE_)$'

syms=$(nm -D --defined-only "$lib" | awk 'NF >= 3 { print $3 }' | sed 's/@.*//')
count=$(grep -c '^dmq_' <<<"$syms" || true)
bad=$(grep -v '^dmq_' <<<"$syms" | grep -Ev "$ignore" | grep -v '^$' || true)

if [[ -n $bad ]]; then
  echo "check-symbols: $lib exports symbols outside the dmq_ namespace:" >&2
  while IFS= read -r s; do printf '  %s\n' "$s"; done <<<"$bad" >&2
  exit 1
fi
if [[ $count -eq 0 ]]; then
  echo "check-symbols: $lib exports no dmq_ symbol at all" >&2
  exit 1
fi
echo "check-symbols: OK ($count dmq_ symbols exported by $lib)"
