/* Queued delivery (dmq/delivery.h) over real sockets: dmq_uv_t runtimes
 * (UDP + TCP, or UDP only) on 127.0.0.1, all on one libuv loop. The
 * properties of tests/sim/test_delivery.c, checked against the kernel's
 * sockets instead of the simulated network:
 *   - numbered reliable messages, 2 senders x 2 receivers x 2 channels,
 *     delivered exactly once and in order per (sender, receiver, channel),
 *     every send ending in exactly one DELIVERED outcome;
 *   - request/reply (immediate and deferred replies), a request timeout, a
 *     reply that comes after the timeout;
 *   - broadcast reaches exactly the members serving the channel, a member
 *     that starts serving later gets later broadcasts, outcome counts;
 *   - a receiver that crashes (dmq__uv_abort: no leave) with messages
 *     queued for it: each fails with DEAD exactly once, after the DEAD
 *     member event; a broadcast reports delivered 1 / failed 1;
 *   - a full destination queue: DMQ_EAGAIN, then the writable callback once
 *     the (paused) receiver drains, then the rest flows in order;
 *   - 1 MiB over TCP and over UDP only (fragments) intact and in order with
 *     the small messages around it;
 *   - best-effort messages: no outcome, every message counted.
 * Nothing sleeps: the loop runs until a predicate holds, under a watchdog
 * timer. Every test closes all runtimes, uv_run() then returns 0 and
 * uv_loop_close() succeeds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include <cmocka.h>

#include <dmq/delivery.h>
#include <dmq/uv.h>

#include "runtime/runtime_test.h" /* dmq__uv_abort */

/* Hard bound on the whole program (a hung loop must not hang ctest; generous
 * for valgrind). */
#define DT_ALARM_S 280
/* How often run_until() evaluates its predicate. */
#define DT_POLL_MS 5
#define DT_CONVERGE_MS 20000
#define DT_DELIVER_MS 30000
/* Failure detection of a crashed member (fast profile: ~1-3 s). */
#define DT_DETECT_MS 40000
#define DT_CLOSE_FLUSH_MS 200
#define DT_MAXN 6
#define DT_MAXID 16384
#define DT_BIG (1u << 20)
#define DT_BCAST 0xff /* hdr.dst of a broadcast */

/* ---------------------------------------------------------------------- */
/* context                                                                 */

/* Payload header: who sent it to whom on which channel, and its number;
 * the rest of the payload is a pattern derived from seq. */
typedef struct hdr {
  uint8_t src, dst, chan, reliable;
  uint32_t seq;
} hdr_t;

typedef struct ctx {
  uv_loop_t loop;
  int nn;
  dmq_uv_t *rt[DT_MAXN];
  char name[DT_MAXN][8];
  dmq_channel_t *ch[DT_MAXN][2];
  int closed; /* close/abort callbacks */
  /* outcomes, per sending node and message id */
  uint8_t accepted[DT_MAXN][DT_MAXID];
  uint8_t ocount[DT_MAXN][DT_MAXID];
  uint8_t ocode[DT_MAXN][DT_MAXID];
  uint8_t oafter_dead[DT_MAXN][DT_MAXID]; /* outcome ran after DEAD event */
  uint32_t odelivered[DT_MAXN][DT_MAXID], ofailed[DT_MAXN][DT_MAXID];
  uint64_t oat[DT_MAXN][DT_MAXID];
  uint64_t naccepted, noutcomes;
  /* receive side, per (src, dst, chan); dst DT_MAXN-1 slot unused */
  uint32_t next[DT_MAXN][DT_MAXN][2];
  uint64_t rx_total, rx_disorder, rx_corrupt, rx_be, rx_rel;
  uint64_t rx_by[DT_MAXN]; /* receipts per receiving node */
  /* requests */
  int reply_mode; /* 0 at once, 1 never, 2 deferred (held[]) */
  dmq_reply_handle_t held[4];
  int nheld;
  uint32_t req_of[DT_MAXID]; /* request id -> request number */
  uint32_t reply_ok, reply_bad;
  /* writable callbacks */
  int writable;
  char writable_dest[16];
  /* crash */
  int dead_seen; /* DEAD event for `victim` seen by node 0 */
  uint64_t dead_at;
  int victim;
  /* large messages */
  uint64_t big_sum;
  int big_got, big_bad;
  uint32_t big_at; /* rx_total when it arrived */
  /* pump: numbered sends spread over loop turns */
  uint32_t per, batch, sent_n;
  uint32_t sent[DT_MAXN][DT_MAXN][2];
  int pump_src[DT_MAXN], pump_dst[DT_MAXN];
  int npsrc, npdst;
  int pump_reliable;
  uint64_t pump_eagain;
  int pump_done;
} ctx_t;

static int node_idx(ctx_t *c, const dmq_node_t *n) {
  for (int i = 0; i < c->nn; i++)
    if (c->rt[i] != NULL && dmq_uv_node(c->rt[i]) == n)
      return i;
  fail_msg("unknown node");
  return -1;
}

static dmq_node_t *node(ctx_t *c, int i) {
  assert_non_null(c->rt[i]);
  return dmq_uv_node(c->rt[i]);
}

static uint64_t now_ms(ctx_t *c) {
  return uv_now(&c->loop);
}

static const char *chan_name(int k) {
  return k ? "htable" : "usrloc";
}

static uint64_t fnv(const uint8_t *p, size_t n) {
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 1099511628211ULL;
  return h;
}

static uint8_t pattern(uint32_t seq, size_t i) {
  return (uint8_t)((seq * 31u + (uint32_t)i * 7u) & 0xffu);
}

/* ---------------------------------------------------------------------- */
/* loop helpers                                                            */

typedef int (*pred_fn)(ctx_t *c);

typedef struct runner {
  uv_timer_t watchdog, poll;
  pred_fn pred;
  ctx_t *c;
} runner_t;

static void runner_on_watchdog(uv_timer_t *h) {
  uv_stop(h->loop);
}

static void runner_on_poll(uv_timer_t *h) {
  runner_t *r = h->data;
  if (r->pred(r->c))
    uv_stop(h->loop);
}

static void runner_closed(uv_handle_t *h) {
  (void)h;
}

/* Run the loop until pred holds or timeout_ms pass; returns pred. */
static int run_until(ctx_t *c, pred_fn pred, uint64_t timeout_ms) {
  runner_t r;
  memset(&r, 0, sizeof(r));
  r.pred = pred;
  r.c = c;
  uv_timer_init(&c->loop, &r.watchdog);
  uv_timer_init(&c->loop, &r.poll);
  r.watchdog.data = r.poll.data = &r;
  uv_timer_start(&r.watchdog, runner_on_watchdog, timeout_ms, 0);
  uv_timer_start(&r.poll, runner_on_poll, 0, DT_POLL_MS);
  if (!pred(c))
    uv_run(&c->loop, UV_RUN_DEFAULT);
  uv_close((uv_handle_t *)&r.watchdog, runner_closed);
  uv_close((uv_handle_t *)&r.poll, runner_closed);
  uv_run(&c->loop, UV_RUN_NOWAIT); /* the two close callbacks */
  return pred(c);
}

static int never(ctx_t *c) {
  (void)c;
  return 0;
}

/* Run the loop for ms (the predicate never holds). */
static void run_for(ctx_t *c, uint64_t ms) {
  run_until(c, never, ms);
}

/* ---------------------------------------------------------------------- */
/* callbacks                                                               */

static void on_outcome(dmq_node_t *n, const dmq_outcome_info_t *o, void *ud) {
  ctx_t *c = ud;
  int h = node_idx(c, n);
  assert_true(o->id < DT_MAXID);
  c->ocount[h][o->id]++;
  c->ocode[h][o->id] = (uint8_t)o->outcome;
  c->oat[h][o->id] = now_ms(c);
  c->oafter_dead[h][o->id] = (uint8_t)c->dead_seen;
  c->odelivered[h][o->id] = o->delivered;
  c->ofailed[h][o->id] = o->failed;
  c->noutcomes++;
  if (o->reply != NULL) {
    /* request/reply: "re:" + the request */
    uint32_t q = c->req_of[o->id];
    char want[32];
    int l = snprintf(want, sizeof(want), "re:req-%u", q);
    if (o->reply_len == (size_t)l && memcmp(o->reply, want, (size_t)l) == 0)
      c->reply_ok++;
    else
      c->reply_bad++;
  }
}

static void answer(ctx_t *c, dmq_node_t *n, dmq_reply_handle_t *h,
                   const void *req, size_t len) {
  char buf[64];
  assert_true(len + 3 <= sizeof(buf));
  memcpy(buf, "re:", 3);
  memcpy(buf + 3, req, len);
  assert_int_equal(dmq_reply(n, h, buf, len + 3, now_ms(c)), 0);
  assert_false(h->valid);
}

static void on_rx(dmq_node_t *n, dmq_channel_t *ch, const dmq_message_t *m,
                  void *ud) {
  ctx_t *c = ud;
  (void)ch;
  int me = node_idx(c, n);
  c->rx_total++;
  c->rx_by[me]++;
  if (m->request != NULL) {
    if (c->reply_mode == 0) {
      dmq_reply_handle_t h = *m->request;
      answer(c, n, &h, m->data, m->len);
    } else if (c->reply_mode == 2) {
      assert_true(c->nheld < 4);
      c->held[c->nheld++] = *m->request; /* copied: answered later */
    }
    return;
  }
  if (c->big_sum != 0 && m->len == DT_BIG) {
    c->big_got++;
    c->big_at = (uint32_t)c->rx_total;
    if (fnv(m->data, m->len) != c->big_sum)
      c->big_bad++;
    return;
  }
  if (m->len < sizeof(hdr_t)) {
    c->rx_corrupt++;
    return;
  }
  hdr_t hd;
  memcpy(&hd, m->data, sizeof hd);
  const uint8_t *p = (const uint8_t *)m->data;
  for (size_t i = sizeof hd; i < m->len; i++)
    if (p[i] != pattern(hd.seq, i)) {
      c->rx_corrupt++;
      break;
    }
  if ((hd.dst != me && hd.dst != DT_BCAST) || hd.src >= c->nn || hd.chan > 1 ||
      hd.reliable != (uint8_t)(m->reliable != 0) ||
      strcmp(m->from, c->name[hd.src]) != 0 ||
      strcmp(m->channel, chan_name(hd.chan)) != 0) {
    c->rx_corrupt++;
    return;
  }
  if (!m->reliable) {
    c->rx_be++;
    return;
  }
  c->rx_rel++;
  uint32_t *nx = &c->next[hd.src][me][hd.chan];
  if (hd.seq != *nx && c->rx_disorder++ < 5)
    fprintf(stderr, "%d->%d %s: got %u, expected %u\n", hd.src, me,
            chan_name(hd.chan), hd.seq, *nx);
  *nx = hd.seq + 1;
}

static void on_writable(dmq_node_t *n, const char *dest, void *ud);

static void on_member(dmq_node_t *n, dmq_member_event_t ev,
                      const dmq_member_info_t *mi, void *ud) {
  ctx_t *c = ud;
  if (ev == DMQ_EVENT_DEAD && node_idx(c, n) == 0 && c->victim > 0 &&
      strcmp(mi->name, c->name[c->victim]) == 0 && !c->dead_seen) {
    c->dead_seen = 1;
    c->dead_at = now_ms(c);
  }
}

static void on_closed(void *ud) {
  ((ctx_t *)ud)->closed++;
}

/* ---------------------------------------------------------------------- */
/* setup and teardown                                                      */

static ctx_t *ctx_new(void) {
  ctx_t *c = calloc(1, sizeof(*c));
  assert_non_null(c);
  assert_int_equal(uv_loop_init(&c->loop), 0);
  return c;
}

static void add_node(ctx_t *c, dmq_profile_t prof, int no_tcp) {
  int i = c->nn;
  assert_true(i < DT_MAXN);
  snprintf(c->name[i], sizeof(c->name[i]), "n%d", i);
  dmq_config_t cfg;
  assert_int_equal(dmq_config_init(&cfg, prof), 0);
  cfg.name = c->name[i];
  dmq_uv_options_t o;
  dmq_uv_options_init(&o);
  o.bind = "127.0.0.1:0";
  o.no_tcp = no_tcp;
  int rc = dmq_uv_new(&c->loop, &cfg, &o, &c->rt[i]);
  if (rc != 0)
    fail_msg("dmq_uv_new: %s", dmq_strerror(rc));
  c->nn++;
  dmq_node_set_member_cb(dmq_uv_node(c->rt[i]), on_member, c);
  dmq_delivery_set_writable_cb(dmq_uv_node(c->rt[i]), on_writable, c);
}

static int sees_alive(ctx_t *c, int obs, int who) {
  dmq_member_info_t mi;
  return dmq_node_member(node(c, obs), c->name[who], &mi) == 0 &&
         mi.state == DMQ_MEMBER_ALIVE;
}

static int converged(ctx_t *c) {
  for (int i = 0; i < c->nn; i++)
    for (int j = 0; j < c->nn; j++)
      if (i != j && !sees_alive(c, i, j))
        return 0;
  return 1;
}

/* n nodes joined through node 0, converged. */
static ctx_t *cluster(int n, dmq_profile_t prof, int no_tcp) {
  ctx_t *c = ctx_new();
  for (int i = 0; i < n; i++)
    add_node(c, prof, no_tcp);
  const char *seed = dmq_uv_addr(c->rt[0]);
  for (int i = 1; i < n; i++)
    assert_int_equal(dmq_uv_join(c->rt[i], &seed, 1), 0);
  assert_true(run_until(c, converged, DT_CONVERGE_MS));
  return c;
}

static void serve(ctx_t *c, int h, int k) {
  assert_int_equal(
      dmq_channel_open(node(c, h), chan_name(k), on_rx, c, &c->ch[h][k]), 0);
  dmq_uv_kick(c->rt[h]);
}

/* Every live node sees every (h, k) in want[] served. */
static int want_n;
static int want_h[DT_MAXN * 2], want_k[DT_MAXN * 2];

static int served_everywhere(ctx_t *c) {
  for (int w = 0; w < want_n; w++)
    for (int i = 0; i < c->nn; i++)
      if (i != want_h[w] && c->rt[i] != NULL &&
          !dmq_member_serves(node(c, i), c->name[want_h[w]],
                             chan_name(want_k[w])))
        return 0;
  return 1;
}

static void serve_and_wait(ctx_t *c, const int *h, const int *k, int n) {
  want_n = n;
  for (int i = 0; i < n; i++) {
    want_h[i] = h[i];
    want_k[i] = k[i];
    serve(c, h[i], k[i]);
  }
  assert_true(run_until(c, served_everywhere, DT_CONVERGE_MS));
}

/* Close every runtime; the loop must then run dry and close. */
static void ctx_finish(ctx_t *c) {
  int want = c->closed;
  for (int i = 0; i < c->nn; i++) {
    if (c->rt[i] == NULL)
      continue;
    dmq_uv_close(c->rt[i], DT_CLOSE_FLUSH_MS, on_closed, c);
    c->rt[i] = NULL;
    want++;
  }
  assert_int_equal(uv_run(&c->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(c->closed, want);
  assert_int_equal(uv_loop_close(&c->loop), 0);
  free(c);
}

/* ---------------------------------------------------------------------- */
/* sending helpers                                                         */

static int send_num(ctx_t *c, int src, int dst, int k, uint32_t seq,
                    size_t extra, int reliable) {
  uint8_t buf[sizeof(hdr_t) + 1024];
  hdr_t hd = {(uint8_t)src, (uint8_t)dst, (uint8_t)k, (uint8_t)reliable, seq};
  assert_true(sizeof hd + extra <= sizeof buf);
  memcpy(buf, &hd, sizeof hd);
  for (size_t i = sizeof hd; i < sizeof hd + extra; i++)
    buf[i] = pattern(seq, i);
  dmq_send_opts_t o;
  dmq_send_opts_init(&o);
  o.mode = reliable ? DMQ_SEND_RELIABLE : DMQ_SEND_BEST_EFFORT;
  o.cb = on_outcome;
  o.user_data = c;
  dmq_msg_id_t id = 0;
  int rc = dmq_send(node(c, src), c->name[dst], chan_name(k), buf,
                    sizeof hd + extra, &o, now_ms(c), &id);
  if (rc == 0 && reliable) {
    assert_true(id > 0 && id < DT_MAXID);
    assert_int_equal(c->accepted[src][id], 0);
    c->accepted[src][id] = 1;
    c->naccepted++;
  }
  return rc;
}

static int send_bcast(ctx_t *c, int src, int k, uint32_t seq, int reliable,
                      dmq_msg_id_t *idp) {
  uint8_t buf[sizeof(hdr_t) + 16];
  hdr_t hd = {(uint8_t)src, DT_BCAST, (uint8_t)k, (uint8_t)reliable, seq};
  memcpy(buf, &hd, sizeof hd);
  for (size_t i = sizeof hd; i < sizeof buf; i++)
    buf[i] = pattern(seq, i);
  dmq_send_opts_t o;
  dmq_send_opts_init(&o);
  o.mode = reliable ? DMQ_SEND_RELIABLE : DMQ_SEND_BEST_EFFORT;
  o.cb = on_outcome;
  o.user_data = c;
  dmq_msg_id_t id = 0;
  int rc = dmq_broadcast(node(c, src), chan_name(k), buf, sizeof buf, &o,
                         now_ms(c), &id);
  if (rc == 0 && reliable) {
    assert_true(id > 0 && id < DT_MAXID);
    c->accepted[src][id] = 1;
    c->naccepted++;
  }
  if (idp != NULL)
    *idp = id;
  return rc;
}

/* Every accepted send from node h had exactly one outcome; how many oc. */
static uint32_t outcomes(ctx_t *c, int h, dmq_outcome_t oc) {
  uint32_t n = 0;
  for (uint32_t id = 0; id < DT_MAXID; id++) {
    if (!c->accepted[h][id]) {
      assert_int_equal(c->ocount[h][id], 0);
      continue;
    }
    if (c->ocount[h][id] != 1)
      fail_msg("node %d message %u had %d outcomes", h, id, c->ocount[h][id]);
    n += c->ocode[h][id] == (uint8_t)oc;
  }
  return n;
}

static dmq_delivery_stats_t dstats(ctx_t *c, int h) {
  dmq_delivery_stats_t st;
  dmq_delivery_stats(node(c, h), &st);
  return st;
}

/* The pump: every pump_src sends `batch` numbered messages to every
 * pump_dst on both channels per loop turn (a 1 ms timer), `per` per
 * (src, dst, channel), retrying a refused send at the next turn. */
static void pump_step(ctx_t *c) {
  int more = 0;
  for (int a = 0; a < c->npsrc; a++)
    for (int b = 0; b < c->npdst; b++)
      for (int k = 0; k < 2; k++) {
        int s = c->pump_src[a], r = c->pump_dst[b];
        uint32_t *q = &c->sent[s][r][k];
        for (uint32_t i = 0; i < c->batch && *q < c->per; i++) {
          /* sizes vary: most messages are packed, some fill a datagram */
          size_t extra = (*q % 97 == 0) ? 1000 : (*q * 37u) % 300;
          int rc = send_num(c, s, r, k, *q, extra, c->pump_reliable);
          if (rc == DMQ_EAGAIN) {
            c->pump_eagain++;
            break;
          }
          assert_int_equal(rc, 0);
          (*q)++;
          c->sent_n++;
        }
        if (*q < c->per)
          more = 1;
      }
  for (int a = 0; a < c->npsrc; a++)
    dmq_uv_kick(c->rt[c->pump_src[a]]);
  c->pump_done = !more;
}

static void pump_on_timer(uv_timer_t *t) {
  ctx_t *c = t->data;
  pump_step(c);
  if (c->pump_done)
    uv_timer_stop(t);
}

static void pump_run(ctx_t *c, uv_timer_t *t) {
  uv_timer_init(&c->loop, t);
  t->data = c;
  uv_timer_start(t, pump_on_timer, 0, 1);
}

static void on_writable(dmq_node_t *n, const char *dest, void *ud) {
  ctx_t *c = ud;
  (void)n;
  c->writable++;
  snprintf(c->writable_dest, sizeof(c->writable_dest), "%s",
           dest != NULL ? dest : "(null)");
  /* test_queue_full_writable: refill from the callback itself */
  if (c->per > 0 && c->npsrc == 0) {
    while (c->sent[0][1][0] < c->per) {
      int rc = send_num(c, 0, 1, 0, c->sent[0][1][0], 64, 1);
      if (rc == DMQ_EAGAIN) {
        c->pump_eagain++;
        break;
      }
      assert_int_equal(rc, 0);
      c->sent[0][1][0]++;
    }
  }
}

/* ---------------------------------------------------------------------- */
/* tests                                                                   */

static int all_delivered(ctx_t *c) {
  return c->pump_done && c->rx_total == c->sent_n &&
         c->noutcomes == c->naccepted;
}

/* 2 senders x 2 receivers x 2 channels, 3000 numbered reliable messages per
 * (sender, receiver, channel) sent over many loop turns: each delivered
 * exactly once and in order; each send has exactly one outcome, DELIVERED. */
static void test_exactly_once_in_order(void **state) {
  ctx_t *c = cluster(4, DMQ_PROFILE_LOCAL, 0);
  int h[] = {2, 2, 3, 3}, k[] = {0, 1, 0, 1};
  serve_and_wait(c, h, k, 4);
  c->per = 3000;
  c->batch = 150;
  c->pump_src[0] = 0;
  c->pump_src[1] = 1;
  c->pump_dst[0] = 2;
  c->pump_dst[1] = 3;
  c->npsrc = c->npdst = 2;
  c->pump_reliable = 1;
  uv_timer_t t;
  pump_run(c, &t);
  assert_true(run_until(c, all_delivered, DT_DELIVER_MS));
  uv_close((uv_handle_t *)&t, NULL);
  const uint32_t total = 2 * 2 * 2 * 3000;
  assert_int_equal(c->sent_n, total);
  /* nothing more comes: no late duplicate is delivered */
  run_for(c, 300);
  assert_int_equal(c->rx_total, total);
  assert_int_equal(c->rx_rel, total);
  assert_int_equal(c->rx_disorder, 0);
  assert_int_equal(c->rx_corrupt, 0);
  for (int s = 0; s < 2; s++)
    for (int r = 2; r < 4; r++)
      for (int q = 0; q < 2; q++)
        assert_int_equal(c->next[s][r][q], 3000);
  uint32_t delivered = 0;
  for (int s = 0; s < 2; s++) {
    delivered += outcomes(c, s, DMQ_OUTCOME_DELIVERED);
    dmq_delivery_stats_t st = dstats(c, s);
    assert_true(st.queued_msgs == 0 && st.inflight == 0);
    assert_true(st.sent_reliable >= total / 2);
    assert_true(st.expired == 0 && st.dead == 0);
  }
  assert_int_equal(delivered, total);
  for (int r = 2; r < 4; r++) {
    dmq_delivery_stats_t st = dstats(c, r);
    assert_true(st.delivered_app == total / 2);
    assert_true(st.rx_buffered == 0 && st.rx_buffered_bytes == 0);
    assert_true(st.acks_sent > 0);
  }
  ctx_finish(c);
}

static int outcome_count_is(ctx_t *c) {
  return c->noutcomes == c->naccepted;
}

static int held_two(ctx_t *c) {
  return c->nheld == 2;
}

static int late_reply_seen(ctx_t *c) {
  return dstats(c, 0).late_replies == 1;
}

static dmq_msg_id_t request(ctx_t *c, uint32_t q, uint32_t timeout_ms) {
  char buf[32];
  int l = snprintf(buf, sizeof(buf), "req-%u", q);
  dmq_msg_id_t id = 0;
  assert_int_equal(dmq_request(node(c, 0), "n1", "usrloc", buf, (size_t)l,
                               timeout_ms, on_outcome, c, now_ms(c), &id),
                   0);
  assert_true(id > 0 && id < DT_MAXID);
  c->accepted[0][id] = 1;
  c->req_of[id] = q;
  c->naccepted++;
  return id;
}

/* 200 concurrent requests, each answered with its own reply; deferred
 * replies from copied handles; a request nobody answers expires at its
 * timeout; a reply after the timeout is counted as late and ignored. */
static void test_request_reply(void **state) {
  ctx_t *c = cluster(2, DMQ_PROFILE_LOCAL, 0);
  int h[] = {1}, k[] = {0};
  serve_and_wait(c, h, k, 1);
  for (uint32_t q = 0; q < 200; q++)
    request(c, q, 0);
  dmq_uv_kick(c->rt[0]);
  assert_true(run_until(c, outcome_count_is, DT_DELIVER_MS));
  assert_int_equal(outcomes(c, 0, DMQ_OUTCOME_DELIVERED), 200);
  assert_int_equal(c->reply_ok, 200);
  assert_int_equal(c->reply_bad, 0);

  /* deferred: the server keeps the handles and answers from outside any
   * callback */
  c->reply_mode = 2;
  request(c, 1000, 5000);
  request(c, 1001, 5000);
  dmq_uv_kick(c->rt[0]);
  assert_true(run_until(c, held_two, DT_DELIVER_MS));
  assert_int_equal(c->noutcomes, 200); /* waiting */
  answer(c, node(c, 1), &c->held[1], "req-1001", 8);
  answer(c, node(c, 1), &c->held[0], "req-1000", 8);
  dmq_reply_handle_t used = c->held[0];
  assert_int_equal(dmq_reply(node(c, 1), &used, "x", 1, now_ms(c)), DMQ_EINVAL);
  dmq_uv_kick(c->rt[1]);
  assert_true(run_until(c, outcome_count_is, DT_DELIVER_MS));
  assert_int_equal(outcomes(c, 0, DMQ_OUTCOME_DELIVERED), 202);
  assert_int_equal(c->reply_ok, 202);

  /* nobody answers: EXPIRED at the timeout, exactly once */
  c->reply_mode = 1;
  uv_update_time(&c->loop);
  uint64_t t0 = now_ms(c);
  dmq_msg_id_t id = request(c, 2000, 300);
  dmq_uv_kick(c->rt[0]);
  assert_true(run_until(c, outcome_count_is, DT_DELIVER_MS));
  assert_int_equal(c->ocode[0][id], DMQ_OUTCOME_EXPIRED);
  assert_true(c->oat[0][id] - t0 >= 300);
  assert_true(c->oat[0][id] - t0 < 300 + 2000);

  /* answered after the timeout: EXPIRED, the late reply is ignored */
  c->reply_mode = 2;
  c->nheld = 0;
  id = request(c, 3000, 200);
  dmq_uv_kick(c->rt[0]);
  assert_true(run_until(c, outcome_count_is, DT_DELIVER_MS));
  assert_int_equal(c->ocode[0][id], DMQ_OUTCOME_EXPIRED);
  assert_int_equal(c->nheld, 1);
  answer(c, node(c, 1), &c->held[0], "req-3000", 8);
  dmq_uv_kick(c->rt[1]);
  assert_true(run_until(c, late_reply_seen, DT_DELIVER_MS));
  run_for(c, 100);
  assert_int_equal(outcomes(c, 0, DMQ_OUTCOME_EXPIRED), 2);
  assert_int_equal(outcomes(c, 0, DMQ_OUTCOME_DELIVERED), 202);
  assert_int_equal(c->reply_ok, 202);
  assert_int_equal(dstats(c, 0).expired, 2);
  ctx_finish(c);
}

static uint64_t rx_goal;

static int rx_reached(ctx_t *c) {
  return c->rx_total >= rx_goal && c->noutcomes == c->naccepted;
}

/* Broadcast reaches exactly the members serving the channel (not the
 * sender, not a member serving another channel), in order, with outcome
 * counts; a member that starts serving later gets later broadcasts; a
 * channel nobody serves completes at once with 0 / 0. */
static void test_broadcast(void **state) {
  ctx_t *c = cluster(5, DMQ_PROFILE_LOCAL, 0);
  int h[] = {1, 2, 3, 4}, k[] = {0, 0, 0, 1};
  serve_and_wait(c, h, k, 4);
  const uint32_t nb = 100;
  for (uint32_t q = 0; q < nb; q++)
    assert_int_equal(send_bcast(c, 0, 0, q, 1, NULL), 0);
  dmq_uv_kick(c->rt[0]);
  rx_goal = 3 * nb;
  assert_true(run_until(c, rx_reached, DT_DELIVER_MS));
  run_for(c, 100);
  assert_int_equal(c->rx_total, 3 * nb);
  assert_int_equal(outcomes(c, 0, DMQ_OUTCOME_DELIVERED), nb);
  for (uint32_t id = 0; id < DT_MAXID; id++)
    if (c->accepted[0][id]) {
      assert_int_equal(c->odelivered[0][id], 3);
      assert_int_equal(c->ofailed[0][id], 0);
    }
  assert_int_equal(c->rx_by[0], 0);
  assert_int_equal(c->rx_by[4], 0);
  for (int r = 1; r <= 3; r++) {
    assert_int_equal(c->rx_by[r], nb);
    assert_int_equal(c->next[0][r][0], nb);
  }
  assert_int_equal(c->rx_disorder, 0);
  assert_int_equal(c->rx_corrupt, 0);

  /* best effort: same destinations, no outcome */
  uint64_t out0 = c->noutcomes;
  for (uint32_t q = 0; q < nb; q++)
    assert_int_equal(send_bcast(c, 0, 0, q, 0, NULL), 0);
  dmq_uv_kick(c->rt[0]);
  rx_goal = 6 * nb;
  assert_true(run_until(c, rx_reached, DT_DELIVER_MS));
  run_for(c, 100);
  assert_int_equal(c->rx_be, 3 * nb);
  assert_int_equal(c->noutcomes, out0);
  assert_int_equal(c->rx_by[4], 0);
  assert_int_equal(dstats(c, 0).sent_be, 3 * nb);

  /* node 4 starts serving usrloc: later broadcasts reach it too */
  int h4[] = {4}, k4[] = {0};
  serve_and_wait(c, h4, k4, 1);
  dmq_msg_id_t id;
  c->next[0][4][0] = nb;
  assert_int_equal(send_bcast(c, 0, 0, nb, 1, &id), 0);
  dmq_uv_kick(c->rt[0]);
  rx_goal = 6 * nb + 4;
  assert_true(run_until(c, rx_reached, DT_DELIVER_MS));
  assert_int_equal(c->ocode[0][id], DMQ_OUTCOME_DELIVERED);
  assert_int_equal(c->odelivered[0][id], 4);
  assert_int_equal(c->ofailed[0][id], 0);
  assert_int_equal(c->rx_by[4], 1);

  /* nobody (else) serves it: DELIVERED, 0 / 0, no message sent */
  dmq_send_opts_t o;
  dmq_send_opts_init(&o);
  o.mode = DMQ_SEND_RELIABLE;
  o.cb = on_outcome;
  o.user_data = c;
  assert_int_equal(
      dmq_broadcast(node(c, 0), "nobody", "x", 1, &o, now_ms(c), &id), 0);
  c->accepted[0][id] = 1;
  c->naccepted++;
  dmq_uv_kick(c->rt[0]);
  assert_true(run_until(c, outcome_count_is, DT_DELIVER_MS));
  assert_int_equal(c->ocode[0][id], DMQ_OUTCOME_DELIVERED);
  assert_int_equal(c->odelivered[0][id], 0);
  assert_int_equal(c->ofailed[0][id], 0);
  run_for(c, 100);
  assert_int_equal(c->rx_total, 6 * nb + 4);
  assert_int_equal(outcomes(c, 0, DMQ_OUTCOME_DELIVERED), nb + 2);
  ctx_finish(c);
}

static int victim_dead_and_done(ctx_t *c) {
  return c->dead_seen && c->noutcomes == c->naccepted && c->closed == 1;
}

static int first_batch_in(ctx_t *c) {
  return c->rx_total == 20 && c->noutcomes == c->naccepted;
}

/* A receiver crashes (no leave) with messages queued for it: each fails
 * with DEAD exactly once, only after it is declared dead; a broadcast to
 * it and a live member reports delivered 1 / failed 1; sends to it are
 * then refused. */
static void test_receiver_crash(void **state) {
  ctx_t *c = cluster(3, DMQ_PROFILE_FAST, 0);
  int h[] = {1, 2}, k[] = {0, 0};
  serve_and_wait(c, h, k, 2);
  for (uint32_t q = 0; q < 20; q++)
    assert_int_equal(send_num(c, 0, 1, 0, q, 50, 1), 0);
  dmq_uv_kick(c->rt[0]);
  assert_true(run_until(c, first_batch_in, DT_DELIVER_MS));
  assert_int_equal(outcomes(c, 0, DMQ_OUTCOME_DELIVERED), 20);

  /* queue 50 more (some reach its socket, never its callback), then crash
   * it before the loop runs again */
  uint64_t rx1 = c->rx_by[1];
  for (uint32_t q = 20; q < 70; q++)
    assert_int_equal(send_num(c, 0, 1, 0, q, 50, 1), 0);
  dmq_msg_id_t bid;
  assert_int_equal(send_bcast(c, 0, 0, 0, 1, &bid), 0);
  dmq_uv_kick(c->rt[0]);
  c->victim = 1;
  dmq__uv_abort(c->rt[1], on_closed, c);
  c->rt[1] = NULL;
  assert_true(run_until(c, victim_dead_and_done, DT_DETECT_MS));
  assert_int_equal(c->rx_by[1], rx1);
  assert_int_equal(outcomes(c, 0, DMQ_OUTCOME_DEAD), 51);
  for (uint32_t id = 0; id < DT_MAXID; id++)
    if (c->accepted[0][id] && c->ocode[0][id] == DMQ_OUTCOME_DEAD) {
      assert_true(c->oafter_dead[0][id]);
      assert_true(c->oat[0][id] >= c->dead_at);
    }
  assert_int_equal(c->odelivered[0][bid], 1);
  assert_int_equal(c->ofailed[0][bid], 1);
  assert_int_equal(c->rx_by[2], 1); /* the broadcast, once */
  dmq_delivery_stats_t st = dstats(c, 0);
  assert_true(st.dead == 51 && st.queued_msgs == 0 && st.inflight == 0);
  assert_int_equal(send_num(c, 0, 1, 0, 99, 0, 1), DMQ_ENOENT);
  /* exactly once: nothing else arrives later */
  run_for(c, 300);
  assert_int_equal(outcomes(c, 0, DMQ_OUTCOME_DEAD), 51);
  assert_int_equal(outcomes(c, 0, DMQ_OUTCOME_DELIVERED), 20);
  assert_int_equal(c->rx_by[2], 1);
  ctx_finish(c);
}

static int got_writable(ctx_t *c) {
  return c->writable > 0;
}

static int queue_drained(ctx_t *c) {
  return c->sent[0][1][0] == c->per && c->rx_total == c->per &&
         c->noutcomes == c->naccepted;
}

/* A full destination queue refuses with DMQ_EAGAIN; nothing is writable
 * while the receiver holds everything (paused channel); once it resumes,
 * the writable callback comes and the rest is sent from it, in order. */
static void test_queue_full_writable(void **state) {
  ctx_t *c = cluster(2, DMQ_PROFILE_LOCAL, 0);
  dmq_delivery_config_t dc;
  dmq_delivery_config_init(&dc);
  dc.queue_msgs = 100;
  assert_int_equal(dmq_delivery_configure(node(c, 0), &dc), 0);
  int h[] = {1}, k[] = {0};
  serve_and_wait(c, h, k, 1);
  dmq_channel_pause(c->ch[1][0], 1);
  uint32_t q = 0;
  int rc;
  while ((rc = send_num(c, 0, 1, 0, q, 64, 1)) == 0)
    q++;
  assert_int_equal(rc, DMQ_EAGAIN);
  assert_int_equal(q, 100);
  assert_int_equal(dstats(c, 0).refused_full, 1);
  dmq_uv_kick(c->rt[0]);
  /* everything reaches the receiver, which holds it: still full */
  run_for(c, 400);
  assert_int_equal(c->writable, 0);
  assert_int_equal(c->rx_total, 0);
  assert_int_equal(dstats(c, 1).rx_buffered, 100);
  assert_int_equal(send_num(c, 0, 1, 0, q, 64, 1), DMQ_EAGAIN);
  assert_int_equal(dstats(c, 0).refused_full, 2);
  assert_int_equal(dstats(c, 0).queued_msgs, 100);
  /* resume: the queue drains, the writable callback refills it */
  c->sent[0][1][0] = q;
  c->per = 2000;
  dmq_channel_pause(c->ch[1][0], 0);
  dmq_uv_kick(c->rt[1]);
  assert_true(run_until(c, got_writable, DT_DELIVER_MS));
  assert_string_equal(c->writable_dest, "n1");
  assert_true(run_until(c, queue_drained, DT_DELIVER_MS));
  assert_int_equal(c->rx_disorder, 0);
  assert_int_equal(c->rx_corrupt, 0);
  assert_int_equal(c->next[0][1][0], 2000);
  assert_int_equal(outcomes(c, 0, DMQ_OUTCOME_DELIVERED), 2000);
  assert_true(c->writable >= 2); /* 2000 through a 100-message queue */
  assert_true(c->pump_eagain >= 1);
  dmq_delivery_stats_t st = dstats(c, 0);
  assert_true(st.refused_full == 2 + c->pump_eagain);
  assert_true(st.queued_msgs == 0 && st.inflight == 0);
  ctx_finish(c);
}

static int big_done(ctx_t *c) {
  return c->rx_total >= 3 && c->noutcomes == c->naccepted;
}

static int big_be_done(ctx_t *c) {
  return c->big_got >= 2;
}

/* small 0, 1 MiB, small 1 from node 0 to node 1: delivered intact, in
 * order; then a best-effort 1 MiB. */
static void one_mib(int no_tcp) {
  ctx_t *c = cluster(2, DMQ_PROFILE_LOCAL, no_tcp);
  int h[] = {1}, k[] = {0};
  serve_and_wait(c, h, k, 1);
  uint8_t *big = malloc(DT_BIG);
  assert_non_null(big);
  for (size_t i = 0; i < DT_BIG; i++)
    big[i] = (uint8_t)((i * 2654435761u) >> 13);
  c->big_sum = fnv(big, DT_BIG);
  assert_int_equal(send_num(c, 0, 1, 0, 0, 10, 1), 0);
  dmq_send_opts_t o;
  dmq_send_opts_init(&o);
  o.mode = DMQ_SEND_RELIABLE;
  o.cb = on_outcome;
  o.user_data = c;
  dmq_msg_id_t id;
  assert_int_equal(
      dmq_send(node(c, 0), "n1", "usrloc", big, DT_BIG, &o, now_ms(c), &id), 0);
  c->accepted[0][id] = 1;
  c->naccepted++;
  assert_int_equal(send_num(c, 0, 1, 0, 1, 10, 1), 0);
  dmq_uv_kick(c->rt[0]);
  assert_true(run_until(c, big_done, DT_DELIVER_MS));
  assert_int_equal(c->big_got, 1);
  assert_int_equal(c->big_bad, 0);
  assert_int_equal(c->big_at, 2); /* between the two small ones */
  assert_int_equal(c->rx_total, 3);
  assert_int_equal(c->rx_disorder, 0);
  assert_int_equal(outcomes(c, 0, DMQ_OUTCOME_DELIVERED), 3);
  dmq_delivery_stats_t s0 = dstats(c, 0), s1 = dstats(c, 1);
  if (no_tcp) {
    /* ~1.3 KiB fragments in 1400-byte datagrams */
    assert_true(s0.fragments_sent >= DT_BIG / 1400 &&
                s0.fragments_sent <= DT_BIG / 1200);
    assert_true(s1.fragments_received + 1 >= s0.fragments_sent);
  } else {
    assert_true(s0.fragments_sent == 0);
  }
  assert_true(s0.queued_msgs == 0 && s0.inflight == 0);
  assert_true(s1.rx_buffered == 0);

  /* best effort: only over the stream transport */
  o.mode = DMQ_SEND_BEST_EFFORT;
  int rc =
      dmq_send(node(c, 0), "n1", "usrloc", big, DT_BIG, &o, now_ms(c), NULL);
  if (no_tcp) {
    assert_int_equal(rc, DMQ_ETOOBIG);
  } else {
    assert_int_equal(rc, 0);
    dmq_uv_kick(c->rt[0]);
    assert_true(run_until(c, big_be_done, DT_DELIVER_MS));
    assert_int_equal(c->big_bad, 0);
  }
  free(big);
  ctx_finish(c);
}

static void test_one_mib_tcp(void **state) {
  one_mib(0);
}

static void test_one_mib_udp_only(void **state) {
  one_mib(1);
}

/* Datagrams the kernel dropped on the UDP socket bound to 127.0.0.1:port
 * (last column of /proc/net/udp; 0 if unreadable). */
static uint64_t udp_socket_drops(uint16_t port) {
  FILE *f = fopen("/proc/net/udp", "r");
  if (f == NULL)
    return 0;
  char line[512];
  uint64_t drops = 0;
  while (fgets(line, sizeof(line), f) != NULL) {
    unsigned ip, p;
    char *colon = strchr(line, ':');
    if (colon == NULL || sscanf(colon + 1, " %8X:%4X", &ip, &p) != 2 ||
        p != port)
      continue;
    char *last = NULL, *save = NULL;
    for (char *t = strtok_r(line, " \t\n", &save); t != NULL;
         t = strtok_r(NULL, " \t\n", &save))
      last = t;
    if (last != NULL)
      drops += strtoull(last, NULL, 10);
  }
  fclose(f);
  return drops;
}

static uint16_t udp_port(ctx_t *c, int h) {
  const char *a = strrchr(dmq_uv_addr(c->rt[h]), ':');
  assert_non_null(a);
  return (uint16_t)atoi(a + 1);
}

static uint64_t be_seen;
static int be_quiet_turns;

/* Everything sent arrived, or nothing more arrived for 50 polls (a loss). */
static int be_settled(ctx_t *c) {
  if (!c->pump_done)
    return 0;
  if (c->rx_be == dstats(c, 0).sent_be)
    return 1;
  be_quiet_turns = c->rx_be == be_seen ? be_quiet_turns + 1 : 0;
  be_seen = c->rx_be;
  return be_quiet_turns >= 50;
}

static uint64_t goal_paused, goal_nochan;

static int be_side_drops(ctx_t *c) {
  dmq_delivery_stats_t st = dstats(c, 1);
  return st.dropped_paused == goal_paused &&
         st.dropped_no_channel == goal_nochan;
}

/* Best effort: no outcome, no ack, no retransmission; every message sent is
 * received, and every one not delivered is counted (paused channel,
 * channel not served). */
static void test_best_effort_counted(void **state) {
  ctx_t *c = cluster(2, DMQ_PROFILE_LOCAL, 0);
  int h[] = {1, 1}, k[] = {0, 1};
  serve_and_wait(c, h, k, 2);
  c->per = 2500;
  c->batch = 100;
  c->pump_src[0] = 0;
  c->pump_dst[0] = 1;
  c->npsrc = c->npdst = 1;
  c->pump_reliable = 0;
  uv_timer_t t;
  pump_run(c, &t);
  assert_true(run_until(c, be_settled, DT_DELIVER_MS));
  uv_close((uv_handle_t *)&t, NULL);
  run_for(c, 100);
  const uint64_t total = 2 * 2500;
  dmq_delivery_stats_t s0 = dstats(c, 0), s1 = dstats(c, 1);
  assert_int_equal(c->sent_n, total);
  assert_int_equal(s0.sent_be + s0.dropped_be, total);
  /* loopback, paced: no loss, unless the kernel dropped datagrams on the
   * receiver's socket (a stalled test machine) */
  if (c->rx_be != s0.sent_be) {
    assert_true(c->rx_be < s0.sent_be);
    assert_true(udp_socket_drops(udp_port(c, 1)) > 0);
  }
  assert_int_equal(s1.delivered_app, c->rx_be);
  assert_int_equal(s1.received, c->rx_be);
  assert_int_equal(c->rx_corrupt, 0);
  assert_int_equal(c->noutcomes, 0);
  assert_true(s0.sent_reliable == 0 && s0.retransmits == 0);
  assert_true(s0.acks_received == 0 && s1.acks_sent == 0);
  assert_true(s0.queued_msgs == 0);

  /* paused channel, channel not served: dropped at the receiver, counted */
  uint64_t rx0 = c->rx_total;
  dmq_channel_pause(c->ch[1][0], 1);
  dmq_send_opts_t o;
  dmq_send_opts_init(&o);
  for (int i = 0; i < 10; i++) {
    assert_int_equal(send_num(c, 0, 1, 0, 9000, 10, 0), 0);
    assert_int_equal(
        dmq_send(node(c, 0), "n1", "nochan", "x", 1, &o, now_ms(c), NULL), 0);
  }
  dmq_uv_kick(c->rt[0]);
  goal_paused = s1.dropped_paused + 10;
  goal_nochan = s1.dropped_no_channel + 10;
  assert_true(run_until(c, be_side_drops, DT_DELIVER_MS));
  assert_int_equal(c->rx_total, rx0);
  assert_int_equal(c->noutcomes, 0);
  ctx_finish(c);
}

int main(void) {
  alarm(DT_ALARM_S);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_exactly_once_in_order),
      cmocka_unit_test(test_request_reply),
      cmocka_unit_test(test_broadcast),
      cmocka_unit_test(test_receiver_crash),
      cmocka_unit_test(test_queue_full_writable),
      cmocka_unit_test(test_one_mib_tcp),
      cmocka_unit_test(test_one_mib_udp_only),
      cmocka_unit_test(test_best_effort_counted),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
