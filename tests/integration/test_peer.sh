#!/usr/bin/env bash
# dmq-peer (tools/dmq-peer) end to end on loopback: argument errors, stdin
# handling, then three peers (profile fast) driven through FIFOs:
# convergence seen by `members`, `meta` propagation, `stats`, an unknown
# command, queued delivery (send, sendbe, bcast, request between the three:
# each message printed exactly once at the right peer, outcomes, the
# automatic "ack:" reply, a channel served or dropped at runtime,
# unknown_dest, an unknown member), SIGTERM (the others see "left", never
# "dead"), SIGKILL (the others see "dead"), `quit`; then two peers (profile
# local) for a message sent to a SIGSTOPped peer, delivered once after
# SIGCONT; a UDP-only peer joining peers with TCP. Every JSON line every
# peer printed must parse.
#
# Ports are picked by the kernel (--bind 127.0.0.1:0; the seed's address is
# read from its "ready" event), so the test can run in parallel with others.
# Bounded: every wait has a timeout, and gives up once the whole test has
# run WATCHDOG_S. The EXIT trap kills every peer it started (by PID).
set -uo pipefail

SKIP=77
WATCHDOG_S=90 # whole test
WAIT_S=10  # default bound for one wait
DEAD_S=15  # SIGKILL -> dead (fast profile: suspicion 0.8..4.8 s)
EXIT_S=5   # a peer told to stop must be gone by then
POLL=0.1

name=test_peer
build=${DMQ_BUILD_DIR:-}
[[ -n $build ]] || { echo "$name: DMQ_BUILD_DIR not set" >&2; exit 1; }
peer=$build/tools/dmq-peer
[[ -x $peer ]] || { echo "$name: $peer not built" >&2; exit 1; }
command -v python3 >/dev/null || { echo "$name: SKIP: python3 not found"; exit $SKIP; }
# resolved once: a version-manager shim (pyenv) costs ~0.5 s a call
py=$(python3 -c 'import sys; print(sys.executable)') || exit 1

tmp=$(mktemp -d "${TMPDIR:-/tmp}/dmq-peer-test.XXXXXX") || exit 1
declare -A pid=() fd=()

cleanup() {
  local rc=$? p
  trap - EXIT TERM INT
  for p in "${pid[@]}"; do kill9 "$p"; done
  for p in "${fd[@]}"; do exec {p}>&-; done
  if [[ $rc != 0 ]]; then
    echo "$name: FAILED (exit $rc); logs:" >&2
    for p in "$tmp"/*.log "$tmp"/*.err; do
      [[ -s $p ]] || continue
      echo "--- $p" >&2
      tail -n 20 "$p" >&2
    done
  fi
  if [[ $rc != 0 && ${DMQ_TEST_KEEP:-0} == 1 ]]; then
    echo "$name: logs kept in $tmp (DMQ_TEST_KEEP=1)" >&2
  else
    rm -rf "$tmp"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
# Whole-test bound: every wait also stops at this deadline.
test_deadline=$((SECONDS + WATCHDOG_S))

fail() {
  echo "$name: FAIL: $*" >&2
  exit 1
}
ok() { echo "$name: ok [${SECONDS}s]: $*"; }
# SIGKILL and reap a peer, quietly: bash reports jobs killed by a signal
# ("Killed") at its next chance; let that happen here, into /dev/null.
kill9() { { kill -KILL "$1"; wait "$1"; sleep 0.01; } 2>/dev/null; }

# --- JSON helpers --------------------------------------------------------
cat >"$tmp/check.py" <<'EOF'
"""check.py CMD LOG [ARGS]: questions about a dmq-peer JSON log.

listing LOG                 the last `members` listing: "name state" lines
saw LOG NAME CHANGE         a member event about NAME with this change?
meta LOG NAME KEY VALUE     a member event about NAME with meta[KEY] == VALUE?
event LOG EVENT [K=V...]    an event of this kind (with these values)?
count LOG EVENT [K=V...]    number of events of this kind (with these values)
get LOG EVENT FIELD [K=V...]  FIELD of the last such event (exit 1: none)
wall LOG EVENT [K=V...]     wall-clock ms of the last such event (exit 1: none)
valid LOG...                every complete line is a JSON object with "event"
Values compare as JSON text: reliable=true, id=3, text=hello, dest=null.
"""
import json
import sys


def events(path):
    out = []
    with open(path, errors="replace") as f:
        for line in f:
            if not line.endswith("\n"):
                break  # being written
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"event": "<invalid>", "line": line})
    return out


def match(e, kind, kvs):
    if e["event"] != kind:
        return False
    for kv in kvs:
        k, v = kv.split("=", 1)
        got = e.get(k)
        if (got if isinstance(got, str) else json.dumps(got)) != v:
            return False
    return True


cmd, args = sys.argv[1], sys.argv[2:]
if cmd == "valid":
    bad = 0
    for path in args:
        with open(path, errors="replace") as f:
            for n, line in enumerate(f, 1):
                try:
                    ev = json.loads(line)
                    assert isinstance(ev, dict) and isinstance(ev.get("event"), str)
                    assert isinstance(ev.get("t_ms"), int)
                except Exception:
                    print("%s:%d: not a JSON event: %r" % (path, n, line))
                    bad += 1
    sys.exit(1 if bad else 0)

evs = events(args[0])
if cmd == "listing":
    ends = [i for i, e in enumerate(evs) if e["event"] == "members_end"]
    if not ends:
        sys.exit(1)
    end = ends[-1]
    rows = []
    i = end - 1
    while i >= 0 and evs[i]["event"] == "member" and "change" not in evs[i]:
        rows.append(evs[i])
        i -= 1
    if len(rows) != evs[end]["count"]:
        sys.exit(1)  # a member callback interleaved? ask again
    for e in sorted(rows, key=lambda e: e["name"]):
        print(e["name"], e["state"])
    sys.exit(0)
if cmd == "saw":
    who, change = args[1], args[2]
    sys.exit(0 if any(e["event"] == "member" and e["name"] == who
                      and e.get("change") == change for e in evs) else 1)
if cmd == "meta":
    who, key, val = args[1:4]
    sys.exit(0 if any(e["event"] == "member" and e["name"] == who
                      and e.get("meta", {}).get(key) == val for e in evs) else 1)
if cmd == "event":
    sys.exit(0 if any(match(e, args[1], args[2:]) for e in evs) else 1)
if cmd == "count":
    print(sum(1 for e in evs if match(e, args[1], args[2:])))
    sys.exit(0)
if cmd == "wall":  # wall-clock ms of the last such event
    base, last = 0, None
    for e in evs:
        if e["event"] == "ready":
            base = e.get("wall_ms", 0)
        if match(e, args[1], args[2:]):
            last = base + e["t_ms"]
    if last is None:
        sys.exit(1)
    print(last)
    sys.exit(0)
if cmd == "get":
    hits = [e for e in evs if match(e, args[1], args[3:])]
    if not hits:
        sys.exit(1)
    v = hits[-1].get(args[2])
    print(v if isinstance(v, str) else json.dumps(v))
    sys.exit(0)
sys.exit("check.py: unknown command " + cmd)
EOF
check() { "$py" "$tmp/check.py" "$@"; }

# wait_until SECONDS WHAT command...: poll until command succeeds
wait_until() {
  local limit=$1 what=$2 deadline
  shift 2
  deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "$what: not within ${limit}s"
    ((SECONDS < test_deadline)) || fail "$what: whole test over ${WATCHDOG_S}s"
    sleep "$POLL"
  done
}

# wait_exit PID SECONDS: wait for a process we started; its status in $status
status=
wait_exit() {
  local p=$1 limit=$2 deadline
  deadline=$((SECONDS + limit))
  while kill -0 "$p" 2>/dev/null; do
    ((SECONDS < deadline && SECONDS < test_deadline)) || return 1
    sleep "$POLL"
  done
  wait "$p"
  status=$?
  return 0
}

# start NAME ARGS...: a peer with a FIFO as stdin, held open read-write here
start() {
  local n=$1 f
  shift
  mkfifo "$tmp/$n.in" || fail "mkfifo"
  exec {f}<>"$tmp/$n.in"
  fd[$n]=$f
  "$peer" --name "$n" "$@" <"$tmp/$n.in" >"$tmp/$n.log" 2>"$tmp/$n.err" &
  pid[$n]=$!
  wait_until "$WAIT_S" "$n ready" check event "$tmp/$n.log" ready
}

send() { printf '%s\n' "$2" >&"${fd[$1]}"; }

# listing_is NAME "a alive" "b alive" ...: send `members`, compare the answer
listing_is() {
  local n=$1 before want got i
  shift
  want=$(printf '%s\n' "$@" | sort)
  before=$(check count "$tmp/$n.log" members_end)
  send "$n" members
  for ((i = 0; i < 50; i++)); do
    (($(check count "$tmp/$n.log" members_end) > before)) && break
    sleep "$POLL"
  done
  got=$(check listing "$tmp/$n.log") || return 1
  [[ $got == "$want" ]]
}

# ---------------------------------------------------------------------------
# 1. arguments
# ---------------------------------------------------------------------------
expect_exit() { # CODE DESCRIPTION args...
  local want=$1 what=$2 rc
  shift 2
  timeout 10 "$peer" "$@" </dev/null >"$tmp/args.out" 2>"$tmp/args.err"
  rc=$?
  [[ $rc == "$want" ]] || fail "$what: exit $rc, want $want ($(head -c 300 "$tmp/args.err"))"
  if [[ $want == 2 && ! -s $tmp/args.err ]]; then
    fail "$what: no message on stderr"
  fi
}
expect_exit 0 "--help" --help
grep -q "usage: dmq-peer" "$tmp/args.out" || fail "--help: no usage on stdout"
expect_exit 2 "no arguments"
expect_exit 2 "missing --bind" --name a
expect_exit 2 "missing --name" --bind 127.0.0.1:0
expect_exit 2 "unknown flag" --name a --bind 127.0.0.1:0 --frobnicate
expect_exit 2 "stray argument" --name a --bind 127.0.0.1:0 extra
expect_exit 2 "missing value" --name a --bind
expect_exit 2 "bad profile" --name a --bind 127.0.0.1:0 --profile warp
expect_exit 2 "bad --meta" --name a --bind 127.0.0.1:0 --meta novalue
expect_exit 2 "bad bind address" --name a --bind not-an-address
expect_exit 2 "value for a flag" --name a --bind 127.0.0.1:0 --udp-only=yes
expect_exit 2 "name too long" --name "$(printf 'n%.0s' {1..65})" --bind 127.0.0.1:0
expect_exit 2 "channel too long" --name a --bind 127.0.0.1:0 --channel "$(printf 'c%.0s' {1..33})"
expect_exit 2 "channel with a blank" --name a --bind 127.0.0.1:0 --channel "a b"
expect_exit 2 "channel twice" --name a --bind 127.0.0.1:0 --channel kv --channel kv
expect_exit 2 "--ttl-ms 0" --name a --bind 127.0.0.1:0 --ttl-ms 0
expect_exit 2 "--ttl-ms not a number" --name a --bind 127.0.0.1:0 --ttl-ms 5s
expect_exit 2 "--request-timeout-ms too big" --name a --bind 127.0.0.1:0 --request-timeout-ms 4294967296
ok "bad arguments exit 2 with a message, --help exits 0"

# ---------------------------------------------------------------------------
# 2. stdin: /dev/null keeps running; --exit-on-eof quits; SIGINT quits
# ---------------------------------------------------------------------------
"$peer" --name solo --bind 127.0.0.1:0 --profile fast </dev/null >"$tmp/solo.log" 2>"$tmp/solo.err" &
pid[solo]=$!
wait_until "$WAIT_S" "solo ready" check event "$tmp/solo.log" ready
sleep 0.5
kill -0 "${pid[solo]}" 2>/dev/null || fail "a peer with stdin /dev/null exited at EOF"
kill -INT "${pid[solo]}"
wait_exit "${pid[solo]}" "$EXIT_S" || fail "SIGINT: still running after ${EXIT_S}s"
[[ $status == 0 ]] || fail "SIGINT: exit $status"
check event "$tmp/solo.log" closed reason=signal || fail "SIGINT: no closed event"
unset 'pid[solo]'

printf 'members\nstats\n' | timeout 10 "$peer" --name eof --bind 127.0.0.1:0 --exit-on-eof \
  >"$tmp/eof.log" 2>"$tmp/eof.err"
rc=$?
[[ $rc == 0 ]] || fail "--exit-on-eof with a pipe: exit $rc"
check event "$tmp/eof.log" stats || fail "--exit-on-eof: commands before EOF not run"
check event "$tmp/eof.log" closed reason=eof || fail "--exit-on-eof: no closed event"
timeout 10 "$peer" --name eof2 --bind 127.0.0.1:0 --exit-on-eof </dev/null >"$tmp/eof2.log" 2>"$tmp/eof2.err" ||
  fail "--exit-on-eof with /dev/null: exit $?"
printf 'members\nquit\nstats\n' >"$tmp/cmds"
timeout 10 "$peer" --name file --bind 127.0.0.1:0 <"$tmp/cmds" >"$tmp/file.log" 2>"$tmp/file.err" ||
  fail "commands from a file: exit $?"
check event "$tmp/file.log" members_end count=1 || fail "commands from a file: no members listing"
! check event "$tmp/file.log" stats || fail "commands after quit were run"
ok "stdin: /dev/null keeps running, SIGINT/--exit-on-eof/quit exit 0, pipe/file input"

# ---------------------------------------------------------------------------
# 3. three peers
# ---------------------------------------------------------------------------
start p1 --bind 127.0.0.1:0 --profile fast --meta role=seed --channel kv
seed=$("$py" -c 'import json,sys
for l in open(sys.argv[1]):
    e = json.loads(l)
    if e["event"] == "ready":
        print(e["addr"].split("://", 1)[-1]); break' "$tmp/p1.log")
[[ $seed == 127.0.0.1:* ]] || fail "p1: bad ready address '$seed'"
expect_exit 2 "bind failure (port in use)" --name dup --bind "$seed"
start p2 --bind 127.0.0.1:0 --profile fast --seed "$seed" --channel kv --channel other
start p3 --bind 127.0.0.1:0 --profile fast --seed "$seed" --meta role=worker
ok "3 peers started, seed $seed"

t0=$SECONDS
for n in p1 p2 p3; do
  wait_until "$WAIT_S" "$n sees 3 alive" listing_is "$n" "p1 alive" "p2 alive" "p3 alive"
done
ok "converged (members lists 3 alive on every peer) in $((SECONDS - t0))s"

check meta "$tmp/p2.log" p3 role worker || fail "initial --meta of p3 not seen by p2"
send p2 'meta zone=eu note=a"b\c/é'
wait_until "$WAIT_S" "p2: meta ok" check event "$tmp/p2.log" ok command=meta
for n in p1 p3; do
  wait_until "$WAIT_S" "$n sees p2's meta" check meta "$tmp/$n.log" p2 zone eu
  check meta "$tmp/$n.log" p2 note 'a"b\c/é' || fail "$n: meta value with quotes not escaped right"
  check saw "$tmp/$n.log" p2 meta_updated || fail "$n: no meta_updated event"
done
send p2 'meta zone= rack=r1'
for n in p1 p3; do
  wait_until "$WAIT_S" "$n sees p2's second meta" check meta "$tmp/$n.log" p2 rack r1
done
send p2 'meta bad;key=1'
wait_until "$WAIT_S" "bad meta rejected" check event "$tmp/p2.log" error
ok "meta propagates (merge, removal with K=, escaping), bad meta is an error"

send p1 stats
wait_until "$WAIT_S" "stats event" check event "$tmp/p1.log" stats
"$py" - "$tmp/p1.log" <<'EOF' || fail "stats event incomplete"
import json, sys
s = [json.loads(l) for l in open(sys.argv[1]) if '"event":"stats"' in l][-1]
for k in ("pkts_in", "pkts_out", "bytes_in", "bytes_out", "drops_total", "drops",
          "members", "health_score"):
    assert k in s, k
assert s["members"]["alive"] == 3, s["members"]
assert s["pkts_in"] > 0 and s["bytes_out"] > 0, s
EOF
send p1 frobnicate
wait_until "$WAIT_S" "unknown command error" check event "$tmp/p1.log" error
ok "stats event, unknown command -> error event"

# ---------------------------------------------------------------------------
# 3b. queued delivery: p1 and p2 serve kv, p3 serves nothing (yet)
# ---------------------------------------------------------------------------
# submit NAME LINE: a messaging command; the id of its "sent" event in $id
# (fails on an "error" event instead)
id=
submit() {
  local n=$1 line=$2 sent errs i
  sent=$(check count "$tmp/$n.log" sent)
  errs=$(check count "$tmp/$n.log" error)
  send "$n" "$line"
  for ((i = 0; i < 100; i++)); do
    if (($(check count "$tmp/$n.log" error) > errs)); then
      fail "$n: '$line' refused: $(check get "$tmp/$n.log" error message)"
    fi
    (($(check count "$tmp/$n.log" sent) > sent)) && break
    sleep "$POLL"
  done
  id=$(check get "$tmp/$n.log" sent id) || fail "$n: '$line': no sent event"
}
# msgs NAME TEXT: how many times NAME printed a message with this text
msgs() { check count "$tmp/$1.log" message "text=$2"; }
# once NAME TEXT FROM [K=V...]: NAME prints TEXT from FROM, exactly once
once() {
  local n=$1 text=$2 from=$3 c
  shift 3
  wait_until "$WAIT_S" "$n gets '$text'" check event "$tmp/$n.log" message "text=$text" "from=$from" "$@"
  c=$(msgs "$n" "$text")
  [[ $c == 1 ]] || fail "$n printed '$text' $c times"
}
# outcome NAME ID OUTCOME [K=V...]: wait for the outcome of ID at NAME; it
# must be OUTCOME (with these values) and the only one for ID
outcome() {
  local n=$1 i=$2 want=$3 c got
  shift 3
  wait_until "$WAIT_S" "$n: outcome of id $i" check event "$tmp/$n.log" outcome "id=$i"
  got=$(check get "$tmp/$n.log" outcome outcome "id=$i")
  [[ $got == "$want" ]] || fail "$n: id $i: outcome $got, want $want"
  check event "$tmp/$n.log" outcome "id=$i" "$@" ||
    fail "$n: id $i: outcome without $*: $(grep '"event":"outcome"' "$tmp/$n.log" | grep "\"id\":$i,")"
  c=$(check count "$tmp/$n.log" outcome "id=$i")
  [[ $c == 1 ]] || fail "$n: id $i has $c outcomes"
}

submit p1 "send p2 kv hello from p1"
outcome p1 "$id" delivered kind=send dest=p2 channel=kv delivered=1 failed=0
once p2 "hello from p1" p1 channel=kv reliable=true request=false
submit p1 'send p2 kv two  spaces, "quotes" \ é'
outcome p1 "$id" delivered
once p2 'two  spaces, "quotes" \ é' p1 utf8=true len=26
printf 'send p2 kv bin\xff\x01end\n' >&"${fd[p1]}"
wait_until "$WAIT_S" "p2 gets the binary payload" check event "$tmp/p2.log" message len=8 utf8=false
"$py" -c '
import json, sys
m = [json.loads(l) for l in open(sys.argv[1]) if "\"utf8\":false" in l]
assert len(m) == 1 and m[0]["text"].encode("latin-1") == b"bin\xff\x01end", m
' "$tmp/p2.log" || fail "binary payload not rendered byte for byte"
submit p1 "sendbe p2 kv best effort"
be_id=$id
once p2 "best effort" p1 reliable=false request=false
ok "send: printed once at p2 (spaces, quotes, binary kept), outcome delivered; sendbe: reliable=false"

submit p2 "bcast kv broadcast 1"
outcome p2 "$id" delivered kind=bcast dest=null delivered=1 failed=0
once p1 "broadcast 1" p2 reliable=true
ok "bcast: reaches p1 (serves kv) once, outcome delivered 1/0"

submit p1 "request p2 kv question 1"
q=$id
once p2 "question 1" p1 request=true
wait_until "$WAIT_S" "p1: reply" check event "$tmp/p1.log" reply "id=$q" from=p2 "text=ack:question 1"
outcome p1 "$q" delivered kind=request dest=p2
[[ $(check count "$tmp/p1.log" reply "id=$q") == 1 ]] || fail "p1: more than one reply to $q"
ok "request: p2 answers 'ack:question 1' (reply event, then outcome delivered)"

submit p1 "request p3 kv question 2"
outcome p1 "$id" unknown_dest kind=request dest=p3 delivered=0 failed=1
submit p1 "send p3 kv unicast to a non-server"
outcome p1 "$id" unknown_dest kind=send
ok "request/send to a peer not serving the channel: outcome unknown_dest"

errs=$(check count "$tmp/p1.log" error command=send error=DMQ_ENOENT)
send p1 "send nosuch kv nobody home"
wait_until "$WAIT_S" "send to an unknown member refused" \
  test "$(check count "$tmp/p1.log" error command=send error=DMQ_ENOENT)" -gt "$errs"
send p1 "send p2"
wait_until "$WAIT_S" "usage error" check event "$tmp/p1.log" error "message=usage: send MEMBER CHANNEL TEXT"
ok "send to an unknown member -> error DMQ_ENOENT; missing arguments -> usage error"

# p3 starts serving kv at runtime: the broadcasts p2 sends once it knows (its
# "sent" event counts the destinations) reach p3; the earlier ones did not
send p3 "channel kv"
wait_until "$WAIT_S" "p3: channel ok" check event "$tmp/p3.log" ok command=channel channel=kv
send p3 "channel kv"
wait_until "$WAIT_S" "p3: channel twice" check event "$tmp/p3.log" error command=channel error=DMQ_EEXIST
for ((k = 1; ; k++)); do
  ((k <= 50)) || fail "p2 never learned that p3 serves kv"
  submit p2 "bcast kv late $k"
  [[ $(check get "$tmp/p2.log" sent dests "id=$id") == 2 ]] && break
  sleep "$POLL"
done
outcome p2 "$id" delivered delivered=2 failed=0
once p3 "late $k" p2
once p1 "late $k" p2
[[ $(msgs p3 "broadcast 1") == 0 ]] || fail "p3 got a broadcast sent before it served kv"
[[ $(check count "$tmp/p3.log" message) == 1 ]] || fail "p3 printed messages before serving kv"
ok "channel kv at runtime: p3 gets the later broadcasts (try $k), not the earlier ones"

send p3 "unchannel kv"
wait_until "$WAIT_S" "p3: unchannel ok" check event "$tmp/p3.log" ok command=unchannel channel=kv
for ((k = 1; ; k++)); do
  ((k <= 50)) || fail "p2 never learned that p3 stopped serving kv"
  submit p2 "bcast kv gone $k"
  [[ $(check get "$tmp/p2.log" sent dests "id=$id") == 1 ]] && break
  sleep "$POLL"
done
outcome p2 "$id" delivered delivered=1 failed=0
once p1 "gone $k" p2
[[ $(check count "$tmp/p3.log" message) == 1 ]] || fail "p3 printed a message after unchannel"
send p3 "unchannel kv"
wait_until "$WAIT_S" "p3: unchannel twice" check event "$tmp/p3.log" error command=unchannel error=DMQ_ENOENT
ok "unchannel kv: later broadcasts skip p3"

[[ $(check count "$tmp/p1.log" outcome "id=$be_id") == 0 ]] || fail "a best-effort send got an outcome"
n_stats=$(check count "$tmp/p1.log" stats)
send p1 stats
wait_until "$WAIT_S" "stats with delivery" test "$(check count "$tmp/p1.log" stats)" -gt "$n_stats"
"$py" -c '
import json, sys
s = [json.loads(l) for l in open(sys.argv[1]) if "\"event\":\"stats\"" in l][-1]
d = s["delivery"]
for k in ("sent_be", "sent_reliable", "received", "delivered_app", "retransmits",
          "duplicates", "expired", "dead", "queued_msgs", "inflight"):
    assert isinstance(d.get(k), int), k
assert d["sent_reliable"] >= 4 and d["sent_be"] >= 1 and d["delivered_app"] >= 3, d
assert s["channels"] == ["kv"], s["channels"]
' "$tmp/p1.log" || fail "stats: delivery counters missing or wrong"
ok "stats: delivery counters, channels served"

kill -TERM "${pid[p3]}"
wait_exit "${pid[p3]}" "$EXIT_S" || fail "p3: still running ${EXIT_S}s after SIGTERM"
[[ $status == 0 ]] || fail "p3: exit $status after SIGTERM"
unset 'pid[p3]'
for n in p1 p2; do
  wait_until "$WAIT_S" "$n sees p3 left" check saw "$tmp/$n.log" p3 left
done
ok "SIGTERM: p3 exited 0, p1 and p2 see it left"

kill9 "${pid[p2]}"
unset 'pid[p2]'
t0=$SECONDS
wait_until "$DEAD_S" "p1 sees p2 dead" check saw "$tmp/p1.log" p2 dead
ok "SIGKILL: p1 sees p2 dead after ~$((SECONDS - t0))s"
check saw "$tmp/p1.log" p3 dead && fail "p1 saw the gracefully stopped p3 dead"
check saw "$tmp/p2.log" p3 dead && fail "p2 saw the gracefully stopped p3 dead"

send p1 quit
wait_exit "${pid[p1]}" "$EXIT_S" || fail "p1: still running ${EXIT_S}s after quit"
[[ $status == 0 ]] || fail "p1: exit $status after quit"
unset 'pid[p1]'
check event "$tmp/p1.log" closed reason=quit || fail "p1: no closed event"
ok "quit: p1 exited 0"

# ---------------------------------------------------------------------------
# 5. a reliable message to a SIGSTOPped peer waits, and is delivered once
#    after SIGCONT. Profile local between two peers: the suspicion timeout
#    is 3 s (probe every 1 s), so a 1.5 s stop makes s2 at most suspect
#    (a message to a suspect member waits; to a dead one it would fail).
# ---------------------------------------------------------------------------
STOP_MS=1500
start s1 --bind 127.0.0.1:0 --profile local --channel kv
seed=$(check get "$tmp/s1.log" ready addr) || fail "s1: no address"
start s2 --bind 127.0.0.1:0 --profile local --seed "${seed#*://}" --channel kv
for n in s1 s2; do
  wait_until "$WAIT_S" "$n sees 2 alive" listing_is "$n" "s1 alive" "s2 alive"
done
kill -STOP "${pid[s2]}"
submit s1 "send s2 kv sent while stopped"
sleep "$(printf "%d.%03d" $((STOP_MS / 1000)) $((STOP_MS % 1000)))"
! check event "$tmp/s1.log" outcome "id=$id" || fail "s1: outcome while s2 is stopped: $(check get "$tmp/s1.log" outcome outcome "id=$id")"
t_cont=$(date +%s%3N) # taken before: nothing can be delivered earlier
kill -CONT "${pid[s2]}"
outcome s1 "$id" delivered dest=s2
once s2 "sent while stopped" s1 reliable=true
t_msg=$(check wall "$tmp/s2.log" message "text=sent while stopped")
t_out=$(check wall "$tmp/s1.log" outcome "id=$id")
((t_msg >= t_cont)) || fail "s2 printed the message $((t_cont - t_msg)) ms before SIGCONT"
sleep 1 # retransmissions queued in s2's socket while stopped: duplicates
[[ $(msgs s2 "sent while stopped") == 1 ]] || fail "s2 printed the message more than once"
! check saw "$tmp/s1.log" s2 dead || fail "s1 declared s2 dead during a ${STOP_MS} ms stop"
susp=no
check saw "$tmp/s1.log" s2 suspect && susp=yes
ok "SIGSTOP s2 ${STOP_MS} ms (suspected: $susp): message delivered $((t_msg - t_cont)) ms after SIGCONT, outcome at s1 after $((t_out - t_cont)) ms, exactly once"
for n in s1 s2; do
  send "$n" quit
  wait_exit "${pid[$n]}" "$EXIT_S" || fail "$n: still running ${EXIT_S}s after quit"
  [[ $status == 0 ]] || fail "$n: exit $status after quit"
  unset "pid[$n]"
done

# ---------------------------------------------------------------------------
# 5b. a UDP-only peer (--udp-only: no TCP) joins two peers that have TCP:
#     its push/pull comes as a datagram and is answered as one, and a
#     reliable message between it and a TCP peer goes over UDP
# ---------------------------------------------------------------------------
start u1 --bind 127.0.0.1:0 --profile fast --channel kv
seed=$(check get "$tmp/u1.log" ready addr) || fail "u1: no address"
start u2 --bind 127.0.0.1:0 --profile fast --seed "${seed#*://}"
wait_until "$WAIT_S" "u1 sees u2" listing_is u1 "u1 alive" "u2 alive"
start u3 --bind 127.0.0.1:0 --profile fast --seed "${seed#*://}" --udp-only --channel kv
for n in u1 u2 u3; do
  wait_until "$WAIT_S" "$n sees 3 alive" listing_is "$n" "u1 alive" "u2 alive" "u3 alive"
done
submit u1 "send u3 kv to the udp-only peer"
outcome u1 "$id" delivered dest=u3
once u3 "to the udp-only peer" u1 reliable=true
ok "a UDP-only peer joined peers with TCP and got a reliable message"
for n in u1 u2 u3; do
  send "$n" quit
  wait_exit "${pid[$n]}" "$EXIT_S" || fail "$n: still running ${EXIT_S}s after quit"
  [[ $status == 0 ]] || fail "$n: exit $status after quit"
  unset "pid[$n]"
done

# ---------------------------------------------------------------------------
# 6. output hygiene
# ---------------------------------------------------------------------------
check valid "$tmp"/*.log || fail "invalid JSON lines"
if grep -l -E "AddressSanitizer|LeakSanitizer|runtime error:" "$tmp"/*.err; then
  fail "sanitizer reports"
fi
ok "every line is a JSON event; no sanitizer reports"
echo "$name: OK"
