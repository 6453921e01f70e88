#!/usr/bin/env bash
# The sans-I/O core imports no socket, clock, thread or DNS call, and
# nothing from libuv: `nm -u` on every object of the dmq_core target.
# Usage: check_core_imports.sh <object>...
set -euo pipefail

# Calls the core must never make (exact names, then prefixes).
forbidden='^(socket|bind|listen|accept|accept4|connect|send|sendto|sendmsg|sendmmsg|recv|recvfrom|recvmsg|recvmmsg|poll|select|epoll_[a-z_]+|clock_gettime|clock_getres|gettimeofday|time|nanosleep|usleep|sleep|getaddrinfo|freeaddrinfo|gethostbyname|getnameinfo|rand|random|srand|pthread_[a-z_]+|res_[a-z_]+|__res_[a-z_]+|ns_[a-z_]+|uv_[a-z_]+|msgpack_[a-z_]+)$'

[[ $# -gt 0 ]] || { echo "check_core_imports: no object given" >&2; exit 1; }
bad=""
for obj in "$@"; do
  [[ -f $obj ]] || { echo "check_core_imports: $obj not found" >&2; exit 1; }
  while read -r sym; do
    sym=${sym%%@*}
    if [[ $sym =~ $forbidden ]]; then
      bad+="  $(basename "$obj"): $sym"$'\n'
    fi
  done < <(nm -u "$obj" | awk '{ print $NF }')
done
if [[ -n $bad ]]; then
  echo "check_core_imports: the core imports I/O, clock, thread or DNS calls:" >&2
  printf '%s' "$bad" >&2
  exit 1
fi
echo "check_core_imports: OK ($# objects)"
