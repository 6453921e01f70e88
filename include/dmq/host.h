/* libdmq - the host transport: the application carries the bytes.
 *
 * For hosts that already have a channel between their processes (a pipe, a
 * message bus, an RPC layer, an in-memory queue in a test) and want libdmq
 * to use it instead of sockets. Needs no event loop and no libuv.
 *
 * Addresses are "host:<anything>" (for example "host:worker-3"); libdmq
 * never parses the part after "host:" and hands the whole string to the
 * host unchanged. Capabilities: DMQ_TRANSPORT_DATAGRAM | RELIABLE: the host
 * is expected to deliver each message whole (it may still lose some; the
 * protocol copes). send() accepts messages up to t->mtu bytes
 * (DMQ_HOST_DEFAULT_MTU unless changed with dmq_host_transport_set_mtu());
 * push/pull messages grow with the cluster (about 100 bytes per member), so
 * raise the mtu if the host can carry more and the cluster is large.
 *
 * Usage:
 *   dmq_transport_t *t;
 *   dmq_host_transport_new(my_send, my_ctx, &t);
 *   t->owner = me; t->on_recv = my_on_recv;  // calls dmq_node_recv(...)
 *   dmq_node_add_transport(node, t);
 *   ... my_send() is called for every outgoing message; for every message
 *   ... that arrives, call dmq_host_transport_input(t, from, buf, len).
 *   dmq_node_delete(node);                   // stop the node first
 *   t->ops->close(t);                        // frees t
 *
 * Callback rules:
 *   - send_fn runs synchronously inside the node's call that sends (recv,
 *     tick, join, leave, ...). dst and buf are borrowed for the duration of
 *     the call: copy what you keep. Return 0 when the message was taken, or
 *     a negative DMQ_E* code (returned by send() as the failure). send_fn
 *     must not call back into the node or this transport.
 *   - on_recv (the owner hook) runs inside dmq_host_transport_input().
 *   - Completions of sends made with a cookie (status 0) are never delivered
 *     inside send(): they are queued and delivered at the start of the next
 *     dmq_host_transport_input() or dmq_host_transport_flush() call, exactly
 *     once each. A host that sends with cookies should call
 *     dmq_host_transport_flush() after every call into the node.
 *   - close() delivers completions still queued with DMQ_ECLOSED (the bytes
 *     were handed to the host, but their fate is not known), then calls
 *     the on_closed hook, then frees the transport: t is invalid once
 *     close() returns. Inside those callbacks send() and input() return
 *     DMQ_ECLOSED. close() may also be called from inside a callback of this
 *     transport; the transport is then freed when that callback returns.
 *
 * Threading: one thread at a time, like the node it serves.
 */
#ifndef DMQ_HOST_H
#define DMQ_HOST_H

#include <stddef.h>

#include "dmq/error.h"
#include "dmq/transport.h"
#include "dmq/version.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DMQ_HOST_DEFAULT_MTU (64u * 1024u)

/* Deliver len bytes of buf to dst ("host:..."). See the rules above. */
typedef int (*dmq_host_send_fn)(void *ud, const char *dst, const void *buf,
                                size_t len);

/* Create a host transport. fn is required; ud is passed to it. On success
 * *out is the transport (owned by the caller until ops->close()). Returns
 * DMQ_EINVAL or DMQ_ENOMEM. */
DMQ_EXTERN int dmq_host_transport_new(dmq_host_send_fn fn, void *ud,
                                      dmq_transport_t **out);

/* Largest message send() accepts (>= 1). DMQ_EINVAL for 0 or a transport
 * that is not a host transport. */
DMQ_EXTERN int dmq_host_transport_set_mtu(dmq_transport_t *t, size_t mtu);

/* Hand a received message to libdmq: delivers queued completions, then
 * calls the on_recv hook with (from, buf, len). from is the sender's
 * address ("host:...", may be NULL when unknown); from and buf are borrowed
 * for the call. Returns 0, DMQ_EINVAL, or DMQ_ECLOSED inside close(). */
DMQ_EXTERN int dmq_host_transport_input(dmq_transport_t *t, const char *from,
                                        const void *buf, size_t len);

/* Deliver queued completions now. Returns 0, DMQ_EINVAL or DMQ_ECLOSED. */
DMQ_EXTERN int dmq_host_transport_flush(dmq_transport_t *t);

#ifdef __cplusplus
}
#endif
#endif
