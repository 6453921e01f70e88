#!/usr/bin/env bash
# Stock dmq_usrloc through dmqlib: a REGISTER sent to one instance by the
# test's own small SIP client (tests/kamailio/sipsend.py, UDP loopback) is in
# the location table of the others; a third instance joining later gets the
# contact through dmq_usrloc's initial sync (asked from one member); an
# unREGISTER (expires 0) removes it everywhere.
# Exit 0 pass, 1 fail, 77 skipped.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
kt_setup usrloc

KT_EXTRA_MODULES=(
  'loadmodule "usrloc.so"'
  'loadmodule "registrar.so"'
  'loadmodule "dmq_usrloc.so"'
  'modparam("dmq_usrloc", "enable", 1)'
  'modparam("dmq_usrloc", "sync", 1)'
)
KT_ROUTE='  if (method == "REGISTER") { if (!save("location")) sl_reply_error(); exit; }
  exit;'

has_contact() { # NAME AOR CONTACT
  kt_rpc "$1" ul.lookup location "$2" | grep -q "$3"
}
no_contact() { ! has_contact "$@"; }

kt_start k1 127.0.0.41 dmqlib ""
kt_start k2 127.0.0.42 dmqlib 127.0.0.41
for k in k1 k2; do kt_wait_up "$k"; done
for k in k1 k2; do kt_wait 10000 "$k sees 2 alive" kt_alive_count_is "$k" 2 || kt_die "no view on $k"; done

reg() { # INSTANCE_IP USER CONTACT_PORT EXPIRES
  python3 "$KT_ROOT/tests/kamailio/sipsend.py" "$1" 5060 REGISTER "sip:$1" \
    --from "sip:$2@$1" --to "sip:$2@$1" --contact "sip:$2@127.0.0.99:$3" \
    --expires "$4" --timeout 5
}
code=$(reg 127.0.0.41 alice 5099 600)
[[ $code == 200 ]] || kt_die "REGISTER to k1 answered $code"
kt_wait 3000 "k1 has alice" has_contact k1 alice@127.0.0.41 127.0.0.99:5099 || kt_fail "not saved on k1"
kt_wait 3000 "k2 has alice" has_contact k2 alice@127.0.0.41 127.0.0.99:5099 ||
  kt_fail "alice's contact is not in k2's location table"
[[ $KT_FAILED -eq 0 ]] && kt_log "REGISTER on k1 is in k2's location table"

# a REGISTER on k2 shows on k1 too
code=$(reg 127.0.0.42 bob 5098 600)
[[ $code == 200 ]] || kt_fail "REGISTER to k2 answered $code"
kt_wait 3000 "k1 has bob" has_contact k1 bob@127.0.0.42 127.0.0.99:5098 || kt_fail "bob not on k1"

# a late joiner gets both through the initial sync
kt_start k3 127.0.0.43 dmqlib 127.0.0.42
kt_wait_up k3
kt_wait 5000 "k3 has alice" has_contact k3 alice@127.0.0.41 127.0.0.99:5099 || kt_fail "k3: no alice after sync"
kt_wait 5000 "k3 has bob" has_contact k3 bob@127.0.0.42 127.0.0.99:5098 || kt_fail "k3: no bob after sync"
syncs=$(grep -c "channel 'usrloc': initial sync from" "$KT_DIR/k3/log")
[[ $syncs == 1 ]] || kt_fail "k3 asked $syncs members for the usrloc sync (expected 1)"
[[ $KT_FAILED -eq 0 ]] && kt_log "k3 joined and has both contacts (one sync request)"

# a burst of 300 REGISTERs on k1 (dmq_usrloc sends under usrloc's locks):
# all on k2 and k3; a fourth instance joining gets all 302 in its sync
contacts() { kt_rpc "$1" ul.dump brief | grep -c "AoR: "; } # AoRs, one contact each
contacts_is() { [[ $(contacts "$1") -eq $2 ]]; }
n=$(python3 "$KT_ROOT/tests/kamailio/sipburst.py" 127.0.0.41 5060 300 burst --timeout 30)
[[ $n == 300 ]] || kt_fail "burst: $n of 300 REGISTERs answered 2xx"
for k in k2 k3; do
  kt_wait 10000 "$k has 302 contacts" contacts_is "$k" 302 || kt_fail "$k has $(contacts "$k") contacts"
done
kt_start k4 127.0.0.44 dmqlib 127.0.0.41
kt_wait_up k4
kt_wait 10000 "k4 has 302 contacts" contacts_is k4 302 || kt_fail "k4 has $(contacts k4) contacts after its sync"
[[ $KT_FAILED -eq 0 ]] && kt_log "300-REGISTER burst on k1 on k2 and k3; k4 synced all 302"

# unREGISTER alice on k1: gone everywhere
code=$(reg 127.0.0.41 alice 5099 0)
[[ $code == 200 ]] || kt_fail "unREGISTER answered $code"
for k in k1 k2 k3 k4; do
  kt_wait 3000 "$k lost alice" no_contact "$k" alice@127.0.0.41 127.0.0.99:5099 || kt_fail "alice still on $k"
done

if [[ $KT_FAILED -ne 0 ]]; then exit 1; fi
kt_log "PASS"
