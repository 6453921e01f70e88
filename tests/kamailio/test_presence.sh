#!/usr/bin/env bash
# Stock presence (enable_dmq=1, memory only: publ_cache=2, subs_db_mode=0,
# with presence_mwi for the message-summary event) through dmqlib: a PUBLISH
# on one instance (tests/kamailio/sipsend.py) is a presentity on the other
# (presence.presentity_list). Needs Debian's kamailio-presence-modules:
# skipped (77) when it is not installed, a failure under CI=true.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
if [[ ! -f $KAM_MODDIR/presence.so || ! -f $KAM_MODDIR/presence_mwi.so ]]; then
  if [[ ${CI:-} == true ]]; then kt_die "kamailio-presence-modules not installed"; fi
  kt_log "SKIP: kamailio-presence-modules not installed"
  exit 77
fi
kt_setup presence

KT_EXTRA_MODULES=(
  'loadmodule "tm.so"'
  'loadmodule "presence.so"'
  'loadmodule "presence_mwi.so"'
  'modparam("presence", "enable_dmq", 1)'
  'modparam("presence", "publ_cache", 2)'
  'modparam("presence", "subs_db_mode", 0)'
)
KT_ROUTE='  if (method == "PUBLISH") { handle_publish(); exit; }
  exit;'

kt_start k1 127.0.0.48 dmqlib ""
kt_start k2 127.0.0.49 dmqlib 127.0.0.48
for k in k1 k2; do kt_wait_up "$k"; done
for k in k1 k2; do kt_wait 10000 "$k sees 2 alive" kt_alive_count_is "$k" 2 || kt_die "no view on $k"; done

has_pres() { kt_rpc "$1" presence.presentity_list | grep -q "$2"; }
code=$(python3 "$KT_ROOT/tests/kamailio/sipsend.py" 127.0.0.48 5060 PUBLISH \
  "sip:carol@127.0.0.48" --from "sip:carol@127.0.0.48" --to "sip:carol@127.0.0.48" \
  -H "Event: message-summary" --expires 600 --ctype application/simple-message-summary \
  --body $'Messages-Waiting: yes\r\nVoice-Message: 2/8 (0/2)\r\n' --timeout 5)
[[ $code == 200 ]] || kt_die "PUBLISH to k1 answered $code"
kt_wait 3000 "k1 has carol" has_pres k1 carol || kt_fail "no presentity on k1"
kt_wait 3000 "k2 has carol" has_pres k2 carol || kt_fail "PUBLISH on k1 is not a presentity on k2"
[[ $KT_FAILED -eq 0 ]] && kt_log "PUBLISH on k1 is a presentity on k2"

if [[ $KT_FAILED -ne 0 ]]; then exit 1; fi
kt_log "PASS"
