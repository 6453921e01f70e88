/* libdmq - thread adapter: one node running in a thread of its own.
 *
 * For programs that do not use libuv (or do not want libdmq on their event
 * loop): dmq_thread_new() starts a dedicated thread (the "library thread")
 * that owns a private libuv loop and a dmq_uv_t runtime (dmq/uv.h). The
 * program talks to it from any of its threads through the functions below;
 * they are implemented with a mutex-protected command queue and a uv_async_t
 * that wakes the library thread. This header does not need <uv.h>.
 *
 * Threading rules (docs/embedding.md has the long version):
 *   - Every dmq_thread_* function may be called from any thread, several
 *     threads at once, except dmq_thread_close(), which must be the last
 *     call made on the handle (see there) and must not be made on the
 *     library thread.
 *   - "Synchronous" functions (join, set_meta, members, stats, call_sync)
 *     queue a command and wait until the library thread has run it. Called
 *     on the library thread itself (from a member callback or a function
 *     run by dmq_thread_call) they run inline instead, under the node's
 *     callback rules (dmq/node.h: e.g. dmq_thread_join() returns DMQ_EBUSY
 *     inside a member callback). A synchronous call made from the library
 *     thread of another dmq_thread_t blocks that thread until this one
 *     answers: never let two library threads wait on each other.
 *   - The dmq_node_t itself is only ever touched on the library thread:
 *     use it from dmq_thread_call() functions and member callbacks only.
 *
 * Member events, two ways (both may be enabled):
 *   - member_cb (options): called on the library thread. It must not block
 *     and must not call dmq_thread_close(); the member info is borrowed for
 *     the call (dmq/node.h).
 *   - event queue (options.event_queue): each event is copied into a
 *     dmq_thread_event_t and queued; dmq_thread_event_fd() is readable
 *     whenever the queue is not empty, and dmq_thread_next_event() pops
 *     events on the host's thread.
 *
 * Errors: 0 or a negative dmq_err_t (dmq/error.h); DMQ_EINVAL for a NULL
 * handle or a bad argument; DMQ_ECLOSED once dmq_thread_close() has started.
 */
#ifndef DMQ_THREAD_H
#define DMQ_THREAD_H

#include <stddef.h>
#include <stdint.h>

#include "dmq/dmq.h"
#include "dmq/uv_options.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dmq__thread dmq_thread_t;

/* A member, copied: owns all its bytes (no borrowed pointer). Handed to the
 * dmq_thread_members() callback and part of dmq_thread_event_t. May grow
 * at the end in later releases: do not copy it by value into storage
 * another version of libdmq reads. */
typedef struct dmq__thread_member {
  char name[DMQ_MAX_NAME + 1]; /* NUL-terminated */
  char addr[DMQ_MAX_ADDR + 1]; /* NUL-terminated, e.g. "udp://10.0.0.1:7946" */
  dmq_member_state_t state;
  uint64_t incarnation;
  uint64_t generation;
  uint64_t state_since; /* node time (ms) of the last state change */
  int is_self;
  size_t meta_len;
  unsigned char meta[DMQ_MAX_META];
} dmq_thread_member_t;

/* A member event, copied (event queue), written by dmq_thread_next_event()
 * (at most the caller's sizeof). May grow at the end in later releases. */
typedef struct dmq__thread_event {
  dmq_member_event_t kind;
  dmq_thread_member_t member; /* the member as of the event */
  /* Events dropped just before this one because the queue was full
   * (options.max_events) or memory ran out. After a loss, resynchronise
   * with dmq_thread_members(). */
  uint64_t lost;
} dmq_thread_event_t;

typedef struct dmq__thread_options {
  /* sizeof(dmq_thread_options_t) in the caller's headers, set by
   * dmq_thread_options_init(): the library reads no further (dmq/dmq.h,
   * "Growable structs"). */
  uint32_t size;
  /* Sockets (dmq/uv_options.h), initialised by dmq_thread_options_init():
   * uv.bind is required, or host-opened sockets with uv.use_fds, uv.udp_fd
   * and uv.tcp_fd (duplicated: the caller keeps its descriptors; DMQ_EINVAL
   * for a bad one). */
  dmq_uv_options_t uv;
  /* dmq_thread_close(): at most this long to gossip the leave; 0: 1000. */
  uint32_t flush_timeout_ms;
  /* Member events on the library thread (may be NULL). */
  dmq_member_cb member_cb;
  void *member_ud;
  /* Non-zero: queue copied events for dmq_thread_next_event(). */
  int event_queue;
  /* Queue bound; when full the oldest event is dropped (counted in the
   * next event's `lost`). 0: 1024. */
  size_t max_events;
} dmq_thread_options_t;

/* Use dmq_thread_options_init(): it passes the caller's sizeof. DMQ_EINVAL
 * for NULL or a size below the 0.3.0 layout; at most size bytes written. */
DMQ_EXTERN int dmq_thread_options_init_sized(dmq_thread_options_t *o,
                                             size_t size);
/* Fill o with the defaults (uv as dmq_uv_options_init(), flush_timeout_ms
 * 1000, no member_cb, no event queue, max_events 1024) and set the sizes.
 * Required before filling in the fields: options with size 0 are refused
 * with DMQ_EINVAL. */
static inline int dmq_thread_options_init(dmq_thread_options_t *o) {
  return dmq_thread_options_init_sized(o, sizeof *o);
}

/* Create the node (cfg as for dmq_uv_new(): name required, the rest filled
 * in; opts initialised by dmq_thread_options_init(), opts->uv.bind set)
 * with its sockets bound, then start the library thread. Binding
 * happens before this returns, so bind errors are reported here: DMQ_EINVAL
 * (bad arguments, bad bind/advertise address), DMQ_ETRANSPORT (address in
 * use, ...), DMQ_ENOMEM (memory, thread or descriptors short). On error
 * nothing is left behind and *out is NULL. Signals are blocked in the
 * library thread. Any thread. */
DMQ_EXTERN int dmq_thread_new(const dmq_config_t *cfg,
                              const dmq_thread_options_t *opts,
                              dmq_thread_t **out);

/* Advertised address ("udp://127.0.0.1:7946"): fixed at creation, valid
 * until close. Any thread, never blocks. */
DMQ_EXTERN const char *dmq_thread_addr(const dmq_thread_t *th);

/* dmq_uv_join() on the library thread (seeds are copied before this
 * returns). Synchronous. */
DMQ_EXTERN int dmq_thread_join(dmq_thread_t *th, const char *const *seeds,
                               size_t n);

/* dmq_node_set_meta() on the library thread (meta copied, <= DMQ_MAX_META
 * bytes: DMQ_ETOOBIG otherwise). Synchronous. */
DMQ_EXTERN int dmq_thread_set_meta(dmq_thread_t *th, const void *meta,
                                   size_t len);

/* Snapshot the member table (self included) on the library thread, then
 * call cb(member, ud) for each member on the calling thread, with no lock
 * held, until cb returns non-zero. The member pointer is valid during the
 * call only. Returns the number of members in the snapshot (>= 1), or an
 * error (cb not called). Synchronous. */
DMQ_EXTERN int
dmq_thread_members(dmq_thread_t *th,
                   int (*cb)(const dmq_thread_member_t *m, void *ud), void *ud);

/* Use dmq_thread_stats(): it passes the caller's sizeof (as
 * dmq_node_stats_sized()). */
DMQ_EXTERN int dmq_thread_stats_sized(dmq_thread_t *th, dmq_stats_t *out,
                                      size_t size);
/* dmq_node_stats() on the library thread, copied into *out. Synchronous. */
static inline int dmq_thread_stats(dmq_thread_t *th, dmq_stats_t *out) {
  return dmq_thread_stats_sized(th, out, sizeof *out);
}

/* Run fn(node, ud) on the library thread. fn may use the node freely
 * (dmq/node.h; no dmq_node_delete, no dmq_node_set_member_cb: the adapter
 * owns that slot), take the node time from dmq_thread_now(), and call the
 * dmq_thread_* functions (inline, see above) except dmq_thread_close().
 *
 * dmq_thread_call() queues fn and returns at once: 0 means fn will run
 * exactly once, before the node is closed; ud must stay valid until then.
 * DMQ_ENOMEM or DMQ_ECLOSED: fn will not run.
 * dmq_thread_call_sync() waits until fn has returned. */
DMQ_EXTERN int dmq_thread_call(dmq_thread_t *th,
                               void (*fn)(dmq_node_t *node, void *ud),
                               void *ud);
DMQ_EXTERN int dmq_thread_call_sync(dmq_thread_t *th,
                                    void (*fn)(dmq_node_t *node, void *ud),
                                    void *ud);

/* The node's clock (monotonic ms) for dmq_node_* calls that take `now`.
 * Library thread only (inside fn or member_cb); 0 elsewhere. */
DMQ_EXTERN uint64_t dmq_thread_now(dmq_thread_t *th);

/* Event queue (options.event_queue). The descriptor is readable while the
 * queue holds events; when it polls readable, call dmq_thread_next_event()
 * until it returns 0 (that also resets the descriptor; do not read or close
 * it yourself). -1 if the queue is not enabled. Fixed at creation, valid
 * until close. Any thread, never blocks. */
DMQ_EXTERN int dmq_thread_event_fd(const dmq_thread_t *th);
/* Pop the oldest queued event into *ev (dmq_thread_next_event() passes the
 * caller's sizeof to dmq_thread_next_event_sized(): at most that many bytes
 * are written; DMQ_EINVAL below the 0.3.0 layout): 1 if one was popped, 0
 * if the queue is empty, DMQ_ESTATE if the queue is not enabled. Any thread
 * (one consumer at a time is the sensible use), never waits for the library
 * thread. Events still queued at close are discarded. */
DMQ_EXTERN int dmq_thread_next_event_sized(dmq_thread_t *th,
                                           dmq_thread_event_t *ev, size_t size);
static inline int dmq_thread_next_event(dmq_thread_t *th,
                                        dmq_thread_event_t *ev) {
  return dmq_thread_next_event_sized(th, ev, sizeof *ev);
}

/* Graceful shutdown: leave the cluster, keep running until the leave has
 * been gossiped (at most options.flush_timeout_ms), close every handle, stop
 * and join the library thread, then free everything (queued events
 * included). Blocks for up to about flush_timeout_ms.
 *
 * Returns 0; DMQ_EINVAL for NULL; DMQ_EBUSY on the library thread (from
 * member_cb or a dmq_thread_call function: nothing is done); DMQ_ECLOSED if
 * a close of th is already in progress in another thread.
 *
 * Like free(), close must be the last call on th: the program must make
 * sure its other threads are done with th before calling it. Calls already
 * waiting for the library thread when close starts are answered first
 * (close waits for them), and from then on until the thread stops, calls
 * made on the library thread (member_cb) return DMQ_ECLOSED. Once close has
 * returned, th is freed: any further use, a second close included, is a
 * use after free. */
DMQ_EXTERN int dmq_thread_close(dmq_thread_t *th);

#ifdef __cplusplus
}
#endif
#endif
