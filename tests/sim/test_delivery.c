/* Queued delivery in the deterministic simulator (fixed seed; DMQ_SIM_SEED
 * overrides it). Each test states a delivery property: exactly once and in
 * order under loss, reordering and duplication; TTL across a partition;
 * failure on death and restart; backpressure; large messages over
 * fragments and over the stream transport; request/reply; broadcast;
 * best effort, whose every loss the receiver counts (rx_lost_be). Every
 * accepted reliable send is checked to end in exactly one outcome. */
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

#define HMAX 8
#define MAXID 65536
#define BE_MAX 8192   /* best-effort message numbers per sender (hdr.seq) */
#define BE_BCAST 0xff /* hdr.dst of a broadcast */

/* Payload header: who sent it to whom on which channel, and its number. */
typedef struct hdr {
  uint8_t src, dst, chan, pad;
  uint32_t seq;
} hdr_t;

typedef struct ctx {
  dmq_sim_t *w;
  int nh;
  dmq_channel_t *ch[HMAX][2];
  /* outcomes, per sending host and message id */
  uint8_t ocount[HMAX][MAXID];
  uint8_t ocode[HMAX][MAXID];
  uint8_t accepted[HMAX][MAXID];
  uint64_t oat[HMAX][MAXID];
  uint32_t odelivered[HMAX][MAXID], ofailed[HMAX][MAXID];
  uint32_t orefused[HMAX][MAXID];
  uint64_t noutcomes;
  /* receive side, per (src, dst, chan) */
  uint32_t next[HMAX][HMAX][2];
  uint64_t rx_total, rx_disorder;
  uint64_t rx_after; /* deliveries of seq >= watch_from */
  uint32_t watch_from;
  /* best effort, per (src, dst): deliveries, deliveries of a message older
   * than one already delivered (reordered), and deliveries per message */
  uint32_t be_rx[HMAX][HMAX], be_max[HMAX][HMAX];
  uint64_t be_late;
  uint8_t be_got[HMAX][HMAX][BE_MAX];
  int reply_mode; /* 0 answer at once, 1 never */
  uint64_t writable_at;
  int writable;
  /* large messages */
  size_t big_len;
  uint64_t big_sum;
  int big_got;
} ctx_t;

static int host_of(ctx_t *c, const dmq_node_t *n) {
  for (int i = 0; i < c->nh; i++)
    if (dmq_sim_node(c->w, i) == n)
      return i;
  fail_msg("unknown node");
  return -1;
}

static uint64_t sum_bytes(const uint8_t *p, size_t n) {
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 1099511628211ULL;
  return h;
}

static void on_outcome(dmq_node_t *node, const dmq_outcome_info_t *o,
                       void *ud) {
  ctx_t *c = ud;
  int h = host_of(c, node);
  assert_true(o->id < MAXID);
  c->ocount[h][o->id]++;
  c->ocode[h][o->id] = (uint8_t)o->outcome;
  c->oat[h][o->id] = dmq_sim_now(c->w);
  c->odelivered[h][o->id] = o->delivered;
  c->ofailed[h][o->id] = o->failed;
  c->orefused[h][o->id] = o->refused;
  c->noutcomes++;
}

static void on_rx(dmq_node_t *node, dmq_channel_t *ch, const dmq_message_t *m,
                  void *ud) {
  ctx_t *c = ud;
  (void)ch;
  int me = host_of(c, node);
  c->rx_total++;
  if (m->len >= c->big_len && c->big_len > 0) {
    c->big_got++;
    assert_true(sum_bytes(m->data, m->len) == c->big_sum);
    return;
  }
  if (m->request != NULL) {
    if (c->reply_mode == 0) {
      dmq_reply_handle_t h = *m->request;
      assert_int_equal(dmq_reply(node, &h, m->data, m->len, dmq_sim_now(c->w)),
                       0);
    }
    return;
  }
  if (m->len < sizeof(hdr_t))
    return;
  hdr_t hd;
  memcpy(&hd, m->data, sizeof hd);
  if (hd.dst != BE_BCAST)
    assert_int_equal(hd.dst, me);
  if (hd.seq >= c->watch_from)
    c->rx_after++;
  if (!m->reliable) {
    assert_true(hd.seq < BE_MAX);
    if (c->be_got[hd.src][me][hd.seq]++ != 0)
      fail_msg("seed=0x%llx: best effort %d->%d #%u delivered twice",
               (unsigned long long)dmq_sim_seed(c->w), hd.src, me, hd.seq);
    c->be_rx[hd.src][me]++;
    if (hd.seq < c->be_max[hd.src][me])
      c->be_late++;
    else
      c->be_max[hd.src][me] = hd.seq;
    return;
  }
  uint32_t *nx = &c->next[hd.src][hd.dst][hd.chan];
  if (hd.seq != *nx) {
    if (c->rx_disorder++ < 5)
      fprintf(stderr, "seed=0x%llx: %d->%d ch%d got %u expected %u\n",
              (unsigned long long)dmq_sim_seed(c->w), hd.src, hd.dst, hd.chan,
              hd.seq, *nx);
  }
  *nx = hd.seq + 1;
}

static void on_writable(dmq_node_t *node, const char *dest, void *ud) {
  ctx_t *c = ud;
  (void)node;
  assert_non_null(dest); /* no node-wide limit reached in these tests */
  c->writable++;
  c->writable_at = dmq_sim_now(c->w);
}

static const char *chan_name(int k) {
  return k ? "htable" : "usrloc";
}

/* A world of n hosts with config cfg (NULL = lan), joined and converged,
 * no loss yet. */
static ctx_t *world_cfg(int n, int stream_transport, int no_stream,
                        const dmq_config_t *cfg_in) {
  ctx_t *c = calloc(1, sizeof(*c));
  assert_non_null(c);
  dmq_sim_opts_t o;
  dmq_sim_opts_init(&o);
  o.link.delay_ms = 1;
  o.stream_transport = stream_transport;
  o.no_stream = no_stream;
  c->w = dmq_sim_new(&o);
  assert_non_null(c->w);
  c->nh = n;
  c->watch_from = UINT32_MAX;
  dmq_config_t cfg;
  dmq_config_init(&cfg, DMQ_PROFILE_LAN);
  if (cfg_in != NULL)
    cfg = *cfg_in;
  for (int i = 0; i < n; i++) {
    assert_int_equal(dmq_sim_add(c->w, &cfg, NULL), i);
    dmq_delivery_set_writable_cb(dmq_sim_node(c->w, i), on_writable, c);
  }
  int seed = 0;
  for (int i = 1; i < n; i++)
    assert_int_equal(dmq_sim_join(c->w, i, &seed, 1), 0);
  assert_true(dmq_sim_expect_converged(c->w, 5000));
  return c;
}

static ctx_t *world(int n, int stream_transport, int no_stream) {
  return world_cfg(n, stream_transport, no_stream, NULL);
}

static void world_free(ctx_t *c) {
  dmq_sim_delete(c->w);
  free(c);
}

static void serve(ctx_t *c, int h, int k) {
  assert_int_equal(dmq_channel_open(dmq_sim_node(c->w, h), chan_name(k), on_rx,
                                    c, &c->ch[h][k]),
                   0);
  dmq_sim_poke(c->w, h);
}

/* Run until every host in `who` sees host h serving channel k. */
static void wait_served(ctx_t *c, int h, int k) {
  char name[16];
  snprintf(name, sizeof name, "n%d", h);
  for (int t = 0; t < 500; t++) {
    int all = 1;
    for (int i = 0; i < c->nh; i++)
      if (i != h && dmq_sim_node(c->w, i) != NULL &&
          !dmq_member_serves(dmq_sim_node(c->w, i), name, chan_name(k)))
        all = 0;
    if (all)
      return;
    dmq_sim_run_for(c->w, 10);
  }
  fail_msg("n%d serving %s not seen by all", h, chan_name(k));
}

/* Host `gone` is paused until `other` has declared it dead and reaped it
 * (dead_retention_ms must be short), then resumed and the cluster
 * converges again with host 1 serving channel 0: the two meet as strangers
 * while each kept its own state. */
static void forget_and_meet_again(ctx_t *c, int gone, int other) {
  char name[16];
  dmq_member_info_t mi;
  snprintf(name, sizeof name, "n%d", gone);
  dmq_sim_pause(c->w, gone);
  assert_true(dmq_sim_expect_state_window(c->w, other, gone, DMQ_MEMBER_DEAD, 0,
                                          40000));
  dmq_sim_run_for(c->w, 6000);
  assert_int_equal(dmq_node_member(dmq_sim_node(c->w, other), name, &mi),
                   DMQ_ENOENT); /* reaped */
  dmq_sim_resume(c->w, gone);
  assert_true(dmq_sim_expect_converged(c->w, 30000));
  wait_served(c, 1, 0);
}

/* Three hosts that reap the dead after 3 s (for forget_and_meet_again),
 * host 1 serving channel 0. */
static ctx_t *world_forgetful(void) {
  dmq_config_t cfg;
  dmq_config_init(&cfg, DMQ_PROFILE_LAN);
  cfg.dead_retention_ms = 3000;
  ctx_t *c = world_cfg(3, 1, 0, &cfg);
  serve(c, 1, 0);
  wait_served(c, 1, 0);
  return c;
}

static int send_msg(ctx_t *c, int src, int dst, int k, uint32_t seq,
                    size_t extra, int reliable, uint32_t ttl_ms) {
  uint8_t buf[512];
  hdr_t hd = {(uint8_t)src, (uint8_t)dst, (uint8_t)k, 0, seq};
  char name[16];
  assert_true(sizeof hd + extra <= sizeof buf);
  memcpy(buf, &hd, sizeof hd);
  memset(buf + sizeof hd, (int)(seq & 0xff), extra);
  snprintf(name, sizeof name, "n%d", dst);
  dmq_send_opts_t o;
  dmq_send_opts_init(&o);
  o.mode = reliable ? DMQ_SEND_RELIABLE : DMQ_SEND_BEST_EFFORT;
  o.ttl_ms = ttl_ms;
  o.cb = on_outcome;
  o.user_data = c;
  dmq_msg_id_t id = 0;
  int rc = dmq_send(dmq_sim_node(c->w, src), name, chan_name(k), buf,
                    sizeof hd + extra, &o, dmq_sim_now(c->w), &id);
  if (rc == 0) {
    assert_true(id < MAXID);
    if (reliable)
      c->accepted[src][id] = 1;
  }
  dmq_sim_poke(c->w, src);
  return rc;
}

/* Every accepted send from host h had exactly one outcome; how many `oc`. */
static uint32_t outcomes(ctx_t *c, int h, dmq_outcome_t oc) {
  uint32_t n = 0;
  for (uint32_t id = 0; id < MAXID; id++) {
    if (!c->accepted[h][id]) {
      assert_int_equal(c->ocount[h][id], 0);
      continue;
    }
    if (c->ocount[h][id] != 1)
      fail_msg("seed=0x%llx: host %d message %u had %d outcomes",
               (unsigned long long)dmq_sim_seed(c->w), h, id, c->ocount[h][id]);
    n += c->ocode[h][id] == (uint8_t)oc;
  }
  return n;
}

/* How many accepted sends from host h had an outcome so far. */
static uint32_t outcomes_in(const ctx_t *c, int h) {
  uint32_t n = 0;
  for (uint32_t id = 0; id < MAXID; id++)
    n += c->accepted[h][id] && c->ocount[h][id] > 0;
  return n;
}

static dmq_delivery_stats_t stats(ctx_t *c, int h) {
  dmq_delivery_stats_t st;
  dmq_delivery_stats(dmq_sim_node(c->w, h), &st);
  return st;
}

/* ---- tests ---- */

/* 3 senders x 3 receivers x 2 channels through 20% loss, reordering and
 * 10% duplication: every message exactly once and in order per (sender,
 * receiver, channel); every outcome DELIVERED exactly once. The TTL is
 * 120 s, not the default 30: with the RTO capped at 5 s, 30 s is about ten
 * transmissions, and at 20% loss each way a round trip fails with
 * probability 0.36, so the default TTL let a stream's tail expire once in
 * about 1500 runs (seeds 613 and 743 did, session 13); that is the
 * protocol keeping its TTL, not a fault this test looks for. */
#define LOSSY_TTL_MS 120000
static void test_lossy_exactly_once_in_order(void **state) {
  (void)state;
  ctx_t *c = world(6, 1, 0);
  for (int r = 3; r < 6; r++)
    for (int k = 0; k < 2; k++)
      serve(c, r, k);
  for (int r = 3; r < 6; r++)
    for (int k = 0; k < 2; k++)
      wait_served(c, r, k);
  dmq_sim_link_t l = {0.2, 1, 4, 0.1, 0};
  dmq_sim_set_default_link(c->w, &l);
  const uint32_t per = 400; /* per (sender, receiver, channel) */
  uint32_t sent[HMAX][HMAX][2] = {{{0}}};
  uint32_t total = 0;
  for (int step = 0; total < 3 * 3 * 2 * per; step++) {
    for (int s = 0; s < 3; s++)
      for (int r = 3; r < 6; r++)
        for (int k = 0; k < 2; k++)
          for (int b = 0; b < 3 && sent[s][r][k] < per; b++) {
            uint32_t q = sent[s][r][k];
            assert_int_equal(
                send_msg(c, s, r, k, q, (q * 37) % 300, 1, LOSSY_TTL_MS), 0);
            sent[s][r][k]++;
            total++;
          }
    dmq_sim_run_for(c->w, 5);
  }
  /* until every outcome is in, at most one TTL */
  for (uint64_t t = 0; t < LOSSY_TTL_MS + 1000; t += 1000) {
    uint32_t in = 0;
    for (int x = 0; x < 3; x++)
      in += outcomes_in(c, x);
    if (in == total)
      break;
    dmq_sim_run_for(c->w, 1000);
  }
  assert_int_equal(c->rx_disorder, 0);
  assert_int_equal(c->rx_total, total);
  for (int s = 0; s < 3; s++)
    for (int r = 3; r < 6; r++)
      for (int k = 0; k < 2; k++)
        assert_int_equal(c->next[s][r][k], per);
  uint32_t delivered = 0;
  for (int s = 0; s < 3; s++) {
    delivered += outcomes(c, s, DMQ_OUTCOME_DELIVERED);
    dmq_delivery_stats_t st = stats(c, s);
    assert_true(st.retransmits > 0);
    assert_true(st.queued_msgs == 0 && st.inflight == 0);
  }
  assert_int_equal(delivered, total);
  uint64_t dups = 0;
  for (int r = 3; r < 6; r++) {
    dmq_delivery_stats_t st = stats(c, r);
    dups += st.duplicates;
    assert_true(st.rx_buffered == 0 && st.rx_buffered_bytes == 0);
  }
  assert_true(dups > 0);
  dmq_sim_net_stats_t ns;
  dmq_sim_net_stats(c->w, &ns);
  assert_true(ns.lost > 0 && ns.duplicated > 0);
  world_free(c);
}

/* Messages sent into a partition longer than their TTL expire, and none of
 * them is delivered after the heal; the stream then carries on. */
static void test_partition_longer_than_ttl(void **state) {
  (void)state;
  ctx_t *c = world(3, 1, 0);
  serve(c, 1, 0);
  wait_served(c, 1, 0);
  for (uint32_t q = 0; q < 10; q++)
    assert_int_equal(send_msg(c, 0, 1, 0, q, 10, 1, 2000), 0);
  dmq_sim_run_for(c->w, 500);
  assert_int_equal(c->rx_total, 10);
  int a[] = {0}, b[] = {1, 2};
  dmq_sim_partition(c->w, a, 1, b, 2);
  c->watch_from = 1000;
  for (uint32_t q = 1000; q < 1020; q++)
    assert_int_equal(send_msg(c, 0, 1, 0, q, 10, 1, 2000), 0);
  dmq_sim_run_for(c->w, 2100);
  /* all of them expired at their TTL, before any death */
  uint32_t exp = 0;
  for (uint32_t id = 0; id < MAXID; id++)
    if (c->accepted[0][id] && c->ocount[0][id] == 1 &&
        c->ocode[0][id] == DMQ_OUTCOME_EXPIRED)
      exp++;
  assert_int_equal(exp, 20);
  dmq_sim_run_for(c->w, 8000);
  dmq_sim_heal(c->w);
  assert_true(dmq_sim_expect_converged(c->w, 30000));
  dmq_sim_run_for(c->w, 5000);
  assert_int_equal(c->rx_after, 0);
  /* the stream skips the expired ones and goes on */
  c->next[0][1][0] = 2000;
  for (uint32_t q = 2000; q < 2010; q++)
    assert_int_equal(send_msg(c, 0, 1, 0, q, 10, 1, 0), 0);
  dmq_sim_run_for(c->w, 2000);
  assert_int_equal(c->rx_after, 10);
  assert_int_equal(c->rx_disorder, 0);
  assert_int_equal(outcomes(c, 0, DMQ_OUTCOME_EXPIRED), 20);
  assert_int_equal(outcomes(c, 0, DMQ_OUTCOME_DELIVERED), 20);
  assert_true(stats(c, 0).expired == 20);
  world_free(c);
}

/* Copies with mixed TTLs towards one unreachable receiver: each expires
 * at its own deadline, to the millisecond, whether it rides the peer's
 * TTL FIFO (TTL not below the previous one's) or has a timer of its own,
 * and cancelling or expiring one does not disturb the others. */
static void test_mixed_ttls(void **state) {
  (void)state;
  ctx_t *c = world(2, 1, 0);
  serve(c, 1, 0);
  wait_served(c, 1, 0);
  dmq_sim_link_t cut = {0, 1, 0, 0, 1};
  dmq_sim_set_link(c->w, 0, 1, &cut);
  static const uint32_t ttl[] = {1000, 200, 1000, 500, 1500, 50, 1500, 1200};
  enum { NT = sizeof ttl / sizeof ttl[0] };
  uint64_t t0 = dmq_sim_now(c->w);
  for (uint32_t q = 0; q < NT; q++)
    assert_int_equal(send_msg(c, 0, 1, 0, q, 10, 1, ttl[q]), 0);
  /* the message ids are consecutive: find the first */
  uint32_t first = 0;
  while (!c->accepted[0][first])
    first++;
  assert_int_equal(dmq_delivery_cancel(dmq_sim_node(c->w, 0), first + 2), 0);
  dmq_sim_run_for(c->w, 1600);
  for (uint32_t q = 0; q < NT; q++) {
    uint32_t id = first + q;
    assert_int_equal(c->ocount[0][id], 1);
    if (q == 2) {
      assert_int_equal(c->ocode[0][id], DMQ_OUTCOME_CANCELLED);
      assert_true(c->oat[0][id] == t0);
      continue;
    }
    assert_int_equal(c->ocode[0][id], DMQ_OUTCOME_EXPIRED);
    assert_true(c->oat[0][id] == t0 + ttl[q]);
  }
  assert_int_equal(c->rx_total, 0);
  world_free(c);
}

/* A killed receiver: what was queued for it fails with DEAD once it is
 * declared dead, exactly once; a restart (new generation) fails the
 * messages of the old life at once. */
static void test_receiver_killed_and_restarted(void **state) {
  (void)state;
  ctx_t *c = world(3, 1, 0);
  serve(c, 1, 0);
  serve(c, 2, 0);
  wait_served(c, 1, 0);
  wait_served(c, 2, 0);
  dmq_sim_kill(c->w, 1);
  for (uint32_t q = 0; q < 50; q++)
    assert_int_equal(send_msg(c, 0, 1, 0, q, 50, 1, 0), 0);
  assert_true(
      dmq_sim_expect_state_window(c->w, 0, 1, DMQ_MEMBER_DEAD, 0, 25000));
  uint64_t dead_at = dmq_sim_now(c->w);
  dmq_sim_run_for(c->w, 100);
  assert_int_equal(outcomes(c, 0, DMQ_OUTCOME_DEAD), 50);
  for (uint32_t id = 0; id < MAXID; id++)
    if (c->accepted[0][id])
      assert_true(c->oat[0][id] >= dead_at);
  assert_int_equal(send_msg(c, 0, 1, 0, 99, 0, 1, 0), DMQ_ENOENT);
  dmq_delivery_stats_t st = stats(c, 0);
  assert_true(st.dead == 50 && st.queued_msgs == 0);

  /* host 2 crashes and is back before anyone notices: its old life's
   * messages fail with DEAD when the new generation is learnt */
  memset(c->accepted, 0, sizeof c->accepted);
  memset(c->ocount, 0, sizeof c->ocount);
  dmq_sim_kill(c->w, 2);
  for (uint32_t q = 0; q < 30; q++)
    assert_int_equal(send_msg(c, 0, 2, 0, q, 50, 1, 0), 0);
  dmq_sim_run_for(c->w, 300);
  assert_int_equal(dmq_sim_restart(c->w, 2), 0);
  serve(c, 2, 0);
  int seed = 0;
  dmq_sim_join(c->w, 2, &seed, 1);
  dmq_sim_run_for(c->w, 3000);
  assert_int_equal(outcomes(c, 0, DMQ_OUTCOME_DEAD), 30);
  /* and the new life gets new messages, from seq 1 */
  c->next[0][2][0] = 100;
  uint64_t before = c->rx_total;
  for (uint32_t q = 100; q < 110; q++)
    assert_int_equal(send_msg(c, 0, 2, 0, q, 50, 1, 0), 0);
  dmq_sim_run_for(c->w, 2000);
  assert_int_equal(c->rx_total - before, 10);
  assert_int_equal(c->rx_disorder, 0);
  assert_int_equal(outcomes(c, 0, DMQ_OUTCOME_DELIVERED), 10);
  world_free(c);
}

/* A full destination queue: DMQ_EAGAIN, then the writable callback, then
 * sends succeed again. */
static void test_queue_full_writable(void **state) {
  (void)state;
  ctx_t *c = world(2, 1, 0);
  dmq_delivery_config_t dc;
  dmq_delivery_config_init(&dc);
  dc.queue_msgs = 100;
  assert_int_equal(dmq_delivery_configure(dmq_sim_node(c->w, 0), &dc), 0);
  serve(c, 1, 0);
  wait_served(c, 1, 0);
  uint32_t q = 0;
  while (send_msg(c, 0, 1, 0, q, 100, 1, 0) == 0)
    q++;
  assert_int_equal(q, 100);
  assert_int_equal(send_msg(c, 0, 1, 0, q, 100, 1, 0), DMQ_EAGAIN);
  assert_int_equal(c->writable, 0);
  assert_true(stats(c, 0).refused_full == 2);
  uint64_t t0 = dmq_sim_now(c->w);
  dmq_sim_run_for(c->w, 100);
  assert_int_equal(c->writable, 1);
  assert_true(c->writable_at > t0);
  for (int i = 0; i < 50; i++, q++)
    assert_int_equal(send_msg(c, 0, 1, 0, q, 100, 1, 0), 0);
  dmq_sim_run_for(c->w, 500);
  assert_int_equal(c->rx_total, 150);
  assert_int_equal(c->rx_disorder, 0);
  assert_int_equal(outcomes(c, 0, DMQ_OUTCOME_DELIVERED), 150);
  assert_true(stats(c, 0).refused_full == 2);
  world_free(c);
}

/* Delayed acknowledgement. A stream of in-order messages costs the
 * receiver a DACK per DLV_ACK_EVERY (256) messages or per ack delay (5 ms),
 * not one per tick that received something; a few messages still get their
 * outcome within the ack delay plus a round trip, not at the
 * retransmission timeout (200 ms); a message lost on the way is repaired
 * by fast retransmission, which needs the receiver to acknowledge
 * out-of-order arrivals at once. */
static void test_delayed_acks(void **state) {
  (void)state;
  ctx_t *c = world(2, 1, 0);
  serve(c, 1, 0);
  wait_served(c, 1, 0);
  dmq_sim_run_for(c->w, 1000);
  /* 10 messages per ms for 200 ms: one DACK per received tick would be 200 */
  uint64_t acks0 = stats(c, 1).acks_sent;
  uint32_t q = 0;
  for (int ms = 0; ms < 200; ms++) {
    for (int b = 0; b < 10; b++, q++)
      assert_int_equal(send_msg(c, 0, 1, 0, q, 60, 1, 0), 0);
    dmq_sim_run_for(c->w, 1);
  }
  dmq_sim_run_for(c->w, 50);
  assert_int_equal(outcomes(c, 0, DMQ_OUTCOME_DELIVERED), q);
  uint64_t acks = stats(c, 1).acks_sent - acks0;
  assert_true(acks >= 200 / 6 && acks <= 200 / 5 + 2);

  /* a burst of 2048: one DACK per 256 at most, and all delivered */
  acks0 = stats(c, 1).acks_sent;
  for (int i = 0; i < 2048; i++, q++)
    assert_int_equal(send_msg(c, 0, 1, 0, q, 60, 1, 0), 0);
  dmq_sim_run_for(c->w, 100);
  assert_int_equal(outcomes(c, 0, DMQ_OUTCOME_DELIVERED), q);
  assert_true(stats(c, 1).acks_sent - acks0 <= 2048 / 256 + 1);

  /* a few messages: DELIVERED after 1 ms there, 5 ms ack delay, 1 ms back */
  uint64_t t0 = dmq_sim_now(c->w);
  for (int i = 0; i < 5; i++, q++)
    assert_int_equal(send_msg(c, 0, 1, 0, q, 60, 1, 0), 0);
  dmq_sim_run_for(c->w, 20);
  assert_int_equal(outcomes(c, 0, DMQ_OUTCOME_DELIVERED), q);
  for (uint32_t id = 0; id < MAXID; id++)
    if (c->accepted[0][id] && c->oat[0][id] > t0)
      assert_true(c->oat[0][id] - t0 <= 8);

  /* one datagram lost: fast retransmission, far below rto_min */
  uint64_t rtx0 = stats(c, 0).retransmits;
  dmq_sim_link_t drop = {1.0, 1, 0, 0, 0}, ok = {0, 1, 0, 0, 0};
  dmq_sim_set_link(c->w, 0, 1, &drop);
  t0 = dmq_sim_now(c->w);
  assert_int_equal(send_msg(c, 0, 1, 0, q++, 60, 1, 0), 0);
  dmq_sim_run_for(c->w, 1);
  dmq_sim_set_link(c->w, 0, 1, &ok);
  for (int i = 0; i < 6; i++) {
    for (int b = 0; b < 20; b++, q++)
      assert_int_equal(send_msg(c, 0, 1, 0, q, 60, 1, 0), 0);
    dmq_sim_run_for(c->w, 1);
  }
  dmq_sim_run_for(c->w, 50);
  assert_int_equal(outcomes(c, 0, DMQ_OUTCOME_DELIVERED), q);
  assert_int_equal(c->rx_disorder, 0);
  assert_int_equal(stats(c, 0).retransmits, rtx0 + 1);
  for (uint32_t id = 0; id < MAXID; id++)
    if (c->accepted[0][id] && c->oat[0][id] > t0)
      assert_true(c->oat[0][id] - t0 <= 20);
  world_free(c);
}

static void big_send(ctx_t *c, size_t len) {
  uint8_t *big = malloc(len);
  assert_non_null(big);
  for (size_t i = 0; i < len; i++)
    big[i] = (uint8_t)(i * 2654435761u >> 13);
  c->big_len = len;
  c->big_sum = sum_bytes(big, len);
  dmq_send_opts_t o;
  dmq_send_opts_init(&o);
  o.mode = DMQ_SEND_RELIABLE;
  o.cb = on_outcome;
  o.user_data = c;
  dmq_msg_id_t id;
  assert_int_equal(dmq_send(dmq_sim_node(c->w, 0), "n1", "usrloc", big, len, &o,
                            dmq_sim_now(c->w), &id),
                   0);
  c->accepted[0][id] = 1;
  dmq_sim_poke(c->w, 0);
  free(big);
}

/* 1 MiB over UDP only (fragments) with 5% loss, and over the stream
 * transport: delivered intact, exactly once. */
static void test_one_mib(void **state) {
  (void)state;
  ctx_t *c = world(2, 0, 1);
  serve(c, 1, 0);
  wait_served(c, 1, 0);
  dmq_sim_link_t l = {0.05, 1, 2, 0, 0};
  dmq_sim_set_default_link(c->w, &l);
  big_send(c, 1u << 20);
  dmq_sim_run_for(c->w, 20000);
  assert_int_equal(c->big_got, 1);
  assert_int_equal(outcomes(c, 0, DMQ_OUTCOME_DELIVERED), 1);
  dmq_delivery_stats_t st = stats(c, 0);
  /* 1320-byte fragments in 1400-byte datagrams */
  assert_true(st.fragments_sent == 795 && st.retransmits > 0);
  st = stats(c, 1);
  assert_true(st.fragments_received >= 794); /* all but the last: MORE */
  assert_true(st.rx_buffered == 0 && st.rx_buffered_bytes == 0);
  dmq_sim_net_stats_t ns;
  dmq_sim_net_stats(c->w, &ns);
  assert_true(ns.lost > 0);
  world_free(c);

  c = world(2, 1, 0);
  serve(c, 1, 0);
  wait_served(c, 1, 0);
  big_send(c, 1u << 20);
  dmq_sim_run_for(c->w, 2000);
  assert_int_equal(c->big_got, 1);
  assert_int_equal(outcomes(c, 0, DMQ_OUTCOME_DELIVERED), 1);
  st = stats(c, 0);
  assert_true(st.fragments_sent == 0 && st.retransmits == 0);
  world_free(c);
}

/* Request/reply round trip; a request nobody answers expires exactly once;
 * a reply after the timeout is ignored. */
static void test_request_reply(void **state) {
  (void)state;
  ctx_t *c = world(2, 1, 0);
  serve(c, 1, 0);
  wait_served(c, 1, 0);
  dmq_msg_id_t id;
  dmq_node_t *n0 = dmq_sim_node(c->w, 0);
  assert_int_equal(dmq_request(n0, "n1", "usrloc", "ping", 4, 1000, on_outcome,
                               c, dmq_sim_now(c->w), &id),
                   0);
  c->accepted[0][id] = 1;
  uint64_t t0 = dmq_sim_now(c->w);
  dmq_sim_poke(c->w, 0);
  dmq_sim_run_for(c->w, 100);
  assert_int_equal(c->ocount[0][id], 1);
  assert_int_equal(c->ocode[0][id], DMQ_OUTCOME_DELIVERED);
  assert_true(c->oat[0][id] - t0 < 20); /* one round trip, not a timer */
  /* the receiver never answers */
  c->reply_mode = 1;
  assert_int_equal(dmq_request(n0, "n1", "usrloc", "ping", 4, 700, on_outcome,
                               c, dmq_sim_now(c->w), &id),
                   0);
  c->accepted[0][id] = 1;
  t0 = dmq_sim_now(c->w);
  dmq_sim_poke(c->w, 0);
  dmq_sim_run_for(c->w, 3000);
  assert_int_equal(c->ocode[0][id], DMQ_OUTCOME_EXPIRED);
  assert_true(c->oat[0][id] - t0 == 700);
  /* a reply that comes after the timeout: slow link back */
  c->reply_mode = 0;
  dmq_sim_link_t slow = {0, 400, 0, 0, 0};
  dmq_sim_set_link(c->w, 1, 0, &slow);
  assert_int_equal(dmq_request(n0, "n1", "usrloc", "ping", 4, 300, on_outcome,
                               c, dmq_sim_now(c->w), &id),
                   0);
  c->accepted[0][id] = 1;
  dmq_sim_poke(c->w, 0);
  dmq_sim_run_for(c->w, 3000);
  assert_int_equal(c->ocode[0][id], DMQ_OUTCOME_EXPIRED);
  assert_int_equal(outcomes(c, 0, DMQ_OUTCOME_EXPIRED), 2);
  dmq_delivery_stats_t st = stats(c, 0);
  assert_true(st.late_replies == 1);
  world_free(c);
}

/* Broadcast reaches the serving members and only them; a member that starts
 * serving later gets later broadcasts; the outcome carries counts. */
static void test_broadcast(void **state) {
  (void)state;
  ctx_t *c = world(5, 1, 0);
  for (int h = 1; h <= 3; h++)
    serve(c, h, 0);
  for (int h = 1; h <= 3; h++)
    wait_served(c, h, 0);
  dmq_node_t *n0 = dmq_sim_node(c->w, 0);
  dmq_send_opts_t o;
  dmq_send_opts_init(&o);
  o.mode = DMQ_SEND_RELIABLE;
  o.cb = on_outcome;
  o.user_data = c;
  dmq_msg_id_t id;
  uint64_t got0[HMAX];
  assert_int_equal(
      dmq_broadcast(n0, "usrloc", "b1", 2, &o, dmq_sim_now(c->w), &id), 0);
  c->accepted[0][id] = 1;
  dmq_sim_poke(c->w, 0);
  dmq_sim_run_for(c->w, 200);
  assert_int_equal(c->rx_total, 3);
  assert_int_equal(c->ocode[0][id], DMQ_OUTCOME_DELIVERED);
  assert_int_equal(c->odelivered[0][id], 3);
  assert_int_equal(c->ofailed[0][id], 0);
  for (int h = 0; h < 5; h++)
    got0[h] = stats(c, h).delivered_app;
  assert_true(got0[0] == 0 && got0[4] == 0);
  assert_true(got0[1] == 1 && got0[2] == 1 && got0[3] == 1);
  /* host 4 starts serving: later broadcasts reach it */
  serve(c, 4, 0);
  wait_served(c, 4, 0);
  assert_int_equal(
      dmq_broadcast(n0, "usrloc", "b2", 2, &o, dmq_sim_now(c->w), &id), 0);
  c->accepted[0][id] = 1;
  dmq_sim_poke(c->w, 0);
  dmq_sim_run_for(c->w, 200);
  assert_int_equal(c->odelivered[0][id], 4);
  assert_true(stats(c, 4).delivered_app == 1);
  /* host 3 dies unnoticed: the broadcast reports 3 delivered, 1 failed */
  dmq_sim_kill(c->w, 3);
  assert_int_equal(
      dmq_broadcast(n0, "usrloc", "b3", 2, &o, dmq_sim_now(c->w), &id), 0);
  c->accepted[0][id] = 1;
  dmq_sim_poke(c->w, 0);
  dmq_sim_run_for(c->w, 500);
  assert_int_equal(c->ocount[0][id], 0); /* waits for host 3 */
  assert_true(
      dmq_sim_expect_state_window(c->w, 0, 3, DMQ_MEMBER_DEAD, 0, 25000));
  dmq_sim_run_for(c->w, 10);
  assert_int_equal(c->ocode[0][id], DMQ_OUTCOME_DEAD);
  assert_int_equal(c->odelivered[0][id], 3);
  assert_int_equal(c->ofailed[0][id], 1);
  assert_int_equal(outcomes(c, 0, DMQ_OUTCOME_DELIVERED), 2);
  world_free(c);
}

/* A slow receiver (paused channel): the sender's window and queue fill,
 * dmq_send returns DMQ_EAGAIN, memory stays bounded on both sides; after
 * unpausing everything arrives in order. */
static void test_paused_receiver_backpressure(void **state) {
  (void)state;
  ctx_t *c = world(2, 1, 0);
  dmq_delivery_config_t dc;
  dmq_delivery_config_init(&dc);
  dc.queue_msgs = 300;
  dc.queue_bytes = 300 * 256;
  assert_int_equal(dmq_delivery_configure(dmq_sim_node(c->w, 0), &dc), 0);
  dmq_delivery_config_init(&dc);
  dc.window = 64;
  assert_int_equal(dmq_delivery_configure(dmq_sim_node(c->w, 1), &dc), 0);
  serve(c, 1, 0);
  serve(c, 1, 1);
  wait_served(c, 1, 0);
  dmq_channel_pause(c->ch[1][0], 1);
  uint32_t q = 0;
  int again = 0;
  for (int step = 0; step < 200 && !again; step++) {
    for (int b = 0; b < 10; b++) {
      int rc = send_msg(c, 0, 1, 0, q, 150, 1, 0);
      if (rc == DMQ_EAGAIN) {
        again = 1;
        break;
      }
      assert_int_equal(rc, 0);
      q++;
    }
    dmq_sim_run_for(c->w, 10);
    dmq_delivery_stats_t s0 = stats(c, 0), s1 = stats(c, 1);
    assert_true(s0.queued_msgs <= 300 && s0.queued_bytes <= 300 * 256);
    assert_true(s0.inflight <= 64 + 10);
    assert_true(s1.rx_buffered <= 64);
    assert_true(s1.rx_buffered_bytes <= 64 * 256);
  }
  assert_true(again);
  assert_int_equal(c->rx_total, 0);
  /* it stays that way (probes only), and nothing expires meanwhile */
  dmq_sim_run_for(c->w, 5000);
  assert_int_equal(c->rx_total, 0);
  assert_true(stats(c, 1).rx_buffered <= 64);
  dmq_channel_pause(c->ch[1][0], 0);
  dmq_sim_poke(c->w, 1);
  dmq_sim_run_for(c->w, 8000);
  assert_int_equal(c->rx_total, q);
  assert_int_equal(c->rx_disorder, 0);
  assert_int_equal(outcomes(c, 0, DMQ_OUTCOME_DELIVERED), q);
  assert_true(c->writable >= 1);
  world_free(c);
}

/* Best effort through 20% loss: some lost, all counted, no outcome. */
static void test_best_effort_lossy(void **state) {
  (void)state;
  ctx_t *c = world(2, 1, 0);
  serve(c, 1, 0);
  wait_served(c, 1, 0);
  dmq_sim_link_t l = {0.2, 1, 2, 0, 0};
  dmq_sim_set_default_link(c->w, &l);
  for (uint32_t q = 0; q < 2000; q++) {
    assert_int_equal(send_msg(c, 0, 1, 0, q, q % 64, 0, 0), 0);
    if (q % 20 == 19)
      dmq_sim_run_for(c->w, 5);
  }
  dmq_sim_run_for(c->w, 1000);
  assert_int_equal(c->noutcomes, 0);
  dmq_delivery_stats_t s0 = stats(c, 0), s1 = stats(c, 1);
  assert_true(s0.sent_be + s0.dropped_be == 2000);
  assert_true(s1.delivered_app == c->rx_total);
  assert_true(c->rx_total < 2000 && c->rx_total > 1200);
  assert_true(s0.retransmits == 0 && s0.sent_reliable == 0);
  assert_true(s1.acks_sent == 0);
  world_free(c);
}

/* Best effort numbered: src sends its message number q (hdr.seq, counted
 * per sender) of len bytes to dst, or broadcasts it (dst < 0). */
static void be_send(ctx_t *c, int src, int dst, uint32_t q, size_t len) {
  static uint8_t buf[4096];
  hdr_t hd = {(uint8_t)src, dst < 0 ? BE_BCAST : (uint8_t)dst, 0, 0, q};
  assert_true(len >= sizeof hd && len <= sizeof buf);
  memset(buf, (int)(q & 0xff), len);
  memcpy(buf, &hd, sizeof hd);
  dmq_send_opts_t o;
  dmq_send_opts_init(&o);
  dmq_node_t *n = dmq_sim_node(c->w, src);
  uint64_t now = dmq_sim_now(c->w);
  if (dst < 0) {
    assert_int_equal(dmq_broadcast(n, chan_name(0), buf, len, &o, now, NULL),
                     0);
  } else {
    char name[16];
    snprintf(name, sizeof name, "n%d", dst);
    assert_int_equal(dmq_send(n, name, chan_name(0), buf, len, &o, now, NULL),
                     0);
  }
  dmq_sim_poke(c->w, src);
}

/* Every best-effort loss is counted by the receiving library. Hosts 0 and
 * 2 send to host 1 and host 0 broadcasts to 1 and 2 (a copy per
 * destination, numbered in that destination's stream), through 20% loss,
 * 10% duplication and jitter that reorders datagrams; some messages are
 * larger than a datagram and take the stream transport (they overtake or
 * trail the datagrams around them). While the loss goes on, what arrived
 * plus what is counted lost never exceeds what was sent (only the tail,
 * not followed by a later message yet, is unknown). Then a loss-free period
 * and one last message per stream make the count exact: per receiver,
 * delivered + rx_lost_be = what the senders put on the wire for it. No
 * message is delivered twice, copies are counted as duplicates, never as
 * deliveries or losses, and late messages are delivered. */
static void test_best_effort_loss_counted(void **state) {
  (void)state;
  ctx_t *c = world(3, 1, 0);
  serve(c, 1, 0);
  serve(c, 2, 0);
  wait_served(c, 1, 0);
  wait_served(c, 2, 0);
  dmq_sim_link_t l = {0.2, 1, 8, 0.1, 0};
  dmq_sim_set_default_link(c->w, &l);
  uint32_t q0 = 0, q2 = 0; /* message numbers of senders 0 and 2 */
  uint32_t uni01 = 0, uni21 = 0, bcast = 0;
  for (int step = 0; step < 500; step++) {
    for (int k = 0; k < 3; k++) {
      be_send(c, 0, 1, q0, sizeof(hdr_t) + (q0 * 37) % 200);
      q0++;
      uni01++;
      be_send(c, 2, 1, q2, sizeof(hdr_t) + (q2 * 53) % 200);
      q2++;
      uni21++;
    }
    be_send(c, 0, -1, q0, sizeof(hdr_t) + (q0 * 11) % 300);
    q0++;
    bcast++;
    if (step % 50 == 25) { /* larger than a datagram: stream transport */
      be_send(c, 0, 1, q0++, 3000);
      uni01++;
      be_send(c, 0, -1, q0++, 2500);
      bcast++;
    }
    dmq_sim_run_for(c->w, 2);
    if (step % 100 == 99) {
      dmq_delivery_stats_t r1 = stats(c, 1), r2 = stats(c, 2);
      assert_true(r1.delivered_app + r1.rx_lost_be <= uni01 + uni21 + bcast);
      assert_true(r2.delivered_app + r2.rx_lost_be <= bcast);
    }
  }
  dmq_delivery_stats_t r1 = stats(c, 1);
  assert_true(r1.rx_lost_be > 0);
  /* loss-free from now on: late datagrams land, then one more message per
   * stream reveals the gaps at every tail */
  dmq_sim_link_t clean = {0, 1, 0, 0, 0};
  dmq_sim_set_default_link(c->w, &clean);
  dmq_sim_run_for(c->w, 500);
  be_send(c, 0, -1, q0++, sizeof(hdr_t));
  bcast++;
  be_send(c, 2, 1, q2++, sizeof(hdr_t));
  uni21++;
  dmq_sim_run_for(c->w, 500);
  assert_int_equal(dmq_sim_false_deaths(c->w), 0);
  dmq_delivery_stats_t s0 = stats(c, 0), s2 = stats(c, 2);
  r1 = stats(c, 1);
  dmq_delivery_stats_t r2 = stats(c, 2);
  /* put on the wire: everything, a broadcast copy for each of 1 and 2 */
  assert_int_equal(s0.dropped_be, 0);
  assert_int_equal(s2.dropped_be, 0);
  assert_int_equal(s0.sent_be, uni01 + 2 * bcast);
  assert_int_equal(s2.sent_be, uni21);
  /* the receive callbacks saw what the library says it delivered */
  assert_int_equal(r1.delivered_app, c->be_rx[0][1] + c->be_rx[2][1]);
  assert_int_equal(r2.delivered_app, c->be_rx[0][2]);
  /* exact: every message put on the wire is delivered or counted lost */
  assert_int_equal(r1.delivered_app + r1.rx_lost_be, uni01 + bcast + uni21);
  assert_int_equal(r2.delivered_app + r2.rx_lost_be, bcast);
  assert_true(r1.rx_lost_be > 0 && r2.rx_lost_be > 0);
  assert_true(r1.duplicates > 0 && r2.duplicates > 0);
  assert_true(c->be_late > 0);
  assert_int_equal(c->noutcomes, 0);
  dmq_sim_net_stats_t ns;
  dmq_sim_net_stats(c->w, &ns);
  assert_true(ns.lost > 0 && ns.duplicated > 0);
  world_free(c);
}

/* A message to a SUSPECT member waits (it is not failed): the member,
 * unable to answer for a while, is suspected, refutes, and everything is
 * delivered exactly once. */
static void test_suspect_waits(void **state) {
  (void)state;
  ctx_t *c = world(3, 1, 0);
  serve(c, 1, 0);
  wait_served(c, 1, 0);
  int a[] = {1}, b[] = {0, 2};
  dmq_sim_block(c->w, a, 1, b, 2); /* host 1 receives but cannot answer */
  for (uint32_t q = 0; q < 20; q++)
    assert_int_equal(send_msg(c, 0, 1, 0, q, 20, 1, 0), 0);
  assert_true(
      dmq_sim_expect_state_window(c->w, 0, 1, DMQ_MEMBER_SUSPECT, 0, 5000));
  assert_int_equal(c->rx_total, 20); /* delivered, not acknowledged */
  for (uint32_t id = 0; id < MAXID; id++)
    assert_int_equal(c->ocount[0][id], 0);
  dmq_sim_heal(c->w);
  assert_true(dmq_sim_expect_seen_by_all(c->w, 1, DMQ_MEMBER_ALIVE, 10000));
  dmq_sim_run_for(c->w, 6000);
  assert_int_equal(outcomes(c, 0, DMQ_OUTCOME_DELIVERED), 20);
  assert_int_equal(c->rx_total, 20);
  assert_int_equal(c->rx_disorder, 0);
  assert_true(stats(c, 1).duplicates > 0);
  world_free(c);
}

/* The sender forgets (reaps) a receiver that kept its stream state (it was
 * paused, not dead): when they meet again the sender's numbering continues
 * where it was, so new messages are delivered, not mistaken for duplicates
 * and falsely acknowledged. */
static void test_reaped_and_back_keeps_sequence(void **state) {
  (void)state;
  ctx_t *c = world_forgetful();
  for (uint32_t q = 0; q < 5; q++)
    assert_int_equal(send_msg(c, 0, 1, 0, q, 20, 1, 0), 0);
  dmq_sim_run_for(c->w, 500);
  assert_int_equal(c->rx_total, 5);
  forget_and_meet_again(c, 1, 0);
  for (uint32_t q = 5; q < 10; q++)
    assert_int_equal(send_msg(c, 0, 1, 0, q, 20, 1, 0), 0);
  dmq_sim_run_for(c->w, 2000);
  assert_int_equal(c->rx_total, 10);
  assert_int_equal(c->rx_disorder, 0);
  assert_int_equal(outcomes(c, 0, DMQ_OUTCOME_DELIVERED), 10);
  world_free(c);
}

/* Best-effort numbering survives either side forgetting the other: the
 * sender reaps a receiver that kept its state (paused, not dead) and later
 * continues its numbers, so new messages are not taken for copies; the
 * receiver reaps a sender that kept going, and does not count the numbers
 * it already saw as lost. */
static void test_best_effort_reaped_and_back(void **state) {
  (void)state;
  ctx_t *c = world_forgetful();
  uint32_t q = 0;
  for (int side = 0; side < 2; side++) { /* pause the receiver, the sender */
    for (int k = 0; k < 5; k++)
      be_send(c, 0, 1, q++, sizeof(hdr_t) + 8);
    dmq_sim_run_for(c->w, 500);
    assert_int_equal(c->be_rx[0][1], q);
    int paused = side == 0 ? 1 : 0;
    forget_and_meet_again(c, paused, 1 - paused);
    for (int k = 0; k < 5; k++)
      be_send(c, 0, 1, q++, sizeof(hdr_t) + 8);
    dmq_sim_run_for(c->w, 500);
    assert_int_equal(c->be_rx[0][1], q);
    dmq_delivery_stats_t r1 = stats(c, 1);
    assert_int_equal(r1.rx_lost_be, 0);
    assert_int_equal(r1.duplicates, 0);
  }
  assert_int_equal(stats(c, 0).sent_be, q);
  world_free(c);
}

/* Messages that reached the receiver but waited there (paused channel)
 * past their TTL are never delivered: the sender reports EXPIRED and the
 * receiver drops them when the channel reopens; the stream goes on. */
static void test_held_past_ttl_never_delivered(void **state) {
  (void)state;
  ctx_t *c = world(2, 1, 0);
  serve(c, 1, 0);
  wait_served(c, 1, 0);
  dmq_channel_pause(c->ch[1][0], 1);
  for (uint32_t q = 0; q < 10; q++)
    assert_int_equal(send_msg(c, 0, 1, 0, q, 20, 1, 1000), 0);
  dmq_sim_run_for(c->w, 500);
  assert_true(stats(c, 1).rx_buffered == 10);
  dmq_sim_run_for(c->w, 2500);
  assert_int_equal(outcomes(c, 0, DMQ_OUTCOME_EXPIRED), 10);
  dmq_channel_pause(c->ch[1][0], 0);
  dmq_sim_poke(c->w, 1);
  dmq_sim_run_for(c->w, 500);
  assert_int_equal(c->rx_total, 0);
  dmq_delivery_stats_t st = stats(c, 1);
  assert_true(st.rx_buffered == 0 && st.rx_expired == 10);
  c->next[0][1][0] = 10;
  for (uint32_t q = 10; q < 15; q++)
    assert_int_equal(send_msg(c, 0, 1, 0, q, 20, 1, 0), 0);
  dmq_sim_run_for(c->w, 500);
  assert_int_equal(c->rx_total, 5);
  assert_int_equal(c->rx_disorder, 0);
  assert_int_equal(outcomes(c, 0, DMQ_OUTCOME_DELIVERED), 5);
  world_free(c);
}

/* A paused member no longer blocks broadcasts (through 10 % loss and
 * jitter): broadcasts keep being accepted, the paused member's copies
 * stop at its queue bound and the others are reported refused
 * (QUEUE_FULL, counted in failed and refused); every accepted broadcast
 * has exactly one outcome, and the counts add up: what the outcomes call
 * delivered is what the receivers' callbacks got, what they call failed
 * is what was refused. */
static void test_partial_broadcast_paused_member(void **state) {
  (void)state;
  ctx_t *c = world(4, 1, 0);
  dmq_delivery_config_t dc;
  dmq_delivery_config_init(&dc);
  dc.queue_msgs = 50;
  assert_int_equal(dmq_delivery_configure(dmq_sim_node(c->w, 0), &dc), 0);
  for (int h = 1; h <= 3; h++)
    serve(c, h, 0);
  for (int h = 1; h <= 3; h++)
    wait_served(c, h, 0);
  dmq_sim_link_t l = {0.10, 1, 2, 0.0, 0};
  dmq_sim_set_default_link(c->w, &l);
  dmq_channel_pause(c->ch[3][0], 1);
  dmq_node_t *n0 = dmq_sim_node(c->w, 0);
  dmq_send_opts_t o;
  dmq_send_opts_init(&o);
  o.mode = DMQ_SEND_RELIABLE;
  o.cb = on_outcome;
  o.user_data = c;
  uint32_t accepted = 0, again = 0;
  for (int step = 0; step < 60; step++) {
    for (int b = 0; b < 10; b++) {
      dmq_msg_id_t id;
      int rc = dmq_broadcast(n0, "usrloc", "bc", 2, &o, dmq_sim_now(c->w), &id);
      if (rc == DMQ_EAGAIN) { /* hosts 1 and 2 stalled by a loss too */
        again++;
        break;
      }
      assert_int_equal(rc, 0);
      assert_true(id < MAXID);
      c->accepted[0][id] = 1;
      accepted++;
    }
    dmq_sim_poke(c->w, 0);
    dmq_sim_run_for(c->w, 10);
  }
  /* Host 3's full queue must not refuse the others' copies: stalled by
   * it, n0 would accept about queue_msgs (50). A loss that stalls hosts 1
   * and 2 until a retransmission costs up to 10 sends per EAGAIN, so the
   * two bounds agree: fewer than 20 EAGAINs, at least 400 accepted (seed
   * 94: 18 EAGAINs, 420 accepted; 1 seed in 1400 had more than 4). */
  assert_true(again < 20);
  assert_true(accepted >= 600 - 10 * again);
  assert_true(accepted >= 400);
  dmq_sim_run_for(c->w, 2000);
  assert_int_equal(stats(c, 3).delivered_app, 0);
  dmq_channel_pause(c->ch[3][0], 0);
  dmq_sim_poke(c->w, 3);
  dmq_sim_set_default_link(c->w, &(dmq_sim_link_t){0.0, 1, 0, 0.0, 0});
  dmq_sim_run_for(c->w, 10000);
  /* host 3 got exactly what fitted its queue while paused */
  assert_int_equal(stats(c, 3).delivered_app, dc.queue_msgs);
  uint64_t delivered = 0, failed = 0, refused = 0, partial = 0;
  for (uint32_t id = 0; id < MAXID; id++) {
    if (!c->accepted[0][id])
      continue;
    assert_int_equal(c->odelivered[0][id] + c->ofailed[0][id], 3);
    assert_int_equal(c->ofailed[0][id], c->orefused[0][id]);
    assert_int_equal(c->ocode[0][id], c->orefused[0][id]
                                          ? DMQ_OUTCOME_QUEUE_FULL
                                          : DMQ_OUTCOME_DELIVERED);
    delivered += c->odelivered[0][id];
    failed += c->ofailed[0][id];
    refused += c->orefused[0][id];
    partial += c->orefused[0][id] > 0;
  }
  outcomes(c, 0, DMQ_OUTCOME_DELIVERED); /* exactly one each */
  assert_true(partial >= accepted - dc.queue_msgs);
  assert_int_equal(delivered, stats(c, 1).delivered_app +
                                  stats(c, 2).delivered_app +
                                  stats(c, 3).delivered_app);
  assert_int_equal(failed, refused);
  assert_int_equal(stats(c, 0).bcast_refused, refused);
  assert_int_equal(stats(c, 0).queued_msgs, 0);
  assert_true(c->writable >= 1); /* host 3 is told it has room again */
  world_free(c);
}

/* A member that opens and then closes a channel is seen doing so by every
 * other member (gossip, through 5 % loss): one CHANNELS_UPDATED per change
 * at least, and dmq_member_channels() gives the new set. */
static int seen_chans_event(ctx_t *c, int obs, int subj, size_t from) {
  const dmq_sim_event_t *e = dmq_sim_events(c->w);
  size_t n = dmq_sim_event_count(c->w);
  for (size_t i = from; i < n; i++)
    if (e[i].observer == obs && e[i].subject == subj &&
        e[i].ev == DMQ_EVENT_CHANNELS_UPDATED)
      return 1;
  return 0;
}

static void wait_chans_event(ctx_t *c, int subj, size_t from) {
  for (int t = 0; t < 1000; t++) {
    int all = 1;
    for (int i = 0; i < c->nh; i++)
      if (i != subj && !seen_chans_event(c, i, subj, from))
        all = 0;
    if (all)
      return;
    dmq_sim_run_for(c->w, 10);
  }
  fail_msg("seed=0x%llx: CHANNELS_UPDATED of n%d not seen by all",
           (unsigned long long)dmq_sim_seed(c->w), subj);
}

static void test_channels_updated_gossiped(void **state) {
  (void)state;
  ctx_t *c = world(6, 0, 0);
  dmq_sim_link_t l = {0.05, 1, 1, 0.0, 0};
  dmq_sim_set_default_link(c->w, &l);
  size_t from = dmq_sim_event_count(c->w);
  serve(c, 2, 1);
  wait_chans_event(c, 2, from);
  for (int i = 0; i < c->nh; i++) {
    const char *v[4];
    size_t k = 0;
    assert_int_equal(dmq_member_channels(dmq_sim_node(c->w, i), "n2", v, 4, &k),
                     0);
    assert_int_equal(k, 1);
    assert_string_equal(v[0], "htable");
  }
  from = dmq_sim_event_count(c->w);
  assert_int_equal(dmq_channel_close(c->ch[2][1]), 0);
  c->ch[2][1] = NULL;
  dmq_sim_poke(c->w, 2);
  wait_chans_event(c, 2, from);
  for (int i = 0; i < c->nh; i++) {
    size_t k = 9;
    assert_int_equal(
        dmq_member_channels(dmq_sim_node(c->w, i), "n2", NULL, 0, &k), 0);
    assert_int_equal(k, 0);
  }
  /* nobody else changed */
  const dmq_sim_event_t *e = dmq_sim_events(c->w);
  for (size_t i = 0; i < dmq_sim_event_count(c->w); i++)
    if (e[i].ev == DMQ_EVENT_CHANNELS_UPDATED)
      assert_int_equal(e[i].subject, 2);
  world_free(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lossy_exactly_once_in_order),
      cmocka_unit_test(test_partition_longer_than_ttl),
      cmocka_unit_test(test_mixed_ttls),
      cmocka_unit_test(test_receiver_killed_and_restarted),
      cmocka_unit_test(test_queue_full_writable),
      cmocka_unit_test(test_delayed_acks),
      cmocka_unit_test(test_one_mib),
      cmocka_unit_test(test_request_reply),
      cmocka_unit_test(test_broadcast),
      cmocka_unit_test(test_paused_receiver_backpressure),
      cmocka_unit_test(test_best_effort_lossy),
      cmocka_unit_test(test_best_effort_loss_counted),
      cmocka_unit_test(test_suspect_waits),
      cmocka_unit_test(test_reaped_and_back_keeps_sequence),
      cmocka_unit_test(test_best_effort_reaped_and_back),
      cmocka_unit_test(test_held_past_ttl_never_delivered),
      cmocka_unit_test(test_partial_broadcast_paused_member),
      cmocka_unit_test(test_channels_updated_gossiped),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
