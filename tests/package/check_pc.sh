#!/usr/bin/env bash
# libdmq.pc must list exactly what libdmq.so links: every DT_NEEDED library
# (but libc and the dynamic loader) appears in `pkg-config --static --libs`,
# and pkg-config lists nothing the library does not link (a consumer of the
# static library would otherwise link a dependency for nothing, or miss one).
#
#   check_pc.sh <build dir> <libdmq.so>
set -euo pipefail
build=$1 lib=$2
pc_dir=$build
[[ -f $pc_dir/libdmq.pc ]] || { echo "check_pc: $pc_dir/libdmq.pc missing" >&2; exit 1; }

needed=$(readelf -d "$lib" | sed -n 's/.*(NEEDED).*\[lib\([^].]*\)\.so.*/\1/p' |
  grep -v -x -e c -e ld-linux-x86-64 -e ld-linux-aarch64 | sort -u)
# libdmq's own list: the library of each Requires.private module (its
# first -l, not what that library needs in turn) plus its Libs.private.
listed=$({
  for m in $(PKG_CONFIG_PATH=$pc_dir pkg-config --print-requires-private libdmq | awk '{print $1}'); do
    pkg-config --libs-only-l "$m" | awk '{print $1}' # its own library, not its dependencies
  done
  sed -n 's/^Libs.private://p' "$pc_dir/libdmq.pc"
} | tr ' ' '\n' | sed -n 's/^-l//p' | sort -u)

echo "DT_NEEDED: $(echo $needed)"
echo "libdmq.pc: $(echo $listed)"
if [[ "$needed" != "$listed" ]]; then
  echo "check_pc: FAIL: libdmq.pc does not list exactly what libdmq.so links" >&2
  diff <(echo "$needed") <(echo "$listed") >&2 || true
  exit 1
fi
if PKG_CONFIG_PATH=$pc_dir pkg-config --print-requires-private libdmq | grep -q msgpack; then
  echo "check_pc: FAIL: msgpack is headers only and must not be required" >&2
  exit 1
fi
echo "check_pc: ok"
