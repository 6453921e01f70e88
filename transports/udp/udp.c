/* libdmq - the UDP transport (scheme "udp", DMQ_TRANSPORT_DATAGRAM).
 *
 * Membership traffic is many small datagrams, so this transport is built
 * around the cheap paths:
 *  - receive: the socket is opened with UV_UDP_RECVMMSG and handed one large
 *    buffer, so libuv reads up to UDP_MMSG_BATCH datagrams per recvmmsg(2)
 *    call. The buffer is allocated once and reused: libuv hands it back
 *    (UV_UDP_MMSG_FREE, or a plain callback when recvmmsg is unavailable or
 *    the socket had nothing to read) before it asks for another one.
 *  - send: uv_udp_try_send() first (no copy, no allocation). Only when the
 *    kernel buffer is full (or libuv already has queued sends, which keeps
 *    datagrams in order) is the payload copied into a request from a small
 *    free list and queued with uv_udp_send(); at most UDP_MAX_INFLIGHT of
 *    those exist, beyond that send() says DMQ_EAGAIN.
 *  - completions: a send with a cookie completes from the loop, never from
 *    inside send(): try_send successes are queued and flushed by an idle
 *    handle that only runs while the queue is non-empty.
 * close() closes the handles; queued requests are cancelled by libuv and
 * complete with DMQ_ECLOSED, then on_closed runs and the transport frees
 * itself. The node keeps the statistics; this file keeps none.
 */
#include <stdlib.h>
#include <string.h>

#include "common/addr.h"
#include "dmq/uv.h"
#include "udp/udp.h"

/* Default payload limit: a 1500-byte Ethernet frame minus the IPv6 (40) and
 * UDP (8) headers, with slack for tunnels/encapsulation (VXLAN, WireGuard)
 * so that datagrams are never IP-fragmented on common networks. */
#define UDP_DEFAULT_MTU 1400
/* libuv 1.44 (UV__UDP_DGRAM_MAXSIZE in src/unix/udp.c) slices a recvmmsg
 * buffer into slots of exactly this size, one datagram per slot; a buffer
 * smaller than one slot would make libuv call recvmmsg with no slot at all
 * and spin. */
#define UDP_MMSG_SLOT (64 * 1024)
/* Most datagrams libuv 1.44 reads in one recvmmsg call (UV__MMSG_MAXWIDTH):
 * more slots than this would never be used. */
#define UDP_MMSG_BATCH 20
/* The receive buffer: one slot per datagram of a full batch (1.25 MiB of
 * address space; only the pages datagrams land in are ever touched, about
 * one page per slot for membership-sized datagrams). */
#define UDP_RECV_BUF ((size_t)UDP_MMSG_SLOT * UDP_MMSG_BATCH)
/* Most copied sends queued in libuv at once. Each holds up to an mtu of
 * payload; 1024 is ~1.4 MiB, enough to ride out a full kernel buffer during
 * a gossip burst without letting a stalled socket grow memory unbounded. */
#define UDP_MAX_INFLIGHT 1024
/* Most completions of already-sent datagrams awaiting the next loop turn
 * (16 bytes each). */
#define UDP_MAX_DONE 16384
/* First size of the completion queue; it doubles when full. */
#define UDP_DONE_INITIAL 64
/* Spare send requests kept for reuse instead of being freed. */
#define UDP_FREELIST_MAX 64
/* Socket buffer size asked for (best effort: Linux caps it at
 * net.core.rmem_max/wmem_max). Large buffers absorb gossip bursts. */
#define UDP_SOCKBUF_SIZE (4 * 1024 * 1024)

typedef struct udp_req {
  uv_udp_send_t req; /* first member: the libuv request is the udp_req */
  struct udp_req *next;
  void *cookie;
  size_t cap;
  char data[];
} udp_req_t;

typedef struct udp_done {
  void *cookie;
  int status;
} udp_done_t;

typedef struct udp {
  dmq_transport_t pub;
  uv_loop_t *loop;
  uv_udp_t *sock;    /* NULL until bound */
  int family;        /* of sock */
  uv_idle_t idle;    /* flushes done[] */
  unsigned nhandles; /* handles whose close callback has not run yet */
  int closing;
  char *rbuf; /* receive buffer, allocated on first use */
  int rbuf_busy;
  int queued_only; /* tests: never try_send */
  /* completions waiting for the loop; flushed by swapping with spare so
   * that completions queued by the callbacks wait for the next turn */
  udp_done_t *done, *spare;
  size_t ndone, done_cap, spare_cap;
  size_t inflight; /* udp_req_t handed to uv_udp_send */
  udp_req_t *free_reqs;
  size_t nfree;
  /* one-entry cache: consecutive datagrams often come from one peer */
  struct sockaddr_storage from_sa;
  char from[DMQ__ADDR_STRLEN];
  int from_valid;
  char local[DMQ__ADDR_STRLEN];
} udp_t;

static const dmq_transport_ops_t udp_ops;

/* ---- teardown ---- */

static void udp_done_flush(udp_t *u) {
  udp_done_t *batch = u->done;
  size_t n = u->ndone, cap = u->done_cap;
  u->done = u->spare;
  u->done_cap = u->spare_cap;
  u->ndone = 0;
  u->spare = batch;
  u->spare_cap = cap;
  for (size_t i = 0; i < n; i++)
    dmq_transport_send_done(&u->pub, batch[i].cookie, batch[i].status);
}

static void udp_finish(udp_t *u) {
  /* everything left in done[] was handed to the kernel before close */
  while (u->ndone > 0)
    udp_done_flush(u);
  if (u->pub.on_closed != NULL)
    u->pub.on_closed(&u->pub);
  while (u->free_reqs != NULL) {
    udp_req_t *r = u->free_reqs;
    u->free_reqs = r->next;
    free(r);
  }
  free(u->rbuf);
  free(u->done);
  free(u->spare);
  free(u);
}

static void udp_handle_closed(uv_handle_t *h) {
  udp_t *u = h->data;
  if (h != (uv_handle_t *)&u->idle) {
    if (h == (uv_handle_t *)u->sock)
      u->sock = NULL;
    free(h);
  }
  if (--u->nhandles == 0 && u->closing)
    udp_finish(u);
}

/* ---- completions ---- */

static void udp_idle_cb(uv_idle_t *h) {
  udp_t *u = h->data;
  udp_done_flush(u);
  if (u->ndone == 0)
    uv_idle_stop(h);
}

/* Make room for one more completion before a send is attempted, so that an
 * accepted send can always record its completion. */
static int udp_done_reserve(udp_t *u) {
  if (u->ndone < u->done_cap)
    return 0;
  if (u->ndone >= UDP_MAX_DONE)
    return DMQ_EAGAIN;
  size_t cap = u->done_cap ? u->done_cap * 2 : UDP_DONE_INITIAL;
  udp_done_t *d = realloc(u->done, cap * sizeof(*d));
  if (d == NULL)
    return DMQ_ENOMEM;
  u->done = d;
  u->done_cap = cap;
  return 0;
}

static void udp_done_push(udp_t *u, void *cookie, int status) {
  u->done[u->ndone].cookie = cookie;
  u->done[u->ndone].status = status;
  u->ndone++;
  uv_idle_start(&u->idle, udp_idle_cb);
}

/* ---- receive ---- */

static void udp_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  udp_t *u = h->data;
  (void)suggested; /* libuv suggests one slot; we want a whole batch */
  *buf = uv_buf_init(NULL, 0);
  if (u->rbuf_busy)
    return; /* libuv never asks twice without handing it back */
  if (u->rbuf == NULL && (u->rbuf = malloc(UDP_RECV_BUF)) == NULL)
    return; /* UV_ENOBUFS, retried on the next readable event */
  u->rbuf_busy = 1;
  *buf = uv_buf_init(u->rbuf, (unsigned)UDP_RECV_BUF);
}

static void udp_deliver(udp_t *u, const struct sockaddr *sa, const char *data,
                        size_t len) {
  if (!u->from_valid || !dmq__addr_equal(sa, (struct sockaddr *)&u->from_sa)) {
    socklen_t sl = dmq__addr_len(sa);
    if (sl == 0 || dmq__addr_format(sa, "udp", u->from, sizeof(u->from)) < 0) {
      u->from_valid = 0;
      return;
    }
    memcpy(&u->from_sa, sa, sl);
    u->from_valid = 1;
  }
  dmq_transport_recv(&u->pub, u->from, data, len);
}

static void udp_recv_cb(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf,
                        const struct sockaddr *addr, unsigned flags) {
  udp_t *u = h->data;
  /* nread >= 0 with an address is a datagram (possibly empty); a truncated
   * one (UV_UDP_PARTIAL) cannot be trusted and is dropped. Errors such as
   * ICMP reports are not actionable for a datagram transport. */
  if (nread >= 0 && addr != NULL && !(flags & UV_UDP_PARTIAL) && !u->closing)
    udp_deliver(u, addr, buf->base, (size_t)nread);
  /* A UV_UDP_MMSG_CHUNK callback points into the middle of our buffer;
   * libuv hands the whole buffer back with a final UV_UDP_MMSG_FREE call.
   * Every other callback (plain recvmsg, EAGAIN, error) also ends the use
   * of the buffer. */
  if (flags & UV_UDP_MMSG_CHUNK)
    return;
  if (buf->base == u->rbuf)
    u->rbuf_busy = 0;
}

/* ---- send ---- */

static int udp_uv_err(int uverr) {
  return uverr == UV_EMSGSIZE ? DMQ_ETOOBIG : DMQ_ETRANSPORT;
}

static udp_req_t *udp_req_get(udp_t *u, size_t len) {
  udp_req_t *r = u->free_reqs;
  if (r != NULL && r->cap >= len) {
    u->free_reqs = r->next;
    u->nfree--;
    return r;
  }
  /* sized for the mtu so that the request can be reused for any send */
  size_t cap = len > u->pub.mtu ? len : u->pub.mtu;
  r = malloc(sizeof(*r) + cap);
  if (r != NULL)
    r->cap = cap;
  return r;
}

static void udp_req_put(udp_t *u, udp_req_t *r) {
  if (u->nfree >= UDP_FREELIST_MAX || r->cap < u->pub.mtu) {
    free(r);
    return;
  }
  r->next = u->free_reqs;
  u->free_reqs = r;
  u->nfree++;
}

static void udp_send_cb(uv_udp_send_t *req, int status) {
  udp_req_t *r = (udp_req_t *)req;
  udp_t *u = req->handle->data;
  void *cookie = r->cookie;
  u->inflight--;
  udp_req_put(u, r);
  if (cookie == NULL)
    return;
  int st = 0;
  if (status == UV_ECANCELED)
    st = DMQ_ECLOSED; /* still queued when the handle was closed */
  else if (status < 0)
    st = DMQ_ETRANSPORT;
  dmq_transport_send_done(&u->pub, cookie, st);
}

static int udp_send(dmq_transport_t *t, const char *addr, const void *buf,
                    size_t len, void *cookie) {
  udp_t *u = t->impl;
  struct sockaddr_storage ss;
  if (u->closing)
    return DMQ_ECLOSED;
  if (len > t->mtu || len > UINT32_MAX)
    return DMQ_ETOOBIG;
  if (buf == NULL && len > 0)
    return DMQ_EINVAL;
  if (dmq__addr_parse(addr, "udp", &ss) != 0 ||
      dmq__addr_port((struct sockaddr *)&ss) == 0)
    return DMQ_EADDR;
  if (u->sock == NULL)
    return DMQ_ESTATE;
  if (u->family == AF_INET6)
    dmq__addr_map_v4(&ss); /* IPv4 peer through a dual-stack socket */
  else if (ss.ss_family != AF_INET)
    return DMQ_ETRANSPORT; /* IPv6 peer, IPv4 socket */
  if (cookie != NULL) {
    int rc = udp_done_reserve(u);
    if (rc != 0)
      return rc;
  }

  uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
  int r = u->queued_only
              ? UV_EAGAIN
              : uv_udp_try_send(u->sock, &b, 1, (struct sockaddr *)&ss);
  if (r >= 0) {
    if (cookie != NULL)
      udp_done_push(u, cookie, 0);
    return 0;
  }
  /* EAGAIN: the socket buffer is full or libuv has sends queued (which must
   * go first to keep order); ENOBUFS: the qdisc is full. Queue a copy. */
  if (r != UV_EAGAIN && r != UV_ENOBUFS)
    return udp_uv_err(r);
  if (u->inflight >= UDP_MAX_INFLIGHT)
    return DMQ_EAGAIN;
  udp_req_t *req = udp_req_get(u, len);
  if (req == NULL)
    return DMQ_ENOMEM;
  if (len > 0)
    memcpy(req->data, buf, len);
  req->cookie = cookie;
  b = uv_buf_init(req->data, (unsigned)len);
  r = uv_udp_send(&req->req, u->sock, &b, 1, (struct sockaddr *)&ss,
                  udp_send_cb);
  if (r != 0) {
    udp_req_put(u, req);
    return udp_uv_err(r);
  }
  u->inflight++;
  return 0;
}

/* ---- bind, local_addr, close ---- */

static int udp_bind(dmq_transport_t *t, const char *addr) {
  udp_t *u = t->impl;
  struct sockaddr_storage ss;
  struct sockaddr_storage name;
  int namelen = (int)sizeof(name);
  if (u->closing)
    return DMQ_ECLOSED;
  if (u->sock != NULL)
    return DMQ_ESTATE;
  if (dmq__addr_parse(addr, "udp", &ss) != 0)
    return DMQ_EADDR;

  uv_udp_t *h = malloc(sizeof(*h));
  if (h == NULL)
    return DMQ_ENOMEM;
  /* the family must be known up front for UV_UDP_RECVMMSG */
  if (uv_udp_init_ex(u->loop, h, (unsigned)ss.ss_family | UV_UDP_RECVMMSG) !=
      0) {
    free(h);
    return DMQ_ETRANSPORT;
  }
  h->data = u;
  u->nhandles++;
  if (uv_udp_bind(h, (struct sockaddr *)&ss, 0) != 0 ||
      uv_udp_getsockname(h, (struct sockaddr *)&name, &namelen) != 0 ||
      dmq__addr_format((struct sockaddr *)&name, "udp", u->local,
                       sizeof(u->local)) < 0 ||
      uv_udp_recv_start(h, udp_alloc_cb, udp_recv_cb) != 0) {
    u->local[0] = '\0';
    uv_close((uv_handle_t *)h, udp_handle_closed);
    return DMQ_ETRANSPORT;
  }
  int size = UDP_SOCKBUF_SIZE;
  (void)uv_recv_buffer_size((uv_handle_t *)h, &size);
  size = UDP_SOCKBUF_SIZE;
  (void)uv_send_buffer_size((uv_handle_t *)h, &size);
  u->sock = h;
  u->family = ss.ss_family;
  return 0;
}

static int udp_local_addr(dmq_transport_t *t, char *buf, size_t len) {
  udp_t *u = t->impl;
  if (u->local[0] == '\0')
    return DMQ_ESTATE;
  size_t n = strlen(u->local);
  if (buf == NULL || len <= n)
    return DMQ_ETOOBIG;
  memcpy(buf, u->local, n + 1);
  return 0;
}

static void udp_close(dmq_transport_t *t) {
  udp_t *u = t->impl;
  if (u->closing)
    return;
  u->closing = 1;
  if (u->sock != NULL && !uv_is_closing((uv_handle_t *)u->sock))
    uv_close((uv_handle_t *)u->sock, udp_handle_closed);
  uv_close((uv_handle_t *)&u->idle, udp_handle_closed);
}

static const dmq_transport_ops_t udp_ops = {
    .scheme = "udp",
    .caps = DMQ_TRANSPORT_DATAGRAM,
    .send = udp_send,
    .close = udp_close,
    .bind = udp_bind,
    .local_addr = udp_local_addr,
};

int dmq_udp_transport_new(uv_loop_t *loop, dmq_transport_t **out) {
  if (loop == NULL || out == NULL)
    return DMQ_EINVAL;
  udp_t *u = calloc(1, sizeof(*u));
  if (u == NULL)
    return DMQ_ENOMEM;
  u->pub.ops = &udp_ops;
  u->pub.impl = u;
  u->pub.mtu = UDP_DEFAULT_MTU;
  u->loop = loop;
  if (uv_idle_init(loop, &u->idle) != 0) {
    free(u);
    return DMQ_ETRANSPORT;
  }
  u->idle.data = u;
  u->nhandles = 1;
  *out = &u->pub;
  return 0;
}

int dmq__udp_using_recvmmsg(dmq_transport_t *t) {
  if (t == NULL || t->ops != &udp_ops)
    return 0;
  udp_t *u = t->impl;
  return u->sock != NULL && uv_udp_using_recvmmsg(u->sock);
}

void dmq__udp_set_queued_only(dmq_transport_t *t, int on) {
  if (t != NULL && t->ops == &udp_ops)
    ((udp_t *)t->impl)->queued_only = on != 0;
}
