#!/usr/bin/env bash
# Inbound backpressure: the receivers' worker queues are tiny (16 items), a
# burst of 5000 htable keys arrives: the io process pauses the libdmq
# channels (senders hold their messages) instead of dropping what libdmq
# already delivered. Every key arrives, nothing is dropped, pauses counted;
# every item block goes back to the item pool.
# Exit 0 pass, 1 fail, 77 skipped.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
kt_setup backpressure
N=${N:-5000}
KT_SHM=128


kt_start k1 127.0.0.36 dmqlib ""
KT_EXTRA_MODULES=('modparam("dmqlib", "in_queue_max", 16)' 'modparam("dmqlib", "in_queue_bytes", 65536)')
kt_start k2 127.0.0.37 dmqlib 127.0.0.36
for k in k1 k2; do kt_wait_up "$k"; done
for k in k1 k2; do kt_wait 10000 "$k sees 2 alive" kt_alive_count_is "$k" 2 || kt_die "no view on $k"; done

kt_fill k1 "$N" bp || kt_fail "fill on k1"
kt_wait 30000 "k2 has $N items" kt_ht_items_is k2 "$N" || kt_fail "k2 has $(kt_ht_items k2) of $N items"
p=$(kt_stat k2 channel_pauses)
d=$(kt_stat k2 in_dropped_queue_full)
kt_log "k2: $(kt_ht_items k2) items, channel_pauses=$p, in_dropped_queue_full=$d"
[[ ${p:-0} -gt 0 ]] || kt_fail "no pause: the test did not create pressure"
[[ ${d:-1} -eq 0 ]] || kt_fail "$d inbound items dropped"
[[ $(kt_stat k1 outcome_200) -ge $N ]] || kt_fail "k1: outcome_200=$(kt_stat k1 outcome_200), expected >= $N"

# the item pool (modparam item_pool): every item of this burst fits a pool
# class, and once the queues are empty every block is back on a free list
# on both sides (a block lost between processes would stay "in use")
pool_idle() { [[ $(kt_stat "$1" item_pool_bytes) -gt 0 && $(kt_stat "$1" item_pool_bytes) == "$(kt_stat "$1" item_pool_free_bytes)" ]]; }
for k in k1 k2; do
  kt_wait 10000 "$k item pool idle" pool_idle "$k" ||
    kt_fail "$k: item_pool_bytes=$(kt_stat $k item_pool_bytes) item_pool_free_bytes=$(kt_stat $k item_pool_free_bytes)"
  o=$(kt_stat "$k" items_outside_pool)
  [[ ${o:-1} -eq 0 ]] || kt_fail "$k: $o items outside the pool"
done
kt_log "item pool: k1 $(kt_stat k1 item_pool_bytes) B, k2 $(kt_stat k2 item_pool_bytes) B, all free again"

if [[ $KT_FAILED -ne 0 ]]; then exit 1; fi
kt_log "PASS"
