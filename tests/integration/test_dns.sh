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
# runs under timeout; the EXIT trap (scripts/lib/dmq-test.sh) kills dnsmasq
# and removes the namespace and /etc/netns/<ns>.
set -uo pipefail
# shellcheck source=scripts/lib/dmq-test.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib/dmq-test.sh"

PEER_TIMEOUT_S=90
DNS_WAIT_S=5
PORT=17946

dt_name=test_dns
dt_need_root_tools dnsmasq ip
peer=$(dt_build_file tests/integration/dns_peer) || exit 1
dt_init test_dns dmq-dns
dt_log_globs=() # dns_peer writes to the terminal; dnsmasq's log is shown below

ns=dmqdns$$
cat >"$dt_tmp/hosts" <<HOSTS
127.0.0.1 seeds.dmq.test
127.0.0.2 seeds.dmq.test
127.0.0.3 seedhost.dmq.test
HOSTS

# --local (in dt_dns_up): NXDOMAIN for other dmq.test names, no forwarding
if ! dt_dns_up "$ns" "$dt_tmp/hosts" dmq.test "$DNS_WAIT_S" seeds.dmq.test \
  --srv-host="_dmq._udp.dmq.test,seedhost.dmq.test,$PORT" --log-queries; then
  [[ $dt_dns_err == "cannot create"* ]] && dt_skip "$dt_dns_err"
  echo "test_dns: $dt_dns_err" >&2
  cat "$dt_tmp/dnsmasq.log" >&2 2>/dev/null
  exit 1
fi
echo "test_dns: dnsmasq (pid $dt_dnsmasq_pid) serving in namespace $ns"
ip netns exec "$ns" getent ahostsv4 seeds.dmq.test | sed 's/^/test_dns:   /'

timeout --kill-after=5 "$PEER_TIMEOUT_S" \
  ip netns exec "$ns" "$peer" "$dt_tmp/hosts" "$dt_dnsmasq_pid" "$PORT"
rc=$?
if [[ $rc != 0 ]]; then
  echo "test_dns: dns_peer failed (exit $rc); dnsmasq log:" >&2
  tail -n 60 "$dt_tmp/dnsmasq.log" >&2 2>/dev/null
  exit 1
fi
echo "test_dns: OK"
