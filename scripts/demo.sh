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
#      serving channel kv, every packet sealed with one cluster key from a
#      key file and labelled "demo": docs/security.md), each in its own
#      process group, logging JSON
#      events to a temp directory; peer1 is the seed. When running as root with `ip netns` and dnsmasq,
#      the peers run in a throw-away network namespace whose resolver is a
#      private dnsmasq, and peer5 joins through a DNS name; otherwise every
#      peer joins through a seed list (DMQ_DEMO_DNS=0 forces that);
#   4. waits until every peer sees 5 alive; peer1 sends a reliable broadcast
#      on kv and the demo waits until the 4 others printed it and peer1 has
#      its outcome; SIGSTOPs peer4, peer2 sends it a reliable message (it
#      waits: peer4 is at most suspect), SIGCONTs peer4 before the suspicion
#      timeout and waits until peer4 printed it and peer2 got "delivered";
#      SIGKILLs peer3 and, while the others declare it dead, starts an
#      intruder with the wrong key: it never joins, and peer1 logs why
#      ("... sealed with key id ..., not in our keyring (wrong key?)");
#      restarts peer3 and waits until it is back everywhere, timing each
#      step from the peers' own event logs;
#   5. stops everything it started (SIGTERM, then SIGKILL) on exit, also on
#      failure or Ctrl-C.
#
# Needs bash, coreutils and python3 (JSON parsing). Every wait is bounded.
# The logs are removed on success (DMQ_DEMO_KEEP=1 keeps them) and kept on
# failure.
#
#   scripts/demo.sh kamailio   the Kamailio mode instead: three Kamailio
#                              instances share an htable through the dmqlib
#                              module, one is killed and seen down
#                              (scripts/demo-kamailio.sh)
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 1
case ${1:-} in
  "") ;;
  kamailio) exec bash "$root/scripts/demo-kamailio.sh" ;;
  *)
    echo "usage: $0 [kamailio]" >&2
    exit 2
    ;;
esac
# shellcheck source=scripts/lib/dmq-test.sh
. "$root/scripts/lib/dmq-test.sh"

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
dt_poll=0.2

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
dt_fail() { die "$@"; }
dt_progress() { say "... $*"; }
now_ms() { dt_now_ms; }
secs() { dt_secs "$@"; }
msecs() { dt_msecs "$@"; }

# Cleanup (scripts/lib/dmq-test.sh): every peer still running is stopped
# (SIGTERM, then SIGKILL after STOP_TIMEOUT), dnsmasq and the namespace
# removed, also on failure and Ctrl-C; the logs are kept on failure.
dt_init demo dmq-demo
trap 'echo; echo "demo: interrupted" >&2; exit 130' INT
tmp=$dt_tmp
dt_graceful_exit=1
dt_stop_s=$STOP_TIMEOUT
dt_keep_on_fail=1
dt_keep_on_ok=${DMQ_DEMO_KEEP:-0}
dt_log_globs=('peer*.log' 'peer*.err')
dt_log_tail=5
ns=
run=() # prefix for peer commands (ip netns exec NS in DNS mode)

# ---------------------------------------------------------------------------
# the views of the peers, from their JSON event logs (scripts/lib/dmq_test.py)
# ---------------------------------------------------------------------------
view() { dt_cluster peer "$N" "$@"; }

# wait_for LABEL TIMEOUT_S view-args...: poll until the view condition holds
# (exit 2 of the view: it never will, e.g. a message printed twice); leaves
# the per-observer times in $dt_since.
dt_view_prefix=peer
dt_view_n=$N
wait_for() { dt_wait_view "$@"; }
first_after() { dt_first_after "$@"; }
last_after() { dt_last_after "$@"; }

# ---------------------------------------------------------------------------
# peers
# ---------------------------------------------------------------------------
peer_bin=
seed_mode=
dns_name=seed.dmq-demo.test

peer_args() { # i -> args for peer i
  local i=$1
  args=(--name "peer$i" --bind "127.0.0.1:$((BASE_PORT + i - 1))" --profile "$PROFILE" --channel kv
    --key-file "$tmp/cluster.key" --label demo)
  if ((i == 1)); then
    return
  fi
  if [[ -n $ns ]] && ((i == N)); then
    args+=(--seed "$dns_name:$BASE_PORT")
  else
    args+=(--seed "127.0.0.1:$BASE_PORT")
  fi
}

# peer i: its own process group (a Ctrl-C reaches the demo, which then
# stops the peers), stdin a FIFO held open here, events in peer<i>.log
start_peer() { # i
  peer_args "$1"
  dt_spawn "peer$1" -- "${run[@]}" "$peer_bin" "${args[@]}"
}
pid_of() { echo "${dt_pid[peer$1]}"; }
send() { dt_send "peer$1" "$2"; } # i command
wait_ready() { dt_wait_event "peer$1" "$START_TIMEOUT" ready; }

# ports BASE..BASE+N-1 free for UDP and TCP? (inside the namespace if any)
ports_free() { "${run[@]}" "$dt_py" "$dt_lib/dmq_test.py" ports_free 127.0.0.1 "$1" "$N"; }

# Private resolver: a network namespace whose resolv.conf points at a
# dnsmasq serving seed.dmq-demo.test -> 127.0.0.1 (as tests/integration/
# test_dns.sh does). Returns non-zero (and undoes itself) if not possible.
dns_setup() {
  [[ ${DMQ_DEMO_DNS:-auto} != 0 ]] || { say "DMQ_DEMO_DNS=0"; return 1; }
  [[ $(id -u) -eq 0 ]] || { say "not root"; return 1; }
  command -v ip >/dev/null || { say "no ip (iproute2)"; return 1; }
  command -v dnsmasq >/dev/null || { say "no dnsmasq"; return 1; }
  echo "127.0.0.1 $dns_name" >"$tmp/hosts"
  if ! dt_dns_up "dmqdemo$$" "$tmp/hosts" dmq-demo.test "$DNS_TIMEOUT" "$dns_name"; then
    say "$dt_dns_err"
    return 1
  fi
  ns=dmqdemo$$
}

dns_teardown() {
  dt_dns_down
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
dt_python || die "python3 is needed to read the peers' JSON events"

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

# keys: 32 random bytes as 64 hex characters, one per line (the first is
# the primary key); the intruder gets another one
hexkey() { od -An -tx1 -N32 /dev/urandom | tr -d ' \n'; }
(
  umask 077
  printf '# libdmq demo cluster key\n%s\n' "$(hexkey)" >"$tmp/cluster.key"
  printf '%s\n' "$(hexkey)" >"$tmp/wrong.key"
)

step "Start $N peers on 127.0.0.1:$BASE_PORT..$((BASE_PORT + N - 1)) (logs: $tmp)"
say "sealed: --key-file $tmp/cluster.key (mode required), --label demo"
t_start=$(now_ms)
for ((i = 1; i <= N; i++)); do
  start_peer "$i"
  peer_args "$i"
  say "peer$i  pid $(pid_of "$i")  dmq-peer ${args[*]}"
done
for ((i = 1; i <= N; i++)); do wait_ready "$i"; done

step "Converge: wait until every peer sees $N alive"
wait_for "convergence" "$CONVERGE_TIMEOUT" converged
t_converge=$(last_after "$t_start" "$dt_since")
say "converged: every peer sees $N alive ${t_converge} s after start"
view matrix | sed 's/^/    /'

step "Broadcast: peer1 sends a reliable broadcast on channel kv (every peer serves it)"
bcast_text="hello from peer1 to every kv peer"
t_bcast=$(now_ms)
send 1 "bcast kv $bcast_text"
say "peer1 <- bcast kv $bcast_text"
wait_for "broadcast" "$MSG_TIMEOUT" printed peer1 "$bcast_text"
worst=0
for kv in $dt_since; do
  say "${kv%%=*} printed it after $(msecs "$t_bcast" "${kv#*=}") s"
  ((${kv#*=} > worst)) && worst=${kv#*=}
done
t_bcast_all=$(msecs "$t_bcast" "$worst")
wait_for "broadcast outcome" "$MSG_TIMEOUT" outcome peer1
read -r t_out oc n_ok n_failed <<<"$dt_since"
[[ $oc == delivered && $n_ok == $((N - 1)) && $n_failed == 0 ]] ||
  die "broadcast outcome at peer1: $oc, $n_ok delivered, $n_failed failed"
t_bcast_out=$(msecs "$t_bcast" "$t_out")
say "peer1: outcome $oc ($n_ok delivered, $n_failed failed) after ${t_bcast_out} s"

step "Queue: SIGSTOP peer$FROZEN, peer2 sends it a reliable message, SIGCONT"
say "a message to a SUSPECT member waits in the sender's queue (retransmitted);"
say "peer$FROZEN is resumed before anyone can declare it dead (suspicion >= 3 s)"
queued_text="queued for peer$FROZEN while it is stopped"
t_stop=$(now_ms)
kill -STOP "$(pid_of "$FROZEN")"
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
kill -CONT "$(pid_of "$FROZEN")"
say "SIGCONT peer$FROZEN"
wait_for "queued message" "$MSG_TIMEOUT" printed_by "peer$FROZEN" "$queued_text"
t_rx=$dt_since
wait_for "queued message outcome" "$MSG_TIMEOUT" outcome peer2
read -r t_out oc _ _ <<<"$dt_since"
[[ $oc == delivered ]] || die "outcome at peer2: $oc"
t_queued_rx=$(msecs "$t_cont" "$t_rx")
t_queued_out=$(msecs "$t_cont" "$t_out")
say "peer$FROZEN printed it ${t_queued_rx} s after SIGCONT ($(secs "$t_stop" "$t_rx") s after it was sent:"
say "  the retransmissions that reached its socket while it was stopped are read at once)"
say "peer2: outcome delivered ${t_queued_out} s after SIGCONT"
t_susp_s=-
[[ -n $t_susp ]] && t_susp_s=$(secs "$t_stop" "$t_susp")
wait_for "convergence after SIGCONT" "$CONVERGE_TIMEOUT" converged

step "Crash: SIGKILL peer$VICTIM (pid $(pid_of "$VICTIM"))"
t_kill=$(now_ms)
dt_kill9 "$(pid_of "$VICTIM")"
say "waiting for the others to declare it dead (suspicion, then dead)"
# meanwhile, an intruder: right label, wrong key, joining through peer1
dt_spawn intruder -- "${run[@]}" "$peer_bin" --name intruder --bind 127.0.0.1:0 \
  --profile "$PROFILE" --label demo --key-file "$tmp/wrong.key" --seed "127.0.0.1:$BASE_PORT"
say "meanwhile: 'intruder' (pid ${dt_pid[intruder]}) tries to join through peer1 with the wrong key"
wait_for "death detection" "$DEAD_TIMEOUT" state "peer$VICTIM" dead
t_dead_first=$(first_after "$t_kill" "$dt_since")
t_dead_all=$(last_after "$t_kill" "$dt_since")
for kv in $dt_since; do say "${kv%%=*} saw peer$VICTIM dead after $(secs "$t_kill" "${kv#*=}") s"; done
say "first: ${t_dead_first} s, all $((N - 1)): ${t_dead_all} s"

step "Intruder: the peer with the wrong key"
wrong_line=$(grep -m1 "wrong key" "$tmp/peer1.err" 2>/dev/null)
[[ -n $wrong_line ]] || die "peer1 did not log the intruder's packets"
say "peer1 logged: ${wrong_line#*warn: }"
dt_send intruder members
deadline=$((SECONDS + 5))
until grep -q '"event":"members_end"' "$tmp/intruder.log" || ((SECONDS >= deadline)); do sleep 0.1; done
intruder_sees=$(grep -o '"event":"members_end","t_ms":[0-9]*,"count":[0-9]*' "$tmp/intruder.log" | tail -n 1 | sed 's/.*"count"://')
[[ $intruder_sees == 1 ]] || die "the intruder sees ${intruder_sees:-?} members, want only itself"
grep -q '"name":"intruder"' "$tmp/peer1.log" && die "peer1 heard of the intruder"
say "the intruder sees only itself; no peer heard of it"
deadline=$((SECONDS + 7))
until grep -q "not joined" "$tmp/intruder.err" 2>/dev/null || ((SECONDS >= deadline)); do sleep 0.2; done
intruder_line=$(grep -m1 "not joined" "$tmp/intruder.err" 2>/dev/null)
[[ -n $intruder_line ]] && say "the intruder logged: ${intruder_line#dmq-peer\[intruder\]: }"
kill -TERM "${dt_pid[intruder]}" 2>/dev/null
dt_wait_exit "${dt_pid[intruder]}" "$STOP_TIMEOUT" || true
dt_forget intruder

step "Restart peer$VICTIM"
t_restart=$(now_ms)
start_peer "$VICTIM"
wait_ready "$VICTIM"
say "peer$VICTIM  pid $(pid_of "$VICTIM") (new generation)"
wait_for "rejoin" "$REJOIN_TIMEOUT" converged
t_rejoin=$(last_after "$t_restart" "$dt_since")
say "rejoined: every peer sees $N alive again ${t_rejoin} s after the restart"
view matrix | sed 's/^/    /'

step "Stats of peer1"
send 1 stats
deadline=$((SECONDS + 5))
until grep -q '"event":"stats"' "$tmp/peer1.log" || ((SECONDS >= deadline)); do sleep 0.1; done
grep '"event":"stats"' "$tmp/peer1.log" | tail -n 1 | "$dt_py" -c '
import json, sys
s = json.loads(sys.stdin.read())
print("    packets in/out %d/%d, bytes in/out %d/%d, drops %d, probes %d (%d failed),"
      % (s["pkts_in"], s["pkts_out"], s["bytes_in"], s["bytes_out"], s["drops_total"],
         s["probes"], s["probe_failed"]))
dr = s["drops"]
print("    sealing: dropped %d with an unknown key, %d failing authentication, %d plain, %d replayed"
      % (dr.get("key_unknown", 0), dr.get("auth", 0), dr.get("plaintext", 0), dr.get("replay", 0)))
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
dt_stop_pids "${dt_pid[@]}"
t_stop=$(secs "$t0" "$(now_ms)")
clean=0
for ((i = 1; i <= N; i++)); do
  grep -q '"event":"closed"' "$tmp/peer$i.log" && clean=$((clean + 1))
done
say "$clean/$N peers left gracefully and exited in ${t_stop} s"
dt_pid=()
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
printf '    %-46s %8s\n' "intruder with the wrong key joined" "never"
printf '    %-46s %8s\n' "graceful stop of $N peers" "$t_stop"
printf '    %-46s %8s\n' "whole demo (incl. deps and build)" "$((SECONDS - t_demo))"
echo
echo "demo: OK"
