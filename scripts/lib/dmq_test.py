"""Questions about dmq-peer JSON-lines logs: the Python half of
scripts/lib/dmq-test.sh (which calls it as dt_ev, dt_cluster and
dt_ports_free).

One log:
  log listing LOG               the last `members` listing: "name state" lines
  log saw LOG NAME CHANGE       a member event about NAME with this change?
  log meta LOG NAME KEY VALUE   a member event about NAME with meta[KEY] == VALUE?
  log event LOG EVENT [K=V...]  an event of this kind (with these values)?
  log count LOG EVENT [K=V...]  number of events of this kind (with these values)
  log get LOG EVENT FIELD [K=V...]  FIELD of the last such event (exit 1: none)
  log wall LOG EVENT [K=V...]   wall-clock ms of the last such event (exit 1: none)
  log valid LOG...              every complete line is a JSON object with "event"
  Values compare as JSON text: reliable=true, id=3, text=hello, dest=null.

A cluster: DIR holds <PREFIX><i>.log for i in 1..N (the running peer) and
<PREFIX><i>.log.<ms> (earlier incarnations):
  cluster DIR PREFIX N converged         every peer sees all N alive
  cluster DIR PREFIX N state NAME STATE  every peer but NAME sees NAME in STATE
  cluster DIR PREFIX N dead NAME         the same, STATE dead
  cluster DIR PREFIX N split A,B C,D,E   each side sees the other side dead
  cluster DIR PREFIX N matrix            table of who sees whom in which state
  cluster DIR PREFIX N listing           last `members` listing of every peer:
                                         all N alive?
  cluster DIR PREFIX N printed SENDER TEXT  every peer but SENDER printed TEXT
                                         (exit 2: one printed it twice)
  cluster DIR PREFIX N printed_by NAME TEXT  NAME printed TEXT (once; exit 2:
                                         more than once); prints the wall ms
  cluster DIR PREFIX N change NAME CHANGE T  some peer reported NAME's CHANGE
                                         at or after wall ms T: "peerN=<ms>"
  cluster DIR PREFIX N outcome NAME      outcome of NAME's last send: "<wall ms>
                                         <outcome> <delivered> <failed>"
  cluster DIR PREFIX N audit [GRACE_MS]  dead events vs. DIR/timeline (env
                                         MH_SIDE_A: the long partition's side)
  cluster DIR PREFIX N deaths T          dead events since wall ms T (exit 1)
  cluster DIR PREFIX N delivery [final] [PHASE..]  messages in DIR/sends:
                                         delivered as they must be (exit 0),
                                         outcomes still missing (3), a rule
                                         broken (2)
  Conditions print "<peer>=<wall ms>" (when each observer got there) and exit
  0, or print progress and exit 1.

  ports_free HOST BASE N        ports BASE..BASE+N-1 free for UDP and TCP?
"""
import glob
import json
import os
import socket
import sys

# ---------------------------------------------------------------------------
# reading logs


def complete_lines(path):
    """The complete lines of a log (the last one may be being written)."""
    with open(path, errors="replace") as f:
        for line in f:
            if not line.endswith("\n"):
                break
            yield line


def events(path):
    """Every event of a log; a line that is not JSON is "<invalid>"."""
    out = []
    for line in complete_lines(path):
        try:
            out.append(json.loads(line))
        except ValueError:
            out.append({"event": "<invalid>", "line": line})
    return out


def timed(path):
    """The events of a log from its "ready" on, each with "wall" (ms since
    the epoch: the peer's wall_ms at start + t_ms). [] if no such log."""
    evs, base = [], None
    try:
        lines = list(complete_lines(path))
    except OSError:
        return evs
    for line in lines:
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


def match(e, kind, kvs):
    if e["event"] != kind:
        return False
    for kv in kvs:
        k, v = kv.split("=", 1)
        got = e.get(k)
        if (got if isinstance(got, str) else json.dumps(got)) != v:
            return False
    return True


def last_listing(evs):
    """The rows of the last `members` listing, or None (none, or a member
    callback interleaved with it: ask again)."""
    ends = [i for i, e in enumerate(evs) if e["event"] == "members_end"]
    if not ends:
        return None
    rows, i = [], ends[-1] - 1
    while i >= 0 and evs[i]["event"] == "member" and "change" not in evs[i]:
        rows.append(evs[i])
        i -= 1
    if len(rows) != evs[ends[-1]]["count"]:
        return None
    return rows


# ---------------------------------------------------------------------------
# one log


def cmd_log(cmd, args):
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
        return 1 if bad else 0
    evs = events(args[0])
    if cmd == "listing":
        rows = last_listing(evs)
        if rows is None:
            return 1
        for e in sorted(rows, key=lambda e: e["name"]):
            print(e["name"], e["state"])
        return 0
    if cmd == "saw":
        who, change = args[1], args[2]
        return 0 if any(e["event"] == "member" and e["name"] == who
                        and e.get("change") == change for e in evs) else 1
    if cmd == "meta":
        who, key, val = args[1:4]
        return 0 if any(e["event"] == "member" and e["name"] == who
                        and e.get("meta", {}).get(key) == val for e in evs) else 1
    if cmd == "event":
        return 0 if any(match(e, args[1], args[2:]) for e in evs) else 1
    if cmd == "count":
        print(sum(1 for e in evs if match(e, args[1], args[2:])))
        return 0
    if cmd == "wall":
        base, last = 0, None
        for e in evs:
            if e["event"] == "ready":
                base = e.get("wall_ms", 0)
            if match(e, args[1], args[2:]):
                last = base + e["t_ms"]
        if last is None:
            return 1
        print(last)
        return 0
    if cmd == "get":
        hits = [e for e in evs if match(e, args[1], args[3:])]
        if not hits:
            return 1
        v = hits[-1].get(args[2])
        print(v if isinstance(v, str) else json.dumps(v))
        return 0
    sys.exit("dmq_test.py: unknown log command " + cmd)


# ---------------------------------------------------------------------------
# a cluster


class Cluster:
    def __init__(self, d, prefix, n):
        self.d, self.prefix, self.n = d, prefix, n
        self.names = ["%s%d" % (prefix, i) for i in range(1, n + 1)]

    def log(self, name):
        return os.path.join(self.d, name + ".log")

    def all_logs(self):
        """Every incarnation's log, current and rotated."""
        return sorted(glob.glob(os.path.join(self.d, self.prefix + "*.log*")))

    def view(self, name, keep_dead=False):
        """{member: [state, wall since]} of the running peer `name`, or None
        (no log, not ready, or closed). keep_dead: a member reaped while
        dead stays in the view as dead (the peer declared it dead and then
        forgot it after its retention)."""
        path = self.log(name)
        if not os.path.exists(path):
            return None
        v, ready = {}, False
        for e in timed(path):
            k = e["event"]
            if k == "ready":
                ready = True
            elif k == "closed":
                return None
            elif k == "member" and not e.get("self"):
                if e.get("change") == "reaped":
                    if not (keep_dead and v.get(e["name"], [None])[0] == "dead"):
                        v.pop(e["name"], None)
                elif e["name"] not in v or v[e["name"]][0] != e["state"]:
                    v[e["name"]] = [e["state"], e["wall"]]
        return v if ready else None

    def sees(self, observers, targets, state):
        ok, since, prog = True, {}, []
        for o in observers:
            v = self.view(o) or {}
            got = [v[t][1] for t in targets if t != o and t in v and v[t][0] == state]
            want = len([t for t in targets if t != o])
            prog.append("%s:%d/%d" % (o, len(got), want))
            if len(got) < want:
                ok = False
            else:
                since[o] = max(got) if got else 0
        if ok:
            print(" ".join("%s=%d" % kv for kv in sorted(since.items())))
            return 0
        print("%s: " % state + " ".join(prog))
        return 1

    def printed(self, name, text):
        return [e for e in timed(self.log(name))
                if e["event"] == "message" and e.get("text") == text]


def cmd_cluster(c, cmd, args):
    if cmd == "converged":
        return c.sees(c.names, c.names, "alive")
    if cmd in ("state", "dead"):
        want = args[1] if cmd == "state" else "dead"
        return c.sees([h for h in c.names if h != args[0]], [args[0]], want)
    if cmd == "split":
        return split(c, args[0].split(","), args[1].split(","))
    if cmd == "matrix":
        print("%-8s " % "sees ->" + " ".join("%-8s" % m for m in c.names))
        for o in c.names:
            v = c.view(o) or {}
            row = ["self" if m == o else (v[m][0] if m in v else "-") for m in c.names]
            print("%-8s " % o + " ".join("%-8s" % x for x in row))
        return 0
    if cmd == "listing":
        bad = 0
        for h in c.names:
            rows = last_listing(timed(c.log(h)))
            if rows is None:
                print("%s: no listing" % h)
                bad += 1
                continue
            states = sorted("%s:%s" % (r["name"], r["state"]) for r in rows)
            print("%s sees %s" % (h, " ".join(states)))
            if len(rows) != c.n or any(r["state"] != "alive" for r in rows):
                bad += 1
        return 1 if bad else 0
    if cmd == "printed":
        sender, text = args
        since, progress = {}, []
        for o in c.names:
            if o == sender:
                continue
            hits = c.printed(o, text)
            progress.append("%s:%d" % (o, len(hits)))
            if len(hits) > 1:
                print("%s printed it %d times" % (o, len(hits)))
                return 2
            if hits:
                since[o] = hits[0]["wall"]
        if len(since) == c.n - 1:
            print(" ".join("%s=%d" % (o, since[o]) for o in sorted(since)))
            return 0
        print("printed: " + " ".join(progress))
        return 1
    if cmd == "printed_by":
        who, text = args
        hits = c.printed(who, text)
        if len(hits) > 1:
            print("%s printed it %d times" % (who, len(hits)))
            return 2
        if hits:
            print(hits[0]["wall"])
            return 0
        print("%s: not yet" % who)
        return 1
    if cmd == "change":
        target, change, after = args[0], args[1], int(args[2])
        first = None
        for o in c.names:
            if o == target:
                continue
            for e in timed(c.log(o)):
                if (e["event"] == "member" and e.get("name") == target
                        and e.get("change") == change and e["wall"] >= after):
                    if first is None or e["wall"] < first[1]:
                        first = (o, e["wall"])
                    break
        if first:
            print("%s=%d" % first)
            return 0
        print("no %s event about %s yet" % (change, target))
        return 1
    if cmd == "outcome":
        evs = timed(c.log(args[0]))
        sent = [e for e in evs if e["event"] == "sent"]
        if sent:
            for e in evs:
                if e["event"] == "outcome" and e.get("id") == sent[-1]["id"]:
                    print("%d %s %d %d" % (e["wall"], e["outcome"], e["delivered"], e["failed"]))
                    return 0
        print("no outcome yet")
        return 1
    if cmd == "audit":
        return audit(c, int(args[0]) if args else 2000)
    if cmd == "deaths":
        t0, found = int(args[0]), 0
        for path in c.all_logs():
            for e in timed(path):
                if e["event"] == "member" and e.get("change") == "dead" and e["wall"] >= t0:
                    found += 1
                    print("%s saw %s dead at +%d ms" % (os.path.basename(path), e["name"], e["wall"] - t0))
        return 1 if found else 0
    if cmd == "delivery":
        return delivery(c, args)
    sys.exit("dmq_test.py: unknown cluster command " + cmd)


def split(c, a, b):
    # A member declared dead and then reaped (its retention ended while the
    # other side was still declaring the rest) counts as dead: the sides
    # need not hold every death at the same instant.
    ok = True
    for side, other in ((a, b), (b, a)):
        for o in side:
            v = c.view(o, keep_dead=True) or {}
            if not all(t in v and v[t][0] == "dead" for t in other):
                ok = False
    if ok:
        times = {}
        for side, other in ((a, b), (b, a)):
            for o in side:
                v = c.view(o, keep_dead=True)
                times[o] = max(v[t][1] for t in other)
        print(" ".join("%s=%d" % kv for kv in sorted(times.items())))
        return 0
    prog = []
    for side, other in ((a, b), (b, a)):
        for o in side:
            v = c.view(o, keep_dead=True) or {}
            prog.append("%s:%d/%d" % (o, sum(1 for t in other if t in v and v[t][0] == "dead"), len(other)))
    print("dead across: " + " ".join(prog))
    return 1


def audit(c, grace):
    """Every "dead" event must be explained by a fault in DIR/timeline
    ("kill|stop|cont|partition|heal WHO WALL_MS" lines)."""
    tl = {}
    with open(os.path.join(c.d, "timeline")) as f:
        for line in f:
            what, who, t = line.split()
            tl[(what, who)] = int(t)
    inf = 1 << 62
    part_a = set(os.environ.get("MH_SIDE_A", "").split(","))
    # generations of each host's incarnations, from the ready events
    gens = {}
    for path in c.all_logs():
        for e in timed(path):
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
    for path in c.all_logs():
        for e in timed(path):
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
    return 1 if bad else 0


def delivery(c, args):
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
    with open(os.path.join(c.d, "sends")) as f:
        for line in f:
            ph, snd, dst, text = line.rstrip("\n").split(" ", 3)
            recs.append((ph, snd, dst, text))
    # senders first: a receiver prints a message before it acknowledges it,
    # so a "delivered" read here has its "message" in the receiver's log
    sent, outs, errs, deaths = {}, {}, {}, {}
    for snd in sorted(set(r[1] for r in recs)):
        evs = timed(c.log(snd))
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
    for path in c.all_logs():
        host = os.path.basename(path).split(".")[0]
        for i, e in enumerate(timed(path)):
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
        dests = [h for h in c.names if h != snd] if dst == "*" else [dst]
        where = "%s->%s %r (id %d)" % (snd, dst, text, se["id"])
        for h in set(r[0] for r in rx):
            n = sum(1 for r in rx if r[0] == h)
            if h not in dests:
                bad.append("%s: printed by %s, not a destination" % (where, h))
            elif n > 1:
                bad.append("%s: printed %d times by %s" % (where, n, h))
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
        return 2
    return 3 if pending else 0


# ---------------------------------------------------------------------------


def ports_free(host, base, n):
    for port in range(base, base + n):
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            s = socket.socket(socket.AF_INET, kind)
            try:
                s.bind((host, port))
            except OSError:
                return 1
            finally:
                s.close()
    return 0


def main(argv):
    if len(argv) >= 3 and argv[0] == "log":
        return cmd_log(argv[1], argv[2:])
    if len(argv) >= 5 and argv[0] == "cluster":
        return cmd_cluster(Cluster(argv[1], argv[2], int(argv[3])), argv[4], argv[5:])
    if len(argv) == 4 and argv[0] == "ports_free":
        return ports_free(argv[1], int(argv[2]), int(argv[3]))
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
