/* libdmq - digest anti-entropy, sans-I/O.
 *
 * Every pushpull_interval_ms (and in the join boost) a member starts one
 * exchange with a random live member:
 *
 *   A -> B  DIGEST  k = 0: the root (8 bytes) and A's live-member count
 *   B -> A  DIGEST  REPLY; k = 0 when B's root is the same (in sync: two
 *                   small datagrams, whatever N), else 2^k bucket sums
 *   A -> B  DIFF    the buckets whose sums differ, and A's records in them
 *   B -> A  DIFF    REPLY: B's records in the same buckets (after merging
 *                   A's)
 *
 * A member's hash mixes its name hash, generation and incarnation; a
 * bucket's sum is the sum of the hashes of its live members (alive or
 * suspect: a suspicion is transient and is spread by gossip; the dead and
 * left, reaped at different times by different members, are left out of
 * the sums but sent in the records of a differing bucket). The sums are
 * additive, so the root is the sum of the buckets whatever k; each node
 * keeps them up to date as its table changes (below), so an exchange costs
 * O(2^k), not a pass over the table, and no per-member state is kept for
 * it.
 *
 * Bounds: every inbound DIGEST or DIFF causes at most one reply, and the
 * replies count in the membership layer's budget of replies per inbound
 * packet (dmq__swim_reply_ok: 4), so a compound packet of many DIGESTs or
 * DIFFs gets at most 4 answers, the rest counted RATE_LIMITED. B compares
 * tables only with members it knows alive or suspect; to anyone else it
 * answers a DIGEST with NOT_MEMBER (a datagram of the request's size), and A
 * sends a full push/pull, which is what teaches B about A. A DIFF from a
 * non-member is dropped (DMQ_DROP_UNKNOWN_SENDER);
 * A sends a DIFF only for the DIGEST reply it is waiting for, once. A
 * DIGEST's k is at most DMQ__AE_MAX_K (the work per message is O(2^k)
 * from the kept sums, below).
 *
 * Compatibility: a peer of before skips DIGEST (an unknown type) and never
 * answers; when no reply has come within a quarter of the anti-entropy
 * interval (at least a probe interval), A sends the DIGEST again on the
 * reliable class (a lost datagram is the usual cause), and after one more
 * probe interval without a reply a full push/pull to the same peer. Joins and
 * partition healing (reconnect) stay full push/pulls: the other side may know
 * nothing of us.
 */
#include <string.h>

#include "antientropy.h"
#include "members.h"
#include "swim.h"

/* Members per bucket the replier aims at when choosing k. */
#define AE_PER_BUCKET 8
/* Back-off of the exchanges brought forward after differing ones: at most
 * 2^this probe intervals (beyond the anti-entropy interval anyway). */
#define AE_FOLLOW_UP_MAX_SHIFT 16

static uint64_t ae_mix(uint64_t x) {
  /* splitmix64's finaliser */
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

static uint32_t ae_bucket_of(uint64_t name_hash, uint8_t k) {
  if (k == 0)
    return 0;
  return (uint32_t)(ae_mix(name_hash ^ 0x6a09e667f3bcc909ULL) >> (64 - k));
}

uint32_t dmq__ae_bucket(const char *name, size_t len, uint8_t k) {
  return ae_bucket_of(dmq__hash(name, len), k);
}

static uint64_t ae_member_hash(const dmq__member_t *m, uint64_t name_hash) {
  return ae_mix(name_hash ^
                ae_mix(m->gen ^ ae_mix(m->inc + 0x3c6ef372fe94f82bULL)));
}

/* ---- the sums, kept as the table changes ----
 *
 * A node keeps its digest's bucket sums at one resolution, 2^ae_sum_k
 * buckets, and updates them at every change of a member's liveness,
 * incarnation or generation (swim.c brackets each one with
 * dmq__ae_member_out and dmq__ae_member_in). A digest of k <= ae_sum_k
 * buckets adds up runs of them (a bucket is the top bits of a hash, so
 * bucket b of 2^k is buckets b << (ae_sum_k - k) onwards); a larger k
 * (asked for by a peer with a much larger table) takes a pass over the
 * table. The resolution follows the table, about AE_PER_BUCKET live
 * members per bucket up to DMQ__AE_MAX_K (8 bytes per 8 members), and one
 * pass rebuilds it when the table outgrows it. Computing the sums by a pass
 * for every exchange made each exchange O(N) on both sides, and the eight
 * exchanges of every member's join boost O(N^2) for the cluster. */

static void ae_pass(const dmq_node_t *n, uint8_t k, uint64_t *sums) {
  memset(sums, 0, sizeof(*sums) << k);
  /* in memory order: the sums do not depend on it, and it reads the
   * table sequentially */
  dmq__member_iter_t it = DMQ__MEMBER_ITER_INIT;
  const dmq__member_t *m;
  while ((m = dmq__members_next(n, &it)) != NULL) {
    if (m->state > DMQ_MEMBER_SUSPECT)
      continue;
    uint64_t h = dmq__hash(m->name, m->name_len);
    sums[ae_bucket_of(h, k)] += ae_member_hash(m, h);
  }
}

static void ae_account(dmq_node_t *n, const dmq__member_t *m, int add) {
  if (m->state > DMQ_MEMBER_SUSPECT)
    return;
  uint64_t h = dmq__hash(m->name, m->name_len);
  uint64_t v = ae_member_hash(m, h);
  uint64_t *s = &n->ae_sum[ae_bucket_of(h, n->ae_sum_k)];
  *s = add ? *s + v : *s - v;
}

void dmq__ae_member_in(dmq_node_t *n, const dmq__member_t *m) {
  ae_account(n, m, 1);
}

void dmq__ae_member_out(dmq_node_t *n, const dmq__member_t *m) {
  ae_account(n, m, 0);
}

void dmq__ae_init(dmq_node_t *n) {
  n->ae_sum = n->ae_sum_inline;
  n->ae_sum_k = DMQ__AE_SUM_INLINE_K;
  memset(n->ae_sum_inline, 0, sizeof(n->ae_sum_inline));
}

void dmq__ae_free(dmq_node_t *n) {
  if (n->ae_sum != n->ae_sum_inline)
    dmq__free(n, n->ae_sum);
  dmq__ae_init(n);
}

/* A finer resolution once the table has outgrown this one (an allocation
 * that fails keeps the one there is: larger digests then take a pass). */
static void ae_resize(dmq_node_t *n) {
  uint8_t k = n->ae_sum_k;
  while (k < DMQ__AE_MAX_K && ((uint64_t)AE_PER_BUCKET << k) < n->n_live)
    k++;
  if (k == n->ae_sum_k)
    return;
  uint64_t *s = dmq__malloc(n, sizeof(*s) << k);
  if (s == NULL)
    return;
  ae_pass(n, k, s);
  if (n->ae_sum != n->ae_sum_inline)
    dmq__free(n, n->ae_sum);
  n->ae_sum = s;
  n->ae_sum_k = k;
}

uint32_t dmq__ae_sums(dmq_node_t *n, uint8_t k, uint64_t *sums) {
  ae_resize(n);
  if (k > n->ae_sum_k) {
    ae_pass(n, k, sums);
    return n->n_live;
  }
  size_t run = (size_t)1 << (n->ae_sum_k - k);
  for (size_t b = 0; b < ((size_t)1 << k); b++) {
    uint64_t v = 0;
    for (size_t j = 0; j < run; j++)
      v += n->ae_sum[b * run + j];
    sums[b] = v;
  }
  return n->n_live;
}

int dmq__ae_sums_check(dmq_node_t *n) {
  uint64_t *s = dmq__malloc(n, sizeof(*s) << n->ae_sum_k);
  if (s == NULL)
    return 0;
  ae_pass(n, n->ae_sum_k, s);
  int ok = memcmp(s, n->ae_sum, sizeof(*s) << n->ae_sum_k) == 0;
  dmq__free(n, s);
  uint32_t live = 0, suspect = 0;
  dmq__member_iter_t it = DMQ__MEMBER_ITER_INIT;
  const dmq__member_t *m;
  while ((m = dmq__members_next(n, &it)) != NULL) {
    live += m->state <= DMQ_MEMBER_SUSPECT;
    suspect += m->state == DMQ_MEMBER_SUSPECT;
  }
  return ok && live == n->n_live && suspect == n->nsuspects ? 0 : -1;
}

static void ae_put64(uint8_t *p, uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8)
    p[i] = (uint8_t)v;
}

static uint64_t ae_get64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = v << 8 | p[i];
  return v;
}

/* The sender, if it is a live member other than us. */
static dmq__member_t *ae_peer(dmq_node_t *n, dmq__slice_t sender) {
  dmq__member_t *m = dmq__member_find(n, sender.p, sender.n);
  if (m == NULL || m->is_self || m->state > DMQ_MEMBER_SUSPECT)
    return NULL;
  return m;
}

/* The largest k whose DIGEST still fits a datagram of mtu bytes, and no
 * larger than needed for about AE_PER_BUCKET members per bucket. */
static uint8_t ae_pick_k(dmq_node_t *n, uint32_t members, size_t mtu) {
  uint8_t k = 1;
  while (k < DMQ__AE_MAX_K && ((uint64_t)AE_PER_BUCKET << k) < members)
    k++;
  size_t head = dmq__enc_size_envelope(strlen(n->name)) + dmq__node_overhead(n);
  while (k > 1 && head + dmq__enc_size_digest(k, members) > mtu)
    k--;
  return k;
}

static void ae_send_digest(dmq_node_t *n, const char *to, int reliable,
                           uint8_t flags, uint8_t k, uint32_t count,
                           const uint64_t *sums) {
  uint8_t *h = dmq__malloc(n, (size_t)8 << k);
  if (h == NULL) {
    n->stats.drops[DMQ_DROP_TX_FAILED]++;
    return;
  }
  for (size_t b = 0; b < ((size_t)1 << k); b++)
    ae_put64(h + 8 * b, sums[b]);
  dmq__enc_t e;
  dmq__node_enc_begin(n, &e, n->txbuf, n->cfg.mtu);
  if (dmq__enc_digest(&e, flags, k, count, h) == 0) {
    size_t len = dmq__enc_end(&e);
    dmq__send(n, to, n->txbuf, len, reliable, 1);
  } else {
    n->stats.drops[DMQ_DROP_TX_FAILED]++;
  }
  dmq__free(n, h);
}

static int ae_in_mask(const dmq__member_t *m, const uint8_t *mask, uint8_t k) {
  uint32_t b = dmq__ae_bucket(m->name, m->name_len, k);
  return (mask[b / 8] >> (b % 8)) & 1;
}

/* Our records of the buckets in mask (2^k buckets) as a DIFF to `to`: as a
 * datagram when it fits one (or no stream reaches `to`: then as many
 * records as fit, from a random place on, and the next exchange sends
 * more), else over the reliable class. skip_echo (a DIFF reply): the
 * members marked ae_echo are left out, the requester sent them as we hold
 * them. Every mark is cleared, in the mask or not. */
static void ae_send_diff(dmq_node_t *n, const char *to, int stream_only,
                         uint8_t flags, uint8_t k, const uint8_t *mask,
                         int skip_echo) {
  size_t need = dmq__enc_size_envelope(strlen(n->name)) +
                dmq__node_overhead(n) + 32 + (((size_t)1 << k) + 7) / 8;
  /* one pass over the table picks the records (each member is read and
   * hashed once: at 10000 members a DIFF's pass was most of its cost) */
  const dmq__member_t **sel =
      n->nmembers > 0 ? dmq__malloc(n, sizeof(*sel) * n->nmembers) : NULL;
  uint32_t nsel = 0;
  for (uint32_t i = 0; i < n->nmembers; i++) {
    dmq__member_t *m = n->members[i];
    int echo = m->ae_echo;
    m->ae_echo = 0;
    if (sel == NULL || (echo && skip_echo) || !ae_in_mask(m, mask, k))
      continue;
    need += dmq__member_record_size(m);
    sel[nsel++] = m;
  }
  size_t mtu = stream_only ? 0 : dmq__datagram_mtu(n, to);
  int reliable = stream_only || (need > mtu && dmq__has_stream(n, to));
  size_t cap = reliable ? need : mtu;
  if (reliable && cap > n->cfg.max_packet)
    cap = n->cfg.max_packet;
  uint8_t *buf = cap > 0 && sel != NULL ? dmq__malloc(n, cap) : NULL;
  dmq__enc_t e;
  size_t rec_pos = 0;
  if (buf == NULL || dmq__node_enc_begin(n, &e, buf, cap) != 0 ||
      dmq__enc_diff_begin(&e, flags, k, mask, &rec_pos) != 0) {
    n->stats.drops[DMQ_DROP_TX_FAILED]++;
    dmq__free(n, buf);
    dmq__free(n, sel);
    return;
  }
  uint32_t nrec = 0;
  uint32_t first = nsel > 0 ? (uint32_t)dmq__rng_below(&n->rng, nsel) : 0;
  for (uint32_t j = 0; j < nsel; j++) {
    if (dmq__member_enc(&e, sel[(first + j) % nsel]) == 0)
      nrec++;
    else if (!reliable)
      break; /* the datagram is full */
  }
  dmq__enc_diff_end(&e, rec_pos, nrec);
  size_t len = dmq__enc_end(&e);
  dmq__send(n, to, buf, len, reliable, 1);
  dmq__free(n, buf);
  dmq__free(n, sel);
}

/* The ae_echo marks of a DIFF request that is not answered, cleared. */
static void ae_clear_echo(dmq_node_t *n) {
  for (uint32_t i = 0; i < n->nmembers; i++)
    n->members[i]->ae_echo = 0;
}

/* How long an exchange waits for the DIGEST reply. As a datagram: a
 * quarter of the anti-entropy interval (at least a probe interval), long
 * enough that an overloaded peer's late answer is not taken for silence,
 * short enough to repair before the next round. On the reliable class
 * (the boost's, or the retry of a datagram): a probe interval, nothing
 * was lost unless the peer is gone or of before. */
static uint64_t ae_wait_ms(const dmq_node_t *n, int reliable) {
  uint64_t wait = reliable ? 0 : n->cfg.pushpull_interval_ms / 4;
  return wait < n->cfg.probe_interval_ms ? n->cfg.probe_interval_ms : wait;
}

/* The request that starts an exchange: our root and live count. */
static void ae_send_root(dmq_node_t *n, const char *to, int reliable) {
  uint64_t root;
  uint32_t count = dmq__ae_sums(n, 0, &root);
  ae_send_digest(n, to, reliable, 0, 0, count, &root);
}

void dmq__ae_round(dmq_node_t *n, dmq__member_t *peer, int boost) {
  if (n->ae_off || dmq__datagram_mtu(n, dmq__member_addr(peer)) == 0) {
    dmq__swim_send_pushpull(n, dmq__member_addr(peer));
    return;
  }
  /* A join's boost exchanges go on the reliable class, like the push/pulls
   * they replace: the views merge in the first seconds after a join, and a
   * lost datagram there costs seconds of convergence (sim, fast profile,
   * 300 members, 5 % loss: 3.3 s instead of 0.85 s). The periodic ones go
   * as datagrams: a loss only delays a repair to the retry on the
   * reliable class (dmq__ae_tick). */
  ae_send_root(n, dmq__member_addr(peer), boost != 0);
  uint64_t wait = ae_wait_ms(n, boost != 0);
  /* the peer's slot, else a free one, else the one due first */
  int slot = -1, free_slot = -1, first = 0;
  for (int i = 0; i < DMQ__AE_SLOTS; i++) {
    if (n->ae_wait[i].deadline == 0) {
      if (free_slot < 0)
        free_slot = i;
    } else if (strcmp(n->ae_wait[i].peer, peer->name) == 0) {
      slot = i;
    } else if (n->ae_wait[i].deadline < n->ae_wait[first].deadline ||
               n->ae_wait[first].deadline == 0) {
      first = i;
    }
  }
  if (slot < 0)
    slot = free_slot >= 0 ? free_slot : first;
  if (n->ae_wait[slot].deadline == 0)
    n->ae_pending++;
  n->ae_wait[slot].deadline = n->now + wait;
  n->ae_wait[slot].boost = boost;
  n->ae_wait[slot].reliable = boost != 0;
  memcpy(n->ae_wait[slot].peer, peer->name, (size_t)peer->name_len + 1);
}

void dmq__ae_tick(dmq_node_t *n) {
  for (int i = 0; n->ae_pending > 0 && i < DMQ__AE_SLOTS; i++) {
    if (n->ae_wait[i].deadline == 0 || n->now < n->ae_wait[i].deadline)
      continue;
    const char *name = n->ae_wait[i].peer;
    dmq__member_t *m = dmq__member_find(n, name, strlen(name));
    int live = !n->leaving && m != NULL && !m->is_self &&
               m->state <= DMQ_MEMBER_SUSPECT;
    /* A DIGEST that went as a datagram is sent again on the reliable
     * class first: a lost datagram (or its lost reply) is the usual cause,
     * and the full push/pull that used to follow at once carries both
     * whole tables, O(N) bytes per member for a 2 % chance per exchange
     * at 1 % loss (sim, 5 % loss: 260 B/member/s at N = 500, 914 at
     * 2000, all but 150 of it these push/pulls). A peer of before, which
     * never answers a DIGEST, gets the push/pull one wait later. */
    if (live && !n->ae_wait[i].reliable &&
        dmq__has_stream(n, dmq__member_addr(m))) {
      ae_send_root(n, dmq__member_addr(m), 1);
      n->ae_wait[i].reliable = 1;
      n->ae_wait[i].deadline = n->now + ae_wait_ms(n, 1);
      continue;
    }
    n->ae_wait[i].deadline = 0;
    n->ae_pending--;
    if (live)
      dmq__swim_send_pushpull(n, dmq__member_addr(m));
  }
}

uint64_t dmq__ae_deadline(const dmq_node_t *n) {
  uint64_t d = DMQ_NEVER;
  for (int i = 0; n->ae_pending > 0 && i < DMQ__AE_SLOTS; i++)
    if (n->ae_wait[i].deadline != 0 && n->ae_wait[i].deadline < d)
      d = n->ae_wait[i].deadline;
  return d;
}

/* The slot waiting for sender's DIGEST reply, freed; -1 if none. */
static int ae_take_wait(dmq_node_t *n, dmq__slice_t sender) {
  for (int i = 0; n->ae_pending > 0 && i < DMQ__AE_SLOTS; i++) {
    if (n->ae_wait[i].deadline != 0 && strlen(n->ae_wait[i].peer) == sender.n &&
        memcmp(n->ae_wait[i].peer, sender.p, sender.n) == 0) {
      n->ae_wait[i].deadline = 0;
      n->ae_pending--;
      return i;
    }
  }
  return -1;
}

/* The 2^k sums of the message's bin. */
static uint64_t ae_their_root(const dmq__msg_t *msg) {
  uint64_t root = 0;
  for (size_t b = 0; b < ((size_t)1 << msg->ae_k); b++)
    root += ae_get64((const uint8_t *)msg->ae_bin.p + 8 * b);
  return root;
}

/* B: a DIGEST asking for an exchange. */
static void ae_on_digest(dmq_node_t *n, const dmq__msg_t *msg, const char *to,
                         int stream) {
  uint64_t root;
  uint32_t count = dmq__ae_sums(n, 0, &root);
  if (root == ae_their_root(msg)) {
    ae_send_digest(n, to, stream, DMQ__AE_REPLY, 0, count, &root);
    return;
  }
  uint32_t most = count > msg->ae_count ? count : msg->ae_count;
  size_t mtu = stream ? n->cfg.mtu : dmq__datagram_mtu(n, to);
  uint8_t k = ae_pick_k(n, most, mtu);
  uint64_t *sums = dmq__malloc(n, sizeof(*sums) << k);
  if (sums == NULL) {
    n->stats.drops[DMQ_DROP_TX_FAILED]++;
    return;
  }
  dmq__ae_sums(n, k, sums);
  ae_send_digest(n, to, stream, DMQ__AE_REPLY, k, count, sums);
  dmq__free(n, sums);
}

/* The tables differed: the next exchange (with another random member) is
 * brought forward, to one probe interval from now after the first
 * differing exchange, then 2, 4, 8... intervals (until that is no sooner
 * than the periodic one), starting over once an exchange finds the tables
 * in sync. A burst join leaves a few members missing a few others under
 * loss (their gossip was lost); waiting a whole anti-entropy interval to
 * repair them was the tail of the burst join (sim, 300 members, 5 % loss:
 * 5.5-8.9 s instead of 0.9 s for 9 of 16 seeds; cluster_bench, 1000
 * members: 30-45 s). The back-off bounds what a table that keeps changing
 * costs: about log2(pushpull_interval / probe_interval) extra exchanges
 * per interval. In sync, nothing changes: two small datagrams per
 * interval. */
static void ae_follow_up(dmq_node_t *n, int advance) {
  uint32_t shift = n->ae_followups < AE_FOLLOW_UP_MAX_SHIFT
                       ? n->ae_followups
                       : AE_FOLLOW_UP_MAX_SHIFT;
  uint64_t soon = n->now + ((uint64_t)n->cfg.probe_interval_ms << shift);
  if (advance && n->ae_followups < UINT8_MAX)
    n->ae_followups++;
  if (soon < n->next_pushpull)
    n->next_pushpull = soon;
}

/* A: the DIGEST reply of the exchange we started. */
static void ae_on_digest_reply(dmq_node_t *n, const dmq__msg_t *msg,
                               const char *to, int stream, int boost) {
  uint8_t k = msg->ae_k;
  if (k == 0) {
    n->ae_followups = 0;
    return; /* in sync (or changed since: the next exchange will see) */
  }
  /* A round of the join boost adds one (swim.c); an added round does not
   * advance the follow-ups' back-off, which would otherwise reach the
   * periodic interval after a burst join's eight differing rounds. */
  if (boost)
    dmq__swim_boost_differs(n);
  ae_follow_up(n, boost != DMQ__AE_BOOST_ADDED);
  uint64_t *sums = dmq__malloc(n, sizeof(*sums) << k);
  uint8_t *mask = dmq__malloc(n, (((size_t)1 << k) + 7) / 8);
  if (sums == NULL || mask == NULL) {
    n->stats.drops[DMQ_DROP_TX_FAILED]++;
  } else {
    dmq__ae_sums(n, k, sums);
    memset(mask, 0, (((size_t)1 << k) + 7) / 8);
    uint32_t ndiff = 0;
    for (size_t b = 0; b < ((size_t)1 << k); b++) {
      if (sums[b] != ae_get64((const uint8_t *)msg->ae_bin.p + 8 * b)) {
        mask[b / 8] |= (uint8_t)(1u << (b % 8));
        ndiff++;
      }
    }
    if (ndiff > 0)
      ae_send_diff(n, to, stream, 0, k, mask, 0);
  }
  dmq__free(n, sums);
  dmq__free(n, mask);
}

void dmq__ae_recv(dmq_node_t *n, const dmq__msg_t *msg, dmq__slice_t sender,
                  const char *from_addr, int stream) {
  if (n->ae_off) {
    n->stats.drops[DMQ_DROP_UNKNOWN_TYPE]++; /* as a node of before */
    return;
  }
  dmq__member_t *peer = ae_peer(n, sender);
  int reply = (msg->flag & DMQ__AE_REPLY) != 0;
  if (peer == NULL && msg->type == DMQ__MSG_DIGEST && !reply &&
      from_addr != NULL) {
    if (!dmq__swim_reply_ok(n))
      return;
    /* we cannot compare tables with a stranger: tell it at once (one
     * datagram of the request's size, to where it came from), so it sends
     * a full push/pull now rather than at its fallback deadline */
    uint64_t zero = 0;
    ae_send_digest(n, from_addr, stream, DMQ__AE_REPLY | DMQ__AE_NOT_MEMBER, 0,
                   0, &zero);
    return;
  }
  if (peer == NULL) {
    n->stats.drops[DMQ_DROP_UNKNOWN_SENDER]++;
    return;
  }
  /* On a stream, answer over the connection the message came in on. */
  const char *to =
      stream && from_addr != NULL ? from_addr : dmq__member_addr(peer);
  if (msg->type == DMQ__MSG_DIGEST) {
    if (!reply) {
      if (dmq__swim_reply_ok(n))
        ae_on_digest(n, msg, to, stream);
      return;
    }
    /* only the answer we wait for, once: a replayed or unsolicited reply
     * makes us send nothing. Over the reply budget the wait is kept: its
     * fallback push/pull follows. */
    int slot;
    if (!dmq__swim_reply_ok(n) || (slot = ae_take_wait(n, sender)) < 0)
      return;
    if (msg->flag & DMQ__AE_NOT_MEMBER) {
      if (!n->leaving)
        dmq__swim_send_pushpull(n, dmq__member_addr(peer));
      return;
    }
    ae_on_digest_reply(n, msg, to, stream, n->ae_wait[slot].boost);
    return;
  }
  /* DIFF: merge the records; a request is answered with ours for the same
   * buckets */
  dmq__swim_apply_records(n, msg, sender, 0, !reply);
  if (reply)
    return;
  if (!n->leaving && dmq__swim_reply_ok(n))
    ae_send_diff(n, to, stream, DMQ__AE_REPLY, msg->ae_k,
                 (const uint8_t *)msg->ae_bin.p, 1);
  else
    ae_clear_echo(n);
}
