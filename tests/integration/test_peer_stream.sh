#!/usr/bin/env bash
# dmq-peer's `stats` shows the TCP transport's counters under "stream"
# (tools/dmq-peer, PEER_STREAM_STATS), and they count what a hostile stream
# peer does: a raw client connects to a peer's TCP port and announces a
# frame beyond the 16 MiB mtu (oversize_frames, connection closed), another
# announces 16 MiB and sends 100 bytes (partial_bytes at most 64 KiB while
# it is open, 0 once it is gone). Loopback only, port picked by the kernel;
# every wait is bounded; the EXIT trap kills the peer.
set -uo pipefail
# shellcheck source=scripts/lib/dmq-test.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib/dmq-test.sh"

WATCHDOG_S=40
WAIT_S=10
dt_peer_test test_peer_stream dmq-peer-stream "$WATCHDOG_S" "$WAIT_S"

dt_peer_start p1 --bind 127.0.0.1:0 --profile fast
addr=$(dt_ev get "$tmp/p1.log" ready addr) || fail "p1: no address"
hostport=${addr#*://}

# stream FIELD: the value of stream.FIELD in p1's latest stats event
stream() {
  "$dt_py" - "$tmp/p1.log" "$1" <<'PY'
import json, sys
s = [json.loads(l) for l in open(sys.argv[1]) if '"event":"stats"' in l]
print(s[-1]["stream"][sys.argv[2]] if s else -1)
PY
}
# stats_until FIELD OP VALUE: ask for stats until stream.FIELD OP VALUE
stats_until() {
  local i v
  for ((i = 0; i < WAIT_S * 10; i++)); do
    dt_send p1 stats
    dt_wait_until "$WAIT_S" "p1 stats" dt_ev event "$tmp/p1.log" stats
    v=$(stream "$1")
    test "$v" "-$2" "$3" && return 0
    sleep 0.1 # poll interval of a bounded wait
  done
  fail "stream.$1 = $v, wanted -$2 $3"
}

stats_until oversize_frames eq 0
"$dt_py" - "$tmp/p1.log" <<'PY' || fail "stats: stream counters missing"
import json, sys
s = [json.loads(l) for l in open(sys.argv[1]) if '"event":"stats"' in l][-1]
for k in ("frame_timeouts", "idle_closes", "oversize_frames", "budget_drops",
          "inbound_rejected", "inbound_evicted", "pool_evictions",
          "connect_deferred", "emfile_accept", "emfile_connect", "emfile_shed",
          "accept_refused", "accept_errors", "inbound", "outbound",
          "partial_bytes", "partial_peak"):
    assert isinstance(s["stream"].get(k), int), k
PY
ok "stats: stream counters present"

# a header beyond the mtu: the connection is closed and counted
"$dt_py" - "$hostport" <<'PY' || fail "oversize header: connection not closed"
import socket, struct, sys
h, p = sys.argv[1].rsplit(":", 1)
c = socket.create_connection((h, int(p)), timeout=10)
c.sendall(struct.pack(">I", 16 * 1024 * 1024 + 1))
assert c.recv(1) == b""  # EOF (a reset raises: also a failure to keep)
PY
stats_until oversize_frames eq 1
ok "oversize header: closed, stream.oversize_frames 1"

# 16 MiB announced, 100 bytes sent: at most 64 KiB held, freed on close
hold_py='
import socket, struct, sys
h, p = sys.argv[1].rsplit(":", 1)
c = socket.create_connection((h, int(p)), timeout=10)
c.sendall(struct.pack(">I", 16 * 1024 * 1024) + b"x" * 100)
print("sent", flush=True)
sys.stdin.readline()  # held open until told
c.close()
'
coproc HOLD { "$dt_py" -u -c "$hold_py" "$hostport"; }
read -r -t "$WAIT_S" line <&"${HOLD[0]}" || fail "holder did not start"
stats_until partial_bytes gt 0
held=$(stream partial_bytes)
[[ $held -le 65536 ]] || fail "16 MiB header + 100 bytes holds $held bytes"
echo done >&"${HOLD[1]}"
wait "$HOLD_PID"
stats_until partial_bytes eq 0
ok "16 MiB header + 100 bytes: $held bytes held, 0 after close"

dt_send p1 quit
dt_wait_exit "${dt_pid[p1]}" 10 || fail "p1 did not exit"
dt_forget p1
echo "$name: PASS"
