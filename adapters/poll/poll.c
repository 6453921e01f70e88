/* libdmq - poll adapter: a dmq_uv_t on a private loop, driven by the host.
 *
 * libuv's embedding interface: uv_backend_fd() is the loop's epoll (kqueue)
 * descriptor, readable when any watched descriptor is (sockets, the loop's
 * internal async wakeup used by the thread pool for DNS); uv_backend_timeout()
 * is how long uv_run() would block, 0 when something is pending (closing
 * handles, pending callbacks), the next timer otherwise; uv_run(UV_RUN_NOWAIT)
 * runs one iteration without blocking. The runtime re-arms the node's timer
 * when the node's wake hook fires (dmq/node.h), and dmq_poll_timeout_ms()
 * kicks it too, so that changes the host made to the node since the last
 * run count.
 *
 * Closing: dmq_uv_close() leaves, flushes and frees the runtime, then calls
 * back; after that the private loop has no handle left and can be closed.
 * The dmq_poll_t is freed only then, by dmq_poll_close().
 */
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "dmq/poll.h"
#include "dmq/uv.h"
#include "sized.h"

#define POLL_DEFAULT_FLUSH_MS 1000

typedef enum poll_state {
  POLL_RUNNING = 0,
  POLL_LEAVING, /* dmq_uv_close() called, waiting for its callback */
  POLL_CLOSED   /* runtime freed; the loop has no handle of ours */
} poll_state_t;

struct dmq__poll {
  uv_loop_t loop;
  dmq_uv_t *rt; /* NULL once closed */
  poll_state_t state;
  int running; /* inside uv_run(): dmq_poll_run() or dmq_poll_close() */
  uint32_t flush_ms;
  char addr[DMQ_MAX_ADDR + 1];
};

static void poll_loop_finish(uv_loop_t *loop) {
  uv_run(loop, UV_RUN_DEFAULT);
  if (uv_loop_close(loop) != 0) {
    uv_run(loop, UV_RUN_NOWAIT);
    (void)uv_loop_close(loop);
  }
}

/* The 0.3.0 layout ends at member_ud (src/sized.h). The embedded uv options
 * are read by dmq_uv_new() according to uv.size; when dmq_uv_options_t
 * grows after 0.3.0, the fields after `uv` move: keep the older layouts
 * here and convert by size. */
#define POLL_OPTIONS_MIN_SIZE DMQ__SIZE_UPTO(dmq_poll_options_t, member_ud)
_Static_assert(DMQ__SIZE_IS_WHOLE(dmq_poll_options_t, POLL_OPTIONS_MIN_SIZE),
               "dmq_poll_options_t grew: move POLL_OPTIONS_MIN_SIZE to its "
               "last field until 0.3.0 is released (src/sized.h)");

static void poll_options_defaults(dmq_poll_options_t *o) {
  memset(o, 0, sizeof(*o));
  o->size = sizeof(*o);
  dmq_uv_options_init(&o->uv);
  o->flush_timeout_ms = POLL_DEFAULT_FLUSH_MS;
}

int dmq_poll_options_init_sized(dmq_poll_options_t *o, size_t size) {
  dmq_poll_options_t d;
  poll_options_defaults(&d);
  return dmq__sized_init(o, size, &d, sizeof(d), POLL_OPTIONS_MIN_SIZE);
}

static int poll_options_load(dmq_poll_options_t *dst,
                             const dmq_poll_options_t *src) {
  poll_options_defaults(dst);
  if (src == NULL)
    return DMQ_EINVAL;
  int rc =
      dmq__sized_in(dst, sizeof(*dst), src, src->size, POLL_OPTIONS_MIN_SIZE);
  dst->size = sizeof(*dst);
  return rc;
}

int dmq_poll_new(const dmq_config_t *cfg, const dmq_poll_options_t *caller_opts,
                 dmq_poll_t **out) {
  if (out == NULL)
    return DMQ_EINVAL;
  *out = NULL;
  dmq_poll_options_t o;
  const dmq_poll_options_t *opts = &o;
  if (cfg == NULL || poll_options_load(&o, caller_opts) != 0 ||
      (o.uv.bind == NULL && !o.uv.use_fds))
    return DMQ_EINVAL;
  dmq_poll_t *p = calloc(1, sizeof(*p));
  if (p == NULL)
    return DMQ_ENOMEM;
  p->flush_ms =
      opts->flush_timeout_ms ? opts->flush_timeout_ms : POLL_DEFAULT_FLUSH_MS;
  if (uv_loop_init(&p->loop) != 0) {
    free(p);
    return DMQ_ETRANSPORT;
  }
  int rc = dmq_uv_new(&p->loop, cfg, &opts->uv, &p->rt);
  if (rc != 0) {
    /* transports dmq_uv_new() gave up on close asynchronously */
    poll_loop_finish(&p->loop);
    free(p);
    return rc;
  }
  const char *a = dmq_uv_addr(p->rt);
  size_t l = strlen(a);
  if (l >= sizeof(p->addr))
    l = sizeof(p->addr) - 1;
  memcpy(p->addr, a, l);
  p->addr[l] = '\0';
  if (opts->member_cb != NULL)
    dmq_node_set_member_cb(dmq_uv_node(p->rt), opts->member_cb,
                           opts->member_ud);
  *out = p;
  return 0;
}

int dmq_poll_fd(const dmq_poll_t *p) {
  return p != NULL ? uv_backend_fd(&p->loop) : -1;
}

int dmq_poll_timeout_ms(dmq_poll_t *p) {
  if (p == NULL || p->state == POLL_CLOSED)
    return -1;
  if (p->running)
    return 0;
  uv_update_time(&p->loop);
  dmq_uv_kick(p->rt);
  return uv_backend_timeout(&p->loop);
}

int dmq_poll_run(dmq_poll_t *p) {
  if (p == NULL)
    return DMQ_EINVAL;
  if (p->running)
    return DMQ_EBUSY;
  if (p->state != POLL_CLOSED) {
    p->running = 1;
    uv_run(&p->loop, UV_RUN_NOWAIT);
    p->running = 0;
  }
  return p->state == POLL_CLOSED ? 1 : 0;
}

dmq_node_t *dmq_poll_node(dmq_poll_t *p) {
  return p != NULL && p->rt != NULL ? dmq_uv_node(p->rt) : NULL;
}

uint64_t dmq_poll_now(dmq_poll_t *p) {
  if (p == NULL)
    return 0;
  uv_update_time(&p->loop);
  return uv_now(&p->loop);
}

const char *dmq_poll_addr(const dmq_poll_t *p) {
  return p != NULL ? p->addr : NULL;
}

int dmq_poll_join(dmq_poll_t *p, const char *const *seeds, size_t n) {
  if (p == NULL)
    return DMQ_EINVAL;
  if (p->state != POLL_RUNNING)
    return DMQ_ECLOSED;
  return dmq_uv_join(p->rt, seeds, n);
}

int dmq_poll_set_meta(dmq_poll_t *p, const void *meta, size_t len) {
  if (p == NULL)
    return DMQ_EINVAL;
  if (p->state != POLL_RUNNING)
    return DMQ_ECLOSED;
  int rc = dmq_node_set_meta(dmq_uv_node(p->rt), meta, len, dmq_poll_now(p));
  dmq_uv_kick(p->rt);
  return rc;
}

static void poll_on_closed(void *ud) {
  dmq_poll_t *p = ud;
  p->rt = NULL;
  p->state = POLL_CLOSED;
}

int dmq_poll_leave(dmq_poll_t *p) {
  if (p == NULL)
    return DMQ_EINVAL;
  if (p->state != POLL_RUNNING)
    return DMQ_ECLOSED;
  p->state = POLL_LEAVING;
  dmq_uv_close(p->rt, p->flush_ms, poll_on_closed, p);
  return 0;
}

int dmq_poll_close(dmq_poll_t *p) {
  if (p == NULL)
    return DMQ_EINVAL;
  if (p->running)
    return DMQ_EBUSY;
  if (p->state == POLL_RUNNING)
    dmq_poll_leave(p);
  p->running = 1;
  /* only our handles are on the loop: uv_run() returns once they closed */
  while (p->state != POLL_CLOSED)
    if (uv_run(&p->loop, UV_RUN_DEFAULT) == 0 && p->state != POLL_CLOSED)
      break; /* not reached: the runtime always calls back */
  p->running = 0;
  poll_loop_finish(&p->loop);
  free(p);
  return 0;
}
