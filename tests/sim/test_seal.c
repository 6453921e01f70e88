/* Sealing in the deterministic simulator (fixed seed; DMQ_SIM_SEED
 * overrides it): a live cluster of 6 hosts over a UDP+TCP-like pair of
 * transports, with loss, jitter (reordering) and duplicated datagrams,
 * first turns encryption on (key added everywhere, then transition mode
 * node by node, then required node by node), then rotates its key (new key
 * added everywhere, made primary everywhere, old key removed everywhere),
 * while every host keeps sending reliable messages to every other. Nobody
 * is ever declared dead, every reliable send ends DELIVERED, no packet is
 * refused for its key or for being plain, and the duplicated datagrams are
 * caught by the replay window. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <dmq/delivery.h>

#include "sim.h"

#define NH 6
#define MAXID 4096

typedef struct ctx {
  dmq_sim_t *w;
  dmq_channel_t *ch[NH];
  uint8_t accepted[NH][MAXID];
  uint8_t ocount[NH][MAXID];
  uint8_t ocode[NH][MAXID];
  uint64_t rx;
} ctx_t;

static ctx_t g;

static int host_of(const dmq_node_t *n) {
  for (int i = 0; i < NH; i++)
    if (dmq_sim_node(g.w, i) == n)
      return i;
  fail_msg("unknown node");
  return -1;
}

static void on_outcome(dmq_node_t *node, const dmq_outcome_info_t *o,
                       void *ud) {
  (void)ud;
  int h = host_of(node);
  assert_true(o->id < MAXID);
  g.ocount[h][o->id]++;
  g.ocode[h][o->id] = (uint8_t)o->outcome;
}

static void on_rx(dmq_node_t *node, dmq_channel_t *ch, const dmq_message_t *m,
                  void *ud) {
  (void)node;
  (void)ch;
  (void)m;
  (void)ud;
  g.rx++;
}

static uint64_t sent;

/* Every host sends one reliable message to every other, then time passes. */
static void traffic(uint64_t ms) {
  for (int s = 0; s < NH; s++) {
    for (int d = 0; d < NH; d++) {
      if (d == s)
        continue;
      char name[8], msg[32];
      snprintf(name, sizeof name, "n%d", d);
      int len = snprintf(msg, sizeof msg, "m%llu", (unsigned long long)sent);
      dmq_send_opts_t o;
      dmq_send_opts_init(&o);
      o.mode = DMQ_SEND_RELIABLE;
      o.ttl_ms = 60000;
      o.cb = on_outcome;
      dmq_msg_id_t id = 0;
      assert_int_equal(dmq_send(dmq_sim_node(g.w, s), name, "c", msg,
                                (size_t)len, &o, dmq_sim_now(g.w), &id),
                       0);
      assert_true(id < MAXID);
      g.accepted[s][id] = 1;
      sent++;
      dmq_sim_poke(g.w, s);
    }
  }
  dmq_sim_run_for(g.w, ms);
}

static uint64_t drops(dmq_drop_reason_t r) {
  uint64_t t = 0;
  for (int i = 0; i < NH; i++) {
    dmq_stats_t st;
    dmq_node_stats(dmq_sim_node(g.w, i), &st);
    t += st.drops[r];
  }
  return t;
}

static uint8_t k1[DMQ_KEY_SIZE], k2[DMQ_KEY_SIZE];

static void test_turn_on_and_rotate(void **state) {
  (void)state;
  memset(&g, 0, sizeof g);
  for (int i = 0; i < DMQ_KEY_SIZE; i++) {
    k1[i] = (uint8_t)(i * 7 + 1);
    k2[i] = (uint8_t)(i * 13 + 5);
  }
  dmq_sim_opts_t o;
  dmq_sim_opts_init(&o);
  o.stream_transport = 1; /* datagrams and streams: two packet paths */
  o.link.delay_ms = 2;
  o.link.jitter_ms = 8; /* reordering */
  o.link.loss = 0.01;
  o.link.dup = 0.02; /* duplicates: the replay window must drop them */
  g.w = dmq_sim_new(&o);
  assert_non_null(g.w);
  dmq_config_t cfg;
  dmq_config_init(&cfg, DMQ_PROFILE_LAN);
  cfg.label = "sim";
  for (int i = 0; i < NH; i++) {
    assert_int_equal(dmq_sim_add(g.w, &cfg, NULL), i);
    assert_int_equal(
        dmq_channel_open(dmq_sim_node(g.w, i), "c", on_rx, NULL, &g.ch[i]), 0);
  }
  int seed = 0;
  for (int i = 1; i < NH; i++)
    assert_int_equal(dmq_sim_join(g.w, i, &seed, 1), 0);
  assert_true(dmq_sim_expect_converged(g.w, 10000));
  dmq_sim_run_for(g.w, 2000); /* channels known everywhere */
  traffic(500);

  /* 1. encryption on: key everywhere (mode off), transition, required */
  uint32_t id1, id2;
  for (int i = 0; i < NH; i++) {
    assert_int_equal(
        dmq_node_key_add(dmq_sim_node(g.w, i), k1, sizeof k1, 1, &id1), 0);
    traffic(300);
  }
  for (int i = 0; i < NH; i++) {
    assert_int_equal(
        dmq_node_set_seal_mode(dmq_sim_node(g.w, i), DMQ_SEAL_TRANSITION), 0);
    traffic(300);
  }
  for (int i = 0; i < NH; i++) {
    assert_int_equal(
        dmq_node_set_seal_mode(dmq_sim_node(g.w, i), DMQ_SEAL_REQUIRED), 0);
    traffic(300);
  }
  assert_int_equal(drops(DMQ_DROP_PLAINTEXT), 0);
  uint64_t out_before = 0;
  for (int i = 0; i < NH; i++) {
    dmq_stats_t st;
    dmq_node_stats(dmq_sim_node(g.w, i), &st);
    out_before += st.pkts_out;
  }

  /* 2. rotation k1 -> k2 */
  for (int i = 0; i < NH; i++) {
    assert_int_equal(
        dmq_node_key_add(dmq_sim_node(g.w, i), k2, sizeof k2, 0, &id2), 0);
    traffic(300);
  }
  for (int i = 0; i < NH; i++) {
    assert_int_equal(dmq_node_key_use(dmq_sim_node(g.w, i), id2), 0);
    traffic(300);
  }
  for (int i = 0; i < NH; i++) {
    assert_int_equal(dmq_node_key_remove(dmq_sim_node(g.w, i), id1), 0);
    traffic(300);
  }
  dmq_sim_run_for(g.w, 20000);

  /* nobody died, everything arrived, nothing was refused for its key */
  assert_int_equal(dmq_sim_false_deaths(g.w), 0);
  assert_true(dmq_sim_converged(g.w));
  uint64_t n = 0;
  for (int s = 0; s < NH; s++)
    for (int id = 0; id < MAXID; id++) {
      if (!g.accepted[s][id])
        continue;
      n++;
      if (g.ocount[s][id] != 1 || g.ocode[s][id] != DMQ_OUTCOME_DELIVERED)
        fail_msg("seed=0x%llx: host %d message %d: %u outcomes, last %s",
                 (unsigned long long)dmq_sim_seed(g.w), s, id, g.ocount[s][id],
                 dmq_outcome_name((dmq_outcome_t)g.ocode[s][id]));
    }
  assert_int_equal(n, sent);
  assert_true(g.rx >= sent);
  assert_int_equal(drops(DMQ_DROP_PLAINTEXT), 0);
  assert_int_equal(drops(DMQ_DROP_KEY_UNKNOWN), 0);
  assert_int_equal(drops(DMQ_DROP_AUTH), 0);
  assert_int_equal(drops(DMQ_DROP_LABEL), 0);
  if (getenv("SEAL_SIM_PRINT"))
    printf("sent %llu rx %llu replay %llu t %llu\n", (unsigned long long)sent,
           (unsigned long long)g.rx, (unsigned long long)drops(DMQ_DROP_REPLAY),
           (unsigned long long)dmq_sim_now(g.w));
  assert_true(drops(DMQ_DROP_REPLAY) > 0); /* the duplicated datagrams */
  /* every node holds k2 alone, primary */
  for (int i = 0; i < NH; i++) {
    uint32_t ids[4], prim;
    assert_int_equal(dmq_node_keys(dmq_sim_node(g.w, i), ids, 4, &prim), 1);
    assert_int_equal(prim, id2);
  }
  uint64_t out_after = 0;
  for (int i = 0; i < NH; i++) {
    dmq_stats_t st;
    dmq_node_stats(dmq_sim_node(g.w, i), &st);
    out_after += st.pkts_out;
  }
  assert_true(out_after > out_before);
  dmq_sim_delete(g.w);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_turn_on_and_rotate),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
