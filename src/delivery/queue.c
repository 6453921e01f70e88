/* libdmq - queued delivery, the sending API (dmq_send, dmq_broadcast,
 * dmq_request, dmq_reply, dmq_delivery_cancel) and the per-peer sender
 * queue: admission, one enqueue path for unicast and broadcast, TTLs,
 * removal. */
#include "delivery/delivery_int.h"
#include "sized.h"

static dlv_msg_t *dlv_msg_alloc(dmq_node_t *n) {
  dlv_msg_t *m = dlv_slab_get(n, &n->dlv->slab_msgs, sizeof(*m));
  if (m == NULL)
    return NULL;
  m->ttl.idx = DLV_NO_IDX;
  m->ttl.kind = DLV_T_TTL;
  return m;
}

void dmq__dlv_msg_put(dmq_node_t *n, dlv_msg_t *m) {
  dmq__slab_put(&n->dlv->slab_msgs, m);
}

/* Free a chain of msgs linked by next (not yet queued). */
static void dlv_msg_chain_put(dmq_node_t *n, dlv_msg_t *c) {
  while (c != NULL) {
    dlv_msg_t *nx = c->next;
    dmq__dlv_msg_put(n, c);
    c = nx;
  }
}

/* The payload class of len bytes, DLV_BUF_CLASSES when above DLV_MID. */
static unsigned dlv_buf_class(size_t len) {
  unsigned c = 0;
  while (c < DLV_BUF_CLASSES && len > dlv_buf_class_size[c])
    c++;
  return c;
}

uint8_t *dmq__dlv_buf_alloc(dmq_node_t *n, size_t len) {
  unsigned c = dlv_buf_class(len);
  if (c == DLV_BUF_CLASSES)
    return dmq__malloc(n, len);
  return dmq__slab_get(n, &n->dlv->slab_buf[c]);
}

void dmq__dlv_buf_put(dmq_node_t *n, uint8_t *b, size_t len) {
  if (b == NULL)
    return;
  unsigned c = dlv_buf_class(len);
  if (c == DLV_BUF_CLASSES)
    dmq__free(n, b);
  else
    dmq__slab_put(&n->dlv->slab_buf[c], b);
}

/* Start the TTL of a copy (rep: its last fragment, on peer p). Copies sent
 * with one TTL expire in queue order, so they join the peer's FIFO and
 * cost no heap operation (a heap timer per queued copy would make each ack
 * an O(log n) walk through cold memory); a copy with a shorter TTL than the
 * FIFO's tail gets a heap timer of its own. */
static void dlv_ttl_arm(dlv_t *d, dlv_peer_t *p, dlv_msg_t *rep) {
  if (p->tq_tail != NULL && rep->deadline < p->tq_tail->deadline) {
    dlv_timer_set(d, &rep->ttl, rep->deadline);
    return;
  }
  rep->in_tq = 1;
  DMQ__DL_APPEND(rep, tq_prev, tq_next, &p->tq_head, &p->tq_tail);
  if (p->tq_t.idx == DLV_NO_IDX || p->tq_t.at > rep->deadline)
    dlv_timer_set(d, &p->tq_t, rep->deadline);
}

void dmq__dlv_ttl_disarm(dlv_t *d, dlv_peer_t *p, dlv_msg_t *rep) {
  if (!rep->in_tq) {
    dlv_timer_del(d, &rep->ttl);
    return;
  }
  rep->in_tq = 0;
  DMQ__DL_UNLINK(rep, tq_prev, tq_next, &p->tq_head, &p->tq_tail);
  if (p->tq_head == NULL)
    dlv_timer_del(d, &p->tq_t);
}

void dmq__dlv_on_tq(dmq_node_t *n, dlv_peer_t *p) {
  while (p->tq_head != NULL && p->tq_head->deadline <= n->now)
    dmq__dlv_abandon_copy(n, p->tq_head, DMQ_OUTCOME_EXPIRED);
  if (p->tq_head != NULL)
    dlv_timer_set(n->dlv, &p->tq_t, p->tq_head->deadline);
}

uint64_t dmq__dlv_base(const dlv_peer_t *p) {
  return p->head != NULL ? p->head->seq : p->next_seq;
}

size_t dmq__dlv_est(const dlv_msg_t *m) {
  return (size_t)m->len + m->op->chan_len + DLV_DATA_EST;
}

/* Remove msg from its peer's reliable queue and drop it. */
void dmq__dlv_msg_remove(dmq_node_t *n, dlv_peer_t *p, dlv_msg_t *m) {
  if (p->unsent == m) {
    p->unsent = m->next;
    p->unsent_est -= dmq__dlv_est(m);
  } else if (m->ntx == 0) {
    p->unsent_est -= dmq__dlv_est(m); /* unsent, behind p->unsent */
  }
  if (m->ntx > 0) {
    p->inflight--;
    p->inflight_est -= dmq__dlv_est(m);
  }
  if (m->rtx)
    p->nrtx--;
  DMQ__DL_UNLINK(m, prev, next, &p->head, &p->tail);
  dlv_op_t *op = m->op;
  dmq__dlv_msg_put(n, m);
  dmq__dlv_op_unref(n, op);
}

/* Give up on one copy (all its fragments): TTL, cancel, death, shutdown. */
void dmq__dlv_abandon_copy(dmq_node_t *n, dlv_msg_t *rep, dmq_outcome_t oc) {
  dlv_t *d = n->dlv;
  dlv_peer_t *p = rep->peer;
  dlv_op_t *op = rep->op;
  dlv_msg_t *first = rep;
  while (first->prev != NULL && first->prev->op == op && !first->prev->rep)
    first = first->prev;
  int was_head = p->head == first;
  dmq__dlv_copy_done(n, rep, oc);
  dlv_msg_t *m = first, *stop = rep->next;
  while (m != stop) {
    dlv_msg_t *nx = m->next;
    dmq__dlv_msg_remove(n, p, m);
    m = nx;
  }
  /* The receiver may hold later messages waiting for these: tell it the new
   * base with a probe if nothing else goes out soon. */
  if (was_head && p->head != NULL && p->head->ntx > 0) {
    p->need_probe = 1;
    dmq__dlv_want_flush(d, p);
  }
  if (p->inflight == 0)
    dlv_timer_del(d, &p->rto_t);
}

/* Fail everything queued for p (death, leave, restart, shutdown). */
void dmq__dlv_fail_peer(dmq_node_t *n, dlv_peer_t *p, dmq_outcome_t oc) {
  dlv_t *d = n->dlv;
  while (p->tail != NULL)
    dmq__dlv_abandon_copy(n, p->tail,
                          oc); /* the tail is always a last fragment */
  while (p->be_head != NULL) {
    dlv_msg_t *m = p->be_head;
    p->be_head = m->next;
    p->q_msgs--;
    dlv_q_sub(d, p, m->len);
    d->st.dropped_be++;
    dlv_op_t *op = m->op;
    dmq__dlv_msg_put(n, m);
    dmq__dlv_op_unref(n, op);
  }
  p->be_tail = NULL;
  p->be_est = 0;
  while (p->reqs != NULL)
    dmq__dlv_op_finish(n, p->reqs, oc);
  dlv_timer_del(d, &p->rto_t);
  dlv_timer_del(d, &p->tq_t);
  p->need_probe = 0;
  dmq__dlv_check_writable(d, p);
}

static int dlv_check_send(dmq_node_t *n, const char *channel, const void *data,
                          size_t len, size_t *chan_len) {
  if (n == NULL || n->dlv == NULL || !dmq__dlv_valid_chan(channel, chan_len) ||
      (data == NULL && len > 0))
    return DMQ_EINVAL;
  if (dmq__in_sync_cb(n))
    return DMQ_EBUSY;
  if (n->dlv->closing)
    return DMQ_ECLOSED;
  if (!n->started || n->leaving)
    return DMQ_ESTATE;
  if (len > n->dlv->cfg.max_message)
    return DMQ_ETOOBIG;
  return 0;
}

static void dlv_set_now(dmq_node_t *n, uint64_t now) {
  if (now > n->now)
    n->now = now;
}

/* How one copy travels to p: fragments (count) or one stream message. */
static int dlv_plan(dmq_node_t *n, dlv_peer_t *p, const dlv_req_t *r,
                    uint32_t *nfrag, int *stream) {
  size_t frag = dmq__dlv_frag_max(n, r->chan_len);
  *nfrag = 1;
  *stream = 0;
  if (r->len <= frag)
    return 0;
  if (dmq__has_separate_stream(n, dmq__member_addr(p->m))) {
    *stream = 1;
    return 0;
  }
  if (r->kind == DLV_K_BE)
    return DMQ_ETOOBIG;
  *nfrag = (uint32_t)((r->len + frag - 1) / frag);
  return 0;
}

/* Room for one more copy of len bytes for p, `pending` bytes being
 * admitted already by the same call (other copies of a broadcast): p's
 * queue, then the node-wide limit. When there is none, the writable
 * callback is asked for (p's, or the node-wide one). A queue holding
 * nothing always takes one message. */
static int dlv_room(dlv_t *d, dlv_peer_t *p, size_t len, size_t pending) {
  if (p->q_msgs + 1 > d->cfg.queue_msgs ||
      (p->q_bytes > 0 && p->q_bytes + len > d->cfg.queue_bytes)) {
    p->want_wr = 1;
    return 0;
  }
  size_t total = d->q_total + pending;
  if (total > 0 && total + len > d->cfg.max_queued_bytes) {
    d->want_wr_all = 1;
    return 0;
  }
  return 1;
}

/* A destination that restarted without us noticing through gossip yet. */
static void dlv_sync_gen(dmq_node_t *n, dlv_peer_t *p) {
  if (p->tx_gen != p->m->gen)
    dmq__delivery_member_changed(n, p->m, DMQ_OUTCOME_DEAD);
}

static dlv_op_t *dlv_new_op(dmq_node_t *n, const dlv_req_t *r) {
  dlv_op_t *op = dmq__dlv_op_alloc(n);
  if (op == NULL)
    return NULL;
  op->data = dmq__dlv_buf_alloc(n, r->len);
  if (op->data == NULL) {
    dmq__dlv_op_put(n, op);
    return NULL;
  }
  if (r->len > 0)
    memcpy(op->data, r->data, r->len);
  op->len = (uint32_t)r->len;
  op->kind = (uint8_t)r->kind;
  op->cb = r->cb;
  op->ud = r->ud;
  op->req_id = r->req_id;
  op->chan_len = (uint8_t)r->chan_len;
  memcpy(op->chan, r->chan, r->chan_len);
  op->id = n->dlv->next_id++;
  /* ops with an outcome hold themselves until it ran */
  if (r->kind == DLV_K_SEND || r->kind == DLV_K_BCAST || r->kind == DLV_K_REQ)
    op->refs = 1;
  else
    op->state = DLV_S_FINISHED;
  return op;
}

static int dlv_alloc_chain(dmq_node_t *n, uint32_t count, dlv_msg_t **out) {
  dlv_msg_t *c = NULL;
  for (uint32_t i = 0; i < count; i++) {
    dlv_msg_t *m = dlv_msg_alloc(n);
    if (m == NULL) {
      dlv_msg_chain_put(n, c);
      return DMQ_ENOMEM;
    }
    m->next = c;
    c = m;
  }
  *out = c;
  return 0;
}

/* Queue best-effort copy m of op for p. */
static inline void dlv_link_be(dlv_peer_t *p, dlv_op_t *op, dlv_msg_t *m,
                               int stream, uint64_t deadline) {
  m->op = op;
  m->peer = p;
  m->len = op->len;
  m->flags = 0;
  m->stream = (uint8_t)stream;
  m->deadline = deadline;
  m->next = NULL;
  op->refs++;
  if (p->be_tail != NULL)
    p->be_tail->next = m;
  else
    p->be_head = m;
  p->be_tail = m;
  p->be_est += dmq__dlv_est(m);
}

/* Append reliable fragment m to p's send list; the last fragment of a
 * copy represents it (op->reps) and carries its time to live. */
static inline void dlv_link_frag(dlv_t *d, dlv_peer_t *p, dlv_op_t *op,
                                 dlv_msg_t *m) {
  DMQ__DL_APPEND(m, prev, next, &p->head, &p->tail);
  if (p->unsent == NULL)
    p->unsent = m;
  p->unsent_est += dmq__dlv_est(m);
  if (m->rep) {
    DMQ__DL_PUSH(m, rep_prev, rep_next, &op->reps);
    dlv_ttl_arm(d, p, m);
  }
}

/* Queue one copy of op for p from the pre-allocated chain (takes nfrag). */
static dlv_msg_t *dlv_link_copy(dmq_node_t *n, dlv_peer_t *p, dlv_op_t *op,
                                dlv_msg_t *chain, uint32_t nfrag, int stream,
                                uint8_t flags, uint64_t deadline) {
  dlv_t *d = n->dlv;
  dlv_msg_t *rest = chain;
  if (op->kind == DLV_K_BE) {
    dlv_msg_t *m = rest;
    rest = m->next;
    dlv_link_be(p, op, m, stream, deadline);
  } else {
    size_t frag = nfrag > 1 ? dmq__dlv_frag_max(n, op->chan_len) : op->len;
    uint32_t off = 0;
    for (uint32_t i = 0; i < nfrag; i++) {
      dlv_msg_t *m = rest;
      rest = m->next;
      m->op = op;
      m->peer = p;
      op->refs++;
      m->seq = p->next_seq++;
      m->off = off;
      m->len = (uint32_t)(op->len - off < frag ? op->len - off : frag);
      off += m->len;
      m->flags = (uint8_t)(flags | DMQ__DATA_RELIABLE |
                           (i + 1 < nfrag ? DMQ__DATA_MORE : 0));
      m->stream = (uint8_t)stream;
      m->deadline = deadline;
      m->rep = i + 1 == nfrag;
      dlv_link_frag(d, p, op, m);
    }
    op->ncopies++;
  }
  p->q_msgs++;
  dlv_q_add(d, p, op->len);
  dmq__dlv_want_flush(d, p);
  return rest;
}

static void dlv_after_queue(dmq_node_t *n, dlv_peer_t *p) {
  if (p->unsent_est + p->be_est >= n->cfg.mtu)
    dmq__dlv_flush_peer(n, p, 1);
}

static uint8_t dlv_kind_flags(int kind) {
  return kind == DLV_K_REQ     ? DMQ__DATA_REQUEST
         : kind == DLV_K_REPLY ? DMQ__DATA_REPLY
                               : 0;
}

/* Leave out the destinations without room: dests is compacted in place to
 * those that have room, *kept of them, needing *total fragments. */
static int dlv_admit(dmq_node_t *n, const dlv_req_t *r, dmq__member_t **dests,
                     uint32_t nd, uint32_t *kept, uint32_t *total) {
  dlv_t *d = n->dlv;
  size_t pending = 0;
  *kept = *total = 0;
  for (uint32_t i = 0; i < nd; i++) {
    dlv_peer_t *p = dmq__dlv_peer_get(n, dests[i]);
    if (p == NULL)
      return DMQ_ENOMEM;
    dlv_sync_gen(n, p);
    uint32_t nf;
    int st;
    int rc = dlv_plan(n, p, r, &nf, &st);
    if (rc != 0)
      return rc;
    if (!dlv_room(d, p, r->len, pending))
      continue;
    *total += nf;
    pending += r->len;
    dests[(*kept)++] = dests[i];
  }
  return 0;
}

/* Everything the enqueue can fail on, before anything is queued: the id
 * slot, the timers, the op and its chain of total messages. */
static int dlv_reserve(dmq_node_t *n, const dlv_req_t *r, int has_id,
                       uint32_t timers, uint32_t total, dlv_op_t **op,
                       dlv_msg_t **chain) {
  dlv_t *d = n->dlv;
  if (has_id && dmq__dlv_ids_reserve(n, 1) != 0)
    return DMQ_ENOMEM;
  if (dlv_heap_reserve(n, timers) != 0)
    return DMQ_ENOMEM;
  *op = dlv_new_op(n, r);
  *chain = NULL;
  if (*op == NULL || dlv_alloc_chain(n, total, chain) != 0) {
    if (*op != NULL) {
      dmq__dlv_buf_put(n, (*op)->data, (*op)->len);
      dmq__dlv_op_put(n, *op);
    }
    dlv_heap_release(d, timers);
    return DMQ_ENOMEM;
  }
  return 0;
}

/* A request's timeout and its place on the peer's list of requests. */
static void dlv_req_arm(dlv_t *d, dlv_op_t *op, dlv_peer_t *p,
                        uint64_t deadline) {
  dlv_timer_set(d, &op->tmo, deadline);
  op->rq_peer = p;
  DMQ__DL_PUSH(op, rq_prev, rq_next, &p->reqs);
}

/* A partial broadcast: the destinations left out count as failed. */
static void dlv_note_refused(dlv_t *d, const dlv_req_t *r, dlv_op_t *op,
                             uint32_t refused) {
  d->st.bcast_refused += refused;
  if (r->kind == DLV_K_BE) {
    d->st.dropped_be += refused;
  } else {
    op->failed = refused;
    op->refused = refused;
    op->fail_outcome = DMQ_OUTCOME_QUEUE_FULL;
  }
}

/* The one enqueue path, for unicast of any kind (nd = 1) and broadcast:
 * the destinations without room are left out (DMQ_EAGAIN and nothing
 * queued when none has room, or when a unicast's has not), then one op
 * gets a copy per destination, each copy as many fragments as its path
 * needs; a broadcast counts the destinations left out as failed
 * (DMQ_OUTCOME_QUEUE_FULL). */
static int dlv_enqueue(dmq_node_t *n, const dlv_req_t *r, dmq__member_t **dests,
                       uint32_t nd, uint64_t now, dmq_msg_id_t *id) {
  dlv_t *d = n->dlv;
  dlv_set_now(n, now);
  uint32_t total, kept;
  int rc = dlv_admit(n, r, dests, nd, &kept, &total);
  if (rc != 0)
    return rc;
  uint32_t refused = nd - kept;
  if (kept == 0 && nd > 0) {
    d->st.refused_full++;
    return DMQ_EAGAIN;
  }
  nd = kept;
  /* a TTL timer per reliable copy, and a request's timeout */
  int has_id =
      r->kind == DLV_K_SEND || r->kind == DLV_K_REQ || r->kind == DLV_K_BCAST;
  uint32_t timers =
      (r->kind == DLV_K_BE ? 0 : nd) + (r->kind == DLV_K_REQ ? 1 : 0);
  dlv_op_t *op;
  dlv_msg_t *chain;
  rc = dlv_reserve(n, r, has_id, timers, total, &op, &chain);
  if (rc != 0)
    return rc;
  uint32_t ttl = r->kind == DLV_K_REQ ? r->timeout_ms
                 : r->ttl_ms          ? r->ttl_ms
                                      : d->cfg.ttl_ms;
  uint64_t deadline = n->now + ttl;
  if (r->kind == DLV_K_SEND || r->kind == DLV_K_REQ)
    memcpy(op->dest, dests[0]->name, (size_t)dests[0]->name_len + 1);
  if (has_id)
    dmq__dlv_ids_put(d, op);
  if (r->kind == DLV_K_REQ)
    dlv_req_arm(d, op, dmq__member_peer(dests[0]), deadline);
  if (r->kind == DLV_K_BE)
    op->refs++; /* held while the copies are linked */
  if (refused > 0)
    dlv_note_refused(d, r, op, refused);
  for (uint32_t i = 0; i < nd; i++) {
    dlv_peer_t *p = dmq__member_peer(dests[i]);
    uint32_t nf;
    int st;
    dlv_plan(n, p, r, &nf, &st);
    chain = dlv_link_copy(n, p, op, chain, nf, st, dlv_kind_flags(r->kind),
                          deadline);
  }
  d->used = 1;
  if (id != NULL)
    *id = op->id;
  if (r->kind == DLV_K_BCAST && nd == 0)
    dmq__dlv_op_finish(n, op, DMQ_OUTCOME_DELIVERED); /* next tick, 0 / 0 */
  if (r->kind == DLV_K_BE)
    dmq__dlv_op_unref(n, op);
  for (uint32_t i = 0; i < nd; i++)
    dlv_after_queue(n, dmq__member_peer(dests[i]));
  return 0;
}

static int dlv_lookup_dest(const dmq_node_t *n, const char *dest,
                           dmq__member_t **out) {
  if (dest == NULL)
    return DMQ_EINVAL;
  size_t l = strnlen(dest, DMQ_MAX_NAME + 1);
  if (l == 0 || l > DMQ_MAX_NAME)
    return DMQ_EINVAL;
  dmq__member_t *m = dmq__member_find(n, dest, l);
  if (m == NULL || m->is_self || m->state > DMQ_MEMBER_SUSPECT)
    return DMQ_ENOENT;
  *out = m;
  return 0;
}

/* The 0.3.0 layout of dmq_send_opts_t ends at n_exclude (src/sized.h). */
#define DLV_SEND_OPTS_MIN_SIZE DMQ__SIZE_UPTO(dmq_send_opts_t, n_exclude)
DMQ__SIZE_CHECK(dmq_send_opts_t, DLV_SEND_OPTS_MIN_SIZE);

static void dlv_send_opts_defaults(dmq_send_opts_t *o) {
  memset(o, 0, sizeof(*o));
  o->size = sizeof(*o);
  o->mode = DMQ_SEND_BEST_EFFORT;
}

int dmq_send_opts_init_sized(dmq_send_opts_t *o, size_t size) {
  dmq_send_opts_t d;
  dlv_send_opts_defaults(&d);
  return dmq__sized_init(o, size, &d, sizeof(d), DLV_SEND_OPTS_MIN_SIZE);
}

/* A request of kind for (channel, data, len), once the send is checked. */
static int dlv_req_begin(dmq_node_t *n, dlv_req_t *r, int kind,
                         const char *channel, const void *data, size_t len) {
  memset(r, 0, sizeof(*r));
  r->kind = kind;
  r->chan = channel;
  r->data = data;
  r->len = len;
  return dlv_check_send(n, channel, data, len, &r->chan_len);
}

/* The request of dmq_send() / dmq_broadcast() from their options: kind
 * `reliable` for DMQ_SEND_RELIABLE (which needs a callback), best effort
 * otherwise. */
static int dlv_from_opts(dlv_req_t *r, const dmq_send_opts_t *opts,
                         int reliable_kind) {
  /* per message: the caller's layout is the current one but for callers
   * built against other headers, which pay for a copy */
  dmq_send_opts_t tmp;
  if (opts != NULL && opts->size != sizeof(*opts)) {
    dlv_send_opts_defaults(&tmp);
    if (dmq__sized_in(&tmp, sizeof(tmp), opts, opts->size,
                      DLV_SEND_OPTS_MIN_SIZE) != 0)
      return DMQ_EINVAL;
    opts = &tmp;
  }
  int reliable = opts != NULL && opts->mode == DMQ_SEND_RELIABLE;
  if (opts != NULL && opts->mode != DMQ_SEND_RELIABLE &&
      opts->mode != DMQ_SEND_BEST_EFFORT)
    return DMQ_EINVAL;
  if (reliable && opts->cb == NULL)
    return DMQ_EINVAL;
  r->kind = reliable ? reliable_kind : DLV_K_BE;
  r->ttl_ms = opts != NULL ? opts->ttl_ms : 0;
  r->cb = reliable ? opts->cb : NULL;
  r->ud = opts != NULL ? opts->user_data : NULL;
  return 0;
}

int dmq_send(dmq_node_t *n, const char *dest, const char *channel,
             const void *data, size_t len, const dmq_send_opts_t *opts,
             uint64_t now, dmq_msg_id_t *id) {
  dlv_req_t r;
  dmq__member_t *m;
  int rc = dlv_req_begin(n, &r, DLV_K_SEND, channel, data, len);
  if (rc != 0)
    return rc;
  if ((rc = dlv_from_opts(&r, opts, DLV_K_SEND)) != 0)
    return rc;
  if ((rc = dlv_lookup_dest(n, dest, &m)) != 0)
    return rc;
  return dlv_enqueue(n, &r, &m, 1, now, id);
}

int dmq_request(dmq_node_t *n, const char *dest, const char *channel,
                const void *data, size_t len, uint32_t timeout_ms,
                dmq_outcome_cb cb, void *ud, uint64_t now, dmq_msg_id_t *id) {
  dlv_req_t r;
  dmq__member_t *m;
  int rc = dlv_req_begin(n, &r, DLV_K_REQ, channel, data, len);
  if (rc != 0)
    return rc;
  if (cb == NULL)
    return DMQ_EINVAL;
  if ((rc = dlv_lookup_dest(n, dest, &m)) != 0)
    return rc;
  r.cb = cb;
  r.ud = ud;
  r.timeout_ms = timeout_ms ? timeout_ms : n->dlv->cfg.request_timeout_ms;
  return dlv_enqueue(n, &r, &m, 1, now, id);
}

int dmq_reply(dmq_node_t *n, dmq_reply_handle_t *h, const void *data,
              size_t len, uint64_t now) {
  dlv_req_t r;
  if (h == NULL || !h->valid)
    return DMQ_EINVAL;
  int rc = dlv_req_begin(n, &r, DLV_K_REPLY, h->channel, data, len);
  if (rc != 0)
    return rc;
  size_t l = strnlen(h->from, DMQ_MAX_NAME + 1);
  if (l == 0 || l > DMQ_MAX_NAME)
    return DMQ_EINVAL;
  dmq__member_t *m = dmq__member_find(n, h->from, l);
  if (m == NULL || m->is_self || m->state > DMQ_MEMBER_SUSPECT ||
      m->gen != h->from_gen)
    return DMQ_ENOENT;
  r.req_id = h->req_id;
  rc = dlv_enqueue(n, &r, &m, 1, now, NULL);
  if (rc == 0)
    h->valid = 0;
  return rc;
}

/* Is m in opts->exclude (checked by the caller)? */
static int dlv_excluded(const dmq__member_t *m, const dmq_send_opts_t *opts) {
  if (opts == NULL)
    return 0;
  for (size_t i = 0; i < opts->n_exclude; i++) {
    const char *x = opts->exclude[i];
    if (strncmp(x, m->name, (size_t)m->name_len + 1) == 0)
      return 1;
  }
  return 0;
}

int dmq_broadcast(dmq_node_t *n, const char *channel, const void *data,
                  size_t len, const dmq_send_opts_t *opts, uint64_t now,
                  dmq_msg_id_t *id) {
  dlv_req_t r;
  int rc = dlv_req_begin(n, &r, DLV_K_BCAST, channel, data, len);
  if (rc != 0)
    return rc;
  if ((rc = dlv_from_opts(&r, opts, DLV_K_BCAST)) != 0)
    return rc;
  if (opts != NULL && opts->n_exclude > 0) {
    if (opts->exclude == NULL)
      return DMQ_EINVAL;
    for (size_t i = 0; i < opts->n_exclude; i++)
      if (opts->exclude[i] == NULL)
        return DMQ_EINVAL;
  }
  dlv_t *d = n->dlv;
  dlv_set_now(n, now);
  /* destinations */
  if (d->dests_cap < n->nmembers) {
    dmq__member_t **nd = dmq__realloc(n, d->dests, n->nmembers * sizeof(*nd));
    if (nd == NULL)
      return DMQ_ENOMEM;
    d->dests = nd;
    d->dests_cap = n->nmembers;
  }
  uint64_t h = dmq__hash(channel, r.chan_len);
  uint32_t nd = 0;
  for (uint32_t i = 0; i < n->nmembers; i++) {
    dmq__member_t *m = n->members[i];
    if (!m->is_self && m->state <= DMQ_MEMBER_SUSPECT &&
        dmq__member_serves(m, h, channel, r.chan_len) && !dlv_excluded(m, opts))
      d->dests[nd++] = m;
  }
  return dlv_enqueue(n, &r, d->dests, nd, now, id);
}

int dmq_delivery_cancel(dmq_node_t *n, dmq_msg_id_t id) {
  if (n == NULL || n->dlv == NULL)
    return DMQ_EINVAL;
  if (dmq__in_sync_cb(n))
    return DMQ_EBUSY;
  dlv_op_t *op = dmq__dlv_ids_get(n->dlv, id);
  if (op == NULL || op->state != DLV_S_PENDING)
    return DMQ_ENOENT;
  op->refs++; /* keep it while its copies go */
  dmq__dlv_op_finish(n, op, DMQ_OUTCOME_CANCELLED);
  while (op->reps != NULL)
    dmq__dlv_abandon_copy(n, op->reps, DMQ_OUTCOME_CANCELLED);
  dmq__dlv_op_unref(n, op);
  dmq__flush_events(n); /* the outcome runs before we return */
  return 0;
}
