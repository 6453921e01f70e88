/* libdmq - queued delivery, private to src/delivery: constants, types and
 * the functions the files of src/delivery share. What delivery does, and
 * where it departs from TCP/SCTP, is told at the top of delivery.c.
 *
 * Which file holds what:
 * - delivery.c: the API (configuration, channels, stats), the callbacks run
 *   after processing (dmq__delivery_flush), member changes, lifecycle.
 * - peer.c: per-peer state, tombs (numbering of forgotten peers), the work
 *   lists (peers to flush, to deliver to, to tell writable).
 * - outcome.c: accepted sends (ops): allocation, the message id map,
 *   outcomes of copies and ops, request replies.
 * - queue.c: the sending API (dmq_send, dmq_broadcast, dmq_request,
 *   dmq_reply, dmq_delivery_cancel) and the per-peer sender queue:
 *   admission, one enqueue path for unicast and broadcast, TTLs, removal.
 * - send.c: queued messages onto the wire: packets, packing many messages
 *   per datagram with a piggybacked DACK, fragmentation, the stream
 *   fallback, the per-peer flush.
 * - ack.c: DACKs built and processed, RTT/RTO (RFC 6298, Karn's rule),
 *   fast retransmission, the RTO, TTL, request and delayed-ack timers.
 * - recv.c: receiving DATA: the reorder ring, reassembly of fragments,
 *   rejections, in-order delivery.
 * - gap.c: best-effort receive: gaps, a late arrival told from a copy,
 *   losses counted.
 * Generic containers (timer heap, free lists, lists, open addressing) are
 * in src/util.
 */
#ifndef DMQ_DELIVERY_INT_H
#define DMQ_DELIVERY_INT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "delivery/delivery.h"
#include "internal.h"
#include "members.h"
#include "util/heap.h"
#include "util/list.h"
#include "util/oamap.h"
#include "util/slab.h"
#include "wire.h"

/* Payloads are copied into blocks of DLV_BUF_CLASSES sizes, each from a
 * slab of its own (util/slab.h); larger ones into one allocation each.
 * Ops and queue entries come from slabs too, so that a message costs no
 * allocator call (a malloc and a free per 1 KiB message were ~9 % of the
 * sender's CPU, perf, delivery_bench reliable 1024) and a backlog grows
 * into chunks faulted in whole (docs/design.md, "Where queued messages
 * live"). A 1 KiB payload takes a 1 KiB block, not 2. */
#define DLV_BUF_CLASSES 3
#define DLV_SMALL 256
#define DLV_MID 2048
static const uint32_t dlv_buf_class_size[DLV_BUF_CLASSES] = {DLV_SMALL, 1024,
                                                             DLV_MID};
/* How often the slabs are trimmed: a slab with nothing in use at two trims
 * in a row, and nothing taken in between, gives all its chunks back. */
#define DLV_TRIM_EVERY_MS 1000

/* Bits in the DACK selective-ack bitmap: bit i = seq cum+1+i. The bitmap
 * starts at cum+1, not cum+2, because a message held for a paused channel
 * is received but not acknowledged and is exactly cum+1: the sender must
 * see it as received, or it would retransmit it forever. */
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
 * event loop. A backlog (after a stall, or with the window reopening at
 * once) is then sent in slices with the loop's I/O in between, so acks are
 * read and the window slides while the backlog drains; flushing a whole
 * window at once would hold the acks back until it was done and make
 * sender and receiver take turns. */
#define DLV_BURST_PKTS 32

/* Smallest reorder ring, in messages. */
#define DLV_RING_MIN 16

/* An empty reorder ring up to this size is kept between packets; a larger
 * one is freed as soon as it is empty. */
#define DLV_RING_KEEP 256

/* First capacity of the growable tables (timer heap, id map, scratch). */
#define DLV_INIT_CAP 64

/* Largest allowed window (reorder ring size bound). */
#define DLV_MAX_WINDOW 65536

/* Furthest a receiver moves its next expected number for one DATA (the
 * sender's base jumping over messages it abandoned): a DATA announcing a
 * base further ahead is implausible and dropped (a forged one would make
 * the real sender's next messages look like copies). A sender announces at
 * most this far above what the receiver acknowledged, so a real jump takes
 * several round trips. Part of the wire contract (docs/wire.md). */
#define DLV_SKIP_MAX 4096

/* Held (out-of-order, paused) messages are checked for their TTL this
 * often, riding on the node's ticks (at least one per probe period). */
#define DLV_PURGE_EVERY_MS 1000

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

#define DLV_NO_IDX DMQ__HEAP_NONE

/* Reason a message is consumed without delivery besides DMQ__REJ_*: its
 * TTL ran out (not reported back: the sender expires it itself). */
#define DLV_DROP_EXPIRED 0x80

enum { DLV_T_TTL = 1, DLV_T_REQ, DLV_T_RTO, DLV_T_ACK, DLV_T_TQ };

/* op kinds */
enum { DLV_K_BE = 0, DLV_K_SEND, DLV_K_BCAST, DLV_K_REQ, DLV_K_REPLY };

/* op states: waiting for its outcome, outcome queued, done */
enum { DLV_S_PENDING = 0, DLV_S_DONE, DLV_S_FINISHED };

typedef dmq__timer_t dlv_timer_t;

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
  uint32_t refused; /* broadcast: destinations left out (queue full) */
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
  size_t inflight_est; /* dmq__dlv_est() of the messages in flight */
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

struct dmq__channel {
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
  dmq__heap_t heap; /* timers */
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
  /* where ops, queue entries and payloads live */
  dmq__slab_t slab_ops, slab_msgs, slab_buf[DLV_BUF_CLASSES];
  /* packet buffers */
  uint8_t *tx; /* cfg.mtu */
  uint8_t *big;
  size_t big_cap;
  dlv_tomb_t *tombs; /* DLV_TOMBS, allocated at the first forgotten peer */
  uint32_t tomb_next;
  /* node-wide queue: payload bytes queued for all peers (the sum of their
   * q_bytes, bounded by cfg.max_queued_bytes); want_wr_all: a send was
   * refused by that limit, wr_all_pending: its writable callback (dest
   * NULL) is due */
  size_t q_total;
  uint8_t want_wr_all, wr_all_pending;
  /* node-wide receive state: bytes held for all senders (reorder rings,
   * owned payloads, reassembly buffers; bounded by cfg.max_rx_bytes), the
   * messages held, and when held messages are next checked for their TTL */
  size_t rx_bytes;
  uint32_t rx_nbuf;
  uint64_t next_purge;
  uint64_t next_trim; /* of the slabs */
};

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

typedef struct dlv_pkt {
  dmq__enc_t e;
  int open;
  uint32_t nbe;  /* best-effort messages in it */
  uint32_t sent; /* datagrams sent by this flush */
} dlv_pkt_t;

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

static inline dmq__slice_t dlv_sl(const char *p, size_t n) {
  dmq__slice_t s = {p, n};
  return s;
}

static inline uint64_t dlv_min(uint64_t a, uint64_t b) {
  return a < b ? a : b;
}

/* Queued payload bytes of p, and the node-wide total with them. */
static inline void dlv_q_add(dlv_t *d, dlv_peer_t *p, size_t len) {
  p->q_bytes += len;
  d->q_total += len;
}

static inline void dlv_q_sub(dlv_t *d, dlv_peer_t *p, size_t len) {
  p->q_bytes -= len;
  d->q_total -= len;
}

/* A zeroed block of size bytes from slab s (NULL: out of memory). */
static inline void *dlv_slab_get(dmq_node_t *n, dmq__slab_t *s, size_t size) {
  void *b = dmq__slab_get(n, s);
  if (b != NULL)
    memset(b, 0, size);
  return b;
}

/* Timers: one heap per node (util/heap.h); capacity for k more armed
 * timers is reserved when the objects that own them are accepted, so that
 * arming never fails later. */
static inline int dlv_heap_reserve(dmq_node_t *n, uint32_t k) {
  return dmq__heap_reserve(n, &n->dlv->heap, k, DLV_INIT_CAP);
}

static inline void dlv_heap_release(dlv_t *d, uint32_t k) {
  dmq__heap_release(&d->heap, k);
}

/* Arm (or move) t to fire at `at`. Capacity was reserved by the owner. */
static inline void dlv_timer_set(dlv_t *d, dlv_timer_t *t, uint64_t at) {
  if (dmq__heap_set(&d->heap, t, at))
    dmq__wake(d->node); /* a new earliest deadline */
}

static inline void dlv_timer_del(dlv_t *d, dlv_timer_t *t) {
  dmq__heap_del(&d->heap, t);
}

/* delivery.c */
int dmq__dlv_valid_chan(const char *s, size_t *len);
dmq_channel_t *dmq__dlv_chan_find(const dlv_t *d, const char *name, size_t len,
                                  uint64_t h);

/* peer.c */
dlv_tomb_t dmq__dlv_tomb_find(const dlv_t *d, uint64_t name_h, uint64_t gen);
void dmq__dlv_tomb_unknown(dmq_node_t *n, dlv_t *d, dmq__slice_t name,
                           uint64_t gen, uint64_t seq);
uint32_t dmq__dlv_rto_base(const dmq_node_t *n, const dlv_peer_t *p);
void dmq__dlv_tx_reset(dmq_node_t *n, dlv_peer_t *p);
dlv_peer_t *dmq__dlv_peer_get(dmq_node_t *n, dmq__member_t *m);
void dmq__dlv_want_flush(dlv_t *d, dlv_peer_t *p);
void dmq__dlv_ack(dlv_t *d, dlv_peer_t *p, int now, int count);
void dmq__dlv_want_ready(dlv_t *d, dlv_peer_t *p);
void dmq__dlv_want_wr(dlv_t *d, dlv_peer_t *p);
void dmq__dlv_peer_free(dmq_node_t *n, dlv_peer_t *p);

/* outcome.c */
dlv_op_t *dmq__dlv_op_alloc(dmq_node_t *n);
void dmq__dlv_op_put(dmq_node_t *n, dlv_op_t *op);
int dmq__dlv_ids_reserve(dmq_node_t *n, uint32_t k);
void dmq__dlv_ids_put(dlv_t *d, dlv_op_t *op);
dlv_op_t *dmq__dlv_ids_get(const dlv_t *d, uint64_t id);
void dmq__dlv_op_unref(dmq_node_t *n, dlv_op_t *op);
void dmq__dlv_op_finish(dmq_node_t *n, dlv_op_t *op, dmq_outcome_t oc);
dmq_outcome_t dmq__dlv_rej_outcome(uint8_t reason);
void dmq__dlv_check_writable(dlv_t *d, dlv_peer_t *p);
void dmq__dlv_copy_done(dmq_node_t *n, dlv_msg_t *rep, dmq_outcome_t oc);
void dmq__dlv_on_reply(dmq_node_t *n, dlv_peer_t *p, uint64_t req_id,
                       const void *data, size_t len);

/* queue.c */
void dmq__dlv_msg_put(dmq_node_t *n, dlv_msg_t *m);
uint8_t *dmq__dlv_buf_alloc(dmq_node_t *n, size_t len);
void dmq__dlv_buf_put(dmq_node_t *n, uint8_t *b, size_t len);
void dmq__dlv_ttl_disarm(dlv_t *d, dlv_peer_t *p, dlv_msg_t *rep);
void dmq__dlv_on_tq(dmq_node_t *n, dlv_peer_t *p);
uint64_t dmq__dlv_base(const dlv_peer_t *p);
size_t dmq__dlv_est(const dlv_msg_t *m);
void dmq__dlv_msg_remove(dmq_node_t *n, dlv_peer_t *p, dlv_msg_t *m);
void dmq__dlv_abandon_copy(dmq_node_t *n, dlv_msg_t *rep, dmq_outcome_t oc);
void dmq__dlv_fail_peer(dmq_node_t *n, dlv_peer_t *p, dmq_outcome_t oc);

/* send.c */
size_t dmq__dlv_frag_max(const dmq_node_t *n, size_t chan_len);
void dmq__dlv_flush_peer(dmq_node_t *n, dlv_peer_t *p, int full_only);

/* ack.c */
void dmq__dlv_build_dack(dmq_node_t *n, dlv_peer_t *p, dmq__dack_t *a);
void dmq__dlv_arm_rto(dmq_node_t *n, dlv_peer_t *p);

/* recv.c */
dlv_rent_t *dmq__dlv_ring_at(const dlv_peer_t *p, uint64_t seq);
void dmq__dlv_rx_reset(dmq_node_t *n, dlv_peer_t *p);
void dmq__dlv_rx_start(dmq_node_t *n, dlv_peer_t *p, uint64_t gen);
void dmq__dlv_rx_deliver(dmq_node_t *n, dlv_peer_t *p);
void dmq__dlv_rx_purge(dmq_node_t *n);

/* gap.c */
int dmq__dlv_be_arrived(dmq_node_t *n, dlv_peer_t *p, uint64_t src_gen,
                        uint64_t seq);

#endif
