/* libdmq - the TCP transport (scheme "tcp", DMQ_TRANSPORT_RELIABLE).
 *
 * The node uses it for what does not fit a datagram: push/pull state
 * exchange, large payloads and the stream fallback of probes. Messages are
 * framed on the byte stream as a 4-byte big-endian length followed by the
 * payload (at most t->mtu, 16 MiB by default; a peer announcing more is cut
 * off).
 *
 * Outbound: one persistent connection per destination ("tcp://ip:port",
 * canonicalised so that every spelling of an address maps to the same
 * connection), kept in a small hash map of destinations and reused for
 * every message until it has been idle for TCP_IDLE_MS. Messages sent while
 * connecting wait in the destination's queue and are written once the
 * connection is up. If the connection attempt fails, every queued message
 * completes with DMQ_ETRANSPORT (the layer above decides whether to retry)
 * and the destination backs off exponentially with jitter: messages sent
 * during the back-off are queued for the next attempt, which fails or
 * delivers them; nothing is ever retried by the transport itself, so each
 * accepted message completes exactly once. The queue plus the unfinished
 * writes of a destination are bounded (TCP_MAX_QUEUE_*): beyond that send()
 * says DMQ_EAGAIN.
 *
 * Outbound connections form a pool of at most max_outbound: a destination
 * that needs a connection when the pool is full closes the least recently
 * used idle one (no queued message, no unfinished write, no partial frame:
 * closing it fails nothing). If none is idle, or socket() fails with
 * EMFILE/ENFILE, the connect is postponed: the queue stays, the attempt is
 * retried from the timer (TCP_STALL_*), and once the connect timeout has
 * passed since the first postponement the queue fails with DMQ_ETRANSPORT
 * like a failed connect. A message still completes exactly once: written
 * (0, or the write's error) or failed with its queue, never both.
 *
 * Bounds on what a peer can make us hold (dmq_stream_limits_t): a frame
 * must complete within frame_timeout_ms of its first byte; its buffer grows
 * with the bytes received; all partial frames share partial_budget; at most
 * max_inbound accepted connections (the least recently active idle one
 * makes room, or the new one is closed at once). The listener is a
 * uv_poll_t and accepts with accept4() itself, so that EMFILE/ENFILE is
 * seen: an idle connection is closed to free a descriptor, or the pending
 * connection is refused with the process's spare descriptor
 * (common/spare.h) and accepting pauses with back-off. Every such event is
 * counted in dmq_stream_stats_t.
 *
 * Inbound: accepted connections are read and each frame is handed to
 * dmq_transport_recv() with from = "tcp://peer_ip:peer_port" (the peer's
 * ephemeral port). The connection is also registered as the destination
 * for that address, so a reply sent to `from` travels back over it; frames
 * arriving on an outbound connection are delivered with from = the
 * destination's address. Either way `from` is an address one can answer.
 *
 * One timer drives connect timeouts, back-off and postponed retries, frame
 * deadlines, idle closes, the accept pause and the forgetting of unused
 * destinations; it is armed for the earliest deadline
 * and only keeps the loop alive while messages wait for a retry. Completions
 * always come from the loop (libuv callbacks or the timer), never from
 * inside send() or close(). close() closes every handle; libuv cancels the
 * outstanding connects and writes (DMQ_ECLOSED), queued messages complete
 * with DMQ_ECLOSED, then on_closed runs and the transport frees itself.
 */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/socket.h>

#include "common/addr.h"
#include "common/fdcheck.h"
#include "common/rxbuf.h"
#include "common/spare.h"
#include "dmq/uv.h"
#include "sized.h"
#include "tcp/tcp.h"

/* Largest message (the mtu): big enough for a push/pull of a large
 * cluster's state, small enough that a bogus length cannot make a reader
 * allocate without bound. */
#define TCP_MAX_MESSAGE (16u * 1024u * 1024u)
/* Frame header: payload length, 32-bit big-endian. */
#define TCP_FRAME_HDR 4
/* Per-destination bound on queued + unfinished writes: enough for bursts
 * of membership traffic, small enough that a stalled peer cannot eat the
 * process's memory. A message is always accepted when nothing is pending,
 * so a single message of up to the mtu always fits. */
#define TCP_MAX_QUEUE_BYTES (4u * 1024u * 1024u)
#define TCP_MAX_QUEUE_MSGS 4096u
/* Reconnect back-off: first delay, doubled after every failed attempt up
 * to the cap; the actual delay is uniformly drawn from [d/2, d] so that
 * nodes that lost the same peer do not retry in lock step. */
#define TCP_BACKOFF_MIN_MS 100u
#define TCP_BACKOFF_MAX_MS 5000u
/* A connect that has not completed after this long is abandoned (the
 * kernel's own SYN retry timeout is about two minutes). */
#define TCP_CONNECT_TIMEOUT_MS 5000u
/* Connections without traffic for this long are closed. */
#define TCP_IDLE_MS 15000u
/* A frame (from its first header byte) must complete within this long:
 * a peer trickling a frame cannot hold its buffer for longer. */
#define TCP_FRAME_TIMEOUT_MS 5000u
/* Accepted connections open at once: beyond, the least recently active
 * idle one is closed, or the new one if none is idle. */
#define TCP_MAX_INBOUND 256u
/* Connections this side opens (the pool of cached outbound connections):
 * beyond, the least recently used idle one is closed. */
#define TCP_MAX_OUTBOUND 64u
/* All partial-frame buffers of a transport together: four frames of the
 * largest size. */
#define TCP_PARTIAL_BUDGET (64ull * 1024u * 1024u)
/* A connect that cannot start (pool full and busy, or no descriptor) is
 * retried after this delay, doubled per attempt up to the cap, for at most
 * the connect timeout; then the queue fails. */
#define TCP_STALL_MIN_MS 10u
#define TCP_STALL_MAX_MS 500u
/* Accepting after EMFILE/ENFILE or another accept error pauses for this
 * long, doubled per failure up to the cap, 0 after an accept. */
#define TCP_ACCEPT_PAUSE_MIN_MS 10u
#define TCP_ACCEPT_PAUSE_MAX_MS 1000u
/* Connections accepted per readiness callback (fairness with the rest of
 * the loop; the listener stays readable for the others). */
#define TCP_ACCEPT_BATCH 64
/* tcp_connect(): could not start now, try again later (not an error). */
#define TCP_E_BUSY 1
#define TCP_E_NOFD 2
/* Inbound connections get this multiple of the idle timeout, so that the
 * connecting side, which knows when it has nothing more to send, normally
 * closes first and a message never races a close by the receiver. */
#define TCP_INBOUND_IDLE_FACTOR 2u
/* listen(2) backlog: connection bursts when a cluster starts. Every
 * joiner of a burst opens a connection to the seed for its push/pull at
 * the same instant; with 128, only 334-379 of 999 simultaneous joins got
 * through at once and the rest waited for SYN retries (cluster_bench
 * --nodes 1000: the last member joined after 5.5-8 s instead of 3.4 s).
 * The kernel caps it at net.core.somaxconn (4096 by default since Linux
 * 5.4, 128 before). */
#define TCP_LISTEN_BACKLOG 4096
/* Read buffer, borrowed from the process-wide pool (common/rxbuf.h) for
 * one read: reads are consumed before the read callback returns. */
#define TCP_READ_BUF (64u * 1024u)
/* A frame split over reads is assembled in a buffer that starts at this
 * size (or the frame's, if smaller) and doubles as bytes arrive (never
 * straight to the announced length, so that a header alone cannot make us
 * allocate 16 MiB). */
#define TCP_FRAME_START (64u * 1024u)
/* Assembly buffers up to this size are kept for the socket's next frame;
 * larger ones are freed: a push/pull table (a few KiB per 100 members)
 * would otherwise stay resident for as long as the connection idles. */
#define TCP_FRAME_KEEP (4u * 1024u)
/* First size of the destination hash table (power of two; doubles when
 * there are more destinations than buckets). */
#define TCP_BUCKETS_INITIAL 16u
/* splitmix64 (Steele et al.) increment and mixing multipliers, for the
 * back-off jitter. */
#define TCP_SPLITMIX_GAMMA 0x9e3779b97f4a7c15ull
#define TCP_SPLITMIX_MUL1 0xbf58476d1ce4e5b9ull
#define TCP_SPLITMIX_MUL2 0x94d049bb133111ebull
/* 32-bit FNV-1a parameters. */
#define TCP_FNV_OFFSET 2166136261u
#define TCP_FNV_PRIME 16777619u

typedef struct tcp tcp_t;
typedef struct tcp_dest tcp_dest_t;

typedef struct tcp_msg {
  struct tcp_msg *next; /* in a destination queue or a completion list */
  uv_write_t req;
  void *cookie;
  size_t size; /* of frame[]: header + payload */
  uint8_t frame[];
} tcp_msg_t;

typedef struct tcp_sock {
  uv_tcp_t h; /* h.data = the tcp_sock */
  tcp_t *tcp;
  tcp_dest_t *dest; /* outbound: its destination (until detached) */
  struct tcp_sock *prev, *next;
  uv_connect_t creq;
  uint64_t last_active;
  uint64_t connect_deadline;
  size_t wq_bytes, wq_msgs; /* handed to uv_write, not yet completed */
  int connected, closing, inbound;
  int delivering;          /* fbuf is being handed to the node */
  uint64_t frame_deadline; /* a partial frame must complete by then; 0 */
  /* frame reader */
  uint8_t hdr[TCP_FRAME_HDR];
  size_t hdr_have;
  int in_frame;
  uint8_t *fbuf;
  size_t fcap, flen, fhave;
  char peer[DMQ__ADDR_STRLEN]; /* the `from` of received frames */
} tcp_sock_t;

struct tcp_dest {
  tcp_dest_t *hnext;
  uint32_t hash;
  char key[DMQ__ADDR_STRLEN]; /* canonical "tcp://ip:port" */
  struct sockaddr_storage sa;
  tcp_sock_t *sock;         /* connecting or connected; NULL when none */
  tcp_msg_t *qhead, *qtail; /* waiting for a connection */
  size_t q_bytes, q_msgs;
  uint32_t backoff_ms; /* 0 after a success */
  uint64_t retry_at;   /* no connect attempt before this */
  uint64_t last_active;
  int fail_pending;     /* a connect failed inside send(): fail the queue from
                           the loop */
  uint64_t stall_until; /* connect postponed (pool, EMFILE) until: then the
                           queue fails; 0 = not stalled */
  uint32_t stall_ms;    /* current retry delay while stalled */
};

struct tcp {
  dmq_transport_t pub;
  uv_loop_t *loop;
  uv_poll_t *listener; /* polls lfd; accept4() is ours (EMFILE handling) */
  int lfd;             /* listening socket, -1 */
  int accept_paused;   /* listener stopped until accept_resume_at */
  uint64_t accept_resume_at;
  uint32_t accept_pause_ms;
  uv_timer_t timer;
  uint64_t timer_due; /* 0 = not armed */
  unsigned nhandles;  /* handles whose close callback has not run */
  int closing;
  tcp_sock_t *socks; /* every socket, closing ones included */
  size_t nopen;      /* sockets not closing */
  tcp_dest_t **buckets;
  size_t nbuckets, ndests;
  uint64_t rng;
  uint64_t idle_ms;
  uint64_t connect_timeout_ms;
  uint64_t frame_timeout_ms;
  size_t max_inbound, max_outbound;
  uint64_t partial_budget;
  size_t n_inbound, n_outbound; /* open, not closing */
  dmq_stream_stats_t st;        /* partial_bytes: sum of fcap of sockets */
  char local[DMQ__ADDR_STRLEN];
};

static const dmq_transport_ops_t tcp_ops;

static void tcp_sock_close(tcp_sock_t *s);
static void tcp_timer_cb(uv_timer_t *h);
static void tcp_accept_cb(uv_poll_t *h, int status, int events);

static uint64_t tcp_min(uint64_t a, uint64_t b) {
  return a < b ? a : b;
}

/* splitmix64: jitter only, quality is not critical */
static uint64_t tcp_rand(tcp_t *tcp) {
  uint64_t z = (tcp->rng += TCP_SPLITMIX_GAMMA);
  z = (z ^ (z >> 30)) * TCP_SPLITMIX_MUL1;
  z = (z ^ (z >> 27)) * TCP_SPLITMIX_MUL2;
  return z ^ (z >> 31);
}

/* ---- completions ---- */

static void tcp_msg_done(tcp_t *tcp, tcp_msg_t *m, int status) {
  void *cookie = m->cookie;
  free(m);
  /* a frame sent without a cookie is reported only when it failed (the
   * node counts it), and not for the transport's own close */
  if (cookie != NULL || (status != 0 && status != DMQ_ECLOSED))
    dmq_transport_send_done(&tcp->pub, cookie, status);
}

static void tcp_msgs_done(tcp_t *tcp, tcp_msg_t *list, int status) {
  while (list != NULL) {
    tcp_msg_t *next = list->next;
    tcp_msg_done(tcp, list, status);
    list = next;
  }
}

/* Detach d's queue (callbacks may send to d again while it is failed). */
static tcp_msg_t *tcp_dest_take_queue(tcp_dest_t *d) {
  tcp_msg_t *q = d->qhead;
  d->qhead = d->qtail = NULL;
  d->q_bytes = d->q_msgs = 0;
  return q;
}

/* Append list at *tail; returns the new tail (each message is walked
 * once). */
static tcp_msg_t **tcp_list_append(tcp_msg_t **tail, tcp_msg_t *list) {
  *tail = list;
  while (*tail != NULL)
    tail = &(*tail)->next;
  return tail;
}

/* ---- timer ---- */

/* Make sure the timer fires no later than due. hold: keep the loop alive
 * until then (messages are waiting for it). */
static void tcp_arm(tcp_t *tcp, uint64_t due, int hold) {
  if (tcp->closing)
    return;
  if (hold)
    uv_ref((uv_handle_t *)&tcp->timer);
  if (due == 0)
    due = 1;
  if (tcp->timer_due != 0 && tcp->timer_due <= due)
    return;
  uint64_t now = uv_now(tcp->loop);
  uv_timer_start(&tcp->timer, tcp_timer_cb, due > now ? due - now : 0, 0);
  tcp->timer_due = due;
}

static void tcp_backoff(tcp_t *tcp, tcp_dest_t *d, uint64_t now) {
  uint32_t b = d->backoff_ms == 0 ? TCP_BACKOFF_MIN_MS : d->backoff_ms * 2;
  if (b > TCP_BACKOFF_MAX_MS)
    b = TCP_BACKOFF_MAX_MS;
  d->backoff_ms = b;
  d->retry_at = now + b / 2 + tcp_rand(tcp) % (b / 2 + 1);
}

/* ---- destinations ---- */

static uint32_t tcp_hash(const char *s) {
  uint32_t h = TCP_FNV_OFFSET;
  for (; *s != '\0'; s++)
    h = (h ^ (uint8_t)*s) * TCP_FNV_PRIME;
  return h;
}

static int tcp_grow(tcp_t *tcp) {
  size_t n = tcp->nbuckets ? tcp->nbuckets * 2 : TCP_BUCKETS_INITIAL;
  tcp_dest_t **b = calloc(n, sizeof(*b));
  if (b == NULL)
    return DMQ_ENOMEM;
  for (size_t i = 0; i < tcp->nbuckets; i++) {
    tcp_dest_t *d = tcp->buckets[i];
    while (d != NULL) {
      tcp_dest_t *next = d->hnext;
      d->hnext = b[d->hash & (n - 1)];
      b[d->hash & (n - 1)] = d;
      d = next;
    }
  }
  free(tcp->buckets);
  tcp->buckets = b;
  tcp->nbuckets = n;
  return 0;
}

static tcp_dest_t *tcp_dest_get(tcp_t *tcp, const char *key,
                                const struct sockaddr_storage *sa) {
  uint32_t h = tcp_hash(key);
  if (tcp->nbuckets > 0) {
    for (tcp_dest_t *d = tcp->buckets[h & (tcp->nbuckets - 1)]; d != NULL;
         d = d->hnext)
      if (d->hash == h && strcmp(d->key, key) == 0)
        return d;
  }
  if (tcp->ndests >= tcp->nbuckets && tcp_grow(tcp) != 0)
    return NULL;
  tcp_dest_t *d = calloc(1, sizeof(*d));
  if (d == NULL)
    return NULL;
  d->hash = h;
  strcpy(d->key, key); /* key fits: both are DMQ__ADDR_STRLEN */
  d->sa = *sa;
  d->hnext = tcp->buckets[h & (tcp->nbuckets - 1)];
  tcp->buckets[h & (tcp->nbuckets - 1)] = d;
  tcp->ndests++;
  return d;
}

/* ---- sockets ---- */

static void tcp_finish(tcp_t *tcp) {
  /* queued messages that never got a connection */
  for (size_t i = 0; i < tcp->nbuckets; i++) {
    while (tcp->buckets[i] != NULL) {
      tcp_dest_t *d = tcp->buckets[i];
      tcp->buckets[i] = d->hnext;
      tcp_msgs_done(tcp, tcp_dest_take_queue(d), DMQ_ECLOSED);
      free(d);
    }
  }
  dmq__spare_detach();
  if (tcp->pub.on_closed != NULL)
    tcp->pub.on_closed(&tcp->pub);
  free(tcp->buckets);
  dmq__rxbuf_detach();
  free(tcp);
}

static void tcp_handle_gone(tcp_t *tcp) {
  if (--tcp->nhandles == 0 && tcp->closing)
    tcp_finish(tcp);
}

static void tcp_timer_closed(uv_handle_t *h) {
  tcp_handle_gone(h->data);
}

static void tcp_listener_closed(uv_handle_t *h) {
  tcp_t *tcp = h->data;
  if (tcp->listener == (uv_poll_t *)h) {
    tcp->listener = NULL;
    if (tcp->lfd >= 0)
      close(tcp->lfd); /* the poll handle does not own it */
    tcp->lfd = -1;
  }
  free(h);
  tcp_handle_gone(tcp);
}

static void tcp_sock_closed(uv_handle_t *h) {
  tcp_sock_t *s = h->data;
  tcp_t *tcp = s->tcp;
  if (s->dest != NULL && s->dest->sock == s)
    s->dest->sock = NULL; /* defensive: the connect callback detaches it */
  if (s->prev != NULL)
    s->prev->next = s->next;
  else
    tcp->socks = s->next;
  if (s->next != NULL)
    s->next->prev = s->prev;
  free(s->fbuf); /* NULL unless it was being delivered at close */
  tcp->st.partial_bytes -= s->fcap;
  free(s);
  tcp_handle_gone(tcp);
}

/* Release s's frame buffer (not while the node reads it). */
static void tcp_frame_free(tcp_sock_t *s) {
  if (s->delivering)
    return;
  free(s->fbuf);
  s->tcp->st.partial_bytes -= s->fcap;
  s->fbuf = NULL;
  s->fcap = 0;
}

static int tcp_is_nofd(int uverr) {
  return uverr == UV_EMFILE || uverr == UV_ENFILE;
}

/* A libuv socket handle in *out (for family: with its socket; AF_UNSPEC:
 * none yet). 0, DMQ_ENOMEM, TCP_E_NOFD (out of descriptors) or
 * DMQ_ETRANSPORT. */
static int tcp_sock_new(tcp_t *tcp, int family, tcp_sock_t **out) {
  *out = NULL;
  tcp_sock_t *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return DMQ_ENOMEM;
  int r = uv_tcp_init_ex(tcp->loop, &s->h, (unsigned)family);
  if (r != 0) {
    free(s);
    return tcp_is_nofd(r) ? TCP_E_NOFD : DMQ_ETRANSPORT;
  }
  *out = s;
  s->h.data = s;
  s->tcp = tcp;
  s->next = tcp->socks;
  if (tcp->socks != NULL)
    tcp->socks->prev = s;
  tcp->socks = s;
  tcp->nhandles++;
  tcp->nopen++;
  return 0;
}

/* Start closing s. Never runs callbacks: libuv cancels its connect and
 * writes later, from the loop. A connecting socket stays attached to its
 * destination until the connect callback (UV_ECANCELED) fails the queue. */
static void tcp_sock_close(tcp_sock_t *s) {
  if (s->closing)
    return;
  s->closing = 1;
  s->tcp->nopen--;
  if (s->inbound)
    s->tcp->n_inbound--;
  else
    s->tcp->n_outbound--;
  if (s->dest != NULL && s->connected) {
    s->dest->sock = NULL;
    s->dest = NULL;
  }
  s->in_frame = 0;
  s->hdr_have = 0;
  s->frame_deadline = 0;
  tcp_frame_free(s); /* the memory goes now, the handle from the loop */
  /* libuv closes the descriptor here, at once: callers short of
   * descriptors rely on it */
  uv_close((uv_handle_t *)&s->h, tcp_sock_closed);
}

/* Nothing in flight on s: no partial frame, no unfinished write, no queued
 * message, not being delivered from. Closing it loses nothing. */
static int tcp_sock_idle(const tcp_sock_t *s) {
  return s->connected && !s->closing && !s->delivering && !s->in_frame &&
         s->hdr_have == 0 && s->wq_msgs == 0 &&
         (s->dest == NULL || s->dest->qhead == NULL);
}

/* The least recently active idle socket: inbound (1), outbound (0) or
 * either (-1); NULL if none. */
static tcp_sock_t *tcp_lru_idle(tcp_t *tcp, int inbound) {
  tcp_sock_t *best = NULL;
  for (tcp_sock_t *s = tcp->socks; s != NULL; s = s->next) {
    if (!tcp_sock_idle(s) || (inbound >= 0 && s->inbound != inbound))
      continue;
    /* newest first: on a tie, the older socket wins */
    if (best == NULL || s->last_active <= best->last_active)
      best = s;
  }
  return best;
}

/* Out of descriptors: close the least recently active idle connection to
 * give one back (uv_close() closes the descriptor at once). 1 if one was
 * closed. */
static int tcp_shed(tcp_t *tcp) {
  tcp_sock_t *s = tcp_lru_idle(tcp, -1);
  if (s == NULL)
    return 0;
  tcp->st.emfile_shed++;
  tcp_sock_close(s);
  return 1;
}

/* ---- receive ---- */

static void tcp_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h;
  (void)suggested;
  /* borrowed from the process-wide pool until the read callback returns:
   * reads are consumed (or copied into the frame buffer) at once */
  char *p = dmq__rxbuf_get(TCP_READ_BUF);
  *buf = uv_buf_init(p, p != NULL ? TCP_READ_BUF : 0);
}

static void tcp_release_buf(const uv_buf_t *buf) {
  dmq__rxbuf_put(buf->base, TCP_READ_BUF);
}

static uint32_t tcp_be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         (uint32_t)p[3];
}

static void tcp_deliver(tcp_sock_t *s, const uint8_t *p, size_t len) {
  if (!s->tcp->closing)
    dmq_transport_recv(&s->tcp->pub, s->peer, p, len);
}

/* Room for need bytes of the frame: the buffer grows with the bytes that
 * arrived (doubling), never beyond the frame, and the transport's partial
 * frames together stay within the budget (DMQ_ELIMIT). */
static int tcp_frame_reserve(tcp_sock_t *s, size_t need) {
  tcp_t *tcp = s->tcp;
  if (need <= s->fcap)
    return 0;
  size_t cap = s->fcap ? s->fcap : TCP_FRAME_START;
  while (cap < need)
    cap *= 2;
  if (cap > s->flen)
    cap = s->flen;
  if (tcp->st.partial_bytes + (cap - s->fcap) > tcp->partial_budget)
    return DMQ_ELIMIT;
  uint8_t *b = realloc(s->fbuf, cap);
  if (b == NULL)
    return DMQ_ENOMEM;
  tcp->st.partial_bytes += cap - s->fcap;
  if (tcp->st.partial_bytes > tcp->st.partial_peak)
    tcp->st.partial_peak = tcp->st.partial_bytes;
  s->fbuf = b;
  s->fcap = cap;
  return 0;
}

/* Split the byte stream into frames: any number of frames per read, and
 * frames (headers included) split across reads. A frame that is complete
 * in the read buffer is delivered from it without a copy. */
static void tcp_parse(tcp_sock_t *s, const uint8_t *p, size_t n) {
  size_t mtu = s->tcp->pub.mtu;
  while (n > 0 && !s->closing) {
    if (!s->in_frame) {
      uint32_t flen;
      if (s->hdr_have == 0 && n >= TCP_FRAME_HDR) {
        flen = tcp_be32(p);
        p += TCP_FRAME_HDR;
        n -= TCP_FRAME_HDR;
      } else {
        size_t take = TCP_FRAME_HDR - s->hdr_have;
        if (take > n)
          take = n;
        memcpy(s->hdr + s->hdr_have, p, take);
        s->hdr_have += take;
        p += take;
        n -= take;
        if (s->hdr_have < TCP_FRAME_HDR)
          break;
        s->hdr_have = 0;
        flen = tcp_be32(s->hdr);
      }
      if (flen > mtu) {
        s->tcp->st.oversize_frames++;
        tcp_sock_close(s); /* protocol violation or hostile peer */
        break;
      }
      if (n >= flen) {
        s->frame_deadline = 0; /* whatever was partial is complete */
        tcp_deliver(s, p, flen);
        p += flen;
        n -= flen;
        continue;
      }
      s->in_frame = 1;
      s->flen = flen;
      s->fhave = 0;
      /* a header that ended the read: no buffer yet (and no memcpy to a
       * NULL one); the payload comes with the next read */
      if (n == 0)
        break;
    }
    size_t take = s->flen - s->fhave;
    if (take > n)
      take = n;
    int rc = tcp_frame_reserve(s, s->fhave + take);
    if (rc != 0) {
      if (rc == DMQ_ELIMIT)
        s->tcp->st.budget_drops++;
      tcp_sock_close(s);
      break;
    }
    memcpy(s->fbuf + s->fhave, p, take);
    s->fhave += take;
    p += take;
    n -= take;
    if (s->fhave == s->flen) {
      s->in_frame = 0;
      s->frame_deadline = 0;
      s->delivering = 1; /* the node may close s meanwhile: keep fbuf */
      tcp_deliver(s, s->fbuf, s->flen);
      s->delivering = 0;
      if (s->closing || s->fcap > TCP_FRAME_KEEP)
        tcp_frame_free(s);
    }
  }
  /* a frame begun (header bytes included) must complete in time */
  if (!s->closing && (s->in_frame || s->hdr_have > 0) &&
      s->frame_deadline == 0) {
    tcp_t *tcp = s->tcp;
    s->frame_deadline = uv_now(tcp->loop) + tcp->frame_timeout_ms;
    tcp_arm(tcp, s->frame_deadline, 0);
  }
}

static void tcp_read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  tcp_sock_t *s = st->data;
  tcp_t *tcp = s->tcp;
  if (nread > 0 && !s->closing) {
    s->last_active = uv_now(tcp->loop);
    if (s->dest != NULL)
      s->dest->last_active = s->last_active;
    tcp_parse(s, (const uint8_t *)buf->base, (size_t)nread);
  } else if (nread < 0) {
    tcp_sock_close(s); /* EOF or error; a partial frame is dropped */
  }
  tcp_release_buf(buf);
}

/* ---- send ---- */

static void tcp_write_cb(uv_write_t *req, int status) {
  tcp_msg_t *m = (tcp_msg_t *)((char *)req - offsetof(tcp_msg_t, req));
  tcp_sock_t *s = req->handle->data;
  tcp_t *tcp = s->tcp;
  s->wq_msgs--;
  s->wq_bytes -= m->size;
  int st = 0;
  if (status == 0) {
    s->last_active = uv_now(tcp->loop);
  } else {
    st = tcp->closing ? DMQ_ECLOSED : DMQ_ETRANSPORT;
    tcp_sock_close(s);
  }
  tcp_msg_done(tcp, m, st);
}

static int tcp_write(tcp_sock_t *s, tcp_msg_t *m) {
  uv_buf_t b = uv_buf_init((char *)m->frame, (unsigned)m->size);
  int r = uv_write(&m->req, (uv_stream_t *)&s->h, &b, 1, tcp_write_cb);
  if (r != 0)
    return r;
  s->wq_msgs++;
  s->wq_bytes += m->size;
  return 0;
}

/* s (connected) becomes d's connection: the queued messages are written
 * and the back-off is over. Returns the messages that could not be written
 * (for the caller to fail once its state is consistent). */
static tcp_msg_t *tcp_dest_attach(tcp_dest_t *d, tcp_sock_t *s, uint64_t now) {
  s->dest = d;
  d->sock = s;
  d->backoff_ms = 0;
  d->retry_at = 0;
  d->fail_pending = 0;
  d->stall_until = 0;
  d->stall_ms = 0;
  d->last_active = now;
  tcp_msg_t *m = tcp_dest_take_queue(d);
  while (m != NULL) {
    tcp_msg_t *next = m->next;
    if (tcp_write(s, m) != 0) {
      tcp_sock_close(s);
      return m; /* with the rest of the queue behind it */
    }
    m = next;
  }
  return NULL;
}

static void tcp_connect_cb(uv_connect_t *req, int status) {
  tcp_sock_t *s = req->handle->data;
  tcp_t *tcp = s->tcp;
  tcp_dest_t *d = s->dest;
  uint64_t now = uv_now(tcp->loop);

  if (status == 0 && !s->closing && d != NULL &&
      uv_read_start((uv_stream_t *)&s->h, tcp_alloc_cb, tcp_read_cb) == 0) {
    s->connected = 1;
    s->last_active = now;
    tcp_msg_t *failed = tcp_dest_attach(d, s, now);
    tcp_arm(tcp, now + tcp->idle_ms, 0);
    tcp_msgs_done(tcp, failed, DMQ_ETRANSPORT);
    return;
  }

  /* refused, unreachable, timed out (closed by the timer) or cancelled by
   * close(): the queued messages fail, the destination backs off */
  tcp_sock_close(s);
  s->dest = NULL;
  if (d == NULL)
    return;
  if (d->sock == s)
    d->sock = NULL;
  tcp_msg_t *failed = tcp_dest_take_queue(d);
  if (!tcp->closing)
    tcp_backoff(tcp, d, now);
  tcp_msgs_done(tcp, failed, tcp->closing ? DMQ_ECLOSED : DMQ_ETRANSPORT);
}

/* Start connecting to d. On failure nothing is left attached to d: 0,
 * TCP_E_BUSY (the pool is full of busy connections) or TCP_E_NOFD (no
 * descriptor) to try again later, or a DMQ_E* error. */
static int tcp_connect(tcp_t *tcp, tcp_dest_t *d, uint64_t now) {
  if (tcp->n_outbound >= tcp->max_outbound) {
    tcp_sock_t *victim = tcp_lru_idle(tcp, 0);
    if (victim == NULL)
      return TCP_E_BUSY;
    tcp->st.pool_evictions++;
    tcp_sock_close(victim);
  }
  tcp_sock_t *s;
  int rc = tcp_sock_new(tcp, d->sa.ss_family, &s);
  if (rc == TCP_E_NOFD) {
    tcp->st.emfile_connect++;
    /* an idle connection gives its descriptor back: try once more */
    if (tcp_shed(tcp))
      rc = tcp_sock_new(tcp, d->sa.ss_family, &s);
  }
  if (rc != 0)
    return rc;
  tcp->n_outbound++;
  memcpy(s->peer, d->key, sizeof(s->peer));
  s->connect_deadline = now + tcp->connect_timeout_ms;
  (void)uv_tcp_nodelay(&s->h, 1);
  if (uv_tcp_connect(&s->creq, &s->h, (struct sockaddr *)&d->sa,
                     tcp_connect_cb) != 0) {
    tcp_sock_close(s);
    return DMQ_ETRANSPORT;
  }
  s->dest = d;
  d->sock = s;
  tcp_arm(tcp, s->connect_deadline, 0);
  return 0;
}

/* Connect for d's queue. 0: connecting, or postponed (pool full of busy
 * connections, no descriptor) with a retry armed, for at most the connect
 * timeout; otherwise an error and the caller fails the queue. */
static int tcp_dest_connect(tcp_t *tcp, tcp_dest_t *d, uint64_t now) {
  int rc = tcp_connect(tcp, d, now);
  if (rc == 0) {
    d->stall_until = 0;
    d->stall_ms = 0;
    return 0;
  }
  if (rc == TCP_E_BUSY || rc == TCP_E_NOFD) {
    if (d->stall_until == 0)
      d->stall_until = now + tcp->connect_timeout_ms;
    if (now < d->stall_until) {
      d->stall_ms = d->stall_ms == 0
                        ? TCP_STALL_MIN_MS
                        : (uint32_t)tcp_min(d->stall_ms * 2u, TCP_STALL_MAX_MS);
      d->retry_at = now + d->stall_ms;
      tcp->st.connect_deferred++;
      tcp_arm(tcp, d->retry_at, 1);
      return 0;
    }
    d->stall_until = 0;
    d->stall_ms = 0;
    return DMQ_ETRANSPORT;
  }
  return rc;
}

static int tcp_send(dmq_transport_t *t, const char *addr, const void *buf,
                    size_t len, void *cookie) {
  tcp_t *tcp = t->impl;
  struct sockaddr_storage ss;
  char key[DMQ__ADDR_STRLEN];
  if (tcp->closing)
    return DMQ_ECLOSED;
  if (len > t->mtu || len > UINT32_MAX - TCP_FRAME_HDR)
    return DMQ_ETOOBIG;
  if (buf == NULL && len > 0)
    return DMQ_EINVAL;
  if (dmq__addr_parse(addr, "tcp", &ss) != 0 ||
      dmq__addr_port((struct sockaddr *)&ss) == 0 ||
      dmq__addr_format((struct sockaddr *)&ss, "tcp", key, sizeof(key)) < 0)
    return DMQ_EADDR;
  tcp_dest_t *d = tcp_dest_get(tcp, key, &ss);
  if (d == NULL)
    return DMQ_ENOMEM;

  tcp_sock_t *s = d->sock;
  int live = s != NULL && s->connected && !s->closing;
  size_t msgs = d->q_msgs + (live ? s->wq_msgs : 0);
  size_t bytes = d->q_bytes + (live ? s->wq_bytes : 0);
  size_t size = TCP_FRAME_HDR + len;
  if (msgs > 0 &&
      (msgs >= TCP_MAX_QUEUE_MSGS || bytes + size > TCP_MAX_QUEUE_BYTES))
    return DMQ_EAGAIN;
  uint8_t hdr[TCP_FRAME_HDR] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16),
                                (uint8_t)(len >> 8), (uint8_t)len};
  uint64_t now = uv_now(tcp->loop);
  size_t done = 0;
  if (live && cookie == NULL && msgs == 0) {
    /* Nothing ahead of it and no completion to report: write straight
     * from the caller's buffer (the common case for push/pull replies on
     * an established connection), and copy only what the kernel did not
     * take. Saves a copy and, when a seed answers a burst of joins, a
     * burst of frame-sized allocations. */
    uv_buf_t b[2] = {uv_buf_init((char *)hdr, TCP_FRAME_HDR),
                     uv_buf_init((char *)buf, (unsigned)len)};
    int r = uv_try_write((uv_stream_t *)&s->h, b, len > 0 ? 2 : 1);
    if (r < 0 && r != UV_EAGAIN) {
      tcp_sock_close(s);
      return DMQ_ETRANSPORT;
    }
    done = r > 0 ? (size_t)r : 0;
    d->last_active = s->last_active = now;
    if (done == size)
      return 0;
  }
  size_t rest = size - done;
  tcp_msg_t *m = malloc(sizeof(*m) + rest);
  if (m == NULL) {
    if (done > 0)
      tcp_sock_close(s); /* half a frame is on the wire: the stream is lost */
    return DMQ_ENOMEM;
  }
  m->next = NULL;
  m->cookie = cookie;
  m->size = rest;
  for (size_t i = done; i < TCP_FRAME_HDR; i++)
    m->frame[i - done] = hdr[i];
  size_t skip = done > TCP_FRAME_HDR ? done - TCP_FRAME_HDR : 0;
  size_t off = done < TCP_FRAME_HDR ? TCP_FRAME_HDR - done : 0;
  if (len > skip)
    memcpy(m->frame + off, (const uint8_t *)buf + skip, len - skip);

  d->last_active = now;
  if (live) {
    s->last_active = now;
    if (tcp_write(s, m) != 0) {
      free(m);
      tcp_sock_close(s);
      return DMQ_ETRANSPORT;
    }
    return 0;
  }
  if (d->qtail != NULL)
    d->qtail->next = m;
  else
    d->qhead = m;
  d->qtail = m;
  d->q_msgs++;
  d->q_bytes += size;
  if (d->sock == NULL) {
    if (d->fail_pending || now < d->retry_at) {
      tcp_arm(tcp, d->fail_pending ? now : d->retry_at, 1);
    } else if (tcp_dest_connect(tcp, d, now) != 0) {
      /* failed before any callback could report it: fail the queue from
       * the loop, not from inside send() */
      d->fail_pending = 1;
      tcp_arm(tcp, now, 1);
    }
  }
  return 0;
}

/* The timer: connect timeouts, idle closes, deferred failures, back-off
 * retries and forgetting unused destinations. */
static void tcp_timer_cb(uv_timer_t *h) {
  tcp_t *tcp = h->data;
  uint64_t now = uv_now(tcp->loop);
  uint64_t next = UINT64_MAX;
  int hold = 0;
  tcp_msg_t *failed = NULL, **failed_tail = &failed;

  tcp->timer_due = 0;
  uv_unref((uv_handle_t *)h);

  if (tcp->accept_paused) {
    if (now >= tcp->accept_resume_at) {
      tcp->accept_paused = 0;
      if (tcp->listener != NULL)
        uv_poll_start(tcp->listener, UV_READABLE, tcp_accept_cb);
    } else {
      next = tcp_min(next, tcp->accept_resume_at);
      hold = 1;
    }
  }

  for (tcp_sock_t *s = tcp->socks; s != NULL; s = s->next) {
    if (s->closing)
      continue;
    if (!s->connected) {
      if (now >= s->connect_deadline)
        tcp_sock_close(s); /* the connect callback fails the queue */
      else
        next = tcp_min(next, s->connect_deadline);
      continue;
    }
    if (s->frame_deadline != 0) {
      if (now >= s->frame_deadline) {
        tcp->st.frame_timeouts++;
        tcp_sock_close(s);
        continue;
      }
      next = tcp_min(next, s->frame_deadline);
    }
    uint64_t limit = tcp->idle_ms * (s->inbound ? TCP_INBOUND_IDLE_FACTOR : 1);
    if (now - s->last_active >= limit) {
      tcp->st.idle_closes++;
      tcp_sock_close(s);
    } else {
      next = tcp_min(next, s->last_active + limit);
    }
  }

  for (size_t i = 0; i < tcp->nbuckets; i++) {
    tcp_dest_t **pp = &tcp->buckets[i];
    while (*pp != NULL) {
      tcp_dest_t *d = *pp;
      if (d->sock == NULL && d->fail_pending) {
        d->fail_pending = 0;
        failed_tail = tcp_list_append(failed_tail, tcp_dest_take_queue(d));
        tcp_backoff(tcp, d, now);
      }
      if (d->sock == NULL && d->qhead != NULL) {
        if (now < d->retry_at) {
          next = tcp_min(next, d->retry_at);
          hold = 1;
        } else if (tcp_dest_connect(tcp, d, now) != 0) {
          failed_tail = tcp_list_append(failed_tail, tcp_dest_take_queue(d));
          tcp_backoff(tcp, d, now);
        }
      }
      if (d->sock == NULL && d->qhead == NULL) {
        /* unused: forget it once idle (keeps the back-off meanwhile) */
        uint64_t gc_at = d->last_active + tcp->idle_ms;
        if (now >= gc_at) {
          *pp = d->hnext;
          tcp->ndests--;
          free(d);
          continue;
        }
        next = tcp_min(next, gc_at);
      }
      pp = &d->hnext;
    }
  }

  if (next != UINT64_MAX)
    tcp_arm(tcp, next, hold);
  tcp_msgs_done(tcp, failed, DMQ_ETRANSPORT);
}

/* ---- listener ---- */

/* Stop accepting for a while (doubling), from the timer on. */
static void tcp_accept_pause(tcp_t *tcp) {
  if (tcp->accept_paused || tcp->listener == NULL)
    return;
  uint32_t p = tcp->accept_pause_ms == 0 ? TCP_ACCEPT_PAUSE_MIN_MS
                                         : tcp->accept_pause_ms * 2u;
  tcp->accept_pause_ms = (uint32_t)tcp_min(p, TCP_ACCEPT_PAUSE_MAX_MS);
  tcp->accept_paused = 1;
  tcp->accept_resume_at = uv_now(tcp->loop) + tcp->accept_pause_ms;
  uv_poll_stop(tcp->listener);
  tcp_arm(tcp, tcp->accept_resume_at, 1);
}

/* A connection accepted on fd from peer: becomes an inbound socket, within
 * the inbound cap. */
static void tcp_accept_one(tcp_t *tcp, int fd,
                           const struct sockaddr_storage *peer) {
  if (tcp->n_inbound >= tcp->max_inbound) {
    tcp_sock_t *victim = tcp_lru_idle(tcp, 1);
    if (victim == NULL) {
      tcp->st.inbound_rejected++;
      close(fd);
      return;
    }
    tcp->st.inbound_evicted++;
    tcp_sock_close(victim);
  }
  tcp_sock_t *s;
  if (tcp_sock_new(tcp, AF_UNSPEC, &s) != 0) {
    tcp->st.accept_errors++;
    close(fd);
    return;
  }
  s->inbound = 1;
  s->connected = 1;
  tcp->n_inbound++;
  s->last_active = uv_now(tcp->loop);
  if (uv_tcp_open(&s->h, (uv_os_sock_t)fd) != 0) {
    close(fd); /* not the handle's */
    tcp->st.accept_errors++;
    tcp_sock_close(s);
    return;
  }
  if (dmq__addr_format((const struct sockaddr *)peer, "tcp", s->peer,
                       sizeof(s->peer)) < 0 ||
      uv_read_start((uv_stream_t *)&s->h, tcp_alloc_cb, tcp_read_cb) != 0) {
    tcp_sock_close(s);
    return;
  }
  (void)uv_tcp_nodelay(&s->h, 1);
  tcp_arm(tcp, s->last_active + tcp->idle_ms * TCP_INBOUND_IDLE_FACTOR, 0);

  /* Register the connection under the peer's address, so that a reply sent
   * to `from` goes back over it instead of to an ephemeral port nobody
   * listens on (a destination that already has a connection keeps it). */
  struct sockaddr_storage canon;
  if (dmq__addr_parse(s->peer, "tcp", &canon) != 0)
    return;
  tcp_dest_t *d = tcp_dest_get(tcp, s->peer, &canon);
  if (d == NULL || d->sock != NULL)
    return;
  tcp_msgs_done(tcp, tcp_dest_attach(d, s, s->last_active), DMQ_ETRANSPORT);
}

/* The listening socket is readable: accept what is pending (a batch).
 * Out of descriptors: close an idle connection and retry, or refuse one
 * pending connection with the spare descriptor and pause. */
static void tcp_accept_cb(uv_poll_t *h, int status, int events) {
  tcp_t *tcp = h->data;
  (void)events;
  if (tcp->closing || tcp->lfd < 0)
    return;
  if (status < 0) {
    tcp->st.accept_errors++;
    tcp_accept_pause(tcp);
    return;
  }
  for (int i = 0; i < TCP_ACCEPT_BATCH && !tcp->closing; i++) {
    struct sockaddr_storage peer;
    socklen_t plen = sizeof(peer);
    int fd = accept4(tcp->lfd, (struct sockaddr *)&peer, &plen,
                     SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      int e = errno;
      if (e == EINTR || e == ECONNABORTED)
        continue;
      if (e == EAGAIN || e == EWOULDBLOCK)
        return;
      if (e == EMFILE || e == ENFILE) {
        /* accept4() wants a descriptor before it looks at the queue: after
         * an accept this may just mean the queue is empty. The listener
         * stays readable while connections wait: the next callback sees
         * them first. */
        if (i > 0)
          return;
        tcp->st.emfile_accept++;
        if (tcp_shed(tcp))
          continue; /* a descriptor is free again */
        /* nothing idle: refuse the pending connection with the spare
         * descriptor (common/spare.h), so that its peer learns at once */
        if (dmq__spare_refuse(tcp->lfd))
          tcp->st.accept_refused++;
      } else {
        tcp->st.accept_errors++;
      }
      tcp_accept_pause(tcp);
      return;
    }
    tcp->accept_pause_ms = 0;
    tcp_accept_one(tcp, fd, &peer);
  }
}

/* Listen on fd (bound; listening already when opened from the host) with
 * a poll handle, and learn the local address. On failure fd is closed and
 * DMQ_ETRANSPORT (or DMQ_ENOMEM) returned. */
static int tcp_start(tcp_t *tcp, int fd) {
  struct sockaddr_storage name;
  socklen_t namelen = sizeof(name);
  if (listen(fd, TCP_LISTEN_BACKLOG) != 0 ||
      getsockname(fd, (struct sockaddr *)&name, &namelen) != 0 ||
      dmq__addr_format((struct sockaddr *)&name, "tcp", tcp->local,
                       sizeof(tcp->local)) < 0) {
    tcp->local[0] = '\0';
    close(fd);
    return DMQ_ETRANSPORT;
  }
  uv_poll_t *h = malloc(sizeof(*h));
  if (h == NULL) {
    tcp->local[0] = '\0';
    close(fd);
    return DMQ_ENOMEM;
  }
  if (uv_poll_init_socket(tcp->loop, h, fd) != 0) {
    free(h);
    tcp->local[0] = '\0';
    close(fd);
    return DMQ_ETRANSPORT;
  }
  h->data = tcp;
  tcp->nhandles++;
  tcp->listener = h;
  tcp->lfd = fd;
  if (uv_poll_start(h, UV_READABLE, tcp_accept_cb) != 0) {
    tcp->local[0] = '\0';
    uv_close((uv_handle_t *)h, tcp_listener_closed); /* closes fd */
    return DMQ_ETRANSPORT;
  }
  return 0;
}

static int tcp_bind(dmq_transport_t *t, const char *addr) {
  tcp_t *tcp = t->impl;
  struct sockaddr_storage ss;
  if (tcp->closing)
    return DMQ_ECLOSED;
  if (tcp->listener != NULL)
    return DMQ_ESTATE;
  if (dmq__addr_parse(addr, "tcp", &ss) != 0)
    return DMQ_EADDR;
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return DMQ_ETRANSPORT;
  /* SO_REUSEADDR (as libuv's bind sets it), so that a restarted node can
   * bind its port again while old connections linger in TIME_WAIT */
  int one = 1;
  socklen_t salen = ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                             : sizeof(struct sockaddr_in);
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
      bind(fd, (struct sockaddr *)&ss, salen) != 0) {
    close(fd);
    return DMQ_ETRANSPORT;
  }
  return tcp_start(tcp, fd);
}

static int tcp_local_addr(dmq_transport_t *t, char *buf, size_t len) {
  tcp_t *tcp = t->impl;
  if (tcp->local[0] == '\0')
    return DMQ_ESTATE;
  size_t n = strlen(tcp->local);
  if (buf == NULL || len <= n)
    return DMQ_ETOOBIG;
  memcpy(buf, tcp->local, n + 1);
  return 0;
}

static void tcp_close(dmq_transport_t *t) {
  tcp_t *tcp = t->impl;
  if (tcp->closing)
    return;
  tcp->closing = 1;
  if (tcp->listener != NULL)
    uv_close((uv_handle_t *)tcp->listener, tcp_listener_closed);
  uv_close((uv_handle_t *)&tcp->timer, tcp_timer_closed);
  for (tcp_sock_t *s = tcp->socks; s != NULL; s = s->next)
    tcp_sock_close(s);
}

static const dmq_transport_ops_t tcp_ops = {
    .size = sizeof(dmq_transport_ops_t),
    .scheme = "tcp",
    .caps = DMQ_TRANSPORT_RELIABLE,
    .send = tcp_send,
    .close = tcp_close,
    .bind = tcp_bind,
    .local_addr = tcp_local_addr,
};

int dmq_tcp_transport_new(uv_loop_t *loop, dmq_transport_t **out) {
  if (loop == NULL || out == NULL)
    return DMQ_EINVAL;
  tcp_t *tcp = calloc(1, sizeof(*tcp));
  if (tcp == NULL)
    return DMQ_ENOMEM;
  tcp->pub.ops = &tcp_ops;
  tcp->pub.impl = tcp;
  tcp->pub.mtu = TCP_MAX_MESSAGE;
  tcp->loop = loop;
  tcp->idle_ms = TCP_IDLE_MS;
  tcp->connect_timeout_ms = TCP_CONNECT_TIMEOUT_MS;
  tcp->frame_timeout_ms = TCP_FRAME_TIMEOUT_MS;
  tcp->max_inbound = TCP_MAX_INBOUND;
  tcp->max_outbound = TCP_MAX_OUTBOUND;
  tcp->partial_budget = TCP_PARTIAL_BUDGET;
  tcp->lfd = -1;
  tcp->rng = uv_hrtime() ^ (uint64_t)(uintptr_t)tcp;
  if (uv_timer_init(loop, &tcp->timer) != 0) {
    free(tcp);
    return DMQ_ETRANSPORT;
  }
  tcp->timer.data = tcp;
  uv_unref((uv_handle_t *)&tcp->timer);
  tcp->nhandles = 1;
  dmq__rxbuf_attach();
  dmq__spare_attach();
  *out = &tcp->pub;
  return 0;
}

size_t dmq__tcp_connection_count(dmq_transport_t *t) {
  if (t == NULL || t->ops != &tcp_ops)
    return 0;
  return ((tcp_t *)t->impl)->nopen;
}

void dmq__tcp_set_idle_timeout(dmq_transport_t *t, uint64_t ms) {
  if (t == NULL || t->ops != &tcp_ops || ms == 0)
    return;
  ((tcp_t *)t->impl)->idle_ms = ms;
}

void dmq__tcp_set_connect_timeout(dmq_transport_t *t, uint64_t ms) {
  if (t == NULL || t->ops != &tcp_ops || ms == 0)
    return;
  ((tcp_t *)t->impl)->connect_timeout_ms = ms;
}

int dmq_tcp_transport_open(dmq_transport_t *t, int fd) {
  if (t == NULL || t->ops != &tcp_ops)
    return DMQ_EINVAL;
  tcp_t *tcp = t->impl;
  if (tcp->closing)
    return DMQ_ECLOSED;
  if (tcp->listener != NULL)
    return DMQ_ESTATE;
  struct sockaddr_storage ss;
  if (dmq__fd_check(fd, SOCK_STREAM, 1, &ss, NULL, 0) != 0)
    return DMQ_EINVAL;
  /* our own descriptor of the socket: the caller keeps fd */
  int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dfd < 0)
    return DMQ_ETRANSPORT;
  /* non-blocking (shared with the caller's descriptor, as documented) */
  int fl = fcntl(dfd, F_GETFL);
  if (fl < 0 || fcntl(dfd, F_SETFL, fl | O_NONBLOCK) != 0) {
    close(dfd);
    return DMQ_ETRANSPORT;
  }
  return tcp_start(tcp, dfd);
}

/* ---- limits and counters ---- */

/* The 0.3.1 layouts (new structs: their whole size). */
#define TCP_LIMITS_MIN_SIZE DMQ__SIZE_UPTO(dmq_stream_limits_t, partial_budget)
#define TCP_STATS_MIN_SIZE DMQ__SIZE_UPTO(dmq_stream_stats_t, partial_peak)

static void tcp_limits_defaults(dmq_stream_limits_t *l) {
  memset(l, 0, sizeof(*l));
  l->size = sizeof(*l);
  l->frame_timeout_ms = TCP_FRAME_TIMEOUT_MS;
  l->idle_timeout_ms = TCP_IDLE_MS;
  l->max_inbound = TCP_MAX_INBOUND;
  l->max_outbound = TCP_MAX_OUTBOUND;
  l->partial_budget = TCP_PARTIAL_BUDGET;
}

int dmq_stream_limits_init_sized(dmq_stream_limits_t *l, size_t size) {
  dmq_stream_limits_t d;
  tcp_limits_defaults(&d);
  return dmq__sized_init(l, size, &d, sizeof(d), TCP_LIMITS_MIN_SIZE);
}

int dmq_tcp_transport_set_limits(dmq_transport_t *t,
                                 const dmq_stream_limits_t *l) {
  if (t == NULL || t->ops != &tcp_ops || l == NULL)
    return DMQ_EINVAL;
  dmq_stream_limits_t v;
  tcp_limits_defaults(&v);
  if (dmq__sized_in(&v, sizeof(v), l, l->size, TCP_LIMITS_MIN_SIZE) != 0 ||
      v.frame_timeout_ms == 0 || v.idle_timeout_ms == 0 || v.max_inbound == 0 ||
      v.max_outbound == 0 || v.partial_budget == 0)
    return DMQ_EINVAL;
  tcp_t *tcp = t->impl;
  if (tcp->closing)
    return DMQ_ECLOSED;
  tcp->frame_timeout_ms = v.frame_timeout_ms;
  tcp->idle_ms = v.idle_timeout_ms;
  tcp->max_inbound = v.max_inbound;
  tcp->max_outbound = v.max_outbound;
  tcp->partial_budget = v.partial_budget;
  /* shorter deadlines: let the timer look again now */
  tcp_arm(tcp, uv_now(tcp->loop), 0);
  return 0;
}

int dmq_tcp_transport_stats_sized(dmq_transport_t *t, dmq_stream_stats_t *out,
                                  size_t size) {
  if (t == NULL || t->ops != &tcp_ops)
    return DMQ_EINVAL;
  tcp_t *tcp = t->impl;
  dmq_stream_stats_t st = tcp->st;
  st.size = sizeof(st);
  st.inbound = tcp->n_inbound;
  st.outbound = tcp->n_outbound;
  return dmq__sized_out(out, size, &st, sizeof(st), TCP_STATS_MIN_SIZE);
}
