/* Unit tests of the queued-delivery API (include/dmq/delivery.h) on two
 * nodes over an in-memory transport, deterministic and without the
 * simulator: argument errors, channel advertisement, exactly one outcome
 * for every accepted send on every path (delivered, unknown channel,
 * cancel, request/reply and timeout, death, leave, shutdown), backpressure
 * with the writable callback, fragmentation, an allocation-failure loop
 * over a small delivery scenario, and the numbering of best-effort messages
 * that lets a receiver count what never arrived (rx_lost_be). */
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

#include "wire.h" /* crafted best-effort DATA */

/* ---- in-memory transport: memnet.h ---- */

#define Q_MAX 8192

/* ---- counting allocator with failure injection: counting_alloc.h ---- */

/* ---- two nodes ---- */

#define MAX_IDS 4096
#define MAX_RX 4096

typedef struct orec {
  int count;
  dmq_outcome_t oc;
  uint32_t delivered, failed;
  size_t reply_len;
  char reply[64];
  char dest[DMQ_MAX_NAME + 1];
} orec_t;

typedef struct pair {
  memnet_t net;
  memnet_tp_t tp[2];
  dmq_node_t *node[2];
  dmq_channel_t *ch[2];
  uint64_t now;
  orec_t out[2][MAX_IDS];
  int accepted[2][MAX_IDS];
  /* receive log of node i */
  uint32_t rx_n[2];
  uint32_t rx_val[2][MAX_RX];
  size_t rx_len[2][MAX_RX];
  int rx_reliable[2][MAX_RX];
  int writable[2];
  char writable_dest[DMQ_MAX_NAME + 1];
  /* request handling on the receiver */
  int reply_mode; /* 0 reply at once, 1 keep the handle, 2 never */
  dmq_reply_handle_t kept;
  int kept_valid;
  int send_in_cb_rc; /* what dmq_send returned inside an outcome callback */
} pair_t;

static int who(const pair_t *p, const dmq_node_t *n) {
  return n == p->node[0] ? 0 : 1;
}

static void on_outcome(dmq_node_t *node, const dmq_outcome_info_t *o,
                       void *ud) {
  pair_t *p = ud;
  int i = who(p, node);
  assert_true(o->id > 0 && o->id < MAX_IDS);
  orec_t *r = &p->out[i][o->id];
  r->count++;
  r->oc = o->outcome;
  r->delivered = o->delivered;
  r->failed = o->failed;
  snprintf(r->dest, sizeof r->dest, "%s", o->dest ? o->dest : "");
  assert_non_null(o->channel);
  if (o->reply != NULL) {
    assert_true(o->reply_len < sizeof r->reply);
    memcpy(r->reply, o->reply, o->reply_len);
    r->reply_len = o->reply_len;
  }
  /* queries are fine inside; feeding input is not */
  assert_int_equal(dmq_node_tick(node, p->now), DMQ_EBUSY);
  if (o->outcome == DMQ_OUTCOME_SHUTDOWN) {
    dmq_send_opts_t so;
    dmq_send_opts_init(&so);
    so.mode = DMQ_SEND_RELIABLE;
    so.cb = on_outcome;
    so.user_data = p;
    p->send_in_cb_rc = dmq_send(node, "n1", "ch", "x", 1, &so, p->now, NULL);
  }
}

static void on_rx(dmq_node_t *node, dmq_channel_t *ch, const dmq_message_t *m,
                  void *ud) {
  pair_t *p = ud;
  int i = who(p, node);
  assert_non_null(ch);
  assert_non_null(m->from);
  assert_non_null(m->channel);
  uint32_t v = 0;
  if (m->len >= 4)
    memcpy(&v, m->data, 4);
  if (p->rx_n[i] < MAX_RX) {
    p->rx_val[i][p->rx_n[i]] = v;
    p->rx_len[i][p->rx_n[i]] = m->len;
    p->rx_reliable[i][p->rx_n[i]] = m->reliable;
    p->rx_n[i]++;
  }
  /* closing the channel being delivered is refused */
  assert_int_equal(dmq_channel_close(ch), DMQ_EBUSY);
  if (m->request != NULL) {
    assert_true(m->request->valid);
    assert_string_equal(m->request->from, m->from);
    if (p->reply_mode == 0) {
      dmq_reply_handle_t h = *m->request;
      char ans[16];
      int n = snprintf(ans, sizeof ans, "re:%u", v);
      int rc = dmq_reply(node, &h, ans, (size_t)n, p->now);
      assert_true(rc == 0 || rc == DMQ_ENOMEM); /* allocation failures */
      if (rc == 0) {
        assert_false(h.valid);
        assert_int_equal(dmq_reply(node, &h, ans, (size_t)n, p->now),
                         DMQ_EINVAL);
      }
    } else if (p->reply_mode == 1) {
      p->kept = *m->request;
      p->kept_valid = 1;
    }
  }
}

static void on_writable(dmq_node_t *node, const char *dest, void *ud) {
  pair_t *p = ud;
  p->writable[who(p, node)]++;
  snprintf(p->writable_dest, sizeof p->writable_dest, "%s", dest ? dest : "");
}

static int pair_init(pair_t *p, const dmq_alloc_t *alloc) {
  memset(p, 0, sizeof(*p));
  memnet_init(&p->net, Q_MAX);
  for (int i = 0; i < 2; i++) {
    int rc = memnet_node_new(&p->net, &p->tp[i], i, alloc, &p->node[i]);
    if (rc != 0)
      return rc;
    dmq_delivery_set_writable_cb(p->node[i], on_writable, p);
    if ((rc = dmq_node_start(p->node[i], 0)) != 0)
      return rc;
  }
  return 0;
}

static void pair_free(pair_t *p) {
  for (int i = 0; i < 2; i++) {
    dmq_node_delete(p->node[i]);
    p->node[i] = NULL;
  }
  memnet_free(&p->net);
}

/* Deliver packets and fire deadlines until `until`. */
static void pair_run(pair_t *p, uint64_t until) {
  memnet_run(&p->net, p->node, p->tp, 2, &p->now, until);
}

/* Joined pair; node 1 serves channel "ch"; node 0's delivery configured
 * with c first (NULL: defaults). */
static int pair_up_cfg(pair_t *p, const dmq_alloc_t *alloc,
                       const dmq_delivery_config_t *c) {
  int rc = pair_init(p, alloc);
  if (rc != 0)
    return rc;
  if (c != NULL && (rc = dmq_delivery_configure(p->node[0], c)) != 0)
    return rc;
  if ((rc = dmq_channel_open(p->node[1], "ch", on_rx, p, &p->ch[1])) != 0)
    return rc;
  const char *seed = "mem://0";
  if ((rc = dmq_node_join(p->node[1], &seed, 1, 0)) != 0)
    return rc;
  pair_run(p, 2000);
  return 0;
}

static int pair_up(pair_t *p, const dmq_alloc_t *alloc) {
  return pair_up_cfg(p, alloc, NULL);
}

static dmq_send_opts_t rel(pair_t *p) {
  dmq_send_opts_t o;
  dmq_send_opts_init(&o);
  o.mode = DMQ_SEND_RELIABLE;
  o.cb = on_outcome;
  o.user_data = p;
  return o;
}

static int send_val(pair_t *p, int from, const char *dest, const char *chan,
                    uint32_t v, int reliable, dmq_msg_id_t *id) {
  dmq_send_opts_t o = rel(p);
  if (!reliable)
    o.mode = DMQ_SEND_BEST_EFFORT;
  dmq_msg_id_t got = 0;
  int rc = dmq_send(p->node[from], dest, chan, &v, sizeof v, &o, p->now, &got);
  if (rc == 0) {
    assert_true(got > 0 && got < MAX_IDS);
    if (reliable)
      p->accepted[from][got] = 1;
  }
  if (id)
    *id = got;
  return rc;
}

/* A reliable message of len bytes (<= 128) from node 0 to n1 on "ch",
 * starting with v. */
static void send_sized(pair_t *p, uint32_t v, size_t len) {
  uint8_t buf[128];
  assert_true(len >= sizeof v && len <= sizeof buf);
  memset(buf, 7, len);
  memcpy(buf, &v, sizeof v);
  dmq_send_opts_t o = rel(p);
  dmq_msg_id_t id = 0;
  assert_int_equal(dmq_send(p->node[0], "n1", "ch", buf, len, &o, p->now, &id),
                   0);
  assert_true(id > 0 && id < MAX_IDS);
  p->accepted[0][id] = 1;
}

/* Every accepted send of node i had exactly one outcome; returns how many
 * had outcome oc. */
static int outcomes(pair_t *p, int i, dmq_outcome_t oc) {
  int c = 0;
  for (int id = 1; id < MAX_IDS; id++) {
    if (p->accepted[i][id]) {
      assert_int_equal(p->out[i][id].count, 1);
      c += p->out[i][id].oc == oc;
    } else {
      assert_int_equal(p->out[i][id].count, 0);
    }
  }
  return c;
}

/* ---- tests ---- */

static void test_config_and_names(void **state) {
  (void)state;
  dmq_delivery_config_t c;
  dmq_delivery_config_init(&c);
  assert_int_equal(c.ttl_ms, 30000);
  assert_int_equal(c.rto_min_ms, 200);
  assert_int_equal(c.rto_max_ms, 5000);
  assert_int_equal(c.window, 16384);
  assert_true(c.window_bytes == (size_t)4 << 20);
  assert_int_equal(c.queue_msgs, 16384);
  assert_true(c.queue_bytes == (size_t)64 << 20);
  assert_true(c.max_message == (size_t)4 << 20);
  assert_true(c.reassembly_bytes == (size_t)8 << 20);
  assert_int_equal(c.request_timeout_ms, 5000);
  assert_string_equal(dmq_outcome_name(DMQ_OUTCOME_DELIVERED), "delivered");
  assert_string_equal(dmq_outcome_name(DMQ_OUTCOME_TOO_BIG), "too_big");
  assert_string_equal(dmq_outcome_name((dmq_outcome_t)99), "unknown");

  pair_t *p = calloc(1, sizeof(*p));
  assert_int_equal(pair_init(p, NULL), 0);
  dmq_node_t *n = p->node[0];
  dmq_delivery_config_t bad = c;
  bad.rto_max_ms = 100; /* < rto_min */
  assert_int_equal(dmq_delivery_configure(n, &bad), DMQ_EINVAL);
  bad = c;
  bad.window = 0;
  assert_int_equal(dmq_delivery_configure(n, &bad), DMQ_EINVAL);
  bad = c;
  bad.window_bytes = 0;
  assert_int_equal(dmq_delivery_configure(n, &bad), DMQ_EINVAL);
  bad = c;
  bad.window = 65537;
  assert_int_equal(dmq_delivery_configure(n, &bad), DMQ_EINVAL);
  bad = c;
  bad.max_message = 16u << 20; /* does not fit max_packet with headers */
  assert_int_equal(dmq_delivery_configure(n, &bad), DMQ_EINVAL);
  assert_int_equal(dmq_delivery_configure(NULL, &c), DMQ_EINVAL);
  assert_int_equal(dmq_delivery_configure(n, NULL), DMQ_EINVAL);
  assert_int_equal(dmq_delivery_configure(n, &c), 0);

  /* channel names: 1..32 printable bytes */
  dmq_channel_t *ch = NULL;
  char c33[34];
  memset(c33, 'c', 33);
  c33[33] = '\0';
  assert_int_equal(dmq_channel_open(n, "", on_rx, p, &ch), DMQ_EINVAL);
  assert_int_equal(dmq_channel_open(n, NULL, on_rx, p, &ch), DMQ_EINVAL);
  assert_int_equal(dmq_channel_open(n, c33, on_rx, p, &ch), DMQ_EINVAL);
  assert_int_equal(dmq_channel_open(n, "a b", on_rx, p, &ch), DMQ_EINVAL);
  assert_int_equal(dmq_channel_open(n, "a\tb", on_rx, p, &ch), DMQ_EINVAL);
  assert_int_equal(dmq_channel_open(n, "caf\xc3\xa9", on_rx, p, &ch),
                   DMQ_EINVAL);
  assert_int_equal(dmq_channel_open(n, "x", NULL, p, &ch), DMQ_EINVAL);
  c33[32] = '\0'; /* 32 bytes: fine */
  assert_int_equal(dmq_channel_open(n, c33, on_rx, p, &ch), 0);
  assert_int_equal(dmq_channel_open(n, c33, on_rx, p, NULL), DMQ_EEXIST);
  assert_int_equal(dmq_channel_close(ch), 0);
  assert_int_equal(dmq_channel_close(NULL), DMQ_EINVAL);
  /* at most DMQ_MAX_CHANNELS */
  for (int i = 0; i < DMQ_MAX_CHANNELS; i++) {
    char nm[16];
    snprintf(nm, sizeof nm, "chan-%d", i);
    assert_int_equal(dmq_channel_open(n, nm, on_rx, p, NULL), 0);
  }
  assert_int_equal(dmq_channel_open(n, "one-more", on_rx, p, NULL), DMQ_ELIMIT);
  assert_true(dmq_member_serves(n, "n0", "chan-7"));
  assert_false(dmq_member_serves(n, "n0", "one-more"));
  assert_false(dmq_member_serves(n, "nobody", "chan-7"));
  assert_false(dmq_member_serves(n, "n0", ""));
  assert_false(dmq_member_serves(NULL, "n0", "chan-7"));

  /* sending: argument errors before anything is queued */
  dmq_send_opts_t o = rel(p);
  dmq_send_opts_t nocb;
  dmq_send_opts_init(&nocb);
  nocb.mode = DMQ_SEND_RELIABLE;
  dmq_send_opts_t badmode;
  dmq_send_opts_init(&badmode);
  badmode.mode = (dmq_send_mode_t)7;
  badmode.cb = on_outcome;
  badmode.user_data = p;
  assert_int_equal(dmq_send(n, "n1", "ch", "x", 1, &o, 0, NULL), DMQ_ENOENT);
  assert_int_equal(dmq_send(n, "n0", "ch", "x", 1, &o, 0, NULL), DMQ_ENOENT);
  assert_int_equal(dmq_send(n, "", "ch", "x", 1, &o, 0, NULL), DMQ_EINVAL);
  assert_int_equal(dmq_send(n, NULL, "ch", "x", 1, &o, 0, NULL), DMQ_EINVAL);
  assert_int_equal(dmq_send(n, "n1", "", "x", 1, &o, 0, NULL), DMQ_EINVAL);
  assert_int_equal(dmq_send(n, "n1", "a b", "x", 1, &o, 0, NULL), DMQ_EINVAL);
  assert_int_equal(dmq_send(n, "n1", "ch", NULL, 1, &o, 0, NULL), DMQ_EINVAL);
  assert_int_equal(dmq_send(n, "n1", "ch", "x", 1, &nocb, 0, NULL), DMQ_EINVAL);
  assert_int_equal(dmq_send(n, "n1", "ch", "x", 1, &badmode, 0, NULL),
                   DMQ_EINVAL);
  assert_int_equal(dmq_send(NULL, "n1", "ch", "x", 1, &o, 0, NULL), DMQ_EINVAL);
  assert_int_equal(dmq_send(n, "n1", "ch", "x", c.max_message + 1, &o, 0, NULL),
                   DMQ_ETOOBIG);
  assert_int_equal(dmq_request(n, "n1", "ch", "x", 1, 0, NULL, p, 0, NULL),
                   DMQ_EINVAL);
  assert_int_equal(dmq_broadcast(n, "ch", "x", 1, &nocb, 0, NULL), DMQ_EINVAL);
  dmq_reply_handle_t h;
  memset(&h, 0, sizeof h);
  assert_int_equal(dmq_reply(n, &h, "x", 1, 0), DMQ_EINVAL); /* not valid */
  assert_int_equal(dmq_delivery_cancel(n, 12345), DMQ_ENOENT);
  dmq_delivery_stats_t st;
  dmq_delivery_stats(n, &st);
  assert_true(st.queued_msgs == 0 && st.sent_reliable == 0);
  /* a node that has not started refuses to send */
  dmq_node_t *cold = NULL;
  dmq_config_t cfg;
  dmq_config_init(&cfg, DMQ_PROFILE_LAN);
  cfg.name = "cold";
  cfg.advertise_addr = "mem://9";
  cfg.generation = 1;
  assert_int_equal(dmq_node_new(&cfg, NULL, &cold), 0);
  assert_int_equal(dmq_broadcast(cold, "ch", "x", 1, &o, 0, NULL), DMQ_ESTATE);
  dmq_node_delete(cold);
  pair_free(p);
  free(p);
}

static void test_advertise_and_unicast(void **state) {
  (void)state;
  pair_t *p = calloc(1, sizeof(*p));
  assert_int_equal(pair_up(p, NULL), 0);
  /* the channel opened before the join is visible to the peer */
  assert_true(dmq_member_serves(p->node[0], "n1", "ch"));
  assert_true(dmq_member_serves(p->node[1], "n1", "ch"));
  assert_false(dmq_member_serves(p->node[0], "n1", "other"));
  /* opening one later is advertised through gossip (incarnation rises) */
  dmq_member_info_t before, after;
  assert_int_equal(dmq_node_member(p->node[1], "n1", &before), 0);
  assert_int_equal(dmq_channel_open(p->node[1], "other", on_rx, p, NULL), 0);
  assert_int_equal(dmq_node_member(p->node[1], "n1", &after), 0);
  assert_true(after.incarnation == before.incarnation + 1);
  pair_run(p, p->now + 1000);
  assert_true(dmq_member_serves(p->node[0], "n1", "other"));

  /* 300 reliable messages: delivered in order, one outcome each */
  for (uint32_t v = 0; v < 300; v++)
    assert_int_equal(send_val(p, 0, "n1", v % 2 ? "ch" : "other", v, 1, NULL),
                     0);
  dmq_delivery_stats_t st;
  dmq_delivery_stats(p->node[0], &st);
  assert_true(st.queued_msgs > 0);
  /* packed: far fewer packets than messages, sent before the tick because
   * full datagrams go at once */
  assert_true(p->net.tail - p->net.head > 0);
  assert_true(p->net.tail - p->net.head < 60);
  pair_run(p, p->now + 1000);
  assert_int_equal(p->rx_n[1], 300);
  for (uint32_t v = 0; v < 300; v++) {
    assert_int_equal(p->rx_val[1][v], v);
    assert_true(p->rx_reliable[1][v]);
  }
  assert_int_equal(outcomes(p, 0, DMQ_OUTCOME_DELIVERED), 300);
  dmq_delivery_stats(p->node[0], &st);
  assert_true(st.queued_msgs == 0 && st.queued_bytes == 0 && st.inflight == 0);
  assert_true(st.sent_reliable == 300 && st.retransmits == 0);
  assert_true(st.acks_received > 0);
  dmq_delivery_stats(p->node[1], &st);
  assert_true(st.delivered_app == 300 && st.acks_sent > 0);
  assert_true(st.duplicates == 0 && st.rx_buffered == 0);

  /* best effort: delivered, no outcome */
  for (uint32_t v = 1000; v < 1010; v++)
    assert_int_equal(send_val(p, 0, "n1", "ch", v, 0, NULL), 0);
  pair_run(p, p->now + 100);
  assert_int_equal(p->rx_n[1], 310);
  assert_int_equal(p->rx_val[1][309], 1009);
  assert_false(p->rx_reliable[1][309]);
  dmq_delivery_stats(p->node[0], &st);
  assert_true(st.sent_be == 10);
  assert_int_equal(outcomes(p, 0, DMQ_OUTCOME_DELIVERED), 300);

  /* a channel the destination does not serve: UNKNOWN_DEST */
  dmq_msg_id_t id;
  assert_int_equal(send_val(p, 0, "n1", "nobody-serves", 7, 1, &id), 0);
  assert_int_equal(send_val(p, 0, "n1", "ch", 8, 1, NULL), 0);
  pair_run(p, p->now + 500);
  assert_int_equal(p->out[0][id].oc, DMQ_OUTCOME_UNKNOWN_DEST);
  assert_string_equal(p->out[0][id].dest, "n1");
  assert_int_equal(p->rx_val[1][p->rx_n[1] - 1], 8); /* the next one passed */
  assert_int_equal(outcomes(p, 0, DMQ_OUTCOME_DELIVERED), 301);
  dmq_delivery_stats(p->node[1], &st);
  assert_true(st.dropped_no_channel == 1);

  /* closing the channel is advertised too */
  assert_int_equal(dmq_channel_close(p->ch[1]), 0);
  pair_run(p, p->now + 1000);
  assert_false(dmq_member_serves(p->node[0], "n1", "ch"));
  pair_free(p);
  free(p);
}

static void test_queue_full_then_writable(void **state) {
  (void)state;
  pair_t *p = calloc(1, sizeof(*p));
  dmq_delivery_config_t c;
  dmq_delivery_config_init(&c);
  c.queue_msgs = 8;
  assert_int_equal(pair_up_cfg(p, NULL, &c), 0);
  for (uint32_t v = 0; v < 8; v++)
    assert_int_equal(send_val(p, 0, "n1", "ch", v, 1, NULL), 0);
  assert_int_equal(send_val(p, 0, "n1", "ch", 8, 1, NULL), DMQ_EAGAIN);
  assert_int_equal(send_val(p, 0, "n1", "ch", 8, 0, NULL), DMQ_EAGAIN);
  /* configure is refused once sends were made */
  assert_int_equal(dmq_delivery_configure(p->node[0], &c), DMQ_ESTATE);
  dmq_delivery_stats_t st;
  dmq_delivery_stats(p->node[0], &st);
  assert_true(st.refused_full == 2 && st.queued_msgs == 8);
  assert_int_equal(p->writable[0], 0);
  pair_run(p, p->now + 500);
  assert_int_equal(p->writable[0], 1);
  assert_string_equal(p->writable_dest, "n1");
  for (uint32_t v = 8; v < 16; v++)
    assert_int_equal(send_val(p, 0, "n1", "ch", v, 1, NULL), 0);
  pair_run(p, p->now + 500);
  assert_int_equal(p->rx_n[1], 16);
  for (uint32_t v = 0; v < 16; v++)
    assert_int_equal(p->rx_val[1][v], v);
  assert_int_equal(outcomes(p, 0, DMQ_OUTCOME_DELIVERED), 16);
  assert_int_equal(p->writable[0], 1); /* only after a refusal */
  pair_free(p);
  free(p);
}

/* A backlog the window lets out at once (here: 2000 messages behind 2000
 * whose acks were lost, released by node 1's next DACK) leaves in slices
 * of at most 32 datagrams per flush, the node asking to run again at once
 * (deadline = now) in between, so that a runtime reads its sockets between
 * two slices; every message still arrives once and in order, and
 * best-effort messages sent meanwhile are not held behind the backlog. */
static void test_burst_slices(void **state) {
  (void)state;
  pair_t *p = calloc(1, sizeof(*p));
  dmq_delivery_config_t c;
  dmq_delivery_config_init(&c);
  c.window = 2000;
  c.queue_msgs = 4000;
  assert_int_equal(pair_up_cfg(p, NULL, &c), 0);
  p->net.drop_from = 1u << 1; /* node 1's acks are lost */
  const uint32_t total = 4000;
  /* 64 bytes: about 15 per datagram, so 2000 are some 130 datagrams */
  for (uint32_t v = 0; v < total; v++)
    send_sized(p, v, 64);
  memnet_deliver(&p->net, p->node, p->tp, 2, p->now);
  dmq_delivery_stats_t st;
  dmq_delivery_stats(p->node[0], &st);
  assert_true(st.inflight == 2000 && st.queued_msgs == total);
  p->net.drop_from = 0;
  size_t most = 0;
  int again = 0, be_sent = 0;
  for (int guard = 0; p->rx_n[1] < total + (uint32_t)be_sent; guard++) {
    assert_true(guard < 100000);
    memnet_deliver(&p->net, p->node, p->tp, 2, p->now);
    uint64_t d0 = dmq_node_next_deadline(p->node[0]);
    uint64_t d1 = dmq_node_next_deadline(p->node[1]);
    uint64_t d = d0 < d1 ? d0 : d1;
    assert_true(d != DMQ_NEVER);
    if (d > p->now)
      p->now = d;
    if (d1 <= p->now)
      dmq_node_tick(p->node[1], p->now);
    if (d0 <= p->now) {
      size_t before = p->net.tail;
      dmq_node_tick(p->node[0], p->now);
      size_t sent = p->net.tail - before;
      if (sent > most)
        most = sent;
      again += sent > 0 && dmq_node_next_deadline(p->node[0]) == p->now;
      if (again == 1 && sent > 0 && !be_sent) { /* after the first slice */
        /* its own flush sends a slice of the backlog first */
        assert_int_equal(send_val(p, 0, "n1", "ch", 100000, 0, NULL), 0);
        be_sent = 1;
      }
    }
  }
  assert_true(most <= 2 * 32); /* 32 per class */
  assert_true(again >= 2);     /* 2000 messages take several slices */
  pair_run(p, p->now + 1000);
  /* in order; the best-effort one went out with the next slice, not
   * behind the whole backlog (about 1000 of the 2000 came after it) */
  uint32_t next = 0, be = 0, rel_after_be = 0;
  for (uint32_t i = 0; i < p->rx_n[1]; i++) {
    if (p->rx_reliable[1][i]) {
      assert_int_equal(p->rx_val[1][i], next);
      next++;
      rel_after_be += be > 0;
    } else {
      be++;
    }
  }
  assert_int_equal(next, total);
  assert_int_equal(be, 1);
  assert_true(rel_after_be >= 500);
  assert_int_equal(outcomes(p, 0, DMQ_OUTCOME_DELIVERED), (int)total);
  pair_free(p);
  free(p);
}

/* window_bytes bounds what is in flight in bytes (payload, channel and a
 * DATA header each), whatever the window in messages allows. */
static void test_byte_window(void **state) {
  (void)state;
  pair_t *p = calloc(1, sizeof(*p));
  dmq_delivery_config_t c;
  dmq_delivery_config_init(&c);
  c.window_bytes = 1000;
  assert_int_equal(pair_up_cfg(p, NULL, &c), 0);
  p->net.blackhole = 1; /* nothing comes back: what is in flight stays */
  for (uint32_t v = 0; v < 50; v++)
    send_sized(p, v, 100);
  dmq_node_tick(p->node[0], p->now);
  dmq_delivery_stats_t st;
  dmq_delivery_stats(p->node[0], &st);
  /* 100 + 2 + 40 bytes each: 7 fit in 1000 */
  assert_int_equal(st.inflight, 7);
  assert_int_equal(st.queued_msgs, 50);
  p->net.blackhole = 0;
  pair_run(p, p->now + 5000);
  assert_int_equal(p->rx_n[1], 50);
  for (uint32_t v = 0; v < 50; v++)
    assert_int_equal(p->rx_val[1][v], v);
  assert_int_equal(outcomes(p, 0, DMQ_OUTCOME_DELIVERED), 50);
  pair_free(p);
  free(p);
}

static void test_cancel(void **state) {
  (void)state;
  pair_t *p = calloc(1, sizeof(*p));
  assert_int_equal(pair_up(p, NULL), 0);
  dmq_msg_id_t a, b;
  assert_int_equal(send_val(p, 0, "n1", "ch", 1, 1, &a), 0);
  assert_int_equal(send_val(p, 0, "n1", "ch", 2, 1, &b), 0);
  /* the outcome runs before cancel returns */
  assert_int_equal(dmq_delivery_cancel(p->node[0], a), 0);
  assert_int_equal(p->out[0][a].count, 1);
  assert_int_equal(p->out[0][a].oc, DMQ_OUTCOME_CANCELLED);
  assert_int_equal(dmq_delivery_cancel(p->node[0], a), DMQ_ENOENT);
  pair_run(p, p->now + 500);
  /* the cancelled one never reaches the receiver, the next one does */
  assert_int_equal(p->rx_n[1], 1);
  assert_int_equal(p->rx_val[1][0], 2);
  assert_int_equal(dmq_delivery_cancel(p->node[0], b), DMQ_ENOENT);
  assert_int_equal(outcomes(p, 0, DMQ_OUTCOME_CANCELLED), 1);
  assert_int_equal(outcomes(p, 0, DMQ_OUTCOME_DELIVERED), 1);
  dmq_delivery_stats_t st;
  dmq_delivery_stats(p->node[0], &st);
  assert_true(st.cancelled == 1);
  pair_free(p);
  free(p);
}

static void test_request_reply(void **state) {
  (void)state;
  pair_t *p = calloc(1, sizeof(*p));
  assert_int_equal(pair_up(p, NULL), 0);
  dmq_msg_id_t id;
  uint32_t v = 41;
  /* answered from inside the receive callback */
  assert_int_equal(dmq_request(p->node[0], "n1", "ch", &v, 4, 1000, on_outcome,
                               p, p->now, &id),
                   0);
  p->accepted[0][id] = 1;
  pair_run(p, p->now + 200);
  assert_int_equal(p->out[0][id].count, 1);
  assert_int_equal(p->out[0][id].oc, DMQ_OUTCOME_DELIVERED);
  assert_int_equal(p->out[0][id].reply_len, 5);
  assert_memory_equal(p->out[0][id].reply, "re:41", 5);
  /* answered later, from a copy of the handle */
  p->reply_mode = 1;
  v = 42;
  assert_int_equal(dmq_request(p->node[0], "n1", "ch", &v, 4, 1000, on_outcome,
                               p, p->now, &id),
                   0);
  p->accepted[0][id] = 1;
  pair_run(p, p->now + 100);
  assert_true(p->kept_valid);
  assert_int_equal(p->out[0][id].count, 0);
  assert_string_equal(p->kept.channel, "ch");
  assert_int_equal(dmq_reply(p->node[1], &p->kept, "late-ok", 7, p->now), 0);
  pair_run(p, p->now + 100);
  assert_int_equal(p->out[0][id].oc, DMQ_OUTCOME_DELIVERED);
  assert_memory_equal(p->out[0][id].reply, "late-ok", 7);
  /* never answered: EXPIRED at the timeout, once; a reply after it is
   * dropped and counted */
  p->kept_valid = 0;
  v = 43;
  assert_int_equal(dmq_request(p->node[0], "n1", "ch", &v, 4, 300, on_outcome,
                               p, p->now, &id),
                   0);
  p->accepted[0][id] = 1;
  pair_run(p, p->now + 299);
  assert_int_equal(p->out[0][id].count, 0);
  pair_run(p, p->now + 2);
  assert_int_equal(p->out[0][id].count, 1);
  assert_int_equal(p->out[0][id].oc, DMQ_OUTCOME_EXPIRED);
  assert_true(p->kept_valid);
  assert_int_equal(dmq_reply(p->node[1], &p->kept, "too late", 8, p->now), 0);
  pair_run(p, p->now + 500);
  assert_int_equal(p->out[0][id].count, 1);
  dmq_delivery_stats_t st;
  dmq_delivery_stats(p->node[0], &st);
  assert_true(st.late_replies == 1 && st.expired == 1);
  assert_int_equal(outcomes(p, 0, DMQ_OUTCOME_DELIVERED), 2);
  /* a request to a channel nobody serves */
  assert_int_equal(dmq_request(p->node[0], "n1", "nope", &v, 4, 1000,
                               on_outcome, p, p->now, &id),
                   0);
  p->accepted[0][id] = 1;
  pair_run(p, p->now + 500);
  assert_int_equal(p->out[0][id].oc, DMQ_OUTCOME_UNKNOWN_DEST);
  /* cancel a pending request */
  p->reply_mode = 2;
  assert_int_equal(dmq_request(p->node[0], "n1", "ch", &v, 4, 1000, on_outcome,
                               p, p->now, &id),
                   0);
  p->accepted[0][id] = 1;
  pair_run(p, p->now + 100);
  assert_int_equal(dmq_delivery_cancel(p->node[0], id), 0);
  assert_int_equal(p->out[0][id].oc, DMQ_OUTCOME_CANCELLED);
  pair_run(p, p->now + 2000);
  outcomes(p, 0, DMQ_OUTCOME_DELIVERED); /* all exactly once */
  pair_free(p);
  free(p);
}

static void test_broadcast(void **state) {
  (void)state;
  pair_t *p = calloc(1, sizeof(*p));
  assert_int_equal(pair_up(p, NULL), 0);
  dmq_send_opts_t o = rel(p);
  dmq_msg_id_t id;
  uint32_t v = 5;
  /* nobody else serves "lonely": completes at the next tick, 0 / 0 */
  assert_int_equal(dmq_broadcast(p->node[0], "lonely", &v, 4, &o, p->now, &id),
                   0);
  p->accepted[0][id] = 1;
  assert_int_equal(p->out[0][id].count, 0);
  assert_true(dmq_node_next_deadline(p->node[0]) <= p->now);
  pair_run(p, p->now + 1);
  assert_int_equal(p->out[0][id].oc, DMQ_OUTCOME_DELIVERED);
  assert_int_equal(p->out[0][id].delivered, 0);
  assert_int_equal(p->out[0][id].failed, 0);
  assert_string_equal(p->out[0][id].dest, "");
  /* to the one serving member */
  assert_int_equal(dmq_broadcast(p->node[0], "ch", &v, 4, &o, p->now, &id), 0);
  p->accepted[0][id] = 1;
  o.mode = DMQ_SEND_BEST_EFFORT;
  v = 6;
  assert_int_equal(dmq_broadcast(p->node[0], "ch", &v, 4, &o, p->now, NULL), 0);
  pair_run(p, p->now + 300);
  assert_int_equal(p->out[0][id].oc, DMQ_OUTCOME_DELIVERED);
  assert_int_equal(p->out[0][id].delivered, 1);
  assert_int_equal(p->rx_n[1], 2); /* no order between BE and reliable */
  assert_int_equal(p->rx_val[1][0] + p->rx_val[1][1], 11);
  /* the receiver does not broadcast to itself */
  o.mode = DMQ_SEND_RELIABLE;
  assert_int_equal(dmq_broadcast(p->node[1], "ch", &v, 4, &o, p->now, &id), 0);
  p->accepted[1][id] = 1;
  pair_run(p, p->now + 300);
  assert_int_equal(p->out[1][id].delivered + p->out[1][id].failed, 0);
  assert_int_equal(p->rx_n[1], 2);
  outcomes(p, 0, DMQ_OUTCOME_DELIVERED);
  pair_free(p);
  free(p);
}

static void test_fragments_over_datagrams(void **state) {
  (void)state;
  pair_t *p = calloc(1, sizeof(*p));
  assert_int_equal(pair_up(p, NULL), 0);
  size_t len = 200000;
  uint8_t *big = malloc(len);
  for (size_t i = 0; i < len; i++)
    big[i] = (uint8_t)(i * 7 + 3);
  memcpy(big, "\x2a\0\0\0", 4);
  dmq_send_opts_t o = rel(p);
  dmq_msg_id_t id;
  assert_int_equal(dmq_send(p->node[0], "n1", "ch", big, len, &o, p->now, &id),
                   0);
  p->accepted[0][id] = 1;
  pair_run(p, p->now + 2000);
  assert_int_equal(p->rx_n[1], 1);
  assert_int_equal(p->rx_len[1][0], len);
  assert_int_equal(p->rx_val[1][0], 42);
  assert_int_equal(p->out[0][id].oc, DMQ_OUTCOME_DELIVERED);
  dmq_delivery_stats_t st;
  dmq_delivery_stats(p->node[0], &st);
  assert_true(st.fragments_sent > 100);
  dmq_delivery_stats(p->node[1], &st);
  assert_true(st.fragments_received > 100);
  assert_true(st.rx_buffered == 0);
  /* a receiver with a smaller max_message: TOO_BIG, never delivered */
  pair_free(p);
  memset(p, 0, sizeof(*p));
  assert_int_equal(pair_init(p, NULL), 0);
  dmq_delivery_config_t c;
  dmq_delivery_config_init(&c);
  c.max_message = 100000;
  assert_int_equal(dmq_delivery_configure(p->node[1], &c), 0);
  assert_int_equal(dmq_channel_open(p->node[1], "ch", on_rx, p, &p->ch[1]), 0);
  const char *seed = "mem://0";
  assert_int_equal(dmq_node_join(p->node[1], &seed, 1, 0), 0);
  pair_run(p, 2000);
  assert_int_equal(dmq_send(p->node[0], "n1", "ch", big, len, &o, p->now, &id),
                   0);
  p->accepted[0][id] = 1;
  assert_int_equal(send_val(p, 0, "n1", "ch", 9, 1, NULL), 0);
  pair_run(p, p->now + 2000);
  assert_int_equal(p->out[0][id].oc, DMQ_OUTCOME_TOO_BIG);
  assert_int_equal(p->rx_n[1], 1);
  assert_int_equal(p->rx_val[1][0], 9);
  outcomes(p, 0, DMQ_OUTCOME_DELIVERED);
  dmq_delivery_stats(p->node[1], &st);
  assert_true(st.reassembly_drops == 1);
  free(big);
  pair_free(p);
  free(p);
}

static void test_dead_left_shutdown(void **state) {
  (void)state;
  pair_t *p = calloc(1, sizeof(*p));
  /* death: messages that cannot get through fail with DEAD once the
   * destination is declared dead */
  assert_int_equal(pair_up(p, NULL), 0);
  dmq_node_delete(p->node[1]);
  p->node[1] = NULL;
  for (uint32_t v = 0; v < 20; v++)
    assert_int_equal(send_val(p, 0, "n1", "ch", v, 1, NULL), 0);
  pair_run(p, p->now + 15000);
  assert_int_equal(outcomes(p, 0, DMQ_OUTCOME_DEAD), 20);
  assert_int_equal(send_val(p, 0, "n1", "ch", 0, 1, NULL), DMQ_ENOENT);
  dmq_delivery_stats_t st;
  dmq_delivery_stats(p->node[0], &st);
  assert_true(st.dead == 20 && st.queued_msgs == 0 && st.retransmits > 0);
  pair_free(p);

  /* leave: LEFT for what is held (paused channel) and for the request
   * waiting for its reply */
  memset(p, 0, sizeof(*p));
  assert_int_equal(pair_up(p, NULL), 0);
  p->reply_mode = 2;
  dmq_msg_id_t rq;
  assert_int_equal(dmq_request(p->node[0], "n1", "ch", "r", 1, 60000,
                               on_outcome, p, p->now, &rq),
                   0);
  p->accepted[0][rq] = 1;
  pair_run(p, p->now + 100); /* delivered, never answered */
  assert_int_equal(p->rx_n[1], 1);
  dmq_channel_pause(p->ch[1], 1);
  for (uint32_t v = 0; v < 5; v++)
    assert_int_equal(send_val(p, 0, "n1", "ch", v, 1, NULL), 0);
  pair_run(p, p->now + 200);
  dmq_delivery_stats(p->node[1], &st);
  assert_true(st.rx_buffered == 5);
  assert_int_equal(dmq_node_leave(p->node[1], p->now), 0);
  pair_run(p, p->now + 3000);
  assert_int_equal(p->out[0][rq].oc, DMQ_OUTCOME_LEFT);
  assert_int_equal(outcomes(p, 0, DMQ_OUTCOME_LEFT), 6);
  assert_int_equal(p->rx_n[1], 1);
  pair_free(p);

  /* shutdown: pending sends end in SHUTDOWN from inside dmq_node_delete;
   * sending from that callback is refused */
  memset(p, 0, sizeof(*p));
  assert_int_equal(pair_up(p, NULL), 0);
  p->net.blackhole = 1;
  for (uint32_t v = 0; v < 10; v++)
    assert_int_equal(send_val(p, 0, "n1", "ch", v, 1, NULL), 0);
  assert_int_equal(dmq_request(p->node[0], "n1", "ch", "r", 1, 60000,
                               on_outcome, p, p->now, &rq),
                   0);
  p->accepted[0][rq] = 1;
  pair_run(p, p->now + 500);
  for (int id = 1; id < MAX_IDS; id++)
    assert_int_equal(p->out[0][id].count, 0);
  dmq_node_delete(p->node[0]);
  p->node[0] = NULL;
  assert_int_equal(outcomes(p, 0, DMQ_OUTCOME_SHUTDOWN), 11);
  assert_int_equal(p->send_in_cb_rc, DMQ_ECLOSED);
  pair_free(p);
  free(p);
}

/* Node 0 sends reliable, best-effort, request and broadcast; node 1 serves
 * the channel and replies. */
static void alloc_scenario(pair_t *p, const dmq_alloc_t *a) {
  if (pair_init(p, a) != 0)
    return;
  if (dmq_channel_open(p->node[1], "ch", on_rx, p, &p->ch[1]) != 0)
    return;
  const char *seed = "mem://0";
  if (dmq_node_join(p->node[1], &seed, 1, 0) != 0)
    return;
  pair_run(p, 1500);
  for (uint32_t v = 0; v < 6; v++)
    send_val(p, 0, "n1", "ch", v, v != 3, NULL);
  static uint8_t big[5000];
  dmq_send_opts_t o = rel(p);
  dmq_msg_id_t id = 0;
  if (dmq_send(p->node[0], "n1", "ch", big, sizeof big, &o, p->now, &id) == 0)
    p->accepted[0][id] = 1;
  if (dmq_request(p->node[0], "n1", "ch", "q", 1, 1000, on_outcome, p, p->now,
                  &id) == 0)
    p->accepted[0][id] = 1;
  if (dmq_broadcast(p->node[0], "ch", "b", 1, &o, p->now, &id) == 0)
    p->accepted[0][id] = 1;
  pair_run(p, p->now + 300);
  for (uint32_t v = 10; v < 14; v++)
    send_val(p, 0, "n1", "ch", v, 1, NULL);
  pair_run(p, p->now + 1200);
}

static void test_alloc_failures(void **state) {
  (void)state;
  pair_t *p = calloc(1, sizeof(*p));
  long total;
  {
    counting_t c = {0};
    dmq_alloc_t a;
    dmq_alloc_init(&a);
    a.malloc_fn = c_malloc;
    a.realloc_fn = c_realloc;
    a.free_fn = c_free;
    a.ud = &c;
    alloc_scenario(p, &a);
    /* 10 sends (one best effort), the big one, the request, the broadcast */
    assert_int_equal(p->rx_n[1], 13);
    pair_free(p);
    assert_int_equal(outcomes(p, 0, DMQ_OUTCOME_DELIVERED), 12);
    assert_int_equal(c.live, 0);
    total = c.calls;
  }
  assert_true(total > 20);
  for (long k = 1; k <= total + 5; k++) {
    counting_t c = {.fail_at = k};
    dmq_alloc_t a;
    dmq_alloc_init(&a);
    a.malloc_fn = c_malloc;
    a.realloc_fn = c_realloc;
    a.free_fn = c_free;
    a.ud = &c;
    alloc_scenario(p, &a);
    pair_free(p);                          /* pending ones get SHUTDOWN */
    outcomes(p, 0, DMQ_OUTCOME_DELIVERED); /* exactly once, every path */
    outcomes(p, 1, DMQ_OUTCOME_DELIVERED);
    /* nothing delivered twice */
    for (uint32_t i = 1; i < p->rx_n[1]; i++)
      if (p->rx_reliable[1][i] && p->rx_reliable[1][i - 1] &&
          p->rx_len[1][i] == 4 && p->rx_len[1][i - 1] == 4)
        assert_true(p->rx_val[1][i] > p->rx_val[1][i - 1]);
    assert_int_equal(c.live, 0);
  }
  free(p);
}

/* ---- best-effort numbering (rx_lost_be) ---- */

/* A packet of best-effort DATA as node `from_name` (generation src_gen)
 * would send it to node 1, with the seq fields seqs[0..k) (values v, v+1,
 * ...), fed to node 1 as if it had come over the network. A sender writes
 * the whole number in the first one of a datagram and 0 in the next ones
 * (the previous + 1); an older sender writes 0 everywhere (not numbered). */
static void be_inject_pkt(pair_t *p, const char *from_name, uint64_t src_gen,
                          uint64_t dst_gen, const uint64_t *seqs, size_t k,
                          uint32_t v) {
  uint8_t buf[1024];
  uint32_t vals[16];
  dmq__enc_t e;
  assert_true(k <= 16);
  assert_int_equal(dmq__enc_begin(&e, buf, sizeof buf, NULL, 0, from_name,
                                  strlen(from_name)),
                   0);
  for (size_t i = 0; i < k; i++) {
    vals[i] = v + (uint32_t)i;
    dmq__data_t d = {
        0,       {"ch", 2}, src_gen,
        dst_gen, seqs[i],   0,
        1000,    0,         {(const char *)&vals[i], sizeof vals[i]}};
    assert_int_equal(dmq__enc_data(&e, &d), 0);
  }
  size_t len = dmq__enc_end(&e);
  assert_int_equal(
      dmq_node_recv(p->node[1], &p->tp[1].t, "mem://0", buf, len, p->now), 0);
}

/* A crafted ALIVE of member `name` (generation gen) to node 1. */
static void alive_inject(pair_t *p, const char *name, uint64_t inc,
                         uint64_t gen) {
  uint8_t buf[512];
  dmq__enc_t e;
  assert_int_equal(
      dmq__enc_begin(&e, buf, sizeof buf, NULL, 0, name, strlen(name)), 0);
  dmq__slice_t nm = {name, strlen(name)}, addr = {"mem://0", 7}, meta = {"", 0};
  assert_int_equal(dmq__enc_alive(&e, nm, addr, inc, gen, meta, NULL), 0);
  size_t len = dmq__enc_end(&e);
  assert_int_equal(
      dmq_node_recv(p->node[1], &p->tp[1].t, "mem://0", buf, len, p->now), 0);
}

/* One best-effort DATA numbered seq (0: not numbered) with value v. */
static void be_inject(pair_t *p, const char *from_name, uint64_t src_gen,
                      uint64_t dst_gen, uint64_t seq, uint32_t v) {
  be_inject_pkt(p, from_name, src_gen, dst_gen, &seq, 1, v);
}

static dmq_delivery_stats_t dstats(pair_t *p, int i) {
  dmq_delivery_stats_t st;
  dmq_delivery_stats(p->node[i], &st);
  return st;
}

/* rx_n of node 1, its rx_lost_be and duplicates after an injection. */
static void be_expect(pair_t *p, uint32_t rx_n, uint64_t lost, uint64_t dups) {
  dmq_delivery_stats_t st = dstats(p, 1);
  assert_int_equal(p->rx_n[1], rx_n);
  assert_int_equal(st.rx_lost_be, lost);
  assert_int_equal(st.duplicates, dups);
}

/* The receiver's side of the numbering, with crafted DATA: an older
 * sender's unnumbered DATA is delivered (copies too, as before) and never
 * counted; gaps count as lost at once, late arrivals inside a remembered
 * gap are delivered and taken off the count, copies are dropped and never
 * counted as lost; a gap pushed out by 16 newer ones stays lost; a new
 * life of the sender starts a new stream, an old life's DATA is stale;
 * numbers implied by their place in a packet. */
static void test_best_effort_numbering_rx(void **state) {
  (void)state;
  pair_t *p = calloc(1, sizeof(*p));
  assert_int_equal(pair_up(p, NULL), 0);
  dmq_member_info_t m0, m1;
  assert_int_equal(dmq_node_member(p->node[1], "n0", &m0), 0);
  assert_int_equal(dmq_node_member(p->node[1], "n1", &m1), 0);
  uint64_t g0 = m0.generation, g1 = m1.generation;
  uint32_t n = 0;
  uint64_t lost = 0, dups = 0;
  /* older sender: seq 0, delivered every time, nothing counted */
  be_inject(p, "n0", g0, g1, 0, 100);
  be_inject(p, "n0", g0, g1, 0, 100);
  be_expect(p, n += 2, 0, 0);
  /* 1 2 5: 3 and 4 lost at once */
  be_inject(p, "n0", g0, g1, 1, 1);
  be_inject(p, "n0", g0, g1, 2, 2);
  be_expect(p, n += 2, 0, 0);
  be_inject(p, "n0", g0, g1, 5, 5);
  be_expect(p, ++n, lost = 2, 0);
  /* 4 late: delivered, un-counted; its copy dropped */
  be_inject(p, "n0", g0, g1, 4, 4);
  be_expect(p, ++n, --lost, 0);
  be_inject(p, "n0", g0, g1, 4, 4);
  be_expect(p, n, lost, ++dups);
  /* 3 late, then copies of 5 and 1 */
  be_inject(p, "n0", g0, g1, 3, 3);
  be_expect(p, ++n, --lost, dups);
  be_inject(p, "n0", g0, g1, 5, 5);
  be_inject(p, "n0", g0, g1, 1, 1);
  be_expect(p, n, lost, dups += 2);
  assert_int_equal(p->rx_val[1][n - 1], 3);
  /* a gap in the middle of a range: 10 after 5 (6..9 lost), then 7 */
  be_inject(p, "n0", g0, g1, 10, 10);
  be_expect(p, ++n, lost += 4, dups);
  be_inject(p, "n0", g0, g1, 7, 7);
  be_expect(p, ++n, --lost, dups);
  be_inject(p, "n0", g0, g1, 7, 7);
  be_expect(p, n, lost, ++dups);
  be_inject(p, "n0", g0, g1, 6, 6);
  be_inject(p, "n0", g0, g1, 9, 9);
  be_expect(p, n += 2, lost -= 2, dups);
  /* 8 is the only gap left; 16 newer gaps push it out */
  for (uint64_t s = 12; s <= 42; s += 2) {
    be_inject(p, "n0", g0, g1, s, (uint32_t)s);
    be_expect(p, ++n, ++lost, dups);
  }
  be_inject(p, "n0", g0, g1, 8, 8); /* forgotten: dropped, stays lost */
  be_expect(p, n, lost, ++dups);
  be_inject(p, "n0", g0, g1, 11, 11); /* the oldest remembered gap */
  be_expect(p, ++n, --lost, dups);
  be_inject(p, "n0", g0, g1, 41, 41); /* the newest */
  be_expect(p, ++n, --lost, dups);
  /* a generation membership never heard of: dropped, no new stream */
  dmq_stats_t ns;
  uint64_t stale0 = dstats(p, 1).stale_gen;
  be_inject(p, "n0", g0 + 1, g1, 3, 3);
  be_expect(p, n, lost, dups);
  assert_true(dstats(p, 1).stale_gen == stale0 + 1);
  dmq_node_stats(p->node[1], &ns);
  assert_true(ns.drops[DMQ_DROP_IMPLAUSIBLE] == 1);
  /* the sender restarted (membership learns it): a new stream from 1 (1
   * and 2 lost) */
  alive_inject(p, "n0", 1, g0 + 1);
  be_inject(p, "n0", g0 + 1, g1, 3, 3);
  be_expect(p, ++n, lost += 2, dups);
  be_inject(p, "n0", g0 + 1, g1, 1, 1);
  be_expect(p, ++n, --lost, dups);
  /* DATA of its previous life, or for another life of ours: stale */
  uint64_t stale = dstats(p, 1).stale_gen;
  be_inject(p, "n0", g0, g1, 43, 43);
  be_inject(p, "n0", g0 + 1, g1 + 1, 4, 4);
  be_expect(p, n, lost, dups);
  assert_true(dstats(p, 1).stale_gen == stale + 2);
  /* several in one packet: 5 0 0 are 5 6 7 (4 lost); 0 0 in a packet of
   * an older sender are not numbered */
  static const uint64_t three[3] = {5, 0, 0}, two_old[2] = {0, 0};
  be_inject_pkt(p, "n0", g0 + 1, g1, three, 3, 5);
  be_expect(p, n += 3, ++lost, dups);
  assert_int_equal(p->rx_val[1][n - 1], 7);
  be_inject(p, "n0", g0 + 1, g1, 8, 8);
  be_expect(p, ++n, lost, dups);
  be_inject_pkt(p, "n0", g0 + 1, g1, three, 3, 5); /* copies */
  be_expect(p, n, lost, dups += 3);
  be_inject(p, "n0", g0 + 1, g1, 4, 4);
  be_expect(p, ++n, --lost, dups);
  be_inject_pkt(p, "n0", g0 + 1, g1, two_old, 2, 200);
  be_expect(p, n += 2, lost, dups);
  pair_free(p);
  free(p);
}

/* A best-effort sender unknown to the receiver (it learns the member
 * later) is dropped as unknown_sender; those numbers are not counted as
 * lost again once the sender is known. */
static void test_best_effort_numbering_unknown_sender(void **state) {
  (void)state;
  pair_t *p = calloc(1, sizeof(*p));
  assert_int_equal(pair_init(p, NULL), 0);
  assert_int_equal(dmq_channel_open(p->node[1], "ch", on_rx, p, &p->ch[1]), 0);
  be_inject(p, "n0", 1, 1, 1, 1);
  be_inject(p, "n0", 1, 1, 2, 2);
  dmq_delivery_stats_t st = dstats(p, 1);
  assert_int_equal(st.unknown_sender, 2);
  assert_int_equal(p->rx_n[1], 0);
  const char *seed = "mem://0";
  assert_int_equal(dmq_node_join(p->node[1], &seed, 1, 0), 0);
  pair_run(p, 2000);
  be_inject(p, "n0", 1, 1, 4, 4);
  be_expect(p, 1, 1, 0); /* only 3 */
  pair_free(p);
  free(p);
}

/* The sender's side, end to end: numbers per destination as the messages
 * go on the wire; a datagram the transport refuses is counted dropped_be
 * by the sender and leaves no gap (its numbers are reused); a datagram
 * lost after the transport took it is counted by the receiver, exactly,
 * once a later message arrives. */
static void test_best_effort_numbering_tx(void **state) {
  (void)state;
  pair_t *p = calloc(1, sizeof(*p));
  assert_int_equal(pair_up(p, NULL), 0);
  for (uint32_t v = 0; v < 50; v++)
    assert_int_equal(send_val(p, 0, "n1", "ch", v, 0, NULL), 0);
  pair_run(p, p->now + 100);
  assert_int_equal(p->rx_n[1], 50);
  assert_int_equal(dstats(p, 1).rx_lost_be, 0);
  /* refused by the transport: counted by the sender, no gap */
  p->net.refuse = 1;
  for (uint32_t v = 50; v < 60; v++)
    assert_int_equal(send_val(p, 0, "n1", "ch", v, 0, NULL), 0);
  pair_run(p, p->now + 20);
  p->net.refuse = 0;
  dmq_delivery_stats_t s0 = dstats(p, 0);
  assert_int_equal(s0.dropped_be, 10);
  assert_int_equal(s0.sent_be, 50);
  assert_int_equal(send_val(p, 0, "n1", "ch", 60, 0, NULL), 0);
  pair_run(p, p->now + 20);
  assert_int_equal(p->rx_n[1], 51);
  assert_int_equal(p->rx_val[1][50], 60);
  assert_int_equal(dstats(p, 1).rx_lost_be, 0);
  /* taken by the transport and lost: the receiver counts them */
  p->net.blackhole = 1;
  for (uint32_t v = 61; v < 100; v++)
    assert_int_equal(send_val(p, 0, "n1", "ch", v, 0, NULL), 0);
  pair_run(p, p->now + 20);
  p->net.blackhole = 0;
  assert_int_equal(dstats(p, 1).rx_lost_be, 0); /* not known yet */
  assert_int_equal(send_val(p, 0, "n1", "ch", 100, 0, NULL), 0);
  pair_run(p, p->now + 20);
  assert_int_equal(p->rx_n[1], 52);
  dmq_delivery_stats_t s1 = dstats(p, 1);
  assert_int_equal(s1.rx_lost_be, 39);
  s0 = dstats(p, 0);
  assert_int_equal(s0.sent_be, 91);
  assert_int_equal(s0.dropped_be, 10);
  assert_int_equal(s1.delivered_app + s1.rx_lost_be, s0.sent_be);
  assert_int_equal(s1.duplicates, 0);
  pair_free(p);
  free(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_config_and_names),
      cmocka_unit_test(test_advertise_and_unicast),
      cmocka_unit_test(test_queue_full_then_writable),
      cmocka_unit_test(test_cancel),
      cmocka_unit_test(test_request_reply),
      cmocka_unit_test(test_broadcast),
      cmocka_unit_test(test_fragments_over_datagrams),
      cmocka_unit_test(test_dead_left_shutdown),
      cmocka_unit_test(test_alloc_failures),
      cmocka_unit_test(test_best_effort_numbering_rx),
      cmocka_unit_test(test_best_effort_numbering_unknown_sender),
      cmocka_unit_test(test_best_effort_numbering_tx),
      cmocka_unit_test(test_burst_slices),
      cmocka_unit_test(test_byte_window),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
