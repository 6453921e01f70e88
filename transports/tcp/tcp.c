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
 * Inbound: accepted connections are read and each frame is handed to
 * dmq_transport_recv() with from = "tcp://peer_ip:peer_port" (the peer's
 * ephemeral port). The connection is also registered as the destination
 * for that address, so a reply sent to `from` travels back over it; frames
 * arriving on an outbound connection are delivered with from = the
 * destination's address. Either way `from` is an address one can answer.
 *
 * One timer drives connect timeouts, back-off retries, idle closes and the
 * forgetting of unused destinations; it is armed for the earliest deadline
 * and only keeps the loop alive while messages wait for a retry. Completions
 * always come from the loop (libuv callbacks or the timer), never from
 * inside send() or close(). close() closes every handle; libuv cancels the
 * outstanding connects and writes (DMQ_ECLOSED), queued messages complete
 * with DMQ_ECLOSED, then on_closed runs and the transport frees itself.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/addr.h"
#include "common/fdcheck.h"
#include "common/rxbuf.h"
#include "dmq/uv.h"
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
/* Inbound connections get this multiple of the idle timeout, so that the
 * connecting side, which knows when it has nothing more to send, normally
 * closes first and a message never races a close by the receiver. */
#define TCP_INBOUND_IDLE_FACTOR 2u
/* listen(2) backlog: connection bursts when a cluster starts. */
#define TCP_LISTEN_BACKLOG 128
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
  int fail_pending; /* a connect failed inside send(): fail the queue from
                       the loop */
};

struct tcp {
  dmq_transport_t pub;
  uv_loop_t *loop;
  uv_tcp_t *listener;
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
  char local[DMQ__ADDR_STRLEN];
};

static const dmq_transport_ops_t tcp_ops;

static void tcp_sock_close(tcp_sock_t *s);
static void tcp_timer_cb(uv_timer_t *h);

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
  if (tcp->listener == (uv_tcp_t *)h)
    tcp->listener = NULL;
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
  free(s->fbuf);
  free(s);
  tcp_handle_gone(tcp);
}

static tcp_sock_t *tcp_sock_new(tcp_t *tcp, int family) {
  tcp_sock_t *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return NULL;
  if (uv_tcp_init_ex(tcp->loop, &s->h, (unsigned)family) != 0) {
    free(s);
    return NULL;
  }
  s->h.data = s;
  s->tcp = tcp;
  s->next = tcp->socks;
  if (tcp->socks != NULL)
    tcp->socks->prev = s;
  tcp->socks = s;
  tcp->nhandles++;
  tcp->nopen++;
  return s;
}

/* Start closing s. Never runs callbacks: libuv cancels its connect and
 * writes later, from the loop. A connecting socket stays attached to its
 * destination until the connect callback (UV_ECANCELED) fails the queue. */
static void tcp_sock_close(tcp_sock_t *s) {
  if (s->closing)
    return;
  s->closing = 1;
  s->tcp->nopen--;
  if (s->dest != NULL && s->connected) {
    s->dest->sock = NULL;
    s->dest = NULL;
  }
  uv_close((uv_handle_t *)&s->h, tcp_sock_closed);
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

static int tcp_frame_reserve(tcp_sock_t *s, size_t need) {
  if (need <= s->fcap)
    return 0;
  size_t cap = s->fcap ? s->fcap : TCP_FRAME_START;
  while (cap < need)
    cap *= 2;
  if (cap > s->flen)
    cap = s->flen;
  uint8_t *b = realloc(s->fbuf, cap);
  if (b == NULL)
    return DMQ_ENOMEM;
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
        tcp_sock_close(s); /* protocol violation or hostile peer */
        break;
      }
      if (n >= flen) {
        tcp_deliver(s, p, flen);
        p += flen;
        n -= flen;
        continue;
      }
      s->in_frame = 1;
      s->flen = flen;
      s->fhave = 0;
      if (n == 0)
        break; /* a header alone: its payload comes with the next read */
    }
    size_t take = s->flen - s->fhave;
    if (take > n)
      take = n;
    if (tcp_frame_reserve(s, s->fhave + take) != 0) {
      tcp_sock_close(s);
      break;
    }
    memcpy(s->fbuf + s->fhave, p, take);
    s->fhave += take;
    p += take;
    n -= take;
    if (s->fhave == s->flen) {
      s->in_frame = 0;
      tcp_deliver(s, s->fbuf, s->flen);
      if (s->fcap > TCP_FRAME_KEEP) {
        free(s->fbuf);
        s->fbuf = NULL;
        s->fcap = 0;
      }
    }
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

/* Start connecting to d. On failure nothing is left attached to d. */
static int tcp_connect(tcp_t *tcp, tcp_dest_t *d, uint64_t now) {
  tcp_sock_t *s = tcp_sock_new(tcp, d->sa.ss_family);
  if (s == NULL)
    return DMQ_ENOMEM;
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
    } else if (tcp_connect(tcp, d, now) != 0) {
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
    uint64_t limit = tcp->idle_ms * (s->inbound ? TCP_INBOUND_IDLE_FACTOR : 1);
    if (now - s->last_active >= limit)
      tcp_sock_close(s);
    else
      next = tcp_min(next, s->last_active + limit);
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
        } else if (tcp_connect(tcp, d, now) != 0) {
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

static void tcp_accept_cb(uv_stream_t *server, int status) {
  tcp_t *tcp = server->data;
  struct sockaddr_storage peer;
  int plen = (int)sizeof(peer);
  if (status < 0 || tcp->closing)
    return;
  tcp_sock_t *s = tcp_sock_new(tcp, AF_UNSPEC);
  if (s == NULL)
    return; /* out of memory: libuv retries on the next readable event */
  s->inbound = 1;
  s->connected = 1;
  s->last_active = uv_now(tcp->loop);
  if (uv_accept(server, (uv_stream_t *)&s->h) != 0 ||
      uv_tcp_getpeername(&s->h, (struct sockaddr *)&peer, &plen) != 0 ||
      dmq__addr_format((struct sockaddr *)&peer, "tcp", s->peer,
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

/* The handle h (bound, or opened on a bound socket) listens and learns
 * its local address. On failure h is closed and DMQ_ETRANSPORT returned. */
static int tcp_start(tcp_t *tcp, uv_tcp_t *h) {
  struct sockaddr_storage name;
  int namelen = (int)sizeof(name);
  if (uv_listen((uv_stream_t *)h, TCP_LISTEN_BACKLOG, tcp_accept_cb) != 0 ||
      uv_tcp_getsockname(h, (struct sockaddr *)&name, &namelen) != 0 ||
      dmq__addr_format((struct sockaddr *)&name, "tcp", tcp->local,
                       sizeof(tcp->local)) < 0) {
    tcp->local[0] = '\0';
    uv_close((uv_handle_t *)h, tcp_listener_closed);
    return DMQ_ETRANSPORT;
  }
  tcp->listener = h;
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
  uv_tcp_t *h = malloc(sizeof(*h));
  if (h == NULL)
    return DMQ_ENOMEM;
  if (uv_tcp_init_ex(tcp->loop, h, ss.ss_family) != 0) {
    free(h);
    return DMQ_ETRANSPORT;
  }
  h->data = tcp;
  tcp->nhandles++;
  /* libuv sets SO_REUSEADDR, so a restarted node can bind its port again
   * while old connections linger in TIME_WAIT */
  if (uv_tcp_bind(h, (struct sockaddr *)&ss, 0) != 0) {
    uv_close((uv_handle_t *)h, tcp_listener_closed);
    return DMQ_ETRANSPORT;
  }
  return tcp_start(tcp, h);
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
  tcp->rng = uv_hrtime() ^ (uint64_t)(uintptr_t)tcp;
  if (uv_timer_init(loop, &tcp->timer) != 0) {
    free(tcp);
    return DMQ_ETRANSPORT;
  }
  tcp->timer.data = tcp;
  uv_unref((uv_handle_t *)&tcp->timer);
  tcp->nhandles = 1;
  dmq__rxbuf_attach();
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
  uv_tcp_t *h = malloc(sizeof(*h));
  if (h == NULL) {
    close(dfd);
    return DMQ_ENOMEM;
  }
  if (uv_tcp_init_ex(tcp->loop, h, AF_UNSPEC) != 0) {
    free(h);
    close(dfd);
    return DMQ_ETRANSPORT;
  }
  h->data = tcp;
  tcp->nhandles++;
  if (uv_tcp_open(h, (uv_os_sock_t)dfd) != 0) {
    close(dfd); /* not the handle's */
    uv_close((uv_handle_t *)h, tcp_listener_closed);
    return DMQ_ETRANSPORT;
  }
  return tcp_start(tcp, h);
}
