/* Digest anti-entropy in the simulator: a cluster in steady state makes
 * no full push/pull at all and its anti-entropy traffic does not grow with
 * N, and a cluster mixing nodes that skip DIGEST (ae_off: nodes of before)
 * still converges, through the push/pull fallback. Fixed seed, simulated
 * time only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "internal.h"
#include "sim.h"

static dmq_sim_t *world(int n, double loss) {
  dmq_sim_opts_t o;
  dmq_sim_opts_init(&o);
  o.link.loss = loss;
  o.link.delay_ms = 1;
  o.link.jitter_ms = 2;
  o.stream_transport = 1; /* UDP + TCP, like the runtime */
  dmq_sim_t *w = dmq_sim_new(&o);
  assert_non_null(w);
  dmq_config_t cfg;
  dmq_config_init(&cfg, DMQ_PROFILE_LAN);
  for (int i = 0; i < n; i++)
    assert_int_equal(dmq_sim_add(w, &cfg, NULL), i);
  return w;
}

static void join_all(dmq_sim_t *w) {
  int seed = 0;
  for (int i = 1; i < dmq_sim_host_count(w); i++)
    assert_int_equal(dmq_sim_join(w, i, &seed, 1), 0);
}

static uint64_t sum(dmq_sim_t *w, int what) {
  uint64_t s = 0;
  for (int i = 0; i < dmq_sim_host_count(w); i++) {
    dmq_node_t *n = dmq_sim_node(w, i);
    if (n == NULL)
      continue;
    dmq_stats_t st;
    dmq_node_stats(n, &st);
    s += what == 0   ? st.pushpull_sent
         : what == 1 ? st.bytes_out
                     : st.drops[DMQ_DROP_UNKNOWN_TYPE];
  }
  return s;
}

/* bytes per member per second over `ms` of steady state, and no full
 * push/pull in it (under loss too: a lost DIGEST or reply is sent again
 * on the reliable class, not answered by both whole tables) */
static double steady(int n, uint64_t ms, double loss) {
  dmq_sim_t *w = world(n, loss);
  join_all(w);
  assert_true(dmq_sim_expect_converged(w, 20000));
  dmq_sim_run_for(w, 60000); /* past the join's gossip and boosts */
  uint64_t pp = sum(w, 0), b = sum(w, 1);
  dmq_sim_run_for(w, ms);
  assert_int_equal(sum(w, 0) - pp, 0);
  assert_int_equal(dmq_sim_false_deaths(w), 0);
  double r = (double)(sum(w, 1) - b) / n / ((double)ms / 1000.0);
  dmq_sim_delete(w);
  return r;
}

static void test_steady_flat_in_n(void **state) {
  (void)state;
  /* two pushpull intervals: every node ran two exchanges */
  double small = steady(20, 60000, 0), large = steady(200, 60000, 0);
  printf("# steady bytes/member/s: N=20 %.1f, N=200 %.1f\n", small, large);
  /* probes dominate: the same per member whatever N (the names grow by a
   * digit) */
  assert_true(large < small * 1.25);
}

/* The same at 5 % loss: before lost DIGESTs were retried on the reliable
 * class, each fell back to a full push/pull, and the bytes per member grew
 * with N (sim_bench: 262 at N = 500, 914 at 2000). */
static void test_steady_flat_in_n_lossy(void **state) {
  (void)state;
  double small = steady(20, 120000, 0.05), large = steady(300, 120000, 0.05);
  printf("# steady bytes/member/s at 5%% loss: N=20 %.1f, N=300 %.1f\n", small,
         large);
  assert_true(large < small * 1.5);
}

static void test_mixed_cluster_converges(void **state) {
  (void)state;
  dmq_sim_t *w = world(40, 0.05);
  for (int i = 0; i < 40; i += 4)
    dmq_sim_node(w, i)->ae_off = 1; /* a node of before, the seed too */
  join_all(w);
  assert_true(dmq_sim_expect_converged(w, 30000));
  uint64_t pp = sum(w, 0);
  dmq_sim_run_for(w, 90000);
  /* the digest nodes met nodes of before and fell back to push/pull */
  assert_true(sum(w, 2) > 0);
  assert_true(sum(w, 0) > pp);
  /* a member that dies is still seen dead by everyone, and the cluster
   * stays converged */
  dmq_sim_kill(w, 5);
  assert_true(dmq_sim_expect_seen_by_all(w, 5, DMQ_MEMBER_DEAD, 60000));
  assert_int_equal(dmq_sim_false_deaths(w), 0);
  dmq_sim_delete(w);
}

/* A burst join of 300 under 5% loss (fast profile: probes every 200 ms),
 * five worlds (seeds base..base+4, base from DMQ_SIM_SEED or the default):
 * each converges within 1 s with no false death, and the median within
 * 0.6 s.
 * - Before the follow-up exchanges (antientropy.c: an exchange that finds
 *   the tables different brings the next one forward) the times were
 *   bimodal, 0.84-0.92 s for 7 of seeds 1..16 and 5.5-8.9 s for the other
 *   9: a few hosts missed a few members until the next periodic exchange.
 * - Before the join boost added rounds after differing ones (swim.c,
 *   dmq__swim_boost_differs): 0.76-1.16 s for seeds 1..40, median about
 *   0.8 s, so this test failed. With them: 0.36-0.72 s for seeds 1..40 and
 *   at most 0.8 s for seeds 41..120. DIGEST_PRINT=1 prints the times. */
static uint64_t burst_join_ms(uint64_t seed) {
  dmq_sim_opts_t o;
  dmq_sim_opts_init(&o);
  o.seed = seed;
  o.link.loss = 0.05;
  o.link.delay_ms = 1;
  o.link.jitter_ms = 1;
  o.stream_transport = 1;
  dmq_sim_t *w = dmq_sim_new(&o);
  assert_non_null(w);
  dmq_config_t cfg;
  dmq_config_init(&cfg, DMQ_PROFILE_FAST);
  for (int i = 0; i < 300; i++)
    assert_int_equal(dmq_sim_add(w, &cfg, NULL), i);
  join_all(w);
  uint64_t t0 = dmq_sim_now(w);
  assert_true(dmq_sim_expect_converged(w, 1000));
  uint64_t ms = dmq_sim_now(w) - t0;
  if (getenv("DIGEST_PRINT"))
    printf("seed %llu: converged after %llu ms\n", (unsigned long long)seed,
           (unsigned long long)ms);
  assert_int_equal(dmq_sim_false_deaths(w), 0);
  dmq_sim_delete(w);
  return ms;
}

static void test_burst_join_under_loss(void **state) {
  (void)state;
  const char *env = getenv("DMQ_SIM_SEED");
  uint64_t base = env != NULL && *env != '\0' ? strtoull(env, NULL, 0)
                                              : DMQ_SIM_DEFAULT_SEED;
  uint64_t t[5];
  for (int i = 0; i < 5; i++) {
    uint64_t ms = burst_join_ms(base + (uint64_t)i);
    int j = i;
    for (; j > 0 && t[j - 1] > ms; j--)
      t[j] = t[j - 1];
    t[j] = ms;
  }
  assert_true(t[2] <= 600);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_steady_flat_in_n),
      cmocka_unit_test(test_steady_flat_in_n_lossy),
      cmocka_unit_test(test_mixed_cluster_converges),
      cmocka_unit_test(test_burst_join_under_loss),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
