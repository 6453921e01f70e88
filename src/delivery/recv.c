/* libdmq - queued delivery, receiving reliable and best-effort DATA: the
 * reorder ring, reassembly of fragments, rejections, in-order delivery. */
#include "delivery/delivery_int.h"

/* The reorder ring is an open-addressing table keyed by sequence number
 * (home slot seq & (cap - 1), linear probing, at most half full), sized for
 * the entries it holds, not for the window: a sender that jumps to the far
 * end of the window costs one entry, not a window's worth of slots. While
 * the held numbers span less than the capacity (the common case) every
 * entry sits in its home slot, as in a plain ring. */
static uint32_t dlv_ring_home(const dlv_peer_t *p, uint64_t seq) {
  return (uint32_t)(seq & (p->ring_cap - 1));
}

dlv_rent_t *dmq__dlv_ring_at(const dlv_peer_t *p, uint64_t seq) {
  if (p->ring_cap == 0 || seq == 0)
    return NULL;
  for (uint32_t i = dlv_ring_home(p, seq);; i = (i + 1) & (p->ring_cap - 1)) {
    dlv_rent_t *e = &p->ring[i];
    if (e->seq == seq)
      return e;
    if (e->seq == 0)
      return NULL; /* the table is never full */
  }
}

/* Ring memory, counted in the node-wide receive budget. */
static size_t dlv_ring_bytes(uint32_t cap) {
  return (size_t)cap * sizeof(dlv_rent_t);
}

/* Empty slot e (its entry already released): later entries of its probe
 * run move back so that lookups still find them (backward shift). */
static void dlv_ring_unlink(dlv_peer_t *p, dlv_rent_t *e) {
  uint32_t mask = p->ring_cap - 1;
  uint32_t i = (uint32_t)(e - p->ring);
  memset(e, 0, sizeof(*e));
  for (uint32_t j = (i + 1) & mask; p->ring[j].seq != 0; j = (j + 1) & mask) {
    uint32_t k = dlv_ring_home(p, p->ring[j].seq);
    /* the entry at j may move to i if its home is not in (i, j] */
    int stays = i <= j ? (k > i && k <= j) : (k > i || k <= j);
    if (stays)
      continue;
    p->ring[i] = p->ring[j];
    memset(&p->ring[j], 0, sizeof(p->ring[j]));
    i = j;
  }
}

static void dlv_rent_clear(dmq_node_t *n, dlv_peer_t *p, dlv_rent_t *e) {
  if (e->own != NULL) {
    size_t sz = (size_t)e->chan_len + e->len;
    p->buf_bytes -= sz;
    n->dlv->rx_bytes -= sz;
    dmq__dlv_buf_put(n, e->own, sz);
  }
  dlv_ring_unlink(p, e);
  p->nbuf--;
  n->dlv->rx_nbuf--;
}

/* Move the ring to capacity nc (a power of two above 2 * nbuf); 0 frees
 * it (nothing held). */
static int dlv_ring_resize(dmq_node_t *n, dlv_peer_t *p, uint32_t nc) {
  dlv_t *d = n->dlv;
  dlv_rent_t *nr = NULL;
  if (nc > 0) {
    nr = dmq__malloc(n, dlv_ring_bytes(nc));
    if (nr == NULL)
      return DMQ_ENOMEM;
    memset(nr, 0, dlv_ring_bytes(nc));
    for (uint32_t i = 0; i < p->ring_cap; i++) {
      uint64_t s = p->ring[i].seq;
      if (s == 0)
        continue;
      uint32_t j = (uint32_t)(s & (nc - 1));
      while (nr[j].seq != 0)
        j = (j + 1) & (nc - 1);
      nr[j] = p->ring[i];
    }
  }
  d->rx_bytes -= dlv_ring_bytes(p->ring_cap);
  d->rx_bytes += dlv_ring_bytes(nc);
  dmq__free(n, p->ring);
  p->ring = nr;
  p->ring_cap = nc;
  return 0;
}

/* Give back ring memory that outgrew what is held (after a burst of
 * reordering, or entries freed by their TTL). */
static void dlv_ring_trim(dmq_node_t *n, dlv_peer_t *p) {
  if (p->ring_cap <= DLV_RING_MIN)
    return;
  if (p->nbuf == 0) {
    dlv_ring_resize(n, p, 0);
    return;
  }
  uint32_t nc = p->ring_cap;
  while (nc > DLV_RING_MIN && (uint64_t)p->nbuf * 8 < nc)
    nc /= 2;
  if (nc != p->ring_cap)
    dlv_ring_resize(n, p, nc); /* out of memory: keep the larger one */
}

static void dlv_ra_reset(dmq_node_t *n, dlv_peer_t *p) {
  n->dlv->rx_bytes -= p->ra_cap;
  dmq__free(n, p->ra);
  p->ra = NULL;
  p->ra_len = p->ra_cap = 0;
  p->ra_active = p->ra_drop = 0;
}

void dmq__dlv_rx_reset(dmq_node_t *n, dlv_peer_t *p) {
  dlv_t *d = n->dlv;
  for (uint32_t i = 0; p->nbuf > 0 && i < p->ring_cap; i++) {
    dlv_rent_t *e = &p->ring[i];
    if (e->seq == 0)
      continue;
    if (e->own != NULL) {
      size_t sz = (size_t)e->chan_len + e->len;
      p->buf_bytes -= sz;
      d->rx_bytes -= sz;
      dmq__dlv_buf_put(n, e->own, sz);
    }
    memset(e, 0, sizeof(*e)); /* all go: no probe run to repair */
    p->nbuf--;
    d->rx_nbuf--;
  }
  dlv_ra_reset(n, p);
  p->rx_gen = 0;
  p->next_exp = 0;
  p->nrej = 0;
  p->ack_pending = 0;
  p->unacked = 0;
  dlv_timer_del(n->dlv, &p->ack_t);
  p->be_top = p->be_floor = 0;
  p->be_nholes = 0;
}

/* DATA from a new life `gen` of the sender: a new receive state. Best
 * effort continues above what the tombs say we saw of that life. */
void dmq__dlv_rx_start(dmq_node_t *n, dlv_peer_t *p, uint64_t gen) {
  dlv_t *d = n->dlv;
  dmq__dlv_rx_reset(n, p);
  p->rx_gen = gen;
  if (d->tombs != NULL) {
    dlv_tomb_t t =
        dmq__dlv_tomb_find(d, dmq__hash(p->m->name, p->m->name_len), gen);
    p->be_top = t.rx_be;
    p->be_floor = t.rx_be + 1;
  }
}

/* Room in the ring for one more entry (seq < next_exp + window, checked by
 * the caller), within the node-wide receive budget. */
static int dlv_ring_fit(dmq_node_t *n, dlv_peer_t *p) {
  dlv_t *d = n->dlv;
  if ((uint64_t)(p->nbuf + 1) * 2 <= p->ring_cap)
    return 0;
  uint32_t nc = p->ring_cap ? p->ring_cap * 2 : DLV_RING_MIN;
  if (d->rx_bytes - dlv_ring_bytes(p->ring_cap) + dlv_ring_bytes(nc) >
      d->cfg.max_rx_bytes) {
    d->node->stats.drops[DMQ_DROP_BUDGET]++;
    return DMQ_ELIMIT;
  }
  return dlv_ring_resize(n, p, nc);
}

/* Copy a borrowed entry into owned memory, or drop it over the budget. */
static void dlv_rent_own(dmq_node_t *n, dlv_peer_t *p, dlv_rent_t *e) {
  dlv_t *d = n->dlv;
  size_t sz = (size_t)e->chan_len + e->len;
  uint8_t *b = NULL;
  if (p->buf_bytes + p->ra_cap + sz > d->cfg.reassembly_bytes) {
    /* the per-sender budget (a DACK closes its window) */
  } else if (d->rx_bytes + sz > d->cfg.max_rx_bytes) {
    n->stats.drops[DMQ_DROP_BUDGET]++; /* the node-wide one */
  } else {
    b = dmq__dlv_buf_alloc(n, sz);
  }
  if (b == NULL) {
    d->st.rx_overflow++;
    e->own = NULL; /* never owned: nothing to free */
    dlv_rent_clear(n, p, e);
    return;
  }
  memcpy(b, e->chan, e->chan_len);
  if (e->len > 0)
    memcpy(b + e->chan_len, e->data, e->len);
  e->own = b;
  e->chan = (const char *)b;
  e->data = b + e->chan_len;
  p->buf_bytes += sz;
  d->rx_bytes += sz;
}

/* The sender's base passed next_exp: everything below base was abandoned
 * there (expired or cancelled) - drop it, never deliver it. */
static void dlv_rx_skip(dmq_node_t *n, dlv_peer_t *p, uint64_t base) {
  for (uint32_t i = 0; p->nbuf > 0 && i < p->ring_cap;) {
    if (p->ring[i].seq != 0 && p->ring[i].seq < base)
      dlv_rent_clear(n, p, &p->ring[i]); /* slot i may hold another now */
    else
      i++;
  }
  /* a partly reassembled message below base was abandoned as a whole */
  if (p->ra_active)
    dlv_ra_reset(n, p);
  p->next_exp = base;
  dmq__dlv_want_ready(n->dlv, p);
}

/* Rejection reports the sender has seen (its base is above them) go. */
static void dlv_rej_trim(dlv_peer_t *p, uint64_t base) {
  uint32_t k = 0;
  while (k < p->nrej && p->rej_seq[k] < base)
    k++;
  if (k == 0)
    return;
  memmove(p->rej_seq, p->rej_seq + k, (p->nrej - k) * sizeof(uint64_t));
  memmove(p->rej_reason, p->rej_reason + k, p->nrej - k);
  p->nrej -= k;
}

static dmq__member_t *dlv_sender(dmq_node_t *n, dmq__slice_t s) {
  dlv_t *d = n->dlv;
  if (d->cache_m != NULL && s.p == d->cache_p && s.n == d->cache_n)
    return d->cache_m;
  dmq__member_t *m = dmq__member_find(n, s.p, s.n);
  if (m != NULL && !m->is_self) {
    d->cache_p = s.p;
    d->cache_n = s.n;
    d->cache_m = m;
    return m;
  }
  return NULL;
}

/* A best-effort DATA from member m (be_seq: its number, 0 if the sender
 * does not number): kept for delivery at the end of the receive call. */
static void dlv_on_be_data(dmq_node_t *n, dmq__member_t *m,
                           const dmq__data_t *dd, uint64_t be_seq) {
  dlv_t *d = n->dlv;
  if (dd->flags & DMQ__DATA_MORE) {
    n->stats.drops[DMQ_DROP_MALFORMED]++;
    return;
  }
  if (be_seq != 0) { /* 0: an older sender, not numbered */
    dlv_peer_t *p = dmq__dlv_peer_get(n, m); /* the one there is, or new */
    if (p == NULL) {
      d->st.rx_overflow++;
      return;
    }
    if (dmq__dlv_be_arrived(n, p, dd->src_gen, be_seq) != 0)
      return;
  }
  if (dd->ttl_ms == 0) {
    d->st.rx_expired++;
    return;
  }
  if (d->be_n == d->be_cap) {
    uint32_t nc = d->be_cap ? d->be_cap * 2 : DLV_INIT_CAP;
    dlv_be_t *nb = dmq__realloc(n, d->be, nc * sizeof(*nb));
    if (nb == NULL) {
      d->st.rx_overflow++;
      return;
    }
    d->be = nb;
    d->be_cap = nc;
  }
  dlv_be_t *b = &d->be[d->be_n++];
  b->m = m;
  b->chan = dd->channel;
  b->data = dd->payload;
}

/* Reliable DATA dd (sequence dd->seq) into p's reorder ring, borrowed from
 * the packet until dmq__delivery_recv_done(). */
static void dlv_ring_put(dmq_node_t *n, dlv_peer_t *p, const dmq__data_t *dd) {
  dlv_t *d = n->dlv;
  uint64_t seq = dd->seq;
  uint32_t i = dlv_ring_home(p, seq);
  while (p->ring[i].seq != 0)
    i = (i + 1) & (p->ring_cap - 1);
  dlv_rent_t *e = &p->ring[i];
  e->seq = seq;
  e->deadline = n->now + dd->ttl_ms;
  e->req_id = dd->req_id;
  e->chan = dd->channel.p;
  e->chan_len = (uint8_t)dd->channel.n;
  e->data = (const uint8_t *)dd->payload.p;
  e->len = (uint32_t)dd->payload.n;
  e->flags = dd->flags;
  e->own = NULL;
  p->nbuf++;
  d->rx_nbuf++;
  if (d->bor_n == d->bor_cap) {
    uint32_t nc = d->bor_cap ? d->bor_cap * 2 : DLV_INIT_CAP;
    dlv_borrow_t *nb = dmq__realloc(n, d->bor, nc * sizeof(*nb));
    if (nb != NULL) {
      d->bor = nb;
      d->bor_cap = nc;
    }
  }
  if (d->bor_n < d->bor_cap) {
    d->bor[d->bor_n].p = p;
    d->bor[d->bor_n].seq = seq;
    d->bor_n++;
  } else {
    dlv_rent_own(n, p, e); /* cannot track it: copy now */
  }
}

/* A reliable DATA from member m. */
static void dlv_on_reliable_data(dmq_node_t *n, dmq__member_t *m,
                                 const dmq__data_t *dd) {
  dlv_t *d = n->dlv;
  if (dd->seq == 0 || dd->base == 0 || dd->base > dd->seq ||
      (dd->flags & (DMQ__DATA_REQUEST | DMQ__DATA_REPLY)) ==
          (DMQ__DATA_REQUEST | DMQ__DATA_REPLY) ||
      dd->payload.n > UINT32_MAX) {
    n->stats.drops[DMQ_DROP_MALFORMED]++;
    return;
  }
  dlv_peer_t *p = dmq__dlv_peer_get(n, m);
  if (p == NULL) {
    d->st.rx_overflow++;
    return;
  }
  if (dd->src_gen < p->rx_gen) {
    d->st.stale_gen++;
    return;
  }
  if (dd->src_gen > p->rx_gen)
    dmq__dlv_rx_start(n, p, dd->src_gen);
  if (dd->ttl_ms == 0) {
    d->st.rx_expired++;
    return;
  }
  /* A base further ahead than a sender announces (DLV_SKIP_MAX) is
   * implausible: taking it would make the real sender's next messages look
   * like copies. The first DATA of a stream is measured from 1. */
  uint64_t from = p->next_exp != 0 ? p->next_exp : 1;
  if (dd->base > from && dd->base - from > DLV_SKIP_MAX) {
    n->stats.drops[DMQ_DROP_IMPLAUSIBLE]++;
    dmq__dlv_ack(d, p, 1, 0); /* tell a real sender where we are (cum 0:
                                 nothing; it ramps its base up from 1) */
    return;
  }
  if (dd->flags & DMQ__DATA_MORE)
    d->st.fragments_received++;
  if (p->next_exp == 0)
    p->next_exp = dd->base;
  dlv_rej_trim(p, dd->base);
  int skipped = dd->base > p->next_exp;
  if (skipped)
    dlv_rx_skip(n, p, dd->base);
  uint64_t seq = dd->seq;
  /* Only the plain case waits: the ring holds next_exp.. without a hole
   * (messages of this packet, delivered after it) and this one extends it.
   * A copy, a gap, a skip or a hole being filled is acknowledged now. */
  p->rx_last_at = n->now;
  int in_order = seq == p->next_exp + p->nbuf &&
                 (p->nbuf == 0 || dmq__dlv_ring_at(p, p->next_exp) != NULL);
  dmq__dlv_ack(d, p, skipped || !in_order, 1);
  if (seq < p->next_exp || dmq__dlv_ring_at(p, seq) != NULL) {
    d->st.duplicates++;
    return;
  }
  if (seq - p->next_exp >= d->cfg.window || dlv_ring_fit(n, p) != 0) {
    d->st.rx_overflow++;
    return;
  }
  dlv_ring_put(n, p, dd);
  if (seq == p->next_exp)
    dmq__dlv_want_ready(d, p);
}

void dmq__delivery_on_data(dmq_node_t *n, const dmq__data_t *dd,
                           dmq__slice_t sender) {
  dlv_t *d = n->dlv;
  d->st.received++;
  /* Best effort: seq 0 after a numbered best-effort DATA of the same packet
   * is that number + 1 (a sender writes the whole number only in the
   * first one of a datagram); 0 otherwise: a sender that does not number.
   * Worked out before anything may drop this message. */
  uint64_t be_seq = 0;
  if (!(dd->flags & DMQ__DATA_RELIABLE)) {
    be_seq = dd->seq != 0 ? dd->seq : d->rx_pkt_be != 0 ? d->rx_pkt_be + 1 : 0;
    d->rx_pkt_be = be_seq;
  }
  if (d->closing)
    return;
  if (dd->dst_gen != n->self->gen) {
    d->st.stale_gen++;
    return;
  }
  dmq__member_t *m = dlv_sender(n, sender);
  if (m == NULL) {
    /* not a member (yet): a reliable sender retransmits once we know it */
    d->st.unknown_sender++;
    n->stats.drops[DMQ_DROP_UNKNOWN_SENDER]++;
    if (be_seq != 0)
      dmq__dlv_tomb_unknown(n, d, sender, dd->src_gen, be_seq);
    return;
  }
  if (dd->src_gen != m->gen) {
    /* Another life of the sender than membership knows: an old one's late
     * packet, or a generation no member announced (yet: a restarted
     * member's DATA may overtake its ALIVE, and is retransmitted). Never a
     * reset of the stream. */
    d->st.stale_gen++;
    if (dd->src_gen > m->gen)
      n->stats.drops[DMQ_DROP_IMPLAUSIBLE]++;
    return;
  }
  if (!(dd->flags & DMQ__DATA_RELIABLE))
    dlv_on_be_data(n, m, dd, be_seq);
  else
    dlv_on_reliable_data(n, m, dd);
}

void dmq__delivery_recv_done(dmq_node_t *n) {
  dlv_t *d = n->dlv;
  for (uint32_t i = 0; i < d->bor_n; i++) {
    dlv_peer_t *p = d->bor[i].p;
    dlv_rent_t *e = dmq__dlv_ring_at(p, d->bor[i].seq);
    if (e != NULL && e->own == NULL)
      dlv_rent_own(n, p, e);
  }
  d->bor_n = 0;
  d->be_n = 0;
  d->cache_m = NULL;
  d->cache_p = NULL;
  d->rx_pkt_be = 0;
}

/* Record a rejection to report in our DACKs (caller checked for room). */
static void dlv_rej_add(dlv_peer_t *p, uint64_t seq, uint8_t reason) {
  p->rej_seq[p->nrej] = seq;
  p->rej_reason[p->nrej] = reason;
  p->nrej++;
}

/* Append one fragment to the reassembly buffer; a reason when it cannot. */
static uint8_t dlv_ra_append(dmq_node_t *n, dlv_peer_t *p, const uint8_t *b,
                             size_t len) {
  dlv_t *d = n->dlv;
  size_t want = p->ra_len + len;
  if (want > d->cfg.max_message || want > d->cfg.reassembly_bytes)
    return DMQ__REJ_TOO_BIG;
  if (want > p->ra_cap) {
    size_t nc = p->ra_cap ? p->ra_cap : DLV_SMALL;
    while (nc < want)
      nc *= 2;
    if (nc > d->cfg.max_message)
      nc = want > d->cfg.max_message ? want : d->cfg.max_message;
    if (d->rx_bytes - p->ra_cap + nc > d->cfg.max_rx_bytes) {
      n->stats.drops[DMQ_DROP_BUDGET]++;
      return DMQ__REJ_TOO_BIG;
    }
    uint8_t *r = dmq__realloc(n, p->ra, nc);
    if (r == NULL)
      return DMQ__REJ_TOO_BIG;
    d->rx_bytes = d->rx_bytes - p->ra_cap + nc;
    p->ra = r;
    p->ra_cap = nc;
  }
  if (len > 0)
    memcpy(p->ra + p->ra_len, b, len);
  p->ra_len = want;
  return 0;
}

/* The fate of in-order entry e: 0 to deliver, or a drop/rejection reason
 * in *reason (the channel in *ch). Returns 0 when e must be held: its
 * channel is paused, or a rejection cannot be reported yet. */
static inline int dlv_rx_judge(dmq_node_t *n, dlv_peer_t *p,
                               const dlv_rent_t *e, int last, uint8_t *reason,
                               dmq_channel_t **ch) {
  dlv_t *d = n->dlv;
  uint8_t r = p->ra_drop;
  if (r == 0 && n->now >= e->deadline)
    r = DLV_DROP_EXPIRED;
  if (r == 0 && !(e->flags & DMQ__DATA_REPLY)) {
    *ch = dmq__dlv_chan_find(d, e->chan, e->chan_len,
                             dmq__hash(e->chan, e->chan_len));
    if (*ch == NULL)
      r = DMQ__REJ_NO_CHANNEL;
    else if ((*ch)->paused)
      return 0; /* held, unacknowledged: the window closes */
  }
  if (last && (r == DMQ__REJ_NO_CHANNEL || r == DMQ__REJ_TOO_BIG) &&
      p->nrej == DMQ__WIRE_MAX_REJ)
    return 0; /* wait until the sender has seen older rejections */
  *reason = r;
  return 1;
}

/* Reassembly of a fragmented message: append e (unless it is already
 * dropped), and consume it if it is not the last fragment. Returns 1
 * when e was consumed. */
static inline int dlv_rx_fragment(dmq_node_t *n, dlv_peer_t *p, dlv_rent_t *e,
                                  int last, uint8_t *reason) {
  if (last && !p->ra_active)
    return 0;
  if (*reason == 0)
    *reason = dlv_ra_append(n, p, e->data, e->len);
  if (*reason != 0 && p->ra != NULL) {
    n->dlv->rx_bytes -= p->ra_cap;
    dmq__free(n, p->ra);
    p->ra = NULL;
    p->ra_len = p->ra_cap = 0;
  }
  if (last)
    return 0;
  p->ra_active = 1;
  p->ra_drop = *reason;
  dlv_rent_clear(n, p, e);
  p->next_exp++;
  dmq__dlv_ack(n->dlv, p, 0, 0);
  return 1;
}

/* Hand a whole message (data, len) from entry x to where it goes: a
 * rejection for our DACKs, a drop counter, a reply waiter, or the
 * channel's callback. */
static inline void dlv_rx_dispatch(dmq_node_t *n, dlv_peer_t *p,
                                   const dlv_rent_t *x, uint8_t reason,
                                   dmq_channel_t *ch, const uint8_t *data,
                                   size_t len) {
  dlv_t *d = n->dlv;
  if (reason == DMQ__REJ_NO_CHANNEL || reason == DMQ__REJ_TOO_BIG) {
    dlv_rej_add(p, x->seq, reason);
    if (reason == DMQ__REJ_NO_CHANNEL)
      d->st.dropped_no_channel++;
    else
      d->st.reassembly_drops++;
  } else if (reason != 0) {
    d->st.rx_expired++;
  } else if (x->flags & DMQ__DATA_REPLY) {
    dmq__dlv_on_reply(n, p, x->req_id, data, len);
  } else {
    dmq_reply_handle_t h;
    dmq_message_t msg = {
        p->m->name, ch->name, data, len, 1, NULL, dmq__member_addr(p->m),
        p->rx_gen};
    if (x->flags & DMQ__DATA_REQUEST) {
      memcpy(h.from, p->m->name, (size_t)p->m->name_len + 1);
      h.from_gen = p->rx_gen;
      h.req_id = x->req_id;
      memcpy(h.channel, ch->name, (size_t)ch->len + 1);
      h.valid = 1;
      msg.request = &h;
    }
    d->st.delivered_app++;
    d->cur_chan = ch;
    ch->cb(n, ch, &msg, ch->ud);
    d->cur_chan = NULL;
  }
}

/* Deliver what is in order for p, until a hole, a paused channel, or a
 * rejection that cannot be reported yet. */
void dmq__dlv_rx_deliver(dmq_node_t *n, dlv_peer_t *p) {
  dlv_t *d = n->dlv;
  while (!d->closing) {
    dlv_rent_t *e = dmq__dlv_ring_at(p, p->next_exp);
    if (e == NULL) {
      /* a large ring whose burst is over goes at once; smaller ones are
       * kept for the next packet (no allocation per packet) and trimmed by
       * the periodic purge */
      if (p->nbuf == 0 && p->ring_cap > DLV_RING_KEEP)
        dlv_ring_trim(n, p);
      return;
    }
    int last = !(e->flags & DMQ__DATA_MORE);
    uint8_t reason = 0;
    dmq_channel_t *ch = NULL;
    if (!dlv_rx_judge(n, p, e, last, &reason, &ch))
      return;
    if (dlv_rx_fragment(n, p, e, last, &reason))
      continue;
    dlv_rent_t x = *e; /* the slot is freed before the callback */
    e->own = NULL;     /* ownership moves to x */
    if (x.own != NULL) {
      p->buf_bytes -= (size_t)x.chan_len + x.len;
      d->rx_bytes -= (size_t)x.chan_len + x.len;
    }
    dlv_rent_clear(n, p, e);
    p->next_exp++;
    dmq__dlv_ack(d, p, 0, 0);
    const uint8_t *data = p->ra_active ? p->ra : x.data;
    size_t len = p->ra_active ? p->ra_len : x.len;
    dlv_rx_dispatch(n, p, &x, reason, ch, data, len);
    if (x.own != NULL)
      dmq__dlv_buf_put(n, x.own, (size_t)x.chan_len + x.len);
    if (p->ra_active)
      dlv_ra_reset(n, p);
  }
}

/* Held messages whose TTL passed are freed (docs/wire.md): the in-order
 * ones by a delivery pass (which drops them as expired and acknowledges
 * them), those behind a hole here: they would be dropped as expired when
 * the hole fills, and their sender, whose own TTL has passed too, skips
 * them. Rings that outgrew what is held shrink. Runs at most every
 * DLV_PURGE_EVERY_MS, from the delivery tick. */
void dmq__dlv_rx_purge(dmq_node_t *n) {
  dlv_t *d = n->dlv;
  uint64_t now = n->now;
  d->next_purge = now + DLV_PURGE_EVERY_MS;
  for (dlv_peer_t *p = d->peers; p != NULL; p = p->all_next) {
    if (p->nbuf == 0) {
      if (p->ring_cap > DLV_RING_MIN)
        dlv_ring_trim(n, p);
      continue;
    }
    if (dmq__dlv_ring_at(p, p->next_exp) != NULL)
      dmq__dlv_want_ready(d, p);
    for (uint32_t i = 0; p->nbuf > 0 && i < p->ring_cap;) {
      dlv_rent_t *e = &p->ring[i];
      if (e->seq > p->next_exp && now >= e->deadline) {
        d->st.rx_expired++;
        dlv_rent_clear(n, p, e); /* slot i may hold another now */
      } else {
        i++;
      }
    }
    dlv_ring_trim(n, p);
  }
}
