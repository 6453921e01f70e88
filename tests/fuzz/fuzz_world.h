/* The stateful fuzz harness (docs/testing.md, "Fuzzing"): a small cluster of
 * real nodes on host transports (dmq/host.h) in one process, with fake time,
 * that a fuzz input drives as a program of operations.
 *
 * Node 0 ("n0", "host:n0") is the node under test; n1 and n2 are real peers
 * that joined it through push/pull, so n0 has real members, and each node
 * serves channel "c" (requests are answered) with reliable streams in
 * flight both ways (small messages, fragmented ones, a request and a
 * broadcast) when the program starts. The program (fuzz_world_run) is a
 * sequence of operations read from the input, each an opcode byte then its
 * operands (a short input is still a complete program: reads past the end
 * return zeros):
 *
 *   RAW      arbitrary bytes delivered to n0 from one of the fixed senders
 *   BUILT    a packet built with the encoder from fuzz bytes: 1-3 messages
 *            of any type (ping, ping-req, ack, nack, alive, suspect, dead,
 *            left, push/pull, data, dack) with names, generations and
 *            sequence numbers drawn mostly from the live ones, so that
 *            inputs reach the membership and delivery state machines
 *   MUTATE   one of the last packets the peers sent n0, with a few bytes
 *            changed, delivered again
 *   TIME     fake time moves on (0-2.5 s): the queued packets are delivered
 *            and every node's deadlines fire
 *   NET      the next queued packets are delivered, dropped or reordered
 *   API      n0 or a peer sends (reliable, best effort, large, request,
 *            broadcast), cancels, pauses its channel, sets its metadata,
 *            leaves
 *   HOST     (targets that set FUZZ_WORLD_HOST_OPS) host transport input
 *            with an arbitrary `from` (or none), flush, mtu changes
 *
 * After every operation the member table of every node must be consistent
 * (stats counts by state = member_count = the members iterated, self
 * present). At the end every node is deleted: every reliable send, request
 * and broadcast any node accepted must have had exactly one outcome (checked
 * as they arrive: never two), and every allocation of every node must have
 * been freed (allocation count balance).
 *
 * Every execution starts from the same state: the world is built (the join,
 * the streams) once per process, saved, and restored before each program
 * (see "the arena" below); the host transports live for the process.
 *
 * Sealing: FUZZ_WORLD_KEYED (a target defines it to 1 before including this
 * header) makes every node keyed: FUZZ_WORLD_KEY_CONFIG(cfg, idx) sets the
 * cluster label and FUZZ_WORLD_SEAL_MODE (default DMQ_SEAL_REQUIRED) in its
 * config, FUZZ_WORLD_KEY_NODE(w, idx) adds the keys after dmq_node_new (n0
 * holds a second, non-primary key too), and BUILT packets are encoded with
 * the label and the sealed-header room, then sealed by FUZZ_WORLD_SEAL(w,
 * sender, buf, len, cap) before delivery: with the sending node's own
 * sealing state (its session, generation and packet numbers, so that they
 * pass n0's replay window like the node's real packets), or for x9 with a
 * sealer of generation 900 of the harness's own. RAW bytes are then mostly
 * dropped (PLAINTEXT, LABEL, AUTH), MUTATE replays or corrupts sealed
 * packets (REPLAY, AUTH), and BUILT reaches the state machines through the
 * opening path. A sealed variant of a target is a file that defines
 * FUZZ_WORLD_KEYED (and optionally FUZZ_WORLD_SEAL_MODE) and includes the
 * target; all three hooks default to the implementation below.
 */
#ifndef DMQ_TESTS_FUZZ_WORLD_H
#define DMQ_TESTS_FUZZ_WORLD_H

#include <dmq/delivery.h>
#include <dmq/host.h>

#include "antientropy.h" /* dmq__ae_sums_check */
#include "fuzz_common.h"
#include "swim.h" /* dmq__swim_check */

#ifndef FUZZ_WORLD_KEYED
#define FUZZ_WORLD_KEYED 0
#endif
#if FUZZ_WORLD_KEYED
#include "internal.h"
#include "seal.h"
#include "seal_util.h"
#ifndef FUZZ_WORLD_SEAL_MODE
#define FUZZ_WORLD_SEAL_MODE DMQ_SEAL_REQUIRED
#endif
#define W_LABEL "fz"
struct world;
static void w_key_config(dmq_config_t *cfg, int idx);
static void w_key_node(struct world *w, int idx);
static void w_x9_init(struct world *w);
static size_t w_seal(struct world *w, int sender, uint8_t *buf, size_t len,
                     size_t cap);
#ifndef FUZZ_WORLD_KEY_CONFIG
#define FUZZ_WORLD_KEY_CONFIG(cfg, idx) w_key_config(cfg, idx)
#endif
#ifndef FUZZ_WORLD_KEY_NODE
#define FUZZ_WORLD_KEY_NODE(w, idx) w_key_node(w, idx)
#endif
#ifndef FUZZ_WORLD_SEAL
#define FUZZ_WORLD_SEAL(w, sender, buf, len, cap)                              \
  w_seal(w, sender, buf, len, cap)
#endif
#else
#define W_LABEL NULL
#endif
#ifndef FUZZ_WORLD_KEY_CONFIG
/* Make node idx's config keyed (label, mode): see "Sealing" above. */
#define FUZZ_WORLD_KEY_CONFIG(cfg, idx) ((void)(cfg), (void)(idx))
#endif
#ifndef FUZZ_WORLD_KEY_NODE
/* Give node idx (created, not started) its keys. */
#define FUZZ_WORLD_KEY_NODE(w, idx) ((void)(w), (void)(idx))
#endif
#ifndef FUZZ_WORLD_SEAL
/* Seal buf (len bytes, room for cap) in place as sender would; returns the
 * new length (0: cannot). Identity for plain worlds. */
#define FUZZ_WORLD_SEAL(w, sender, buf, len, cap)                              \
  ((void)(w), (void)(sender), (void)(buf), (void)(cap), (len))
#endif
#ifndef FUZZ_WORLD_HOST_OPS
#define FUZZ_WORLD_HOST_OPS 0
#endif
/* Message types BUILT may produce: bit t for type t (all by default). */
#ifndef FUZZ_WORLD_TYPES
#define FUZZ_WORLD_TYPES 0xffffu
#endif

#define W_NODES 3
#define W_SENDERS 4 /* n0 (ourselves), n1, n2, x9 (not a member) */
#define W_QUEUE 2048
#define W_CAPTURE 8
#define W_MAX_OPS 64
#define W_MAX_TIME_MS 30000u /* fake time one program may use */
#define W_MAX_SENT 1024
#define W_PKT_CAP 8192

static const char *const w_name[W_SENDERS] = {"n0", "n1", "n2", "x9"};
static const char *const w_addr[W_SENDERS] = {"host:n0", "host:n1", "host:n2",
                                              "host:x9"};
static const uint64_t w_gen[W_SENDERS] = {100, 200, 300, 900};

typedef struct w_alloc {
  long live, calls;
} w_alloc_t;

/* ---- the arena: every allocation of the nodes ----
 *
 * The nodes allocate through w_malloc/w_realloc/w_free (dmq_alloc_t), and a
 * keyed world's key storage through sodium_malloc (replaced below), all from
 * one arena at a fixed address. So the state the set-up builds is the
 * arena's bytes up to its top plus the world struct and the transports'
 * public parts: fuzz_world_setup builds it once per process and saves it,
 * and every execution starts from a copy of it (w_restore) instead of
 * simulating the join again (more than half of an execution's time). The
 * checks stay those of ASan's allocator: a poisoned header before every
 * block and a poisoned redzone after it (16 to 2048 bytes as the block
 * grows); freed blocks stay poisoned until the execution ends (nothing is
 * reused within one); new blocks are filled with 0xbe (ASan's
 * malloc_fill_byte), so stale bytes of an earlier execution never show
 * through. Past the arena (an execution that allocates more than
 * W_ARENA_SIZE), blocks come from malloc. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define W_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(W_ASAN)
#define W_ASAN 1
#endif
#ifdef W_ASAN
#include <sanitizer/asan_interface.h>
#define W_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define W_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define W_POISON(p, n) ((void)(p), (void)(n))
#define W_UNPOISON(p, n) ((void)(p), (void)(n))
#endif
#include <sys/mman.h>

#define W_ARENA_SIZE ((size_t)256 << 20)
#define W_HDR 16 /* block header = left redzone */

typedef struct w_hdr {
  size_t size; /* the caller's */
  size_t live;
} w_hdr_t;

static uint8_t *w_arena;
static size_t w_top, w_high; /* next free byte, highest top ever */

static inline size_t w_round16(size_t n) {
  return (n + 15) & ~(size_t)15;
}

static inline size_t w_redzone(size_t size) {
  size_t rz = 16;
  while (rz < 2048 && rz * 16 < size)
    rz *= 2;
  return rz;
}

static inline int w_in_arena(const void *p) {
  return w_arena != NULL && (const uint8_t *)p >= w_arena &&
         (const uint8_t *)p < w_arena + W_ARENA_SIZE;
}

static inline w_hdr_t w_hdr_get(const uint8_t *p) {
  w_hdr_t h;
  W_UNPOISON(p - W_HDR, W_HDR);
  memcpy(&h, p - W_HDR, sizeof h);
  W_POISON(p - W_HDR, W_HDR);
  return h;
}

static inline void w_hdr_set(uint8_t *p, size_t size, size_t live) {
  w_hdr_t h = {size, live};
  W_UNPOISON(p - W_HDR, W_HDR);
  memcpy(p - W_HDR, &h, sizeof h);
  W_POISON(p - W_HDR, W_HDR);
}

static inline void *w_arena_alloc(size_t size) {
  if (w_arena == NULL) {
    void *m = mmap(NULL, W_ARENA_SIZE, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    CHECK(m != MAP_FAILED);
    w_arena = m;
    W_POISON(w_arena, W_ARENA_SIZE);
  }
  size_t total = W_HDR + w_round16(size) + w_redzone(size);
  if (size > W_ARENA_SIZE || total > W_ARENA_SIZE - w_top)
    return malloc(size ? size : 1);
  uint8_t *p = w_arena + w_top + W_HDR;
  w_top += total;
  if (w_top > w_high)
    w_high = w_top;
  w_hdr_set(p, size, 1);
  W_UNPOISON(p, size);
  memset(p, 0xbe, size);
  return p;
}

static inline void w_arena_free(void *p) {
  if (p == NULL)
    return;
  if (!w_in_arena(p)) {
    free(p);
    return;
  }
  w_hdr_t h = w_hdr_get(p);
  CHECK(h.live == 1); /* else a double free */
  w_hdr_set(p, h.size, 0);
  W_POISON(p, w_round16(h.size));
}

static inline void *w_arena_realloc(void *p, size_t size) {
  if (p == NULL)
    return w_arena_alloc(size);
  if (!w_in_arena(p)) /* a block past the arena stays one */
    return realloc(p, size ? size : 1);
  w_hdr_t h = w_hdr_get(p);
  CHECK(h.live == 1);
  void *q = w_arena_alloc(size);
  if (q == NULL)
    return NULL;
  memcpy(q, p, h.size < size ? h.size : size);
  w_arena_free(p);
  return q;
}

static inline void *w_malloc(size_t s, void *ud) {
  w_alloc_t *a = ud;
  a->calls++;
  void *p = w_arena_alloc(s);
  if (p != NULL)
    a->live++;
  return p;
}

static inline void *w_realloc(void *p, size_t s, void *ud) {
  w_alloc_t *a = ud;
  a->calls++;
  void *q = w_arena_realloc(p, s);
  if (q != NULL && p == NULL)
    a->live++;
  return q;
}

static inline void w_free(void *p, void *ud) {
  w_alloc_t *a = ud;
  if (p != NULL)
    a->live--;
  w_arena_free(p);
}

typedef struct w_pkt {
  int to, from; /* node indexes */
  uint8_t *buf;
  size_t len;
} w_pkt_t;

typedef struct world world_t;

typedef struct w_ep { /* a node's end of the network */
  world_t *w;
  int idx;
} w_ep_t;

typedef struct w_sent { /* a send that must end in exactly one outcome */
  int node;
  dmq_msg_id_t id;
  int outcomes;
} w_sent_t;

struct world {
  dmq_node_t *node[W_NODES];
  dmq_transport_t *tp[W_NODES];
  dmq_channel_t *ch[W_NODES];
  w_alloc_t alloc[W_NODES];
  w_ep_t ep[W_NODES];
  w_pkt_t q[W_QUEUE]; /* ring: [head, tail) */
  size_t head, tail;
  w_pkt_t cap[W_CAPTURE]; /* recent packets to n0 (copies) */
  size_t ncap;
  uint64_t now, t_end;
  w_sent_t sent[W_MAX_SENT];
  size_t nsent;
  int reply;   /* answer requests (toggled by API) */
  int paused;  /* n0's channel paused */
  int in_send; /* an API call is in progress: outcomes may precede its id */
#if FUZZ_WORLD_KEYED
  dmq__seal_t x9; /* the sealer of x9's packets (see "Sealing") */
  w_alloc_t x9_alloc;
#endif
  uint8_t pkt[W_PKT_CAP];
};

/* ---- outcomes: exactly one per accepted reliable send ---- */

static inline w_sent_t *w_sent_find(world_t *w, int node, dmq_msg_id_t id) {
  for (size_t i = 0; i < w->nsent; i++)
    if (w->sent[i].node == node && w->sent[i].id == id)
      return &w->sent[i];
  return NULL;
}

static inline w_sent_t *w_sent_add(world_t *w, int node, dmq_msg_id_t id) {
  w_sent_t *s = w_sent_find(w, node, id);
  if (s != NULL)
    return s;
  CHECK(w->nsent < W_MAX_SENT);
  s = &w->sent[w->nsent++];
  s->node = node;
  s->id = id;
  s->outcomes = 0;
  return s;
}

static inline int w_index(world_t *w, dmq_node_t *n) {
  for (int i = 0; i < W_NODES; i++)
    if (w->node[i] == n)
      return i;
  CHECK(0);
  return -1;
}

static inline void w_on_outcome(dmq_node_t *node, const dmq_outcome_info_t *o,
                                void *ud) {
  world_t *w = ud;
  CHECK(o != NULL);
  CHECK((unsigned)o->outcome <= DMQ_OUTCOME_QUEUE_FULL);
  /* an outcome reported inside the send call itself comes before its id is
   * known to the caller: record it, the send then matches it */
  w_sent_t *s = w_sent_add(w, w_index(w, node), o->id);
  CHECK(++s->outcomes == 1);
}

/* Record an accepted send (after the call returned 0). */
static inline void w_accepted(world_t *w, int node, dmq_msg_id_t id) {
  (void)w_sent_add(w, node, id);
}

static inline void w_on_receive(dmq_node_t *node, dmq_channel_t *ch,
                                const dmq_message_t *msg, void *ud) {
  world_t *w = ud;
  (void)ch;
  CHECK(msg != NULL && msg->from != NULL && msg->channel != NULL);
  CHECK(msg->len == 0 || msg->data != NULL);
  if (msg->request != NULL && w->reply) {
    dmq_reply_handle_t h = *msg->request;
    (void)dmq_reply(node, &h, "r", 1, w->now);
  }
}

/* ---- the network ---- */

static inline int w_send_fn(void *ud, const char *dst, const void *buf,
                            size_t len) {
  w_ep_t *ep = ud;
  world_t *w = ep->w;
  int to = -1;
  for (int i = 0; i < W_NODES; i++)
    if (strcmp(dst, w_addr[i]) == 0)
      to = i;
  if (to < 0)
    return 0; /* x9 and strangers: accepted, lost */
  if (w->tail - w->head >= W_QUEUE)
    return DMQ_EAGAIN;
  w_pkt_t *p = &w->q[w->tail++ % W_QUEUE];
  p->to = to;
  p->from = ep->idx;
  p->buf = malloc(len ? len : 1);
  CHECK(p->buf != NULL);
  memcpy(p->buf, buf, len);
  p->len = len;
  return 0;
}

static inline void w_on_recv(dmq_transport_t *t, const char *from,
                             const void *buf, size_t len) {
  w_ep_t *ep = t->owner;
  world_t *w = ep->w;
  if (w->node[ep->idx] != NULL)
    CHECK(dmq_node_recv(w->node[ep->idx], t, from, buf, len, w->now) == 0);
}

/* Deliver bytes to node `to` from address `from` (a private copy of
 * exactly len bytes, so that ASan sees reads past the end). */
static inline void w_input(world_t *w, int to, const char *from,
                           const uint8_t *buf, size_t len) {
  uint8_t *copy = malloc(len ? len : 1);
  CHECK(copy != NULL);
  if (len > 0)
    memcpy(copy, buf, len);
  CHECK(dmq_host_transport_input(w->tp[to], from, copy, len) == 0);
  free(copy);
}

static inline void w_deliver_head(world_t *w) {
  w_pkt_t p = w->q[w->head++ % W_QUEUE];
  if (p.to == 0) { /* keep a copy for MUTATE */
    w_pkt_t *c = &w->cap[w->ncap++ % W_CAPTURE];
    free(c->buf);
    c->buf = malloc(p.len ? p.len : 1);
    CHECK(c->buf != NULL);
    memcpy(c->buf, p.buf, p.len);
    c->len = p.len;
    c->from = p.from;
  }
  if (w->node[p.to] != NULL)
    CHECK(dmq_host_transport_input(w->tp[p.to], w_addr[p.from], p.buf, p.len) ==
          0);
  free(p.buf);
}

static inline void w_pump(world_t *w, size_t budget) {
  while (w->head < w->tail && budget-- > 0)
    w_deliver_head(w);
}

static inline uint64_t w_deadline(world_t *w) {
  uint64_t d = DMQ_NEVER;
  for (int i = 0; i < W_NODES; i++) {
    uint64_t x = w->node[i] ? dmq_node_next_deadline(w->node[i]) : DMQ_NEVER;
    if (x < d)
      d = x;
  }
  return d;
}

/* Deliver everything and fire deadlines until `until` (bounded). */
static inline void w_advance(world_t *w, uint64_t until) {
  for (int guard = 0; guard < 100000; guard++) {
    w_pump(w, W_QUEUE);
    uint64_t d = w_deadline(w);
    if (d == DMQ_NEVER || d > until)
      break;
    if (d > w->now)
      w->now = d;
    for (int i = 0; i < W_NODES; i++)
      if (w->node[i] && dmq_node_next_deadline(w->node[i]) <= w->now)
        CHECK(dmq_node_tick(w->node[i], w->now) == 0);
  }
  if (w->now < until)
    w->now = until;
}

/* ---- invariants ---- */

static inline int w_count_cb(const dmq_member_info_t *m, void *ud) {
  size_t *n = ud;
  CHECK(m->name != NULL && m->addr != NULL);
  CHECK((unsigned)m->state < DMQ_MEMBER_STATE_COUNT);
  (*n)++;
  return 0;
}

static inline void w_check_node(dmq_node_t *n) {
  dmq_stats_t st;
  CHECK(dmq_node_stats(n, &st) == 0);
  size_t sum = 0, iter = 0;
  for (int s = 0; s < DMQ_MEMBER_STATE_COUNT; s++) {
    CHECK(dmq_node_member_count(n, 1u << s) == st.members[s]);
    sum += st.members[s];
  }
  CHECK(dmq_node_member_count(n, DMQ_MASK_ALL) == sum);
  /* the digest sums kept as the table changed are those of a pass */
  CHECK(dmq__ae_sums_check(n) == 0);
  CHECK(dmq__swim_check(n) == 0); /* heard list, reaping schedule */
  CHECK(dmq_node_members_foreach(n, w_count_cb, &iter) == 0);
  CHECK(iter == sum);
  dmq_member_info_t self;
  CHECK(dmq_node_member(n, dmq_node_name(n), &self) == 0);
  CHECK(self.is_self);
  dmq_delivery_stats_t ds;
  CHECK(dmq_delivery_stats(n, &ds) == 0);
  /* the default limits (dmq_delivery_config_t): 64 MiB queued in all,
   * 8 MiB of reassembly and reorder state per sender */
  CHECK(ds.queued_bytes <= (uint64_t)64 << 20);
  CHECK(ds.rx_buffered_bytes <= (uint64_t)W_SENDERS * (8u << 20));
}

static inline void w_check(world_t *w) {
  for (int i = 0; i < W_NODES; i++)
    if (w->node[i] != NULL)
      w_check_node(w->node[i]);
}

/* ---- set-up and teardown ---- */

/* Send options: reliable (mode 1) with the outcome check, or best effort. */
static inline void w_opts(world_t *w, dmq_send_opts_t *o, int mode) {
  dmq_send_opts_init(o);
  o->mode = mode ? DMQ_SEND_RELIABLE : DMQ_SEND_BEST_EFFORT;
  o->cb = w_on_outcome;
  o->user_data = w;
}

static inline int w_send(world_t *w, int from, int to, size_t len, int mode) {
  static uint8_t payload[6000];
  dmq_send_opts_t o;
  dmq_msg_id_t id = 0;
  w_opts(w, &o, mode);
  if (len > sizeof payload)
    len = sizeof payload;
  memset(payload, 'a' + from, len);
  int rc =
      dmq_send(w->node[from], w_name[to], "c", payload, len, &o, w->now, &id);
  if (rc == 0 && mode)
    w_accepted(w, from, id);
  return rc;
}

static inline void w_request(world_t *w, int from, int to, uint32_t tmo) {
  dmq_msg_id_t id = 0;
  if (dmq_request(w->node[from], w_name[to], "c", "q", 1, tmo, w_on_outcome, w,
                  w->now, &id) == 0)
    w_accepted(w, from, id);
}

static inline void w_broadcast(world_t *w, int from, size_t len, int mode) {
  static uint8_t payload[4000];
  dmq_send_opts_t o;
  dmq_msg_id_t id = 0;
  w_opts(w, &o, mode);
  if (len > sizeof payload)
    len = sizeof payload;
  memset(payload, 'b', len);
  if (dmq_broadcast(w->node[from], "c", payload, len, &o, w->now, &id) == 0 &&
      mode)
    w_accepted(w, from, id);
}

/* Build the world: three nodes joined, streams in flight (the state every
 * execution starts from). */
static inline void w_build(world_t *w) {
  memset(w, 0, sizeof *w);
  w->reply = 1;
  for (int i = 0; i < W_NODES; i++) {
    dmq_config_t cfg;
    dmq_alloc_t a;
    CHECK(dmq_config_init(&cfg, DMQ_PROFILE_LAN) == 0);
    cfg.name = w_name[i];
    cfg.advertise_addr = w_addr[i];
    cfg.generation = w_gen[i];
    cfg.rng_seed = (uint64_t)i + 1;
    if (FUZZ_WORLD_KEYED)
      FUZZ_WORLD_KEY_CONFIG(&cfg, i);
    CHECK(dmq_alloc_init(&a) == 0);
    a.malloc_fn = w_malloc;
    a.realloc_fn = w_realloc;
    a.free_fn = w_free;
    a.ud = &w->alloc[i];
    CHECK(dmq_node_new(&cfg, &a, &w->node[i]) == 0);
    if (FUZZ_WORLD_KEYED)
      FUZZ_WORLD_KEY_NODE(w, i);
    w->ep[i].w = w;
    w->ep[i].idx = i;
    CHECK(dmq_host_transport_new(w_send_fn, &w->ep[i], &w->tp[i]) == 0);
    w->tp[i]->owner = &w->ep[i];
    w->tp[i]->on_recv = w_on_recv;
    CHECK(dmq_node_add_transport(w->node[i], w->tp[i]) == 0);
    CHECK(dmq_channel_open(w->node[i], "c", w_on_receive, w, &w->ch[i]) == 0);
    CHECK(dmq_node_start(w->node[i], 0) == 0);
  }
  const char *seed = w_addr[0];
  CHECK(dmq_node_join(w->node[1], &seed, 1, 0) == 0);
  CHECK(dmq_node_join(w->node[2], &seed, 1, 0) == 0);
  w_advance(w, 300);
  CHECK(dmq_node_member_count(w->node[0], DMQ_MASK_LIVE) == W_NODES);
  /* live streams both ways: small, fragmented (mtu 1400), a request and a
   * broadcast; the first packets go out, the rest is left to the program */
  CHECK(w_send(w, 0, 1, 10, 1) == 0);
  CHECK(w_send(w, 0, 2, 3000, 1) == 0);
  CHECK(w_send(w, 1, 0, 4000, 1) == 0);
  CHECK(w_send(w, 2, 0, 20, 0) == 0);
  w_request(w, 0, 1, 2000);
  w_broadcast(w, 0, 100, 1);
  w_pump(w, 6);
  w->t_end = w->now + W_MAX_TIME_MS;
#if FUZZ_WORLD_KEYED
  w_x9_init(w);
#endif
  w_check(w);
}

/* ---- the saved state (see "the arena") ---- */

typedef struct w_snap {
  int ready;
  world_t w;      /* owns the copies of queued and captured packets */
  uint8_t *bytes; /* the arena's bytes [0, top) */
  size_t top;
  size_t *live; /* offset, size of every block live when saved */
  size_t nlive;
  dmq_transport_t tp[W_NODES]; /* the transports' public parts */
} w_snap_t;

static w_snap_t w_snap;

static inline uint8_t *w_dup(const uint8_t *p, size_t len) {
  uint8_t *c = malloc(len ? len : 1);
  CHECK(c != NULL);
  memcpy(c, p, len);
  return c;
}

/* Save the world just built; the world keeps nothing of its own. */
static inline void w_save(world_t *w) {
  w_snap_t *s = &w_snap;
  s->w = *w;
  for (int i = 0; i < W_NODES; i++)
    s->tp[i] = *w->tp[i];
  s->top = w_top;
  s->bytes = malloc(w_top ? w_top : 1);
  CHECK(s->bytes != NULL);
  W_UNPOISON(w_arena, w_top);
  memcpy(s->bytes, w_arena, w_top);
  size_t n = 0;
  for (size_t off = 0; off < w_top;) {
    w_hdr_t h;
    memcpy(&h, w_arena + off, sizeof h);
    n += h.live != 0;
    off += W_HDR + w_round16(h.size) + w_redzone(h.size);
  }
  s->live = malloc(2 * (n ? n : 1) * sizeof *s->live);
  CHECK(s->live != NULL);
  for (size_t off = 0; off < w_top;) {
    w_hdr_t h;
    memcpy(&h, w_arena + off, sizeof h);
    if (h.live) {
      s->live[2 * s->nlive] = off + W_HDR;
      s->live[2 * s->nlive + 1] = h.size;
      s->nlive++;
    }
    off += W_HDR + w_round16(h.size) + w_redzone(h.size);
  }
  CHECK(s->nlive == n);
  s->ready = 1;
}

/* Make w the saved world again: the arena's bytes and poisoning, the
 * world struct (with fresh copies of its packets), the transports. */
static inline void w_restore(world_t *w) {
  w_snap_t *s = &w_snap;
  W_UNPOISON(w_arena, s->top);
  memcpy(w_arena, s->bytes, s->top);
  W_POISON(w_arena, w_top > s->top ? w_top : s->top);
  for (size_t i = 0; i < s->nlive; i++)
    W_UNPOISON(w_arena + s->live[2 * i], s->live[2 * i + 1]);
  w_top = s->top;
  *w = s->w;
  for (size_t i = w->head; i < w->tail; i++) {
    w_pkt_t *p = &w->q[i % W_QUEUE];
    p->buf = w_dup(p->buf, p->len);
  }
  for (size_t i = 0; i < W_CAPTURE; i++)
    if (w->cap[i].buf != NULL)
      w->cap[i].buf = w_dup(w->cap[i].buf, w->cap[i].len);
  for (int i = 0; i < W_NODES; i++)
    *w->tp[i] = s->tp[i];
}

/* Every execution starts from the same state: the world built once per
 * process (w_build, then saved) and restored. */
static inline void fuzz_world_setup(world_t *w) {
  if (!w_snap.ready) {
    w_build(w);
    w_save(w);
  }
  w_restore(w);
}

static inline void fuzz_world_teardown(world_t *w) {
  for (int i = 0; i < W_NODES; i++) {
    CHECK(dmq_node_delete(w->node[i]) == 0);
    w->node[i] = NULL;
  }
  /* dmq_node_delete ended every pending send with SHUTDOWN */
  for (size_t i = 0; i < w->nsent; i++)
    CHECK(w->sent[i].outcomes == 1);
  for (int i = 0; i < W_NODES; i++) {
    /* the transports stay for the next execution (w_restore): no
     * completion may be left in them */
    CHECK(dmq_host_transport_flush(w->tp[i]) == 0);
    CHECK(w->alloc[i].live == 0);
  }
  while (w->head < w->tail)
    free(w->q[w->head++ % W_QUEUE].buf);
  for (size_t i = 0; i < W_CAPTURE; i++)
    free(w->cap[i].buf);
}

/* ---- building packets from fuzz bytes ---- */

static inline dmq__slice_t w_sl(const char *s) {
  dmq__slice_t x = {s, strlen(s)};
  return x;
}

/* A member name: mostly the fixed ones, sometimes fuzz bytes. */
static inline dmq__slice_t w_pick_name(fuzz_in_t *in, int *idx) {
  uint8_t b = fuzz_u8(in);
  if (b % 8 < W_SENDERS) {
    *idx = b % 8;
    return w_sl(w_name[*idx]);
  }
  *idx = W_SENDERS - 1;
  size_t n;
  const uint8_t *p = fuzz_bytes(in, 1 + b % DMQ_MAX_NAME, &n);
  dmq__slice_t x = {(const char *)p, n};
  return x;
}

static inline uint64_t w_pick_gen(fuzz_in_t *in, int idx) {
  switch (fuzz_u8(in) % 5) {
  case 0:
  case 1:
    return w_gen[idx];
  case 2:
    return w_gen[idx] + 1;
  case 3:
    return fuzz_u8(in);
  default:
    return fuzz_u64(in);
  }
}

/* Sequence numbers, incarnations: mostly small. */
static inline uint64_t w_pick_num(fuzz_in_t *in) {
  switch (fuzz_u8(in) % 4) {
  case 0:
    return fuzz_u8(in) % 8;
  case 1:
    return fuzz_u8(in);
  case 2:
    return fuzz_u16(in);
  default:
    return fuzz_u64(in);
  }
}

static inline dmq__slice_t w_pick_bytes(fuzz_in_t *in, size_t max) {
  size_t n;
  const uint8_t *p = fuzz_bytes(in, fuzz_u16(in) % (max + 1), &n);
  dmq__slice_t x = {(const char *)p, n};
  return x;
}

static inline void w_pick_chans(fuzz_in_t *in, dmq__chans_t *c,
                                dmq__slice_t *v) {
  static const char *const names[] = {"c", "d", "e"};
  c->n = fuzz_u8(in) % 4;
  for (uint32_t i = 0; i < c->n; i++)
    v[i] = w_sl(names[i]);
  c->v = v;
}

static inline void w_build_msg(fuzz_in_t *in, dmq__enc_t *e) {
  int idx, fidx;
  dmq__slice_t chv[4];
  dmq__chans_t ch = {0};
  uint8_t type = 1 + fuzz_u8(in) % DMQ__MSG_TYPE_MAX_KNOWN;
  while (((FUZZ_WORLD_TYPES >> type) & 1u) == 0)
    type = (uint8_t)(type % DMQ__MSG_TYPE_MAX_KNOWN + 1);
  switch (type) {
  case DMQ__MSG_PING:
    (void)dmq__enc_ping(e, (uint32_t)w_pick_num(in), w_pick_name(in, &idx));
    break;
  case DMQ__MSG_PING_REQ: {
    dmq__slice_t t = w_pick_name(in, &idx);
    (void)dmq__enc_ping_req(e, (uint32_t)w_pick_num(in), t, w_sl(w_addr[idx]),
                            fuzz_u8(in) & 1);
    break;
  }
  case DMQ__MSG_ACK:
    (void)dmq__enc_ack(e, (uint32_t)w_pick_num(in));
    break;
  case DMQ__MSG_NACK:
    (void)dmq__enc_nack(e, (uint32_t)w_pick_num(in));
    break;
  case DMQ__MSG_ALIVE: {
    dmq__slice_t name = w_pick_name(in, &idx);
    uint64_t inc = w_pick_num(in), gen = w_pick_gen(in, idx);
    dmq__slice_t meta = w_pick_bytes(in, 32);
    w_pick_chans(in, &ch, chv);
    (void)dmq__enc_alive(e, name, w_sl(w_addr[idx]), inc, gen, meta, &ch);
    break;
  }
  case DMQ__MSG_SUSPECT:
  case DMQ__MSG_DEAD: {
    dmq__slice_t name = w_pick_name(in, &idx);
    uint64_t inc = w_pick_num(in), gen = w_pick_gen(in, idx);
    dmq__slice_t from = w_pick_name(in, &fidx);
    if (type == DMQ__MSG_SUSPECT)
      (void)dmq__enc_suspect(e, name, inc, gen, from);
    else
      (void)dmq__enc_dead(e, name, inc, gen, from);
    break;
  }
  case DMQ__MSG_LEFT: {
    dmq__slice_t name = w_pick_name(in, &idx);
    uint64_t inc = w_pick_num(in);
    (void)dmq__enc_left(e, name, inc, w_pick_gen(in, idx));
    break;
  }
  case DMQ__MSG_PUSHPULL: {
    uint8_t flags = fuzz_u8(in) & 3;
    uint32_t n = fuzz_u8(in) % 5;
    if (dmq__enc_pushpull_begin(e, flags, n) != 0)
      break;
    for (uint32_t i = 0; i < n; i++) {
      dmq__record_t r;
      memset(&r, 0, sizeof r);
      r.name = w_pick_name(in, &idx);
      r.addr = w_sl(w_addr[idx]);
      r.incarnation = w_pick_num(in);
      r.generation = w_pick_gen(in, idx);
      r.state = fuzz_u8(in) % DMQ_MEMBER_STATE_COUNT;
      r.meta = w_pick_bytes(in, 16);
      w_pick_chans(in, &r.chans, chv);
      /* a record the encoder refuses (bad name) leaves the push/pull short:
       * still a packet worth delivering (malformed) */
      (void)dmq__enc_record(e, &r);
    }
    break;
  }
  case DMQ__MSG_DATA: {
    dmq__data_t d;
    memset(&d, 0, sizeof d);
    (void)w_pick_name(in, &idx); /* whose stream it claims to be */
    d.flags = fuzz_u8(in) & DMQ__DATA_KNOWN;
    d.channel = w_sl(fuzz_u8(in) % 4 ? "c" : "d");
    d.src_gen = w_pick_gen(in, idx);
    d.dst_gen = w_pick_gen(in, 0);
    d.seq = w_pick_num(in);
    d.base = fuzz_u8(in) % 2 ? d.seq : w_pick_num(in);
    d.ttl_ms = fuzz_u16(in);
    d.req_id = w_pick_num(in);
    d.payload = w_pick_bytes(in, 2000);
    (void)dmq__enc_data(e, &d);
    break;
  }
  default: { /* DACK */
    dmq__dack_t a;
    uint64_t rs[3];
    uint8_t rr[3];
    memset(&a, 0, sizeof a);
    (void)w_pick_name(in, &idx);
    a.src_gen = w_pick_gen(in, 0);
    a.dst_gen = w_pick_gen(in, idx);
    a.cum = w_pick_num(in);
    a.sack = fuzz_u8(in) % 2 ? fuzz_u64(in) : 0;
    a.rwnd = fuzz_u16(in);
    a.nrej = fuzz_u8(in) % 4;
    for (uint32_t i = 0; i < a.nrej; i++) {
      rs[i] = w_pick_num(in);
      rr[i] = fuzz_u8(in) % 4;
    }
    a.rej_seq = rs;
    a.rej_reason = rr;
    a.delay_ms = fuzz_u16(in);
    (void)dmq__enc_dack(e, &a);
    break;
  }
  }
}

/* ---- the program ---- */

enum {
  W_OP_RAW,
  W_OP_BUILT,
  W_OP_BUILT2, /* BUILT twice as often: it goes deepest */
  W_OP_MUTATE,
  W_OP_TIME,
  W_OP_NET,
  W_OP_API,
  W_OP_HOST,
  W_OP_COUNT
};

static inline void w_op_api(world_t *w, fuzz_in_t *in) {
  uint8_t what = fuzz_u8(in);
  int from = (what >> 4) % W_NODES; /* mostly n0 */
  if ((what >> 6) != 0)
    from = 0;
  int to = fuzz_u8(in) % W_SENDERS;
  if (w->node[from] == NULL)
    return;
  switch (what % 10) {
  case 0:
  case 1:
    (void)w_send(w, from, to, fuzz_u16(in) % 6000, 1);
    break;
  case 2:
    (void)w_send(w, from, to, fuzz_u8(in), 0);
    break;
  case 3:
    w_request(w, from, to, fuzz_u16(in) % 5000);
    break;
  case 4:
    w_broadcast(w, from, fuzz_u16(in) % 4000, fuzz_u8(in) & 1);
    break;
  case 5:
    if (w->nsent > 0)
      (void)dmq_delivery_cancel(w->node[from],
                                w->sent[fuzz_u8(in) % w->nsent].id);
    break;
  case 6:
    w->paused = !w->paused;
    (void)dmq_channel_pause(w->ch[from], w->paused);
    break;
  case 7: {
    dmq__slice_t m = w_pick_bytes(in, 64);
    (void)dmq_node_set_meta(w->node[from], m.p, m.n, w->now);
    break;
  }
  case 8:
    w->reply = !w->reply;
    break;
  default:
    if (fuzz_u8(in) == 0x4c) /* 'L': rare, it ends most of the fun */
      (void)dmq_node_leave(w->node[from], w->now);
    break;
  }
}

static inline void w_op_host(world_t *w, fuzz_in_t *in) {
  switch (fuzz_u8(in) % 4) {
  case 0: { /* arbitrary `from` */
    char from[DMQ_MAX_ADDR + 8];
    size_t n;
    const uint8_t *p = fuzz_bytes(in, fuzz_u8(in) % sizeof from, &n);
    memcpy(from, p, n);
    from[n < sizeof from ? n : sizeof from - 1] = '\0';
    dmq__slice_t b = w_pick_bytes(in, 1500);
    w_input(w, 0, from, (const uint8_t *)b.p, b.n);
    break;
  }
  case 1: { /* no `from` at all */
    dmq__slice_t b = w_pick_bytes(in, 1500);
    w_input(w, 0, NULL, (const uint8_t *)b.p, b.n);
    break;
  }
  case 2:
    CHECK(dmq_host_transport_flush(w->tp[0]) == 0);
    break;
  default: { /* a smaller or larger mtu for n0's sends */
    size_t mtu = 64 + fuzz_u16(in);
    CHECK(dmq_host_transport_set_mtu(w->tp[0], mtu) == 0);
    break;
  }
  }
}

static inline void w_op(world_t *w, fuzz_in_t *in) {
  uint8_t op = fuzz_u8(in) % W_OP_COUNT;
  int s = 0;
  switch (op) {
  case W_OP_RAW: {
    s = fuzz_u8(in) % W_SENDERS;
    dmq__slice_t b = w_pick_bytes(in, 2048);
    w_input(w, 0, w_addr[s], (const uint8_t *)b.p, b.n);
    break;
  }
  case W_OP_BUILT:
  case W_OP_BUILT2: {
    dmq__enc_t e;
    s = fuzz_u8(in) % W_SENDERS;
    const char *label = W_LABEL;
    if (dmq__enc_begin_sealed(&e, w->pkt, sizeof w->pkt, label,
                              label ? strlen(label) : 0, w_name[s],
                              strlen(w_name[s]), FUZZ_WORLD_KEYED) != 0)
      break;
    int n = 1 + fuzz_u8(in) % 3;
    for (int i = 0; i < n; i++)
      w_build_msg(in, &e);
    size_t len = dmq__enc_end(&e);
    len = FUZZ_WORLD_SEAL(w, s, w->pkt, len, sizeof w->pkt);
    if (len > 0)
      w_input(w, 0, w_addr[s], w->pkt, len);
    break;
  }
  case W_OP_MUTATE: {
    size_t k = fuzz_u8(in);
    size_t have = w->ncap < W_CAPTURE ? w->ncap : W_CAPTURE;
    if (have == 0)
      break;
    w_pkt_t *c = &w->cap[k % have];
    size_t len = c->len < W_PKT_CAP ? c->len : W_PKT_CAP;
    memcpy(w->pkt, c->buf, len);
    int edits = 1 + fuzz_u8(in) % 4;
    for (int i = 0; i < edits && len > 0; i++) {
      size_t at = fuzz_u16(in) % len;
      w->pkt[at] = fuzz_u8(in);
    }
    if (fuzz_u8(in) % 4 == 0)
      len -= fuzz_u16(in) % (len + 1); /* truncated */
    w_input(w, 0, w_addr[c->from], w->pkt, len);
    break;
  }
  case W_OP_TIME: {
    uint64_t until = w->now + 10u * fuzz_u8(in);
    if (until > w->t_end)
      until = w->t_end;
    w_advance(w, until);
    break;
  }
  case W_OP_NET: {
    uint8_t b = fuzz_u8(in);
    for (int i = 0; i < 1 + (b >> 4) && w->head < w->tail; i++) {
      switch (b % 4) {
      case 0: /* lost */
        free(w->q[w->head++ % W_QUEUE].buf);
        break;
      case 1: /* late: to the back of the queue */
        if (w->tail - w->head < W_QUEUE) {
          w->q[w->tail++ % W_QUEUE] = w->q[w->head % W_QUEUE];
          w->head++;
        }
        break;
      default:
        w_deliver_head(w);
        break;
      }
    }
    break;
  }
  case W_OP_API:
    w_op_api(w, in);
    break;
  default:
    if (FUZZ_WORLD_HOST_OPS)
      w_op_host(w, in);
    else
      w_pump(w, fuzz_u8(in) % 8);
    break;
  }
  w_check(w);
}

#if FUZZ_WORLD_KEYED
/* ---- the keyed world (see "Sealing" above) ---- */

static const uint8_t w_key[2][DMQ_KEY_SIZE] = {
    {0x6b, 0x31, 0x2d, 0x66, 0x75, 0x7a, 0x7a, 0x2d, 0x77, 0x6f, 0x72,
     0x6c, 0x64, 0x2d, 0x70, 0x72, 0x69, 0x6d, 0x61, 0x72, 0x79, 0x2d,
     0x6b, 0x65, 0x79, 0x2d, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35},
    {0x6b, 0x32, 0x2d, 0x66, 0x75, 0x7a, 0x7a, 0x2d, 0x77, 0x6f, 0x72,
     0x6c, 0x64, 0x2d, 0x73, 0x65, 0x63, 0x6f, 0x6e, 0x64, 0x61, 0x72,
     0x79, 0x2d, 0x6b, 0x65, 0x79, 0x2d, 0x36, 0x37, 0x38, 0x39}};

static void w_key_config(dmq_config_t *cfg, int idx) {
  (void)idx;
  cfg->label = W_LABEL;
  cfg->seal_mode = FUZZ_WORLD_SEAL_MODE;
}

static void w_key_node(struct world *w, int idx) {
  CHECK(dmq_node_key_add(w->node[idx], w_key[0], DMQ_KEY_SIZE, 1, NULL) == 0);
  if (idx == 0) /* n0 also opens packets of a second key */
    CHECK(dmq_node_key_add(w->node[idx], w_key[1], DMQ_KEY_SIZE, 0, NULL) == 0);
}

/* x9 is no node: its packets are sealed by a sealer of the harness's own,
 * made by the set-up (part of the saved state: its packet numbers start
 * from the same value in every execution; it never receives, so it has no
 * replay state). */
static void w_x9_init(struct world *w) {
  dmq_alloc_t a;
  CHECK(dmq_alloc_init(&a) == 0);
  a.malloc_fn = w_malloc;
  a.realloc_fn = w_realloc;
  a.free_fn = w_free;
  a.ud = &w->x9_alloc;
  CHECK(dmq__seal_init(&w->x9, &a, w_gen[W_SENDERS - 1]) == 0);
  CHECK(dmq__seal_key_add(&w->x9, w_key[0], 1, NULL) == 0);
}

/* The key storage (src/seal.c: sodium_malloc'd, guard pages) comes from the
 * arena too, so that it is part of the saved state: libsodium's would be
 * unmapped by dmq_node_delete at every teardown. The fuzz binary's
 * definitions take the place of libsodium's for the library's calls. */
void *sodium_malloc(const size_t size);
void sodium_free(void *ptr);
void *sodium_malloc(const size_t size) {
  return w_arena_alloc(size);
}
void sodium_free(void *ptr) {
  if (ptr != NULL && w_in_arena(ptr)) {
    w_hdr_t h = w_hdr_get(ptr);
    memset(ptr, 0, h.size); /* as sodium_free zeroes */
  }
  w_arena_free(ptr);
}

static size_t w_seal(struct world *w, int sender, uint8_t *buf, size_t len,
                     size_t cap) {
  size_t out;
  dmq__seal_t *s = sender < W_NODES ? w->node[sender]->seal : &w->x9;
  CHECK(len >= 5 && (buf[3] & DMQ__WIRE_FLAG_SEALED) &&
        (buf[3] & DMQ__WIRE_FLAG_LABEL));
  CHECK(len + DMQ__SEAL_TAG <= cap);
  /* the path the host transport's packets take, as dmq__send picks it */
  int stream = !(w->tp[0]->ops->caps & DMQ_TRANSPORT_DATAGRAM);
  CHECK(seal_util_close(s, buf, len, stream, &out) == 0);
  return out;
}
#endif

/* The standalone driver (standalone_main.c, gcc builds) generates this many
 * inputs instead of 20000: each one runs a cluster (about 1 ms under ASan). */
unsigned dmq_fuzz_iterations(void);
unsigned dmq_fuzz_iterations(void) {
  return 3000;
}

/* Run the program in the input; then the world still runs out its queue. */
static inline void fuzz_world_run(world_t *w, const uint8_t *data,
                                  size_t size) {
  fuzz_in_t in = {data, size};
  for (int i = 0; i < W_MAX_OPS && fuzz_left(&in); i++)
    w_op(w, &in);
  w_pump(w, W_QUEUE);
  w_check(w);
}

/* The target: every stateful target is this world with its own settings
 * (FUZZ_WORLD_TYPES, FUZZ_WORLD_HOST_OPS, FUZZ_WORLD_KEYED). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static world_t w;
  fuzz_world_setup(&w);
  fuzz_world_run(&w, data, size);
  fuzz_world_teardown(&w);
  return 0;
}

#endif
