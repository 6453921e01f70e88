/* Unit tests for the node API: errors, profiles, config validation,
 * allocator hooks, allocation failure at every step, callback rules and a
 * two-node exchange over an in-memory transport (no simulator). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <dmq/dmq.h>

#include "counting_alloc.h"
#include "memnet.h"

#include "wire.h"

/* ---- in-memory transport: memnet.h ---- */

#define Q_MAX 4096
/* packets up to this size (the old fixed packet buffer) */
#define PKT_MAX 70000

/* ---- counting allocator with failure injection: counting_alloc.h ---- */

/* ---- helpers ---- */

typedef struct pair {
  memnet_t net;
  memnet_tp_t tp[2];
  dmq_node_t *node[2];
  uint64_t now;
  int events[2][8];
} pair_t;

static void on_member(dmq_node_t *node, dmq_member_event_t ev,
                      const dmq_member_info_t *m, void *ud) {
  pair_t *p = ud;
  int i = node == p->node[0] ? 0 : 1;
  p->events[i][ev]++;
  assert_non_null(m->name);
  /* queries are allowed inside callbacks; feeding input is not */
  dmq_member_info_t info;
  assert_int_equal(dmq_node_member(node, m->name, &info),
                   ev == DMQ_EVENT_REAPED ? DMQ_ENOENT : 0);
  assert_int_equal(dmq_node_tick(node, p->now), DMQ_EBUSY);
  assert_int_equal(dmq_node_recv(node, NULL, NULL, "x", 1, p->now), DMQ_EBUSY);
}

static int pair_init(pair_t *p, const dmq_alloc_t *alloc) {
  memset(p, 0, sizeof(*p));
  memnet_init(&p->net, Q_MAX);
  p->net.max_len = PKT_MAX;
  for (int i = 0; i < 2; i++) {
    int rc = memnet_node_new(&p->net, &p->tp[i], i, alloc, &p->node[i]);
    if (rc != 0)
      return rc;
    dmq_node_set_member_cb(p->node[i], on_member, p);
    rc = dmq_node_start(p->node[i], 0);
    if (rc != 0)
      return rc;
  }
  return 0;
}

static void pair_free(pair_t *p) {
  for (int i = 0; i < 2; i++)
    dmq_node_delete(p->node[i]);
  memnet_free(&p->net);
}

/* Deliver packets and fire deadlines until `until`. */
static void pair_run(pair_t *p, uint64_t until) {
  memnet_run(&p->net, p->node, p->tp, 2, &p->now, until);
}

/* n1 joins through n0; both then run until `until`. */
static void pair_join(pair_t *p, uint64_t until) {
  const char *seed = "mem://0";
  assert_int_equal(dmq_node_join(p->node[1], &seed, 1, 0), 0);
  pair_run(p, until);
}

/* ---- tests ---- */

static void test_errors(void **state) {
  (void)state;
  assert_string_equal(dmq_err_name(DMQ_EINVAL), "DMQ_EINVAL");
  assert_string_equal(dmq_strerror(DMQ_OK), "success");
  assert_string_equal(dmq_err_name(-9999), "DMQ_UNKNOWN");
  assert_string_equal(dmq_strerror(12345), "unknown error");
  /* every code in the list has distinct name and description */
  for (int e = 0; e >= DMQ_ELIMIT; e--) {
    assert_string_not_equal(dmq_err_name(e), "DMQ_UNKNOWN");
    assert_string_not_equal(dmq_strerror(e), "unknown error");
  }
  assert_int_equal(dmq_version(), DMQ_VERSION_HEX);
  assert_non_null(strchr(dmq_version_string(), '.'));
}

static void test_profiles(void **state) {
  (void)state;
  dmq_config_t c;
  assert_int_equal(dmq_config_init(&c, DMQ_PROFILE_LAN), 0);
  assert_int_equal(c.probe_interval_ms, 1000);
  assert_int_equal(c.probe_timeout_ms, 500);
  assert_int_equal(c.indirect_checks, 3);
  assert_int_equal(c.suspicion_mult, 4);
  assert_int_equal(c.suspicion_max_mult, 6);
  assert_int_equal(c.retransmit_mult, 4);
  assert_int_equal(c.gossip_interval_ms, 200);
  assert_int_equal(c.gossip_nodes, 3);
  assert_int_equal(c.pushpull_interval_ms, 30000);
  assert_int_equal(dmq_config_init(&c, DMQ_PROFILE_FAST), 0);
  assert_int_equal(c.probe_interval_ms, 200);
  assert_int_equal(c.probe_timeout_ms, 100);
  assert_int_equal(c.gossip_interval_ms, 50);
  assert_int_equal(dmq_config_init(&c, (dmq_profile_t)99), DMQ_EINVAL);
  assert_int_equal(dmq_config_init(NULL, DMQ_PROFILE_LAN), DMQ_EINVAL);
  dmq_profile_t p;
  assert_int_equal(dmq_profile_from_name("wan", &p), 0);
  assert_int_equal(p, DMQ_PROFILE_WAN);
  assert_int_equal(dmq_profile_from_name("local", &p), 0);
  assert_int_equal(dmq_profile_from_name("nope", &p), DMQ_ENOENT);
  assert_string_equal(dmq_profile_name(DMQ_PROFILE_FAST), "fast");
}

static void test_config_validation(void **state) {
  (void)state;
  dmq_node_t *n = NULL;
  dmq_config_t c;
  dmq_config_init(&c, DMQ_PROFILE_LAN);
  assert_int_equal(dmq_node_new(&c, NULL, &n), DMQ_EINVAL); /* no name */
  c.name = "a";
  assert_int_equal(dmq_node_new(&c, NULL, &n), DMQ_EINVAL); /* no addr */
  c.advertise_addr = "mem://0";
  assert_int_equal(dmq_node_new(&c, NULL, &n), DMQ_EINVAL); /* gen 0 */
  c.generation = 7;
  c.name = "has space";
  assert_int_equal(dmq_node_new(&c, NULL, &n), DMQ_EINVAL);
  c.name = "a";
  c.meta_len = DMQ_MAX_META + 1;
  c.meta = "x";
  assert_int_equal(dmq_node_new(&c, NULL, &n), DMQ_EINVAL);
  c.meta_len = 0;
  c.probe_timeout_ms = c.probe_interval_ms + 1;
  assert_int_equal(dmq_node_new(&c, NULL, &n), DMQ_EINVAL);
  c.probe_timeout_ms = 500;
  dmq_alloc_t bad;
  dmq_alloc_init(&bad);
  bad.malloc_fn = c_malloc;
  bad.free_fn = c_free;
  assert_int_equal(dmq_node_new(&c, &bad, &n), DMQ_EINVAL);
  assert_null(n);
  assert_int_equal(dmq_node_new(&c, NULL, &n), 0);
  assert_non_null(n);
  assert_string_equal(dmq_node_name(n), "a");
  assert_int_equal(dmq_node_tick(n, 0), DMQ_ESTATE); /* not started */
  assert_int_equal(dmq_node_join(n, NULL, 0, 0), DMQ_ESTATE);
  assert_int_equal(dmq_node_start(n, 0), 0);
  assert_int_equal(dmq_node_start(n, 0), DMQ_ESTATE);
  char big[DMQ_MAX_META + 1] = {0};
  assert_int_equal(dmq_node_set_meta(n, big, sizeof(big), 0), DMQ_ETOOBIG);
  assert_int_equal(dmq_node_set_meta(n, NULL, 3, 0), DMQ_EINVAL);
  dmq_member_info_t info;
  assert_int_equal(dmq_node_member(n, "a", &info), 0);
  assert_true(info.is_self);
  assert_int_equal(info.state, DMQ_MEMBER_ALIVE);
  assert_int_equal(dmq_node_member(n, "zz", &info), DMQ_ENOENT);
  assert_int_equal(dmq_node_member(n, "", &info), DMQ_EINVAL);
  assert_int_equal(dmq_node_member_count(n, DMQ_MASK_ALL), 1);
  /* a packet from nowhere to a node with no transport: counted, no crash */
  assert_int_equal(dmq_node_recv(n, NULL, NULL, "junk", 4, 1), 0);
  dmq_stats_t st;
  dmq_node_stats(n, &st);
  assert_int_equal(st.drops[DMQ_DROP_MAGIC], 1);
  assert_int_equal(dmq_node_leave(n, 2), 0);
  assert_int_equal(dmq_node_leave(n, 2), DMQ_ESTATE);
  dmq_node_delete(n);
  dmq_node_delete(NULL);
}

static void test_transport_registry(void **state) {
  (void)state;
  pair_t p;
  assert_int_equal(pair_init(&p, NULL), 0);
  memnet_tp_t extra = p.tp[0];
  assert_int_equal(dmq_node_add_transport(p.node[0], &extra.t), DMQ_EEXIST);
  dmq_transport_ops_t noscheme = memnet_ops;
  noscheme.scheme = "";
  extra.t.ops = &noscheme;
  assert_int_equal(dmq_node_add_transport(p.node[0], &extra.t), DMQ_EINVAL);
  assert_int_equal(dmq_node_add_transport(NULL, &extra.t), DMQ_EINVAL);
  /* at most 8 transports: the 9th is a configured limit, not memory */
  static const char *const schemes[] = {"s1", "s2", "s3", "s4",
                                        "s5", "s6", "s7", "s8"};
  dmq_transport_ops_t ops[8];
  memnet_tp_t more[8];
  for (int i = 0; i < 8; i++) {
    ops[i] = memnet_ops;
    ops[i].scheme = schemes[i];
    more[i] = p.tp[0];
    more[i].t.ops = &ops[i];
    assert_int_equal(dmq_node_add_transport(p.node[0], &more[i].t),
                     i < 7 ? 0 : DMQ_ELIMIT);
  }
  /* at most DMQ_MAX_SEEDS seeds */
  const char *seeds[DMQ_MAX_SEEDS + 1];
  for (int i = 0; i <= DMQ_MAX_SEEDS; i++)
    seeds[i] = "mem://0";
  assert_int_equal(dmq_node_set_seeds(p.node[1], seeds, DMQ_MAX_SEEDS + 1),
                   DMQ_ELIMIT);
  assert_int_equal(dmq_node_join(p.node[1], seeds, DMQ_MAX_SEEDS + 1, 0),
                   DMQ_ELIMIT);
  assert_int_equal(dmq_node_set_seeds(p.node[1], seeds, DMQ_MAX_SEEDS), 0);
  pair_free(&p);
}

static void test_pair_join_and_leave(void **state) {
  (void)state;
  pair_t p;
  assert_int_equal(pair_init(&p, NULL), 0);
  pair_join(&p, 2000);
  dmq_member_info_t info;
  assert_int_equal(dmq_node_member(p.node[0], "n1", &info), 0);
  assert_int_equal(info.state, DMQ_MEMBER_ALIVE);
  assert_int_equal(dmq_node_member(p.node[1], "n0", &info), 0);
  assert_int_equal(info.state, DMQ_MEMBER_ALIVE);
  assert_int_equal(p.events[0][DMQ_EVENT_JOINED], 1);
  assert_int_equal(p.events[1][DMQ_EVENT_JOINED], 1);
  /* metadata reaches the other side */
  assert_int_equal(dmq_node_set_meta(p.node[0], "role=db", 7, p.now), 0);
  pair_run(&p, p.now + 2000);
  assert_int_equal(dmq_node_member(p.node[1], "n0", &info), 0);
  assert_int_equal(info.meta_len, 7);
  assert_memory_equal(info.meta, "role=db", 7);
  assert_int_equal(p.events[1][DMQ_EVENT_META_UPDATED], 1);
  /* probes flow and are answered: nobody suspected */
  pair_run(&p, p.now + 20000);
  assert_int_equal(p.events[0][DMQ_EVENT_SUSPECT], 0);
  assert_int_equal(p.events[1][DMQ_EVENT_SUSPECT], 0);
  dmq_stats_t st;
  dmq_node_stats(p.node[0], &st);
  assert_true(st.probes > 10);
  assert_true(st.probe_direct_ok > 10);
  assert_int_equal(st.members[DMQ_MEMBER_ALIVE], 2);
  /* leave: seen as left, not dead */
  assert_int_equal(dmq_node_leave(p.node[1], p.now), 0);
  pair_run(&p, p.now + 5000);
  assert_true(dmq_node_left_flushed(p.node[1]));
  assert_int_equal(dmq_node_member(p.node[0], "n1", &info), 0);
  assert_int_equal(info.state, DMQ_MEMBER_LEFT);
  assert_int_equal(p.events[0][DMQ_EVENT_LEFT], 1);
  assert_int_equal(p.events[0][DMQ_EVENT_DEAD], 0);
  pair_free(&p);
}

/* A graceful leave goes straight to every live member (up to 64), not only
 * to the few of a gossip round (3 here): the five others see it before any
 * gossip tick. */
static void test_leave_told_directly(void **state) {
  (void)state;
  enum { N = 6 };
  memnet_t net;
  memnet_tp_t tp[N];
  dmq_node_t *node[N];
  memnet_init(&net, 256);
  for (int i = 0; i < N; i++) {
    assert_int_equal(memnet_node_new(&net, &tp[i], i, NULL, &node[i]), 0);
    assert_int_equal(dmq_node_start(node[i], 0), 0);
  }
  /* every node learns all six from a push/pull of a third party */
  uint8_t buf[2048];
  dmq__enc_t e;
  assert_int_equal(dmq__enc_begin(&e, buf, sizeof(buf), NULL, 0, "zz", 2), 0);
  assert_int_equal(dmq__enc_pushpull_begin(&e, 0, N), 0);
  char names[N][8], addrs[N][16];
  for (int i = 0; i < N; i++) {
    snprintf(names[i], sizeof names[i], "n%d", i);
    snprintf(addrs[i], sizeof addrs[i], "mem://%d", i);
    dmq__record_t r = {{names[i], strlen(names[i])},
                       {addrs[i], strlen(addrs[i])},
                       {NULL, 0},
                       0,
                       1,
                       DMQ_MEMBER_ALIVE,
                       {0, NULL, NULL, 0}};
    assert_int_equal(dmq__enc_record(&e, &r), 0);
  }
  size_t len = dmq__enc_end(&e);
  for (int i = 0; i < N; i++)
    assert_int_equal(dmq_node_recv(node[i], &tp[i].t, "mem://9", buf, len, 1),
                     0);
  memnet_free(&net); /* the answers to "zz" */
  memnet_init(&net, 256);
  for (int i = 0; i < N; i++)
    assert_int_equal(dmq_node_member_count(node[i], DMQ_MASK_ALL), N);
  assert_int_equal(dmq_node_leave(node[N - 1], 2), 0);
  memnet_deliver(&net, node, tp, N, 2);
  for (int i = 0; i < N - 1; i++) {
    dmq_member_info_t info;
    assert_int_equal(dmq_node_member(node[i], "n5", &info), 0);
    assert_int_equal(info.state, DMQ_MEMBER_LEFT);
  }
  for (int i = 0; i < N; i++)
    dmq_node_delete(node[i]);
  memnet_free(&net);
}

/* A third party ("zz", from mem://9) tells n0 that n1 is suspect at
 * incarnation inc. */
static void send_suspect(pair_t *p, const dmq_member_info_t *info,
                         uint64_t inc) {
  uint8_t buf[256];
  dmq__enc_t e;
  assert_int_equal(dmq__enc_begin(&e, buf, sizeof(buf), NULL, 0, "zz", 2), 0);
  assert_int_equal(dmq__enc_suspect(&e, (dmq__slice_t){"n1", 2}, inc,
                                    info->generation, (dmq__slice_t){"zz", 2}),
                   0);
  size_t len = dmq__enc_end(&e);
  dmq_node_recv(p->node[0], &p->tp[0].t, "mem://9", buf, len, p->now);
}

/* A member that missed a refutation keeps spreading the old suspicion
 * (buddy system: it tells the suspect on every probe). The suspect,
 * already at a higher incarnation, must answer by re-announcing itself;
 * ignoring the stale rumor let the suspicion run out into a false DEAD
 * (the multi-host test caught it after a partition healed). */
static void test_stale_suspicion_answered(void **state) {
  (void)state;
  pair_t p;
  assert_int_equal(pair_init(&p, NULL), 0);
  pair_join(&p, 3000);
  dmq_member_info_t info;
  assert_int_equal(dmq_node_member(p.node[0], "n1", &info), 0);
  assert_int_equal(info.state, DMQ_MEMBER_ALIVE);
  /* a third party tells n0 that n1 is suspect */
  send_suspect(&p, &info, info.incarnation);
  assert_int_equal(dmq_node_member(p.node[0], "n1", &info), 0);
  assert_int_equal(info.state, DMQ_MEMBER_SUSPECT);
  uint64_t old_inc = info.incarnation;
  /* n1 hears of it and refutes, but n0 gets none of n1's packets for
   * 1.5 s: the refutation's retransmissions are all lost */
  p.net.drop_from = 1u << 1;
  pair_run(&p, p.now + 1500);
  p.net.drop_from = 0;
  assert_int_equal(dmq_node_member(p.node[1], "n1", &info), 0);
  assert_true(info.incarnation > old_inc);
  assert_int_equal(dmq_node_member(p.node[0], "n1", &info), 0);
  assert_int_equal(info.state, DMQ_MEMBER_SUSPECT);
  /* the suspicion (minimum 4 s with two members) must be set right by
   * the next probe's answer, long before it would run out */
  pair_run(&p, p.now + 2000);
  assert_int_equal(dmq_node_member(p.node[0], "n1", &info), 0);
  assert_int_equal(info.state, DMQ_MEMBER_ALIVE);
  pair_run(&p, p.now + 10000);
  assert_int_equal(p.events[0][DMQ_EVENT_DEAD], 0);
  pair_free(&p);
}

/* n0 tells of a suspicion of n1 at a later incarnation while its own runs
 * (n1 refuted the first and was suspected again; the refutation never
 * reached n0): the suspicion starts over, so n1 is not declared dead at
 * the first one's deadline, and still is after the new one's (and its
 * last call) if nothing is heard from it. */
static void test_later_suspicion_restarts(void **state) {
  (void)state;
  pair_t p;
  assert_int_equal(pair_init(&p, NULL), 0);
  pair_join(&p, 3000);
  dmq_member_info_t info;
  assert_int_equal(dmq_node_member(p.node[0], "n1", &info), 0);
  p.net.drop_from = 1u << 1; /* nothing from n1 reaches n0 from here on */
  send_suspect(&p, &info, info.incarnation);
  uint64_t t0 = p.now;
  pair_run(&p, t0 + 3000);
  assert_int_equal(dmq_node_member(p.node[0], "n1", &info), 0);
  assert_int_equal(info.state, DMQ_MEMBER_SUSPECT);
  send_suspect(&p, &info, info.incarnation + 1);
  /* two members: the minimum suspicion, 4 s; the first would end at
   * t0 + 4 s, the new one at t0 + 7 s */
  pair_run(&p, t0 + 5500);
  assert_int_equal(dmq_node_member(p.node[0], "n1", &info), 0);
  assert_int_equal(info.state, DMQ_MEMBER_SUSPECT);
  assert_int_equal(p.events[0][DMQ_EVENT_DEAD], 0);
  /* at t0 + 7 s nobody has confirmed it: a last probe carrying the
   * suspicion, and the verdict a probe timeout (500 ms) later */
  pair_run(&p, t0 + 7400);
  assert_int_equal(dmq_node_member(p.node[0], "n1", &info), 0);
  assert_int_equal(info.state, DMQ_MEMBER_SUSPECT);
  pair_run(&p, t0 + 7600);
  assert_int_equal(dmq_node_member(p.node[0], "n1", &info), 0);
  assert_int_equal(info.state, DMQ_MEMBER_DEAD);
  pair_free(&p);
}

static void test_pair_failure(void **state) {
  (void)state;
  pair_t p;
  assert_int_equal(pair_init(&p, NULL), 0);
  pair_join(&p, 2000);
  dmq_node_delete(p.node[1]); /* crash */
  p.node[1] = NULL;
  /* two members: no one to confirm, suspicion lasts the minimum
   * (4 * 1 * 1 s), after one failed probe period */
  pair_run(&p, p.now + 8000);
  dmq_member_info_t info;
  assert_int_equal(dmq_node_member(p.node[0], "n1", &info), 0);
  assert_int_equal(info.state, DMQ_MEMBER_DEAD);
  assert_int_equal(p.events[0][DMQ_EVENT_SUSPECT], 1);
  assert_int_equal(p.events[0][DMQ_EVENT_DEAD], 1);
  /* reaped after the retention time */
  pair_run(&p, p.now + 61000);
  assert_int_equal(dmq_node_member(p.node[0], "n1", &info), DMQ_ENOENT);
  assert_int_equal(p.events[0][DMQ_EVENT_REAPED], 1);
  pair_free(&p);
}

static void test_transport_refusal_counted(void **state) {
  (void)state;
  pair_t p;
  assert_int_equal(pair_init(&p, NULL), 0);
  p.net.refuse = 1;
  pair_join(&p, 1000);
  dmq_stats_t st;
  dmq_node_stats(p.node[1], &st);
  assert_true(st.drops[DMQ_DROP_TX_FAILED] >= 1);
  const char *bad = "nosuch://x";
  p.net.refuse = 0;
  dmq_node_join(p.node[1], &bad, 1, p.now);
  pair_run(&p, p.now + 100);
  dmq_node_stats(p.node[1], &st);
  assert_true(st.drops[DMQ_DROP_TX_NO_TRANSPORT] >= 1);
  pair_free(&p);
}

/* Run the two-node scenario failing the k-th allocation, for every k, and
 * check that nothing leaks or crashes. */
static void test_alloc_failures(void **state) {
  (void)state;
  long total = 0;
  {
    counting_t c = {0};
    dmq_alloc_t a;
    dmq_alloc_init(&a);
    a.malloc_fn = c_malloc;
    a.realloc_fn = c_realloc;
    a.free_fn = c_free;
    a.ud = &c;
    pair_t p;
    assert_int_equal(pair_init(&p, &a), 0);
    const char *seed = "mem://0";
    dmq_node_join(p.node[1], &seed, 1, 0);
    dmq_node_set_meta(p.node[1], "m", 1, 0);
    pair_run(&p, 3000);
    pair_free(&p);
    assert_int_equal(c.live, 0);
    total = c.calls;
  }
  assert_true(total > 5);
  for (long k = 1; k <= total; k++) {
    counting_t c = {.fail_at = k};
    dmq_alloc_t a;
    dmq_alloc_init(&a);
    a.malloc_fn = c_malloc;
    a.realloc_fn = c_realloc;
    a.free_fn = c_free;
    a.ud = &c;
    pair_t p;
    if (pair_init(&p, &a) == 0) {
      const char *seed = "mem://0";
      dmq_node_join(p.node[1], &seed, 1, 0);
      dmq_node_set_meta(p.node[1], "m", 1, 0);
      pair_run(&p, 3000);
    }
    pair_free(&p);
    assert_int_equal(c.live, 0);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_profiles),
      cmocka_unit_test(test_config_validation),
      cmocka_unit_test(test_transport_registry),
      cmocka_unit_test(test_pair_join_and_leave),
      cmocka_unit_test(test_leave_told_directly),
      cmocka_unit_test(test_later_suspicion_restarts),
      cmocka_unit_test(test_pair_failure),
      cmocka_unit_test(test_stale_suspicion_answered),
      cmocka_unit_test(test_transport_refusal_counted),
      cmocka_unit_test(test_alloc_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
