/* libdmq - queued delivery: channels, reliable and best-effort messages,
 * broadcast and request/reply, sans-I/O like the rest of the core.
 *
 * The contract (outcomes, ordering, TTL, windows, pause, limits) is
 * docs/delivery.md; this comment is about how the implementation meets it
 * and why. docs/design.md ("Queued delivery") has the design reasons at
 * length; delivery_int.h says which file holds what.
 *
 * The stream. Every (sender, receiver) pair carries one ordered stream of
 * reliable DATA messages numbered from 1 by the sender, acknowledged by
 * DACK messages (cumulative ack + 64-bit SACK + receive window) and
 * retransmitted on an RTO with exponential back-off (RFC 6298 estimator,
 * Karn's rule) and on SACK evidence (three later messages acked: fast
 * retransmit). Sequence numbers, windows and the SACK bitmap count
 * messages, not bytes, so a small message costs one slot; byte budgets on
 * both sides (window_bytes, queue_bytes, reassembly_bytes) bound memory
 * for large ones. Small messages are packed many per datagram with a
 * pending DACK for the same peer; a message larger than a datagram goes
 * over the stream transport when one exists, else is cut into fragments,
 * each with its own sequence number, reassembled in order.
 *
 * TTL without stalls. Every DATA carries `base`, the lowest sequence the
 * sender still has: the receiver skips the holes below it (like SCTP's
 * FORWARD-TSN), so a message given up at its TTL or cancelled never stalls
 * the stream. Each (re)transmission carries the remaining TTL; the
 * receiver's deadline (arrival + remaining TTL) is never earlier than the
 * sender's, so it can refuse to deliver late, and the sender counts an ack
 * as DELIVERED only if processed before the TTL ran out.
 *
 * Identity. DATA names the receiver's generation and DACK the sender's, so
 * nothing crosses from a previous life of either side; member changes come
 * from node.c's member listener (dmq__delivery_member_changed), so a dead,
 * left or restarted destination fails its queue at once.
 *
 * Rejections. A message consumed without delivery (channel not served,
 * too big for the receiver) is listed in the `rejected` trailing field of
 * every DACK until the sender's `base` shows it saw the report: outcomes
 * stay exact with no extra message type. When that list is full the
 * receiver holds the stream rather than lose a report.
 *
 * Backpressure is the receive window: a paused channel keeps its messages
 * unacknowledged in the reorder ring, the window shrinks, and the sender's
 * window and queue fill. With the window closed and everything in flight
 * SACKed, the RTO retransmits the lowest in-flight message as a window
 * probe.
 *
 * Best effort is numbered per receiver when it goes on the wire (a
 * sequence apart from the reliable one, per tx_gen; written whole in the
 * first best-effort DATA of a datagram, implied in the next ones), so the
 * receiver can count losses without acks (gap.c).
 *
 * Memory and cost. Per message: one op (outcome, payload, channel) and one
 * queue entry, both from slabs (util/slab.h), payloads up to DLV_MID bytes
 * from slabs too: no malloc per message. The per-peer queue
 * is ordered by sequence and acks remove from its head. Copies with one
 * TTL expire in queue order, so each peer keeps them in a FIFO with one
 * timer instead of a timer per copy (an ack would otherwise sift the heap
 * through cold memory); the FIFO timers, shorter TTLs, request timeouts,
 * RTOs and delayed acks share one indexed timer heap. Message ids map to
 * ops through an open-addressing table
 * (cancel). In-order DATA is delivered straight from the received packet;
 * only messages that must wait (out of order, paused channel) are copied.
 *
 * Callbacks run after protocol processing, from dmq__delivery_flush
 * (best-effort receives, in-order receives, outcomes, writable), never in
 * the middle of a packet.
 */
#include "delivery/delivery_int.h"
#include "sized.h"

/* 1..DMQ_MAX_CHANNEL printable bytes (no space). */
int dmq__dlv_valid_chan(const char *s, size_t *len) {
  if (s == NULL)
    return 0;
  size_t l = strnlen(s, DMQ_MAX_CHANNEL + 1);
  if (l == 0 || l > DMQ_MAX_CHANNEL)
    return 0;
  for (size_t i = 0; i < l; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c <= 0x20 || c >= 0x7f)
      return 0;
  }
  *len = l;
  return 1;
}

dmq_channel_t *dmq__dlv_chan_find(const dlv_t *d, const char *name, size_t len,
                                  uint64_t h) {
  for (uint32_t i = 0; i < d->nchans; i++) {
    dmq_channel_t *c = d->chans[i];
    if (c->h == h && c->len == len && memcmp(c->name, name, len) == 0)
      return c;
  }
  return NULL;
}

/* Our own advertised set, from the open channels. */
static int dlv_self_chans(dmq_node_t *n) {
  dlv_t *d = n->dlv;
  dmq__slice_t v[DMQ_MAX_CHANNELS];
  for (uint32_t i = 0; i < d->nchans; i++)
    v[i] = dlv_sl(d->chans[i]->name, d->chans[i]->len);
  dmq__chans_t c = {d->nchans, v, NULL, 0};
  int rc = dmq__member_set_chans(n, n->self, &c);
  return rc < 0 ? rc : 0;
}

/* The best-effort messages of the packet just read, to their channels'
 * callbacks. Returns 1 if it ran any. */
static int dlv_flush_be_received(dmq_node_t *n) {
  dlv_t *d = n->dlv;
  int did = 0;
  for (uint32_t i = 0; i < d->be_n && !d->closing; i++) {
    dlv_be_t *b = &d->be[i];
    dmq_channel_t *ch = dmq__dlv_chan_find(d, b->chan.p, b->chan.n,
                                           dmq__hash(b->chan.p, b->chan.n));
    if (ch == NULL) {
      d->st.dropped_no_channel++;
      continue;
    }
    if (ch->paused) {
      d->st.dropped_paused++;
      continue;
    }
    dmq_message_t msg = {b->m->name,
                         ch->name,
                         b->data.p,
                         b->data.n,
                         0,
                         NULL,
                         dmq__member_addr(b->m),
                         b->m->gen};
    d->st.delivered_app++;
    d->cur_chan = ch;
    ch->cb(n, ch, &msg, ch->ud);
    d->cur_chan = NULL;
    did = 1;
  }
  d->be_n = 0;
  return did;
}

/* Reliable messages now in order, peer by peer. */
static int dlv_flush_ready(dmq_node_t *n) {
  dlv_t *d = n->dlv;
  int did = 0;
  while (d->ready_head != NULL) {
    dlv_peer_t *p = d->ready_head;
    d->ready_head = p->ready_next;
    if (d->ready_head == NULL)
      d->ready_tail = NULL;
    p->in_ready = 0;
    dmq__dlv_rx_deliver(n, p);
    did = 1;
  }
  return did;
}

/* Outcome callbacks of the ops that are done. */
static int dlv_flush_outcomes(dmq_node_t *n) {
  dlv_t *d = n->dlv;
  int did = 0;
  while (d->done_head != NULL) {
    dlv_op_t *op = d->done_head;
    d->done_head = op->next;
    if (d->done_head == NULL)
      d->done_tail = NULL;
    dmq_outcome_info_t info = {op->id,
                               (dmq_outcome_t)op->outcome,
                               op->dest[0] ? op->dest : NULL,
                               op->chan,
                               op->delivered,
                               op->failed,
                               NULL,
                               0,
                               op->refused};
    if (op->kind == DLV_K_SEND || op->kind == DLV_K_REQ)
      info.delivered = info.failed = info.refused = 0;
    op->state = DLV_S_FINISHED;
    if (op->cb != NULL)
      op->cb(n, &info, op->ud);
    dmq__dlv_op_unref(n, op);
    did = 1;
  }
  return did;
}

/* Writable callbacks of the destinations whose queue has room again. */
static int dlv_flush_writable(dmq_node_t *n) {
  dlv_t *d = n->dlv;
  int did = 0;
  if (d->wr_all_pending) {
    d->wr_all_pending = 0;
    if (d->wr_cb != NULL)
      d->wr_cb(n, NULL, d->wr_ud);
    did = 1;
  }
  while (d->wr_head != NULL) {
    dlv_peer_t *p = d->wr_head;
    d->wr_head = p->wr_next;
    if (d->wr_head == NULL)
      d->wr_tail = NULL;
    p->in_wr = 0;
    if (d->wr_cb != NULL)
      d->wr_cb(n, p->m->name, d->wr_ud);
    did = 1;
  }
  return did;
}

int dmq__delivery_flush(dmq_node_t *n) {
  if (n->dlv == NULL)
    return 0;
  int did = dlv_flush_be_received(n);
  did |= dlv_flush_ready(n);
  did |= dlv_flush_outcomes(n);
  did |= dlv_flush_writable(n);
  return did;
}

void dmq__delivery_member_changed(dmq_node_t *n, dmq__member_t *m,
                                  dmq_outcome_t why) {
  if (m->is_self) {
    /* we took a new generation (another claimed our name): every stream,
     * both ways, starts again as after a restart; what was queued ends
     * with `why` */
    for (dlv_peer_t *p = n->dlv->peers; p != NULL; p = p->all_next) {
      dmq__dlv_fail_peer(n, p, why);
      dmq__dlv_tx_reset(n, p);
      dmq__dlv_rx_reset(n, p);
    }
    return;
  }
  dlv_peer_t *p = dmq__member_peer(m);
  if (p == NULL)
    return;
  dmq__dlv_fail_peer(n, p, why);
  if (p->tx_gen != m->gen) { /* a restart: a new stream, from 1 */
    dmq__dlv_tx_reset(n, p);
  }
  if (p->rx_gen != 0 && p->rx_gen < m->gen)
    dmq__dlv_rx_reset(n, p);
}

void dmq__delivery_member_removed(dmq_node_t *n, dmq__member_t *m) {
  if (n->dlv != NULL && dmq__member_peer(m) != NULL) {
    if (n->dlv->cache_m == m)
      n->dlv->cache_m = NULL;
    dmq__dlv_peer_free(n, dmq__member_peer(m));
  }
}

/* The 0.3.0 layout ends at max_queued_bytes (src/sized.h). */
#define DLV_CONFIG_MIN_SIZE                                                    \
  DMQ__SIZE_UPTO(dmq_delivery_config_t, max_queued_bytes)
/* The current layout ends at max_rx_bytes (0.3.1). */
DMQ__SIZE_CHECK(dmq_delivery_config_t,
                DMQ__SIZE_UPTO(dmq_delivery_config_t, max_rx_bytes));
/* Output structs: the 0.3.0 layout ends at bcast_refused. */
#define DLV_STATS_MIN_SIZE DMQ__SIZE_UPTO(dmq_delivery_stats_t, bcast_refused)
DMQ__SIZE_CHECK(dmq_delivery_stats_t, DLV_STATS_MIN_SIZE);

static void dlv_config_defaults(dmq_delivery_config_t *c) {
  memset(c, 0, sizeof(*c));
  c->size = sizeof(*c);
  c->ttl_ms = 30000;
  c->rto_min_ms = 200;
  c->rto_max_ms = 5000;
  c->window = 16384;
  c->window_bytes = (size_t)4 << 20;
  c->queue_msgs = 16384;
  c->queue_bytes = (size_t)64 << 20;
  c->max_message = (size_t)4 << 20;
  c->reassembly_bytes = (size_t)8 << 20;
  c->request_timeout_ms = 5000;
  c->max_queued_bytes = (size_t)64 << 20;
  c->max_rx_bytes = (size_t)64 << 20;
}

int dmq_delivery_config_init_sized(dmq_delivery_config_t *c, size_t size) {
  dmq_delivery_config_t d;
  dlv_config_defaults(&d);
  return dmq__sized_init(c, size, &d, sizeof(d), DLV_CONFIG_MIN_SIZE);
}

int dmq__delivery_init(dmq_node_t *n) {
  dlv_t *d = dmq__malloc(n, sizeof(*d));
  if (d == NULL)
    return DMQ_ENOMEM;
  memset(d, 0, sizeof(*d));
  d->node = n;
  dlv_config_defaults(&d->cfg);
  if ((size_t)n->cfg.max_packet < d->cfg.max_message + DLV_PACKET_HEADROOM)
    d->cfg.max_message = n->cfg.max_packet > 2 * DLV_PACKET_HEADROOM
                             ? n->cfg.max_packet - DLV_PACKET_HEADROOM
                             : DLV_PACKET_HEADROOM;
  d->next_id = 1; /* d->tx: on the first flush (many nodes never send) */
  dmq__slab_init(&d->slab_ops, sizeof(dlv_op_t)); /* chunks on first use */
  dmq__slab_init(&d->slab_msgs, sizeof(dlv_msg_t));
  for (unsigned c = 0; c < DLV_BUF_CLASSES; c++)
    dmq__slab_init(&d->slab_buf[c], dlv_buf_class_size[c]);
  d->frag_room = n->cfg.mtu - dmq__enc_size_envelope(strlen(n->name));
  n->dlv = d;
  return 0;
}

void dmq__delivery_shutdown(dmq_node_t *n) {
  dlv_t *d = n->dlv;
  if (d == NULL)
    return;
  d->closing = 1;
  for (dlv_peer_t *p = d->peers; p != NULL; p = p->all_next)
    dmq__dlv_fail_peer(n, p, DMQ_OUTCOME_SHUTDOWN);
  dmq__flush_events(n); /* the SHUTDOWN outcomes */
}

void dmq__delivery_free(dmq_node_t *n) {
  dlv_t *d = n->dlv;
  if (d == NULL)
    return;
  while (d->peers != NULL) /* members without one were freed already */
    dmq__dlv_peer_free(n, d->peers);
  /* outcomes never run (a zero-destination broadcast queued meanwhile) */
  while (d->done_head != NULL) {
    dlv_op_t *op = d->done_head;
    d->done_head = op->next;
    dmq__dlv_op_unref(n, op);
  }
  for (uint32_t i = 0; i < d->nchans; i++)
    dmq__free(n, d->chans[i]);
  dmq__slab_free_all(n, &d->slab_ops);
  dmq__slab_free_all(n, &d->slab_msgs);
  for (unsigned c = 0; c < DLV_BUF_CLASSES; c++)
    dmq__slab_free_all(n, &d->slab_buf[c]);
  dmq__heap_free(n, &d->heap);
  dmq__free(n, d->ids);
  dmq__free(n, d->be);
  dmq__free(n, d->bor);
  dmq__free(n, d->dests);
  dmq__free(n, d->tx);
  dmq__free(n, d->tombs);
  dmq__free(n, d->big);
  dmq__free(n, d);
  n->dlv = NULL;
}

const char *dmq_outcome_name(dmq_outcome_t o) {
  static const char *const names[] = {
      "delivered", "expired",      "dead",    "left",      "cancelled",
      "shutdown",  "unknown_dest", "too_big", "queue_full"};
  return (unsigned)o < sizeof(names) / sizeof(names[0]) ? names[o] : "unknown";
}

int dmq_delivery_configure(dmq_node_t *n,
                           const dmq_delivery_config_t *caller_cfg) {
  if (n == NULL || caller_cfg == NULL || n->dlv == NULL)
    return DMQ_EINVAL;
  if (dmq__in_sync_cb(n))
    return DMQ_EBUSY;
  /* the caller's layout (size) over the defaults */
  dmq_delivery_config_t cc;
  const dmq_delivery_config_t *c = &cc;
  dlv_config_defaults(&cc);
  if (dmq__sized_in(&cc, sizeof(cc), caller_cfg, caller_cfg->size,
                    DLV_CONFIG_MIN_SIZE) != 0)
    return DMQ_EINVAL;
  cc.size = sizeof(cc);
  if (c->ttl_ms == 0 || c->rto_min_ms == 0 || c->rto_max_ms < c->rto_min_ms ||
      c->window == 0 || c->window > DLV_MAX_WINDOW || c->window_bytes == 0 ||
      c->queue_msgs == 0 || c->queue_bytes == 0 || c->max_message == 0 ||
      c->max_message > UINT32_MAX || c->reassembly_bytes == 0 ||
      c->request_timeout_ms == 0 ||
      c->max_message + DLV_PACKET_HEADROOM > (size_t)n->cfg.max_packet)
    return DMQ_EINVAL;
  if (n->dlv->used)
    return DMQ_ESTATE;
  n->dlv->cfg = *c;
  if (n->dlv->cfg.max_queued_bytes == 0)
    n->dlv->cfg.max_queued_bytes = (size_t)64 << 20;
  if (n->dlv->cfg.max_rx_bytes == 0)
    n->dlv->cfg.max_rx_bytes = (size_t)64 << 20;
  for (dlv_peer_t *p = n->dlv->peers; p != NULL; p = p->all_next) {
    p->peer_rwnd = c->window;
    p->rto = dmq__dlv_rto_base(n, p);
  }
  return 0;
}

void dmq_delivery_set_writable_cb(dmq_node_t *n, dmq_writable_cb cb, void *ud) {
  if (n == NULL || n->dlv == NULL)
    return;
  n->dlv->wr_cb = cb;
  n->dlv->wr_ud = ud;
}

int dmq_channel_open(dmq_node_t *n, const char *name, dmq_receive_cb cb,
                     void *ud, dmq_channel_t **out) {
  size_t len;
  if (n == NULL || n->dlv == NULL || cb == NULL ||
      !dmq__dlv_valid_chan(name, &len))
    return DMQ_EINVAL;
  if (dmq__in_sync_cb(n))
    return DMQ_EBUSY;
  dlv_t *d = n->dlv;
  if (d->closing)
    return DMQ_ECLOSED;
  if (n->leaving)
    return DMQ_ESTATE;
  uint64_t h = dmq__hash(name, len);
  if (dmq__dlv_chan_find(d, name, len, h) != NULL)
    return DMQ_EEXIST;
  if (d->nchans == DMQ_MAX_CHANNELS)
    return DMQ_ELIMIT;
  dmq_channel_t *ch = dmq__malloc(n, sizeof(*ch));
  if (ch == NULL)
    return DMQ_ENOMEM;
  memset(ch, 0, sizeof(*ch));
  ch->node = n;
  ch->cb = cb;
  ch->ud = ud;
  ch->h = h;
  ch->len = (uint8_t)len;
  memcpy(ch->name, name, len);
  d->chans[d->nchans++] = ch;
  if (dlv_self_chans(n) != 0) {
    d->nchans--;
    dmq__free(n, ch);
    return DMQ_ENOMEM;
  }
  dmq__node_self_changed(n);
  if (out != NULL)
    *out = ch;
  return 0;
}

int dmq_channel_close(dmq_channel_t *ch) {
  if (ch == NULL)
    return DMQ_EINVAL;
  dmq_node_t *n = ch->node;
  dlv_t *d = n->dlv;
  if (d->cur_chan == ch || dmq__in_sync_cb(n))
    return DMQ_EBUSY;
  uint32_t i = 0;
  while (i < d->nchans && d->chans[i] != ch)
    i++;
  if (i == d->nchans)
    return DMQ_ENOENT;
  memmove(&d->chans[i], &d->chans[i + 1],
          (d->nchans - i - 1) * sizeof(d->chans[0]));
  d->nchans--;
  if (dlv_self_chans(n) != 0) {
    memmove(&d->chans[i + 1], &d->chans[i],
            (d->nchans - i) * sizeof(d->chans[0]));
    d->chans[i] = ch;
    d->nchans++;
    return DMQ_ENOMEM;
  }
  dmq__node_self_changed(n);
  /* messages held for it are now rejected at the next delivery pass */
  if (ch->paused)
    for (dlv_peer_t *p = d->peers; p != NULL; p = p->all_next)
      if (p->nbuf > 0)
        dmq__dlv_want_ready(d, p);
  dmq__free(n, ch);
  return 0;
}

int dmq_channel_pause(dmq_channel_t *ch, int paused) {
  if (ch == NULL)
    return DMQ_EINVAL;
  if (dmq__in_sync_cb(ch->node))
    return DMQ_EBUSY;
  int was = ch->paused;
  ch->paused = paused != 0;
  if (was && !ch->paused) {
    dlv_t *d = ch->node->dlv;
    for (dlv_peer_t *p = d->peers; p != NULL; p = p->all_next)
      if (p->nbuf > 0)
        dmq__dlv_want_ready(d, p);
  }
  return 0;
}

int dmq_member_serves(const dmq_node_t *n, const char *name,
                      const char *channel) {
  size_t cl;
  if (n == NULL || name == NULL || !dmq__dlv_valid_chan(channel, &cl))
    return 0;
  size_t l = strlen(name);
  if (l == 0 || l > DMQ_MAX_NAME)
    return 0;
  const dmq__member_t *m = dmq__member_find(n, name, l);
  return m != NULL &&
         dmq__member_serves(m, dmq__hash(channel, cl), channel, cl);
}

int dmq_delivery_stats_sized(const dmq_node_t *n, dmq_delivery_stats_t *dst,
                             size_t size) {
  if (n == NULL || n->dlv == NULL || dst == NULL || size < DLV_STATS_MIN_SIZE)
    return DMQ_EINVAL;
  const dlv_t *d = n->dlv;
  dmq_delivery_stats_t st = d->st, *out = &st;
  out->queued_msgs = out->queued_bytes = out->inflight = 0;
  out->rx_buffered = out->rx_buffered_bytes = 0;
  for (const dlv_peer_t *p = d->peers; p != NULL; p = p->all_next) {
    out->queued_msgs += p->q_msgs;
    out->queued_bytes += p->q_bytes;
    out->inflight += p->inflight;
    out->rx_buffered += p->nbuf;
    out->rx_buffered_bytes += p->buf_bytes + p->ra_cap;
  }
  return dmq__sized_out(dst, size, &st, sizeof(st), DLV_STATS_MIN_SIZE);
}

int dmq_member_channels(const dmq_node_t *n, const char *member,
                        const char **names, size_t cap, size_t *count) {
  if (n == NULL || member == NULL || count == NULL ||
      (names == NULL && cap > 0))
    return DMQ_EINVAL;
  size_t l = strnlen(member, DMQ_MAX_NAME + 1);
  if (l == 0 || l > DMQ_MAX_NAME)
    return DMQ_EINVAL;
  const dmq__member_t *m = dmq__member_find(n, member, l);
  if (m == NULL)
    return DMQ_ENOENT;
  dmq__slice_t v[DMQ_MAX_CHANNELS];
  uint32_t k = dmq__member_chans(m, v);
  /* by name (the set is kept by hash); the names are NUL-terminated */
  for (uint32_t i = 1; i < k; i++) {
    dmq__slice_t x = v[i];
    uint32_t j = i;
    while (j > 0 && strcmp(v[j - 1].p, x.p) > 0) {
      v[j] = v[j - 1];
      j--;
    }
    v[j] = x;
  }
  *count = k;
  for (uint32_t i = 0; i < k && i < cap; i++)
    names[i] = v[i].p;
  return k > cap ? DMQ_ETOOBIG : 0;
}
