#!/usr/bin/env bash
# Regression for the stock dmq module: one malformed KDMQ body left a lock
# held and wedged the node until restart. With dmqlib, malformed input from
# the network is rejected and counted, and the node keeps working:
#   - messages on the htable channel with a broken dmqlib framing (sent by a
#     plain libdmq member, tools/dmq-peer): rejected by the io process,
#     counted in dmqlib.stats in_malformed;
#   - well-framed messages whose JSON is broken or truncated: htable answers
#     400 (callbacks_rejected), nothing else happens;
#   - a KDMQ SIP request with the body that wedged stock, and random
#     datagrams on libdmq's port: ignored / counted by libdmq;
# after all of it, replication in both directions still works.
# Exit 0 pass, 1 fail, 77 skipped.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
kt_setup malformed

kt_start k1 127.0.0.31 dmqlib ""
kt_start k2 127.0.0.32 dmqlib 127.0.0.31
for k in k1 k2; do kt_wait_up "$k"; done
for k in k1 k2; do kt_wait 10000 "$k sees 2 alive" kt_alive_count_is "$k" 2 || kt_die "no view on $k"; done
kt_peer_start evil 127.0.0.33:7946 127.0.0.31:7946
kt_wait 10000 "k1 sees evil" kt_state_is k1 evil alive || kt_die "dmq-peer did not join"

stat_ge() { local v; v=$(kt_stat "$1" "$2"); [[ -n $v && $v -ge $3 ]]; }

# 1. broken framing: first byte is the content-type length
kt_peer_cmd evil "send 127.0.0.31:7946 htable garbage"     # 'g' = 103 > 64
kt_peer_cmd evil "send 127.0.0.31:7946 htable !"           # length past the end
kt_peer_cmd evil "send 127.0.0.31:7946 htable "            # empty
kt_wait 5000 "k1 counts 3 malformed" stat_ge k1 in_malformed 3 ||
  kt_fail "in_malformed on k1 is $(kt_stat k1 in_malformed)"
# 2. framing right ('!' = a 33-byte content type), JSON broken
ct='application/json;charset=utf-8xxx'   # 33 bytes: '!'
for body in '{"action":2,"htname":"t"' '{"action":2,"htname":"t","cname":"x","type":0,"intval":' \
            'not json at all' '{"action":99}' '{"action":2,"htname":"nosuchtable","cname":"x","type":0,"intval":1,"mode":1}' \
            '{"action":1}'; do
  kt_peer_cmd evil "send 127.0.0.31:7946 htable !$ct$body"
done
kt_wait 5000 "k1 ran the callbacks" stat_ge k1 callbacks_run 6 ||
  kt_fail "callbacks_run on k1 is $(kt_stat k1 callbacks_run)"
kt_log "k1: in_malformed=$(kt_stat k1 in_malformed) callbacks_rejected=$(kt_stat k1 callbacks_rejected)"
# 3. the body that wedged stock dmq, as a KDMQ SIP request, and UDP garbage
python3 "$KT_ROOT/tests/kamailio/sipsend.py" 127.0.0.31 5060 KDMQ \
  "sip:notification_peer@127.0.0.31:5060" --ctype text/plain --timeout 0.5 \
  --body $'sip:127.0.0.31:5060;status=active\r\nsip:[::bad::uri:5060;status=active\r\n' >/dev/null || true
python3 - <<'PY'
import os, socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for n in (0, 1, 7, 64, 512, 1400):
    for _ in range(20):
        s.sendto(os.urandom(n), ("127.0.0.31", 7946))
PY

# the node keeps working, both ways
kt_rpc k1 htable.seti t after1 1 >/dev/null
kt_wait 3000 "k2 reads after1" kt_ht_is k2 after1 1 || kt_fail "k1 -> k2 replication broken"
kt_rpc k2 htable.seti t after2 2 >/dev/null
kt_wait 3000 "k1 reads after2" kt_ht_is k1 after2 2 || kt_fail "k2 -> k1 replication broken"
kt_alive k1 || kt_fail "k1 died"
v=$(kt_ht_get k1 x)
[[ -z $v ]] || kt_fail "a malformed message created cell x=$v"
kt_wait 3000 "libdmq counted the garbage" stat_ge k1 drop_MAGIC 1 || kt_fail "no drop_MAGIC on k1"
kt_log "libdmq drops on k1: $(kt_rpc k1 dmqlib.stats | awk '$1 ~ /^drop_/ && $2 > 0 {printf "%s%s ", $1, $2}')"

if [[ $KT_FAILED -ne 0 ]]; then exit 1; fi
kt_log "PASS"
