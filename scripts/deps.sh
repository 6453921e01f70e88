#!/usr/bin/env bash
# Install the build and test dependencies on Debian 12 (bookworm).
# Idempotent: does nothing (no apt-get update) when everything is installed.
set -euo pipefail

# Everything the build, the tests and CI need, in one place.
# libclang-rt-14-dev: clang's sanitizer and libFuzzer runtimes (only a
# Recommends of clang, so --no-install-recommends would skip it).
# abigail-tools: abidw and abidiff for the ABI check (scripts/abi-check.sh).
# kamailio, kamailio-presence-modules, dpkg-dev: the Kamailio module's build
# (scripts/kamailio-module.sh fetches Debian's kamailio source) and tests.
# libzmq3-dev: delivery_bench's zmq mode, a benchmark baseline (bench/
# CMakeLists.txt builds the mode when libzmq is found; never a dependency of
# the library).
DMQ_DEB_PACKAGES="build-essential cmake pkg-config clang clang-format \
libclang-rt-14-dev libuv1-dev libmsgpack-dev libcmocka-dev libsodium-dev \
valgrind dnsmasq-base iproute2 iptables procps abigail-tools \
kamailio kamailio-presence-modules dpkg-dev libzmq3-dev"

packages=$DMQ_DEB_PACKAGES
if ! command -v python3 >/dev/null 2>&1; then
  packages="$packages python3"
fi

missing=()
for p in $packages; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "deps.sh: all packages already installed"
  exit 0
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "deps.sh: need root or sudo" >&2; exit 1; }
  sudo=(sudo)
fi

echo "deps.sh: installing ${missing[*]}"
"${sudo[@]}" apt-get update
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y --no-install-recommends "${missing[@]}"
echo "deps.sh: done"
