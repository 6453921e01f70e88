/* The libuv runtime (dmq_uv_t) on real sockets over loopback: three
 * runtimes on one loop join and converge, a graceful close is seen as LEFT,
 * closing everything leaves the loop empty (uv_loop_close() == 0); option
 * and seed validation; UDP and TCP on the same port; joining through a name
 * ("localhost:port", resolved off the loop); metadata changed between loop
 * iterations without a kick still goes out (the prepare handle re-arms the
 * timer). Nothing sleeps: the loop runs under a watchdog timer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <dmq/uv.h>

#include "runtime/resolve.h"
#include "runtime/runtime_test.h"
#include "uv_until.h"

/* Hard bound on the whole program (a hung loop must not hang ctest). */
#define RT_TEST_ALARM_S 120
/* How often run_until() evaluates its predicate. */
#define RT_TEST_POLL_MS 10
#define RT_TEST_CONVERGE_MS 15000
#define RT_TEST_FLUSH_MS 2000
#define RT_TEST_N 3

/* ---------------------------------------------------------------------- */
/* helpers                                                                 */

typedef uv_until_pred_fn pred_fn;

/* Run the loop until pred holds or timeout_ms pass; returns pred. */
static int run_until(uv_loop_t *loop, pred_fn pred, void *ud,
                     uint64_t timeout_ms) {
  return uv_run_until(loop, pred, ud, timeout_ms, RT_TEST_POLL_MS);
}

static void cfg_local(dmq_config_t *cfg, const char *name) {
  assert_int_equal(dmq_config_init(cfg, DMQ_PROFILE_LOCAL), 0);
  cfg->name = name;
}

static dmq_uv_t *rt_make(uv_loop_t *loop, const char *name, const char *bind,
                         int no_tcp) {
  dmq_config_t cfg;
  cfg_local(&cfg, name);
  dmq_uv_options_t o;
  dmq_uv_options_init(&o);
  o.bind = bind;
  o.no_tcp = no_tcp;
  dmq_uv_t *rt = NULL;
  int rc = dmq_uv_new(loop, &cfg, &o, &rt);
  if (rc != 0)
    fail_msg("dmq_uv_new(%s): %s", bind, dmq_strerror(rc));
  assert_non_null(rt);
  return rt;
}

static int sees(dmq_uv_t *obs, const char *name, dmq_member_state_t st) {
  dmq_member_info_t info;
  return dmq_node_member(dmq_uv_node(obs), name, &info) == 0 &&
         info.state == st;
}

typedef struct group {
  dmq_uv_t *rt[RT_TEST_N];
  const char *names[RT_TEST_N];
  int n;
} group_t;

static int group_converged(void *ud) {
  group_t *g = ud;
  for (int i = 0; i < g->n; i++)
    for (int j = 0; j < g->n; j++)
      if (i != j && !sees(g->rt[i], g->names[j], DMQ_MEMBER_ALIVE))
        return 0;
  return 1;
}

typedef struct close_flag {
  int calls;
} close_flag_t;

static void on_closed(void *ud) {
  close_flag_t *f = ud;
  f->calls++;
}

static int flag_set(void *ud) {
  return ((close_flag_t *)ud)->calls > 0;
}

/* Close the loop, first running it to completion: it must return by
 * itself once every runtime called back. */
static void loop_finish(uv_loop_t *loop) {
  assert_int_equal(uv_run(loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(loop), 0);
}

static uint16_t port_of(const char *addr) {
  const char *c = strrchr(addr, ':');
  assert_non_null(c);
  return (uint16_t)atoi(c + 1);
}

/* ---------------------------------------------------------------------- */
/* tests                                                                   */

typedef struct left_check {
  group_t *g;
  close_flag_t *closed;
} left_check_t;

static int others_see_left(void *ud) {
  left_check_t *c = ud;
  return c->closed->calls == 1 && sees(c->g->rt[0], "n2", DMQ_MEMBER_LEFT) &&
         sees(c->g->rt[1], "n2", DMQ_MEMBER_LEFT);
}

typedef struct meta_check {
  dmq_uv_t *obs;
} meta_check_t;

static int meta_seen(void *ud) {
  meta_check_t *c = ud;
  dmq_member_info_t info;
  return dmq_node_member(dmq_uv_node(c->obs), "n0", &info) == 0 &&
         info.meta_len == 2 && memcmp(info.meta, "m1", 2) == 0;
}

static void test_three_converge_leave_close(void **state) {
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  group_t g = {.names = {"n0", "n1", "n2"}, .n = RT_TEST_N};
  for (int i = 0; i < g.n; i++)
    g.rt[i] = rt_make(&loop, g.names[i], "127.0.0.1:0", 0);
  for (int i = 0; i < g.n; i++) {
    const char *a = dmq_uv_addr(g.rt[i]);
    assert_true(strncmp(a, "udp://127.0.0.1:", 16) == 0);
    assert_true(port_of(a) != 0);
    assert_ptr_equal(dmq_uv_loop(g.rt[i]), &loop);
    assert_string_equal(dmq_node_name(dmq_uv_node(g.rt[i])), g.names[i]);
  }
  const char *seed = dmq_uv_addr(g.rt[0]);
  assert_int_equal(dmq_uv_join(g.rt[1], &seed, 1), 0);
  assert_int_equal(dmq_uv_join(g.rt[2], &seed, 1), 0);
  assert_true(run_until(&loop, group_converged, &g, RT_TEST_CONVERGE_MS));
  /* the join's push/pull went over TCP on the UDP port */
  dmq_stats_t st;
  dmq_node_stats(dmq_uv_node(g.rt[0]), &st);
  assert_true(st.pushpull_received > 0);

  /* set_meta between iterations, no kick: the prepare handle re-arms */
  uv_update_time(&loop);
  assert_int_equal(
      dmq_node_set_meta(dmq_uv_node(g.rt[0]), "m1", 2, uv_now(&loop)), 0);
  meta_check_t mc = {g.rt[1]};
  assert_true(run_until(&loop, meta_seen, &mc, RT_TEST_CONVERGE_MS));
  dmq_uv_kick(g.rt[0]); /* harmless */

  /* graceful close of n2: the others see it LEFT */
  close_flag_t c2 = {0};
  dmq_uv_close(g.rt[2], RT_TEST_FLUSH_MS, on_closed, &c2);
  dmq_uv_close(g.rt[2], RT_TEST_FLUSH_MS, on_closed, &c2); /* ignored */
  left_check_t lc = {&g, &c2};
  assert_true(run_until(&loop, others_see_left, &lc, RT_TEST_CONVERGE_MS));
  assert_int_equal(c2.calls, 1);

  close_flag_t c0 = {0}, c1 = {0};
  dmq_uv_close(g.rt[0], RT_TEST_FLUSH_MS, on_closed, &c0);
  dmq_uv_close(g.rt[1], RT_TEST_FLUSH_MS, on_closed, &c1);
  loop_finish(&loop);
  assert_int_equal(c0.calls, 1);
  assert_int_equal(c1.calls, 1);
}

static void test_bad_options(void **state) {
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  dmq_config_t cfg;
  cfg_local(&cfg, "x");
  dmq_uv_options_t o;
  dmq_uv_options_init(&o);
  o.bind = "127.0.0.1:0";
  dmq_uv_t *rt = NULL;

  assert_int_equal(dmq_uv_new(&loop, &cfg, &o, NULL), DMQ_EINVAL);
  assert_int_equal(dmq_uv_new(NULL, &cfg, &o, &rt), DMQ_EINVAL);
  assert_int_equal(dmq_uv_new(&loop, NULL, &o, &rt), DMQ_EINVAL);
  assert_int_equal(dmq_uv_new(&loop, &cfg, NULL, &rt), DMQ_EINVAL);
  static const char *const bad_binds[] = {NULL,
                                          "",
                                          "nonsense",
                                          "127.0.0.1",
                                          "127.0.0.1:99999",
                                          "[::1",
                                          "localhost:7946",
                                          "tcp://127.0.0.1:0"};
  for (size_t i = 0; i < sizeof(bad_binds) / sizeof(bad_binds[0]); i++) {
    o.bind = bad_binds[i];
    assert_int_equal(dmq_uv_new(&loop, &cfg, &o, &rt), DMQ_EINVAL);
    assert_null(rt);
  }
  /* unspecified bind address without an advertise address */
  o.bind = "0.0.0.0:0";
  assert_int_equal(dmq_uv_new(&loop, &cfg, &o, &rt), DMQ_EINVAL);
  o.advertise = "bogus";
  assert_int_equal(dmq_uv_new(&loop, &cfg, &o, &rt), DMQ_EINVAL);
  o.advertise = "127.0.0.1:0";
  assert_int_equal(dmq_uv_new(&loop, &cfg, &o, &rt), DMQ_EINVAL);
  o.advertise = NULL;
  /* missing name; bad config caught by the node after the sockets exist
   * (they are closed and free themselves on the loop) */
  o.bind = "127.0.0.1:0";
  cfg.name = NULL;
  assert_int_equal(dmq_uv_new(&loop, &cfg, &o, &rt), DMQ_EINVAL);
  cfg_local(&cfg, "x");
  cfg.probe_interval_ms = 0;
  assert_int_equal(dmq_uv_new(&loop, &cfg, &o, &rt), DMQ_EINVAL);
  assert_null(rt);

  /* join validation */
  cfg_local(&cfg, "x");
  assert_int_equal(dmq_uv_new(&loop, &cfg, &o, &rt), 0);
  assert_int_equal(dmq_uv_join(NULL, NULL, 0), DMQ_EINVAL);
  assert_int_equal(dmq_uv_join(rt, NULL, 1), DMQ_EINVAL);
  static const char *const bad_seeds[] = {
      "1.2.3.4:99999",  "[::1",  "1.2.3.4:0", "bad name!",
      "_srv._udp.x:53", "host:", ":7946"};
  for (size_t i = 0; i < sizeof(bad_seeds) / sizeof(bad_seeds[0]); i++) {
    const char *s = bad_seeds[i];
    int rc = dmq_uv_join(rt, &s, 1);
    if (rc != DMQ_EADDR && rc != DMQ_EINVAL)
      fail_msg("seed '%s' accepted (%d)", s, rc);
  }
  const char *empty = "";
  assert_int_equal(dmq_uv_join(rt, &empty, 1), DMQ_EINVAL);
  /* closed: joins are refused; the close completes on the loop */
  close_flag_t c = {0};
  dmq_uv_close(rt, 0, on_closed, &c);
  assert_int_equal(dmq_uv_join(rt, NULL, 0), DMQ_ECLOSED);
  assert_true(run_until(&loop, flag_set, &c, RT_TEST_CONVERGE_MS));

  /* an advertise address overrides the bound one */
  o.advertise = "10.1.2.3:7000";
  assert_int_equal(dmq_uv_new(&loop, &cfg, &o, &rt), 0);
  assert_string_equal(dmq_uv_addr(rt), "udp://10.1.2.3:7000");
  c.calls = 0;
  dmq_uv_close(rt, 0, on_closed, &c);
  loop_finish(&loop);
  assert_int_equal(c.calls, 1);

  assert_null(dmq_uv_node(NULL));
  assert_null(dmq_uv_addr(NULL));
  assert_null(dmq_uv_loop(NULL));
  dmq_uv_kick(NULL);
  dmq_uv_close(NULL, 0, NULL, NULL);
}

static void test_seed_parse(void **state) {
  dmq__seed_t s;
  assert_int_equal(dmq__seed_parse("udp://127.0.0.1:7000", &s), 0);
  assert_int_equal(s.kind, DMQ__SEED_ADDR);
  assert_string_equal(s.addr, "udp://127.0.0.1:7000");
  assert_int_equal(dmq__seed_parse("127.0.0.1:7000", &s), 0);
  assert_string_equal(s.addr, "udp://127.0.0.1:7000");
  assert_int_equal(dmq__seed_parse("127.0.0.1", &s), 0);
  assert_string_equal(s.addr, "udp://127.0.0.1:7946");
  assert_int_equal(dmq__seed_parse("[::1]:7000", &s), 0);
  assert_string_equal(s.addr, "udp://[::1]:7000");
  assert_int_equal(dmq__seed_parse("[0:0::1]", &s), 0);
  assert_string_equal(s.addr, "udp://[::1]:7946");
  assert_int_equal(dmq__seed_parse("::1", &s), 0);
  assert_string_equal(s.addr, "udp://[::1]:7946");
  assert_int_equal(dmq__seed_parse("sim://4", &s), 0);
  assert_int_equal(s.kind, DMQ__SEED_ADDR);
  assert_string_equal(s.addr, "sim://4");
  assert_int_equal(dmq__seed_parse("seeds.example.test", &s), 0);
  assert_int_equal(s.kind, DMQ__SEED_NAME);
  assert_string_equal(s.name, "seeds.example.test");
  assert_int_equal(s.port, 7946);
  assert_int_equal(dmq__seed_parse("udp://seeds.example.test:8000", &s), 0);
  assert_int_equal(s.kind, DMQ__SEED_NAME);
  assert_int_equal(s.port, 8000);
  assert_int_equal(dmq__seed_parse("_dmq._udp.example.test", &s), 0);
  assert_int_equal(s.kind, DMQ__SEED_SRV);
  assert_string_equal(s.name, "_dmq._udp.example.test");
  assert_int_equal(dmq__seed_parse("a..b", &s), DMQ_EADDR);
  assert_int_equal(dmq__seed_parse("a:b", &s), DMQ_EADDR);
  assert_int_equal(dmq__seed_parse(NULL, &s), DMQ_EINVAL);
}

typedef struct name_check {
  group_t *g;
  dmq_uv_t *joiner;
} name_check_t;

static void test_join_through_name(void **state) {
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  group_t g = {.names = {"a0", "a1"}, .n = 2};
  g.rt[0] = rt_make(&loop, "a0", "127.0.0.1:0", 0);
  g.rt[1] = rt_make(&loop, "a1", "127.0.0.1:0", 0);
  char seed[64];
  snprintf(seed, sizeof(seed), "localhost:%u",
           (unsigned)port_of(dmq_uv_addr(g.rt[0])));
  const char *s = seed;
  assert_int_equal(dmq_uv_join(g.rt[1], &s, 1), 0);
  /* resolution is asynchronous: nothing resolved yet */
  assert_int_equal(dmq__uv_resolve_rounds(g.rt[1]), 0);
  assert_true(run_until(&loop, group_converged, &g, RT_TEST_CONVERGE_MS));
  assert_true(dmq__uv_resolve_rounds(g.rt[1]) >= 1);
  close_flag_t c0 = {0}, c1 = {0};
  dmq_uv_close(g.rt[1], RT_TEST_FLUSH_MS, on_closed, &c1);
  dmq_uv_close(g.rt[0], RT_TEST_FLUSH_MS, on_closed, &c0);
  loop_finish(&loop);
  assert_int_equal(c0.calls + c1.calls, 2);
}

static void test_close_while_resolving(void **state) {
  /* close right after a join through a name: the lookup in flight is
   * cancelled or waited for; nothing leaks, the loop empties */
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  dmq_uv_t *rt = rt_make(&loop, "r0", "127.0.0.1:0", 0);
  const char *s = "localhost";
  assert_int_equal(dmq_uv_join(rt, &s, 1), 0);
  close_flag_t c = {0};
  dmq_uv_close(rt, RT_TEST_FLUSH_MS, on_closed, &c);
  loop_finish(&loop);
  assert_int_equal(c.calls, 1);
}

static void test_udp_only_and_ports(void **state) {
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  /* UDP-only nodes still converge (push/pull fits a datagram) */
  group_t g = {.names = {"u0", "u1"}, .n = 2};
  g.rt[0] = rt_make(&loop, "u0", "127.0.0.1:0", 1);
  g.rt[1] = rt_make(&loop, "u1", "127.0.0.1:0", 1);
  const char *seed = dmq_uv_addr(g.rt[0]);
  assert_int_equal(dmq_uv_join(g.rt[1], &seed, 1), 0);
  assert_true(run_until(&loop, group_converged, &g, RT_TEST_CONVERGE_MS));

  /* with TCP, the TCP port is the UDP port: it is taken */
  dmq_uv_t *t = rt_make(&loop, "t0", "127.0.0.1:0", 0);
  uint16_t port = port_of(dmq_uv_addr(t));
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in sin;
  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  sin.sin_port = htons(port);
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_not_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
  close(fd);

  /* an explicit port whose TCP twin is taken: an error, not another port */
  fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  sin.sin_port = 0;
  assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
  assert_int_equal(listen(fd, 1), 0);
  socklen_t sl = sizeof(sin);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
  char bind_addr[64];
  snprintf(bind_addr, sizeof(bind_addr), "127.0.0.1:%u",
           (unsigned)ntohs(sin.sin_port));
  dmq_config_t cfg;
  cfg_local(&cfg, "t1");
  dmq_uv_options_t o;
  dmq_uv_options_init(&o);
  o.bind = bind_addr;
  dmq_uv_t *bad = NULL;
  int rc = dmq_uv_new(&loop, &cfg, &o, &bad);
  assert_int_not_equal(rc, 0);
  assert_null(bad);
  close(fd);

  close_flag_t c[3] = {{0}, {0}, {0}};
  dmq_uv_close(g.rt[0], 0, on_closed, &c[0]);
  dmq_uv_close(g.rt[1], 0, on_closed, &c[1]);
  dmq_uv_close(t, 0, on_closed, &c[2]);
  loop_finish(&loop);
  for (int i = 0; i < 3; i++)
    assert_int_equal(c[i].calls, 1);
}

int main(void) {
  alarm(RT_TEST_ALARM_S);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_seed_parse),
      cmocka_unit_test(test_bad_options),
      cmocka_unit_test(test_three_converge_leave_close),
      cmocka_unit_test(test_join_through_name),
      cmocka_unit_test(test_close_while_resolving),
      cmocka_unit_test(test_udp_only_and_ports),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
