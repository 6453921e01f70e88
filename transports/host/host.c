/* libdmq - the host transport: the application carries the bytes.
 *
 * Some hosts already move messages between their processes (pipes, a bus,
 * an RPC layer) and want libdmq to ride on that instead of opening sockets.
 * This transport does no I/O at all: send() hands the message to a host
 * callback, and the host pushes received messages in with
 * dmq_host_transport_input(). Having no event loop, it cannot deliver send
 * completions "later from the loop" like the socket transports do, so it
 * queues them and delivers them on the host's next call into the transport
 * (input or flush), never inside send(). The queue is consumed from the
 * front one entry at a time, so a completion callback that sends, flushes
 * or closes again still sees every completion exactly once.
 */
#include <stdlib.h>
#include <string.h>

#include "dmq/host.h"

#define HOST_SCHEME "host"
#define HOST_PREFIX "host:"
#define HOST_PREFIX_LEN (sizeof(HOST_PREFIX) - 1)
/* First allocation of the completion queue (entries). */
#define HOST_QUEUE_INITIAL 16

typedef struct host_done {
  void *cookie;
  int status;
} host_done_t;

typedef struct host_transport {
  dmq_transport_t t; /* first: a dmq_transport_t * is a host_transport * */
  dmq_host_send_fn fn;
  void *ud;
  host_done_t *q; /* pending completions: q[head..tail) */
  size_t head, tail, cap;
  int depth;         /* nesting of our calls into host/owner callbacks */
  int closed;        /* close() was called: send/input refuse */
  int close_pending; /* close() ran inside a callback: finish on unwind */
} host_transport_t;

static int host_send(dmq_transport_t *t, const char *addr, const void *buf,
                     size_t len, void *cookie);
static void host_close(dmq_transport_t *t);

static const dmq_transport_ops_t host_ops = {
    .size = sizeof(dmq_transport_ops_t),
    .scheme = HOST_SCHEME,
    .caps = DMQ_TRANSPORT_DATAGRAM | DMQ_TRANSPORT_RELIABLE,
    .send = host_send,
    .close = host_close,
    .bind = NULL,
    .local_addr = NULL,
};

static host_transport_t *host_of(dmq_transport_t *t) {
  return (t != NULL && t->ops == &host_ops) ? (host_transport_t *)t : NULL;
}

/* Make room for one more completion (so that an accepted send can always
 * be completed). */
static int host_reserve(host_transport_t *h) {
  if (h->tail < h->cap)
    return 0;
  if (h->head > 0) {
    memmove(h->q, h->q + h->head, (h->tail - h->head) * sizeof(*h->q));
    h->tail -= h->head;
    h->head = 0;
    return 0;
  }
  size_t nc = h->cap ? h->cap * 2 : HOST_QUEUE_INITIAL;
  host_done_t *nq = realloc(h->q, nc * sizeof(*nq));
  if (nq == NULL)
    return DMQ_ENOMEM;
  h->q = nq;
  h->cap = nc;
  return 0;
}

/* Deliver at most `max` completions from the front of the queue, each
 * removed before its callback runs. status < 0 overrides their status. */
static void host_deliver(host_transport_t *h, size_t max, int status) {
  for (size_t i = 0; i < max && h->head < h->tail; i++) {
    if (status >= 0 && h->closed)
      break; /* closed from a callback: the rest complete with ECLOSED */
    host_done_t d = h->q[h->head++];
    if (h->head == h->tail)
      h->head = h->tail = 0;
    dmq_transport_send_done(&h->t, d.cookie, status < 0 ? status : d.status);
  }
}

static void host_finish_close(host_transport_t *h) {
  h->depth++;
  /* send() refuses now, so the queue cannot grow while it drains */
  host_deliver(h, (size_t)-1, DMQ_ECLOSED);
  if (h->t.on_closed != NULL)
    h->t.on_closed(&h->t);
  free(h->q);
  free(h);
}

/* Leave one of our calls; finish a close requested from inside it. */
static void host_unwind(host_transport_t *h) {
  if (--h->depth == 0 && h->close_pending) {
    h->close_pending = 0;
    host_finish_close(h);
  }
}

static int host_send(dmq_transport_t *t, const char *addr, const void *buf,
                     size_t len, void *cookie) {
  host_transport_t *h = host_of(t);
  if (h == NULL || (buf == NULL && len > 0))
    return DMQ_EINVAL;
  if (h->closed)
    return DMQ_ECLOSED;
  if (addr == NULL || strncmp(addr, HOST_PREFIX, HOST_PREFIX_LEN) != 0)
    return DMQ_EADDR;
  if (len > t->mtu)
    return DMQ_ETOOBIG;
  if (cookie != NULL && host_reserve(h) != 0)
    return DMQ_ENOMEM;
  h->depth++;
  int rc = h->fn(h->ud, addr, buf, len);
  int closed = h->closed;
  if (rc == 0 && cookie != NULL && !closed) {
    h->q[h->tail].cookie = cookie;
    h->q[h->tail].status = 0;
    h->tail++;
  }
  host_unwind(h);
  if (rc > 0)
    rc = DMQ_ETRANSPORT; /* not a valid answer from send_fn */
  if (rc == 0 && closed)
    rc = DMQ_ECLOSED; /* closed by send_fn itself: no completion */
  return rc;
}

static void host_close(dmq_transport_t *t) {
  host_transport_t *h = host_of(t);
  if (h == NULL || h->closed)
    return;
  h->closed = 1;
  if (h->depth > 0) {
    h->close_pending = 1;
    return;
  }
  host_finish_close(h);
}

int dmq_host_transport_new(dmq_host_send_fn fn, void *ud,
                           dmq_transport_t **out) {
  if (out == NULL)
    return DMQ_EINVAL;
  *out = NULL;
  if (fn == NULL)
    return DMQ_EINVAL;
  host_transport_t *h = calloc(1, sizeof(*h));
  if (h == NULL)
    return DMQ_ENOMEM;
  h->t.ops = &host_ops;
  h->t.impl = h;
  h->t.mtu = DMQ_HOST_DEFAULT_MTU;
  h->fn = fn;
  h->ud = ud;
  *out = &h->t;
  return 0;
}

int dmq_host_transport_set_mtu(dmq_transport_t *t, size_t mtu) {
  if (host_of(t) == NULL || mtu == 0)
    return DMQ_EINVAL;
  t->mtu = mtu;
  return 0;
}

int dmq_host_transport_input(dmq_transport_t *t, const char *from,
                             const void *buf, size_t len) {
  host_transport_t *h = host_of(t);
  if (h == NULL || (buf == NULL && len > 0))
    return DMQ_EINVAL;
  if (h->closed)
    return DMQ_ECLOSED;
  h->depth++;
  /* only what was queued before this call: completions queued by the
   * callbacks below wait for the next call */
  host_deliver(h, h->tail - h->head, 0);
  if (!h->closed)
    dmq_transport_recv(t, from, buf, len);
  host_unwind(h);
  return 0;
}

int dmq_host_transport_flush(dmq_transport_t *t) {
  host_transport_t *h = host_of(t);
  if (h == NULL)
    return DMQ_EINVAL;
  if (h->closed)
    return DMQ_ECLOSED;
  h->depth++;
  host_deliver(h, h->tail - h->head, 0);
  host_unwind(h);
  return 0;
}
