/* libdmq - SWIM membership with Lifeguard, sans-I/O.
 *
 * What this file does, and where it departs from the papers:
 *
 * - Probing (SWIM 4.1/4.3): one probe per period, targets in a shuffled
 *   round-robin order; no ack within the probe timeout -> PING_REQ through k
 *   random members; still nothing at the end of the period -> suspect.
 * - Lifeguard: (1) local health: missed nacks (and failed probes that
 *   asked no relay) raise a score, acks lower it, and the probe period and
 *   timeout are multiplied by (score + 1); (2) dynamic suspicion: the
 *   timeout starts at max = max_mult * min and falls logarithmically
 *   towards min = mult * max(1, log10 N) * probe as independent
 *   confirmations arrive; (3) "buddy system": a probe to a suspect member
 *   carries the suspicion first, so the member learns it is suspected at
 *   once and can refute.
 * - Dissemination (SWIM 4.1 infection-style): an update is not a stored
 *   message but a pointer to the member whose state changed; what goes on
 *   the wire is the member's *current* state, so a newer update replaces an
 *   older one for free. Updates live in buckets by transmit count: lowest
 *   bucket first (least-sent), head of a bucket = freshest, each update sent
 *   retransmit_mult * ceil(log10(N + 1)) times, packed up to the MTU.
 * - Anti-entropy: periodic push/pull of the full table with one random live
 *   member (reliable transport); DEAD in a pushed table is taken only as
 *   SUSPECT, so one stale table cannot kill anyone. Join = push/pull with the
 *   seeds, retried with exponential back-off and jitter.
 * - Partition healing (not in SWIM): every reconnect interval, push/pull with
 *   each seed that is not alive in our view and with one random dead member.
 * - Join storms: first-time announcements are budgeted per probe period;
 *   beyond the budget a newcomer's ALIVE enters the queue half-spent, so it
 *   is still spread but cannot crowd out probes, suspicions and refutations.
 * - Identity: (generation, incarnation) ordered lexicographically; only the
 *   owner raises its incarnation, and a restart raises the generation, so a
 *   restarted member replaces its old self but stale gossip never revives a
 *   dead one.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "antientropy.h"
#include "internal.h"
#include "members.h"
#include "swim.h"

/* A relay that got no ack sends its nack at this share of the timeout, so
 * the nack arrives before the requester's own deadline. */
#define SWIM_NACK_SHARE_NUM 4
#define SWIM_NACK_SHARE_DEN 5
/* Dead/left members are checked for reaping this often. */
#define SWIM_REAP_EVERY_MS 1000
/* Extra gossip packets tried after the first that did not fit. */
#define SWIM_FILL_TRIES 3
/* Extra push/pulls after a join, at 1/4, 1/2, 1 and 2 probe periods. */
#define SWIM_JOIN_BOOST_ROUNDS 4
/* Rounds a join boost may add, each after a round that found a difference
 * (dmq__swim_boost_differs). */
#define SWIM_JOIN_BOOST_EXTRA 4
/* Where an ALIVE came from (swim_on_alive). */
#define SWIM_FROM_GOSSIP 0
#define SWIM_FROM_JOIN 1
#define SWIM_FROM_SYNC 2
/* Most updates packed into one packet (bounded by the MTU anyway). */
#define SWIM_MAX_PICK 256
/* Plausible incarnations (docs/limits.md): an update may raise a member's
 * incarnation by at most SWIM_INC_SLACK over what we know (its owner
 * raises it by one per change; we may have missed a few), and never past
 * SWIM_INC_LIMIT. A forged update can therefore push a member's
 * incarnation, and its refutation, up by at most the slack: 2^42 of them
 * before the limit, which is far below the wrap. */
#define SWIM_INC_SLACK ((uint64_t)1 << 20)
#define SWIM_INC_LIMIT ((uint64_t)1 << 62)
/* Plausible generations (the runtime uses wall-clock ms): a restart may
 * raise a member's generation by at most 2^44 (557 years of ms) over what
 * we know, never to 2^62 or above. */
#define SWIM_GEN_SLACK ((uint64_t)1 << 44)
#define SWIM_GEN_LIMIT ((uint64_t)1 << 62)
/* Amplification bound: packets one received packet may make us send at
 * once (acks, relayed pings, push/pull replies, pings telling a member of
 * a suspicion). The rest is dropped as DMQ_DROP_RATE_LIMITED. */
#define SWIM_REPLIES_PER_PACKET 4
/* A member we know only from hearsay (see dmq__member_t.heard) is probed
 * at most once per this many probe periods: an outsider gossiping a third
 * party's address cannot make us probe it at volume, nor crowd the
 * probes of real members out. */
#define SWIM_HEARSAY_EVERY 2
/* How an ALIVE about a member we do not know may be admitted to a full
 * table (swim_make_room). */
#define SWIM_ADMIT_NONE 0
#define SWIM_ADMIT_DIRECT 1  /* about the packet's sender, from its address */
#define SWIM_ADMIT_VOUCHED 2 /* relayed by a member heard from itself */

static dmq__slice_t sl(const char *p, size_t n) {
  dmq__slice_t s = {p, n};
  return s;
}

static int swim_same(dmq__slice_t a, dmq__slice_t b) {
  return a.n == b.n && memcmp(a.p, b.p, a.n) == 0;
}

/* May the packet being received cause one more outbound packet? */
int dmq__swim_reply_ok(dmq_node_t *n) {
  if (n->reply_pkt != n->stats.pkts_in) {
    n->reply_pkt = n->stats.pkts_in;
    n->replies = 0;
  }
  if (n->replies >= SWIM_REPLIES_PER_PACKET) {
    n->stats.drops[DMQ_DROP_RATE_LIMITED]++;
    return 0;
  }
  n->replies++;
  return 1;
}

/* An incarnation an update claims for a member we know at `known`. */
static int swim_inc_plausible(dmq_node_t *n, uint64_t inc, uint64_t known) {
  if (inc < SWIM_INC_LIMIT && (inc <= known || inc - known <= SWIM_INC_SLACK))
    return 1;
  n->stats.drops[DMQ_DROP_IMPLAUSIBLE]++;
  return 0;
}

/* A generation an update claims for a member we know at `known` (0: a
 * member we do not know). */
static int swim_gen_plausible(dmq_node_t *n, uint64_t gen, uint64_t known) {
  if (gen < SWIM_GEN_LIMIT &&
      (known == 0 || gen <= known || gen - known <= SWIM_GEN_SLACK))
    return 1;
  n->stats.drops[DMQ_DROP_IMPLAUSIBLE]++;
  return 0;
}

static uint64_t swim_scaled(const dmq_node_t *n, uint32_t ms) {
  return (uint64_t)ms * (n->health + 1);
}

/* ---------------------------------------------------------------------- */
/* dissemination queue                                                     */

static uint32_t swim_retransmit_limit(const dmq_node_t *n) {
  uint32_t lg = 0;
  for (uint32_t x = n->n_live + 1; x > 1; x = (x + 9) / 10)
    lg++; /* ceil(log10(N + 1)) */
  if (lg < 1)
    lg = 1;
  uint32_t l = n->cfg.retransmit_mult * lg;
  return l >= DMQ__MAX_BUCKETS ? DMQ__MAX_BUCKETS - 1 : l;
}

static void swim_bc_remove(dmq_node_t *n, dmq__member_t *m) {
  if (m->bc_bucket < 0)
    return;
  int b = m->bc_bucket;
  if (m->bc_prev)
    m->bc_prev->bc_next = m->bc_next;
  else
    n->bc_head[b] = m->bc_next;
  if (m->bc_next)
    m->bc_next->bc_prev = m->bc_prev;
  else
    n->bc_tail[b] = m->bc_prev;
  m->bc_prev = m->bc_next = NULL;
  m->bc_bucket = -1;
  n->bc_count--;
}

static void swim_bc_push(dmq_node_t *n, dmq__member_t *m, int b, int head) {
  m->bc_bucket = (int8_t)b;
  if (head) {
    m->bc_prev = NULL;
    m->bc_next = n->bc_head[b];
    if (n->bc_head[b])
      n->bc_head[b]->bc_prev = m;
    else
      n->bc_tail[b] = m;
    n->bc_head[b] = m;
  } else {
    m->bc_next = NULL;
    m->bc_prev = n->bc_tail[b];
    if (n->bc_tail[b])
      n->bc_tail[b]->bc_next = m;
    else
      n->bc_head[b] = m;
    n->bc_tail[b] = m;
  }
  if (n->bc_count++ == 0)
    dmq__wake(n); /* gossip rounds are scheduled only while news waits */
}

/* Queue the member's current state for dissemination, as fresh news. */
static void swim_bc_queue(dmq_node_t *n, dmq__member_t *m) {
  swim_bc_remove(n, m);
  swim_bc_push(n, m, 0, 1);
}

/* A first-time announcement, subject to the join-storm budget. */
static void swim_bc_announce(dmq_node_t *n, dmq__member_t *m) {
  if (n->cfg.announce_budget == 0 ||
      n->announce_used < n->cfg.announce_budget) {
    n->announce_used++;
    swim_bc_queue(n, m);
    return;
  }
  swim_bc_remove(n, m);
  uint32_t limit = swim_retransmit_limit(n);
  swim_bc_push(n, m, (int)(limit / 2), 0);
}

/* Encode one member update. */
static int swim_enc_update(dmq_node_t *n, dmq__enc_t *e,
                           const dmq__member_t *m) {
  dmq__slice_t name = sl(m->name, m->name_len);
  switch (m->state) {
  case DMQ_MEMBER_ALIVE: {
    dmq__slice_t cv[DMQ_MAX_CHANNELS];
    dmq__chans_t ch = {dmq__member_chans(m, cv), cv, NULL, 0};
    return dmq__enc_alive(
        e, name, sl(dmq__member_addr(m), m->addr_len), m->inc, m->gen,
        sl((const char *)dmq__member_meta(m), dmq__member_meta_len(m)), &ch);
  }
  case DMQ_MEMBER_SUSPECT: {
    const dmq__suspicion_t *s = dmq__member_susp(m);
    const char *from = s != NULL ? s->from : n->name;
    return dmq__enc_suspect(e, name, m->inc, m->gen, sl(from, strlen(from)));
  }
  case DMQ_MEMBER_DEAD:
    return dmq__enc_dead(e, name, m->inc, m->gen, sl(n->name, strlen(n->name)));
  default:
    return dmq__enc_left(e, name, m->inc, m->gen);
  }
}

/* Pack queued updates into e until it is full. Returns messages added. */
static uint32_t swim_fill_gossip(dmq_node_t *n, dmq__enc_t *e) {
  if (n->bc_count == 0)
    return 0;
  dmq__member_t *pick[SWIM_MAX_PICK];
  uint32_t np = 0, fails = 0;
  uint32_t limit = swim_retransmit_limit(n);
  for (uint32_t b = 0; b < DMQ__MAX_BUCKETS && np < SWIM_MAX_PICK; b++) {
    for (dmq__member_t *m = n->bc_head[b]; m != NULL && np < SWIM_MAX_PICK;
         m = m->bc_next) {
      if (b >= limit) {
        continue; /* over the limit for the current N: dropped below */
      }
      if (swim_enc_update(n, e, m) == 0) {
        pick[np++] = m;
      } else if (++fails > SWIM_FILL_TRIES) {
        goto done;
      }
    }
  }
done:
  for (uint32_t i = 0; i < np; i++) {
    dmq__member_t *m = pick[i];
    int b = m->bc_bucket + 1;
    swim_bc_remove(n, m);
    if ((uint32_t)b < limit)
      swim_bc_push(n, m, b, 0);
  }
  /* drop updates stranded above a limit that shrank with N */
  for (uint32_t b = limit; b < DMQ__MAX_BUCKETS; b++)
    while (n->bc_head[b] != NULL)
      swim_bc_remove(n, n->bc_head[b]);
  n->stats.gossip_updates_sent += np;
  return np;
}

/* ---------------------------------------------------------------------- */
/* packets                                                                 */

static void swim_begin(dmq_node_t *n, dmq__enc_t *e) {
  dmq__node_enc_begin(n, e, n->txbuf, n->cfg.mtu);
}

/* Finish a datagram (piggybacking gossip) and send it. */
static void swim_finish(dmq_node_t *n, dmq__enc_t *e, const char *addr) {
  swim_fill_gossip(n, e);
  uint32_t c = e->count;
  size_t len = dmq__enc_end(e);
  dmq__send(n, addr, n->txbuf, len, 0, c);
}

static void swim_send_ack(dmq_node_t *n, const char *addr, uint32_t seq,
                          int stream) {
  dmq__enc_t e;
  swim_begin(n, &e);
  dmq__enc_ack(&e, seq);
  if (stream) { /* answer a stream-fallback ping on the stream */
    uint32_t c = e.count;
    size_t len = dmq__enc_end(&e);
    dmq__send(n, addr, n->txbuf, len, 1, c);
    return;
  }
  swim_finish(n, &e, addr);
}

static void swim_send_nack(dmq_node_t *n, const char *addr, uint32_t seq) {
  dmq__enc_t e;
  swim_begin(n, &e);
  dmq__enc_nack(&e, seq);
  swim_finish(n, &e, addr);
}

static void swim_send_ping(dmq_node_t *n, const dmq__member_t *target,
                           const char *addr, uint32_t seq) {
  dmq__enc_t e;
  swim_begin(n, &e);
  /* Lifeguard buddy system: tell a suspect member first. */
  if (target != NULL && target->state == DMQ_MEMBER_SUSPECT)
    swim_enc_update(n, &e, target);
  dmq__enc_ping(&e, seq,
                sl(target ? target->name : "", target ? target->name_len : 0));
  swim_finish(n, &e, addr);
}

/* ---- push/pull tables ---- */

/* Encode a push/pull table into buf: every member (count == nmembers), or
 * ourselves and then count - 1 others from index `first` on. sizes, when
 * not NULL, gets each member's encoded record size (full table only).
 * Returns the length, 0 on failure. */
static size_t swim_enc_table(dmq_node_t *n, uint8_t *buf, size_t cap,
                             uint8_t flags, uint32_t first, uint32_t count,
                             uint32_t *sizes) {
  dmq__enc_t e;
  dmq__node_enc_begin(n, &e, buf, cap);
  int rc = dmq__enc_pushpull_begin(&e, flags, count);
  int partial = count < n->nmembers;
  if (partial && rc == 0)
    rc = dmq__member_enc(&e, n->self);
  for (uint32_t k = 0, done = (uint32_t)partial; rc == 0 && done < count; k++) {
    uint32_t i = (first + k) % n->nmembers;
    const dmq__member_t *m = n->members[i];
    if (partial && m->is_self)
      continue;
    size_t before = e.len;
    rc = dmq__member_enc(&e, m);
    if (sizes != NULL)
      sizes[i] = (uint32_t)(e.len - before);
    done++;
  }
  return rc == 0 ? dmq__enc_end(&e) : 0;
}

/* Our table to addr: over the reliable class, or, with `datagram` (we
 * have no stream transport, or the request came as a datagram: the
 * requester has none), as one datagram. A table larger than a datagram then
 * carries ourselves and as many members as fit from a random place on, so that
 * a member without a stream transport still joins and, exchange by exchange,
 * learns everyone. */
static void swim_send_pushpull_ex(dmq_node_t *n, const char *addr,
                                  uint8_t flags, int datagram) {
  size_t need = 64 + strlen(n->name) + dmq__node_overhead(n);
  for (uint32_t i = 0; i < n->nmembers; i++)
    need += dmq__member_record_size(n->members[i]);
  /* A scratch buffer for this one table: the transport copies what it
   * cannot send at once, and exchanges are far apart (even a join's few
   * come one at a time), so a buffer kept per node would be O(N) resident
   * memory per node for nothing. */
  uint8_t *buf = need <= n->cfg.max_packet ? dmq__malloc(n, need) : NULL;
  uint32_t *sizes = datagram && buf != NULL && n->nmembers > 1
                        ? dmq__malloc(n, n->nmembers * sizeof(*sizes))
                        : NULL;
  size_t len = buf != NULL
                   ? swim_enc_table(n, buf, need, flags, 0, n->nmembers, sizes)
                   : 0;
  size_t mtu = datagram ? dmq__datagram_mtu(n, addr) : 0;
  if (len > 0 && (buf[3] & DMQ__WIRE_FLAG_SEALED) && mtu > DMQ__WIRE_SEAL_TAG)
    mtu -= DMQ__WIRE_SEAL_TAG; /* sealing appends it (dmq__send) */
  if (len > mtu && sizes != NULL) {
    size_t used = len; /* envelope and header, then ourselves */
    for (uint32_t i = 0; i < n->nmembers; i++)
      if (!n->members[i]->is_self)
        used -= sizes[i];
    uint32_t first = (uint32_t)dmq__rng_below(&n->rng, n->nmembers);
    uint32_t count = 1;
    for (uint32_t k = 0; k < n->nmembers; k++) {
      uint32_t i = (first + k) % n->nmembers;
      if (n->members[i]->is_self)
        continue;
      if (used + sizes[i] > mtu)
        break;
      used += sizes[i];
      count++;
    }
    len = swim_enc_table(n, buf, need, flags, first, count, NULL);
  }
  dmq__free(n, sizes);
  if (len == 0) {
    n->stats.drops[DMQ_DROP_TX_FAILED]++;
  } else if (dmq__send(n, addr, buf, len, !datagram, 1) == 0) {
    n->stats.pushpull_sent++;
  }
  dmq__free(n, buf);
}

static void swim_send_pushpull(dmq_node_t *n, const char *addr, uint8_t flags) {
  swim_send_pushpull_ex(n, addr, flags, !dmq__has_stream(n, addr));
}

void dmq__swim_send_pushpull(dmq_node_t *n, const char *addr) {
  swim_send_pushpull(n, addr, 0);
}

/* ---------------------------------------------------------------------- */
/* state changes                                                           */

/* The member has shown it exists: a datagram from its own address
 * carrying its name, or an ack of our probe of it. */
static void swim_mark_heard(dmq_node_t *n, dmq__member_t *m) {
  if (m->heard || m->is_self)
    return;
  m->heard = 1;
  n->n_hearsay--;
  if (m->state <= DMQ_MEMBER_SUSPECT)
    n->n_hearsay_live--;
  if (n->heard_n == n->heard_cap) {
    uint32_t cap = n->heard_cap ? n->heard_cap * 2 : 16;
    dmq__member_t **v = dmq__realloc(n, n->heard_v, sizeof(*v) * cap);
    if (v == NULL) {
      n->heard_lost++;
      return;
    }
    n->heard_v = v;
    n->heard_cap = cap;
  }
  n->heard_v[n->heard_n++] = m;
}

/* A member heard from itself leaves the table: out of heard_v (a pass over
 * it; members leave the table seldom, at reaping). The probe round's split
 * stays: a hole among the probed is filled by the last probed, whose slot
 * takes the last member. */
static void swim_heard_drop(dmq_node_t *n, const dmq__member_t *m) {
  for (uint32_t i = 0; i < n->heard_n; i++) {
    if (n->heard_v[i] == m) {
      uint32_t last = --n->heard_n;
      if (i < n->heard_pos) {
        uint32_t p = --n->heard_pos;
        n->heard_v[i] = n->heard_v[p];
        n->heard_v[p] = n->heard_v[last];
      } else {
        n->heard_v[i] = n->heard_v[last];
      }
      return;
    }
  }
  if (n->heard_lost > 0)
    n->heard_lost--; /* it was one of those left out */
}

/* Live members heard from themselves (self included). */
static uint32_t swim_n_heard(const dmq_node_t *n) {
  return n->n_live - (n->n_hearsay_live < n->n_live ? n->n_hearsay_live : 0);
}

/* The member count that sizes suspicion timeouts (Lifeguard's log N): the
 * live members heard from themselves, plus those known only from hearsay
 * up to twice as many. A table filled by forged members (docs/limits.md)
 * must not stretch the detection of a real crash by its log N; during a
 * real join storm most members are heard from within a few periods. */
static uint32_t swim_n_effective(const dmq_node_t *n) {
  uint32_t heard = swim_n_heard(n);
  uint32_t hearsay = n->n_live - heard;
  return heard + (hearsay < 2 * heard ? hearsay : 2 * heard);
}

static void swim_set_state(dmq_node_t *n, dmq__member_t *m, uint8_t st) {
  int was_live = m->state <= DMQ_MEMBER_SUSPECT;
  int is_live = st <= DMQ_MEMBER_SUSPECT;
  int hearsay = !m->heard && !m->is_self;
  if (was_live && !is_live) {
    dmq__ae_member_out(n, m);
    n->n_live--;
    n->n_hearsay_live -= (uint32_t)hearsay;
  } else if (!was_live && is_live) {
    n->n_live++;
    n->n_hearsay_live += (uint32_t)hearsay;
  }
  if (m->state != st)
    m->state_since = n->now;
  m->state = st;
  if (!was_live && is_live)
    dmq__ae_member_in(n, m);
  if (!is_live && n->now + n->cfg.dead_retention_ms < n->reap_due)
    n->reap_due = n->now + n->cfg.dead_retention_ms;
}

/* A member's incarnation and generation change only here (the digest's
 * sums follow them, antientropy.c). */
static void swim_set_life(dmq_node_t *n, dmq__member_t *m, uint64_t inc,
                          uint64_t gen) {
  dmq__ae_member_out(n, m);
  m->inc = inc;
  m->gen = gen;
  dmq__ae_member_in(n, m);
}

static void swim_suspicion_clear(dmq_node_t *n, dmq__member_t *m) {
  dmq__suspicion_t *s = dmq__member_susp(m);
  if (s == NULL)
    return;
  uint32_t i = s->idx;
  uint32_t last = n->nsuspects - 1;
  if (i != last) {
    n->suspects[i] = n->suspects[last];
    n->suspects[i]->more->susp->idx = i;
  }
  n->nsuspects--;
  dmq__free(n, s);
  m->more->susp = NULL;
  dmq__member_more_trim(n, m);
}

static void swim_suspicion_deadline(dmq__suspicion_t *s) {
  uint64_t t = s->max_ms;
  if (s->k > 0 && s->nconf > 0) {
    double frac = log((double)s->nconf + 1.0) / log((double)s->k + 1.0);
    double v = (double)s->max_ms - frac * (double)(s->max_ms - s->min_ms);
    t = v < (double)s->min_ms ? s->min_ms : (uint64_t)v;
  }
  if (s->k == 0)
    t = s->min_ms;
  s->deadline = s->start + t;
}

/* The suspicion runs from now, raised by `from`, with no confirmations. */
static void swim_suspicion_begin(dmq_node_t *n, dmq__suspicion_t *s,
                                 const char *from, size_t from_len) {
  s->start = n->now;
  s->nconf = 0;
  s->last_call = 0;
  memcpy(s->from, from, from_len);
  s->from[from_len] = '\0';
  swim_suspicion_deadline(s);
}

static int swim_suspicion_start(dmq_node_t *n, dmq__member_t *m,
                                const char *from, size_t from_len) {
  if (dmq__member_more(n, m) == NULL)
    return DMQ_ENOMEM;
  dmq__suspicion_t *s = dmq__malloc(n, sizeof(*s));
  if (s == NULL) {
    dmq__member_more_trim(n, m);
    return DMQ_ENOMEM;
  }
  if (n->nsuspects == n->cap_suspects) {
    uint32_t nc = n->cap_suspects ? n->cap_suspects * 2 : 8;
    dmq__member_t **na = dmq__realloc(n, n->suspects, nc * sizeof(*na));
    if (na == NULL) {
      dmq__free(n, s);
      dmq__member_more_trim(n, m);
      return DMQ_ENOMEM;
    }
    n->suspects = na;
    n->cap_suspects = nc;
  }
  memset(s, 0, sizeof(*s));
  uint32_t nl = swim_n_effective(n);
  double scale = log10((double)(nl > 1 ? nl : 1));
  if (scale < 1.0)
    scale = 1.0;
  s->min_ms = (uint64_t)(n->cfg.suspicion_mult * scale *
                         (double)n->cfg.probe_interval_ms);
  s->max_ms = s->min_ms * n->cfg.suspicion_max_mult;
  uint32_t k = n->cfg.suspicion_confirmations;
  /* with few members fewer independent confirmations can exist; members
   * known only from hearsay may not exist at all, so only those heard from
   * themselves are counted (a forged flood must not make us wait for
   * confirmations nobody can send), but at least one while a third member
   * exists: without any, the timeout would start at its minimum, and a
   * member that has heard few others yet (just joined, or cut off from
   * sending) would declare deaths nobody confirmed (sim, test_scenarios,
   * DMQ_SIM_SEED=9) */
  uint32_t heard = swim_n_heard(n);
  uint32_t others = heard >= 3 ? heard - 2 : n->n_live >= 3 ? 1 : 0;
  s->k = k < others ? k : others;
  if (s->k > DMQ__MAX_CONFIRM)
    s->k = DMQ__MAX_CONFIRM;
  swim_suspicion_begin(n, s, from, from_len);
  s->idx = n->nsuspects;
  m->more->susp = s;
  n->suspects[n->nsuspects++] = m;
  return 0;
}

/* Returns 1 if this confirmation is new and independent. */
static int swim_suspicion_confirm(dmq__member_t *m, const char *from,
                                  size_t len) {
  dmq__suspicion_t *s = dmq__member_susp(m);
  if (s == NULL || s->nconf >= s->k)
    return 0;
  if (strlen(s->from) == len && memcmp(s->from, from, len) == 0)
    return 0;
  uint64_t h = dmq__hash(from, len);
  for (uint32_t i = 0; i < s->nconf; i++)
    if (s->conf[i] == h)
      return 0;
  s->conf[s->nconf++] = h;
  swim_suspicion_deadline(s);
  return 1;
}

static void swim_refute(dmq_node_t *n, uint64_t inc) {
  dmq__member_t *self = n->self;
  if (n->leaving)
    return;
  swim_set_life(n, self, (inc >= self->inc ? inc : self->inc) + 1, self->gen);
  n->stats.refutations++;
  /* Lifeguard: being suspected hints that we are the slow one */
  if (n->health + 1 < n->cfg.awareness_max)
    n->health++;
  swim_bc_queue(n, self);
}

/* A suspicion or death of ours (incarnation inc) is going round. A current
 * one is refuted with a new incarnation. An older one, which our refutation
 * has already overtaken, means its sender missed the refutation (it was cut
 * off when it went round): without help it would keep us suspect, and then
 * dead, until the next push/pull, so we re-announce our current state once
 * (nothing is queued twice), and the answer to its next probe, which
 * carries the rumor (buddy system), sets it right. Leaving: neither. */
static void swim_self_accused(dmq_node_t *n, uint64_t inc) {
  if (n->leaving || !swim_inc_plausible(n, inc, n->self->inc))
    return;
  if (inc >= n->self->inc)
    swim_refute(n, inc);
  else if (n->self->bc_bucket < 0)
    swim_bc_queue(n, n->self);
}

/* An ALIVE about our own name: another member claiming it, or an echo of
 * a previous life of ours to refute. */
static void swim_alive_self(dmq_node_t *n, dmq__member_t *m, dmq__slice_t addr,
                            uint64_t inc, uint64_t gen) {
  if (gen > m->gen && !n->leaving && swim_gen_plausible(n, gen, m->gen)) {
    /* A newer life of ours that is not us: a forged ALIVE, or a second
     * process under our name. Left alone it would replace us everywhere
     * for good; we take the generation after it instead (like a restart
     * of ours: delivery starts new streams) and announce it, so the
     * damage lasts one round of gossip (docs/limits.md). */
    dmq__log(n, DMQ_LOG_WARN,
             "another member claims our name %s (generation %llu): taking "
             "generation %llu",
             n->name, (unsigned long long)gen, (unsigned long long)gen + 1);
    swim_set_life(n, m, 1, gen + 1);
    dmq__members_notify(n, m, DMQ__MEMBER_RESTARTED);
    swim_bc_queue(n, m);
    return;
  }
  if (gen > m->gen || (gen == m->gen && inc > m->inc &&
                       (addr.n != m->addr_len ||
                        memcmp(addr.p, dmq__member_addr(m), addr.n) != 0))) {
    dmq__log(n, DMQ_LOG_WARN,
             "another member claims our name %s (generation %llu)", n->name,
             (unsigned long long)gen);
  }
  if (gen == m->gen && inc > m->inc && !n->leaving &&
      swim_inc_plausible(n, inc, m->inc)) {
    /* an echo of a previous life of ours inside this generation */
    swim_refute(n, inc);
  }
}

static void swim_forget(dmq_node_t *n, dmq__member_t *m);

/* Room in the table for one more member: below max_members, or a dead or
 * left member (the one in that state longest) reaped early. Live members
 * heard from themselves are never evicted. A newcomer may take the place
 * of the live member known longest only from hearsay (never heard from its
 * own address) when it contacts us directly (SWIM_ADMIT_DIRECT: the ALIVE
 * is about the packet's sender), or when a member heard from itself
 * relays it in a datagram from that member's own address
 * (SWIM_ADMIT_VOUCHED; one such eviction per inbound packet): a table
 * filled by forged members must not lock real newcomers out, nor keep the
 * rest of the cluster from learning of them (docs/limits.md). Only ever a
 * member nobody has shown to exist is evicted, the oldest first, so a
 * newcomer outlives the flood that came before it. Without room the
 * newcomer is dropped (DMQ_DROP_MEMBER_LIMIT). */
static int swim_make_room(dmq_node_t *n, int admit) {
  if (n->nmembers < n->cfg.max_members)
    return 1;
  dmq__member_t *v = NULL;
  for (uint32_t i = 0; n->n_live < n->nmembers && i < n->nmembers; i++) {
    dmq__member_t *m = n->members[i];
    if (!m->is_self && m->state >= DMQ_MEMBER_DEAD &&
        (v == NULL || m->state_since < v->state_since))
      v = m;
  }
  int evict = admit == SWIM_ADMIT_DIRECT ||
              (admit == SWIM_ADMIT_VOUCHED && n->evict_pkt != n->stats.pkts_in);
  for (uint32_t i = 0;
       v == NULL && evict && n->n_hearsay_live > 0 && i < n->nmembers; i++) {
    dmq__member_t *m = n->members[i];
    if (!m->is_self && !m->heard && m->state <= DMQ_MEMBER_SUSPECT &&
        (v == NULL || m->state_since < v->state_since))
      v = m;
  }
  if (v == NULL) {
    uint64_t c = ++n->stats.drops[DMQ_DROP_MEMBER_LIMIT];
    /* a cluster larger than max_members (default 8192) would otherwise
     * show only as a counter; logged at the 1st, 2nd, 4th, 8th... drop so
     * that a flood of forged members cannot fill the log */
    if ((c & (c - 1)) == 0)
      dmq__log(n, DMQ_LOG_WARN,
               "member table full (max_members %u): a newcomer was dropped "
               "(%llu so far)",
               (unsigned)n->cfg.max_members, (unsigned long long)c);
    return 0;
  }
  if (v->state <= DMQ_MEMBER_SUSPECT) {
    if (admit == SWIM_ADMIT_VOUCHED)
      n->evict_pkt = n->stats.pkts_in;
    /* a live member known only from hearsay: as if it died (what was
     * queued for it fails; n_live stays exact), then forgotten */
    swim_suspicion_clear(n, v);
    swim_set_state(n, v, DMQ_MEMBER_DEAD);
    dmq__members_notify(n, v, DMQ__MEMBER_DEAD);
  }
  swim_forget(n, v);
  return 1;
}

/* An ALIVE about a member we do not know: add it (NULL if it was not). */
static dmq__member_t *swim_alive_new(dmq_node_t *n, dmq__slice_t name,
                                     dmq__slice_t addr, uint64_t inc,
                                     uint64_t gen, dmq__slice_t meta,
                                     const dmq__chans_t *chans,
                                     int from_pushpull, int admit) {
  if (!swim_inc_plausible(n, inc, 0) || !swim_gen_plausible(n, gen, 0) ||
      !swim_make_room(n, admit))
    return NULL;
  dmq__member_t *m = dmq__member_add(n, name.p, name.n, addr.p, addr.n);
  if (m == NULL)
    return NULL;
  n->n_hearsay++; /* until heard from itself */
  /* not counted anywhere yet (neither n_live nor the digest's sums) */
  m->inc = inc;
  m->gen = gen;
  m->state = DMQ_MEMBER_DEAD; /* so set_state counts it live */
  swim_set_state(n, m, DMQ_MEMBER_ALIVE);
  m->state_since = n->now;
  if (dmq__member_set_meta(n, m, meta.p, meta.n) < 0 ||
      dmq__member_set_chans(n, m, chans) < 0) {
    swim_set_state(n, m, DMQ_MEMBER_DEAD); /* keeps n_live exact */
    dmq__member_remove(n, m);
    return NULL;
  }
  dmq__emit(n, DMQ_EVENT_JOINED, m);
  /* A newcomer learnt from gossip or from its own join is news to spread.
   * One learnt from routine anti-entropy is not: the table it came from
   * is being exchanged pairwise already, and re-gossiping every entry of
   * every table is what floods a cluster during a join storm. */
  if (from_pushpull != SWIM_FROM_SYNC)
    swim_bc_announce(n, m);
  return m;
}

/* ALIVE (also from push/pull records). admit: SWIM_ADMIT_* (see
 * swim_make_room). Returns the member it is about, NULL for ourselves or
 * one not added. */
static dmq__member_t *swim_on_alive(dmq_node_t *n, dmq__slice_t name,
                                    dmq__slice_t addr, uint64_t inc,
                                    uint64_t gen, dmq__slice_t meta,
                                    const dmq__chans_t *chans,
                                    int from_pushpull, int admit) {
  dmq__member_t *m = dmq__member_find(n, name.p, name.n);
  if (m != NULL && m->is_self) {
    swim_alive_self(n, m, addr, inc, gen);
    return NULL;
  }
  if (m == NULL)
    return swim_alive_new(n, name, addr, inc, gen, meta, chans, from_pushpull,
                          admit);
  int new_gen = gen > m->gen;
  if (!new_gen && !(gen == m->gen && inc > m->inc))
    return m; /* stale or equal */
  if (!swim_inc_plausible(n, inc, new_gen ? 0 : m->inc) ||
      (new_gen && !swim_gen_plausible(n, gen, m->gen)))
    return m;
  uint8_t old = m->state;
  /* a new life somewhere else while the old one is live: the old address
   * is told below (one packet), so that a live member displaced by a
   * forged ALIVE hears it and wins its place back (swim_alive_self) */
  char old_addr[DMQ_MAX_ADDR + 1];
  old_addr[0] = '\0';
  if (new_gen && old <= DMQ_MEMBER_SUSPECT &&
      (addr.n != m->addr_len ||
       memcmp(addr.p, dmq__member_addr(m), addr.n) != 0))
    memcpy(old_addr, dmq__member_addr(m), (size_t)m->addr_len + 1);
  int meta_changed = 0;
  int chans_changed = dmq__member_set_chans(n, m, chans);
  if (chans_changed < 0 || dmq__member_set_addr(n, m, addr.p, addr.n) != 0)
    return m;
  int mc = dmq__member_set_meta(n, m, meta.p, meta.n);
  if (mc < 0)
    return m;
  meta_changed = mc;
  swim_set_life(n, m, inc, gen);
  swim_suspicion_clear(n, m);
  swim_set_state(n, m, DMQ_MEMBER_ALIVE);
  if (new_gen) {
    m->state_since = n->now;
    /* a restart: whatever was queued for its previous life fails */
    dmq__members_notify(n, m, DMQ__MEMBER_RESTARTED);
    dmq__emit(n, DMQ_EVENT_JOINED, m);
  } else if (old != DMQ_MEMBER_ALIVE) {
    dmq__emit(n, DMQ_EVENT_ALIVE_AGAIN, m);
    if (meta_changed)
      dmq__emit(n, DMQ_EVENT_META_UPDATED, m);
  } else if (meta_changed) {
    dmq__emit(n, DMQ_EVENT_META_UPDATED, m);
  }
  if (!new_gen && chans_changed)
    dmq__emit(n, DMQ_EVENT_CHANNELS_UPDATED, m);
  swim_bc_queue(n, m);
  if (old_addr[0] != '\0' && dmq__swim_reply_ok(n)) {
    dmq__enc_t e;
    swim_begin(n, &e);
    swim_enc_update(n, &e, m);
    swim_finish(n, &e, old_addr);
  }
  return m;
}

/* The member a SUSPECT or DEAD/LEFT message accuses, if the accusation is
 * about its current generation and not older than what we know; an
 * accusation of ourselves is refuted here (and NULL returned). */
static dmq__member_t *swim_accused(dmq_node_t *n, dmq__slice_t name,
                                   uint64_t inc, uint64_t gen) {
  dmq__member_t *m = dmq__member_find(n, name.p, name.n);
  if (m == NULL || gen != m->gen)
    return NULL;
  if (m->is_self) {
    swim_self_accused(n, inc);
    return NULL;
  }
  if (inc < m->inc || !swim_inc_plausible(n, inc, m->inc))
    return NULL;
  return m;
}

/* sync = the suspicion comes from a push/pull table (a remote DEAD or
 * SUSPECT record), not from somebody's failed probe. */
static void swim_on_suspect(dmq_node_t *n, dmq__slice_t name, uint64_t inc,
                            uint64_t gen, dmq__slice_t from, int sync) {
  dmq__member_t *m = swim_accused(n, name, inc, gen);
  if (m == NULL)
    return;
  if (m->state == DMQ_MEMBER_ALIVE) {
    if (swim_suspicion_start(n, m, from.p, from.n) != 0)
      return;
    swim_set_life(n, m, inc, m->gen);
    swim_set_state(n, m, DMQ_MEMBER_SUSPECT);
    dmq__emit(n, DMQ_EVENT_SUSPECT, m);
    swim_bc_queue(n, m);
    if (sync && m->heard && dmq__swim_reply_ok(n)) {
      /* A table merged after a partition heals carries the other side's
       * stale verdicts. Tell the member at once (buddy system), so it can
       * refute within a round trip instead of waiting for gossip to find
       * it. (A few per table: the rest learn it through gossip.) */
      swim_send_ping(n, m, dmq__member_addr(m), ++n->seq);
    }
  } else if (m->state == DMQ_MEMBER_SUSPECT) {
    if (inc > m->inc) {
      /* A suspicion of a later incarnation: the member refuted the one we
       * hold (it was alive at inc > ours) and was suspected again since.
       * Ours is stale, and starts over from now with no confirmations
       * (SWIM: Suspect{inc} overrides Suspect{inc' < inc}). Kept, its old
       * deadline declared dead a slow member whose refutations kept
       * missing us (sim, test_slow_member_not_killed, 1 seed in 360). */
      dmq__suspicion_t *s = dmq__member_susp(m);
      swim_set_life(n, m, inc, m->gen);
      if (s != NULL) /* always: a suspect has its suspicion */
        swim_suspicion_begin(n, s, from.p, from.n);
      swim_bc_queue(n, m);
      return;
    }
    /* Stale tables are not independent evidence: several members of the
     * far side of a healed partition would otherwise "confirm" each other's
     * old verdicts and shrink the suspicion to its minimum. Only probes and
     * gossiped suspicions confirm. */
    if (sync)
      return;
    if (swim_suspicion_confirm(m, from.p, from.n)) {
      /* pass the independent confirmation on */
      memcpy(m->more->susp->from, from.p, from.n);
      m->more->susp->from[from.n] = '\0';
      swim_bc_queue(n, m);
    }
  }
}

static void swim_declare(dmq_node_t *n, dmq__member_t *m, uint8_t st,
                         uint64_t inc) {
  swim_set_life(n, m, inc, m->gen);
  swim_suspicion_clear(n, m);
  swim_set_state(n, m, st);
  if (st == DMQ_MEMBER_DEAD)
    n->stats.deaths_declared++;
  dmq__members_notify(
      n, m, st == DMQ_MEMBER_DEAD ? DMQ__MEMBER_DEAD : DMQ__MEMBER_LEFT);
  dmq__emit(n, st == DMQ_MEMBER_DEAD ? DMQ_EVENT_DEAD : DMQ_EVENT_LEFT, m);
  swim_bc_queue(n, m);
}

static void swim_on_dead(dmq_node_t *n, dmq__slice_t name, uint64_t inc,
                         uint64_t gen, int left) {
  dmq__member_t *m = swim_accused(n, name, inc, gen);
  if (m == NULL)
    return;
  if (m->state == DMQ_MEMBER_LEFT)
    return;
  if (m->state == DMQ_MEMBER_DEAD) {
    /* a LEFT that is at least as fresh explains the death: prefer it */
    if (left)
      swim_declare(n, m, DMQ_MEMBER_LEFT, inc);
    return;
  }
  swim_declare(n, m, left ? DMQ_MEMBER_LEFT : DMQ_MEMBER_DEAD, inc);
}

/* ---------------------------------------------------------------------- */
/* probing                                                                 */

/* Whether c is already among the nc members chosen. */
static int swim_chosen(dmq__member_t *const *chosen, uint32_t nc,
                       const dmq__member_t *c) {
  for (uint32_t i = 0; i < nc; i++)
    if (chosen[i] == c)
      return 1;
  return 0;
}

/* Relays of an indirect probe of t: live members heard from themselves. */
static int swim_relay_ok(const dmq_node_t *n, const dmq__member_t *c,
                         const void *t) {
  (void)n;
  return !c->is_self && c != t && c->state == DMQ_MEMBER_ALIVE && c->heard;
}

/* Adds to chosen (nc so far) the members of from[0..len) (the table or
 * heard_v) that pass ok(n, c, ctx) and are not chosen yet, in that order
 * from a random point, until want; returns the new count. For when random
 * picks rarely land on the few members that qualify (a table mostly of
 * hearsay, or of the dead). */
static uint32_t swim_scan_pick(dmq_node_t *n, dmq__member_t *const *from,
                               uint32_t len, dmq__member_t **chosen,
                               uint32_t nc, uint32_t want,
                               int (*ok)(const dmq_node_t *,
                                         const dmq__member_t *, const void *),
                               const void *ctx) {
  if (len == 0)
    return nc;
  uint32_t at = dmq__rng_below(&n->rng, len);
  for (uint32_t k = 0; k < len && nc < want; k++) {
    dmq__member_t *c = from[(at + k) % len];
    if (ok(n, c, ctx) && !swim_chosen(chosen, nc, c))
      chosen[nc++] = c;
  }
  return nc;
}

/* Adds to chosen (nc so far) members heard from themselves that pass
 * ok(n, c, ctx) and are not chosen yet, until want; returns the new count.
 * Random picks from heard_v, then a pass over it from a random point (a
 * pass over the table if heard_v is incomplete). */
static uint32_t swim_heard_pick(dmq_node_t *n, dmq__member_t **chosen,
                                uint32_t nc, uint32_t want,
                                int (*ok)(const dmq_node_t *,
                                          const dmq__member_t *, const void *),
                                const void *ctx) {
  for (uint32_t tries = 0; nc < want && n->heard_n > 0 && tries < 4 * want + 8;
       tries++) {
    dmq__member_t *c = n->heard_v[dmq__rng_below(&n->rng, n->heard_n)];
    if (ok(n, c, ctx) && !swim_chosen(chosen, nc, c))
      chosen[nc++] = c;
  }
  if (nc >= want)
    return nc;
  if (n->heard_lost > 0)
    return n->nmembers > 1 ? swim_scan_pick(n, n->members, n->nmembers, chosen,
                                            nc, want, ok, ctx)
                           : nc;
  return swim_scan_pick(n, n->heard_v, n->heard_n, chosen, nc, want, ok, ctx);
}

/* The next live member known only from hearsay, round robin. */
static dmq__member_t *swim_next_hearsay(dmq_node_t *n) {
  if (n->n_hearsay_live == 0)
    return NULL; /* what the pass would find, without reading every member */
  for (uint32_t k = 0; k < n->nmembers; k++) {
    if (n->hearsay_pos >= n->nmembers)
      n->hearsay_pos = 0;
    dmq__member_t *m = n->members[n->hearsay_pos++];
    if (!m->heard && !m->is_self && m->state <= DMQ_MEMBER_SUSPECT)
      return m;
  }
  return NULL;
}

/* A member the round robin probes: heard from itself, alive or suspect. */
static int swim_probe_ok(const dmq__member_t *m) {
  return !m->is_self && m->heard && m->state <= DMQ_MEMBER_SUSPECT;
}

/* A new round's order is a reshuffle, and if the first member it would
 * probe is the one probed last, that one goes to the end of the round
 * (with two members to probe, a plain reshuffle probed one twice in a row,
 * leaving the other three periods, at every other reshuffle: test_bounds
 * test_probe_order_no_repeat). Where in the shuffled v[0, len) that
 * member is, or len when no swap is due. */
static uint32_t swim_repeat_at(const dmq_node_t *n, dmq__member_t *const *v,
                               uint32_t len) {
  for (uint32_t p = 0; p + 1 < len; p++) {
    const dmq__member_t *m = v[p];
    if (swim_probe_ok(m))
      return dmq__hash(m->name, m->name_len) == n->probe_last ? p : len;
  }
  return len;
}

/* A new round over the table (members' positions change with it). */
static void swim_new_round(dmq_node_t *n) {
  dmq__members_shuffle(n);
  n->probe_pos = 0;
  uint32_t p = swim_repeat_at(n, n->members, n->nmembers);
  if (p < n->nmembers) {
    uint32_t last = n->nmembers - 1;
    dmq__member_t *m = n->members[p], *o = n->members[last];
    n->members[p] = o;
    o->idx = p;
    n->members[last] = m;
    m->idx = last;
  }
}

/* A new round over heard_v: only its pointers move, no member is read but
 * the first to probe. */
static void swim_new_heard_round(dmq_node_t *n) {
  dmq__member_t **v = n->heard_v;
  for (uint32_t i = n->heard_n; i > 1; i--) {
    uint32_t j = (uint32_t)dmq__rng_below(&n->rng, i);
    dmq__member_t *t = v[i - 1];
    v[i - 1] = v[j];
    v[j] = t;
  }
  n->heard_pos = 0;
  uint32_t p = swim_repeat_at(n, v, n->heard_n);
  if (p < n->heard_n) {
    dmq__member_t *m = v[p];
    v[p] = v[n->heard_n - 1];
    v[n->heard_n - 1] = m;
  }
}

/* The next probe target: members heard from themselves in a shuffled
 * round robin, and every SWIM_HEARSAY_EVERY periods one known only from
 * hearsay, if any. The round robin goes over heard_v: over the table it
 * read every member it skipped, and for a while after a large join most
 * are hearsay (10000 members: ~11 % of sim_bench's time after the join
 * in that loop). Over the table only while heard_v misses some (out of
 * memory). */
static dmq__member_t *swim_next_target(dmq_node_t *n) {
  if (++n->probe_rounds % SWIM_HEARSAY_EVERY == 0) {
    dmq__member_t *h = swim_next_hearsay(n);
    if (h != NULL)
      return h;
  }
  if (n->heard_lost == 0) {
    for (uint32_t tries = 0; tries <= n->heard_n; tries++) {
      if (n->heard_pos >= n->heard_n)
        swim_new_heard_round(n);
      if (n->heard_n == 0)
        break;
      dmq__member_t *m = n->heard_v[n->heard_pos++];
      if (swim_probe_ok(m)) {
        n->probe_last = dmq__hash(m->name, m->name_len);
        return m;
      }
    }
    return swim_next_hearsay(n);
  }
  for (uint32_t tries = 0; tries <= n->nmembers; tries++) {
    if (n->probe_pos >= n->nmembers)
      swim_new_round(n);
    dmq__member_t *m = n->members[n->probe_pos++];
    if (swim_probe_ok(m)) {
      n->probe_last = dmq__hash(m->name, m->name_len);
      return m;
    }
  }
  return swim_next_hearsay(n);
}

static void swim_probe_start(dmq_node_t *n) {
  n->announce_used = 0;
  uint64_t period = swim_scaled(n, n->cfg.probe_interval_ms);
  n->next_probe = n->now + period;
  if (n->leaving)
    return;
  dmq__member_t *t = swim_next_target(n);
  if (t == NULL)
    return;
  n->probe.active = 1;
  n->probe.acked = 0;
  n->probe.indirect_sent = 0;
  n->probe.seq = ++n->seq;
  n->probe.nacks_expected = n->probe.nacks_got = 0;
  n->probe.timeout_at = n->now + swim_scaled(n, n->cfg.probe_timeout_ms);
  n->probe.end_at = n->next_probe;
  memcpy(n->probe.target, t->name, (size_t)t->name_len + 1);
  n->stats.probes++;
  swim_send_ping(n, t, dmq__member_addr(t), n->probe.seq);
}

static void swim_probe_indirect(dmq_node_t *n) {
  n->probe.indirect_sent = 1;
  dmq__member_t *t =
      dmq__member_find(n, n->probe.target, strlen(n->probe.target));
  if (t == NULL || t->state > DMQ_MEMBER_SUSPECT)
    return;
  uint32_t k = n->cfg.indirect_checks;
  dmq__member_t *chosen[16];
  uint32_t nc = 0;
  if (k > 16)
    k = 16;
  /* Relays are drawn from the members heard from themselves: random picks
   * from the whole table rarely land on them in a table mostly of hearsay
   * (a flood of forged members, or the first minute after a large join) or
   * of the dead. Without relays a failed probe counts against our own
   * health, and every failed probe of a forged member stretched our probe
   * period (tests/hostile alive_flood: the real crash was declared in 9-12
   * s instead of 5-6). */
  if (n->nmembers > 2)
    nc = swim_heard_pick(n, chosen, nc, k, swim_relay_ok, t);
  for (uint32_t i = 0; i < nc; i++) {
    dmq__enc_t e;
    swim_begin(n, &e);
    dmq__enc_ping_req(&e, n->probe.seq, sl(t->name, t->name_len),
                      sl(dmq__member_addr(t), t->addr_len), 1);
    swim_finish(n, &e, dmq__member_addr(chosen[i]));
  }
  n->probe.nacks_expected = nc;
  /* Stream fallback (UDP blocked or lossy): when a separate reliable
   * transport exists, also ping the target over it. */
  if (dmq__has_separate_stream(n, dmq__member_addr(t))) {
    dmq__enc_t e;
    swim_begin(n, &e);
    dmq__enc_ping(&e, n->probe.seq, sl(t->name, t->name_len));
    uint32_t c = e.count;
    size_t len = dmq__enc_end(&e);
    dmq__send(n, dmq__member_addr(t), n->txbuf, len, 1, c);
  }
}

static void swim_probe_end(dmq_node_t *n) {
  n->probe.active = 0;
  if (n->probe.acked)
    return;
  n->stats.probe_failed++;
  /* Lifeguard LHA: a failed probe counts against our own health when no
   * relay was asked, and so does every nack we asked for when none came
   * (if relays could not even nack, we are the problem). When every relay
   * nacked, they and we are fine and the target is the one that did not
   * answer: charging ourselves for it let a table of forged members (probed
   * in their turn, never answering) slow our own probing to awareness_max
   * times the period, and with it the detection of a real crash
   * (tests/hostile alive_flood under ASan: over 12 s). When some relays
   * nacked, our own receive path evidently worked in time, and the silent
   * ones are the suspects: a relay that crashed moments ago, still alive
   * in our view, charged us once per probe it served until its own
   * suspicion, and with two live members besides us that stretched the
   * probing of both by 2-3x (alive_flood: 12 s instead of 6). memberlist
   * charges every missing nack; docs/design.md. */
  uint32_t delta = 0;
  if (n->probe.nacks_expected == 0)
    delta = 1;
  else if (n->probe.nacks_got == 0)
    delta = n->probe.nacks_expected;
  n->health += delta;
  if (n->health >= n->cfg.awareness_max)
    n->health = n->cfg.awareness_max - 1;
  dmq__member_t *t =
      dmq__member_find(n, n->probe.target, strlen(n->probe.target));
  if (t == NULL || t->is_self)
    return;
  if (t->state == DMQ_MEMBER_ALIVE) {
    if (swim_suspicion_start(n, t, n->name, strlen(n->name)) != 0)
      return;
    swim_set_state(n, t, DMQ_MEMBER_SUSPECT);
    n->stats.suspicions_raised++;
    dmq__emit(n, DMQ_EVENT_SUSPECT, t);
    swim_bc_queue(n, t);
  } else if (t->state == DMQ_MEMBER_SUSPECT) {
    if (swim_suspicion_confirm(t, n->name, strlen(n->name))) {
      /* gossip our own, independent, confirmation */
      strcpy(t->more->susp->from, n->name);
      swim_bc_queue(n, t);
    }
  }
}

static void swim_health_good(dmq_node_t *n) {
  if (n->health > 0)
    n->health--;
}

/* ---------------------------------------------------------------------- */
/* inbound                                                                 */

static const char *swim_reply_addr(dmq_node_t *n, dmq__slice_t sender,
                                   const char *from_addr) {
  dmq__member_t *m = dmq__member_find(n, sender.p, sender.n);
  if (m != NULL && !m->is_self)
    return dmq__member_addr(m);
  return from_addr;
}

static void swim_on_ping(dmq_node_t *n, const dmq__msg_t *msg,
                         dmq__slice_t sender, const char *from_addr,
                         int stream) {
  if (msg->name.n != strlen(n->name) ||
      memcmp(msg->name.p, n->name, msg->name.n) != 0) {
    n->stats.drops[DMQ_DROP_NOT_FOR_US]++;
    return;
  }
  /* On a stream, answer over the connection the ping came in on: sending
   * to the member's advertised address would open a second connection. */
  const char *to = stream ? from_addr : swim_reply_addr(n, sender, from_addr);
  if (to != NULL && dmq__swim_reply_ok(n))
    swim_send_ack(n, to, msg->seq, stream);
}

static void swim_on_ping_req(dmq_node_t *n, const dmq__msg_t *msg,
                             dmq__slice_t sender, const char *from_addr) {
  const char *origin = swim_reply_addr(n, sender, from_addr);
  if (origin == NULL || strlen(origin) > DMQ_MAX_ADDR || !dmq__swim_reply_ok(n))
    return;
  if (n->relays == NULL) {
    n->relays = dmq__malloc(n, DMQ__MAX_RELAYS * sizeof(*n->relays));
    if (n->relays == NULL)
      return;
    memset(n->relays, 0, DMQ__MAX_RELAYS * sizeof(*n->relays));
  }
  dmq__relay_t *r = NULL;
  for (int i = 0; i < DMQ__MAX_RELAYS; i++) {
    if (!n->relays[i].used) {
      r = &n->relays[i];
      break;
    }
  }
  if (r == NULL)
    return; /* too many relays in flight: the requester will cope */
  r->used = 1;
  n->nrelays++;
  r->seq = ++n->seq;
  r->origin_seq = msg->seq;
  r->want_nack = msg->flag;
  strcpy(r->origin, origin);
  r->nack_at = n->now + n->cfg.probe_timeout_ms * SWIM_NACK_SHARE_NUM /
                            SWIM_NACK_SHARE_DEN;
  r->expire_at = n->now + n->cfg.probe_interval_ms;
  char addr[DMQ_MAX_ADDR + 1];
  memcpy(addr, msg->addr.p, msg->addr.n);
  addr[msg->addr.n] = '\0';
  dmq__enc_t e;
  swim_begin(n, &e);
  dmq__enc_ping(&e, r->seq, msg->name);
  swim_finish(n, &e, addr);
}

static void swim_on_ack(dmq_node_t *n, const dmq__msg_t *msg) {
  if (n->probe.active && msg->seq == n->probe.seq) {
    if (!n->probe.acked) {
      dmq__member_t *t =
          dmq__member_find(n, n->probe.target, strlen(n->probe.target));
      if (t != NULL)
        swim_mark_heard(n, t); /* it answered at the address we probed */
      n->probe.acked = 1;
      if (n->probe.indirect_sent)
        n->stats.probe_indirect_ok++;
      else
        n->stats.probe_direct_ok++;
      swim_health_good(n);
    }
    return;
  }
  for (int i = 0; n->nrelays > 0 && i < DMQ__MAX_RELAYS; i++) {
    dmq__relay_t *r = &n->relays[i];
    if (r->used && r->seq == msg->seq) {
      r->used = 0;
      n->nrelays--;
      swim_send_ack(n, r->origin, r->origin_seq, 0);
      return;
    }
  }
}

static void swim_on_nack(dmq_node_t *n, const dmq__msg_t *msg) {
  if (n->probe.active && msg->seq == n->probe.seq)
    n->probe.nacks_got++;
}

/* The records of a push/pull or a DIFF (antientropy.c), merged into the
 * table. */
void dmq__swim_apply_records(dmq_node_t *n, const dmq__msg_t *msg,
                             dmq__slice_t sender, int join, int echo) {
  dmq__rec_iter_t it;
  dmq__record_t r;
  dmq__wire_records(msg, &it);
  int rc;
  while ((rc = dmq__wire_next_record(&it, &r)) == 1) {
    switch (r.state) {
    case DMQ_MEMBER_ALIVE: {
      dmq__member_t *m = swim_on_alive(
          n, r.name, r.addr, r.incarnation, r.generation, r.meta, &r.chans,
          join ? SWIM_FROM_JOIN : SWIM_FROM_SYNC,
          swim_same(r.name, sender) ? SWIM_ADMIT_DIRECT : SWIM_ADMIT_NONE);
      if (echo && m != NULL && m->state == DMQ_MEMBER_ALIVE &&
          m->inc == r.incarnation && m->gen == r.generation)
        m->ae_echo = 1;
      break;
    }
    case DMQ_MEMBER_SUSPECT:
    case DMQ_MEMBER_DEAD: /* a remote death is only a suspicion here */
      swim_on_suspect(n, r.name, r.incarnation, r.generation, sender, 1);
      break;
    default:
      swim_on_dead(n, r.name, r.incarnation, r.generation, 1);
      break;
    }
    dmq__flush_member_events_at(n, DMQ__EVENTS_KEEP / 2);
  }
  if (rc < 0)
    n->stats.drops[DMQ_DROP_MALFORMED]++;
}

static void swim_on_pushpull(dmq_node_t *n, const dmq__msg_t *msg,
                             dmq__slice_t sender, const char *from_addr,
                             int stream) {
  n->stats.pushpull_received++;
  /* the reply comes first in this packet's reply budget: the pings about
   * suspicions in the table must not crowd it out */
  int reply = !(msg->flag & DMQ__PP_REPLY) && dmq__swim_reply_ok(n);
  dmq__swim_apply_records(n, msg, sender, (msg->flag & DMQ__PP_JOIN) != 0, 0);
  if (msg->flag & DMQ__PP_REPLY) {
    if (n->joining) {
      n->joining = 0;
      n->joined = 1;
      /* The seed's table was a snapshot: members joining at the same time
       * are missing from it. A few early push/pulls with random members
       * merge those partial views (each exchange roughly squares the missing
       * fraction), far cheaper than gossiping every newcomer N log N times. */
      n->boost_left = SWIM_JOIN_BOOST_ROUNDS;
      n->boost_extra = 0;
      n->next_extra = 0;
      n->next_boost = n->now + n->cfg.probe_interval_ms / 4;
      /* the seed that answered saw every concurrent joiner: the first
       * boost goes back to it, the later ones to random members */
      size_t l = sender.n < DMQ_MAX_NAME ? sender.n : DMQ_MAX_NAME;
      memcpy(n->join_via, sender.p, l);
      n->join_via[l] = '\0';
      dmq__log(n, DMQ_LOG_INFO, "joined through %.*s", (int)sender.n, sender.p);
    }
    return;
  }
  /* Over a stream the reply goes back on the same connection (one TCP
   * connection per exchange, not two); a push/pull that came as a
   * datagram (a requester without a stream transport, or the host
   * transport) is answered at the member's address, as a datagram. */
  const char *to = stream && from_addr != NULL
                       ? from_addr
                       : swim_reply_addr(n, sender, from_addr);
  if (to != NULL && reply)
    swim_send_pushpull_ex(n, to, DMQ__PP_REPLY,
                          !stream || !dmq__has_stream(n, to));
}

/* A datagram from the sender's own address: it is heard from itself. */
static void swim_heard(dmq_node_t *n, dmq__slice_t sender,
                       const char *from_addr) {
  dmq__member_t *m = dmq__member_find(n, sender.p, sender.n);
  if (m != NULL && !m->heard && strcmp(dmq__member_addr(m), from_addr) == 0)
    swim_mark_heard(n, m);
}

/* How far the sender of this ALIVE vouches for it (swim_make_room). */
static int swim_admit(dmq_node_t *n, const dmq__msg_t *msg, dmq__slice_t sender,
                      const char *from_addr, int stream) {
  if (swim_same(msg->name, sender))
    return stream || (from_addr != NULL &&
                      swim_same(msg->addr, sl(from_addr, strlen(from_addr))))
               ? SWIM_ADMIT_DIRECT
               : SWIM_ADMIT_NONE;
  if (n->nmembers < n->cfg.max_members || stream || from_addr == NULL)
    return SWIM_ADMIT_NONE; /* room, or no address to check */
  dmq__member_t *r = dmq__member_find(n, sender.p, sender.n);
  return r != NULL && r->heard && !r->is_self && r->state == DMQ_MEMBER_ALIVE &&
                 strcmp(dmq__member_addr(r), from_addr) == 0
             ? SWIM_ADMIT_VOUCHED
             : SWIM_ADMIT_NONE;
}

void dmq__swim_recv(dmq_node_t *n, const dmq__msg_t *msg, dmq__slice_t sender,
                    const char *from_addr, int stream) {
  switch (msg->type) {
  case DMQ__MSG_PING:
    swim_on_ping(n, msg, sender, from_addr, stream);
    break;
  case DMQ__MSG_PING_REQ:
    swim_on_ping_req(n, msg, sender, from_addr);
    break;
  case DMQ__MSG_ACK:
    swim_on_ack(n, msg);
    break;
  case DMQ__MSG_NACK:
    swim_on_nack(n, msg);
    break;
  case DMQ__MSG_ALIVE:
    swim_on_alive(n, msg->name, msg->addr, msg->incarnation, msg->generation,
                  msg->meta, &msg->chans, 0,
                  swim_admit(n, msg, sender, from_addr, stream));
    break;
  case DMQ__MSG_SUSPECT:
    swim_on_suspect(n, msg->name, msg->incarnation, msg->generation, msg->from,
                    0);
    break;
  case DMQ__MSG_DEAD:
    swim_on_dead(n, msg->name, msg->incarnation, msg->generation, 0);
    break;
  case DMQ__MSG_LEFT:
    swim_on_dead(n, msg->name, msg->incarnation, msg->generation, 1);
    break;
  case DMQ__MSG_PUSHPULL:
    swim_on_pushpull(n, msg, sender, from_addr, stream);
    break;
  case DMQ__MSG_DIGEST:
  case DMQ__MSG_DIFF:
    dmq__ae_recv(n, msg, sender, from_addr, stream);
    break;
  default:
    n->stats.drops[DMQ_DROP_UNKNOWN_TYPE]++;
    break;
  }
  /* after the message: it may have added the sender */
  if (!stream && from_addr != NULL)
    swim_heard(n, sender, from_addr);
}

/* ---------------------------------------------------------------------- */
/* timers                                                                  */

/* May gossip go to this member at all? */
static int swim_gossip_target_ok(const dmq_node_t *n, const dmq__member_t *c) {
  return !c->is_self && c->state != DMQ_MEMBER_LEFT &&
         !(c->state == DMQ_MEMBER_DEAD &&
           n->now - c->state_since > n->cfg.gossip_to_dead_ms);
}

/* A gossip target heard from itself (swim_scan_pick). */
static int swim_heard_target_ok(const dmq_node_t *n, const dmq__member_t *c,
                                const void *ctx) {
  (void)ctx;
  return c->heard && swim_gossip_target_ok(n, c);
}

static void swim_gossip_round(dmq_node_t *n) {
  if (n->bc_count == 0)
    return;
  uint32_t want = n->cfg.gossip_nodes;
  dmq__member_t *chosen[64];
  uint32_t nc = 0, hearsay = 0;
  /* a table mostly of members known only from hearsay (a flood of forged
   * ones): at most one of them per round, so that news (suspicions and
   * their confirmations) keeps reaching real members */
  int flooded = n->n_hearsay > 2 * (n->nmembers - n->n_hearsay) + 8;
  for (uint32_t tries = 0; nc < want && tries < 4 * want + 8; tries++) {
    if (n->nmembers < 2)
      break;
    dmq__member_t *c = n->members[dmq__rng_below(&n->rng, n->nmembers)];
    if (!swim_gossip_target_ok(n, c) || (flooded && !c->heard && hearsay > 0))
      continue;
    if (!swim_chosen(chosen, nc, c)) {
      chosen[nc++] = c;
      hearsay += !c->heard;
    }
  }
  /* flooded: random picks rarely land on the few members heard from
   * themselves, so the rest are drawn from those (swim_heard_pick) */
  if (flooded && nc < want && n->nmembers > 1)
    nc = swim_heard_pick(n, chosen, nc, want, swim_heard_target_ok, NULL);
  for (uint32_t i = 0; i < nc && n->bc_count > 0; i++) {
    dmq__enc_t e;
    swim_begin(n, &e);
    if (swim_fill_gossip(n, &e) == 0)
      break;
    uint32_t c = e.count;
    size_t len = dmq__enc_end(&e);
    dmq__send(n, dmq__member_addr(chosen[i]), n->txbuf, len, 0, c);
  }
}

static int swim_alive_heard_ok(const dmq_node_t *n, const dmq__member_t *c,
                               const void *ctx) {
  (void)n;
  (void)ctx;
  return !c->is_self && c->heard && c->state == DMQ_MEMBER_ALIVE;
}

/* A random dead member, or a random live one, heard from itself if there
 * is one (a whole table is not sent to an address known only from hearsay
 * while a member heard from itself exists: a joiner that has heard nobody
 * yet still spreads its push/pulls). */
static dmq__member_t *swim_random_member(dmq_node_t *n, int dead) {
  if (dead && n->n_live == n->nmembers)
    return NULL; /* nobody dead: no O(N) scan every reconnect period */
  if (!dead) {
    dmq__member_t *c = NULL;
    if (swim_heard_pick(n, &c, 0, 1, swim_alive_heard_ok, NULL) == 1)
      return c;
    if (n->heard_lost == 0 && n->n_hearsay_live == 0)
      return NULL; /* nobody else alive */
  }
  for (uint32_t tries = 0; dead && tries < 16 && n->nmembers > 1; tries++) {
    dmq__member_t *c = n->members[dmq__rng_below(&n->rng, n->nmembers)];
    if (!c->is_self && c->state == DMQ_MEMBER_DEAD)
      return c;
  }
  /* sparse: fall back to a scan from a random start */
  dmq__member_t *hearsay = NULL;
  uint32_t start = (uint32_t)dmq__rng_below(&n->rng, n->nmembers);
  for (uint32_t i = 0; i < n->nmembers; i++) {
    dmq__member_t *c = n->members[(start + i) % n->nmembers];
    if (c->is_self)
      continue;
    if (dead ? c->state == DMQ_MEMBER_DEAD
             : c->state == DMQ_MEMBER_ALIVE && c->heard)
      return c;
    if (!dead && c->state == DMQ_MEMBER_ALIVE && hearsay == NULL)
      hearsay = c;
  }
  return hearsay;
}

static int swim_has_addr(const dmq__member_t *m, const char *addr, size_t len) {
  return m->state <= DMQ_MEMBER_SUSPECT && m->addr_len == len &&
         memcmp(dmq__member_addr(m), addr, len) == 0;
}

/* Whether a live member has seed i's address: first the member where it
 * was found last time, else a pass over the table in memory order (every
 * reconnect period, per seed: once the cluster is settled the hint saves
 * an O(N) pass). */
static int swim_seed_is_alive(dmq_node_t *n, size_t i) {
  const char *seed = n->seeds[i];
  size_t len = strlen(seed);
  uint32_t h = n->seed_hint[i];
  if (h < n->nmembers && swim_has_addr(n->members[h], seed, len))
    return 1;
  dmq__member_iter_t it = DMQ__MEMBER_ITER_INIT;
  const dmq__member_t *m;
  while ((m = dmq__members_next(n, &it)) != NULL)
    if (swim_has_addr(m, seed, len)) {
      n->seed_hint[i] = m->idx;
      return 1;
    }
  return 0;
}

static void swim_join_attempt(dmq_node_t *n) {
  uint32_t sent = 0;
  for (size_t i = 0; i < n->nseeds; i++) {
    if (strcmp(n->seeds[i], n->addr) == 0)
      continue;
    swim_send_pushpull(n, n->seeds[i], DMQ__PP_JOIN);
    sent++;
  }
  if (sent == 0) {
    /* we are the only seed: we are the cluster */
    n->joining = 0;
    n->joined = 1;
    return;
  }
  uint64_t back = (uint64_t)n->cfg.join_retry_ms
                  << (n->join_attempt < 16 ? n->join_attempt : 16);
  if (back > n->cfg.join_retry_max_ms)
    back = n->cfg.join_retry_max_ms;
  /* +-25% jitter so that many joiners do not retry in lockstep */
  uint64_t jit = back / 2 > 0 ? dmq__rng_below(&n->rng, back / 2) : 0;
  n->next_join = n->now + back - back / 4 + jit;
  n->join_attempt++;
}

static void swim_reconnect(dmq_node_t *n) {
  for (size_t i = 0; i < n->nseeds; i++) {
    if (strcmp(n->seeds[i], n->addr) == 0 || swim_seed_is_alive(n, i))
      continue;
    swim_send_pushpull(n, n->seeds[i], 0);
  }
  dmq__member_t *d = swim_random_member(n, 1);
  if (d != NULL)
    swim_send_pushpull(n, dmq__member_addr(d), 0);
}

/* A dead or left member leaves the table: its REAPED event, then the
 * removal (the member listener frees what delivery kept for it). */
static void swim_forget(dmq_node_t *n, dmq__member_t *m) {
  dmq__emit(n, DMQ_EVENT_REAPED, m);
  dmq__member_remove(n, m);
}

static void swim_reap(dmq_node_t *n) {
  /* nobody dead or left, or nobody due yet: no O(N) scan every second */
  if (n->n_live == n->nmembers || n->now < n->reap_due)
    return;
  uint64_t due = DMQ_NEVER;
  for (uint32_t i = 0; i < n->nmembers;) {
    dmq__member_t *m = n->members[i];
    if (!m->is_self && m->state >= DMQ_MEMBER_DEAD) {
      if (n->now - m->state_since >= n->cfg.dead_retention_ms) {
        swim_forget(n, m);
        continue; /* the last member moved into slot i */
      }
      if (m->state_since + n->cfg.dead_retention_ms < due)
        due = m->state_since + n->cfg.dead_retention_ms;
    }
    i++;
  }
  n->reap_due = due;
}

int dmq_node_start(dmq_node_t *n, uint64_t now) {
  if (n == NULL)
    return DMQ_EINVAL;
  if (dmq__in_sync_cb(n))
    return DMQ_EBUSY;
  if (n->started)
    return DMQ_ESTATE;
  n->started = 1;
  n->now = now;
  n->self->state_since = now;
  uint64_t j = n->cfg.probe_interval_ms;
  /* spread the first probe and gossip so nodes started together do not
   * beat in step */
  n->next_probe = now + dmq__rng_below(&n->rng, j);
  n->next_gossip = now + dmq__rng_below(&n->rng, n->cfg.gossip_interval_ms);
  n->next_pushpull =
      n->cfg.pushpull_interval_ms
          ? now + n->cfg.pushpull_interval_ms / 2 +
                dmq__rng_below(&n->rng, n->cfg.pushpull_interval_ms / 2 + 1)
          : DMQ_NEVER;
  n->next_reconnect = n->cfg.reconnect_interval_ms
                          ? now + n->cfg.reconnect_interval_ms
                          : DMQ_NEVER;
  n->next_reap = now + SWIM_REAP_EVERY_MS;
  swim_bc_queue(n, n->self);
  dmq__wake(n);
  return 0;
}

static int swim_copy_seeds(dmq_node_t *n, const char *const *seeds, size_t ns) {
  if (seeds == NULL && ns > 0)
    return DMQ_EINVAL;
  if (ns > DMQ__MAX_SEEDS)
    return DMQ_ELIMIT;
  for (size_t i = 0; i < ns; i++) {
    if (seeds[i] == NULL || seeds[i][0] == '\0' ||
        strlen(seeds[i]) > DMQ_MAX_ADDR)
      return DMQ_EINVAL;
  }
  char *copy[DMQ__MAX_SEEDS];
  for (size_t i = 0; i < ns; i++) {
    size_t l = strlen(seeds[i]);
    copy[i] = dmq__malloc(n, l + 1);
    if (copy[i] == NULL) {
      while (i-- > 0)
        dmq__free(n, copy[i]);
      return DMQ_ENOMEM;
    }
    memcpy(copy[i], seeds[i], l + 1);
  }
  for (size_t i = 0; i < n->nseeds; i++)
    dmq__free(n, n->seeds[i]);
  if (ns > 0)
    memcpy(n->seeds, copy, ns * sizeof(char *));
  n->nseeds = ns;
  return 0;
}

int dmq_node_set_seeds(dmq_node_t *n, const char *const *seeds, size_t ns) {
  if (n == NULL)
    return DMQ_EINVAL;
  if (dmq__in_sync_cb(n))
    return DMQ_EBUSY;
  return swim_copy_seeds(n, seeds, ns);
}

int dmq_node_is_joined(const dmq_node_t *n) {
  return n != NULL && n->joined;
}

int dmq_node_join(dmq_node_t *n, const char *const *seeds, size_t ns,
                  uint64_t now) {
  if (n == NULL)
    return DMQ_EINVAL;
  if (n->in_callback || dmq__in_sync_cb(n))
    return DMQ_EBUSY;
  if (!n->started || n->leaving)
    return DMQ_ESTATE;
  int rc = swim_copy_seeds(n, seeds, ns);
  if (rc != 0)
    return rc;
  if (now > n->now)
    n->now = now;
  n->joining = 1;
  n->join_attempt = 0;
  n->next_join =
      n->now + (n->cfg.join_jitter_ms
                    ? dmq__rng_below(&n->rng, n->cfg.join_jitter_ms + 1)
                    : 0);
  if (n->next_join <= n->now)
    return dmq_node_tick(n, n->now);
  dmq__wake(n);
  return 0;
}

/* A graceful leave also goes straight to up to SWIM_LEAVE_DIRECT live
 * members (from a random place in the table), one small datagram each,
 * besides the gossip. Gossip alone sends it retransmit_mult * log10(N)
 * times from each member that has it: in a small cluster 4 times, and a
 * member that none of those picked kept the leaver alive until it
 * declared it dead or anti-entropy repaired it (sim, 10 members, 1 seed in
 * 1400: one member still saw it alive 7 s later). A leave happens once per
 * node: a datagram per member is cheap there, and in a larger cluster the
 * 64 it reaches directly each gossip it on. */
#define SWIM_LEAVE_DIRECT 64

static int swim_live_other_ok(const dmq_node_t *n, const dmq__member_t *c,
                              const void *ctx) {
  (void)n;
  (void)ctx;
  return !c->is_self && c->state <= DMQ_MEMBER_SUSPECT;
}

static void swim_tell_left(dmq_node_t *n) {
  dmq__member_t *to[SWIM_LEAVE_DIRECT];
  uint32_t nt = swim_scan_pick(n, n->members, n->nmembers, to, 0,
                               SWIM_LEAVE_DIRECT, swim_live_other_ok, NULL);
  for (uint32_t i = 0; i < nt; i++) {
    dmq__enc_t e; /* encoded for each: dmq__send seals txbuf in place */
    swim_begin(n, &e);
    if (swim_enc_update(n, &e, n->self) != 0)
      return;
    uint32_t c = e.count;
    size_t len = dmq__enc_end(&e);
    dmq__send(n, dmq__member_addr(to[i]), n->txbuf, len, 0, c);
  }
}

int dmq_node_leave(dmq_node_t *n, uint64_t now) {
  if (n == NULL)
    return DMQ_EINVAL;
  if (dmq__in_sync_cb(n))
    return DMQ_EBUSY;
  if (n->leaving)
    return DMQ_ESTATE;
  if (now > n->now)
    n->now = now;
  n->leaving = 1;
  n->joining = 0;
  swim_set_life(n, n->self, n->self->inc + 1, n->self->gen);
  swim_set_state(n, n->self, DMQ_MEMBER_LEFT);
  swim_bc_queue(n, n->self);
  /* tell a few members right away rather than waiting for a gossip tick */
  swim_gossip_round(n);
  swim_tell_left(n);
  return 0;
}

int dmq_node_forget(dmq_node_t *n, const char *name) {
  if (n == NULL || name == NULL)
    return DMQ_EINVAL;
  if (n->in_callback || dmq__in_sync_cb(n))
    return DMQ_EBUSY;
  size_t len = strnlen(name, DMQ_MAX_NAME + 1);
  dmq__member_t *m =
      len <= DMQ_MAX_NAME ? dmq__member_find(n, name, len) : NULL;
  if (m == NULL)
    return DMQ_ENOENT;
  if (m->is_self || m->state < DMQ_MEMBER_DEAD)
    return DMQ_ESTATE;
  swim_forget(n, m);
  dmq__flush_events(n);
  return 0;
}

int dmq_node_left_flushed(const dmq_node_t *n) {
  return n != NULL && n->leaving && n->self->bc_bucket < 0;
}

void dmq__self_changed(dmq_node_t *n) {
  if (n->leaving)
    return;
  swim_set_life(n, n->self, n->self->inc + 1, n->self->gen);
  swim_bc_queue(n, n->self);
}

int dmq_node_set_meta(dmq_node_t *n, const void *meta, size_t len,
                      uint64_t now) {
  if (n == NULL || (meta == NULL && len > 0))
    return DMQ_EINVAL;
  if (len > DMQ_MAX_META)
    return DMQ_ETOOBIG;
  if (dmq__in_sync_cb(n))
    return DMQ_EBUSY;
  if (n->leaving)
    return DMQ_ESTATE;
  int rc = dmq__member_set_meta(n, n->self, meta, len);
  if (rc < 0)
    return rc;
  if (now > n->now)
    n->now = now;
  if (rc == 1) {
    swim_set_life(n, n->self, n->self->inc + 1, n->self->gen);
    swim_bc_queue(n, n->self);
  }
  return 0;
}

/* The probe cycle: the join retry, the current probe's indirect step and
 * end, and the start of the next probe. */
static void swim_tick_probe(dmq_node_t *n, uint64_t now) {
  if (n->joining && now >= n->next_join)
    swim_join_attempt(n);
  if (n->probe.active) {
    if (!n->probe.acked && !n->probe.indirect_sent &&
        now >= n->probe.timeout_at)
      swim_probe_indirect(n);
    if (now >= n->probe.end_at)
      swim_probe_end(n);
  }
  if (!n->probe.active && now >= n->next_probe)
    swim_probe_start(n);
}

/* A suspicion nobody confirmed gets a last call when it runs out: one more
 * probe, carrying the suspicion (buddy system), and probe_timeout_ms to
 * answer it, before the verdict (unscaled by our local health: it bounds
 * a round trip, and a node whose own sends fail just sees the call go
 * unanswered). A member that raised a suspicion while it
 * could not send (its own probes failed, its gossip of the suspicion was
 * lost) held it alone, and when the suspect was not among its next probes
 * (a node back from a fault probes slowly, Lifeguard) it declared a live
 * member dead and told everyone (sim_scenarios
 * test_refutation_of_false_suspicion, 1 seed in 1400: seven members saw a
 * live one dead until it refuted). A suspicion others confirmed is
 * evidence enough. */
static int swim_last_call(dmq_node_t *n, dmq__member_t *m, uint64_t now) {
  dmq__suspicion_t *s = m->more->susp;
  if (s->nconf > 0 || s->last_call || n->leaving)
    return 0;
  s->last_call = 1;
  s->deadline = now + n->cfg.probe_timeout_ms; /* a round trip: unscaled */
  swim_send_ping(n, m, dmq__member_addr(m), ++n->seq);
  return 1;
}

/* Suspects whose suspicion timed out (and whose last call, if due one,
 * went unanswered) are declared dead. */
static void swim_tick_suspects(dmq_node_t *n, uint64_t now) {
  for (uint32_t i = 0; i < n->nsuspects;) {
    dmq__member_t *m = n->suspects[i];
    if (now >= m->more->susp->deadline && !swim_last_call(n, m, now)) {
      dmq__log(n, DMQ_LOG_INFO, "%s declared dead", m->name);
      swim_declare(n, m, DMQ_MEMBER_DEAD, m->inc);
      continue; /* slot i now holds another suspect */
    }
    i++;
  }
}

/* Relayed probes: the nack that is due, and the relays that expired. */
static void swim_tick_relays(dmq_node_t *n, uint64_t now) {
  for (int i = 0; n->nrelays > 0 && i < DMQ__MAX_RELAYS; i++) {
    dmq__relay_t *r = &n->relays[i];
    if (!r->used)
      continue;
    if (r->nack_at != 0 && now >= r->nack_at) {
      r->nack_at = 0;
      if (r->want_nack)
        swim_send_nack(n, r->origin, r->origin_seq);
    }
    if (now >= r->expire_at) {
      r->used = 0;
      n->nrelays--;
    }
  }
}

/* Dissemination: the gossip round, the periodic push-pull and the
 * push-pulls of the join boost. */
static void swim_tick_spread(dmq_node_t *n, uint64_t now) {
  if (now >= n->next_gossip) {
    swim_gossip_round(n);
    n->next_gossip += n->cfg.gossip_interval_ms;
    if (n->next_gossip <= now)
      n->next_gossip = now + n->cfg.gossip_interval_ms;
  }
  if (now >= n->next_pushpull) {
    dmq__member_t *m = n->leaving ? NULL : swim_random_member(n, 0);
    if (m != NULL)
      dmq__ae_round(n, m, 0);
    n->next_pushpull = now + n->cfg.pushpull_interval_ms;
  }
  if (n->boost_left > 0 && now >= n->next_boost) {
    dmq__member_t *m = NULL;
    if (n->boost_left == SWIM_JOIN_BOOST_ROUNDS)
      m = dmq__member_find(n, n->join_via, strlen(n->join_via));
    if (m == NULL || m->is_self || m->state != DMQ_MEMBER_ALIVE)
      m = swim_random_member(n, 0);
    if (n->leaving)
      m = NULL;
    if (m != NULL)
      dmq__ae_round(n, m, DMQ__AE_BOOST);
    n->boost_left--;
    n->next_boost = now + (((uint64_t)n->cfg.probe_interval_ms / 4)
                           << (SWIM_JOIN_BOOST_ROUNDS - n->boost_left));
  }
  if (n->next_extra != 0 && now >= n->next_extra) {
    n->next_extra = 0;
    dmq__member_t *m = n->leaving ? NULL : swim_random_member(n, 0);
    if (m != NULL)
      dmq__ae_round(n, m, DMQ__AE_BOOST_ADDED);
  }
}

/* The boost's back-off assumes each round leaves our view nearly
 * complete. When a round's peer still had a different table, the members
 * that joined with us are still spreading: one more round (to another
 * random member) comes a quarter probe period from now, on top of the
 * schedule, which is kept: a later scheduled round is what repairs a view
 * that an added round found "in sync" with a peer missing the same
 * members. At most SWIM_JOIN_BOOST_EXTRA are added, one pending at a
 * time. */
void dmq__swim_boost_differs(dmq_node_t *n) {
  if (n->leaving || !n->joined || n->next_extra != 0 ||
      n->boost_extra >= SWIM_JOIN_BOOST_EXTRA)
    return;
  n->boost_extra++;
  n->next_extra = n->now + n->cfg.probe_interval_ms / 4;
}

/* Housekeeping: reconnecting to dead members and reaping. */
static void swim_tick_upkeep(dmq_node_t *n, uint64_t now) {
  if (now >= n->next_reconnect) {
    /* not while a join is under way (it retries by itself); a node that
     * never joined, the first of a cluster, reconnects too: it missed the
     * refutations that went round while it was cut off as much as anyone
     * (sim, test_two_way_partition_then_heal, DMQ_SIM_SEED=7: the first
     * node saw one member dead for 29 s after the heal) */
    if (!n->leaving && !n->joining)
      swim_reconnect(n);
    n->next_reconnect = now + n->cfg.reconnect_interval_ms;
  }
  if (now >= n->next_reap) {
    swim_reap(n);
    /* An event log grown by a burst is given back once it is empty at a
     * reap: most of the time a node has no events at all. */
    if (n->nevents == 0 && n->ev_cap > DMQ__EVENTS_KEEP) {
      dmq__free(n, n->events);
      n->events = NULL;
      n->ev_cap = 0;
    }
    n->next_reap = now + SWIM_REAP_EVERY_MS;
  }
}

void dmq__swim_tick(dmq_node_t *n) {
  uint64_t now = n->now;
  swim_tick_probe(n, now);
  swim_tick_suspects(n, now);
  swim_tick_relays(n, now);
  swim_tick_spread(n, now);
  dmq__ae_tick(n);
  swim_tick_upkeep(n, now);
}

static uint64_t swim_min(uint64_t a, uint64_t b) {
  return a < b ? a : b;
}

uint64_t dmq__swim_deadline(const dmq_node_t *n) {
  /* next_reap is not a deadline of its own: reaping and buffer trimming
   * ride on the next tick after it (at least one per probe period), which
   * saves a wake-up per node per second. */
  uint64_t d = DMQ_NEVER;
  if (n->joining)
    d = swim_min(d, n->next_join);
  if (n->probe.active) {
    if (!n->probe.acked && !n->probe.indirect_sent)
      d = swim_min(d, n->probe.timeout_at);
    d = swim_min(d, n->probe.end_at);
  } else {
    d = swim_min(d, n->next_probe);
  }
  for (uint32_t i = 0; i < n->nsuspects; i++)
    d = swim_min(d, n->suspects[i]->more->susp->deadline);
  for (int i = 0; n->nrelays > 0 && i < DMQ__MAX_RELAYS; i++) {
    const dmq__relay_t *r = &n->relays[i];
    if (!r->used)
      continue;
    if (r->nack_at)
      d = swim_min(d, r->nack_at);
    d = swim_min(d, r->expire_at);
  }
  if (n->bc_count > 0)
    d = swim_min(d, n->next_gossip);
  d = swim_min(d, n->next_pushpull);
  d = swim_min(d, n->next_reconnect);
  if (n->boost_left > 0)
    d = swim_min(d, n->next_boost);
  if (n->next_extra != 0)
    d = swim_min(d, n->next_extra);
  return swim_min(d, dmq__ae_deadline(n));
}

static int swim_ptr_cmp(const void *a, const void *b) {
  uintptr_t x = (uintptr_t) * (dmq__member_t *const *)a;
  uintptr_t y = (uintptr_t) * (dmq__member_t *const *)b;
  return x < y ? -1 : x > y;
}

int dmq__swim_check(dmq_node_t *n) {
  uint32_t heard = 0;
  for (uint32_t i = 0; i < n->nmembers; i++) {
    const dmq__member_t *m = n->members[i];
    heard += m->heard && !m->is_self;
    if (!m->is_self && m->state >= DMQ_MEMBER_DEAD &&
        m->state_since + n->cfg.dead_retention_ms < n->reap_due)
      return -1; /* it would be reaped late */
  }
  if (heard != n->heard_n + n->heard_lost || n->heard_pos > n->heard_n)
    return -1;
  for (uint32_t i = 0; i < n->heard_n; i++) {
    const dmq__member_t *m = n->heard_v[i];
    if (m->idx >= n->nmembers || n->members[m->idx] != m || !m->heard ||
        m->is_self)
      return -1;
  }
  if (n->heard_n < 2)
    return 0;
  dmq__member_t **v = dmq__malloc(n, sizeof(*v) * n->heard_n);
  if (v == NULL)
    return 0; /* the rest unchecked */
  memcpy(v, n->heard_v, sizeof(*v) * n->heard_n);
  qsort(v, n->heard_n, sizeof(*v), swim_ptr_cmp);
  int rc = 0;
  for (uint32_t i = 1; i < n->heard_n && rc == 0; i++)
    if (v[i] == v[i - 1])
      rc = -1; /* listed twice */
  dmq__free(n, v);
  return rc;
}

void dmq__swim_member_removed(dmq_node_t *n, dmq__member_t *m) {
  if (!m->heard && !m->is_self) {
    n->n_hearsay--;
    if (m->state <= DMQ_MEMBER_SUSPECT)
      n->n_hearsay_live--;
  } else if (m->heard) {
    swim_heard_drop(n, m);
  }
  swim_bc_remove(n, m);
  swim_suspicion_clear(n, m);
}
