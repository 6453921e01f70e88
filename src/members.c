/* libdmq - the member table and the gossiped state of each member.
 *
 * The table is an array in probe order (members are inserted at a random
 * position) plus an open-addressing index by name. Each member carries
 * what the cluster gossips about it: address, metadata, incarnation,
 * generation, state and the set of delivery channels it serves.
 *
 * Membership (swim.c) changes the table; whoever keeps state per member
 * (delivery) hears about it through one hook, the member listener that the
 * node (node.c, the composition root) installs: this module knows neither
 * swim nor delivery.
 */
#include <stddef.h>
#include <string.h>

#include "antientropy.h"
#include "members.h"
#include "util/oamap.h"

/* Under AddressSanitizer, free arena space is poisoned, so that a use of a
 * removed member is still reported. */
#if defined(__SANITIZE_ADDRESS__)
#define MEMBERS_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MEMBERS_ASAN 1
#endif
#endif
#ifdef MEMBERS_ASAN
#include <sanitizer/asan_interface.h>
#define MEMBERS_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define MEMBERS_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define MEMBERS_POISON(p, n) ((void)(p), (void)(n))
#define MEMBERS_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* The largest member fits the last size class. */
_Static_assert((offsetof(dmq__member_t, name) + DMQ_MAX_NAME + 1 +
                DMQ_MAX_ADDR + 1 + DMQ__ARENA_GRAIN - 1) /
                       DMQ__ARENA_GRAIN <
                   DMQ__ARENA_CLASSES,
               "DMQ__ARENA_CLASSES too small");
/* A chunk starts with the link to the next (older) chunk and, once it is
 * full, where its last member ends; 16 bytes keep members aligned. */
#define MEMBERS_CHUNK_HEAD 16

static dmq__slice_t members_sl(const char *p, size_t n) {
  dmq__slice_t s = {p, n};
  return s;
}

/* ---- listener ---- */

void dmq__members_notify(dmq_node_t *n, dmq__member_t *m,
                         dmq__member_change_t what) {
  if (n->member_listener != NULL)
    n->member_listener(n, m, what);
}

/* ---- member arena ---- */

/* Why an arena: a node looks members up by name (every record of a
 * push/pull, every gossiped update) and walks its whole table (the
 * anti-entropy digest), and with one malloc per member a node's table is
 * spread over the heap (interleaved with every other node's in one
 * process, as in the simulator or cluster_bench), so each step is a cache
 * miss. Carved from a few chunks, one node's members are contiguous, and
 * the malloc header and rounding per member are gone. */

/* Where a chunk's members start: after its head, 16-byte aligned whatever
 * the allocator's alignment (the index keeps a tag in a member pointer's
 * low 4 bits). */
static uint8_t *members_chunk_start(uint8_t *c) {
  uintptr_t a = (uintptr_t)(c + MEMBERS_CHUNK_HEAD);
  return c + MEMBERS_CHUNK_HEAD +
         ((DMQ__ARENA_GRAIN - a % DMQ__ARENA_GRAIN) % DMQ__ARENA_GRAIN);
}

/* A free slot: its first 8 bytes (slot, freed = 1) stay readable for the
 * memory-order walk, the next free slot of its class follows. */
#define MEMBERS_SLOT_HEAD 16
#define MEMBERS_LINK 8

static void *members_slot_get(dmq_node_t *n, uint32_t cls) {
  size_t size = (size_t)cls * DMQ__ARENA_GRAIN;
  uint8_t *p = n->arena_free[cls];
  if (p != NULL) {
    MEMBERS_UNPOISON(p, size);
    memcpy(&n->arena_free[cls], p + MEMBERS_LINK, sizeof(void *));
    return p;
  }
  if (n->arena_left < size) {
    size_t csize = n->arena_chunk ? n->arena_chunk * 2 : DMQ__ARENA_CHUNK_MIN;
    if (csize > DMQ__ARENA_CHUNK_MAX)
      csize = DMQ__ARENA_CHUNK_MAX;
    uint8_t *c = dmq__malloc(n, csize);
    if (c == NULL)
      return NULL;
    /* the previous chunk ends where its members end (the rest, less than
     * a slot, stays unused) */
    if (n->arena_chunks != NULL)
      memcpy((uint8_t *)n->arena_chunks + sizeof(void *), &n->arena_next,
             sizeof(void *));
    n->arena_chunk = csize;
    memcpy(c, &n->arena_chunks, sizeof(void *));
    n->arena_chunks = c;
    n->arena_next = members_chunk_start(c);
    n->arena_left = csize - (size_t)(n->arena_next - c);
    MEMBERS_POISON(n->arena_next, n->arena_left);
  }
  p = n->arena_next;
  n->arena_next += size;
  n->arena_left -= size;
  MEMBERS_UNPOISON(p, size);
  return p;
}

static void members_slot_put(dmq_node_t *n, dmq__member_t *m) {
  uint8_t *p = (uint8_t *)m;
  m->freed = 1;
  memcpy(p + MEMBERS_LINK, &n->arena_free[m->slot], sizeof(void *));
  n->arena_free[m->slot] = p;
  MEMBERS_POISON(p + MEMBERS_SLOT_HEAD,
                 (size_t)m->slot * DMQ__ARENA_GRAIN - MEMBERS_SLOT_HEAD);
}

dmq__member_t *dmq__members_next(const dmq_node_t *n, dmq__member_iter_t *it) {
  for (;;) {
    while (it->p != NULL && it->p < it->end) {
      dmq__member_t *m = (dmq__member_t *)(void *)it->p;
      it->p += (size_t)m->slot * DMQ__ARENA_GRAIN;
      if (!m->freed)
        return m;
    }
    /* the next chunk (newest first) */
    uint8_t *c = it->chunk == NULL ? n->arena_chunks : NULL;
    if (it->chunk != NULL)
      memcpy(&c, it->chunk, sizeof(void *));
    if (c == NULL)
      return NULL;
    it->chunk = c;
    it->p = members_chunk_start(c);
    if (c == n->arena_chunks)
      it->end = n->arena_next;
    else
      memcpy(&it->end, c + sizeof(void *), sizeof(void *));
  }
}

/* With the last member gone (the node's destruction), free the chunks. */
static void members_arena_free(dmq_node_t *n) {
  void *c = n->arena_chunks;
  while (c != NULL) {
    void *next;
    memcpy(&next, c, sizeof(void *));
    dmq__free(n, c);
    c = next;
  }
  n->arena_chunks = NULL;
  n->arena_next = NULL;
  n->arena_left = 0;
  n->arena_chunk = 0;
  memset(n->arena_free, 0, sizeof(n->arena_free));
}

/* ---- member index ---- */

uint64_t dmq__hash(const char *p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
  for (size_t i = 0; i < n; i++) {
    h ^= (uint8_t)p[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

/* The index holds member pointers with a tag in their low 4 bits (members
 * are 16-byte aligned in the arena): 4 more bits of the name's hash, so
 * that a probe compares a name only when the tag matches, not at every
 * occupied slot (a cache miss each: the members' names have the same
 * length when they differ in a counter). */
#define MEMBERS_TAG_MASK ((uintptr_t)(DMQ__ARENA_GRAIN - 1))

static uint32_t members_tag(uint64_t h) {
  return (uint32_t)(h >> 60);
}

static dmq__member_t *members_ix_get(dmq__member_t *const *ix, uint32_t j) {
  return (dmq__member_t *)((uintptr_t)ix[j] & ~MEMBERS_TAG_MASK);
}

static dmq__member_t *members_ix_val(dmq__member_t *m, uint64_t h) {
  return (dmq__member_t *)((uintptr_t)m | members_tag(h));
}

static uint32_t members_ix_home(dmq__member_t *tagged, uint32_t mask) {
  dmq__member_t *m = (dmq__member_t *)((uintptr_t)tagged & ~MEMBERS_TAG_MASK);
  return (uint32_t)dmq__hash(m->name, m->name_len) & mask;
}

static int members_index_grow(dmq_node_t *n) {
  uint32_t ncap = n->index_cap ? n->index_cap * 2 : 16;
  dmq__member_t **ni = dmq__malloc(n, ncap * sizeof(*ni));
  if (ni == NULL)
    return DMQ_ENOMEM;
  memset(ni, 0, ncap * sizeof(*ni));
  for (uint32_t i = 0; i < n->index_cap; i++) {
    dmq__member_t *v = n->index[i];
    if (v == NULL)
      continue;
    uint32_t j = members_ix_home(v, ncap - 1);
    while (ni[j] != NULL)
      j = (j + 1) & (ncap - 1);
    ni[j] = v;
  }
  dmq__free(n, n->index);
  n->index = ni;
  n->index_cap = ncap;
  return 0;
}

dmq__member_t *dmq__member_find(const dmq_node_t *n, const char *name,
                                size_t len) {
  if (n->index_cap == 0)
    return NULL;
  uint32_t mask = n->index_cap - 1;
  uint64_t h = dmq__hash(name, len);
  uintptr_t tag = members_tag(h);
  uint32_t j = (uint32_t)h & mask;
  for (;;) {
    uintptr_t v = (uintptr_t)n->index[j];
    if (v == 0)
      return NULL;
    if ((v & MEMBERS_TAG_MASK) == tag) {
      dmq__member_t *m = (dmq__member_t *)(v & ~MEMBERS_TAG_MASK);
      if (m->name_len == len && memcmp(m->name, name, len) == 0)
        return m;
    }
    j = (j + 1) & mask;
  }
}

static void members_index_remove(dmq_node_t *n, dmq__member_t *m) {
  uint32_t mask = n->index_cap - 1;
  uint32_t j = (uint32_t)dmq__hash(m->name, m->name_len) & mask;
  while (members_ix_get(n->index, j) != m)
    j = (j + 1) & mask;
  DMQ__OA_REMOVE(dmq__member_t *, n->index, mask, j, members_ix_home(c, mask));
}

int dmq__member_set_addr(dmq_node_t *n, dmq__member_t *m, const char *addr,
                         size_t len) {
  if (m->addr_len == len && memcmp(dmq__member_addr(m), addr, len) == 0)
    return 0;
  if (len < m->addr_cap) {
    char *inl = m->name + m->name_len + 1; /* room kept at member_add */
    memmove(inl, addr, len);               /* (addr may be the old one) */
    inl[len] = '\0';
    if (m->more != NULL && m->more->addr != NULL) {
      dmq__free(n, m->more->addr);
      m->more->addr = NULL;
      m->addr_len = (uint8_t)len;
      dmq__member_more_trim(n, m);
    }
  } else {
    if (dmq__member_more(n, m) == NULL)
      return DMQ_ENOMEM;
    char *a = dmq__malloc(n, len + 1);
    if (a == NULL) {
      dmq__member_more_trim(n, m);
      return DMQ_ENOMEM;
    }
    memcpy(a, addr, len);
    a[len] = '\0';
    dmq__free(n, m->more->addr);
    m->more->addr = a;
  }
  m->addr_len = (uint8_t)len;
  return 0;
}

dmq__member_more_t *dmq__member_more(dmq_node_t *n, dmq__member_t *m) {
  if (m->more == NULL) {
    m->more = dmq__malloc(n, sizeof(*m->more));
    if (m->more != NULL)
      memset(m->more, 0, sizeof(*m->more));
  }
  return m->more;
}

void dmq__member_more_trim(dmq_node_t *n, dmq__member_t *m) {
  dmq__member_more_t *x = m->more;
  if (x != NULL && x->meta == NULL && x->chans == NULL && x->peer == NULL &&
      x->susp == NULL && x->addr == NULL) {
    dmq__free(n, x);
    m->more = NULL;
  }
}

/* What m->more holds, freed (the peer and the suspicion are their owners'
 * to free first). */
static void members_more_free(dmq_node_t *n, dmq__member_t *m) {
  if (m->more == NULL)
    return;
  dmq__free(n, m->more->chans);
  dmq__free(n, m->more->meta);
  dmq__free(n, m->more->addr);
  dmq__free(n, m->more);
  m->more = NULL;
}

int dmq__member_set_meta(dmq_node_t *n, dmq__member_t *m, const void *meta,
                         size_t len) {
  size_t have = dmq__member_meta_len(m);
  if (have == len && (len == 0 || memcmp(dmq__member_meta(m), meta, len) == 0))
    return 0;
  uint8_t *p = NULL;
  if (len > 0) {
    if (dmq__member_more(n, m) == NULL)
      return DMQ_ENOMEM;
    p = dmq__malloc(n, len);
    if (p == NULL) {
      dmq__member_more_trim(n, m);
      return DMQ_ENOMEM;
    }
    memcpy(p, meta, len);
  }
  dmq__free(n, m->more->meta);
  m->more->meta = p;
  m->more->meta_len = (uint16_t)len;
  dmq__member_more_trim(n, m);
  return 1; /* changed */
}

dmq__member_t *dmq__member_add(dmq_node_t *n, const char *name, size_t nlen,
                               const char *addr, size_t alen) {
  /* Both grow in steps that keep the slack per member small: at 10000
   * members a node's table is ~1 MB and a simulator holds 10000 of them
   * (docs/design.md, "Member records"). The probe order by half again; the
   * index (linear probing, a tag per slot, so a probe seldom reads a member)
   * to load 3/4 before doubling. */
  if (n->nmembers == n->cap_members) {
    uint32_t nc = n->cap_members ? n->cap_members + n->cap_members / 2 : 8;
    dmq__member_t **na = dmq__realloc(n, n->members, nc * sizeof(*na));
    if (na == NULL)
      return NULL;
    n->members = na;
    n->cap_members = nc;
  }
  if ((uint64_t)(n->nmembers + 1) * 4 > (uint64_t)n->index_cap * 3 &&
      members_index_grow(n) != 0)
    return NULL;
  /* name and address live in the member (an address that later grows
   * beyond this room gets an allocation of its own) */
  size_t need = offsetof(dmq__member_t, name) + nlen + 1 + alen + 1;
  uint32_t cls = (uint32_t)((need + DMQ__ARENA_GRAIN - 1) / DMQ__ARENA_GRAIN);
  dmq__member_t *m = members_slot_get(n, cls);
  if (m == NULL)
    return NULL;
  memset(m, 0, offsetof(dmq__member_t, name));
  m->slot = (uint8_t)cls;
  memcpy(m->name, name, nlen);
  m->name[nlen] = '\0';
  m->name_len = (uint8_t)nlen;
  /* all the room up to the end of the slot */
  size_t room =
      (size_t)cls * DMQ__ARENA_GRAIN - offsetof(dmq__member_t, name) - nlen - 1;
  m->addr_cap = (uint8_t)(room > 255 ? 255 : room);
  m->name[nlen + 1] = '\0'; /* the empty address, until set */
  if (dmq__member_set_addr(n, m, addr, alen) != 0) {
    members_slot_put(n, m);
    return NULL;
  }
  m->bc_bucket = -1;
  /* insert at a random position so the probe order stays random */
  uint32_t pos = n->nmembers;
  n->members[pos] = m;
  m->idx = pos;
  n->nmembers++;
  uint32_t j = (uint32_t)dmq__rng_below(&n->rng, n->nmembers);
  if (j != pos) {
    dmq__member_t *o = n->members[j];
    n->members[j] = m;
    m->idx = j;
    n->members[pos] = o;
    o->idx = pos;
  }
  uint32_t mask = n->index_cap - 1;
  uint64_t nh = dmq__hash(name, nlen);
  uint32_t h = (uint32_t)nh & mask;
  while (n->index[h] != NULL)
    h = (h + 1) & mask;
  n->index[h] = members_ix_val(m, nh);
  return m;
}

void dmq__member_remove(dmq_node_t *n, dmq__member_t *m) {
  dmq__ae_member_out(n, m); /* nothing unless it is live */
  dmq__members_notify(n, m, DMQ__MEMBER_REMOVED);
  members_more_free(n, m);
  members_index_remove(n, m);
  uint32_t last = n->nmembers - 1;
  if (m->idx != last) {
    dmq__member_t *o = n->members[last];
    n->members[m->idx] = o;
    o->idx = m->idx;
  }
  n->nmembers--;
  members_slot_put(n, m);
  if (n->nmembers == 0)
    members_arena_free(n);
}

void dmq__members_free_all(dmq_node_t *n) {
  /* in memory order (a sequential read, where the probe order is a
   * random one); the index and the probe order are dropped whole */
  dmq__member_iter_t it = DMQ__MEMBER_ITER_INIT;
  dmq__member_t *m;
  while ((m = dmq__members_next(n, &it)) != NULL) {
    dmq__members_notify(n, m, DMQ__MEMBER_REMOVED);
    members_more_free(n, m);
  }
  n->nmembers = 0;
  if (n->index != NULL)
    memset(n->index, 0, (size_t)n->index_cap * sizeof(*n->index));
  members_arena_free(n);
}

void dmq__members_shuffle(dmq_node_t *n) {
  for (uint32_t i = n->nmembers; i > 1; i--) {
    uint32_t j = (uint32_t)dmq__rng_below(&n->rng, i);
    dmq__member_t *t = n->members[i - 1];
    n->members[i - 1] = n->members[j];
    n->members[j] = t;
    n->members[i - 1]->idx = i - 1;
    n->members[j]->idx = j;
  }
}

/* ---- channels a member serves ---- */

/* Channels a member serves, sorted by hash. */
typedef struct members_cent {
  uint64_t h;
  uint8_t len;
  char name[DMQ_MAX_CHANNEL + 1];
} members_cent_t;

struct dmq__chanset {
  uint32_t n;
  members_cent_t e[];
};

static int members_cent_cmp(const members_cent_t *a, const members_cent_t *b) {
  if (a->h != b->h)
    return a->h < b->h ? -1 : 1;
  if (a->len != b->len)
    return a->len < b->len ? -1 : 1;
  return memcmp(a->name, b->name, a->len);
}

int dmq__member_set_chans(dmq_node_t *n, dmq__member_t *m,
                          const dmq__chans_t *c) {
  dmq__slice_t v[DMQ_MAX_CHANNELS];
  members_cent_t e[DMQ_MAX_CHANNELS];
  size_t k = dmq__wire_chans(c, v, DMQ_MAX_CHANNELS), ne = 0;
  for (size_t i = 0; i < k; i++) {
    members_cent_t x;
    x.h = dmq__hash(v[i].p, v[i].n);
    x.len = (uint8_t)v[i].n;
    memcpy(x.name, v[i].p, v[i].n);
    x.name[v[i].n] = '\0';
    /* insertion sort, dropping duplicates */
    size_t j = ne;
    int dup = 0;
    while (j > 0) {
      int r = members_cent_cmp(&e[j - 1], &x);
      if (r == 0)
        dup = 1;
      if (r <= 0)
        break;
      j--;
    }
    if (dup)
      continue;
    memmove(&e[j + 1], &e[j], (ne - j) * sizeof(e[0]));
    e[j] = x;
    ne++;
  }
  struct dmq__chanset *old = m->more != NULL ? m->more->chans : NULL;
  if (old != NULL && old->n == ne) {
    size_t i = 0;
    while (i < ne && members_cent_cmp(&old->e[i], &e[i]) == 0)
      i++;
    if (i == ne)
      return 0;
  }
  if (ne == 0 && old == NULL)
    return 0;
  struct dmq__chanset *cs = NULL;
  if (ne > 0) {
    if (dmq__member_more(n, m) == NULL)
      return DMQ_ENOMEM;
    cs = dmq__malloc(n, sizeof(*cs) + ne * sizeof(members_cent_t));
    if (cs == NULL) {
      dmq__member_more_trim(n, m);
      return DMQ_ENOMEM;
    }
    cs->n = (uint32_t)ne;
    memcpy(cs->e, e, ne * sizeof(members_cent_t));
  }
  dmq__free(n, old);
  m->more->chans = cs;
  dmq__member_more_trim(n, m);
  return 1; /* changed */
}

uint32_t dmq__member_chans(const dmq__member_t *m, dmq__slice_t *out) {
  const struct dmq__chanset *cs = m->more != NULL ? m->more->chans : NULL;
  if (cs == NULL)
    return 0;
  for (uint32_t i = 0; i < cs->n; i++)
    out[i] = members_sl(cs->e[i].name, cs->e[i].len);
  return cs->n;
}

int dmq__member_enc(dmq__enc_t *e, const dmq__member_t *m) {
  dmq__slice_t cv[DMQ_MAX_CHANNELS];
  dmq__record_t r = {
      members_sl(m->name, m->name_len),
      members_sl(dmq__member_addr(m), m->addr_len),
      members_sl((const char *)dmq__member_meta(m), dmq__member_meta_len(m)),
      m->inc,
      m->gen,
      m->state,
      {0, cv, NULL, 0}};
  r.chans.n = dmq__member_chans(m, cv);
  return dmq__enc_record(e, &r);
}

size_t dmq__member_record_size(const dmq__member_t *m) {
  return 40 + m->name_len + m->addr_len + dmq__member_meta_len(m) +
         dmq__member_chans_size(m);
}

size_t dmq__member_chans_size(const dmq__member_t *m) {
  dmq__slice_t v[DMQ_MAX_CHANNELS];
  dmq__chans_t c = {dmq__member_chans(m, v), v, NULL, 0};
  return dmq__enc_size_chans(&c);
}

int dmq__member_serves(const dmq__member_t *m, uint64_t h, const char *name,
                       size_t len) {
  const struct dmq__chanset *cs = m->more != NULL ? m->more->chans : NULL;
  if (cs == NULL)
    return 0;
  for (uint32_t i = 0; i < cs->n; i++) {
    if (cs->e[i].h > h)
      return 0;
    if (cs->e[i].h == h && cs->e[i].len == len &&
        memcmp(cs->e[i].name, name, len) == 0)
      return 1;
  }
  return 0;
}
