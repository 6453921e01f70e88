/* libdmq - the node: the composition root of the core.
 *
 * The node is sans-I/O. It is the one file that knows both membership
 * (swim.c, over the member table of members.c) and queued delivery
 * (src/delivery): it demultiplexes received packets (membership messages to
 * swim, DATA and DACK to delivery), runs both sets of timers, merges their
 * deadlines, relays member changes to delivery (the member listener) and
 * runs the callbacks. It also owns the transports, the event queue, stats
 * and the public node API. Callbacks never run in the middle of protocol
 * processing: member events are snapshotted into node->events and delivered
 * by dmq__flush_events() once the input that caused them is fully handled.
 *
 *          node.c  (recv, tick, deadline, callbacks)
 *          /    \
 *     swim.c    delivery/
 *          \    /
 *        members.c  (table, gossiped state, listener)
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "delivery/delivery.h"
#include "internal.h"
#include "members.h"
#include "sized.h"
#include "swim.h"

/* ---- allocation ---- */

static void *node_libc_malloc(size_t s, void *ud) {
  (void)ud;
  return malloc(s);
}
static void *node_libc_realloc(void *p, size_t s, void *ud) {
  (void)ud;
  return realloc(p, s);
}
static void node_libc_free(void *p, void *ud) {
  (void)ud;
  free(p);
}

/* Every failed allocation is counted (DMQ_DROP_NOMEM), also where the
 * caller goes on without it (a member not added, a push/pull not answered,
 * a suspicion not started, a DATA not buffered): the operator sees that
 * memory ran out even when no call returned DMQ_ENOMEM. */
void *dmq__malloc(dmq_node_t *n, size_t size) {
  void *p = n->alloc.malloc_fn(size, n->alloc.ud);
  if (p == NULL)
    n->stats.drops[DMQ_DROP_NOMEM]++;
  return p;
}
void *dmq__realloc(dmq_node_t *n, void *p, size_t size) {
  void *q = n->alloc.realloc_fn(p, size, n->alloc.ud);
  if (q == NULL && size > 0)
    n->stats.drops[DMQ_DROP_NOMEM]++;
  return q;
}
void dmq__free(dmq_node_t *n, void *p) {
  if (p != NULL)
    n->alloc.free_fn(p, n->alloc.ud);
}

void dmq__log(dmq_node_t *n, dmq_log_level_t lvl, const char *fmt, ...) {
  if (n->log_cb == NULL || lvl > n->log_level)
    return;
  char buf[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  /* synchronous, possibly in the middle of an update: queries only */
  n->in_sync_cb++;
  n->log_cb(n, lvl, buf, n->log_ud);
  n->in_sync_cb--;
}

/* ---- names ---- */

const char *dmq_member_state_name(dmq_member_state_t s) {
  static const char *const names[] = {"alive", "suspect", "dead", "left"};
  return (unsigned)s < 4 ? names[s] : "unknown";
}

const char *dmq_member_event_name(dmq_member_event_t e) {
  static const char *const names[] = {
      "joined", "suspect",      "alive_again", "dead",
      "left",   "meta_updated", "reaped",      "channels_updated"};
  return (unsigned)e < sizeof(names) / sizeof(names[0]) ? names[e] : "unknown";
}

const char *dmq_drop_reason_name(dmq_drop_reason_t r) {
  static const char *const names[] = {
#define DMQ__DROP_STR(n, d) #n,
      DMQ_DROP_MAP(DMQ__DROP_STR)
#undef DMQ__DROP_STR
  };
  return (unsigned)r < DMQ_DROP_COUNT ? names[r] : "UNKNOWN";
}

/* ---- events ---- */

static void node_flush_member_events(dmq_node_t *n);

void dmq__emit(dmq_node_t *n, dmq_member_event_t ev, const dmq__member_t *m) {
  if (n->member_cb == NULL || m->is_self)
    return;
  size_t need = sizeof(dmq__event_t) + (size_t)m->name_len + 1 +
                (size_t)m->addr_len + 1 + m->meta_len;
  need = (need + 7) & ~(size_t)7;
  if (n->ev_used + need > n->ev_cap) {
    size_t nc = n->ev_cap ? n->ev_cap : 512;
    while (nc < n->ev_used + need)
      nc *= 2;
    uint8_t *ne = dmq__realloc(n, n->events, nc);
    if (ne == NULL) {
      n->stats.events_lost++;
      dmq__log(n, DMQ_LOG_ERROR, "out of memory: member event lost");
      return;
    }
    n->events = ne;
    n->ev_cap = nc;
  }
  uint8_t *rec = n->events + n->ev_used;
  dmq__event_t e;
  e.inc = m->inc;
  e.gen = m->gen;
  e.since = m->state_since;
  e.size = (uint32_t)need;
  e.meta_len = m->meta_len;
  e.ev = (uint8_t)ev;
  e.state = m->state;
  e.name_len = m->name_len;
  e.addr_len = m->addr_len;
  memcpy(rec, &e, sizeof(e));
  uint8_t *p = rec + sizeof(e);
  memcpy(p, m->name, (size_t)m->name_len + 1);
  p += m->name_len + 1;
  memcpy(p, m->addr, (size_t)m->addr_len + 1);
  p += m->addr_len + 1;
  if (m->meta_len > 0)
    memcpy(p, m->meta, m->meta_len);
  n->ev_used += need;
  n->nevents++;
}

void dmq__flush_events(dmq_node_t *n) {
  if (n->in_callback)
    return;
  n->in_callback = 1;
  /* member events, then delivery callbacks (receives, outcomes, writable),
   * until neither has anything left: a callback may queue more */
  do
    node_flush_member_events(n);
  while (dmq__delivery_flush(n));
  n->in_callback = 0;
}

void dmq__flush_member_events_at(dmq_node_t *n, size_t bytes) {
  if (n->in_callback || n->ev_used < bytes)
    return;
  n->in_callback = 1;
  node_flush_member_events(n);
  n->in_callback = 0;
}

static void node_flush_member_events(dmq_node_t *n) {
  /* a callback cannot queue member events (they come from processing,
   * which callbacks cannot start), so the log is stable while it runs */
  for (size_t off = 0; off < n->ev_used;) {
    dmq__event_t e;
    memcpy(&e, n->events + off, sizeof(e));
    const char *name = (const char *)n->events + off + sizeof(e);
    const char *addr = name + e.name_len + 1;
    dmq_member_info_t info = {
        .name = name,
        .addr = addr,
        .state = (dmq_member_state_t)e.state,
        .incarnation = e.inc,
        .generation = e.gen,
        .meta = e.meta_len > 0 ? addr + e.addr_len + 1 : NULL,
        .meta_len = e.meta_len,
        .state_since = e.since,
        .is_self = 0,
    };
    if (n->member_cb != NULL)
      n->member_cb(n, (dmq_member_event_t)e.ev, &info, n->member_ud);
    off += e.size;
  }
  n->ev_used = 0;
  n->nevents = 0;
}

/* ---- transports ---- */

static dmq_transport_t *node_transport_for(dmq_node_t *n, const char *addr,
                                           int reliable, const char **rest) {
  const char *sep = strstr(addr, "://");
  size_t slen;
  if (sep != NULL) {
    slen = (size_t)(sep - addr);
    *rest = sep + 3;
  } else {
    sep = strchr(addr, ':');
    if (sep == NULL)
      return NULL;
    slen = (size_t)(sep - addr);
    *rest = sep + 1;
  }
  dmq_transport_t *same = NULL;
  for (size_t i = 0; i < n->ntransports; i++) {
    dmq_transport_t *t = n->transports[i];
    if (strlen(t->ops->scheme) == slen &&
        memcmp(t->ops->scheme, addr, slen) == 0) {
      same = t;
      break;
    }
  }
  if (same == NULL || !reliable || (same->ops->caps & DMQ_TRANSPORT_RELIABLE))
    return same;
  /* reliable class: a registered stream transport, same authority */
  for (size_t i = 0; i < n->ntransports; i++) {
    dmq_transport_t *t = n->transports[i];
    if (t->ops->caps & DMQ_TRANSPORT_RELIABLE)
      return t;
  }
  return same;
}

int dmq__has_stream(dmq_node_t *n, const char *addr) {
  const char *rest;
  dmq_transport_t *r = node_transport_for(n, addr, 1, &rest);
  return r != NULL && (r->ops->caps & DMQ_TRANSPORT_RELIABLE);
}

size_t dmq__datagram_mtu(dmq_node_t *n, const char *addr) {
  const char *rest;
  dmq_transport_t *d = node_transport_for(n, addr, 0, &rest);
  return d != NULL ? d->mtu : 0;
}

int dmq__has_separate_stream(dmq_node_t *n, const char *addr) {
  const char *rest;
  dmq_transport_t *d = node_transport_for(n, addr, 0, &rest);
  dmq_transport_t *r = node_transport_for(n, addr, 1, &rest);
  return d != NULL && r != NULL && d != r;
}

int dmq__send(dmq_node_t *n, const char *addr, const uint8_t *buf, size_t len,
              int reliable, uint32_t nmsgs) {
  const char *rest = NULL;
  dmq_transport_t *t = node_transport_for(n, addr, reliable, &rest);
  if (t == NULL) {
    n->stats.drops[DMQ_DROP_TX_NO_TRANSPORT]++;
    return DMQ_ENOTRANSPORT;
  }
  char tmp[DMQ_MAX_ADDR + 16];
  const char *dst = addr;
  size_t sl = strlen(t->ops->scheme);
  if (strncmp(addr, t->ops->scheme, sl) != 0 || addr[sl] != ':') {
    int w = snprintf(tmp, sizeof(tmp), "%s://%s", t->ops->scheme, rest);
    if (w < 0 || (size_t)w >= sizeof(tmp)) {
      n->stats.drops[DMQ_DROP_TX_FAILED]++;
      return DMQ_EADDR;
    }
    dst = tmp;
  }
  int rc = t->ops->send(t, dst, buf, len, NULL);
  if (rc != 0) {
    n->stats.drops[DMQ_DROP_TX_FAILED]++;
    return rc;
  }
  n->stats.pkts_out++;
  n->stats.bytes_out += len;
  n->stats.msgs_out += nmsgs;
  return 0;
}

void dmq_transport_recv(dmq_transport_t *t, const char *from, const void *buf,
                        size_t len) {
  if (t != NULL && t->on_recv != NULL)
    t->on_recv(t, from, buf, len);
}

void dmq_transport_send_done(dmq_transport_t *t, void *cookie, int status) {
  if (t != NULL && t->on_send_done != NULL) {
    t->on_send_done(t, cookie, status);
    return;
  }
  /* The core sends without cookies (membership and delivery do their own
   * acknowledging), so a completion reaching the node has no owner: a
   * failure is only counted. */
  (void)cookie;
  if (t != NULL && t->node != NULL && status != 0)
    t->node->stats.drops[DMQ_DROP_TX_FAILED]++;
}

/* The 0.3.0 layout of dmq_transport_ops_t ends at flush (src/sized.h). An
 * operation added later is read only if ops->size covers it. */
#define NODE_OPS_MIN_SIZE DMQ__SIZE_UPTO(dmq_transport_ops_t, flush)
DMQ__SIZE_CHECK(dmq_transport_ops_t, NODE_OPS_MIN_SIZE);

int dmq_node_add_transport(dmq_node_t *n, dmq_transport_t *t) {
  if (n == NULL || t == NULL || t->ops == NULL ||
      t->ops->size < NODE_OPS_MIN_SIZE || t->ops->send == NULL ||
      t->ops->scheme == NULL || t->ops->scheme[0] == '\0')
    return DMQ_EINVAL;
  if (dmq__in_sync_cb(n))
    return DMQ_EBUSY;
  if (n->ntransports == DMQ__MAX_TRANSPORTS)
    return DMQ_ELIMIT;
  for (size_t i = 0; i < n->ntransports; i++) {
    if (n->transports[i] == t ||
        strcmp(n->transports[i]->ops->scheme, t->ops->scheme) == 0)
      return DMQ_EEXIST;
  }
  t->node = n;
  n->transports[n->ntransports++] = t;
  return 0;
}

/* ---- composition: membership and delivery ---- */

/* The member listener: delivery keeps state per member. */
static void node_member_changed(dmq_node_t *n, dmq__member_t *m,
                                dmq__member_change_t what) {
  switch (what) {
  case DMQ__MEMBER_DEAD:
  case DMQ__MEMBER_RESTARTED:
    dmq__delivery_member_changed(n, m, DMQ_OUTCOME_DEAD);
    break;
  case DMQ__MEMBER_LEFT:
    dmq__delivery_member_changed(n, m, DMQ_OUTCOME_LEFT);
    break;
  case DMQ__MEMBER_REMOVED:
    dmq__delivery_member_removed(n, m);
    dmq__swim_member_removed(n, m);
    break;
  }
}

void dmq__node_self_changed(dmq_node_t *n) {
  dmq__self_changed(n);
}

int dmq_node_recv(dmq_node_t *n, dmq_transport_t *t, const char *from_addr,
                  const void *buf, size_t len, uint64_t now) {
  if (n == NULL || (buf == NULL && len > 0))
    return DMQ_EINVAL;
  if (n->in_callback || dmq__in_sync_cb(n))
    return DMQ_EBUSY;
  /* arrived on a stream-only transport (TCP): answer pings there too */
  int stream =
      t != NULL && t->ops != NULL && !(t->ops->caps & DMQ_TRANSPORT_DATAGRAM);
  if (now > n->now)
    n->now = now;
  n->stats.pkts_in++;
  n->stats.bytes_in += len;
  if (len > n->cfg.max_packet) {
    n->stats.drops[DMQ_DROP_OVERSIZE]++;
    return 0;
  }
  dmq__envelope_t env;
  int drop = dmq__wire_open(buf, len, &env);
  if (drop != 0) {
    n->stats.drops[drop - 1]++;
    return 0;
  }
  if (env.sender.n == strlen(n->name) &&
      memcmp(env.sender.p, n->name, env.sender.n) == 0) {
    n->stats.drops[DMQ_DROP_SELF]++;
    return 0;
  }
  dmq__msg_iter_t it;
  dmq__msg_t msg;
  dmq__wire_msgs(&env, &it);
  int rc;
  while ((rc = dmq__wire_next(&it, &msg)) != 0) {
    if (rc < 0) {
      n->stats.drops[DMQ_DROP_MALFORMED]++;
      break;
    }
    if (rc == 2) {
      n->stats
          .drops[msg.type == 0 ? DMQ_DROP_UNKNOWN_TYPE : DMQ_DROP_MALFORMED]++;
      continue;
    }
    n->stats.msgs_in++;
    switch (msg.type) {
    case DMQ__MSG_DATA:
      dmq__delivery_on_data(n, &msg.data, env.sender);
      break;
    case DMQ__MSG_DACK:
      dmq__delivery_on_dack(n, &msg.dack, env.sender);
      break;
    default:
      dmq__swim_recv(n, &msg, env.sender, from_addr, stream);
      break;
    }
  }
  dmq__flush_events(n);
  /* payloads still borrowed from buf are copied now (or dropped) */
  dmq__delivery_recv_done(n);
  return 0;
}

int dmq_node_tick(dmq_node_t *n, uint64_t now) {
  if (n == NULL)
    return DMQ_EINVAL;
  if (n->in_callback || dmq__in_sync_cb(n))
    return DMQ_EBUSY;
  if (!n->started)
    return DMQ_ESTATE;
  if (now > n->now)
    n->now = now;
  dmq__swim_tick(n);
  dmq__delivery_tick(n);
  dmq__flush_events(n);
  return 0;
}

uint64_t dmq_node_next_deadline(const dmq_node_t *n) {
  uint64_t delivery;
  return dmq__next_deadlines(n, &delivery);
}

uint64_t dmq__next_deadlines(const dmq_node_t *n, uint64_t *delivery) {
  *delivery = DMQ_NEVER;
  if (n == NULL)
    return DMQ_NEVER;
  /* The driver re-reads the deadline: the next change wakes it again. The
   * node is never a const object; only this flag changes. */
  ((dmq_node_t *)n)->wake_pending = 0;
  if (!n->started)
    return DMQ_NEVER;
  uint64_t d = dmq__swim_deadline(n);
  *delivery = dmq__delivery_deadline(n);
  return d < *delivery ? d : *delivery;
}

/* ---- lifecycle ---- */

static int node_valid_name(const char *s, size_t max) {
  if (s == NULL)
    return 0;
  size_t l = strlen(s);
  if (l == 0 || l > max)
    return 0;
  for (size_t i = 0; i < l; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c <= 0x20 || c == 0x7f)
      return 0;
  }
  return 1;
}

static int node_valid_config(const dmq_config_t *c) {
  if (!node_valid_name(c->name, DMQ_MAX_NAME) ||
      !node_valid_name(c->advertise_addr, DMQ_MAX_ADDR))
    return 0;
  if (c->generation == 0 || c->meta_len > DMQ_MAX_META ||
      (c->meta_len > 0 && c->meta == NULL))
    return 0;
  if (c->probe_interval_ms == 0 || c->probe_timeout_ms == 0 ||
      c->probe_timeout_ms > c->probe_interval_ms ||
      c->gossip_interval_ms == 0 || c->suspicion_mult == 0 ||
      c->suspicion_max_mult == 0 || c->retransmit_mult == 0 ||
      c->awareness_max == 0 || c->awareness_max > 64)
    return 0;
  if (c->indirect_checks > 16 || c->gossip_nodes > 64)
    return 0;
  if (c->mtu < 256 || c->mtu > 65507 || c->max_packet < c->mtu)
    return 0;
  if (c->join_retry_ms == 0 || c->join_retry_max_ms < c->join_retry_ms)
    return 0;
  return 1;
}

/* The 0.3.0 layout of dmq_alloc_t ends at ud (src/sized.h). */
#define NODE_ALLOC_MIN_SIZE DMQ__SIZE_UPTO(dmq_alloc_t, ud)
DMQ__SIZE_CHECK(dmq_alloc_t, NODE_ALLOC_MIN_SIZE);

int dmq_alloc_init_sized(dmq_alloc_t *a, size_t size) {
  dmq_alloc_t d;
  memset(&d, 0, sizeof(d));
  return dmq__sized_init(a, size, &d, sizeof(d), NODE_ALLOC_MIN_SIZE);
}

int dmq_node_new(const dmq_config_t *caller_cfg, const dmq_alloc_t *alloc,
                 dmq_node_t **out) {
  if (out == NULL || caller_cfg == NULL)
    return DMQ_EINVAL;
  *out = NULL;
  /* the caller's layout (size) into the current one */
  dmq_config_t cfg_copy;
  const dmq_config_t *cfg = &cfg_copy;
  if (dmq__config_load(&cfg_copy, caller_cfg) != 0 || !node_valid_config(cfg))
    return DMQ_EINVAL;
  dmq_alloc_t a = {sizeof(a), node_libc_malloc, node_libc_realloc,
                   node_libc_free, NULL};
  if (alloc != NULL) {
    memset(&a, 0, sizeof(a));
    if (dmq__sized_in(&a, sizeof(a), alloc, alloc->size, NODE_ALLOC_MIN_SIZE) !=
            0 ||
        a.malloc_fn == NULL || a.realloc_fn == NULL || a.free_fn == NULL)
      return DMQ_EINVAL;
    a.size = sizeof(a);
  }
  dmq_node_t *n = a.malloc_fn(sizeof(*n), a.ud);
  if (n == NULL)
    return DMQ_ENOMEM;
  memset(n, 0, sizeof(*n));
  n->alloc = a;
  n->member_listener = node_member_changed;
  n->cfg = *cfg;
  strcpy(n->name, cfg->name);
  strcpy(n->addr, cfg->advertise_addr);
  n->cfg.name = n->name;
  n->cfg.advertise_addr = n->addr;
  n->cfg.meta = NULL;
  n->cfg.meta_len = 0;
  dmq__rng_seed(&n->rng, cfg->rng_seed ^ dmq__hash(n->name, strlen(n->name)));
  n->txbuf = dmq__malloc(n, cfg->mtu);
  if (n->txbuf == NULL)
    goto nomem;
  dmq__member_t *self =
      dmq__member_add(n, n->name, strlen(n->name), n->addr, strlen(n->addr));
  if (self == NULL)
    goto nomem;
  self->is_self = 1;
  self->gen = cfg->generation;
  self->state = DMQ_MEMBER_ALIVE;
  if (cfg->meta_len > 0 &&
      dmq__member_set_meta(n, self, cfg->meta, cfg->meta_len) < 0)
    goto nomem;
  n->self = self;
  n->n_live = 1;
  if (dmq__delivery_init(n) != 0)
    goto nomem;
  *out = n;
  return 0;
nomem:
  dmq_node_delete(n);
  return DMQ_ENOMEM;
}

int dmq_node_delete(dmq_node_t *n) {
  if (n == NULL)
    return 0;
  /* inside a callback the node is in use below us: refuse, free nothing */
  if (n->in_callback || dmq__in_sync_cb(n))
    return DMQ_EBUSY;
  /* pending reliable sends and requests: SHUTDOWN outcomes, run now */
  dmq__delivery_shutdown(n);
  for (size_t i = 0; i < n->ntransports; i++)
    n->transports[i]->node = NULL;
  while (n->nmembers > 0)
    dmq__member_remove(n, n->members[n->nmembers - 1]);
  for (size_t i = 0; i < n->nseeds; i++)
    dmq__free(n, n->seeds[i]);
  dmq__free(n, n->events);
  dmq__free(n, n->members);
  dmq__free(n, n->index);
  dmq__free(n, n->suspects);
  dmq__free(n, n->txbuf);
  dmq__free(n, n->relays);
  dmq__delivery_free(n);
  dmq_alloc_t a = n->alloc;
  a.free_fn(n, a.ud);
  return 0;
}

void dmq_node_set_member_cb(dmq_node_t *n, dmq_member_cb cb, void *ud) {
  if (n == NULL)
    return;
  n->member_cb = cb;
  n->member_ud = ud;
}

void dmq_node_set_log_cb(dmq_node_t *n, dmq_log_cb cb, dmq_log_level_t lvl,
                         void *ud) {
  if (n == NULL)
    return;
  n->log_cb = cb;
  n->log_level = lvl;
  n->log_ud = ud;
}

void dmq_node_set_wake_cb(dmq_node_t *n, dmq_wake_cb cb, void *ud) {
  if (n == NULL)
    return;
  n->wake_cb = cb;
  n->wake_ud = ud;
  n->wake_pending = 0;
}

void *dmq_node_user_data(const dmq_node_t *n) {
  return n ? n->user_data : NULL;
}
void dmq_node_set_user_data(dmq_node_t *n, void *ud) {
  if (n)
    n->user_data = ud;
}

const char *dmq_node_name(const dmq_node_t *n) {
  return n ? n->name : NULL;
}

/* ---- queries ---- */

static void node_fill_info(const dmq__member_t *m, dmq_member_info_t *o) {
  o->name = m->name;
  o->addr = m->addr;
  o->state = (dmq_member_state_t)m->state;
  o->incarnation = m->inc;
  o->generation = m->gen;
  o->meta = m->meta;
  o->meta_len = m->meta_len;
  o->state_since = m->state_since;
  o->is_self = m->is_self;
}

/* 0.3.0 layouts of the output structs (src/sized.h) */
#define NODE_INFO_MIN_SIZE DMQ__SIZE_UPTO(dmq_member_info_t, is_self)
DMQ__SIZE_CHECK(dmq_member_info_t, NODE_INFO_MIN_SIZE);
#define NODE_STATS_MIN_SIZE DMQ__SIZE_UPTO(dmq_stats_t, events_lost)
DMQ__SIZE_CHECK(dmq_stats_t, NODE_STATS_MIN_SIZE);

int dmq_node_member_sized(const dmq_node_t *n, const char *name,
                          dmq_member_info_t *dst, size_t size) {
  if (n == NULL || name == NULL || dst == NULL || size < NODE_INFO_MIN_SIZE)
    return DMQ_EINVAL;
  dmq_member_info_t info, *out = &info;
  size_t l = strlen(name);
  if (l == 0 || l > DMQ_MAX_NAME)
    return DMQ_EINVAL;
  const dmq__member_t *m = dmq__member_find(n, name, l);
  if (m == NULL)
    return DMQ_ENOENT;
  node_fill_info(m, out);
  return dmq__sized_out(dst, size, &info, sizeof(info), NODE_INFO_MIN_SIZE);
}

size_t dmq_node_member_count(const dmq_node_t *n, unsigned mask) {
  if (n == NULL)
    return 0;
  size_t c = 0;
  for (uint32_t i = 0; i < n->nmembers; i++)
    if (mask & (1u << n->members[i]->state))
      c++;
  return c;
}

int dmq_node_members_foreach(const dmq_node_t *n,
                             int (*cb)(const dmq_member_info_t *, void *),
                             void *ud) {
  if (n == NULL || cb == NULL)
    return DMQ_EINVAL;
  for (uint32_t i = 0; i < n->nmembers; i++) {
    dmq_member_info_t info;
    node_fill_info(n->members[i], &info);
    if (cb(&info, ud) != 0)
      break;
  }
  return 0;
}

int dmq_node_stats_sized(const dmq_node_t *n, dmq_stats_t *dst, size_t size) {
  if (n == NULL || dst == NULL || size < NODE_STATS_MIN_SIZE)
    return DMQ_EINVAL;
  dmq_stats_t st = n->stats;
  memset(st.members, 0, sizeof(st.members));
  for (uint32_t i = 0; i < n->nmembers; i++)
    st.members[n->members[i]->state]++;
  st.health_score = n->health;
  return dmq__sized_out(dst, size, &st, sizeof(st), NODE_STATS_MIN_SIZE);
}
