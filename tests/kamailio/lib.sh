# Helpers for the Kamailio tests (sourced by tests/kamailio/test_*.sh and
# bench/kamailio_bench.sh). Real Kamailio processes on loopback:
#   - every instance: own cfg, pidfile (-P), runtime dir (-Y), workdir (-w),
#     ctl module on a unix socket (kamcmd), -DD -E, its own process group
#     (setsid), stopped by PID;
#   - everything is cleaned up on exit, also on failure;
#   - every wait is bounded (kam_wait: poll a condition with a deadline).
#
# Environment: KAMAILIO (default /usr/sbin/kamailio), KAMCMD, DMQLIB_SO
# (default build-kam/dmqlib.so; built with scripts/kamailio-module.sh when
# missing), KAM_KEEP=1 keeps the temporary directory, CI=true makes a
# missing kamailio a failure instead of a skip (77).

KT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
KAMAILIO=${KAMAILIO:-/usr/sbin/kamailio}
KAMCMD=${KAMCMD:-$(command -v kamcmd || echo /usr/sbin/kamcmd)}
DMQLIB_SO=${DMQLIB_SO:-$KT_ROOT/build-kam/dmqlib.so}
KAM_MODDIR=${KAM_MODDIR:-/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)/kamailio/modules}

declare -A KT_PID=()   # instance name -> main pid (= process group id)
declare -A KT_IP=()    # instance name -> 127.0.0.x
KT_DIR=""
KT_FAILED=0

kt_log() { echo "[$(date +%H:%M:%S.%3N)] $*" >&2; }
kt_fail() { kt_log "FAIL: $*"; KT_FAILED=1; }
kt_die() { kt_log "FAIL: $*"; exit 1; }

kt_now_ms() { date +%s%3N; }

# kt_setup NAME: checks, temp dir, cleanup trap
kt_setup() {
  local name=$1
  if [[ ! -x $KAMAILIO || ! -x $KAMCMD ]]; then
    if [[ ${CI:-} == true ]]; then
      kt_die "kamailio or kamcmd missing ($KAMAILIO, $KAMCMD)"
    fi
    kt_log "SKIP: kamailio not installed"
    exit 77
  fi
  if [[ ! -f $DMQLIB_SO ]]; then
    kt_log "building the module (scripts/kamailio-module.sh)"
    "$KT_ROOT/scripts/kamailio-module.sh" >&2 || kt_die "module build failed"
  fi
  KT_DIR=$(mktemp -d "/tmp/kt-$name.XXXXXX")
  trap kt_cleanup EXIT
  trap 'exit 1' INT TERM
}

kt_cleanup() {
  local rc=$?
  local n pid
  for n in "${!KT_PID[@]}"; do
    pid=${KT_PID[$n]}
    kill -TERM "$pid" 2>/dev/null || true
  done
  local deadline=$(( $(kt_now_ms) + 5000 ))
  for n in "${!KT_PID[@]}"; do
    pid=${KT_PID[$n]}
    while kill -0 "$pid" 2>/dev/null && (( $(kt_now_ms) < deadline )); do
      sleep 0.05
    done
    # the whole process group: children left behind by a killed main
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  if [[ $rc -ne 0 || $KT_FAILED -ne 0 ]]; then
    for n in "${!KT_PID[@]}"; do
      [[ -f $KT_DIR/$n/log ]] || continue
      kt_log "--- last lines of $n's log ---"
      grep -v ' DEBUG: ' "$KT_DIR/$n/log" | tail -n 25 >&2
    done
  fi
  if [[ ${KAM_KEEP:-0} == 1 ]]; then
    kt_log "kept $KT_DIR"
  elif [[ -n $KT_DIR ]]; then
    rm -rf "$KT_DIR"
  fi
  if [[ $rc -eq 0 && $KT_FAILED -ne 0 ]]; then rc=1; fi
  exit $rc
}

# kt_cfg NAME IP MODE SEED [PROFILE] [EXTRA_MODULES...]: writes $KT_DIR/NAME/kamailio.cfg
# MODE: dmqlib | stock. SEED: the seed's IP (empty for none).
kt_cfg() {
  local name=$1 ip=$2 mode=$3 seed=$4 profile=${5:-fast}
  local d=$KT_DIR/$name
  mkdir -p "$d/run" "$d/work"
  {
    echo '#!KAMAILIO'
    echo "debug=${KT_DEBUG:-2}"
    echo 'log_stderror=yes'
    echo 'memdbg=5'
    echo 'memlog=5'
    echo "children=${KT_CHILDREN:-1}"
    echo 'auto_aliases=no'
    echo 'max_while_loops=100000'
    echo "listen=udp:$ip:5060"
    [[ ${KT_TRANSPORT:-native} == sip-tcp ]] && echo "listen=tcp:$ip:5060"
    echo "mpath=\"$KAM_MODDIR/\""
    echo 'loadmodule "ctl.so"'
    echo "modparam(\"ctl\", \"binrpc\", \"unixs:$d/ctl.sock\")"
    echo 'loadmodule "pv.so"'
    echo 'loadmodule "xlog.so"'
    echo 'loadmodule "sl.so"'
    if [[ $mode == stock ]]; then
      echo 'loadmodule "tm.so"'
      echo 'loadmodule "dmq.so"'
      echo "modparam(\"dmq\", \"server_address\", \"sip:$ip:5060\")"
      [[ -n $seed ]] && echo "modparam(\"dmq\", \"notification_address\", \"sip:$seed:5060\")"
      echo 'modparam("dmq", "ping_interval", 5)'
      echo 'modparam("dmq", "num_workers", 2)'
    else
      echo "loadmodule \"$DMQLIB_SO\""
      # KT_SIP_NO_BIND=1 (SIP mode): no bind at all (members are then named
      # after their SIP address, ip:5060)
      [[ ${KT_SIP_NO_BIND:-0} == 1 ]] || echo "modparam(\"dmqlib\", \"bind\", \"$ip:7946\")"
      if [[ ${KT_TRANSPORT:-native} == sip* ]]; then
        echo "modparam(\"dmqlib\", \"transport\", \"$KT_TRANSPORT\")"
        [[ -n $seed ]] && echo "modparam(\"dmqlib\", \"seeds\", \"$seed:5060\")"
      else
        [[ -n $seed ]] && echo "modparam(\"dmqlib\", \"seeds\", \"$seed:7946\")"
      fi
      echo "modparam(\"dmqlib\", \"profile\", \"$profile\")"
      echo "modparam(\"dmqlib\", \"workers\", ${KT_WORKERS:-1})"
      # KT_DMQLIB_BCAST=broadcast: one libdmq broadcast per bcast_message
      [[ -n ${KT_DMQLIB_BCAST:-} ]] && echo "modparam(\"dmqlib\", \"bcast_mode\", \"$KT_DMQLIB_BCAST\")"
    fi
    echo 'loadmodule "htable.so"'
    echo 'modparam("htable", "enable_dmq", 1)'
    echo 'modparam("htable", "dmq_init_sync", 1)'
    echo "modparam(\"htable\", \"htable\", \"t=>size=16;dmqreplicate=${KT_HT_REPL:-1};\")"
    local m
    for m in "${KT_EXTRA_MODULES[@]}"; do echo "$m"; done
    # KT_KEMI=1: no native routes (a KEMI cfgengine script routes; a native
    # request_route would take precedence)
    if [[ ${KT_KEMI:-0} == 1 ]]; then return 0; fi
    echo 'request_route {'
    if [[ $mode == stock || ${KT_TRANSPORT:-native} == sip* ]]; then
      echo '  if (method == "KDMQ") { dmq_handle_message(); exit; }'
    fi
    # MESSAGE sip:fill@ with X-N: N and X-P: prefix -> $sht(t=>PREFIXi) = i
    # for i in 0..N-1, then 200 (one cfg loop: the "cfg writer")
    # MESSAGE sip:overwrite@ with X-N: N -> $sht(t=>ow) = 1..N, then 200
    cat <<'CFG'
  if (method == "MESSAGE" && $rU == "fill") {
    xlog("L_NOTICE", "fill start $TV(Sn)\n");
    $var(i) = 0;
    $var(n) = $(hdr(X-N){s.int});
    while ($var(i) < $var(n)) {
      $sht(t=>$hdr(X-P)$var(i)) = $var(i);
      $var(i) = $var(i) + 1;
    }
    xlog("L_NOTICE", "fill end $TV(Sn)\n");
    sl_send_reply("200", "Filled");
    exit;
  }
  if (method == "MESSAGE" && $rU == "overwrite") {
    $var(i) = 1;
    $var(n) = $(hdr(X-N){s.int});
    while ($var(i) <= $var(n)) {
      $sht(t=>ow) = $var(i);
      $var(i) = $var(i) + 1;
    }
    sl_send_reply("200", "Overwritten");
    exit;
  }
CFG
    echo "${KT_ROUTE:-  exit;}"
    echo '}'
    local r
    for r in "${KT_EXTRA_ROUTES[@]}"; do echo "$r"; done
  } >"$d/kamailio.cfg"
}

# kt_start NAME IP MODE SEED [PROFILE]: start an instance (cfg written if absent)
kt_start() {
  local name=$1 ip=$2 mode=$3 seed=$4 profile=${5:-fast}
  local d=$KT_DIR/$name
  [[ -f $d/kamailio.cfg ]] || kt_cfg "$@"
  KT_IP[$name]=$ip
  setsid "$KAMAILIO" -DD -E -f "$d/kamailio.cfg" -P "$d/kamailio.pid" \
    -Y "$d/run" -w "$d/work" -m "${KT_SHM:-64}" -M "${KT_PKG:-8}" ${KT_ARGS:-} \
    >"$d/log" 2>&1 </dev/null &
  KT_PID[$name]=$!
  # no "Killed" job notices when an instance is killed on purpose; bash
  # still reaps it (kill -0 then fails)
  disown "$!" 2>/dev/null || true
}

# kt_rpc NAME CMD ARGS...: kamcmd on the instance's ctl socket (3 s bound)
kt_rpc() {
  local name=$1
  shift
  timeout 3 "$KAMCMD" -s "unixs:$KT_DIR/$name/ctl.sock" "$@" 2>&1
}

# kt_wait TIMEOUT_MS DESCRIPTION CMD...: poll CMD until it succeeds
kt_wait() {
  local tmo=$1 what=$2
  shift 2
  local deadline=$(( $(kt_now_ms) + tmo ))
  while :; do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if (( $(kt_now_ms) >= deadline )); then
      kt_log "timeout (${tmo} ms) waiting for: $what"
      return 1
    fi
    sleep 0.02
  done
}

# kt_holds MS DESCRIPTION CMD...: CMD stays true for MS ms (an observation
# window, e.g. "no duplicate arrives"); fails as soon as it does not
kt_holds() {
  local ms=$1 what=$2
  shift 2
  local deadline=$(( $(kt_now_ms) + ms ))
  while (( $(kt_now_ms) < deadline )); do
    if ! "$@" >/dev/null 2>&1; then
      kt_log "did not hold for ${ms} ms: $what"
      return 1
    fi
    sleep 0.05
  done
  return 0
}

kt_alive() { kill -0 "${KT_PID[$1]}" 2>/dev/null; }

# instance answers RPC
kt_up() { kt_alive "$1" && kt_rpc "$1" core.version | grep -q kamailio; }

kt_up_or_dead() { kt_up "$1" || ! kt_alive "$1"; }
kt_wait_up() {
  kt_wait "${2:-15000}" "$1 answering RPC" kt_up_or_dead "$1"
  kt_up "$1" || kt_die "$1 did not start"
}

# kt_member_state NAME MEMBER_NAME -> alive|suspect|dead|left|absent
kt_member_state() {
  kt_rpc "$1" dmq.list_nodes | awk -v m="$2" '
    /name:/ { n=$2 } /state:/ { if (n==m) { print $2; found=1; exit } }
    END { if (!found) print "absent" }'
}
kt_state_is() { [[ $(kt_member_state "$1" "$2") == "$3" ]]; }

# number of members NAME sees alive (self included)
kt_alive_count() { kt_rpc "$1" dmq.list_nodes | grep -c 'state: alive'; }
kt_alive_count_is() { [[ $(kt_alive_count "$1") -eq $2 ]]; }

# one counter of the module's dmqlib.stats: kt_stat NAME KEY
kt_stat() { kt_rpc "$1" dmqlib.stats | awk -v k="$2:" '$1==k {print $2; exit}'; }

# A MESSAGE to sip:bcast@IP on IP:5060 (the test cfgs broadcast it on a DMQ
# channel): kt_bcast IP BODY
kt_bcast() {
  python3 "$KT_ROOT/tests/kamailio/sipsend.py" "$1" 5060 MESSAGE "sip:bcast@$1" \
    --body "$2" --timeout 5 >/dev/null
}

# Broadcast through IP until instance NAME has run one more dmqlib callback
# (it learns by gossip that a member serves the channel), within 15 s:
# kt_bcast_until_callback IP NAME BODY; status 0 once it has.
kt_bcast_until_callback() {
  local deadline before
  deadline=$(( $(kt_now_ms) + 15000 ))
  before=$(kt_stat "$2" callbacks_run)
  while (( $(kt_now_ms) < deadline )); do
    kt_bcast "$1" "$3" || true
    if kt_wait 1000 "$2 ran a callback" bash -c "$(declare -f kt_rpc kt_stat); KT_DIR=$KT_DIR KAMCMD=$KAMCMD; [[ \$(kt_stat $2 callbacks_run) -gt $before ]]"; then
      return 0
    fi
  done
  return 1
}

# htable helpers
kt_ht_get() { kt_rpc "$1" htable.get t "$2" | awk '/value:/ {print $2}'; }
kt_ht_is() { [[ $(kt_ht_get "$1" "$2") == "$3" ]]; }
# item count of table t (stock htable.stats: "items: N")
kt_ht_items() { kt_rpc "$1" htable.stats | awk '/name: t$/ {f=1} f && /all:/ {print $2; exit}'; }
kt_ht_items_is() { [[ $(kt_ht_items "$1") == "$2" ]]; }
kt_ht_items_ge() { local n; n=$(kt_ht_items "$1"); [[ -n $n && $n -ge $2 ]]; }

# kt_fill NAME N PREFIX: the instance writes N keys PREFIX0.. in one cfg loop
kt_fill() {
  python3 "$KT_ROOT/tests/kamailio/sipsend.py" "${KT_IP[$1]}" 5060 MESSAGE \
    "sip:fill@${KT_IP[$1]}" -H "X-N: $2" -H "X-P: $3" --no-resend --timeout 60 >/dev/null
}
kt_overwrite() {
  python3 "$KT_ROOT/tests/kamailio/sipsend.py" "${KT_IP[$1]}" 5060 MESSAGE \
    "sip:overwrite@${KT_IP[$1]}" -H "X-N: $2" --no-resend --timeout 60 >/dev/null
}

# kill a whole instance (process group) with SIG
kt_kill() {
  local name=$1 sig=$2
  kill -"$sig" -- "-${KT_PID[$name]}" 2>/dev/null || true
}
kt_term() { kill -TERM "${KT_PID[$1]}" 2>/dev/null || true; }
kt_reap() { # wait (bounded) until the instance's main is gone
  local pid=${KT_PID[$1]} deadline=$(( $(kt_now_ms) + ${2:-10000} ))
  while kill -0 "$pid" 2>/dev/null && (( $(kt_now_ms) < deadline )); do sleep 0.02; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  unset "KT_PID[$1]"
}

# dmq-peer (tools/dmq-peer, built by scripts/kamailio-module.sh) as an extra
# libdmq member driven through a FIFO: kt_peer_start NAME BIND SEED [CHANNEL]
DMQ_PEER=${DMQ_PEER:-$KT_ROOT/build-kam/libdmq/tools/dmq-peer}
declare -A KT_PEER_FD=()
kt_peer_start() {
  local name=$1 bind=$2 seed=$3 chan=${4:-}
  local d=$KT_DIR/$name
  mkdir -p "$d"
  [[ -x $DMQ_PEER ]] || kt_die "dmq-peer not built ($DMQ_PEER)"
  mkfifo "$d/in"
  local args=(--name "$name" --bind "$bind" --seed "$seed" --profile fast)
  [[ -n $chan ]] && args+=(--channel "$chan")
  setsid "$DMQ_PEER" "${args[@]}" <"$d/in" >"$d/events" 2>"$d/log" &
  KT_PID[$name]=$!
  local fd
  exec {fd}>"$d/in"
  KT_PEER_FD[$name]=$fd
}
kt_peer_cmd() { echo "$2" >&"${KT_PEER_FD[$1]}"; }
kt_peer_has() { grep -q "$2" "$KT_DIR/$1/events"; }

# CPU time (ms, user+system) of every process in the instance's process group
kt_cpu_ms() {
  local pg=${KT_PID[$1]} tck
  tck=$(getconf CLK_TCK)
  # cat, not awk on the glob: a process that exits between the glob and the
  # read must not abort the sum
  cat /proc/[0-9]*/stat 2>/dev/null | awk -v pg="$pg" -v hz="$tck" '{
      # comm may hold blanks: fields after the closing parenthesis
      s = $0; sub(/^.*\) /, "", s); split(s, f, " ");
      if (f[3] == pg) t += f[12] + f[13]
    } END { printf "%.0f\n", t * 1000 / hz }'
}
# shared memory in use (bytes) as the instance reports it
kt_shm_used() { kt_rpc "$1" core.shmmem | awk '/used:/ {print $2; exit}'; }
