/* The runtime's wake hook (src/runtime_uv.c): calls the application makes
 * on a node outside of library callbacks - here from a plain uv timer,
 * without dmq_uv_kick() - take effect at once, not at the node's next
 * scheduled deadline (the next probe, up to a second away with the lan
 * profile).
 *   - a channel opened on b (its gossip is queued while no gossip round is
 *     scheduled) reaches a;
 *   - DMQ_WAKE_SENDS best-effort and reliable sends from a timer each reach
 *     b within DMQ_WAKE_MAX_MS; without the wake they would wait for a's
 *     next tick, about half a second on average.
 * Bounded by a watchdog; closes both runtimes, uv_loop_close() must
 * succeed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <unistd.h>

#include <cmocka.h>

#include <dmq/delivery.h>
#include <dmq/uv.h>

#define DMQ_WAKE_SENDS 40
/* generous for a loaded machine, far below a probe period (1000 ms) */
#define DMQ_WAKE_MAX_MS 100
/* spacing of the sends: not a divisor of the probe period */
#define DMQ_WAKE_EVERY_MS 37
#define DMQ_WAKE_WATCHDOG_MS 30000
#define DMQ_WAKE_ALARM_S 120

typedef struct wake {
  uv_loop_t loop;
  dmq_uv_t *a, *b;
  uv_timer_t tick, watchdog;
  dmq_channel_t *ch;
  int phase; /* 0: wait for a to see b serve "c"; 1: sending; 2: done */
  int sent, received, delivered_outcomes, closed, timed_out;
  uint64_t max_lat_ns;
} wake_t;

static void on_rx(dmq_node_t *n, dmq_channel_t *ch, const dmq_message_t *m,
                  void *ud) {
  (void)n;
  (void)ch;
  wake_t *w = ud;
  uint64_t t0;
  assert_int_equal(m->len, sizeof(t0));
  memcpy(&t0, m->data, sizeof(t0));
  uint64_t lat = uv_hrtime() - t0;
  if (lat > w->max_lat_ns)
    w->max_lat_ns = lat;
  w->received++;
}

static void on_outcome(dmq_node_t *n, const dmq_outcome_info_t *o, void *ud) {
  (void)n;
  wake_t *w = ud;
  assert_int_equal(o->outcome, DMQ_OUTCOME_DELIVERED);
  w->delivered_outcomes++;
}

static void on_closed(void *ud) {
  ((wake_t *)ud)->closed++;
}

static void finish(wake_t *w) {
  w->phase = 2;
  uv_timer_stop(&w->tick);
  uv_timer_stop(&w->watchdog);
  uv_close((uv_handle_t *)&w->tick, NULL);
  uv_close((uv_handle_t *)&w->watchdog, NULL);
  dmq_uv_close(w->a, 1000, on_closed, w);
  dmq_uv_close(w->b, 1000, on_closed, w);
}

static void on_watchdog(uv_timer_t *h) {
  wake_t *w = h->data;
  w->timed_out = 1;
  finish(w);
}

static void on_tick(uv_timer_t *h) {
  wake_t *w = h->data;
  dmq_node_t *a = dmq_uv_node(w->a);
  if (w->phase == 0) {
    if (dmq_member_serves(a, "b", "c") == 1)
      w->phase = 1;
    return;
  }
  if (w->sent == DMQ_WAKE_SENDS) {
    if (w->received == DMQ_WAKE_SENDS &&
        w->delivered_outcomes == DMQ_WAKE_SENDS / 2)
      finish(w);
    return;
  }
  uint64_t t0 = uv_hrtime();
  dmq_send_opts_t o;
  dmq_send_opts_init(&o);
  o.mode = w->sent % 2 ? DMQ_SEND_RELIABLE : DMQ_SEND_BEST_EFFORT;
  o.cb = on_outcome;
  o.user_data = w;
  uv_update_time(&w->loop);
  assert_int_equal(
      dmq_send(a, "b", "c", &t0, sizeof(t0), &o, uv_now(&w->loop), NULL), 0);
  w->sent++;
}

static void test_calls_between_iterations(void **state) {
  (void)state;
  wake_t w;
  memset(&w, 0, sizeof(w));
  assert_int_equal(uv_loop_init(&w.loop), 0);
  dmq_uv_t **rts[2] = {&w.a, &w.b};
  const char *names[2] = {"a", "b"};
  for (int i = 0; i < 2; i++) {
    dmq_config_t cfg;
    assert_int_equal(dmq_config_init(&cfg, DMQ_PROFILE_LAN), 0);
    cfg.name = names[i];
    dmq_uv_options_t uo;
    dmq_uv_options_init(&uo);
    uo.bind = "127.0.0.1:0";
    assert_int_equal(dmq_uv_new(&w.loop, &cfg, &uo, rts[i]), 0);
  }
  const char *seed = dmq_uv_addr(w.b);
  assert_int_equal(dmq_uv_join(w.a, &seed, 1), 0);
  /* no dmq_uv_kick() after this: the wake hook must do it */
  assert_int_equal(dmq_channel_open(dmq_uv_node(w.b), "c", on_rx, &w, &w.ch),
                   0);
  uv_timer_init(&w.loop, &w.tick);
  uv_timer_init(&w.loop, &w.watchdog);
  w.tick.data = w.watchdog.data = &w;
  uv_timer_start(&w.tick, on_tick, DMQ_WAKE_EVERY_MS, DMQ_WAKE_EVERY_MS);
  uv_timer_start(&w.watchdog, on_watchdog, DMQ_WAKE_WATCHDOG_MS, 0);
  assert_int_equal(uv_run(&w.loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(w.closed, 2);
  assert_int_equal(uv_loop_close(&w.loop), 0);
  assert_false(w.timed_out);
  assert_int_equal(w.received, DMQ_WAKE_SENDS);
  print_message("max send-to-receive latency %.1f ms\n",
                (double)w.max_lat_ns / 1e6);
  assert_true(w.max_lat_ns < (uint64_t)DMQ_WAKE_MAX_MS * 1000000u);
}

int main(void) {
  alarm(DMQ_WAKE_ALARM_S);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_calls_between_iterations),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
