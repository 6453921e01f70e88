/* libdmq - queued delivery, best-effort receive: numbering gaps, telling a
 * late arrival from a copy, counting losses. */
#include "delivery/delivery_int.h"

/* Forget the oldest best-effort gap: its numbers stay counted as lost. */
static void dlv_be_forget(dlv_peer_t *p) {
  p->be_floor = p->be_holes[0].hi + 1;
  p->be_nholes--;
  memmove(&p->be_holes[0], &p->be_holes[1],
          p->be_nholes * sizeof(p->be_holes[0]));
}

/* Best-effort number seq arrived from p, not seq == be_top + 1 (see
 * dmq__dlv_be_arrived): 0 = deliver it, 1 = drop it (a copy, or older than what
 * the gaps remember). A jump opens a gap counted in rx_lost_be; an arrival
 * inside a remembered gap is delivered and un-counted. */
static int dlv_be_slow(dlv_t *d, dlv_peer_t *p, uint64_t seq) {
  if (seq > p->be_top) {
    d->st.rx_lost_be += seq - p->be_top - 1;
    if (p->be_nholes == DLV_BE_HOLES)
      dlv_be_forget(p);
    p->be_holes[p->be_nholes].lo = p->be_top + 1;
    p->be_holes[p->be_nholes].hi = seq - 1;
    p->be_nholes++;
    p->be_top = seq;
    return 0;
  }
  if (seq >= p->be_floor) {
    for (uint32_t i = p->be_nholes; i-- > 0;) {
      dlv_hole_t *h = &p->be_holes[i];
      if (seq > h->hi)
        break; /* above this gap and every older one: a copy */
      if (seq < h->lo)
        continue;
      d->st.rx_lost_be--;
      if (h->lo == h->hi) {
        p->be_nholes--;
        memmove(h, h + 1, (p->be_nholes - i) * sizeof(*h));
      } else if (seq == h->lo) {
        h->lo++;
      } else if (seq == h->hi) {
        h->hi--;
      } else { /* split: lo..seq-1 stays at i, seq+1..hi goes after it */
        uint64_t hi = h->hi;
        h->hi = seq - 1;
        uint32_t at = i + 1;
        if (p->be_nholes == DLV_BE_HOLES) {
          dlv_be_forget(p);
          at--;
        }
        memmove(&p->be_holes[at + 1], &p->be_holes[at],
                (p->be_nholes - at) * sizeof(*h));
        p->be_holes[at].lo = seq + 1;
        p->be_holes[at].hi = hi;
        p->be_nholes++;
      }
      return 0;
    }
  }
  d->st.duplicates++;
  return 1;
}

/* Best-effort DATA numbered seq (not 0) from p of life src_gen arrived:
 * 0 = deliver it, 1 = drop it (counted). The common case, the next number,
 * costs two comparisons. */
int dmq__dlv_be_arrived(dmq_node_t *n, dlv_peer_t *p, uint64_t src_gen,
                        uint64_t seq) {
  if (src_gen != p->rx_gen) {
    if (src_gen < p->rx_gen) {
      n->dlv->st.stale_gen++;
      return 1;
    }
    dmq__dlv_rx_start(n, p, src_gen);
  }
  if (seq == p->be_top + 1) {
    p->be_top = seq;
    return 0;
  }
  return dlv_be_slow(n->dlv, p, seq);
}
