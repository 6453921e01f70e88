#!/usr/bin/env bash
# The README's first command: build libdmq and watch a 5-member cluster
# converge, deliver messages, detect a crash and take the crashed member
# back.
#
#   1. scripts/deps.sh (skip with DMQ_SKIP_DEPS=1);
#   2. cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo and build
#      dmq-peer (skip with DMQ_SKIP_BUILD=1; DMQ_BUILD_DIR picks another
#      build directory, e.g. an ASan one, kept as configured);
#   3. starts 5 dmq-peer processes on 127.0.0.1 (profile `local`, all
#      serving channel kv), each in its own process group, logging JSON
#      events to a temp directory; peer1 is the seed. When running as root with `ip netns` and dnsmasq,
#      the peers run in a throw-away network namespace whose resolver is a
#      private dnsmasq, and peer5 joins through a DNS name; otherwise every
#      peer joins through a seed list (DMQ_DEMO_DNS=0 forces that);
#   4. waits until every peer sees 5 alive; peer1 sends a reliable broadcast
#      on kv and the demo waits until the 4 others printed it and peer1 has
#      its outcome; SIGSTOPs peer4, peer2 sends it a reliable message (it
#      waits: peer4 is at most suspect), SIGCONTs peer4 before the suspicion
#      timeout and waits until peer4 printed it and peer2 got "delivered";
#      SIGKILLs peer3 and waits until the others declare it dead, restarts
#      it and waits until it is back everywhere, timing each step from the
#      peers' own event logs;
#   5. stops everything it started (SIGTERM, then SIGKILL) on exit, also on
#      failure or Ctrl-C.
#
# Needs bash, coreutils and python3 (JSON parsing). Every wait is bounded.
# The logs are removed on success (DMQ_DEMO_KEEP=1 keeps them) and kept on
# failure.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 1

N=5
PROFILE=local
VICTIM=3
FROZEN=4 # SIGSTOPped while a message is sent to it
BASE_PORT=${DMQ_DEMO_PORT:-17946}
# Bounds (seconds). With the local profile convergence takes ~1 s, a crash
# is declared within ~3..18 s (suspicion), a restart rejoins in ~1 s.
START_TIMEOUT=10
CONVERGE_TIMEOUT=20
DEAD_TIMEOUT=35
REJOIN_TIMEOUT=20
STOP_TIMEOUT=5
MSG_TIMEOUT=10 # a message / an outcome
# SIGSTOP peer$FROZEN for STOP_MIN_MS..STOP_MAX_MS (until someone suspects
# it): the local profile's suspicion timeout (>= 3 s after the suspicion
# starts) is well above, so it is suspected, never declared dead
STOP_MIN_MS=1500
STOP_MAX_MS=2500
DNS_TIMEOUT=5
POLL=0.2

bold=
reset=
if [[ -t 1 ]]; then
  bold=$'\e[1m'
  reset=$'\e[0m'
fi

step_no=0
step() {
  step_no=$((step_no + 1))
  printf '\n%s[%d] %s%s\n' "$bold" "$step_no" "$*" "$reset"
}
say() { printf '    %s\n' "$*"; }
die() {
  printf '\ndemo: FAILED: %s\n' "$*" >&2
  exit 1
}
now_ms() { date +%s%3N; }
# seconds with one decimal between two ms timestamps
secs() {
  local d=$(($2 - $1))
  ((d < 0)) && d=0
  printf '%d.%02d' $((d / 1000)) $((d % 1000 / 10))
}
# the same with milliseconds (message timings)
msecs() {
  local d=$(($2 - $1))
  ((d < 0)) && d=0
  printf '%d.%03d' $((d / 1000)) $((d % 1000))
}
# python3, resolved once: a version-manager shim (pyenv) costs ~0.5 s a call
py=python3

tmp=$(mktemp -d "${TMPDIR:-/tmp}/dmq-demo.XXXXXX") || exit 1
declare -a pids=() fifo_fd=()
ns=
ns_made=0
dnsmasq_pid=
netns_dir_existed=0
[[ -d /etc/netns ]] && netns_dir_existed=1
run=() # prefix for peer commands (ip netns exec NS in DNS mode)

# ---------------------------------------------------------------------------
# cleanup: everything this script started, also on failure and Ctrl-C
# ---------------------------------------------------------------------------
alive() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; }
# SIGKILL (the process group, else the pid) and reap, quietly: bash reports
# jobs killed by a signal ("Killed") at its next chance; let that happen
# here, into /dev/null.
kill9() {
  { kill -KILL -- "-$1" || kill -KILL "$1"; wait "$1"; sleep 0.01; } 2>/dev/null
}

# SIGTERM the given pids (graceful leave), wait up to STOP_TIMEOUT, then
# SIGKILL what is left (whole process group: each peer leads its own).
stop_pids() {
  local p deadline
  # (SIGCONT: a peer stopped by the demo's SIGSTOP step handles SIGTERM then)
  for p in "$@"; do alive "$p" && kill -TERM "$p" 2>/dev/null && kill -CONT "$p" 2>/dev/null; done
  deadline=$((SECONDS + STOP_TIMEOUT))
  for p in "$@"; do
    while alive "$p" && ((SECONDS < deadline)); do sleep 0.1; done
    if alive "$p"; then
      echo "demo: pid $p did not stop, SIGKILL" >&2
      kill9 "$p"
    fi
    wait "$p" 2>/dev/null
  done
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  local live=() p
  for p in "${pids[@]}"; do alive "$p" && live+=("$p"); done
  if [[ ${#live[@]} -gt 0 ]]; then
    echo "demo: stopping ${#live[@]} peer(s) left running"
    stop_pids "${live[@]}"
  fi
  for p in "${fifo_fd[@]}"; do exec {p}>&-; done
  if [[ -n $dnsmasq_pid ]]; then
    kill "$dnsmasq_pid" 2>/dev/null
    wait "$dnsmasq_pid" 2>/dev/null
  fi
  if [[ $ns_made == 1 ]]; then
    ip netns del "$ns" 2>/dev/null
    rm -rf "/etc/netns/$ns"
    [[ $netns_dir_existed == 1 ]] || rmdir /etc/netns 2>/dev/null
  fi
  if [[ $rc == 130 || $rc == 143 ]]; then
    echo "demo: logs kept in $tmp" >&2
  elif [[ $rc != 0 ]]; then
    echo "demo: logs kept in $tmp" >&2
    local f
    for f in "$tmp"/peer*.log "$tmp"/peer*.err; do
      [[ -s $f ]] || continue
      echo "--- tail $f" >&2
      tail -n 5 "$f" >&2
    done
  elif [[ ${DMQ_DEMO_KEEP:-0} == 1 ]]; then
    echo "demo: logs kept in $tmp"
  else
    rm -rf "$tmp"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted" >&2; exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------
# the views of the peers, from their JSON event logs
# ---------------------------------------------------------------------------
cat >"$tmp/view.py" <<'EOF'
"""Membership views of dmq-peer processes, rebuilt from their JSON logs.

view.py DIR N converged            every running peer sees all N alive
view.py DIR N state NAME STATE     every peer but NAME sees NAME in STATE
view.py DIR N matrix               table of who sees whom in which state
view.py DIR N printed SENDER TEXT  every peer but SENDER printed message TEXT
view.py DIR N printed_by NAME TEXT  NAME printed message TEXT (once)
view.py DIR N change NAME CHANGE T some peer reported NAME's CHANGE after T
view.py DIR N outcome NAME         outcome of NAME's last send: "<wall ms>
                                   <outcome> <delivered> <failed>"
converged/state/printed exit 0 when true and print the wall-clock ms at
which the condition became true for each observer ("peer1=<ms> ..."), else
exit 1 and print progress; change prints "peerN=<ms>" (the first).
"""
import json
import os
import sys

logdir, n, cmd, args = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
names = ["peer%d" % i for i in range(1, n + 1)]


def load(name):
    """{member: [state, wall_ms since]} as `name` sees it; None if no log."""
    try:
        f = open(os.path.join(logdir, name + ".log"), errors="replace")
    except OSError:
        return None
    base, view = None, {}
    with f:
        for line in f:
            if not line.endswith("\n"):
                break  # being written
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            kind = ev.get("event")
            if kind == "ready":
                base = ev.get("wall_ms", 0)
            elif kind == "closed":
                return None
            elif kind == "member" and not ev.get("self") and base is not None:
                who, t = ev["name"], base + ev["t_ms"]
                if ev.get("change") == "reaped":
                    view.pop(who, None)
                elif who not in view or view[who][0] != ev["state"]:
                    view[who] = [ev["state"], t]
    return view if base is not None else None


def events(name):
    """The events of `name`'s current log, each with "wall" (ms)."""
    out, base = [], None
    try:
        f = open(os.path.join(logdir, name + ".log"), errors="replace")
    except OSError:
        return out
    with f:
        for line in f:
            if not line.endswith("\n"):
                break
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev.get("event") == "ready":
                base = ev.get("wall_ms", 0)
            if base is not None:
                ev["wall"] = base + ev.get("t_ms", 0)
                out.append(ev)
    return out


if cmd == "printed":
    sender, text = args
    since, progress = {}, []
    for o in names:
        if o == sender:
            continue
        hits = [e for e in events(o) if e["event"] == "message" and e.get("text") == text]
        progress.append("%s:%d" % (o, len(hits)))
        if len(hits) > 1:
            print("%s printed it %d times" % (o, len(hits)))
            sys.exit(2)
        if hits:
            since[o] = hits[0]["wall"]
    if len(since) == n - 1:
        print(" ".join("%s=%d" % (o, since[o]) for o in sorted(since)))
        sys.exit(0)
    print("printed: " + " ".join(progress))
    sys.exit(1)

if cmd == "printed_by":
    who, text = args
    hits = [e for e in events(who) if e["event"] == "message" and e.get("text") == text]
    if len(hits) > 1:
        print("%s printed it %d times" % (who, len(hits)))
        sys.exit(2)
    if hits:
        print(hits[0]["wall"])
        sys.exit(0)
    print("%s: not yet" % who)
    sys.exit(1)

if cmd == "change":
    target, change, after = args[0], args[1], int(args[2])
    first = None
    for o in names:
        if o == target:
            continue
        for e in events(o):
            if (e["event"] == "member" and e.get("name") == target
                    and e.get("change") == change and e["wall"] >= after):
                if first is None or e["wall"] < first[1]:
                    first = (o, e["wall"])
                break
    if first:
        print("%s=%d" % first)
        sys.exit(0)
    print("no %s event about %s yet" % (change, target))
    sys.exit(1)

if cmd == "outcome":
    evs = events(args[0])
    sent = [e for e in evs if e["event"] == "sent"]
    if sent:
        for e in evs:
            if e["event"] == "outcome" and e.get("id") == sent[-1]["id"]:
                print("%d %s %d %d" % (e["wall"], e["outcome"], e["delivered"], e["failed"]))
                sys.exit(0)
    print("no outcome yet")
    sys.exit(1)

views = {o: load(o) for o in names}

if cmd == "converged":
    ok, since, progress = True, {}, []
    for o in names:
        v = views[o]
        if v is None:
            ok = False
            progress.append("%s:-" % o)
            continue
        up = [v[m][1] for m in names if m != o and m in v and v[m][0] == "alive"]
        progress.append("%s:%d/%d" % (o, len(up), n - 1))
        if len(up) < n - 1:
            ok = False
        else:
            since[o] = max(up)
    if ok:
        print(" ".join("%s=%d" % (o, since[o]) for o in names))
        sys.exit(0)
    print(" ".join(progress))
    sys.exit(1)

if cmd == "state":
    target, want = args
    ok, since, progress = True, {}, []
    for o in names:
        if o == target:
            continue
        v = views[o]
        st = v.get(target) if v is not None else None
        progress.append("%s:%s" % (o, st[0] if st else "-"))
        if st is None or st[0] != want:
            ok = False
        else:
            since[o] = st[1]
    if ok:
        print(" ".join("%s=%d" % (o, since[o]) for o in sorted(since)))
        sys.exit(0)
    print(" ".join(progress))
    sys.exit(1)

if cmd == "matrix":
    print("%-8s " % "sees ->" + " ".join("%-8s" % m for m in names))
    for o in names:
        v = views[o] or {}
        row = []
        for m in names:
            row.append("self" if m == o else (v[m][0] if m in v else "-"))
        print("%-8s " % o + " ".join("%-8s" % c for c in row))
    sys.exit(0)

sys.exit("view.py: unknown command " + cmd)
EOF

view() { "$py" "$tmp/view.py" "$tmp" "$N" "$@"; }

# wait_for LABEL TIMEOUT_S view-args...: poll until the view condition holds;
# leaves the per-observer times in $since.
since=
wait_for() {
  local label=$1 limit=$2 deadline out last=''
  shift 2
  deadline=$((SECONDS + limit))
  while :; do
    out=$(view "$@")
    case $? in
      0)
        since=$out
        return 0
        ;;
      2) die "$label: $out" ;; # e.g. a message printed twice
    esac
    if [[ $out != "$last" ]]; then
      say "... $out"
      last=$out
    fi
    ((SECONDS < deadline)) || die "$label: not reached within ${limit}s ($out)"
    sleep "$POLL"
  done
}

# "peer1=<ms> peer2=<ms>": earliest / latest minus t0, in seconds
first_after() { # t0 since-string
  local t0=$1 best='' kv v
  for kv in $2; do
    v=${kv#*=}
    [[ -z $best || $v -lt $best ]] && best=$v
  done
  secs "$t0" "$best"
}
last_after() {
  local t0=$1 worst=0 kv v
  for kv in $2; do
    v=${kv#*=}
    ((v > worst)) && worst=$v
  done
  secs "$t0" "$worst"
}

# ---------------------------------------------------------------------------
# peers
# ---------------------------------------------------------------------------
peer_bin=
seed_mode=
dns_name=seed.dmq-demo.test

peer_args() { # i -> args for peer i
  local i=$1
  args=(--name "peer$i" --bind "127.0.0.1:$((BASE_PORT + i - 1))" --profile "$PROFILE" --channel kv)
  if ((i == 1)); then
    return
  fi
  if [[ -n $ns ]] && ((i == N)); then
    args+=(--seed "$dns_name:$BASE_PORT")
  else
    args+=(--seed "127.0.0.1:$BASE_PORT")
  fi
}

start_peer() { # i
  local i=$1 name fd
  name=peer$i
  peer_args "$i"
  [[ -e $tmp/$name.log ]] && mv "$tmp/$name.log" "$tmp/$name.log.$(now_ms)"
  if [[ ! -p $tmp/$name.in ]]; then
    mkfifo "$tmp/$name.in" || die "mkfifo"
    # held open read-write: the peer's open does not block and it never
    # sees end of input while the demo runs
    exec {fd}<>"$tmp/$name.in"
    fifo_fd[i]=$fd
  fi
  # set -m: every background job leads its own process group, so a Ctrl-C
  # reaches the demo (which then stops the peers), not the peers directly
  set -m
  "${run[@]}" "$peer_bin" "${args[@]}" <"$tmp/$name.in" >"$tmp/$name.log" 2>"$tmp/$name.err" &
  pids[i]=$!
  set +m
}

send() { # i command
  printf '%s\n' "$2" >&"${fifo_fd[$1]}"
}

wait_ready() { # i
  local i=$1 deadline=$((SECONDS + START_TIMEOUT))
  until grep -q '"event":"ready"' "$tmp/peer$i.log" 2>/dev/null; do
    alive "${pids[i]}" || die "peer$i exited at start: $(cat "$tmp/peer$i.err")"
    ((SECONDS < deadline)) || die "peer$i not ready within ${START_TIMEOUT}s"
    sleep 0.05
  done
}

# ports BASE..BASE+N-1 free for UDP and TCP? (inside the namespace if any)
ports_free() {
  "${run[@]}" "$py" - "$1" "$N" <<'EOF'
import socket, sys
base, n = int(sys.argv[1]), int(sys.argv[2])
for port in range(base, base + n):
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            sys.exit(1)
        finally:
            s.close()
EOF
}

# Private resolver: a network namespace whose resolv.conf points at a
# dnsmasq serving seed.dmq-demo.test -> 127.0.0.1 (as tests/integration/
# test_dns.sh does). Returns non-zero (and undoes itself) if not possible.
dns_setup() {
  [[ ${DMQ_DEMO_DNS:-auto} != 0 ]] || { say "DMQ_DEMO_DNS=0"; return 1; }
  [[ $(id -u) -eq 0 ]] || { say "not root"; return 1; }
  command -v ip >/dev/null || { say "no ip (iproute2)"; return 1; }
  command -v dnsmasq >/dev/null || { say "no dnsmasq"; return 1; }
  ns=dmqdemo$$
  if ! ip netns add "$ns" 2>"$tmp/netns.err"; then
    say "cannot create a network namespace: $(cat "$tmp/netns.err")"
    ns=
    return 1
  fi
  ns_made=1
  ip -n "$ns" link set lo up || return 1
  mkdir -p "/etc/netns/$ns"
  echo "nameserver 127.0.0.1" >"/etc/netns/$ns/resolv.conf"
  echo "127.0.0.1 $dns_name" >"$tmp/hosts"
  ip netns exec "$ns" dnsmasq --keep-in-foreground --conf-file=/dev/null \
    --no-resolv --no-hosts --local=/dmq-demo.test/ \
    --listen-address=127.0.0.1 --bind-interfaces --port=53 \
    --user=root --group=root --pid-file= \
    --addn-hosts="$tmp/hosts" --log-facility="$tmp/dnsmasq.log" &
  dnsmasq_pid=$!
  local deadline=$((SECONDS + DNS_TIMEOUT))
  until ip netns exec "$ns" getent hosts "$dns_name" >/dev/null 2>&1; do
    if ! alive "$dnsmasq_pid" || ((SECONDS >= deadline)); then
      say "dnsmasq did not answer"
      return 1
    fi
    sleep 0.1
  done
  return 0
}

dns_teardown() {
  if [[ -n $dnsmasq_pid ]]; then
    kill "$dnsmasq_pid" 2>/dev/null
    wait "$dnsmasq_pid" 2>/dev/null
    dnsmasq_pid=
  fi
  if [[ $ns_made == 1 ]]; then
    ip netns del "$ns" 2>/dev/null
    rm -rf "/etc/netns/$ns"
    [[ $netns_dir_existed == 1 ]] || rmdir /etc/netns 2>/dev/null
    ns_made=0
  fi
  ns=
}

# ---------------------------------------------------------------------------
# the demo
# ---------------------------------------------------------------------------
t_demo=$SECONDS
echo "${bold}libdmq demo${reset}: $N dmq-peer processes on 127.0.0.1, profile '$PROFILE'"

step "Dependencies (scripts/deps.sh)"
if [[ ${DMQ_SKIP_DEPS:-0} == 1 ]]; then
  say "skipped (DMQ_SKIP_DEPS=1)"
else
  bash scripts/deps.sh 2>&1 | sed 's/^/    /'
  [[ ${PIPESTATUS[0]} == 0 ]] || die "scripts/deps.sh failed"
fi
command -v python3 >/dev/null || die "python3 is needed to read the peers' JSON events"
py=$(python3 -c 'import sys; print(sys.executable)') || die "python3 does not run"

step "Build"
build=${DMQ_BUILD_DIR:-$root/build}
if [[ ${DMQ_SKIP_BUILD:-0} == 1 ]]; then
  say "skipped (DMQ_SKIP_BUILD=1), using $build"
else
  t0=$SECONDS
  cfg=(-S . -B "$build")
  # a fresh tree is RelWithDebInfo; an existing one keeps its configuration
  [[ -f $build/CMakeCache.txt ]] || cfg+=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
  say "cmake ${cfg[*]}"
  cmake "${cfg[@]}" >"$tmp/cmake.log" 2>&1 || { cat "$tmp/cmake.log"; die "cmake configure failed"; }
  say "cmake --build $build --target dmq-peer"
  cmake --build "$build" --target dmq-peer -j "$(nproc 2>/dev/null || echo 2)" >"$tmp/build.log" 2>&1 ||
    { tail -n 40 "$tmp/build.log"; die "build failed"; }
  say "built in $((SECONDS - t0)) s"
fi
peer_bin=$build/tools/dmq-peer
[[ -x $peer_bin ]] || die "$peer_bin not found (build it, or set DMQ_BUILD_DIR)"

step "Seeds: DNS name or seed list"
if dns_setup; then
  run=(ip netns exec "$ns")
else
  dns_teardown
  run=()
fi
base=$BASE_PORT
for ((try = 0; try < 20; try++)); do
  ports_free "$base" && break
  base=$((base + 10))
done
((try < 20)) || die "no $N free consecutive ports from $BASE_PORT"
BASE_PORT=$base
if [[ -n $ns ]]; then
  seed_mode="DNS: peer5 joins through '$dns_name:$BASE_PORT' (dnsmasq in network namespace $ns); peers 2-4 through --seed 127.0.0.1:$BASE_PORT"
else
  seed_mode="seed list (every peer: --seed 127.0.0.1:$BASE_PORT)"
fi
say "$seed_mode"

step "Start $N peers on 127.0.0.1:$BASE_PORT..$((BASE_PORT + N - 1)) (logs: $tmp)"
t_start=$(now_ms)
for ((i = 1; i <= N; i++)); do
  start_peer "$i"
  peer_args "$i"
  say "peer$i  pid ${pids[i]}  dmq-peer ${args[*]}"
done
for ((i = 1; i <= N; i++)); do wait_ready "$i"; done

step "Converge: wait until every peer sees $N alive"
wait_for "convergence" "$CONVERGE_TIMEOUT" converged
t_converge=$(last_after "$t_start" "$since")
say "converged: every peer sees $N alive ${t_converge} s after start"
view matrix | sed 's/^/    /'

step "Broadcast: peer1 sends a reliable broadcast on channel kv (every peer serves it)"
bcast_text="hello from peer1 to every kv peer"
t_bcast=$(now_ms)
send 1 "bcast kv $bcast_text"
say "peer1 <- bcast kv $bcast_text"
wait_for "broadcast" "$MSG_TIMEOUT" printed peer1 "$bcast_text"
worst=0
for kv in $since; do
  say "${kv%%=*} printed it after $(msecs "$t_bcast" "${kv#*=}") s"
  ((${kv#*=} > worst)) && worst=${kv#*=}
done
t_bcast_all=$(msecs "$t_bcast" "$worst")
wait_for "broadcast outcome" "$MSG_TIMEOUT" outcome peer1
read -r t_out oc n_ok n_failed <<<"$since"
[[ $oc == delivered && $n_ok == $((N - 1)) && $n_failed == 0 ]] ||
  die "broadcast outcome at peer1: $oc, $n_ok delivered, $n_failed failed"
t_bcast_out=$(msecs "$t_bcast" "$t_out")
say "peer1: outcome $oc ($n_ok delivered, $n_failed failed) after ${t_bcast_out} s"

step "Queue: SIGSTOP peer$FROZEN, peer2 sends it a reliable message, SIGCONT"
say "a message to a SUSPECT member waits in the sender's queue (retransmitted);"
say "peer$FROZEN is resumed before anyone can declare it dead (suspicion >= 3 s)"
queued_text="queued for peer$FROZEN while it is stopped"
t_stop=$(now_ms)
kill -STOP "${pids[FROZEN]}"
send 2 "send peer$FROZEN kv $queued_text"
say "SIGSTOP peer$FROZEN; peer2 <- send peer$FROZEN kv $queued_text"
# resume once someone suspects it (at least STOP_MIN_MS stopped), or at
# STOP_MAX_MS: well inside the suspicion timeout either way
t_susp=
while :; do
  t=$(now_ms)
  if [[ -z $t_susp ]] && out=$(view change "peer$FROZEN" suspect "$t_stop"); then
    t_susp=${out#*=}
    say "${out%%=*} suspects peer$FROZEN after $(secs "$t_stop" "$t_susp") s"
  fi
  ((t - t_stop >= STOP_MAX_MS || (t - t_stop >= STOP_MIN_MS && ${#t_susp} > 0))) && break
  sleep 0.05
done
if view outcome peer2 >/dev/null; then
  die "peer2 has an outcome while peer$FROZEN is stopped: $(view outcome peer2)"
fi
say "after $(secs "$t_stop" "$(now_ms)") s: no outcome at peer2 yet, the message waits"
t_cont=$(now_ms)
kill -CONT "${pids[FROZEN]}"
say "SIGCONT peer$FROZEN"
wait_for "queued message" "$MSG_TIMEOUT" printed_by "peer$FROZEN" "$queued_text"
t_rx=$since
wait_for "queued message outcome" "$MSG_TIMEOUT" outcome peer2
read -r t_out oc _ _ <<<"$since"
[[ $oc == delivered ]] || die "outcome at peer2: $oc"
t_queued_rx=$(msecs "$t_cont" "$t_rx")
t_queued_out=$(msecs "$t_cont" "$t_out")
say "peer$FROZEN printed it ${t_queued_rx} s after SIGCONT ($(secs "$t_stop" "$t_rx") s after it was sent:"
say "  the retransmissions that reached its socket while it was stopped are read at once)"
say "peer2: outcome delivered ${t_queued_out} s after SIGCONT"
t_susp_s=-
[[ -n $t_susp ]] && t_susp_s=$(secs "$t_stop" "$t_susp")
wait_for "convergence after SIGCONT" "$CONVERGE_TIMEOUT" converged

step "Crash: SIGKILL peer$VICTIM (pid ${pids[VICTIM]})"
t_kill=$(now_ms)
kill9 "${pids[VICTIM]}"
say "waiting for the others to declare it dead (suspicion, then dead)"
wait_for "death detection" "$DEAD_TIMEOUT" state "peer$VICTIM" dead
t_dead_first=$(first_after "$t_kill" "$since")
t_dead_all=$(last_after "$t_kill" "$since")
for kv in $since; do say "${kv%%=*} saw peer$VICTIM dead after $(secs "$t_kill" "${kv#*=}") s"; done
say "first: ${t_dead_first} s, all $((N - 1)): ${t_dead_all} s"

step "Restart peer$VICTIM"
t_restart=$(now_ms)
start_peer "$VICTIM"
wait_ready "$VICTIM"
say "peer$VICTIM  pid ${pids[VICTIM]} (new generation)"
wait_for "rejoin" "$REJOIN_TIMEOUT" converged
t_rejoin=$(last_after "$t_restart" "$since")
say "rejoined: every peer sees $N alive again ${t_rejoin} s after the restart"
view matrix | sed 's/^/    /'

step "Stats of peer1"
send 1 stats
deadline=$((SECONDS + 5))
until grep -q '"event":"stats"' "$tmp/peer1.log" || ((SECONDS >= deadline)); do sleep 0.1; done
grep '"event":"stats"' "$tmp/peer1.log" | tail -n 1 | "$py" -c '
import json, sys
s = json.loads(sys.stdin.read())
print("    packets in/out %d/%d, bytes in/out %d/%d, drops %d, probes %d (%d failed),"
      % (s["pkts_in"], s["pkts_out"], s["bytes_in"], s["bytes_out"], s["drops_total"],
         s["probes"], s["probe_failed"]))
m = s["members"]
print("    members: %d alive, %d suspect, %d dead, %d left; health score %d"
      % (m["alive"], m["suspect"], m["dead"], m["left"], s["health_score"]))
d = s.get("delivery", {})
print("    delivery: %d reliable sent, %d retransmits, %d delivered to the app, %d acks in/%d out"
      % (d.get("sent_reliable", 0), d.get("retransmits", 0), d.get("delivered_app", 0),
         d.get("acks_received", 0), d.get("acks_sent", 0)))' ||
  say "(no stats event)"

step "Stop: SIGTERM every peer (graceful leave), SIGKILL after ${STOP_TIMEOUT}s"
t0=$(now_ms)
stop_pids "${pids[@]}"
t_stop=$(secs "$t0" "$(now_ms)")
clean=0
for ((i = 1; i <= N; i++)); do
  grep -q '"event":"closed"' "$tmp/peer$i.log" && clean=$((clean + 1))
done
say "$clean/$N peers left gracefully and exited in ${t_stop} s"
pids=()
dns_teardown

printf '\n%sSummary%s (seeds: %s)\n' "$bold" "$reset" "$seed_mode"
printf '    %-46s %8s\n' "step" "seconds"
printf '    %-46s %8s\n' "converge: $N peers see $N alive (from start)" "$t_converge"
printf '    %-46s %8s\n' "reliable bcast peer1 -> all $((N - 1)) printed it" "$t_bcast_all"
printf '    %-46s %8s\n' "reliable bcast peer1 -> outcome delivered" "$t_bcast_out"
printf '    %-46s %8s\n' "SIGSTOP peer$FROZEN -> first peer suspects it" "$t_susp_s"
printf '    %-46s %8s\n' "SIGCONT peer$FROZEN -> it printed the queued msg" "$t_queued_rx"
printf '    %-46s %8s\n' "SIGCONT peer$FROZEN -> outcome delivered at peer2" "$t_queued_out"
printf '    %-46s %8s\n' "SIGKILL peer$VICTIM -> first peer sees it dead" "$t_dead_first"
printf '    %-46s %8s\n' "SIGKILL peer$VICTIM -> all $((N - 1)) peers see it dead" "$t_dead_all"
printf '    %-46s %8s\n' "restart peer$VICTIM -> $N peers see $N alive" "$t_rejoin"
printf '    %-46s %8s\n' "graceful stop of $N peers" "$t_stop"
printf '    %-46s %8s\n' "whole demo (incl. deps and build)" "$((SECONDS - t_demo))"
echo
echo "demo: OK"
