/* Digest anti-entropy (src/antientropy.c): DIGEST and DIFF bytes, the
 * decoder's bounds, and exchanges between two nodes on the in-memory
 * transport with hand-made tables (no deadline fires unless a test ticks,
 * so the tables stay as built).
 *
 * A table of `fakes` members is given to both nodes by a push/pull from a
 * third name ("z", at an address nobody listens on), then made to differ
 * with single messages to one side. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "antientropy.h"
#include "internal.h"
#include "members.h"
#include "memnet.h"
#include "wire.h"

#define Q_MAX 4096
#define BIG 262144

static uint8_t pkt[BIG];

static dmq__slice_t sl(const char *s) {
  dmq__slice_t x = {s, strlen(s)};
  return x;
}

static void hexeq(const uint8_t *got, size_t len, const char *hex) {
  char s[1024];
  assert_true(len * 2 < sizeof s);
  for (size_t i = 0; i < len; i++)
    snprintf(s + 2 * i, 3, "%02x", got[i]);
  assert_string_equal(s, hex);
}

/* ---- golden bytes (worked out by hand from docs/wire.md) ---- */

static void test_golden(void **state) {
  (void)state;
  dmq__enc_t e;
  const uint8_t h[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  assert_int_equal(dmq__enc_begin(&e, pkt, sizeof pkt, NULL, 0, "a", 1), 0);
  assert_int_equal(dmq__enc_digest(&e, 0, 0, 3, h), 0);
  size_t len = dmq__enc_end(&e);
  /* D Q 1 0 | [ "a", array32(1) [ [12, 0, 0, 3, bin8] ] ] */
  hexeq(pkt, len,
        "445101009"
        "2a161dd00000001"
        "950c000003c4080102030405060708");
  assert_int_equal(len - dmq__enc_size_envelope(1), dmq__enc_size_digest(0, 3));

  /* DIFF, k = 3, buckets 0 and 2, one record */
  const uint8_t mask[1] = {0x05};
  dmq__record_t r = {sl("m"), sl("mem://7"),     {NULL, 0}, 2, 1,
                     0,       {0, NULL, NULL, 0}};
  size_t pos;
  assert_int_equal(dmq__enc_begin(&e, pkt, sizeof pkt, NULL, 0, "a", 1), 0);
  assert_int_equal(dmq__enc_diff_begin(&e, DMQ__AE_REPLY, 3, mask, &pos), 0);
  assert_int_equal(dmq__enc_record(&e, &r), 0);
  dmq__enc_diff_end(&e, pos, 1);
  len = dmq__enc_end(&e);
  hexeq(pkt, len,
        "445101009"
        "2a161dd00000001"
        "950d0103c40105dd00000001"
        "96a16da76d656d3a2f2f37020100c400");

  /* and they decode to what was encoded */
  dmq__envelope_t env;
  dmq__msg_iter_t it;
  dmq__msg_t m;
  assert_int_equal(dmq__wire_open(pkt, len, &env), 0);
  dmq__wire_msgs(&env, &it);
  assert_int_equal(dmq__wire_next(&it, &m), 1);
  assert_int_equal(m.type, DMQ__MSG_DIFF);
  assert_int_equal(m.flag, DMQ__AE_REPLY);
  assert_int_equal(m.ae_k, 3);
  assert_int_equal(m.ae_bin.n, 1);
  assert_int_equal(m.rec_count, 1);

  /* the encoder refuses what the decoder would */
  const uint8_t stray[1] = {0x10}; /* bit 4 of 4 buckets */
  assert_int_equal(dmq__enc_begin(&e, pkt, sizeof pkt, NULL, 0, "a", 1), 0);
  assert_int_equal(dmq__enc_diff_begin(&e, 0, 2, stray, &pos), DMQ_EINVAL);
  assert_int_equal(dmq__enc_diff_begin(&e, 0, 0, mask, &pos), DMQ_EINVAL);
  assert_int_equal(dmq__enc_digest(&e, 0, DMQ__AE_MAX_K + 1, 0, h), DMQ_EINVAL);
}

/* ---- malformed input: counted drops, nothing sent ---- */

/* A packet from "a" holding one raw message (msgpack bytes). */
static size_t raw_packet(const uint8_t *msg, size_t n) {
  const uint8_t head[] = {0x44, 0x51, 1, 0, 0x92, 0xa1, 'a', 0xdd, 0, 0, 0, 1};
  memcpy(pkt, head, sizeof head);
  memcpy(pkt + sizeof head, msg, n);
  return sizeof head + n;
}

static void test_malformed(void **state) {
  (void)state;
  memnet_t net;
  memnet_tp_t tp;
  dmq_node_t *node;
  memnet_init(&net, Q_MAX);
  assert_int_equal(memnet_node_new(&net, &tp, 0, NULL, &node), 0);
  assert_int_equal(dmq_node_start(node, 0), 0);
  static const struct {
    const char *what;
    uint8_t b[32];
    size_t n;
  } bad[] = {
      {"digest bin too short", {0x95, 0x0c, 0, 0, 1, 0xc4, 4, 1, 2, 3, 4}, 11},
      {"digest k=1 with 8 bytes",
       {0x95, 0x0c, 0, 1, 1, 0xc4, 8, 1, 2, 3, 4, 5, 6, 7, 8},
       15},
      {"digest k over the bound", {0x95, 0x0c, 0, 11, 1, 0xc4, 0}, 7},
      {"digest count negative",
       {0x95, 0x0c, 0, 0, 0xff, 0xc4, 8, 1, 2, 3, 4, 5, 6, 7, 8},
       15},
      {"digest missing the hashes", {0x94, 0x0c, 0, 0, 1}, 5},
      {"diff k=0", {0x95, 0x0d, 0, 0, 0xc4, 1, 1, 0x90}, 8},
      {"diff stray mask bit", {0x95, 0x0d, 0, 2, 0xc4, 1, 0x10, 0x90}, 8},
      {"diff mask too long", {0x95, 0x0d, 0, 3, 0xc4, 2, 1, 0, 0x90}, 9},
      {"diff records not an array", {0x95, 0x0d, 0, 3, 0xc4, 1, 1, 0x01}, 8},
      {"diff bad record", {0x95, 0x0d, 0, 3, 0xc4, 1, 1, 0x91, 0x92, 1, 2}, 11},
      {"diff record count over the bytes",
       {0x95, 0x0d, 0, 3, 0xc4, 1, 1, 0xdd, 0, 1, 0, 0},
       12},
  };
  dmq_stats_t st;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    dmq_node_stats(node, &st);
    uint64_t before = st.drops[DMQ_DROP_MALFORMED], out = st.pkts_out;
    size_t len = raw_packet(bad[i].b, bad[i].n);
    dmq_node_recv(node, &tp.t, "mem://5", pkt, len, 0);
    dmq_node_stats(node, &st);
    if (st.drops[DMQ_DROP_MALFORMED] != before + 1)
      fail_msg("%s: not counted as malformed", bad[i].what);
    assert_int_equal(st.pkts_out, out);
  }
  /* a well-formed DIGEST from a non-member: one reply, NOT_MEMBER, of the
   * request's size; a DIFF from a non-member: counted, not answered */
  const uint8_t ok[] = {0x95, 0x0c, 0, 0, 1, 0xc4, 8, 1, 2, 3, 4, 5, 6, 7, 8};
  dmq_node_stats(node, &st);
  uint64_t out = st.pkts_out;
  memnet_free(&net);
  memnet_init(&net, Q_MAX);
  dmq_node_recv(node, &tp.t, "mem://5", pkt, raw_packet(ok, sizeof ok), 0);
  dmq_node_stats(node, &st);
  assert_int_equal(st.pkts_out, out + 1);
  assert_int_equal(net.tail - net.head, 1);
  memnet_pkt_t *q = &net.q[net.head];
  assert_int_equal(q->to, 5);
  dmq__envelope_t env;
  dmq__msg_iter_t it;
  dmq__msg_t m;
  assert_int_equal(dmq__wire_open(q->buf, q->len, &env), 0);
  dmq__wire_msgs(&env, &it);
  assert_int_equal(dmq__wire_next(&it, &m), 1);
  assert_int_equal(m.type, DMQ__MSG_DIGEST);
  assert_int_equal(m.flag, DMQ__AE_REPLY | DMQ__AE_NOT_MEMBER);
  assert_true(q->len <= raw_packet(ok, sizeof ok) + 8);
  const uint8_t diff[] = {0x95, 0x0d, 0, 3, 0xc4, 1, 1, 0x90};
  dmq_node_recv(node, &tp.t, "mem://5", pkt, raw_packet(diff, sizeof diff), 0);
  dmq_node_stats(node, &st);
  assert_int_equal(st.drops[DMQ_DROP_UNKNOWN_SENDER], 1);
  assert_int_equal(st.pkts_out, out + 1);
  dmq_node_delete(node);
  memnet_free(&net);
}

/* ---- exchanges ---- */

typedef struct two {
  memnet_t net;
  memnet_tp_t tp[2];
  dmq_node_t *node[2];
  uint64_t now;
} two_t;

static void fake_name(char *b, size_t cap, int i) {
  snprintf(b, cap, "fake-member-%04d", i);
}

/* Drop whatever is queued on the network (the test's own sends, or a
 * datagram it makes lost). */
static void net_reset(two_t *t) {
  memnet_free(&t->net);
  memnet_init(&t->net, Q_MAX);
  t->net.max_len = BIG;
}

/* Both nodes started, each knowing the other and `fakes` members. */
static void two_init(two_t *t, int fakes) {
  memset(t, 0, sizeof *t);
  memnet_init(&t->net, Q_MAX);
  t->net.max_len = BIG;
  for (int i = 0; i < 2; i++) {
    assert_int_equal(memnet_node_new(&t->net, &t->tp[i], i, NULL, &t->node[i]),
                     0);
    assert_int_equal(dmq_node_start(t->node[i], 0), 0);
  }
  dmq__enc_t e;
  assert_int_equal(dmq__enc_begin(&e, pkt, sizeof pkt, NULL, 0, "z", 1), 0);
  assert_int_equal(dmq__enc_pushpull_begin(&e, 0, (uint32_t)fakes + 2), 0);
  for (int i = 0; i < 2; i++) {
    char name[8], addr[16];
    snprintf(name, sizeof name, "n%d", i);
    snprintf(addr, sizeof addr, "mem://%d", i);
    dmq__record_t r = {sl(name), sl(addr), {NULL, 0},         0,
                       1,        0,        {0, NULL, NULL, 0}};
    assert_int_equal(dmq__enc_record(&e, &r), 0);
  }
  for (int i = 0; i < fakes; i++) {
    char name[32];
    fake_name(name, sizeof name, i);
    dmq__record_t r = {sl(name), sl("mem://99"),    {NULL, 0}, 3, 7,
                       0,        {0, NULL, NULL, 0}};
    assert_int_equal(dmq__enc_record(&e, &r), 0);
  }
  size_t len = dmq__enc_end(&e);
  for (int i = 0; i < 2; i++)
    assert_int_equal(
        dmq_node_recv(t->node[i], &t->tp[i].t, "mem://9", pkt, len, 0), 0);
  net_reset(t);               /* the answers to "z" */
  for (int i = 0; i < 2; i++) /* count from here */
    memset(&t->node[i]->stats, 0, sizeof t->node[i]->stats);
}

static void two_free(two_t *t) {
  for (int i = 0; i < 2; i++)
    dmq_node_delete(t->node[i]);
  memnet_free(&t->net);
}

static uint64_t bytes_out(dmq_node_t *n) {
  dmq_stats_t st;
  dmq_node_stats(n, &st);
  return st.bytes_out;
}

static uint64_t pkts_out(dmq_node_t *n) {
  dmq_stats_t st;
  dmq_node_stats(n, &st);
  return st.pkts_out;
}

/* One digest exchange started by node 0; returns the bytes both sent. */
static uint64_t exchange(two_t *t) {
  uint64_t b = bytes_out(t->node[0]) + bytes_out(t->node[1]);
  dmq__member_t *peer = dmq__member_find(t->node[0], "n1", 2);
  assert_non_null(peer);
  dmq__ae_round(t->node[0], peer, 0);
  memnet_deliver(&t->net, t->node, t->tp, 2, t->now);
  return bytes_out(t->node[0]) + bytes_out(t->node[1]) - b;
}

static uint64_t root(dmq_node_t *n) {
  uint64_t r;
  dmq__ae_sums(n, 0, &r);
  return r;
}

static void test_in_sync_is_small_whatever_n(void **state) {
  (void)state;
  const int sizes[] = {0, 20, 1000};
  for (size_t s = 0; s < 3; s++) {
    two_t t;
    two_init(&t, sizes[s]);
    assert_int_equal(t.node[0]->nmembers, (uint32_t)sizes[s] + 2);
    assert_true(root(t.node[0]) == root(t.node[1]));
    uint64_t p = pkts_out(t.node[0]) + pkts_out(t.node[1]);
    uint64_t b = exchange(&t);
    /* two datagrams: DIGEST and its in-sync reply, 27 + 2 bytes each here
     * (sender "n0"/"n1", count up to 65535 in 3 bytes) */
    assert_int_equal(pkts_out(t.node[0]) + pkts_out(t.node[1]) - p, 2);
    assert_true(b <= 64);
    assert_int_equal(t.node[0]->ae_pending, 0);
    assert_int_equal(t.node[0]->stats.pushpull_sent, 0);
    two_free(&t);
  }
}

static dmq__member_t *fake(dmq_node_t *n, int i) {
  char name[32];
  fake_name(name, sizeof name, i);
  return dmq__member_find(n, name, strlen(name));
}

/* Send node `to` one raw gossip message, from the fake "z". */
static void tell(two_t *t, int to, int kind, int i, uint64_t inc) {
  char name[32];
  fake_name(name, sizeof name, i);
  dmq__enc_t e;
  assert_int_equal(dmq__enc_begin(&e, pkt, sizeof pkt, NULL, 0, "z", 1), 0);
  if (kind == DMQ__MSG_ALIVE)
    assert_int_equal(dmq__enc_alive(&e, sl(name), sl("mem://98"), inc, 7,
                                    (dmq__slice_t){NULL, 0}, NULL),
                     0);
  else
    assert_int_equal(dmq__enc_dead(&e, sl(name), inc, 7, sl("z")), 0);
  size_t len = dmq__enc_end(&e);
  assert_int_equal(
      dmq_node_recv(t->node[to], &t->tp[to].t, "mem://9", pkt, len, t->now), 0);
}

/* Divergent both ways, repaired by one exchange over the digest path. */
static void divergence(int fakes) {
  two_t t;
  two_init(&t, fakes);
  tell(&t, 0, DMQ__MSG_ALIVE, 1, 9);         /* newer at n0 */
  tell(&t, 0, DMQ__MSG_ALIVE, fakes, 1);     /* only n0 knows it */
  tell(&t, 0, DMQ__MSG_DEAD, 2, 3);          /* dead at n0 */
  tell(&t, 1, DMQ__MSG_ALIVE, fakes + 1, 1); /* only n1 knows it */
  tell(&t, 1, DMQ__MSG_ALIVE, 3, 5);         /* newer at n1 */
  net_reset(&t); /* gossip piggybacked on anything: not the test */
  assert_true(root(t.node[0]) != root(t.node[1]));
  uint64_t b = exchange(&t);
  assert_int_equal(t.node[0]->stats.pushpull_sent, 0);
  assert_int_equal(t.node[1]->stats.pushpull_sent, 0);
  for (int i = 0; i < 2; i++) {
    dmq_node_t *n = t.node[i];
    assert_non_null(fake(n, 1));
    assert_int_equal(fake(n, 1)->inc, 9);
    assert_non_null(fake(n, fakes));
    assert_non_null(fake(n, fakes + 1));
    assert_int_equal(fake(n, 3)->inc, 5);
  }
  /* a remote death is a suspicion, as in a push/pull */
  assert_int_equal(fake(t.node[0], 2)->state, DMQ_MEMBER_DEAD);
  assert_int_equal(fake(t.node[1], 2)->state, DMQ_MEMBER_SUSPECT);
  /* only the differing buckets travelled: far less than the tables */
  if (fakes >= 500)
    assert_true(b < (uint64_t)fakes * 10);
  two_free(&t);
}

static void test_divergence_repaired(void **state) {
  (void)state;
  divergence(10);
  divergence(1000); /* the DIFF goes over the stream class */
}

/* Hand the queued packets over one by one (as memnet_deliver), adding up
 * the records of the DIFF requests and of the DIFF replies on the way. */
static void deliver_counting(two_t *t, uint32_t *req, uint32_t *rep) {
  memnet_t *net = &t->net;
  while (net->head < net->tail) {
    memnet_pkt_t k = net->q[net->head % net->cap];
    net->q[net->head++ % net->cap].buf = NULL;
    dmq__envelope_t env;
    dmq__msg_iter_t it;
    dmq__msg_t m;
    assert_int_equal(dmq__wire_open(k.buf, k.len, &env), 0);
    dmq__wire_msgs(&env, &it);
    while (dmq__wire_next(&it, &m) == 1) {
      if (m.type != DMQ__MSG_DIFF)
        continue;
      dmq__rec_iter_t ri;
      dmq__record_t r;
      dmq__wire_records(&m, &ri);
      uint32_t c = 0;
      while (dmq__wire_next_record(&ri, &r) == 1)
        c++;
      *((m.flag & DMQ__AE_REPLY) ? rep : req) += c;
    }
    dmq_node_recv(t->node[k.to], &t->tp[k.to].t, t->tp[k.from].addr, k.buf,
                  k.len, t->now);
    free(k.buf);
  }
}

static int echo_marks(dmq_node_t *n) {
  int c = 0;
  for (uint32_t i = 0; i < n->nmembers; i++)
    c += n->members[i]->ae_echo != 0;
  return c;
}

/* A DIFF reply leaves out what the request carried as the replier holds
 * it: n0 knows 200 members that n1 knows too, n1 300 more. n1's reply
 * carries the 300, the one n1 holds newer and n1's own record, not the
 * 200 back again; the one n0 held newer is not echoed either. */
static void test_reply_leaves_out_echo(void **state) {
  (void)state;
  two_t t;
  two_init(&t, 200);
  for (int i = 200; i < 500; i++)
    tell(&t, 1, DMQ__MSG_ALIVE, i, 1);
  tell(&t, 0, DMQ__MSG_ALIVE, 5, 9); /* newer at n0 */
  tell(&t, 1, DMQ__MSG_ALIVE, 6, 9); /* newer at n1 */
  net_reset(&t);
  dmq__ae_round(t.node[0], dmq__member_find(t.node[0], "n1", 2), 0);
  uint32_t req = 0, rep = 0;
  deliver_counting(&t, &req, &rep);
  /* (every bucket differs: 300 new over 64 buckets) */
  assert_int_equal(req, 202);
  assert_int_equal(rep, 300 + 1 + 1);
  assert_true(root(t.node[0]) == root(t.node[1]));
  assert_non_null(fake(t.node[0], 499));
  assert_int_equal(fake(t.node[0], 6)->inc, 9);
  assert_int_equal(fake(t.node[1], 5)->inc, 9);
  assert_int_equal(echo_marks(t.node[0]), 0);
  assert_int_equal(echo_marks(t.node[1]), 0);
  /* a request left unanswered (n1 is leaving) leaves no mark behind */
  for (int i = 500; i < 520; i++)
    tell(&t, 1, DMQ__MSG_ALIVE, i, 1);
  net_reset(&t);
  dmq__ae_round(t.node[0], dmq__member_find(t.node[0], "n1", 2), 0);
  memnet_deliver(&t.net, t.node, t.tp, 1, t.now); /* the DIGEST is lost */
  dmq__ae_round(t.node[0], dmq__member_find(t.node[0], "n1", 2), 0);
  memnet_pkt_t k = t.net.q[t.net.head % t.net.cap]; /* the DIGEST */
  t.net.q[t.net.head++ % t.net.cap].buf = NULL;
  dmq_node_recv(t.node[1], &t.tp[1].t, t.tp[0].addr, k.buf, k.len, t.now);
  free(k.buf);
  k = t.net.q[t.net.head % t.net.cap]; /* its reply */
  t.net.q[t.net.head++ % t.net.cap].buf = NULL;
  dmq_node_recv(t.node[0], &t.tp[0].t, t.tp[1].addr, k.buf, k.len, t.now);
  free(k.buf);
  assert_int_equal(t.net.tail - t.net.head, 1); /* n0's DIFF */
  t.node[1]->leaving = 1;
  req = rep = 0;
  deliver_counting(&t, &req, &rep);
  assert_true(req > 0);
  assert_int_equal(rep, 0);
  assert_int_equal(echo_marks(t.node[1]), 0);
  two_free(&t);
}

/* n1 is a node of before: it skips DIGEST; n0 sends the DIGEST again on
 * the reliable class, which n1 skips too, then falls back to a full
 * push/pull, which repairs the difference. */
static void test_mixed_falls_back(void **state) {
  (void)state;
  two_t t;
  two_init(&t, 50);
  t.node[1]->ae_off = 1;
  tell(&t, 0, DMQ__MSG_ALIVE, 50, 1);
  net_reset(&t);
  exchange(&t);
  dmq_stats_t st;
  dmq_node_stats(t.node[1], &st);
  assert_int_equal(st.drops[DMQ_DROP_UNKNOWN_TYPE], 1);
  assert_int_equal(t.node[0]->ae_pending, 1);
  assert_null(fake(t.node[1], 50));
  t.now = dmq__ae_deadline(t.node[0]);
  assert_int_equal(dmq_node_tick(t.node[0], t.now), 0);
  assert_int_equal(t.node[0]->ae_pending, 1); /* the DIGEST, reliable */
  assert_int_equal(t.node[0]->stats.pushpull_sent, 0);
  memnet_deliver(&t.net, t.node, t.tp, 2, t.now);
  dmq_node_stats(t.node[1], &st);
  assert_int_equal(st.drops[DMQ_DROP_UNKNOWN_TYPE], 2);
  t.now = dmq__ae_deadline(t.node[0]);
  assert_int_equal(dmq_node_tick(t.node[0], t.now), 0);
  assert_int_equal(t.node[0]->ae_pending, 0);
  assert_int_equal(t.node[0]->stats.pushpull_sent, 1);
  memnet_deliver(&t.net, t.node, t.tp, 2, t.now);
  assert_non_null(fake(t.node[1], 50));
  assert_int_equal(t.node[1]->stats.pushpull_sent, 1); /* its reply */
  /* and n1's own rounds are full push/pulls, which n0 answers */
  dmq__ae_round(t.node[1], dmq__member_find(t.node[1], "n0", 2), 0);
  assert_int_equal(t.node[1]->stats.pushpull_sent, 2);
  memnet_deliver(&t.net, t.node, t.tp, 2, t.now);
  assert_int_equal(t.node[0]->stats.pushpull_sent, 2);
  two_free(&t);
}

/* n1 has forgotten n0: n0's DIGEST is answered NOT_MEMBER and n0 sends
 * its full table at once, which teaches n1 about n0. */
static void test_stranger_gets_pushpull(void **state) {
  (void)state;
  two_t t;
  two_init(&t, 30);
  dmq__member_t *m0 = dmq__member_find(t.node[1], "n0", 2);
  assert_non_null(m0);
  dmq__member_remove(t.node[1], m0);
  exchange(&t);
  assert_int_equal(t.node[0]->ae_pending, 0);
  assert_int_equal(t.node[0]->stats.pushpull_sent, 1);
  assert_non_null(dmq__member_find(t.node[1], "n0", 2));
  two_free(&t);
}

/* Exchanges overlap (a join's boost rounds on a slow loop): the reply to
 * an earlier round is still taken after a later round started, and the
 * round nobody answers falls back alone. */
static void test_overlapping_rounds(void **state) {
  (void)state;
  two_t t;
  two_init(&t, 30);
  tell(&t, 0, DMQ__MSG_ALIVE, 30, 1); /* so that an answer needs a DIFF */
  net_reset(&t);
  dmq__ae_round(t.node[0], dmq__member_find(t.node[0], "n1", 2), 0);
  dmq__ae_round(t.node[0], fake(t.node[0], 0), 0); /* never answers */
  assert_int_equal(t.node[0]->ae_pending, 2);
  memnet_deliver(&t.net, t.node, t.tp, 2, t.now);
  assert_int_equal(t.node[0]->ae_pending, 1);
  assert_non_null(fake(t.node[1], 30)); /* n1's reply led to the DIFF */
  /* the fake's slot sends its DIGEST again on the reliable class, then
   * falls back alone */
  t.now = dmq__ae_deadline(t.node[0]);
  assert_int_equal(dmq_node_tick(t.node[0], t.now), 0);
  assert_int_equal(t.node[0]->stats.pushpull_sent, 0);
  for (int i = 0; i < 4 && t.node[0]->stats.pushpull_sent == 0; i++) {
    memnet_deliver(&t.net, t.node, t.tp, 2, t.now);
    t.now = dmq__ae_deadline(t.node[0]);
    assert_int_equal(dmq_node_tick(t.node[0], t.now), 0);
  }
  assert_int_equal(t.node[0]->stats.pushpull_sent, 1); /* to the fake */
  two_free(&t);
}

/* A periodic DIGEST whose datagram is lost is sent again on the reliable
 * class at its deadline, and the exchange completes by DIGEST and DIFF:
 * no full push/pull (which carries both whole tables). */
static void test_lost_digest_retried(void **state) {
  (void)state;
  two_t t;
  two_init(&t, 200);
  tell(&t, 0, DMQ__MSG_ALIVE, 200, 1); /* n0 knows one member more */
  net_reset(&t);
  dmq__ae_round(t.node[0], dmq__member_find(t.node[0], "n1", 2), 0);
  net_reset(&t); /* the DIGEST is lost */
  assert_int_equal(t.node[0]->ae_pending, 1);
  t.now = dmq__ae_deadline(t.node[0]);
  assert_int_equal(dmq_node_tick(t.node[0], t.now), 0);
  memnet_deliver(&t.net, t.node, t.tp, 2, t.now);
  assert_non_null(fake(t.node[1], 200));
  assert_int_equal(t.node[0]->stats.pushpull_sent, 0);
  assert_int_equal(t.node[1]->stats.pushpull_sent, 0);
  assert_true(root(t.node[0]) == root(t.node[1]));
  two_free(&t);
}

/* An exchange that finds the tables different brings the next one forward
 * to a probe interval from now, then 2, 4, 8... intervals while the tables
 * keep differing (never later than the periodic one); one that finds them
 * in sync starts the back-off over, and in sync nothing is brought
 * forward. */
static void test_follow_up_after_difference(void **state) {
  (void)state;
  two_t t;
  two_init(&t, 30);
  dmq_node_t *a = t.node[0];
  uint64_t period = a->cfg.probe_interval_ms;
  uint64_t interval = a->cfg.pushpull_interval_ms;
  exchange(&t); /* in sync */
  assert_true(a->next_pushpull > t.now + period);
  int brought = 0;
  for (int i = 0; i < 8; i++) {
    a->next_pushpull = t.now + interval;
    tell(&t, 1, DMQ__MSG_ALIVE, 30 + i, 1); /* n1 knows one more */
    exchange(&t);
    assert_non_null(fake(a, 30 + i)); /* repaired */
    uint64_t want = period << i;
    if (want < interval) {
      assert_int_equal(a->next_pushpull, t.now + want);
      brought++;
    } else { /* the back-off reached the interval: nothing sooner */
      assert_int_equal(a->next_pushpull, t.now + interval);
    }
  }
  assert_true(brought >= 3 && brought < 8);
  exchange(&t); /* in sync again: the back-off starts over */
  a->next_pushpull = t.now + interval;
  tell(&t, 1, DMQ__MSG_ALIVE, 40, 1);
  exchange(&t);
  assert_int_equal(a->next_pushpull, t.now + period);
  two_free(&t);
}

/* A DIGEST reply nobody asked for, or a second copy, makes us send
 * nothing. */
static void test_unsolicited_reply_ignored(void **state) {
  (void)state;
  two_t t;
  two_init(&t, 100);
  tell(&t, 0, DMQ__MSG_ALIVE, 100, 1); /* so that the roots differ */
  net_reset(&t);
  uint64_t sums[2];
  uint32_t count = dmq__ae_sums(t.node[1], 1, sums);
  uint8_t h[16];
  for (int b = 0; b < 2; b++)
    for (int j = 0; j < 8; j++)
      h[8 * b + j] = (uint8_t)(sums[b] >> (56 - 8 * j));
  dmq__enc_t e;
  assert_int_equal(dmq__enc_begin(&e, pkt, sizeof pkt, NULL, 0, "n1", 2), 0);
  assert_int_equal(dmq__enc_digest(&e, DMQ__AE_REPLY, 1, count, h), 0);
  size_t len = dmq__enc_end(&e);
  uint64_t p = pkts_out(t.node[0]);
  dmq_node_recv(t.node[0], &t.tp[0].t, "mem://1", pkt, len, 0);
  assert_int_equal(pkts_out(t.node[0]), p);
  two_free(&t);
}

/* The member arena (members.c), which the digest sums walk in memory
 * order: after adds and removes of members of every size (free slots
 * reused by the next member of their size class), the walk visits every
 * member exactly once and nothing else, every member is 16-byte aligned
 * (the index tags its pointers), the index finds every member and none
 * removed, and the sums are those of the probe-order table. */
static void arena_check(dmq_node_t *n, const char (*names)[DMQ_MAX_NAME + 1],
                        const int *live, int count) {
  static uint8_t seen[1024];
  assert_true(n->nmembers <= sizeof seen);
  memset(seen, 0, sizeof seen);
  dmq__member_iter_t it = DMQ__MEMBER_ITER_INIT;
  dmq__member_t *m;
  uint32_t walked = 0;
  while ((m = dmq__members_next(n, &it)) != NULL) {
    assert_true(m->idx < n->nmembers);
    assert_ptr_equal(n->members[m->idx], m);
    assert_int_equal(seen[m->idx], 0);
    seen[m->idx] = 1;
    assert_int_equal((uintptr_t)m % 16, 0);
    walked++;
  }
  assert_int_equal(walked, n->nmembers);
  for (int i = 0; i < count; i++) {
    dmq__member_t *f = dmq__member_find(n, names[i], strlen(names[i]));
    if (live[i]) {
      assert_non_null(f);
      assert_string_equal(f->name, names[i]);
    } else {
      assert_null(f);
    }
  }
  /* the digest counts the live members of the probe-order table, its
   * buckets add up to its root, the sums kept as the table changed are
   * those of a pass over it, and coarser digests (added up from the kept
   * sums) agree with finer ones (a pass when finer than those kept) */
  uint64_t sums[8], fine[1u << DMQ__AE_MAX_K], r = 0, total = 0;
  uint32_t nl = dmq__ae_sums(n, 3, sums), lw = 0;
  for (uint32_t i = 0; i < n->nmembers; i++)
    lw += n->members[i]->state <= DMQ_MEMBER_SUSPECT;
  assert_int_equal(nl, lw);
  assert_int_equal(dmq__ae_sums_check(n), 0);
  assert_int_equal(dmq__ae_sums(n, 0, &r), lw);
  for (int b = 0; b < 8; b++)
    total += sums[b];
  assert_true(r == total);
  assert_true(n->ae_sum_k < DMQ__AE_MAX_K);
  assert_int_equal(dmq__ae_sums(n, DMQ__AE_MAX_K, fine), lw);
  for (int b = 0; b < 8; b++) {
    uint64_t v = 0;
    for (uint32_t j = 0; j < (1u << DMQ__AE_MAX_K) / 8; j++)
      v += fine[(uint32_t)b * ((1u << DMQ__AE_MAX_K) / 8) + j];
    assert_true(v == sums[b]);
  }
}

/* What swim.c does around a member's liveness (the test adds and removes
 * members directly). */
static void arena_set_live(dmq_node_t *n, dmq__member_t *m, int live) {
  int was = m->state <= DMQ_MEMBER_SUSPECT;
  if (was && !live) {
    dmq__ae_member_out(n, m);
    n->n_live--;
  }
  m->state = (uint8_t)(live ? DMQ_MEMBER_ALIVE : DMQ_MEMBER_DEAD);
  if (!was && live) {
    n->n_live++;
    dmq__ae_member_in(n, m);
  }
}

static void test_member_arena(void **state) {
  (void)state;
  memnet_t net;
  memnet_tp_t tp;
  dmq_node_t *n;
  memnet_init(&net, Q_MAX);
  assert_int_equal(memnet_node_new(&net, &tp, 0, NULL, &n), 0);
  enum { COUNT = 600 };
  static char names[COUNT][DMQ_MAX_NAME + 1];
  static int live[COUNT];
  char addr[DMQ_MAX_ADDR + 1];
  int made = 0;
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < 200; i++, made++) {
      /* names of 1..64 bytes, addresses of 7..128 */
      int nl = 1 + (made * 7) % DMQ_MAX_NAME;
      snprintf(names[made], sizeof names[made], "%d", made);
      size_t have = strlen(names[made]);
      if ((size_t)nl > have) {
        memset(names[made] + have, 'x', (size_t)nl - have);
        names[made][nl] = '\0';
      }
      int al = 7 + (made * 13) % (DMQ_MAX_ADDR - 6);
      memset(addr, 'a', (size_t)al);
      memcpy(addr, "mem://", 6);
      addr[al] = '\0';
      dmq__member_t *m =
          dmq__member_add(n, names[made], strlen(names[made]), addr, al);
      assert_non_null(m);
      m->heard = 1;
      m->state = DMQ_MEMBER_DEAD; /* not counted yet, as in swim.c */
      arena_set_live(n, m, made % 5 != 0);
      assert_int_equal(m->addr_len, al);
      assert_memory_equal(dmq__member_addr(m), addr, (size_t)al);
      live[made] = 1;
    }
    arena_check(n, names, live, made);
    /* remove every third member still there */
    for (int i = round; i < made; i += 3) {
      if (!live[i])
        continue;
      dmq__member_t *m = dmq__member_find(n, names[i], strlen(names[i]));
      assert_non_null(m);
      arena_set_live(n, m, 0);
      dmq__member_remove(n, m);
      live[i] = 0;
    }
    arena_check(n, names, live, made);
  }
  /* an address that outgrows its room gets its own allocation */
  for (int i = 0; i < made; i++) {
    if (!live[i])
      continue;
    dmq__member_t *m = dmq__member_find(n, names[i], strlen(names[i]));
    memset(addr, 'b', DMQ_MAX_ADDR);
    addr[DMQ_MAX_ADDR] = '\0';
    assert_int_equal(dmq__member_set_addr(n, m, addr, DMQ_MAX_ADDR), 0);
    assert_string_equal(dmq__member_addr(m), addr);
    assert_non_null(m->more); /* the long address is kept there */
    /* another long one replaces it; a short one goes back in the slot and
     * frees the block (nothing else is set) */
    addr[0] = 'c';
    assert_int_equal(dmq__member_set_addr(n, m, addr, DMQ_MAX_ADDR), 0);
    assert_string_equal(dmq__member_addr(m), addr);
    assert_int_equal(dmq__member_set_addr(n, m, "mem://s", 7), 0);
    assert_string_equal(dmq__member_addr(m), "mem://s");
    assert_null(m->more);
    assert_int_equal(dmq__member_set_addr(n, m, addr, DMQ_MAX_ADDR), 0);
    break;
  }
  arena_check(n, names, live, made);
  dmq_node_delete(n);
  memnet_free(&net);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_golden),
      cmocka_unit_test(test_malformed),
      cmocka_unit_test(test_in_sync_is_small_whatever_n),
      cmocka_unit_test(test_divergence_repaired),
      cmocka_unit_test(test_reply_leaves_out_echo),
      cmocka_unit_test(test_mixed_falls_back),
      cmocka_unit_test(test_stranger_gets_pushpull),
      cmocka_unit_test(test_overlapping_rounds),
      cmocka_unit_test(test_lost_digest_retried),
      cmocka_unit_test(test_follow_up_after_difference),
      cmocka_unit_test(test_unsolicited_reply_ignored),
      cmocka_unit_test(test_member_arena),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
