/* libdmq - the member table and each member's gossiped state (members.c):
 * used by membership (swim.c), delivery and the node. */
#ifndef DMQ_MEMBERS_H
#define DMQ_MEMBERS_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"
#include "wire.h"

/* A member and what the cluster gossips about it. */
typedef struct dmq__suspicion {
  uint64_t start;    /* when the suspicion began */
  uint64_t deadline; /* when it turns into death */
  uint64_t min_ms, max_ms;
  uint32_t k;                      /* confirmations expected */
  uint32_t nconf;                  /* independent confirmations received */
  uint64_t conf[DMQ__MAX_CONFIRM]; /* name hashes of confirmers */
  char from[DMQ_MAX_NAME + 1];     /* who raised it (gossiped along) */
  uint32_t idx;                    /* the member's place in node->suspects */
  uint8_t last_call; /* the last probe before the verdict was sent (swim.c) */
} dmq__suspicion_t;

/* What few members have: metadata, channels, delivery state, a suspicion,
 * an address longer than the room left in the member's slot.
 * Allocated when the first of them is set (dmq__member_more), freed with
 * the member or once empty (dmq__member_more_trim): in a table of
 * thousands most members have none of it, and every byte of a member is
 * paid N times per node (docs/design.md, "Member records"). */
typedef struct dmq__member_more {
  uint8_t *meta;
  struct dmq__chanset *chans; /* channels it serves (members.c) */
  struct dmq__peer *peer;     /* delivery state to and from it */
  dmq__suspicion_t *susp;
  char *addr; /* NUL-terminated; only when addr_len >= addr_cap */
  uint16_t meta_len;
} dmq__member_more_t;

struct dmq__member {
  /* (ordered to avoid padding: members are the one O(N) structure; a
   * member lives in its node's member arena (members.c), so that one
   * node's table is compact in memory) */
  /* the arena's header (members.c): the first 8 bytes; a free slot keeps
   * them and links to the next free one in the 8 after */
  uint8_t slot;  /* size class (slot bytes / DMQ__ARENA_GRAIN) */
  uint8_t freed; /* 1: a free slot, not a member */
  uint8_t state; /* dmq_member_state_t */
  uint8_t is_self;
  /* heard from itself: a datagram from its own address carrying its name,
   * or an ack of our probe of it. Until then its address is only hearsay
   * (gossip, tables), and probes to it are rate-limited (swim.c). */
  uint8_t heard;
  int8_t bc_bucket; /* -1 = not queued; < DMQ__MAX_BUCKETS */
  uint8_t name_len, addr_len;
  dmq__member_more_t *more; /* NULL: none of the rarely set parts */
  /* dissemination queue links (bucket = transmits so far) */
  dmq__member_t *bc_prev, *bc_next;
  uint64_t inc, gen;
  uint64_t state_since;
  uint32_t idx;     /* position in node->members */
  uint8_t addr_cap; /* bytes for addr inside the member (after name) */
  /* set while a DIFF request is merged: the requester sent this member's
   * record as we now hold it, so our reply leaves it out (antientropy.c);
   * cleared when the reply is built */
  uint8_t ae_echo;
  /* NUL-terminated, then the address's inline room (addr_cap bytes) */
  char name[];
};

/* The member's address, NUL-terminated: in its slot after the name when it
 * fits (addr_len < addr_cap: nearly always, so no pointer is kept for it),
 * else in m->more. Valid until the address changes or the member goes. */
static inline const char *dmq__member_addr(const dmq__member_t *m) {
  return m->addr_len < m->addr_cap ? m->name + m->name_len + 1 : m->more->addr;
}

/* The rarely set parts (NULL or 0 when not set). */
static inline struct dmq__peer *dmq__member_peer(const dmq__member_t *m) {
  return m->more != NULL ? m->more->peer : NULL;
}
static inline dmq__suspicion_t *dmq__member_susp(const dmq__member_t *m) {
  return m->more != NULL ? m->more->susp : NULL;
}
static inline const uint8_t *dmq__member_meta(const dmq__member_t *m) {
  return m->more != NULL ? m->more->meta : NULL;
}
static inline uint16_t dmq__member_meta_len(const dmq__member_t *m) {
  return m->more != NULL ? m->more->meta_len : 0;
}
/* m->more, allocated (zeroed) if m has none; NULL when out of memory. */
dmq__member_more_t *dmq__member_more(dmq_node_t *n, dmq__member_t *m);
/* Frees m->more once nothing is left in it. */
void dmq__member_more_trim(dmq_node_t *n, dmq__member_t *m);

/* FNV-1a over n bytes (member names, channel names). */
uint64_t dmq__hash(const char *p, size_t n);

/* ---- the table ---- */
dmq__member_t *dmq__member_find(const dmq_node_t *n, const char *name,
                                size_t len);
/* A new member at a random position of the probe order; NULL when out of
 * memory. */
dmq__member_t *dmq__member_add(dmq_node_t *n, const char *name, size_t nlen,
                               const char *addr, size_t alen);
/* Tell the listener (DMQ__MEMBER_REMOVED), then free m. */
void dmq__member_remove(dmq_node_t *n, dmq__member_t *m);
/* The node's deletion: dmq__member_remove for every member, in one pass
 * (no index or probe-order upkeep). */
void dmq__members_free_all(dmq_node_t *n);
int dmq__member_set_addr(dmq_node_t *n, dmq__member_t *m, const char *addr,
                         size_t len);
/* Returns 1 if changed, 0 if equal, DMQ_ENOMEM. */
int dmq__member_set_meta(dmq_node_t *n, dmq__member_t *m, const void *meta,
                         size_t len);
void dmq__members_shuffle(dmq_node_t *n);

/* Every member in memory (arena) order, for whole-table passes whose
 * order does not matter (the anti-entropy sums): sequential memory access
 * where the probe order would be a cache miss per member.
 *   dmq__member_iter_t it = DMQ__MEMBER_ITER_INIT;
 *   while ((m = dmq__members_next(n, &it)) != NULL) ...
 * The table must not change during the walk. */
typedef struct dmq__member_iter {
  uint8_t *chunk, *p, *end;
} dmq__member_iter_t;
#define DMQ__MEMBER_ITER_INIT                                                  \
  { NULL, NULL, NULL }
dmq__member_t *dmq__members_next(const dmq_node_t *n, dmq__member_iter_t *it);

/* ---- channels a member serves ---- */
/* From its ALIVE or push/pull record (c may be NULL = none). All or
 * nothing: 1 changed, 0 the same set, or DMQ_ENOMEM (member unchanged). */
int dmq__member_set_chans(dmq_node_t *n, dmq__member_t *m,
                          const dmq__chans_t *c);
/* The member's channel names as slices (out holds DMQ_MAX_CHANNELS);
 * returns how many. */
uint32_t dmq__member_chans(const dmq__member_t *m, dmq__slice_t *out);
/* Exact encoded size of the member's channels field. */
size_t dmq__member_chans_size(const dmq__member_t *m);
/* m as a push/pull record into e (dmq__enc_record's result), and an upper
 * bound of that record's encoded size. */
int dmq__member_enc(dmq__enc_t *e, const dmq__member_t *m);
size_t dmq__member_record_size(const dmq__member_t *m);
/* Does m serve the channel (name, len) whose dmq__hash is h? */
int dmq__member_serves(const dmq__member_t *m, uint64_t h, const char *name,
                       size_t len);

/* ---- the listener ---- */
/* Call the node's member listener (n->member_listener; the change kinds
 * are in internal.h). Membership calls it when a member is declared dead,
 * leaves, comes back with a new generation, or is about to be freed. */
void dmq__members_notify(dmq_node_t *n, dmq__member_t *m,
                         dmq__member_change_t what);

#endif
