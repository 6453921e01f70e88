/* libdmq - queued delivery, per-peer state: creating and freeing a peer,
 * remembered numbering of forgotten peers (tombs), the work lists (peers to
 * flush, to deliver to, to tell writable). */
#include "delivery/delivery_int.h"

/* What the tombs remember about member (name_h, gen): the highest of each
 * field over the matching entries (0 where none). */
dlv_tomb_t dmq__dlv_tomb_find(const dlv_t *d, uint64_t name_h, uint64_t gen) {
  dlv_tomb_t r = {name_h, gen, 0, 0, 0};
  for (uint32_t i = 0; d->tombs != NULL && i < DLV_TOMBS; i++) {
    const dlv_tomb_t *t = &d->tombs[i];
    if (t->name_h != name_h || t->gen != gen)
      continue;
    r.next_seq = t->next_seq > r.next_seq ? t->next_seq : r.next_seq;
    r.tx_be = t->tx_be > r.tx_be ? t->tx_be : r.tx_be;
    r.rx_be = t->rx_be > r.rx_be ? t->rx_be : r.rx_be;
  }
  return r;
}

/* A fresh tomb slot (the oldest one is reused), NULL without memory. */
static dlv_tomb_t *dlv_tomb_new(dmq_node_t *n, dlv_t *d, uint64_t name_h,
                                uint64_t gen) {
  if (d->tombs == NULL) {
    d->tombs = dmq__malloc(n, DLV_TOMBS * sizeof(*d->tombs));
    if (d->tombs == NULL)
      return NULL; /* best effort: only sequence reuse protection is lost */
    memset(d->tombs, 0, DLV_TOMBS * sizeof(*d->tombs));
  }
  dlv_tomb_t *t = &d->tombs[d->tomb_next++ % DLV_TOMBS];
  memset(t, 0, sizeof(*t));
  t->name_h = name_h;
  t->gen = gen;
  return t;
}

/* A peer forgotten while its generation may still hold stream state:
 * remember where our sequence numbers were, so that a later re-contact
 * continues above them instead of reusing numbers the receiver already
 * consumed (reliable: mistaken for duplicates and falsely acked; best
 * effort: dropped as copies), and where its best-effort numbers to us
 * were, so that the numbers we saw are not counted as lost again. Called
 * before the receive state is reset. */
static void dlv_tomb_add(dmq_node_t *n, dlv_t *d, const dlv_peer_t *p) {
  uint64_t h = dmq__hash(p->m->name, p->m->name_len);
  int same = p->rx_gen == p->tx_gen;
  dlv_tomb_t *t;
  if ((p->next_seq > 1 || p->tx_be > 1 || (same && p->be_top > 0)) &&
      (t = dlv_tomb_new(n, d, h, p->tx_gen)) != NULL) {
    t->next_seq = p->next_seq;
    t->tx_be = p->tx_be;
    t->rx_be = same ? p->be_top : 0;
  }
  if (!same && p->be_top > 0 && (t = dlv_tomb_new(n, d, h, p->rx_gen)) != NULL)
    t->rx_be = p->be_top;
}

/* Best-effort DATA from a sender that is not a member (yet): it is dropped
 * (unknown_sender), and the highest such number is remembered, so that its
 * stream, once the sender is known, does not count them as lost too. */
void dmq__dlv_tomb_unknown(dmq_node_t *n, dlv_t *d, dmq__slice_t name,
                           uint64_t gen, uint64_t seq) {
  uint64_t h = dmq__hash(name.p, name.n);
  dlv_tomb_t *t = NULL;
  for (uint32_t i = 0; d->tombs != NULL && i < DLV_TOMBS && t == NULL; i++)
    if (d->tombs[i].name_h == h && d->tombs[i].gen == gen)
      t = &d->tombs[i];
  if (t == NULL && (t = dlv_tomb_new(n, d, h, gen)) == NULL)
    return;
  if (seq > t->rx_be)
    t->rx_be = seq;
}

uint32_t dmq__dlv_rto_base(const dmq_node_t *n, const dlv_peer_t *p) {
  const dmq_delivery_config_t *c = &n->dlv->cfg;
  uint64_t r = c->rto_min_ms;
  if (p->rtt_valid) {
    uint64_t var = p->rttvar4 > 0 ? p->rttvar4 : 1;
    r = p->srtt8 / 8 + var;
  }
  if (r < c->rto_min_ms)
    r = c->rto_min_ms;
  if (r > c->rto_max_ms)
    r = c->rto_max_ms;
  return (uint32_t)r;
}

void dmq__dlv_tx_reset(dmq_node_t *n, dlv_peer_t *p) {
  p->tx_gen = p->m->gen;
  p->next_seq = 1;
  p->peer_cum = 0;
  p->peer_rwnd = n->dlv->cfg.window;
  p->rtt_valid = 0;
  p->srtt8 = p->rttvar4 = 0;
  p->rto = dmq__dlv_rto_base(n, p);
  p->tx_be = 1;
}

dlv_peer_t *dmq__dlv_peer_get(dmq_node_t *n, dmq__member_t *m) {
  dlv_t *d = n->dlv;
  if (dmq__member_peer(m) != NULL)
    return dmq__member_peer(m);
  if (dmq__member_more(n, m) == NULL)
    return NULL;
  if (dlv_heap_reserve(n, 3) != 0) { /* its RTO, DACK and TTL timers */
    dmq__member_more_trim(n, m);
    return NULL;
  }
  dlv_peer_t *p = dmq__malloc(n, sizeof(*p));
  if (p == NULL) {
    dlv_heap_release(d, 3);
    dmq__member_more_trim(n, m);
    return NULL;
  }
  memset(p, 0, sizeof(*p));
  p->m = m;
  p->rto_t.idx = DLV_NO_IDX;
  p->rto_t.kind = DLV_T_RTO;
  p->ack_t.idx = DLV_NO_IDX;
  p->ack_t.kind = DLV_T_ACK;
  p->tq_t.idx = DLV_NO_IDX;
  p->tq_t.kind = DLV_T_TQ;
  dmq__dlv_tx_reset(n, p);
  if (d->tombs != NULL) {
    dlv_tomb_t t =
        dmq__dlv_tomb_find(d, dmq__hash(m->name, m->name_len), p->tx_gen);
    if (t.next_seq > p->next_seq)
      p->next_seq = t.next_seq;
    if (t.tx_be > p->tx_be)
      p->tx_be = t.tx_be;
  }
  p->all_next = d->peers;
  if (d->peers != NULL)
    d->peers->all_prev = p;
  d->peers = p;
  m->more->peer = p;
  return p;
}

void dmq__dlv_want_flush(dlv_t *d, dlv_peer_t *p) {
  DLV_LIST_PUSH(d, p, flush_head, flush_tail, flush_next, in_flush);
}

/* A DACK is owed to p: now (flushed at the next tick), or delayed (see
 * DLV_ACK_EVERY). count: one more reliable DATA arrived. */
void dmq__dlv_ack(dlv_t *d, dlv_peer_t *p, int now, int count) {
  p->ack_pending = 1;
  p->unacked += (uint32_t)count;
  uint32_t every = d->cfg.window / 4;
  if (every > DLV_ACK_EVERY)
    every = DLV_ACK_EVERY;
  if (now || p->unacked >= every) {
    dmq__dlv_want_flush(d, p);
  } else if (p->ack_t.idx == DLV_NO_IDX) {
    dlv_timer_set(d, &p->ack_t, d->node->now + DLV_ACK_DELAY_MS);
  }
}

void dmq__dlv_want_ready(dlv_t *d, dlv_peer_t *p) {
  DLV_LIST_PUSH(d, p, ready_head, ready_tail, ready_next, in_ready);
}

void dmq__dlv_want_wr(dlv_t *d, dlv_peer_t *p) {
  DLV_LIST_PUSH(d, p, wr_head, wr_tail, wr_next, in_wr);
}

void dmq__dlv_peer_free(dmq_node_t *n, dlv_peer_t *p) {
  dlv_t *d = n->dlv;
  dmq__dlv_fail_peer(n, p, DMQ_OUTCOME_DEAD);
  dlv_tomb_add(n, d, p);
  dmq__dlv_rx_reset(n, p);
  DLV_LIST_UNLINK(d, p, flush_head, flush_tail, flush_next, in_flush);
  DLV_LIST_UNLINK(d, p, ready_head, ready_tail, ready_next, in_ready);
  DLV_LIST_UNLINK(d, p, wr_head, wr_tail, wr_next, in_wr);
  for (uint32_t i = 0; i < d->bor_n; i++)
    if (d->bor[i].p == p)
      d->bor[i].seq = 0; /* dmq__dlv_ring_at(seq 0) finds nothing */
  dlv_peer_t *no_tail;
  DMQ__DL_UNLINK(p, all_prev, all_next, &d->peers, &no_tail);
  dlv_heap_release(d, 3);
  d->rx_bytes -= (size_t)p->ring_cap * sizeof(*p->ring);
  dmq__free(n, p->ring);
  p->m->more->peer = NULL;
  dmq__member_more_trim(n, p->m);
  dmq__free(n, p);
}
