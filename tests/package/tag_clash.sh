#!/usr/bin/env bash
# A translation unit mixing a foreign `typedef struct dmq_node {...}
# dmq_node_t;` with <dmq/dmq.h> must fail to compile; the same file without
# the foreign typedef must compile. Usage: tag_clash.sh <cc> <include-dir>
set -euo pipefail
cc=${1:?usage: tag_clash.sh <cc> <include-dir>}
inc=${2:?usage: tag_clash.sh <cc> <include-dir>}
src=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/tag_clash.c
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dmq-tagclash.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

if ! "$cc" -std=c11 -Wall -c -I"$inc" -o "$tmp/ok.o" "$src" 2>"$tmp/ok.log"; then
  echo "tag_clash: FAIL: the control TU does not compile:" >&2
  cat "$tmp/ok.log" >&2
  exit 1
fi
echo "tag_clash: control TU compiles"

if "$cc" -std=c11 -Wall -c -I"$inc" -DDMQ_TAG_CLASH -o "$tmp/clash.o" "$src" \
  2>"$tmp/clash.log"; then
  echo "tag_clash: FAIL: a TU with a foreign 'struct dmq_node' dmq_node_t" \
    "and <dmq/dmq.h> compiled (the tags merge silently)" >&2
  exit 1
fi
# It must fail for the right reason: the conflicting dmq_node_t.
if ! grep -q 'dmq_node_t' "$tmp/clash.log"; then
  echo "tag_clash: FAIL: the clashing TU failed, but not on dmq_node_t:" >&2
  cat "$tmp/clash.log" >&2
  exit 1
fi
echo "tag_clash: clashing TU refused:"
grep -m1 'dmq_node_t' "$tmp/clash.log" | sed 's/^/  /'
echo "tag_clash: OK"
