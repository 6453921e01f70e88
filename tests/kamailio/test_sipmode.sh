#!/usr/bin/env bash
# SIP mode (modparam transport "sip", or "sip-tcp" when run by
# test_sipmode_tcp.sh): libdmq's packets travel as KDMQ
# requests between the instances' SIP sockets (libdmq's host transport; the
# cfg hands received KDMQ to dmq_handle_message()). Three instances with stock
# htable: no socket of libdmq's own is bound (the bind address, if set, is
# unused), members advertise host:<SIP address>, a value set on one is read on
# the others, a 1000-key burst arrives whole, SIGKILL is detected, SIGTERM
# is a leave, and the packets were counted as SIP (dmqlib.stats sip_out /
# sip_in).
# Exit 0 pass, 1 fail, 77 skipped.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
KT_TRANSPORT=${KT_TRANSPORT:-sip}   # test_sipmode_tcp.sh: sip-tcp
kt_setup "$KT_TRANSPORT"
# member names: the bind address, or the SIP address without bind
np=7946
[[ ${KT_SIP_NO_BIND:-0} == 1 ]] && np=5060


kt_start k1 127.0.0.16 dmqlib ""
kt_start k2 127.0.0.17 dmqlib 127.0.0.16
kt_start k3 127.0.0.18 dmqlib 127.0.0.16
for k in k1 k2 k3; do kt_wait_up "$k"; done
for k in k1 k2 k3; do
  kt_wait 10000 "$k sees 3 alive" kt_alive_count_is "$k" 3 || kt_die "no full view on $k (SIP mode)"
done
# no socket of libdmq's own in SIP mode: nothing listens on the bind
# address (set by kt_setup unless KT_SIP_NO_BIND; then only warned about)
for ip in 127.0.0.16 127.0.0.17 127.0.0.18; do
  s=$(ss -Hlnu "src $ip:7946"; ss -Hlnt "src $ip:7946")
  [[ -z $s ]] || kt_fail "$ip:7946 is bound in SIP mode: $s"
done
addrs=$(kt_rpc k1 dmq.list_nodes | awk '/addr:/ {print $2}' | sort | tr '\n' ' ')
kt_log "k1's members' addresses: $addrs"
[[ $addrs == "host:127.0.0.16:5060 host:127.0.0.17:5060 host:127.0.0.18:5060 " ]] ||
  kt_fail "members do not advertise their SIP addresses"

kt_rpc k1 htable.seti t a 42 >/dev/null
for k in k2 k3; do kt_wait 3000 "$k reads a=42" kt_ht_is "$k" a 42 || kt_fail "a=42 not on $k"; done
kt_fill k2 1000 sk || kt_fail "fill on k2"
for k in k1 k3; do
  kt_wait 10000 "$k has 1001 items" kt_ht_items_is "$k" 1001 || kt_fail "$k has $(kt_ht_items "$k") items"
done
for k in k1 k2; do
  o=$(kt_stat "$k" sip_out); i=$(kt_stat "$k" sip_in)
  kt_log "$k: sip_out=$o sip_in=$i sip_out_failed=$(kt_stat "$k" sip_out_failed)"
  [[ ${o:-0} -gt 0 && ${i:-0} -gt 0 ]] || kt_fail "$k: no SIP traffic counted"
done

if [[ $KT_TRANSPORT == sip-tcp ]]; then
  c=$(kt_rpc k1 core.tcp_info | awk '/opened_connections:/ {print $2}')
  kt_log "k1: TCP connections open: ${c:-?}"
  [[ ${c:-0} -ge 1 ]] || kt_fail "no TCP connection on k1 in sip-tcp mode"
fi

t0=$(kt_now_ms)
kt_kill k3 KILL
kt_reap k3 3000
for k in k1 k2; do
  kt_wait 6000 "$k sees k3 dead" kt_state_is "$k" 127.0.0.18:$np dead ||
    kt_fail "$k: k3 is $(kt_member_state "$k" 127.0.0.18:$np)"
done
kt_log "SIGKILL of k3 seen dead by k1 and k2 within $(( $(kt_now_ms) - t0 )) ms"

# a graceful stop is a leave, over SIP too
t0=$(kt_now_ms)
kt_term k2
kt_wait 1000 "k1 sees k2 left" kt_state_is k1 127.0.0.17:$np left ||
  kt_fail "k1: k2 is $(kt_member_state k1 127.0.0.17:$np) after SIGTERM"
kt_log "SIGTERM of k2 seen as a leave by k1 after $(( $(kt_now_ms) - t0 )) ms"
kt_reap k2 5000

if [[ $KT_FAILED -ne 0 ]]; then exit 1; fi
kt_log "PASS"
