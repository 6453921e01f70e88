/* libdmq - queued delivery, acknowledgements and timers: building and
 * processing DACKs, RTT/RTO (RFC 6298, Karn), fast retransmission, the
 * retransmission, TTL, request and delayed-ack timers. */
#include "delivery/delivery_int.h"

void dmq__dlv_build_dack(dmq_node_t *n, dlv_peer_t *p, dmq__dack_t *a) {
  dlv_t *d = n->dlv;
  memset(a, 0, sizeof(*a));
  a->src_gen = p->rx_gen;
  a->dst_gen = n->self->gen;
  a->cum = p->next_exp > 0 ? p->next_exp - 1 : 0;
  if (p->nbuf > 0)
    for (uint32_t i = 0; i < DLV_SACK_BITS; i++)
      if (dmq__dlv_ring_at(p, a->cum + 1 + i) != NULL)
        a->sack |= 1ULL << i;
  uint32_t w = d->cfg.window;
  a->rwnd = w > p->nbuf ? w - p->nbuf : 0;
  /* out of bytes: closed while something waits here (so the sender has it
   * in flight and its RTO keeps probing); in-order data needs no room */
  if (p->nbuf > 0 && p->buf_bytes + p->ra_cap >= d->cfg.reassembly_bytes)
    a->rwnd = 0;
  /* the ack delay, which the sender takes off its RTT sample */
  if (n->now > p->rx_last_at) {
    uint64_t dl = n->now - p->rx_last_at;
    a->delay_ms = dl < UINT32_MAX ? (uint32_t)dl : UINT32_MAX;
  }
  a->nrej = p->nrej;
  a->rej_seq = p->rej_seq;
  a->rej_reason = p->rej_reason;
}

void dmq__dlv_arm_rto(dmq_node_t *n, dlv_peer_t *p) {
  if (p->rto_t.idx == DLV_NO_IDX && p->inflight > 0)
    dlv_timer_set(n->dlv, &p->rto_t, n->now + p->rto);
}

static void dlv_rtt_sample(dmq_node_t *n, dlv_peer_t *p, uint64_t r) {
  if (!p->rtt_valid) {
    p->srtt8 = r * 8;
    p->rttvar4 = r * 2;
    p->rtt_valid = 1;
  } else {
    uint64_t s = p->srtt8 / 8;
    uint64_t delta = s > r ? s - r : r - s;
    p->rttvar4 = p->rttvar4 - p->rttvar4 / 4 + delta;
    p->srtt8 = p->srtt8 - p->srtt8 / 8 + r;
  }
  p->rto = dmq__dlv_rto_base(n, p);
}

/* RTT sample candidate: the newest send time among the messages an ack
 * reports for the first time (Karn: never a retransmitted message). */
typedef struct dlv_sample {
  int ok;
  uint64_t at;
} dlv_sample_t;

static void dlv_sample_take(dlv_sample_t *s, uint64_t sent_at) {
  if (!s->ok || sent_at > s->at) {
    s->ok = 1;
    s->at = sent_at;
  }
}

/* The receiver's rejections (ascending) mark the acked messages they name,
 * so that their outcome is exact. */
static void dlv_ack_rejected(dlv_peer_t *p, const dmq__dack_t *a,
                             uint64_t cum) {
  uint64_t rs[DMQ__WIRE_MAX_REJ];
  uint8_t rr[DMQ__WIRE_MAX_REJ];
  size_t k = dmq__wire_rejs(a, rs, rr, DMQ__WIRE_MAX_REJ);
  dlv_msg_t *m = p->head;
  for (size_t i = 0; i < k; i++) { /* ascending */
    while (m != NULL && m->seq < rs[i])
      m = m->next;
    if (m != NULL && m->seq == rs[i] && rs[i] <= cum)
      m->rejected = rr[i];
  }
}

/* Everything up to cum is done: outcomes, then off the queue. Returns 1 if
 * anything was. *filled: the ack filled a hole (its messages waited behind
 * it at the receiver, so they give no RTT sample). */
static int dlv_ack_cum(dmq_node_t *n, dlv_peer_t *p, uint64_t cum,
                       dlv_sample_t *s, int *filled) {
  int progress = 0;
  while (p->head != NULL && p->head->seq <= cum) {
    dlv_msg_t *m = p->head;
    if (m->ntx > 1 || m->sacked)
      *filled = 1;
    if (m->ntx == 1)
      dlv_sample_take(s, m->sent_at);
    if (m->rep) {
      dmq_outcome_t oc = DMQ_OUTCOME_DELIVERED;
      if (m->rejected)
        oc = dmq__dlv_rej_outcome(m->rejected);
      else if (n->now >= m->deadline)
        oc = DMQ_OUTCOME_EXPIRED;
      dmq__dlv_copy_done(n, m, oc);
    }
    dmq__dlv_msg_remove(n, p, m);
    progress = 1;
  }
  return progress;
}

/* SACK: rebuild the flags of the messages it covers (a receiver may drop
 * what it SACKed before, so they are not sticky); those in flight it covers
 * go to win. Returns how many; *nsacked: how many of them are SACKed. */
static uint32_t dlv_ack_sack(dlv_peer_t *p, const dmq__dack_t *a, uint64_t cum,
                             int filled, dlv_sample_t *s, dlv_msg_t **win,
                             uint32_t *nsacked) {
  uint32_t nw = 0;
  *nsacked = 0;
  for (dlv_msg_t *m = p->head;
       m != NULL && m != p->unsent && m->seq <= cum + DLV_SACK_BITS;
       m = m->next) {
    uint8_t was = m->sacked;
    m->sacked = (uint8_t)((a->sack >> (m->seq - cum - 1)) & 1);
    if (m->sacked && !was && m->ntx == 1 && !filled)
      dlv_sample_take(s, m->sent_at);
    *nsacked += m->sacked;
    win[nw++] = m;
  }
  return nw;
}

/* Fast retransmission of the holes with DLV_DUP_THRESH SACKed messages
 * above them: at most once per message and round trip (and never twice in
 * the same millisecond). */
static void dlv_fast_rtx(dmq_node_t *n, dlv_peer_t *p, dlv_msg_t **win,
                         uint32_t nw, uint32_t nsacked) {
  uint64_t guard = n->dlv->cfg.rto_min_ms / 2;
  if (p->rtt_valid)
    guard = p->srtt8 / 8 + p->rttvar4;
  if (guard < 1)
    guard = 1;
  for (uint32_t i = 0, seen = 0; i < nw; i++) {
    dlv_msg_t *m = win[i];
    if (m->sacked) {
      seen++;
      continue;
    }
    if (nsacked - seen >= DLV_DUP_THRESH && !m->rtx && !m->stream &&
        n->now - m->sent_at >= guard) {
      m->rtx = 1;
      p->nrtx++;
    }
  }
}

/* After an ack: progress ends the RTO back-off; whatever may go now is
 * flushed; a closed window with nothing in flight to learn from arms the
 * persist timer. */
static void dlv_ack_resume(dmq_node_t *n, dlv_peer_t *p, int progress) {
  dlv_t *d = n->dlv;
  if (progress) {
    p->rto = dmq__dlv_rto_base(n, p); /* progress ends the back-off */
    dlv_timer_del(d, &p->rto_t);
    dmq__dlv_arm_rto(n, p);
  }
  uint64_t ref = dmq__dlv_base(p) - 1;
  if (p->peer_cum > ref)
    ref = p->peer_cum;
  uint64_t limit = ref + dlv_min(d->cfg.window, p->peer_rwnd);
  if (p->nrtx > 0 || (p->unsent != NULL && p->unsent->seq <= limit) ||
      p->be_head != NULL)
    dmq__dlv_want_flush(d, p);
  /* closed window and nothing in flight to learn from: persist timer */
  if (p->inflight == 0 && p->unsent != NULL && p->unsent->seq > limit &&
      p->rto_t.idx == DLV_NO_IDX)
    dlv_timer_set(d, &p->rto_t, n->now + p->rto);
}

void dmq__delivery_on_dack(dmq_node_t *n, const dmq__dack_t *a,
                           dmq__slice_t sender) {
  dlv_t *d = n->dlv;
  d->st.acks_received++;
  dmq__member_t *mb = dmq__member_find(n, sender.p, sender.n);
  if (mb == NULL || dmq__member_peer(mb) == NULL || mb->is_self) {
    d->st.unknown_sender++;
    if (mb == NULL)
      n->stats.drops[DMQ_DROP_UNKNOWN_SENDER]++;
    return;
  }
  dlv_peer_t *p = dmq__member_peer(mb);
  if (a->src_gen != n->self->gen || a->dst_gen != p->tx_gen ||
      a->dst_gen != mb->gen) {
    d->st.stale_gen++;
    if (a->dst_gen > mb->gen)
      n->stats.drops[DMQ_DROP_IMPLAUSIBLE]++; /* a life nobody announced */
    return;
  }
  /* An ack of numbers we never sent is not from the receiver we number
   * for (its state was reset under us, or the DACK is forged): taking it
   * would report messages delivered that it never got. */
  if (a->cum >= p->next_seq) {
    n->stats.drops[DMQ_DROP_IMPLAUSIBLE]++;
    return;
  }
  uint64_t cum = a->cum;
  if (a->nrej > 0)
    dlv_ack_rejected(p, a, cum);
  /* RTT samples (Karn: never from a retransmitted message) come from
   * messages this ack reports for the first time; not from an ack that
   * filled a hole, whose messages waited behind it at the receiver. */
  dlv_sample_t s = {0, 0};
  int filled = 0;
  int progress = dlv_ack_cum(n, p, cum, &s, &filled);
  if (filled)
    s.ok = 0;
  if (cum == 0 && a->sack == 0 && p->peer_cum > 0) {
    /* The receiver holds nothing of this stream (it lost its state, e.g.
     * it forgot us while we kept it): the base we announce ramps up from
     * its start again (DLV_SKIP_MAX), or it would refuse our base as an
     * implausible jump for good. (A reordered early ack does no harm: the
     * cap only matters to a receiver that is behind.) */
    p->peer_cum = 0;
  }
  if (cum < p->peer_cum) /* reordered: an older ack says nothing new */
    return;
  p->peer_cum = cum;
  p->peer_rwnd = a->rwnd;
  if (p->head != NULL && dmq__dlv_base(p) > cum + 1 + DLV_SKIP_MAX) {
    /* the receiver is catching up with a jump of our base: tell it the
     * next step now rather than at the next retransmission timeout */
    p->need_probe = 1;
    dmq__dlv_want_flush(n->dlv, p);
  }
  dlv_msg_t *win[DLV_SACK_BITS];
  uint32_t nsacked;
  uint32_t nw = dlv_ack_sack(p, a, cum, filled, &s, win, &nsacked);
  /* minus the time the receiver held the ack back (QUIC's ack_delay; it
   * refers to its newest arrival, which the sample's message is) */
  if (s.ok) {
    uint64_t r = n->now - s.at;
    dlv_rtt_sample(n, p, r > a->delay_ms ? r - a->delay_ms : 0);
  }
  dlv_fast_rtx(n, p, win, nw, nsacked);
  dlv_ack_resume(n, p, progress);
}

/* Retransmission timeout. Like TCP, only what the receiver's last SACK
 * covers is resent (the unsacked messages up to cum + 64, the lowest one
 * always among them); what lies beyond may well have arrived and is judged
 * once the window slides over it. Stream messages have their own, longer
 * timeout: the transport is reliable, a resend only covers a broken
 * connection. */
static void dlv_on_rto(dmq_node_t *n, dlv_peer_t *p) {
  dlv_t *d = n->dlv;
  uint64_t now = n->now, next = DMQ_NEVER;
  int any = 0, unsacked = 0;
  if (p->inflight == 0) {
    if (p->unsent != NULL) { /* persist: the window stayed closed */
      p->persist = 1;
      uint64_t r = (uint64_t)p->rto * 2;
      p->rto = (uint32_t)(r > d->cfg.rto_max_ms ? d->cfg.rto_max_ms : r);
      dlv_timer_set(d, &p->rto_t, now + p->rto);
      dmq__dlv_want_flush(d, p);
    }
    return;
  }
  uint64_t ref = dmq__dlv_base(p) - 1;
  if (p->peer_cum > ref)
    ref = p->peer_cum;
  for (dlv_msg_t *m = p->head; m != NULL && m != p->unsent; m = m->next) {
    if (m->sacked || m->ntx == 0)
      continue;
    if (m->seq > ref + DLV_SACK_BITS && !m->stream)
      continue;
    unsacked = 1;
    uint64_t r = m->stream
                     ? (p->rto > d->cfg.rto_max_ms ? p->rto : d->cfg.rto_max_ms)
                     : p->rto;
    if (now - m->sent_at >= r) {
      if (!m->rtx) {
        m->rtx = 1;
        p->nrtx++;
      }
      any = 1;
    } else {
      next = dlv_min(next, m->sent_at + r);
    }
  }
  if (!unsacked) {
    p->need_probe = 1; /* all SACKed: probe the window / tell the base */
    any = 1;
  }
  if (any) {
    uint64_t r = (uint64_t)p->rto * 2;
    p->rto = (uint32_t)(r > d->cfg.rto_max_ms ? d->cfg.rto_max_ms : r);
    next = now + p->rto;
    dmq__dlv_want_flush(d, p);
  }
  dlv_timer_set(d, &p->rto_t, next == DMQ_NEVER ? now + p->rto : next);
}

/* Request timeout: EXPIRED, and its copy still queued is abandoned. */
static void dlv_on_req_timeout(dmq_node_t *n, dlv_op_t *op) {
  dmq__dlv_op_finish(n, op, DMQ_OUTCOME_EXPIRED);
  while (op->reps != NULL)
    dmq__dlv_abandon_copy(n, op->reps, DMQ_OUTCOME_EXPIRED);
}

void dmq__delivery_tick(dmq_node_t *n) {
  dlv_t *d = n->dlv;
  uint64_t now = n->now;
  while (d->heap.n > 0 && d->heap.v[0]->at <= now) {
    dlv_timer_t *t = d->heap.v[0];
    dlv_timer_del(d, t);
    switch (t->kind) {
    case DLV_T_TTL: {
      dlv_msg_t *m = (dlv_msg_t *)((char *)t - offsetof(dlv_msg_t, ttl));
      dmq__dlv_abandon_copy(n, m, DMQ_OUTCOME_EXPIRED);
      break;
    }
    case DLV_T_REQ: {
      dlv_op_t *op = (dlv_op_t *)((char *)t - offsetof(dlv_op_t, tmo));
      dlv_on_req_timeout(n, op);
      break;
    }
    case DLV_T_ACK:
      dmq__dlv_want_flush(
          d, (dlv_peer_t *)((char *)t - offsetof(dlv_peer_t, ack_t)));
      break;
    case DLV_T_TQ:
      dmq__dlv_on_tq(n, (dlv_peer_t *)((char *)t - offsetof(dlv_peer_t, tq_t)));
      break;
    default: {
      dlv_peer_t *p = (dlv_peer_t *)((char *)t - offsetof(dlv_peer_t, rto_t));
      dlv_on_rto(n, p);
      break;
    }
    }
  }
  if (d->rx_nbuf > 0 && now >= d->next_purge)
    dmq__dlv_rx_purge(n);
  if (now >= d->next_trim) {
    dmq__slab_trim(n, &d->slab_ops);
    dmq__slab_trim(n, &d->slab_msgs);
    for (unsigned c = 0; c < DLV_BUF_CLASSES; c++)
      dmq__slab_trim(n, &d->slab_buf[c]);
    d->next_trim = now + DLV_TRIM_EVERY_MS;
  }
  dlv_peer_t *list = d->flush_head;
  d->flush_head = d->flush_tail = NULL;
  while (list != NULL) {
    dlv_peer_t *p = list;
    list = p->flush_next;
    p->in_flush = 0;
    dmq__dlv_flush_peer(n, p, 0);
  }
}

uint64_t dmq__delivery_deadline(const dmq_node_t *n) {
  const dlv_t *d = n->dlv;
  if (d == NULL)
    return DMQ_NEVER;
  if (d->flush_head != NULL || d->ready_head != NULL || d->done_head != NULL ||
      d->wr_head != NULL || d->wr_all_pending)
    return n->now;
  return d->heap.n > 0 ? d->heap.v[0]->at : DMQ_NEVER;
}
