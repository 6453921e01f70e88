#!/usr/bin/env bash
# Regression for the stock dmq module: after 2000 rapid overwrites of one
# htable key, some peer ended on a stale value in most runs (UDP
# retransmissions and parallel workers reorder). With dmqlib a sender's
# messages form one FIFO stream per receiver and are handled by one worker:
# every peer must end on the last value, and stay there (2 workers each).
# Exit 0 pass, 1 fail, 77 skipped.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
kt_setup overwrite
N=${N:-2000}
ROUNDS=${ROUNDS:-3}
# several workers per instance: a sender's messages must still stay on one
KT_WORKERS=${KT_WORKERS:-2}

kt_start k1 127.0.0.21 dmqlib ""
kt_start k2 127.0.0.22 dmqlib 127.0.0.21
kt_start k3 127.0.0.23 dmqlib 127.0.0.21
for k in k1 k2 k3; do kt_wait_up "$k"; done
for k in k1 k2 k3; do
  kt_wait 10000 "$k sees 3 alive" kt_alive_count_is "$k" 3 || kt_die "no full view on $k"
done

for r in $(seq 1 "$ROUNDS"); do
  # alternate the writer: each instance's stream must stay in order
  w=k$(( (r - 1) % 3 + 1 ))
  kt_rpc "$w" htable.seti t ow 0 >/dev/null
  for k in k1 k2 k3; do kt_wait 3000 "$k ow=0" kt_ht_is "$k" ow 0 || kt_die "reset not replicated"; done
  t0=$(kt_now_ms)
  kt_overwrite "$w" "$N" || kt_fail "overwrite loop on $w"
  for k in k1 k2 k3; do
    kt_wait 10000 "$k reads ow=$N" kt_ht_is "$k" ow "$N" ||
      kt_fail "round $r (writer $w): $k ends on ow=$(kt_ht_get "$k" ow), expected $N"
  done
  kt_holds 500 "ow stays $N" bash -c "$(declare -f kt_rpc kt_ht_get kt_ht_is); KT_DIR=$KT_DIR KAMCMD=$KAMCMD; kt_ht_is k1 ow $N && kt_ht_is k2 ow $N && kt_ht_is k3 ow $N" ||
    kt_fail "round $r: a peer moved off ow=$N (late stale update)"
  kt_log "round $r (writer $w): $N overwrites, every peer on $N after $(( $(kt_now_ms) - t0 )) ms"
done

if [[ $KT_FAILED -ne 0 ]]; then exit 1; fi
kt_log "PASS"
