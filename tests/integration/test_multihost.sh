#!/usr/bin/env bash
# Five dmq-peer "hosts" on a virtual LAN, with real crashes, a frozen
# process and network partitions, and reliable messages across them.
#
# Topology (all namespaces created and deleted here; nothing else touched):
#   dmqbr<pid>          a namespace holding the bridge br0
#   dmqh<pid>_1..5      one namespace per host, lo up, one veth into br0,
#                       192.0.2.11..15/24, no default route
# Host N runs
#   ip netns exec dmqh<pid>_N dmq-peer --name hN --bind 192.0.2.1N:7946 \
#     --seed 192.0.2.11:7946 --seed 192.0.2.12:7946 --profile $PROFILE \
#     --channel kv --ttl-ms 120000
# with a FIFO as stdin and its JSON events in a log.
#
# Steps, each bounded, timed from the peers' own event timestamps:
#   1. full view: every host sees 5 alive;
#   2. SIGKILL h5: every other host sees it dead;
#   3. restart h5 (new generation): full view again;
#   4. SIGSTOP h4 until every other host has declared it dead (so for longer
#      than the suspicion timeout), SIGCONT: it refutes or rejoins, full view;
#   5. short partition {h1,h2} | {h3,h4,h5} (iptables INPUT DROP rules inside
#      each host namespace, both directions) for SHORT_PART_MS, below the
#      suspicion timeout; 12 reliable messages sent across it right after it
#      starts (h1->h4, h3->h2, h5->h1, h2->h3, numbered) must each be
#      delivered exactly once after the heal, in order, with outcome
#      "delivered" at the sender (why a short one: see step 5 below);
#   6. the same partition held until each side has declared the other dead,
#      10 reliable messages across it (each must end in exactly one outcome,
#      delivered or dead, and never be printed twice) and 6 inside each side
#      (delivered during the partition); heal (iptables -F INPUT): full view
#      again with no operator action (the core re-contacts seeds and dead
#      members every reconnect interval); then 8 unicasts and 2 broadcasts
#      across the former split, delivered exactly once;
#   7. audit: every "dead" event in every log must be explained by a fault
#      in place at that time -- the subject was SIGKILLed (that generation),
#      SIGSTOPped (until SIGCONT + GRACE_MS), or across the long partition
#      from the observer (until its heal + GRACE_MS); none may happen in
#      or after the short one. Anything else is a healthy host reported
#      dead: failure. A `members` listing on every host must
#      show 5 alive; SIGTERM must stop every peer with exit 0; the delivery
#      rules are checked once more over the final logs (a late duplicate
#      would show there).
#
# Root only; exit 77 (skipped) without root, ip netns or iptables.
# PROFILE (env DMQ_MULTIHOST_PROFILE): local (default: probe 1 s / timeout
# 200 ms, suspicion >= 3 s, reconnect 5 s; a veth LAN has sub-millisecond
# round trips, so the margins stay realistic) or lan (probe 1 s / timeout
# 500 ms, suspicion >= 4 s, reconnect 10 s; slower). Whole test bounded by
# TEST_BUDGET_S; the EXIT trap kills the peers by PID and deletes every
# namespace it created, also on failure.
set -uo pipefail

SKIP=77
name=test_multihost
N=5
PORT=7946
PROFILE=${DMQ_MULTIHOST_PROFILE:-local}
TEST_BUDGET_S=280
GRACE_MS=2000 # after SIGCONT / heal: in-flight suspicions may still expire
# SHORT_PART_MS: the short partition (step 5), well below the suspicion
# timeout of the profile (see there)
MSG_TTL_MS=120000  # reliable messages: outlive any partition + heal here
MSG_S=30           # bound for the messages of one step to get their outcomes
POLL=0.2
case $PROFILE in
  local)
    CONVERGE_S=30 DEAD_S=45 PART_S=60 HEAL_S=60 SHORT_PART_MS=2000 ;;
  fast) # suspicion >= 0.8 s
    CONVERGE_S=30 DEAD_S=45 PART_S=60 HEAL_S=60 SHORT_PART_MS=400 ;;
  lan)
    CONVERGE_S=40 DEAD_S=60 PART_S=75 HEAL_S=75 SHORT_PART_MS=2000 ;;
  *) echo "$name: unsupported profile '$PROFILE' (local, fast, lan)" >&2; exit 1 ;;
esac

skip() {
  echo "$name: SKIP: $*"
  exit $SKIP
}

[[ $(id -u) -eq 0 ]] || skip "not root"
command -v ip >/dev/null || skip "ip (iproute2) not installed"
command -v iptables >/dev/null || skip "iptables not installed"
command -v python3 >/dev/null || skip "python3 not found"
build=${DMQ_BUILD_DIR:-}
[[ -n $build ]] || { echo "$name: DMQ_BUILD_DIR not set" >&2; exit 1; }
peer=$build/tools/dmq-peer
[[ -x $peer ]] || { echo "$name: $peer not built" >&2; exit 1; }
# resolved once: a version-manager shim (pyenv) costs ~0.5 s a call
py=$(python3 -c 'import sys; print(sys.executable)') || exit 1

tmp=$(mktemp -d "${TMPDIR:-/tmp}/dmq-multihost.XXXXXX") || exit 1
br=dmqbr$$
hns() { echo "dmqh$$_$1"; }
hip() { echo "192.0.2.1$1"; }
namespaces=() # created, deleted on exit
declare -a pid=() fd=()
t_begin=$SECONDS
deadline=$((SECONDS + TEST_BUDGET_S))

# SIGKILL and reap, quietly: bash reports jobs killed by a signal ("Killed")
# at its next chance; let that happen here, into /dev/null.
kill9() { { kill -KILL "$1"; wait "$1"; sleep 0.01; } 2>/dev/null; }

cleanup() {
  local rc=$? p ns
  trap - EXIT INT TERM
  for p in "${pid[@]}"; do
    kill -CONT "$p" 2>/dev/null # a SIGSTOPped peer cannot handle SIGTERM
    kill9 "$p"
  done
  for p in "${fd[@]}"; do exec {p}>&-; done
  for ns in "${namespaces[@]}"; do ip netns del "$ns" 2>/dev/null; done
  if [[ $rc != 0 ]]; then
    echo "$name: FAILED (exit $rc); logs:" >&2
    for p in "$tmp"/h*.log* "$tmp"/h*.err; do
      [[ -s $p ]] || continue
      echo "--- $p" >&2
      tail -n 15 "$p" >&2
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
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
  echo "$name: FAIL: $*" >&2
  exit 1
}
say() { echo "$name: [$((SECONDS - t_begin))s] $*"; }
now_ms() { date +%s%3N; }
secs() {
  local d=$(($2 - $1))
  ((d < 0)) && d=0
  printf '%d.%02d' $((d / 1000)) $((d % 1000 / 10))
}
msecs() { printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)); } # ms -> s

# ---------------------------------------------------------------------------
# network
# ---------------------------------------------------------------------------
ip netns add "$br" 2>"$tmp/netns.err" || skip "cannot create a network namespace: $(cat "$tmp/netns.err")"
namespaces+=("$br")
ip -n "$br" link set lo up || fail "lo up in $br"
ip -n "$br" link add br0 type bridge || fail "bridge"
ip -n "$br" link set br0 up || fail "bridge up"
for ((i = 1; i <= N; i++)); do
  ns=$(hns "$i")
  ip netns add "$ns" || fail "netns add $ns"
  namespaces+=("$ns")
  ip -n "$ns" link set lo up || fail "lo up in $ns"
  # created in the host namespace directly: no clash with the root's names
  ip -n "$ns" link add eth0 type veth peer name "h$i" netns "$br" || fail "veth $i"
  ip -n "$br" link set "h$i" master br0 up || fail "veth $i into br0"
  ip -n "$ns" addr add "$(hip "$i")/24" dev eth0 || fail "address $i"
  ip -n "$ns" link set eth0 up || fail "eth0 up in $ns"
done
ip netns exec "$(hns 1)" iptables -L INPUT -n >/dev/null 2>"$tmp/ipt.err" ||
  skip "iptables does not work in a network namespace: $(head -c 200 "$tmp/ipt.err")"
say "network: bridge in $br, hosts $(hns 1)..$N at 192.0.2.11..15/24, profile $PROFILE"

# ---------------------------------------------------------------------------
# peers
# ---------------------------------------------------------------------------
start() { # i
  local i=$1 f
  if [[ -e $tmp/h$i.log ]]; then
    mv "$tmp/h$i.log" "$tmp/h$i.log.$(now_ms)"
  fi
  if [[ -z ${fd[i]:-} ]]; then
    mkfifo "$tmp/h$i.in" || fail "mkfifo"
    exec {f}<>"$tmp/h$i.in"
    fd[i]=$f
  fi
  ip netns exec "$(hns "$i")" "$peer" --name "h$i" --bind "$(hip "$i"):$PORT" \
    --seed "$(hip 1):$PORT" --seed "$(hip 2):$PORT" --profile "$PROFILE" \
    --channel kv --ttl-ms "$MSG_TTL_MS" <"$tmp/h$i.in" >"$tmp/h$i.log" 2>>"$tmp/h$i.err" &
  pid[i]=$! # ip netns exec execs: this is dmq-peer's pid
  local limit=$((SECONDS + 10))
  until grep -q '"event":"ready"' "$tmp/h$i.log" 2>/dev/null; do
    kill -0 "${pid[i]}" 2>/dev/null || fail "h$i exited at start: $(cat "$tmp/h$i.err")"
    ((SECONDS < limit)) || fail "h$i: no ready event within 10s"
    sleep 0.05
  done
}

send() { printf '%s\n' "$2" >&"${fd[$1]}"; }

timeline() { echo "$1 $2 $(now_ms)" >>"$tmp/timeline"; }

cat >"$tmp/mh.py" <<'EOF'
"""Views and audit over the dmq-peer logs of test_multihost.sh.

mh.py DIR N converged                 every host sees all N alive
mh.py DIR N dead TARGET               every other host sees TARGET dead
mh.py DIR N split A,B C,D,E           each side sees the other side dead
mh.py DIR N audit                     dead events vs. DIR/timeline
mh.py DIR N deaths T                  dead events since wall ms T (exit 1)
mh.py DIR N listing                   last `members` listing of every host
mh.py DIR N delivery [final] [PHASE..] messages in DIR/sends: delivered as
                                      they must be (exit 0), outcomes still
                                      missing (3), a rule broken (2)
Conditions print "hN=<wall ms>" (when each observer got there) and exit 0,
or print progress and exit 1.
"""
import glob
import json
import os
import sys

d, n, cmd, args = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
hosts = ["h%d" % i for i in range(1, n + 1)]


def read(path):
    evs, base = [], None
    with open(path, errors="replace") as f:
        for line in f:
            if not line.endswith("\n"):
                break
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if e.get("event") == "ready":
                base = e.get("wall_ms", 0)
            if base is not None:
                e["wall"] = base + e.get("t_ms", 0)
                evs.append(e)
    return evs


def view(h):
    """{member: [state, since]} of the running peer of host h, or None."""
    path = os.path.join(d, h + ".log")
    if not os.path.exists(path):
        return None
    v, ready = {}, False
    for e in read(path):
        k = e["event"]
        if k == "ready":
            ready = True
        elif k == "closed":
            return None
        elif k == "member" and not e.get("self"):
            if e.get("change") == "reaped":
                v.pop(e["name"], None)
            elif e["name"] not in v or v[e["name"]][0] != e["state"]:
                v[e["name"]] = [e["state"], e["wall"]]
    return v if ready else None


def sees(observers, targets, state):
    ok, since, prog = True, {}, []
    for o in observers:
        v = view(o) or {}
        got = [v[t][1] for t in targets if t != o and t in v and v[t][0] == state]
        want = len([t for t in targets if t != o])
        prog.append("%s:%d/%d" % (o, len(got), want))
        if len(got) < want:
            ok = False
        else:
            since[o] = max(got) if got else 0
    if ok:
        print(" ".join("%s=%d" % kv for kv in sorted(since.items())))
        sys.exit(0)
    print("%s: " % state + " ".join(prog))
    sys.exit(1)


if cmd == "converged":
    sees(hosts, hosts, "alive")
if cmd == "dead":
    sees([h for h in hosts if h != args[0]], [args[0]], "dead")
if cmd == "split":
    a, b = args[0].split(","), args[1].split(",")
    ok = True
    for side, other in ((a, b), (b, a)):
        for o in side:
            v = view(o) or {}
            if not all(t in v and v[t][0] == "dead" for t in other):
                ok = False
    if ok:
        times = {}
        for side, other in ((a, b), (b, a)):
            for o in side:
                v = view(o)
                times[o] = max(v[t][1] for t in other)
        print(" ".join("%s=%d" % kv for kv in sorted(times.items())))
        sys.exit(0)
    prog = []
    for side, other in ((a, b), (b, a)):
        for o in side:
            v = view(o) or {}
            prog.append("%s:%d/%d" % (o, sum(1 for t in other if t in v and v[t][0] == "dead"), len(other)))
    print("dead across: " + " ".join(prog))
    sys.exit(1)

if cmd == "listing":
    bad = 0
    for h in hosts:
        evs = read(os.path.join(d, h + ".log"))
        ends = [i for i, e in enumerate(evs) if e["event"] == "members_end"]
        if not ends:
            print("%s: no listing" % h)
            bad += 1
            continue
        rows, i = [], ends[-1] - 1
        while i >= 0 and evs[i]["event"] == "member" and "change" not in evs[i]:
            rows.append(evs[i])
            i -= 1
        states = sorted("%s:%s" % (r["name"], r["state"]) for r in rows)
        print("%s sees %s" % (h, " ".join(states)))
        if len(rows) != n or any(r["state"] != "alive" for r in rows):
            bad += 1
    sys.exit(1 if bad else 0)

if cmd == "audit":
    tl = {}
    with open(os.path.join(d, "timeline")) as f:
        for line in f:
            what, who, t = line.split()
            tl[(what, who)] = int(t)
    inf = 1 << 62
    grace = int(args[0]) if args else 2000
    part_a = set(os.environ.get("MH_SIDE_A", "").split(","))
    # generations of each host's incarnations, from the ready events
    gens = {}
    for path in glob.glob(os.path.join(d, "h*.log*")):
        for e in read(path):
            if e["event"] == "ready":
                gens.setdefault(e["name"], []).append((e["wall"], e.get("generation")))
    for h in gens:
        gens[h].sort()

    def gen_killed(h):
        """generation of h's incarnation that was SIGKILLed."""
        t = tl.get(("kill", h))
        if t is None:
            return None
        before = [g for (w, g) in gens.get(h, []) if w <= t]
        return before[-1] if before else None

    bad, seen = 0, 0
    for path in sorted(glob.glob(os.path.join(d, "h*.log*"))):
        for e in read(path):
            if e["event"] != "member" or e.get("change") != "dead":
                continue
            seen += 1
            obs, subj, t, g = os.path.basename(path).split(".")[0], e["name"], e["wall"], e.get("generation")
            why = None
            tk = tl.get(("kill", subj))
            if tk is not None and t >= tk and g == gen_killed(subj):
                why = "killed"
            ts, tc = tl.get(("stop", subj)), tl.get(("cont", subj))
            if why is None and ts is not None and ts <= t <= (tc if tc else inf) + grace:
                why = "stopped"
            for tag in ("long",):  # not "short": nobody may die there
                tp, th = tl.get(("partition", tag)), tl.get(("heal", tag))
                if (why is None and tp is not None and tp <= t <= (th if th else inf) + grace
                        and ((obs in part_a) != (subj in part_a))):
                    why = "partitioned (%s)" % tag
            if why is None:
                bad += 1
                print("UNEXPECTED: %s reported %s (generation %s) dead at %d (%s)"
                      % (obs, subj, g, t, path))
    print("audit: %d dead events, %d unexplained" % (seen, bad))
    sys.exit(1 if bad else 0)

if cmd == "deaths":  # dead events at or after wall ms T (exit 1 if any)
    t0, found = int(args[0]), 0
    for path in sorted(glob.glob(os.path.join(d, "h*.log*"))):
        for e in read(path):
            if e["event"] == "member" and e.get("change") == "dead" and e["wall"] >= t0:
                found += 1
                print("%s saw %s dead at +%d ms" % (os.path.basename(path), e["name"], e["wall"] - t0))
    sys.exit(1 if found else 0)

if cmd == "delivery":
    # DIR/sends: "PHASE SENDER DEST TEXT" per send command, in the order the
    # commands were written (DEST "*": a broadcast). The k-th record of a
    # sender is its k-th "sent" event (each send command prints exactly one
    # "sent" or one "error"). Rules, per message:
    #   every phase: at most one outcome per id; never printed twice; never
    #     printed by a host that is not a destination;
    #   strict phases (short, inside, after): outcome delivered, printed
    #     exactly once by its destination (every other host for a
    #     broadcast), FIFO per (sender, destination);
    #   across (the long partition): outcome delivered or dead; delivered
    #     implies printed once.
    # Exit 0: all good and every outcome in; 3: outcomes missing (a
    # condition to wait for); 2: a rule broken (prints why). "final" as the
    # first argument: missing outcomes are a broken rule too.
    final = bool(args) and args[0] == "final"
    phases = set(a for a in args if a != "final")
    strict = {"short", "inside", "after"}
    recs = []
    with open(os.path.join(d, "sends")) as f:
        for line in f:
            ph, snd, dst, text = line.rstrip("\n").split(" ", 3)
            recs.append((ph, snd, dst, text))
    # senders first: a receiver prints a message before it acknowledges it,
    # so a "delivered" read here has its "message" in the receiver's log
    sent, outs, errs, deaths = {}, {}, {}, {}
    for snd in sorted(set(r[1] for r in recs)):
        evs = read(os.path.join(d, snd + ".log"))
        sent[snd] = [e for e in evs if e["event"] == "sent"]
        errs[snd] = [e.get("message") for e in evs if e["event"] == "error"]
        outs[snd] = {}
        deaths[snd] = {}
        for e in evs:
            if e["event"] == "outcome":
                outs[snd].setdefault(e["id"], []).append(e)
            elif e["event"] == "member" and e.get("change") == "dead":
                deaths[snd].setdefault(e["name"], []).append(e["wall"])
    got = {}  # text -> [(host, file, line index, wall, from)]
    for path in sorted(glob.glob(os.path.join(d, "h*.log*"))):
        host = os.path.basename(path).split(".")[0]
        for i, e in enumerate(read(path)):
            if e["event"] == "message":
                got.setdefault(e.get("text"), []).append(
                    (host, path, i, e["wall"], e.get("from")))
    bad, pending, nth = [], 0, {}
    # phase -> [n, {outcome: count}, last rx, printed, last outcome,
    #           slowest sent -> outcome (ms)]
    summary = {}
    order = {}  # (phase, sender, dest) -> [rx (file, index)]
    for ph, snd, dst, text in recs:
        k = nth.get(snd, 0)
        nth[snd] = k + 1
        if phases and ph not in phases:
            continue
        sm = summary.setdefault(ph, [0, {}, 0, 0, 0, 0])
        sm[0] += 1
        if k >= len(sent[snd]):
            bad.append("%s: %r: no sent event (errors: %s)" % (snd, text, errs[snd][-3:]))
            continue
        se = sent[snd][k]
        want_dest = None if dst == "*" else dst
        if se.get("dest") != want_dest:
            bad.append("%s: sent event %d is to %s, expected %s (%r)"
                       % (snd, k, se.get("dest"), want_dest, text))
            continue
        o = outs[snd].get(se["id"], [])
        rx = got.get(text, [])
        dests = [h for h in hosts if h != snd] if dst == "*" else [dst]
        where = "%s->%s %r (id %d)" % (snd, dst, text, se["id"])
        for h in set(r[0] for r in rx):
            c = sum(1 for r in rx if r[0] == h)
            if h not in dests:
                bad.append("%s: printed by %s, not a destination" % (where, h))
            elif c > 1:
                bad.append("%s: printed %d times by %s" % (where, c, h))
        if any(r[4] != snd for r in rx):
            bad.append("%s: printed with the wrong sender %s" % (where, [r[4] for r in rx]))
        sm[3] += len(rx)
        if rx:
            sm[2] = max(sm[2], max(r[3] for r in rx))
        if len(o) > 1:
            bad.append("%s: %d outcomes: %s" % (where, len(o), [x["outcome"] for x in o]))
            continue
        if not o:
            pending += 1
            if final:
                bad.append("%s: no outcome" % where)
            continue
        oc = o[0]["outcome"]
        sm[1][oc] = sm[1].get(oc, 0) + 1
        sm[4] = max(sm[4], o[0]["wall"])
        sm[5] = max(sm[5], o[0]["wall"] - se["wall"])
        printed = set(r[0] for r in rx)
        if ph in strict:
            if oc != "delivered":
                why = ""
                for h in dests:
                    if deaths[snd].get(h):
                        why += " (%s saw %s dead at %s)" % (snd, h, deaths[snd][h])
                bad.append("%s: outcome %s, want delivered%s" % (where, oc, why))
            elif printed != set(dests):
                bad.append("%s: delivered, but printed by %s (want %s)"
                           % (where, sorted(printed), dests))
            elif dst == "*" and (o[0].get("delivered") != len(dests) or o[0].get("failed") != 0):
                bad.append("%s: broadcast outcome %s" % (where, o[0]))
            for r in rx:
                order.setdefault((ph, snd, r[0]), []).append((r[1], r[2], text))
        elif ph == "across":
            if oc not in ("delivered", "dead"):
                bad.append("%s: outcome %s, want delivered or dead" % (where, oc))
            elif oc == "delivered" and printed != set(dests):
                bad.append("%s: delivered, but printed by %s" % (where, sorted(printed)))
            elif oc == "dead" and printed:
                print("note: %s: reported dead, printed by %s" % (where, sorted(printed)))
    # FIFO per (sender, destination): records are in send order
    for key, seen in order.items():
        want = [t for (ph, snd, dst, t) in recs
                if (ph, snd) == key[:2] and (dst == key[2] or dst == "*")]
        got_order = [t for (_, _, t) in sorted(seen)]
        if got_order != [t for t in want if t in got_order]:
            bad.append("%s->%s (%s): out of order: %s" % (key[1], key[2], key[0], got_order))
    for ph in sorted(summary):
        n_, ocs, last, printed, last_out, slow = summary[ph]
        print("phase=%s sent=%d outcomes=%s printed=%d last_rx=%d last_outcome=%d "
              "max_latency_ms=%d"
              % (ph, n_, ",".join("%s:%d" % kv for kv in sorted(ocs.items())) or "-",
                 printed, last, last_out, slow))
    for b in bad:
        print("BROKEN: " + b)
    if bad:
        sys.exit(2)
    sys.exit(3 if pending else 0)

sys.exit("mh.py: unknown command " + cmd)
EOF
mh() { "$py" "$tmp/mh.py" "$tmp" "$N" "$@"; }

# wait_for WHAT LIMIT mh-args...: poll; leaves per-observer times in $since
since=
wait_for() {
  local what=$1 limit=$2 end out last=''
  shift 2
  end=$((SECONDS + limit))
  while :; do
    if out=$(mh "$@"); then
      since=$out
      return 0
    fi
    [[ $out != "$last" ]] && say "  ... $out"
    last=$out
    ((SECONDS < end)) || fail "$what: not within ${limit}s ($out)"
    ((SECONDS < deadline)) || fail "$what: test budget of ${TEST_BUDGET_S}s spent ($out)"
    sleep "$POLL"
  done
}

# seconds from t0 to the latest time in $since
latest() {
  local worst=0 kv v
  for kv in $since; do
    v=${kv#*=}
    ((v > worst)) && worst=$v
  done
  secs "$1" "$worst"
}

declare -a summary=()
record() { summary+=("$(printf '%-52s %8s' "$1" "$2")"); say "$1: $2 s"; }

# ---------------------------------------------------------------------------
# 1. full view
# ---------------------------------------------------------------------------
t0=$(now_ms)
for ((i = 1; i <= N; i++)); do start "$i"; done
say "started h1..h$N (pids ${pid[*]})"
wait_for "full view" "$CONVERGE_S" converged
record "start -> full view (5 x 5 alive)" "$(latest "$t0")"

# ---------------------------------------------------------------------------
# 2. SIGKILL h5
# ---------------------------------------------------------------------------
timeline kill h5
t0=$(now_ms)
kill9 "${pid[5]}"
say "SIGKILL h5"
wait_for "h5 dead everywhere" "$DEAD_S" dead h5
record "SIGKILL h5 -> all others see it dead" "$(latest "$t0")"

# ---------------------------------------------------------------------------
# 3. restart h5
# ---------------------------------------------------------------------------
timeline restart h5
t0=$(now_ms)
start 5
say "restarted h5 (pid ${pid[5]})"
wait_for "full view after restart" "$CONVERGE_S" converged
record "restart h5 -> full view" "$(latest "$t0")"

# ---------------------------------------------------------------------------
# 4. SIGSTOP h4 past the suspicion timeout, SIGCONT
# ---------------------------------------------------------------------------
timeline stop h4
t0=$(now_ms)
kill -STOP "${pid[4]}"
say "SIGSTOP h4"
wait_for "h4 dead everywhere" "$DEAD_S" dead h4
record "SIGSTOP h4 -> all others see it dead" "$(latest "$t0")"
timeline cont h4
t0=$(now_ms)
kill -CONT "${pid[4]}"
say "SIGCONT h4"
wait_for "full view after SIGCONT" "$CONVERGE_S" converged
record "SIGCONT h4 -> full view (refuted / rejoined)" "$(latest "$t0")"

# ---------------------------------------------------------------------------
# 5. short partition {h1,h2} | {h3,h4,h5} with reliable messages across it
# ---------------------------------------------------------------------------
# Why a short partition for the exactly-once check (dmq/delivery.h): a
# reliable message to a SUSPECT member waits (retransmitted with back-off
# until its TTL), but one to a member its sender declares DEAD fails at once
# with outcome "dead" -- by design, so that a sender learns of a dead peer
# instead of waiting for the TTL. Across a partition that lasts past the
# suspicion timeout each side declares the other dead, so the messages sent
# across it end "dead" whatever their TTL: "delivered after the heal" cannot
# be asked of them. A partition shorter than the suspicion timeout (local
# profile: at least 3 s of suspicion, here 6-10 s since at most 2 of the 3
# confirmations can arrive across a split, plus ~1 s to start suspecting)
# leaves every member at most SUSPECT: messages sent right after it starts,
# with a TTL (MSG_TTL_MS) far longer than partition + heal, must each be
# delivered exactly once after the heal, in order, with outcome "delivered"
# at the sender. The long partition (step 6) then checks what is left to
# promise there: every message sent across it has exactly one outcome
# (delivered or dead) and none is printed twice or by a wrong host; messages
# inside each side are delivered during the partition; and after the heal
# (members dead then alive again, possibly reaped and re-learned) unicasts
# and broadcasts across the former split are delivered exactly once.
side_a=(1 2)
side_b=(3 4 5)
export MH_SIDE_A=h1,h2
partition_on() {
  local a b
  for a in "${side_a[@]}"; do
    for b in "${side_b[@]}"; do
      ip netns exec "$(hns "$a")" iptables -A INPUT -s "$(hip "$b")" -j DROP || fail "iptables h$a"
      ip netns exec "$(hns "$b")" iptables -A INPUT -s "$(hip "$a")" -j DROP || fail "iptables h$b"
    done
  done
}
partition_off() {
  local i
  for ((i = 1; i <= N; i++)); do
    ip netns exec "$(hns "$i")" iptables -F INPUT || fail "iptables -F h$i"
  done
}

# msg PHASE FROM TO TEXT: reliable send from hFROM to hTO on channel kv (TO
# "*": a broadcast), recorded in $tmp/sends for `mh delivery`
msg() {
  if [[ $3 == "*" ]]; then
    send "$2" "bcast kv $4"
  else
    send "$2" "send h$3 kv $4"
  fi
  echo "$1 h$2 $([[ $3 == "*" ]] && echo "*" || echo "h$3") $4" >>"$tmp/sends"
}

# wait_delivery WHAT LIMIT [final] PHASE...: until every message of these
# phases has its outcome and all the rules hold; mh's summary in $dsum
dsum=
wait_delivery() {
  local what=$1 limit=$2 end out rc last=''
  shift 2
  end=$((SECONDS + limit))
  while :; do
    out=$(mh delivery "$@")
    rc=$?
    if [[ $rc == 0 ]]; then
      dsum=$out
      printf "%s\n" "$out" | sed "s/^/$name:   /"
      return 0
    fi
    if [[ $rc != 3 ]]; then
      printf "%s\n" "$out" | sed "s/^/$name:   /" >&2
      fail "$what: delivery rules broken (mh.py exit $rc)"
    fi
    [[ $out != "$last" ]] && say "  ... $(tr '\n' ' ' <<<"$out")"
    last=$out
    ((SECONDS < end)) || fail "$what: outcomes missing after ${limit}s ($out)"
    ((SECONDS < deadline)) || fail "$what: test budget of ${TEST_BUDGET_S}s spent ($out)"
    sleep "$POLL"
  done
}
# dfield PHASE KEY: a number from the summary line of PHASE in $dsum
dfield() { sed -n "s/^phase=$1 .*$2=\([0-9]*\).*/\1/p" <<<"$dsum"; }

susp0=$(cat "$tmp"/h*.log* | grep -c '"change":"suspect"')
timeline partition short
t0=$(now_ms)
partition_on
for k in 1 2 3; do
  msg short 1 4 "short h1-h4 #$k"
  msg short 3 2 "short h3-h2 #$k"
  msg short 5 1 "short h5-h1 #$k"
  msg short 2 3 "short h2-h3 #$k"
done
say "partition {h1,h2} | {h3,h4,h5} for ${SHORT_PART_MS} ms; 12 reliable messages sent across"
left=$((t0 + SHORT_PART_MS - $(now_ms)))
((left > 0)) && sleep "$(printf '%d.%03d' $((left / 1000)) $((left % 1000)))"
timeline heal short
t_heal=$(now_ms)
partition_off
say "healed after $(secs "$t0" "$t_heal") s"
wait_delivery "messages across the short partition" "$MSG_S" short
record "short partition: heal -> 12 msgs printed once" "$(msecs $(($(dfield short last_rx) - t_heal)))"
record "short partition: heal -> 12 outcomes delivered" "$(msecs $(($(dfield short last_outcome) - t_heal)))"
wait_for "full view after the short partition" "$CONVERGE_S" converged
if ! out=$(mh deaths "$t0"); then
  fail "a member was declared dead during a ${SHORT_PART_MS} ms partition (from its start):
$out"
fi
say "short partition: $(($(cat "$tmp"/h*.log* | grep -c '"change":"suspect"') - susp0)) suspect events, no member declared dead"

# ---------------------------------------------------------------------------
# 6. long partition {h1,h2} | {h3,h4,h5} until each side declares the other
#    dead, messages across and inside; heal, messages across again
# ---------------------------------------------------------------------------
timeline partition long
t0=$(now_ms)
partition_on
for k in 1 2 3; do
  msg across 1 4 "across h1-h4 #$k"
  msg across 3 2 "across h3-h2 #$k"
done
for k in 1 2; do
  msg across 2 5 "across h2-h5 #$k"
  msg across 4 1 "across h4-h1 #$k"
  msg inside 1 2 "inside h1-h2 #$k"
  msg inside 4 3 "inside h4-h3 #$k"
  msg inside 5 3 "inside h5-h3 #$k"
done
say "partition {h1,h2} | {h3,h4,h5}; 10 reliable messages across, 6 inside the sides"
wait_delivery "messages inside the sides" "$MSG_S" inside
record "partition: 6 msgs inside the sides, slowest" "$(msecs "$(dfield inside max_latency_ms)")"
wait_for "each side sees the other dead" "$PART_S" split h1,h2 h3,h4,h5
record "partition -> each side sees the other dead" "$(latest "$t0")"
wait_delivery "messages across the long partition" "$MSG_S" across
say "messages across: outcomes $(dfield across sent) sent, $(sed -n 's/^phase=across .*outcomes=\([^ ]*\).*/\1/p' <<<"$dsum")"
timeline heal long
t0=$(now_ms)
partition_off
say "healed (iptables -F INPUT everywhere)"
wait_for "full view after heal" "$HEAL_S" converged
record "heal -> full view (no operator action)" "$(latest "$t0")"
for k in 1 2; do
  msg after 1 4 "after h1-h4 #$k"
  msg after 4 1 "after h4-h1 #$k"
  msg after 3 2 "after h3-h2 #$k"
  msg after 2 5 "after h2-h5 #$k"
done
msg after 1 "*" "after bcast from h1"
msg after 4 "*" "after bcast from h4"
wait_delivery "messages after the heal" "$MSG_S" after
record "after heal: 8 msgs + 2 bcasts (x4), slowest" "$(msecs "$(dfield after max_latency_ms)")"

# ---------------------------------------------------------------------------
# 7. audit, listings, graceful stop
# ---------------------------------------------------------------------------
for ((i = 1; i <= N; i++)); do send "$i" members; done
end=$((SECONDS + 10))
until mh listing >/dev/null 2>&1; do
  ((SECONDS < end)) || { mh listing; fail "members listings do not show 5 alive everywhere"; }
  sleep "$POLL"
done
mh listing | sed "s/^/$name:   /"
say "members: every host lists 5 alive"

mh audit "$GRACE_MS" | sed "s/^/$name:   /"
[[ ${PIPESTATUS[0]} == 0 ]] || fail "a healthy host was reported dead"
wait_delivery "every message (final)" 5 final

t0=$(now_ms)
for ((i = 1; i <= N; i++)); do kill -TERM "${pid[i]}"; done
for ((i = 1; i <= N; i++)); do
  end=$((SECONDS + 5))
  while kill -0 "${pid[i]}" 2>/dev/null; do
    ((SECONDS < end)) || fail "h$i still running 5s after SIGTERM"
    sleep 0.1
  done
  wait "${pid[i]}"
  rc=$?
  [[ $rc == 0 ]] || fail "h$i exited $rc after SIGTERM"
  unset "pid[$i]"
done
record "SIGTERM all -> all exited 0" "$(secs "$t0" "$(now_ms)")"
if grep -l -E "AddressSanitizer|LeakSanitizer|runtime error:" "$tmp"/h*.err; then
  fail "sanitizer reports"
fi
out=$(mh delivery final) || { echo "$out"; fail "delivery rules broken after the graceful stop"; }
say "delivery: still exactly once, one outcome each, after the graceful stop"

echo "$name: timing summary (profile $PROFILE)"
for line in "${summary[@]}"; do echo "$name:   $line"; done
echo "$name: whole test $((SECONDS - t_begin)) s"
echo "$name: OK"
