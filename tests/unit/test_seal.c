/* Unit tests for sealing (src/seal.c) and its use by the node: round trips
 * of both algorithms, every single-byte change refused, wrong and unknown
 * keys, the replay window, the sealed header's bytes (golden), the keyring
 * API, the mode matrix and the cluster label, over an in-memory transport. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include <dmq/dmq.h>

#include "memnet.h"
#include "seal.h"
#include "seal_util.h"
#include "wire.h"

#define DROP(r) (DMQ_DROP_##r + 1)

static const uint8_t key_a[DMQ_KEY_SIZE] = {
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a,
    0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15,
    0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f};
static const uint8_t key_b[DMQ_KEY_SIZE] = {
    0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0xfa, 0xf9, 0xf8, 0xf7, 0xf6, 0xf5,
    0xf4, 0xf3, 0xf2, 0xf1, 0xf0, 0xef, 0xee, 0xed, 0xec, 0xeb, 0xea,
    0xe9, 0xe8, 0xe7, 0xe6, 0xe5, 0xe4, 0xe3, 0xe2, 0xe1, 0xe0};

/* A sealed packet from "n1" (label "lab" or none) with a PING and a DATA
 * whose src_gen is gen. Returns its length. */
static size_t build(dmq__seal_t *s, uint8_t *buf, size_t cap, const char *label,
                    int stream) {
  dmq__enc_t e;
  size_t ll = label ? strlen(label) : 0;
  assert_int_equal(dmq__enc_begin_sealed(&e, buf, cap, label, ll, "n1", 2, 1),
                   0);
  dmq__slice_t t = {"n0", 2};
  assert_int_equal(dmq__enc_ping(&e, 7, t), 0);
  dmq__data_t d;
  memset(&d, 0, sizeof d);
  d.flags = DMQ__DATA_RELIABLE;
  d.channel.p = "ch";
  d.channel.n = 2;
  d.src_gen = s->gen;
  d.dst_gen = 1;
  d.seq = 1;
  d.base = 1;
  d.ttl_ms = 1000;
  d.payload.p = "hello";
  d.payload.n = 5;
  assert_int_equal(dmq__enc_data(&e, &d), 0);
  size_t len = dmq__enc_end(&e), out;
  assert_int_equal(seal_util_close(s, buf, len, stream, &out), 0);
  assert_int_equal(out, len + DMQ__SEAL_TAG);
  return out;
}

static void roundtrip(uint8_t alg) {
  dmq__seal_t tx, rx;
  assert_int_equal(dmq__seal_init(&tx, &seal_util_alloc, 42), 0);
  assert_int_equal(dmq__seal_init(&rx, &seal_util_alloc, 43), 0);
  assert_int_equal(dmq__seal_set_alg(&tx, alg), 0);
  uint32_t id;
  assert_int_equal(dmq__seal_key_add(&tx, key_a, 1, &id), 0);
  assert_int_equal(id, dmq__seal_key_id(key_a));
  assert_int_equal(dmq__seal_key_add(&rx, key_b, 1, NULL), 0);
  assert_int_equal(dmq__seal_key_add(&rx, key_a, 0, NULL), 0);
  uint8_t buf[512], out[512];
  for (int labelled = 0; labelled < 2; labelled++) {
    const char *label = labelled ? "lab" : NULL;
    size_t len = build(&tx, buf, sizeof buf, label, 0);
    dmq__envelope_t env;
    dmq__seal_info_t si;
    assert_int_equal(
        dmq__seal_open_packet(&rx, buf, len, out, sizeof out, &env, &si), 0);
    assert_true(si.sealed);
    assert_int_equal(si.alg, alg);
    assert_int_equal(si.key_id, id);
    assert_int_equal(si.gen, 42);
    assert_int_equal(env.sender.n, 2);
    assert_memory_equal(env.sender.p, "n1", 2);
    assert_int_equal(env.msg_count, 2);
    assert_int_equal(env.label.n, labelled ? 3 : 0);
    dmq__msg_iter_t it;
    dmq__msg_t m;
    dmq__wire_msgs(&env, &it);
    assert_int_equal(dmq__wire_next(&it, &m), 1);
    assert_int_equal(m.type, DMQ__MSG_PING);
    assert_int_equal(m.seq, 7);
    assert_int_equal(dmq__wire_next(&it, &m), 1);
    assert_int_equal(m.type, DMQ__MSG_DATA);
    assert_memory_equal(m.data.payload.p, "hello", 5);
    /* the plaintext is nowhere in the sealed packet */
    for (size_t i = 0; i + 5 <= len; i++)
      assert_true(memcmp(buf + i, "hello", 5) != 0);

    /* every single-byte change is refused (magic, version, flags: by the
     * envelope);
     * outside the algorithm and key id bytes it fails authentication */
    size_t off = 4 + (labelled ? 4 : 0);
    for (size_t i = 0; i < len; i++) {
      for (int bit = 0; bit < 8; bit += 7) {
        buf[i] ^= (uint8_t)(1u << bit);
        int rc =
            dmq__seal_open_packet(&rx, buf, len, out, sizeof out, &env, &si);
        assert_int_not_equal(rc, 0);
        if (i >= off + 5 && !(labelled && i == 4))
          assert_int_equal(rc, DROP(AUTH));
        buf[i] ^= (uint8_t)(1u << bit);
      }
    }
    /* truncated anywhere: refused */
    for (size_t l = 0; l < len; l++)
      assert_int_not_equal(
          dmq__seal_open_packet(&rx, buf, l, out, sizeof out, &env, &si), 0);
    assert_int_equal(
        dmq__seal_open_packet(&rx, buf, len, out, sizeof out, &env, &si), 0);
  }
  dmq__seal_free(&tx);
  dmq__seal_free(&rx);
}

static void test_roundtrip_xchacha(void **state) {
  (void)state;
  roundtrip(DMQ__SEAL_ALG_XCHACHA);
}

static void test_roundtrip_aesgcm(void **state) {
  (void)state;
  if (!dmq__seal_aes_available()) {
    dmq__seal_t s;
    assert_int_equal(dmq__seal_init(&s, &seal_util_alloc, 1), 0);
    assert_int_equal(dmq__seal_set_alg(&s, DMQ__SEAL_ALG_AESGCM), DMQ_ENOTSUP);
    dmq__seal_free(&s);
    skip();
  }
  roundtrip(DMQ__SEAL_ALG_AESGCM);
}

/* Wrong key: unknown id; the right id with other key bytes: AUTH; no key
 * at all: KEY_UNKNOWN; an unknown algorithm byte: MALFORMED. */
static void test_wrong_and_unknown_keys(void **state) {
  (void)state;
  dmq__seal_t tx, rx;
  assert_int_equal(dmq__seal_init(&tx, &seal_util_alloc, 5), 0);
  assert_int_equal(dmq__seal_init(&rx, &seal_util_alloc, 6), 0);
  assert_int_equal(dmq__seal_key_add(&tx, key_a, 1, NULL), 0);
  uint8_t buf[512], out[512];
  size_t len = build(&tx, buf, sizeof buf, NULL, 0);
  dmq__envelope_t env;
  dmq__seal_info_t si;
  assert_int_equal(
      dmq__seal_open_packet(&rx, buf, len, out, sizeof out, &env, &si),
      DROP(KEY_UNKNOWN));
  assert_int_equal(dmq__seal_key_add(&rx, key_b, 1, NULL), 0);
  assert_int_equal(
      dmq__seal_open_packet(&rx, buf, len, out, sizeof out, &env, &si),
      DROP(KEY_UNKNOWN));
  assert_int_equal(si.key_id, dmq__seal_key_id(key_a));
  /* a forger who knows the id but not the key */
  rx.keys[0].id = dmq__seal_key_id(key_a);
  assert_int_equal(
      dmq__seal_open_packet(&rx, buf, len, out, sizeof out, &env, &si),
      DROP(AUTH));
  buf[4] = 9; /* algorithm */
  assert_int_equal(
      dmq__seal_open_packet(&rx, buf, len, out, sizeof out, &env, &si),
      DROP(MALFORMED));
  /* plain dmq__wire_open still refuses sealed packets */
  assert_int_equal(dmq__wire_open(buf, len, &env), DROP(UNSUPPORTED));
  dmq__seal_free(&tx);
  dmq__seal_free(&rx);
}

/* The sealed header's layout, and (XChaCha20-Poly1305 being deterministic
 * for a given key and nonce) the whole packet: interoperability. */
static void test_golden_header(void **state) {
  (void)state;
  dmq__seal_t s;
  assert_int_equal(dmq__seal_init(&s, &seal_util_alloc, 0x0102030405060708ull),
                   0);
  assert_int_equal(dmq__seal_set_alg(&s, DMQ__SEAL_ALG_XCHACHA), 0);
  for (int i = 0; i < DMQ__SEAL_SESSION; i++)
    s.session[i] = (uint8_t)(0xa0 + i);
  assert_int_equal(dmq__seal_key_add(&s, key_a, 1, NULL), 0);
  s.pn[1] = 0x10; /* next stream packet: 0x11 with the stream bit */
  uint8_t buf[128];
  dmq__enc_t e;
  assert_int_equal(
      dmq__enc_begin_sealed(&e, buf, sizeof buf, "L", 1, "n1", 2, 1), 0);
  assert_int_equal(dmq__enc_ack(&e, 3), 0);
  size_t len = dmq__enc_end(&e), out;
  assert_int_equal(seal_util_close(&s, buf, len, 1, &out), 0);
  uint32_t id = dmq__seal_key_id(key_a);
  const uint8_t head[] = {'D',
                          'Q',
                          1,
                          0x03,
                          1,
                          'L',  /* envelope: LABEL|SEALED, "L" */
                          0x01, /* alg XChaCha20-Poly1305 */
                          (uint8_t)(id >> 24),
                          (uint8_t)(id >> 16),
                          (uint8_t)(id >> 8),
                          (uint8_t)id, /* key id */
                          0x01,
                          0x02,
                          0x03,
                          0x04,
                          0x05,
                          0x06,
                          0x07,
                          0x08, /* generation */
                          0x80,
                          0x00,
                          0x00,
                          0x00,
                          0x00,
                          0x00,
                          0x00,
                          0x11, /* stream pn 0x11 */
                          0xa0,
                          0xa1,
                          0xa2,
                          0xa3,
                          0xa4,
                          0xa5,
                          0xa6,
                          0xa7,
                          0xa8,
                          0xa9,
                          0xaa,
                          0xab,
                          0xac,
                          0xad,
                          0xae,
                          0xaf}; /* session */
  assert_int_equal(sizeof head, 6 + DMQ__SEAL_HDR);
  assert_memory_equal(buf, head, sizeof head);
  /* body [n1, [[3, 3]]] = 92 a2 6e 31 dd 00000001 92 03 03 (12 bytes) and
   * the tag: pinned, so that any change of nonce, AD or key derivation
   * fails here */
  assert_int_equal(out, sizeof head + 12 + DMQ__SEAL_TAG);
  assert_int_equal(id, 0xdea482a0u);
  static const uint8_t sealed_tail[12 + DMQ__SEAL_TAG] = {
#include "seal_golden.inc"
  };
  assert_memory_equal(buf + sizeof head, sealed_tail, sizeof sealed_tail);
  /* and independently of src/seal.c, straight from the documented layout:
   * nonce = session | pn, associated data = everything before the body */
  uint8_t nonce[24], plain[12];
  memcpy(nonce, head + 27, 16);
  memcpy(nonce + 16, head + 19, 8);
  assert_int_equal(crypto_aead_xchacha20poly1305_ietf_decrypt_detached(
                       plain, NULL, buf + sizeof head, 12,
                       buf + sizeof head + 12, head, sizeof head, nonce, key_a),
                   0);
  const uint8_t body[12] = {0x92, 0xa2, 'n', '1', 0xdd, 0, 0, 0, 1, 0x92, 3, 3};
  assert_memory_equal(plain, body, sizeof body);
  uint8_t idh[16];
  crypto_generichash(idh, sizeof idh, (const uint8_t *)"dmq key id v1", 13,
                     key_a, sizeof key_a);
  assert_int_equal(id, (uint32_t)idh[0] << 24 | (uint32_t)idh[1] << 16 |
                           (uint32_t)idh[2] << 8 | idh[3]);
  dmq__seal_free(&s);
}

static void test_replay_window(void **state) {
  (void)state;
  dmq__seal_t s;
  assert_int_equal(dmq__seal_init(&s, &seal_util_alloc, 1), 0);
  const uint64_t S = DMQ__SEAL_PN_STREAM;
  assert_int_equal(dmq__seal_replay(&s, "a", 1, 5, 10, 0, NULL, NULL), 0);
  assert_int_equal(dmq__seal_replay(&s, "a", 1, 5, 10, 0, NULL, NULL),
                   DROP(REPLAY));
  /* reordering inside the window is fine, once */
  assert_int_equal(dmq__seal_replay(&s, "a", 1, 5, 8, 0, NULL, NULL), 0);
  assert_int_equal(dmq__seal_replay(&s, "a", 1, 5, 8, 0, NULL, NULL),
                   DROP(REPLAY));
  assert_int_equal(dmq__seal_replay(&s, "a", 1, 5, 9, 0, NULL, NULL), 0);
  /* the stream path counts apart: a low stream number is not old */
  assert_int_equal(dmq__seal_replay(&s, "a", 1, 5, S | 1, 0, NULL, NULL), 0);
  assert_int_equal(dmq__seal_replay(&s, "a", 1, 5, S | 1, 0, NULL, NULL),
                   DROP(REPLAY));
  /* far ahead, then too old for the window */
  uint64_t top = 10 + DMQ__SEAL_WINDOW + 5;
  assert_int_equal(dmq__seal_replay(&s, "a", 1, 5, top, 0, NULL, NULL), 0);
  assert_int_equal(dmq__seal_replay(&s, "a", 1, 5, 11, 0, NULL, NULL),
                   DROP(REPLAY));
  assert_int_equal(dmq__seal_replay(&s, "a", 1, 5, top - DMQ__SEAL_WINDOW + 1,
                                    0, NULL, NULL),
                   0);
  assert_int_equal(
      dmq__seal_replay(&s, "a", 1, 5, top - DMQ__SEAL_WINDOW, 0, NULL, NULL),
      DROP(REPLAY));
  /* the bits of numbers skipped by an advance are clear */
  assert_int_equal(dmq__seal_replay(&s, "a", 1, 5, top - 1, 0, NULL, NULL), 0);
  /* a previous generation: replay; a new one starts over */
  assert_int_equal(dmq__seal_replay(&s, "a", 1, 4, top + 1, 0, NULL, NULL),
                   DROP(REPLAY));
  assert_int_equal(dmq__seal_replay(&s, "a", 1, 6, 1, 0, NULL, NULL), 0);
  assert_int_equal(dmq__seal_replay(&s, "a", 1, 5, top + 2, 0, NULL, NULL),
                   DROP(REPLAY));
  assert_int_equal(dmq__seal_replay(&s, "a", 1, 6, 0, 0, NULL, NULL),
                   DROP(REPLAY));
  dmq__seal_free(&s);
}

static int keep_low(void *ud, const char *name, size_t len, uint64_t gen) {
  (void)ud;
  (void)name;
  (void)len;
  return gen < 10;
}
static int keep_all(void *ud, const char *name, size_t len, uint64_t gen) {
  (void)ud;
  (void)name;
  (void)len;
  (void)gen;
  return 1;
}

/* The replay table is bounded: when full, entries the node does not keep
 * (generations 10 and up here) make room; a kept one survives; with nothing to
 * evict a new sender is refused (BUDGET). */
static void test_replay_bounded(void **state) {
  (void)state;
  dmq__seal_t s;
  assert_int_equal(dmq__seal_init(&s, &seal_util_alloc, 1), 0);
  char name[16];
  for (int i = 0; i < 3 * DMQ__SEAL_REPLAY_MIN; i++) {
    int l = snprintf(name, sizeof name, "m%d", i);
    assert_int_equal(dmq__seal_replay(&s, name, (size_t)l, (uint64_t)i, 1, 0,
                                      keep_low, NULL),
                     0);
    assert_true(s.count <= DMQ__SEAL_REPLAY_MIN);
  }
  /* m0 was kept: its packet 1 is still a replay */
  assert_int_equal(dmq__seal_replay(&s, "m0", 2, 0, 1, 0, keep_low, NULL),
                   DROP(REPLAY));
  assert_int_equal(dmq__seal_replay(&s, "zz", 2, 1, 1, 0, keep_all, NULL),
                   DROP(BUDGET));
  dmq__seal_free(&s);
}

static void test_keyring(void **state) {
  (void)state;
  dmq__seal_t s;
  assert_int_equal(dmq__seal_init(&s, &seal_util_alloc, 1), 0);
  uint32_t ids[DMQ_MAX_KEYS], prim;
  assert_int_equal(dmq__seal_keys(&s, ids, DMQ_MAX_KEYS, &prim), 0);
  assert_int_equal(prim, 0);
  assert_false(dmq__seal_can_send(&s));
  uint8_t k[DMQ_KEY_SIZE];
  for (int i = 0; i < DMQ_MAX_KEYS; i++) {
    memset(k, i + 1, sizeof k);
    assert_int_equal(dmq__seal_key_add(&s, k, 0, NULL), 0);
  }
  assert_int_equal(dmq__seal_key_add(&s, k, 0, NULL), DMQ_EEXIST);
  memset(k, 0x77, sizeof k);
  assert_int_equal(dmq__seal_key_add(&s, k, 0, NULL), DMQ_ELIMIT);
  memset(k, 1, sizeof k);
  uint32_t first = dmq__seal_key_id(k);
  assert_int_equal(dmq__seal_keys(&s, ids, 2, &prim), DMQ_MAX_KEYS);
  assert_int_equal(prim, first); /* the first key added */
  assert_int_equal(dmq__seal_key_remove(&s, first), DMQ_ESTATE);
  assert_int_equal(dmq__seal_key_use(&s, ids[1]), 0);
  assert_int_equal(dmq__seal_key_remove(&s, first), 0);
  assert_int_equal(dmq__seal_key_remove(&s, first), DMQ_ENOENT);
  assert_int_equal(dmq__seal_key_use(&s, first), DMQ_ENOENT);
  assert_int_equal(dmq__seal_keys(&s, NULL, 0, &prim), DMQ_MAX_KEYS - 1);
  assert_int_equal(prim, ids[1]);
  /* the removed slot is wiped */
  for (size_t i = 0; i < sizeof s.keys[DMQ_MAX_KEYS - 1]; i++)
    assert_int_equal(((uint8_t *)&s.keys[DMQ_MAX_KEYS - 1])[i], 0);
  dmq__seal_free(&s);
}

/* ---- the node: API, mode matrix, label ---- */

typedef struct net2 {
  memnet_t net;
  memnet_tp_t tp[2];
  dmq_node_t *node[2];
  uint64_t now;
} net2_t;

static void net2_init(net2_t *w, const char *label0, const char *label1) {
  memset(w, 0, sizeof *w);
  memnet_init(&w->net, 4096);
  const char *labels[2] = {label0, label1};
  for (int i = 0; i < 2; i++) {
    dmq_config_t c;
    dmq_config_init(&c, DMQ_PROFILE_LOCAL);
    char name[8];
    snprintf(name, sizeof name, "n%d", i);
    memnet_tp_init(&w->tp[i], &w->net, i);
    c.name = name;
    c.advertise_addr = w->tp[i].addr;
    c.generation = 100 + (uint64_t)i;
    c.rng_seed = (uint64_t)i + 1;
    c.label = labels[i];
    assert_int_equal(dmq_node_new(&c, NULL, &w->node[i]), 0);
    assert_int_equal(dmq_node_add_transport(w->node[i], &w->tp[i].t), 0);
    assert_int_equal(dmq_node_start(w->node[i], 0), 0);
  }
}

static void net2_free(net2_t *w) {
  for (int i = 0; i < 2; i++)
    dmq_node_delete(w->node[i]);
  memnet_free(&w->net);
}

static int net2_join(net2_t *w, uint64_t ms) {
  const char *seed = "mem://0";
  assert_int_equal(dmq_node_join(w->node[1], &seed, 1, w->now), 0);
  memnet_run(&w->net, w->node, w->tp, 2, &w->now, w->now + ms);
  return dmq_node_member_count(w->node[0], DMQ_MASK_LIVE) == 2 &&
         dmq_node_member_count(w->node[1], DMQ_MASK_LIVE) == 2;
}

static uint64_t drops(dmq_node_t *n, dmq_drop_reason_t r) {
  dmq_stats_t st;
  dmq_node_stats(n, &st);
  return st.drops[r];
}

static void test_node_key_api(void **state) {
  (void)state;
  net2_t w;
  net2_init(&w, NULL, NULL);
  dmq_node_t *n = w.node[0];
  uint32_t id, ids[4], prim;
  assert_int_equal(dmq_node_key_add(NULL, key_a, DMQ_KEY_SIZE, 1, &id),
                   DMQ_EINVAL);
  assert_int_equal(dmq_node_key_add(n, key_a, 31, 1, &id), DMQ_EINVAL);
  assert_int_equal(dmq_node_set_seal_mode(n, DMQ_SEAL_REQUIRED), DMQ_ESTATE);
  assert_int_equal(dmq_node_set_seal_mode(n, (dmq_seal_mode_t)7), DMQ_EINVAL);
  assert_int_equal(dmq_node_key_add(n, key_a, DMQ_KEY_SIZE, 0, &id), 0);
  assert_int_equal(id, dmq_key_id(key_a, DMQ_KEY_SIZE));
  assert_int_equal(dmq_node_key_add(n, key_a, DMQ_KEY_SIZE, 0, NULL),
                   DMQ_EEXIST);
  assert_int_equal(dmq_node_set_seal_mode(n, DMQ_SEAL_REQUIRED), 0);
  assert_int_equal(dmq_node_seal_mode(n), DMQ_SEAL_REQUIRED);
  /* the last key cannot go while sealing is on */
  assert_int_equal(dmq_node_key_remove(n, id), DMQ_ESTATE);
  uint32_t idb;
  assert_int_equal(dmq_node_key_add(n, key_b, DMQ_KEY_SIZE, 1, &idb), 0);
  assert_int_equal(dmq_node_keys(n, ids, 4, &prim), 2);
  assert_int_equal(prim, idb);
  assert_int_equal(dmq_node_key_remove(n, idb), DMQ_ESTATE); /* primary */
  assert_int_equal(dmq_node_key_use(n, id), 0);
  assert_int_equal(dmq_node_key_remove(n, idb), 0);
  assert_int_equal(dmq_node_key_use(n, idb), DMQ_ENOENT);
  assert_int_equal(dmq_node_set_seal_mode(n, DMQ_SEAL_OFF), 0);
  assert_int_equal(dmq_node_key_remove(n, id), 0);
  assert_int_equal(dmq_node_keys(n, NULL, 0, &prim), 0);
  assert_int_equal(prim, 0);
  /* hex */
  uint8_t k[DMQ_KEY_SIZE];
  const char *hex =
      "000102030405060708090a0b0c0d0e0f101112131415161718191A1B1C1D1E1F";
  assert_int_equal(dmq_key_from_hex(hex, 64, k), 0);
  assert_memory_equal(k, key_a, DMQ_KEY_SIZE);
  assert_int_equal(dmq_key_from_hex(hex, 63, k), DMQ_EINVAL);
  char bad[65];
  memcpy(bad, hex, 65);
  bad[10] = 'g';
  assert_int_equal(dmq_key_from_hex(bad, 64, k), DMQ_EINVAL);
  dmq_seal_mode_t m;
  assert_int_equal(dmq_seal_mode_from_name("transition", &m), 0);
  assert_int_equal(m, DMQ_SEAL_TRANSITION);
  assert_int_equal(dmq_seal_mode_from_name("on", &m), DMQ_ENOENT);
  assert_string_equal(dmq_seal_mode_name(DMQ_SEAL_REQUIRED), "required");
  /* bad labels */
  dmq_config_t c;
  dmq_config_init(&c, DMQ_PROFILE_LAN);
  c.name = "x";
  c.advertise_addr = "mem://9";
  c.generation = 1;
  dmq_node_t *o = NULL;
  c.label = "has space";
  assert_int_equal(dmq_node_new(&c, NULL, &o), DMQ_EINVAL);
  c.label = "0123456789012345678901234567890123456789012345678901234567890"
            "12345"; /* 65 */
  assert_int_equal(dmq_node_new(&c, NULL, &o), DMQ_EINVAL);
  c.label = "";
  c.seal_mode = (dmq_seal_mode_t)3;
  assert_int_equal(dmq_node_new(&c, NULL, &o), DMQ_EINVAL);
  c.seal_mode = DMQ_SEAL_REQUIRED; /* acts as off until a key is added */
  assert_int_equal(dmq_node_new(&c, NULL, &o), 0);
  dmq_node_delete(o);
  net2_free(&w);
}

/* What each node has: 0 no key, 1 key a + mode off, 2 key a + transition,
 * 3 key a + required, 4 key b + required. */
static void net2_setup(net2_t *w, int i, int what) {
  dmq_node_t *n = w->node[i];
  if (what == 0)
    return;
  assert_int_equal(
      dmq_node_key_add(n, what == 4 ? key_b : key_a, DMQ_KEY_SIZE, 1, NULL), 0);
  static const dmq_seal_mode_t modes[] = {DMQ_SEAL_OFF, DMQ_SEAL_OFF,
                                          DMQ_SEAL_TRANSITION,
                                          DMQ_SEAL_REQUIRED, DMQ_SEAL_REQUIRED};
  assert_int_equal(dmq_node_set_seal_mode(n, modes[what]), 0);
}

static int sends_sealed(int what) {
  return what >= 2;
}
static int accepts(int rx, int tx) {
  if (sends_sealed(tx))
    return rx != 0 && (rx == 4) == (tx == 4);
  return rx != 3 && rx != 4;
}

static void test_mode_matrix(void **state) {
  (void)state;
  for (int a = 0; a < 5; a++) {
    for (int b = 0; b < 5; b++) {
      net2_t w;
      net2_init(&w, NULL, NULL);
      net2_setup(&w, 0, a);
      net2_setup(&w, 1, b);
      int joined = net2_join(&w, 3000);
      int expect = accepts(a, b) && accepts(b, a);
      if (joined != expect)
        fail_msg("node0 %d node1 %d: joined %d, expected %d", a, b, joined,
                 expect);
      /* node0 saw node1's packets: the counter says why it refused */
      if (!accepts(a, b)) {
        dmq_drop_reason_t r =
            !sends_sealed(b) ? DMQ_DROP_PLAINTEXT : DMQ_DROP_KEY_UNKNOWN;
        if (drops(w.node[0], r) == 0)
          fail_msg("node0 %d node1 %d: no %s drop", a, b,
                   dmq_drop_reason_name(r));
      } else {
        assert_int_equal(drops(w.node[0], DMQ_DROP_PLAINTEXT) +
                             drops(w.node[0], DMQ_DROP_KEY_UNKNOWN) +
                             drops(w.node[0], DMQ_DROP_AUTH) +
                             drops(w.node[0], DMQ_DROP_REPLAY),
                         0);
      }
      net2_free(&w);
    }
  }
}

static void test_label(void **state) {
  (void)state;
  static const char *const pairs[][2] = {
      {"blue", "blue"}, {"blue", "red"}, {"blue", NULL}, {NULL, "red"}};
  for (int keyed = 0; keyed < 2; keyed++) {
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
      net2_t w;
      net2_init(&w, pairs[i][0], pairs[i][1]);
      if (keyed) {
        net2_setup(&w, 0, 3);
        net2_setup(&w, 1, 3);
      }
      int same = i == 0;
      assert_int_equal(net2_join(&w, 3000), same);
      assert_int_equal(drops(w.node[0], DMQ_DROP_LABEL) > 0, !same);
      net2_free(&w);
    }
  }
}

/* A replayed sealed packet is dropped and counted; so is a message whose
 * claimed generation of its sender differs from the sealed one. */
static void test_node_replay_and_gen(void **state) {
  (void)state;
  net2_t w;
  net2_init(&w, NULL, NULL);
  net2_setup(&w, 0, 3);
  net2_setup(&w, 1, 3);
  assert_true(net2_join(&w, 3000));
  /* capture one packet node1 sends, deliver it twice */
  w.net.blackhole = 0;
  dmq_node_tick(w.node[1], w.now + 1000);
  assert_true(w.net.tail > w.net.head);
  memnet_pkt_t k = w.net.q[w.net.head % w.net.cap];
  uint8_t copy[2048];
  assert_true(k.len <= sizeof copy);
  memcpy(copy, k.buf, k.len);
  size_t clen = k.len;
  memnet_deliver(&w.net, w.node, w.tp, 2, w.now + 1000);
  uint64_t before =
      drops(w.node[0], DMQ_DROP_REPLAY) + drops(w.node[1], DMQ_DROP_REPLAY);
  int to = k.to;
  dmq_node_recv(w.node[to], &w.tp[to].t, "mem://1", copy, clen, w.now + 1000);
  assert_int_equal(drops(w.node[0], DMQ_DROP_REPLAY) +
                       drops(w.node[1], DMQ_DROP_REPLAY),
                   before + 1);

  /* a key holder that lies about its generation: ALIVE of itself with
   * another generation than the sealed one */
  dmq__seal_t s;
  assert_int_equal(dmq__seal_init(&s, &seal_util_alloc, 101), 0);
  assert_int_equal(dmq__seal_key_add(&s, key_a, 1, NULL), 0);
  s.pn[0] = 1u << 20; /* ahead of what node1 sent */
  uint8_t buf[512];
  dmq__enc_t e;
  assert_int_equal(
      dmq__enc_begin_sealed(&e, buf, sizeof buf, NULL, 0, "n1", 2, 1), 0);
  dmq__slice_t nm = {"n1", 2}, ad = {"mem://1", 7}, meta = {NULL, 0};
  assert_int_equal(dmq__enc_alive(&e, nm, ad, 99, 999, meta, NULL), 0);
  size_t len = dmq__enc_end(&e), out;
  assert_int_equal(seal_util_close(&s, buf, len, 0, &out), 0);
  uint64_t auth = drops(w.node[0], DMQ_DROP_AUTH);
  dmq_node_recv(w.node[0], &w.tp[0].t, "mem://1", buf, out, w.now + 1000);
  assert_int_equal(drops(w.node[0], DMQ_DROP_AUTH), auth + 1);
  dmq_member_info_t mi;
  assert_int_equal(dmq_node_member(w.node[0], "n1", &mi), 0);
  assert_int_equal(mi.generation, 101);
  dmq__seal_free(&s);
  net2_free(&w);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roundtrip_xchacha),
      cmocka_unit_test(test_roundtrip_aesgcm),
      cmocka_unit_test(test_wrong_and_unknown_keys),
      cmocka_unit_test(test_golden_header),
      cmocka_unit_test(test_replay_window),
      cmocka_unit_test(test_replay_bounded),
      cmocka_unit_test(test_keyring),
      cmocka_unit_test(test_node_key_api),
      cmocka_unit_test(test_mode_matrix),
      cmocka_unit_test(test_label),
      cmocka_unit_test(test_node_replay_and_gen),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
