#!/usr/bin/env bash
# Stock dialog (enable_dmq=1) through dmqlib: a call set up through one
# instance (tests/kamailio/sipcall.py is caller and callee, UDP loopback) is
# listed on the other, confirmed; a third instance joining later gets it by
# the initial sync; after the BYE it is gone everywhere.
# Exit 0 pass, 1 fail, 77 skipped.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
kt_setup dialog

KT_EXTRA_MODULES=(
  'loadmodule "tm.so"'
  'loadmodule "rr.so"'
  'loadmodule "dialog.so"'
  'modparam("dialog", "enable_dmq", 1)'
)
KT_ROUTE='  if (method == "INVITE" && $tt == $null) { dlg_manage(); record_route(); t_relay(); exit; }
  if ($tt != $null) { if (loose_route()) { t_relay(); exit; } sl_send_reply("404", "Not here"); exit; }
  exit;'

kt_start k1 127.0.0.46 dmqlib ""
kt_start k2 127.0.0.47 dmqlib 127.0.0.46
for k in k1 k2; do kt_wait_up "$k"; done
for k in k1 k2; do kt_wait 10000 "$k sees 2 alive" kt_alive_count_is "$k" 2 || kt_die "no view on $k"; done

dlg_state() { # NAME CALLID -> state number or "none"
  kt_rpc "$1" dlg.list | awk -v c="$2" '/call-id:/ {f=($2==c)} f && /state:/ {print $2; found=1; exit}
    END {if (!found) print "none"}'
}
dlg_state_is() { [[ $(dlg_state "$1" "$2") == "$3" ]]; }

python3 "$KT_ROOT/tests/kamailio/sipcall.py" 127.0.0.46 5060 "$KT_DIR/bye" >"$KT_DIR/call.out" 2>&1 &
callpid=$!
kt_wait 30000 "call confirmed" grep -q CONFIRMED "$KT_DIR/call.out" || kt_die "call not set up: $(cat "$KT_DIR/call.out")"
callid=$(awk '/CONFIRMED/ {print $2}' "$KT_DIR/call.out")
kt_wait 3000 "k1 has the dialog confirmed" dlg_state_is k1 "$callid" 4 || kt_fail "k1: dialog state $(dlg_state k1 "$callid")"
kt_wait 3000 "k2 lists the dialog confirmed" dlg_state_is k2 "$callid" 4 ||
  kt_fail "k2: dialog state $(dlg_state k2 "$callid") (expected 4, confirmed)"
[[ $KT_FAILED -eq 0 ]] && kt_log "call $callid through k1 is listed on k2, confirmed"

# a third instance joining later gets the dialog through dialog's initial
# sync (asked from one member)
kt_start k3 127.0.0.45 dmqlib 127.0.0.47
kt_wait_up k3
kt_wait 5000 "k3 lists the dialog" dlg_state_is k3 "$callid" 4 ||
  kt_fail "k3: dialog state $(dlg_state k3 "$callid") after joining (expected 4)"
syncs=$(grep -c "channel 'dialog': initial sync from" "$KT_DIR/k3/log")
[[ $syncs == 1 ]] || kt_fail "k3 asked $syncs members for the dialog sync (expected 1)"
[[ $KT_FAILED -eq 0 ]] && kt_log "k3 joined and lists the call (one sync request)"

touch "$KT_DIR/bye"
kt_wait 30000 "BYE answered" grep -q "^BYE" "$KT_DIR/call.out" || kt_fail "BYE: $(cat "$KT_DIR/call.out")"
wait $callpid 2>/dev/null
# a terminated dialog is removed (DLG_DMQ_RM) or shown terminated (5)
gone() { local s; s=$(dlg_state "$1" "$callid"); [[ $s == none || $s == 5 ]]; }
for k in k2 k3; do
  kt_wait 5000 "$k drops the dialog" gone "$k" || kt_fail "$k still has the dialog in state $(dlg_state "$k" "$callid")"
done

if [[ $KT_FAILED -ne 0 ]]; then exit 1; fi
kt_log "PASS"
