/* Unit tests for the 0.3 API shape: growable structs (size members, the
 * *_init_sized() and *_sized() entry points, nothing read or written past
 * the caller's size), misuse inside callbacks reported with DMQ_EBUSY
 * (dmq_node_delete() in every kind of callback; every call that changes
 * the node inside the log and wake callbacks) and DMQ_ELIMIT. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <dmq/dmq.h>
#include <dmq/poll.h>
#include <dmq/thread.h>
#include <dmq/uv_options.h>

#include "memnet.h"

#define Q_MAX 4096
#define CANARY 0xA5
#define EXTRA 64

/* ---- two nodes over memnet ---- */

typedef struct pair {
  memnet_t net;
  memnet_tp_t tp[2];
  dmq_node_t *node[2];
  dmq_channel_t *ch[2];
  uint64_t now;
  /* results of the calls made inside callbacks */
  int member_delete_rc, rx_delete_rc, outcome_delete_rc;
  int member_events, rx_count, outcomes;
  /* log callback: calls that must be refused, and queries that work */
  int logs, log_checked;
  int wakes, wake_checked;
} pair_t;

static void check_refused_inside(pair_t *p, dmq_node_t *node) {
  const char *seed = "mem://0";
  dmq_send_opts_t o;
  dmq_send_opts_init(&o);
  dmq_delivery_config_t dc;
  dmq_delivery_config_init(&dc);
  memnet_tp_t extra = p->tp[0];
  dmq_transport_ops_t ops = memnet_ops;
  ops.scheme = "other";
  extra.t.ops = &ops;
  assert_int_equal(dmq_node_tick(node, p->now), DMQ_EBUSY);
  assert_int_equal(dmq_node_recv(node, NULL, NULL, "x", 1, p->now), DMQ_EBUSY);
  assert_int_equal(dmq_node_start(node, p->now), DMQ_EBUSY);
  assert_int_equal(dmq_node_join(node, &seed, 1, p->now), DMQ_EBUSY);
  assert_int_equal(dmq_node_set_seeds(node, &seed, 1), DMQ_EBUSY);
  assert_int_equal(dmq_node_set_meta(node, "m", 1, p->now), DMQ_EBUSY);
  assert_int_equal(dmq_node_leave(node, p->now), DMQ_EBUSY);
  assert_int_equal(dmq_node_add_transport(node, &extra.t), DMQ_EBUSY);
  assert_int_equal(dmq_node_delete(node), DMQ_EBUSY);
  assert_int_equal(dmq_send(node, "n0", "ch", "x", 1, &o, p->now, NULL),
                   DMQ_EBUSY);
  assert_int_equal(dmq_broadcast(node, "ch", "x", 1, &o, p->now, NULL),
                   DMQ_EBUSY);
  assert_int_equal(dmq_delivery_cancel(node, 1), DMQ_EBUSY);
  assert_int_equal(dmq_delivery_configure(node, &dc), DMQ_EBUSY);
  dmq_channel_t *ch = NULL;
  assert_int_equal(dmq_channel_open(node, "other", NULL, NULL, &ch),
                   DMQ_EINVAL); /* argument errors first */
  int i = node == p->node[0] ? 0 : 1;
  if (p->ch[i] != NULL) {
    assert_int_equal(dmq_channel_pause(p->ch[i], 1), DMQ_EBUSY);
    assert_int_equal(dmq_channel_close(p->ch[i]), DMQ_EBUSY);
  }
  /* queries work */
  assert_string_equal(dmq_node_name(node), i == 0 ? "n0" : "n1");
  assert_true(dmq_node_member_count(node, DMQ_MASK_ALL) >= 1);
  dmq_stats_t st;
  assert_int_equal(dmq_node_stats(node, &st), 0);
  dmq_member_info_t mi;
  assert_int_equal(dmq_node_member(node, dmq_node_name(node), &mi), 0);
  assert_true(mi.is_self);
}

static void on_rx_dummy(dmq_node_t *node, dmq_channel_t *ch,
                        const dmq_message_t *msg, void *ud) {
  (void)node;
  (void)ch;
  (void)msg;
  (void)ud;
}

static void on_log(dmq_node_t *node, dmq_log_level_t level, const char *msg,
                   void *ud) {
  pair_t *p = ud;
  (void)level;
  (void)msg;
  p->logs++;
  check_refused_inside(p, node);
  /* channel_open with valid arguments is refused too */
  dmq_channel_t *ch = NULL;
  assert_int_equal(dmq_channel_open(node, "other", on_rx_dummy, NULL, &ch),
                   DMQ_EBUSY);
  assert_null(ch);
  p->log_checked++;
}

static void on_member(dmq_node_t *node, dmq_member_event_t ev,
                      const dmq_member_info_t *m, void *ud) {
  pair_t *p = ud;
  (void)ev;
  (void)m;
  p->member_events++;
  p->member_delete_rc = dmq_node_delete(node);
}

static void on_rx(dmq_node_t *node, dmq_channel_t *ch, const dmq_message_t *msg,
                  void *ud) {
  pair_t *p = ud;
  (void)ch;
  (void)msg;
  p->rx_count++;
  p->rx_delete_rc = dmq_node_delete(node);
}

static void on_outcome(dmq_node_t *node, const dmq_outcome_info_t *o,
                       void *ud) {
  pair_t *p = ud;
  (void)o;
  p->outcomes++;
  p->outcome_delete_rc = dmq_node_delete(node);
}

static void pair_init(pair_t *p) {
  memset(p, 0, sizeof(*p));
  p->member_delete_rc = p->rx_delete_rc = p->outcome_delete_rc = 1;
  memnet_init(&p->net, Q_MAX);
  for (int i = 0; i < 2; i++) {
    assert_int_equal(memnet_node_new(&p->net, &p->tp[i], i, NULL, &p->node[i]),
                     0);
    dmq_node_set_member_cb(p->node[i], on_member, p);
    assert_int_equal(dmq_node_start(p->node[i], 0), 0);
  }
}

static void pair_free(pair_t *p) {
  for (int i = 0; i < 2; i++)
    assert_int_equal(dmq_node_delete(p->node[i]), 0);
  memnet_free(&p->net);
}

static void pair_run(pair_t *p, uint64_t until) {
  memnet_run(&p->net, p->node, p->tp, 2, &p->now, until);
}

/* ---- misuse inside callbacks ---- */

static void test_delete_inside_callbacks(void **state) {
  (void)state;
  pair_t p;
  pair_init(&p);
  assert_int_equal(dmq_channel_open(p.node[1], "ch", on_rx, &p, &p.ch[1]), 0);
  const char *seed = "mem://0";
  assert_int_equal(dmq_node_join(p.node[1], &seed, 1, 0), 0);
  pair_run(&p, 2000);
  /* member callback: refused, the node lives on */
  assert_true(p.member_events > 0);
  assert_int_equal(p.member_delete_rc, DMQ_EBUSY);
  /* receive and outcome callbacks */
  dmq_send_opts_t o;
  dmq_send_opts_init(&o);
  o.mode = DMQ_SEND_RELIABLE;
  o.cb = on_outcome;
  o.user_data = &p;
  assert_int_equal(dmq_send(p.node[0], "n1", "ch", "x", 1, &o, p.now, NULL), 0);
  pair_run(&p, p.now + 1000);
  assert_int_equal(p.rx_count, 1);
  assert_int_equal(p.rx_delete_rc, DMQ_EBUSY);
  assert_int_equal(p.outcomes, 1);
  assert_int_equal(p.outcome_delete_rc, DMQ_EBUSY);
  /* both nodes still work after the refusals */
  assert_int_equal(dmq_node_member_count(p.node[0], DMQ_MASK_LIVE), 2);
  assert_int_equal(dmq_node_member_count(p.node[1], DMQ_MASK_LIVE), 2);
  /* SHUTDOWN outcomes run inside dmq_node_delete(): a nested delete is
   * refused, the outer one completes */
  assert_int_equal(dmq_send(p.node[0], "n1", "ch", "y", 1, &o, p.now, NULL), 0);
  p.outcome_delete_rc = 1;
  assert_int_equal(dmq_node_delete(p.node[0]), 0);
  p.node[0] = NULL;
  assert_int_equal(p.outcomes, 2);
  assert_int_equal(p.outcome_delete_rc, DMQ_EBUSY);
  pair_free(&p);
}

static void test_log_callback_is_restricted(void **state) {
  (void)state;
  pair_t p;
  pair_init(&p);
  for (int i = 0; i < 2; i++) {
    dmq_node_set_member_cb(p.node[i], NULL, NULL);
    dmq_node_set_log_cb(p.node[i], on_log, DMQ_LOG_DEBUG, &p);
  }
  assert_int_equal(dmq_channel_open(p.node[1], "ch", on_rx_dummy, &p, &p.ch[1]),
                   0);
  /* "joined through n0" is logged from inside dmq_node_recv(), in the
   * middle of processing the join reply */
  const char *seed = "mem://0";
  assert_int_equal(dmq_node_join(p.node[1], &seed, 1, 0), 0);
  pair_run(&p, 2000);
  assert_true(p.logs > 0);
  assert_int_equal(p.log_checked, p.logs);
  /* after the callback, the same calls work again */
  assert_int_equal(dmq_node_member_count(p.node[1], DMQ_MASK_LIVE), 2);
  assert_int_equal(dmq_node_set_meta(p.node[1], "m", 1, p.now), 0);
  assert_int_equal(dmq_channel_pause(p.ch[1], 1), 0);
  assert_int_equal(dmq_channel_pause(p.ch[1], 0), 0);
  assert_int_equal(dmq_channel_pause(NULL, 0), DMQ_EINVAL);
  pair_free(&p);
}

static void on_wake(void *ud) {
  pair_t *p = ud;
  p->wakes++;
  check_refused_inside(p, p->node[0]);
  p->wake_checked++;
}

static void test_wake_callback_is_restricted(void **state) {
  (void)state;
  pair_t p;
  memset(&p, 0, sizeof(p));
  memnet_init(&p.net, Q_MAX);
  assert_int_equal(memnet_node_new(&p.net, &p.tp[0], 0, NULL, &p.node[0]), 0);
  dmq_node_set_wake_cb(p.node[0], on_wake, &p);
  assert_int_equal(dmq_node_start(p.node[0], 0), 0);
  assert_int_equal(p.wakes, 1);
  assert_int_equal(p.wake_checked, 1);
  assert_int_equal(dmq_node_delete(p.node[0]), 0);
  memnet_free(&p.net);
}

/* ---- growable structs ---- */

/* init_sized writes at most size bytes and sets size; bytes past the
 * library's struct are zeroed when the caller's struct is bigger. */
#define CHECK_INIT_SIZED(T, CALL_SIZED)                                        \
  do {                                                                         \
    unsigned char buf[sizeof(T) + EXTRA];                                      \
    T *o = (T *)(void *)buf;                                                   \
    memset(buf, CANARY, sizeof(buf));                                          \
    size_t size = sizeof(T);                                                   \
    assert_int_equal(CALL_SIZED, 0);                                           \
    assert_int_equal(o->size, sizeof(T));                                      \
    for (size_t k = sizeof(T); k < sizeof(buf); k++)                           \
      assert_int_equal(buf[k], CANARY);                                        \
    memset(buf, CANARY, sizeof(buf));                                          \
    size = sizeof(T) + 16;                                                     \
    assert_int_equal(CALL_SIZED, 0);                                           \
    assert_int_equal(o->size, sizeof(T) + 16);                                 \
    for (size_t k = sizeof(T); k < sizeof(T) + 16; k++)                        \
      assert_int_equal(buf[k], 0);                                             \
    for (size_t k = sizeof(T) + 16; k < sizeof(buf); k++)                      \
      assert_int_equal(buf[k], CANARY);                                        \
    size = 0;                                                                  \
    assert_int_equal(CALL_SIZED, DMQ_EINVAL);                                  \
    size = sizeof(T) / 2;                                                      \
    assert_int_equal(CALL_SIZED, DMQ_EINVAL);                                  \
    o = NULL;                                                                  \
    size = sizeof(T);                                                          \
    assert_int_equal(CALL_SIZED, DMQ_EINVAL);                                  \
  } while (0)

static void test_init_sized(void **state) {
  (void)state;
  CHECK_INIT_SIZED(dmq_config_t,
                   dmq_config_init_sized(o, size, DMQ_PROFILE_LAN));
  CHECK_INIT_SIZED(dmq_delivery_config_t,
                   dmq_delivery_config_init_sized(o, size));
  CHECK_INIT_SIZED(dmq_send_opts_t, dmq_send_opts_init_sized(o, size));
  CHECK_INIT_SIZED(dmq_uv_options_t, dmq_uv_options_init_sized(o, size));
  CHECK_INIT_SIZED(dmq_thread_options_t,
                   dmq_thread_options_init_sized(o, size));
  CHECK_INIT_SIZED(dmq_poll_options_t, dmq_poll_options_init_sized(o, size));
  CHECK_INIT_SIZED(dmq_alloc_t, dmq_alloc_init_sized(o, size));

  /* the inline inits pass the caller's sizeof and fill the defaults */
  dmq_config_t c;
  assert_int_equal(dmq_config_init(&c, DMQ_PROFILE_WAN), 0);
  assert_int_equal(c.size, sizeof(c));
  assert_int_equal(c.probe_interval_ms, 5000);
  assert_int_equal(dmq_config_init(&c, (dmq_profile_t)99), DMQ_EINVAL);
  dmq_thread_options_t to;
  assert_int_equal(dmq_thread_options_init(&to), 0);
  assert_int_equal(to.size, sizeof(to));
  assert_int_equal(to.uv.size, sizeof(to.uv));
  assert_null(to.uv.bind);
  assert_int_equal(to.uv.dns_refresh_ms, 30000);
  assert_int_equal(to.flush_timeout_ms, 1000);
  assert_int_equal(to.max_events, 1024);
  dmq_poll_options_t po;
  assert_int_equal(dmq_poll_options_init(&po), 0);
  assert_int_equal(po.uv.size, sizeof(po.uv));
  assert_int_equal(po.flush_timeout_ms, 1000);
  dmq_send_opts_t so;
  assert_int_equal(dmq_send_opts_init(&so), 0);
  assert_int_equal(so.mode, DMQ_SEND_BEST_EFFORT);
  assert_null(so.cb);
}

static void *test_malloc_fn(size_t size, void *ud) {
  (void)ud;
  return malloc(size);
}
static void *test_realloc_fn(void *p, size_t size, void *ud) {
  (void)ud;
  return realloc(p, size);
}
static void test_free_fn(void *p, void *ud) {
  (void)ud;
  free(p);
}

/* A caller whose headers have a bigger dmq_config_t (a later release):
 * the library reads its own fields and ignores the rest. A struct that was
 * not initialised (size 0) or is smaller than 0.3.0's is refused. */
static void test_sized_inputs(void **state) {
  (void)state;
  struct {
    dmq_config_t c;
    unsigned char newer[EXTRA];
  } big;
  memset(&big, CANARY, sizeof(big));
  assert_int_equal(dmq_config_init_sized(&big.c, sizeof(big), DMQ_PROFILE_LAN),
                   0);
  memset(big.newer, CANARY, sizeof(big.newer)); /* "newer" fields, set */
  big.c.name = "a";
  big.c.advertise_addr = "mem://0";
  big.c.generation = 1;
  dmq_node_t *n = NULL;
  assert_int_equal(dmq_node_new(&big.c, NULL, &n), 0);
  assert_int_equal(dmq_node_delete(n), 0);
  dmq_config_t c = big.c;
  c.size = 0;
  assert_int_equal(dmq_node_new(&c, NULL, &n), DMQ_EINVAL);
  assert_null(n);
  /* one byte short of the 0.3.0 layout (which ends at max_packet) */
  c.size = offsetof(dmq_config_t, max_packet) + sizeof(c.max_packet) - 1;
  assert_int_equal(dmq_node_new(&c, NULL, &n), DMQ_EINVAL);
  /* a 0.3.0 caller (no max_members): the default applies */
  c.size = (uint32_t)(offsetof(dmq_config_t, max_packet) + sizeof(uint32_t));
  c.max_members = 0xdeadbeef; /* beyond its size: never read */
  assert_int_equal(dmq_node_new(&c, NULL, &n), 0);
  assert_int_equal(dmq_node_delete(n), 0);
  c.size = sizeof(c);
  c.max_members = 70000; /* over the record limit */
  assert_int_equal(dmq_node_new(&c, NULL, &n), DMQ_EINVAL);
  c.max_members = 8192;
  c.max_packet = 1u << 20; /* a full table's push/pull would not fit */
  assert_int_equal(dmq_node_new(&c, NULL, &n), DMQ_EINVAL);
  c.max_members = 0; /* = the default */
  c.max_packet = 16u << 20;
  assert_int_equal(dmq_node_new(&c, NULL, &n), 0);
  dmq_node_t *node = n;
  assert_int_equal(dmq_node_start(node, 0), 0);

  /* allocator hooks: initialised, all three set */
  dmq_alloc_t a;
  assert_int_equal(dmq_alloc_init(&a), 0);
  a.malloc_fn = test_malloc_fn;
  a.realloc_fn = test_realloc_fn;
  a.free_fn = test_free_fn;
  dmq_node_t *other = NULL;
  assert_int_equal(dmq_node_new(&c, &a, &other), 0);
  assert_int_equal(dmq_node_delete(other), 0);
  a.size = 0;
  assert_int_equal(dmq_node_new(&c, &a, &other), DMQ_EINVAL);
  assert_null(other);

  /* transport ops: size required; a table from newer headers is fine */
  memnet_t net;
  memnet_tp_t tp;
  memnet_init(&net, 4);
  memnet_tp_init(&tp, &net, 0);
  dmq_transport_ops_t ops = memnet_ops;
  ops.size = 0;
  tp.t.ops = &ops;
  assert_int_equal(dmq_node_add_transport(node, &tp.t), DMQ_EINVAL);
  struct {
    dmq_transport_ops_t ops;
    void (*newer_op)(void);
  } bigops = {memnet_ops, NULL};
  bigops.ops.size = sizeof(bigops);
  tp.t.ops = &bigops.ops;
  assert_int_equal(dmq_node_add_transport(node, &tp.t), 0);

  /* delivery config */
  dmq_delivery_config_t dc;
  dmq_delivery_config_init(&dc);
  dc.size = 0;
  assert_int_equal(dmq_delivery_configure(node, &dc), DMQ_EINVAL);
  struct {
    dmq_delivery_config_t dc;
    unsigned char newer[EXTRA];
  } bigdc;
  assert_int_equal(dmq_delivery_config_init_sized(&bigdc.dc, sizeof(bigdc)), 0);
  memset(bigdc.newer, CANARY, sizeof(bigdc.newer));
  bigdc.dc.ttl_ms = 1234;
  assert_int_equal(dmq_delivery_configure(node, &bigdc.dc), 0);

  /* send options: checked per message; the copy path (size != sizeof)
   * gives the same result as the direct one */
  assert_int_equal(dmq_channel_open(node, "ch", on_rx_dummy, NULL, NULL), 0);
  dmq_send_opts_t so;
  dmq_send_opts_init(&so);
  assert_int_equal(dmq_broadcast(node, "ch", "x", 1, &so, 1, NULL), 0);
  so.size = 0;
  assert_int_equal(dmq_broadcast(node, "ch", "x", 1, &so, 1, NULL), DMQ_EINVAL);
  so.size = sizeof(so) - 1;
  assert_int_equal(dmq_broadcast(node, "ch", "x", 1, &so, 1, NULL), DMQ_EINVAL);
  struct {
    dmq_send_opts_t so;
    unsigned char newer[EXTRA];
  } bigso;
  assert_int_equal(dmq_send_opts_init_sized(&bigso.so, sizeof(bigso)), 0);
  memset(bigso.newer, CANARY, sizeof(bigso.newer));
  assert_int_equal(dmq_broadcast(node, "ch", "x", 1, &bigso.so, 1, NULL), 0);
  bigso.so.mode = DMQ_SEND_RELIABLE; /* without cb: refused, as usual */
  assert_int_equal(dmq_broadcast(node, "ch", "x", 1, &bigso.so, 1, NULL),
                   DMQ_EINVAL);
  assert_int_equal(dmq_broadcast(node, "ch", "x", 1, NULL, 1, NULL), 0);
  assert_int_equal(dmq_node_delete(node), 0);
  memnet_free(&net);
}

/* Outputs: at most size bytes written, bytes past the library's struct
 * zeroed, too small refused. */
#define CHECK_OUT_SIZED(T, CALL_SIZED)                                         \
  do {                                                                         \
    unsigned char buf[sizeof(T) + EXTRA];                                      \
    T *out = (T *)(void *)buf;                                                 \
    memset(buf, CANARY, sizeof(buf));                                          \
    size_t size = sizeof(T);                                                   \
    assert_int_equal(CALL_SIZED, 0);                                           \
    for (size_t k = sizeof(T); k < sizeof(buf); k++)                           \
      assert_int_equal(buf[k], CANARY);                                        \
    memset(buf, CANARY, sizeof(buf));                                          \
    size = sizeof(T) + 16;                                                     \
    assert_int_equal(CALL_SIZED, 0);                                           \
    for (size_t k = sizeof(T); k < sizeof(T) + 16; k++)                        \
      assert_int_equal(buf[k], 0);                                             \
    for (size_t k = sizeof(T) + 16; k < sizeof(buf); k++)                      \
      assert_int_equal(buf[k], CANARY);                                        \
    size = 0;                                                                  \
    assert_int_equal(CALL_SIZED, DMQ_EINVAL);                                  \
    size = sizeof(T) / 2;                                                      \
    assert_int_equal(CALL_SIZED, DMQ_EINVAL);                                  \
  } while (0)

static void test_sized_outputs(void **state) {
  (void)state;
  pair_t p;
  pair_init(&p);
  dmq_node_set_member_cb(p.node[0], NULL, NULL);
  dmq_node_set_member_cb(p.node[1], NULL, NULL);
  assert_int_equal(dmq_node_recv(p.node[0], NULL, NULL, "junk", 4, 1), 0);
  CHECK_OUT_SIZED(dmq_stats_t, dmq_node_stats_sized(p.node[0], out, size));
  CHECK_OUT_SIZED(dmq_delivery_stats_t,
                  dmq_delivery_stats_sized(p.node[0], out, size));
  CHECK_OUT_SIZED(dmq_member_info_t,
                  dmq_node_member_sized(p.node[0], "n0", out, size));
  dmq_stats_t st;
  assert_int_equal(dmq_node_stats(p.node[0], &st), 0);
  assert_int_equal(st.pkts_in, 1);
  assert_int_equal(st.drops[DMQ_DROP_MAGIC], 1);
  /* unused drop slots read 0 */
  for (int i = DMQ_DROP_COUNT; i < DMQ_DROP_SLOTS; i++)
    assert_int_equal(st.drops[i], 0);
  assert_int_equal(st.members[DMQ_MEMBER_ALIVE], 1);
  assert_int_equal(dmq_node_stats(NULL, &st), DMQ_EINVAL);
  assert_int_equal(dmq_node_stats(p.node[0], NULL), DMQ_EINVAL);
  dmq_delivery_stats_t ds;
  assert_int_equal(dmq_delivery_stats(p.node[0], &ds), 0);
  assert_int_equal(dmq_delivery_stats(NULL, &ds), DMQ_EINVAL);
  dmq_member_info_t mi;
  assert_int_equal(dmq_node_member(p.node[0], "zz", &mi), DMQ_ENOENT);
  pair_free(&p);
}

static void test_limits(void **state) {
  (void)state;
  assert_string_equal(dmq_err_name(DMQ_ELIMIT), "DMQ_ELIMIT");
  assert_string_equal(dmq_strerror(DMQ_ELIMIT),
                      "a configured limit was reached");
  pair_t p;
  pair_init(&p);
  dmq_node_set_member_cb(p.node[0], NULL, NULL);
  dmq_node_set_member_cb(p.node[1], NULL, NULL);
  assert_int_equal(dmq_node_start(p.node[0], 0), DMQ_ESTATE);
  char name[16];
  for (int i = 0; i < DMQ_MAX_CHANNELS; i++) {
    snprintf(name, sizeof(name), "c%d", i);
    assert_int_equal(dmq_channel_open(p.node[0], name, on_rx_dummy, NULL, NULL),
                     0);
  }
  assert_int_equal(
      dmq_channel_open(p.node[0], "one-more", on_rx_dummy, NULL, NULL),
      DMQ_ELIMIT);
  pair_free(&p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_delete_inside_callbacks),
      cmocka_unit_test(test_log_callback_is_restricted),
      cmocka_unit_test(test_wake_callback_is_restricted),
      cmocka_unit_test(test_init_sized),
      cmocka_unit_test(test_sized_inputs),
      cmocka_unit_test(test_sized_outputs),
      cmocka_unit_test(test_limits),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
