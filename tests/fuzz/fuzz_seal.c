/* libFuzzer target: sealed packets (src/seal.h) and the replay window.
 *
 * The first input byte picks the mode (the rest is its input):
 *
 *   RAW     arbitrary bytes through dmq__seal_open_packet with a keyring of
 *           two keys (the node's receiving path without label, mode and
 *           replay checks): the result is 0 or a drop reason + 1; a packet
 *           that opens has its slices inside the packet (plain) or inside
 *           the opened body and the label inside the packet (sealed), and
 *           its messages iterate within their contract.
 *   SEALED  structure-aware: a packet built with the encoder from fuzz
 *           bytes (label or none, sender name, 1-4 messages), sealed with
 *           one of the two keys by either algorithm (AES-256-GCM when this
 *           CPU has it) on either path with a fuzz generation and packet
 *           number, must open as it was sealed (algorithm, key id,
 *           generation, packet number, the very plaintext); then copies of
 *           it with header, ciphertext, tag or envelope bytes changed,
 *           truncated or extended must never open as sealed packets (an
 *           edit that changes nothing is no edit), and a packet sealed with
 *           a key not in the keyring opens as KEY_UNKNOWN.
 *   REPLAY  a sequence of (sender, generation, packet number) through
 *           dmq__seal_replay for a handful of senders (below the table's
 *           size, so nothing is evicted): the same (sender, generation,
 *           packet number) is never accepted twice, a generation older than
 *           one accepted is never accepted, and a new highest packet number
 *           of the newest generation always is.
 */
#include "fuzz_common.h"
#include "seal.h"
#include "seal_util.h"

static const uint8_t key_a[DMQ_KEY_SIZE] = {
    0x73, 0x65, 0x61, 0x6c, 0x2d, 0x66, 0x75, 0x7a, 0x7a, 0x2d, 0x6b,
    0x65, 0x79, 0x2d, 0x61, 0x2d, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35,
    0x36, 0x37, 0x38, 0x39, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66};
static const uint8_t key_b[DMQ_KEY_SIZE] = {
    0x73, 0x65, 0x61, 0x6c, 0x2d, 0x66, 0x75, 0x7a, 0x7a, 0x2d, 0x6b,
    0x65, 0x79, 0x2d, 0x62, 0x2d, 0x66, 0x65, 0x64, 0x63, 0x62, 0x61,
    0x39, 0x38, 0x37, 0x36, 0x35, 0x34, 0x33, 0x32, 0x31, 0x30};
static const uint8_t key_c[DMQ_KEY_SIZE] = {
    0x73, 0x65, 0x61, 0x6c, 0x2d, 0x66, 0x75, 0x7a, 0x7a, 0x2d, 0x6b,
    0x65, 0x79, 0x2d, 0x63, 0x2d, 0x6e, 0x6f, 0x74, 0x2d, 0x69, 0x6e,
    0x2d, 0x74, 0x68, 0x65, 0x2d, 0x72, 0x69, 0x6e, 0x67, 0x21};

#define PKT_CAP 4096

typedef struct rig {
  dmq__seal_t rx;    /* keyring {a, b}: opens */
  dmq__seal_t tx[3]; /* primary a, b, c (c: not in rx's ring) */
  uint32_t id[3];
} rig_t;

/* Made once per process: sodium_malloc'd key storage is kept. */
static rig_t *rig(void) {
  static rig_t r;
  static int ready;
  if (!ready) {
    const dmq_alloc_t *a = &seal_util_alloc;
    CHECK(dmq__seal_init(&r.rx, a, 1) == 0);
    CHECK(dmq__seal_key_add(&r.rx, key_a, 1, &r.id[0]) == 0);
    CHECK(dmq__seal_key_add(&r.rx, key_b, 0, &r.id[1]) == 0);
    const uint8_t *k[3] = {key_a, key_b, key_c};
    for (int i = 0; i < 3; i++) {
      uint32_t id;
      CHECK(dmq__seal_init(&r.tx[i], a, 2 + (uint64_t)i) == 0);
      CHECK(dmq__seal_key_add(&r.tx[i], k[i], 1, &id) == 0);
      if (i < 2)
        CHECK(id == r.id[i]);
      r.id[i] = id;
    }
    ready = 1;
  }
  return &r;
}

/* A packet that opened: its slices lie where they must. */
static void check_opened(const dmq__envelope_t *env, const dmq__seal_info_t *si,
                         const uint8_t *buf, size_t len, const uint8_t *out,
                         size_t body_len) {
  CHECK(env->version == DMQ__WIRE_VERSION);
  CHECK((env->flags & ~DMQ__WIRE_FLAGS_KNOWN) == 0);
  CHECK(env->msg_count <= DMQ__WIRE_MAX_MSGS);
  CHECK(env->sender.n >= 1);
  fuzz_check_slice(env->label, buf, len, DMQ_MAX_LABEL);
  CHECK(!(env->flags & DMQ__WIRE_FLAG_SEALED) == !si->sealed);
  const uint8_t *base = si->sealed ? out : buf;
  size_t n = si->sealed ? body_len : len;
  fuzz_check_slice(env->sender, base, n, DMQ_MAX_NAME);
  if (env->msgs_len > 0)
    CHECK(env->msgs_p >= base && env->msgs_p + env->msgs_len <= base + n);
  (void)fuzz_check_msgs(env, base, n);
  if (si->sealed) {
    CHECK(si->alg == DMQ__SEAL_ALG_XCHACHA || si->alg == DMQ__SEAL_ALG_AESGCM);
    CHECK(len >= DMQ__SEAL_HDR + DMQ__SEAL_TAG);
  }
}

static void mode_raw(fuzz_in_t *in) {
  rig_t *r = rig();
  size_t len = in->n;
  /* a private copy of exactly len bytes: ASan sees reads past the end */
  uint8_t *buf = malloc(len ? len : 1);
  uint8_t *out = malloc(len ? len : 1);
  CHECK(buf != NULL && out != NULL);
  memcpy(buf, in->p, len);
  dmq__envelope_t env;
  dmq__seal_info_t si;
  int rc = dmq__seal_open_packet(&r->rx, buf, len, out, len, &env, &si);
  CHECK(rc >= 0 && rc <= DMQ_DROP_COUNT);
  if (rc == 0) {
    size_t off = len; /* body length of a sealed packet: from the envelope */
    if (si.sealed) {
      off = seal_util_off(buf);
      CHECK(len >= off + DMQ__SEAL_HDR + DMQ__SEAL_TAG);
      off = len - off - DMQ__SEAL_HDR - DMQ__SEAL_TAG;
    }
    check_opened(&env, &si, buf, len, out, off);
  }
  free(buf);
  free(out);
}

/* Build a packet from fuzz bytes with room for sealing; returns its length
 * (0: the encoder refused). */
static size_t build(fuzz_in_t *in, uint8_t *pkt, size_t cap) {
  char label[DMQ_MAX_LABEL];
  char name[DMQ_MAX_NAME];
  size_t ll = fuzz_u8(in) % (DMQ_MAX_LABEL + 1), nl;
  for (size_t i = 0; i < ll; i++)
    label[i] = (char)(0x21 + fuzz_u8(in) % 94); /* printable */
  nl = 1 + fuzz_u8(in) % 16;
  for (size_t i = 0; i < nl; i++)
    name[i] = (char)('a' + fuzz_u8(in) % 26);
  dmq__enc_t e;
  if (dmq__enc_begin_sealed(&e, pkt, cap, ll ? label : NULL, ll, name, nl, 1) !=
      0)
    return 0;
  int n = 1 + fuzz_u8(in) % 4;
  for (int i = 0; i < n; i++) {
    switch (fuzz_u8(in) % 4) {
    case 0:
      (void)dmq__enc_ack(&e, fuzz_u32(in));
      break;
    case 1: {
      dmq__slice_t t = {name, nl};
      (void)dmq__enc_ping(&e, fuzz_u32(in), t);
      break;
    }
    case 2: {
      dmq__slice_t t = {name, nl}, from = {"x", 1};
      (void)dmq__enc_suspect(&e, t, fuzz_u64(in), fuzz_u64(in), from);
      break;
    }
    default: {
      dmq__data_t d;
      size_t got;
      memset(&d, 0, sizeof d);
      d.channel.p = "c";
      d.channel.n = 1;
      d.src_gen = fuzz_u64(in);
      d.dst_gen = fuzz_u64(in);
      d.seq = fuzz_u32(in);
      d.base = d.seq;
      d.payload.p = (const char *)fuzz_bytes(in, fuzz_u16(in) % 1024, &got);
      d.payload.n = got;
      (void)dmq__enc_data(&e, &d);
      break;
    }
    }
  }
  return dmq__enc_end(&e);
}

static void mode_sealed(fuzz_in_t *in) {
  rig_t *r = rig();
  static uint8_t pkt[PKT_CAP + DMQ__SEAL_TAG], plain[PKT_CAP];
  static uint8_t out[PKT_CAP + 128];
  static uint8_t mod[PKT_CAP + 128];
  uint8_t how = fuzz_u8(in);
  int which = how % 3, stream = (how >> 2) & 1;
  uint8_t alg = (how >> 3) & 1 ? DMQ__SEAL_ALG_AESGCM : DMQ__SEAL_ALG_XCHACHA;
  dmq__seal_t *tx = &r->tx[which];
  if (dmq__seal_set_alg(tx, alg) != 0) {
    CHECK(alg == DMQ__SEAL_ALG_AESGCM && !dmq__seal_aes_available());
    alg = DMQ__SEAL_ALG_XCHACHA;
    CHECK(dmq__seal_set_alg(tx, alg) == 0);
  }
  tx->gen = fuzz_u64(in);
  tx->pn[stream] = fuzz_u64(in) & (DMQ__SEAL_PN_STREAM - 2);
  size_t len = build(in, pkt, sizeof pkt);
  if (len == 0)
    return;
  size_t off = seal_util_off(pkt);
  CHECK(len >= off + DMQ__SEAL_HDR);
  size_t body = len - off - DMQ__SEAL_HDR;
  memcpy(plain, pkt + off + DMQ__SEAL_HDR, body);
  size_t slen;
  CHECK(seal_util_close(tx, pkt, len, stream, &slen) == 0);
  CHECK(slen == len + DMQ__SEAL_TAG);

  /* unmodified: opens as sealed */
  dmq__envelope_t env;
  dmq__seal_info_t si;
  int rc = dmq__seal_open_packet(&r->rx, pkt, slen, out, sizeof out, &env, &si);
  if (which == 2) {
    CHECK(rc == DMQ_DROP_KEY_UNKNOWN + 1);
    return;
  }
  CHECK(rc == 0);
  CHECK(si.sealed && si.alg == alg && si.key_id == r->id[which]);
  CHECK(si.gen == tx->gen &&
        si.pn == (tx->pn[stream] | (stream ? DMQ__SEAL_PN_STREAM : 0)));
  CHECK(!!(si.pn & DMQ__SEAL_PN_STREAM) == stream);
  CHECK(memcmp(out, plain, body) == 0);
  check_opened(&env, &si, pkt, slen, out, body);

  /* modified copies never open as sealed packets */
  while (fuzz_left(in)) {
    size_t mlen = slen;
    memcpy(mod, pkt, slen);
    int edits = 1 + fuzz_u8(in) % 4;
    for (int i = 0; i < edits; i++) {
      uint8_t where = fuzz_u8(in);
      size_t at;
      switch (where % 4) { /* envelope+label, header, ciphertext, tag */
      case 0:
        at = fuzz_u8(in) % off;
        break;
      case 1:
        at = off + fuzz_u8(in) % DMQ__SEAL_HDR;
        break;
      case 2:
        at = body ? off + DMQ__SEAL_HDR + fuzz_u16(in) % body : 0;
        break;
      default:
        at = slen - DMQ__SEAL_TAG + fuzz_u8(in) % DMQ__SEAL_TAG;
        break;
      }
      mod[at] ^= fuzz_u8(in);
    }
    switch (fuzz_u8(in) % 4) {
    case 0: /* truncated */
      mlen -= 1 + fuzz_u16(in) % mlen;
      break;
    case 1: { /* extended */
      size_t more = 1 + fuzz_u8(in) % 64;
      for (size_t i = 0; i < more; i++)
        mod[mlen + i] = fuzz_u8(in);
      mlen += more;
      break;
    }
    default:
      break;
    }
    int same = mlen == slen && memcmp(mod, pkt, slen) == 0;
    uint8_t *copy = malloc(mlen ? mlen : 1);
    CHECK(copy != NULL);
    memcpy(copy, mod, mlen);
    rc = dmq__seal_open_packet(&r->rx, copy, mlen, out, sizeof out, &env, &si);
    CHECK(rc >= 0 && rc <= DMQ_DROP_COUNT);
    if (same) {
      CHECK(rc == 0 && si.sealed && memcmp(out, plain, body) == 0);
    } else if (rc == 0) {
      CHECK(!si.sealed); /* an edit made it a plain packet: no seal */
      check_opened(&env, &si, copy, mlen, out, 0);
    }
    free(copy);
  }
}

/* Accepted (sender, generation, packet number) triples. */
#define R_SENDERS 8
#define R_MAX 4096

static void mode_replay(fuzz_in_t *in) {
  static const char *const names[R_SENDERS] = {"a", "b", "c", "d",
                                               "e", "f", "g", "h"};
  static struct { uint64_t gen, pn; } seen[R_SENDERS][R_MAX];
  size_t nseen[R_SENDERS] = {0};
  uint64_t maxgen[R_SENDERS] = {0}, top[R_SENDERS][2] = {{0}};
  int any[R_SENDERS] = {0};
  dmq__seal_t s;
  memset(&s, 0, sizeof s);
  s.alloc = seal_util_alloc; /* the replay table needs the allocator only */
  for (int k = 0; k < R_MAX && fuzz_left(in); k++) {
    uint8_t b = fuzz_u8(in);
    int who = b % R_SENDERS;
    uint64_t gen = (b >> 3) & 1 ? maxgen[who] : fuzz_u8(in) % 4;
    uint64_t pn;
    switch ((b >> 4) % 4) {
    case 0: /* the next one */
      pn = top[who][(b >> 6) & 1] + 1;
      break;
    case 1: /* a little behind or ahead */
      pn = top[who][(b >> 6) & 1] + (uint64_t)(int8_t)fuzz_u8(in);
      break;
    case 2: /* around the window's edge */
      pn = top[who][(b >> 6) & 1] - DMQ__SEAL_WINDOW + fuzz_u8(in) % 8;
      break;
    default:
      pn = fuzz_u64(in) & ~DMQ__SEAL_PN_STREAM;
      break;
    }
    pn &= ~DMQ__SEAL_PN_STREAM;
    int path = (b >> 6) & 1;
    if (path)
      pn |= DMQ__SEAL_PN_STREAM;
    uint64_t num = pn & ~DMQ__SEAL_PN_STREAM;
    int older = any[who] && gen < maxgen[who];
    if (!any[who] || gen > maxgen[who]) { /* a sender's first or new life */
      top[who][0] = top[who][1] = 0;
      maxgen[who] = gen;
      any[who] = 1;
    }
    int rc = dmq__seal_replay(&s, names[who], 1, gen, pn, 0, NULL, NULL);
    CHECK(rc == 0 || rc == DMQ_DROP_REPLAY + 1);
    if (older)
      CHECK(rc != 0);
    else if (num > top[who][path]) /* a new highest number of this life */
      CHECK(rc == 0);
    if (rc != 0)
      continue;
    for (size_t i = 0; i < nseen[who]; i++)
      CHECK(seen[who][i].gen != gen || seen[who][i].pn != pn);
    seen[who][nseen[who]].gen = gen;
    seen[who][nseen[who]].pn = pn;
    nseen[who]++;
    if (num > top[who][path])
      top[who][path] = num;
  }
  dmq__seal_free(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_in_t in = {data, size};
  switch (fuzz_u8(&in) % 3) {
  case 0:
    mode_raw(&in);
    break;
  case 1:
    mode_sealed(&in);
    break;
  default:
    mode_replay(&in);
    break;
  }
  return 0;
}
