/* Transport conformance: the contract of dmq/transport.h, checked against
 * every transport there is: the socket transports (UDP, TCP) on 127.0.0.1
 * and ::1, the host transport (dmq/host.h) over a carrier in this file, and
 * the simulator's transports (tests/sim) driven from the test's loop.
 *
 * One suite of generic tests is run for every row of the factory table,
 * followed by tests of what only one transport has (TCP connection reuse,
 * reconnect, framing; UDP batched receive) and of the shared address
 * parser. A row declares what its transport has beyond the core of the
 * contract (F_* flags: socket addresses, a synchronous close, ...); the
 * generic tests skip (cmocka skip()) or adapt the parts that need what a row
 * lacks. The core runs for every row: an address for each endpoint (bind to
 * port 0 and learn the port, or the address a loop-less transport is given),
 * send/receive integrity, the mtu and DMQ_ETOOBIG, DMQ_EADDR for bad
 * addresses, close with sends pending (every completion exactly once and
 * before on_closed), send after close refused with DMQ_ECLOSED (also from
 * inside the transport's callbacks), close from inside callbacks.
 *
 * Every wait runs the loop until a condition holds, under a watchdog timer
 * that fails the test after WATCHDOG_MS: nothing sleeps to synchronise.
 * Each test ends by closing its transports and checking that every send
 * accepted with a cookie completed exactly once and before on_closed, that
 * on_closed ran once, that nothing was received after it, and that the loop
 * is left without a single handle (uv_loop_close succeeds).
 *
 * Every row meets the whole core: no check is relaxed for any transport. A
 * transport that breaks part of the contract fails the suite.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "common/addr.h"
#include "dmq/host.h"
#include "dmq/uv.h"
#include "sim.h"
#include "tcp/tcp.h"
#include "udp/udp.h"

/* Longest any single wait may take before the test fails. */
#define WATCHDOG_MS 5000
/* Transports one test can use (and hosts in a simulated world). */
#define MAX_EPS 4
/* Distinct cookies (and received messages) one endpoint tracks. */
#define MAX_COOKIES 8192
#define MAX_RECORDS 8192
/* Cookie of the sends tried after close (they must be refused). */
#define REUSE_SEQ (MAX_COOKIES - 1)
/* Payload header written by make_payload(): seq and length, 32-bit each. */
#define PAYLOAD_HDR 8
/* Largest payload the tests build in the shared buffer. */
#define MAX_PAYLOAD (1024 * 1024)
/* What the simulator carries as one stream message at most. */
#define SIM_STREAM_MAX (16u * 1024u * 1024u)

typedef struct ctx ctx_t;
typedef struct ep ep_t;

/* ---- what a row has beyond the core of the contract ------------------- */

enum {
  /* Socket addresses: bind("<scheme>://<ip>:<port>") with port 0 and
   * local_addr() to learn the port, DMQ_ETRANSPORT for a port that is
   * taken, the plain "<ip>:<port>" form, IPv6, a `from` that is the
   * sender's IP. A row without it has neither bind() nor local_addr()
   * (transport.h allows that for a transport that does no I/O of its own)
   * and its endpoints get their address from the row's assign(). */
  F_PORTS = 1u << 0,
  /* A send to an address nobody listens on completes with DMQ_ETRANSPORT
   * (a connection-oriented transport notices). */
  F_REPORTS_UNREACHABLE = 1u << 1,
  /* No event loop of its own: close() runs on_closed before it returns,
   * and the transport may be gone once it has returned. The host transport
   * (dmq/host.h) also completes what is pending, with DMQ_ECLOSED, inside
   * close(), just before on_closed: transport.h says completions never run
   * inside close(), host.h documents that they do. */
  F_CLOSE_SYNC = 1u << 2,
};

typedef struct factory {
  const char *name;
  const char *scheme;
  uint32_t caps;
  size_t mtu;     /* t->mtu of a new transport */
  unsigned flags; /* F_* */
  /* Make e->t (on e->c's loop, or in its rig). */
  int (*create)(ep_t *e);
  /* Rows without F_PORTS: fill e->addr with the endpoint's address; an
   * address no endpoint ever has; addresses send() must refuse with
   * DMQ_EADDR (NULL-terminated). */
  void (*assign)(ep_t *e);
  const char *nowhere;
  const char *const *bad;
  /* What carries the bytes of a loop-less transport on the test loop,
   * made before the test and released after it: rig_fini() closes its
   * handles (freeing happens in their close callbacks) and returns 0, or
   * -1 if the rig saw a failure. */
  int (*rig_init)(ctx_t *c);
  int (*rig_fini)(ctx_t *c);
} factory_t;

/* ---- test context ------------------------------------------------------ */

struct ep {
  ctx_t *c;
  dmq_transport_t *t; /* NULL once on_closed ran */
  int used;
  int close_requested;
  int closed; /* on_closed calls */
  char addr[DMQ__ADDR_STRLEN];
  /* received */
  size_t nrecv;
  size_t bad_payload;
  size_t recv_after_closed;
  uint32_t seq[MAX_RECORDS];
  size_t len[MAX_RECORDS];
  char first_from[DMQ__ADDR_STRLEN];
  size_t from_mismatch;
  /* completions, indexed by cookie */
  size_t naccepted; /* sends accepted with a cookie */
  size_t ndone;
  size_t ndone_at_closed;
  size_t done_after_closed;
  size_t unknown_cookie;
  size_t nocookie_failed; /* sends without a cookie reported as failed */
  uint16_t done_count[MAX_COOKIES];
  int done_status[MAX_COOKIES];
  /* behaviour knobs */
  int close_on_recv;
  /* once, from inside on_recv: a send without a cookie to this address */
  const char *send_on_recv;
  int close_on_done;
  /* once close() was called: try to send from inside every callback
   * (expecting DMQ_ECLOSED), and close again from inside on_closed */
  int check_reuse;
  char reuse_to[DMQ__ADDR_STRLEN];
  size_t reuse_tries, reuse_bad;
};

struct ctx {
  uv_loop_t loop;
  uv_timer_t watchdog;
  int timed_out;
  const factory_t *f;
  void *rig; /* the row's carrier or simulated world */
  ep_t ep[MAX_EPS];
};

static uint8_t payload_buf[MAX_PAYLOAD];

static void *cookie_of(size_t i) {
  return (void *)(uintptr_t)(i + 1);
}

static size_t ep_index(const ep_t *e) {
  return (size_t)(e - e->c->ep);
}

static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         (uint32_t)p[3];
}

static uint8_t pattern(uint32_t seq, size_t i) {
  return (uint8_t)(seq * 31u + i * 7u + (i >> 8));
}

/* Fill payload_buf with a self-describing payload of len bytes (payloads
 * shorter than the header use the pattern of seq 0). */
static const uint8_t *make_payload(uint32_t seq, size_t len) {
  assert_true(len <= MAX_PAYLOAD);
  for (size_t i = 0; i < len; i++)
    payload_buf[i] = pattern(len >= PAYLOAD_HDR ? seq : 0, i);
  if (len >= PAYLOAD_HDR) {
    put32(payload_buf, seq);
    put32(payload_buf + 4, (uint32_t)len);
  }
  return payload_buf;
}

/* seq of a payload made by make_payload(), or -1 if it is corrupt. Short
 * payloads carry no header: they are checked against seq_hint. */
static int64_t check_payload(const uint8_t *p, size_t len, uint32_t seq_hint) {
  uint32_t seq = seq_hint;
  if (len >= PAYLOAD_HDR) {
    seq = get32(p);
    if (get32(p + 4) != len)
      return -1;
  }
  for (size_t i = PAYLOAD_HDR < len ? PAYLOAD_HDR : len; i < len; i++)
    if (p[i] != pattern(seq, i))
      return -1;
  return seq;
}

/* ---- hooks ---- */

/* After close(): t refuses to send, also from inside its callbacks. */
static void try_reuse(dmq_transport_t *t, ep_t *e) {
  if (!e->check_reuse)
    return;
  const char *to = e->reuse_to[0] != '\0' ? e->reuse_to : e->addr;
  e->reuse_tries++;
  int rc1 = t->ops->send(t, to, "x", 1, cookie_of(REUSE_SEQ));
  int rc2 = t->ops->send(t, to, "x", 1, NULL);
  if (rc1 != DMQ_ECLOSED || rc2 != DMQ_ECLOSED) {
    print_error("%s: send after close: %s, %s\n", e->c->f->name,
                dmq_err_name(rc1), dmq_err_name(rc2));
    e->reuse_bad++;
  }
}

static void on_recv(dmq_transport_t *t, const char *from, const void *buf,
                    size_t len) {
  ep_t *e = t->owner;
  if (e->closed)
    e->recv_after_closed++;
  int64_t seq = check_payload(buf, len, 0);
  if (seq < 0 || from == NULL)
    e->bad_payload++;
  if (e->nrecv == 0 && from != NULL)
    snprintf(e->first_from, sizeof(e->first_from), "%s", from);
  else if (from == NULL || strcmp(from, e->first_from) != 0)
    e->from_mismatch++;
  if (e->nrecv < MAX_RECORDS) {
    e->seq[e->nrecv] = seq < 0 ? UINT32_MAX : (uint32_t)seq;
    e->len[e->nrecv] = len;
  }
  e->nrecv++;
  if (e->send_on_recv != NULL) {
    const char *to = e->send_on_recv;
    e->send_on_recv = NULL;
    (void)t->ops->send(t, to, buf, len, NULL);
  }
  if (e->close_on_recv && !e->close_requested) {
    e->close_requested = 1;
    t->ops->close(t);
    try_reuse(t, e); /* still inside the transport's callback */
  }
}

static void on_send_done(dmq_transport_t *t, void *cookie, int status) {
  ep_t *e = t->owner;
  uintptr_t i = (uintptr_t)cookie - 1;
  if (e->closed)
    e->done_after_closed++;
  if (cookie == NULL && status < 0 && status != DMQ_ECLOSED) {
    e->nocookie_failed++; /* transport.h: a later failure, counted */
    return;
  }
  if (cookie == NULL || i >= MAX_COOKIES) {
    e->unknown_cookie++;
    return;
  }
  e->done_count[i]++;
  e->done_status[i] = status;
  e->ndone++;
  if (e->close_on_done && !e->close_requested) {
    e->close_requested = 1;
    t->ops->close(t);
  }
  if (e->close_requested)
    try_reuse(t, e);
}

static void on_closed(dmq_transport_t *t) {
  ep_t *e = t->owner;
  if (++e->closed > 1)
    return; /* a repeated on_closed: counted, judged by teardown */
  e->ndone_at_closed = e->ndone;
  if (e->check_reuse) {
    try_reuse(t, e);
    t->ops->close(t); /* closing again is harmless */
  }
  e->t = NULL;
}

/* ---- loop helpers ---- */

static void watchdog_cb(uv_timer_t *h) {
  ctx_t *c = h->data;
  c->timed_out = 1;
}

typedef int (*pred_fn)(ctx_t *c, const void *arg);

/* Run the loop until pred holds or the watchdog fires; returns pred. */
static int run_until(ctx_t *c, pred_fn pred, const void *arg) {
  c->timed_out = 0;
  uv_timer_start(&c->watchdog, watchdog_cb, WATCHDOG_MS, 0);
  while (!pred(c, arg) && !c->timed_out)
    uv_run(&c->loop, UV_RUN_ONCE);
  uv_timer_stop(&c->watchdog);
  return pred(c, arg);
}

typedef struct want {
  const ep_t *e;
  size_t n;
} want_t;

static int pred_recv(ctx_t *c, const void *arg) {
  const want_t *w = arg;
  (void)c;
  return w->e->nrecv >= w->n;
}

static int pred_done(ctx_t *c, const void *arg) {
  const want_t *w = arg;
  (void)c;
  return w->e->ndone >= w->n;
}

static int pred_nocookie_failed(ctx_t *c, const void *arg) {
  const want_t *w = arg;
  (void)c;
  return w->e->nocookie_failed >= w->n;
}

static int pred_closed(ctx_t *c, const void *arg) {
  const ep_t *e = arg;
  (void)c;
  return e->closed > 0;
}

static int pred_all_closed(ctx_t *c, const void *arg) {
  (void)arg;
  for (size_t i = 0; i < MAX_EPS; i++)
    if (c->ep[i].used && c->ep[i].closed == 0)
      return 0;
  return 1;
}

/* Every endpoint closed, and every send it accepted completed. */
static int pred_all_settled(ctx_t *c, const void *arg) {
  for (size_t i = 0; i < MAX_EPS; i++)
    if (c->ep[i].used && c->ep[i].ndone < c->ep[i].naccepted)
      return 0;
  return pred_all_closed(c, arg);
}

static int pred_conns(ctx_t *c, const void *arg) {
  const want_t *w = arg;
  (void)c;
  return w->e->t != NULL && dmq__tcp_connection_count(w->e->t) == w->n;
}

#define WAIT_RECV(c, ep, count)                                                \
  do {                                                                         \
    want_t w_ = {(ep), (count)};                                               \
    assert_true(run_until((c), pred_recv, &w_));                               \
  } while (0)
#define WAIT_DONE(c, ep, count)                                                \
  do {                                                                         \
    want_t w_ = {(ep), (count)};                                               \
    assert_true(run_until((c), pred_done, &w_));                               \
  } while (0)
#define WAIT_NOCOOKIE_FAILED(c, ep, count)                                     \
  do {                                                                         \
    want_t w_ = {(ep), (count)};                                               \
    assert_true(run_until((c), pred_nocookie_failed, &w_));                    \
  } while (0)
#define WAIT_CONNS(c, ep, count)                                               \
  do {                                                                         \
    want_t w_ = {(ep), (count)};                                               \
    assert_true(run_until((c), pred_conns, &w_));                              \
  } while (0)

/* ======================================================================
 * Rigs: how each row makes its transports
 * ====================================================================== */

/* ---- socket transports: on the test's loop ---- */

static int udp_create(ep_t *e) {
  return dmq_udp_transport_new(&e->c->loop, &e->t);
}

/* UDP with uv_udp_try_send() disabled: the generic suite then also covers
 * the copied, queued send path. */
static int udp_queued_create(ep_t *e) {
  int rc = udp_create(e);
  if (rc == 0)
    dmq__udp_set_queued_only(e->t, 1);
  return rc;
}

static int tcp_create(ep_t *e) {
  return dmq_tcp_transport_new(&e->c->loop, &e->t);
}

/* ---- the host transport and its carrier ----
 *
 * The host transport does no I/O: it hands every message to the host
 * program's send_fn, and the host program hands received messages in with
 * dmq_host_transport_input(). The "host program" here is a FIFO carrier on
 * the test loop: send_fn appends (to, from, bytes); an idle handle, active
 * while the FIFO is not empty, delivers each message to the open endpoint
 * whose address is `to` (a message for nobody is lost, as on a network),
 * then calls dmq_host_transport_flush() on every open endpoint, so that
 * completions are delivered from the loop, as host.h asks of a host that
 * sends with cookies. Endpoints are named "host:ep<index>". */

typedef struct hmsg {
  struct hmsg *next;
  char *to, *from;
  size_t len;
  unsigned char mem[]; /* bytes, then to, then from */
} hmsg_t;

typedef struct carrier {
  uv_idle_t idle;
  ctx_t *c;
  hmsg_t *head, **tail;
  size_t errors; /* input()/flush() failures */
} carrier_t;

static ep_t *ep_by_addr(ctx_t *c, const char *addr) {
  for (size_t i = 0; i < MAX_EPS; i++) {
    ep_t *e = &c->ep[i];
    if (e->used && e->t != NULL && strcmp(e->addr, addr) == 0)
      return e;
  }
  return NULL;
}

static void carrier_cb(uv_idle_t *h) {
  carrier_t *k = h->data;
  ctx_t *c = k->c;
  /* what is queued now; what the callbacks below send waits a turn */
  hmsg_t *m = k->head;
  k->head = NULL;
  k->tail = &k->head;
  while (m != NULL) {
    hmsg_t *next = m->next;
    ep_t *d = ep_by_addr(c, m->to);
    if (d != NULL &&
        dmq_host_transport_input(d->t, m->from[0] != '\0' ? m->from : NULL,
                                 m->mem, m->len) != 0)
      k->errors++;
    free(m);
    m = next;
  }
  for (size_t i = 0; i < MAX_EPS; i++) {
    ep_t *e = &c->ep[i];
    if (e->used && e->t != NULL && dmq_host_transport_flush(e->t) != 0)
      k->errors++;
  }
  if (k->head == NULL)
    uv_idle_stop(h);
}

static int carrier_send(void *ud, const char *dst, const void *buf,
                        size_t len) {
  ep_t *e = ud;
  carrier_t *k = e->c->rig;
  size_t tl = strlen(dst) + 1, fl = strlen(e->addr) + 1;
  hmsg_t *m = malloc(sizeof(*m) + len + tl + fl);
  if (m == NULL)
    return DMQ_ENOMEM;
  m->next = NULL;
  m->len = len;
  if (len > 0)
    memcpy(m->mem, buf, len);
  m->to = (char *)m->mem + len;
  memcpy(m->to, dst, tl);
  m->from = m->to + tl;
  memcpy(m->from, e->addr, fl);
  *k->tail = m;
  k->tail = &m->next;
  uv_idle_start(&k->idle, carrier_cb);
  return 0;
}

static int host_create(ep_t *e) {
  return dmq_host_transport_new(carrier_send, e, &e->t);
}

static void host_assign(ep_t *e) {
  snprintf(e->addr, sizeof(e->addr), "host:ep%zu", ep_index(e));
}

static int carrier_init(ctx_t *c) {
  carrier_t *k = calloc(1, sizeof(*k));
  if (k == NULL || uv_idle_init(&c->loop, &k->idle) != 0) {
    free(k);
    return -1;
  }
  k->c = c;
  k->tail = &k->head;
  k->idle.data = k;
  c->rig = k;
  return 0;
}

static void carrier_closed(uv_handle_t *h) {
  carrier_t *k = h->data;
  while (k->head != NULL) { /* lost in transit */
    hmsg_t *m = k->head;
    k->head = m->next;
    free(m);
  }
  free(k);
}

static int carrier_fini(ctx_t *c) {
  carrier_t *k = c->rig;
  int rc = k->errors == 0 ? 0 : -1;
  if (rc != 0)
    print_error("carrier: %zu input/flush calls failed\n", k->errors);
  uv_close((uv_handle_t *)&k->idle, carrier_closed);
  return rc;
}

static const char *const host_bad[] = {"host",         "hos:t",
                                       "hostx:a",      " host:a",
                                       "sim://1",      "udp://127.0.0.1:1",
                                       "127.0.0.1:80", NULL};

/* ---- the simulator's transports ----
 *
 * A world of MAX_EPS hosts; endpoint i is host i's transport ("sim" or, in
 * the split mode of opts.stream_transport, "simtcp"), named
 * "<scheme>://<i>" (the simulator fixes the addresses: no bind). An idle
 * handle on the test loop runs the world 1 simulated ms per loop turn, so
 * deliveries and completions happen from the loop.
 *
 * The simulator delivers straight into the host's node (dmq_node_recv)
 * instead of through dmq_transport_recv(), so the transport's on_recv hook
 * is never called. The rig observes every delivery with dmq_sim_set_tap()
 * and hands it to the endpoint's on_recv (dmq_transport_recv()) with the
 * sender's address, while the endpoint is open; the simulator itself keeps
 * feeding a closed transport's node. The nodes are started but never join:
 * they send nothing, and drop what they receive from the tests. */

enum { SIM_MIXED, SIM_DGRAM, SIM_SPLIT };

typedef struct simrig {
  uv_idle_t idle;
  ctx_t *c;
  dmq_sim_t *w;
  int stream; /* endpoints are the stream transports ("simtcp") */
} simrig_t;

static void simrig_tap(void *ud, int from, int to, const void *buf, size_t len,
                       uint64_t t) {
  simrig_t *r = ud;
  ctx_t *c = r->c;
  (void)t;
  if (to < 0 || to >= MAX_EPS)
    return;
  ep_t *e = &c->ep[to];
  if (!e->used || e->t == NULL)
    return;
  char addr[DMQ__ADDR_STRLEN];
  snprintf(addr, sizeof(addr), "%s://%d", c->f->scheme, from);
  dmq_transport_recv(e->t, addr, buf, len);
}

static void simrig_cb(uv_idle_t *h) {
  simrig_t *r = h->data;
  dmq_sim_run_for(r->w, 1);
}

static int simrig_init(ctx_t *c, int mode) {
  simrig_t *r = calloc(1, sizeof(*r));
  if (r == NULL)
    return -1;
  dmq_sim_opts_t o;
  dmq_sim_opts_init(&o);
  o.seed = DMQ_SIM_DEFAULT_SEED;
  o.quiet = 1;
  o.no_stream = mode == SIM_DGRAM;
  o.stream_transport = mode == SIM_SPLIT;
  r->c = c;
  r->stream = mode == SIM_SPLIT;
  r->w = dmq_sim_new(&o);
  int ok = r->w != NULL;
  for (int i = 0; ok && i < MAX_EPS; i++)
    ok = dmq_sim_add(r->w, NULL, NULL) == i;
  if (!ok || uv_idle_init(&c->loop, &r->idle) != 0) {
    dmq_sim_delete(r->w);
    free(r);
    return -1;
  }
  dmq_sim_set_tap(r->w, simrig_tap, r);
  r->idle.data = r;
  uv_idle_start(&r->idle, simrig_cb);
  c->rig = r;
  return 0;
}

static int sim_mixed_init(ctx_t *c) {
  return simrig_init(c, SIM_MIXED);
}

static int sim_dgram_init(ctx_t *c) {
  return simrig_init(c, SIM_DGRAM);
}

static int sim_split_init(ctx_t *c) {
  return simrig_init(c, SIM_SPLIT);
}

static void simrig_closed(uv_handle_t *h) {
  simrig_t *r = h->data;
  dmq_sim_delete(r->w);
  free(r);
}

static int simrig_fini(ctx_t *c) {
  simrig_t *r = c->rig;
  uv_close((uv_handle_t *)&r->idle, simrig_closed);
  return 0;
}

static int sim_create(ep_t *e) {
  simrig_t *r = e->c->rig;
  int i = (int)ep_index(e);
  e->t = r->stream ? dmq_sim_stream_transport(r->w, i)
                   : dmq_sim_transport(r->w, i);
  return e->t != NULL ? 0 : DMQ_EINVAL;
}

static void sim_assign(ep_t *e) {
  snprintf(e->addr, sizeof(e->addr), "%s://%zu", e->c->f->scheme, ep_index(e));
}

static const char *const sim_bad[] = {"sim",
                                      "sim:",
                                      "sim:/1",
                                      "sim:1",
                                      "sim://",
                                      "sim://x",
                                      "sim://1x",
                                      "sim://-1",
                                      "sim://+1",
                                      "sim:// 1",
                                      "sim://1 ",
                                      " sim://1",
                                      "sim://1.0",
                                      "sim://99999999999",
                                      "simtcp://1",
                                      "host:1",
                                      "udp://127.0.0.1:1",
                                      NULL};

static const char *const simtcp_bad[] = {
    "simtcp",      "simtcp:",     "simtcp:/1",
    "simtcp://",   "simtcp://x",  "simtcp://1x",
    "simtcp://-1", "simtcp://1 ", "simtcp://99999999999",
    "sim://1",     "host:1",      "tcp://127.0.0.1:1",
    NULL};

/* ======================================================================
 * The factory table
 * ====================================================================== */

/* Add a transport to the generic suite by adding a row: its constructor
 * (made on the test's loop, or in a rig that carries its bytes from a loop
 * handle), its scheme, capabilities and default mtu, the F_* parts of the
 * contract beyond the core that it has. */
static const factory_t factories[] = {
    {.name = "udp",
     .scheme = "udp",
     .caps = DMQ_TRANSPORT_DATAGRAM,
     .mtu = 1400,
     .flags = F_PORTS,
     .create = udp_create},
    {.name = "udp_queued",
     .scheme = "udp",
     .caps = DMQ_TRANSPORT_DATAGRAM,
     .mtu = 1400,
     .flags = F_PORTS,
     .create = udp_queued_create},
    {.name = "tcp",
     .scheme = "tcp",
     .caps = DMQ_TRANSPORT_RELIABLE,
     .mtu = 16u * 1024u * 1024u,
     .flags = F_PORTS | F_REPORTS_UNREACHABLE,
     .create = tcp_create},
    {.name = "host",
     .scheme = "host",
     .caps = DMQ_TRANSPORT_DATAGRAM | DMQ_TRANSPORT_RELIABLE,
     .mtu = DMQ_HOST_DEFAULT_MTU,
     .flags = F_CLOSE_SYNC,
     .create = host_create,
     .assign = host_assign,
     .nowhere = "host:nobody",
     .bad = host_bad,
     .rig_init = carrier_init,
     .rig_fini = carrier_fini},
    /* the simulator's default: one transport, the size picks the class */
    {.name = "sim",
     .scheme = "sim",
     .caps = DMQ_TRANSPORT_DATAGRAM | DMQ_TRANSPORT_RELIABLE,
     .mtu = SIM_STREAM_MAX,
     .flags = F_CLOSE_SYNC,
     .create = sim_create,
     .assign = sim_assign,
     .nowhere = "sim://99",
     .bad = sim_bad,
     .rig_init = sim_mixed_init,
     .rig_fini = simrig_fini},
    /* opts.no_stream: datagrams only (also "sim" in split mode) */
    {.name = "sim_dgram",
     .scheme = "sim",
     .caps = DMQ_TRANSPORT_DATAGRAM,
     .mtu = 1400,
     .flags = F_CLOSE_SYNC,
     .create = sim_create,
     .assign = sim_assign,
     .nowhere = "sim://99",
     .bad = sim_bad,
     .rig_init = sim_dgram_init,
     .rig_fini = simrig_fini},
    /* opts.stream_transport: the stream transport of split mode */
    {.name = "simtcp",
     .scheme = "simtcp",
     .caps = DMQ_TRANSPORT_RELIABLE,
     .mtu = SIM_STREAM_MAX,
     .flags = F_CLOSE_SYNC,
     .create = sim_create,
     .assign = sim_assign,
     .nowhere = "simtcp://99",
     .bad = simtcp_bad,
     .rig_init = sim_split_init,
     .rig_fini = simrig_fini},
};
#define NFACTORIES (sizeof(factories) / sizeof(factories[0]))

/* ---- endpoints ---- */

static ep_t *ep_new(ctx_t *c) {
  for (size_t i = 0; i < MAX_EPS; i++) {
    ep_t *e = &c->ep[i];
    if (e->used)
      continue;
    memset(e, 0, sizeof(*e));
    e->c = c;
    e->used = 1;
    assert_int_equal(c->f->create(e), 0);
    assert_non_null(e->t);
    e->t->owner = e;
    e->t->on_recv = on_recv;
    e->t->on_send_done = on_send_done;
    e->t->on_closed = on_closed;
    return e;
  }
  fail_msg("too many endpoints");
  return NULL;
}

/* F_PORTS rows. host: "127.0.0.1" or "[::1]"; port 0 = any */
static int ep_bind_port(ep_t *e, const char *host, unsigned port) {
  char a[DMQ__ADDR_STRLEN];
  snprintf(a, sizeof(a), "%s://%s:%u", e->t->ops->scheme, host, port);
  int rc = e->t->ops->bind(e->t, a);
  if (rc == 0)
    assert_int_equal(e->t->ops->local_addr(e->t, e->addr, sizeof(e->addr)), 0);
  return rc;
}

/* An endpoint with an address: bound to host (port 0) when the row has
 * ports, else given its address by the row. */
static ep_t *ep_bound(ctx_t *c, const char *host) {
  ep_t *e = ep_new(c);
  if (c->f->flags & F_PORTS)
    assert_int_equal(ep_bind_port(e, host, 0), 0);
  else
    c->f->assign(e);
  return e;
}

static void ep_close(ep_t *e) {
  if (e->t != NULL && !e->close_requested) {
    e->close_requested = 1;
    e->t->ops->close(e->t);
  }
}

static void ep_close_wait(ctx_t *c, ep_t *e) {
  ep_close(e);
  assert_true(run_until(c, pred_closed, e));
}

static int ep_send(ep_t *from, const char *to, uint32_t seq, size_t len,
                   int with_cookie) {
  const uint8_t *p = make_payload(seq, len);
  int rc = from->t->ops->send(from->t, to, p, len,
                              with_cookie ? cookie_of(seq) : NULL);
  if (rc == 0 && with_cookie)
    from->naccepted++;
  return rc;
}

/* After close(a): a's reuse checks send to peer. */
static void ep_check_reuse(ep_t *e, const ep_t *peer) {
  e->check_reuse = 1;
  snprintf(e->reuse_to, sizeof(e->reuse_to), "%s", peer->addr);
}

static unsigned addr_port(const char *addr) {
  struct sockaddr_storage ss;
  assert_int_equal(dmq__addr_parse(addr, NULL, &ss), DMQ_EADDR); /* scheme */
  const char *rest = strstr(addr, "://");
  assert_non_null(rest);
  assert_int_equal(dmq__addr_parse(rest + 3, NULL, &ss), 0);
  return dmq__addr_port((struct sockaddr *)&ss);
}

static int ipv6_loopback_available(void) {
  struct sockaddr_in6 sa;
  int fd = socket(AF_INET6, SOCK_DGRAM, 0);
  if (fd < 0)
    return 0;
  memset(&sa, 0, sizeof(sa));
  sa.sin6_family = AF_INET6;
  sa.sin6_addr = in6addr_loopback;
  int ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
  close(fd);
  return ok;
}

/* ---- fixtures ---- */

static int setup(void **state) {
  ctx_t *c = calloc(1, sizeof(*c));
  if (c == NULL)
    return -1;
  c->f = *state;
  if (uv_loop_init(&c->loop) != 0 || uv_timer_init(&c->loop, &c->watchdog))
    return -1;
  c->watchdog.data = c;
  if (c->f->rig_init != NULL && c->f->rig_init(c) != 0)
    return -1;
  *state = c;
  return 0;
}

static int teardown(void **state) {
  ctx_t *c = *state;
  int ok = 1;
  for (size_t i = 0; i < MAX_EPS; i++)
    if (c->ep[i].used)
      ep_close(&c->ep[i]);
  if (!run_until(c, pred_all_settled, NULL)) {
    print_error("teardown: a transport never called on_closed or left "
                "accepted sends without a completion\n");
    ok = 0;
  }
  for (size_t i = 0; i < MAX_EPS; i++) {
    ep_t *e = &c->ep[i];
    if (!e->used)
      continue;
    if (e->closed != 1) {
      print_error("teardown: ep %zu: on_closed ran %d times\n", i, e->closed);
      ok = 0;
    }
    if (e->done_after_closed != 0 || e->ndone_at_closed != e->ndone) {
      print_error("teardown: ep %zu: %zu completions after on_closed\n", i,
                  e->ndone - e->ndone_at_closed);
      ok = 0;
    }
    if (e->ndone != e->naccepted || e->unknown_cookie != 0 ||
        e->recv_after_closed != 0 || e->reuse_bad != 0) {
      print_error("teardown: ep %zu: %zu of %zu accepted sends completed, "
                  "unknown cookies %zu, received after on_closed %zu, "
                  "sends accepted after close %zu\n",
                  i, e->ndone, e->naccepted, e->unknown_cookie,
                  e->recv_after_closed, e->reuse_bad);
      ok = 0;
    }
    for (size_t k = 0; k < MAX_COOKIES; k++) {
      if (e->done_count[k] > 1) {
        print_error("teardown: ep %zu cookie %zu completed %u times\n", i, k,
                    (unsigned)e->done_count[k]);
        ok = 0;
      }
    }
  }
  if (c->f->rig_fini != NULL && c->f->rig_fini(c) != 0)
    ok = 0;
  uv_close((uv_handle_t *)&c->watchdog, NULL);
  uv_run(&c->loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&c->loop) != 0) {
    print_error("teardown: the transports left handles on the loop\n");
    uv_walk(&c->loop, NULL, NULL);
    ok = 0;
  }
  free(c);
  return ok ? 0 : -1;
}

/* ======================================================================
 * Generic tests (every factory)
 * ====================================================================== */

static void test_bind_local_addr(void **state) {
  ctx_t *c = *state;
  const factory_t *f = c->f;
  ep_t *a = ep_new(c);
  char buf[DMQ__ADDR_STRLEN];

  assert_string_equal(a->t->ops->scheme, f->scheme);
  assert_int_equal(a->t->ops->caps, f->caps);
  assert_int_equal(a->t->mtu, f->mtu);

  if (!(f->flags & F_PORTS)) {
    /* no I/O of its own: no bind(), no local_addr(); the endpoints are
     * named "<scheme>:..." and each name is its own */
    assert_null(a->t->ops->bind);
    assert_null(a->t->ops->local_addr);
    f->assign(a);
    ep_t *b = ep_bound(c, NULL);
    size_t sl = strlen(f->scheme);
    assert_memory_equal(a->addr, f->scheme, sl);
    assert_int_equal(a->addr[sl], ':');
    assert_memory_equal(b->addr, f->scheme, sl);
    assert_string_not_equal(a->addr, b->addr);
  } else {
    assert_non_null(a->t->ops->bind);
    assert_non_null(a->t->ops->local_addr);
    assert_int_equal(a->t->ops->local_addr(a->t, buf, sizeof(buf)), DMQ_ESTATE);

    assert_int_equal(ep_bind_port(a, "127.0.0.1", 0), 0);
    char prefix[32];
    snprintf(prefix, sizeof(prefix), "%s://127.0.0.1:", f->scheme);
    assert_memory_equal(a->addr, prefix, strlen(prefix));
    unsigned port = addr_port(a->addr);
    assert_true(port > 0);

    /* bound once only; buffer too small */
    assert_int_equal(ep_bind_port(a, "127.0.0.1", 0), DMQ_ESTATE);
    assert_int_equal(a->t->ops->local_addr(a->t, buf, strlen(a->addr)),
                     DMQ_ETOOBIG);

    /* the port is taken: a second transport cannot bind it, and may then
     * bind elsewhere */
    ep_t *b = ep_new(c);
    assert_int_equal(ep_bind_port(b, "127.0.0.1", port), DMQ_ETRANSPORT);
    assert_int_equal(ep_bind_port(b, "127.0.0.1", 0), 0);
    assert_int_not_equal(addr_port(b->addr), port);
  }

  /* a transport that is closed without ever being bound still closes */
  ep_t *d = ep_new(c);
  ep_close_wait(c, d);
  assert_int_equal(d->closed, 1);
}

static void test_send_recv(void **state) {
  ctx_t *c = *state;
  const factory_t *f = c->f;
  ep_t *a = ep_bound(c, "127.0.0.1");
  ep_t *b = ep_bound(c, "127.0.0.1");
  static const size_t sizes[] = {0, 1, 7, 8, 100, 512, 1000, 1400, 64};
  const size_t n = sizeof(sizes) / sizeof(sizes[0]) - 1;
  size_t total = n;

  for (size_t i = 0; i < n; i++) {
    size_t len = sizes[i] < a->t->mtu ? sizes[i] : a->t->mtu;
    assert_int_equal(ep_send(a, b->addr, (uint32_t)i, len, 1), 0);
  }
  if (f->flags & F_PORTS) {
    /* the plain "host:port" form reaches the same place */
    const char *plain = strstr(b->addr, "://") + 3;
    assert_int_equal(ep_send(a, plain, (uint32_t)n, sizes[n], 1), 0);
    total++;
  }
  assert_int_equal(a->ndone, 0); /* never from inside send() */
  assert_int_equal(b->nrecv, 0);

  WAIT_RECV(c, b, total);
  WAIT_DONE(c, a, total);
  assert_int_equal(b->bad_payload, 0);
  assert_int_equal(b->from_mismatch, 0);
  for (size_t i = 0; i < total; i++) {
    assert_int_equal(a->done_count[i], 1);
    assert_int_equal(a->done_status[i], 0);
  }
  /* each message arrived once, with its length (short ones carry no seq) */
  size_t seen = 0;
  for (size_t i = 0; i < b->nrecv; i++)
    if (b->len[i] >= PAYLOAD_HDR)
      seen |= (size_t)1 << b->seq[i];
  for (size_t i = 0; i < total; i++)
    if (sizes[i] >= PAYLOAD_HDR)
      assert_true(seen & ((size_t)1 << i));
  if (f->caps & DMQ_TRANSPORT_RELIABLE)
    for (size_t i = 0; i < n; i++)
      assert_int_equal(b->len[i], sizes[i]); /* in order */

  if (f->flags & F_PORTS) {
    /* from: parseable, the sender's IP */
    struct sockaddr_storage ss;
    assert_int_equal(dmq__addr_parse(b->first_from, f->scheme, &ss), 0);
    char prefix[32];
    snprintf(prefix, sizeof(prefix), "%s://127.0.0.1:", f->scheme);
    assert_memory_equal(b->first_from, prefix, strlen(prefix));
    if (f->caps & DMQ_TRANSPORT_DATAGRAM)
      assert_string_equal(b->first_from, a->addr);
  } else {
    assert_string_equal(b->first_from, a->addr); /* the sender's name */
  }

  /* a reply to from reaches the sender */
  assert_int_equal(ep_send(b, b->first_from, 99, 32, 0), 0);
  WAIT_RECV(c, a, 1);
  assert_int_equal(a->bad_payload, 0);
  assert_int_equal(a->seq[0], 99);
}

static void test_mtu(void **state) {
  ctx_t *c = *state;
  ep_t *a = ep_bound(c, "127.0.0.1");
  ep_t *b = ep_bound(c, "127.0.0.1");
  size_t mtu = a->t->mtu;
  /* the contract: mtu is the largest payload send() accepts */
  size_t limit = mtu;

  uint8_t *big = malloc(limit + 1);
  assert_non_null(big);
  memset(big, 0x5a, limit + 1);
  assert_int_equal(a->t->ops->send(a->t, b->addr, big, limit + 1, cookie_of(0)),
                   DMQ_ETOOBIG);
  free(big);

  /* the largest message that fits (capped at 1 MiB for stream transports)
   * arrives intact */
  size_t len = limit < MAX_PAYLOAD ? limit : MAX_PAYLOAD;
  assert_int_equal(ep_send(a, b->addr, 1, len, 1), 0);
  WAIT_RECV(c, b, 1);
  WAIT_DONE(c, a, 1);
  assert_int_equal(b->len[0], len);
  assert_int_equal(b->seq[0], 1);
  assert_int_equal(b->bad_payload, 0);
  assert_int_equal(a->done_status[1], 0);
  assert_int_equal(a->done_count[0], 0); /* the rejected send: no callback */
}

static void send_bad(ep_t *a, const char *addr, size_t i) {
  int rc = a->t->ops->send(a->t, addr, "x", 1, cookie_of(i));
  if (rc != DMQ_EADDR)
    fail_msg("send to \"%s\": %s", addr, dmq_err_name(rc));
}

static void test_bad_address(void **state) {
  ctx_t *c = *state;
  const factory_t *f = c->f;
  ep_t *a = ep_bound(c, "127.0.0.1");
  ep_t *b = ep_new(c);
  size_t k = 0;

  if (f->flags & F_PORTS) {
    const char *s = f->scheme;
    char other[64], port0[64], v6_open[64], junk[64];
    snprintf(other, sizeof(other), "%s://127.0.0.1:1",
             strcmp(s, "udp") == 0 ? "tcp" : "udp");
    snprintf(port0, sizeof(port0), "%s://127.0.0.1:0", s);
    snprintf(v6_open, sizeof(v6_open), "%s://[::1:80", s);
    snprintf(junk, sizeof(junk), "%s://127.0.0.1:80/x", s);
    const char *bad[] = {"",
                         "127.0.0.1",
                         "127.0.0.1:",
                         "127.0.0.1:65536",
                         "127.0.0.1:-1",
                         "127.0.0.1:80x",
                         " 127.0.0.1:80",
                         "::1:80",
                         "[::1]",
                         "[::1]80",
                         "999.1.1.1:80",
                         "1.2.3:80",
                         "localhost:80",
                         "sim://17",
                         "host:a",
                         "://127.0.0.1:80",
                         other,
                         port0,
                         v6_open,
                         junk};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
      send_bad(a, bad[i], k++);

    assert_int_equal(b->t->ops->bind(b->t, "127.0.0.1"), DMQ_EADDR);
    assert_int_equal(b->t->ops->bind(b->t, "localhost:0"), DMQ_EADDR);
    assert_int_equal(b->t->ops->bind(b->t, other), DMQ_EADDR);
    assert_int_equal(b->t->ops->bind(b->t, NULL), DMQ_EADDR);
    /* still bindable after the failures */
    assert_int_equal(ep_bind_port(b, "127.0.0.1", 0), 0);
  } else {
    send_bad(a, "", k++);
    send_bad(a, "://x", k++);
    for (size_t i = 0; f->bad[i] != NULL; i++)
      send_bad(a, f->bad[i], k++);
    f->assign(b);
  }
  assert_int_equal(a->t->ops->send(a->t, NULL, "x", 1, NULL), DMQ_EADDR);
  assert_int_equal(a->ndone, 0);

  /* none of the refused sends completes later: the next accepted send
   * completes alone */
  assert_true(k < 100);
  assert_int_equal(ep_send(a, b->addr, 100, 10, 1), 0);
  WAIT_DONE(c, a, 1);
  WAIT_RECV(c, b, 1);
  assert_int_equal(a->done_count[100], 1);
  assert_int_equal(a->ndone, 1);
}

static void test_close_with_pending(void **state) {
  ctx_t *c = *state;
  ep_t *a = ep_bound(c, "127.0.0.1");
  ep_t *b = ep_bound(c, "127.0.0.1");
  const size_t n = 300;
  size_t accepted = 0;

  /* a burst, then close before the loop ever runs */
  for (size_t i = 0; i < n; i++) {
    int rc = ep_send(a, b->addr, (uint32_t)i, 200, 1);
    assert_true(rc == 0 || rc == DMQ_EAGAIN);
    accepted += rc == 0;
  }
  assert_true(accepted > 0);
  assert_int_equal(a->ndone, 0); /* never from inside send() */
  ep_check_reuse(a, b);
  ep_close(a);
  if (c->f->flags & F_CLOSE_SYNC) {
    /* no loop of its own: on_closed ran inside close(), the pending sends
     * completed just before it */
    assert_int_equal(a->closed, 1);
    assert_int_equal(a->ndone, accepted);
  } else {
    /* nothing may complete inside send() or close() */
    assert_int_equal(a->ndone, 0);
    assert_int_equal(a->closed, 0);
  }
  assert_true(run_until(c, pred_closed, a));
  WAIT_DONE(c, a, accepted);

  assert_int_equal(a->closed, 1);
  assert_int_equal(a->ndone, accepted);
  assert_int_equal(a->ndone_at_closed, accepted);
  for (size_t i = 0; i < n; i++) {
    assert_true(a->done_count[i] <= 1);
    if (a->done_count[i])
      assert_true(a->done_status[i] == 0 || a->done_status[i] == DMQ_ECLOSED);
  }
  assert_true(a->reuse_tries > 0);
  assert_int_equal(a->reuse_bad, 0);
}

static void test_send_after_close(void **state) {
  ctx_t *c = *state;
  ep_t *a = ep_bound(c, "127.0.0.1");
  ep_t *b = ep_bound(c, "127.0.0.1");
  ep_check_reuse(a, b); /* inside on_closed: send refused, close again */
  ep_close(a);
  if (a->t != NULL) {
    /* closing from the loop: until on_closed the transport is there and
     * refuses */
    assert_int_equal(ep_send(a, b->addr, 1, 10, 1), DMQ_ECLOSED);
    assert_int_equal(ep_send(a, b->addr, 2, 10, 0), DMQ_ECLOSED);
    if (a->t->ops->bind != NULL)
      assert_int_not_equal(a->t->ops->bind(a->t, "127.0.0.1:0"), 0);
    a->t->ops->close(a->t); /* a second close is harmless */
  } else {
    /* closed (and maybe freed) inside close(): the same checks ran from
     * inside on_closed */
    assert_true(c->f->flags & F_CLOSE_SYNC);
  }
  assert_true(run_until(c, pred_closed, a));
  assert_int_equal(a->closed, 1);
  assert_int_equal(a->ndone, 0);
  assert_true(a->reuse_tries > 0);
  assert_int_equal(a->reuse_bad, 0);

  /* the refused sends did not go out either: a message sent to b after
   * them is the only one b gets */
  ep_t *d = ep_bound(c, "127.0.0.1");
  assert_int_equal(ep_send(d, b->addr, 3, 10, 1), 0);
  WAIT_RECV(c, b, 1);
  WAIT_DONE(c, d, 1);
  assert_int_equal(b->bad_payload, 0);
  assert_int_equal(b->seq[0], 3);
}

static void test_close_in_callbacks(void **state) {
  ctx_t *c = *state;
  ep_t *a = ep_bound(c, "127.0.0.1");
  ep_t *b = ep_bound(c, "127.0.0.1");
  const size_t n = 50;
  /* b closes itself from inside on_recv with more messages in flight; a
   * from inside its first completion with more completions pending */
  b->close_on_recv = 1;
  a->close_on_done = 1;
  ep_check_reuse(a, b);
  ep_check_reuse(b, a);
  for (size_t i = 0; i < n; i++)
    assert_int_equal(ep_send(a, b->addr, (uint32_t)i, 100, 1), 0);
  assert_true(run_until(c, pred_all_closed, NULL));
  WAIT_DONE(c, a, n);
  assert_int_equal(a->ndone, n);
  assert_int_equal(b->closed, 1);
  assert_true(b->nrecv >= 1 && b->nrecv <= n);
  assert_true(a->reuse_tries > 0);
  assert_true(b->reuse_tries > 0);
}

static void test_unreachable(void **state) {
  ctx_t *c = *state;
  const factory_t *f = c->f;
  int reports = (f->flags & F_REPORTS_UNREACHABLE) != 0;
  /* learn an address nobody listens on any more */
  ep_t *gone = ep_bound(c, "127.0.0.1");
  char dead[DMQ__ADDR_STRLEN];
  strcpy(dead, gone->addr);
  ep_close_wait(c, gone);

  ep_t *a = ep_bound(c, "127.0.0.1");
  assert_int_equal(ep_send(a, dead, 0, 100, 1), 0);
  WAIT_DONE(c, a, 1);
  assert_int_equal(a->done_count[0], 1);
  if (reports)
    assert_int_equal(a->done_status[0], DMQ_ETRANSPORT);

  /* accepted while the destination is down (during the back-off): each
   * completes exactly once, with an error for a transport that notices */
  for (uint32_t i = 1; i <= 5; i++)
    assert_int_equal(ep_send(a, dead, i, 100, 1), 0);
  WAIT_DONE(c, a, 6);
  for (size_t i = 0; i <= 5; i++) {
    assert_int_equal(a->done_count[i], 1);
    if (reports)
      assert_int_equal(a->done_status[i], DMQ_ETRANSPORT);
  }

  /* without a cookie: nobody waits, but a transport that notices reports
   * each failure once with cookie NULL (the node counts it) */
  if (reports) {
    for (uint32_t i = 0; i < 3; i++)
      assert_int_equal(ep_send(a, dead, 0, 100, 0), 0);
    WAIT_NOCOOKIE_FAILED(c, a, 3);
    assert_int_equal(a->nocookie_failed, 3);
  }

  if (f->nowhere != NULL) {
    /* an address no endpoint ever had */
    assert_int_equal(ep_send(a, f->nowhere, 6, 100, 1), 0);
    WAIT_DONE(c, a, 7);
    assert_int_equal(a->done_count[6], 1);
  }
}

static void test_ipv6(void **state) {
  ctx_t *c = *state;
  if (!(c->f->flags & F_PORTS) || !ipv6_loopback_available())
    skip();
  ep_t *a = ep_bound(c, "[::1]");
  ep_t *b = ep_bound(c, "[::1]");
  char prefix[32];
  snprintf(prefix, sizeof(prefix), "%s://[::1]:", c->f->scheme);
  assert_memory_equal(a->addr, prefix, strlen(prefix));
  for (uint32_t i = 0; i < 5; i++)
    assert_int_equal(ep_send(a, b->addr, i, 300, 1), 0);
  WAIT_RECV(c, b, 5);
  WAIT_DONE(c, a, 5);
  assert_int_equal(b->bad_payload, 0);
  assert_memory_equal(b->first_from, prefix, strlen(prefix));
  if (c->f->caps & DMQ_TRANSPORT_DATAGRAM)
    assert_string_equal(b->first_from, a->addr);
  for (size_t i = 0; i < 5; i++)
    assert_int_equal(a->done_status[i], 0);
  assert_int_equal(ep_send(b, b->first_from, 7, 16, 0), 0);
  WAIT_RECV(c, a, 1);
}

static void test_burst(void **state) {
  ctx_t *c = *state;
  ep_t *a = ep_bound(c, "127.0.0.1");
  ep_t *b = ep_bound(c, "127.0.0.1");
  const size_t n = 2000;
  size_t accepted = 0;
  for (size_t i = 0; i < n; i++) {
    int rc = ep_send(a, b->addr, (uint32_t)i, 600, 1);
    assert_true(rc == 0 || rc == DMQ_EAGAIN);
    accepted += rc == 0;
  }
  assert_true(accepted > 0);
  WAIT_DONE(c, a, accepted);
  for (size_t i = 0; i < n; i++)
    if (a->done_count[i])
      assert_int_equal(a->done_status[i], 0);
  if (c->f->caps & DMQ_TRANSPORT_RELIABLE) {
    WAIT_RECV(c, b, accepted);
    for (size_t i = 1; i < b->nrecv; i++)
      assert_true(b->seq[i] > b->seq[i - 1]); /* in order */
  } else {
    WAIT_RECV(c, b, 1); /* loopback may still drop datagrams */
  }
  assert_int_equal(b->bad_payload, 0);
}

/* ======================================================================
 * TCP
 * ====================================================================== */

static void test_tcp_connection_reuse(void **state) {
  ctx_t *c = *state;
  ep_t *a = ep_bound(c, "127.0.0.1");
  ep_t *b = ep_bound(c, "127.0.0.1");
  const char *plain = strstr(b->addr, "://") + 3;
  uint32_t seq = 0;
  for (int round = 0; round < 5; round++) {
    for (int i = 0; i < 20; i++, seq++) {
      /* both spellings of the address share the connection */
      assert_int_equal(ep_send(a, seq % 2 ? plain : b->addr, seq, 100, 1), 0);
    }
    WAIT_RECV(c, b, seq);
    WAIT_DONE(c, a, seq);
    assert_int_equal(dmq__tcp_connection_count(a->t), 1);
    assert_int_equal(dmq__tcp_connection_count(b->t), 1);
  }
  for (size_t i = 0; i < seq; i++) {
    assert_int_equal(b->seq[i], i);
    assert_int_equal(a->done_status[i], 0);
  }
  assert_int_equal(b->from_mismatch, 0);
  /* a reply to `from` (a's ephemeral port) goes back over the same
   * connection, and a sees it from b's listening address */
  assert_int_equal(ep_send(b, b->first_from, 1000, 10, 1), 0);
  WAIT_RECV(c, a, 1);
  WAIT_DONE(c, b, 1);
  assert_string_equal(a->first_from, b->addr);
  assert_int_equal(dmq__tcp_connection_count(a->t), 1);
  assert_int_equal(dmq__tcp_connection_count(b->t), 1);
  /* a message to a's listening address opens b's own connection */
  assert_int_equal(ep_send(b, a->addr, 1001, 10, 0), 0);
  WAIT_RECV(c, a, 2);
  assert_int_equal(dmq__tcp_connection_count(a->t), 2);
  assert_int_equal(dmq__tcp_connection_count(b->t), 2);
}

static void test_tcp_reconnect(void **state) {
  ctx_t *c = *state;
  ep_t *a = ep_bound(c, "127.0.0.1");
  ep_t *b = ep_bound(c, "127.0.0.1");
  char baddr[DMQ__ADDR_STRLEN];
  strcpy(baddr, b->addr);
  unsigned port = addr_port(baddr);

  assert_int_equal(ep_send(a, baddr, 0, 100, 1), 0);
  WAIT_RECV(c, b, 1);
  WAIT_DONE(c, a, 1);

  /* the peer goes away: a notices the connection closing */
  ep_close_wait(c, b);
  WAIT_CONNS(c, a, 0);

  /* a new peer on the same port: the next message opens a new connection */
  ep_t *b2 = ep_new(c);
  assert_int_equal(ep_bind_port(b2, "127.0.0.1", port), 0);
  assert_string_equal(b2->addr, baddr);
  assert_int_equal(ep_send(a, baddr, 1, 100, 1), 0);
  WAIT_RECV(c, b2, 1);
  WAIT_DONE(c, a, 2);
  assert_int_equal(b2->seq[0], 1);
  assert_int_equal(a->done_status[1], 0);
  assert_int_equal(dmq__tcp_connection_count(a->t), 1);
}

static void test_tcp_recover_after_backoff(void **state) {
  ctx_t *c = *state;
  ep_t *gone = ep_bound(c, "127.0.0.1");
  char dead[DMQ__ADDR_STRLEN];
  strcpy(dead, gone->addr);
  unsigned port = addr_port(dead);
  ep_close_wait(c, gone);

  ep_t *a = ep_bound(c, "127.0.0.1");
  assert_int_equal(ep_send(a, dead, 0, 100, 1), 0);
  WAIT_DONE(c, a, 1);
  assert_int_equal(a->done_status[0], DMQ_ETRANSPORT);

  /* the peer comes up; a message sent now waits for the back-off to end
   * and is then delivered */
  ep_t *b = ep_new(c);
  assert_int_equal(ep_bind_port(b, "127.0.0.1", port), 0);
  assert_int_equal(ep_send(a, dead, 1, 100, 1), 0);
  WAIT_DONE(c, a, 2);
  assert_int_equal(a->done_status[1], 0);
  WAIT_RECV(c, b, 1);
  assert_int_equal(b->seq[0], 1);
}

static void test_tcp_idle_close(void **state) {
  ctx_t *c = *state;
  ep_t *a = ep_bound(c, "127.0.0.1");
  ep_t *b = ep_bound(c, "127.0.0.1");
  /* short idle timeouts (the default is a minute) */
  dmq__tcp_set_idle_timeout(a->t, 50);
  dmq__tcp_set_idle_timeout(b->t, 50);
  assert_int_equal(ep_send(a, b->addr, 0, 100, 1), 0);
  WAIT_RECV(c, b, 1);
  WAIT_CONNS(c, a, 0);
  WAIT_CONNS(c, b, 0);
  assert_int_equal(ep_send(a, b->addr, 1, 100, 1), 0);
  WAIT_RECV(c, b, 2);
  WAIT_DONE(c, a, 2);
  assert_int_equal(a->done_status[0], 0);
  assert_int_equal(a->done_status[1], 0);
}

static void test_tcp_oversized_frame(void **state) {
  ctx_t *c = *state;
  ep_t *a = ep_bound(c, "127.0.0.1");
  ep_t *b = ep_bound(c, "127.0.0.1");
  /* b accepts less than a sends: b must cut the connection, not deliver */
  b->t->mtu = 1000;
  assert_int_equal(ep_send(a, b->addr, 0, 2000, 1), 0);
  WAIT_DONE(c, a, 1);
  WAIT_CONNS(c, a, 0);
  WAIT_CONNS(c, b, 0);
  assert_int_equal(b->nrecv, 0);
  /* a message within b's limit gets through on a new connection */
  assert_int_equal(ep_send(a, b->addr, 1, 1000, 1), 0);
  WAIT_RECV(c, b, 1);
  assert_int_equal(b->seq[0], 1);
  assert_int_equal(b->bad_payload, 0);
}

static void test_tcp_queue_bound(void **state) {
  ctx_t *c = *state;
  ep_t *a = ep_bound(c, "127.0.0.1");
  ep_t *b = ep_bound(c, "127.0.0.1");
  /* by count: everything below is queued while connecting */
  size_t accepted = 0, rejected = 0;
  for (size_t i = 0; i < 5000; i++) {
    int rc = ep_send(a, b->addr, (uint32_t)i, 16, 0);
    if (rc == 0 && rejected == 0)
      accepted++;
    else if (rc == DMQ_EAGAIN)
      rejected++;
    else
      fail_msg("send %zu: %s", i, dmq_err_name(rc));
  }
  assert_true(rejected > 0);
  assert_true(accepted >= 1000 && accepted < 5000);
  WAIT_RECV(c, b, accepted);
  for (size_t i = 0; i < accepted; i++)
    assert_int_equal(b->seq[i], i);

  /* by bytes: 1 MiB messages to a fresh destination */
  ep_t *d = ep_bound(c, "127.0.0.1");
  size_t big_ok = 0;
  int saw_eagain = 0;
  for (uint32_t i = 0; i < 16 && !saw_eagain; i++) {
    int rc = ep_send(a, d->addr, i, MAX_PAYLOAD, 1);
    assert_true(rc == 0 || rc == DMQ_EAGAIN);
    saw_eagain = rc == DMQ_EAGAIN;
    big_ok += rc == 0;
  }
  assert_true(saw_eagain);
  assert_true(big_ok >= 1);
  WAIT_RECV(c, d, big_ok);
  WAIT_DONE(c, a, big_ok);
  assert_int_equal(d->bad_payload, 0);
}

static void test_tcp_connect_fails_synchronously(void **state) {
  ctx_t *c = *state;
  ep_t *a = ep_bound(c, "127.0.0.1");
  /* connect(2) to a multicast address fails at once (ENETUNREACH): the
   * failure must still be reported from the loop, once per message */
  const char *to[] = {"tcp://224.0.0.1:80", "tcp://[ff02::1]:80"};
  size_t k = 0;
  for (size_t i = 0; i < 2; i++) {
    assert_int_equal(ep_send(a, to[i], (uint32_t)k, 10, 1), 0);
    assert_int_equal(a->ndone, k); /* not from inside send() */
    k++;
    WAIT_DONE(c, a, k);
    /* during the back-off */
    assert_int_equal(ep_send(a, to[i], (uint32_t)k, 10, 1), 0);
    assert_int_equal(ep_send(a, to[i], (uint32_t)k + 1, 10, 1), 0);
    k += 2;
    WAIT_DONE(c, a, k);
  }
  assert_int_equal(dmq__tcp_connection_count(a->t), 0);

  /* many failing destinations (more than the first hash table holds) next
   * to a live connection, twice: the second round lands in the back-off of
   * every destination and is failed destination by destination */
  ep_t *b = ep_bound(c, "127.0.0.1");
  assert_int_equal(ep_send(a, b->addr, (uint32_t)k++, 10, 1), 0);
  WAIT_RECV(c, b, 1);
  const unsigned ndest = 40;
  for (int round = 0; round < 2; round++) {
    for (unsigned port = 1; port <= ndest; port++) {
      char addr[64];
      snprintf(addr, sizeof(addr), "tcp://224.0.0.1:%u", port);
      assert_int_equal(ep_send(a, addr, (uint32_t)k++, 10, 1), 0);
    }
    WAIT_DONE(c, a, k);
  }
  for (size_t i = 0; i < k; i++) {
    assert_int_equal(a->done_count[i], 1);
    if (i != 6)
      assert_int_equal(a->done_status[i], DMQ_ETRANSPORT);
  }
  assert_int_equal(a->done_status[6], 0); /* the one to b */
  assert_int_equal(dmq__tcp_connection_count(a->t), 1);
}

static void test_tcp_connect_timeout(void **state) {
  ctx_t *c = *state;
  /* a listener whose accept queue is full: Linux drops further SYNs, so a
   * connect neither succeeds nor fails */
  struct sockaddr_in sa;
  socklen_t sl = sizeof(sa);
  memset(&sa, 0, sizeof(sa));
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(lfd >= 0);
  assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  assert_int_equal(listen(lfd, 0), 0);
  assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
  int filler = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(filler >= 0);
  assert_int_equal(connect(filler, (struct sockaddr *)&sa, sizeof(sa)), 0);

  ep_t *a = ep_bound(c, "127.0.0.1");
  dmq__tcp_set_connect_timeout(a->t, 100);
  char to[64];
  snprintf(to, sizeof(to), "tcp://127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
  for (uint32_t i = 0; i < 3; i++)
    assert_int_equal(ep_send(a, to, i, 10, 1), 0);
  WAIT_DONE(c, a, 3);
  for (size_t i = 0; i < 3; i++)
    assert_int_equal(a->done_status[i], DMQ_ETRANSPORT);
  WAIT_CONNS(c, a, 0);
  close(filler);
  close(lfd);
}

/* A raw libuv client that writes a byte stream in pieces, one piece per
 * loop turn (from a check handle, i.e. after the loop has polled), so that
 * the receiver sees frames split across reads and several frames in one
 * read. */
typedef struct drip {
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_write_t wreq;
  uv_check_t check;
  const uint8_t *data;
  const size_t *cuts; /* piece end offsets */
  size_t ncuts, next;
  int connected, writing, closed;
} drip_t;

static void drip_write_cb(uv_write_t *req, int status) {
  drip_t *d = req->data;
  assert_int_equal(status, 0);
  d->writing = 0;
}

static void drip_check_cb(uv_check_t *h) {
  drip_t *d = h->data;
  if (!d->connected || d->writing || d->next >= d->ncuts)
    return;
  size_t from = d->next ? d->cuts[d->next - 1] : 0;
  uv_buf_t b =
      uv_buf_init((char *)d->data + from, (unsigned)(d->cuts[d->next] - from));
  d->wreq.data = d;
  assert_int_equal(
      uv_write(&d->wreq, (uv_stream_t *)&d->tcp, &b, 1, drip_write_cb), 0);
  d->writing = 1;
  d->next++;
}

static void drip_connect_cb(uv_connect_t *req, int status) {
  drip_t *d = req->data;
  assert_int_equal(status, 0);
  d->connected = 1;
}

static void drip_closed_cb(uv_handle_t *h) {
  drip_t *d = h->data;
  d->closed++;
}

static int pred_drip_closed(ctx_t *c, const void *arg) {
  const drip_t *d = arg;
  (void)c;
  return d->closed == 2;
}

static void test_tcp_stream_splits(void **state) {
  ctx_t *c = *state;
  ep_t *b = ep_bound(c, "127.0.0.1");
  static const size_t lens[] = {10, 0, 300, 20, 9, 70000, 12};
  const size_t nframes = sizeof(lens) / sizeof(lens[0]);
  size_t total = 0;
  for (size_t i = 0; i < nframes; i++)
    total += 4 + lens[i];
  uint8_t *stream = malloc(total);
  size_t *starts = malloc(nframes * sizeof(*starts));
  assert_non_null(stream);
  assert_non_null(starts);
  size_t off = 0;
  for (size_t i = 0; i < nframes; i++) {
    starts[i] = off;
    put32(stream + off, (uint32_t)lens[i]);
    memcpy(stream + off + 4, make_payload((uint32_t)i, lens[i]), lens[i]);
    off += 4 + lens[i];
  }
  /* pieces: frames 0-2 in one write; frame 3 split inside its header and
   * its payload; frame 4's header split byte by byte; frame 5 (bigger than
   * a read) in two halves with frame 6's header glued to the end */
  size_t cuts[] = {starts[3],         starts[3] + 2, starts[3] + 9,
                   starts[4] + 1,     starts[4] + 2, starts[4] + 3,
                   starts[5] + 30000, starts[6] + 2, total};
  drip_t d;
  memset(&d, 0, sizeof(d));
  d.data = stream;
  d.cuts = cuts;
  d.ncuts = sizeof(cuts) / sizeof(cuts[0]);
  struct sockaddr_storage ss;
  assert_int_equal(dmq__addr_parse(b->addr, "tcp", &ss), 0);
  assert_int_equal(uv_tcp_init(&c->loop, &d.tcp), 0);
  assert_int_equal(uv_check_init(&c->loop, &d.check), 0);
  d.tcp.data = d.check.data = d.creq.data = &d;
  assert_int_equal(uv_check_start(&d.check, drip_check_cb), 0);
  assert_int_equal(
      uv_tcp_connect(&d.creq, &d.tcp, (struct sockaddr *)&ss, drip_connect_cb),
      0);

  WAIT_RECV(c, b, nframes);
  for (size_t i = 0; i < nframes; i++) {
    assert_int_equal(b->len[i], lens[i]);
    if (lens[i] >= PAYLOAD_HDR)
      assert_int_equal(b->seq[i], i);
  }
  assert_int_equal(b->bad_payload, 0);
  assert_int_equal(b->from_mismatch, 0);

  uv_close((uv_handle_t *)&d.tcp, drip_closed_cb);
  uv_close((uv_handle_t *)&d.check, drip_closed_cb);
  assert_true(run_until(c, pred_drip_closed, &d));
  WAIT_CONNS(c, b, 0);
  free(stream);
  free(starts);
}

/* ======================================================================
 * UDP
 * ====================================================================== */

static void test_udp_batched_receive(void **state) {
  ctx_t *c = *state;
  ep_t *a = ep_bound(c, "127.0.0.1");
  ep_t *b = ep_bound(c, "127.0.0.1");
  assert_int_equal(dmq__udp_using_recvmmsg(b->t), 1);
  assert_int_equal(dmq__udp_using_recvmmsg(NULL), 0);
  /* more datagrams than one recvmmsg batch, queued before b reads */
  const size_t n = 100;
  for (size_t i = 0; i < n; i++)
    assert_int_equal(ep_send(a, b->addr, (uint32_t)i, 1000, 0), 0);
  WAIT_RECV(c, b, n);
  assert_int_equal(b->bad_payload, 0);
  assert_int_equal(b->from_mismatch, 0);
}

static void test_udp_inflight_bound(void **state) {
  ctx_t *c = *state;
  ep_t *a = ep_bound(c, "127.0.0.1");
  ep_t *b = ep_bound(c, "127.0.0.1");
  dmq__udp_set_queued_only(a->t, 1);
  /* queued sends are bounded; the bound frees up as they complete */
  size_t accepted = 0, rejected = 0;
  for (uint32_t i = 0; i < 2000; i++) {
    int rc = ep_send(a, b->addr, i, 100, 1);
    assert_true(rc == 0 || rc == DMQ_EAGAIN);
    if (rc == 0)
      accepted++;
    else
      rejected++;
  }
  assert_true(rejected > 0);
  assert_true(accepted >= 100);
  WAIT_DONE(c, a, accepted);
  assert_int_equal(ep_send(a, b->addr, 4000, 100, 1), 0);
  WAIT_DONE(c, a, accepted + 1);
  for (size_t i = 0; i < 2000; i++)
    if (a->done_count[i])
      assert_int_equal(a->done_status[i], 0);
  WAIT_RECV(c, b, 1);
  assert_int_equal(b->bad_payload, 0);
}

static void test_udp_unbound_send(void **state) {
  ctx_t *c = *state;
  ep_t *a = ep_new(c);
  ep_t *b = ep_bound(c, "127.0.0.1");
  /* a UDP transport needs its socket (bind) before it can send */
  assert_int_equal(ep_send(a, b->addr, 0, 10, 1), DMQ_ESTATE);
}

/* A batched datagram without a cookie that the kernel refuses (broadcast
 * without SO_BROADCAST: EACCES, nothing leaves the host) is reported once,
 * later, with cookie NULL; the datagrams around it still go out. */
static void test_udp_refused_counted(void **state) {
  ctx_t *c = *state;
  ep_t *a = ep_bound(c, "127.0.0.1");
  ep_t *b = ep_bound(c, "127.0.0.1");
  assert_int_equal(ep_send(a, b->addr, 1, 50, 0), 0);
  int rc = ep_send(a, "udp://255.255.255.255:9", 2, 50, 0);
  assert_int_equal(ep_send(a, b->addr, 3, 50, 0), 0);
  if (rc == 0) { /* batched (sendmmsg): the refusal comes later */
    WAIT_NOCOOKIE_FAILED(c, a, 1);
  } else { /* sent at once: refused inside send() */
    assert_int_equal(rc, DMQ_ETRANSPORT);
  }
  WAIT_RECV(c, b, 2);
  assert_int_equal(a->nocookie_failed, rc == 0 ? 1 : 0);
  assert_int_equal(a->unknown_cookie, 0);
  /* the same from inside a receive callback, whose batch the receive path
   * flushes itself at the end of the read */
  if (rc == 0) {
    b->send_on_recv = "udp://255.255.255.255:9";
    assert_int_equal(ep_send(a, b->addr, 4, 50, 0), 0);
    WAIT_NOCOOKIE_FAILED(c, b, 1);
    assert_int_equal(b->nocookie_failed, 1);
  }
}

static void test_udp_dual_stack(void **state) {
  ctx_t *c = *state;
  if (!ipv6_loopback_available())
    skip();
  /* an IPv6 wildcard socket talks to IPv4 peers; they appear (and are
   * answered) as plain IPv4 addresses */
  ep_t *v6 = ep_bound(c, "[::]");
  ep_t *v4 = ep_bound(c, "127.0.0.1");
  char to[DMQ__ADDR_STRLEN];
  snprintf(to, sizeof(to), "udp://127.0.0.1:%u", addr_port(v6->addr));
  assert_int_equal(ep_send(v4, to, 1, 50, 0), 0);
  WAIT_RECV(c, v6, 1);
  assert_string_equal(v6->first_from, v4->addr);
  assert_int_equal(ep_send(v6, v6->first_from, 2, 50, 1), 0);
  WAIT_RECV(c, v4, 1);
  WAIT_DONE(c, v6, 1);
  assert_int_equal(v4->seq[0], 2);
}

/* ======================================================================
 * Address parsing (shared by the socket transports)
 * ====================================================================== */

static void test_addr(void **state) {
  (void)state;
  static const struct {
    const char *in, *scheme, *out; /* out NULL: DMQ_EADDR */
  } cases[] = {
      {"udp://1.2.3.4:5", "udp", "udp://1.2.3.4:5"},
      {"UDP://1.2.3.4:5", "udp", "udp://1.2.3.4:5"},
      {"1.2.3.4:65535", "udp", "udp://1.2.3.4:65535"},
      {"tcp://[::1]:7946", "tcp", "tcp://[::1]:7946"},
      {"[::1]:0", "tcp", "tcp://[::1]:0"},
      {"[2001:DB8::1]:80", "tcp", "tcp://[2001:db8::1]:80"},
      {"[fe80::1%3]:80", "tcp", "tcp://[fe80::1%3]:80"},
      {"[::ffff:10.0.0.1]:9", "udp", "udp://10.0.0.1:9"},
      {"0.0.0.0:0", "udp", "udp://0.0.0.0:0"},
      {"udp://1.2.3.4:5", "tcp", NULL},
      {"udp://1.2.3.4:5", NULL, NULL},
      {"1.2.3.4:65536", "udp", NULL},
      {"1.2.3.4:123456", "udp", NULL},
      {"1.2.3.4:", "udp", NULL},
      {"1.2.3.4", "udp", NULL},
      {"1.2.3.4:5 ", "udp", NULL},
      {"1.2.3.4:+5", "udp", NULL},
      {"01.2.3.4:5", "udp", NULL},
      {"1.2.3.4.5:5", "udp", NULL},
      {"[::1]", "udp", NULL},
      {"[]:5", "udp", NULL},
      {"[1.2.3.4]:5", "udp", NULL},
      {"[::1:5", "udp", NULL},
      {"::1:5", "udp", NULL},
      {"[fe80::1%]:5", "udp", NULL},
      {"[fe80::1%no-such-if0]:5", "udp", NULL},
      {"example.com:5", "udp", NULL},
      {":5", "udp", NULL},
      {"", "udp", NULL},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    struct sockaddr_storage ss;
    char out[DMQ__ADDR_STRLEN];
    int rc = dmq__addr_parse(cases[i].in, cases[i].scheme, &ss);
    if (cases[i].out == NULL) {
      if (rc != DMQ_EADDR)
        fail_msg("parse \"%s\" accepted", cases[i].in);
      continue;
    }
    if (rc != 0)
      fail_msg("parse \"%s\": %s", cases[i].in, dmq_err_name(rc));
    int n = dmq__addr_format((struct sockaddr *)&ss, cases[i].scheme, out,
                             sizeof(out));
    assert_int_equal(n, (int)strlen(cases[i].out));
    assert_string_equal(out, cases[i].out);
  }
  /* too long an input, too small an output */
  char longaddr[DMQ_MAX_ADDR + 8];
  memset(longaddr, '1', sizeof(longaddr) - 1);
  longaddr[sizeof(longaddr) - 1] = '\0';
  struct sockaddr_storage ss;
  assert_int_equal(dmq__addr_parse(longaddr, "udp", &ss), DMQ_EADDR);
  assert_int_equal(dmq__addr_parse("1.2.3.4:5", "udp", &ss), 0);
  char small[8];
  assert_int_equal(
      dmq__addr_format((struct sockaddr *)&ss, "udp", small, sizeof(small)),
      DMQ_ETOOBIG);
  assert_int_equal(dmq__addr_port((struct sockaddr *)&ss), 5);
}

/* ======================================================================
 * Registration: the generic suite once per factory, then the specific
 * tests.
 * ====================================================================== */

typedef struct named_test {
  const char *name;
  CMUnitTestFunction fn;
} named_test_t;

static const named_test_t generic[] = {
    {"bind_local_addr", test_bind_local_addr},
    {"send_recv", test_send_recv},
    {"mtu", test_mtu},
    {"bad_address", test_bad_address},
    {"close_with_pending", test_close_with_pending},
    {"send_after_close", test_send_after_close},
    {"close_in_callbacks", test_close_in_callbacks},
    {"unreachable", test_unreachable},
    {"ipv6", test_ipv6},
    {"burst", test_burst},
};
#define NGENERIC (sizeof(generic) / sizeof(generic[0]))

static const struct {
  const char *scheme;
  named_test_t t;
} specific[] = {
    {"tcp", {"connection_reuse", test_tcp_connection_reuse}},
    {"tcp", {"reconnect", test_tcp_reconnect}},
    {"tcp", {"recover_after_backoff", test_tcp_recover_after_backoff}},
    {"tcp", {"idle_close", test_tcp_idle_close}},
    {"tcp", {"oversized_frame", test_tcp_oversized_frame}},
    {"tcp", {"queue_bound", test_tcp_queue_bound}},
    {"tcp", {"stream_splits", test_tcp_stream_splits}},
    {"tcp",
     {"connect_fails_synchronously", test_tcp_connect_fails_synchronously}},
    {"tcp", {"connect_timeout", test_tcp_connect_timeout}},
    {"udp", {"batched_receive", test_udp_batched_receive}},
    {"udp", {"inflight_bound", test_udp_inflight_bound}},
    {"udp", {"unbound_send", test_udp_unbound_send}},
    {"udp", {"refused_counted", test_udp_refused_counted}},
    {"udp", {"dual_stack", test_udp_dual_stack}},
};
#define NSPECIFIC (sizeof(specific) / sizeof(specific[0]))

static const factory_t *factory_for(const char *scheme) {
  for (size_t i = 0; i < NFACTORIES; i++)
    if (strcmp(factories[i].scheme, scheme) == 0)
      return &factories[i];
  return NULL;
}

int main(void) {
  enum { MAXT = NFACTORIES * NGENERIC + NSPECIFIC + 1, NAMELEN = 64 };
  static struct CMUnitTest tests[MAXT];
  static char names[MAXT][NAMELEN];
  size_t n = 0;

  for (size_t f = 0; f < NFACTORIES; f++) {
    for (size_t g = 0; g < NGENERIC; g++, n++) {
      snprintf(names[n], NAMELEN, "%s/%s", factories[f].name, generic[g].name);
      tests[n] = (struct CMUnitTest){names[n], generic[g].fn, setup, teardown,
                                     (void *)&factories[f]};
    }
  }
  for (size_t s = 0; s < NSPECIFIC; s++) {
    const factory_t *f = factory_for(specific[s].scheme);
    if (f == NULL)
      continue;
    snprintf(names[n], NAMELEN, "%s/%s", f->name, specific[s].t.name);
    tests[n] = (struct CMUnitTest){names[n], specific[s].t.fn, setup, teardown,
                                   (void *)f};
    n++;
  }
  snprintf(names[n], NAMELEN, "addr/parse_format");
  tests[n] = (struct CMUnitTest){names[n], test_addr, NULL, NULL, NULL};
  n++;
  return _cmocka_run_group_tests("conformance", tests, n, NULL, NULL);
}
