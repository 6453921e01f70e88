/* libdmq - sealing: authenticated encryption of packets (libsodium AEAD),
 * the keyring and the replay window (internal, core layer).
 *
 * A sealed packet (docs/wire.md "Sealed packets", docs/security.md):
 *
 *   envelope (4) | [lablen | label] | sealed header (37) | ciphertext | tag
 *
 *   sealed header = alg u8 | key id u32 | generation u64 | packet number u64
 *                   | session 16 bytes                    (big endian)
 *
 * The associated data is everything before the ciphertext (envelope, label,
 * sealed header), so none of it can be changed; the ciphertext is the
 * msgpack body (which carries the sender's name) and has its length.
 *
 *   alg 1  XChaCha20-Poly1305 (IETF), key = the keyring key,
 *          nonce (24) = session (16) | packet number (8)
 *   alg 2  AES-256-GCM, key = BLAKE2b-256 keyed with the keyring key over
 *          "dmq aes256gcm session v1" | session: a subkey per sending
 *          session, so that the 96-bit nonce = 0 (4) | packet number (8)
 *          never repeats under one key even across many nodes and restarts
 *
 * The session is 16 random bytes drawn when the node is created: together
 * with the packet number (which never repeats inside a session) it makes
 * every nonce unique under a key. A packet number's top bit tells the path:
 * datagram transports count 1, 2, ... and stream transports 2^63 + 1, ...,
 * so that reordering between UDP and TCP never looks like a replay (each
 * path has its own replay window).
 *
 * The key id is the first 4 bytes (big endian) of BLAKE2b-128 keyed with
 * the key over "dmq key id v1": nodes agree on it without configuring it,
 * and it says nothing useful about the key.
 */
#ifndef DMQ_SEAL_H
#define DMQ_SEAL_H

#include <stddef.h>
#include <stdint.h>

#include "dmq/node.h"
#include "wire.h"

#define DMQ__SEAL_HDR DMQ__WIRE_SEAL_HDR /* 37 */
#define DMQ__SEAL_TAG DMQ__WIRE_SEAL_TAG /* 16 */
#define DMQ__SEAL_SESSION 16
#define DMQ__SEAL_ALG_XCHACHA 1
#define DMQ__SEAL_ALG_AESGCM 2
#define DMQ__SEAL_PN_STREAM (UINT64_C(1) << 63)
/* Replay window per sender and path, in packets (a multiple of 64). */
#define DMQ__SEAL_WINDOW 512
/* Replay state kept for at least this many senders (more when the member
 * table is larger: see dmq__seal_replay). */
#define DMQ__SEAL_REPLAY_MIN 256

typedef struct dmq__seal_key {
  uint32_t id;
  uint8_t key[DMQ_KEY_SIZE];
  uint8_t gcm[DMQ_KEY_SIZE]; /* AES-256-GCM subkey of our session */
} dmq__seal_key_t;

/* Received AES-256-GCM subkeys, by (key id, sender session): deriving one
 * costs a BLAKE2b per packet otherwise. Direct-mapped on the session. */
#define DMQ__SEAL_SUBKEYS 32
typedef struct dmq__seal_subkey {
  uint32_t id;
  uint8_t used;
  uint8_t session[DMQ__SEAL_SESSION];
  uint8_t key[DMQ_KEY_SIZE];
} dmq__seal_subkey_t;

/* Key material, in one sodium_malloc'd block. */
typedef struct dmq__seal_vault {
  dmq__seal_key_t keys[DMQ_MAX_KEYS];
  dmq__seal_subkey_t sub[DMQ__SEAL_SUBKEYS];
} dmq__seal_vault_t;

typedef struct dmq__replay_ent {
  uint64_t gen;
  uint64_t top[2]; /* highest packet number seen, per path */
  uint64_t bits[2][DMQ__SEAL_WINDOW / 64];
  uint8_t name_len;
  char name[DMQ_MAX_NAME];
} dmq__replay_ent_t;

typedef struct dmq__seal {
  dmq_alloc_t alloc;        /* the node's, for the replay table */
  dmq__seal_vault_t *vault; /* sodium_malloc'd (NULL until a key) */
  dmq__seal_key_t *keys;    /* vault->keys */
  uint32_t nkeys;           /* keys[0..nkeys) */
  int32_t primary;          /* index of the sending key, -1 if none */
  uint8_t alg;              /* what we send with */
  uint8_t session[DMQ__SEAL_SESSION];
  uint64_t gen;            /* our generation */
  uint64_t pn[2];          /* last packet number sent, per path */
  dmq__replay_ent_t **tab; /* replay state: open addressing by name */
  uint32_t cap, count;     /* cap a power of two (0: not allocated) */
  uint32_t evict_pos;
} dmq__seal_t;

/* What dmq__seal_open found in the sealed header. */
typedef struct dmq__seal_info {
  int sealed; /* 0: the packet was plain (dmq__seal_open_packet) */
  uint8_t alg;
  uint32_t key_id;
  uint64_t gen, pn;
} dmq__seal_info_t;

/* Initialise s (sodium_init, random session, the algorithm this CPU does
 * best: AES-256-GCM with AES-NI/PCLMUL, else XChaCha20-Poly1305). -1 if
 * libsodium cannot initialise. */
int dmq__seal_init(dmq__seal_t *s, const dmq_alloc_t *alloc, uint64_t gen);
/* Wipe and free the keys (sodium_free zeroes them) and the replay state. */
void dmq__seal_free(dmq__seal_t *s);
/* Force the sending algorithm (tests, benchmarks): DMQ_EINVAL if unknown,
 * DMQ_ENOTSUP if this CPU lacks it. */
int dmq__seal_set_alg(dmq__seal_t *s, uint8_t alg);
/* 1 when AES-256-GCM can be used on this CPU. */
int dmq__seal_aes_available(void);

/* sodium_memzero: a wipe the compiler cannot drop. */
void dmq__wipe(void *p, size_t n);
uint32_t dmq__seal_key_id(const uint8_t key[DMQ_KEY_SIZE]);
/* Keyring. add: DMQ_EEXIST (same id), DMQ_ELIMIT (DMQ_MAX_KEYS), DMQ_ENOMEM;
 * the first key added becomes primary, and so does one added with
 * primary != 0. use/remove: DMQ_ENOENT. remove: DMQ_ESTATE for the primary
 * key while others are left (make another primary first). */
int dmq__seal_key_add(dmq__seal_t *s, const uint8_t key[DMQ_KEY_SIZE],
                      int primary, uint32_t *id);
int dmq__seal_key_use(dmq__seal_t *s, uint32_t id);
int dmq__seal_key_remove(dmq__seal_t *s, uint32_t id);
size_t dmq__seal_keys(const dmq__seal_t *s, uint32_t *ids, size_t max,
                      uint32_t *primary);
static inline int dmq__seal_can_send(const dmq__seal_t *s) {
  return s->primary >= 0;
}

/* Seal pkt in place with the primary key: pkt[0..off) is the envelope
 * (and label), pkt[off..off + DMQ__SEAL_HDR) the header room the encoder
 * left, pkt[off + DMQ__SEAL_HDR..len) the body; DMQ__SEAL_TAG bytes past
 * len must be writable. Writes the header, encrypts the body and appends
 * the tag; *out_len = len + DMQ__SEAL_TAG. DMQ_ESTATE without a primary
 * key, DMQ_EINVAL for a len that cannot be such a packet. */
int dmq__seal_close(dmq__seal_t *s, uint8_t *pkt, size_t len, size_t off,
                    int stream, size_t *out_len);

/* Open a sealed packet: header at pkt + off (off = the body offset
 * dmq__wire_head gave), ciphertext and tag after it. The plaintext body
 * (len - off - DMQ__SEAL_HDR - DMQ__SEAL_TAG bytes) goes to out. Returns 0
 * or a drop reason + 1: MALFORMED (unknown algorithm byte or a packet too
 * short), KEY_UNKNOWN (key id not in the ring), UNSUPPORTED (AES-256-GCM on
 * a CPU without it), AUTH (the tag does not verify: wrong key, forged or
 * corrupted). The replay window is not consulted (dmq__seal_replay). */
int dmq__seal_open(dmq__seal_t *s, const uint8_t *pkt, size_t len, size_t off,
                   uint8_t *out, dmq__seal_info_t *info);

/* A whole received packet, plain or sealed, as the node reads it: the
 * envelope (dmq__wire_head), then for a sealed packet dmq__seal_open into
 * out (out_cap bytes, at least len), then the body (dmq__wire_body) into
 * env, whose slices point into buf (plain) or out (sealed). info->sealed
 * tells which. No label, mode or replay check: 0 or a drop reason + 1.
 * This is the entry point for fuzzing the sealed path. */
int dmq__seal_open_packet(dmq__seal_t *s, const uint8_t *buf, size_t len,
                          uint8_t *out, size_t out_cap, dmq__envelope_t *env,
                          dmq__seal_info_t *info);

/* Replay check of an authenticated packet from sender `name` with the
 * generation and packet number of its sealed header. Returns 0 (new:
 * recorded), DMQ_DROP_REPLAY + 1 (seen, older than the window, or a
 * generation older than the one we track for that name) or
 * DMQ_DROP_BUDGET + 1 (no room for a new sender's state). State is kept for
 * at most `limit` senders (at least DMQ__SEAL_REPLAY_MIN); when full, an
 * entry for which keep(ud, name, len, gen) returns 0 is evicted (the node
 * keeps its live members'). keep may be NULL (evict any). */
int dmq__seal_replay(dmq__seal_t *s, const char *name, size_t name_len,
                     uint64_t gen, uint64_t pn, uint32_t limit,
                     int (*keep)(void *ud, const char *name, size_t len,
                                 uint64_t gen),
                     void *ud);

#endif
