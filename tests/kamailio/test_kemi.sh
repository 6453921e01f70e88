#!/usr/bin/env bash
# KEMI: dmqlib exports the stock module's KEMI functions under the same
# module name, so KEMI scripts calling KSR.dmq.* work unchanged. Two
# instances with a JavaScript routing script (app_jsdt, in Debian's kamailio
# package): KSR.dmq.bcast_message() on one reaches the other (which served
# the channel after its own first KSR.dmq.bcast_message), and
# KSR.dmq.is_from_node() is true for a request relayed from a member
# (KSR.dmq.t_replicate). Exit 0 pass, 1 fail, 77 skipped.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
[[ -f $KAM_MODDIR/app_jsdt.so ]] || { kt_log "SKIP: no app_jsdt"; [[ ${CI:-} == true ]] && exit 1; exit 77; }
kt_setup kemi

cat >"$KT_DIR/route.js" <<'JS'
function ksr_request_route() {
  var m = KSR.pv.get("$rm");
  if (m == "KDMQ") { KSR.dmq.handle_message(); return; }
  if (m == "MESSAGE" && KSR.pv.get("$rU") == "bcast") {
    KSR.dmq.bcast_message("kchan", KSR.pv.get("$rb"), "text/plain");
    KSR.sl.sl_send_reply(200, "Sent");
    return;
  }
  if (m == "OPTIONS") {
    if (KSR.dmq.is_from_node() > 0) {
      KSR.info("KEMI: OPTIONS from a member\n");
      KSR.sl.sl_send_reply(200, "From member");
      return;
    }
    KSR.tm.t_newtran();
    KSR.dmq.t_replicate();
    KSR.sl.sl_send_reply(200, "Replicated");
    return;
  }
}
JS
KT_EXTRA_MODULES=(
  'loadmodule "tm.so"'
  'loadmodule "app_jsdt.so"'
  "modparam(\"app_jsdt\", \"load\", \"$KT_DIR/route.js\")"
  'cfgengine "jsdt"'
)
KT_KEMI=1
kt_start k1 127.0.0.66 dmqlib ""
kt_start k2 127.0.0.67 dmqlib 127.0.0.66
for k in k1 k2; do kt_wait_up "$k"; done
for k in k1 k2; do kt_wait 10000 "$k sees 2 alive" kt_alive_count_is "$k" 2 || kt_die "no view on $k"; done

kt_bcast 127.0.0.67 hello-kemi || kt_fail "MESSAGE to k2"
if kt_bcast_until_callback 127.0.0.66 k2 hello-kemi; then
  kt_log "KSR.dmq.bcast_message: k1 -> k2: ok"
else
  kt_fail "KSR.dmq.bcast_message never reached k2"
fi

code=$(python3 "$KT_ROOT/tests/kamailio/sipsend.py" 127.0.0.66 5060 OPTIONS "sip:127.0.0.66" --timeout 5)
[[ $code == 200 ]] || kt_fail "OPTIONS to k1 answered $code"
kt_wait 3000 "k2 saw the replicated OPTIONS" grep -q "KEMI: OPTIONS from a member" "$KT_DIR/k2/log" ||
  kt_fail "KSR.dmq.t_replicate / is_from_node: nothing on k2"
[[ $KT_FAILED -eq 0 ]] && kt_log "KSR.dmq.t_replicate + KSR.dmq.is_from_node: ok"

if [[ $KT_FAILED -ne 0 ]]; then exit 1; fi
kt_log "PASS"
