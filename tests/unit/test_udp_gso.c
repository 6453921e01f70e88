/* The UDP transport's GSO send path and GRO receive path (Linux) on
 * 127.0.0.1: runs of equal-size datagrams to one destination leave as one
 * GSO entry, a receiving socket with UDP_GRO reads the run whole and the
 * transport cuts it back; every datagram must arrive alone, whole, in
 * order and to its own destination, whatever mix of sizes, destinations
 * and empty datagrams the batch held, with GSO on and off. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "dmq/uv.h"
#include "udp/udp.h"

#define MAXD 256

typedef struct sink {
  int n;    /* datagrams received */
  int bad;  /* ... whose length or content was not the expected */
  int want; /* datagrams sent to this sink */
  size_t len[MAXD];
  int idx[MAXD]; /* the sender's index of the k-th datagram for this sink */
} sink_t;

typedef struct world {
  uv_loop_t loop;
  dmq_transport_t *a, *b, *c;
  char addr_b[64], addr_c[64];
  sink_t sb, sc;
} world_t;

/* datagram i: its index in the first two bytes, then i's low byte */
static void fill(uint8_t *p, size_t len, int i) {
  for (size_t k = 0; k < len; k++)
    p[k] = k == 0 ? (uint8_t)(i >> 8) : k == 1 ? (uint8_t)i : (uint8_t)(i * 7);
}

static void on_recv(dmq_transport_t *t, const char *from, const void *buf,
                    size_t len) {
  (void)from;
  sink_t *s = t->owner;
  if (s->n >= s->want) {
    s->bad++;
    return;
  }
  int i = s->idx[s->n];
  size_t want = s->len[s->n];
  s->n++;
  if (len != want) {
    s->bad++;
    return;
  }
  uint8_t exp[1500];
  fill(exp, len, i);
  if (len > 0 && memcmp(buf, exp, len) != 0)
    s->bad++;
}

static dmq_transport_t *udp_new(world_t *w, sink_t *s, char *addr, size_t cap) {
  dmq_transport_t *t = NULL;
  assert_int_equal(dmq_udp_transport_new(&w->loop, &t), 0);
  t->owner = s;
  t->on_recv = on_recv;
  assert_int_equal(t->ops->bind(t, "udp://127.0.0.1:0"), 0);
  if (addr != NULL)
    assert_int_equal(t->ops->local_addr(t, addr, cap), 0);
  return t;
}

static void on_timeout(uv_timer_t *h) {
  *(int *)h->data = 1;
}

/* Run the loop until both sinks have everything or 5 s have passed. */
static void run_until_done(world_t *w) {
  uv_timer_t tm;
  int expired = 0;
  uv_timer_init(&w->loop, &tm);
  tm.data = &expired;
  uv_timer_start(&tm, on_timeout, 5000, 0);
  while (!expired && (w->sb.n < w->sb.want || w->sc.n < w->sc.want))
    uv_run(&w->loop, UV_RUN_ONCE);
  uv_timer_stop(&tm);
  uv_close((uv_handle_t *)&tm, NULL);
  uv_run(&w->loop, UV_RUN_NOWAIT);
}

static void world_init(world_t *w) {
  memset(w, 0, sizeof(*w));
  assert_int_equal(uv_loop_init(&w->loop), 0);
  w->a = udp_new(w, NULL, NULL, 0);
  w->b = udp_new(w, &w->sb, w->addr_b, sizeof(w->addr_b));
  w->c = udp_new(w, &w->sc, w->addr_c, sizeof(w->addr_c));
}

static void world_free(world_t *w) {
  w->a->ops->close(w->a);
  w->b->ops->close(w->b);
  w->c->ops->close(w->c);
  while (uv_run(&w->loop, UV_RUN_NOWAIT) != 0)
    ;
  assert_int_equal(uv_loop_close(&w->loop), 0);
}

/* One datagram i of len bytes from a to b (to_c: to c). */
static void send_one(world_t *w, int i, size_t len, int to_c) {
  uint8_t buf[1500];
  sink_t *s = to_c ? &w->sc : &w->sb;
  assert_true(s->want < MAXD);
  fill(buf, len, i);
  s->idx[s->want] = i;
  s->len[s->want] = len;
  s->want++;
  assert_int_equal(
      w->a->ops->send(w->a, to_c ? w->addr_c : w->addr_b, buf, len, NULL), 0);
}

/* The mix: long runs (more than a batch), a shorter last datagram, sizes
 * going up (never one run), an empty datagram, the mtu, single bytes, and
 * two destinations interleaved and in turns. Flushed in two bursts. */
static void send_mix(world_t *w) {
  int i = 0;
  for (int k = 0; k < 100; k++) /* more than a batch (44) */
    send_one(w, i++, 1000, 0);
  send_one(w, i++, 400, 0);
  for (int k = 0; k < 5; k++)
    send_one(w, i++, 100 + 100 * (size_t)k, 0);
  send_one(w, i++, 0, 0);
  for (int k = 0; k < 7; k++)
    send_one(w, i++, w->a->mtu, 0);
  for (int k = 0; k < 3; k++)
    send_one(w, i++, 1, 0);
  w->a->ops->flush(w->a);
  for (int k = 0; k < 20; k++)
    send_one(w, i++, 500, k % 2);
  for (int k = 0; k < 20; k++)
    send_one(w, i++, 300, k >= 10);
  send_one(w, i++, 299, 1);
  w->a->ops->flush(w->a);
}

/* send_mix, then every datagram must have arrived, whole and in order. */
static void send_mix_check(world_t *w) {
  send_mix(w);
  run_until_done(w);
  assert_int_equal(w->sb.n, w->sb.want);
  assert_int_equal(w->sc.n, w->sc.want);
  assert_int_equal(w->sb.bad, 0);
  assert_int_equal(w->sc.bad, 0);
}

static void test_gso_on(void **state) {
  (void)state;
  world_t w;
  world_init(&w);
  int st = dmq__udp_gso_state(w.a, NULL, NULL);
  assert_true(st >= 0);
  send_mix_check(&w);
  uint64_t gso = 0, gro_b = 0, gro_c = 0;
  int sa = dmq__udp_gso_state(w.a, &gso, NULL);
  int sb = dmq__udp_gso_state(w.b, NULL, &gro_b);
  (void)dmq__udp_gso_state(w.c, NULL, &gro_c);
  printf("# gso state %d -> %d, %llu GSO entries; B reads GRO: %d, %llu "
         "runs, C %llu runs\n",
         st, sa, (unsigned long long)gso, (sb & 2) != 0,
         (unsigned long long)gro_b, (unsigned long long)gro_c);
#if defined(__linux__)
  /* the kernel took GSO (else it would have turned it off): runs went out
   * as GSO entries, and a GRO socket on loopback read them whole */
  if (sa & 1) {
    assert_true(gso >= 4);
    if (sb & 2)
      assert_true(gro_b > 0 && gro_c > 0);
  }
#endif
  world_free(&w);
}

static void test_gso_off(void **state) {
  (void)state;
  world_t w;
  world_init(&w);
  dmq__udp_set_gso(w.a, 0);
  assert_int_equal(dmq__udp_gso_state(w.a, NULL, NULL) & 1, 0);
  send_mix_check(&w);
  uint64_t gso = 1, gro = 1;
  (void)dmq__udp_gso_state(w.a, &gso, NULL);
  (void)dmq__udp_gso_state(w.b, NULL, &gro);
  assert_int_equal(gso, 0);
  assert_int_equal(gro, 0); /* nothing was coalesced */
  world_free(&w);
}

static void test_hooks_reject(void **state) {
  (void)state;
  uint64_t x = 7;
  assert_int_equal(dmq__udp_gso_state(NULL, &x, &x), -1);
  assert_int_equal(x, 7);
  dmq__udp_set_gso(NULL, 1); /* no effect, no crash */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_gso_on),
      cmocka_unit_test(test_gso_off),
      cmocka_unit_test(test_hooks_reject),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
