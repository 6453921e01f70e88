/* libdmq - internal structures shared by the core's source files. */
#ifndef DMQ_INTERNAL_H
#define DMQ_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "dmq/dmq.h"
#include "wire.h"

#define DMQ__MAX_TRANSPORTS 8
#define DMQ__MAX_SEEDS DMQ_MAX_SEEDS
/* digest sums kept inside the node (2^3: tables up to 64 members) */
#define DMQ__AE_SUM_INLINE_K 3
#define DMQ__AE_SUM_INLINE (1u << DMQ__AE_SUM_INLINE_K)
/* Most confirmations tracked per suspicion (Lifeguard's k is small). */
#define DMQ__MAX_CONFIRM 8
/* Outstanding relayed (indirect) probes we keep track of. */
#define DMQ__MAX_RELAYS 16
/* Dissemination buckets: transmit counts above this are never needed. */
#define DMQ__MAX_BUCKETS 32
/* Digest exchanges a node waits for at once (antientropy.c). */
#define DMQ__AE_SLOTS 4
/* The member arena (members.c): members are carved from chunks the node
 * allocates (DMQ__ARENA_CHUNK_MIN bytes, doubling up to
 * DMQ__ARENA_CHUNK_MAX), in size classes of DMQ__ARENA_GRAIN bytes (a
 * member holds its name and address); a removed member's slot waits on its
 * class's free list for the next member of that size. The chunks are freed
 * with the last member (dmq_node_destroy). Classes: enough for the largest
 * member (members.c checks it at compile time). */
#define DMQ__ARENA_GRAIN 16
#define DMQ__ARENA_CLASSES 24
#define DMQ__ARENA_CHUNK_MIN 1024
#define DMQ__ARENA_CHUNK_MAX 65536
/* Member-event log capacity (bytes) kept between bursts. */
#define DMQ__EVENTS_KEEP 2048

/* ---- rng: xoshiro256** seeded through splitmix64 ---- */
typedef struct dmq__rng {
  uint64_t s[4];
} dmq__rng_t;
void dmq__rng_seed(dmq__rng_t *r, uint64_t seed);
uint64_t dmq__rng_next(dmq__rng_t *r);
/* Uniform in [0, n); n > 0. */
uint64_t dmq__rng_below(dmq__rng_t *r, uint64_t n);

typedef struct dmq__member dmq__member_t;

/* What the member listener (members.h) hears about a member. */
typedef enum dmq__member_change {
  DMQ__MEMBER_DEAD,      /* declared dead */
  DMQ__MEMBER_LEFT,      /* left the cluster */
  DMQ__MEMBER_RESTARTED, /* came back with a new generation */
  DMQ__MEMBER_REMOVED    /* about to be freed */
} dmq__member_change_t;
typedef void (*dmq__member_listener_t)(dmq_node_t *n, dmq__member_t *m,
                                       dmq__member_change_t what);

typedef struct dmq__relay {
  uint32_t seq;        /* our ping to the target */
  uint32_t origin_seq; /* the requester's probe seq */
  uint64_t nack_at;    /* send a nack if no ack by then (0 = sent/none) */
  uint64_t expire_at;
  char origin[DMQ_MAX_ADDR + 1];
  uint8_t want_nack;
  uint8_t used;
} dmq__relay_t;

/* A queued member event: this header, then name, NUL, addr, NUL and meta,
 * the whole record padded to 8 bytes, in node->events (a byte log: a join
 * queues one event per member, so records are as small as their strings). */
typedef struct dmq__event {
  uint64_t inc, gen, since;
  uint32_t size; /* of the record, header included */
  uint16_t meta_len;
  uint8_t ev; /* dmq_member_event_t */
  uint8_t state;
  uint8_t name_len, addr_len;
} dmq__event_t;

struct dmq__node {
  dmq_alloc_t alloc;
  dmq_config_t cfg; /* strings inside point to node-owned copies */
  char name[DMQ_MAX_NAME + 1];
  char addr[DMQ_MAX_ADDR + 1];
  dmq__rng_t rng;
  void *user_data;
  dmq_member_cb member_cb;
  void *member_ud;
  dmq_log_cb log_cb;
  dmq_log_level_t log_level;
  void *log_ud;

  dmq_transport_t *transports[DMQ__MAX_TRANSPORTS];
  size_t ntransports;

  /* member table: array (probe order) + open-addressing name index */
  dmq__member_t **members;
  uint32_t nmembers, cap_members;
  dmq__member_t **index; /* tagged pointers (members.c) */
  uint32_t index_cap;    /* power of two */
  dmq__member_t *self;
  /* the member arena (members.c): chunks (linked through their first
   * word), the free space of the newest, free slots per size class */
  void *arena_chunks;
  uint8_t *arena_next;
  size_t arena_left, arena_chunk;
  void *arena_free[DMQ__ARENA_CLASSES];
  uint32_t n_live;                        /* alive + suspect, self included */
  dmq__member_listener_t member_listener; /* set by node.c */

  dmq__member_t **suspects;
  uint32_t nsuspects, cap_suspects;

  /* dissemination queue: bucket b holds members whose update was sent b
   * times; lower buckets go first; inside a bucket, the head is freshest. */
  dmq__member_t *bc_head[DMQ__MAX_BUCKETS], *bc_tail[DMQ__MAX_BUCKETS];
  uint32_t bc_count;
  uint32_t announce_used; /* fresh announcements this probe period */

  /* probing */
  int started;
  uint64_t now;
  uint32_t seq;
  uint32_t probe_pos;
  uint64_t probe_last; /* name hash of the last round-robin probe target */
  uint64_t next_probe;
  struct {
    int active, acked, indirect_sent;
    uint32_t seq;
    uint32_t nacks_expected, nacks_got;
    uint64_t timeout_at, end_at;
    char target[DMQ_MAX_NAME + 1];
  } probe;
  uint32_t health; /* Lifeguard local health multiplier - 1 */
  /* amplification bound (swim.c): replies caused by the packet being
   * received (pkts_in identifies it) */
  uint64_t reply_pkt;
  uint32_t replies;
  uint32_t probe_rounds;   /* probe periods started (hearsay probe pacing) */
  uint32_t hearsay_pos;    /* where the next hearsay probe target is sought */
  uint32_t n_hearsay;      /* members known only from hearsay */
  uint32_t n_hearsay_live; /* of those, alive or suspect */
  /* The members heard from themselves, in no order (swim.c): probe relays
   * and gossip targets are drawn from it, not from a table that is mostly
   * hearsay for a while after a large join (10000 members: a scan of
   * hundreds of members per pick). heard_lost: heard members left out of
   * it for want of memory (then the picks fall back to scanning). */
  dmq__member_t **heard_v;
  uint32_t heard_n, heard_cap, heard_lost;
  /* The probe round over heard_v (swim.c): heard_v[0, heard_pos) were
   * probed this round, the rest were not. */
  uint32_t heard_pos;
  /* no dead or left member is due to be reaped before this (swim.c) */
  uint64_t reap_due;
  uint64_t evict_pkt;   /* pkts_in of the last relayed eviction (swim.c) */
  dmq__relay_t *relays; /* DMQ__MAX_RELAYS, allocated on first use */
  uint32_t nrelays;     /* relays in use */
  uint64_t next_gossip, next_pushpull, next_reconnect, next_reap;

  /* joining */
  char *seeds[DMQ__MAX_SEEDS];
  size_t nseeds;
  /* where in members[] the seed's live member was last found (a hint:
   * checked before use, members move) */
  uint32_t seed_hint[DMQ__MAX_SEEDS];
  int joining, joined;
  uint32_t boost_left;  /* post-join anti-entropy rounds still to do */
  uint32_t boost_extra; /* rounds added because one found a difference */
  uint64_t next_extra;  /* when the added round is due; 0: none pending */
  char join_via[DMQ_MAX_NAME + 1]; /* member whose join reply we took */
  uint64_t next_boost;
  uint32_t join_attempt;
  uint64_t next_join;

  int leaving;

  /* digest anti-entropy (antientropy.c): the exchanges waiting for the
   * peer's DIGEST reply (deadline 0: free slot; a join's boost rounds can
   * overlap); without a reply by its deadline, the DIGEST again on the
   * reliable class if it went as a datagram, then a full push/pull (a
   * peer of before) */
  struct {
    uint64_t deadline;
    int boost;    /* a round of the join boost: 1 scheduled, 2 added */
    int reliable; /* the DIGEST went on the reliable class */
    char peer[DMQ_MAX_NAME + 1];
  } ae_wait[DMQ__AE_SLOTS];
  uint32_t ae_pending; /* slots in use */
  uint8_t ae_off;      /* 1: full push/pull only, DIGEST/DIFF unknown (tests) */
  uint8_t ae_followups; /* exchanges brought forward since tables last agreed */
  /* the digest's bucket sums over 2^ae_sum_k buckets, kept as the table
   * changes (antientropy.c): ae_sum_inline until the table outgrows it,
   * then an allocation */
  uint8_t ae_sum_k;
  uint64_t *ae_sum;
  uint64_t ae_sum_inline[DMQ__AE_SUM_INLINE];

  /* events delivered after processing */
  uint8_t *events;        /* dmq__event_t records */
  size_t ev_used, ev_cap; /* bytes */
  uint32_t nevents;
  int in_callback;
  /* > 0 while the log or wake callback runs: they run synchronously, in
   * the middle of processing, so calls that change the node are refused
   * (DMQ_EBUSY) until they return (dmq__in_sync_cb) */
  int in_sync_cb;

  /* packet buffers */
  uint8_t *txbuf; /* cfg.mtu bytes */

  dmq_stats_t stats;

  struct dmq__dlv *dlv; /* queued delivery (delivery.c) */

  /* Sealing (src/seal.h, node.c): keyring, session, replay state; the
   * label; the buffer a sealed packet is opened into; the rate limit of
   * the drop log lines (label, plaintext, key unknown, auth). */
  struct dmq__seal *seal;
  char label[DMQ_MAX_LABEL + 1];
  uint8_t label_len;
  uint8_t seal_mode; /* dmq_seal_mode_t */
  uint8_t *rxbuf;
  size_t rxcap;
  uint64_t seal_log_at[4];
  uint32_t seal_log_n[4];

  /* Deadline wake-up (dmq_node_set_wake_cb): wake_cb runs once, then not
   * again until the driver re-reads the deadline (dmq__next_deadlines
   * clears wake_pending). */
  dmq_wake_cb wake_cb;
  void *wake_ud;
  int wake_pending;
};

/* Deliver the queued member events now if they take at least `bytes`
 * (and no callback is running). Only at points where the member table is
 * consistent: between the records of a push/pull table, so that a join,
 * which learns the whole cluster at once, needs no O(N) event log. */
void dmq__flush_member_events_at(dmq_node_t *n, size_t bytes);

/* dmq_node_next_deadline(), and in *delivery the delivery part of it
 * (retransmissions, TTLs, delayed acks, request timeouts), which a runtime
 * must not round (the membership part tolerates coarse timers). */
uint64_t dmq__next_deadlines(const dmq_node_t *n, uint64_t *delivery);

static inline void dmq__wake(dmq_node_t *n) {
  if (n->wake_cb != NULL && !n->wake_pending) {
    n->wake_pending = 1;
    n->in_sync_cb++;
    n->wake_cb(n->wake_ud);
    n->in_sync_cb--;
  }
}

/* Inside the log or wake callback: every call that changes the node
 * returns DMQ_EBUSY (only queries are allowed). */
static inline int dmq__in_sync_cb(const dmq_node_t *n) {
  return n->in_sync_cb > 0;
}

/* ---- node.c: services for membership and delivery ---- */

/* Queue a member event (delivered by dmq__flush_events). */
void dmq__emit(dmq_node_t *n, dmq_member_event_t ev, const dmq__member_t *m);
/* Run the queued callbacks (member events, then delivery's), unless one is
 * running already. */
void dmq__flush_events(dmq_node_t *n);

/* Send a packet built with dmq__node_enc_begin. A packet with the SEALED
 * flag is sealed in place first (its tag written past len: the encoder
 * kept the room), so buf holds ciphertext afterwards: build a new packet
 * for the next destination. */
int dmq__send(dmq_node_t *n, const char *addr, uint8_t *buf, size_t len,
              int reliable, uint32_t nmsgs);
/* Begin a packet from this node into buf (cap bytes): our label, and the
 * sealed header and tag room when we send sealed (dmq__enc_begin_sealed).
 * Every packet the core sends starts here. */
int dmq__node_enc_begin(dmq_node_t *n, dmq__enc_t *e, uint8_t *buf, size_t cap);
/* Bytes the label and sealing add to each packet now (beyond
 * dmq__enc_size_envelope). */
size_t dmq__node_overhead(const dmq_node_t *n);
/* 1 if reliable sends to addr would use another transport than datagram
 * sends (a real stream fallback exists). */
int dmq__has_separate_stream(dmq_node_t *n, const char *addr);
/* Whether the reliable class reaches addr through a RELIABLE transport. */
int dmq__has_stream(dmq_node_t *n, const char *addr);
/* mtu of the transport that carries datagrams to addr (0: none). */
size_t dmq__datagram_mtu(dmq_node_t *n, const char *addr);
/* Our own gossiped state changed (delivery opened or closed a channel):
 * membership raises the incarnation and spreads it. */
void dmq__node_self_changed(dmq_node_t *n);

void *dmq__malloc(dmq_node_t *n, size_t size);
void *dmq__realloc(dmq_node_t *n, void *p, size_t size);
void dmq__free(dmq_node_t *n, void *p);
void dmq__log(dmq_node_t *n, dmq_log_level_t lvl, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#endif
