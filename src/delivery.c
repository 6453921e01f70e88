/* libdmq - queued delivery: channels, reliable and best-effort messages,
 * broadcast and request/reply, sans-I/O like the rest of the core.
 *
 * What it does. Every (sender, receiver) pair carries one ordered stream of
 * reliable DATA messages numbered from 1 by the sender, acknowledged by DACK
 * messages (cumulative ack + 64-bit SACK + receive window), retransmitted on
 * an RTO with exponential back-off (RFC 6298 estimator, Karn's rule) and on
 * SACK evidence (three later messages acked: fast retransmit). Small
 * messages are packed many per datagram together with a pending DACK for
 * the same peer; a message larger than a datagram goes over the stream
 * transport when one exists, else is cut into fragments, each with its own
 * sequence number, reassembled in order at the receiver.
 *
 * Best effort: no acks and no retransmissions, but every message is
 * numbered per receiver when it goes on the wire (a sequence apart from the
 * reliable one, per tx_gen; written whole in the first best-effort DATA of
 * a datagram, implied in the next ones), and the receiver counts the gaps
 * (rx_lost_be), remembering the 16 most recent ones to tell a late arrival
 * (delivered, un-counted) from a copy (dropped): see dlv_be_arrived.
 *
 * Where it departs from TCP/SCTP, and why:
 * - Messages, not bytes: sequence numbers, windows and the SACK bitmap count
 *   messages, so a small message costs one slot; memory is bounded by the
 *   window in messages and by byte budgets on both sides (the sender also
 *   keeps what is in flight under window_bytes).
 * - A time to live per message. A sender gives up on a message at its TTL
 *   (outcome EXPIRED) and every DATA carries `base`, the lowest sequence
 *   still live at the sender: the receiver skips the holes below it (like
 *   SCTP's FORWARD-TSN), so one expired or cancelled message never stalls
 *   the stream. Each (re)transmission carries the remaining TTL; the
 *   receiver drops DATA that arrives with 0 and never delivers a buffered
 *   message after its local deadline (arrival + remaining TTL, which is
 *   never earlier than the sender's). The sender reports DELIVERED only for
 *   an ack processed before the TTL ran out, so DELIVERED always means the
 *   receiver's callback got it.
 * - Identity is (name, generation) on both ends: DATA names the receiver's
 *   generation and DACK the sender's, so nothing crosses from a previous
 *   life of either side; a destination declared dead, left, or restarted
 *   fails its messages at once (outcome DEAD/LEFT) instead of timing out.
 * - Rejections: a message consumed without delivery (channel not served,
 *   too big for the receiver) is reported back in the `rejected` trailing
 *   field of every DACK until the sender's `base` shows it saw the report,
 *   so the outcome (UNKNOWN_DEST / TOO_BIG) is exact, never a false
 *   DELIVERED. When that list is full the receiver holds the stream.
 * - Backpressure is the receive window: a paused channel keeps its messages
 *   unacknowledged in the reorder buffer, the window shrinks to zero, the
 *   sender's window and then its queue fill and dmq_send returns
 *   DMQ_EAGAIN; the writable callback fires when the queue drains below
 *   half. When the window is closed and everything in flight is SACKed, an
 *   RTO retransmits the lowest in-flight message as a window probe.
 *
 * Memory and cost. Per message: one op (outcome, payload, channel) and one
 * queue entry, both from free lists, payloads up to DLV_SMALL bytes from a
 * free list too: no malloc per message in steady state. The per-peer queue
 * is ordered by sequence; acks remove from its head; TTL, request and RTO
 * timers live in one indexed binary heap (O(log n) per message); message
 * ids map to ops through an open-addressing table (cancel). In-order DATA
 * is delivered straight from the received packet (no copy); only messages
 * that must wait (out of order, paused channel) are copied.
 *
 * Callbacks run after protocol processing, from dmq__flush_events (receive
 * callbacks, outcome callbacks, writable callbacks), never in the middle of
 * a packet.
 */
#include "delivery.h"

#include <stddef.h>
#include <string.h>

#include "internal.h"
#include "members.h"
#include "wire.h"

/* Payloads up to this size come from a free list of fixed-size buffers. */
#define DLV_SMALL 256
/* Objects kept on each free list; beyond that they go back to the
 * allocator (bounds memory after a burst). */
#define DLV_FREE_MAX 8192
/* Bits in the DACK selective-ack bitmap: bit i = seq cum+1+i. (Not cum+2+i
 * as in the first draft: a message held for a paused channel is received
 * but not acknowledged, and it is exactly cum+1; the sender must see it as
 * received or it would retransmit it forever.) */
#define DLV_SACK_BITS 64
/* SACKed messages above a hole that trigger its fast retransmission. */
#define DLV_DUP_THRESH 3
/* Remembered sequence numbers of peers forgotten (reaped) while their
 * generation may still be alive somewhere, and of best-effort senders not
 * known as members yet (see dlv_tomb_*). */
#define DLV_TOMBS 256
/* Best-effort receive: gaps (ranges of missing sequence numbers) remembered
 * per sender, so that a late arrival is told from a copy. A message whose
 * gap was pushed out by this many newer gaps counts as lost for good. */
#define DLV_BE_HOLES 16
/* Delayed acknowledgement: in-order reliable DATA is acknowledged once
 * this many messages (at most a quarter of the window) are unacknowledged,
 * or DLV_ACK_DELAY_MS after the first of them, whichever comes first; a
 * DACK also rides on any packet we send the peer meanwhile. Anything out of
 * order (a gap, a copy, a skip, a hole filled) is acknowledged at once, so
 * fast retransmission is not delayed. */
#define DLV_ACK_EVERY 256
#define DLV_ACK_DELAY_MS 5
/* Datagrams (or stream sends) of new messages one flush of a peer puts on
 * the wire, per class (reliable, best effort: a reliable backlog does not
 * hold best-effort messages back); the rest goes at the next turn of the
 * event loop. A backlog
 * (after a stall, or with the window reopening at once) is then sent in
 * slices with the loop's I/O in between: acks are read and the window
 * slides while the backlog drains, where one flush of a whole 4096-message
 * window held the acks back until it was done and made sender and
 * receiver take turns. */
#define DLV_BURST_PKTS 32
/* Smallest reorder ring, in messages. */
#define DLV_RING_MIN 16
/* First capacity of the growable tables (timer heap, id map, scratch). */
#define DLV_INIT_CAP 64
/* Largest allowed window (reorder ring size bound). */
#define DLV_MAX_WINDOW 65536
/* Worst-case DATA bytes besides channel name and payload: array, type,
 * flags (2), channel str header (2), 4 x uint64 (9 each), ttl (5), req_id
 * (9), bin32 header (5). */
#define DLV_DATA_FIXED (1 + 1 + 2 + 2 + 4 * 9 + 5 + 9 + 5)
/* Typical DATA bytes besides channel and payload: "a datagram's worth is
 * queued" estimate. */
#define DLV_DATA_EST 40
/* Headroom max_message needs below the node's max_packet (envelope, DATA
 * fields, a piggybacked DACK). */
#define DLV_PACKET_HEADROOM 4096
#define DLV_NO_IDX UINT32_MAX
/* Reason a message is consumed without delivery besides DMQ__REJ_*: its
 * TTL ran out (not reported back: the sender expires it itself). */
#define DLV_DROP_EXPIRED 0x80

enum { DLV_T_TTL = 1, DLV_T_REQ, DLV_T_RTO, DLV_T_ACK, DLV_T_TQ };
/* op kinds */
enum { DLV_K_BE = 0, DLV_K_SEND, DLV_K_BCAST, DLV_K_REQ, DLV_K_REPLY };
/* op states: waiting for its outcome, outcome queued, done */
enum { DLV_S_PENDING = 0, DLV_S_DONE, DLV_S_FINISHED };

typedef struct dlv_timer {
  uint64_t at;
  uint32_t idx; /* position in the heap, DLV_NO_IDX when not armed */
  uint8_t kind;
} dlv_timer_t;

typedef struct dlv_op dlv_op_t;
typedef struct dlv_msg dlv_msg_t;
typedef struct dmq__peer dlv_peer_t;
typedef struct dmq__dlv dlv_t;

/* An accepted send: its outcome, payload and channel, shared by every copy
 * (destination) and fragment. */
struct dlv_op {
  dlv_op_t *next; /* free list / done list */
  uint64_t id;
  uint64_t req_id; /* REPLY: the request answered */
  dmq_outcome_cb cb;
  void *ud;
  uint8_t *data;
  uint32_t len;
  uint32_t refs;    /* messages pointing here, + 1 until the outcome ran */
  uint32_t ncopies; /* copies without an outcome yet */
  uint32_t delivered, failed;
  uint8_t kind, state, outcome, fail_outcome;
  uint8_t chan_len;
  char chan[DMQ_MAX_CHANNEL + 1];
  char dest[DMQ_MAX_NAME + 1]; /* "" for a broadcast */
  dlv_msg_t *reps;             /* last fragments of the live copies */
  dlv_timer_t tmo;             /* request timeout */
  dlv_peer_t *rq_peer;         /* request: on rq_peer->reqs */
  dlv_op_t *rq_prev, *rq_next;
};

/* One DATA (a message, or a fragment of one) queued for one peer. */
struct dlv_msg {
  dlv_msg_t *prev, *next;         /* peer queue in seq order; BE queue */
  dlv_msg_t *rep_prev, *rep_next; /* op->reps (last fragments only) */
  dlv_op_t *op;
  dlv_peer_t *peer;
  uint64_t seq; /* 0 for best effort */
  uint64_t deadline;
  uint64_t sent_at;
  /* TTL of a copy (on its last fragment only): in the peer's TTL FIFO
   * when its deadline is not below the FIFO's tail (the common case: one
   * TTL for all), else a heap timer of its own (see dlv_ttl_arm) */
  dlv_msg_t *tq_prev, *tq_next;
  dlv_timer_t ttl;
  uint32_t off, len;
  uint16_t ntx;  /* transmissions */
  uint8_t flags; /* DMQ__DATA_* */
  uint8_t rep;   /* last fragment of its copy: carries the outcome */
  uint8_t sacked, rtx, stream;
  uint8_t rejected; /* DMQ__REJ_* reported by the receiver */
  uint8_t in_tq;    /* on the peer's TTL FIFO */
};

/* A received message waiting in the reorder ring. */
typedef struct dlv_rent {
  uint64_t seq; /* 0 = empty slot */
  uint64_t deadline;
  uint64_t req_id;
  const char *chan;
  const uint8_t *data;
  uint8_t *own; /* owned copy (channel, then payload); NULL = borrowed */
  uint32_t len;
  uint8_t chan_len, flags;
} dlv_rent_t;

/* Best-effort sequence numbers lo..hi that have not arrived (yet). */
typedef struct dlv_hole {
  uint64_t lo, hi;
} dlv_hole_t;

/* Delivery state with one member, both directions. */
struct dmq__peer {
  dmq__member_t *m;
  dlv_peer_t *all_prev, *all_next;
  dlv_peer_t *flush_next, *ready_next, *wr_next;
  uint8_t in_flush, in_ready, in_wr, want_wr;
  uint8_t ack_pending, need_probe, rtt_valid;
  uint8_t persist; /* window closed, nothing in flight: probe with one */
  /* sending */
  uint64_t tx_gen, next_seq;
  uint64_t tx_be; /* next best-effort sequence number (per tx_gen) */
  dlv_msg_t *head, *tail, *unsent; /* reliable, seq order */
  dlv_msg_t *be_head, *be_tail;
  uint32_t q_msgs, inflight, nrtx;
  size_t q_bytes, unsent_est, be_est;
  size_t inflight_est; /* dlv_est() of the messages in flight */
  uint64_t peer_cum;
  uint32_t peer_rwnd;
  uint64_t srtt8, rttvar4; /* RFC 6298, scaled by 8 and 4 */
  uint32_t rto;
  dlv_timer_t rto_t;
  /* TTL FIFO: copies in nondecreasing deadline order, and one timer for
   * them (armed at the head's deadline or earlier: it is not moved when
   * the head goes, only checked when it fires) */
  dlv_msg_t *tq_head, *tq_tail;
  dlv_timer_t tq_t;
  dlv_op_t *reqs; /* requests awaiting a reply */
  /* receiving */
  uint64_t rx_gen, next_exp; /* next_exp 0 = adopt the first base */
  uint32_t unacked;          /* reliable DATA since our last DACK */
  uint64_t rx_last_at;       /* arrival of the newest reliable DATA */
  dlv_timer_t ack_t;         /* delayed DACK */
  dlv_rent_t *ring;
  uint32_t ring_cap, nbuf;
  size_t buf_bytes;
  uint8_t *ra; /* reassembly */
  size_t ra_len, ra_cap;
  uint8_t ra_active, ra_drop;
  uint32_t nrej;
  uint64_t rej_seq[DMQ__WIRE_MAX_REJ];
  uint8_t rej_reason[DMQ__WIRE_MAX_REJ];
  /* best-effort receive (sequence numbers of rx_gen): highest arrived (0:
   * none), gaps below it in ascending order, and the floor under which
   * gaps were forgotten (an arrival there cannot be told from a copy) */
  uint64_t be_top, be_floor;
  uint32_t be_nholes;
  dlv_hole_t be_holes[DLV_BE_HOLES];
};

struct dmq_channel {
  dmq_node_t *node;
  dmq_receive_cb cb;
  void *ud;
  uint64_t h;
  uint8_t len, paused;
  char name[DMQ_MAX_CHANNEL + 1];
};

/* next_seq, tx_be: where our numbering towards member (name, gen) was;
 * rx_be: the highest best-effort number that member (name, gen) sent us
 * (0 for none). */
typedef struct dlv_tomb {
  uint64_t name_h, gen, next_seq, tx_be, rx_be;
} dlv_tomb_t;

/* A best-effort message delivered at the end of the receive call. */
typedef struct dlv_be {
  dmq__member_t *m;
  dmq__slice_t chan, data;
} dlv_be_t;

/* A ring entry still pointing into the packet being received. */
typedef struct dlv_borrow {
  dlv_peer_t *p;
  uint64_t seq;
} dlv_borrow_t;

/* A free list of same-size blocks; the link lives in a block's first
 * word (blocks are reset or overwritten when taken again). */
typedef struct dlv_pool {
  void *head;
  uint32_t n;
} dlv_pool_t;

struct dmq__dlv {
  dmq_node_t *node;
  dmq_delivery_config_t cfg;
  dmq_delivery_stats_t st;
  dmq_writable_cb wr_cb;
  void *wr_ud;
  dmq_channel_t *chans[DMQ_MAX_CHANNELS];
  uint32_t nchans;
  dmq_channel_t *cur_chan; /* whose receive callback is running */
  uint64_t next_id;
  size_t frag_room; /* cfg.mtu minus the envelope of our packets */
  int used, closing;
  /* timers: min-heap on `at` */
  dlv_timer_t **heap;
  uint32_t heap_n, heap_cap, heap_need;
  /* id -> pending op */
  dlv_op_t **ids;
  uint32_t ids_cap, ids_n;
  /* peers and work lists */
  dlv_peer_t *peers;
  dlv_peer_t *flush_head, *flush_tail;
  dlv_peer_t *ready_head, *ready_tail;
  dlv_peer_t *wr_head, *wr_tail;
  dlv_op_t *done_head, *done_tail;
  /* receive-call scratch */
  dlv_be_t *be;
  uint32_t be_n, be_cap;
  dlv_borrow_t *bor;
  uint32_t bor_n, bor_cap;
  const char *cache_p; /* sender of the packet being read */
  size_t cache_n;
  dmq__member_t *cache_m;
  uint64_t rx_pkt_be; /* number of its last best-effort DATA (0: none) */
  /* broadcast scratch */
  dmq__member_t **dests;
  uint32_t dests_cap;
  /* free lists */
  dlv_pool_t free_ops, free_msgs, free_small;
  /* packet buffers */
  uint8_t *tx; /* cfg.mtu */
  uint8_t *big;
  size_t big_cap;
  dlv_tomb_t *tombs; /* DLV_TOMBS, allocated at the first forgotten peer */
  uint32_t tomb_next;
};

static dmq__slice_t dlv_sl(const char *p, size_t n) {
  dmq__slice_t s = {p, n};
  return s;
}

static uint64_t dlv_min(uint64_t a, uint64_t b) {
  return a < b ? a : b;
}

/* ====================================================================== */
/* free lists                                                              */

static void *dlv_pool_get(dlv_pool_t *p) {
  void *b = p->head;
  if (b != NULL) {
    memcpy(&p->head, b, sizeof(void *));
    p->n--;
  }
  return b;
}

/* Keep b for reuse, or free it when the pool already holds DLV_FREE_MAX. */
static void dlv_pool_put(dmq_node_t *n, dlv_pool_t *p, void *b) {
  if (p->n >= DLV_FREE_MAX) {
    dmq__free(n, b);
    return;
  }
  memcpy(b, &p->head, sizeof(void *));
  p->head = b;
  p->n++;
}

static void dlv_pool_drain(dmq_node_t *n, dlv_pool_t *p) {
  void *b;
  while ((b = dlv_pool_get(p)) != NULL)
    dmq__free(n, b);
}

static dlv_op_t *dlv_op_alloc(dmq_node_t *n) {
  dlv_op_t *op = dlv_pool_get(&n->dlv->free_ops);
  if (op == NULL && (op = dmq__malloc(n, sizeof(*op))) == NULL)
    return NULL;
  memset(op, 0, sizeof(*op));
  op->tmo.idx = DLV_NO_IDX;
  op->tmo.kind = DLV_T_REQ;
  return op;
}

static void dlv_op_put(dmq_node_t *n, dlv_op_t *op) {
  dlv_pool_put(n, &n->dlv->free_ops, op);
}

static dlv_msg_t *dlv_msg_alloc(dmq_node_t *n) {
  dlv_msg_t *m = dlv_pool_get(&n->dlv->free_msgs);
  if (m == NULL && (m = dmq__malloc(n, sizeof(*m))) == NULL)
    return NULL;
  memset(m, 0, sizeof(*m));
  m->ttl.idx = DLV_NO_IDX;
  m->ttl.kind = DLV_T_TTL;
  return m;
}

static void dlv_msg_put(dmq_node_t *n, dlv_msg_t *m) {
  dlv_pool_put(n, &n->dlv->free_msgs, m);
}

/* Free a chain of msgs linked by next (not yet queued). */
static void dlv_msg_chain_put(dmq_node_t *n, dlv_msg_t *c) {
  while (c != NULL) {
    dlv_msg_t *nx = c->next;
    dlv_msg_put(n, c);
    c = nx;
  }
}

/* Payloads up to DLV_SMALL bytes come from a pool of DLV_SMALL blocks. */
static uint8_t *dlv_buf_alloc(dmq_node_t *n, size_t len) {
  if (len > DLV_SMALL)
    return dmq__malloc(n, len);
  uint8_t *b = dlv_pool_get(&n->dlv->free_small);
  return b != NULL ? b : dmq__malloc(n, DLV_SMALL);
}

static void dlv_buf_put(dmq_node_t *n, uint8_t *b, size_t len) {
  if (b == NULL)
    return;
  if (len > DLV_SMALL)
    dmq__free(n, b);
  else
    dlv_pool_put(n, &n->dlv->free_small, b);
}

/* ====================================================================== */
/* timer heap                                                              */

/* Capacity for k more armed timers (reserved when the objects that own them
 * are accepted, so that arming never fails later). */
static int dlv_heap_reserve(dmq_node_t *n, uint32_t k) {
  dlv_t *d = n->dlv;
  if (d->heap_need + k > d->heap_cap) {
    uint32_t nc = d->heap_cap ? d->heap_cap * 2 : DLV_INIT_CAP;
    while (nc < d->heap_need + k)
      nc *= 2;
    dlv_timer_t **nh = dmq__realloc(n, d->heap, nc * sizeof(*nh));
    if (nh == NULL)
      return DMQ_ENOMEM;
    d->heap = nh;
    d->heap_cap = nc;
  }
  d->heap_need += k;
  return 0;
}

static void dlv_heap_release(dlv_t *d, uint32_t k) {
  d->heap_need -= k;
}

static void dlv_heap_swap(dlv_t *d, uint32_t i, uint32_t j) {
  dlv_timer_t *t = d->heap[i];
  d->heap[i] = d->heap[j];
  d->heap[j] = t;
  d->heap[i]->idx = i;
  d->heap[j]->idx = j;
}

static void dlv_heap_up(dlv_t *d, uint32_t i) {
  while (i > 0) {
    uint32_t p = (i - 1) / 2;
    if (d->heap[p]->at <= d->heap[i]->at)
      break;
    dlv_heap_swap(d, i, p);
    i = p;
  }
}

static void dlv_heap_down(dlv_t *d, uint32_t i) {
  for (;;) {
    uint32_t l = 2 * i + 1, s = i;
    if (l < d->heap_n && d->heap[l]->at < d->heap[s]->at)
      s = l;
    if (l + 1 < d->heap_n && d->heap[l + 1]->at < d->heap[s]->at)
      s = l + 1;
    if (s == i)
      return;
    dlv_heap_swap(d, i, s);
    i = s;
  }
}

/* Arm (or move) t to fire at `at`. Capacity was reserved by the owner. */
static void dlv_timer_set(dlv_t *d, dlv_timer_t *t, uint64_t at) {
  if (t->idx == DLV_NO_IDX) {
    t->at = at;
    t->idx = d->heap_n;
    d->heap[d->heap_n++] = t;
    dlv_heap_up(d, t->idx);
  } else {
    uint64_t old = t->at;
    t->at = at;
    if (at < old)
      dlv_heap_up(d, t->idx);
    else
      dlv_heap_down(d, t->idx);
  }
  if (t->idx == 0)
    dmq__wake(d->node); /* a new earliest deadline */
}

static void dlv_timer_del(dlv_t *d, dlv_timer_t *t) {
  if (t->idx == DLV_NO_IDX)
    return;
  uint32_t i = t->idx, last = d->heap_n - 1;
  t->idx = DLV_NO_IDX;
  d->heap_n--;
  if (i == last)
    return;
  d->heap[i] = d->heap[last];
  d->heap[i]->idx = i;
  dlv_heap_up(d, i);
  dlv_heap_down(d, d->heap[i]->idx);
}

/* ====================================================================== */
/* message id -> op (open addressing, backward-shift deletion)             */

static uint32_t dlv_id_slot(const dlv_t *d, uint64_t id) {
  return (uint32_t)((id * 0x9e3779b97f4a7c15ULL) >> 32) & (d->ids_cap - 1);
}

static int dlv_ids_reserve(dmq_node_t *n, uint32_t k) {
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

static void dlv_ids_put(dlv_t *d, dlv_op_t *op) {
  uint32_t j = dlv_id_slot(d, op->id);
  while (d->ids[j] != NULL)
    j = (j + 1) & (d->ids_cap - 1);
  d->ids[j] = op;
  d->ids_n++;
}

static dlv_op_t *dlv_ids_get(const dlv_t *d, uint64_t id) {
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

/* ====================================================================== */
/* channels                                                                */

/* 1..DMQ_MAX_CHANNEL printable bytes (no space). */
static int dlv_valid_chan(const char *s, size_t *len) {
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

static dmq_channel_t *dlv_chan_find(const dlv_t *d, const char *name,
                                    size_t len, uint64_t h) {
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
  return dmq__member_set_chans(n, n->self, &c);
}

/* ====================================================================== */
/* peers and work lists                                                    */

/* What the tombs remember about member (name_h, gen): the highest of each
 * field over the matching entries (0 where none). */
static dlv_tomb_t dlv_tomb_find(const dlv_t *d, uint64_t name_h, uint64_t gen) {
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
static void dlv_tomb_unknown(dmq_node_t *n, dlv_t *d, dmq__slice_t name,
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

static uint32_t dlv_rto_base(const dmq_node_t *n, const dlv_peer_t *p) {
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

static void dlv_tx_reset(dmq_node_t *n, dlv_peer_t *p) {
  p->tx_gen = p->m->gen;
  p->next_seq = 1;
  p->peer_cum = 0;
  p->peer_rwnd = n->dlv->cfg.window;
  p->rtt_valid = 0;
  p->srtt8 = p->rttvar4 = 0;
  p->rto = dlv_rto_base(n, p);
  p->tx_be = 1;
}

static dlv_peer_t *dlv_peer_get(dmq_node_t *n, dmq__member_t *m) {
  dlv_t *d = n->dlv;
  if (m->peer != NULL)
    return m->peer;
  if (dlv_heap_reserve(n, 3) != 0) /* its RTO, DACK and TTL timers */
    return NULL;
  dlv_peer_t *p = dmq__malloc(n, sizeof(*p));
  if (p == NULL) {
    dlv_heap_release(d, 3);
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
  dlv_tx_reset(n, p);
  if (d->tombs != NULL) {
    dlv_tomb_t t = dlv_tomb_find(d, dmq__hash(m->name, m->name_len), p->tx_gen);
    if (t.next_seq > p->next_seq)
      p->next_seq = t.next_seq;
    if (t.tx_be > p->tx_be)
      p->tx_be = t.tx_be;
  }
  p->all_next = d->peers;
  if (d->peers != NULL)
    d->peers->all_prev = p;
  d->peers = p;
  m->peer = p;
  return p;
}

/* Append p to a singly linked work list (once: flag says it is on it);
 * a list that gains work makes the node due now. */
#define DLV_LIST_PUSH(d, p, head, tail, next, flag)                            \
  do {                                                                         \
    if (!(p)->flag) {                                                          \
      (p)->flag = 1;                                                           \
      (p)->next = NULL;                                                        \
      if ((d)->tail != NULL)                                                   \
        (d)->tail->next = (p);                                                 \
      else                                                                     \
        (d)->head = (p);                                                       \
      (d)->tail = (p);                                                         \
      dmq__wake((d)->node);                                                    \
    }                                                                          \
  } while (0)

static void dlv_want_flush(dlv_t *d, dlv_peer_t *p) {
  DLV_LIST_PUSH(d, p, flush_head, flush_tail, flush_next, in_flush);
}

/* A DACK is owed to p: now (flushed at the next tick), or delayed (see
 * DLV_ACK_EVERY). count: one more reliable DATA arrived. */
static void dlv_ack(dlv_t *d, dlv_peer_t *p, int now, int count) {
  p->ack_pending = 1;
  p->unacked += (uint32_t)count;
  uint32_t every = d->cfg.window / 4;
  if (every > DLV_ACK_EVERY)
    every = DLV_ACK_EVERY;
  if (now || p->unacked >= every) {
    dlv_want_flush(d, p);
  } else if (p->ack_t.idx == DLV_NO_IDX) {
    dlv_timer_set(d, &p->ack_t, d->node->now + DLV_ACK_DELAY_MS);
  }
}

static void dlv_want_ready(dlv_t *d, dlv_peer_t *p) {
  DLV_LIST_PUSH(d, p, ready_head, ready_tail, ready_next, in_ready);
}

static void dlv_want_wr(dlv_t *d, dlv_peer_t *p) {
  DLV_LIST_PUSH(d, p, wr_head, wr_tail, wr_next, in_wr);
}

/* Unlink p from a singly linked work list (rare: peer freed). */
#define DLV_LIST_UNLINK(d, p, head, tail, next, flag)                          \
  do {                                                                         \
    if ((p)->flag) {                                                           \
      dlv_peer_t *prv_ = NULL, *cur_ = (d)->head;                              \
      while (cur_ != NULL && cur_ != (p)) {                                    \
        prv_ = cur_;                                                           \
        cur_ = cur_->next;                                                     \
      }                                                                        \
      if (cur_ != NULL) {                                                      \
        if (prv_ != NULL)                                                      \
          prv_->next = cur_->next;                                             \
        else                                                                   \
          (d)->head = cur_->next;                                              \
        if ((d)->tail == cur_)                                                 \
          (d)->tail = prv_;                                                    \
      }                                                                        \
      (p)->flag = 0;                                                           \
    }                                                                          \
  } while (0)

/* Unlink e from a doubly linked list: links e->prev / e->next, first
 * element *headp, last element *tailp (a list without a tail pointer
 * passes a scratch variable). e's own links are left as they are. */
#define DLV_DL_UNLINK(e, prev, next, headp, tailp)                             \
  do {                                                                         \
    if ((e)->prev != NULL)                                                     \
      (e)->prev->next = (e)->next;                                             \
    else                                                                       \
      *(headp) = (e)->next;                                                    \
    if ((e)->next != NULL)                                                     \
      (e)->next->prev = (e)->prev;                                             \
    else                                                                       \
      *(tailp) = (e)->prev;                                                    \
  } while (0)

/* ====================================================================== */
/* outcomes                                                                */

static void dlv_op_unref(dmq_node_t *n, dlv_op_t *op) {
  if (--op->refs > 0)
    return;
  if (op->data != NULL)
    dlv_buf_put(n, op->data, op->len);
  dlv_op_put(n, op);
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
  DLV_DL_UNLINK(op, rq_prev, rq_next, &p->reqs, &no_tail);
  op->rq_prev = op->rq_next = NULL;
  op->rq_peer = NULL;
}

/* The op has its outcome: queue the callback (exactly once). */
static void dlv_op_finish(dmq_node_t *n, dlv_op_t *op, dmq_outcome_t oc) {
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

static dmq_outcome_t dlv_rej_outcome(uint8_t reason) {
  return reason == DMQ__REJ_TOO_BIG ? DMQ_OUTCOME_TOO_BIG
                                    : DMQ_OUTCOME_UNKNOWN_DEST;
}

static void dlv_check_writable(dlv_t *d, dlv_peer_t *p) {
  if (p->want_wr && p->q_msgs <= d->cfg.queue_msgs / 2 &&
      p->q_bytes <= d->cfg.queue_bytes / 2) {
    p->want_wr = 0;
    if (d->wr_cb != NULL)
      dlv_want_wr(d, p);
  }
}

/* Start the TTL of a copy (rep: its last fragment, on peer p). Copies sent
 * with one TTL expire in queue order, so they join the peer's FIFO and
 * cost no heap operation (a heap of every queued copy made each ack an
 * O(log n) walk through cold memory); a copy with a shorter TTL than the
 * FIFO's tail gets a heap timer of its own. */
static void dlv_ttl_arm(dlv_t *d, dlv_peer_t *p, dlv_msg_t *rep) {
  if (p->tq_tail != NULL && rep->deadline < p->tq_tail->deadline) {
    dlv_timer_set(d, &rep->ttl, rep->deadline);
    return;
  }
  rep->in_tq = 1;
  rep->tq_next = NULL;
  rep->tq_prev = p->tq_tail;
  if (p->tq_tail != NULL)
    p->tq_tail->tq_next = rep;
  else
    p->tq_head = rep;
  p->tq_tail = rep;
  if (p->tq_t.idx == DLV_NO_IDX || p->tq_t.at > rep->deadline)
    dlv_timer_set(d, &p->tq_t, rep->deadline);
}

static void dlv_ttl_disarm(dlv_t *d, dlv_peer_t *p, dlv_msg_t *rep) {
  if (!rep->in_tq) {
    dlv_timer_del(d, &rep->ttl);
    return;
  }
  rep->in_tq = 0;
  DLV_DL_UNLINK(rep, tq_prev, tq_next, &p->tq_head, &p->tq_tail);
  if (p->tq_head == NULL)
    dlv_timer_del(d, &p->tq_t);
}

/* The FIFO's timer fired: expire what is due, re-arm for the rest. */
static void dlv_abandon_copy(dmq_node_t *n, dlv_msg_t *rep, dmq_outcome_t oc);
static void dlv_on_tq(dmq_node_t *n, dlv_peer_t *p) {
  while (p->tq_head != NULL && p->tq_head->deadline <= n->now)
    dlv_abandon_copy(n, p->tq_head, DMQ_OUTCOME_EXPIRED);
  if (p->tq_head != NULL)
    dlv_timer_set(n->dlv, &p->tq_t, p->tq_head->deadline);
}

/* One copy (the copy whose last fragment is rep) has its outcome. */
static void dlv_copy_done(dmq_node_t *n, dlv_msg_t *rep, dmq_outcome_t oc) {
  dlv_t *d = n->dlv;
  dlv_op_t *op = rep->op;
  dlv_peer_t *p = rep->peer;
  dlv_ttl_disarm(d, p, rep);
  dlv_heap_release(d, 1);
  dlv_msg_t *no_tail;
  DLV_DL_UNLINK(rep, rep_prev, rep_next, &op->reps, &no_tail);
  rep->rep_prev = rep->rep_next = NULL;
  rep->rep = 0;
  p->q_msgs--;
  p->q_bytes -= op->len;
  dlv_check_writable(d, p);
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
      dlv_op_finish(n, op, oc);
    return; /* delivered: now wait for the reply */
  }
  if (op->ncopies == 0 && (op->kind == DLV_K_SEND || op->kind == DLV_K_BCAST))
    dlv_op_finish(n, op,
                  op->failed ? (dmq_outcome_t)op->fail_outcome
                             : DMQ_OUTCOME_DELIVERED);
}

/* ====================================================================== */
/* sender: queue                                                           */

static uint64_t dlv_base(const dlv_peer_t *p) {
  return p->head != NULL ? p->head->seq : p->next_seq;
}

static size_t dlv_est(const dlv_msg_t *m) {
  return (size_t)m->len + m->op->chan_len + DLV_DATA_EST;
}

/* Remove msg from its peer's reliable queue and drop it. */
static void dlv_msg_remove(dmq_node_t *n, dlv_peer_t *p, dlv_msg_t *m) {
  if (p->unsent == m) {
    p->unsent = m->next;
    p->unsent_est -= dlv_est(m);
  } else if (m->ntx == 0) {
    p->unsent_est -= dlv_est(m); /* unsent, behind p->unsent */
  }
  if (m->ntx > 0) {
    p->inflight--;
    p->inflight_est -= dlv_est(m);
  }
  if (m->rtx)
    p->nrtx--;
  DLV_DL_UNLINK(m, prev, next, &p->head, &p->tail);
  dlv_op_t *op = m->op;
  dlv_msg_put(n, m);
  dlv_op_unref(n, op);
}

/* Give up on one copy (all its fragments): TTL, cancel, death, shutdown. */
static void dlv_abandon_copy(dmq_node_t *n, dlv_msg_t *rep, dmq_outcome_t oc) {
  dlv_t *d = n->dlv;
  dlv_peer_t *p = rep->peer;
  dlv_op_t *op = rep->op;
  dlv_msg_t *first = rep;
  while (first->prev != NULL && first->prev->op == op && !first->prev->rep)
    first = first->prev;
  int was_head = p->head == first;
  dlv_copy_done(n, rep, oc);
  dlv_msg_t *m = first, *stop = rep->next;
  while (m != stop) {
    dlv_msg_t *nx = m->next;
    dlv_msg_remove(n, p, m);
    m = nx;
  }
  /* The receiver may hold later messages waiting for these: tell it the new
   * base with a probe if nothing else goes out soon. */
  if (was_head && p->head != NULL && p->head->ntx > 0) {
    p->need_probe = 1;
    dlv_want_flush(d, p);
  }
  if (p->inflight == 0)
    dlv_timer_del(d, &p->rto_t);
}

/* Fail everything queued for p (death, leave, restart, shutdown). */
static void dlv_fail_peer(dmq_node_t *n, dlv_peer_t *p, dmq_outcome_t oc) {
  dlv_t *d = n->dlv;
  while (p->tail != NULL)
    dlv_abandon_copy(n, p->tail, oc); /* the tail is always a last fragment */
  while (p->be_head != NULL) {
    dlv_msg_t *m = p->be_head;
    p->be_head = m->next;
    p->q_msgs--;
    p->q_bytes -= m->len;
    d->st.dropped_be++;
    dlv_op_t *op = m->op;
    dlv_msg_put(n, m);
    dlv_op_unref(n, op);
  }
  p->be_tail = NULL;
  p->be_est = 0;
  while (p->reqs != NULL)
    dlv_op_finish(n, p->reqs, oc);
  dlv_timer_del(d, &p->rto_t);
  dlv_timer_del(d, &p->tq_t);
  p->need_probe = 0;
  dlv_check_writable(d, p);
}

/* ====================================================================== */
/* receiver state                                                          */

static dlv_rent_t *dlv_ring_at(const dlv_peer_t *p, uint64_t seq) {
  if (p->ring_cap == 0 || seq == 0)
    return NULL;
  dlv_rent_t *e = &p->ring[seq & (p->ring_cap - 1)];
  return e->seq == seq ? e : NULL;
}

static void dlv_rent_clear(dmq_node_t *n, dlv_peer_t *p, dlv_rent_t *e) {
  if (e->own != NULL) {
    size_t sz = (size_t)e->chan_len + e->len;
    p->buf_bytes -= sz;
    dlv_buf_put(n, e->own, sz);
  }
  memset(e, 0, sizeof(*e));
  p->nbuf--;
}

static void dlv_ra_reset(dmq_node_t *n, dlv_peer_t *p) {
  dmq__free(n, p->ra);
  p->ra = NULL;
  p->ra_len = p->ra_cap = 0;
  p->ra_active = p->ra_drop = 0;
}

static void dlv_rx_reset(dmq_node_t *n, dlv_peer_t *p) {
  for (uint32_t i = 0; p->nbuf > 0 && i < p->ring_cap; i++)
    if (p->ring[i].seq != 0)
      dlv_rent_clear(n, p, &p->ring[i]);
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
static void dlv_rx_start(dmq_node_t *n, dlv_peer_t *p, uint64_t gen) {
  dlv_t *d = n->dlv;
  dlv_rx_reset(n, p);
  p->rx_gen = gen;
  if (d->tombs != NULL) {
    dlv_tomb_t t = dlv_tomb_find(d, dmq__hash(p->m->name, p->m->name_len), gen);
    p->be_top = t.rx_be;
    p->be_floor = t.rx_be + 1;
  }
}

/* Forget the oldest best-effort gap: its numbers stay counted as lost. */
static void dlv_be_forget(dlv_peer_t *p) {
  p->be_floor = p->be_holes[0].hi + 1;
  p->be_nholes--;
  memmove(&p->be_holes[0], &p->be_holes[1],
          p->be_nholes * sizeof(p->be_holes[0]));
}

/* Best-effort number seq arrived from p, not seq == be_top + 1 (see
 * dlv_be_arrived): 0 = deliver it, 1 = drop it (a copy, or older than what
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
static int dlv_be_arrived(dmq_node_t *n, dlv_peer_t *p, uint64_t src_gen,
                          uint64_t seq) {
  if (src_gen != p->rx_gen) {
    if (src_gen < p->rx_gen) {
      n->dlv->st.stale_gen++;
      return 1;
    }
    dlv_rx_start(n, p, src_gen);
  }
  if (seq == p->be_top + 1) {
    p->be_top = seq;
    return 0;
  }
  return dlv_be_slow(n->dlv, p, seq);
}

/* Room in the ring for seq (< next_exp + window, checked by the caller). */
static int dlv_ring_fit(dmq_node_t *n, dlv_peer_t *p, uint64_t seq) {
  uint64_t need = seq - p->next_exp + 1;
  if (need <= p->ring_cap)
    return 0;
  uint32_t nc = p->ring_cap ? p->ring_cap : DLV_RING_MIN;
  while (nc < need)
    nc *= 2;
  dlv_rent_t *nr = dmq__malloc(n, nc * sizeof(*nr));
  if (nr == NULL)
    return DMQ_ENOMEM;
  memset(nr, 0, nc * sizeof(*nr));
  for (uint32_t i = 0; i < p->ring_cap; i++)
    if (p->ring[i].seq != 0)
      nr[p->ring[i].seq & (nc - 1)] = p->ring[i];
  dmq__free(n, p->ring);
  p->ring = nr;
  p->ring_cap = nc;
  return 0;
}

/* Copy a borrowed entry into owned memory, or drop it over the budget. */
static void dlv_rent_own(dmq_node_t *n, dlv_peer_t *p, dlv_rent_t *e) {
  dlv_t *d = n->dlv;
  size_t sz = (size_t)e->chan_len + e->len;
  uint8_t *b = NULL;
  if (p->buf_bytes + p->ra_cap + sz <= d->cfg.reassembly_bytes)
    b = dlv_buf_alloc(n, sz);
  if (b == NULL) {
    d->st.rx_overflow++;
    memset(e, 0, sizeof(*e)); /* never owned: nothing to free */
    p->nbuf--;
    return;
  }
  memcpy(b, e->chan, e->chan_len);
  if (e->len > 0)
    memcpy(b + e->chan_len, e->data, e->len);
  e->own = b;
  e->chan = (const char *)b;
  e->data = b + e->chan_len;
  p->buf_bytes += sz;
}

/* The sender's base passed next_exp: everything below base was abandoned
 * there (expired or cancelled) - drop it, never deliver it. */
static void dlv_rx_skip(dmq_node_t *n, dlv_peer_t *p, uint64_t base) {
  for (uint32_t i = 0; p->nbuf > 0 && i < p->ring_cap; i++)
    if (p->ring[i].seq != 0 && p->ring[i].seq < base)
      dlv_rent_clear(n, p, &p->ring[i]);
  /* a partly reassembled message below base was abandoned as a whole */
  if (p->ra_active)
    dlv_ra_reset(n, p);
  p->next_exp = base;
  dlv_want_ready(n->dlv, p);
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

static void dlv_build_dack(dmq_node_t *n, dlv_peer_t *p, dmq__dack_t *a) {
  dlv_t *d = n->dlv;
  memset(a, 0, sizeof(*a));
  a->src_gen = p->rx_gen;
  a->dst_gen = n->self->gen;
  a->cum = p->next_exp > 0 ? p->next_exp - 1 : 0;
  if (p->nbuf > 0)
    for (uint32_t i = 0; i < DLV_SACK_BITS; i++)
      if (dlv_ring_at(p, a->cum + 1 + i) != NULL)
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

/* ====================================================================== */
/* sender: packets                                                         */

/* Largest payload of a DATA that fits an otherwise empty datagram. */
static size_t dlv_frag_max(const dmq_node_t *n, size_t chan_len) {
  size_t room = n->dlv->frag_room;
  size_t over = DLV_DATA_FIXED + chan_len;
  return room > over ? room - over : 1;
}

typedef struct dlv_pkt {
  dmq__enc_t e;
  int open;
  uint32_t nbe;  /* best-effort messages in it */
  uint32_t sent; /* datagrams sent by this flush */
} dlv_pkt_t;

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
  if (dmq__send(n, p->m->addr, d->tx, len, 0, c) != 0) {
    d->st.dropped_be += k->nbe;
    d->st.sent_be -= k->nbe;
    p->tx_be -= k->nbe; /* the last numbers given: never seen on the wire */
  }
  k->nbe = 0;
}

static void dlv_pkt_begin(dmq_node_t *n, dlv_pkt_t *k) {
  dmq__enc_begin(&k->e, n->dlv->tx, n->cfg.mtu, NULL, 0, n->name,
                 strlen(n->name));
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
  dd->base = (m->flags & DMQ__DATA_RELIABLE) ? dlv_base(p) : 0;
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
  size_t need =
      dmq__enc_size_envelope(strlen(n->name)) + dmq__enc_size_data(&dd);
  if (need > d->big_cap) {
    uint8_t *b = dmq__realloc(n, d->big, need);
    if (b == NULL)
      return DMQ_ENOMEM;
    d->big = b;
    d->big_cap = need;
  }
  dmq__enc_t e;
  dmq__enc_begin(&e, d->big, d->big_cap, NULL, 0, n->name, strlen(n->name));
  if (dmq__enc_data(&e, &dd) != 0)
    return DMQ_ETOOBIG;
  size_t len = dmq__enc_end(&e);
  return dmq__send(n, p->m->addr, d->big, len, 1, 1);
}

static void dlv_arm_rto(dmq_node_t *n, dlv_peer_t *p) {
  if (p->rto_t.idx == DLV_NO_IDX && p->inflight > 0)
    dlv_timer_set(n->dlv, &p->rto_t, n->now + p->rto);
}

static void dlv_mark_sent(dmq_node_t *n, dlv_peer_t *p, dlv_msg_t *m) {
  dlv_t *d = n->dlv;
  if (m->ntx == 0) {
    p->inflight++;
    p->inflight_est += dlv_est(m);
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
  dlv_arm_rto(n, p);
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

/* Put what is due for p on the wire: the pending ack, retransmissions, new
 * messages within the window, best-effort messages. full_only: stop once
 * less than a datagram's worth of new messages is left (the tick sends the
 * rest). */
static void dlv_flush_peer(dmq_node_t *n, dlv_peer_t *p, int full_only) {
  dlv_t *d = n->dlv;
  if (d->tx == NULL && (d->tx = dmq__malloc(n, n->cfg.mtu)) == NULL) {
    dlv_want_flush(d, p); /* retried on the next tick */
    return;
  }
  dlv_pkt_t k;
  size_t budget = n->cfg.mtu;
  k.open = 0;
  k.nbe = 0;
  k.sent = 0;
  int more = 0; /* stopped by DLV_BURST_PKTS: flush again next turn */
  uint32_t stop = DLV_BURST_PKTS; /* k.sent where this class stops */
  if (p->ack_pending && p->rx_gen != 0) {
    dmq__dack_t a;
    dlv_build_dack(n, p, &a);
    dlv_pkt_begin(n, &k);
    if (dmq__enc_dack(&k.e, &a) == 0)
      d->st.acks_sent++;
    p->ack_pending = 0;
    p->unacked = 0;
    dlv_timer_del(d, &p->ack_t);
  }
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
      dlv_tx_one(n, p, &k, m);
  uint64_t ref = dlv_base(p) - 1;
  if (p->peer_cum > ref)
    ref = p->peer_cum;
  uint64_t limit = ref + dlv_min(d->cfg.window, p->peer_rwnd);
  while (p->unsent != NULL && (p->unsent->seq <= limit || p->persist)) {
    dlv_msg_t *m = p->unsent;
    if (m->deadline <= n->now)
      break; /* its TTL timer runs first at the next tick */
    if (!k.open && k.sent >= stop) {
      more = 1;
      break;
    }
    if (p->inflight > 0 && p->inflight_est + dlv_est(m) > d->cfg.window_bytes)
      break;        /* the byte window: an ack reopens it */
    p->persist = 0; /* one message past a closed window is the probe */
    if (!m->stream) {
      /* full_only: a new datagram only for a datagram's worth */
      if (!k.open && full_only && p->unsent_est + p->be_est < budget)
        break;
      if (!k.open)
        dlv_pkt_begin(n, &k);
      int rc = dlv_put(n, p, &k, m);
      if (rc == 1) {
        dlv_pkt_send(n, p, &k);
        continue;
      }
      if (rc < 0)
        m->stream = 1;
    }
    p->unsent = m->next;
    p->unsent_est -= dlv_est(m);
    if (m->stream) {
      k.sent++;
      dlv_send_stream(n, p, m); /* a failure is a loss: the RTO resends */
    }
    dlv_mark_sent(n, p, m);
  }
  stop = k.sent + DLV_BURST_PKTS;
  while (p->be_head != NULL) {
    dlv_msg_t *m = p->be_head;
    if (!k.open && full_only && p->unsent_est + p->be_est < budget)
      break;
    if (!k.open && k.sent >= stop) {
      more = 1;
      break;
    }
    /* Numbered only once it is on the wire (a message dropped here is not
     * a gap at the receiver). The open datagram's best-effort messages
     * always hold the last k.nbe numbers given, so a datagram the transport
     * refuses gives them back (dlv_pkt_send). */
    int rc = -1;
    if (m->deadline > n->now && !m->stream) {
      if (!k.open)
        dlv_pkt_begin(n, &k);
      m->seq = p->tx_be;
      rc = dlv_put(n, p, &k, m);
      if (rc == 1) { /* full: a new one only for a datagram's worth */
        dlv_pkt_send(n, p, &k);
        continue;
      }
    }
    p->be_head = m->next;
    if (p->be_head == NULL)
      p->be_tail = NULL;
    p->be_est -= dlv_est(m);
    p->q_msgs--;
    p->q_bytes -= m->len;
    if (m->deadline <= n->now) {
      d->st.dropped_be++;
    } else if (rc == 0) {
      p->tx_be++;
      d->st.sent_be++;
      k.nbe++;
    } else {
      dlv_pkt_send(n, p, &k); /* its numbers stay below this one's */
      m->seq = p->tx_be;
      k.sent++;
      if (dlv_send_stream(n, p, m) == 0) {
        p->tx_be++;
        d->st.sent_be++;
      } else {
        d->st.dropped_be++;
      }
    }
    dlv_op_t *op = m->op;
    dlv_msg_put(n, m);
    dlv_op_unref(n, op);
  }
  dlv_pkt_send(n, p, &k);
  if (more)
    dlv_want_flush(d, p);
  dlv_check_writable(d, p);
}

/* ====================================================================== */
/* sender: acks and timers                                                 */

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
  p->rto = dlv_rto_base(n, p);
}

void dmq__delivery_on_dack(dmq_node_t *n, const dmq__dack_t *a,
                           dmq__slice_t sender) {
  dlv_t *d = n->dlv;
  d->st.acks_received++;
  dmq__member_t *mb = dmq__member_find(n, sender.p, sender.n);
  if (mb == NULL || mb->peer == NULL || mb->is_self) {
    d->st.unknown_sender++;
    return;
  }
  dlv_peer_t *p = mb->peer;
  if (a->src_gen != n->self->gen || a->dst_gen != p->tx_gen) {
    d->st.stale_gen++;
    return;
  }
  uint64_t now = n->now;
  uint64_t cum = a->cum < p->next_seq ? a->cum : p->next_seq - 1;
  if (a->nrej > 0) {
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
  /* RTT samples (Karn: never from a retransmitted message) come from
   * messages this ack reports for the first time; not from an ack that
   * filled a hole, whose messages waited behind it at the receiver. */
  int progress = 0, filled = 0;
  uint64_t sample_at = 0;
  int sample = 0;
  while (p->head != NULL && p->head->seq <= cum) {
    dlv_msg_t *m = p->head;
    if (m->ntx > 1 || m->sacked)
      filled = 1;
    if (m->ntx == 1 && (!sample || m->sent_at > sample_at)) {
      sample = 1;
      sample_at = m->sent_at;
    }
    if (m->rep) {
      dmq_outcome_t oc = DMQ_OUTCOME_DELIVERED;
      if (m->rejected)
        oc = dlv_rej_outcome(m->rejected);
      else if (now >= m->deadline)
        oc = DMQ_OUTCOME_EXPIRED;
      dlv_copy_done(n, m, oc);
    }
    dlv_msg_remove(n, p, m);
    progress = 1;
  }
  if (filled)
    sample = 0;
  if (cum < p->peer_cum) /* reordered: an older ack says nothing new */
    return;
  p->peer_cum = cum;
  p->peer_rwnd = a->rwnd;
  /* SACK: rebuild the flags of the messages it covers (a receiver may drop
   * what it SACKed before, so they are not sticky), then fast-retransmit
   * holes with DLV_DUP_THRESH SACKed messages above them. */
  dlv_msg_t *win[DLV_SACK_BITS];
  uint32_t nw = 0, nsacked = 0;
  for (dlv_msg_t *m = p->head;
       m != NULL && m != p->unsent && m->seq <= cum + DLV_SACK_BITS;
       m = m->next) {
    uint8_t was = m->sacked;
    m->sacked = (uint8_t)((a->sack >> (m->seq - cum - 1)) & 1);
    if (m->sacked && !was && m->ntx == 1 && !filled &&
        (!sample || m->sent_at > sample_at)) {
      sample = 1;
      sample_at = m->sent_at;
    }
    nsacked += m->sacked;
    win[nw++] = m;
  }
  /* minus the time the receiver held the ack back (QUIC's ack_delay; it
   * refers to its newest arrival, which the sample's message is) */
  if (sample) {
    uint64_t r = now - sample_at;
    dlv_rtt_sample(n, p, r > a->delay_ms ? r - a->delay_ms : 0);
  }
  /* at most one fast retransmission per message and round trip (and never
   * twice in the same millisecond) */
  uint64_t guard = d->cfg.rto_min_ms / 2;
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
        now - m->sent_at >= guard) {
      m->rtx = 1;
      p->nrtx++;
    }
  }
  if (progress) {
    p->rto = dlv_rto_base(n, p); /* progress ends the back-off */
    dlv_timer_del(d, &p->rto_t);
    dlv_arm_rto(n, p);
  }
  uint64_t ref = dlv_base(p) - 1;
  if (p->peer_cum > ref)
    ref = p->peer_cum;
  uint64_t limit = ref + dlv_min(d->cfg.window, p->peer_rwnd);
  if (p->nrtx > 0 || (p->unsent != NULL && p->unsent->seq <= limit) ||
      p->be_head != NULL)
    dlv_want_flush(d, p);
  /* closed window and nothing in flight to learn from: persist timer */
  if (p->inflight == 0 && p->unsent != NULL && p->unsent->seq > limit &&
      p->rto_t.idx == DLV_NO_IDX)
    dlv_timer_set(d, &p->rto_t, now + p->rto);
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
      dlv_want_flush(d, p);
    }
    return;
  }
  uint64_t ref = dlv_base(p) - 1;
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
    dlv_want_flush(d, p);
  }
  dlv_timer_set(d, &p->rto_t, next == DMQ_NEVER ? now + p->rto : next);
}

/* Request timeout: EXPIRED, and its copy still queued is abandoned. */
static void dlv_on_req_timeout(dmq_node_t *n, dlv_op_t *op) {
  dlv_op_finish(n, op, DMQ_OUTCOME_EXPIRED);
  while (op->reps != NULL)
    dlv_abandon_copy(n, op->reps, DMQ_OUTCOME_EXPIRED);
}

void dmq__delivery_tick(dmq_node_t *n) {
  dlv_t *d = n->dlv;
  uint64_t now = n->now;
  while (d->heap_n > 0 && d->heap[0]->at <= now) {
    dlv_timer_t *t = d->heap[0];
    dlv_timer_del(d, t);
    switch (t->kind) {
    case DLV_T_TTL: {
      dlv_msg_t *m = (dlv_msg_t *)((char *)t - offsetof(dlv_msg_t, ttl));
      dlv_abandon_copy(n, m, DMQ_OUTCOME_EXPIRED);
      break;
    }
    case DLV_T_REQ: {
      dlv_op_t *op = (dlv_op_t *)((char *)t - offsetof(dlv_op_t, tmo));
      dlv_on_req_timeout(n, op);
      break;
    }
    case DLV_T_ACK:
      dlv_want_flush(d,
                     (dlv_peer_t *)((char *)t - offsetof(dlv_peer_t, ack_t)));
      break;
    case DLV_T_TQ:
      dlv_on_tq(n, (dlv_peer_t *)((char *)t - offsetof(dlv_peer_t, tq_t)));
      break;
    default: {
      dlv_peer_t *p = (dlv_peer_t *)((char *)t - offsetof(dlv_peer_t, rto_t));
      dlv_on_rto(n, p);
      break;
    }
    }
  }
  dlv_peer_t *list = d->flush_head;
  d->flush_head = d->flush_tail = NULL;
  while (list != NULL) {
    dlv_peer_t *p = list;
    list = p->flush_next;
    p->in_flush = 0;
    dlv_flush_peer(n, p, 0);
  }
}

uint64_t dmq__delivery_deadline(const dmq_node_t *n) {
  const dlv_t *d = n->dlv;
  if (d == NULL)
    return DMQ_NEVER;
  if (d->flush_head != NULL || d->ready_head != NULL || d->done_head != NULL ||
      d->wr_head != NULL)
    return n->now;
  return d->heap_n > 0 ? d->heap[0]->at : DMQ_NEVER;
}

/* ====================================================================== */
/* receiver                                                                */

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
    d->st.unknown_sender++;
    if (be_seq != 0)
      dlv_tomb_unknown(n, d, sender, dd->src_gen, be_seq);
    return;
  }
  if (!(dd->flags & DMQ__DATA_RELIABLE)) {
    if (dd->flags & DMQ__DATA_MORE) {
      n->stats.drops[DMQ_DROP_MALFORMED]++;
      return;
    }
    if (be_seq != 0) { /* 0: an older sender, not numbered */
      dlv_peer_t *p = m->peer != NULL ? m->peer : dlv_peer_get(n, m);
      if (p == NULL) {
        d->st.rx_overflow++;
        return;
      }
      if (dlv_be_arrived(n, p, dd->src_gen, be_seq) != 0)
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
    return;
  }
  if (dd->seq == 0 || dd->base == 0 || dd->base > dd->seq ||
      (dd->flags & (DMQ__DATA_REQUEST | DMQ__DATA_REPLY)) ==
          (DMQ__DATA_REQUEST | DMQ__DATA_REPLY) ||
      dd->payload.n > UINT32_MAX) {
    n->stats.drops[DMQ_DROP_MALFORMED]++;
    return;
  }
  dlv_peer_t *p = dlv_peer_get(n, m);
  if (p == NULL) {
    d->st.rx_overflow++;
    return;
  }
  if (dd->src_gen < p->rx_gen) {
    d->st.stale_gen++;
    return;
  }
  if (dd->src_gen > p->rx_gen)
    dlv_rx_start(n, p, dd->src_gen);
  if (dd->ttl_ms == 0) {
    d->st.rx_expired++;
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
                 (p->nbuf == 0 || dlv_ring_at(p, p->next_exp) != NULL);
  dlv_ack(d, p, skipped || !in_order, 1);
  if (seq < p->next_exp || dlv_ring_at(p, seq) != NULL) {
    d->st.duplicates++;
    return;
  }
  if (seq - p->next_exp >= d->cfg.window || dlv_ring_fit(n, p, seq) != 0) {
    d->st.rx_overflow++;
    return;
  }
  dlv_rent_t *e = &p->ring[seq & (p->ring_cap - 1)];
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
  if (seq == p->next_exp)
    dlv_want_ready(d, p);
}

void dmq__delivery_recv_done(dmq_node_t *n) {
  dlv_t *d = n->dlv;
  for (uint32_t i = 0; i < d->bor_n; i++) {
    dlv_peer_t *p = d->bor[i].p;
    dlv_rent_t *e = dlv_ring_at(p, d->bor[i].seq);
    if (e != NULL && e->own == NULL)
      dlv_rent_own(n, p, e);
  }
  d->bor_n = 0;
  d->be_n = 0;
  d->cache_m = NULL;
  d->cache_p = NULL;
  d->rx_pkt_be = 0;
}

static void dlv_on_reply(dmq_node_t *n, dlv_peer_t *p, uint64_t req_id,
                         const void *data, size_t len) {
  dlv_t *d = n->dlv;
  dlv_op_t *op = dlv_ids_get(d, req_id);
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
      op->id, DMQ_OUTCOME_DELIVERED, op->dest, op->chan, 0, 0, data, len};
  op->state = DLV_S_FINISHED;
  if (op->cb != NULL)
    op->cb(n, &info, op->ud);
  dlv_op_unref(n, op);
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
    uint8_t *r = dmq__realloc(n, p->ra, nc);
    if (r == NULL)
      return DMQ__REJ_TOO_BIG;
    p->ra = r;
    p->ra_cap = nc;
  }
  if (len > 0)
    memcpy(p->ra + p->ra_len, b, len);
  p->ra_len = want;
  return 0;
}

/* Deliver what is in order for p, until a hole, a paused channel, or a
 * rejection that cannot be reported yet. */
static void dlv_rx_deliver(dmq_node_t *n, dlv_peer_t *p) {
  dlv_t *d = n->dlv;
  while (!d->closing) {
    dlv_rent_t *e = dlv_ring_at(p, p->next_exp);
    if (e == NULL)
      return;
    int last = !(e->flags & DMQ__DATA_MORE);
    uint8_t reason = p->ra_drop;
    dmq_channel_t *ch = NULL;
    if (reason == 0 && n->now >= e->deadline)
      reason = DLV_DROP_EXPIRED;
    if (reason == 0 && !(e->flags & DMQ__DATA_REPLY)) {
      ch = dlv_chan_find(d, e->chan, e->chan_len,
                         dmq__hash(e->chan, e->chan_len));
      if (ch == NULL)
        reason = DMQ__REJ_NO_CHANNEL;
      else if (ch->paused)
        return; /* held, unacknowledged: the window closes */
    }
    if (last && (reason == DMQ__REJ_NO_CHANNEL || reason == DMQ__REJ_TOO_BIG) &&
        p->nrej == DMQ__WIRE_MAX_REJ)
      return; /* wait until the sender has seen older rejections */
    if (!last || p->ra_active) {
      if (reason == 0)
        reason = dlv_ra_append(n, p, e->data, e->len);
      if (reason != 0 && p->ra != NULL) {
        dmq__free(n, p->ra);
        p->ra = NULL;
        p->ra_len = p->ra_cap = 0;
      }
      if (!last) {
        p->ra_active = 1;
        p->ra_drop = reason;
        dlv_rent_clear(n, p, e);
        p->next_exp++;
        dlv_ack(d, p, 0, 0);
        continue;
      }
    }
    dlv_rent_t x = *e; /* the slot is freed before the callback */
    e->own = NULL;     /* ownership moves to x */
    if (x.own != NULL)
      p->buf_bytes -= (size_t)x.chan_len + x.len;
    dlv_rent_clear(n, p, e);
    p->next_exp++;
    dlv_ack(d, p, 0, 0);
    const uint8_t *data = p->ra_active ? p->ra : x.data;
    size_t len = p->ra_active ? p->ra_len : x.len;
    if (reason == DMQ__REJ_NO_CHANNEL || reason == DMQ__REJ_TOO_BIG) {
      dlv_rej_add(p, x.seq, reason);
      if (reason == DMQ__REJ_NO_CHANNEL)
        d->st.dropped_no_channel++;
      else
        d->st.reassembly_drops++;
    } else if (reason != 0) {
      d->st.rx_expired++;
    } else if (x.flags & DMQ__DATA_REPLY) {
      dlv_on_reply(n, p, x.req_id, data, len);
    } else {
      dmq_reply_handle_t h;
      dmq_message_t msg = {p->m->name, ch->name, data, len, 1, NULL};
      if (x.flags & DMQ__DATA_REQUEST) {
        memcpy(h.from, p->m->name, (size_t)p->m->name_len + 1);
        h.from_gen = p->rx_gen;
        h.req_id = x.req_id;
        memcpy(h.channel, ch->name, (size_t)ch->len + 1);
        h.valid = 1;
        msg.request = &h;
      }
      d->st.delivered_app++;
      d->cur_chan = ch;
      ch->cb(n, ch, &msg, ch->ud);
      d->cur_chan = NULL;
    }
    if (x.own != NULL)
      dlv_buf_put(n, x.own, (size_t)x.chan_len + x.len);
    if (p->ra_active)
      dlv_ra_reset(n, p);
  }
}

int dmq__delivery_flush(dmq_node_t *n) {
  dlv_t *d = n->dlv;
  int did = 0;
  if (d == NULL)
    return 0;
  for (uint32_t i = 0; i < d->be_n && !d->closing; i++) {
    dlv_be_t *b = &d->be[i];
    dmq_channel_t *ch =
        dlv_chan_find(d, b->chan.p, b->chan.n, dmq__hash(b->chan.p, b->chan.n));
    if (ch == NULL) {
      d->st.dropped_no_channel++;
      continue;
    }
    if (ch->paused) {
      d->st.dropped_paused++;
      continue;
    }
    dmq_message_t msg = {b->m->name, ch->name, b->data.p, b->data.n, 0, NULL};
    d->st.delivered_app++;
    d->cur_chan = ch;
    ch->cb(n, ch, &msg, ch->ud);
    d->cur_chan = NULL;
    did = 1;
  }
  d->be_n = 0;
  while (d->ready_head != NULL) {
    dlv_peer_t *p = d->ready_head;
    d->ready_head = p->ready_next;
    if (d->ready_head == NULL)
      d->ready_tail = NULL;
    p->in_ready = 0;
    dlv_rx_deliver(n, p);
    did = 1;
  }
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
                               0};
    if (op->kind == DLV_K_SEND || op->kind == DLV_K_REQ)
      info.delivered = info.failed = 0;
    op->state = DLV_S_FINISHED;
    if (op->cb != NULL)
      op->cb(n, &info, op->ud);
    dlv_op_unref(n, op);
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

/* ====================================================================== */
/* membership hooks and lifecycle                                          */

void dmq__delivery_member_changed(dmq_node_t *n, dmq__member_t *m,
                                  dmq_outcome_t why) {
  dlv_peer_t *p = m->peer;
  if (p == NULL)
    return;
  dlv_fail_peer(n, p, why);
  if (p->tx_gen != m->gen) { /* a restart: a new stream, from 1 */
    dlv_tx_reset(n, p);
  }
  if (p->rx_gen != 0 && p->rx_gen < m->gen)
    dlv_rx_reset(n, p);
}

static void dlv_peer_free(dmq_node_t *n, dlv_peer_t *p) {
  dlv_t *d = n->dlv;
  dlv_fail_peer(n, p, DMQ_OUTCOME_DEAD);
  dlv_tomb_add(n, d, p);
  dlv_rx_reset(n, p);
  DLV_LIST_UNLINK(d, p, flush_head, flush_tail, flush_next, in_flush);
  DLV_LIST_UNLINK(d, p, ready_head, ready_tail, ready_next, in_ready);
  DLV_LIST_UNLINK(d, p, wr_head, wr_tail, wr_next, in_wr);
  for (uint32_t i = 0; i < d->bor_n; i++)
    if (d->bor[i].p == p)
      d->bor[i].seq = 0; /* dlv_ring_at(seq 0) finds nothing */
  dlv_peer_t *no_tail;
  DLV_DL_UNLINK(p, all_prev, all_next, &d->peers, &no_tail);
  dlv_heap_release(d, 3);
  dmq__free(n, p->ring);
  p->m->peer = NULL;
  dmq__free(n, p);
}

void dmq__delivery_member_removed(dmq_node_t *n, dmq__member_t *m) {
  if (n->dlv != NULL && m->peer != NULL) {
    if (n->dlv->cache_m == m)
      n->dlv->cache_m = NULL;
    dlv_peer_free(n, m->peer);
  }
}

void dmq_delivery_config_init(dmq_delivery_config_t *c) {
  if (c == NULL)
    return;
  memset(c, 0, sizeof(*c));
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
}

int dmq__delivery_init(dmq_node_t *n) {
  dlv_t *d = dmq__malloc(n, sizeof(*d));
  if (d == NULL)
    return DMQ_ENOMEM;
  memset(d, 0, sizeof(*d));
  d->node = n;
  dmq_delivery_config_init(&d->cfg);
  if ((size_t)n->cfg.max_packet < d->cfg.max_message + DLV_PACKET_HEADROOM)
    d->cfg.max_message = n->cfg.max_packet > 2 * DLV_PACKET_HEADROOM
                             ? n->cfg.max_packet - DLV_PACKET_HEADROOM
                             : DLV_PACKET_HEADROOM;
  d->next_id = 1; /* d->tx: on the first flush (many nodes never send) */
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
    dlv_fail_peer(n, p, DMQ_OUTCOME_SHUTDOWN);
  dmq__flush_events(n); /* the SHUTDOWN outcomes */
}

void dmq__delivery_free(dmq_node_t *n) {
  dlv_t *d = n->dlv;
  if (d == NULL)
    return;
  while (d->peers != NULL) /* members without one were freed already */
    dlv_peer_free(n, d->peers);
  /* outcomes never run (a zero-destination broadcast queued meanwhile) */
  while (d->done_head != NULL) {
    dlv_op_t *op = d->done_head;
    d->done_head = op->next;
    dlv_op_unref(n, op);
  }
  for (uint32_t i = 0; i < d->nchans; i++)
    dmq__free(n, d->chans[i]);
  dlv_pool_drain(n, &d->free_ops);
  dlv_pool_drain(n, &d->free_msgs);
  dlv_pool_drain(n, &d->free_small);
  dmq__free(n, d->heap);
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

/* ====================================================================== */
/* public API: configuration, channels                                     */

const char *dmq_outcome_name(dmq_outcome_t o) {
  static const char *const names[] = {"delivered",    "expired",   "dead",
                                      "left",         "cancelled", "shutdown",
                                      "unknown_dest", "too_big"};
  return (unsigned)o < sizeof(names) / sizeof(names[0]) ? names[o] : "unknown";
}

int dmq_delivery_configure(dmq_node_t *n, const dmq_delivery_config_t *c) {
  if (n == NULL || c == NULL || n->dlv == NULL)
    return DMQ_EINVAL;
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
  for (dlv_peer_t *p = n->dlv->peers; p != NULL; p = p->all_next) {
    p->peer_rwnd = c->window;
    p->rto = dlv_rto_base(n, p);
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
  if (n == NULL || n->dlv == NULL || cb == NULL || !dlv_valid_chan(name, &len))
    return DMQ_EINVAL;
  dlv_t *d = n->dlv;
  if (d->closing)
    return DMQ_ECLOSED;
  if (n->leaving)
    return DMQ_ESTATE;
  uint64_t h = dmq__hash(name, len);
  if (dlv_chan_find(d, name, len, h) != NULL)
    return DMQ_EEXIST;
  if (d->nchans == DMQ_MAX_CHANNELS)
    return DMQ_ENOMEM;
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
  if (d->cur_chan == ch)
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
        dlv_want_ready(d, p);
  dmq__free(n, ch);
  return 0;
}

void dmq_channel_pause(dmq_channel_t *ch, int paused) {
  if (ch == NULL)
    return;
  int was = ch->paused;
  ch->paused = paused != 0;
  if (was && !ch->paused) {
    dlv_t *d = ch->node->dlv;
    for (dlv_peer_t *p = d->peers; p != NULL; p = p->all_next)
      if (p->nbuf > 0)
        dlv_want_ready(d, p);
  }
}

int dmq_member_serves(const dmq_node_t *n, const char *name,
                      const char *channel) {
  size_t cl;
  if (n == NULL || name == NULL || !dlv_valid_chan(channel, &cl))
    return 0;
  size_t l = strlen(name);
  if (l == 0 || l > DMQ_MAX_NAME)
    return 0;
  const dmq__member_t *m = dmq__member_find(n, name, l);
  return m != NULL &&
         dmq__member_serves(m, dmq__hash(channel, cl), channel, cl);
}

void dmq_delivery_stats(const dmq_node_t *n, dmq_delivery_stats_t *out) {
  if (out == NULL)
    return;
  memset(out, 0, sizeof(*out));
  if (n == NULL || n->dlv == NULL)
    return;
  const dlv_t *d = n->dlv;
  *out = d->st;
  out->queued_msgs = out->queued_bytes = out->inflight = 0;
  out->rx_buffered = out->rx_buffered_bytes = 0;
  for (const dlv_peer_t *p = d->peers; p != NULL; p = p->all_next) {
    out->queued_msgs += p->q_msgs;
    out->queued_bytes += p->q_bytes;
    out->inflight += p->inflight;
    out->rx_buffered += p->nbuf;
    out->rx_buffered_bytes += p->buf_bytes + p->ra_cap;
  }
}

/* ====================================================================== */
/* public API: sending                                                     */

typedef struct dlv_req {
  int kind;
  const char *chan;
  size_t chan_len;
  const void *data;
  size_t len;
  uint32_t ttl_ms;
  dmq_outcome_cb cb;
  void *ud;
  uint64_t req_id;     /* REPLY */
  uint32_t timeout_ms; /* REQ */
} dlv_req_t;

static int dlv_check_send(dmq_node_t *n, const char *channel, const void *data,
                          size_t len, size_t *chan_len) {
  if (n == NULL || n->dlv == NULL || !dlv_valid_chan(channel, chan_len) ||
      (data == NULL && len > 0))
    return DMQ_EINVAL;
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
  size_t frag = dlv_frag_max(n, r->chan_len);
  *nfrag = 1;
  *stream = 0;
  if (r->len <= frag)
    return 0;
  if (dmq__has_separate_stream(n, p->m->addr)) {
    *stream = 1;
    return 0;
  }
  if (r->kind == DLV_K_BE)
    return DMQ_ETOOBIG;
  *nfrag = (uint32_t)((r->len + frag - 1) / frag);
  return 0;
}

static int dlv_room(dlv_t *d, dlv_peer_t *p, size_t len) {
  if (p->q_msgs + 1 > d->cfg.queue_msgs ||
      (p->q_bytes > 0 && p->q_bytes + len > d->cfg.queue_bytes))
    return 0;
  return 1;
}

/* A destination that restarted without us noticing through gossip yet. */
static void dlv_sync_gen(dmq_node_t *n, dlv_peer_t *p) {
  if (p->tx_gen != p->m->gen)
    dmq__delivery_member_changed(n, p->m, DMQ_OUTCOME_DEAD);
}

static dlv_op_t *dlv_new_op(dmq_node_t *n, const dlv_req_t *r) {
  dlv_op_t *op = dlv_op_alloc(n);
  if (op == NULL)
    return NULL;
  op->data = dlv_buf_alloc(n, r->len);
  if (op->data == NULL) {
    dlv_op_put(n, op);
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

/* Queue one copy of op for p from the pre-allocated chain (takes nfrag). */
static dlv_msg_t *dlv_link_copy(dmq_node_t *n, dlv_peer_t *p, dlv_op_t *op,
                                dlv_msg_t *chain, uint32_t nfrag, int stream,
                                uint8_t flags, uint64_t deadline) {
  dlv_t *d = n->dlv;
  size_t frag = nfrag > 1 ? dlv_frag_max(n, op->chan_len) : op->len;
  uint32_t off = 0;
  dlv_msg_t *rest = chain;
  if (op->kind == DLV_K_BE) {
    dlv_msg_t *m = rest;
    rest = m->next;
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
    p->be_est += dlv_est(m);
    p->q_msgs++;
    p->q_bytes += op->len;
    dlv_want_flush(d, p);
    return rest;
  }
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
    m->next = NULL;
    m->prev = p->tail;
    if (p->tail != NULL)
      p->tail->next = m;
    else
      p->head = m;
    p->tail = m;
    if (p->unsent == NULL)
      p->unsent = m;
    p->unsent_est += dlv_est(m);
    if (m->rep) {
      m->rep_prev = NULL;
      m->rep_next = op->reps;
      if (op->reps != NULL)
        op->reps->rep_prev = m;
      op->reps = m;
      dlv_ttl_arm(d, p, m);
    }
  }
  p->q_msgs++;
  p->q_bytes += op->len;
  op->ncopies++;
  dlv_want_flush(d, p);
  return rest;
}

static void dlv_after_queue(dmq_node_t *n, dlv_peer_t *p) {
  if (p->unsent_est + p->be_est >= n->cfg.mtu)
    dlv_flush_peer(n, p, 1);
}

static uint8_t dlv_kind_flags(int kind) {
  return kind == DLV_K_REQ     ? DMQ__DATA_REQUEST
         : kind == DLV_K_REPLY ? DMQ__DATA_REPLY
                               : 0;
}

/* Unicast of any kind to member m. */
static int dlv_unicast(dmq_node_t *n, dmq__member_t *m, const dlv_req_t *r,
                       uint64_t now, dmq_msg_id_t *id) {
  dlv_t *d = n->dlv;
  dlv_set_now(n, now);
  dlv_peer_t *p = dlv_peer_get(n, m);
  if (p == NULL)
    return DMQ_ENOMEM;
  dlv_sync_gen(n, p);
  uint32_t nfrag;
  int stream;
  int rc = dlv_plan(n, p, r, &nfrag, &stream);
  if (rc != 0)
    return rc;
  if (!dlv_room(d, p, r->len)) {
    p->want_wr = 1;
    d->st.refused_full++;
    return DMQ_EAGAIN;
  }
  int has_id = r->kind == DLV_K_SEND || r->kind == DLV_K_REQ;
  uint32_t timers = r->kind == DLV_K_BE ? 0 : r->kind == DLV_K_REQ ? 2 : 1;
  if (has_id && dlv_ids_reserve(n, 1) != 0)
    return DMQ_ENOMEM;
  if (dlv_heap_reserve(n, timers) != 0)
    return DMQ_ENOMEM;
  dlv_op_t *op = dlv_new_op(n, r);
  dlv_msg_t *chain = NULL;
  if (op == NULL || dlv_alloc_chain(n, nfrag, &chain) != 0) {
    if (op != NULL) {
      dlv_buf_put(n, op->data, op->len);
      dlv_op_put(n, op);
    }
    dlv_heap_release(d, timers);
    return DMQ_ENOMEM;
  }
  uint32_t ttl = r->kind == DLV_K_REQ ? r->timeout_ms
                 : r->ttl_ms          ? r->ttl_ms
                                      : d->cfg.ttl_ms;
  uint64_t deadline = n->now + ttl;
  if (r->kind == DLV_K_SEND || r->kind == DLV_K_REQ) {
    memcpy(op->dest, m->name, (size_t)m->name_len + 1);
    dlv_ids_put(d, op);
  }
  if (r->kind == DLV_K_REQ) {
    dlv_timer_set(d, &op->tmo, deadline);
    op->rq_peer = p;
    op->rq_next = p->reqs;
    if (p->reqs != NULL)
      p->reqs->rq_prev = op;
    p->reqs = op;
  }
  dlv_link_copy(n, p, op, chain, nfrag, stream, dlv_kind_flags(r->kind),
                deadline);
  d->used = 1;
  if (id != NULL)
    *id = op->id;
  dlv_after_queue(n, p);
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

int dmq_send(dmq_node_t *n, const char *dest, const char *channel,
             const void *data, size_t len, const dmq_send_opts_t *opts,
             uint64_t now, dmq_msg_id_t *id) {
  dlv_req_t r;
  dmq__member_t *m;
  memset(&r, 0, sizeof(r));
  int rc = dlv_check_send(n, channel, data, len, &r.chan_len);
  if (rc != 0)
    return rc;
  int reliable = opts != NULL && opts->mode == DMQ_SEND_RELIABLE;
  if (opts != NULL && opts->mode != DMQ_SEND_RELIABLE &&
      opts->mode != DMQ_SEND_BEST_EFFORT)
    return DMQ_EINVAL;
  if (reliable && opts->cb == NULL)
    return DMQ_EINVAL;
  if ((rc = dlv_lookup_dest(n, dest, &m)) != 0)
    return rc;
  r.kind = reliable ? DLV_K_SEND : DLV_K_BE;
  r.chan = channel;
  r.data = data;
  r.len = len;
  r.ttl_ms = opts != NULL ? opts->ttl_ms : 0;
  r.cb = reliable ? opts->cb : NULL;
  r.ud = opts != NULL ? opts->user_data : NULL;
  return dlv_unicast(n, m, &r, now, id);
}

int dmq_request(dmq_node_t *n, const char *dest, const char *channel,
                const void *data, size_t len, uint32_t timeout_ms,
                dmq_outcome_cb cb, void *ud, uint64_t now, dmq_msg_id_t *id) {
  dlv_req_t r;
  dmq__member_t *m;
  memset(&r, 0, sizeof(r));
  int rc = dlv_check_send(n, channel, data, len, &r.chan_len);
  if (rc != 0)
    return rc;
  if (cb == NULL)
    return DMQ_EINVAL;
  if ((rc = dlv_lookup_dest(n, dest, &m)) != 0)
    return rc;
  r.kind = DLV_K_REQ;
  r.chan = channel;
  r.data = data;
  r.len = len;
  r.cb = cb;
  r.ud = ud;
  r.timeout_ms = timeout_ms ? timeout_ms : n->dlv->cfg.request_timeout_ms;
  return dlv_unicast(n, m, &r, now, id);
}

int dmq_reply(dmq_node_t *n, dmq_reply_handle_t *h, const void *data,
              size_t len, uint64_t now) {
  dlv_req_t r;
  memset(&r, 0, sizeof(r));
  if (h == NULL || !h->valid)
    return DMQ_EINVAL;
  int rc = dlv_check_send(n, h->channel, data, len, &r.chan_len);
  if (rc != 0)
    return rc;
  size_t l = strnlen(h->from, DMQ_MAX_NAME + 1);
  if (l == 0 || l > DMQ_MAX_NAME)
    return DMQ_EINVAL;
  dmq__member_t *m = dmq__member_find(n, h->from, l);
  if (m == NULL || m->is_self || m->state > DMQ_MEMBER_SUSPECT ||
      m->gen != h->from_gen)
    return DMQ_ENOENT;
  r.kind = DLV_K_REPLY;
  r.chan = h->channel;
  r.data = data;
  r.len = len;
  r.req_id = h->req_id;
  rc = dlv_unicast(n, m, &r, now, NULL);
  if (rc == 0)
    h->valid = 0;
  return rc;
}

int dmq_broadcast(dmq_node_t *n, const char *channel, const void *data,
                  size_t len, const dmq_send_opts_t *opts, uint64_t now,
                  dmq_msg_id_t *id) {
  dlv_req_t r;
  memset(&r, 0, sizeof(r));
  int rc = dlv_check_send(n, channel, data, len, &r.chan_len);
  if (rc != 0)
    return rc;
  int reliable = opts != NULL && opts->mode == DMQ_SEND_RELIABLE;
  if (opts != NULL && opts->mode != DMQ_SEND_RELIABLE &&
      opts->mode != DMQ_SEND_BEST_EFFORT)
    return DMQ_EINVAL;
  if (reliable && opts->cb == NULL)
    return DMQ_EINVAL;
  dlv_t *d = n->dlv;
  dlv_set_now(n, now);
  r.kind = reliable ? DLV_K_BCAST : DLV_K_BE;
  r.chan = channel;
  r.data = data;
  r.len = len;
  r.ttl_ms = opts != NULL ? opts->ttl_ms : 0;
  r.cb = reliable ? opts->cb : NULL;
  r.ud = opts != NULL ? opts->user_data : NULL;
  /* destinations */
  if (d->dests_cap < n->nmembers) {
    dmq__member_t **nd = dmq__realloc(n, d->dests, n->nmembers * sizeof(*nd));
    if (nd == NULL)
      return DMQ_ENOMEM;
    d->dests = nd;
    d->dests_cap = n->nmembers;
  }
  uint64_t h = dmq__hash(channel, r.chan_len);
  uint32_t nd = 0, total = 0, full = 0;
  for (uint32_t i = 0; i < n->nmembers; i++) {
    dmq__member_t *m = n->members[i];
    if (!m->is_self && m->state <= DMQ_MEMBER_SUSPECT &&
        dmq__member_serves(m, h, channel, r.chan_len))
      d->dests[nd++] = m;
  }
  for (uint32_t i = 0; i < nd; i++) {
    dlv_peer_t *p = dlv_peer_get(n, d->dests[i]);
    if (p == NULL)
      return DMQ_ENOMEM;
    dlv_sync_gen(n, p);
    uint32_t nf;
    int st;
    if ((rc = dlv_plan(n, p, &r, &nf, &st)) != 0)
      return rc;
    total += nf;
    if (!dlv_room(d, p, len)) {
      p->want_wr = 1;
      full = 1;
    }
  }
  if (full) {
    d->st.refused_full++;
    return DMQ_EAGAIN;
  }
  uint32_t timers = reliable ? nd : 0;
  if (reliable && dlv_ids_reserve(n, 1) != 0)
    return DMQ_ENOMEM;
  if (dlv_heap_reserve(n, timers) != 0)
    return DMQ_ENOMEM;
  dlv_op_t *op = dlv_new_op(n, &r);
  dlv_msg_t *chain = NULL;
  if (op == NULL || dlv_alloc_chain(n, total, &chain) != 0) {
    if (op != NULL) {
      dlv_buf_put(n, op->data, op->len);
      dlv_op_put(n, op);
    }
    dlv_heap_release(d, timers);
    return DMQ_ENOMEM;
  }
  uint64_t deadline = n->now + (r.ttl_ms ? r.ttl_ms : d->cfg.ttl_ms);
  if (reliable)
    dlv_ids_put(d, op);
  if (!reliable)
    op->refs++; /* held while the copies are linked */
  for (uint32_t i = 0; i < nd; i++) {
    dlv_peer_t *p = d->dests[i]->peer;
    uint32_t nf;
    int st;
    dlv_plan(n, p, &r, &nf, &st);
    chain = dlv_link_copy(n, p, op, chain, nf, st, 0, deadline);
  }
  d->used = 1;
  if (id != NULL)
    *id = op->id;
  if (reliable && nd == 0)
    dlv_op_finish(n, op, DMQ_OUTCOME_DELIVERED); /* next tick, 0 / 0 */
  if (!reliable)
    dlv_op_unref(n, op);
  for (uint32_t i = 0; i < nd; i++)
    dlv_after_queue(n, d->dests[i]->peer);
  return 0;
}

int dmq_delivery_cancel(dmq_node_t *n, dmq_msg_id_t id) {
  if (n == NULL || n->dlv == NULL)
    return DMQ_EINVAL;
  dlv_op_t *op = dlv_ids_get(n->dlv, id);
  if (op == NULL || op->state != DLV_S_PENDING)
    return DMQ_ENOENT;
  op->refs++; /* keep it while its copies go */
  dlv_op_finish(n, op, DMQ_OUTCOME_CANCELLED);
  while (op->reps != NULL)
    dlv_abandon_copy(n, op->reps, DMQ_OUTCOME_CANCELLED);
  dlv_op_unref(n, op);
  dmq__flush_events(n); /* the outcome runs before we return */
  return 0;
}
