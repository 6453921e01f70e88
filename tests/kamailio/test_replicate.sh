#!/usr/bin/env bash
# Stock cfg functions over dmqlib: dmq_t_replicate() relays a REGISTER
# statefully to every live member's SIP URI (as stock does), the receiving
# member recognises it with dmq_is_from_node() and only saves it (no
# dmq_usrloc here); dmq_bcast_message() from the cfg reaches the other
# instance (its channel is registered on first use); dmq_send_message()
# reaches the member named by its SIP URI.
# Exit 0 pass, 1 fail, 77 skipped.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
kt_setup replicate

KT_EXTRA_MODULES=(
  'loadmodule "tm.so"'
  'loadmodule "usrloc.so"'
  'loadmodule "registrar.so"'
)
KT_ROUTE='  if (method == "REGISTER") {
    if (dmq_is_from_node()) {
      xlog("L_NOTICE", "REPL: REGISTER from a member\n");
    } else {
      dmq_t_replicate();
    }
    if (!save("location")) sl_reply_error();
    exit;
  }
  if (method == "MESSAGE" && $rU == "send") {
    dmq_send_message("cfgchan", "$hdr(X-To)", "$rb", "text/plain");
    sl_send_reply("200", "Sent");
    exit;
  }
  if (method == "MESSAGE" && $rU == "bcast") {
    dmq_bcast_message("cfgchan", "$rb", "text/plain");
    sl_send_reply("200", "Sent");
    exit;
  }
  exit;'

has_contact() { kt_rpc "$1" ul.lookup location "$2" | grep -q "$3"; }

kt_start k1 127.0.0.26 dmqlib ""
kt_start k2 127.0.0.27 dmqlib 127.0.0.26
for k in k1 k2; do kt_wait_up "$k"; done
for k in k1 k2; do kt_wait 10000 "$k sees 2 alive" kt_alive_count_is "$k" 2 || kt_die "no view on $k"; done

code=$(python3 "$KT_ROOT/tests/kamailio/sipsend.py" 127.0.0.26 5060 REGISTER "sip:127.0.0.26" \
  --from "sip:dave@127.0.0.26" --to "sip:dave@127.0.0.26" --contact "sip:dave@127.0.0.98:5097" \
  --expires 600 --timeout 5)
[[ $code == 200 ]] || kt_die "REGISTER to k1 answered $code"
kt_wait 3000 "k2 has dave" has_contact k2 dave@127.0.0.26 127.0.0.98:5097 ||
  kt_fail "dmq_t_replicate: dave's contact is not on k2"
grep -q "REPL: REGISTER from a member" "$KT_DIR/k2/log" || kt_fail "k2: dmq_is_from_node() was false"
grep -q "REPL: REGISTER from a member" "$KT_DIR/k1/log" && kt_fail "k1 saw its own replica (loop)"
[[ $KT_FAILED -eq 0 ]] && kt_log "dmq_t_replicate + dmq_is_from_node: ok"

# dmq_bcast_message: a channel registered by the cfg on first use, on both
# instances (as stock, a receiver must have registered the channel too)
kt_bcast 127.0.0.27 hello-cfg || kt_fail "bcast MESSAGE to k2"
kt_wait 3000 "k2 registered cfgchan" bash -c "$(declare -f kt_rpc); KT_DIR=$KT_DIR KAMCMD=$KAMCMD; kt_rpc k2 dmqlib.peers | grep -q cfgchan" ||
  kt_fail "cfgchan not registered on k2"
# k1 broadcasts until k2 is known to serve the channel (gossip), bounded
if kt_bcast_until_callback 127.0.0.26 k2 hello-cfg; then
  kt_log "dmq_bcast_message: k1 -> k2 on a cfg channel: ok"
else
  kt_fail "dmq_bcast_message from k1 never reached k2"
fi

# dmq_send_message: unicast to the member whose SIP URI is given
# (find_dmq_node_uri on the mirror)
before=$(kt_stat k2 callbacks_run)
python3 "$KT_ROOT/tests/kamailio/sipsend.py" 127.0.0.26 5060 MESSAGE "sip:send@127.0.0.26" \
  -H "X-To: sip:127.0.0.27:5060" --body "hello-unicast" --timeout 5 >/dev/null || kt_fail "send MESSAGE"
kt_wait 3000 "k2 ran the unicast's callback" bash -c "$(declare -f kt_rpc kt_stat); KT_DIR=$KT_DIR KAMCMD=$KAMCMD; [[ \$(kt_stat k2 callbacks_run) -gt $before ]]" ||
  kt_fail "dmq_send_message to sip:127.0.0.27:5060 never reached k2"
[[ $KT_FAILED -eq 0 ]] && kt_log "dmq_send_message: k1 -> k2 by SIP URI: ok"

if [[ $KT_FAILED -ne 0 ]]; then exit 1; fi
kt_log "PASS"
