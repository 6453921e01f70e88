/* The allocation-failure loop (docs/testing.md, "Allocation failure"),
 * shared by tests/unit/test_allocfail_*.c: a scenario runs on four nodes of
 * an in-memory network (memnet.h) with fake time; node 0's allocator fails
 * its k-th allocation, for every k from 1 until a run completes with no
 * failure injected. For each k:
 *   - nothing crashes (ASan/UBSan in the asan suite);
 *   - every node frees every block and every byte it allocated (balance of
 *     blocks and of bytes, also for the peers, whose allocators never fail);
 *   - every reliable send, request and broadcast any node accepted ends in
 *     exactly one outcome (never two; the last ones at delete);
 *   - the failure surfaces: a call on node 0 returned an error, or one of
 *     node 0's failure counters ended different from the run without
 *     failure (drops by reason, events_lost, delivery's drop, expiry and
 *     refusal counters).
 * Sealed: with af_keyed set (af_loop_sealed), every node has the cluster
 * label AF_LABEL and the key af_key and runs in DMQ_SEAL_REQUIRED mode, so
 * every packet is sealed and opened: the same loop then also goes through
 * the opening buffer and the replay state (allocated with the node's
 * hooks). The key storage itself is sodium_malloc'd (libsodium's guarded
 * allocator, outside dmq_alloc_t by design: docs/security.md), so those
 * allocations are not in the loop.
 * Header-only: each test_allocfail_*.c is its own program.
 */
#ifndef DMQ_TESTS_ALLOCFAIL_H
#define DMQ_TESTS_ALLOCFAIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <dmq/delivery.h>
#include <dmq/dmq.h>

#include "counting_alloc.h"
#include "memnet.h"

#define AF_NODES 4
#define AF_MAX_SENT 256

/* Sealed runs (see above): set by af_loop_sealed for its runs. */
static int af_keyed;
#define AF_LABEL "af"
static const uint8_t af_key[DMQ_KEY_SIZE] = {
    0x61, 0x6c, 0x6c, 0x6f, 0x63, 0x66, 0x61, 0x69, 0x6c, 0x2d, 0x6b,
    0x65, 0x79, 0x2d, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37,
    0x38, 0x39, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68};

static inline void af_key_config(dmq_config_t *cfg, int idx, void *ud) {
  (void)idx;
  (void)ud;
  cfg->label = AF_LABEL;
  cfg->seal_mode = DMQ_SEAL_REQUIRED;
}

/* Each node's allocator (counting_alloc.h): node 0's fails its fail_at-th
 * call. */
typedef counting_t af_alloc_t;

typedef struct af_sent {
  int node;
  dmq_msg_id_t id;
  int outcomes;
} af_sent_t;

/* Node 0's failure counters, compared with the run without failure. */
typedef struct af_counters {
  uint64_t drops[DMQ_DROP_SLOTS];
  uint64_t events_lost;
  uint64_t dropped_be, dropped_no_channel, refused_full, reassembly_drops;
  uint64_t rx_overflow, rx_expired, expired, dead, bcast_refused;
} af_counters_t;

typedef struct af_run {
  memnet_t net;
  memnet_tp_t tp[AF_NODES];
  dmq_node_t *node[AF_NODES];
  dmq_channel_t *ch[AF_NODES];
  af_alloc_t alloc[AF_NODES];
  uint64_t now;
  int errors;    /* calls on node 0 that returned an error */
  int first_err; /* the first of them */
  af_sent_t sent[AF_MAX_SENT];
  size_t nsent;
  af_counters_t counters; /* node 0's, at the end (before delete) */
  dmq_stats_t st0;        /* node 0's stats then (zero if it is gone) */
  dmq_delivery_stats_t ds0;
} af_run_t;

static inline af_sent_t *af_sent(af_run_t *r, int node, dmq_msg_id_t id) {
  for (size_t i = 0; i < r->nsent; i++)
    if (r->sent[i].node == node && r->sent[i].id == id)
      return &r->sent[i];
  assert_true(r->nsent < AF_MAX_SENT);
  af_sent_t *s = &r->sent[r->nsent++];
  s->node = node;
  s->id = id;
  s->outcomes = 0;
  return s;
}

static inline int af_index(af_run_t *r, dmq_node_t *n) {
  for (int i = 0; i < AF_NODES; i++)
    if (r->node[i] == n)
      return i;
  fail_msg("outcome from a node that is not in the run");
  return -1;
}

static inline void af_outcome(dmq_node_t *node, const dmq_outcome_info_t *o,
                              void *ud) {
  af_run_t *r = ud;
  af_sent_t *s = af_sent(r, af_index(r, node), o->id);
  assert_int_equal(++s->outcomes, 1);
}

static inline void af_receive(dmq_node_t *node, dmq_channel_t *ch,
                              const dmq_message_t *msg, void *ud) {
  af_run_t *r = ud;
  (void)ch;
  if (msg->request != NULL) {
    dmq_reply_handle_t h = *msg->request;
    int rc = dmq_reply(node, &h, "ok", 2, r->now);
    if (node == r->node[0] && rc != 0 && rc != DMQ_ENOENT) {
      r->errors++;
      if (r->first_err == 0)
        r->first_err = rc;
    }
  }
}

/* A call on node i returned rc: errors on node 0 are how a failure
 * surfaces; peers may fail only as a consequence (node 0 not a member). */
static inline void af_note(af_run_t *r, int i, int rc) {
  if (rc == 0 || i != 0)
    return;
  r->errors++;
  if (r->first_err == 0)
    r->first_err = rc;
}

static inline void af_run_until(af_run_t *r, uint64_t until) {
  memnet_run(&r->net, r->node, r->tp, AF_NODES, &r->now, until);
}

/* Node i: a memnet node with its own allocator, channel "c" open,
 * started. Returns 0, or (node 0 only) the error that stopped it: the node
 * is then deleted and left NULL. */
static inline int af_node(af_run_t *r, int i) {
  dmq_alloc_t a;
  assert_int_equal(dmq_alloc_init(&a), 0);
  a.malloc_fn = c_malloc;
  a.realloc_fn = c_realloc;
  a.free_fn = c_free;
  a.ud = &r->alloc[i];
  if (af_keyed)
    r->net.on_config = af_key_config;
  int rc = memnet_node_new(&r->net, &r->tp[i], i, &a, &r->node[i]);
  if (rc == 0 && af_keyed)
    rc = dmq_node_key_add(r->node[i], af_key, DMQ_KEY_SIZE, 1, NULL);
  if (rc == 0)
    rc = dmq_channel_open(r->node[i], "c", af_receive, r, &r->ch[i]);
  if (rc == 0)
    rc = dmq_node_start(r->node[i], r->now);
  if (rc != 0) {
    assert_int_equal(i, 0); /* the peers' allocators never fail */
    af_note(r, 0, rc);
    assert_int_equal(dmq_node_delete(r->node[0]), 0);
    r->node[0] = NULL;
  }
  return rc;
}

static inline void af_send(af_run_t *r, int from, int to, size_t len,
                           int reliable) {
  static unsigned char payload[8000];
  char dest[8];
  dmq_send_opts_t o;
  dmq_msg_id_t id = 0;
  if (r->node[from] == NULL)
    return;
  snprintf(dest, sizeof dest, "n%d", to);
  assert_int_equal(dmq_send_opts_init(&o), 0);
  o.mode = reliable ? DMQ_SEND_RELIABLE : DMQ_SEND_BEST_EFFORT;
  o.cb = af_outcome;
  o.user_data = r;
  memset(payload, 'a' + from, sizeof payload);
  int rc = dmq_send(r->node[from], dest, "c", payload, len, &o, r->now, &id);
  af_note(r, from, rc);
  if (rc == 0 && reliable)
    (void)af_sent(r, from, id);
}

static inline void af_request(af_run_t *r, int from, int to) {
  char dest[8];
  dmq_msg_id_t id = 0;
  if (r->node[from] == NULL)
    return;
  snprintf(dest, sizeof dest, "n%d", to);
  int rc = dmq_request(r->node[from], dest, "c", "q", 1, 3000, af_outcome, r,
                       r->now, &id);
  af_note(r, from, rc);
  if (rc == 0)
    (void)af_sent(r, from, id);
}

static inline void af_broadcast(af_run_t *r, int from, size_t len) {
  static unsigned char payload[4000];
  dmq_send_opts_t o;
  dmq_msg_id_t id = 0;
  if (r->node[from] == NULL)
    return;
  assert_int_equal(dmq_send_opts_init(&o), 0);
  o.mode = DMQ_SEND_RELIABLE;
  o.cb = af_outcome;
  o.user_data = r;
  int rc = dmq_broadcast(r->node[from], "c", payload, len, &o, r->now, &id);
  af_note(r, from, rc);
  if (rc == 0)
    (void)af_sent(r, from, id);
}

/* The four nodes, node 0 with the failing allocator; n0, n2 and n3 join
 * through n1 (push/pull). Returns 0, or node 0's error (it is gone). */
static inline int af_start(af_run_t *r, long fail_at) {
  memset(r, 0, sizeof *r);
  memnet_init(&r->net, 4096);
  r->alloc[0].fail_at = fail_at;
  for (int i = 1; i < AF_NODES; i++)
    assert_int_equal(af_node(r, i), 0);
  int rc = af_node(r, 0);
  const char *seed = "mem://1";
  for (int i = 0; i < AF_NODES; i++)
    if (i != 1 && r->node[i] != NULL)
      af_note(r, i, dmq_node_join(r->node[i], &seed, 1, r->now));
  return rc;
}

static inline void af_snapshot(af_run_t *r) {
  memset(&r->counters, 0, sizeof r->counters);
  memset(&r->st0, 0, sizeof r->st0);
  memset(&r->ds0, 0, sizeof r->ds0);
  if (r->node[0] == NULL)
    return;
  dmq_stats_t st;
  dmq_delivery_stats_t ds;
  assert_int_equal(dmq_node_stats(r->node[0], &st), 0);
  assert_int_equal(dmq_delivery_stats(r->node[0], &ds), 0);
  r->st0 = st;
  r->ds0 = ds;
  if (af_keyed) { /* still keyed and required, whatever failed */
    assert_int_equal(dmq_node_seal_mode(r->node[0]), DMQ_SEAL_REQUIRED);
    assert_int_equal(dmq_node_keys(r->node[0], NULL, 0, NULL), 1);
  }
  af_counters_t *c = &r->counters;
  memcpy(c->drops, st.drops, sizeof c->drops);
  c->events_lost = st.events_lost;
  c->dropped_be = ds.dropped_be;
  c->dropped_no_channel = ds.dropped_no_channel;
  c->refused_full = ds.refused_full;
  c->reassembly_drops = ds.reassembly_drops;
  c->rx_overflow = ds.rx_overflow;
  c->rx_expired = ds.rx_expired;
  c->expired = ds.expired;
  c->dead = ds.dead;
  c->bcast_refused = ds.bcast_refused;
}

/* Delete every node (pending sends end with SHUTDOWN) and check the
 * outcomes and the allocators' balance. */
static inline void af_finish(af_run_t *r, long k) {
  af_snapshot(r);
  for (int i = 0; i < AF_NODES; i++) {
    assert_int_equal(dmq_node_delete(r->node[i]), 0);
    r->node[i] = NULL;
  }
  memnet_free(&r->net);
  for (size_t i = 0; i < r->nsent; i++)
    if (r->sent[i].outcomes != 1)
      fail_msg("k=%ld: send %zu of node %d had %d outcomes", k, i,
               r->sent[i].node, r->sent[i].outcomes);
  for (int i = 0; i < AF_NODES; i++)
    if (r->alloc[i].live != 0 || r->alloc[i].bytes != 0)
      fail_msg("k=%ld: node %d leaked %ld blocks, %zu bytes", k, i,
               r->alloc[i].live, r->alloc[i].bytes);
}

/* A scenario: af_start(r, fail_at), then its steps. */
typedef void (*af_scenario_fn)(af_run_t *r, long fail_at);

/* Run scenario for k = 0 (no failure: the reference) and then every k
 * until a run injects no failure. Prints a summary line. */
/* Returns the reference run (its node 0 stats), for the scenario's own
 * checks that it did what it says. */
static inline const af_run_t *af_loop(const char *what,
                                      af_scenario_fn scenario) {
  static af_run_t ref, r;
  scenario(&ref, 0);
  af_finish(&ref, 0);
  assert_int_equal(ref.errors, 0);
  assert_int_equal(ref.counters.drops[DMQ_DROP_NOMEM], 0);
  long total = ref.alloc[0].calls;
  long by_error = 0, by_nomem = 0, by_other = 0, in_delete = 0, silent = 0;
  long k;
  for (k = 1;; k++) {
    scenario(&r, k);
    long failed_before_delete = r.alloc[0].failed;
    af_finish(&r, k); /* no leak, one outcome per send (also at delete) */
    if (r.alloc[0].failed == 0)
      break; /* the scenario made fewer than k allocations */
    if (failed_before_delete == 0) {
      in_delete++; /* nothing can report it: no crash, no leak is all */
    } else if (r.errors > 0) {
      by_error++;
    } else if (r.counters.drops[DMQ_DROP_NOMEM] > 0) {
      by_nomem++;
    } else if (memcmp(&r.counters, &ref.counters, sizeof r.counters) != 0) {
      by_other++;
    } else {
      printf("%s: k=%ld: allocation failure surfaced neither as an error nor "
             "as a counter\n",
             what, k);
      silent++;
    }
  }
  printf("%s: node 0 made %ld allocations; k=1..%ld each failed once: %ld "
         "returned an error, %ld counted as DMQ_DROP_NOMEM, %ld moved another "
         "failure counter, %ld inside delete, %ld silent\n",
         what, total, k - 1, by_error, by_nomem, by_other, in_delete, silent);
  assert_int_equal(k - 1, total); /* every allocation was failed once */
  assert_int_equal(silent, 0);
  return &ref;
}

/* af_loop with every node keyed and in DMQ_SEAL_REQUIRED mode. The
 * reference run must have been sealed throughout: node 0 kept its key and
 * mode and dropped nothing as plaintext, label, authentication or replay
 * (a plain packet would have been a PLAINTEXT drop). */
static inline const af_run_t *af_loop_sealed(const char *what,
                                             af_scenario_fn scenario) {
  af_keyed = 1;
  const af_run_t *ref = af_loop(what, scenario);
  af_keyed = 0;
  const dmq_stats_t *st = &ref->st0;
  assert_int_equal(st->drops[DMQ_DROP_PLAINTEXT], 0);
  assert_int_equal(st->drops[DMQ_DROP_LABEL], 0);
  assert_int_equal(st->drops[DMQ_DROP_AUTH], 0);
  assert_int_equal(st->drops[DMQ_DROP_KEY_UNKNOWN], 0);
  assert_int_equal(st->drops[DMQ_DROP_REPLAY], 0);
  assert_true(st->pkts_in > 0);
  return ref;
}

#endif
