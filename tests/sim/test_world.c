/* Tests of the simulator itself (tests/sim/sim.c), independent of the
 * membership protocol: packets are injected with dmq_sim_raw_send() and
 * observed with the delivery tap. Every payload starts with "SIMT" so the
 * tap can ignore whatever the (idle, unjoined) nodes send themselves, and
 * the nodes drop our payloads as "not a libdmq packet".
 */
#define _POSIX_C_SOURCE 200809L /* setenv */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sim.h"

#define MAXREC 40000

typedef struct rec {
  int from, to;
  uint32_t id;
  uint64_t t;
  size_t len;
} rec_t;

typedef struct trace {
  rec_t r[MAXREC];
  size_t n;
  uint64_t hash;
} trace_t;

static trace_t *trace_new(void) {
  trace_t *tr = calloc(1, sizeof(*tr));
  assert_non_null(tr);
  tr->hash = 0xcbf29ce484222325ULL;
  return tr;
}

static void hash_u64(uint64_t *h, uint64_t v) {
  for (int i = 0; i < 8; i++)
    *h = (*h ^ ((v >> (8 * i)) & 0xff)) * 0x100000001b3ULL;
}

static void tap(void *ud, int from, int to, const void *buf, size_t len,
                uint64_t t) {
  trace_t *tr = ud;
  if (len < 8 || memcmp(buf, "SIMT", 4) != 0)
    return;
  uint32_t id;
  memcpy(&id, (const char *)buf + 4, 4);
  hash_u64(&tr->hash, (uint64_t)from);
  hash_u64(&tr->hash, (uint64_t)to);
  hash_u64(&tr->hash, id);
  hash_u64(&tr->hash, t);
  if (tr->n < MAXREC) {
    rec_t *r = &tr->r[tr->n++];
    r->from = from;
    r->to = to;
    r->id = id;
    r->t = t;
    r->len = len;
  }
}

/* A world with n hosts, the given default link, and the tap installed. */
static dmq_sim_t *world(int n, uint64_t seed, const dmq_sim_link_t *l,
                        trace_t *tr) {
  dmq_sim_opts_t o;
  dmq_sim_opts_init(&o);
  o.seed = seed;
  if (l != NULL)
    o.link = *l;
  dmq_sim_t *w = dmq_sim_new(&o);
  assert_non_null(w);
  for (int i = 0; i < n; i++)
    assert_int_equal(dmq_sim_add(w, NULL, NULL), i);
  if (tr != NULL)
    dmq_sim_set_tap(w, tap, tr);
  return w;
}

static int send_id(dmq_sim_t *w, int from, int to, uint32_t id, size_t len) {
  static unsigned char buf[2048];
  unsigned char *p = len <= sizeof(buf) ? buf : calloc(1, len);
  assert_non_null(p);
  memset(p, 0xab, len < 8 ? len : 8);
  if (len >= 8) {
    memcpy(p, "SIMT", 4);
    memcpy(p + 4, &id, 4);
  }
  int rc = dmq_sim_raw_send(w, from, to, p, len);
  if (p != buf)
    free(p);
  return rc;
}

static size_t count_to(const trace_t *tr, int to) {
  size_t c = 0;
  for (size_t i = 0; i < tr->n; i++)
    c += tr->r[i].to == to;
  return c;
}

static void test_base_delay(void **state) {
  dmq_sim_link_t l = {0};
  l.delay_ms = 7;
  trace_t *tr = trace_new();
  dmq_sim_t *w = world(3, 1, &l, tr);
  assert_int_equal(dmq_sim_host_count(w), 3);
  assert_string_equal(dmq_sim_addr(w, 2), "sim://2");
  assert_non_null(dmq_sim_node(w, 1));
  dmq_transport_t *t = dmq_sim_transport(w, 1);
  assert_non_null(t);
  assert_string_equal(t->ops->scheme, "sim");
  assert_int_equal(t->ops->caps,
                   DMQ_TRANSPORT_DATAGRAM | DMQ_TRANSPORT_RELIABLE);
  /* mixed mode: one transport, size picks the class, up to 16 MiB */
  assert_int_equal(t->mtu, 16u << 20);
  dmq_sim_run_until(w, 100);
  assert_int_equal(dmq_sim_now(w), 100);
  assert_int_equal(send_id(w, 0, 1, 1, 100), 0);
  dmq_sim_set_send_delay(w, 2, 5);
  assert_int_equal(send_id(w, 2, 1, 2, 100), 0);
  dmq_sim_run_until(w, 106);
  assert_int_equal(tr->n, 0);
  dmq_sim_run_until(w, 107);
  assert_int_equal(tr->n, 1);
  assert_int_equal(tr->r[0].t, 107);
  assert_int_equal(tr->r[0].from, 0);
  assert_int_equal(tr->r[0].to, 1);
  assert_int_equal(tr->r[0].len, 100);
  dmq_sim_run_for(w, 100);
  assert_int_equal(tr->n, 2);
  assert_int_equal(tr->r[1].t, 112); /* 7 ms link + 5 ms send delay */
  dmq_sim_net_stats_t st;
  dmq_sim_net_stats(w, &st);
  assert_int_equal(st.sent, 2);
  assert_int_equal(st.bytes_sent, 200);
  assert_true(st.delivered >= 2);
  dmq_sim_delete(w);
  free(tr);
}

static void test_loss_rate(void **state) {
  dmq_sim_link_t l = {0};
  l.delay_ms = 1;
  l.loss = 0.2;
  trace_t *tr = trace_new();
  dmq_sim_t *w = world(2, 0x5eed, &l, tr);
  for (uint32_t i = 0; i < 10000; i++) {
    assert_int_equal(send_id(w, 0, 1, i, 64), 0);
    if (i % 100 == 99)
      dmq_sim_run_for(w, 1);
  }
  dmq_sim_run_for(w, 10);
  size_t got = count_to(tr, 1);
  assert_in_range(got, 7700, 8300);
  dmq_sim_net_stats_t st;
  dmq_sim_net_stats(w, &st);
  assert_int_equal(st.lost, 10000 - got);
  dmq_sim_delete(w);
  free(tr);
}

static void test_blocked_link(void **state) {
  trace_t *tr = trace_new();
  dmq_sim_t *w = world(3, 2, NULL, tr);
  dmq_sim_link_t l = {0};
  l.delay_ms = 1;
  l.blocked = 1;
  dmq_sim_set_link(w, 0, 1, &l);
  for (uint32_t i = 0; i < 50; i++)
    assert_int_equal(send_id(w, 0, 1, i, 32), 0);
  assert_int_equal(send_id(w, 0, 1, 99, 5000), 0); /* streams too */
  assert_int_equal(send_id(w, 1, 0, 100, 32), 0);
  assert_int_equal(send_id(w, 0, 2, 101, 32), 0);
  dmq_sim_run_for(w, 10);
  assert_int_equal(count_to(tr, 1), 0);
  assert_int_equal(count_to(tr, 0), 1);
  assert_int_equal(count_to(tr, 2), 1);
  dmq_sim_net_stats_t st;
  dmq_sim_net_stats(w, &st);
  assert_int_equal(st.blocked, 51);
  dmq_sim_heal(w);
  assert_int_equal(send_id(w, 0, 1, 200, 32), 0);
  dmq_sim_run_for(w, 10);
  assert_int_equal(count_to(tr, 1), 1);
  dmq_sim_delete(w);
  free(tr);
}

static void test_one_way_block_and_heal(void **state) {
  trace_t *tr = trace_new();
  dmq_sim_t *w = world(4, 3, NULL, tr);
  int a[] = {0, 1}, b[] = {2, 3};
  dmq_sim_block(w, a, 2, b, 2); /* {0,1} -> {2,3} only */
  for (int f = 0; f < 4; f++)
    for (int t = 0; t < 4; t++)
      if (f != t)
        assert_int_equal(send_id(w, f, t, (uint32_t)(f * 4 + t), 16), 0);
  dmq_sim_run_for(w, 10);
  int seen[16] = {0};
  for (size_t i = 0; i < tr->n; i++)
    seen[tr->r[i].id]++;
  for (int f = 0; f < 4; f++)
    for (int t = 0; t < 4; t++) {
      if (f == t)
        continue;
      int blocked = f < 2 && t >= 2;
      assert_int_equal(seen[f * 4 + t], blocked ? 0 : 1);
    }
  /* Two-way partition, then heal. */
  tr->n = 0;
  dmq_sim_heal(w);
  dmq_sim_partition(w, a, 2, b, 2);
  assert_int_equal(send_id(w, 0, 2, 1, 16), 0);
  assert_int_equal(send_id(w, 3, 1, 2, 16), 0);
  assert_int_equal(send_id(w, 2, 3, 3, 16), 0);
  dmq_sim_run_for(w, 10);
  assert_int_equal(tr->n, 1);
  assert_int_equal(tr->r[0].id, 3);
  dmq_sim_heal(w);
  assert_int_equal(send_id(w, 0, 2, 4, 16), 0);
  assert_int_equal(send_id(w, 3, 1, 5, 16), 0);
  dmq_sim_run_for(w, 10);
  assert_int_equal(tr->n, 3);
  dmq_sim_delete(w);
  free(tr);
}

static void test_duplication(void **state) {
  dmq_sim_link_t l = {0};
  l.delay_ms = 2;
  l.dup = 1.0;
  trace_t *tr = trace_new();
  dmq_sim_t *w = world(2, 4, &l, tr);
  for (uint32_t i = 0; i < 10; i++)
    assert_int_equal(send_id(w, 0, 1, i, 20), 0);
  assert_int_equal(send_id(w, 0, 1, 77, 3000), 0); /* streams: never */
  dmq_sim_run_for(w, 10);
  assert_int_equal(count_to(tr, 1), 21);
  /* Statistically: 30% dup. */
  l.dup = 0.3;
  dmq_sim_set_default_link(w, &l);
  tr->n = 0;
  for (uint32_t i = 0; i < 10000; i++)
    assert_int_equal(send_id(w, 0, 1, i, 20), 0);
  dmq_sim_run_for(w, 10);
  assert_in_range(count_to(tr, 1), 12700, 13300);
  dmq_sim_delete(w);
  free(tr);
}

static void test_jitter_reorders(void **state) {
  dmq_sim_link_t l = {0};
  l.delay_ms = 10;
  l.jitter_ms = 40;
  trace_t *tr = trace_new();
  dmq_sim_t *w = world(2, 5, &l, tr);
  for (uint32_t i = 0; i < 200; i++)
    assert_int_equal(send_id(w, 0, 1, i, 20), 0);
  dmq_sim_run_for(w, 100);
  assert_int_equal(tr->n, 200);
  int inversions = 0;
  uint64_t tmin = UINT64_MAX, tmax = 0;
  for (size_t i = 0; i < tr->n; i++) {
    if (i > 0 && tr->r[i].id < tr->r[i - 1].id)
      inversions++;
    if (i > 0)
      assert_true(tr->r[i].t >= tr->r[i - 1].t);
    tmin = tr->r[i].t < tmin ? tr->r[i].t : tmin;
    tmax = tr->r[i].t > tmax ? tr->r[i].t : tmax;
  }
  assert_true(inversions > 10);
  assert_true(tmin >= 10);
  assert_true(tmax <= 50);
  assert_true(tmax - tmin >= 30);
  dmq_sim_delete(w);
  free(tr);
}

static void test_mtu_and_streams(void **state) {
  dmq_sim_link_t l = {0};
  l.delay_ms = 3;
  l.jitter_ms = 20;
  l.loss = 1.0; /* every datagram lost; streams unaffected */
  trace_t *tr = trace_new();
  dmq_sim_t *w = world(2, 6, &l, tr);
  assert_int_equal(send_id(w, 0, 1, 0, 1400), 0); /* datagram: lost */
  for (uint32_t i = 1; i <= 20; i++)
    assert_int_equal(send_id(w, 0, 1, i, 1401 + i), 0);
  assert_int_equal(send_id(w, 0, 1, 21, 16u << 20), 0);
  assert_int_equal(send_id(w, 0, 1, 22, (16u << 20) + 1), DMQ_ETOOBIG);
  dmq_sim_run_for(w, 100);
  assert_int_equal(tr->n, 21);
  for (size_t i = 0; i < tr->n; i++) {
    assert_int_equal(tr->r[i].id, i + 1); /* in order, none lost */
    assert_int_equal(tr->r[i].t, 3);      /* base delay, no jitter */
  }
  assert_int_equal(tr->r[20].len, 16u << 20);
  dmq_sim_net_stats_t st;
  dmq_sim_net_stats(w, &st);
  assert_int_equal(st.oversize, 1);
  assert_int_equal(st.lost, 1);
  assert_int_equal(st.sent, 22);
  /* A slower link later must not overtake order: raise the delay, the next
   * stream message still arrives after the previous one. */
  tr->n = 0;
  l.delay_ms = 50;
  dmq_sim_set_link(w, 0, 1, &l);
  assert_int_equal(send_id(w, 0, 1, 30, 2000), 0);
  l.delay_ms = 1;
  dmq_sim_set_link(w, 0, 1, &l);
  assert_int_equal(send_id(w, 0, 1, 31, 2000), 0);
  dmq_sim_run_for(w, 100);
  assert_int_equal(tr->n, 2);
  assert_int_equal(tr->r[0].id, 30);
  assert_int_equal(tr->r[1].id, 31);
  dmq_sim_delete(w);
  free(tr);
}

static void test_addresses_and_kill(void **state) {
  dmq_sim_link_t l = {0};
  l.delay_ms = 5;
  trace_t *tr = trace_new();
  dmq_sim_t *w = world(3, 7, &l, tr);
  dmq_transport_t *t = dmq_sim_transport(w, 0);
  const char bad[] = "SIMTxxxx";
  assert_int_equal(t->ops->send(t, "udp://1", bad, 8, NULL), DMQ_EADDR);
  assert_int_equal(t->ops->send(t, "sim://", bad, 8, NULL), DMQ_EADDR);
  assert_int_equal(t->ops->send(t, "sim://1x", bad, 8, NULL), DMQ_EADDR);
  assert_int_equal(t->ops->send(t, "sim://-1", bad, 8, NULL), DMQ_EADDR);
  assert_int_equal(t->ops->send(t, NULL, bad, 8, NULL), DMQ_EADDR);
  /* Unknown host: accepted (like UDP) and dropped. */
  assert_int_equal(t->ops->send(t, "sim://9", bad, 8, NULL), 0);
  /* In flight to and from a host that crashes: dropped. */
  assert_int_equal(send_id(w, 0, 1, 1, 16), 0);
  assert_int_equal(send_id(w, 1, 2, 2, 16), 0);
  assert_int_equal(send_id(w, 0, 2, 3, 16), 0);
  dmq_sim_run_for(w, 2);
  dmq_sim_kill(w, 1);
  assert_null(dmq_sim_node(w, 1));
  assert_int_equal(send_id(w, 1, 0, 4, 16), DMQ_ECLOSED);
  assert_int_equal(dmq_sim_restart(w, 0), DMQ_ESTATE);
  assert_int_equal(dmq_sim_restart(w, 1), 0);
  assert_non_null(dmq_sim_node(w, 1));
  dmq_sim_run_for(w, 10);
  assert_int_equal(tr->n, 1);
  assert_int_equal(tr->r[0].id, 3);
  /* After restart the host is reachable again, at the same address. */
  assert_int_equal(send_id(w, 0, 1, 5, 16), 0);
  dmq_sim_run_for(w, 10);
  assert_int_equal(tr->n, 2);
  assert_int_equal(tr->r[1].to, 1);
  dmq_sim_net_stats_t st;
  dmq_sim_net_stats(w, &st);
  assert_true(st.undeliverable >= 3);
  dmq_sim_delete(w);
  free(tr);
}

static void test_pause_defers(void **state) {
  dmq_sim_link_t l = {0};
  l.delay_ms = 5;
  trace_t *tr = trace_new();
  dmq_sim_t *w = world(2, 8, &l, tr);
  dmq_sim_pause(w, 1);
  for (uint32_t i = 0; i < 5; i++) {
    assert_int_equal(send_id(w, 0, 1, i, 16), 0);
    dmq_sim_run_for(w, 3);
  }
  dmq_sim_run_until(w, 100);
  assert_int_equal(tr->n, 0);
  dmq_sim_resume(w, 1);
  dmq_sim_run_for(w, 0);
  assert_int_equal(tr->n, 5);
  for (size_t i = 0; i < 5; i++) {
    assert_int_equal(tr->r[i].id, i);
    assert_int_equal(tr->r[i].t, 100);
  }
  dmq_sim_delete(w);
  free(tr);
}

static void test_ties_in_insertion_order(void **state) {
  dmq_sim_link_t l = {0};
  l.delay_ms = 4;
  trace_t *tr = trace_new();
  dmq_sim_t *w = world(4, 9, &l, tr);
  /* 300 packets all due at t=4, to different hosts: the heap must pop them
   * in send order. */
  for (uint32_t i = 0; i < 300; i++)
    assert_int_equal(send_id(w, (int)(i % 4), (int)((i + 1) % 4), i, 16), 0);
  dmq_sim_run_for(w, 10);
  assert_int_equal(tr->n, 300);
  for (size_t i = 0; i < tr->n; i++) {
    assert_int_equal(tr->r[i].id, i);
    assert_int_equal(tr->r[i].t, 4);
  }
  dmq_sim_delete(w);
  free(tr);
}

/* A lossy, jittery, duplicating run; returns the trace hash. */
static uint64_t chaos_run(uint64_t seed, size_t *n) {
  dmq_sim_link_t l = {0};
  l.delay_ms = 2;
  l.jitter_ms = 10;
  l.loss = 0.1;
  l.dup = 0.05;
  trace_t *tr = trace_new();
  dmq_sim_t *w = world(5, seed, &l, tr);
  assert_int_equal(dmq_sim_seed(w), seed);
  for (uint32_t i = 0; i < 3000; i++) {
    assert_int_equal(
        send_id(w, (int)(i % 5), (int)((i * 7 + 3) % 5), i, 16 + (i % 3000)),
        0);
    if (i % 10 == 0)
      dmq_sim_run_for(w, 1);
  }
  dmq_sim_run_for(w, 100);
  uint64_t h = tr->hash;
  *n = tr->n;
  dmq_sim_delete(w);
  free(tr);
  return h;
}

static void test_determinism(void **state) {
  size_t n1, n2, n3;
  uint64_t a = chaos_run(0x1234, &n1);
  uint64_t b = chaos_run(0x1234, &n2);
  uint64_t c = chaos_run(0x1235, &n3);
  assert_int_equal(n1, n2);
  assert_true(a == b);
  assert_true(a != c);
  assert_true(n1 > 2500);
}

static void test_seed_from_env(void **state) {
  dmq_sim_opts_t o;
  dmq_sim_opts_init(&o);
  setenv("DMQ_SIM_SEED", "0x10", 1);
  dmq_sim_t *w = dmq_sim_new(&o);
  assert_int_equal(dmq_sim_seed(w), 16);
  dmq_sim_delete(w);
  setenv("DMQ_SIM_SEED", "1234", 1);
  w = dmq_sim_new(&o);
  assert_int_equal(dmq_sim_seed(w), 1234);
  dmq_sim_delete(w);
  o.seed = 99; /* explicit beats the environment */
  w = dmq_sim_new(&o);
  assert_int_equal(dmq_sim_seed(w), 99);
  dmq_sim_delete(w);
  unsetenv("DMQ_SIM_SEED");
  w = dmq_sim_new(NULL);
  assert_true(dmq_sim_seed(w) == DMQ_SIM_DEFAULT_SEED);
  dmq_sim_delete(w);
}

static void test_names_and_two_worlds(void **state) {
  dmq_sim_t *a = world(2, 10, NULL, NULL);
  dmq_sim_t *b = world(0, 11, NULL, NULL);
  assert_int_equal(dmq_sim_add(b, NULL, "alpha"), 0);
  assert_int_equal(dmq_sim_add(b, NULL, "alpha"), -1); /* names unique */
  assert_int_equal(dmq_sim_add(b, NULL, "beta"), 1);
  assert_string_equal(dmq_node_name(dmq_sim_node(b, 0)), "alpha");
  assert_string_equal(dmq_node_name(dmq_sim_node(a, 1)), "n1");
  assert_int_equal(dmq_sim_host_count(a), 2);
  assert_int_equal(dmq_sim_host_count(b), 2);
  dmq_sim_run_for(a, 1000);
  assert_int_equal(dmq_sim_now(a), 1000);
  assert_int_equal(dmq_sim_now(b), 0);
  assert_int_equal(dmq_sim_false_deaths(a), 0);
  dmq_sim_delete(a);
  dmq_sim_delete(b);
}

static int pred_after(dmq_sim_t *w, void *ud) {
  return dmq_sim_now(w) >= *(uint64_t *)ud;
}

static void test_run_until_pred(void **state) {
  dmq_sim_link_t l = {0};
  l.delay_ms = 5;
  trace_t *tr = trace_new();
  dmq_sim_t *w = world(2, 12, &l, tr);
  uint64_t want = 50, at = 0;
  assert_int_equal(send_id(w, 0, 1, 1, 16), 0);
  /* Held once the clock reaches want (checked after each event batch, so at
   * can be later than want, never earlier), and the clock stops there. */
  assert_int_equal(dmq_sim_run_until_pred(w, 3000, pred_after, &want, &at), 1);
  assert_true(at >= want && at < 3000);
  assert_int_equal(dmq_sim_now(w), at);
  assert_int_equal(count_to(tr, 1), 1);
  want = 1000000;
  assert_int_equal(dmq_sim_run_until_pred(w, 5000, pred_after, &want, &at), 0);
  assert_int_equal(dmq_sim_now(w), 5000);
  dmq_sim_delete(w);
  free(tr);
}

static void test_stream_transport(void **state) {
  dmq_sim_opts_t o;
  dmq_sim_opts_init(&o);
  o.seed = 13;
  o.stream_transport = 1;
  o.link.delay_ms = 2;
  o.link.jitter_ms = 30;
  o.link.loss = 1.0; /* datagrams all lost, streams never */
  dmq_sim_t *w = dmq_sim_new(&o);
  assert_non_null(w);
  assert_int_equal(dmq_sim_add(w, NULL, NULL), 0);
  assert_int_equal(dmq_sim_add(w, NULL, NULL), 1);
  trace_t *tr = trace_new();
  dmq_sim_set_tap(w, tap, tr);
  dmq_transport_t *d = dmq_sim_transport(w, 0);
  dmq_transport_t *s = dmq_sim_stream_transport(w, 0);
  assert_non_null(s);
  assert_string_equal(d->ops->scheme, "sim");
  assert_int_equal(d->ops->caps, DMQ_TRANSPORT_DATAGRAM);
  assert_string_equal(s->ops->scheme, "simtcp");
  assert_int_equal(s->ops->caps, DMQ_TRANSPORT_RELIABLE);
  /* Datagram transport: bounded by the mtu, lossy. */
  assert_int_equal(send_id(w, 0, 1, 1, 1401), DMQ_ETOOBIG);
  assert_int_equal(send_id(w, 0, 1, 2, 100), 0);
  /* Stream transport: any size, in order, never lost. */
  unsigned char buf[64] = "SIMT";
  assert_int_equal(s->ops->send(s, "sim://1", buf, 64, NULL), DMQ_EADDR);
  for (uint32_t i = 10; i < 20; i++) {
    memcpy(buf + 4, &i, 4);
    assert_int_equal(s->ops->send(s, "simtcp://1", buf, 8 + i, NULL), 0);
  }
  dmq_sim_run_for(w, 100);
  assert_int_equal(tr->n, 10);
  for (size_t i = 0; i < tr->n; i++) {
    assert_int_equal(tr->r[i].id, 10 + i);
    assert_int_equal(tr->r[i].t, 2);
  }
  dmq_sim_net_stats_t st;
  dmq_sim_net_stats(w, &st);
  assert_int_equal(st.lost, 1);
  assert_int_equal(st.oversize, 1);
  dmq_sim_delete(w);
  free(tr);
  /* Without the option there is no stream transport. */
  w = world(1, 14, NULL, NULL);
  assert_null(dmq_sim_stream_transport(w, 0));
  dmq_sim_delete(w);
}

/* Lanes (opts.lanes): a membership run with loss, jitter, duplication,
 * a crash, a leave, a pause and a partition gives the same events, in the
 * same order, the same network counters and the same tables on 1, 2 and 3
 * threads. */
typedef struct lanes_run {
  dmq_sim_event_t *ev;
  size_t nev, total, false_deaths;
  dmq_sim_net_stats_t net;
  size_t alive[120];
  uint64_t now, threaded;
} lanes_run_t;

static void lanes_run(int lanes, int stream, lanes_run_t *out) {
  enum { N = 120 };
  dmq_sim_opts_t o;
  dmq_sim_opts_init(&o);
  o.seed = 0x1a9e5;
  o.quiet = 1;
  o.lanes = lanes;
  o.stream_transport = stream;
  o.link.loss = 0.05;
  o.link.jitter_ms = 2;
  o.link.dup = 0.02;
  dmq_sim_t *w = dmq_sim_new(&o);
  assert_non_null(w);
  for (int i = 0; i < N; i++)
    assert_int_equal(dmq_sim_add(w, NULL, NULL), i);
  int seed = 0;
  for (int i = 1; i < N; i++)
    assert_int_equal(dmq_sim_join(w, i, &seed, 1), 0);
  dmq_sim_run_for(w, 3000);
  dmq_sim_kill(w, 7);
  assert_int_equal(dmq_sim_leave(w, 9), 0);
  dmq_sim_pause(w, 11);
  int a[] = {20, 21, 22}, b[] = {30, 31};
  dmq_sim_partition(w, a, 3, b, 2);
  dmq_sim_run_for(w, 4000);
  dmq_sim_resume(w, 11);
  dmq_sim_heal(w);
  dmq_sim_run_for(w, 15000);
  out->nev = dmq_sim_event_count(w);
  out->ev = malloc(out->nev * sizeof(*out->ev) + 1);
  assert_non_null(out->ev);
  memcpy(out->ev, dmq_sim_events(w), out->nev * sizeof(*out->ev));
  out->total = dmq_sim_event_total(w);
  out->false_deaths = dmq_sim_false_deaths(w);
  dmq_sim_net_stats(w, &out->net);
  for (int i = 0; i < N; i++) {
    dmq_node_t *n = dmq_sim_node(w, i);
    out->alive[i] =
        n != NULL ? dmq_node_member_count(n, 1u << DMQ_MEMBER_ALIVE) : 0;
  }
  out->now = dmq_sim_now(w);
  out->threaded = dmq_sim_threaded_generations(w);
  dmq_sim_delete(w);
}

static void test_lanes_same_run(void **state) {
  (void)state;
  for (int stream = 0; stream <= 1; stream++) {
    lanes_run_t r[3];
    for (int l = 0; l < 3; l++)
      lanes_run(l + 1, stream, &r[l]);
    /* something happened, on threads when there were several */
    assert_true(r[0].nev > 120 * 119);
    assert_true(r[0].net.lost > 0 && r[0].net.duplicated > 0);
    assert_int_equal(r[0].threaded, 0);
    assert_true(r[1].threaded > 0 && r[2].threaded > 0);
    for (int l = 1; l < 3; l++) {
      assert_int_equal(r[l].nev, r[0].nev);
      assert_memory_equal(r[l].ev, r[0].ev, r[0].nev * sizeof(*r[0].ev));
      assert_int_equal(r[l].total, r[0].total);
      assert_int_equal(r[l].false_deaths, r[0].false_deaths);
      assert_memory_equal(&r[l].net, &r[0].net, sizeof(r[0].net));
      assert_memory_equal(r[l].alive, r[0].alive, sizeof(r[0].alive));
      assert_int_equal(r[l].now, r[0].now);
    }
    for (int l = 0; l < 3; l++)
      free(r[l].ev);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_base_delay),
      cmocka_unit_test(test_loss_rate),
      cmocka_unit_test(test_blocked_link),
      cmocka_unit_test(test_one_way_block_and_heal),
      cmocka_unit_test(test_duplication),
      cmocka_unit_test(test_jitter_reorders),
      cmocka_unit_test(test_mtu_and_streams),
      cmocka_unit_test(test_addresses_and_kill),
      cmocka_unit_test(test_pause_defers),
      cmocka_unit_test(test_ties_in_insertion_order),
      cmocka_unit_test(test_determinism),
      cmocka_unit_test(test_seed_from_env),
      cmocka_unit_test(test_names_and_two_worlds),
      cmocka_unit_test(test_run_until_pred),
      cmocka_unit_test(test_stream_transport),
      cmocka_unit_test(test_lanes_same_run),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
