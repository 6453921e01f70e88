#!/usr/bin/env bash
# Side-by-side benchmark: Kamailio's stock dmq module vs dmqlib, same
# Debian kamailio binary, same htable workload.
#
#   bench/kamailio_bench.sh [NODES...]      default: 3 20
#
# For each cluster size and each module (stock first, then dmqlib, in the
# same run): start NODES instances (htable enable_dmq=1, table t), wait for a
# full view, then one SIP MESSAGE makes node 1 write KEYS keys in one cfg
# loop. Measured:
#   keys/s     KEYS / time from the start of the write until every peer has
#              every key (htable.stats, polled peer by peer)
#   lost       keys missing on the peers (summed) when they stop growing
#   CPU/key    user+system CPU of all the instance's processes during the
#              run, per key: the writer, and the mean of the receivers
#   shm        the writer's peak shared memory in use above idle, per key
#   detect     SIGKILL of the last node's whole process group -> node 1
#              lists it as not active (stock: disabled; dmqlib: dead)
# Environment: MODES ("stock dmqlib"; "dmqlib-sip" = dmqlib in SIP mode,
# "dmqlib-bcast" = dmqlib with bcast_mode "broadcast"),
# KEYS (10000), SHM_MB (256, both modules), PROFILE (fast),
# STOCK_DETECT_MAX_S (90), OUT (a file the markdown table is appended to).
set -o pipefail
source "$(dirname "$0")/../tests/kamailio/lib.sh"
kt_setup bench

KEYS=${KEYS:-10000}
KT_SHM=${SHM_MB:-256}
PROFILE=${PROFILE:-fast}
STOCK_DETECT_MAX_S=${STOCK_DETECT_MAX_S:-90}
sizes=("$@")
[[ ${#sizes[@]} -gt 0 ]] || sizes=(3 20)
rows=()

stock_status() { # NAME IP -> status of IP in NAME's stock node list
  kt_rpc "$1" dmq.list_nodes | awk -v ip="$2" '
    /host:/ { h=$2 } /status:/ { if (h==ip) { print $2; f=1; exit } }
    END { if (!f) print "absent" }'
}
stock_active_count() { kt_rpc "$1" dmq.list_nodes | grep -c 'status: active'; }
view_full() { # MODE NAME N
  if [[ $1 == stock ]]; then
    # stock lists itself + the others; all active
    [[ $(stock_active_count "$2") -ge $3 ]]
  else
    kt_alive_count_is "$2" "$3"
  fi
}
not_active() { # MODE NAME VICTIM_IP
  if [[ $1 == stock ]]; then
    [[ $(stock_status "$2" "$3") != active ]]
  else
    local s; s=$(kt_member_state "$2" "$3:7946")
    [[ $s == dead || $s == left || $s == absent ]]
  fi
}

run_one() { # MODE N   (MODE: stock | dmqlib | dmqlib-sip)
  local mode=$1 n=$2 i
  local net=60
  KT_TRANSPORT=native
  [[ $mode == dmqlib ]] && net=80
  KT_DMQLIB_BCAST=""
  if [[ $mode == dmqlib-sip ]]; then
    net=40
    mode=dmqlib
    KT_TRANSPORT=sip
  elif [[ $mode == dmqlib-bcast ]]; then
    net=100
    mode=dmqlib
    KT_DMQLIB_BCAST=broadcast
  fi
  [[ $n -gt 3 ]] && net=$(( net + 100 ))   # 127.0.0.(160|180|200)+i
  KT_PID=()
  for i in $(seq 1 "$n"); do
    local seed=127.0.0.$((net + 1))
    [[ $i -eq 1 ]] && seed=""
    rm -rf "${KT_DIR:?}/$mode$n-k$i"
    KT_WORKERS=1 kt_cfg "$mode$n-k$i" "127.0.0.$((net + i))" "$mode" "$seed" "$PROFILE"
    kt_start "$mode$n-k$i" "127.0.0.$((net + i))" "$mode" "$seed" "$PROFILE"
  done
  for i in $(seq 1 "$n"); do kt_wait_up "$mode$n-k$i" 60000; done
  for i in $(seq 1 "$n"); do
    kt_wait 60000 "$mode$n-k$i full view" view_full "$mode" "$mode$n-k$i" "$n" ||
      kt_log "warning: $mode$n-k$i has no full view"
  done
  local w=$mode$n-k1
  declare -A cpu0=()
  for i in $(seq 1 "$n"); do cpu0[$i]=$(kt_cpu_ms "$mode$n-k$i"); done
  local shm0 shmmax
  shm0=$(kt_shm_used "$w")
  shmmax=$shm0
  local t0 t1 tdone
  # every peer has every key, or none grew for 15 s (a loss): ht_wait.py
  # polls the peers (and the writer's shm) over persistent binrpc
  # connections every 5 ms; a kamcmd per poll would cost more CPU than the
  # replication it measures
  local peers=() i
  for i in $(seq 2 "$n"); do peers+=("$KT_DIR/$mode$n-k$i/ctl.sock"); done
  python3 "$KT_ROOT/tests/kamailio/ht_wait.py" --keys "$KEYS" --stall-s 15 \
    --writer "$KT_DIR/$w/ctl.sock" "${peers[@]}" >"$KT_DIR/wait.json" &
  local waitpid=$!
  sleep 0.5 # connected and polling before the write starts
  t0=$(kt_now_ms)
  kt_fill "$w" "$KEYS" key &
  local fillpid=$!
  wait $waitpid
  local lost
  lost=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(sum(max(0, int(sys.argv[2]) - g) for g in d["got"]))' "$KT_DIR/wait.json" "$KEYS")
  shmmax=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["shm_used_peak"])' "$KT_DIR/wait.json")
  [[ $shmmax -gt $shm0 ]] || shmmax=$shm0
  tdone=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["done_ms"])' "$KT_DIR/wait.json")
  wait $fillpid 2>/dev/null
  # the write started when the writer's cfg loop did (its log line), not when
  # the SIP client process was spawned (python3 takes ~1 s to start here)
  local tstart
  tstart=$(awk '/fill start/ {v=$NF} END {printf "%.0f", v * 1000}' "$KT_DIR/$w/log")
  [[ $tstart -gt 0 ]] && t0=$tstart
  # how long the writer's cfg loop itself ran (htable sets + the module's
  # enqueue per key): the floor of the elapsed time
  local tend loopms="-"
  tend=$(awk '/fill end/ {v=$NF} END {printf "%.0f", v * 1000}' "$KT_DIR/$w/log")
  [[ $tend -gt 0 && $tstart -gt 0 ]] && loopms=$(( tend - tstart ))
  local wgot; wgot=$(kt_ht_items "$w")
  local el=$(( tdone - t0 ))
  local kps="-"
  [[ $lost -eq 0 ]] && kps=$(( KEYS * 1000 / (el > 0 ? el : 1) ))
  local cw cr=0
  cw=$(( $(kt_cpu_ms "$w") - cpu0[1] ))
  for i in $(seq 2 "$n"); do cr=$(( cr + $(kt_cpu_ms "$mode$n-k$i") - cpu0[$i] )); done
  local cpu_w_us=$(( cw * 1000 / KEYS )) cpu_r_us=$(( cr * 1000 / KEYS / (n - 1) ))
  local shm_per_key=$(( (shmmax - shm0) / KEYS ))
  # failure detection: SIGKILL the last node, node 1's view
  local victim=$mode$n-k$n vip=127.0.0.$((net + n)) det="-" maxms=10000
  [[ $mode == stock ]] && maxms=$(( STOCK_DETECT_MAX_S * 1000 ))
  t1=$(kt_now_ms)
  kt_kill "$victim" KILL
  if kt_wait $maxms "$w sees $victim down" not_active "$mode" "$w" "$vip"; then
    det=$(awk -v ms=$(( $(kt_now_ms) - t1 )) 'BEGIN { printf "%.2f s", ms / 1000 }')
  else
    det="> $((maxms / 1000)) s"
  fi
  kt_log "cpu writer $cw ms (from ${cpu0[1]}), receivers $cr ms"
  kt_log "$mode n=$n: ${el} ms (writer loop ${loopms} ms), keys/s $kps, lost $lost (writer has $wgot), CPU/key writer ${cpu_w_us} us receivers ${cpu_r_us} us, shm/key ${shm_per_key} B, detect $det"
  local label=$mode
  [[ $KT_TRANSPORT == sip ]] && label="dmqlib (SIP mode)"
  [[ -n $KT_DMQLIB_BCAST ]] && label="dmqlib (bcast_mode broadcast)"
  rows+=("| $n | $label | $kps | $el | $lost | $cpu_w_us | $cpu_r_us | $shm_per_key | $det |")
  echo "${rows[-1]}" >>"$KT_DIR/rows"
  for i in $(seq 1 "$n"); do
    [[ -n ${KT_PID[$mode$n-k$i]:-} ]] && kt_term "$mode$n-k$i"
  done
  for i in $(seq 1 "$n"); do
    [[ -n ${KT_PID[$mode$n-k$i]:-} ]] && kt_reap "$mode$n-k$i" 10000
  done
}

# MODES: which columns (default: stock dmqlib; add dmqlib-sip for SIP mode)
read -r -a modes <<<"${MODES:-stock dmqlib}"
for n in "${sizes[@]}"; do
  for m in "${modes[@]}"; do run_one "$m" "$n"; done
done

{
  echo
  echo "kamailio_bench: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), KEYS=$KEYS, -m $KT_SHM, dmqlib profile $PROFILE${KT_ARGS:+, kamailio $KT_ARGS}"
  echo
  echo "| nodes | module | keys/s (all peers have all keys) | ms | keys lost | CPU/key writer (µs) | CPU/key per receiver (µs) | writer shm/key (B) | SIGKILL seen by node 1 |"
  echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|"
  printf '%s\n' "${rows[@]}"
} | tee -a "${OUT:-/dev/null}"
