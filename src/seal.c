/* libdmq - sealing: libsodium AEAD over whole packets, the keyring and the
 * per-sender replay window. Layout and choices: src/seal.h, docs/wire.md,
 * docs/security.md, docs/design.md ("Sealing").
 *
 * Keys live in one sodium_malloc'd block (guard pages, mlock'd where the
 * system allows, zeroed by sodium_free) of DMQ_MAX_KEYS slots, allocated
 * when the first key is added: not through the node's allocator hooks,
 * which cannot promise any of that. A removed slot is wiped with
 * sodium_memzero. Nothing here logs, and nothing here ever formats key
 * bytes.
 */
#include "seal.h"

#include <string.h>

#include <sodium.h>

#include "dmq/error.h"

static const char seal_id_domain[] = "dmq key id v1";
static const char seal_gcm_domain[] = "dmq aes256gcm session v1";

static void seal_be(uint8_t *p, uint64_t v, int n) {
  for (int i = n - 1; i >= 0; i--, v >>= 8)
    p[i] = (uint8_t)v;
}

static uint64_t seal_rd(const uint8_t *p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++)
    v = (v << 8) | p[i];
  return v;
}

int dmq__seal_aes_available(void) {
  return sodium_init() >= 0 && crypto_aead_aes256gcm_is_available();
}

int dmq__seal_init(dmq__seal_t *s, const dmq_alloc_t *alloc, uint64_t gen) {
  memset(s, 0, sizeof *s);
  s->alloc = *alloc;
  s->primary = -1;
  s->gen = gen;
  if (sodium_init() < 0)
    return -1;
  randombytes_buf(s->session, sizeof s->session);
  s->alg = crypto_aead_aes256gcm_is_available() ? DMQ__SEAL_ALG_AESGCM
                                                : DMQ__SEAL_ALG_XCHACHA;
  return 0;
}

void dmq__seal_free(dmq__seal_t *s) {
  if (s->vault != NULL)
    sodium_free(s->vault); /* zeroes the block */
  s->vault = NULL;
  s->keys = NULL;
  s->nkeys = 0;
  s->primary = -1;
  for (uint32_t i = 0; i < s->cap; i++)
    if (s->tab[i] != NULL)
      s->alloc.free_fn(s->tab[i], s->alloc.ud);
  if (s->tab != NULL)
    s->alloc.free_fn(s->tab, s->alloc.ud);
  s->tab = NULL;
  s->cap = s->count = 0;
}

int dmq__seal_set_alg(dmq__seal_t *s, uint8_t alg) {
  if (alg != DMQ__SEAL_ALG_XCHACHA && alg != DMQ__SEAL_ALG_AESGCM)
    return DMQ_EINVAL;
  if (alg == DMQ__SEAL_ALG_AESGCM && !crypto_aead_aes256gcm_is_available())
    return DMQ_ENOTSUP;
  s->alg = alg;
  return 0;
}

void dmq__wipe(void *p, size_t n) {
  sodium_memzero(p, n);
}

uint32_t dmq__seal_key_id(const uint8_t key[DMQ_KEY_SIZE]) {
  uint8_t h[crypto_generichash_BYTES_MIN];
  if (sodium_init() < 0)
    return 0;
  crypto_generichash(h, sizeof h, (const uint8_t *)seal_id_domain,
                     sizeof seal_id_domain - 1, key, DMQ_KEY_SIZE);
  uint32_t id = (uint32_t)seal_rd(h, 4);
  sodium_memzero(h, sizeof h);
  return id;
}

/* The AES-256-GCM subkey of key for session. */
static void seal_gcm_subkey(uint8_t out[DMQ_KEY_SIZE],
                            const uint8_t key[DMQ_KEY_SIZE],
                            const uint8_t session[DMQ__SEAL_SESSION]) {
  uint8_t msg[sizeof seal_gcm_domain - 1 + DMQ__SEAL_SESSION];
  memcpy(msg, seal_gcm_domain, sizeof seal_gcm_domain - 1);
  memcpy(msg + sizeof seal_gcm_domain - 1, session, DMQ__SEAL_SESSION);
  crypto_generichash(out, DMQ_KEY_SIZE, msg, sizeof msg, key, DMQ_KEY_SIZE);
}

static int seal_find(const dmq__seal_t *s, uint32_t id) {
  for (uint32_t i = 0; i < s->nkeys; i++)
    if (s->keys[i].id == id)
      return (int)i;
  return -1;
}

int dmq__seal_key_add(dmq__seal_t *s, const uint8_t key[DMQ_KEY_SIZE],
                      int primary, uint32_t *id_out) {
  uint32_t id = dmq__seal_key_id(key);
  if (seal_find(s, id) >= 0)
    return DMQ_EEXIST;
  if (s->nkeys == DMQ_MAX_KEYS)
    return DMQ_ELIMIT;
  if (s->vault == NULL) {
    s->vault = sodium_malloc(sizeof *s->vault);
    if (s->vault == NULL)
      return DMQ_ENOMEM;
    sodium_memzero(s->vault, sizeof *s->vault);
    s->keys = s->vault->keys;
  }
  dmq__seal_key_t *k = &s->keys[s->nkeys];
  k->id = id;
  memcpy(k->key, key, DMQ_KEY_SIZE);
  seal_gcm_subkey(k->gcm, k->key, s->session);
  if (primary || s->primary < 0)
    s->primary = (int32_t)s->nkeys;
  s->nkeys++;
  if (id_out != NULL)
    *id_out = id;
  return 0;
}

int dmq__seal_key_use(dmq__seal_t *s, uint32_t id) {
  int i = seal_find(s, id);
  if (i < 0)
    return DMQ_ENOENT;
  s->primary = i;
  return 0;
}

int dmq__seal_key_remove(dmq__seal_t *s, uint32_t id) {
  int i = seal_find(s, id);
  if (i < 0)
    return DMQ_ENOENT;
  if (i == s->primary && s->nkeys > 1)
    return DMQ_ESTATE;
  for (int c = 0; c < DMQ__SEAL_SUBKEYS; c++)
    if (s->vault->sub[c].used && s->vault->sub[c].id == id)
      sodium_memzero(&s->vault->sub[c], sizeof s->vault->sub[c]);
  uint32_t last = s->nkeys - 1;
  if ((uint32_t)i != last) {
    s->keys[i] = s->keys[last];
    if (s->primary == (int32_t)last)
      s->primary = i;
  }
  sodium_memzero(&s->keys[last], sizeof s->keys[last]);
  s->nkeys--;
  if (s->nkeys == 0)
    s->primary = -1;
  return 0;
}

size_t dmq__seal_keys(const dmq__seal_t *s, uint32_t *ids, size_t max,
                      uint32_t *primary) {
  for (uint32_t i = 0; i < s->nkeys && i < max; i++)
    ids[i] = s->keys[i].id;
  if (primary != NULL)
    *primary = s->primary >= 0 ? s->keys[s->primary].id : 0;
  return s->nkeys;
}

/* ---- sealing and opening ---- */

static void seal_nonce(uint8_t *nonce, uint8_t alg, const uint8_t *session,
                       uint64_t pn) {
  if (alg == DMQ__SEAL_ALG_XCHACHA) {
    memcpy(nonce, session, DMQ__SEAL_SESSION);
    seal_be(nonce + DMQ__SEAL_SESSION, pn, 8);
  } else {
    memset(nonce, 0, 4);
    seal_be(nonce + 4, pn, 8);
  }
}

int dmq__seal_close(dmq__seal_t *s, uint8_t *pkt, size_t len, size_t off,
                    int stream, size_t *out_len) {
  if (s->primary < 0)
    return DMQ_ESTATE;
  if (off + DMQ__SEAL_HDR > len)
    return DMQ_EINVAL;
  const dmq__seal_key_t *k = &s->keys[s->primary];
  uint64_t pn = ++s->pn[stream ? 1 : 0];
  if (stream)
    pn |= DMQ__SEAL_PN_STREAM;
  uint8_t *h = pkt + off;
  h[0] = s->alg;
  seal_be(h + 1, k->id, 4);
  seal_be(h + 5, s->gen, 8);
  seal_be(h + 13, pn, 8);
  memcpy(h + 21, s->session, DMQ__SEAL_SESSION);
  size_t adlen = off + DMQ__SEAL_HDR;
  uint8_t *body = pkt + adlen;
  size_t blen = len - adlen;
  uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
  seal_nonce(nonce, s->alg, s->session, pn);
  if (s->alg == DMQ__SEAL_ALG_XCHACHA)
    crypto_aead_xchacha20poly1305_ietf_encrypt_detached(
        body, pkt + len, NULL, body, blen, pkt, adlen, NULL, nonce, k->key);
  else
    crypto_aead_aes256gcm_encrypt_detached(body, pkt + len, NULL, body, blen,
                                           pkt, adlen, NULL, nonce, k->gcm);
  *out_len = len + DMQ__SEAL_TAG;
  return 0;
}

int dmq__seal_open(dmq__seal_t *s, const uint8_t *pkt, size_t len, size_t off,
                   uint8_t *out, dmq__seal_info_t *info) {
  memset(info, 0, sizeof *info);
  if (off > len || len - off < DMQ__SEAL_HDR + DMQ__SEAL_TAG)
    return DMQ_DROP_SHORT + 1;
  const uint8_t *h = pkt + off;
  info->sealed = 1;
  info->alg = h[0];
  info->key_id = (uint32_t)seal_rd(h + 1, 4);
  info->gen = seal_rd(h + 5, 8);
  info->pn = seal_rd(h + 13, 8);
  if (info->alg != DMQ__SEAL_ALG_XCHACHA && info->alg != DMQ__SEAL_ALG_AESGCM)
    return DMQ_DROP_MALFORMED + 1;
  int i = seal_find(s, info->key_id);
  if (i < 0)
    return DMQ_DROP_KEY_UNKNOWN + 1;
  if (info->alg == DMQ__SEAL_ALG_AESGCM &&
      !crypto_aead_aes256gcm_is_available())
    return DMQ_DROP_UNSUPPORTED + 1;
  const dmq__seal_key_t *k = &s->keys[i];
  size_t adlen = off + DMQ__SEAL_HDR;
  size_t clen = len - adlen - DMQ__SEAL_TAG;
  const uint8_t *tag = pkt + len - DMQ__SEAL_TAG;
  uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
  seal_nonce(nonce, info->alg, h + 21, info->pn);
  int rc;
  if (info->alg == DMQ__SEAL_ALG_XCHACHA) {
    rc = crypto_aead_xchacha20poly1305_ietf_decrypt_detached(
        out, NULL, pkt + adlen, clen, tag, pkt, adlen, nonce, k->key);
  } else {
    uint8_t sub[DMQ_KEY_SIZE];
    seal_gcm_subkey(sub, k->key, h + 21);
    rc = crypto_aead_aes256gcm_decrypt_detached(out, NULL, pkt + adlen, clen,
                                                tag, pkt, adlen, nonce, sub);
    sodium_memzero(sub, sizeof sub);
  }
  return rc == 0 ? 0 : DMQ_DROP_AUTH + 1;
}

int dmq__seal_open_packet(dmq__seal_t *s, const uint8_t *buf, size_t len,
                          uint8_t *out, size_t out_cap, dmq__envelope_t *env,
                          dmq__seal_info_t *info) {
  size_t off;
  memset(info, 0, sizeof *info);
  int rc = dmq__wire_head(buf, len, env, &off);
  if (rc != 0)
    return rc;
  if (!(env->flags & DMQ__WIRE_FLAG_SEALED))
    return dmq__wire_body(buf + off, len - off, env);
  if (out == NULL || out_cap < len)
    return DMQ_DROP_OVERSIZE + 1;
  rc = dmq__seal_open(s, buf, len, off, out, info);
  if (rc != 0)
    return rc;
  return dmq__wire_body(out, len - off - DMQ__SEAL_HDR - DMQ__SEAL_TAG, env);
}

/* ---- replay window ---- */

static uint32_t seal_hash(const char *p, size_t n) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (size_t i = 0; i < n; i++)
    h = (h ^ (uint8_t)p[i]) * 16777619u;
  return h;
}

/* The slot of name: where it is, or the empty slot where it would go. */
static dmq__replay_ent_t **seal_slot(dmq__seal_t *s, const char *name,
                                     size_t len) {
  uint32_t mask = s->cap - 1;
  for (uint32_t i = seal_hash(name, len) & mask;; i = (i + 1) & mask) {
    dmq__replay_ent_t *e = s->tab[i];
    if (e == NULL || (e->name_len == len && memcmp(e->name, name, len) == 0))
      return &s->tab[i];
  }
}

static int seal_grow(dmq__seal_t *s, uint32_t ncap) {
  dmq__replay_ent_t **old = s->tab;
  uint32_t ocap = s->cap;
  dmq__replay_ent_t **t = s->alloc.malloc_fn(ncap * sizeof *t, s->alloc.ud);
  if (t == NULL)
    return -1;
  memset(t, 0, ncap * sizeof *t);
  s->tab = t;
  s->cap = ncap;
  for (uint32_t i = 0; i < ocap; i++)
    if (old[i] != NULL)
      *seal_slot(s, old[i]->name, old[i]->name_len) = old[i];
  if (old != NULL)
    s->alloc.free_fn(old, s->alloc.ud);
  return 0;
}

/* Remove and free slot i (linear probing: move later entries of the run
 * back). */
static void seal_erase(dmq__seal_t *s, uint32_t i) {
  uint32_t mask = s->cap - 1;
  s->alloc.free_fn(s->tab[i], s->alloc.ud);
  s->tab[i] = NULL;
  s->count--;
  for (uint32_t j = (i + 1) & mask; s->tab[j] != NULL; j = (j + 1) & mask) {
    uint32_t home = seal_hash(s->tab[j]->name, s->tab[j]->name_len) & mask;
    /* can the entry at j move to the hole at i? (home not in (i, j]) */
    if ((j > i && (home <= i || home > j)) ||
        (j < i && (home <= i && home > j))) {
      s->tab[i] = s->tab[j];
      s->tab[j] = NULL;
      i = j;
    }
  }
}

/* 1 when the window of one path takes pn (and records it). */
static int seal_window(uint64_t *top, uint64_t *bits, uint64_t pn) {
  const uint64_t W = DMQ__SEAL_WINDOW;
  if (pn == 0)
    return 0;
  if (pn > *top) {
    uint64_t adv = pn - *top;
    if (adv >= W) {
      memset(bits, 0, W / 8);
    } else {
      for (uint64_t x = *top + 1; x < pn; x++)
        bits[(x % W) / 64] &= ~(UINT64_C(1) << (x % 64));
    }
    *top = pn;
  } else {
    if (*top - pn >= W)
      return 0; /* too old to tell */
    if (bits[(pn % W) / 64] & (UINT64_C(1) << (pn % 64)))
      return 0; /* seen */
  }
  bits[(pn % W) / 64] |= UINT64_C(1) << (pn % 64);
  return 1;
}

int dmq__seal_replay(dmq__seal_t *s, const char *name, size_t name_len,
                     uint64_t gen, uint64_t pn, uint32_t limit,
                     int (*keep)(void *, const char *, size_t, uint64_t),
                     void *ud) {
  if (name_len == 0 || name_len > DMQ_MAX_NAME)
    return DMQ_DROP_MALFORMED + 1;
  if (limit < DMQ__SEAL_REPLAY_MIN)
    limit = DMQ__SEAL_REPLAY_MIN;
  dmq__replay_ent_t **slot = s->cap ? seal_slot(s, name, name_len) : NULL;
  dmq__replay_ent_t *e = slot != NULL ? *slot : NULL;
  if (e == NULL) {
    if (s->count >= limit) {
      /* full: evict one entry the node does not need (not a live member's
       * current generation), scanning on from where the last search
       * stopped */
      uint32_t i, scanned;
      for (i = s->evict_pos, scanned = 0; scanned < s->cap;
           scanned++, i = (i + 1) & (s->cap - 1)) {
        dmq__replay_ent_t *c = s->tab[i];
        if (c != NULL &&
            (keep == NULL || !keep(ud, c->name, c->name_len, c->gen)))
          break;
      }
      if (scanned == s->cap)
        return DMQ_DROP_BUDGET + 1;
      seal_erase(s, i);
      s->evict_pos = (i + 1) & (s->cap - 1);
    }
    if ((s->count + 1) * 2 > s->cap) {
      uint32_t ncap = s->cap ? s->cap * 2 : 64;
      if (seal_grow(s, ncap) != 0)
        return DMQ_DROP_BUDGET + 1;
    }
    e = s->alloc.malloc_fn(sizeof *e, s->alloc.ud);
    if (e == NULL)
      return DMQ_DROP_BUDGET + 1;
    memset(e, 0, sizeof *e);
    e->name_len = (uint8_t)name_len;
    memcpy(e->name, name, name_len);
    e->gen = gen;
    *seal_slot(s, name, name_len) = e;
    s->count++;
  }
  if (gen < e->gen)
    return DMQ_DROP_REPLAY + 1; /* a previous life of the sender */
  if (gen > e->gen) {           /* it restarted: new session, new numbers */
    e->gen = gen;
    memset(e->top, 0, sizeof e->top);
    memset(e->bits, 0, sizeof e->bits);
  }
  int path = (pn & DMQ__SEAL_PN_STREAM) ? 1 : 0;
  if (!seal_window(&e->top[path], e->bits[path], pn & ~DMQ__SEAL_PN_STREAM))
    return DMQ_DROP_REPLAY + 1;
  return 0;
}
