/* libdmq - queued delivery, accepted sends (ops): allocation, the message id
 * map, outcomes of copies and ops, request replies. */
#include "delivery/delivery_int.h"

dlv_op_t *dmq__dlv_op_alloc(dmq_node_t *n) {
  dlv_op_t *op = dlv_slab_get(n, &n->dlv->slab_ops, sizeof(*op));
  if (op == NULL)
    return NULL;
  op->tmo.idx = DLV_NO_IDX;
  op->tmo.kind = DLV_T_REQ;
  return op;
}

void dmq__dlv_op_put(dmq_node_t *n, dlv_op_t *op) {
  dmq__slab_put(&n->dlv->slab_ops, op);
}

static uint32_t dlv_id_slot(const dlv_t *d, uint64_t id) {
  return (uint32_t)((id * 0x9e3779b97f4a7c15ULL) >> 32) & (d->ids_cap - 1);
}

int dmq__dlv_ids_reserve(dmq_node_t *n, uint32_t k) {
  dlv_t *d = n->dlv;
  if ((d->ids_n + k) * 2 <= d->ids_cap)
    return 0;
  uint32_t nc = d->ids_cap ? d->ids_cap * 2 : DLV_INIT_CAP;
  while ((d->ids_n + k) * 2 > nc)
    nc *= 2;
  dlv_op_t **ni = dmq__malloc(n, nc * sizeof(*ni));
  if (ni == NULL)
    return DMQ_ENOMEM;
  memset(ni, 0, nc * sizeof(*ni));
  dlv_op_t **old = d->ids;
  uint32_t oc = d->ids_cap;
  d->ids = ni;
  d->ids_cap = nc;
  for (uint32_t i = 0; i < oc; i++) {
    if (old[i] == NULL)
      continue;
    uint32_t j = dlv_id_slot(d, old[i]->id);
    while (ni[j] != NULL)
      j = (j + 1) & (nc - 1);
    ni[j] = old[i];
  }
  dmq__free(n, old);
  return 0;
}

void dmq__dlv_ids_put(dlv_t *d, dlv_op_t *op) {
  uint32_t j = dlv_id_slot(d, op->id);
  while (d->ids[j] != NULL)
    j = (j + 1) & (d->ids_cap - 1);
  d->ids[j] = op;
  d->ids_n++;
}

dlv_op_t *dmq__dlv_ids_get(const dlv_t *d, uint64_t id) {
  if (d->ids_n == 0)
    return NULL;
  uint32_t j = dlv_id_slot(d, id);
  while (d->ids[j] != NULL) {
    if (d->ids[j]->id == id)
      return d->ids[j];
    j = (j + 1) & (d->ids_cap - 1);
  }
  return NULL;
}

static void dlv_ids_del(dlv_t *d, dlv_op_t *op) {
  uint32_t mask = d->ids_cap - 1;
  uint32_t i = dlv_id_slot(d, op->id);
  if (d->ids_n == 0)
    return;
  while (d->ids[i] != op) {
    if (d->ids[i] == NULL)
      return;
    i = (i + 1) & mask;
  }
  d->ids_n--;
  DMQ__OA_REMOVE(dlv_op_t *, d->ids, mask, i, dlv_id_slot(d, c->id));
}

void dmq__dlv_op_unref(dmq_node_t *n, dlv_op_t *op) {
  if (--op->refs > 0)
    return;
  if (op->data != NULL)
    dmq__dlv_buf_put(n, op->data, op->len);
  dmq__dlv_op_put(n, op);
}

static void dlv_count_outcome(dlv_t *d, dmq_outcome_t oc) {
  switch (oc) {
  case DMQ_OUTCOME_EXPIRED:
    d->st.expired++;
    break;
  case DMQ_OUTCOME_DEAD:
  case DMQ_OUTCOME_LEFT:
    d->st.dead++;
    break;
  case DMQ_OUTCOME_CANCELLED:
    d->st.cancelled++;
    break;
  default:
    break;
  }
}

static void dlv_rq_unlink(dlv_op_t *op) {
  dlv_peer_t *p = op->rq_peer;
  if (p == NULL)
    return;
  dlv_op_t *no_tail;
  DMQ__DL_UNLINK(op, rq_prev, rq_next, &p->reqs, &no_tail);
  op->rq_prev = op->rq_next = NULL;
  op->rq_peer = NULL;
}

/* The op has its outcome: queue the callback (exactly once). */
void dmq__dlv_op_finish(dmq_node_t *n, dlv_op_t *op, dmq_outcome_t oc) {
  dlv_t *d = n->dlv;
  if (op->state != DLV_S_PENDING)
    return;
  op->state = DLV_S_DONE;
  op->outcome = (uint8_t)oc;
  dlv_ids_del(d, op);
  if (op->kind == DLV_K_REQ) {
    dlv_timer_del(d, &op->tmo);
    dlv_heap_release(d, 1);
    dlv_rq_unlink(op);
  }
  dlv_count_outcome(d, oc);
  op->next = NULL;
  if (d->done_tail != NULL)
    d->done_tail->next = op;
  else
    d->done_head = op;
  d->done_tail = op;
  dmq__wake(d->node);
}

dmq_outcome_t dmq__dlv_rej_outcome(uint8_t reason) {
  return reason == DMQ__REJ_TOO_BIG ? DMQ_OUTCOME_TOO_BIG
                                    : DMQ_OUTCOME_UNKNOWN_DEST;
}

void dmq__dlv_check_writable(dlv_t *d, dlv_peer_t *p) {
  if (d->want_wr_all && d->q_total <= d->cfg.max_queued_bytes / 2) {
    d->want_wr_all = 0;
    if (d->wr_cb != NULL) {
      d->wr_all_pending = 1;
      dmq__wake(d->node);
    }
  }
  if (p->want_wr && p->q_msgs <= d->cfg.queue_msgs / 2 &&
      p->q_bytes <= d->cfg.queue_bytes / 2) {
    p->want_wr = 0;
    if (d->wr_cb != NULL)
      dmq__dlv_want_wr(d, p);
  }
}

/* One copy (the copy whose last fragment is rep) has its outcome. */
void dmq__dlv_copy_done(dmq_node_t *n, dlv_msg_t *rep, dmq_outcome_t oc) {
  dlv_t *d = n->dlv;
  dlv_op_t *op = rep->op;
  dlv_peer_t *p = rep->peer;
  dmq__dlv_ttl_disarm(d, p, rep);
  dlv_heap_release(d, 1);
  dlv_msg_t *no_tail;
  DMQ__DL_UNLINK(rep, rep_prev, rep_next, &op->reps, &no_tail);
  rep->rep_prev = rep->rep_next = NULL;
  rep->rep = 0;
  p->q_msgs--;
  dlv_q_sub(d, p, op->len);
  dmq__dlv_check_writable(d, p);
  if (op->state != DLV_S_PENDING)
    return;
  op->ncopies--;
  if (oc == DMQ_OUTCOME_DELIVERED) {
    op->delivered++;
  } else {
    op->failed++;
    if (op->failed == 1)
      op->fail_outcome = (uint8_t)oc;
  }
  if (op->kind == DLV_K_REQ) {
    if (oc != DMQ_OUTCOME_DELIVERED)
      dmq__dlv_op_finish(n, op, oc);
    return; /* delivered: now wait for the reply */
  }
  if (op->ncopies == 0 && (op->kind == DLV_K_SEND || op->kind == DLV_K_BCAST))
    dmq__dlv_op_finish(n, op,
                       op->failed ? (dmq_outcome_t)op->fail_outcome
                                  : DMQ_OUTCOME_DELIVERED);
}

void dmq__dlv_on_reply(dmq_node_t *n, dlv_peer_t *p, uint64_t req_id,
                       const void *data, size_t len) {
  dlv_t *d = n->dlv;
  dlv_op_t *op = dmq__dlv_ids_get(d, req_id);
  if (op == NULL || op->kind != DLV_K_REQ || op->state != DLV_S_PENDING ||
      strcmp(op->dest, p->m->name) != 0) {
    d->st.late_replies++;
    return;
  }
  /* Finished here, not queued: the reply is borrowed for this call. */
  op->state = DLV_S_DONE;
  op->outcome = DMQ_OUTCOME_DELIVERED;
  dlv_ids_del(d, op);
  dlv_timer_del(d, &op->tmo);
  dlv_heap_release(d, 1);
  dlv_rq_unlink(op);
  dmq_outcome_info_t info = {
      op->id, DMQ_OUTCOME_DELIVERED, op->dest, op->chan, 0, 0, data, len, 0};
  op->state = DLV_S_FINISHED;
  if (op->cb != NULL)
    op->cb(n, &info, op->ud);
  dmq__dlv_op_unref(n, op);
}
