#!/usr/bin/env bash
# DNS seeds end to end, against a real DNS server, without touching the
# machine's resolver: a throw-away network namespace gets its own
# resolv.conf (/etc/netns/<ns>/resolv.conf, which `ip netns exec` mounts over
# /etc/resolv.conf for the commands it runs) pointing at a dnsmasq that runs
# inside the namespace on 127.0.0.1:53, serving A records from a hosts file
# and one SRV record. dns_peer (tests/integration/dns_peer.c) then joins
# nodes on 127.0.0.1..5 through those names, changes the hosts file,
# SIGHUPs dnsmasq and checks that the seed lists follow.
#
# Skips (exit 77) when not root, when dnsmasq or ip is missing, or when
# network namespaces cannot be created. Bounded: dns_peer has an alarm and
# runs under timeout; the EXIT trap kills dnsmasq and removes the namespace
# and /etc/netns/<ns>.
set -uo pipefail

SKIP=77
PEER_TIMEOUT_S=90
DNS_WAIT_TRIES=50
PORT=17946

skip() {
  echo "test_dns: SKIP: $*"
  exit $SKIP
}

[[ $(id -u) -eq 0 ]] || skip "not root"
command -v dnsmasq >/dev/null || skip "dnsmasq not installed"
command -v ip >/dev/null || skip "ip (iproute2) not installed"

build=${DMQ_BUILD_DIR:-}
[[ -n $build ]] || { echo "test_dns: DMQ_BUILD_DIR not set" >&2; exit 1; }
peer=$build/tests/integration/dns_peer
[[ -x $peer ]] || { echo "test_dns: $peer not built" >&2; exit 1; }

ns=dmqdns$$
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dmq-dns.XXXXXX")
dnsmasq_pid=
ns_made=0
netns_dir_existed=0
[[ -d /etc/netns ]] && netns_dir_existed=1

cleanup() {
  if [[ -n $dnsmasq_pid ]]; then
    kill "$dnsmasq_pid" 2>/dev/null
    wait "$dnsmasq_pid" 2>/dev/null
  fi
  if [[ $ns_made == 1 ]]; then
    ip netns del "$ns" 2>/dev/null
    rm -rf "/etc/netns/$ns"
    [[ $netns_dir_existed == 1 ]] || rmdir /etc/netns 2>/dev/null
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

ip netns add "$ns" 2>"$tmp/netns.err" || skip "cannot create a network namespace: $(cat "$tmp/netns.err")"
ns_made=1
ip -n "$ns" link set lo up || exit 1
mkdir -p "/etc/netns/$ns"
echo "nameserver 127.0.0.1" >"/etc/netns/$ns/resolv.conf"

cat >"$tmp/hosts" <<EOF
127.0.0.1 seeds.dmq.test
127.0.0.2 seeds.dmq.test
127.0.0.3 seedhost.dmq.test
EOF

# --local: answer NXDOMAIN for other dmq.test names instead of forwarding.
ip netns exec "$ns" dnsmasq --keep-in-foreground --conf-file=/dev/null \
  --no-resolv --no-hosts --local=/dmq.test/ \
  --listen-address=127.0.0.1 --bind-interfaces --port=53 \
  --user=root --group=root --pid-file= \
  --addn-hosts="$tmp/hosts" \
  --srv-host="_dmq._udp.dmq.test,seedhost.dmq.test,$PORT" \
  --log-queries --log-facility="$tmp/dnsmasq.log" &
dnsmasq_pid=$!

ready=0
for ((i = 0; i < DNS_WAIT_TRIES; i++)); do
  if ip netns exec "$ns" getent hosts seeds.dmq.test >/dev/null 2>&1; then
    ready=1
    break
  fi
  kill -0 "$dnsmasq_pid" 2>/dev/null || break
  sleep 0.1
done
if [[ $ready != 1 ]]; then
  echo "test_dns: dnsmasq did not come up" >&2
  cat "$tmp/dnsmasq.log" >&2 2>/dev/null
  exit 1
fi
echo "test_dns: dnsmasq (pid $dnsmasq_pid) serving in namespace $ns"
ip netns exec "$ns" getent ahostsv4 seeds.dmq.test | sed 's/^/test_dns:   /'

timeout --kill-after=5 "$PEER_TIMEOUT_S" \
  ip netns exec "$ns" "$peer" "$tmp/hosts" "$dnsmasq_pid" "$PORT"
rc=$?
if [[ $rc != 0 ]]; then
  echo "test_dns: dns_peer failed (exit $rc); dnsmasq log:" >&2
  tail -n 60 "$tmp/dnsmasq.log" >&2 2>/dev/null
  exit 1
fi
echo "test_dns: OK"
