/* Unit tests of the wire codec (src/wire.c): round trips of every message
 * type at boundary sizes, all-or-nothing encoding, envelope drop reasons,
 * decoding of truncated, hand-crafted and randomly mutated packets, and a
 * cross-check against msgpack-c in both directions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "wire.h"
#include <dmq/delivery.h>
#include <dmq/dmq.h>

/* ---- helpers ------------------------------------------------------------ */

static dmq__slice_t sl(const char *s) {
  dmq__slice_t r = {s, strlen(s)};
  return r;
}

static dmq__slice_t sln(const char *s, size_t n) {
  dmq__slice_t r = {s, n};
  return r;
}

/* A record or ALIVE without the channels field. */
#define NOCHANS                                                                \
  { 0, NULL, NULL, 0 }

static int slice_eq(dmq__slice_t a, const char *p, size_t n) {
  return a.n == n && (n == 0 || memcmp(a.p, p, n) == 0);
}

/* n copies of c (static storage, big enough for every field). */
static const char *fill(char c, size_t n) {
  static char bufs[8][1024];
  static int next;
  char *b = bufs[next++ & 7];
  assert_true(n < sizeof bufs[0]);
  memset(b, c, n);
  b[n] = '\0';
  return b;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void) { /* xorshift64*, fixed seed */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545f4914f6cdd1dull;
}

typedef struct dstats {
  int drop;         /* dmq__wire_open result */
  uint32_t ok;      /* next() == 1 */
  uint32_t skipped; /* next() == 2 */
  int failed;       /* next() == -1 */
  uint32_t recs;    /* records decoded */
  int rec_failed;
} dstats_t;

/* Decode everything in a packet, checking the iterator contracts. */
static void decode_all(const uint8_t *buf, size_t len, dstats_t *st) {
  dmq__envelope_t env;
  dmq__msg_iter_t it;
  dmq__msg_t m;
  int rc;
  memset(st, 0, sizeof *st);
  st->drop = dmq__wire_open(buf, len, &env);
  if (st->drop != 0)
    return;
  assert_true(env.msg_count <= DMQ__WIRE_MAX_MSGS);
  assert_true(env.sender.n >= 1 && env.sender.n <= DMQ_MAX_NAME);
  dmq__wire_msgs(&env, &it);
  while ((rc = dmq__wire_next(&it, &m)) != 0) {
    if (rc == -1) {
      st->failed = 1;
      assert_int_equal(dmq__wire_next(&it, &m), -1); /* sticky */
      break;
    }
    assert_true(st->ok + st->skipped < env.msg_count);
    if (rc == 2) {
      assert_true(m.type <= DMQ__MSG_TYPE_MAX_KNOWN);
      st->skipped++;
      continue;
    }
    assert_int_equal(rc, 1);
    assert_true(m.type >= 1 && m.type <= DMQ__MSG_TYPE_MAX_KNOWN);
    assert_true(m.name.n <= DMQ_MAX_NAME && m.addr.n <= DMQ_MAX_ADDR);
    assert_true(m.meta.n <= DMQ_MAX_META && m.from.n <= DMQ_MAX_NAME);
    st->ok++;
    if (m.type == DMQ__MSG_PUSHPULL) {
      dmq__rec_iter_t ri;
      dmq__record_t r;
      uint32_t n = 0;
      assert_true(m.rec_count <= DMQ__WIRE_MAX_RECORDS);
      dmq__wire_records(&m, &ri);
      while ((rc = dmq__wire_next_record(&ri, &r)) == 1) {
        assert_true(r.state < DMQ_MEMBER_STATE_COUNT);
        assert_true(r.name.n >= 1 && r.name.n <= DMQ_MAX_NAME);
        assert_true(r.addr.n >= 1 && r.addr.n <= DMQ_MAX_ADDR);
        assert_true(r.meta.n <= DMQ_MAX_META);
        n++;
      }
      /* next() validated the records already */
      assert_int_equal(rc, 0);
      assert_int_equal(n, m.rec_count);
      st->recs += n;
    }
  }
  assert_true(st->ok + st->skipped <= env.msg_count);
}

/* Decode from an exactly sized heap copy, so ASan sees any overread. */
static void decode_copy(const uint8_t *buf, size_t len, dstats_t *st) {
  uint8_t *copy = malloc(len > 0 ? len : 1);
  assert_non_null(copy);
  if (len > 0)
    memcpy(copy, buf, len);
  decode_all(copy, len, st);
  free(copy);
}

/* Open a packet that must be valid and start iterating it. */
static void open_ok(const uint8_t *buf, size_t len, dmq__envelope_t *env,
                    dmq__msg_iter_t *it) {
  assert_int_equal(dmq__wire_open(buf, len, env), 0);
  dmq__wire_msgs(env, it);
}

static void next_ok(dmq__msg_iter_t *it, dmq__msg_t *m, uint8_t type) {
  assert_int_equal(dmq__wire_next(it, m), 1);
  assert_int_equal(m->type, type);
}

/* ---- hand-crafted packets with msgpack-c's packer ------------------------ */

typedef struct craft {
  msgpack_sbuffer sb;
  msgpack_packer pk;
} craft_t;

static void pk_str(msgpack_packer *pk, const char *s, size_t n) {
  msgpack_pack_str(pk, n);
  msgpack_pack_str_body(pk, s, n);
}

static void pk_bin(msgpack_packer *pk, const char *s, size_t n) {
  msgpack_pack_bin(pk, n);
  msgpack_pack_bin_body(pk, s, n);
}

/* Envelope (no label) + [ "sender", array(nmsgs) ]; messages follow. */
static void craft_begin(craft_t *c, uint32_t nmsgs) {
  msgpack_sbuffer_init(&c->sb);
  msgpack_packer_init(&c->pk, &c->sb, msgpack_sbuffer_write);
  msgpack_sbuffer_write(&c->sb, "DQ\x01\x00", 4);
  msgpack_pack_array(&c->pk, 2);
  pk_str(&c->pk, "sender", 6);
  msgpack_pack_array(&c->pk, nmsgs);
}

static void craft_end(craft_t *c) {
  msgpack_sbuffer_destroy(&c->sb);
}

static const uint8_t *craft_buf(const craft_t *c) {
  return (const uint8_t *)c->sb.data;
}

/* ---- round trips --------------------------------------------------------- */

static void test_roundtrip_all_types(void **state) {
  (void)state;
  static uint8_t buf[4096];
  dmq__enc_t e;
  dmq__envelope_t env;
  dmq__msg_iter_t it;
  dmq__msg_t m;
  dmq__rec_iter_t ri;
  dmq__record_t r, recs[3];
  const char *n64 = fill('n', DMQ_MAX_NAME);
  const char *a128 = fill('a', DMQ_MAX_ADDR);
  const char *meta = fill('\0', DMQ_MAX_META); /* binary, NULs allowed */
  size_t len;

  assert_int_equal(dmq__enc_begin(&e, buf, sizeof buf, NULL, 0, "s", 1), 0);
  assert_int_equal(dmq__enc_ping(&e, 0, sl("x")), 0);
  assert_int_equal(dmq__enc_ping(&e, UINT32_MAX, sln(n64, 64)), 0);
  assert_int_equal(dmq__enc_ping_req(&e, 128, sl("t"), sln(a128, 128), 1), 0);
  assert_int_equal(dmq__enc_ping_req(&e, 0xffff, sln(n64, 64), sl("a"), 0), 0);
  assert_int_equal(dmq__enc_ack(&e, 0x10000), 0);
  assert_int_equal(dmq__enc_nack(&e, 0x7f), 0);
  assert_int_equal(dmq__enc_alive(&e, sln(n64, 64), sl("a"), UINT64_MAX, 0,
                                  sln(meta, DMQ_MAX_META), NULL),
                   0);
  assert_int_equal(
      dmq__enc_alive(&e, sl("b"), sln(a128, 128), 1, 2, sln(NULL, 0), NULL), 0);
  assert_int_equal(
      dmq__enc_suspect(&e, sl("c"), 0x80, 0x100000000ull, sln(n64, 64)), 0);
  assert_int_equal(
      dmq__enc_dead(&e, sln(n64, 64), 0xffffffffull, UINT64_MAX, sl("f")), 0);
  assert_int_equal(dmq__enc_left(&e, sl("d"), 0, 0xff), 0);
  recs[0] = (dmq__record_t){sl("r0"), sl("udp://1"),    sln(NULL, 0), 0,
                            1,        DMQ_MEMBER_ALIVE, NOCHANS};
  recs[1] =
      (dmq__record_t){sln(n64, 64), sln(a128, 128), sln(meta, DMQ_MAX_META),
                      UINT64_MAX,   UINT64_MAX,     DMQ_MEMBER_LEFT,
                      NOCHANS};
  recs[2] = (dmq__record_t){sl("r2"), sl("x"),         sl("m"), 300,
                            70000,    DMQ_MEMBER_DEAD, NOCHANS};
  assert_int_equal(dmq__enc_pushpull_begin(&e, DMQ__PP_JOIN | DMQ__PP_REPLY, 3),
                   0);
  for (int i = 0; i < 3; i++)
    assert_int_equal(dmq__enc_record(&e, &recs[i]), 0);
  assert_int_equal(e.count, 12);
  len = dmq__enc_end(&e);
  assert_int_equal(len, e.len);

  open_ok(buf, len, &env, &it);
  assert_int_equal(env.version, DMQ__WIRE_VERSION);
  assert_int_equal(env.flags, 0);
  assert_int_equal(env.label.n, 0);
  assert_true(slice_eq(env.sender, "s", 1));
  assert_int_equal(env.msg_count, 12);

  next_ok(&it, &m, DMQ__MSG_PING);
  assert_int_equal(m.seq, 0);
  assert_true(slice_eq(m.name, "x", 1));
  next_ok(&it, &m, DMQ__MSG_PING);
  assert_int_equal(m.seq, UINT32_MAX);
  assert_true(slice_eq(m.name, n64, 64));
  next_ok(&it, &m, DMQ__MSG_PING_REQ);
  assert_int_equal(m.seq, 128);
  assert_true(slice_eq(m.name, "t", 1));
  assert_true(slice_eq(m.addr, a128, 128));
  assert_int_equal(m.flag, 1);
  next_ok(&it, &m, DMQ__MSG_PING_REQ);
  assert_int_equal(m.seq, 0xffff);
  assert_true(slice_eq(m.name, n64, 64));
  assert_true(slice_eq(m.addr, "a", 1));
  assert_int_equal(m.flag, 0);
  next_ok(&it, &m, DMQ__MSG_ACK);
  assert_int_equal(m.seq, 0x10000);
  next_ok(&it, &m, DMQ__MSG_NACK);
  assert_int_equal(m.seq, 0x7f);
  next_ok(&it, &m, DMQ__MSG_ALIVE);
  assert_true(slice_eq(m.name, n64, 64));
  assert_true(slice_eq(m.addr, "a", 1));
  assert_true(m.incarnation == UINT64_MAX);
  assert_true(m.generation == 0);
  assert_true(slice_eq(m.meta, meta, DMQ_MAX_META));
  next_ok(&it, &m, DMQ__MSG_ALIVE);
  assert_true(slice_eq(m.name, "b", 1));
  assert_true(slice_eq(m.addr, a128, 128));
  assert_true(m.incarnation == 1 && m.generation == 2);
  assert_int_equal(m.meta.n, 0);
  next_ok(&it, &m, DMQ__MSG_SUSPECT);
  assert_true(slice_eq(m.name, "c", 1));
  assert_true(m.incarnation == 0x80 && m.generation == 0x100000000ull);
  assert_true(slice_eq(m.from, n64, 64));
  next_ok(&it, &m, DMQ__MSG_DEAD);
  assert_true(slice_eq(m.name, n64, 64));
  assert_true(m.incarnation == 0xffffffffull && m.generation == UINT64_MAX);
  assert_true(slice_eq(m.from, "f", 1));
  next_ok(&it, &m, DMQ__MSG_LEFT);
  assert_true(slice_eq(m.name, "d", 1));
  assert_true(m.incarnation == 0 && m.generation == 0xff);
  next_ok(&it, &m, DMQ__MSG_PUSHPULL);
  assert_int_equal(m.flag, DMQ__PP_JOIN | DMQ__PP_REPLY);
  assert_int_equal(m.rec_count, 3);
  dmq__wire_records(&m, &ri);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(dmq__wire_next_record(&ri, &r), 1);
    assert_true(slice_eq(r.name, recs[i].name.p, recs[i].name.n));
    assert_true(slice_eq(r.addr, recs[i].addr.p, recs[i].addr.n));
    assert_true(slice_eq(r.meta, recs[i].meta.p, recs[i].meta.n));
    assert_true(r.incarnation == recs[i].incarnation);
    assert_true(r.generation == recs[i].generation);
    assert_int_equal(r.state, recs[i].state);
  }
  assert_int_equal(dmq__wire_next_record(&ri, &r), 0);
  assert_int_equal(dmq__wire_next(&it, &m), 0);
  assert_int_equal(dmq__wire_next(&it, &m), 0);
}

static void test_empty_packet(void **state) {
  (void)state;
  uint8_t buf[128];
  dmq__enc_t e;
  dmq__envelope_t env;
  dmq__msg_iter_t it;
  dmq__msg_t m;
  assert_int_equal(dmq__enc_begin(&e, buf, sizeof buf, NULL, 0, "me", 2), 0);
  open_ok(buf, dmq__enc_end(&e), &env, &it);
  assert_int_equal(env.msg_count, 0);
  assert_int_equal(dmq__wire_next(&it, &m), 0);
}

static void test_size_alive_exact(void **state) {
  (void)state;
  static uint8_t buf[8192];
  static const size_t names[] = {1, 31, 32, 64};
  static const size_t addrs[] = {1, 31, 32, 128};
  static const size_t metas[] = {0, 1, 255, 256, 512};
  static const uint64_t ints[] = {0, 0x7f, 0x80, 0xffff, UINT64_MAX};
  dmq__enc_t e;
  assert_int_equal(dmq__enc_begin(&e, buf, sizeof buf, NULL, 0, "s", 1), 0);
  for (size_t a = 0; a < 4; a++)
    for (size_t b = 0; b < 4; b++)
      for (size_t c = 0; c < 5; c++)
        for (size_t d = 0; d < 5; d++) {
          size_t before = e.len = 16, want;
          e.count = 0;
          want = dmq__enc_size_alive(names[a], addrs[b], metas[c], NULL);
          assert_int_equal(
              dmq__enc_alive(&e, sln(fill('n', names[a]), names[a]),
                             sln(fill('a', addrs[b]), addrs[b]), ints[d],
                             ints[4 - d], sln(fill('m', metas[c]), metas[c]),
                             NULL),
              0);
          assert_int_equal(e.len - before, want);
        }
}

/* ---- encoder limits ------------------------------------------------------ */

/* Append message kind k to e. */
static const dmq__slice_t kind_chans[2] = {{"usrloc", 6}, {"htable", 6}};
static const uint64_t kind_rej_seq[2] = {5, 0x1ffffffffull};
static const uint8_t kind_rej_reason[2] = {DMQ__REJ_NO_CHANNEL,
                                           DMQ__REJ_TOO_BIG};

static int enc_kind(dmq__enc_t *e, int k) {
  static const dmq__record_t rec = {
      {"rec", 3},         {"udp://r", 7},          {"meta", 4}, 1000, 1,
      DMQ_MEMBER_SUSPECT, {2, kind_chans, NULL, 0}};
  static const dmq__chans_t ch = {2, kind_chans, NULL, 0};
  static const dmq__data_t data = {DMQ__DATA_RELIABLE | DMQ__DATA_REQUEST,
                                   {"dialog", 6},
                                   1700000000000ull,
                                   1700000000001ull,
                                   300,
                                   290,
                                   30000,
                                   42,
                                   {"payload!", 8}};
  static const dmq__dack_t dack = {1700000000001ull,
                                   1700000000000ull,
                                   299,
                                   0x8000000000000005ull,
                                   4096,
                                   2,
                                   kind_rej_seq,
                                   kind_rej_reason,
                                   NULL,
                                   0,
                                   0};
  switch (k) {
  case 0:
    return dmq__enc_ping(e, 70000, sl("target"));
  case 1:
    return dmq__enc_ping_req(e, 5, sl("target"), sl("udp://1.2.3.4:5"), 1);
  case 2:
    return dmq__enc_ack(e, 300);
  case 3:
    return dmq__enc_nack(e, 1);
  case 4:
    return dmq__enc_alive(e, sl("node-a"), sl("udp://a"), 7, 1700000000000ull,
                          sl("meta!"), &ch);
  case 5:
    return dmq__enc_suspect(e, sl("node-b"), 3, 9, sl("node-c"));
  case 6:
    return dmq__enc_dead(e, sl("node-b"), 4, 9, sl("node-c"));
  case 7:
    return dmq__enc_left(e, sl("node-d"), 5, 10);
  case 8:
    return dmq__enc_pushpull_begin(e, DMQ__PP_REPLY, 1);
  case 10:
    return dmq__enc_data(e, &data);
  case 11:
    return dmq__enc_dack(e, &dack);
  default:
    return dmq__enc_record(e, &rec);
  }
}
#define KINDS 12

static void test_etoobig_leaves_buffer(void **state) {
  (void)state;
  uint8_t buf[512], ref[512];
  dmq__enc_t e;
  for (int k = 0; k < KINDS; k++) {
    size_t start, need;
    memset(buf, 0xee, sizeof buf);
    assert_int_equal(dmq__enc_begin(&e, buf, sizeof buf, NULL, 0, "s", 1), 0);
    start = e.len;
    assert_int_equal(enc_kind(&e, k), 0);
    need = e.len - start;
    assert_true(need > 0);
    /* every smaller room fails and writes nothing */
    for (size_t room = 0; room < need; room++) {
      memset(buf, 0xee, sizeof buf);
      assert_int_equal(dmq__enc_begin(&e, buf, start + room, NULL, 0, "s", 1),
                       0);
      memcpy(ref, buf, sizeof buf);
      assert_int_equal(enc_kind(&e, k), DMQ_ETOOBIG);
      assert_int_equal(e.len, start);
      assert_int_equal(e.count, 0);
      assert_memory_equal(buf, ref, sizeof buf);
    }
    assert_int_equal(dmq__enc_begin(&e, buf, start + need, NULL, 0, "s", 1), 0);
    assert_int_equal(enc_kind(&e, k), 0);
    assert_int_equal(e.len, start + need);
  }
  /* the header itself does not fit */
  for (size_t cap = 0; cap < 17; cap++) {
    assert_int_equal(dmq__enc_begin(&e, buf, cap, NULL, 0, "sender", 6),
                     DMQ_ETOOBIG);
    assert_int_equal(e.len, 0);
  }
  assert_int_equal(dmq__enc_begin(&e, buf, 17, NULL, 0, "sender", 6), 0);
  assert_int_equal(e.len, 17); /* envelope, array, str, array32 */
  assert_int_equal(dmq__enc_begin(&e, NULL, 0, NULL, 0, "s", 1), DMQ_ETOOBIG);
  assert_int_equal(dmq__enc_ack(&e, 1), DMQ_EINVAL); /* not begun */
}

static void test_pack_until_full(void **state) {
  (void)state;
  uint8_t buf[1400];
  dmq__enc_t e;
  dmq__envelope_t env;
  dmq__msg_iter_t it;
  dmq__msg_t m;
  uint32_t n = 0, got = 0;
  size_t len;
  assert_int_equal(dmq__enc_begin(&e, buf, sizeof buf, "lbl", 3, "s", 1), 0);
  for (;;) {
    int rc = enc_kind(&e, (int)(n % 8));
    if (rc == DMQ_ETOOBIG)
      break;
    assert_int_equal(rc, 0);
    n++;
  }
  assert_int_equal(e.count, n);
  assert_true(e.len <= sizeof buf && e.len > sizeof buf - 64);
  len = dmq__enc_end(&e);
  open_ok(buf, len, &env, &it);
  assert_int_equal(env.msg_count, n);
  while (dmq__wire_next(&it, &m) == 1) {
    assert_true(m.type == (got % 8) + 1);
    got++;
  }
  assert_int_equal(got, n);
}

static void test_max_msgs(void **state) {
  (void)state;
  static uint8_t buf[DMQ__WIRE_MAX_MSGS * 3 + 256];
  dmq__enc_t e;
  dmq__envelope_t env;
  dmq__msg_iter_t it;
  dmq__msg_t m;
  uint32_t got = 0;
  assert_int_equal(dmq__enc_begin(&e, buf, sizeof buf, NULL, 0, "s", 1), 0);
  for (uint32_t i = 0; i < DMQ__WIRE_MAX_MSGS; i++)
    assert_int_equal(dmq__enc_ack(&e, i & 0x7f), 0);
  assert_int_equal(dmq__enc_ack(&e, 1), DMQ_ETOOBIG);
  open_ok(buf, dmq__enc_end(&e), &env, &it);
  while (dmq__wire_next(&it, &m) == 1)
    got++;
  assert_int_equal(got, DMQ__WIRE_MAX_MSGS);
}

static void test_encoder_rejects_invalid(void **state) {
  (void)state;
  uint8_t buf[2048];
  dmq__enc_t e;
  dmq__record_t r = {sl("n"), sl("a"),          sln(NULL, 0), 0,
                     0,       DMQ_MEMBER_ALIVE, NOCHANS};
  const char *n65 = fill('n', DMQ_MAX_NAME + 1);
  const char *a129 = fill('a', DMQ_MAX_ADDR + 1);
  assert_int_equal(dmq__enc_begin(&e, buf, sizeof buf, NULL, 0, "", 0),
                   DMQ_EINVAL);
  assert_int_equal(dmq__enc_begin(&e, buf, sizeof buf, NULL, 0, n65, 65),
                   DMQ_EINVAL);
  assert_int_equal(dmq__enc_begin(&e, buf, sizeof buf, NULL, 0, "a\0b", 3),
                   DMQ_EINVAL);
  assert_int_equal(
      dmq__enc_begin(&e, buf, sizeof buf, fill('l', 65), 65, "s", 1),
      DMQ_EINVAL);
  assert_int_equal(dmq__enc_begin(&e, buf, sizeof buf, NULL, 0, "s", 1), 0);
  assert_int_equal(dmq__enc_ping(&e, 1, sl("")), DMQ_EINVAL);
  assert_int_equal(dmq__enc_ping(&e, 1, sln(n65, 65)), DMQ_EINVAL);
  assert_int_equal(dmq__enc_ping_req(&e, 1, sl("t"), sln(a129, 129), 0),
                   DMQ_EINVAL);
  assert_int_equal(dmq__enc_alive(&e, sl("n"), sl("a"), 0, 0,
                                  sln(fill('m', 513), 513), NULL),
                   DMQ_EINVAL);
  assert_int_equal(
      dmq__enc_alive(&e, sl("n"), sl("a"), 0, 0, sln(NULL, 3), NULL),
      DMQ_EINVAL);
  assert_int_equal(dmq__enc_suspect(&e, sl("n"), 0, 0, sl("")), DMQ_EINVAL);
  assert_int_equal(dmq__enc_dead(&e, sln(n65, 65), 0, 0, sl("f")), DMQ_EINVAL);
  assert_int_equal(dmq__enc_left(&e, sln("x\0", 2), 0, 0), DMQ_EINVAL);
  assert_int_equal(dmq__enc_pushpull_begin(&e, 0, DMQ__WIRE_MAX_RECORDS + 1),
                   DMQ_EINVAL);
  r.state = DMQ_MEMBER_STATE_COUNT;
  assert_int_equal(dmq__enc_record(&e, &r), DMQ_EINVAL);
  r.state = DMQ_MEMBER_ALIVE;
  r.addr = sl("");
  assert_int_equal(dmq__enc_record(&e, &r), DMQ_EINVAL);
  assert_int_equal(e.count, 0);
  assert_int_equal(e.len, 12);
}

/* ---- envelope -------------------------------------------------------------
 */

static void test_label_roundtrip(void **state) {
  (void)state;
  uint8_t buf[256];
  dmq__enc_t e;
  dmq__envelope_t env;
  dmq__msg_iter_t it;
  dmq__msg_t m;
  const char *l64 = fill('L', DMQ_MAX_LABEL);
  assert_int_equal(dmq__enc_begin(&e, buf, sizeof buf, "prod", 4, "s", 1), 0);
  assert_int_equal(dmq__enc_ack(&e, 9), 0);
  open_ok(buf, dmq__enc_end(&e), &env, &it);
  assert_int_equal(env.flags, DMQ__WIRE_FLAG_LABEL);
  assert_true(slice_eq(env.label, "prod", 4));
  next_ok(&it, &m, DMQ__MSG_ACK);
  assert_int_equal(m.seq, 9);

  assert_int_equal(
      dmq__enc_begin(&e, buf, sizeof buf, l64, DMQ_MAX_LABEL, "s", 1), 0);
  open_ok(buf, dmq__enc_end(&e), &env, &it);
  assert_true(slice_eq(env.label, l64, DMQ_MAX_LABEL));

  /* an empty label is no label */
  assert_int_equal(dmq__enc_begin(&e, buf, sizeof buf, "", 0, "s", 1), 0);
  open_ok(buf, dmq__enc_end(&e), &env, &it);
  assert_int_equal(env.flags, 0);
  assert_int_equal(env.label.n, 0);
}

static int open_rc(const void *p, size_t n) {
  dmq__envelope_t env;
  return dmq__wire_open(p, n, &env);
}

#define DROP(r) (DMQ_DROP_##r + 1)
#define OPEN(lit) open_rc(lit, sizeof(lit) - 1)

static void test_open_drop_reasons(void **state) {
  (void)state;
  craft_t c;
  assert_int_equal(open_rc(NULL, 0), DROP(SHORT));
  assert_int_equal(open_rc("", 0), DROP(SHORT));
  assert_int_equal(OPEN("D"), DROP(SHORT));
  assert_int_equal(OPEN("DQ\x01"), DROP(SHORT));
  assert_int_equal(OPEN("XQ\x01\x00\x92\xa1s\x90"), DROP(MAGIC));
  assert_int_equal(OPEN("DX\x01\x00\x92\xa1s\x90"), DROP(MAGIC));
  assert_int_equal(OPEN("DQ\x02\x00\x92\xa1s\x90"), DROP(VERSION));
  assert_int_equal(OPEN("DQ\x00\x00\x92\xa1s\x90"), DROP(VERSION));
  assert_int_equal(OPEN("DQ\x01\x04\x92\xa1s\x90"), DROP(MALFORMED));
  assert_int_equal(OPEN("DQ\x01\x80\x92\xa1s\x90"), DROP(MALFORMED));
  assert_int_equal(OPEN("DQ\x01\x02\x92\xa1s\x90"), DROP(UNSUPPORTED));
  assert_int_equal(OPEN("DQ\x01\x03\x01L\x92\xa1s\x90"), DROP(UNSUPPORTED));
  /* label */
  assert_int_equal(OPEN("DQ\x01\x01"), DROP(SHORT));
  assert_int_equal(OPEN("DQ\x01\x01\x03LL"), DROP(SHORT));
  assert_int_equal(OPEN("DQ\x01\x01\x00\x92\xa1s\x90"), DROP(MALFORMED));
  assert_int_equal(OPEN("DQ\x01\x01\x41"), DROP(MALFORMED)); /* 65 */
  assert_int_equal(OPEN("DQ\x01\x01\x01L\x92\xa1s\x90"), 0);
  assert_int_equal(OPEN("DQ\x01\x01\x03LLL\x92\xa1s\x90"), 0);
  /* body */
  assert_int_equal(OPEN("DQ\x01\x00"), DROP(MALFORMED));
  assert_int_equal(OPEN("DQ\x01\x00\x92\xa1s\x90"), 0);
  assert_int_equal(OPEN("DQ\x01\x00\x93\xa1s\x90\xc0"), 0); /* extra field */
  assert_int_equal(OPEN("DQ\x01\x00\x91\xa1s"), DROP(MALFORMED));
  assert_int_equal(OPEN("DQ\x01\x00\x82\xa1s\x90"), DROP(MALFORMED));
  assert_int_equal(OPEN("DQ\x01\x00\x92\xa0\x90"), DROP(MALFORMED));
  assert_int_equal(OPEN("DQ\x01\x00\x92\xc4\x01s\x90"), DROP(MALFORMED));
  assert_int_equal(OPEN("DQ\x01\x00\x92\xa2s\x00\x90"), DROP(MALFORMED));
  assert_int_equal(OPEN("DQ\x01\x00\x92\xa1s"), DROP(MALFORMED));
  assert_int_equal(OPEN("DQ\x01\x00\x92\xa1s\xc0"), DROP(MALFORMED));
  assert_int_equal(OPEN("DQ\x01\x00\x92\xa5s"), DROP(MALFORMED));
  assert_int_equal(OPEN("DQ\x01\x00\x92\xa1s\x91"), DROP(MALFORMED));
  assert_int_equal(OPEN("DQ\x01\x00\x92\xa1s\xdd\x00\x00\x10\x00"),
                   DROP(MALFORMED)); /* 4096 claimed, 0 bytes */
  assert_int_equal(OPEN("DQ\x01\x00\x92\xa1s\xdd\x00\x00\x10\x01"),
                   DROP(OVERSIZE));
  assert_int_equal(OPEN("DQ\x01\x00\x92\xa1s\xdd\xff\xff\xff\xff"),
                   DROP(OVERSIZE));
  /* sender of 64 and 65 bytes */
  craft_begin(&c, 0);
  c.sb.size = 4;
  msgpack_pack_array(&c.pk, 2);
  pk_str(&c.pk, fill('s', 64), 64);
  msgpack_pack_array(&c.pk, 0);
  assert_int_equal(open_rc(craft_buf(&c), c.sb.size), 0);
  c.sb.size = 4;
  msgpack_pack_array(&c.pk, 2);
  pk_str(&c.pk, fill('s', 65), 65);
  msgpack_pack_array(&c.pk, 0);
  assert_int_equal(open_rc(craft_buf(&c), c.sb.size), DROP(MALFORMED));
  craft_end(&c);
}

/* ---- truncation ---------------------------------------------------------- */

static void test_truncated_prefixes(void **state) {
  (void)state;
  static uint8_t buf[2048];
  size_t ends[32];
  dmq__enc_t e;
  dmq__envelope_t env;
  dmq__msg_iter_t it;
  dmq__msg_t m;
  uint32_t nmsg = 0;
  size_t len;
  int rc;
  assert_int_equal(dmq__enc_begin(&e, buf, sizeof buf, "lab", 3, "me", 2), 0);
  for (int k = 0; k < 8; k++)
    assert_int_equal(enc_kind(&e, k), 0);
  assert_int_equal(dmq__enc_pushpull_begin(&e, 0, 3), 0);
  for (int i = 0; i < 3; i++)
    assert_int_equal(enc_kind(&e, 9), 0);
  assert_int_equal(enc_kind(&e, 2), 0);
  len = dmq__enc_end(&e);
  /* where each message ends */
  open_ok(buf, len, &env, &it);
  while ((rc = dmq__wire_next(&it, &m)) == 1)
    ends[nmsg++] = (size_t)(it.p - buf);
  assert_int_equal(rc, 0);
  assert_int_equal(nmsg, 10);
  assert_int_equal(ends[nmsg - 1], len);

  for (size_t plen = 0; plen <= len; plen++) {
    dstats_t st;
    uint32_t whole = 0;
    decode_copy(buf, plen, &st);
    for (uint32_t i = 0; i < nmsg; i++)
      whole += ends[i] <= plen;
    if (st.drop != 0) {
      /* too short for the body header or for the message count */
      assert_true(plen < (size_t)(env.msgs_p - buf) + nmsg);
      assert_int_equal(whole, 0);
      continue;
    }
    assert_int_equal(st.ok, whole);
    assert_int_equal(st.skipped, 0);
    assert_int_equal(st.failed, plen < len);
  }
}

/* ---- hand-crafted bodies ------------------------------------------------- */

static void test_unknown_type_skipped(void **state) {
  (void)state;
  static char big[70000];
  craft_t c;
  msgpack_packer *pk = &c.pk;
  dmq__envelope_t env;
  dmq__msg_iter_t it;
  dmq__msg_t m;
  craft_begin(&c, 8);
  /* 1: unknown type with every kind of msgpack value */
  msgpack_pack_array(pk, 14);
  msgpack_pack_uint8(pk, 200);
  msgpack_pack_nil(pk);
  msgpack_pack_true(pk);
  msgpack_pack_int64(pk, -5000000000ll);
  msgpack_pack_float(pk, 1.5f);
  msgpack_pack_double(pk, 2.5);
  pk_str(pk, fill('z', 300), 300);
  pk_bin(pk, big, sizeof big);
  msgpack_pack_map(pk, 2);
  pk_str(pk, "k", 1);
  msgpack_pack_array(pk, 1);
  msgpack_pack_array(pk, 0);
  msgpack_pack_uint64(pk, 1);
  msgpack_pack_map(pk, 0);
  msgpack_pack_ext(pk, 1, 7);
  msgpack_pack_ext_body(pk, "1", 1);
  msgpack_pack_ext(pk, 300, 7);
  msgpack_pack_ext_body(pk, fill('e', 300), 300);
  msgpack_pack_ext(pk, 16, 7);
  msgpack_pack_ext_body(pk, fill('e', 16), 16);
  msgpack_pack_ext(pk, 3, 7);
  msgpack_pack_ext_body(pk, "abc", 3);
  msgpack_pack_array(pk, 20);
  for (int i = 0; i < 20; i++)
    msgpack_pack_int(pk, -i);
  /* 2: ACK */
  msgpack_pack_array(pk, 2);
  msgpack_pack_uint8(pk, DMQ__MSG_ACK);
  msgpack_pack_uint8(pk, 42);
  /* 3: type 0, 4: type as a string, 5: not an array, 6: empty array */
  msgpack_pack_array(pk, 2);
  msgpack_pack_uint8(pk, 0);
  msgpack_pack_uint8(pk, 1);
  msgpack_pack_array(pk, 1);
  pk_str(pk, "ping", 4);
  msgpack_pack_map(pk, 1);
  msgpack_pack_nil(pk);
  msgpack_pack_nil(pk);
  msgpack_pack_array(pk, 0);
  /* 7: type 10 (future) with no fields, 8: NACK */
  msgpack_pack_array(pk, 1);
  msgpack_pack_uint8(pk, DMQ__MSG_TYPE_MAX_KNOWN + 1);
  msgpack_pack_array(pk, 2);
  msgpack_pack_uint8(pk, DMQ__MSG_NACK);
  msgpack_pack_uint32(pk, 43);

  open_ok(craft_buf(&c), c.sb.size, &env, &it);
  assert_int_equal(dmq__wire_next(&it, &m), 2);
  assert_int_equal(m.type, 0);
  next_ok(&it, &m, DMQ__MSG_ACK);
  assert_int_equal(m.seq, 42);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(dmq__wire_next(&it, &m), 2);
    assert_int_equal(m.type, 0);
  }
  assert_int_equal(dmq__wire_next(&it, &m), 2);
  assert_int_equal(m.type, 0);
  next_ok(&it, &m, DMQ__MSG_NACK);
  assert_int_equal(m.seq, 43);
  assert_int_equal(dmq__wire_next(&it, &m), 0);
  craft_end(&c);
}

static void test_nesting_depth(void **state) {
  (void)state;
  for (int depth = 30; depth <= 40; depth++) {
    craft_t c;
    dmq__envelope_t env;
    dmq__msg_iter_t it;
    dmq__msg_t m;
    craft_begin(&c, 2);
    msgpack_pack_array(&c.pk, 2);
    msgpack_pack_uint8(&c.pk, 99);
    for (int i = 1; i < depth; i++)
      msgpack_pack_array(&c.pk, 1);
    msgpack_pack_nil(&c.pk);
    msgpack_pack_array(&c.pk, 2);
    msgpack_pack_uint8(&c.pk, DMQ__MSG_ACK);
    msgpack_pack_uint8(&c.pk, 1);
    open_ok(craft_buf(&c), c.sb.size, &env, &it);
    /* depth counts the nested arrays below the message array, which is
     * itself at depth 2 of the body: the deepest container is at depth
     * depth + 1 and must stay below msgpack-c's 32 */
    if (depth <= 30) {
      assert_int_equal(dmq__wire_next(&it, &m), 2);
      next_ok(&it, &m, DMQ__MSG_ACK);
    } else {
      assert_int_equal(dmq__wire_next(&it, &m), -1);
      assert_int_equal(dmq__wire_next(&it, &m), -1);
    }
    craft_end(&c);
  }
}

/* Regression (tests/fuzz/fuzz_wire_msgpack.c): a container at depth 32 of
 * the body (30 below the message array) is refused even when empty, as
 * msgpack-c's unpacker refuses it; at depth 31 it is skipped. */
static void test_nesting_depth_empty(void **state) {
  (void)state;
  for (int depth = 29; depth <= 30; depth++) {
    craft_t c;
    dmq__envelope_t env;
    dmq__msg_iter_t it;
    dmq__msg_t m;
    craft_begin(&c, 2);
    msgpack_pack_array(&c.pk, 2);
    msgpack_pack_uint8(&c.pk, 99);
    for (int i = 1; i < depth; i++)
      msgpack_pack_array(&c.pk, 1);
    msgpack_pack_array(&c.pk, 0); /* at depth `depth` + 2 of the body */
    msgpack_pack_array(&c.pk, 2);
    msgpack_pack_uint8(&c.pk, DMQ__MSG_ACK);
    msgpack_pack_uint8(&c.pk, 1);
    open_ok(craft_buf(&c), c.sb.size, &env, &it);
    if (depth < 30) {
      assert_int_equal(dmq__wire_next(&it, &m), 2);
      next_ok(&it, &m, DMQ__MSG_ACK);
    } else {
      assert_int_equal(dmq__wire_next(&it, &m), -1);
    }
    craft_end(&c);
  }
}

/* A packet of one malformed known message followed by an ACK: the first must
 * be skipped as malformed of type `type`, the ACK still decoded. */
typedef void (*pack_fn)(msgpack_packer *pk);

static void expect_malformed(pack_fn fn, uint8_t type) {
  craft_t c;
  dmq__envelope_t env;
  dmq__msg_iter_t it;
  dmq__msg_t m;
  craft_begin(&c, 2);
  fn(&c.pk);
  msgpack_pack_array(&c.pk, 2);
  msgpack_pack_uint8(&c.pk, DMQ__MSG_ACK);
  msgpack_pack_uint8(&c.pk, 77);
  open_ok(craft_buf(&c), c.sb.size, &env, &it);
  assert_int_equal(dmq__wire_next(&it, &m), 2);
  assert_int_equal(m.type, type);
  next_ok(&it, &m, DMQ__MSG_ACK);
  assert_int_equal(m.seq, 77);
  assert_int_equal(dmq__wire_next(&it, &m), 0);
  craft_end(&c);
}

/* The packet decoded by expect_ok(), kept alive while *out points into it
 * (until the next expect_ok() or ok_release()). */
static craft_t ok_craft;
static int ok_live;

static void ok_release(void) {
  if (ok_live)
    craft_end(&ok_craft);
  ok_live = 0;
}

static void expect_ok(pack_fn fn, uint8_t type, dmq__msg_t *out) {
  dmq__envelope_t env;
  dmq__msg_iter_t it;
  dmq__msg_t m;
  ok_release();
  craft_begin(&ok_craft, 1);
  ok_live = 1;
  fn(&ok_craft.pk);
  open_ok(craft_buf(&ok_craft), ok_craft.sb.size, &env, &it);
  next_ok(&it, out, type);
  assert_int_equal(dmq__wire_next(&it, &m), 0);
}

/* ALIVE with configurable fields. */
static size_t al_name = 4, al_addr = 4, al_meta = 0;
static int al_meta_kind; /* 0 bin, 1 nil, 2 str */
static int al_name_bin, al_name_nul, al_extra;

static void pk_alive(msgpack_packer *pk) {
  /* extra fields follow an (empty) channels field, the 6th */
  msgpack_pack_array(pk, 6 + (al_extra ? 1 + al_extra : 0));
  msgpack_pack_uint8(pk, DMQ__MSG_ALIVE);
  if (al_name_bin)
    pk_bin(pk, "name", 4);
  else
    pk_str(pk, al_name_nul ? "na\0e" : fill('n', al_name), al_name);
  pk_str(pk, fill('a', al_addr), al_addr);
  msgpack_pack_uint64(pk, 1);
  msgpack_pack_uint64(pk, 2);
  if (al_meta_kind == 0)
    pk_bin(pk, fill('m', al_meta), al_meta);
  else if (al_meta_kind == 1)
    msgpack_pack_nil(pk);
  else
    pk_str(pk, "meta", 4);
  if (al_extra)
    msgpack_pack_array(pk, 0);
  for (int i = 0; i < al_extra; i++) {
    msgpack_pack_map(pk, 1);
    pk_str(pk, "future", 6);
    msgpack_pack_array(pk, 2);
    msgpack_pack_double(pk, 1.0);
    msgpack_pack_int(pk, -1);
  }
}

static void alive_reset(void) {
  al_name = 4;
  al_addr = 4;
  al_meta = 0;
  al_meta_kind = al_name_bin = al_name_nul = al_extra = 0;
}

static void test_alive_bounds(void **state) {
  (void)state;
  dmq__msg_t m;
  alive_reset();
  al_name = 64;
  al_addr = 128;
  al_meta = 512;
  expect_ok(pk_alive, DMQ__MSG_ALIVE, &m);
  assert_int_equal(m.name.n, 64);
  assert_int_equal(m.addr.n, 128);
  assert_int_equal(m.meta.n, 512);
  al_name = 65;
  expect_malformed(pk_alive, DMQ__MSG_ALIVE);
  al_name = 0;
  expect_malformed(pk_alive, DMQ__MSG_ALIVE);
  alive_reset();
  al_addr = 129;
  expect_malformed(pk_alive, DMQ__MSG_ALIVE);
  al_addr = 0;
  expect_malformed(pk_alive, DMQ__MSG_ALIVE);
  alive_reset();
  al_meta = 513;
  expect_malformed(pk_alive, DMQ__MSG_ALIVE);
  alive_reset();
  al_name_bin = 1;
  expect_malformed(pk_alive, DMQ__MSG_ALIVE);
  alive_reset();
  al_name_nul = 1;
  expect_malformed(pk_alive, DMQ__MSG_ALIVE);
  alive_reset();
  al_meta_kind = 2; /* meta must be bin */
  expect_malformed(pk_alive, DMQ__MSG_ALIVE);
  alive_reset();
  al_meta_kind = 1; /* nil meta is empty */
  expect_ok(pk_alive, DMQ__MSG_ALIVE, &m);
  assert_int_equal(m.meta.n, 0);
  alive_reset();
  al_extra = 3; /* forward compatible */
  expect_ok(pk_alive, DMQ__MSG_ALIVE, &m);
  assert_true(slice_eq(m.name, "nnnn", 4));
  assert_true(m.incarnation == 1 && m.generation == 2);
  alive_reset();
  ok_release();
}

/* Integers of every width and sign. */
static void pk_ack_u64(msgpack_packer *pk) {
  msgpack_pack_array(pk, 2);
  msgpack_pack_fix_uint8(pk, DMQ__MSG_ACK);
  msgpack_pack_fix_uint64(pk, 5);
}
static void pk_ack_i64(msgpack_packer *pk) {
  msgpack_pack_array(pk, 2);
  msgpack_pack_fix_int16(pk, DMQ__MSG_ACK);
  msgpack_pack_fix_int64(pk, 6);
}
static void pk_ack_i32max(msgpack_packer *pk) {
  msgpack_pack_array(pk, 2);
  msgpack_pack_fix_int8(pk, DMQ__MSG_ACK);
  msgpack_pack_fix_int32(pk, INT32_MAX);
}
static void pk_ack_neg1(msgpack_packer *pk) {
  msgpack_pack_array(pk, 2);
  msgpack_pack_uint8(pk, DMQ__MSG_ACK);
  msgpack_pack_int(pk, -1); /* negative fixint */
}
static void pk_ack_neg8(msgpack_packer *pk) {
  msgpack_pack_array(pk, 2);
  msgpack_pack_uint8(pk, DMQ__MSG_ACK);
  msgpack_pack_fix_int8(pk, -100);
}
static void pk_ack_neg64(msgpack_packer *pk) {
  msgpack_pack_array(pk, 2);
  msgpack_pack_uint8(pk, DMQ__MSG_ACK);
  msgpack_pack_fix_int64(pk, INT64_MIN);
}
static void pk_ack_over(msgpack_packer *pk) {
  msgpack_pack_array(pk, 2);
  msgpack_pack_uint8(pk, DMQ__MSG_ACK);
  msgpack_pack_uint64(pk, (uint64_t)UINT32_MAX + 1);
}
static void pk_ack_float(msgpack_packer *pk) {
  msgpack_pack_array(pk, 2);
  msgpack_pack_uint8(pk, DMQ__MSG_ACK);
  msgpack_pack_double(pk, 1.0);
}
static void pk_ack_short(msgpack_packer *pk) {
  msgpack_pack_array(pk, 1);
  msgpack_pack_uint8(pk, DMQ__MSG_ACK);
}
static void pk_ack_extra(msgpack_packer *pk) {
  msgpack_pack_array(pk, 5);
  msgpack_pack_uint8(pk, DMQ__MSG_ACK);
  msgpack_pack_uint32(pk, UINT32_MAX);
  pk_str(pk, "extra", 5);
  msgpack_pack_map(pk, 1);
  msgpack_pack_true(pk);
  msgpack_pack_array(pk, 0);
  msgpack_pack_nil(pk);
}
static void pk_left_neg_inc(msgpack_packer *pk) {
  msgpack_pack_array(pk, 4);
  msgpack_pack_uint8(pk, DMQ__MSG_LEFT);
  pk_str(pk, "n", 1);
  msgpack_pack_fix_int64(pk, -1);
  msgpack_pack_uint8(pk, 0);
}
static void pk_left_i64(msgpack_packer *pk) {
  msgpack_pack_array(pk, 4);
  msgpack_pack_uint8(pk, DMQ__MSG_LEFT);
  pk_str(pk, "n", 1);
  msgpack_pack_fix_int64(pk, INT64_MAX);
  msgpack_pack_fix_uint16(pk, 3);
}
static void pk_suspect_no_from(msgpack_packer *pk) {
  msgpack_pack_array(pk, 4);
  msgpack_pack_uint8(pk, DMQ__MSG_SUSPECT);
  pk_str(pk, "n", 1);
  msgpack_pack_uint8(pk, 0);
  msgpack_pack_uint8(pk, 0);
}
static void pk_dead_from65(msgpack_packer *pk) {
  msgpack_pack_array(pk, 5);
  msgpack_pack_uint8(pk, DMQ__MSG_DEAD);
  pk_str(pk, "n", 1);
  msgpack_pack_uint8(pk, 0);
  msgpack_pack_uint8(pk, 0);
  pk_str(pk, fill('f', 65), 65);
}
static int pr_nack_kind;
static void pk_ping_req(msgpack_packer *pk) {
  msgpack_pack_array(pk, 5);
  msgpack_pack_uint8(pk, DMQ__MSG_PING_REQ);
  msgpack_pack_uint8(pk, 1);
  pk_str(pk, "t", 1);
  pk_str(pk, "udp://t", 7);
  switch (pr_nack_kind) {
  case 0:
    msgpack_pack_true(pk);
    break;
  case 1:
    msgpack_pack_uint8(pk, 1);
    break;
  case 2:
    msgpack_pack_uint8(pk, 0);
    break;
  case 3:
    msgpack_pack_uint8(pk, 2);
    break;
  case 4:
    msgpack_pack_nil(pk);
    break;
  default:
    pk_str(pk, "y", 1);
    break;
  }
}
static void pk_ping_empty_target(msgpack_packer *pk) {
  msgpack_pack_array(pk, 3);
  msgpack_pack_uint8(pk, DMQ__MSG_PING);
  msgpack_pack_uint8(pk, 1);
  pk_str(pk, "", 0);
}

static void test_int_widths_and_fields(void **state) {
  (void)state;
  dmq__msg_t m;
  expect_ok(pk_ack_u64, DMQ__MSG_ACK, &m);
  assert_int_equal(m.seq, 5);
  expect_ok(pk_ack_i64, DMQ__MSG_ACK, &m);
  assert_int_equal(m.seq, 6);
  expect_ok(pk_ack_i32max, DMQ__MSG_ACK, &m);
  assert_int_equal(m.seq, INT32_MAX);
  expect_ok(pk_ack_extra, DMQ__MSG_ACK, &m);
  assert_int_equal(m.seq, UINT32_MAX);
  expect_malformed(pk_ack_neg1, DMQ__MSG_ACK);
  expect_malformed(pk_ack_neg8, DMQ__MSG_ACK);
  expect_malformed(pk_ack_neg64, DMQ__MSG_ACK);
  expect_malformed(pk_ack_over, DMQ__MSG_ACK);
  expect_malformed(pk_ack_float, DMQ__MSG_ACK);
  expect_malformed(pk_ack_short, DMQ__MSG_ACK);
  expect_malformed(pk_left_neg_inc, DMQ__MSG_LEFT);
  expect_ok(pk_left_i64, DMQ__MSG_LEFT, &m);
  assert_true(m.incarnation == INT64_MAX && m.generation == 3);
  expect_malformed(pk_suspect_no_from, DMQ__MSG_SUSPECT);
  expect_malformed(pk_dead_from65, DMQ__MSG_DEAD);
  expect_malformed(pk_ping_empty_target, DMQ__MSG_PING);
  for (pr_nack_kind = 0; pr_nack_kind < 6; pr_nack_kind++) {
    if (pr_nack_kind < 3) {
      expect_ok(pk_ping_req, DMQ__MSG_PING_REQ, &m);
      assert_int_equal(m.flag, pr_nack_kind < 2);
    } else {
      expect_malformed(pk_ping_req, DMQ__MSG_PING_REQ);
    }
  }
  ok_release();
}

/* Push/pull with configurable records. */
static int pp_bad; /* 0 ok, 1 state 4, 2 short record, 3 flags 256,
                      4 records not an array, 5 extra fields everywhere */

static void pk_pushpull(msgpack_packer *pk) {
  msgpack_pack_array(pk, pp_bad == 5 ? 4 : 3);
  msgpack_pack_uint8(pk, DMQ__MSG_PUSHPULL);
  msgpack_pack_uint16(pk, pp_bad == 3 ? 256 : 1);
  if (pp_bad == 4) {
    msgpack_pack_map(pk, 0);
    return;
  }
  msgpack_pack_array(pk, 2);
  for (int i = 0; i < 2; i++) {
    int n = pp_bad == 2 && i == 1 ? 5 : pp_bad == 5 ? 8 : 6;
    msgpack_pack_array(pk, n);
    pk_str(pk, i ? "r1" : "r0", 2);
    pk_str(pk, "addr", 4);
    msgpack_pack_uint64(pk, 10 + i);
    msgpack_pack_uint64(pk, 20 + i);
    msgpack_pack_uint8(pk, pp_bad == 1 && i == 1 ? 4 : 3);
    if (n >= 6)
      pk_bin(pk, "mm", 2);
    for (int j = 6; j < n; j++)
      msgpack_pack_array(pk, 0);
  }
  if (pp_bad == 5)
    pk_str(pk, "trailing", 8);
}

static void test_pushpull_crafted(void **state) {
  (void)state;
  dmq__msg_t m;
  dmq__rec_iter_t ri;
  dmq__record_t r;
  for (pp_bad = 0; pp_bad <= 5; pp_bad++) {
    if (pp_bad != 0 && pp_bad != 5) {
      expect_malformed(pk_pushpull, DMQ__MSG_PUSHPULL);
      continue;
    }
    expect_ok(pk_pushpull, DMQ__MSG_PUSHPULL, &m);
    assert_int_equal(m.flag, 1);
    assert_int_equal(m.rec_count, 2);
    dmq__wire_records(&m, &ri);
    for (int i = 0; i < 2; i++) {
      assert_int_equal(dmq__wire_next_record(&ri, &r), 1);
      assert_true(slice_eq(r.name, i ? "r1" : "r0", 2));
      assert_true(slice_eq(r.addr, "addr", 4));
      assert_true(r.incarnation == 10u + i && r.generation == 20u + i);
      assert_int_equal(r.state, 3);
      assert_true(slice_eq(r.meta, "mm", 2));
    }
    assert_int_equal(dmq__wire_next_record(&ri, &r), 0);
  }
  /* a record iterator over garbage stops with -1, and stays stopped */
  memset(&m, 0, sizeof m);
  m.rec_p = (const uint8_t *)"\x96\xa1x";
  m.rec_len = 3;
  m.rec_count = 1;
  dmq__wire_records(&m, &ri);
  assert_int_equal(dmq__wire_next_record(&ri, &r), -1);
  assert_int_equal(dmq__wire_next_record(&ri, &r), -1);
  memset(&m, 0, sizeof m);
  dmq__wire_records(&m, &ri);
  assert_int_equal(dmq__wire_next_record(&ri, &r), 0);
  ok_release();
}

static void test_pushpull_0_and_1000(void **state) {
  (void)state;
  static uint8_t buf[1 << 18];
  static char names[1000][16];
  dmq__enc_t e;
  dmq__envelope_t env;
  dmq__msg_iter_t it;
  dmq__msg_t m;
  dmq__rec_iter_t ri;
  dmq__record_t r;
  assert_int_equal(dmq__enc_begin(&e, buf, sizeof buf, NULL, 0, "s", 1), 0);
  assert_int_equal(dmq__enc_pushpull_begin(&e, DMQ__PP_JOIN, 0), 0);
  assert_int_equal(dmq__enc_pushpull_begin(&e, 0, 1000), 0);
  for (uint32_t i = 0; i < 1000; i++) {
    dmq__record_t w = {{names[i], 0},
                       sl("udp://10.0.0.1:7946"),
                       sln(fill('m', i % 100), i % 100),
                       (uint64_t)i << 20,
                       UINT64_MAX - i,
                       (uint8_t)(i % 4),
                       NOCHANS};
    w.name.n = (size_t)snprintf(names[i], sizeof names[i], "node-%u", i);
    assert_int_equal(dmq__enc_record(&e, &w), 0);
  }
  assert_int_equal(dmq__enc_ack(&e, 1), 0);
  open_ok(buf, dmq__enc_end(&e), &env, &it);
  assert_int_equal(env.msg_count, 3);
  next_ok(&it, &m, DMQ__MSG_PUSHPULL);
  assert_int_equal(m.flag, DMQ__PP_JOIN);
  assert_int_equal(m.rec_count, 0);
  dmq__wire_records(&m, &ri);
  assert_int_equal(dmq__wire_next_record(&ri, &r), 0);
  next_ok(&it, &m, DMQ__MSG_PUSHPULL);
  assert_int_equal(m.rec_count, 1000);
  dmq__wire_records(&m, &ri);
  for (uint32_t i = 0; i < 1000; i++) {
    assert_int_equal(dmq__wire_next_record(&ri, &r), 1);
    assert_true(slice_eq(r.name, names[i], strlen(names[i])));
    assert_int_equal(r.meta.n, i % 100);
    assert_true(r.incarnation == (uint64_t)i << 20);
    assert_true(r.generation == UINT64_MAX - i);
    assert_int_equal(r.state, i % 4);
  }
  assert_int_equal(dmq__wire_next_record(&ri, &r), 0);
  next_ok(&it, &m, DMQ__MSG_ACK);
  assert_int_equal(dmq__wire_next(&it, &m), 0);
}

/* ---- msgpack-c cross-check ----------------------------------------------- */

static void expect_str(const msgpack_object *o, const char *s, size_t n) {
  assert_int_equal(o->type, MSGPACK_OBJECT_STR);
  assert_int_equal(o->via.str.size, n);
  assert_memory_equal(o->via.str.ptr, s, n);
}

static void expect_uint(const msgpack_object *o, uint64_t v) {
  assert_int_equal(o->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
  assert_true(o->via.u64 == v);
}

static void test_msgpack_c_decodes_ours(void **state) {
  (void)state;
  static uint8_t buf[4096];
  dmq__enc_t e;
  msgpack_unpacked up;
  const msgpack_object *msgs, *o;
  size_t len, off = 0, body = 4 + 1 + 5;
  assert_int_equal(
      dmq__enc_begin(&e, buf, sizeof buf, "lab\0l", 5, "sender", 6), 0);
  for (int k = 0; k < 8; k++)
    assert_int_equal(enc_kind(&e, k), 0);
  assert_int_equal(enc_kind(&e, 8), 0);
  assert_int_equal(enc_kind(&e, 9), 0);
  assert_int_equal(enc_kind(&e, 10), 0);
  assert_int_equal(enc_kind(&e, 11), 0);
  len = dmq__enc_end(&e);

  msgpack_unpacked_init(&up);
  assert_int_equal(
      msgpack_unpack_next(&up, (const char *)buf + body, len - body, &off),
      MSGPACK_UNPACK_SUCCESS);
  assert_int_equal(off, len - body);
  o = &up.data;
  assert_int_equal(o->type, MSGPACK_OBJECT_ARRAY);
  assert_int_equal(o->via.array.size, 2);
  expect_str(&o->via.array.ptr[0], "sender", 6);
  msgs = &o->via.array.ptr[1];
  assert_int_equal(msgs->type, MSGPACK_OBJECT_ARRAY);
  assert_int_equal(msgs->via.array.size, 11);
  for (uint32_t i = 0; i < 11; i++) {
    const msgpack_object *f = msgs->via.array.ptr[i].via.array.ptr;
    assert_int_equal(msgs->via.array.ptr[i].type, MSGPACK_OBJECT_ARRAY);
    expect_uint(&f[0], i + 1);
  }
  o = msgs->via.array.ptr[0].via.array.ptr; /* ping */
  expect_uint(&o[1], 70000);
  expect_str(&o[2], "target", 6);
  o = msgs->via.array.ptr[1].via.array.ptr; /* ping-req */
  expect_str(&o[3], "udp://1.2.3.4:5", 15);
  assert_int_equal(o[4].type, MSGPACK_OBJECT_BOOLEAN);
  assert_true(o[4].via.boolean);
  o = msgs->via.array.ptr[4].via.array.ptr; /* alive */
  expect_str(&o[1], "node-a", 6);
  expect_str(&o[2], "udp://a", 7);
  expect_uint(&o[3], 7);
  expect_uint(&o[4], 1700000000000ull);
  assert_int_equal(o[5].type, MSGPACK_OBJECT_BIN);
  assert_int_equal(o[5].via.bin.size, 5);
  assert_memory_equal(o[5].via.bin.ptr, "meta!", 5);
  assert_int_equal(o[6].type, MSGPACK_OBJECT_ARRAY); /* channels */
  assert_int_equal(o[6].via.array.size, 2);
  expect_str(&o[6].via.array.ptr[0], "usrloc", 6);
  expect_str(&o[6].via.array.ptr[1], "htable", 6);
  o = msgs->via.array.ptr[5].via.array.ptr; /* suspect */
  expect_str(&o[4], "node-c", 6);
  o = msgs->via.array.ptr[8].via.array.ptr; /* push/pull */
  expect_uint(&o[1], DMQ__PP_REPLY);
  assert_int_equal(o[2].type, MSGPACK_OBJECT_ARRAY);
  assert_int_equal(o[2].via.array.size, 1);
  o = o[2].via.array.ptr[0].via.array.ptr;
  expect_str(&o[0], "rec", 3);
  expect_uint(&o[2], 1000);
  expect_uint(&o[4], DMQ_MEMBER_SUSPECT);
  assert_int_equal(o[5].type, MSGPACK_OBJECT_BIN);
  assert_int_equal(o[6].type, MSGPACK_OBJECT_ARRAY);
  expect_str(&o[6].via.array.ptr[1], "htable", 6);
  assert_int_equal(msgs->via.array.ptr[9].via.array.size, 10);
  o = msgs->via.array.ptr[9].via.array.ptr; /* data */
  expect_uint(&o[1], DMQ__DATA_RELIABLE | DMQ__DATA_REQUEST);
  expect_str(&o[2], "dialog", 6);
  expect_uint(&o[3], 1700000000000ull);
  expect_uint(&o[4], 1700000000001ull);
  expect_uint(&o[5], 300);
  expect_uint(&o[6], 290);
  expect_uint(&o[7], 30000);
  expect_uint(&o[8], 42);
  assert_int_equal(o[9].type, MSGPACK_OBJECT_BIN);
  assert_memory_equal(o[9].via.bin.ptr, "payload!", 8);
  assert_int_equal(msgs->via.array.ptr[10].via.array.size, 7);
  o = msgs->via.array.ptr[10].via.array.ptr; /* dack */
  expect_uint(&o[3], 299);
  expect_uint(&o[4], 0x8000000000000005ull);
  expect_uint(&o[5], 4096);
  assert_int_equal(o[6].type, MSGPACK_OBJECT_ARRAY);
  assert_int_equal(o[6].via.array.size, 4);
  expect_uint(&o[6].via.array.ptr[0], 5);
  expect_uint(&o[6].via.array.ptr[1], DMQ__REJ_NO_CHANNEL);
  expect_uint(&o[6].via.array.ptr[2], 0x1ffffffffull);
  expect_uint(&o[6].via.array.ptr[3], DMQ__REJ_TOO_BIG);
  msgpack_unpacked_destroy(&up);
}

/* Our encoding of a message is byte for byte what msgpack-c's packer writes
 * (smallest forms), except ALIVE's fixed-width integers. */
static void test_same_bytes_as_msgpack_c(void **state) {
  (void)state;
  static const uint64_t vals[] = {
      0,      1,       0x7f,          0x80,       0xff,      0x100,
      0xffff, 0x10000, 0xffffffffull, 1ull << 32, UINT64_MAX};
  uint8_t buf[1024];
  for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
    for (size_t nlen = 1; nlen <= 64; nlen += 31) {
      craft_t c;
      dmq__enc_t e;
      const char *name = fill('q', nlen);
      size_t start;
      craft_begin(&c, 0);
      c.sb.size = 0;
      msgpack_pack_array(&c.pk, 5);
      msgpack_pack_uint8(&c.pk, DMQ__MSG_DEAD);
      pk_str(&c.pk, name, nlen);
      msgpack_pack_uint64(&c.pk, vals[i]);
      msgpack_pack_uint64(&c.pk, vals[10 - i]);
      pk_str(&c.pk, name, nlen);
      if (vals[i] <= UINT32_MAX) {
        msgpack_pack_array(&c.pk, 2);
        msgpack_pack_uint8(&c.pk, DMQ__MSG_ACK);
        msgpack_pack_uint32(&c.pk, (uint32_t)vals[i]);
      }
      assert_int_equal(dmq__enc_begin(&e, buf, sizeof buf, NULL, 0, "s", 1), 0);
      start = e.len;
      assert_int_equal(dmq__enc_dead(&e, sln(name, nlen), vals[i], vals[10 - i],
                                     sln(name, nlen)),
                       0);
      if (vals[i] <= UINT32_MAX)
        assert_int_equal(dmq__enc_ack(&e, (uint32_t)vals[i]), 0);
      assert_int_equal(e.len - start, c.sb.size);
      assert_memory_equal(buf + start, c.sb.data, c.sb.size);
      craft_end(&c);
    }
  }
}

/* ---- queued delivery: channels field, DATA, DACK ------------------------- */

/* n channel names of len bytes each, distinct ("c000...", "c001..."). */
static const dmq__slice_t *chan_names(uint32_t n, size_t len) {
  static char store[DMQ_MAX_CHANNELS + 1][DMQ_MAX_CHANNEL + 2];
  static dmq__slice_t v[DMQ_MAX_CHANNELS + 1];
  assert_true(n <= DMQ_MAX_CHANNELS + 1 && len <= DMQ_MAX_CHANNEL + 1);
  for (uint32_t i = 0; i < n; i++) {
    memset(store[i], 'x', len);
    snprintf(store[i], len + 1, "c%03u", i);
    if (len > 4)
      store[i][4] = 'x';
    store[i][len] = '\0';
    v[i] = sln(store[i], len);
  }
  return v;
}

static void test_channels_roundtrip(void **state) {
  (void)state;
  static uint8_t buf[8192];
  static const uint32_t counts[] = {0, 1, 15, 16, DMQ_MAX_CHANNELS};
  static const size_t lens[] = {4, 31, DMQ_MAX_CHANNEL};
  for (size_t a = 0; a < 5; a++) {
    for (size_t b = 0; b < 3; b++) {
      dmq__enc_t e;
      dmq__envelope_t env;
      dmq__msg_iter_t it;
      dmq__msg_t m;
      dmq__rec_iter_t ri;
      dmq__record_t r;
      dmq__slice_t got[DMQ_MAX_CHANNELS];
      const dmq__slice_t *v = chan_names(counts[a], lens[b]);
      dmq__chans_t ch = {counts[a], v, NULL, 0};
      size_t start, want = dmq__enc_size_alive(4, 5, 3, &ch);
      assert_int_equal(dmq__enc_begin(&e, buf, sizeof buf, NULL, 0, "s", 1), 0);
      start = e.len;
      assert_int_equal(
          dmq__enc_alive(&e, sl("node"), sl("mem:1"), 3, 4, sl("abc"), &ch), 0);
      /* exact size, and no field at all when there are no channels */
      assert_int_equal(e.len - start, want);
      assert_int_equal(dmq__enc_size_chans(&ch) == 0, counts[a] == 0);
      assert_int_equal(buf[start], counts[a] ? 0x97 : 0x96);
      dmq__record_t w = {sl("rec"),          sl("mem:2"), sln(NULL, 0), 9, 8,
                         DMQ_MEMBER_SUSPECT, ch};
      assert_int_equal(dmq__enc_pushpull_begin(&e, 0, 1), 0);
      assert_int_equal(dmq__enc_record(&e, &w), 0);
      open_ok(buf, dmq__enc_end(&e), &env, &it);
      next_ok(&it, &m, DMQ__MSG_ALIVE);
      assert_int_equal(m.chans.n, counts[a]);
      assert_int_equal(dmq__wire_chans(&m.chans, got, DMQ_MAX_CHANNELS),
                       counts[a]);
      for (uint32_t i = 0; i < counts[a]; i++)
        assert_true(slice_eq(got[i], v[i].p, v[i].n));
      /* a smaller output array gets a prefix */
      if (counts[a] > 1) {
        assert_int_equal(dmq__wire_chans(&m.chans, got, 1), 1);
        assert_true(slice_eq(got[0], v[0].p, v[0].n));
      }
      assert_true(slice_eq(m.meta, "abc", 3));
      next_ok(&it, &m, DMQ__MSG_PUSHPULL);
      dmq__wire_records(&m, &ri);
      assert_int_equal(dmq__wire_next_record(&ri, &r), 1);
      assert_int_equal(r.chans.n, counts[a]);
      assert_int_equal(dmq__wire_chans(&r.chans, got, DMQ_MAX_CHANNELS),
                       counts[a]);
      for (uint32_t i = 0; i < counts[a]; i++)
        assert_true(slice_eq(got[i], v[i].p, v[i].n));
      assert_int_equal(r.state, DMQ_MEMBER_SUSPECT);
      assert_int_equal(dmq__wire_next_record(&ri, &r), 0);
      assert_int_equal(dmq__wire_next(&it, &m), 0);
    }
  }
  /* the encoder refuses what the decoder would reject */
  {
    dmq__enc_t e;
    dmq__chans_t ch = {DMQ_MAX_CHANNELS + 1, chan_names(33, 4), NULL, 0};
    dmq__slice_t bad[1] = {{"a\0b", 3}};
    assert_int_equal(dmq__enc_begin(&e, buf, sizeof buf, NULL, 0, "s", 1), 0);
    assert_int_equal(
        dmq__enc_alive(&e, sl("n"), sl("a"), 0, 0, sln(NULL, 0), &ch),
        DMQ_EINVAL);
    ch.n = 1;
    ch.v = chan_names(1, DMQ_MAX_CHANNEL + 1);
    assert_int_equal(
        dmq__enc_alive(&e, sl("n"), sl("a"), 0, 0, sln(NULL, 0), &ch),
        DMQ_EINVAL);
    ch.v = bad;
    assert_int_equal(
        dmq__enc_alive(&e, sl("n"), sl("a"), 0, 0, sln(NULL, 0), &ch),
        DMQ_EINVAL);
    bad[0] = sl("");
    dmq__record_t r = {sl("n"),          sl("a"), sln(NULL, 0), 0, 0,
                       DMQ_MEMBER_ALIVE, ch};
    assert_int_equal(dmq__enc_record(&e, &r), DMQ_EINVAL);
    ch.v = NULL;
    r.chans = ch;
    assert_int_equal(dmq__enc_record(&e, &r), DMQ_EINVAL);
    assert_int_equal(e.count, 0);
  }
}

/* ALIVE / record with a crafted channels field. */
static int ch_kind; /* 0 array of ch_n strs of ch_len, 1 nil, 2 a str, 3 array
                       holding a bin, 4 array with an empty str */
static uint32_t ch_n = 2;
static size_t ch_len = 3;
static int ch_extra; /* trailing fields after it */

static void pk_chans(msgpack_packer *pk) {
  switch (ch_kind) {
  case 1:
    msgpack_pack_nil(pk);
    return;
  case 2:
    pk_str(pk, "usrloc", 6);
    return;
  case 3:
    msgpack_pack_array(pk, 1);
    pk_bin(pk, "usrloc", 6);
    return;
  case 4:
    msgpack_pack_array(pk, 1);
    pk_str(pk, "", 0);
    return;
  default:
    msgpack_pack_array(pk, ch_n);
    for (uint32_t i = 0; i < ch_n; i++)
      pk_str(pk, fill((char)('a' + i % 26), ch_len), ch_len);
  }
}

static void pk_alive_ch(msgpack_packer *pk) {
  msgpack_pack_array(pk, 7 + ch_extra);
  msgpack_pack_uint8(pk, DMQ__MSG_ALIVE);
  pk_str(pk, "node", 4);
  pk_str(pk, "mem:1", 5);
  msgpack_pack_uint64(pk, 1);
  msgpack_pack_uint64(pk, 2);
  pk_bin(pk, "m", 1);
  pk_chans(pk);
  for (int i = 0; i < ch_extra; i++)
    msgpack_pack_true(pk);
}

static void pk_pp_ch(msgpack_packer *pk) {
  msgpack_pack_array(pk, 3);
  msgpack_pack_uint8(pk, DMQ__MSG_PUSHPULL);
  msgpack_pack_uint8(pk, 0);
  msgpack_pack_array(pk, 1);
  msgpack_pack_array(pk, 7 + ch_extra);
  pk_str(pk, "node", 4);
  pk_str(pk, "mem:1", 5);
  msgpack_pack_uint64(pk, 1);
  msgpack_pack_uint64(pk, 2);
  msgpack_pack_uint8(pk, DMQ_MEMBER_ALIVE);
  pk_bin(pk, "m", 1);
  pk_chans(pk);
  for (int i = 0; i < ch_extra; i++)
    msgpack_pack_true(pk);
}

static void test_channels_crafted(void **state) {
  (void)state;
  dmq__msg_t m;
  pack_fn fns[2] = {pk_alive_ch, pk_pp_ch};
  uint8_t types[2] = {DMQ__MSG_ALIVE, DMQ__MSG_PUSHPULL};
  for (int f = 0; f < 2; f++) {
    ch_kind = 0;
    ch_n = DMQ_MAX_CHANNELS;
    ch_len = DMQ_MAX_CHANNEL;
    ch_extra = 2; /* forward compatible */
    expect_ok(fns[f], types[f], &m);
    if (f == 0)
      assert_int_equal(m.chans.n, DMQ_MAX_CHANNELS);
    ch_extra = 0;
    ch_n = DMQ_MAX_CHANNELS + 1;
    expect_malformed(fns[f], types[f]);
    ch_n = 1;
    ch_len = DMQ_MAX_CHANNEL + 1;
    expect_malformed(fns[f], types[f]);
    ch_len = 3;
    ch_n = 0;
    expect_ok(fns[f], types[f], &m);
    assert_int_equal(m.chans.n, 0);
    ch_kind = 1; /* nil = none */
    expect_ok(fns[f], types[f], &m);
    assert_int_equal(m.chans.n, 0);
    for (ch_kind = 2; ch_kind <= 4; ch_kind++)
      expect_malformed(fns[f], types[f]);
  }
  ch_kind = 0;
  ch_n = 2;
  ch_len = 3;
  ok_release();
}

static void test_data_dack_roundtrip(void **state) {
  (void)state;
  static uint8_t buf[1 << 17];
  static const uint64_t ints[] = {
      0, 1, 0x7f, 0x80, 0xffff, 0x10000, 0xffffffffull, 1ull << 32, UINT64_MAX};
  static const size_t plens[] = {0, 1, 255, 256, 65535, 65536};
  static uint64_t rej_seq[DMQ__WIRE_MAX_REJ];
  static uint8_t rej_reason[DMQ__WIRE_MAX_REJ];
  dmq__enc_t e;
  dmq__envelope_t env;
  dmq__msg_iter_t it;
  dmq__msg_t m;
  const char *payload = fill('p', 1000);
  static char big[65536];
  memset(big, 'B', sizeof big);
  for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
    for (size_t j = 0; j < sizeof plens / sizeof plens[0]; j++) {
      uint64_t v = ints[i], w = ints[8 - i];
      dmq__data_t d = {(uint8_t)(i % 16),
                       sln(fill('c', 1 + j * 6), 1 + j * 6),
                       v,
                       w,
                       v,
                       w,
                       (uint32_t)(v > UINT32_MAX ? UINT32_MAX : v),
                       w,
                       sln(plens[j] <= 1000 ? payload : big, plens[j])};
      size_t start;
      assert_int_equal(dmq__enc_begin(&e, buf, sizeof buf, NULL, 0, "s", 1), 0);
      start = e.len;
      assert_int_equal(dmq__enc_data(&e, &d), 0);
      assert_int_equal(e.len - start, dmq__enc_size_data(&d));
      uint32_t nrej = (uint32_t)((i * 7 + j) % (DMQ__WIRE_MAX_REJ + 1));
      for (uint32_t k = 0; k < nrej; k++) {
        rej_seq[k] = ints[(k + i) % 9];
        rej_reason[k] = (uint8_t)(k + j);
      }
      /* the optional ack delay, with and without rejected pairs */
      uint32_t delay = (i + j) % 3 == 0 ? 0 : (uint32_t)(v & 0xffffffffu);
      dmq__dack_t a = {
          w,          v,    v, w,    (uint32_t)(w & 0xffffffffu), nrej, rej_seq,
          rej_reason, NULL, 0, delay};
      start = e.len;
      assert_int_equal(dmq__enc_dack(&e, &a), 0);
      assert_int_equal(e.len - start, dmq__enc_size_dack(&a));
      open_ok(buf, dmq__enc_end(&e), &env, &it);
      next_ok(&it, &m, DMQ__MSG_DATA);
      assert_int_equal(m.data.flags, d.flags);
      assert_true(slice_eq(m.data.channel, d.channel.p, d.channel.n));
      assert_true(m.data.src_gen == v && m.data.dst_gen == w);
      assert_true(m.data.seq == v && m.data.base == w);
      assert_int_equal(m.data.ttl_ms, d.ttl_ms);
      assert_true(m.data.req_id == w);
      assert_true(slice_eq(m.data.payload, d.payload.p, d.payload.n));
      next_ok(&it, &m, DMQ__MSG_DACK);
      assert_true(m.dack.src_gen == w && m.dack.dst_gen == v);
      assert_true(m.dack.cum == v && m.dack.sack == w);
      assert_int_equal(m.dack.rwnd, a.rwnd);
      assert_int_equal(m.dack.nrej, nrej);
      assert_int_equal(m.dack.delay_ms, delay);
      uint64_t gs[DMQ__WIRE_MAX_REJ];
      uint8_t gr[DMQ__WIRE_MAX_REJ];
      assert_int_equal(dmq__wire_rejs(&m.dack, gs, gr, DMQ__WIRE_MAX_REJ),
                       nrej);
      for (uint32_t k = 0; k < nrej; k++) {
        assert_true(gs[k] == rej_seq[k]);
        assert_int_equal(gr[k], rej_reason[k]);
      }
      assert_int_equal(dmq__wire_next(&it, &m), 0);
    }
  }
  /* the encoder refuses what the decoder would reject */
  dmq__data_t d = {DMQ__DATA_RELIABLE, sl("ch"), 1, 1, 1, 1, 1, 0, sl("x")};
  dmq__dack_t a = {1,       1,          1,    0, 1, DMQ__WIRE_MAX_REJ + 1,
                   rej_seq, rej_reason, NULL, 0, 0};
  assert_int_equal(dmq__enc_begin(&e, buf, sizeof buf, NULL, 0, "s", 1), 0);
  d.channel = sl("");
  assert_int_equal(dmq__enc_data(&e, &d), DMQ_EINVAL);
  d.channel = sln(fill('c', DMQ_MAX_CHANNEL + 1), DMQ_MAX_CHANNEL + 1);
  assert_int_equal(dmq__enc_data(&e, &d), DMQ_EINVAL);
  d.channel = sl("ch");
  d.flags = 0x10;
  assert_int_equal(dmq__enc_data(&e, &d), DMQ_EINVAL);
  d.flags = 0;
  d.payload = sln(NULL, 4);
  assert_int_equal(dmq__enc_data(&e, &d), DMQ_EINVAL);
  assert_int_equal(dmq__enc_dack(&e, &a), DMQ_EINVAL);
  a.nrej = 1;
  a.rej_seq = NULL;
  assert_int_equal(dmq__enc_dack(&e, &a), DMQ_EINVAL);
  assert_int_equal(e.count, 0);
}

/* DATA / DACK with crafted fields. */
static int dd_bad; /* see test_data_dack_crafted */

static void pk_data(msgpack_packer *pk) {
  msgpack_pack_array(pk, dd_bad == 1 ? 9 : dd_bad == 9 ? 12 : 10);
  msgpack_pack_uint8(pk, DMQ__MSG_DATA);
  msgpack_pack_uint16(pk, dd_bad == 2 ? 256 : DMQ__DATA_RELIABLE);
  if (dd_bad == 3)
    pk_bin(pk, "ch", 2);
  else
    pk_str(pk, fill('c', dd_bad == 4 ? 33 : 32), dd_bad == 4 ? 33 : 32);
  msgpack_pack_uint64(pk, UINT64_MAX);
  msgpack_pack_uint64(pk, 2);
  msgpack_pack_uint64(pk, 3);
  msgpack_pack_uint64(pk, 3);
  msgpack_pack_uint64(pk, dd_bad == 5 ? 0x100000000ull : 1000);
  msgpack_pack_uint64(pk, 0);
  if (dd_bad == 1)
    return; /* the payload is missing */
  if (dd_bad == 6)
    pk_str(pk, "payload", 7);
  else if (dd_bad == 7)
    msgpack_pack_nil(pk);
  else
    pk_bin(pk, "payload", 7);
  if (dd_bad == 9) {
    msgpack_pack_true(pk);
    msgpack_pack_map(pk, 0);
  }
}

static void pk_dack(msgpack_packer *pk) {
  int rej = dd_bad >= 2;
  msgpack_pack_array(pk, rej ? 7 : dd_bad == 1 ? 5 : 6);
  msgpack_pack_uint8(pk, DMQ__MSG_DACK);
  msgpack_pack_uint64(pk, 1);
  msgpack_pack_uint64(pk, 2);
  msgpack_pack_uint64(pk, 3);
  msgpack_pack_uint64(pk, UINT64_MAX);
  if (dd_bad == 1)
    return;
  msgpack_pack_uint64(pk, 4096);
  if (!rej)
    return;
  if (dd_bad == 2) { /* 64 pairs: ok */
    msgpack_pack_array(pk, 2 * DMQ__WIRE_MAX_REJ);
    for (int i = 0; i < DMQ__WIRE_MAX_REJ; i++) {
      msgpack_pack_uint64(pk, (uint64_t)i + 1);
      msgpack_pack_uint8(pk, 1);
    }
  } else if (dd_bad == 3) { /* 65 pairs */
    msgpack_pack_array(pk, 2 * DMQ__WIRE_MAX_REJ + 2);
    for (int i = 0; i <= DMQ__WIRE_MAX_REJ; i++) {
      msgpack_pack_uint64(pk, (uint64_t)i + 1);
      msgpack_pack_uint8(pk, 1);
    }
  } else if (dd_bad == 4) { /* odd count */
    msgpack_pack_array(pk, 3);
    msgpack_pack_uint8(pk, 1);
    msgpack_pack_uint8(pk, 1);
    msgpack_pack_uint8(pk, 1);
  } else { /* reason > 255 */
    msgpack_pack_array(pk, 2);
    msgpack_pack_uint8(pk, 1);
    msgpack_pack_uint16(pk, 256);
  }
}

static void test_data_dack_crafted(void **state) {
  (void)state;
  dmq__msg_t m;
  dd_bad = 0;
  expect_ok(pk_data, DMQ__MSG_DATA, &m);
  assert_int_equal(m.data.channel.n, 32);
  assert_true(m.data.src_gen == UINT64_MAX);
  assert_int_equal(m.data.ttl_ms, 1000);
  assert_true(slice_eq(m.data.payload, "payload", 7));
  dd_bad = 7; /* nil payload = empty */
  expect_ok(pk_data, DMQ__MSG_DATA, &m);
  assert_int_equal(m.data.payload.n, 0);
  dd_bad = 9; /* trailing fields skipped */
  expect_ok(pk_data, DMQ__MSG_DATA, &m);
  assert_true(slice_eq(m.data.payload, "payload", 7));
  for (dd_bad = 1; dd_bad <= 6; dd_bad++)
    expect_malformed(pk_data, DMQ__MSG_DATA);
  dd_bad = 0;
  expect_ok(pk_dack, DMQ__MSG_DACK, &m);
  assert_true(m.dack.sack == UINT64_MAX);
  assert_int_equal(m.dack.rwnd, 4096);
  assert_int_equal(m.dack.nrej, 0);
  dd_bad = 2;
  expect_ok(pk_dack, DMQ__MSG_DACK, &m);
  assert_int_equal(m.dack.nrej, DMQ__WIRE_MAX_REJ);
  {
    uint64_t gs[DMQ__WIRE_MAX_REJ];
    uint8_t gr[DMQ__WIRE_MAX_REJ];
    assert_int_equal(dmq__wire_rejs(&m.dack, gs, gr, DMQ__WIRE_MAX_REJ),
                     DMQ__WIRE_MAX_REJ);
    assert_true(gs[63] == 64 && gr[63] == 1);
  }
  dd_bad = 1;
  expect_malformed(pk_dack, DMQ__MSG_DACK);
  for (dd_bad = 3; dd_bad <= 5; dd_bad++)
    expect_malformed(pk_dack, DMQ__MSG_DACK);
  dd_bad = 0;
  ok_release();
}

/* Best-effort DATA carries its per-(sender, receiver) number in `seq`
 * (RELIABLE clear, base 0): the bytes are those msgpack-c writes for the
 * ten fields, and the number comes back; a DATA from an older sender, which
 * wrote seq = 0 for best effort, still decodes (0 = not numbered). */
static int be_old_trailing;

static void pk_be_old(msgpack_packer *pk) {
  msgpack_pack_array(pk, be_old_trailing ? 11 : 10);
  msgpack_pack_uint8(pk, DMQ__MSG_DATA);
  msgpack_pack_uint8(pk, 0); /* flags: best effort */
  pk_str(pk, "kv", 2);
  msgpack_pack_uint64(pk, 1795689516752ull);
  msgpack_pack_uint64(pk, 1795689516725ull);
  msgpack_pack_uint8(pk, 0); /* seq */
  msgpack_pack_uint8(pk, 0); /* base */
  msgpack_pack_uint32(pk, 30000);
  msgpack_pack_uint8(pk, 0);
  pk_bin(pk, "hello", 5);
  if (be_old_trailing)
    msgpack_pack_uint8(pk, 9); /* a field from a later version */
}

static void test_data_best_effort_seq(void **state) {
  (void)state;
  static const uint64_t seqs[] = {
      1, 2, 0x7f, 0x80, 0xffff, 0x10000, UINT32_MAX, 1ull << 32, UINT64_MAX};
  uint8_t buf[256];
  for (size_t i = 0; i < sizeof seqs / sizeof seqs[0]; i++) {
    dmq__data_t d = {0, sl("kv"), 7, 9, seqs[i], 0, 1000, 0, sl("payload")};
    craft_t c;
    dmq__enc_t e;
    dmq__envelope_t env;
    dmq__msg_iter_t it;
    dmq__msg_t m;
    craft_begin(&c, 0);
    c.sb.size = 0;
    msgpack_pack_array(&c.pk, 10);
    msgpack_pack_uint8(&c.pk, DMQ__MSG_DATA);
    msgpack_pack_uint8(&c.pk, 0);
    pk_str(&c.pk, "kv", 2);
    msgpack_pack_uint64(&c.pk, 7);
    msgpack_pack_uint64(&c.pk, 9);
    msgpack_pack_uint64(&c.pk, seqs[i]);
    msgpack_pack_uint64(&c.pk, 0);
    msgpack_pack_uint64(&c.pk, 1000);
    msgpack_pack_uint64(&c.pk, 0);
    pk_bin(&c.pk, "payload", 7);
    assert_int_equal(dmq__enc_begin(&e, buf, sizeof buf, NULL, 0, "s", 1), 0);
    size_t start = e.len;
    assert_int_equal(dmq__enc_data(&e, &d), 0);
    assert_int_equal(e.len - start, dmq__enc_size_data(&d));
    assert_int_equal(e.len - start, c.sb.size);
    assert_memory_equal(buf + start, c.sb.data, c.sb.size);
    craft_end(&c);
    open_ok(buf, dmq__enc_end(&e), &env, &it);
    next_ok(&it, &m, DMQ__MSG_DATA);
    assert_int_equal(m.data.flags, 0);
    assert_true(m.data.seq == seqs[i]);
    assert_true(m.data.base == 0);
    assert_true(m.data.src_gen == 7 && m.data.dst_gen == 9);
    assert_true(slice_eq(m.data.payload, "payload", 7));
    assert_int_equal(dmq__wire_next(&it, &m), 0);
  }
  dmq__msg_t m;
  for (be_old_trailing = 0; be_old_trailing <= 1; be_old_trailing++) {
    expect_ok(pk_be_old, DMQ__MSG_DATA, &m);
    assert_int_equal(m.data.flags, 0);
    assert_true(m.data.seq == 0 && m.data.base == 0);
    assert_true(m.data.src_gen == 1795689516752ull);
    assert_int_equal(m.data.ttl_ms, 30000);
    assert_true(slice_eq(m.data.channel, "kv", 2));
    assert_true(slice_eq(m.data.payload, "hello", 5));
  }
  be_old_trailing = 0;
  ok_release();
}

/* ---- mutation ------------------------------------------------------------ */

static size_t build_sample(uint8_t *buf, size_t cap, int which) {
  dmq__enc_t e;
  assert_int_equal(dmq__enc_begin(&e, buf, cap, which ? "cluster" : NULL, 7,
                                  "sender-node", 11),
                   0);
  if (which == 0) {
    for (int k = 0; k < KINDS; k++)
      assert_int_equal(enc_kind(&e, k), 0);
  } else if (which == 1) {
    assert_int_equal(dmq__enc_pushpull_begin(&e, DMQ__PP_JOIN, 4), 0);
    for (int i = 0; i < 4; i++)
      assert_int_equal(enc_kind(&e, 9), 0);
    assert_int_equal(enc_kind(&e, 4), 0);
  } else {
    for (int i = 0; i < 12; i++)
      assert_int_equal(enc_kind(&e, i % 8), 0);
  }
  return dmq__enc_end(&e);
}

static void test_mutation(void **state) {
  (void)state;
  static uint8_t base[3][1024], pkt[1024];
  size_t blen[3];
  uint64_t opened = 0, msgs = 0, recs = 0;
  for (int i = 0; i < 3; i++) {
    dstats_t st;
    blen[i] = build_sample(base[i], sizeof base[i], i);
    decode_copy(base[i], blen[i], &st);
    assert_int_equal(st.drop, 0);
    assert_int_equal(st.failed, 0);
    assert_int_equal(st.skipped, 0);
  }
  rng_state = 0x9e3779b97f4a7c15ull;
  for (int iter = 0; iter < 100000; iter++) {
    int which = (int)(rng() % 3);
    size_t len = blen[which];
    int flips = 1 + (int)(rng() % 4);
    dstats_t st;
    memcpy(pkt, base[which], len);
    for (int f = 0; f < flips; f++) {
      size_t pos = (size_t)(rng() % len);
      switch (rng() % 4) {
      case 0:
        pkt[pos] ^= (uint8_t)(1u << (rng() % 8));
        break;
      case 1:
        pkt[pos] = (uint8_t)rng();
        break;
      case 2:
        pkt[pos] = (uint8_t)(0xc0 + rng() % 0x20);
        break; /* tags */
      default:
        pkt[pos] = (uint8_t)(pkt[pos] + 1);
        break;
      }
    }
    if (rng() % 8 == 0)
      len = (size_t)(rng() % (len + 1));
    decode_copy(pkt, len, &st);
    opened += st.drop == 0;
    msgs += st.ok;
    recs += st.recs;
  }
  /* most mutations leave the envelope intact and much still decodes */
  assert_true(opened > 50000);
  assert_true(msgs > 100000);
  assert_true(recs > 10000);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roundtrip_all_types),
      cmocka_unit_test(test_empty_packet),
      cmocka_unit_test(test_size_alive_exact),
      cmocka_unit_test(test_etoobig_leaves_buffer),
      cmocka_unit_test(test_pack_until_full),
      cmocka_unit_test(test_max_msgs),
      cmocka_unit_test(test_encoder_rejects_invalid),
      cmocka_unit_test(test_label_roundtrip),
      cmocka_unit_test(test_open_drop_reasons),
      cmocka_unit_test(test_truncated_prefixes),
      cmocka_unit_test(test_unknown_type_skipped),
      cmocka_unit_test(test_nesting_depth),
      cmocka_unit_test(test_nesting_depth_empty),
      cmocka_unit_test(test_alive_bounds),
      cmocka_unit_test(test_int_widths_and_fields),
      cmocka_unit_test(test_pushpull_crafted),
      cmocka_unit_test(test_pushpull_0_and_1000),
      cmocka_unit_test(test_msgpack_c_decodes_ours),
      cmocka_unit_test(test_same_bytes_as_msgpack_c),
      cmocka_unit_test(test_channels_roundtrip),
      cmocka_unit_test(test_channels_crafted),
      cmocka_unit_test(test_data_dack_roundtrip),
      cmocka_unit_test(test_data_dack_crafted),
      cmocka_unit_test(test_data_best_effort_seq),
      cmocka_unit_test(test_mutation),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
