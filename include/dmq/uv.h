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

#ifdef __cplusplus
}
#endif
#endif
