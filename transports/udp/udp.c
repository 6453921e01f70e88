/* libdmq - the UDP transport (scheme "udp", DMQ_TRANSPORT_DATAGRAM).
 *
 * Membership traffic is many small datagrams, so this transport is built
 * around the cheap paths:
 *  - receive: on Linux, a duplicate of the socket's descriptor is polled
 *    (uv_poll_t) and read with recvmmsg(2), up to UDP_MMSG_BATCH datagrams
 *    per call, stopping at the first short batch instead of reading until
 *    EAGAIN as libuv's UDP handle does (see udp_poll_cb). Elsewhere the
 *    socket is opened with UV_UDP_RECVMMSG and read by libuv. Either way
 *    the batch buffer is borrowed from a process-wide pool
 *    (common/rxbuf.h) for one read, so the nodes of a process share one
 *    buffer instead of keeping 1.25 MiB of address space each.
 *  - send: the datagram is copied into a batch of UDP_SEND_BATCH slots
 *    (allocated per burst, see udp_batch_t) and the batch goes out with one
 * sendmmsg(2) call when it is full or, at the latest, from the idle handle in
 * the next loop turn (an active idle handle keeps the loop from blocking in
 *    poll, so a batched datagram never waits for unrelated I/O). Entries
 *    the kernel refuses with EAGAIN/ENOBUFS (socket buffer or qdisc full),
 *    and every send while libuv already has queued sends (which keeps
 *    datagrams in order), are copied into a request from a small free list
 *    and queued with uv_udp_send(); at most UDP_MAX_INFLIGHT queued or
 *    batched datagrams exist, beyond that send() says DMQ_EAGAIN. Without
 *    sendmmsg (not Linux, or no batch memory) send() uses uv_udp_try_send().
 *  - completions: a send with a cookie completes from the loop, never from
 *    inside send(): sendmmsg results (0, or DMQ_ETRANSPORT for an entry the
 *    kernel rejected) and try_send successes are queued and flushed by the
 *    idle handle, which only runs while the batch or that queue is
 *    non-empty.
 *  - GSO/GRO (Linux): a flush hands a run of batched datagrams to one
 *    destination, all as long as the first but the last, to the kernel as
 *    one UDP_SEGMENT entry, and the own receive path turns UDP_GRO on and
 *    cuts a coalesced run back into its datagrams: on loopback such a run
 *    crosses the stack as one packet (see UDP_GSO_MAX_SEGS).
 * close() sends what is batched, then closes the handles; queued requests
 * are cancelled by libuv and complete with DMQ_ECLOSED, then on_closed runs
 * and the transport frees itself. The node keeps the statistics; this file
 * keeps none.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* sendmmsg */
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#define UDP_HAVE_SENDMMSG 1
#if defined(UDP_SEGMENT) && defined(UDP_GRO)
#define UDP_HAVE_GSO 1
#else
#define UDP_HAVE_GSO 0
#endif
#else
#define UDP_HAVE_SENDMMSG 0
#endif

#include "common/addr.h"
#include "common/fdcheck.h"
#include "common/rxbuf.h"
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
/* Most datagrams per batch (one sendmmsg(2) call); the batch holds this
 * many mtu-sized copies (~60 KiB at the default mtu). Without GSO, 16
 * already spread the syscall over enough datagrams to stop being the
 * sender's cost, and larger batches held the first datagram of a burst
 * back longer for no more throughput (docs/bench.md, "Measurements behind
 * design decisions"). With GSO a batch of one destination's equal-size
 * datagrams is one packet through the whole stack, so its size is the
 * packets per message: 44 mtu-sized datagrams fill a GSO packet
 * (UDP_GSO_MAX_BYTES), and cost the sender 25-30 % less CPU per 1 KiB
 * best-effort message than 16 (delivery_bench cpu_ns_per_msg_sender,
 * alternated runs). A batch is still flushed at the end of every burst. */
#define UDP_SEND_BATCH 44
/* UDP GSO (Linux >= 4.18): one sendmmsg entry carries a run of batched
 * datagrams for one destination, all of one length but the last (which
 * may be shorter), with a UDP_SEGMENT control message; the kernel builds
 * one packet for the run and cuts it into the datagrams at the device, or
 * not at all on loopback when the receiving socket has UDP_GRO on (it then
 * reads the run whole and this transport cuts it again, see udp_poll_cb).
 * The datagrams on the wire are the same ones. At most this many segments
 * (the kernel's UDP_MAX_SEGMENTS is 64) and this many bytes per run (an IP
 * packet's payload). */
#define UDP_GSO_MAX_SEGS 64
#define UDP_GSO_MAX_BYTES (65535 - 40 - 8)

#if UDP_HAVE_SENDMMSG
/* The outgoing batch, headers and UDP_SEND_BATCH x mtu data slots in one
 * block (~76 KiB), borrowed from the process-wide buffer pool when the
 * batch gets its first entry and given back when a flush empties it. A
 * node sends in short bursts (one timer tick, one received recvmmsg batch),
 * and the burst is flushed as soon as it ends: by the runtime right after
 * dmq_node_tick() (ops->flush) and by the receive path at the end of
 * each recvmmsg batch, with the idle handle as the fallback for sends made
 * anywhere else. So batches rarely outlive a callback, and the many
 * transports of one process share a few blocks instead of each holding
 * one through a loop turn. */
typedef union udp_segctl {
  char buf[CMSG_SPACE(sizeof(uint16_t))];
  struct cmsghdr align;
} udp_segctl_t;

typedef struct udp_batch {
  size_t n; /* entries in use */
  struct mmsghdr msg[UDP_SEND_BATCH];
  struct iovec iov[UDP_SEND_BATCH];
  struct sockaddr_storage to[UDP_SEND_BATCH];
  void *cookie[UDP_SEND_BATCH];
  /* what one flush hands to sendmmsg: group g is entries first[g] ..
   * first[g] + count[g] - 1 (a GSO run when count > 1) */
  struct mmsghdr gmsg[UDP_SEND_BATCH];
  size_t first[UDP_SEND_BATCH], count[UDP_SEND_BATCH];
  udp_segctl_t ctl[UDP_SEND_BATCH];
  char data[]; /* UDP_SEND_BATCH slots of udp_t.slot bytes */
} udp_batch_t;
#endif

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
  uv_idle_t idle;    /* flushes the batch and done[] */
  unsigned nhandles; /* handles whose close callback has not run yet */
  int closing;
  int rbuf_busy;   /* holds a pooled receive buffer (common/rxbuf.h) */
  int queued_only; /* tests: never try_send */
  /* completions waiting for the loop; flushed by swapping with spare so
   * that completions queued by the callbacks wait for the next turn */
  udp_done_t *done, *spare;
  size_t ndone, done_cap, spare_cap;
  size_t nfailed; /* batched sends without a cookie the kernel refused */
  size_t nresv;   /* done[] entries reserved for batched sends with cookies */
#if UDP_HAVE_SENDMMSG
  int can_batch;      /* bound, fd known: sendmmsg (else try_send) */
  size_t slot;        /* bytes per batch data slot: the mtu at bind */
  udp_batch_t *batch; /* NULL between bursts */
  int fd;             /* of sock, for sendmmsg */
  int gso;            /* runs of datagrams go as one GSO send */
  int gro;            /* the socket has UDP_GRO on (own receive path) */
  uint64_t gso_runs;  /* GSO entries the kernel took (tests) */
  uint64_t gro_runs;  /* coalesced runs read and cut (tests) */
  /* own receive path: a duplicate of fd, polled for reading */
  uv_poll_t *rpoll; /* NULL: libuv's uv_udp_recv_start() path */
  int rfd;
#endif
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
static size_t udp_batch_len(const udp_t *u);
static void udp_batch_flush(udp_t *u);
static void udp_flush_now(udp_t *u);
#if UDP_HAVE_SENDMMSG
static size_t udp_batch_size(const udp_t *u);
#endif

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
  for (; u->nfailed > 0; u->nfailed--)
    dmq_transport_send_done(&u->pub, NULL, DMQ_ETRANSPORT);
}

static void udp_finish(udp_t *u) {
  /* everything left in done[] was handed to the kernel before close */
  while (u->ndone > 0 || u->nfailed > 0)
    udp_done_flush(u);
  if (u->pub.on_closed != NULL)
    u->pub.on_closed(&u->pub);
  while (u->free_reqs != NULL) {
    udp_req_t *r = u->free_reqs;
    u->free_reqs = r->next;
    free(r);
  }
#if UDP_HAVE_SENDMMSG
  if (u->batch != NULL)
    dmq__rxbuf_put(u->batch, udp_batch_size(u));
#endif
  dmq__rxbuf_detach();
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

/* Whether the idle handle has work: a batch, completions, or failures of
 * sends without a cookie to report. */
static int udp_idle_has_work(const udp_t *u) {
  return u->ndone > 0 || u->nfailed > 0 || udp_batch_len(u) > 0;
}

static void udp_idle_cb(uv_idle_t *h) {
  udp_t *u = h->data;
  /* the batch first: its completions then go out in this turn, and no
   * reservation is outstanding when done[] is swapped with spare[] */
  udp_batch_flush(u);
  udp_done_flush(u);
  if (!udp_idle_has_work(u))
    uv_idle_stop(h);
}

/* Make room for one more completion before a send is attempted, so that an
 * accepted send can always record its completion. Batched sends keep their
 * room reserved (nresv) until the batch is flushed. */
static int udp_done_reserve(udp_t *u) {
  if (u->ndone + u->nresv < u->done_cap)
    return 0;
  if (u->ndone + u->nresv >= UDP_MAX_DONE)
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
  /* The batch buffer is borrowed from the process-wide pool for the
   * duration of one read: nodes sharing a process share it. */
  char *p = dmq__rxbuf_get(UDP_RECV_BUF);
  if (p == NULL)
    return; /* UV_ENOBUFS, retried on the next readable event */
  u->rbuf_busy = 1;
  *buf = uv_buf_init(p, (unsigned)UDP_RECV_BUF);
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
   * one (UV_UDP_PARTIAL) cannot be trusted and is dropped (a guard: the
   * buffer holds the largest datagram, see the MSG_TRUNC one). Errors such as
   * ICMP reports are not actionable for a datagram transport. */
  if (nread >= 0 && addr != NULL && !(flags & UV_UDP_PARTIAL) && !u->closing)
    udp_deliver(u, addr, buf->base, (size_t)nread);
  /* A UV_UDP_MMSG_CHUNK callback points into the middle of our buffer;
   * libuv hands the whole buffer back with a final UV_UDP_MMSG_FREE call.
   * Every other callback (plain recvmsg, EAGAIN, error) also ends the use
   * of the buffer. */
  if (flags & UV_UDP_MMSG_CHUNK)
    return;
  if (buf->base != NULL && u->rbuf_busy) {
    u->rbuf_busy = 0;
    dmq__rxbuf_put(buf->base, UDP_RECV_BUF);
  }
  /* the end of a read: what the datagrams provoked (acks, answers) goes
   * out now, in one sendmmsg */
  if (!u->closing)
    udp_flush_now(u);
}

#if UDP_HAVE_SENDMMSG
/* Own receive path (Linux). libuv's UDP handle reads with recvmmsg() until
 * the socket says EAGAIN, so every readable event costs one more syscall
 * than there are batches: with membership traffic (one or two datagrams
 * per wake-up) that is half of all receive syscalls. Here a duplicate of
 * the socket's descriptor is polled by a uv_poll_t (the UDP handle keeps
 * the original for its queued sends, so the two never share an epoll
 * registration) and read with recvmmsg(); a batch that comes back short
 * means the queue is empty (epoll is level-triggered: anything arriving
 * later wakes us again). */
#define UDP_RX_ROUNDS 4 /* full batches read per wake-up, at most */
/* The read buffer: UDP_MMSG_BATCH data slots of UDP_MMSG_SLOT bytes, then
 * the headers (data first: each slot then starts at the same offset in a
 * page, so a membership-sized datagram touches one page, not two). */
typedef union udp_groctl {
  char buf[CMSG_SPACE(sizeof(int))];
  struct cmsghdr align;
} udp_groctl_t;

typedef struct udp_rx_hdr {
  struct mmsghdr msg[UDP_MMSG_BATCH];
  struct iovec iov[UDP_MMSG_BATCH];
  struct sockaddr_storage from[UDP_MMSG_BATCH];
  udp_groctl_t ctl[UDP_MMSG_BATCH];
} udp_rx_hdr_t;
#define UDP_RX_DATA ((size_t)UDP_MMSG_SLOT * UDP_MMSG_BATCH)
#define UDP_RX_SIZE (UDP_RX_DATA + sizeof(udp_rx_hdr_t))

/* The segment size of a datagram the kernel coalesced (UDP_GRO: a run of
 * datagrams of that size, the last possibly shorter), or 0. */
static size_t udp_gro_size(struct msghdr *m) {
#if UDP_HAVE_GSO
  for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c != NULL; c = CMSG_NXTHDR(m, c))
    if (c->cmsg_level == IPPROTO_UDP && c->cmsg_type == UDP_GRO &&
        c->cmsg_len >= CMSG_LEN(sizeof(int))) {
      int v;
      memcpy(&v, CMSG_DATA(c), sizeof(v));
      return v > 0 ? (size_t)v : 0;
    }
#else
  (void)m;
#endif
  return 0;
}

static void udp_poll_cb(uv_poll_t *h, int status, int events) {
  udp_t *u = h->data;
  if (status < 0 || !(events & UV_READABLE) || u->closing)
    return;
  char *data = dmq__rxbuf_get(UDP_RX_SIZE); /* shared, see rxbuf.h */
  if (data == NULL)
    return; /* still readable: retried on the next turn */
  udp_rx_hdr_t *rx = (udp_rx_hdr_t *)(void *)(data + UDP_RX_DATA);
  for (int round = 0; round < UDP_RX_ROUNDS && !u->closing; round++) {
    for (size_t i = 0; i < UDP_MMSG_BATCH; i++) {
      rx->iov[i].iov_base = data + i * UDP_MMSG_SLOT;
      rx->iov[i].iov_len = UDP_MMSG_SLOT;
      memset(&rx->msg[i], 0, sizeof(rx->msg[i]));
      rx->msg[i].msg_hdr.msg_name = &rx->from[i];
      rx->msg[i].msg_hdr.msg_namelen = sizeof(rx->from[i]);
      rx->msg[i].msg_hdr.msg_iov = &rx->iov[i];
      rx->msg[i].msg_hdr.msg_iovlen = 1;
      if (u->gro) {
        rx->msg[i].msg_hdr.msg_control = rx->ctl[i].buf;
        rx->msg[i].msg_hdr.msg_controllen = sizeof(rx->ctl[i].buf);
      }
    }
    int n = recvmmsg(u->rfd, rx->msg, UDP_MMSG_BATCH, MSG_DONTWAIT, NULL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break; /* EAGAIN, or an error (ICMP reports): nothing actionable */
    for (int k = 0; k < n && !u->closing; k++) {
      /* a truncated datagram cannot be trusted: dropped. Not counted: it
       * cannot happen with 64 KiB slots (the largest UDP payload is 65507
       * bytes over IPv4, 65527 over IPv6 without jumbograms, and a GRO run
       * is at most 64 KiB); this is a guard, not a path */
      if (rx->msg[k].msg_hdr.msg_flags & MSG_TRUNC)
        continue;
      /* nor one whose run size (UDP_GRO) may have been cut off */
      if (u->gro && (rx->msg[k].msg_hdr.msg_flags & MSG_CTRUNC))
        continue;
      const char *d = data + (size_t)k * UDP_MMSG_SLOT;
      size_t len = rx->msg[k].msg_len;
      size_t seg = u->gro ? udp_gro_size(&rx->msg[k].msg_hdr) : 0;
      if (seg == 0 || seg >= len) {
        udp_deliver(u, (const struct sockaddr *)&rx->from[k], d, len);
        continue;
      }
      /* a coalesced run: the datagrams it was made of, in order */
      u->gro_runs++;
      for (size_t off = 0; off < len && !u->closing; off += seg)
        udp_deliver(u, (const struct sockaddr *)&rx->from[k], d + off,
                    len - off < seg ? len - off : seg);
    }
    if (n < UDP_MMSG_BATCH)
      break;
  }
  dmq__rxbuf_put(data, UDP_RX_SIZE);
  if (!u->closing)
    udp_flush_now(u);
}

static void udp_rpoll_closed(uv_handle_t *h) {
  udp_t *u = h->data;
  close(u->rfd);
  u->rfd = -1;
  udp_handle_closed(h);
}

/* Start the own receive path on sock; 0 or a libuv error (then the caller
 * falls back to uv_udp_recv_start()). */
static int udp_rpoll_start(udp_t *u, uv_udp_t *sock) {
  uv_os_fd_t fd;
  if (uv_fileno((uv_handle_t *)sock, &fd) != 0)
    return UV_EBADF;
  int rfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (rfd < 0)
    return UV_EMFILE;
  uv_poll_t *p = malloc(sizeof(*p));
  if (p == NULL || uv_poll_init(u->loop, p, rfd) != 0) {
    free(p);
    close(rfd);
    return UV_ENOMEM;
  }
  p->data = u;
  u->nhandles++;
  u->rpoll = p;
  u->rfd = rfd;
  if (uv_poll_start(p, UV_READABLE, udp_poll_cb) != 0) {
    u->rpoll = NULL;
    uv_close((uv_handle_t *)p, udp_rpoll_closed);
    return UV_EIO;
  }
#if UDP_HAVE_GSO
  /* coalesced runs (GSO senders on this host, GRO of the NIC) are read
   * whole and cut in udp_poll_cb; the 64 KiB slots hold the largest */
  int one = 1;
  u->gro = setsockopt(rfd, IPPROTO_UDP, UDP_GRO, &one, sizeof(one)) == 0;
#endif
  return 0;
}
#endif

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
  if (u->inflight == 0) {
    /* the burst that needed queued copies is over: give the spares back
     * (they are mtu-sized, and most nodes never queue again) */
    while (u->free_reqs != NULL) {
      udp_req_t *f = u->free_reqs;
      u->free_reqs = f->next;
      free(f);
    }
    u->nfree = 0;
  }
  int st = 0;
  if (status == UV_ECANCELED)
    st = DMQ_ECLOSED; /* still queued when the handle was closed */
  else if (status < 0)
    st = DMQ_ETRANSPORT;
  if (cookie != NULL || (st != 0 && st != DMQ_ECLOSED))
    dmq_transport_send_done(&u->pub, cookie, st); /* NULL: counted */
}

/* Copy a datagram into a request and queue it with uv_udp_send(). The
 * caller checked the UDP_MAX_INFLIGHT bound. */
static int udp_queue_copy(udp_t *u, const struct sockaddr *sa, const void *buf,
                          size_t len, void *cookie) {
  udp_req_t *req = udp_req_get(u, len);
  if (req == NULL)
    return DMQ_ENOMEM;
  if (len > 0)
    memcpy(req->data, buf, len);
  req->cookie = cookie;
  uv_buf_t b = uv_buf_init(req->data, (unsigned)len);
  int r = uv_udp_send(&req->req, u->sock, &b, 1, sa, udp_send_cb);
  if (r != 0) {
    udp_req_put(u, req);
    return udp_uv_err(r);
  }
  u->inflight++;
  return 0;
}

static size_t udp_batch_len(const udp_t *u) {
#if UDP_HAVE_SENDMMSG
  return u->batch != NULL ? u->batch->n : 0;
#else
  (void)u;
  return 0;
#endif
}

#if UDP_HAVE_SENDMMSG
/* Batch entry i is done: record its completion in the room reserved by
 * send(). */
static void udp_batch_done(udp_t *u, size_t i, int status) {
  void *cookie = u->batch->cookie[i];
  if (cookie == NULL) {
    if (status != 0) { /* nobody waits for it, but it is counted */
      u->nfailed++;
      uv_idle_start(&u->idle, udp_idle_cb);
    }
    return;
  }
  u->nresv--;
  udp_done_push(u, cookie, status);
}

/* Entry i did not go out now (socket buffer full, libuv has sends queued,
 * or the tests' queued_only): hand a copy to libuv, which keeps the order. */
static void udp_batch_queue(udp_t *u, size_t i) {
  udp_batch_t *b = u->batch;
  void *cookie = b->cookie[i];
  int rc = udp_queue_copy(u, (struct sockaddr *)&b->to[i], b->iov[i].iov_base,
                          b->iov[i].iov_len, cookie);
  if (cookie == NULL)
    return;
  if (rc == 0)
    u->nresv--; /* udp_send_cb completes it */
  else
    udp_batch_done(u, i, rc);
}
#endif

#if UDP_HAVE_SENDMMSG
static size_t udp_batch_size(const udp_t *u) {
  return sizeof(udp_batch_t) + u->slot * UDP_SEND_BATCH;
}

/* A batch for the next burst; NULL when out of memory. */
static udp_batch_t *udp_batch_new(udp_t *u) {
  udp_batch_t *b = dmq__rxbuf_get(udp_batch_size(u));
  if (b == NULL)
    return NULL;
  b->n = 0;
  for (size_t i = 0; i < UDP_SEND_BATCH; i++) {
    memset(&b->msg[i], 0, sizeof(b->msg[i]));
    b->msg[i].msg_hdr.msg_name = &b->to[i];
    b->msg[i].msg_hdr.msg_iov = &b->iov[i];
    b->msg[i].msg_hdr.msg_iovlen = 1;
  }
  return b;
}
#endif

#if UDP_HAVE_SENDMMSG
/* Group the entries from..n-1 of b into sendmmsg entries, from group g on:
 * with gso, a run of datagrams to one destination, every one but the last
 * exactly as long as the first, goes as one GSO entry. Returns the number
 * of groups. */
static size_t udp_batch_group(udp_batch_t *b, size_t from, size_t n, size_t g,
                              int gso) {
  for (size_t i = from; i < n; g++) {
    size_t j = i + 1;
    size_t seg = b->iov[i].iov_len, tot = seg;
#if UDP_HAVE_GSO
    while (gso && seg > 0 && j < n && b->iov[j - 1].iov_len == seg &&
           b->iov[j].iov_len > 0 && b->iov[j].iov_len <= seg &&
           j - i < UDP_GSO_MAX_SEGS &&
           tot + b->iov[j].iov_len <= UDP_GSO_MAX_BYTES &&
           b->msg[j].msg_hdr.msg_namelen == b->msg[i].msg_hdr.msg_namelen &&
           dmq__addr_equal((struct sockaddr *)&b->to[j],
                           (struct sockaddr *)&b->to[i]))
      tot += b->iov[j++].iov_len;
#else
    (void)gso;
    (void)tot;
#endif
    struct msghdr *h = &b->gmsg[g].msg_hdr;
    *h = b->msg[i].msg_hdr;
    h->msg_iov = &b->iov[i];
    h->msg_iovlen = j - i;
    h->msg_control = NULL;
    h->msg_controllen = 0;
#if UDP_HAVE_GSO
    if (j - i > 1) {
      memset(&b->ctl[g], 0, sizeof(b->ctl[g]));
      h->msg_control = b->ctl[g].buf;
      h->msg_controllen = sizeof(b->ctl[g].buf);
      struct cmsghdr *c = CMSG_FIRSTHDR(h);
      c->cmsg_level = IPPROTO_UDP;
      c->cmsg_type = UDP_SEGMENT;
      c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
      uint16_t sz = (uint16_t)seg;
      memcpy(CMSG_DATA(c), &sz, sizeof(sz));
    }
#endif
    b->first[g] = i;
    b->count[g] = j - i;
    i = j;
  }
  return g;
}
#endif

/* Send everything batched: sendmmsg for as long as the kernel takes it,
 * libuv's queue for the rest. Completions are only recorded here (done[]),
 * never delivered, so this may run inside send(). */
static void udp_batch_flush(udp_t *u) {
#if UDP_HAVE_SENDMMSG
  udp_batch_t *b = u->batch;
  if (b == NULL)
    return;
  size_t n = b->n, g = 0;
  size_t ng = udp_batch_group(b, 0, n, 0, u->gso);
  /* queued sends go first, so everything after them is queued too */
  while (g < ng && !u->queued_only && u->sock->send_queue_count == 0) {
    int r = sendmmsg(u->fd, &b->gmsg[g], (unsigned)(ng - g), 0);
    if (r > 0) {
      for (size_t k = g; k < g + (size_t)r; k++) {
        u->gso_runs += b->count[k] > 1;
        for (size_t i = 0; i < b->count[k]; i++)
          udp_batch_done(u, b->first[k] + i, 0);
      }
      g += (size_t)r;
      continue;
    }
    int err = r < 0 ? errno : EIO;
    if (err == EINTR)
      continue;
    if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS)
      break;
    if (b->count[g] > 1) {
      /* a GSO run refused: the route cannot take it (no checksum offload,
       * a segment above the path MTU, an old kernel) or the destination is
       * bad. Its datagrams, and the rest of this batch, go one by one; the
       * errors that mean GSO itself is refused turn it off for good */
      if (err == EIO || err == EINVAL || err == EOPNOTSUPP)
        u->gso = 0;
      ng = udp_batch_group(b, b->first[g], n, g, 0);
      continue;
    }
    /* this entry was rejected (bad destination, no route, ...); the rest
     * may still go out */
    udp_batch_done(u, b->first[g], DMQ_ETRANSPORT);
    g++;
  }
  for (size_t i = g < ng ? b->first[g] : n; i < n; i++)
    udp_batch_queue(u, i);
  u->batch = NULL;
  dmq__rxbuf_put(b, udp_batch_size(u)); /* udp_batch_queue copied the rest */
#else
  (void)u;
#endif
}

/* Flush the batch now rather than from the idle handle, which is stopped
 * when nothing else is left for it (completions and failures stay for the
 * idle handle: they are never reported from inside a send path). */
static void udp_flush_now(udp_t *u) {
  udp_batch_flush(u);
  if (!udp_idle_has_work(u))
    uv_idle_stop(&u->idle);
}

/* ops->flush: send what is batched now (the driver calls it after a tick,
 * when the node's burst of sends is over). */
static void udp_flush(dmq_transport_t *t) {
  if (!((udp_t *)t->impl)->closing)
    udp_flush_now(t->impl);
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

#if UDP_HAVE_SENDMMSG
  udp_batch_t *bt = u->batch;
  if (bt == NULL && u->can_batch && len <= u->slot && !u->queued_only &&
      u->sock->send_queue_count == 0)
    bt = u->batch = udp_batch_new(u); /* NULL: try_send below */
  if (bt != NULL && len <= u->slot) {
    /* every batched entry may end up queued: keep the bound for all */
    if (u->inflight + bt->n >= UDP_MAX_INFLIGHT)
      return DMQ_EAGAIN;
    socklen_t sl = dmq__addr_len((struct sockaddr *)&ss);
    if (sl == 0)
      return DMQ_EADDR;
    size_t i = bt->n;
    char *slot = bt->data + i * u->slot;
    if (len > 0)
      memcpy(slot, buf, len);
    memcpy(&bt->to[i], &ss, sl);
    bt->iov[i].iov_base = slot;
    bt->iov[i].iov_len = len;
    bt->msg[i].msg_hdr.msg_namelen = sl;
    bt->cookie[i] = cookie;
    if (cookie != NULL)
      u->nresv++;
    if (++bt->n == 1)
      uv_idle_start(&u->idle, udp_idle_cb);
    if (bt->n == UDP_SEND_BATCH)
      udp_batch_flush(u);
    return 0;
  }
  /* an oversized datagram (the mtu was raised after bind) goes after what
   * is batched */
  udp_batch_flush(u);
#endif

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
  return udp_queue_copy(u, (struct sockaddr *)&ss, buf, len, cookie);
}

#if UDP_HAVE_SENDMMSG
/* Batching for a freshly bound socket; without it (no fd) send() uses
 * uv_udp_try_send(). */
static void udp_batch_init(udp_t *u) {
  u->slot = u->pub.mtu;
  u->gso = UDP_HAVE_GSO;
  u->can_batch = uv_fileno((uv_handle_t *)u->sock, &u->fd) == 0 &&
                 u->slot <= (SIZE_MAX - sizeof(udp_batch_t)) / UDP_SEND_BATCH;
}
#endif

/* ---- bind, local_addr, close ---- */

static int udp_recv_begin(udp_t *u, uv_udp_t *h) {
#if UDP_HAVE_SENDMMSG
  if (udp_rpoll_start(u, h) == 0)
    return 0;
#endif
  return uv_udp_recv_start(h, udp_alloc_cb, udp_recv_cb);
}

/* The handle h (bound, or opened on a bound socket) starts receiving: its
 * local address, the receive path, socket buffers (raised, never
 * lowered), batching. On failure h is closed and DMQ_ETRANSPORT returned. */
static int udp_start(udp_t *u, uv_udp_t *h, int family) {
  struct sockaddr_storage name;
  int namelen = (int)sizeof(name);
  if (uv_udp_getsockname(h, (struct sockaddr *)&name, &namelen) != 0 ||
      dmq__addr_format((struct sockaddr *)&name, "udp", u->local,
                       sizeof(u->local)) < 0 ||
      udp_recv_begin(u, h) != 0) {
    u->local[0] = '\0';
    uv_close((uv_handle_t *)h, udp_handle_closed);
    return DMQ_ETRANSPORT;
  }
  int size = 0;
  if (uv_recv_buffer_size((uv_handle_t *)h, &size) != 0 ||
      size < UDP_SOCKBUF_SIZE) {
    size = UDP_SOCKBUF_SIZE;
    (void)uv_recv_buffer_size((uv_handle_t *)h, &size);
  }
  size = 0;
  if (uv_send_buffer_size((uv_handle_t *)h, &size) != 0 ||
      size < UDP_SOCKBUF_SIZE) {
    size = UDP_SOCKBUF_SIZE;
    (void)uv_send_buffer_size((uv_handle_t *)h, &size);
  }
  u->sock = h;
  u->family = family;
#if UDP_HAVE_SENDMMSG
  udp_batch_init(u);
#endif
  return 0;
}

static int udp_bind(dmq_transport_t *t, const char *addr) {
  udp_t *u = t->impl;
  struct sockaddr_storage ss;
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
  if (uv_udp_bind(h, (struct sockaddr *)&ss, 0) != 0) {
    uv_close((uv_handle_t *)h, udp_handle_closed);
    return DMQ_ETRANSPORT;
  }
  return udp_start(u, h, ss.ss_family);
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
  /* what is batched was accepted before close: send it (what has to be
   * queued is cancelled below and completes with DMQ_ECLOSED) */
  if (u->sock != NULL)
    udp_batch_flush(u);
  u->closing = 1;
#if UDP_HAVE_SENDMMSG
  if (u->rpoll != NULL && !uv_is_closing((uv_handle_t *)u->rpoll))
    uv_close((uv_handle_t *)u->rpoll, udp_rpoll_closed);
  u->rpoll = NULL;
#endif
  if (u->sock != NULL && !uv_is_closing((uv_handle_t *)u->sock))
    uv_close((uv_handle_t *)u->sock, udp_handle_closed);
  uv_close((uv_handle_t *)&u->idle, udp_handle_closed);
}

static const dmq_transport_ops_t udp_ops = {
    .size = sizeof(dmq_transport_ops_t),
    .scheme = "udp",
    .caps = DMQ_TRANSPORT_DATAGRAM,
    .send = udp_send,
    .close = udp_close,
    .bind = udp_bind,
    .local_addr = udp_local_addr,
    .flush = udp_flush,
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
  dmq__rxbuf_attach();
  *out = &u->pub;
  return 0;
}

int dmq_udp_transport_open(dmq_transport_t *t, int fd) {
  if (t == NULL || t->ops != &udp_ops)
    return DMQ_EINVAL;
  udp_t *u = t->impl;
  if (u->closing)
    return DMQ_ECLOSED;
  if (u->sock != NULL)
    return DMQ_ESTATE;
  struct sockaddr_storage ss;
  if (dmq__fd_check(fd, SOCK_DGRAM, 0, &ss, NULL, 0) != 0)
    return DMQ_EINVAL;
  /* our own descriptor of the socket: the caller keeps fd */
  int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dfd < 0)
    return DMQ_ETRANSPORT;
  uv_udp_t *h = malloc(sizeof(*h));
  if (h == NULL) {
    close(dfd);
    return DMQ_ENOMEM;
  }
  if (uv_udp_init_ex(u->loop, h, AF_UNSPEC | UV_UDP_RECVMMSG) != 0) {
    free(h);
    close(dfd);
    return DMQ_ETRANSPORT;
  }
  h->data = u;
  u->nhandles++;
  if (uv_udp_open(h, (uv_os_sock_t)dfd) != 0) {
    close(dfd); /* not the handle's */
    uv_close((uv_handle_t *)h, udp_handle_closed);
    return DMQ_ETRANSPORT;
  }
  return udp_start(u, h, ss.ss_family);
}

int dmq__udp_using_recvmmsg(dmq_transport_t *t) {
  if (t == NULL || t->ops != &udp_ops)
    return 0;
  udp_t *u = t->impl;
#if UDP_HAVE_SENDMMSG
  if (u->rpoll != NULL)
    return 1; /* the own receive path reads with recvmmsg() */
#endif
  return u->sock != NULL && uv_udp_using_recvmmsg(u->sock);
}

void dmq__udp_set_queued_only(dmq_transport_t *t, int on) {
  if (t != NULL && t->ops == &udp_ops)
    ((udp_t *)t->impl)->queued_only = on != 0;
}

int dmq__udp_gso_state(dmq_transport_t *t, uint64_t *gso_runs,
                       uint64_t *gro_runs) {
  if (t == NULL || t->ops != &udp_ops)
    return -1;
  udp_t *u = t->impl;
  int st = 0;
#if UDP_HAVE_SENDMMSG
  st = (u->gso && u->can_batch ? 1 : 0) | (u->gro ? 2 : 0);
  if (gso_runs != NULL)
    *gso_runs = u->gso_runs;
  if (gro_runs != NULL)
    *gro_runs = u->gro_runs;
#else
  (void)u;
  if (gso_runs != NULL)
    *gso_runs = 0;
  if (gro_runs != NULL)
    *gro_runs = 0;
#endif
  return st;
}

void dmq__udp_set_gso(dmq_transport_t *t, int on) {
#if UDP_HAVE_SENDMMSG
  if (t != NULL && t->ops == &udp_ops)
    ((udp_t *)t->impl)->gso = on != 0 && UDP_HAVE_GSO;
#else
  (void)t;
  (void)on;
#endif
}
