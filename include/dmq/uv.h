/* libdmq - the libuv runtime and the socket transports.
 *
 * Include this header only if you use libuv (it includes <uv.h>).
 *
 * Transports: dmq_udp_transport_new() and dmq_tcp_transport_new() create
 * transports on a loop; bind them with t->ops->bind(), register them with
 * dmq_node_add_transport() and close them with t->ops->close() (they free
 * themselves once every handle is closed, then call t->on_closed).
 *
 * Runtime: dmq_uv_t drives one node on a libuv loop: it owns the node, a UDP
 * and a TCP transport bound to the same port, the timer armed from
 * dmq_node_next_deadline(), and seed resolution (DNS A/AAAA, SRV). All
 * dmq_uv_* calls must be made on the loop's thread.
 */
#ifndef DMQ_UV_H
#define DMQ_UV_H

#include <uv.h>

#include "dmq/dmq.h"
#include "dmq/uv_options.h"

#ifdef __cplusplus
extern "C" {
#endif

DMQ_EXTERN int dmq_udp_transport_new(uv_loop_t *loop, dmq_transport_t **out);
DMQ_EXTERN int dmq_tcp_transport_new(uv_loop_t *loop, dmq_transport_t **out);

typedef struct dmq__uv dmq_uv_t;

/* Create a node on loop. cfg (initialised by dmq_config_init()) and opts
 * (dmq_uv_options_init(), bind set) are copied. cfg->name is required;
 * cfg->advertise_addr, generation (default: wall-clock ms) and rng_seed
 * (default: from hrtime and pid) are filled in when unset. The node is
 * started; call dmq_uv_join() to join. On success *out is set; on error it
 * is NULL: DMQ_EINVAL (NULL or uninitialised arguments, bad addresses),
 * DMQ_ETRANSPORT (bind failed), DMQ_ENOMEM. */
DMQ_EXTERN int dmq_uv_new(uv_loop_t *loop, const dmq_config_t *cfg,
                          const dmq_uv_options_t *opts, dmq_uv_t **out);
DMQ_EXTERN dmq_node_t *dmq_uv_node(dmq_uv_t *rt);
DMQ_EXTERN uv_loop_t *dmq_uv_loop(dmq_uv_t *rt);
/* Advertised address, e.g. "udp://127.0.0.1:7946". */
DMQ_EXTERN const char *dmq_uv_addr(dmq_uv_t *rt);
/* Join through seeds: addresses ("udp://h:p", "h:p") or DNS names ("name",
 * "name:port"; A/AAAA records, each one a seed; "_dmq._udp.domain" for SRV).
 * Names are re-resolved every dns_refresh_ms. At most DMQ_MAX_SEEDS seeds
 * (DMQ_ELIMIT beyond). */
DMQ_EXTERN int dmq_uv_join(dmq_uv_t *rt, const char *const *seeds, size_t n);
/* Call after changing the node from outside a libdmq callback (e.g. after
 * dmq_node_set_meta) so that the timer is re-armed at once. Cheap. */
DMQ_EXTERN void dmq_uv_kick(dmq_uv_t *rt);
/* Graceful: leave, wait until the leave is gossiped (at most
 * flush_timeout_ms), then close. cb runs once everything is closed and
 * freed; the loop then has no handles of ours left. */
DMQ_EXTERN void dmq_uv_close(dmq_uv_t *rt, uint32_t flush_timeout_ms,
                             void (*cb)(void *ud), void *ud);

/* Socket transports on a socket the host opened, instead of t->ops->bind()
 * (the socket is made non-blocking; UDP buffers are raised as after bind):
 * t from dmq_udp_transport_new() takes a bound UDP socket (uv_udp_open),
 * t from dmq_tcp_transport_new() a bound, listening TCP socket (uv_tcp_open,
 * then accepting as after bind). The transport works on its own duplicate
 * of fd (F_DUPFD_CLOEXEC), closed with the transport; the caller keeps fd.
 * local_addr() then gives the socket's getsockname(). Returns 0,
 * DMQ_EINVAL (t not a transport of that kind; fd not open, not a socket,
 * of the wrong type, not bound to a port, or, for TCP, not listening),
 * DMQ_ESTATE (already bound or opened), DMQ_ECLOSED (after close),
 * DMQ_ENOMEM, or DMQ_ETRANSPORT (libuv refused the socket). On error t is
 * unchanged and may still be bound or closed. */
DMQ_EXTERN int dmq_udp_transport_open(dmq_transport_t *t, int fd);
DMQ_EXTERN int dmq_tcp_transport_open(dmq_transport_t *t, int fd);

/* ---- stream (TCP) limits and counters (0.3.1) ----
 *
 * Everything a peer can make the TCP transport hold is bounded: a frame
 * split over reads must complete within frame_timeout_ms of its first byte
 * (else the connection is closed), its buffer grows with the bytes that
 * actually arrived (never to the length the header announces) and all
 * such buffers of a transport together stay within partial_budget bytes;
 * a connection without traffic is closed after idle_timeout_ms (inbound
 * ones after twice that, so that the connecting side normally closes
 * first); at most max_inbound accepted connections are open (at the cap
 * the least recently active idle one is closed to make room, or, when all
 * are busy, the new one is closed at once); at most max_outbound
 * connections are opened by this side (a pool: the least recently used
 * idle one is closed when another destination needs a connection; when
 * none is idle, messages wait for a free slot for up to the connect
 * timeout, then fail with DMQ_ETRANSPORT). Running out of descriptors
 * (EMFILE/ENFILE) on accept or on the socket of a connect is counted and
 * survived: an idle connection is closed to free a descriptor, or a
 * pending connection is accepted and closed at once with a spare
 * descriptor (so its peer is not left hanging) and accepting pauses with
 * back-off; a connect waits and retries like a full pool. Every send
 * accepted with a cookie still completes exactly once.
 * docs/transports.md has the defaults and what each counter means. */
typedef struct dmq_stream_limits {
  uint32_t size;             /* set by dmq_stream_limits_init() */
  uint32_t frame_timeout_ms; /* default 5000 */
  uint32_t idle_timeout_ms;  /* default 15000 (inbound: twice that) */
  uint32_t max_inbound;      /* default 256 */
  uint32_t max_outbound;     /* default 64 */
  uint64_t partial_budget;   /* bytes, default 64 MiB */
} dmq_stream_limits_t;

/* Use dmq_stream_limits_init(): it passes the caller's sizeof. DMQ_EINVAL
 * for NULL or a size below the 0.3.1 layout. */
DMQ_EXTERN int dmq_stream_limits_init_sized(dmq_stream_limits_t *l,
                                            size_t size);
/* Fill l with the defaults above and set l->size. */
static inline int dmq_stream_limits_init(dmq_stream_limits_t *l) {
  return dmq_stream_limits_init_sized(l, sizeof *l);
}

/* Counters of a TCP transport. Written by dmq_tcp_transport_stats() and
 * dmq_uv_stream_stats(); may grow at the end in later releases. Totals
 * since the transport was created, except the gauges marked "now". */
typedef struct dmq_stream_stats {
  uint32_t size; /* ignored on input; the library's sizeof on output */
  uint32_t reserved;
  uint64_t frame_timeouts;   /* closed: a frame did not complete in time */
  uint64_t idle_closes;      /* closed after idle_timeout_ms without traffic */
  uint64_t oversize_frames;  /* closed: a header announced more than the mtu */
  uint64_t budget_drops;     /* closed: partial_budget would be exceeded */
  uint64_t inbound_rejected; /* accepted and closed at once at max_inbound */
  uint64_t inbound_evicted;  /* idle inbound closed to make room */
  uint64_t pool_evictions;   /* idle outbound closed for another destination */
  uint64_t connect_deferred; /* connect attempts postponed (pool, EMFILE) */
  uint64_t emfile_accept;    /* accept failed with EMFILE/ENFILE */
  uint64_t emfile_connect;   /* socket() for a connect: EMFILE/ENFILE */
  uint64_t emfile_shed;      /* idle connections closed to free a descriptor */
  uint64_t accept_refused;   /* accepted and closed with the spare descriptor */
  uint64_t accept_errors;    /* other accept failures */
  uint64_t inbound;          /* now: open accepted connections */
  uint64_t outbound;         /* now: open or connecting outbound ones */
  uint64_t partial_bytes;    /* now: bytes held by partial frames */
  uint64_t partial_peak;     /* highest partial_bytes seen */
} dmq_stream_stats_t;

/* Limits of a TCP transport t (from dmq_tcp_transport_new()); they apply
 * to what happens next (open connections are not closed to meet a lower
 * cap at once). l is copied. DMQ_EINVAL: t not a TCP transport, l NULL or
 * not initialised, or a field 0. DMQ_ECLOSED after close. On the loop's
 * thread, at any time (inside libdmq callbacks too). */
DMQ_EXTERN int dmq_tcp_transport_set_limits(dmq_transport_t *t,
                                            const dmq_stream_limits_t *l);
/* Use dmq_tcp_transport_stats(). DMQ_EINVAL: t not a TCP transport, out
 * NULL or size below the 0.3.1 layout; at most size bytes written. */
DMQ_EXTERN int dmq_tcp_transport_stats_sized(dmq_transport_t *t,
                                             dmq_stream_stats_t *out,
                                             size_t size);
static inline int dmq_tcp_transport_stats(dmq_transport_t *t,
                                          dmq_stream_stats_t *out) {
  return dmq_tcp_transport_stats_sized(t, out, sizeof *out);
}

/* The same for the runtime's TCP transport. DMQ_EINVAL (rt or l/out NULL,
 * bad l), DMQ_ESTATE (no TCP transport: no_tcp), DMQ_ECLOSED (closing).
 * On the loop's thread; allowed inside libdmq callbacks. */
DMQ_EXTERN int dmq_uv_set_stream_limits(dmq_uv_t *rt,
                                        const dmq_stream_limits_t *l);
DMQ_EXTERN int dmq_uv_stream_stats_sized(dmq_uv_t *rt, dmq_stream_stats_t *out,
                                         size_t size);
static inline int dmq_uv_stream_stats(dmq_uv_t *rt, dmq_stream_stats_t *out) {
  return dmq_uv_stream_stats_sized(rt, out, sizeof *out);
}

#ifdef __cplusplus
}
#endif
#endif
