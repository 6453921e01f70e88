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

#include "antientropy.h"
#include "delivery/delivery.h"
#include "internal.h"
#include "members.h"
#include "seal.h"
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
                (size_t)m->addr_len + 1 + dmq__member_meta_len(m);
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
  e.meta_len = dmq__member_meta_len(m);
  e.ev = (uint8_t)ev;
  e.state = m->state;
  e.name_len = m->name_len;
  e.addr_len = m->addr_len;
  memcpy(rec, &e, sizeof(e));
  uint8_t *p = rec + sizeof(e);
  memcpy(p, m->name, (size_t)m->name_len + 1);
  p += m->name_len + 1;
  memcpy(p, dmq__member_addr(m), (size_t)m->addr_len + 1);
  p += m->addr_len + 1;
  if (e.meta_len > 0)
    memcpy(p, dmq__member_meta(m), e.meta_len);
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

static int node_sealing(const dmq_node_t *n) {
  return n->seal_mode != DMQ_SEAL_OFF && dmq__seal_can_send(n->seal);
}

int dmq__node_enc_begin(dmq_node_t *n, dmq__enc_t *e, uint8_t *buf,
                        size_t cap) {
  return dmq__enc_begin_sealed(e, buf, cap, n->label, n->label_len, n->name,
                               strlen(n->name), node_sealing(n));
}

size_t dmq__node_overhead(const dmq_node_t *n) {
  return dmq__wire_overhead(n->label_len, node_sealing(n));
}

int dmq__send(dmq_node_t *n, const char *addr, uint8_t *buf, size_t len,
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
  if (len >= 4 && (buf[3] & DMQ__WIRE_FLAG_SEALED)) {
    /* sealed once, here, in place; a stream transport counts its packets
     * apart from datagrams (seal.h: the two paths may reorder) */
    size_t off = 4 + ((buf[3] & DMQ__WIRE_FLAG_LABEL) ? 1 + (size_t)buf[4] : 0);
    int stream = !(t->ops->caps & DMQ_TRANSPORT_DATAGRAM);
    if (dmq__seal_close(n->seal, buf, len, off, stream, &len) != 0) {
      n->stats.drops[DMQ_DROP_TX_FAILED]++;
      return DMQ_ESTATE;
    }
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

/* ---- receiving: label, mode, opening sealed packets ---- */

/* Index of a logged drop reason in seal_log_*, -1 if not logged. */
static int node_seal_log_slot(int reason) {
  switch (reason) {
  case DMQ_DROP_LABEL:
    return 0;
  case DMQ_DROP_PLAINTEXT:
    return 1;
  case DMQ_DROP_KEY_UNKNOWN:
    return 2;
  case DMQ_DROP_AUTH:
    return 3;
  default:
    return -1;
  }
}

#define NODE_SEAL_LOG_MS 10000

/* A rate-limited warning for packets dropped by label or seal: the first
 * at once, then at most one line per reason every NODE_SEAL_LOG_MS with
 * the count since the last one. Never prints key material (the key id at
 * most) nor the foreign label. */
static void node_seal_log(dmq_node_t *n, int reason, const char *from,
                          const dmq__seal_info_t *si) {
  int i = node_seal_log_slot(reason);
  if (i < 0)
    return;
  n->seal_log_n[i]++;
  if (n->seal_log_at[i] != 0 && n->now < n->seal_log_at[i])
    return;
  n->seal_log_at[i] = n->now + NODE_SEAL_LOG_MS;
  if (n->seal_log_at[i] == 0)
    n->seal_log_at[i] = 1;
  uint32_t cnt = n->seal_log_n[i];
  n->seal_log_n[i] = 0;
  if (from == NULL)
    from = "an unknown address";
  switch (reason) {
  case DMQ_DROP_LABEL:
    dmq__log(n, DMQ_LOG_WARN,
             "dropped %u packets from %s: cluster label mismatch (another "
             "cluster?)",
             cnt, from);
    break;
  case DMQ_DROP_PLAINTEXT:
    dmq__log(n, DMQ_LOG_WARN,
             "dropped %u packets from %s: not sealed, and encryption is "
             "required (peer without a key?)",
             cnt, from);
    break;
  case DMQ_DROP_KEY_UNKNOWN:
    dmq__log(n, DMQ_LOG_WARN,
             "dropped %u packets from %s: sealed with key id %08x, not in "
             "our keyring (wrong key?)",
             cnt, from, (unsigned)si->key_id);
    break;
  default:
    dmq__log(n, DMQ_LOG_WARN,
             "dropped %u packets from %s: authentication failed (wrong key "
             "or forged packet)",
             cnt, from);
    break;
  }
}

/* Envelope, label, mode and seal of a received packet: 0 with env (and si)
 * filled, or a drop reason + 1. */
static int node_open(dmq_node_t *n, const char *from, const uint8_t *buf,
                     size_t len, dmq__envelope_t *env, dmq__seal_info_t *si) {
  size_t off;
  memset(si, 0, sizeof *si);
  int drop = dmq__wire_head(buf, len, env, &off);
  if (drop != 0)
    return drop;
  if (env->label.n != n->label_len ||
      (n->label_len > 0 && memcmp(env->label.p, n->label, n->label_len) != 0)) {
    node_seal_log(n, DMQ_DROP_LABEL, from, si);
    return DMQ_DROP_LABEL + 1;
  }
  if (!(env->flags & DMQ__WIRE_FLAG_SEALED)) {
    if (n->seal_mode == DMQ_SEAL_REQUIRED && n->seal->nkeys > 0) {
      node_seal_log(n, DMQ_DROP_PLAINTEXT, from, si);
      return DMQ_DROP_PLAINTEXT + 1;
    }
    return dmq__wire_body(buf + off, len - off, env);
  }
  if (n->rxcap < len) {
    dmq__free(n, n->rxbuf);
    n->rxcap = 0;
    n->rxbuf = dmq__malloc(n, len);
    if (n->rxbuf == NULL)
      return DMQ_DROP_BUDGET + 1;
    n->rxcap = len;
  }
  drop = dmq__seal_open(n->seal, buf, len, off, n->rxbuf, si);
  if (drop != 0) {
    node_seal_log(n, drop - 1, from, si);
    return drop;
  }
  return dmq__wire_body(n->rxbuf, len - off - DMQ__SEAL_HDR - DMQ__SEAL_TAG,
                        env);
}

/* After a packet: a large opening buffer (a big push/pull) is not kept. */
static void node_rx_done(dmq_node_t *n) {
  if (n->rxcap > 65536) {
    dmq__free(n, n->rxbuf);
    n->rxbuf = NULL;
    n->rxcap = 0;
  }
}

/* Replay state worth keeping: a live member's current generation. */
static int node_keep_replay(void *ud, const char *name, size_t len,
                            uint64_t gen) {
  dmq_node_t *n = ud;
  const dmq__member_t *m = dmq__member_find(n, name, len);
  return m != NULL && m->gen == gen &&
         (m->state == DMQ_MEMBER_ALIVE || m->state == DMQ_MEMBER_SUSPECT);
}

/* In a sealed packet, what the body says of the sender's own generation
 * must be the generation sealed in its header: its DATA's src_gen, its
 * DACK's dst_gen, membership messages and push/pull records about itself.
 * 0: the message lies (dropped). */
static int node_gen_bound(const dmq__msg_t *m, dmq__slice_t sender,
                          uint64_t gen) {
  switch (m->type) {
  case DMQ__MSG_DATA:
    return m->data.src_gen == gen;
  case DMQ__MSG_DACK:
    return m->dack.dst_gen == gen;
  case DMQ__MSG_ALIVE:
  case DMQ__MSG_SUSPECT:
  case DMQ__MSG_DEAD:
  case DMQ__MSG_LEFT:
    return m->name.n != sender.n ||
           memcmp(m->name.p, sender.p, sender.n) != 0 || m->generation == gen;
  case DMQ__MSG_PUSHPULL: {
    dmq__rec_iter_t it;
    dmq__record_t r;
    dmq__wire_records(m, &it);
    while (dmq__wire_next_record(&it, &r) == 1)
      if (r.name.n == sender.n && memcmp(r.name.p, sender.p, sender.n) == 0 &&
          r.generation != gen)
        return 0;
    return 1;
  }
  default:
    return 1;
  }
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
  dmq__seal_info_t si;
  int drop = node_open(n, from_addr, buf, len, &env, &si);
  if (drop != 0) {
    n->stats.drops[drop - 1]++;
    node_rx_done(n);
    return 0;
  }
  if (env.sender.n == strlen(n->name) &&
      memcmp(env.sender.p, n->name, env.sender.n) == 0) {
    n->stats.drops[DMQ_DROP_SELF]++;
    node_rx_done(n);
    return 0;
  }
  if (si.sealed) {
    /* authenticated: now the replay window (state only for senders whose
     * packet verified, bounded by the member table's size) */
    drop = dmq__seal_replay(n->seal, env.sender.p, env.sender.n, si.gen, si.pn,
                            2 * n->nmembers + 64, node_keep_replay, n);
    if (drop != 0) {
      n->stats.drops[drop - 1]++;
      node_rx_done(n);
      return 0;
    }
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
    if (si.sealed && !node_gen_bound(&msg, env.sender, si.gen)) {
      n->stats.drops[DMQ_DROP_AUTH]++;
      continue;
    }
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
  node_rx_done(n);
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
  if (c->label != NULL && c->label[0] != '\0' &&
      !node_valid_name(c->label, DMQ_MAX_LABEL))
    return 0;
  if ((unsigned)c->seal_mode > DMQ_SEAL_REQUIRED)
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
  if (cfg->label != NULL) {
    n->label_len = (uint8_t)strlen(cfg->label);
    memcpy(n->label, cfg->label, n->label_len);
  }
  n->cfg.label = n->label_len > 0 ? n->label : NULL;
  n->seal_mode = (uint8_t)cfg->seal_mode;
  n->seal = dmq__malloc(n, sizeof(*n->seal));
  if (n->seal == NULL)
    goto nomem;
  if (dmq__seal_init(n->seal, &n->alloc, cfg->generation) != 0) {
    dmq__free(n, n->seal);
    n->seal = NULL;
    goto nomem;
  }
  dmq__rng_seed(&n->rng, cfg->rng_seed ^ dmq__hash(n->name, strlen(n->name)));
  n->txbuf = dmq__malloc(n, cfg->mtu);
  if (n->txbuf == NULL)
    goto nomem;
  dmq__ae_init(n);
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
  dmq__ae_member_in(n, self);
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
  /* dropped whole first: each removal would look its member up in it */
  dmq__free(n, n->heard_v);
  n->heard_v = NULL;
  n->heard_n = n->heard_cap = n->heard_lost = n->heard_pos = 0;
  dmq__members_free_all(n);
  for (size_t i = 0; i < n->nseeds; i++)
    dmq__free(n, n->seeds[i]);
  dmq__free(n, n->events);
  dmq__free(n, n->members);
  dmq__free(n, n->index);
  dmq__ae_free(n);
  dmq__free(n, n->suspects);
  dmq__free(n, n->txbuf);
  dmq__free(n, n->relays);
  dmq__free(n, n->rxbuf);
  if (n->seal != NULL) {
    dmq__seal_free(n->seal); /* wipes the keys */
    dmq__free(n, n->seal);
  }
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
  o->addr = dmq__member_addr(m);
  o->state = (dmq_member_state_t)m->state;
  o->incarnation = m->inc;
  o->generation = m->gen;
  o->meta = dmq__member_meta(m);
  o->meta_len = dmq__member_meta_len(m);
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
  /* the usual masks from the counters swim.c keeps (a program that polls
   * every node of a big cluster, or a leaving node's flush timer, would
   * otherwise walk whole tables) */
  const unsigned all = DMQ_MASK_ALL;
  if ((mask & all) == all)
    return n->nmembers;
  if ((mask & all) == DMQ_MASK_LIVE)
    return n->n_live;
  if ((mask & all) == (all & ~DMQ_MASK_LIVE))
    return n->nmembers - n->n_live;
  /* a member is suspect exactly while its suspicion runs (swim.c) */
  if ((mask & all) == 1u << DMQ_MEMBER_SUSPECT)
    return n->nsuspects;
  if ((mask & all) == 1u << DMQ_MEMBER_ALIVE)
    return n->n_live - n->nsuspects;
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

/* ---- sealing API ---- */

int dmq_node_key_add(dmq_node_t *n, const void *key, size_t len, int primary,
                     uint32_t *key_id) {
  if (n == NULL || key == NULL || len != DMQ_KEY_SIZE)
    return DMQ_EINVAL;
  if (n->in_callback || dmq__in_sync_cb(n))
    return DMQ_EBUSY;
  uint32_t id;
  int rc = dmq__seal_key_add(n->seal, key, primary, &id);
  if (rc != 0)
    return rc;
  if (key_id != NULL)
    *key_id = id;
  dmq__log(n, DMQ_LOG_INFO, "key %08x added%s", (unsigned)id,
           n->seal->keys[n->seal->primary].id == id ? " (primary)" : "");
  return 0;
}

int dmq_node_key_use(dmq_node_t *n, uint32_t key_id) {
  if (n == NULL)
    return DMQ_EINVAL;
  if (n->in_callback || dmq__in_sync_cb(n))
    return DMQ_EBUSY;
  int rc = dmq__seal_key_use(n->seal, key_id);
  if (rc == 0)
    dmq__log(n, DMQ_LOG_INFO, "key %08x is primary", (unsigned)key_id);
  return rc;
}

int dmq_node_key_remove(dmq_node_t *n, uint32_t key_id) {
  if (n == NULL)
    return DMQ_EINVAL;
  if (n->in_callback || dmq__in_sync_cb(n))
    return DMQ_EBUSY;
  if (n->seal->nkeys == 1 && n->seal_mode != DMQ_SEAL_OFF &&
      n->seal->keys[0].id == key_id)
    return DMQ_ESTATE;
  int rc = dmq__seal_key_remove(n->seal, key_id);
  if (rc == 0)
    dmq__log(n, DMQ_LOG_INFO, "key %08x removed", (unsigned)key_id);
  return rc;
}

size_t dmq_node_keys(const dmq_node_t *n, uint32_t *ids, size_t max,
                     uint32_t *primary) {
  if (n == NULL) {
    if (primary != NULL)
      *primary = 0;
    return 0;
  }
  return dmq__seal_keys(n->seal, ids, ids != NULL ? max : 0, primary);
}

uint32_t dmq_key_id(const void *key, size_t len) {
  if (key == NULL || len != DMQ_KEY_SIZE)
    return 0;
  return dmq__seal_key_id(key);
}

static int node_hex(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

int dmq_key_from_hex(const char *hex, size_t len, uint8_t key[DMQ_KEY_SIZE]) {
  if (hex == NULL || key == NULL || len != 2 * DMQ_KEY_SIZE)
    return DMQ_EINVAL;
  uint8_t k[DMQ_KEY_SIZE];
  for (size_t i = 0; i < DMQ_KEY_SIZE; i++) {
    int hi = node_hex(hex[2 * i]), lo = node_hex(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      dmq__wipe(k, sizeof k);
      return DMQ_EINVAL;
    }
    k[i] = (uint8_t)(hi << 4 | lo);
  }
  memcpy(key, k, sizeof k);
  dmq__wipe(k, sizeof k);
  return 0;
}

int dmq_node_set_seal_mode(dmq_node_t *n, dmq_seal_mode_t mode) {
  if (n == NULL || (unsigned)mode > DMQ_SEAL_REQUIRED)
    return DMQ_EINVAL;
  if (n->in_callback || dmq__in_sync_cb(n))
    return DMQ_EBUSY;
  if (mode != DMQ_SEAL_OFF && n->seal->nkeys == 0)
    return DMQ_ESTATE;
  if (n->seal_mode != (uint8_t)mode)
    dmq__log(n, DMQ_LOG_INFO, "seal mode %s", dmq_seal_mode_name(mode));
  n->seal_mode = (uint8_t)mode;
  return 0;
}

dmq_seal_mode_t dmq_node_seal_mode(const dmq_node_t *n) {
  return n != NULL ? (dmq_seal_mode_t)n->seal_mode : DMQ_SEAL_OFF;
}

static const char *const node_seal_modes[] = {"off", "transition", "required"};

const char *dmq_seal_mode_name(dmq_seal_mode_t m) {
  return (unsigned)m <= DMQ_SEAL_REQUIRED ? node_seal_modes[m] : "unknown";
}

int dmq_seal_mode_from_name(const char *name, dmq_seal_mode_t *out) {
  if (name == NULL || out == NULL)
    return DMQ_EINVAL;
  for (unsigned i = 0; i <= DMQ_SEAL_REQUIRED; i++) {
    if (strcmp(name, node_seal_modes[i]) == 0) {
      *out = (dmq_seal_mode_t)i;
      return 0;
    }
  }
  return DMQ_ENOENT;
}
