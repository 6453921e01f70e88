/* libdmq - queued delivery, putting queued messages on the wire: packets,
 * packing many messages per datagram with a piggybacked DACK, fragmentation,
 * the stream fallback, the per-peer flush. */
#include "delivery/delivery_int.h"

/* Largest payload of a DATA that fits an otherwise empty datagram. */
size_t dmq__dlv_frag_max(const dmq_node_t *n, size_t chan_len) {
  size_t over_pkt = dmq__node_overhead(n); /* label, seal */
  size_t room = n->dlv->frag_room > over_pkt ? n->dlv->frag_room - over_pkt : 0;
  size_t over = DLV_DATA_FIXED + chan_len;
  return room > over ? room - over : 1;
}

static void dlv_pkt_send(dmq_node_t *n, dlv_peer_t *p, dlv_pkt_t *k) {
  dlv_t *d = n->dlv;
  if (!k->open)
    return;
  k->open = 0;
  if (k->e.count == 0)
    return;
  uint32_t c = k->e.count;
  size_t len = dmq__enc_end(&k->e);
  k->sent++;
  if (dmq__send(n, dmq__member_addr(p->m), d->tx, len, 0, c) != 0) {
    d->st.dropped_be += k->nbe;
    d->st.sent_be -= k->nbe;
    p->tx_be -= k->nbe; /* the last numbers given: never seen on the wire */
  }
  k->nbe = 0;
}

static void dlv_pkt_begin(dmq_node_t *n, dlv_pkt_t *k) {
  dmq__node_enc_begin(n, &k->e, n->dlv->tx, n->cfg.mtu);
  k->open = 1;
  k->nbe = 0;
}

static void dlv_fill_data(dmq_node_t *n, dlv_peer_t *p, const dlv_msg_t *m,
                          dmq__data_t *dd) {
  const dlv_op_t *op = m->op;
  dd->flags = m->flags;
  dd->channel = dlv_sl(op->chan, op->chan_len);
  dd->src_gen = n->self->gen;
  dd->dst_gen = p->tx_gen;
  dd->seq = m->seq; /* best effort: its own numbering (tx_be) */
  dd->base = 0;
  if (m->flags & DMQ__DATA_RELIABLE) {
    /* never further than DLV_SKIP_MAX above what the receiver acknowledged
     * (it drops more as implausible): a longer jump over abandoned
     * messages takes a few round trips */
    uint64_t cap = p->peer_cum + 1 + DLV_SKIP_MAX;
    dd->base = dlv_min(dmq__dlv_base(p), cap);
  }
  uint64_t rem = m->deadline > n->now ? m->deadline - n->now : 0;
  dd->ttl_ms = rem > UINT32_MAX ? UINT32_MAX : (uint32_t)rem;
  dd->req_id = op->kind == DLV_K_REQ     ? op->id
               : op->kind == DLV_K_REPLY ? op->req_id
                                         : 0;
  dd->payload = dlv_sl((const char *)op->data + m->off, m->len);
}

/* Append m to the open datagram: 0 done, 1 the datagram is full (send it
 * and try again), -1 m does not fit even an empty datagram. A best-effort
 * message after another one in the same datagram carries seq 0: its number
 * is the previous one's + 1 (see dmq__delivery_on_data). */
static int dlv_put(dmq_node_t *n, dlv_peer_t *p, dlv_pkt_t *k,
                   const dlv_msg_t *m) {
  dmq__data_t dd;
  dlv_fill_data(n, p, m, &dd);
  if (!(m->flags & DMQ__DATA_RELIABLE) && k->nbe > 0)
    dd.seq = 0;
  if (dmq__enc_data(&k->e, &dd) == 0)
    return 0;
  return k->e.count > 0 ? 1 : -1;
}

/* Append m, sending the datagram first when it is full. 0 or -1. */
static int dlv_put_any(dmq_node_t *n, dlv_peer_t *p, dlv_pkt_t *k,
                       const dlv_msg_t *m) {
  if (!k->open)
    dlv_pkt_begin(n, k);
  int rc = dlv_put(n, p, k, m);
  if (rc == 1) {
    dlv_pkt_send(n, p, k);
    dlv_pkt_begin(n, k);
    rc = dlv_put(n, p, k, m);
  }
  return rc == 0 ? 0 : -1;
}

/* A message alone in a packet over the reliable (stream) class. */
static int dlv_send_stream(dmq_node_t *n, dlv_peer_t *p, const dlv_msg_t *m) {
  dlv_t *d = n->dlv;
  dmq__data_t dd;
  dlv_fill_data(n, p, m, &dd);
  size_t need = dmq__enc_size_envelope(strlen(n->name)) +
                dmq__node_overhead(n) + dmq__enc_size_data(&dd);
  if (need > d->big_cap) {
    uint8_t *b = dmq__realloc(n, d->big, need);
    if (b == NULL)
      return DMQ_ENOMEM;
    d->big = b;
    d->big_cap = need;
  }
  dmq__enc_t e;
  dmq__node_enc_begin(n, &e, d->big, d->big_cap);
  if (dmq__enc_data(&e, &dd) != 0)
    return DMQ_ETOOBIG;
  size_t len = dmq__enc_end(&e);
  return dmq__send(n, dmq__member_addr(p->m), d->big, len, 1, 1);
}

static void dlv_mark_sent(dmq_node_t *n, dlv_peer_t *p, dlv_msg_t *m) {
  dlv_t *d = n->dlv;
  if (m->ntx == 0) {
    p->inflight++;
    p->inflight_est += dmq__dlv_est(m);
    d->st.sent_reliable++;
    if ((m->flags & DMQ__DATA_MORE) || m->len < m->op->len)
      d->st.fragments_sent++;
  } else {
    d->st.retransmits++;
  }
  if (m->rtx) {
    m->rtx = 0;
    p->nrtx--;
  }
  if (m->ntx < UINT16_MAX)
    m->ntx++;
  m->sent_at = n->now;
  dmq__dlv_arm_rto(n, p);
}

/* Transmit one reliable message (datagram or stream). */
static void dlv_tx_one(dmq_node_t *n, dlv_peer_t *p, dlv_pkt_t *k,
                       dlv_msg_t *m) {
  if (m->stream || dlv_put_any(n, p, k, m) != 0) {
    m->stream = 1;
    dlv_send_stream(n, p, m); /* a failure is a loss: the RTO resends */
  }
  dlv_mark_sent(n, p, m);
}

/* The pending DACK opens the packet (everything else rides with it). */
static void dlv_flush_ack(dmq_node_t *n, dlv_peer_t *p, dlv_pkt_t *k) {
  dlv_t *d = n->dlv;
  if (!p->ack_pending || p->rx_gen == 0)
    return;
  dmq__dack_t a;
  dmq__dlv_build_dack(n, p, &a);
  dlv_pkt_begin(n, k);
  if (dmq__enc_dack(&k->e, &a) == 0)
    d->st.acks_sent++;
  p->ack_pending = 0;
  p->unacked = 0;
  dlv_timer_del(d, &p->ack_t);
}

/* Retransmissions: a window probe asked for marks the lowest in-flight
 * datagram message, then every message marked for retransmission whose
 * TTL has not run out goes again. */
static void dlv_flush_rtx(dmq_node_t *n, dlv_peer_t *p, dlv_pkt_t *k) {
  if (p->need_probe) {
    p->need_probe = 0;
    for (dlv_msg_t *m = p->head; m != NULL && m != p->unsent; m = m->next) {
      if (!m->stream) {
        if (!m->rtx) {
          m->rtx = 1;
          p->nrtx++;
        }
        break;
      }
    }
  }
  for (dlv_msg_t *m = p->head; p->nrtx > 0 && m != NULL && m != p->unsent;
       m = m->next)
    if (m->rtx && m->deadline > n->now)
      dlv_tx_one(n, p, k, m);
}

/* New reliable messages, as far as the peer's window (in messages and in
 * bytes) allows, at most DLV_BURST_PKTS packets in all this flush. Returns
 * 1 when the burst limit stopped it (flush again next turn). */
static int dlv_flush_reliable(dmq_node_t *n, dlv_peer_t *p, dlv_pkt_t *k,
                              int full_only) {
  dlv_t *d = n->dlv;
  size_t budget = n->cfg.mtu;
  uint64_t ref = dmq__dlv_base(p) - 1;
  if (p->peer_cum > ref)
    ref = p->peer_cum;
  uint64_t limit = ref + dlv_min(d->cfg.window, p->peer_rwnd);
  while (p->unsent != NULL && (p->unsent->seq <= limit || p->persist)) {
    dlv_msg_t *m = p->unsent;
    if (m->deadline <= n->now)
      break; /* its TTL timer runs first at the next tick */
    if (!k->open && k->sent >= DLV_BURST_PKTS)
      return 1;
    if (p->inflight > 0 &&
        p->inflight_est + dmq__dlv_est(m) > d->cfg.window_bytes)
      break;        /* the byte window: an ack reopens it */
    p->persist = 0; /* one message past a closed window is the probe */
    if (!m->stream) {
      /* full_only: a new datagram only for a datagram's worth */
      if (!k->open && full_only && p->unsent_est + p->be_est < budget)
        break;
      if (!k->open)
        dlv_pkt_begin(n, k);
      int rc = dlv_put(n, p, k, m);
      if (rc == 1) {
        dlv_pkt_send(n, p, k);
        continue;
      }
      if (rc < 0)
        m->stream = 1;
    }
    p->unsent = m->next;
    p->unsent_est -= dmq__dlv_est(m);
    if (m->stream) {
      k->sent++;
      dlv_send_stream(n, p, m); /* a failure is a loss: the RTO resends */
    }
    dlv_mark_sent(n, p, m);
  }
  return 0;
}

/* Best-effort messages, at most DLV_BURST_PKTS more packets (a reliable
 * backlog does not hold them back). Returns 1 when that limit stopped it. */
static int dlv_flush_be(dmq_node_t *n, dlv_peer_t *p, dlv_pkt_t *k,
                        int full_only) {
  dlv_t *d = n->dlv;
  size_t budget = n->cfg.mtu;
  uint32_t stop = k->sent + DLV_BURST_PKTS;
  while (p->be_head != NULL) {
    dlv_msg_t *m = p->be_head;
    if (!k->open && full_only && p->unsent_est + p->be_est < budget)
      break;
    if (!k->open && k->sent >= stop)
      return 1;
    /* Numbered only once it is on the wire (a message dropped here is not
     * a gap at the receiver). The open datagram's best-effort messages
     * always hold the last k->nbe numbers given, so a datagram the
     * transport refuses gives them back (dlv_pkt_send). */
    int rc = -1;
    if (m->deadline > n->now && !m->stream) {
      if (!k->open)
        dlv_pkt_begin(n, k);
      m->seq = p->tx_be;
      rc = dlv_put(n, p, k, m);
      if (rc == 1) { /* full: a new one only for a datagram's worth */
        dlv_pkt_send(n, p, k);
        continue;
      }
    }
    p->be_head = m->next;
    if (p->be_head == NULL)
      p->be_tail = NULL;
    p->be_est -= dmq__dlv_est(m);
    p->q_msgs--;
    dlv_q_sub(d, p, m->len);
    if (m->deadline <= n->now) {
      d->st.dropped_be++;
    } else if (rc == 0) {
      p->tx_be++;
      d->st.sent_be++;
      k->nbe++;
    } else {
      dlv_pkt_send(n, p, k); /* its numbers stay below this one's */
      m->seq = p->tx_be;
      k->sent++;
      if (dlv_send_stream(n, p, m) == 0) {
        p->tx_be++;
        d->st.sent_be++;
      } else {
        d->st.dropped_be++;
      }
    }
    dlv_op_t *op = m->op;
    dmq__dlv_msg_put(n, m);
    dmq__dlv_op_unref(n, op);
  }
  return 0;
}

/* Put what is due for p on the wire: the pending ack, retransmissions, new
 * messages within the window, best-effort messages, packed into as few
 * packets as possible. full_only: stop once
 * less than a datagram's worth of new messages is left (the tick sends the
 * rest). */
void dmq__dlv_flush_peer(dmq_node_t *n, dlv_peer_t *p, int full_only) {
  dlv_t *d = n->dlv;
  if (d->tx == NULL && (d->tx = dmq__malloc(n, n->cfg.mtu)) == NULL) {
    dmq__dlv_want_flush(d, p); /* retried on the next tick */
    return;
  }
  dlv_pkt_t k;
  k.open = 0;
  k.nbe = 0;
  k.sent = 0;
  dlv_flush_ack(n, p, &k);
  dlv_flush_rtx(n, p, &k);
  int more = dlv_flush_reliable(n, p, &k, full_only);
  more |= dlv_flush_be(n, p, &k, full_only);
  dlv_pkt_send(n, p, &k);
  if (more)
    dmq__dlv_want_flush(d, p); /* stopped by DLV_BURST_PKTS: next turn */
  dmq__dlv_check_writable(d, p);
}
