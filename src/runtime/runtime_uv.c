/* libdmq - the libuv runtime: one node driven on a libuv loop.
 *
 * This is the only file of src/ that does I/O (through libuv: sockets via
 * the UDP/TCP transports, timers, and, through resolve.c, DNS on the
 * thread pool). Everything else in src/ is the sans-I/O core; this file is
 * the glue that feeds it:
 *   - received bytes: the transports' on_recv hook calls dmq_node_recv();
 *   - time: uv_now() (milliseconds, monotonic) is the node's clock;
 *   - timers: one uv_timer_t armed for dmq_node_next_deadline(), calling
 *     dmq_node_tick() on expiry, re-armed after every tick and every
 *     received packet; a deadline already due runs from a uv_idle_t
 *     instead, once per loop turn, so that the turn's I/O runs between
 *     two ticks (see rt_arm). Calls the application makes on the node between
 *     iterations (dmq_send, set_meta, join, ...) can make the deadline
 *     earlier; the core then calls the node's wake hook, which starts a
 *     uv_prepare_t that re-arms the timer once before the loop next polls.
 *     Recomputing the deadline on every iteration instead would cost every
 *     node a deadline computation per wake-up of any node on the loop
 *     (docs/bench.md has what that cost at 100 nodes).
 *
 * UDP and TCP bind the same port so that the advertised "udp://h:p" also
 * names the stream endpoint "tcp://h:p" the core uses for push/pull and the
 * stream fallback probe. Closing is graceful: leave, keep running until the
 * leave is gossiped (or a timeout), then close every handle, transport and
 * the resolver, and only when all of them have called back free the node
 * and call the user's callback, so that uv_run() can return and
 * uv_loop_close() succeed.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>
#include <uv.h>

#include "common/addr.h"
#include "common/fdcheck.h"
#include "dmq/uv.h"
#include "internal.h"
#include "runtime/resolve.h"
#include "runtime/runtime_test.h"
#include "sized.h"

#define RT_DEFAULT_DNS_REFRESH_MS 30000
/* With port 0, how many UDP ports to try before giving up on finding one
 * whose TCP twin is free too. */
#define RT_BIND_ATTEMPTS 8
/* While closing, how often to check whether the leave has been gossiped. */
#define RT_FLUSH_POLL_MS 10
#define RT_MS_PER_S 1000
/* Timer coalescing granularity (see rt_arm). */
#define RT_TIMER_SLACK_MS 10
#define RT_US_PER_MS 1000
/* uv handles owned by the runtime: the deadline timer, the idle handle for
 * work due now, the prepare handle and the flush timer. */
#define RT_OWN_HANDLES 4

typedef enum rt_state {
  RT_RUNNING = 0,
  RT_LEAVING, /* dmq_uv_close() called: waiting for the leave to spread */
  RT_CLOSING  /* handles and transports closing */
} rt_state_t;

struct dmq__uv {
  uv_loop_t *loop;
  dmq_node_t *node;
  dmq_transport_t *udp, *tcp;
  uv_timer_t timer;     /* armed for dmq_node_next_deadline() */
  uv_idle_t now;        /* instead of the timer when the deadline is due */
  uv_prepare_t prepare; /* re-arms the timer after the core's wake hook */
  int wake_pending;     /* the prepare handle is started by rt_wake */
  uv_timer_t flush;     /* while leaving: polls dmq_node_left_flushed() */
  uint64_t armed;       /* (rounded) deadline the timer is armed for */
  char addr[DMQ_MAX_ADDR + 1];
  uint32_t dns_refresh_ms;
  dmq__resolver_t *resolver; /* created by the first dmq_uv_join() */
  int join_pending;          /* next resolution result starts a join */
  rt_state_t state;
  uint64_t close_deadline;
  unsigned pending; /* handles, transports and resolver still closing */
  void (*close_cb)(void *ud);
  void *close_ud;
};

/* ---------------------------------------------------------------------- */
/* timer                                                                   */

static void rt_on_timer(uv_timer_t *h);
static void rt_on_now(uv_idle_t *h);

static void rt_arm(dmq_uv_t *rt) {
  if (rt->state == RT_CLOSING)
    return;
  if (rt->wake_pending) {
    rt->wake_pending = 0;
    uv_prepare_stop(&rt->prepare);
  }
  uint64_t delivery;
  uint64_t d = dmq__next_deadlines(rt->node, &delivery);
  if (d == DMQ_NEVER) {
    rt->armed = DMQ_NEVER;
    uv_timer_stop(&rt->timer);
    uv_idle_stop(&rt->now);
    return;
  }
  uint64_t now = uv_now(rt->loop);
  if (d <= now) {
    /* Due now (work the core left for the next turn: the rest of a
     * sending burst, acks to send): an idle handle, which runs once per
     * loop turn and makes that turn's poll for I/O not block. A timer of
     * timeout 0 started from the timer's own callback would run again in
     * the same timer pass in libuv < 1.48, back to back, without reading
     * the socket in between (libuv issue 4245). */
    uv_timer_stop(&rt->timer);
    rt->armed = DMQ_NEVER;
    if (!uv_is_active((uv_handle_t *)&rt->now))
      uv_idle_start(&rt->now, rt_on_now);
    return;
  }
  uv_idle_stop(&rt->now);
  /* uv timers count from uv_now(), the node's clock. A deadline further
   * away than RT_TIMER_SLACK_MS is rounded up to a multiple of it, so
   * that the timers of nodes sharing a loop (and of unrelated timers)
   * coalesce into fewer wake-ups; near deadlines and delivery deadlines
   * (retransmissions, TTLs, request timeouts) are kept exact. The
   * rounding also spares most re-arms: most deadline changes stay inside
   * the same slot. */
  uint64_t due = d;
  if (d > now + RT_TIMER_SLACK_MS && delivery != d)
    due = (d + RT_TIMER_SLACK_MS - 1) / RT_TIMER_SLACK_MS * RT_TIMER_SLACK_MS;
  if (due == rt->armed && uv_is_active((uv_handle_t *)&rt->timer))
    return;
  rt->armed = due;
  uv_timer_start(&rt->timer, rt_on_timer, due - now, 0);
}

static void rt_tick(dmq_uv_t *rt) {
  rt->armed = DMQ_NEVER;
  dmq_node_tick(rt->node, uv_now(rt->loop));
  /* the tick's burst of datagrams, in one go */
  if (rt->udp != NULL && rt->udp->ops->flush != NULL)
    rt->udp->ops->flush(rt->udp);
  rt_arm(rt);
}

static void rt_on_timer(uv_timer_t *h) {
  rt_tick(h->data);
}

static void rt_on_now(uv_idle_t *h) {
  uv_idle_stop(h);
  rt_tick(h->data);
}

static void rt_on_prepare(uv_prepare_t *h) {
  rt_arm(h->data);
}

/* The node's wake hook: re-arm before the loop polls next. */
static void rt_wake(void *ud) {
  dmq_uv_t *rt = ud;
  if (rt->state != RT_CLOSING) {
    rt->wake_pending = 1;
    uv_prepare_start(&rt->prepare, rt_on_prepare);
  }
}

/* ---------------------------------------------------------------------- */
/* transports                                                              */

static void rt_on_recv(dmq_transport_t *t, const char *from, const void *buf,
                       size_t len) {
  dmq_uv_t *rt = t->owner;
  if (rt == NULL || rt->state == RT_CLOSING)
    return;
  dmq_node_recv(rt->node, t, from, buf, len, uv_now(rt->loop));
  rt_arm(rt);
}

static void rt_close_step(dmq_uv_t *rt);

static void rt_on_transport_closed(dmq_transport_t *t) {
  dmq_uv_t *rt = t->owner;
  if (t == rt->udp)
    rt->udp = NULL;
  else if (t == rt->tcp)
    rt->tcp = NULL;
  rt_close_step(rt);
}

static void rt_hook(dmq_uv_t *rt, dmq_transport_t *t) {
  t->owner = rt;
  t->on_recv = rt_on_recv;
  t->on_closed = rt_on_transport_closed;
}

/* Close a transport that never served the node (it frees itself). */
static void rt_discard(dmq_transport_t *t) {
  if (t == NULL)
    return;
  t->owner = NULL;
  t->on_recv = NULL;
  t->on_closed = NULL;
  t->ops->close(t);
}

static void rt_set_port(struct sockaddr_storage *ss, uint16_t port) {
  if (ss->ss_family == AF_INET)
    ((struct sockaddr_in *)ss)->sin_port = htons(port);
  else if (ss->ss_family == AF_INET6)
    ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

/* Bind UDP at *where, then TCP on the same host and the port UDP got. With
 * port 0, a port whose TCP twin is taken is given up for another one. */
static int rt_bind_transports(dmq_uv_t *rt,
                              const struct sockaddr_storage *where,
                              int no_tcp) {
  const struct sockaddr *wsa = (const struct sockaddr *)where;
  uint16_t want = dmq__addr_port(wsa);
  int rc = DMQ_ETRANSPORT;
  for (int attempt = 0; attempt < RT_BIND_ATTEMPTS; attempt++) {
    char a[DMQ__ADDR_STRLEN];
    dmq_transport_t *udp = NULL, *tcp = NULL;
    rc = dmq_udp_transport_new(rt->loop, &udp);
    if (rc != 0)
      return rc;
    rt_hook(rt, udp);
    if (dmq__addr_format(wsa, "udp", a, sizeof(a)) < 0) {
      rt_discard(udp);
      return DMQ_EINVAL;
    }
    rc = udp->ops->bind(udp, a);
    if (rc != 0) {
      rt_discard(udp);
      return rc;
    }
    if (no_tcp) {
      rt->udp = udp;
      return 0;
    }
    struct sockaddr_storage got;
    rc = udp->ops->local_addr(udp, a, sizeof(a));
    if (rc == 0)
      rc = dmq__addr_parse(a, "udp", &got);
    if (rc != 0) {
      rt_discard(udp);
      return rc;
    }
    struct sockaddr_storage tss = *where;
    rt_set_port(&tss, dmq__addr_port((const struct sockaddr *)&got));
    rc = dmq_tcp_transport_new(rt->loop, &tcp);
    if (rc != 0) {
      rt_discard(udp);
      return rc;
    }
    rt_hook(rt, tcp);
    if (dmq__addr_format((const struct sockaddr *)&tss, "tcp", a, sizeof(a)) <
        0)
      rc = DMQ_EINVAL;
    else
      rc = tcp->ops->bind(tcp, a);
    if (rc == 0) {
      rt->udp = udp;
      rt->tcp = tcp;
      return 0;
    }
    rt_discard(tcp);
    rt_discard(udp);
    if (want != 0)
      return rc; /* the caller's port: nothing else to try */
  }
  return rc;
}

/* Why dmq_uv_new() failed, to opts->log_cb (node NULL). */
static void rt_setup_log(const dmq_uv_options_t *opts, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void rt_setup_log(const dmq_uv_options_t *opts, const char *fmt, ...) {
  if (opts->log_cb == NULL)
    return;
  char buf[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  opts->log_cb(NULL, DMQ_LOG_ERROR, buf, opts->log_ud);
}

/* use_fds: the host's sockets instead of binding (opts->udp_fd, and
 * opts->tcp_fd unless no_tcp or -1). *bound: the UDP socket's address. */
static int rt_open_fds(dmq_uv_t *rt, const dmq_uv_options_t *opts,
                       struct sockaddr_storage *bound) {
  char why[128];
  struct sockaddr_storage tss;
  if (dmq__fd_check(opts->udp_fd, SOCK_DGRAM, 0, bound, why, sizeof(why)) !=
      0) {
    rt_setup_log(opts, "dmq_uv_new: udp_fd: %s", why);
    return DMQ_EINVAL;
  }
  int want_tcp = !opts->no_tcp && opts->tcp_fd != -1;
  if (want_tcp) {
    if (dmq__fd_check(opts->tcp_fd, SOCK_STREAM, 1, &tss, why, sizeof(why)) !=
        0) {
      rt_setup_log(opts, "dmq_uv_new: tcp_fd: %s", why);
      return DMQ_EINVAL;
    }
    uint16_t up = dmq__addr_port((const struct sockaddr *)bound);
    uint16_t tp = dmq__addr_port((const struct sockaddr *)&tss);
    if (up != tp) {
      rt_setup_log(opts,
                   "dmq_uv_new: tcp_fd is on port %u, udp_fd on port %u: "
                   "they must share the port",
                   (unsigned)tp, (unsigned)up);
      return DMQ_EINVAL;
    }
  }
  dmq_transport_t *udp = NULL, *tcp = NULL;
  int rc = dmq_udp_transport_new(rt->loop, &udp);
  if (rc != 0)
    return rc;
  rt_hook(rt, udp);
  if ((rc = dmq_udp_transport_open(udp, opts->udp_fd)) != 0) {
    rt_setup_log(opts, "dmq_uv_new: udp_fd %d: %s", opts->udp_fd,
                 dmq_strerror(rc));
    rt_discard(udp);
    return rc;
  }
  if (want_tcp) {
    if ((rc = dmq_tcp_transport_new(rt->loop, &tcp)) != 0) {
      rt_discard(udp);
      return rc;
    }
    rt_hook(rt, tcp);
    if ((rc = dmq_tcp_transport_open(tcp, opts->tcp_fd)) != 0) {
      rt_setup_log(opts, "dmq_uv_new: tcp_fd %d: %s", opts->tcp_fd,
                   dmq_strerror(rc));
      rt_discard(tcp);
      rt_discard(udp);
      return rc;
    }
  }
  rt->udp = udp;
  rt->tcp = tcp;
  return 0;
}

static int rt_unspecified(const struct sockaddr_storage *ss) {
  if (ss->ss_family == AF_INET)
    return ((const struct sockaddr_in *)ss)->sin_addr.s_addr ==
           htonl(INADDR_ANY);
  if (ss->ss_family == AF_INET6)
    return IN6_IS_ADDR_UNSPECIFIED(
        &((const struct sockaddr_in6 *)ss)->sin6_addr);
  return 0;
}

/* ---------------------------------------------------------------------- */
/* seeds                                                                   */

static void rt_on_resolved(void *ud, const char *const *addrs, size_t n) {
  dmq_uv_t *rt = ud;
  if (rt->state != RT_RUNNING || n == 0)
    return; /* nothing yet: the resolver retries with back-off */
  if (rt->join_pending) {
    rt->join_pending = 0;
    dmq_node_join(rt->node, addrs, n, uv_now(rt->loop));
  } else {
    /* a refresh: follow DNS without restarting the join */
    dmq_node_set_seeds(rt->node, addrs, n);
  }
  rt_arm(rt);
}

int dmq_uv_join(dmq_uv_t *rt, const char *const *seeds, size_t n) {
  if (rt == NULL || (seeds == NULL && n > 0))
    return DMQ_EINVAL;
  if (rt->state != RT_RUNNING)
    return DMQ_ECLOSED;
  if (rt->resolver == NULL) {
    int rc = dmq__resolver_new(rt->loop, rt->dns_refresh_ms, rt_on_resolved, rt,
                               &rt->resolver);
    if (rc != 0)
      return rc;
  }
  int rc = dmq__resolver_set(rt->resolver, seeds, n);
  if (rc != 0)
    return rc;
  if (dmq__resolver_name_count(rt->resolver) > 0) {
    rt->join_pending = 1; /* joins when the first round answers */
    return 0;
  }
  /* addresses only: join now */
  const char *addrs[DMQ__MAX_SEEDS];
  size_t k = dmq__resolver_addrs(rt->resolver, addrs, DMQ__MAX_SEEDS);
  rt->join_pending = 0;
  uv_update_time(rt->loop);
  rc = dmq_node_join(rt->node, addrs, k, uv_now(rt->loop));
  rt_arm(rt);
  return rc;
}

uint64_t dmq__uv_resolve_rounds(struct dmq__uv *rt) {
  return rt != NULL ? dmq__resolver_rounds(rt->resolver) : 0;
}

/* ---------------------------------------------------------------------- */
/* lifecycle                                                               */

static int rt_advertise(const dmq_config_t *cfg, const dmq_uv_options_t *opts,
                        const struct sockaddr_storage *bind_ss, char *out,
                        size_t cap) {
  out[0] = '\0';
  if (cfg->advertise_addr != NULL) {
    size_t l = strlen(cfg->advertise_addr);
    if (l == 0 || l >= cap)
      return DMQ_EINVAL;
    memcpy(out, cfg->advertise_addr, l + 1);
    return 0;
  }
  if (opts->advertise != NULL) {
    struct sockaddr_storage ss;
    if (dmq__addr_parse(opts->advertise, "udp", &ss) != 0 ||
        dmq__addr_port((const struct sockaddr *)&ss) == 0 ||
        rt_unspecified(&ss))
      return DMQ_EINVAL;
    return dmq__addr_format((const struct sockaddr *)&ss, "udp", out, cap) > 0
               ? 0
               : DMQ_EINVAL;
  }
  /* the bound address, known after bind; it must be a usable one */
  return rt_unspecified(bind_ss) ? DMQ_EINVAL : 0;
}

/* The 0.3.0 layout ends at log_ud (src/sized.h). */
#define RT_OPTIONS_MIN_SIZE DMQ__SIZE_UPTO(dmq_uv_options_t, log_ud)
DMQ__SIZE_CHECK(dmq_uv_options_t, RT_OPTIONS_MIN_SIZE);

static void rt_options_defaults(dmq_uv_options_t *o) {
  memset(o, 0, sizeof(*o));
  o->size = sizeof(*o);
  o->dns_refresh_ms = RT_DEFAULT_DNS_REFRESH_MS;
  o->udp_fd = o->tcp_fd = -1;
}

int dmq_uv_options_init_sized(dmq_uv_options_t *o, size_t size) {
  dmq_uv_options_t d;
  rt_options_defaults(&d);
  return dmq__sized_init(o, size, &d, sizeof(d), RT_OPTIONS_MIN_SIZE);
}

int dmq__uv_options_load(dmq_uv_options_t *dst, const dmq_uv_options_t *src) {
  rt_options_defaults(dst);
  if (src == NULL)
    return DMQ_EINVAL;
  int rc =
      dmq__sized_in(dst, sizeof(*dst), src, src->size, RT_OPTIONS_MIN_SIZE);
  dst->size = sizeof(*dst);
  return rc;
}

/* use_fds with neither socket: a node whose only transport the host adds
 * (dmq/uv_options.h). */
static int rt_no_sockets(const dmq_uv_options_t *opts) {
  return opts->use_fds && opts->udp_fd == -1 &&
         (opts->no_tcp || opts->tcp_fd == -1);
}

/* The transports: the host's sockets (use_fds: the address to advertise
 * comes from them) or sockets bound to bind_ss; rt->addr is then the
 * address to advertise. */
static int rt_open_transports(dmq_uv_t *rt, const dmq_config_t *cfg,
                              const dmq_uv_options_t *opts,
                              struct sockaddr_storage *bind_ss) {
  int rc;
  if (rt_no_sockets(opts)) {
    /* the host brings its own transport (dmq/host.h) and says where it is
     * reached: only cfg->advertise_addr can say it (opts->advertise is a
     * socket address) */
    rc = cfg->advertise_addr != NULL
             ? rt_advertise(cfg, opts, bind_ss, rt->addr, sizeof(rt->addr))
             : DMQ_EINVAL;
    if (rc != 0)
      rt_setup_log(opts, "dmq_uv_new: no sockets (udp_fd and tcp_fd -1): "
                         "cfg->advertise_addr is required");
    return rc;
  }
  if (opts->use_fds) {
    if ((rc = rt_open_fds(rt, opts, bind_ss)) != 0)
      return rc;
    rc = rt_advertise(cfg, opts, bind_ss, rt->addr, sizeof(rt->addr));
    if (rc != 0) {
      rt_setup_log(opts, "dmq_uv_new: no address to advertise: udp_fd is "
                         "bound to an unspecified address (set advertise) "
                         "or advertise is invalid");
      return rc;
    }
  } else {
    rc = rt_advertise(cfg, opts, bind_ss, rt->addr, sizeof(rt->addr));
    if (rc != 0)
      return rc;
    rc = rt_bind_transports(rt, bind_ss, opts->no_tcp);
    if (rc != 0)
      return rc;
  }
  if (rt->addr[0] == '\0')
    return rt->udp->ops->local_addr(rt->udp, rt->addr, sizeof(rt->addr));
  return 0;
}

/* A generation (wall-clock ms) and a random seed when the config has none. */
static void rt_fill_identity(dmq_config_t *c) {
  if (c->generation == 0) {
    uv_timeval64_t tv;
    if (uv_gettimeofday(&tv) == 0)
      c->generation = (uint64_t)tv.tv_sec * RT_MS_PER_S +
                      (uint64_t)tv.tv_usec / RT_US_PER_MS;
    if (c->generation == 0)
      c->generation = uv_hrtime();
  }
  if (c->rng_seed == 0)
    c->rng_seed = uv_hrtime() ^ (uint64_t)uv_os_getpid();
}

/* The loop handles, the wake hook, and the node's start. */
static void rt_start(dmq_uv_t *rt) {
  uv_loop_t *loop = rt->loop;
  uv_timer_init(loop, &rt->timer);
  uv_idle_init(loop, &rt->now);
  uv_timer_init(loop, &rt->flush);
  uv_prepare_init(loop, &rt->prepare);
  rt->timer.data = rt->now.data = rt->flush.data = rt->prepare.data = rt;
  dmq_node_set_wake_cb(rt->node, rt_wake, rt);
  uv_update_time(loop);
  dmq_node_start(rt->node, uv_now(loop));
  rt_arm(rt);
}

int dmq_uv_new(uv_loop_t *loop, const dmq_config_t *cfg,
               const dmq_uv_options_t *opts, dmq_uv_t **out) {
  if (out == NULL)
    return DMQ_EINVAL;
  *out = NULL;
  dmq_config_t c;
  dmq_uv_options_t o;
  if (loop == NULL || dmq__config_load(&c, cfg) != 0 || c.name == NULL ||
      dmq__uv_options_load(&o, opts) != 0 || (o.bind == NULL && !o.use_fds))
    return DMQ_EINVAL;
  cfg = &c;
  opts = &o;
  struct sockaddr_storage bind_ss;
  if (!opts->use_fds && dmq__addr_parse(opts->bind, "udp", &bind_ss) != 0)
    return DMQ_EINVAL;
  dmq_uv_t *rt = calloc(1, sizeof(*rt));
  if (rt == NULL)
    return DMQ_ENOMEM;
  rt->loop = loop;
  rt->armed = DMQ_NEVER;
  rt->dns_refresh_ms =
      opts->dns_refresh_ms ? opts->dns_refresh_ms : RT_DEFAULT_DNS_REFRESH_MS;
  int rc = rt_open_transports(rt, cfg, opts, &bind_ss);
  if (rc != 0)
    goto fail;
  c.advertise_addr = rt->addr;
  rt_fill_identity(&c);
  rc = dmq_node_new(&c, NULL, &rt->node);
  if (rc != 0)
    goto fail;
  /* the datagram budget is the node's: gossip and delivery pack up to
   * cfg.mtu (validated <= 65507 by dmq_node_new) */
  if (rt->udp != NULL) {
    rt->udp->mtu = c.mtu;
    rc = dmq_node_add_transport(rt->node, rt->udp);
  }
  if (rc == 0 && rt->tcp != NULL)
    rc = dmq_node_add_transport(rt->node, rt->tcp);
  if (rc != 0)
    goto fail;
  /* nothing below can fail: handles exist only on success */
  rt_start(rt);
  *out = rt;
  return 0;
fail:
  if (rt->node != NULL)
    dmq_node_delete(rt->node);
  rt_discard(rt->udp);
  rt_discard(rt->tcp);
  free(rt);
  return rc;
}

dmq_node_t *dmq_uv_node(dmq_uv_t *rt) {
  return rt != NULL ? rt->node : NULL;
}

uv_loop_t *dmq_uv_loop(dmq_uv_t *rt) {
  return rt != NULL ? rt->loop : NULL;
}

const char *dmq_uv_addr(dmq_uv_t *rt) {
  return rt != NULL ? rt->addr : NULL;
}

void dmq_uv_kick(dmq_uv_t *rt) {
  if (rt != NULL)
    rt_arm(rt);
}

static void rt_close_step(dmq_uv_t *rt) {
  if (--rt->pending > 0 || rt->state != RT_CLOSING)
    return;
  void (*cb)(void *) = rt->close_cb;
  void *ud = rt->close_ud;
  free(rt);
  if (cb != NULL)
    cb(ud);
}

static void rt_on_handle_closed(uv_handle_t *h) {
  rt_close_step(h->data);
}

static void rt_on_resolver_closed(void *ud) {
  dmq_uv_t *rt = ud;
  rt->resolver = NULL;
  rt_close_step(rt);
}

static void rt_shutdown(dmq_uv_t *rt) {
  rt->state = RT_CLOSING;
  /* The node goes first: deleting it detaches it from the transports
   * (t->node = NULL), which must still exist then. Nothing feeds it any
   * more: the timer is closed below and on_recv ignores input now. */
  dmq_node_delete(rt->node);
  rt->node = NULL;
  rt->pending += RT_OWN_HANDLES;
  uv_close((uv_handle_t *)&rt->timer, rt_on_handle_closed);
  uv_close((uv_handle_t *)&rt->now, rt_on_handle_closed);
  uv_close((uv_handle_t *)&rt->prepare, rt_on_handle_closed);
  uv_close((uv_handle_t *)&rt->flush, rt_on_handle_closed);
  /* counted before close(): on_closed decrements */
  dmq_transport_t *udp = rt->udp, *tcp = rt->tcp;
  rt->pending += (udp != NULL) + (tcp != NULL);
  if (udp != NULL)
    udp->ops->close(udp);
  if (tcp != NULL)
    tcp->ops->close(tcp);
}

static void rt_on_flush(uv_timer_t *h) {
  dmq_uv_t *rt = h->data;
  /* done when the leave went out often enough, when nobody is left to hear
   * it, or at the deadline */
  if (dmq_node_left_flushed(rt->node) ||
      dmq_node_member_count(rt->node, DMQ_MASK_LIVE) == 0 ||
      uv_now(rt->loop) >= rt->close_deadline)
    rt_shutdown(rt);
}

/* Test/bench hook: a crash. No leave is announced; the node is deleted and
 * every handle closed at once, as if the process had died (peers must detect
 * the failure). Not from inside a libdmq callback (the node delete would be
 * refused). cb runs once everything is closed and rt freed. */
void dmq__uv_abort(dmq_uv_t *rt, void (*cb)(void *ud), void *ud) {
  if (rt == NULL || rt->state == RT_CLOSING)
    return;
  rt->close_cb = cb;
  rt->close_ud = ud;
  /* while leaving, the resolver is already closing */
  if (rt->state == RT_RUNNING && rt->resolver != NULL) {
    rt->pending++;
    dmq__resolver_close(rt->resolver, rt_on_resolver_closed, rt);
  }
  rt_shutdown(rt);
}

void dmq_uv_close(dmq_uv_t *rt, uint32_t flush_timeout_ms, void (*cb)(void *ud),
                  void *ud) {
  if (rt == NULL || rt->state != RT_RUNNING)
    return;
  rt->state = RT_LEAVING;
  rt->close_cb = cb;
  rt->close_ud = ud;
  uv_update_time(rt->loop);
  uint64_t now = uv_now(rt->loop);
  rt->close_deadline = now + flush_timeout_ms;
  if (rt->resolver != NULL) {
    rt->pending++;
    dmq__resolver_close(rt->resolver, rt_on_resolver_closed, rt);
  }
  dmq_node_leave(rt->node, now);
  rt_arm(rt);
  /* never closes synchronously: the first check runs from the loop */
  uv_timer_start(&rt->flush, rt_on_flush, 0, RT_FLUSH_POLL_MS);
}

/* ---------------------------------------------------------------------- */
/* stream limits                                                           */

int dmq_uv_set_stream_limits(dmq_uv_t *rt, const dmq_stream_limits_t *l) {
  if (rt == NULL || l == NULL)
    return DMQ_EINVAL;
  if (rt->state == RT_CLOSING)
    return DMQ_ECLOSED;
  if (rt->tcp == NULL)
    return DMQ_ESTATE;
  return dmq_tcp_transport_set_limits(rt->tcp, l);
}

int dmq_uv_stream_stats_sized(dmq_uv_t *rt, dmq_stream_stats_t *out,
                              size_t size) {
  if (rt == NULL || out == NULL)
    return DMQ_EINVAL;
  if (rt->state == RT_CLOSING)
    return DMQ_ECLOSED;
  if (rt->tcp == NULL)
    return DMQ_ESTATE;
  return dmq_tcp_transport_stats_sized(rt->tcp, out, size);
}
