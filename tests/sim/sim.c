/* libdmq deterministic simulator: a world of hosts running real dmq nodes
 * over a simulated network, driven by a fake clock.
 *
 * Everything lives in a dmq_sim_t (no globals). One xoshiro256** PRNG, seeded
 * from opts.seed, else $DMQ_SIM_SEED (decimal or 0x hex), else
 * DMQ_SIM_DEFAULT_SEED, makes every fault decision and seeds every node, so a
 * run is a pure function of its seed. With lanes (opts.lanes, below "lanes")
 * each host draws its sends' loss, jitter and duplication from a generator
 * of its own (seeded from the world's) and a time step's events run on
 * several threads; the run is still a pure function of the seed, the same
 * for any number of lanes.
 *
 * The clock is a binary min-heap of events ordered by (time, insertion
 * sequence): packet deliveries, send completions and node wake-ups. After
 * every call into a node the host's wake-up is (re)scheduled from
 * dmq_node_next_deadline(); at most one live wake-up event per host is kept,
 * stale ones are recognised by a per-host generation counter.
 *
 * Network model: a send of at most `mtu` bytes is a datagram (subject to the
 * link's loss, duplication, jitter and blocks); a larger send, up to 16 MiB,
 * is a reliable stream message (never lost or duplicated, in order per
 * directed pair, base delay only, but blocked by partitions). Loss and blocks
 * are decided at send time; packets to or from a host that crashes while they
 * are in flight are dropped on delivery.
 * With opts.stream_transport each host has a second, stream-only transport
 * ("simtcp://<index>") and the class follows the transport, not the size.
 * With opts.no_stream there is no stream class: "sim" is datagram-only and
 * refuses anything above the MTU (a UDP-only deployment).
 *
 * Set $DMQ_SIM_LOG to 0..3 (error..debug) to print every node's log lines
 * with the simulated time.
 */
#include "sim.h"

#include "antientropy.h" /* dmq__ae_sums_check */
#include "internal.h"    /* dmq__rng_t */
#include "swim.h"        /* dmq__swim_check */

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SIM_STREAM_MAX (16u << 20)
#define SIM_CLOSED_DGRAM 1u
#define SIM_CLOSED_STREAM 2u
#define SIM_EV_NONE 0 /* cancelled in place */
#define SIM_EV_DELIVER 1
#define SIM_EV_DONE 2
#define SIM_EV_WAKE 3
/* Predicates scanning every host run at most this often in the helpers. */
#define SIM_CHECK_STEP_MS 10
#define SIM_LIST_MAX 16

typedef struct sim_ev {
  uint64_t t, seq;
  void *ptr;               /* DELIVER: packet bytes; DONE: cookie */
  uint32_t len;            /* DELIVER: byte count; WAKE: generation */
  int32_t from, to;        /* host indices; DONE/WAKE use `to` */
  uint32_t from_ep, to_ep; /* host epochs at send time */
  uint8_t kind;
  uint8_t stream; /* through the stream transport (split mode) */
} sim_ev_t;

typedef struct sim_map { /* open addressing, key 0 = empty */
  uint64_t *keys, *vals;
  size_t cap, n;
} sim_map_t;

typedef struct sim_host {
  dmq_sim_t *w;
  int idx;
  dmq_transport_t tr;  /* "sim" */
  dmq_transport_t trs; /* "simtcp", split mode only */
  dmq_node_t *node;    /* NULL when down */
  dmq_config_t cfg;    /* strings point into this struct */
  char name[DMQ_MAX_NAME + 1];
  char addr[32];
  char saddr[32]; /* "simtcp://<index>" */
  char adv[DMQ_MAX_ADDR + 1];
  unsigned char meta[DMQ_MAX_META];
  uint64_t gen;
  uint32_t epoch; /* bumped on every kill */
  int down, left, paused;
  unsigned closed;      /* SIM_CLOSED_* bits: transports closed */
  uint64_t first_fault; /* first kill/leave/pause time, UINT64_MAX if none */
  uint64_t wake_ev_t;   /* time of the live wake-up event, UINT64_MAX none */
  uint32_t wake_gen;
  uint32_t send_delay;
  uint64_t *blk; /* bitmap of blocked destinations */
  size_t blk_words;
  sim_ev_t *pq; /* events deferred while paused */
  size_t pq_n, pq_cap;
  uint32_t calls;  /* into the node, for check_digest */
  dmq__rng_t nrng; /* lanes: this host's sends' loss, jitter, duplication */
  /* destination + 1 -> time of the last stream delivery to it: per sender,
   * so that whichever lane runs the host owns it */
  sim_map_t streams;
} sim_host_t;

/* Lanes, per host: its last event in the generation being built and that
 * generation's number (sim_gen_add); in an array of their own, so that
 * building a generation does not read every host's struct. */
typedef struct sim_hgen {
  uint64_t mark;
  uint32_t tail;
} sim_hgen_t;

/* Lanes (opts.lanes, docs/design.md "Simulator lanes"): the events of one
 * time step are processed in generations. Generation 0 is every event
 * queued for that time; generation g+1 every event for that same time
 * queued while generation g ran (send completions, wake-ups, zero-delay
 * packets). Sequentially (the heap's (time, sequence) order) that is the
 * order they run in too: whatever a generation queues has a higher
 * sequence than all of it. Within a generation every event has a position
 * (its place in that order), and an event touches only its own host, so
 * a generation's events are grouped by host (in position order within a
 * host), the lanes' threads take hosts one at a time from a shared counter
 * until none is left, and each event's outputs (what it queued or logged)
 * are noted as a range of its lane's arrays. Merged in position order
 * after the generation, they get the sequence numbers and the log order a
 * sequential run would have given. Which thread ran which host does not
 * matter, so a host with much work (the seed of a burst join) does not
 * hold up the others' share. The network's random decisions come from
 * the sending host's generator (sim_host_t.nrng), not the world's, so that
 * they too are independent of the interleaving: a run is the same whatever
 * the number of lanes (test_world's test_lanes_same_run). */
/* Where the outputs of one event of a generation went: its lane's out
 * and log arrays, [out0, out1) and [log0, log1). */
typedef struct sim_span {
  uint32_t lane;
  uint32_t out0, out1, log0, log1;
} sim_span_t;
typedef struct sim_lane {
  dmq_sim_t *w;
  uint32_t id;   /* index in w->lanes */
  sim_ev_t *out; /* queued: for a later time, or the next generation */
  size_t out_n, out_cap;
  dmq_sim_event_t *log;
  size_t log_n, log_cap;
  dmq_sim_net_stats_t net;
  size_t events_total, false_deaths;
  void *freebufs;
  pthread_t th;
  int started;
  unsigned go_seen; /* the generation count when its thread started */
} sim_lane_t;

/* The lane this thread is running, if any. */
static _Thread_local sim_lane_t *sim_lane_cur;

struct dmq_sim {
  uint64_t seed;
  dmq__rng_t rng;
  uint64_t now, seq;
  size_t mtu, bufsz;
  int quiet;
  int split;      /* opts.stream_transport */
  int dgram_only; /* opts.no_stream */
  int log_level;  /* -1 = no node logs */
  dmq_sim_link_t deflink;

  sim_host_t **hosts;
  int nhosts, cap_hosts;
  /* per host: member events about it (an array of its own: one is counted
   * per event, N^2 in a join, and the host structs are large) */
  uint64_t *about;
  sim_hgen_t *hgen;
  /* name -> host index: open addressing over (index, hash tag) pairs,
   * index -1 empty; the names compared are copies packed in one pool
   * (npool + noff[idx]), so that a lookup (one per member event: N^2 in a
   * join) stays in cache instead of reading every host's struct */
  struct sim_name_slot {
    int32_t idx;
    uint32_t tag;
  } * names;
  size_t names_cap;
  char *npool;
  size_t npool_len, npool_cap;
  uint32_t *noff; /* per host: offset of its name in npool */

  sim_ev_t *heap;
  size_t heap_n, heap_cap;
  void *freebufs; /* free list of bufsz-byte packet buffers */

  sim_map_t over; /* pair -> index into links */
  dmq_sim_link_t *links;
  size_t nlinks, cap_links;
  int any_blocks;

  dmq_sim_event_t *events;
  size_t nevents, cap_events;
  size_t false_deaths;
  size_t events_total; /* logged or not */
  unsigned event_mask; /* opts.event_mask: 0 = log every event */
  int check_digest;    /* opts.check_digest */
  dmq_sim_net_stats_t net;

  void (*tap)(void *ud, int from, int to, const void *buf, size_t len,
              uint64_t t);
  void *tap_ud;

  /* convergence check memo: last failing pair, checked first */
  int conv_obs, conv_subj;
  uint64_t live_epoch; /* bumped when a host is added, killed, paused... */

  /* lanes (0 = none: one generator for the network, the heap order) */
  int nlanes;
  sim_lane_t *lanes;
  /* the generation being run: its events in position order, for each the
   * next event of the same host (UINT32_MAX: none) and its outputs'
   * span; units: the first event of each host that has any, in order */
  sim_ev_t *gen, *gen_nx; /* gen_nx: the next generation, built by merge */
  uint32_t *gen_next, *units;
  sim_span_t *spans;
  size_t gen_n, gen_nx_n, gen_cap, nunits;
  uint64_t gen_no;       /* generations built so far (sim_hgen_t.mark) */
  atomic_size_t unit_at; /* the next unit to take */
  uint64_t threaded;     /* generations run on the lanes' threads */
  atomic_uint go;   /* bumped to start the lanes' threads on a generation */
  atomic_uint done; /* threads finished with it */
  atomic_int sleepers;
  atomic_int quit;
  pthread_mutex_t mu;
  pthread_cond_t cv;
};

/* ---- PRNG: the core's own generator (src/rng.c), a separate instance ---- */

static uint64_t sim_rand(dmq_sim_t *w) {
  return dmq__rng_next(&w->rng);
}

static double sim_randf(dmq__rng_t *r) {
  return (double)(dmq__rng_next(r) >> 11) * 0x1.0p-53;
}

/* Uniform in [0, n]. */
static uint64_t sim_upto(dmq__rng_t *r, uint64_t n) {
  if (n == 0)
    return 0;
  if (n == UINT64_MAX)
    return dmq__rng_next(r);
  uint64_t range = n + 1, lim = UINT64_MAX - UINT64_MAX % range;
  uint64_t x;
  do
    x = dmq__rng_next(r);
  while (x >= lim);
  return x % range;
}

/* The lane running on this thread for w, or NULL (outside a step, or w
 * has no lanes). */
static sim_lane_t *sim_lane(const dmq_sim_t *w) {
  sim_lane_t *l = sim_lane_cur;
  return l != NULL && l->w == w ? l : NULL;
}

static dmq_sim_net_stats_t *sim_net(dmq_sim_t *w) {
  sim_lane_t *l = sim_lane(w);
  return l != NULL ? &l->net : &w->net;
}

/* ---- small helpers ---- */

static void *sim_xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (q == NULL) {
    fprintf(stderr, "sim: out of memory\n");
    abort();
  }
  return q;
}

static uint64_t sim_pair(int from, int to) {
  return ((uint64_t)(uint32_t)(from + 1) << 32) | (uint32_t)to;
}

static sim_host_t *sim_host(const dmq_sim_t *w, int i) {
  return (i >= 0 && i < w->nhosts) ? w->hosts[i] : NULL;
}

static int sim_live(const sim_host_t *h) {
  return h != NULL && h->node != NULL && !h->left && !h->paused;
}

static void sim_fault(sim_host_t *h, uint64_t t) {
  if (t < h->first_fault)
    h->first_fault = t;
}

/* ---- u64 -> u64 map ---- */

static size_t sim_map_slot(const sim_map_t *m, uint64_t key) {
  uint64_t h = key * 0x9e3779b97f4a7c15ULL;
  size_t i = (size_t)(h >> 32) & (m->cap - 1);
  while (m->keys[i] != 0 && m->keys[i] != key)
    i = (i + 1) & (m->cap - 1);
  return i;
}

static uint64_t *sim_map_find(const sim_map_t *m, uint64_t key) {
  if (m->n == 0)
    return NULL;
  size_t i = sim_map_slot(m, key);
  return m->keys[i] == key ? &m->vals[i] : NULL;
}

static uint64_t *sim_map_put(sim_map_t *m, uint64_t key, uint64_t val) {
  if ((m->n + 1) * 2 > m->cap) {
    sim_map_t nm = {0};
    nm.cap = m->cap ? m->cap * 2 : 64;
    nm.keys = calloc(nm.cap, sizeof(uint64_t));
    nm.vals = calloc(nm.cap, sizeof(uint64_t));
    if (nm.keys == NULL || nm.vals == NULL) {
      fprintf(stderr, "sim: out of memory\n");
      abort();
    }
    for (size_t i = 0; i < m->cap; i++) {
      if (m->keys[i] != 0) {
        size_t j = sim_map_slot(&nm, m->keys[i]);
        nm.keys[j] = m->keys[i];
        nm.vals[j] = m->vals[i];
        nm.n++;
      }
    }
    free(m->keys);
    free(m->vals);
    *m = nm;
  }
  size_t i = sim_map_slot(m, key);
  if (m->keys[i] == 0) {
    m->keys[i] = key;
    m->n++;
  }
  m->vals[i] = val;
  return &m->vals[i];
}

static void sim_map_free(sim_map_t *m) {
  free(m->keys);
  free(m->vals);
  memset(m, 0, sizeof(*m));
}

/* ---- name index ---- */

static uint64_t sim_hash_str(const char *s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
  return h;
}

static void sim_names_insert(dmq_sim_t *w, int idx) {
  uint64_t h = sim_hash_str(w->hosts[idx]->name);
  size_t i = (size_t)h & (w->names_cap - 1);
  while (w->names[i].idx >= 0)
    i = (i + 1) & (w->names_cap - 1);
  w->names[i].idx = idx;
  w->names[i].tag = (uint32_t)(h >> 32);
}

static int sim_name_lookup(const dmq_sim_t *w, const char *name) {
  if (w->names_cap == 0 || name == NULL)
    return -1;
  uint64_t h = sim_hash_str(name);
  size_t i = (size_t)h & (w->names_cap - 1);
  while (w->names[i].idx >= 0) {
    if (w->names[i].tag == (uint32_t)(h >> 32) &&
        strcmp(w->npool + w->noff[w->names[i].idx], name) == 0)
      return w->names[i].idx;
    i = (i + 1) & (w->names_cap - 1);
  }
  return -1;
}

/* Host idx's name into the pool and the index. */
static void sim_names_add(dmq_sim_t *w, int idx) {
  size_t l = strlen(w->hosts[idx]->name) + 1;
  if (w->npool_len + l > w->npool_cap) {
    w->npool_cap = (w->npool_len + l) * 2;
    w->npool = sim_xrealloc(w->npool, w->npool_cap);
  }
  memcpy(w->npool + w->npool_len, w->hosts[idx]->name, l);
  w->noff[idx] = (uint32_t)w->npool_len;
  w->npool_len += l;
  sim_names_insert(w, idx);
}

/* Rebuild the index and the name pool for hosts 0..nhosts-1, growing them
 * as needed. */
static void sim_names_rebuild(dmq_sim_t *w) {
  size_t cap = w->names_cap ? w->names_cap : 64;
  while ((size_t)w->nhosts * 2 > cap)
    cap *= 2;
  if (cap != w->names_cap) {
    free(w->names);
    w->names = sim_xrealloc(NULL, cap * sizeof(*w->names));
    free(w->noff);
    w->noff = sim_xrealloc(NULL, cap / 2 * sizeof(*w->noff));
    w->names_cap = cap;
  }
  for (size_t i = 0; i < cap; i++)
    w->names[i].idx = -1;
  w->npool_len = 0;
  for (int i = 0; i < w->nhosts; i++)
    sim_names_add(w, i);
}

/* ---- packet buffers ---- */

/* The free list of this thread's lane, else the world's. */
static void **sim_freebufs(dmq_sim_t *w) {
  sim_lane_t *l = sim_lane(w);
  return l != NULL ? &l->freebufs : &w->freebufs;
}

static void *sim_buf_get(dmq_sim_t *w, size_t len) {
  if (len > w->mtu)
    return sim_xrealloc(NULL, len);
  void **fl = sim_freebufs(w);
  void *b = *fl;
  if (b != NULL) {
    memcpy(fl, b, sizeof(void *));
    return b;
  }
  return sim_xrealloc(NULL, w->bufsz);
}

static void sim_buf_put(dmq_sim_t *w, void *b, size_t len) {
  if (b == NULL)
    return;
  if (len > w->mtu) {
    free(b);
    return;
  }
  void **fl = sim_freebufs(w);
  memcpy(b, fl, sizeof(void *));
  *fl = b;
}

static void sim_bufs_free(void **fl) {
  while (*fl != NULL) {
    void *b = *fl;
    memcpy(fl, b, sizeof(void *));
    free(b);
  }
}

/* ---- event heap ---- */

static int sim_ev_less(const sim_ev_t *a, const sim_ev_t *b) {
  return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

/* Into the heap with the sequence number it has. */
static void sim_heap_insert(dmq_sim_t *w, const sim_ev_t *ev) {
  if (w->heap_n == w->heap_cap) {
    w->heap_cap = w->heap_cap ? w->heap_cap * 2 : 1024;
    w->heap = sim_xrealloc(w->heap, w->heap_cap * sizeof(sim_ev_t));
  }
  size_t i = w->heap_n++;
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!sim_ev_less(ev, &w->heap[p]))
      break;
    w->heap[i] = w->heap[p];
    i = p;
  }
  w->heap[i] = *ev;
}

/* Queue an event: into the heap with the next sequence number, or, in a
 * lane, into the lane's output (merged after the generation). */
static void sim_heap_push(dmq_sim_t *w, sim_ev_t *ev) {
  sim_lane_t *l = sim_lane(w);
  if (l == NULL) {
    ev->seq = w->seq++;
    sim_heap_insert(w, ev);
    return;
  }
  if (l->out_n == l->out_cap) {
    l->out_cap = l->out_cap ? l->out_cap * 2 : 1024;
    l->out = sim_xrealloc(l->out, l->out_cap * sizeof(*l->out));
  }
  l->out[l->out_n++] = *ev;
}

static void sim_heap_pop(dmq_sim_t *w, sim_ev_t *out) {
  *out = w->heap[0];
  sim_ev_t last = w->heap[--w->heap_n];
  size_t n = w->heap_n, i = 0;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= n)
      break;
    if (c + 1 < n && sim_ev_less(&w->heap[c + 1], &w->heap[c]))
      c++;
    if (!sim_ev_less(&w->heap[c], &last))
      break;
    w->heap[i] = w->heap[c];
    i = c;
  }
  if (n > 0)
    w->heap[i] = last;
}

static void sim_ev_release(dmq_sim_t *w, sim_ev_t *ev) {
  if (ev->kind == SIM_EV_DELIVER)
    sim_buf_put(w, ev->ptr, ev->len);
}

/* ---- node plumbing ---- */

/* Keep one wake-up event at or before the node's next deadline. */
static void sim_check_digest(dmq_sim_t *w, sim_host_t *h) {
  uint32_t every =
      (uint32_t)dmq_node_member_count(h->node, DMQ_MASK_ALL) / 32 + 1;
  if (++h->calls % every != 0 ||
      (dmq__ae_sums_check(h->node) == 0 && dmq__swim_check(h->node) == 0))
    return;
  fprintf(stderr,
          "sim: host %d's digest sums or heard list differ from its table at "
          "t=%" PRIu64 " ms (seed %" PRIu64 ")\n",
          h->idx, w->now, w->seed);
  abort();
}

static void sim_after_call(dmq_sim_t *w, sim_host_t *h) {
  if (h->node == NULL || h->paused)
    return;
  if (w->check_digest)
    sim_check_digest(w, h);
  uint64_t d = dmq_node_next_deadline(h->node);
  if (d == DMQ_NEVER)
    return;
  if (d < w->now)
    d = w->now;
  if (d >= h->wake_ev_t)
    return;
  sim_ev_t ev = {0};
  ev.t = d;
  ev.kind = SIM_EV_WAKE;
  ev.to = h->idx;
  ev.len = ++h->wake_gen;
  h->wake_ev_t = d;
  sim_heap_push(w, &ev);
}

static dmq_sim_event_t *sim_log_add(dmq_sim_t *w) {
  if (w->nevents == w->cap_events) {
    w->cap_events = w->cap_events ? w->cap_events * 2 : 4096;
    w->events =
        sim_xrealloc(w->events, w->cap_events * sizeof(dmq_sim_event_t));
  }
  return &w->events[w->nevents++];
}

static void sim_record(dmq_sim_t *w, int obs, int subj, dmq_member_event_t ev,
                       uint64_t inc, uint64_t gen) {
  sim_lane_t *l = sim_lane(w);
  if (l != NULL)
    l->events_total++;
  else
    w->events_total++;
  if (subj >= 0 && subj < w->nhosts) {
    /* (lanes count events about one host at once) */
    __atomic_fetch_add(&w->about[subj], 1, __ATOMIC_RELAXED);
    if (ev == DMQ_EVENT_DEAD && w->now < w->hosts[subj]->first_fault) {
      if (l != NULL)
        l->false_deaths++;
      else
        w->false_deaths++;
    }
  }
  if (w->event_mask != 0 &&
      ((unsigned)ev >= 32 || !(w->event_mask & (1u << (unsigned)ev))))
    return;
  dmq_sim_event_t *e;
  if (l == NULL) {
    e = sim_log_add(w);
  } else {
    if (l->log_n == l->log_cap) {
      l->log_cap = l->log_cap ? l->log_cap * 2 : 256;
      l->log = sim_xrealloc(l->log, l->log_cap * sizeof(*l->log));
    }
    e = &l->log[l->log_n++];
  }
  memset(e, 0, sizeof(*e)); /* padding too: logs compare with memcmp */
  e->t = w->now;
  e->observer = obs;
  e->subject = subj;
  e->ev = ev;
  e->incarnation = inc;
  e->generation = gen;
}

static void sim_member_cb(dmq_node_t *node, dmq_member_event_t ev,
                          const dmq_member_info_t *m, void *ud) {
  (void)node;
  sim_host_t *h = ud;
  dmq_sim_t *w = h->w;
  sim_record(w, h->idx, sim_name_lookup(w, m->name), ev, m->incarnation,
             m->generation);
}

static void sim_log_cb(dmq_node_t *node, dmq_log_level_t level, const char *msg,
                       void *ud) {
  (void)node;
  (void)level;
  sim_host_t *h = ud;
  fprintf(stderr, "[sim t=%" PRIu64 ".%03u h%d] %s\n", h->w->now / 1000,
          (unsigned)(h->w->now % 1000), h->idx, msg);
}

/* ---- the simulated transport ---- */

static int sim_parse_addr(const char *scheme, const char *addr) {
  size_t sl = strlen(scheme);
  if (addr == NULL || strncmp(addr, scheme, sl) != 0 ||
      strncmp(addr + sl, "://", 3) != 0)
    return -1;
  const char *p = addr + sl + 3;
  if (*p < '0' || *p > '9')
    return -1;
  uint64_t v = 0;
  for (; *p >= '0' && *p <= '9'; p++) {
    v = v * 10 + (uint64_t)(*p - '0');
    if (v > INT32_MAX)
      return -1;
  }
  return *p == '\0' ? (int)v : -1;
}

static const dmq_sim_link_t *sim_link(const dmq_sim_t *w, int from, int to) {
  uint64_t *v = sim_map_find(&w->over, sim_pair(from, to));
  return v != NULL ? &w->links[*v] : &w->deflink;
}

static int sim_blocked(const dmq_sim_t *w, const sim_host_t *h, int to,
                       const dmq_sim_link_t *l) {
  if (l->blocked)
    return 1;
  if (!w->any_blocks || h->blk == NULL || (size_t)to / 64 >= h->blk_words)
    return 0;
  return (int)((h->blk[to / 64] >> (to % 64)) & 1);
}

static void sim_schedule_packet(dmq_sim_t *w, sim_host_t *h, int to, uint64_t t,
                                const void *buf, size_t len, int stream) {
  sim_ev_t ev = {0};
  ev.t = t;
  ev.kind = SIM_EV_DELIVER;
  ev.stream = (uint8_t)stream;
  ev.from = h->idx;
  ev.to = to;
  ev.from_ep = h->epoch;
  ev.to_ep = w->hosts[to]->epoch;
  ev.len = (uint32_t)len;
  ev.ptr = sim_buf_get(w, len);
  if (len > 0)
    memcpy(ev.ptr, buf, len);
  sim_heap_push(w, &ev);
}

/* Both transports. Without split mode "sim" carries everything and the size
 * decides the class; in split mode "sim" carries datagrams only and
 * "simtcp" is the stream. */
static int sim_tr_send(dmq_transport_t *t, const char *addr, const void *buf,
                       size_t len, void *cookie) {
  sim_host_t *h = t->impl;
  dmq_sim_t *w = h->w;
  dmq__rng_t *r = w->nlanes ? &h->nrng : &w->rng;
  int on_stream = t == &h->trs;
  if (h->down ||
      (h->closed & (on_stream ? SIM_CLOSED_STREAM : SIM_CLOSED_DGRAM)))
    return DMQ_ECLOSED;
  int to = sim_parse_addr(t->ops->scheme, addr);
  if (to < 0)
    return DMQ_EADDR;
  if (len > SIM_STREAM_MAX ||
      ((w->split || w->dgram_only) && !on_stream && len > w->mtu)) {
    sim_net(w)->oversize++;
    return DMQ_ETOOBIG;
  }
  sim_net(w)->sent++;
  sim_net(w)->bytes_sent += len;
  sim_host_t *dst = sim_host(w, to);
  if (dst == NULL) {
    sim_net(w)->undeliverable++;
  } else {
    const dmq_sim_link_t *l = sim_link(w, h->idx, to);
    uint64_t base = w->now + l->delay_ms + h->send_delay;
    if (sim_blocked(w, h, to, l)) {
      sim_net(w)->blocked++;
    } else if (on_stream || (!w->split && len > w->mtu)) {
      /* Reliable stream: in order per pair, never lost or duplicated. */
      uint64_t key = (uint64_t)to + 1;
      uint64_t *last = sim_map_find(&h->streams, key);
      if (last != NULL && *last > base)
        base = *last;
      sim_map_put(&h->streams, key, base);
      sim_schedule_packet(w, h, to, base, buf, len, on_stream);
    } else if (l->loss > 0 && sim_randf(r) < l->loss) {
      sim_net(w)->lost++;
    } else {
      uint64_t at = base + sim_upto(r, l->jitter_ms);
      sim_schedule_packet(w, h, to, at, buf, len, 0);
      if (l->dup > 0 && sim_randf(r) < l->dup) {
        sim_net(w)->duplicated++;
        at = base + sim_upto(r, l->jitter_ms);
        sim_schedule_packet(w, h, to, at, buf, len, 0);
      }
    }
  }
  if (cookie != NULL) {
    sim_ev_t ev = {0};
    ev.t = w->now;
    ev.kind = SIM_EV_DONE;
    ev.to = h->idx;
    ev.to_ep = h->epoch;
    ev.ptr = cookie;
    ev.stream = (uint8_t)on_stream;
    sim_heap_push(w, &ev);
  }
  return 0;
}

/* Closing refuses further sends and drops later deliveries. Every accepted
 * send has already gone out on the simulated wire, so its completion
 * (status 0) is delivered here, before on_closed; nothing completes after
 * it. The simulator has no loop of its own, so close is synchronous (like
 * the host transport). A second close does nothing; a restart reopens. */
static void sim_tr_close(dmq_transport_t *t) {
  sim_host_t *h = t->impl;
  int stream = t == &h->trs;
  unsigned bit = stream ? SIM_CLOSED_STREAM : SIM_CLOSED_DGRAM;
  if (h->closed & bit)
    return;
  h->closed |= bit;
  dmq_sim_t *w = h->w;
  for (size_t i = 0; i < w->heap_n; i++) {
    sim_ev_t *ev = &w->heap[i];
    if (ev->kind == SIM_EV_DONE && ev->to == h->idx && ev->to_ep == h->epoch &&
        ev->stream == (uint8_t)stream) {
      ev->kind = SIM_EV_NONE; /* completed now, skipped when popped */
      dmq_transport_send_done(t, ev->ptr, 0);
    }
  }
  if (t->on_closed != NULL)
    t->on_closed(t);
}

static const dmq_transport_ops_t sim_tr_ops = {
    .size = sizeof(dmq_transport_ops_t),
    .scheme = "sim",
    .caps = DMQ_TRANSPORT_DATAGRAM | DMQ_TRANSPORT_RELIABLE,
    .send = sim_tr_send,
    .close = sim_tr_close,
};

static const dmq_transport_ops_t sim_tr_dgram_ops = {
    .size = sizeof(dmq_transport_ops_t),
    .scheme = "sim",
    .caps = DMQ_TRANSPORT_DATAGRAM,
    .send = sim_tr_send,
    .close = sim_tr_close,
};

static const dmq_transport_ops_t sim_tr_stream_ops = {
    .size = sizeof(dmq_transport_ops_t),
    .scheme = "simtcp",
    .caps = DMQ_TRANSPORT_RELIABLE,
    .send = sim_tr_send,
    .close = sim_tr_close,
};

/* ---- event dispatch ---- */

static void sim_defer(sim_host_t *h, const sim_ev_t *ev) {
  if (h->pq_n == h->pq_cap) {
    h->pq_cap = h->pq_cap ? h->pq_cap * 2 : 64;
    h->pq = sim_xrealloc(h->pq, h->pq_cap * sizeof(sim_ev_t));
  }
  h->pq[h->pq_n++] = *ev;
}

static void sim_dispatch(dmq_sim_t *w, sim_ev_t *ev) {
  sim_host_t *h = w->hosts[ev->to];
  switch (ev->kind) {
  case SIM_EV_WAKE:
    if (ev->len != h->wake_gen || h->node == NULL)
      return;
    h->wake_ev_t = UINT64_MAX;
    if (h->paused)
      return; /* rescheduled on resume */
    if (dmq_node_next_deadline(h->node) <= ev->t)
      dmq_node_tick(h->node, ev->t);
    sim_after_call(w, h);
    return;
  case SIM_EV_DONE:
    if (h->node == NULL || h->epoch != ev->to_ep)
      return;
    if (h->paused) {
      sim_defer(h, ev);
      return;
    }
    dmq_transport_send_done(ev->stream ? &h->trs : &h->tr, ev->ptr, 0);
    sim_after_call(w, h);
    return;
  case SIM_EV_DELIVER: {
    sim_host_t *src = w->hosts[ev->from];
    if (h->node == NULL || h->epoch != ev->to_ep || src->epoch != ev->from_ep) {
      sim_net(w)->undeliverable++;
      sim_buf_put(w, ev->ptr, ev->len);
      return;
    }
    if (h->paused) {
      sim_defer(h, ev);
      return;
    }
    if (h->closed & (ev->stream ? SIM_CLOSED_STREAM : SIM_CLOSED_DGRAM)) {
      sim_net(w)->undeliverable++; /* the receiving transport is closed */
      sim_buf_put(w, ev->ptr, ev->len);
      return;
    }
    sim_net(w)->delivered++;
    sim_net(w)->bytes_delivered += ev->len;
    if (w->tap != NULL) {
      w->tap(w->tap_ud, ev->from, ev->to, ev->ptr, ev->len, ev->t);
      if (h->node == NULL || h->epoch != ev->to_ep || h->paused) {
        sim_buf_put(w, ev->ptr, ev->len); /* the tap changed the world */
        return;
      }
    }
    if (ev->stream)
      dmq_node_recv(h->node, &h->trs, src->saddr, ev->ptr, ev->len, ev->t);
    else
      dmq_node_recv(h->node, &h->tr, src->addr, ev->ptr, ev->len, ev->t);
    sim_buf_put(w, ev->ptr, ev->len);
    sim_after_call(w, h);
    return;
  }
  default:
    return;
  }
}

/* Process every event at the earliest pending time (<= limit). Returns 0 if
 * there was none. */
static int sim_step(dmq_sim_t *w, uint64_t limit) {
  if (w->heap_n == 0 || w->heap[0].t > limit)
    return 0;
  uint64_t t = w->heap[0].t;
  w->now = t;
  while (w->heap_n > 0 && w->heap[0].t == t) {
    sim_ev_t ev;
    sim_heap_pop(w, &ev);
    sim_dispatch(w, &ev);
  }
  return 1;
}

/* ---- lanes ---- */

/* Append ev to the generation being built (w->gen_nx), after the host's
 * earlier events in it. */
static void sim_gen_add(dmq_sim_t *w, const sim_ev_t *ev) {
  if (w->gen_nx_n == w->gen_cap) {
    size_t cap = w->gen_cap ? w->gen_cap * 2 : 1024;
    w->gen = sim_xrealloc(w->gen, cap * sizeof(*w->gen));
    w->gen_nx = sim_xrealloc(w->gen_nx, cap * sizeof(*w->gen_nx));
    w->gen_next = sim_xrealloc(w->gen_next, cap * sizeof(*w->gen_next));
    w->units = sim_xrealloc(w->units, cap * sizeof(*w->units));
    w->spans = sim_xrealloc(w->spans, cap * sizeof(*w->spans));
    w->gen_cap = cap;
  }
  uint32_t i = (uint32_t)w->gen_nx_n++;
  w->gen_nx[i] = *ev;
  w->gen_next[i] = UINT32_MAX;
  sim_hgen_t *h = &w->hgen[ev->to];
  if (h->mark == w->gen_no) {
    w->gen_next[h->tail] = i;
  } else {
    h->mark = w->gen_no;
    w->units[w->nunits++] = i;
  }
  h->tail = i;
}

/* Make the generation built so far the one to run; start the next. */
static size_t sim_gen_swap(dmq_sim_t *w) {
  sim_ev_t *t = w->gen;
  w->gen = w->gen_nx;
  w->gen_nx = t;
  w->gen_n = w->gen_nx_n;
  w->gen_nx_n = 0;
  return w->gen_n;
}

/* Run event i of the generation on lane l, noting where its outputs go. */
static void sim_lane_one(sim_lane_t *l, uint32_t i) {
  dmq_sim_t *w = l->w;
  sim_span_t *s = &w->spans[i];
  s->lane = l->id;
  s->out0 = (uint32_t)l->out_n;
  s->log0 = (uint32_t)l->log_n;
  sim_dispatch(w, &w->gen[i]);
  s->out1 = (uint32_t)l->out_n;
  s->log1 = (uint32_t)l->log_n;
}

/* Take hosts from the generation until none is left; run each one's
 * events in position order. */
static void sim_lane_work(sim_lane_t *l) {
  dmq_sim_t *w = l->w;
  sim_lane_cur = l;
  for (;;) {
    size_t u = atomic_fetch_add_explicit(&w->unit_at, 1, memory_order_relaxed);
    if (u >= w->nunits)
      break;
    for (uint32_t i = w->units[u]; i != UINT32_MAX; i = w->gen_next[i])
      sim_lane_one(l, i);
  }
  sim_lane_cur = NULL;
}

/* Spins this many rounds for the next generation before it sleeps. */
#define SIM_LANE_SPIN 20000

static void *sim_lane_thread(void *arg) {
  sim_lane_t *l = arg;
  dmq_sim_t *w = l->w;
  unsigned seen = l->go_seen;
  for (;;) {
    unsigned g;
    int spins = 0;
    while ((g = atomic_load(&w->go)) == seen && !atomic_load(&w->quit) &&
           ++spins < SIM_LANE_SPIN)
      ;
    if (g == seen && !atomic_load(&w->quit)) {
      pthread_mutex_lock(&w->mu);
      atomic_fetch_add(&w->sleepers, 1);
      while ((g = atomic_load(&w->go)) == seen && !atomic_load(&w->quit))
        pthread_cond_wait(&w->cv, &w->mu);
      atomic_fetch_sub(&w->sleepers, 1);
      pthread_mutex_unlock(&w->mu);
    }
    if (atomic_load(&w->quit))
      return NULL;
    seen = g;
    sim_lane_work(l);
    atomic_fetch_add(&w->done, 1);
  }
}

static void sim_lanes_wake(dmq_sim_t *w) {
  if (atomic_load(&w->sleepers) > 0) {
    pthread_mutex_lock(&w->mu);
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
  }
}

static void sim_lanes_stop(dmq_sim_t *w) {
  atomic_store(&w->quit, 1);
  pthread_mutex_lock(&w->mu);
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
  for (int i = 1; i < w->nlanes; i++)
    if (w->lanes[i].started)
      pthread_join(w->lanes[i].th, NULL);
}

/* Below this many events a generation runs on this thread alone: waking
 * the others costs more than it saves. The outcome is the same. */
#define SIM_LANE_MIN_EVENTS 16

/* Merge the generation's outputs in position order (and, within an event,
 * the order it queued them): sequence numbers in the order a sequential
 * run would have queued them; events for now make the next generation.
 * Returns how many those are. */
static size_t sim_lanes_merge(dmq_sim_t *w) {
  w->gen_no++;
  w->nunits = 0;
  for (size_t i = 0; i < w->gen_n; i++) {
    sim_span_t s = w->spans[i]; /* (sim_gen_add may move spans) */
    const sim_lane_t *l = &w->lanes[s.lane];
    for (uint32_t j = s.out0; j < s.out1; j++) {
      sim_ev_t ev = l->out[j];
      ev.seq = w->seq++;
      if (ev.t <= w->now)
        sim_gen_add(w, &ev);
      else
        sim_heap_insert(w, &ev);
    }
  }
  for (size_t i = 0; i < w->gen_n; i++) {
    const sim_span_t *s = &w->spans[i];
    const sim_lane_t *l = &w->lanes[s->lane];
    for (uint32_t j = s->log0; j < s->log1; j++)
      *sim_log_add(w) = l->log[j];
  }
  for (int i = 0; i < w->nlanes; i++) {
    sim_lane_t *l = &w->lanes[i];
    l->out_n = 0;
    l->log_n = 0;
    w->events_total += l->events_total;
    w->false_deaths += l->false_deaths;
    l->events_total = l->false_deaths = 0;
    dmq_sim_net_stats_t *a = &w->net, *d = &l->net;
    a->sent += d->sent;
    a->bytes_sent += d->bytes_sent;
    a->delivered += d->delivered;
    a->bytes_delivered += d->bytes_delivered;
    a->lost += d->lost;
    a->duplicated += d->duplicated;
    a->blocked += d->blocked;
    a->undeliverable += d->undeliverable;
    a->oversize += d->oversize;
    memset(d, 0, sizeof(*d));
  }
  return sim_gen_swap(w);
}

/* sim_step with lanes: the same events in the same order per host, the
 * same log, the same queue afterwards. */
static int sim_step_lanes(dmq_sim_t *w, uint64_t limit) {
  if (w->heap_n == 0 || w->heap[0].t > limit)
    return 0;
  uint64_t t = w->heap[0].t;
  w->now = t;
  w->gen_no++;
  w->nunits = 0;
  while (w->heap_n > 0 && w->heap[0].t == t) {
    sim_ev_t ev;
    sim_heap_pop(w, &ev);
    sim_gen_add(w, &ev);
  }
  size_t n = sim_gen_swap(w);
  while (n > 0) {
    if (n < SIM_LANE_MIN_EVENTS || w->nlanes == 1) {
      sim_lane_t *l = &w->lanes[0];
      sim_lane_cur = l;
      for (uint32_t i = 0; i < n; i++)
        sim_lane_one(l, i);
      sim_lane_cur = NULL;
    } else {
      for (int i = 1; i < w->nlanes; i++) {
        sim_lane_t *l = &w->lanes[i];
        if (!l->started) {
          l->go_seen = atomic_load(&w->go);
          if (pthread_create(&l->th, NULL, sim_lane_thread, l) != 0) {
            fprintf(stderr, "sim: cannot start a lane thread\n");
            abort();
          }
          l->started = 1;
        }
      }
      w->threaded++;
      atomic_store(&w->unit_at, 0);
      atomic_store(&w->done, 0);
      atomic_fetch_add(&w->go, 1);
      sim_lanes_wake(w);
      sim_lane_work(&w->lanes[0]);
      while (atomic_load(&w->done) != (unsigned)(w->nlanes - 1))
        ;
    }
    n = sim_lanes_merge(w);
  }
  return 1;
}

static int sim_next(dmq_sim_t *w, uint64_t limit) {
  return w->nlanes > 0 && w->tap == NULL ? sim_step_lanes(w, limit)
                                         : sim_step(w, limit);
}

/* ---- world ---- */

void dmq_sim_opts_init(dmq_sim_opts_t *o) {
  memset(o, 0, sizeof(*o));
  o->link.delay_ms = 1;
  o->mtu = 1400;
  o->check_digest = 1;
}

static uint64_t sim_env_seed(void) {
  const char *s = getenv("DMQ_SIM_SEED");
  if (s == NULL || *s == '\0')
    return DMQ_SIM_DEFAULT_SEED;
  char *end = NULL;
  uint64_t v;
  if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
    v = strtoull(s + 2, &end, 16);
  else
    v = strtoull(s, &end, 10);
  if (end == NULL || *end != '\0' || v == 0) {
    fprintf(stderr, "sim: ignoring bad DMQ_SIM_SEED=%s\n", s);
    return DMQ_SIM_DEFAULT_SEED;
  }
  return v;
}

dmq_sim_t *dmq_sim_new(const dmq_sim_opts_t *o) {
  dmq_sim_opts_t def;
  if (o == NULL) {
    dmq_sim_opts_init(&def);
    o = &def;
  }
  dmq_sim_t *w = calloc(1, sizeof(*w));
  if (w == NULL)
    return NULL;
  w->seed = o->seed ? o->seed : sim_env_seed();
  dmq__rng_seed(&w->rng, w->seed);
  w->mtu = o->mtu ? o->mtu : 1400;
  w->bufsz = w->mtu < sizeof(void *) ? sizeof(void *) : w->mtu;
  w->quiet = o->quiet;
  w->event_mask = o->event_mask;
  w->check_digest = o->check_digest;
  w->dgram_only = o->no_stream;
  w->split = o->no_stream ? 0 : o->stream_transport;
  w->deflink = o->link;
  int lanes = o->lanes;
  const char *ls = getenv("DMQ_SIM_LANES");
  if (lanes == 0 && ls != NULL && *ls != '\0')
    lanes = atoi(ls);
  if (lanes > 0) {
    w->nlanes = lanes > 64 ? 64 : lanes;
    w->lanes = calloc((size_t)w->nlanes, sizeof(*w->lanes));
    if (w->lanes == NULL) {
      free(w);
      return NULL;
    }
    for (int i = 0; i < w->nlanes; i++) {
      w->lanes[i].w = w;
      w->lanes[i].id = (uint32_t)i;
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
  }
  w->log_level = -1;
  const char *lg = getenv("DMQ_SIM_LOG");
  if (lg != NULL && *lg >= '0' && *lg <= '3')
    w->log_level = *lg - '0';
  return w;
}

void dmq_sim_delete(dmq_sim_t *w) {
  if (w == NULL)
    return;
  for (int i = 0; i < w->nhosts; i++) {
    sim_host_t *h = w->hosts[i];
    if (h->node != NULL)
      dmq_node_delete(h->node);
    for (size_t j = 0; j < h->pq_n; j++)
      sim_ev_release(w, &h->pq[j]);
    free(h->pq);
    free(h->blk);
    sim_map_free(&h->streams);
    free(h);
  }
  for (size_t i = 0; i < w->heap_n; i++)
    sim_ev_release(w, &w->heap[i]);
  sim_bufs_free(&w->freebufs);
  if (w->nlanes > 0) {
    sim_lanes_stop(w);
    for (int i = 0; i < w->nlanes; i++) {
      sim_lane_t *l = &w->lanes[i];
      sim_bufs_free(&l->freebufs);
      free(l->out);
      free(l->log);
    }
    free(w->lanes);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
  }
  free(w->heap);
  free(w->hosts);
  free(w->about);
  free(w->hgen);
  free(w->names);
  free(w->noff);
  free(w->npool);
  sim_map_free(&w->over);
  free(w->gen);
  free(w->gen_nx);
  free(w->gen_next);
  free(w->units);
  free(w->spans);
  free(w->links);
  free(w->events);
  free(w);
}

uint64_t dmq_sim_seed(const dmq_sim_t *w) {
  return w->seed;
}
uint64_t dmq_sim_now(const dmq_sim_t *w) {
  return w->now;
}
int dmq_sim_host_count(const dmq_sim_t *w) {
  return w->nhosts;
}

/* Create and start the host's node from h->cfg. */
static int sim_boot(dmq_sim_t *w, sim_host_t *h, uint64_t rng_seed) {
  h->cfg.generation = h->gen;
  h->cfg.rng_seed = rng_seed ? rng_seed : 1;
  dmq_node_t *n = NULL;
  int rc = dmq_node_new(&h->cfg, NULL, &n);
  if (rc != 0)
    return rc;
  dmq_node_set_member_cb(n, sim_member_cb, h);
  if (w->log_level >= 0)
    dmq_node_set_log_cb(n, sim_log_cb, (dmq_log_level_t)w->log_level, h);
  rc = dmq_node_add_transport(n, &h->tr);
  if (rc == 0 && w->split)
    rc = dmq_node_add_transport(n, &h->trs);
  if (rc == 0)
    rc = dmq_node_start(n, w->now);
  if (rc != 0) {
    dmq_node_delete(n);
    return rc;
  }
  h->node = n;
  w->live_epoch++;
  h->down = 0;
  h->closed = 0;
  h->left = 0;
  h->paused = 0;
  h->wake_ev_t = UINT64_MAX;
  h->wake_gen++;
  sim_after_call(w, h);
  return 0;
}

int dmq_sim_add(dmq_sim_t *w, const dmq_config_t *cfg, const char *name) {
  char defname[32];
  int idx = w->nhosts;
  if (name == NULL) {
    snprintf(defname, sizeof(defname), "n%d", idx);
    name = defname;
  }
  if (strlen(name) == 0 || strlen(name) > DMQ_MAX_NAME ||
      sim_name_lookup(w, name) >= 0)
    return -1;
  if (cfg != NULL && (cfg->meta_len > DMQ_MAX_META ||
                      (cfg->meta_len > 0 && cfg->meta == NULL)))
    return -1;
  sim_host_t *h = calloc(1, sizeof(*h));
  if (h == NULL)
    return -1;
  h->w = w;
  h->idx = idx;
  h->first_fault = UINT64_MAX;
  h->wake_ev_t = UINT64_MAX;
  snprintf(h->name, sizeof(h->name), "%s", name);
  snprintf(h->addr, sizeof(h->addr), "sim://%d", idx);
  if (cfg != NULL)
    h->cfg = *cfg;
  else
    dmq_config_init(&h->cfg, DMQ_PROFILE_LAN);
  h->cfg.name = h->name;
  if (h->cfg.advertise_addr != NULL) {
    snprintf(h->adv, sizeof(h->adv), "%s", h->cfg.advertise_addr);
    h->cfg.advertise_addr = h->adv;
  } else {
    h->cfg.advertise_addr = h->addr;
  }
  if (h->cfg.meta_len > 0) {
    memcpy(h->meta, h->cfg.meta, h->cfg.meta_len);
    h->cfg.meta = h->meta;
  } else {
    h->cfg.meta = NULL;
  }
  /* The network's MTU bounds the datagram budget. */
  if (h->cfg.mtu == 0 || h->cfg.mtu > w->mtu)
    h->cfg.mtu = (uint32_t)w->mtu;
  h->gen = h->cfg.generation ? h->cfg.generation : w->now + 1;
  snprintf(h->saddr, sizeof(h->saddr), "simtcp://%d", idx);
  h->tr.ops = w->split || w->dgram_only ? &sim_tr_dgram_ops : &sim_tr_ops;
  h->tr.impl = h;
  /* mixed mode: the one transport also carries streams up to the max */
  h->tr.mtu = (w->split || w->dgram_only) ? w->mtu : SIM_STREAM_MAX;
  h->trs.ops = &sim_tr_stream_ops;
  h->trs.impl = h;
  h->trs.mtu = SIM_STREAM_MAX;
  if (w->nhosts == w->cap_hosts) {
    w->cap_hosts = w->cap_hosts ? w->cap_hosts * 2 : 16;
    w->hosts = sim_xrealloc(w->hosts, (size_t)w->cap_hosts * sizeof(*w->hosts));
    w->about = sim_xrealloc(w->about, (size_t)w->cap_hosts * sizeof(*w->about));
    w->hgen = sim_xrealloc(w->hgen, (size_t)w->cap_hosts * sizeof(*w->hgen));
  }
  w->about[w->nhosts] = 0;
  w->hgen[w->nhosts].mark = 0;
  w->hosts[w->nhosts++] = h;
  if ((size_t)w->nhosts * 2 > w->names_cap)
    sim_names_rebuild(w);
  else
    sim_names_add(w, idx);
  uint64_t seed = sim_rand(w);
  if (cfg != NULL && cfg->rng_seed != 0)
    seed = cfg->rng_seed;
  if (w->nlanes > 0)
    dmq__rng_seed(&h->nrng, sim_rand(w));
  if (sim_boot(w, h, seed) != 0) {
    w->nhosts--;
    free(h);
    sim_names_rebuild(w);
    return -1;
  }
  return idx;
}

dmq_node_t *dmq_sim_node(dmq_sim_t *w, int host) {
  sim_host_t *h = sim_host(w, host);
  return h != NULL ? h->node : NULL;
}

const char *dmq_sim_addr(dmq_sim_t *w, int host) {
  sim_host_t *h = sim_host(w, host);
  return h != NULL ? h->addr : NULL;
}

int dmq_sim_join(dmq_sim_t *w, int host, const int *seeds, size_t n) {
  sim_host_t *h = sim_host(w, host);
  if (h == NULL || (n > 0 && seeds == NULL))
    return DMQ_EINVAL;
  if (h->node == NULL)
    return DMQ_ECLOSED;
  const char *small[32] = {0}; /* gcc -O3 maybe-uninitialized */
  const char **addrs = n <= 32 ? small : malloc(n * sizeof(char *));
  if (addrs == NULL)
    return DMQ_ENOMEM;
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    sim_host_t *s = sim_host(w, seeds[i]);
    if (s == NULL)
      rc = DMQ_EINVAL;
    else
      addrs[i] = s->addr;
  }
  if (rc == 0)
    rc = dmq_node_join(h->node, addrs, n, w->now);
  if (addrs != small)
    free(addrs);
  sim_after_call(w, h);
  return rc;
}

void dmq_sim_kill(dmq_sim_t *w, int host) {
  sim_host_t *h = sim_host(w, host);
  if (h == NULL || h->down)
    return;
  sim_fault(h, w->now);
  if (h->node != NULL)
    dmq_node_delete(h->node);
  h->node = NULL;
  w->live_epoch++;
  h->down = 1;
  h->paused = 0;
  h->epoch++;
  h->wake_gen++;
  h->wake_ev_t = UINT64_MAX;
  for (size_t i = 0; i < h->pq_n; i++) {
    if (h->pq[i].kind == SIM_EV_DELIVER)
      sim_net(w)->undeliverable++;
    sim_ev_release(w, &h->pq[i]);
  }
  h->pq_n = 0;
}

int dmq_sim_restart(dmq_sim_t *w, int host) {
  sim_host_t *h = sim_host(w, host);
  if (h == NULL)
    return DMQ_EINVAL;
  if (!h->down)
    return DMQ_ESTATE;
  h->gen = h->gen + 1 > w->now + 1 ? h->gen + 1 : w->now + 1;
  return sim_boot(w, h, sim_rand(w));
}

int dmq_sim_leave(dmq_sim_t *w, int host) {
  sim_host_t *h = sim_host(w, host);
  if (h == NULL)
    return DMQ_EINVAL;
  if (h->node == NULL)
    return DMQ_ECLOSED;
  sim_fault(h, w->now);
  h->left = 1;
  w->live_epoch++;
  int rc = dmq_node_leave(h->node, w->now);
  sim_after_call(w, h);
  return rc;
}

void dmq_sim_pause(dmq_sim_t *w, int host) {
  sim_host_t *h = sim_host(w, host);
  if (h == NULL || h->node == NULL || h->paused)
    return;
  sim_fault(h, w->now);
  h->paused = 1;
  w->live_epoch++;
}

void dmq_sim_resume(dmq_sim_t *w, int host) {
  sim_host_t *h = sim_host(w, host);
  if (h == NULL || !h->paused)
    return;
  h->paused = 0;
  w->live_epoch++;
  /* Deferred events run now, in their original order. */
  for (size_t i = 0; i < h->pq_n; i++) {
    h->pq[i].t = w->now;
    sim_heap_push(w, &h->pq[i]);
  }
  h->pq_n = 0;
  sim_after_call(w, h);
}

/* ---- links ---- */

void dmq_sim_set_link(dmq_sim_t *w, int from, int to, const dmq_sim_link_t *l) {
  if (from < 0 || to < 0 || l == NULL)
    return;
  uint64_t key = sim_pair(from, to);
  uint64_t *v = sim_map_find(&w->over, key);
  if (v != NULL) {
    w->links[*v] = *l;
    return;
  }
  if (w->nlinks == w->cap_links) {
    w->cap_links = w->cap_links ? w->cap_links * 2 : 16;
    w->links = sim_xrealloc(w->links, w->cap_links * sizeof(*w->links));
  }
  w->links[w->nlinks] = *l;
  sim_map_put(&w->over, key, w->nlinks++);
}

void dmq_sim_set_default_link(dmq_sim_t *w, const dmq_sim_link_t *l) {
  if (l != NULL)
    w->deflink = *l;
}

void dmq_sim_set_send_delay(dmq_sim_t *w, int host, uint32_t delay_ms) {
  sim_host_t *h = sim_host(w, host);
  if (h != NULL)
    h->send_delay = delay_ms;
}

void dmq_sim_block(dmq_sim_t *w, const int *a, size_t na, const int *b,
                   size_t nb) {
  for (size_t i = 0; i < na; i++) {
    sim_host_t *h = sim_host(w, a[i]);
    if (h == NULL)
      continue;
    for (size_t j = 0; j < nb; j++) {
      int to = b[j];
      if (to < 0 || to == a[i])
        continue;
      size_t word = (size_t)to / 64;
      if (word >= h->blk_words) {
        size_t nw = word + 1 > (size_t)(w->nhosts + 63) / 64
                        ? word + 1
                        : (size_t)(w->nhosts + 63) / 64;
        h->blk = sim_xrealloc(h->blk, nw * sizeof(uint64_t));
        memset(h->blk + h->blk_words, 0,
               (nw - h->blk_words) * sizeof(uint64_t));
        h->blk_words = nw;
      }
      h->blk[word] |= 1ULL << (to % 64);
      w->any_blocks = 1;
    }
  }
}

void dmq_sim_partition(dmq_sim_t *w, const int *a, size_t na, const int *b,
                       size_t nb) {
  dmq_sim_block(w, a, na, b, nb);
  dmq_sim_block(w, b, nb, a, na);
}

void dmq_sim_heal(dmq_sim_t *w) {
  for (int i = 0; i < w->nhosts; i++) {
    sim_host_t *h = w->hosts[i];
    free(h->blk);
    h->blk = NULL;
    h->blk_words = 0;
  }
  w->any_blocks = 0;
  w->deflink.blocked = 0;
  for (size_t i = 0; i < w->nlinks; i++)
    w->links[i].blocked = 0;
}

/* ---- running ---- */

void dmq_sim_run_until(dmq_sim_t *w, uint64_t t) {
  while (sim_next(w, t))
    ;
  if (t > w->now && t != UINT64_MAX)
    w->now = t;
}

void dmq_sim_run_for(dmq_sim_t *w, uint64_t ms) {
  dmq_sim_run_until(w, ms > UINT64_MAX - w->now ? UINT64_MAX : w->now + ms);
}

/* Run until pred holds or deadline. pred is checked at the start, after an
 * event batch when step_ms has passed since the last check or an event about
 * `watch` (a host index, -1 = none) was recorded, and at the deadline. */
static int sim_run_pred(dmq_sim_t *w, uint64_t deadline,
                        int (*pred)(dmq_sim_t *w, void *ud), void *ud,
                        uint64_t *at, uint64_t step_ms, int watch) {
  sim_host_t *wh = sim_host(w, watch);
  uint64_t last = w->now, seen = 0;
  if (wh != NULL)
    seen = w->about[watch];
  if (pred(w, ud))
    goto held;
  while (sim_next(w, deadline)) {
    int check = w->now - last >= step_ms;
    if (wh != NULL) {
      uint64_t c = w->about[watch];
      if (c != seen) {
        seen = c;
        check = 1;
      }
    }
    if (check) {
      last = w->now;
      if (pred(w, ud))
        goto held;
    }
  }
  if (deadline > w->now && deadline != UINT64_MAX)
    w->now = deadline;
  if (pred(w, ud))
    goto held;
  return 0;
held:
  if (at != NULL)
    *at = w->now;
  return 1;
}

int dmq_sim_run_until_pred(dmq_sim_t *w, uint64_t deadline,
                           int (*pred)(dmq_sim_t *w, void *ud), void *ud,
                           uint64_t *at) {
  return sim_run_pred(w, deadline, pred, ud, at, 0, -1);
}

/* ---- observations ---- */

int dmq_sim_state(dmq_sim_t *w, int observer, int subject) {
  sim_host_t *o = sim_host(w, observer), *s = sim_host(w, subject);
  if (o == NULL || s == NULL || o->node == NULL)
    return -1;
  dmq_member_info_t info;
  if (dmq_node_member(o->node, s->name, &info) != 0)
    return -1;
  return (int)info.state;
}

static int sim_pair_alive(dmq_sim_t *w, int o, int s) {
  return dmq_sim_state(w, o, s) == DMQ_MEMBER_ALIVE;
}

int dmq_sim_converged(dmq_sim_t *w) {
  size_t nlive = 0;
  for (int i = 0; i < w->nhosts; i++)
    nlive += sim_live(w->hosts[i]);
  /* Cheap filter: every observer must count at least nlive alive members. */
  for (int i = 0; i < w->nhosts; i++) {
    sim_host_t *h = w->hosts[i];
    if (sim_live(h) &&
        dmq_node_member_count(h->node, 1u << DMQ_MEMBER_ALIVE) < nlive)
      return 0;
  }
  /* The pair that failed last time most likely still fails. */
  if (sim_live(sim_host(w, w->conv_obs)) &&
      sim_live(sim_host(w, w->conv_subj)) && w->conv_obs != w->conv_subj &&
      !sim_pair_alive(w, w->conv_obs, w->conv_subj))
    return 0;
  for (int o = 0; o < w->nhosts; o++) {
    if (!sim_live(w->hosts[o]))
      continue;
    for (int s = 0; s < w->nhosts; s++) {
      if (s == o || !sim_live(w->hosts[s]))
        continue;
      if (!sim_pair_alive(w, o, s)) {
        w->conv_obs = o;
        w->conv_subj = s;
        return 0;
      }
    }
  }
  return 1;
}

size_t dmq_sim_event_count(const dmq_sim_t *w) {
  return w->nevents;
}
const dmq_sim_event_t *dmq_sim_events(const dmq_sim_t *w) {
  return w->events;
}
size_t dmq_sim_event_total(const dmq_sim_t *w) {
  return w->events_total;
}

size_t dmq_sim_false_deaths(const dmq_sim_t *w) {
  return w->false_deaths;
}

uint64_t dmq_sim_threaded_generations(const dmq_sim_t *w) {
  return w->threaded;
}

void dmq_sim_net_stats(const dmq_sim_t *w, dmq_sim_net_stats_t *out) {
  *out = w->net;
}

int dmq_sim_raw_send(dmq_sim_t *w, int from, int to, const void *buf,
                     size_t len) {
  sim_host_t *h = sim_host(w, from);
  if (h == NULL)
    return DMQ_EINVAL;
  char addr[32];
  snprintf(addr, sizeof(addr), "sim://%d", to);
  return sim_tr_send(&h->tr, addr, buf, len, NULL);
}

void dmq_sim_set_tap(dmq_sim_t *w,
                     void (*tap)(void *ud, int from, int to, const void *buf,
                                 size_t len, uint64_t t),
                     void *ud) {
  w->tap = tap;
  w->tap_ud = ud;
}

uint64_t dmq_sim_rand(dmq_sim_t *w) {
  return sim_rand(w);
}

dmq_transport_t *dmq_sim_transport(dmq_sim_t *w, int host) {
  sim_host_t *h = sim_host(w, host);
  return h != NULL ? &h->tr : NULL;
}

dmq_transport_t *dmq_sim_stream_transport(dmq_sim_t *w, int host) {
  sim_host_t *h = sim_host(w, host);
  return h != NULL && w->split ? &h->trs : NULL;
}

void dmq_sim_poke(dmq_sim_t *w, int host) {
  sim_host_t *h = sim_host(w, host);
  if (h != NULL)
    sim_after_call(w, h);
}

/* ---- spec helpers ---- */

static const char *sim_state_name(int st) {
  return st < 0 ? "unknown" : dmq_member_state_name((dmq_member_state_t)st);
}

static void sim_fail_head(dmq_sim_t *w) {
  if (w->quiet)
    fprintf(stderr, "sim: ");
  else
    fprintf(stderr, "sim(seed=0x%" PRIx64 "): ", w->seed);
  fprintf(stderr, "at t=%" PRIu64 ".%03us ", w->now / 1000,
          (unsigned)(w->now % 1000));
}

typedef struct sim_seen_arg {
  int subject;
  int state;
} sim_seen_arg_t;

static int sim_pred_seen(dmq_sim_t *w, void *ud) {
  sim_seen_arg_t *a = ud;
  for (int o = 0; o < w->nhosts; o++)
    if (o != a->subject && sim_live(w->hosts[o]) &&
        dmq_sim_state(w, o, a->subject) != a->state)
      return 0;
  return 1;
}

int dmq_sim_expect_seen_by_all(dmq_sim_t *w, int subject,
                               dmq_member_state_t state, uint64_t within_ms) {
  if (sim_host(w, subject) == NULL) {
    sim_fail_head(w);
    fprintf(stderr, "no host %d\n", subject);
    return 0;
  }
  sim_seen_arg_t a = {subject, (int)state};
  if (sim_run_pred(w, w->now + within_ms, sim_pred_seen, &a, NULL,
                   SIM_CHECK_STEP_MS, subject))
    return 1;
  sim_fail_head(w);
  fprintf(stderr, "host %d not seen %s by hosts", subject,
          sim_state_name((int)state));
  int listed = 0, total = 0;
  for (int o = 0; o < w->nhosts; o++) {
    if (o == subject || !sim_live(w->hosts[o]))
      continue;
    int st = dmq_sim_state(w, o, subject);
    if (st == (int)state)
      continue;
    if (listed < SIM_LIST_MAX)
      fprintf(stderr, "%s%d (%s)", listed ? "," : " ", o, sim_state_name(st));
    listed += listed < SIM_LIST_MAX;
    total++;
  }
  if (total > listed)
    fprintf(stderr, " and %d more", total - listed);
  fprintf(stderr, " after %" PRIu64 " ms\n", within_ms);
  return 0;
}

typedef struct sim_conv_arg {
  size_t nevents; /* event count at the last negative check */
  uint64_t live_epoch;
  int valid;
} sim_conv_arg_t;

/* Member states only change with a member event, and the set of live hosts
 * only through the API: if neither moved since a negative check, skip the
 * O(N) (or worse) work. */
static int sim_pred_converged(dmq_sim_t *w, void *ud) {
  sim_conv_arg_t *a = ud;
  if (a->valid && a->nevents == w->events_total &&
      a->live_epoch == w->live_epoch)
    return 0;
  if (dmq_sim_converged(w))
    return 1;
  a->valid = 1;
  a->nevents = w->events_total;
  a->live_epoch = w->live_epoch;
  return 0;
}

int dmq_sim_expect_converged(dmq_sim_t *w, uint64_t within_ms) {
  sim_conv_arg_t a = {0, 0, 0};
  /* The filter in dmq_sim_converged is O(N^2) member-table reads: check
   * less often in big worlds. */
  uint64_t step = SIM_CHECK_STEP_MS * (uint64_t)(1 + w->nhosts / 100);
  if (sim_run_pred(w, w->now + within_ms, sim_pred_converged, &a, NULL, step,
                   -1))
    return 1;
  sim_fail_head(w);
  fprintf(stderr, "not converged after %" PRIu64 " ms:", within_ms);
  int listed = 0, total = 0;
  for (int o = 0; o < w->nhosts; o++) {
    if (!sim_live(w->hosts[o]))
      continue;
    for (int s = 0; s < w->nhosts; s++) {
      if (s == o || !sim_live(w->hosts[s]))
        continue;
      int st = dmq_sim_state(w, o, s);
      if (st == DMQ_MEMBER_ALIVE)
        continue;
      if (listed < SIM_LIST_MAX)
        fprintf(stderr, "%s host %d sees %d %s", listed ? "," : "", o, s,
                sim_state_name(st));
      listed += listed < SIM_LIST_MAX;
      total++;
    }
  }
  if (total > listed)
    fprintf(stderr, " and %d more", total - listed);
  fprintf(stderr, "\n");
  return 0;
}

/* Member events that put a member in `state`. */
static int sim_ev_means(dmq_member_event_t ev, int state) {
  switch (state) {
  case DMQ_MEMBER_ALIVE:
    return ev == DMQ_EVENT_JOINED || ev == DMQ_EVENT_ALIVE_AGAIN;
  case DMQ_MEMBER_SUSPECT:
    return ev == DMQ_EVENT_SUSPECT;
  case DMQ_MEMBER_DEAD:
    return ev == DMQ_EVENT_DEAD;
  case DMQ_MEMBER_LEFT:
    return ev == DMQ_EVENT_LEFT;
  default:
    return 0;
  }
}

/* First event at index >= from about subject that means state, by observer
 * (-1 = anyone); returns its index or -1. */
static long sim_find_event(const dmq_sim_t *w, size_t from, int observer,
                           int subject, int state) {
  for (size_t i = from; i < w->nevents; i++) {
    const dmq_sim_event_t *e = &w->events[i];
    if (e->subject == subject && e->observer != subject &&
        (observer < 0 || e->observer == observer) && sim_ev_means(e->ev, state))
      return (long)i;
  }
  return -1;
}

/* Some live host (or `observer`) other than subject sees subject in state. */
static int sim_anyone_sees(dmq_sim_t *w, int observer, int subject, int state,
                           int *who) {
  for (int o = 0; o < w->nhosts; o++) {
    if (o == subject || (observer >= 0 && o != observer) ||
        w->hosts[o]->node == NULL)
      continue;
    if (dmq_sim_state(w, o, subject) == state) {
      *who = o;
      return 1;
    }
  }
  return 0;
}

typedef struct sim_win_arg {
  int observer, subject, state;
  size_t from; /* event index where the phase began */
  long hit;
} sim_win_arg_t;

static int sim_pred_event(dmq_sim_t *w, void *ud) {
  sim_win_arg_t *a = ud;
  a->hit = sim_find_event(w, a->from, a->observer, a->subject, a->state);
  if (a->hit >= 0)
    return 1;
  a->from = w->nevents;
  if (a->observer >= 0)
    return dmq_sim_state(w, a->observer, a->subject) == a->state;
  return 0;
}

int dmq_sim_expect_state_window(dmq_sim_t *w, int observer, int subject,
                                dmq_member_state_t state,
                                uint64_t not_before_ms, uint64_t by_ms) {
  uint64_t start = w->now;
  int who = -1;
  if (sim_host(w, subject) == NULL || by_ms < not_before_ms) {
    sim_fail_head(w);
    fprintf(stderr, "bad state window (host %d, %" PRIu64 "..%" PRIu64 ")\n",
            subject, not_before_ms, by_ms);
    return 0;
  }
  if (not_before_ms > 0) {
    if (sim_anyone_sees(w, -1, subject, (int)state, &who)) {
      sim_fail_head(w);
      fprintf(stderr, "host %d already sees host %d %s\n", who, subject,
              sim_state_name((int)state));
      return 0;
    }
    sim_win_arg_t a = {-1, subject, (int)state, w->nevents, -1};
    if (sim_run_pred(w, start + not_before_ms - 1, sim_pred_event, &a, NULL,
                     UINT64_MAX, subject) &&
        a.hit >= 0) {
      const dmq_sim_event_t *e = &w->events[a.hit];
      sim_fail_head(w);
      fprintf(stderr,
              "host %d saw host %d %s (%s) at t=%" PRIu64 " ms, %" PRIu64
              " ms after the window opened, before %" PRIu64 " ms\n",
              e->observer, subject, sim_state_name((int)state),
              dmq_member_event_name(e->ev), e->t, e->t - start, not_before_ms);
      return 0;
    }
  }
  sim_win_arg_t b = {observer, subject, (int)state, w->nevents, -1};
  if (sim_anyone_sees(w, observer, subject, (int)state, &who))
    return 1;
  if (sim_run_pred(w, start + by_ms, sim_pred_event, &b, NULL,
                   observer >= 0 ? 0 : UINT64_MAX, subject))
    return 1;
  sim_fail_head(w);
  if (observer >= 0)
    fprintf(stderr,
            "host %d sees host %d %s, not %s, %" PRIu64 " ms after "
            "the window opened\n",
            observer, subject,
            sim_state_name(dmq_sim_state(w, observer, subject)),
            sim_state_name((int)state), by_ms);
  else
    fprintf(stderr,
            "no host sees host %d %s %" PRIu64 " ms after the "
            "window opened\n",
            subject, sim_state_name((int)state), by_ms);
  return 0;
}

int dmq_sim_expect_never_dead(dmq_sim_t *w, int subject, uint64_t ms) {
  int who = -1;
  if (sim_anyone_sees(w, -1, subject, DMQ_MEMBER_DEAD, &who)) {
    sim_fail_head(w);
    fprintf(stderr, "host %d already sees host %d dead\n", who, subject);
    return 0;
  }
  uint64_t start = w->now;
  size_t from = w->nevents;
  dmq_sim_run_for(w, ms);
  long i = sim_find_event(w, from, -1, subject, DMQ_MEMBER_DEAD);
  if (i < 0)
    return 1;
  const dmq_sim_event_t *e = &w->events[i];
  sim_fail_head(w);
  fprintf(stderr,
          "host %d declared host %d dead at t=%" PRIu64 " ms (%" PRIu64
          " ms into a %" PRIu64 " ms window)\n",
          e->observer, subject, e->t, e->t - start, ms);
  return 0;
}
