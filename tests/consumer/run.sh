#!/usr/bin/env bash
# Install an already-built tree into a temporary prefix and build a tiny
# consumer against it, (a) through pkg-config and (b) through
# find_package(dmq). Usage: run.sh <build-dir>
#
# Environment (set by ctest): CC, DMQ_INSTALL_LIBDIR, DMQ_CONSUMER_FLAGS
# (extra compile/link flags, e.g. sanitizers matching the build).
set -euo pipefail

build_dir=${1:?usage: run.sh <build-dir>}
build_dir=$(cd "$build_dir" && pwd)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cc=${CC:-cc}
flags=${DMQ_CONSUMER_FLAGS:-}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/dmq-consumer.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

prefix=$tmp/prefix
echo "consumer: installing $build_dir into $prefix"
cmake --install "$build_dir" --prefix "$prefix" >"$tmp/install.log" || {
  cat "$tmp/install.log"
  exit 1
}

libdir=$prefix/${DMQ_INSTALL_LIBDIR:-lib}
if [[ ! -f $libdir/pkgconfig/libdmq.pc ]]; then
  pc=$(find "$prefix" -name libdmq.pc -print -quit)
  [[ -n $pc ]] || { echo "consumer: libdmq.pc not installed" >&2; exit 1; }
  libdir=$(dirname "$(dirname "$pc")")
fi

expected=$(sed -n 's/^#define DMQ_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\).*/\2/p' \
  "$prefix/include/dmq/version.h" | paste -sd.)

# Soname: libdmq.so.0.MINOR while the major version is 0 (docs/abi.md).
want_soname=libdmq.so.${expected%.*}
[[ $expected == 0.* ]] || want_soname=libdmq.so.${expected%%.*}
soname=$(readelf -d "$libdir/libdmq.so" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
echo "consumer: soname $soname"
[[ $soname == "$want_soname" ]] ||
  { echo "consumer: soname $soname, want $want_soname" >&2; exit 1; }

check_output() { # name binary
  local out
  out=$(LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$2")
  printf '%s\n' "$out" | sed "s/^/  [$1] /"
  grep -qx "libdmq $expected" <<<"$out" ||
    { echo "consumer[$1]: wrong version (want $expected)" >&2; exit 1; }
  grep -qx "config_init: success" <<<"$out" ||
    { echo "consumer[$1]: dmq_config_init failed" >&2; exit 1; }
  grep -qx "einval: invalid argument" <<<"$out" ||
    { echo "consumer[$1]: dmq_strerror mismatch" >&2; exit 1; }
  # The shared build must really use the installed library.
  if [[ $1 != *static* ]]; then
    local deps
    deps=$(LD_LIBRARY_PATH="$libdir" ldd "$2")
    grep -q "$libdir/libdmq.so" <<<"$deps" ||
      { echo "consumer[$1]: not linked to installed libdmq.so" >&2; exit 1; }
  fi
}

# (a) pkg-config
export PKG_CONFIG_PATH=$libdir/pkgconfig
pc_flags=$(pkg-config --cflags --libs libdmq)
echo "consumer: pkg-config --cflags --libs libdmq -> $pc_flags"
# shellcheck disable=SC2086 # word splitting intended
"$cc" $flags -o "$tmp/consumer_pc" "$here/main.c" $pc_flags
check_output pkg-config "$tmp/consumer_pc"

# (b) CMake package
cmake -S "$here" -B "$tmp/cmake-build" \
  -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_C_COMPILER="$cc" \
  -DCMAKE_C_FLAGS="$flags" \
  -DCMAKE_EXE_LINKER_FLAGS="$flags" >"$tmp/cmake.log" 2>&1 || {
  cat "$tmp/cmake.log"
  exit 1
}
cmake --build "$tmp/cmake-build" >"$tmp/build.log" 2>&1 || {
  cat "$tmp/build.log"
  exit 1
}
check_output find_package "$tmp/cmake-build/consumer_cmake"
check_output find_package-static "$tmp/cmake-build/consumer_cmake_static"

echo "consumer: OK"
