#!/usr/bin/env bash
# Regression for the stock dmq module, whose node list is built in a 1 KiB
# buffer: 28 nodes work, the 29th cannot join. Here 30 instances (small
# memory: -m 16 -M 4, one SIP receiver, one dmqlib worker) form one view:
# every instance sees 30 members alive, and a key set on the first is read
# on the last. Exit 0 pass, 1 fail, 77 skipped.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
kt_setup scale30
N=${N:-30}
VIEW_BOUND_MS=${VIEW_BOUND_MS:-60000}
KT_SHM=16
KT_PKG=4

t0=$(kt_now_ms)
for i in $(seq 1 "$N"); do
  seed=127.0.0.101
  [[ $i -eq 1 ]] && seed=""
  kt_start "k$i" "127.0.0.$((100 + i))" dmqlib "$seed" local
done
for i in $(seq 1 "$N"); do kt_wait_up "k$i" 30000; done
kt_log "$N instances answering RPC after $(( $(kt_now_ms) - t0 )) ms"
for i in $(seq 1 "$N"); do
  kt_wait $VIEW_BOUND_MS "k$i sees $N alive" kt_alive_count_is "k$i" "$N" ||
    kt_fail "k$i sees $(kt_alive_count "k$i") members alive"
done
kt_log "every instance sees $N members alive $(( $(kt_now_ms) - t0 )) ms after the first start"

kt_rpc k1 htable.seti t big "$N" >/dev/null
kt_wait 5000 "k$N reads big=$N" kt_ht_is "k$N" big "$N" || kt_fail "no replication k1 -> k$N"
kt_rpc "k$N" htable.seti t back 1 >/dev/null
kt_wait 5000 "k1 reads back=1" kt_ht_is k1 back 1 || kt_fail "no replication k$N -> k1"

if [[ $KT_FAILED -ne 0 ]]; then exit 1; fi
kt_log "PASS"
