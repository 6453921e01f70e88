#!/usr/bin/env bash
# The io watchdog: the libdmq io process is frozen (SIGSTOP); within the
# watchdog period (5 s, checked by the core's slow timer) the instance logs
# that the io loop is stuck and counts it (dmqlib.stats io_stalls); after
# SIGCONT the node works again (replication to a second instance).
# Exit 0 pass, 1 fail, 77 skipped.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
kt_setup watchdog

kt_start k1 127.0.0.71 dmqlib ""
kt_start k2 127.0.0.72 dmqlib 127.0.0.71 lan
for k in k1 k2; do kt_wait_up "$k"; done
for k in k1 k2; do kt_wait 10000 "$k sees 2 alive" kt_alive_count_is "$k" 2 || kt_die "no view on $k"; done
io=$(kt_rpc k1 core.psx | awk '/PID:/ {pid=$2} /DSC: libdmq io/ {print pid}')
[[ -n $io ]] || kt_die "no libdmq io process on k1"
kill -STOP "$io"
kt_wait 12000 "k1's watchdog fires" grep -q "has not turned its loop" "$KT_DIR/k1/log" ||
  kt_fail "no watchdog error while the io process was stopped"
kill -CONT "$io"
s=$(kt_rpc k1 dmqlib.stats | awk '$1=="io_stalls:" {print $2}')
[[ ${s:-0} -ge 1 ]] || kt_fail "io_stalls is ${s:-empty}"
kt_log "watchdog fired; io_stalls=$s"
# k2 (lan profile) may have suspected k1 meanwhile; k1 refutes and works
kt_rpc k1 htable.seti t back 1 >/dev/null
kt_wait 15000 "k2 reads back=1" kt_ht_is k2 back 1 || kt_fail "no replication after SIGCONT"

if [[ $KT_FAILED -ne 0 ]]; then exit 1; fi
kt_log "PASS"
