#!/usr/bin/env bash
# Stock htable (enable_dmq=1, dmq_init_sync=1) replicating through dmqlib,
# three (then four) real Kamailio instances on loopback, profile "fast":
#   1. a value set on one (htable.seti / htable.sets over RPC) is read on the
#      others;
#   2. a fourth instance joining gets the whole table once (one member asked
#      for the initial sync), no duplicates;
#   3. SIGKILL of a whole instance is seen as down (dead) by the others within
#      the fast profile's detection bound;
#   4. SIGTERM of an instance is seen as a leave at once.
# Exit 0 pass, 1 fail, 77 skipped (no kamailio; a failure under CI=true).
set -uo pipefail
source "$(dirname "$0")/lib.sh"
kt_setup htable

# fast profile: probe 200 ms, timeout 100 ms, suspicion 0.8..4.8 s; plus a
# probe period and gossip: a death is declared well within this
DETECT_BOUND_MS=${DETECT_BOUND_MS:-6000}
LEAVE_BOUND_MS=${LEAVE_BOUND_MS:-1000}
NKEYS=1000

# member events as event routes, checked in the logs below
KT_EXTRA_ROUTES=(
'event_route[dmqlib:member-up] { xlog("L_NOTICE", "EV up $dmqlib(name) $dmqlib(uri)\n"); }'
'event_route[dmqlib:member-suspect] { xlog("L_NOTICE", "EV suspect $dmqlib(name)\n"); }'
'event_route[dmqlib:member-down] { xlog("L_NOTICE", "EV down $dmqlib(name) $dmqlib(uri)\n"); }'
'event_route[dmqlib:member-left] { xlog("L_NOTICE", "EV left $dmqlib(name)\n"); }'
)
kt_start k1 127.0.0.11 dmqlib ""
kt_start k2 127.0.0.12 dmqlib 127.0.0.11
kt_start k3 127.0.0.13 dmqlib 127.0.0.11
for k in k1 k2 k3; do kt_wait_up "$k"; done
for k in k1 k2 k3; do
  kt_wait 10000 "$k sees 3 members alive" kt_alive_count_is "$k" 3 || kt_die "no full view on $k"
done
kt_log "3 instances, full view"

# 1. set on one, read on the others
kt_rpc k1 htable.seti t a 42 >/dev/null
kt_rpc k2 htable.sets t s hello >/dev/null
for k in k2 k3; do kt_wait 3000 "$k reads a=42" kt_ht_is "$k" a 42 || kt_fail "a=42 not on $k"; done
for k in k1 k3; do kt_wait 3000 "$k reads s=hello" kt_ht_is "$k" s hello || kt_fail "s=hello not on $k"; done
[[ $KT_FAILED -eq 0 ]] && kt_log "1. set on one, read on the others: ok"

# 2. a fourth instance gets the whole table once
kt_fill k1 $NKEYS key || kt_fail "fill on k1"
total=$((NKEYS + 2))
for k in k1 k2 k3; do
  kt_wait 10000 "$k has $total items" kt_ht_items_is "$k" $total || kt_fail "$k has $(kt_ht_items "$k") items"
done
kt_start k4 127.0.0.14 dmqlib 127.0.0.12
kt_wait_up k4
t0=$(kt_now_ms)
kt_wait 10000 "k4 has $total items" kt_ht_items_ge k4 $total || kt_fail "k4 has $(kt_ht_items k4) items"
kt_log "2. k4 has the table $(( $(kt_now_ms) - t0 )) ms after answering RPC"
# anything extra (a second sync, duplicate cells) would arrive now
kt_holds 1500 "k4 stays at $total items" kt_ht_items_is k4 $total ||
  kt_fail "k4 has $(kt_ht_items k4) items, expected exactly $total (duplicates?)"
n4=$(kt_ht_items k4)
syncs=$(grep -c "channel 'htable': initial sync from" "$KT_DIR/k4/log")
[[ $syncs == 1 ]] || kt_fail "k4 asked $syncs members for the htable sync (expected 1)"
[[ $KT_FAILED -eq 0 ]] && kt_log "2. k4 joined: $n4 items, one sync request: ok"
for k in k1 k2 k3; do
  kt_wait 10000 "$k sees 4 alive" kt_alive_count_is "$k" 4 || kt_fail "$k does not see k4"
done

# 3. SIGKILL of k3 seen as dead
t0=$(kt_now_ms)
kt_kill k3 KILL
kt_reap k3 3000
for k in k1 k2 k4; do
  if kt_wait $DETECT_BOUND_MS "$k sees k3 dead" kt_state_is "$k" 127.0.0.13:7946 dead; then
    kt_log "3. $k sees k3 dead after $(( $(kt_now_ms) - t0 )) ms"
  else
    kt_fail "$k: k3 is $(kt_member_state "$k" 127.0.0.13:7946) after ${DETECT_BOUND_MS} ms"
  fi
done

# 4. SIGTERM of k4 seen as a leave at once
t0=$(kt_now_ms)
kt_term k4
for k in k1 k2; do
  if kt_wait $LEAVE_BOUND_MS "$k sees k4 left" kt_state_is "$k" 127.0.0.14:7946 left; then
    kt_log "4. $k sees k4 left after $(( $(kt_now_ms) - t0 )) ms"
  else
    kt_fail "$k: k4 is $(kt_member_state "$k" 127.0.0.14:7946) after ${LEAVE_BOUND_MS} ms"
  fi
done
kt_reap k4 5000
grep -q "dmqlib: left the cluster" "$KT_DIR/k4/log" || kt_fail "k4's io process did not report its leave"

# the event routes ran on k1
kt_wait 2000 "k1 route member-down for k3" grep -q "EV down 127.0.0.13:7946 sip:127.0.0.13:5060" "$KT_DIR/k1/log" ||
  kt_fail "no event_route[dmqlib:member-down] for k3 on k1"
kt_wait 2000 "k1 route member-left for k4" grep -q "EV left 127.0.0.14:7946" "$KT_DIR/k1/log" ||
  kt_fail "no event_route[dmqlib:member-left] for k4 on k1"
grep -q "EV up 127.0.0.12:7946 sip:127.0.0.12:5060" "$KT_DIR/k1/log" ||
  kt_fail "no event_route[dmqlib:member-up] for k2 on k1"

# dmq.remove: an alive member is refused; a dead one leaves k1's view at
# once (k2 keeps it until its own retention)
out=$(kt_rpc k1 dmq.remove 127.0.0.12:7946)
[[ $out == *409* ]] || kt_fail "dmq.remove of the alive k2 was not refused: $out"
out=$(kt_rpc k1 dmq.remove 127.0.0.99:7946)
[[ $out == *404* ]] || kt_fail "dmq.remove of an unknown member: $out"
out=$(kt_rpc k1 dmq.remove 127.0.0.13:7946)
[[ $out == *Removing* ]] || kt_fail "dmq.remove of the dead k3: $out"
kt_wait 2000 "k1 forgot k3" kt_state_is k1 127.0.0.13:7946 absent ||
  kt_fail "k1: k3 is $(kt_member_state k1 127.0.0.13:7946) after dmq.remove"
[[ $(kt_member_state k2 127.0.0.13:7946) == dead ]] ||
  kt_fail "k2: k3 is $(kt_member_state k2 127.0.0.13:7946), not dead"
kt_log "dmq.remove: k1 forgot the dead k3; the alive k2 and an unknown name were refused"

# the survivors still replicate
kt_rpc k2 htable.seti t after 7 >/dev/null
kt_wait 3000 "k1 reads after=7" kt_ht_is k1 after 7 || kt_fail "no replication after the failures"

if [[ $KT_FAILED -ne 0 ]]; then exit 1; fi
kt_log "PASS"
