# shellcheck shell=bash
# shellcheck disable=SC2034 # globals, read by the scripts that source this
# dmq-test.sh: what scripts/demo.sh and tests/integration/test_*.sh share.
# Sourced, not run:
#
#   . "$root/scripts/lib/dmq-test.sh"
#   dt_init NAME TMP_PREFIX     temp dir $dt_tmp, traps: dt_cleanup on exit
#
# Everything a script starts through these functions is undone on exit,
# also on failure, Ctrl-C or SIGTERM: processes are stopped by PID (each
# peer leads its own process group), FIFO descriptors closed, dnsmasq
# stopped, every network namespace deleted (with its /etc/netns/<ns>), the
# temp dir removed (kept on failure with DMQ_TEST_KEEP=1, or as the script
# sets dt_keep_on_fail / dt_keep_on_ok).
#
# Processes        dt_spawn, dt_send, dt_alive, dt_kill9, dt_stop_pids,
#                  dt_wait_exit, dt_forget
# Waiting          dt_wait_until (command succeeds), dt_wait_event (a JSON
#                  event in a log), every wait bounded by its own limit and
#                  by the script's budget (dt_budget)
# JSON logs        dt_ev (one log), dt_cluster (a cluster's logs), both by
#                  scripts/lib/dmq_test.py; dt_ports_free
# dmq-peer tests   dt_peer_test (the common start: $name, $peer, $tmp,
#                  budget; fail, ok, check), dt_peer_start, dt_listing_is,
#                  dt_expect_exit, dt_hexkey
# Network          dt_netns_add (a namespace deleted on exit), dt_lan_up (a
#                  bridge in a namespace of its own and hosts on
#                  192.0.2.0/24 with no default route), dt_dns_up /
#                  dt_dns_down (dnsmasq in a namespace as its resolver)
#
# Network rules: traffic only to 127.0.0.0/8 or to namespaces created here;
# nothing in the root namespace is touched but /etc/netns/<ns>.

dt_lib=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DT_SKIP=77

dt_name=${dt_name:-dmq-test}
dt_tmp=
dt_py=
dt_deadline= # SECONDS value; set by dt_budget
dt_budget_s=
dt_keep_on_fail=${DMQ_TEST_KEEP:-0}
dt_keep_on_ok=0
dt_log_tail=20                # lines of each log shown on failure
dt_log_globs=('*.log' '*.err') # which files of $dt_tmp are shown
dt_graceful_exit=0            # leftover processes: SIGTERM first (1) or SIGKILL
dt_stop_s=5                   # dt_stop_pids: SIGTERM -> SIGKILL after this
dt_on_exit=()                 # commands run first by dt_cleanup
declare -A dt_pid=() dt_fd=()
dt_namespaces=()
dt_dnsmasq_pid=
dt_netns_dir_existed=0
[[ -d /etc/netns ]] && dt_netns_dir_existed=1

# ---------------------------------------------------------------------------
# messages, set-up, cleanup
# ---------------------------------------------------------------------------
dt_fail() {
  echo "$dt_name: FAIL: $*" >&2
  exit 1
}
dt_skip() {
  echo "$dt_name: SKIP: $*"
  exit $DT_SKIP
}
dt_now_ms() { date +%s%3N; }
# seconds between two ms timestamps: 2 decimals (secs), 3 (msecs)
dt_secs() {
  local d=$(($2 - $1))
  ((d < 0)) && d=0
  printf '%d.%02d' $((d / 1000)) $((d % 1000 / 10))
}
dt_msecs() {
  local d=$(($2 - $1))
  ((d < 0)) && d=0
  printf '%d.%03d' $((d / 1000)) $((d % 1000))
}

# dt_init NAME TMP_PREFIX: messages say NAME; a temp dir; the traps
dt_init() {
  dt_name=$1
  dt_tmp=$(mktemp -d "${TMPDIR:-/tmp}/$2.XXXXXX") || exit 1
  trap dt_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# dt_budget SECONDS: no wait goes on past this many seconds from now
dt_budget() {
  dt_budget_s=$1
  dt_deadline=$((SECONDS + $1))
}

# dt_python: $dt_py, resolved once (a version-manager shim such as pyenv
# costs ~0.5 s a call); non-zero without python3
dt_python() {
  command -v python3 >/dev/null || return 1
  dt_py=$(python3 -c 'import sys; print(sys.executable)')
}

# dt_need_root_tools TOOL...: skip unless root and every TOOL is installed
dt_need_root_tools() {
  local t
  [[ $(id -u) -eq 0 ]] || dt_skip "not root"
  for t in "$@"; do
    command -v "$t" >/dev/null || dt_skip "$t not installed"
  done
}

# dt_build_file REL: $DMQ_BUILD_DIR/REL, which must be executable
dt_build_file() {
  local build=${DMQ_BUILD_DIR:-}
  [[ -n $build ]] || { echo "$dt_name: DMQ_BUILD_DIR not set" >&2; exit 1; }
  [[ -x $build/$1 ]] || { echo "$dt_name: $build/$1 not built" >&2; exit 1; }
  echo "$build/$1"
}

dt_cleanup() {
  local rc=$? p ns live=() f g
  trap - EXIT INT TERM
  for p in "${dt_on_exit[@]}"; do eval "$p"; done
  for p in "${dt_pid[@]}"; do dt_alive "$p" && live+=("$p"); done
  if ((${#live[@]} > 0)); then
    if [[ $dt_graceful_exit == 1 ]]; then
      echo "$dt_name: stopping ${#live[@]} process(es) left running"
      dt_stop_pids "${live[@]}"
    else
      for p in "${live[@]}"; do
        kill -CONT "$p" 2>/dev/null # a SIGSTOPped peer cannot handle SIGTERM
        dt_kill9 "$p"
      done
    fi
  fi
  for p in "${dt_fd[@]}"; do exec {p}>&-; done
  dt_dns_down
  for ns in "${dt_namespaces[@]}"; do ip netns del "$ns" 2>/dev/null; done
  if [[ -n $dt_tmp ]]; then
    if [[ $rc != 0 && $rc != 130 && $rc != 143 ]]; then
      echo "$dt_name: FAILED (exit $rc); logs:" >&2
      for g in "${dt_log_globs[@]}"; do
        for f in "$dt_tmp"/$g; do
          [[ -s $f ]] || continue
          echo "--- $f" >&2
          tail -n "$dt_log_tail" "$f" >&2
        done
      done
    fi
    if [[ ($rc != 0 && $dt_keep_on_fail == 1) || ($rc == 0 && $dt_keep_on_ok == 1) ]]; then
      echo "$dt_name: logs kept in $dt_tmp" >&2
    else
      rm -rf "$dt_tmp"
    fi
  fi
  exit "$rc"
}

# ---------------------------------------------------------------------------
# processes
# ---------------------------------------------------------------------------
# dt_alive PID: PID is still a process this script started (its child, or
# a zombie of it). Not merely "some process has this pid": with pid_max at
# 32768 a suite wraps pids within minutes, and a test that signalled the
# pid of a peer that had exited and been reaped killed whatever process
# got the pid next (a hostile-test peer, in one full ctest run).
dt_alive() {
  [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null && [[ $(dt_stat_field "$1" 2) == "$$" ]]
}

# dt_stat_field PID N: field N after the command name of /proc/PID/stat
# (1 state, 2 ppid, 3 process group)
dt_stat_field() {
  local st
  read -r st <"/proc/$1/stat" 2>/dev/null || return 1
  st=${st##*) }
  read -r -a st <<<"$st"
  echo "${st[$(($2 - 1))]}"
}

# SIGKILL (the process group when PID leads one, else the pid) and reap,
# quietly: bash reports jobs killed by a signal ("Killed") at its next
# chance; let that happen here, into /dev/null. Only our own children.
dt_kill9() {
  dt_alive "$1" || return 0
  if [[ $(dt_stat_field "$1" 3) == "$1" ]]; then
    kill -KILL -- "-$1" 2>/dev/null
  else
    kill -KILL "$1" 2>/dev/null
  fi
  { wait "$1"; sleep 0.01; } 2>/dev/null
}

# dt_spawn KEY [--in FILE] -- COMMAND...: run COMMAND in the background in a
# process group of its own (a Ctrl-C reaches the script, which then stops
# it), stdout to $dt_tmp/KEY.log, stderr appended to $dt_tmp/KEY.err. stdin:
# FILE, or else the FIFO $dt_tmp/KEY.in, held open read-write here (the
# open does not block, and the process never sees end of input while the
# script runs; dt_send writes to it). A log left by an earlier run of KEY
# is kept as KEY.log.<ms>. PID in ${dt_pid[KEY]}.
dt_spawn() {
  local key=$1 in='' f
  shift
  if [[ $1 == --in ]]; then
    in=$2
    shift 2
  fi
  [[ $1 == -- ]] && shift
  [[ -e $dt_tmp/$key.log ]] && mv "$dt_tmp/$key.log" "$dt_tmp/$key.log.$(dt_now_ms)"
  if [[ -z $in ]]; then
    in=$dt_tmp/$key.in
    if [[ -z ${dt_fd[$key]:-} ]]; then
      mkfifo "$in" || dt_fail "mkfifo $in"
      exec {f}<>"$in"
      dt_fd[$key]=$f
    fi
  fi
  set -m
  "$@" <"$in" >"$dt_tmp/$key.log" 2>>"$dt_tmp/$key.err" &
  dt_pid[$key]=$!
  set +m
}

# dt_send KEY LINE: one line to the process's stdin FIFO
dt_send() { printf '%s\n' "$2" >&"${dt_fd[$1]}"; }

# dt_forget KEY: the process is gone (reaped): no cleanup for it
dt_forget() { unset "dt_pid[$1]"; }

# dt_wait_exit PID SECONDS: wait for a process started here to exit; its
# status in $dt_status. Non-zero if it is still running then.
dt_status=
dt_wait_exit() {
  local p=$1 end=$((SECONDS + $2))
  while kill -0 "$p" 2>/dev/null; do
    ((SECONDS < end)) || return 1
    if [[ -n $dt_deadline ]] && ((SECONDS >= dt_deadline)); then
      # not the process's fault: say so, the caller's message would not
      echo "dt_wait_exit: the test's budget of ${dt_budget_s}s is spent" >&2
      return 1
    fi
    sleep 0.1
  done
  wait "$p"
  dt_status=$?
  return 0
}

# dt_stop_pids PID...: SIGTERM (and SIGCONT: a SIGSTOPped peer handles
# SIGTERM then), wait up to $dt_stop_s, then SIGKILL what is left
dt_stop_pids() {
  local p end
  for p in "$@"; do dt_alive "$p" && kill -TERM "$p" 2>/dev/null && kill -CONT "$p" 2>/dev/null; done
  end=$((SECONDS + dt_stop_s))
  for p in "$@"; do
    while dt_alive "$p" && ((SECONDS < end)); do sleep 0.1; done
    if dt_alive "$p"; then
      echo "$dt_name: pid $p did not stop, SIGKILL" >&2
      dt_kill9 "$p"
    fi
    wait "$p" 2>/dev/null
  done
}

# ---------------------------------------------------------------------------
# waiting
# ---------------------------------------------------------------------------
dt_poll=0.1

# dt_wait_until SECONDS WHAT COMMAND...: poll until COMMAND succeeds; fail
# after SECONDS or when the budget is spent
dt_wait_until() {
  local limit=$1 what=$2 end
  shift 2
  end=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    dt_in_time "$end" "$limit" "$what"
    sleep "$dt_poll"
  done
}

# dt_in_time END LIMIT WHAT [DETAIL]: fail unless SECONDS is before END (a
# wait of LIMIT seconds) and the budget is not spent
dt_in_time() {
  ((SECONDS < $1)) || dt_fail "$3: not within ${2}s${4:+ ($4)}"
  [[ -z $dt_deadline ]] || ((SECONDS < dt_deadline)) ||
    dt_fail "$3: budget of ${dt_budget_s}s spent${4:+ ($4)}"
}

# dt_wait_cond WHAT SECONDS COMMAND...: poll COMMAND, which prints progress
# (shown when it changes, through dt_progress) and exits 0 when the
# condition holds (its output then in $dt_out), 2 when it never will (fail),
# anything else to go on
dt_out=
dt_progress() { echo "$dt_name: ... $*"; }
dt_wait_cond() {
  local what=$1 limit=$2 end out rc last=''
  shift 2
  end=$((SECONDS + limit))
  while :; do
    out=$("$@")
    rc=$?
    if [[ $rc == 0 ]]; then
      dt_out=$out
      return 0
    fi
    [[ $rc == 2 ]] && dt_fail "$what: $out"
    [[ $out != "$last" ]] && dt_progress "$(tr '\n' ' ' <<<"$out")"
    last=$out
    dt_in_time "$end" "$limit" "$what" "$out"
    sleep "$dt_poll"
  done
}

# dt_wait_view WHAT SECONDS ARGS...: dt_wait_cond on `dt_cluster
# $dt_view_prefix $dt_view_n ARGS...`; the per-observer times it printed
# ("peer1=<ms> ...") in $dt_since
dt_view_prefix=
dt_view_n=
dt_since=
dt_wait_view() {
  local what=$1 limit=$2
  shift 2
  dt_wait_cond "$what" "$limit" dt_cluster "$dt_view_prefix" "$dt_view_n" "$@"
  dt_since=$dt_out
}

# dt_wait_event KEY SECONDS EVENT: the process KEY printed EVENT (e.g.
# ready); fail if it exits first or it takes longer
dt_wait_event() {
  local key=$1 limit=$2 end=$((SECONDS + $2))
  until grep -q "\"event\":\"$3\"" "$dt_tmp/$key.log" 2>/dev/null; do
    dt_alive "${dt_pid[$key]}" || dt_fail "$key exited at start: $(cat "$dt_tmp/$key.err")"
    ((SECONDS < end)) || dt_fail "$key: no $3 event within ${limit}s"
    sleep 0.05
  done
}

# "peer1=<ms> peer2=<ms>": the earliest / latest time minus t0, in seconds
dt_first_after() {
  local best='' kv v
  for kv in $2; do
    v=${kv#*=}
    [[ -z $best || $v -lt $best ]] && best=$v
  done
  dt_secs "$1" "$best"
}
dt_last_after() {
  local worst=0 kv v
  for kv in $2; do
    v=${kv#*=}
    ((v > worst)) && worst=$v
  done
  dt_secs "$1" "$worst"
}

# ---------------------------------------------------------------------------
# JSON logs (scripts/lib/dmq_test.py; dt_python first)
# ---------------------------------------------------------------------------
# dt_ev CMD LOG ARGS...: one dmq-peer log (listing, saw, meta, event, count,
# get, wall, valid)
dt_ev() { "$dt_py" "$dt_lib/dmq_test.py" log "$@"; }
# dt_cluster PREFIX N CMD ARGS...: the logs $dt_tmp/PREFIX1..N.log
dt_cluster() { "$dt_py" "$dt_lib/dmq_test.py" cluster "$dt_tmp" "$@"; }
# dt_ports_free HOST BASE N: BASE..BASE+N-1 free for UDP and TCP on HOST
dt_ports_free() { "$dt_py" "$dt_lib/dmq_test.py" ports_free "$@"; }

# ---------------------------------------------------------------------------
# tests of dmq-peer processes (tests/integration/test_*peer*.sh)
# ---------------------------------------------------------------------------
# dt_peer_test NAME TMP_PREFIX BUDGET_S WAIT_S: what such a test does first.
# Messages say NAME; $peer is $DMQ_BUILD_DIR/tools/dmq-peer (exit 1 if not
# built); python3 is needed (skip without it); the temp dir ($tmp = $dt_tmp)
# and traps (dt_init); no wait goes past BUDGET_S from now (dt_budget);
# dt_peer_start and dt_listing_is wait up to WAIT_S ($dt_wait_s). Also
# defines the short names the tests use: fail MSG (dt_fail), ok MSG (a step
# passed, with the seconds since the start), check ARGS (dt_ev).
dt_wait_s=10
# shellcheck disable=SC2317 # fail, ok, check: called by the sourcing script
dt_peer_test() {
  name=$1
  dt_name=$1
  peer=$(dt_build_file tools/dmq-peer) || exit 1
  dt_python || dt_skip "python3 not found"
  dt_init "$1" "$2"
  dt_budget "$3"
  dt_wait_s=$4
  tmp=$dt_tmp
  fail() { dt_fail "$@"; }
  ok() { echo "$name: ok [${SECONDS}s]: $*"; }
  check() { dt_ev "$@"; }
}

# dt_peer_start NAME ARGS...: dmq-peer --name NAME ARGS... (dt_spawn: a FIFO
# as stdin, log $tmp/NAME.log), then wait for its ready event
dt_peer_start() {
  local n=$1
  shift
  dt_spawn "$n" -- "$peer" --name "$n" "$@"
  dt_wait_until "$dt_wait_s" "$n ready" dt_ev event "$dt_tmp/$n.log" ready
}

# dt_listing_is NAME "a alive" "b alive" ...: send `members` to NAME, wait
# (50 polls at most) for its answer, compare it (non-zero if different)
dt_listing_is() {
  local n=$1 before want got i
  shift
  want=$(printf '%s\n' "$@" | sort)
  before=$(dt_ev count "$dt_tmp/$n.log" members_end)
  dt_send "$n" members
  for ((i = 0; i < 50; i++)); do
    (($(dt_ev count "$dt_tmp/$n.log" members_end) > before)) && break
    sleep "$dt_poll"
  done
  got=$(dt_ev listing "$dt_tmp/$n.log") || return 1
  [[ $got == "$want" ]]
}

# dt_expect_exit CODE WHAT ARGS...: dmq-peer ARGS... (stdin /dev/null, 10 s
# at most) exits CODE, else fail naming WHAT; its output in $tmp/args.out,
# $tmp/args.err
dt_expect_exit() {
  local want=$1 what=$2 rc
  shift 2
  timeout 10 "$peer" "$@" </dev/null >"$dt_tmp/args.out" 2>"$dt_tmp/args.err"
  rc=$?
  [[ $rc == "$want" ]] || dt_fail "$what: exit $rc, want $want ($(head -c 300 "$dt_tmp/args.err"))"
}

# dt_hexkey: a random 32-byte key, 64 hex characters
dt_hexkey() { od -An -tx1 -N32 /dev/urandom | tr -d ' \n'; }

# ---------------------------------------------------------------------------
# network namespaces
# ---------------------------------------------------------------------------
# dt_netns_add NS: create NS (deleted on exit), lo up; non-zero (message in
# $dt_netns_err) if namespaces cannot be created
dt_netns_err=
dt_netns_add() {
  if ! dt_netns_err=$(ip netns add "$1" 2>&1); then
    return 1
  fi
  dt_namespaces+=("$1")
  ip -n "$1" link set lo up
}

# dt_lan_up BR_NS HOST_NS_PREFIX N: a bridge br0 in namespace BR_NS and N
# hosts HOST_NS_PREFIX1..N, each with lo up and eth0 (a veth into br0) at
# 192.0.2.1<i>/24, no default route. Skips (77) if namespaces cannot be
# created.
dt_host_ip() { echo "192.0.2.1$1"; }
dt_lan_up() {
  local br=$1 pre=$2 n=$3 i ns
  dt_netns_add "$br" || dt_skip "cannot create a network namespace: $dt_netns_err"
  ip -n "$br" link add br0 type bridge || dt_fail "bridge"
  ip -n "$br" link set br0 up || dt_fail "bridge up"
  for ((i = 1; i <= n; i++)); do
    ns=$pre$i
    dt_netns_add "$ns" || dt_fail "netns add $ns: $dt_netns_err"
    # created in the host namespace directly: no clash with the root's names
    ip -n "$ns" link add eth0 type veth peer name "h$i" netns "$br" || dt_fail "veth $i"
    ip -n "$br" link set "h$i" master br0 up || dt_fail "veth $i into br0"
    ip -n "$ns" addr add "$(dt_host_ip "$i")/24" dev eth0 || dt_fail "address $i"
    ip -n "$ns" link set eth0 up || dt_fail "eth0 up in $ns"
  done
}

# dt_dns_up NS HOSTS DOMAIN TIMEOUT_S PROBE_NAME [DNSMASQ_ARGS...]: NS (a
# new namespace) resolves through a dnsmasq running inside it on
# 127.0.0.1:53 (/etc/netns/NS/resolv.conf, which `ip netns exec` mounts over
# /etc/resolv.conf), serving the hosts file HOSTS and answering NXDOMAIN for
# other names under DOMAIN; log in $dt_tmp/dnsmasq.log. Waits until
# PROBE_NAME resolves. Non-zero (why in $dt_dns_err) if not possible;
# dt_dns_down (also on exit) undoes it.
dt_dns_ns=
dt_dns_err=
dt_dns_up() {
  local ns=$1 hosts=$2 domain=$3 limit=$4 probe=$5 end
  shift 5
  dt_netns_add "$ns" || { dt_dns_err="cannot create a network namespace: $dt_netns_err"; return 1; }
  dt_dns_ns=$ns
  mkdir -p "/etc/netns/$ns"
  echo "nameserver 127.0.0.1" >"/etc/netns/$ns/resolv.conf"
  ip netns exec "$ns" dnsmasq --keep-in-foreground --conf-file=/dev/null \
    --no-resolv --no-hosts --local="/$domain/" \
    --listen-address=127.0.0.1 --bind-interfaces --port=53 \
    --user=root --group=root --pid-file= \
    --addn-hosts="$hosts" --log-facility="$dt_tmp/dnsmasq.log" "$@" &
  dt_dnsmasq_pid=$!
  end=$((SECONDS + limit))
  until ip netns exec "$ns" getent hosts "$probe" >/dev/null 2>&1; do
    if ! dt_alive "$dt_dnsmasq_pid" || ((SECONDS >= end)); then
      dt_dns_err="dnsmasq did not answer"
      return 1
    fi
    sleep 0.1
  done
}

dt_dns_down() {
  local i
  if [[ -n $dt_dnsmasq_pid ]]; then
    kill "$dt_dnsmasq_pid" 2>/dev/null
    wait "$dt_dnsmasq_pid" 2>/dev/null
    dt_dnsmasq_pid=
  fi
  if [[ -n $dt_dns_ns ]]; then
    ip netns del "$dt_dns_ns" 2>/dev/null
    rm -rf "/etc/netns/$dt_dns_ns"
    [[ $dt_netns_dir_existed == 1 ]] || rmdir /etc/netns 2>/dev/null
    for i in "${!dt_namespaces[@]}"; do
      [[ ${dt_namespaces[i]} == "$dt_dns_ns" ]] && unset "dt_namespaces[i]"
    done
    dt_dns_ns=
  fi
  return 0
}
