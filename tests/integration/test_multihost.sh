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
# TEST_BUDGET_S; the EXIT trap (scripts/lib/dmq-test.sh) kills the peers by
# PID and deletes every namespace it created, also on failure.
set -uo pipefail
# shellcheck source=scripts/lib/dmq-test.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib/dmq-test.sh"

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
dt_poll=0.2
case $PROFILE in
  local)
    CONVERGE_S=30 DEAD_S=45 PART_S=60 HEAL_S=60 SHORT_PART_MS=2000 ;;
  fast) # suspicion >= 0.8 s
    CONVERGE_S=30 DEAD_S=45 PART_S=60 HEAL_S=60 SHORT_PART_MS=400 ;;
  lan)
    CONVERGE_S=40 DEAD_S=60 PART_S=75 HEAL_S=75 SHORT_PART_MS=2000 ;;
  *) echo "$name: unsupported profile '$PROFILE' (local, fast, lan)" >&2; exit 1 ;;
esac

dt_name=$name
dt_need_root_tools ip iptables
# $peer, $tmp, fail; the whole test bounded by TEST_BUDGET_S from here
dt_peer_test "$name" dmq-multihost "$TEST_BUDGET_S" 10
t_begin=$SECONDS
dt_log_globs=('h*.log*' 'h*.err')
dt_log_tail=15
br=dmqbr$$
hns() { echo "dmqh$$_$1"; }
hip() { dt_host_ip "$1"; }

say() { echo "$name: [$((SECONDS - t_begin))s] $*"; }
dt_progress() { say "  ... $*"; }
now_ms() { dt_now_ms; }
secs() { dt_secs "$@"; }
msecs() { printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)); } # ms -> s

# ---------------------------------------------------------------------------
# network
# ---------------------------------------------------------------------------
dt_lan_up "$br" "$(hns "")" "$N"
ip netns exec "$(hns 1)" iptables -L INPUT -n >/dev/null 2>"$tmp/ipt.err" ||
  dt_skip "iptables does not work in a network namespace: $(head -c 200 "$tmp/ipt.err")"
say "network: bridge in $br, hosts $(hns 1)..$N at 192.0.2.11..15/24, profile $PROFILE"

# ---------------------------------------------------------------------------
# peers
# ---------------------------------------------------------------------------
start() { # i
  local i=$1
  # ip netns exec execs: the pid is dmq-peer's
  dt_spawn "h$i" -- ip netns exec "$(hns "$i")" "$peer" --name "h$i" \
    --bind "$(hip "$i"):$PORT" --seed "$(hip 1):$PORT" --seed "$(hip 2):$PORT" \
    --profile "$PROFILE" --channel kv --ttl-ms "$MSG_TTL_MS"
  dt_wait_event "h$i" 10 ready
}
pid() { echo "${dt_pid[h$1]}"; }
send() { dt_send "h$1" "$2"; }

timeline() { echo "$1 $2 $(now_ms)" >>"$tmp/timeline"; }

mh() { dt_cluster h "$N" "$@"; }

# wait_for WHAT LIMIT mh-args...: poll; leaves per-observer times in
# $dt_since
dt_view_prefix=h
dt_view_n=$N
wait_for() { dt_wait_view "$@"; }

# seconds from t0 to the latest time in $dt_since
latest() { dt_last_after "$1" "$dt_since"; }

declare -a summary=()
record() { summary+=("$(printf '%-52s %8s' "$1" "$2")"); say "$1: $2 s"; }

# ---------------------------------------------------------------------------
# 1. full view
# ---------------------------------------------------------------------------
t0=$(now_ms)
for ((i = 1; i <= N; i++)); do start "$i"; done
say "started h1..h$N (pids ${dt_pid[*]})"
wait_for "full view" "$CONVERGE_S" converged
record "start -> full view (5 x 5 alive)" "$(latest "$t0")"

# ---------------------------------------------------------------------------
# 2. SIGKILL h5
# ---------------------------------------------------------------------------
timeline kill h5
t0=$(now_ms)
dt_kill9 "$(pid 5)"
say "SIGKILL h5"
wait_for "h5 dead everywhere" "$DEAD_S" dead h5
record "SIGKILL h5 -> all others see it dead" "$(latest "$t0")"

# ---------------------------------------------------------------------------
# 3. restart h5
# ---------------------------------------------------------------------------
timeline restart h5
t0=$(now_ms)
start 5
say "restarted h5 (pid $(pid 5))"
wait_for "full view after restart" "$CONVERGE_S" converged
record "restart h5 -> full view" "$(latest "$t0")"

# ---------------------------------------------------------------------------
# 4. SIGSTOP h4 past the suspicion timeout, SIGCONT
# ---------------------------------------------------------------------------
timeline stop h4
t0=$(now_ms)
kill -STOP "$(pid 4)"
say "SIGSTOP h4"
wait_for "h4 dead everywhere" "$DEAD_S" dead h4
record "SIGSTOP h4 -> all others see it dead" "$(latest "$t0")"
timeline cont h4
t0=$(now_ms)
kill -CONT "$(pid 4)"
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

# msgs ROUNDS "PHASE FROM TO"...: for k in 1..ROUNDS, each of these
# messages in turn, with the text "PHASE hFROM-hTO #k"
msgs() {
  local rounds=$1 k m ph a b
  shift
  for ((k = 1; k <= rounds; k++)); do
    for m in "$@"; do
      read -r ph a b <<<"$m"
      msg "$ph" "$a" "$b" "$ph h$a-h$b #$k"
    done
  done
}

# wait_delivery WHAT LIMIT [final] PHASE...: until every message of these
# phases has its outcome and all the rules hold; mh's summary in $dsum
dsum=
mh_delivery() { # mh delivery, its exit 3 (outcomes missing) as "not yet"
  local rc
  mh delivery "$@"
  rc=$?
  ((rc == 3)) && return 1
  ((rc == 0)) && return 0
  return 2
}
wait_delivery() {
  local what=$1 limit=$2
  shift 2
  dt_wait_cond "$what: delivery rules" "$limit" mh_delivery "$@"
  dsum=$dt_out
  printf "%s\n" "$dsum" | sed "s/^/$name:   /"
}
# dfield PHASE KEY: a number from the summary line of PHASE in $dsum
dfield() { sed -n "s/^phase=$1 .*$2=\([0-9]*\).*/\1/p" <<<"$dsum"; }

susp0=$(cat "$tmp"/h*.log* | grep -c '"change":"suspect"')
timeline partition short
t0=$(now_ms)
partition_on
msgs 3 "short 1 4" "short 3 2" "short 5 1" "short 2 3"
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
msgs 3 "across 1 4" "across 3 2"
msgs 2 "across 2 5" "across 4 1" "inside 1 2" "inside 4 3" "inside 5 3"
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
msgs 2 "after 1 4" "after 4 1" "after 3 2" "after 2 5"
msg after 1 "*" "after bcast from h1"
msg after 4 "*" "after bcast from h4"
wait_delivery "messages after the heal" "$MSG_S" after
record "after heal: 8 msgs + 2 bcasts (x4), slowest" "$(msecs "$(dfield after max_latency_ms)")"

# ---------------------------------------------------------------------------
# 7. audit, listings, graceful stop
# ---------------------------------------------------------------------------
# A suspicion raised just before the heal can still be on its way to being
# refuted when the first listing is taken (CI, 2026-12-07: h2 listed h5
# suspect 130 ms before h5's refutation reached it), so the listings are
# asked for again every 5 polls until all show 5 alive, for at most 10 s.
end=$((SECONDS + 10))
polls=0
while :; do
  if ((polls % 5 == 0)); then
    for ((i = 1; i <= N; i++)); do send "$i" members; done
  fi
  polls=$((polls + 1))
  sleep "$dt_poll"
  mh listing >/dev/null 2>&1 && break
  ((SECONDS < end)) || { mh listing; fail "members listings do not show 5 alive everywhere"; }
done
mh listing | sed "s/^/$name:   /"
say "members: every host lists 5 alive"

mh audit "$GRACE_MS" | sed "s/^/$name:   /"
[[ ${PIPESTATUS[0]} == 0 ]] || fail "a healthy host was reported dead"
wait_delivery "every message (final)" 5 final

t0=$(now_ms)
for ((i = 1; i <= N; i++)); do kill -TERM "$(pid "$i")"; done
for ((i = 1; i <= N; i++)); do
  dt_wait_exit "$(pid "$i")" 5 || fail "h$i still running 5s after SIGTERM"
  [[ $dt_status == 0 ]] || fail "h$i exited $dt_status after SIGTERM"
  dt_forget "h$i"
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
