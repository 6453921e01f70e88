/* Integration tests: run a libuv loop until a predicate holds, with a
 * watchdog, so that a test waits on a condition rather than a sleep and a
 * hung loop cannot hang ctest. Header only (static functions): include it
 * from a test_*.c. */
#ifndef DMQ_TEST_UV_UNTIL_H
#define DMQ_TEST_UV_UNTIL_H

#include <stdint.h>
#include <string.h>

#include <uv.h>

typedef int (*uv_until_pred_fn)(void *ud);

typedef struct uv_until {
  uv_timer_t watchdog, poll;
  uv_until_pred_fn pred;
  void *ud;
} uv_until_t;

static void uv_until_on_watchdog(uv_timer_t *h) {
  uv_stop(h->loop);
}

static void uv_until_on_poll(uv_timer_t *h) {
  uv_until_t *r = h->data;
  if (r->pred(r->ud))
    uv_stop(h->loop);
}

static void uv_until_closed(uv_handle_t *h) {
  (void)h;
}

/* Run loop until pred(ud) holds (evaluated every poll_ms) or timeout_ms
 * pass; returns pred(ud). */
static int uv_run_until(uv_loop_t *loop, uv_until_pred_fn pred, void *ud,
                        uint64_t timeout_ms, uint64_t poll_ms) {
  uv_until_t r;
  memset(&r, 0, sizeof(r));
  r.pred = pred;
  r.ud = ud;
  uv_timer_init(loop, &r.watchdog);
  uv_timer_init(loop, &r.poll);
  r.watchdog.data = r.poll.data = &r;
  uv_timer_start(&r.watchdog, uv_until_on_watchdog, timeout_ms, 0);
  uv_timer_start(&r.poll, uv_until_on_poll, 0, poll_ms);
  if (!pred(ud))
    uv_run(loop, UV_RUN_DEFAULT);
  uv_close((uv_handle_t *)&r.watchdog, uv_until_closed);
  uv_close((uv_handle_t *)&r.poll, uv_until_closed);
  /* let the two close callbacks run (nothing else is waited for) */
  uv_run(loop, UV_RUN_NOWAIT);
  return pred(ud);
}

#endif
