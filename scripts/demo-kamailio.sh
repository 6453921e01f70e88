#!/usr/bin/env bash
# Kamailio mode of the demo (./scripts/demo.sh kamailio): three Debian
# kamailio instances share an htable through the dmqlib module (libdmq);
# a value written on one is read on the others; one instance is killed
# (SIGKILL of all its processes) and the others see it down, in their
# dmq.list_nodes and in their event_route[dmqlib:member-down].
#
# Builds the module first if needed (scripts/kamailio-module.sh; root and
# network access to Debian's archive on the first run). Loopback only
# (127.0.0.51-53), everything stopped and removed on exit.
set -uo pipefail
source "$(dirname "$0")/../tests/kamailio/lib.sh"
kt_setup demo

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
members() { # NAME: one line per member
  kt_rpc "$1" dmq.list_nodes | awk '/name:/ {n=$2} /state:/ {printf "    %-18s %s\n", n, $2}'
}

KT_EXTRA_ROUTES=(
'event_route[dmqlib:member-up] { xlog("L_NOTICE", "DEMO: member $dmqlib(name) is up\n"); }'
'event_route[dmqlib:member-down] { xlog("L_NOTICE", "DEMO: member $dmqlib(name) ($dmqlib(uri)) is down\n"); }'
'event_route[dmqlib:member-left] { xlog("L_NOTICE", "DEMO: member $dmqlib(name) left\n"); }'
)
KT_EXTRA_MODULES=()

say "starting three Kamailio instances (dmqlib, profile fast): k1 is the seed"
kt_start k1 127.0.0.51 dmqlib ""
kt_start k2 127.0.0.52 dmqlib 127.0.0.51
kt_start k3 127.0.0.53 dmqlib 127.0.0.51
for k in k1 k2 k3; do kt_wait_up "$k"; done
for k in k1 k2 k3; do kt_wait 10000 "$k sees 3 alive" kt_alive_count_is "$k" 3 || kt_die "no full view"; done
echo "  k1's view (kamcmd dmq.list_nodes):"
members k1

say "htable: set t=>greeting on k1, read it on k2 and k3"
kt_rpc k1 htable.sets t greeting "hello from k1" >/dev/null
for k in k2 k3; do
  kt_wait 3000 "$k reads it" bash -c "$(declare -f kt_rpc); KT_DIR=$KT_DIR KAMCMD=$KAMCMD; kt_rpc $k htable.get t greeting | grep -q 'hello from k1'" ||
    kt_die "not replicated to $k"
  echo "  $k: $(kt_rpc "$k" htable.get t greeting | awk -F': ' '/value:/ {print $2}')"
done

say "kill -9 every process of k3"
t0=$(kt_now_ms)
kt_kill k3 KILL
kt_reap k3 3000
for k in k1 k2; do
  kt_wait 10000 "$k sees k3 dead" kt_state_is "$k" 127.0.0.53:7946 dead || kt_die "$k did not see k3 down"
  echo "  $k sees k3 dead after $(( $(kt_now_ms) - t0 )) ms"
done
echo "  k1's view:"
members k1
echo "  k1's event route:"
kt_wait 3000 "event route ran" grep -q "DEMO: member 127.0.0.53:7946" "$KT_DIR/k1/log"
grep -o "DEMO: member 127.0.0.53.*" "$KT_DIR/k1/log" | sed 's/^/    /'

say "the survivors keep replicating"
kt_rpc k2 htable.seti t after 1 >/dev/null
kt_wait 3000 "k1 reads after" kt_ht_is k1 after 1 || kt_die "no replication after the failure"
echo "  k1: after = $(kt_ht_get k1 after)"
say "demo done (stopping k1 and k2)"
