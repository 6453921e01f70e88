/* libdmq - poll adapter: a node driven from any event loop.
 *
 * For programs with their own event loop (poll/epoll/select, GLib, Qt, a
 * game loop, ...) that want libdmq on their thread without libuv being their
 * loop. A dmq_poll_t owns a private libuv loop with a dmq_uv_t runtime
 * (dmq/uv.h) and exposes it the way libuv can be embedded:
 *
 *   for (;;) {
 *     int fd = dmq_poll_fd(p);                // fixed for p's lifetime
 *     int timeout = dmq_poll_timeout_ms(p);   // -1: no deadline of ours
 *     ... wait until fd is readable or timeout ms pass (with the program's
 *         own descriptors and timers) ...
 *     dmq_poll_run(p);                        // after EVERY wakeup
 *   }
 *
 * The descriptor (libuv's backend fd, an epoll/kqueue descriptor) becomes
 * readable when any of the loop's sockets or internal wakeups has work; it
 * is level-triggered, so a wakeup that is not followed by dmq_poll_run()
 * wakes again at once. Timers are not visible through it: that is what the
 * timeout is for. Always call dmq_poll_run() after a wakeup (readable or
 * timed out; a spurious call is cheap) and before asking for the next
 * timeout. This header does not need <uv.h>.
 *
 * Threading: a dmq_poll_t is not thread safe; use it (and its node) from one
 * thread at a time, the host loop's thread. Member callbacks run on that
 * thread, inside dmq_poll_run() (or dmq_poll_close()).
 *
 * Errors: 0 or a negative dmq_err_t (dmq/error.h).
 */
#ifndef DMQ_POLL_H
#define DMQ_POLL_H

#include <stddef.h>
#include <stdint.h>

#include "dmq/dmq.h"
#include "dmq/uv_options.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dmq__poll dmq_poll_t;

typedef struct dmq__poll_options {
  /* sizeof(dmq_poll_options_t) in the caller's headers, set by
   * dmq_poll_options_init(): the library reads no further (dmq/dmq.h,
   * "Growable structs"). */
  uint32_t size;
  /* Sockets (dmq/uv_options.h), initialised by dmq_poll_options_init():
   * uv.bind is required, or host-opened sockets with uv.use_fds, uv.udp_fd
   * and uv.tcp_fd (duplicated: the caller keeps its descriptors; DMQ_EINVAL
   * for a bad one). */
  dmq_uv_options_t uv;
  /* dmq_poll_leave()/dmq_poll_close(): at most this long to gossip the
   * leave; 0: 1000. */
  uint32_t flush_timeout_ms;
  /* Member events (may be NULL): set on the node at creation, so that no
   * event is missed. Runs inside dmq_poll_run() on the caller's thread,
   * under the node's callback rules (dmq/node.h). Inside it, dmq_poll_run()
   * and dmq_poll_close() return DMQ_EBUSY; dmq_poll_leave() is allowed. */
  dmq_member_cb member_cb;
  void *member_ud;
} dmq_poll_options_t;

/* Use dmq_poll_options_init(): it passes the caller's sizeof. DMQ_EINVAL
 * for NULL or a size below the 0.3.0 layout; at most size bytes written. */
DMQ_EXTERN int dmq_poll_options_init_sized(dmq_poll_options_t *o, size_t size);
/* Fill o with the defaults (uv as dmq_uv_options_init(), flush_timeout_ms
 * 1000, no member_cb) and set the sizes. Required before filling in the
 * fields: options with size 0 are refused with DMQ_EINVAL. */
static inline int dmq_poll_options_init(dmq_poll_options_t *o) {
  return dmq_poll_options_init_sized(o, sizeof *o);
}

/* Create the node (cfg as for dmq_uv_new(): name required, the rest filled
 * in; opts initialised by dmq_poll_options_init(), opts->uv.bind set) on a
 * private loop, with its sockets bound: DMQ_EINVAL (bad arguments
 * or addresses), DMQ_ETRANSPORT (address in use, descriptors short, ...),
 * DMQ_ENOMEM. On error nothing is left behind and *out is NULL. */
DMQ_EXTERN int dmq_poll_new(const dmq_config_t *cfg,
                            const dmq_poll_options_t *opts, dmq_poll_t **out);

/* The descriptor to wait on for readability; the same for p's whole life.
 * Do not read, write or close it. -1 for NULL. */
DMQ_EXTERN int dmq_poll_fd(const dmq_poll_t *p);

/* How long the host may wait before calling dmq_poll_run(), in ms: 0 =
 * work is due now, -1 = no deadline (wait for the descriptor only; also
 * returned for NULL and once p has closed). Updates the loop's clock and
 * re-arms the node's timer first, so changes made to the node since the
 * last dmq_poll_run() are taken into account. */
DMQ_EXTERN int dmq_poll_timeout_ms(dmq_poll_t *p);

/* Run everything that is due (I/O, timers, member callbacks) without
 * blocking. Returns 0, or 1 once the node has closed after dmq_poll_leave()
 * (call dmq_poll_close() to free p), DMQ_EBUSY from inside a member
 * callback, DMQ_EINVAL for NULL. */
DMQ_EXTERN int dmq_poll_run(dmq_poll_t *p);

/* The node, for queries and changes (dmq/node.h) on p's thread; do not
 * dmq_node_delete() it or replace its member callback. For calls that take
 * `now`, use dmq_poll_now(). NULL once the node has closed (after
 * dmq_poll_leave() completed): do not keep the pointer across
 * dmq_poll_run() calls after dmq_poll_leave(). */
DMQ_EXTERN dmq_node_t *dmq_poll_node(dmq_poll_t *p);
/* The node's clock (monotonic ms), updated. */
DMQ_EXTERN uint64_t dmq_poll_now(dmq_poll_t *p);
/* Advertised address ("udp://127.0.0.1:7946"), valid until dmq_poll_close. */
DMQ_EXTERN const char *dmq_poll_addr(const dmq_poll_t *p);

/* dmq_uv_join(): seeds are addresses or DNS names (copied). DMQ_ECLOSED
 * after dmq_poll_leave(). */
DMQ_EXTERN int dmq_poll_join(dmq_poll_t *p, const char *const *seeds, size_t n);
/* dmq_node_set_meta() with the node's clock. DMQ_ECLOSED after leave. */
DMQ_EXTERN int dmq_poll_set_meta(dmq_poll_t *p, const void *meta, size_t len);

/* Start a graceful leave without blocking: the leave is gossiped (at most
 * flush_timeout_ms) while the host keeps driving p; dmq_poll_run() returns 1
 * once everything is closed. DMQ_ECLOSED if already leaving or closed. */
DMQ_EXTERN int dmq_poll_leave(dmq_poll_t *p);

/* Finish: leave if not done yet, run the private loop (blocking, up to about
 * flush_timeout_ms) until the node and every handle have closed, close the
 * loop and free p. Returns 0; DMQ_EBUSY inside a member callback (nothing
 * done); DMQ_EINVAL for NULL. p is freed on return 0: any further use, a
 * second close included, is a use after free (as with free()). */
DMQ_EXTERN int dmq_poll_close(dmq_poll_t *p);

#ifdef __cplusplus
}
#endif
#endif
