#!/usr/bin/env bash
# Build the Kamailio module `dmqlib` (adapters/kamailio/) against the Kamailio
# source Debian ships for the installed kamailio package, with libdmq linked
# in statically. The one documented command a user runs:
#
#   scripts/kamailio-module.sh            fetch source if missing, build libdmq,
#                                         build build-kam/dmqlib.so
#   scripts/kamailio-module.sh install    ... and copy it into Kamailio's
#                                         module directory
#
# Everything it creates lives under build-kam/ (git-ignored), except:
#   - when the source is not cached yet, a deb-src entry is added next to the
#     existing Debian sources entry (copied from it, only `Types:` changed)
#     and `apt-get update` runs (root needed);
#   - `install` writes <moddir>/dmqlib.so.
#
# Environment: DMQ_KAM_BUILD (default build-kam), DMQ_KAM_SRC_CACHE (where
# the Debian source packages are downloaded; default $DMQ_KAM_BUILD/src-cache),
# JOBS (default 2), KAMAILIO_MODDIR (default: the installed package's).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${DMQ_KAM_BUILD:-$root/build-kam}
case $build in /*) ;; *) build=$root/$build ;; esac
cache=${DMQ_KAM_SRC_CACHE:-$build/src-cache}
jobs=${JOBS:-2}
action=${1:-build}

log() { echo "kamailio-module.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

sudo=()
[[ $(id -u) -eq 0 ]] || sudo=(sudo)

# --- 0. dependencies ------------------------------------------------------
need=(kamailio build-essential cmake pkg-config libuv1-dev libmsgpack-dev libsodium-dev dpkg-dev)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
    missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  log "installing ${missing[*]}"
  "${sudo[@]}" apt-get update
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}"
fi

kver=$(dpkg-query -W -f='${Version}' kamailio) # e.g. 5.6.3-2
upver=${kver%-*}                                 # 5.6.3
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
moddir=${KAMAILIO_MODDIR:-/usr/lib/$multiarch/kamailio/modules}
mkdir -p "$build" "$cache"

# --- 1. Kamailio source (Debian's, same version as the binary) -------------
srcdir=$build/kamailio-$upver
if [[ ! -f $srcdir/.dmqlib-unpacked ]]; then
  dsc=$(ls "$cache"/kamailio_"${kver#*:}".dsc 2>/dev/null | head -n1 || true)
  if [[ -z $dsc ]]; then
    if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ /etc/apt/sources.list 2>/dev/null &&
       ! grep -qs '^deb-src' /etc/apt/sources.list 2>/dev/null; then
      base=""
      for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] && grep -q '^Types: *deb$' "$f" && { base=$f; break; }
      done
      if [[ -n $base ]]; then
        log "enabling source packages: $base -> dmqlib-src.sources (Types: deb-src)"
        sed 's/^Types: *deb$/Types: deb-src/' "$base" |
          "${sudo[@]}" tee /etc/apt/sources.list.d/dmqlib-src.sources >/dev/null
      elif grep -qs '^deb ' /etc/apt/sources.list; then
        log "enabling source packages from /etc/apt/sources.list"
        sed -n 's/^deb /deb-src /p' /etc/apt/sources.list |
          "${sudo[@]}" tee /etc/apt/sources.list.d/dmqlib-src.list >/dev/null
      else
        die "no Debian sources entry to copy as deb-src"
      fi
      "${sudo[@]}" apt-get update
    fi
    log "downloading the source of kamailio $kver into $cache"
    (cd "$cache" && apt-get source --download-only "kamailio=$kver") ||
      die "apt-get source kamailio=$kver failed"
    dsc=$(ls "$cache"/kamailio_*.dsc | head -n1)
  fi
  rm -rf "$srcdir"
  log "unpacking $(basename "$dsc")"
  dpkg-source --no-check -x "$dsc" "$srcdir" >/dev/null
  log "configuring the tree (make cfg)"
  make -C "$srcdir" cfg prefix=/usr FLAVOUR=kamailio \
    CC_EXTRA_OPTS=-DVERSION_NODATE >"$build/make-cfg.log" 2>&1 ||
    { tail -n 30 "$build/make-cfg.log" >&2; die "make cfg failed"; }
  touch "$srcdir/.dmqlib-unpacked"
fi

# --- 2. libdmq, staged (static library used by the module) -----------------
stage=$build/stage
log "building libdmq"
cmake -S "$root" -B "$build/libdmq" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DDMQ_BUILD_TESTS=OFF -DDMQ_BUILD_BENCH=OFF -DDMQ_BUILD_EXAMPLES=OFF \
  -DCMAKE_INSTALL_LIBDIR=lib >"$build/libdmq-cmake.log" 2>&1 ||
  { tail -n 30 "$build/libdmq-cmake.log" >&2; die "libdmq configure failed"; }
cmake --build "$build/libdmq" -j "$jobs" --target dmq_static --target dmq-peer >"$build/libdmq-build.log" 2>&1 ||
  { tail -n 30 "$build/libdmq-build.log" >&2; die "libdmq build failed"; }
# stage only what the module needs (headers, the static library, libdmq.pc);
# `cmake --install` would want every target (tools, shared library) built
rm -rf "$stage"
mkdir -p "$stage/lib/pkgconfig" "$stage/include/dmq"
cp "$root"/include/dmq/*.h "$stage/include/dmq/"
cp "$build/libdmq/libdmq.a" "$stage/lib/"
cp "$build/libdmq/libdmq.pc" "$stage/lib/pkgconfig/"

# --- 3. the module ----------------------------------------------------------
mdir=$srcdir/src/modules/dmqlib
mkdir -p "$mdir"
# copy (not symlink) so that build products stay out of the repository
cp -p "$root"/adapters/kamailio/dmqlib/* "$mdir"/
log "building the module"
rm -f "$mdir"/*.o "$mdir"/*.d "$mdir/dmqlib.so" # always a full rebuild (seconds)
PKG_CONFIG_PATH=$stage/lib/pkgconfig \
  make -C "$mdir" -j "$jobs" DMQLIB_STAGE="$stage" >"$build/module-build.log" 2>&1 ||
  { grep -E 'error|warning' "$build/module-build.log" >&2 || tail -n 40 "$build/module-build.log" >&2; die "module build failed"; }
if grep -q 'warning:' "$build/module-build.log"; then
  grep 'warning:' "$build/module-build.log" >&2
  [[ ${DMQ_KAM_WERROR:-0} == 1 ]] && die "warnings (DMQ_KAM_WERROR=1)"
fi
# replace atomically: running instances keep the old file mapped
cp "$mdir/dmqlib.so" "$build/dmqlib.so.new" && mv -f "$build/dmqlib.so.new" "$build/dmqlib.so"
if ldd "$build/dmqlib.so" | grep -q 'libdmq\.so'; then
  die "dmqlib.so depends on a shared libdmq (it must be linked statically)"
fi
log "built $build/dmqlib.so"

if [[ $action == install ]]; then
  "${sudo[@]}" install -m 0644 "$build/dmqlib.so" "$moddir/.dmqlib.so.new"
  "${sudo[@]}" mv -f "$moddir/.dmqlib.so.new" "$moddir/dmqlib.so"
  log "installed $moddir/dmqlib.so"
fi
