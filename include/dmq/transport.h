/* libdmq - transport vtable.
 *
 * A transport moves opaque byte strings between addresses. libdmq never opens
 * a socket itself: it calls ops->send() and a transport hands received bytes
 * back with dmq_node_recv(). A transport instance is a dmq_transport_t that the
 * implementation embeds (or allocates) and registers with
 * dmq_node_add_transport(); the node does not own it.
 *
 * Lifecycle of a transport created by one of the dmq_*_transport_new()
 * constructors (see dmq/uv.h and dmq/host.h):
 *   new -> set the owner hooks below -> ops->bind() (socket transports) ->
 *   send/receive ... -> ops->close() -> on_closed hook -> memory freed by the
 *   transport. After close, send() returns DMQ_ECLOSED and every send that
 *   was accepted with a cookie completes exactly once (with DMQ_ECLOSED if
 *   it had not gone out yet), never from inside send(). Transports that run
 *   on an event loop (udp, tcp) complete from the loop, after close()
 *   returned; transports without a loop of their own (host, the simulator)
 *   complete what is pending inside close(), before on_closed.
 *
 * Addresses are strings "<scheme>://<authority>" (for example
 * "udp://127.0.0.1:7946", "tcp://[::1]:7946", "sim://17") or "host:<opaque>".
 * A member advertises one address; when the core needs the reliable class
 * (push/pull, large payloads) it uses a registered transport with
 * DMQ_TRANSPORT_RELIABLE, keeping the authority part: udp://h:p -> tcp://h:p.
 */
#ifndef DMQ_TRANSPORT_H
#define DMQ_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "dmq/version.h"

#ifdef __cplusplus
extern "C" {
#endif

struct dmq__node;
typedef struct dmq__transport dmq_transport_t;

enum dmq_transport_caps {
  DMQ_TRANSPORT_DATAGRAM = 1u << 0, /* unreliable, bounded by mtu */
  DMQ_TRANSPORT_RELIABLE = 1u << 1  /* ordered, reliable, large payloads */
};

/* The operations of a transport: a table the implementation fills, usually
 * a static const one:
 *
 *   static const dmq_transport_ops_t my_ops = {
 *       .size = sizeof(dmq_transport_ops_t),  // required
 *       .scheme = "my", .caps = DMQ_TRANSPORT_DATAGRAM, .send = my_send};
 *
 * size is sizeof(dmq_transport_ops_t) in the implementation's headers: the
 * library never reads an operation past it (operations added by later
 * releases are then taken as NULL), and dmq_node_add_transport() refuses a
 * table smaller than the 0.3.0 layout (size 0 included) with DMQ_EINVAL. */
typedef struct dmq__transport_ops {
  uint32_t size;      /* sizeof(dmq_transport_ops_t), see above */
  const char *scheme; /* "udp", "tcp", "sim", "host" */
  uint32_t caps;      /* dmq_transport_caps */
  /* Send len bytes to addr. buf is borrowed for the duration of the call: the
   * transport copies what it keeps. Returns 0 when accepted, DMQ_ETOOBIG when
   * len exceeds what the transport carries, DMQ_EADDR for an address it
   * cannot parse, DMQ_ECLOSED after close, another negative code otherwise.
   * When it returns 0 and cookie is not NULL, the transport later calls
   * dmq_transport_send_done(t, cookie, status) exactly once. A send
   * accepted without a cookie that fails later (a batched datagram the
   * kernel refused, a stream frame whose connection failed) is reported
   * with dmq_transport_send_done(t, NULL, status < 0), at most once and
   * never for DMQ_ECLOSED, so that the node counts it
   * (DMQ_DROP_TX_FAILED). */
  int (*send)(dmq_transport_t *t, const char *addr, const void *buf, size_t len,
              void *cookie);
  /* Stop using the transport: pending sends complete with DMQ_ECLOSED,
   * resources are released, then the on_closed hook runs (after which a
   * transport made by a constructor frees itself). May be NULL. */
  void (*close)(dmq_transport_t *t);
  /* Start receiving on addr ("udp://0.0.0.0:0" style; port 0 = any). May be
   * NULL for transports that do no I/O. DMQ_EADDR for a bad address,
   * DMQ_ETRANSPORT when the socket cannot be bound, DMQ_ESTATE if bound. */
  int (*bind)(dmq_transport_t *t, const char *addr);
  /* The bound address with the real port, e.g. "udp://127.0.0.1:40123".
   * DMQ_ESTATE before bind, DMQ_ETOOBIG if buf is too small. May be NULL. */
  int (*local_addr)(dmq_transport_t *t, char *buf, size_t len);
  /* Hand what the transport batched to the network now. A driver calls it
   * after dmq_node_tick() (the burst of sends of one tick is over); a
   * transport that batches must still send on its own later if nobody
   * calls it. Not called after close(). May be NULL (nothing batched). */
  void (*flush)(dmq_transport_t *t);
} dmq_transport_ops_t;

/* A transport instance, embedded or allocated by the implementation. Its
 * layout is fixed for a soname (implementations embed it): it never grows
 * without a new soname. */
struct dmq__transport {
  const dmq_transport_ops_t *ops;
  void *impl;             /* implementation's private state */
  struct dmq__node *node; /* set by dmq_node_add_transport() */
  size_t mtu;             /* largest payload send() accepts */
  /* Owner hooks, set by whoever drives the node (the libuv runtime, a test).
   * The transport calls them through dmq_transport_recv() and
   * dmq_transport_send_done(). from and buf are borrowed for the call. */
  void (*on_recv)(dmq_transport_t *t, const char *from, const void *buf,
                  size_t len);
  void (*on_send_done)(dmq_transport_t *t, void *cookie, int status);
  void (*on_closed)(dmq_transport_t *t);
  void *owner;
};

/* Called by a transport for every received message: forwards to on_recv
 * (drops silently when no hook is set). */
DMQ_EXTERN void dmq_transport_recv(dmq_transport_t *t, const char *from,
                                   const void *buf, size_t len);

/* Called by a transport when a send accepted with a non-NULL cookie has
 * finished (status 0 = handed to the network, or a negative code), or when
 * one accepted without a cookie failed later (cookie NULL, status < 0).
 * Forwards to on_send_done when set, else to the node the transport is
 * attached to, which counts a failure as DMQ_DROP_TX_FAILED. */
DMQ_EXTERN void dmq_transport_send_done(dmq_transport_t *t, void *cookie,
                                        int status);

#ifdef __cplusplus
}
#endif
#endif
