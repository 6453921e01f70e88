/* Wire format golden test: encodes every message type (and the envelope, with
 * and without a label) with fixed inputs covering every integer, str, bin and
 * array width the encoder picks, and compares the packets byte for byte with
 * tests/unit/wire_golden.h, which was produced by the encoder as it was before
 * it moved onto msgpack-c's packer. It also checks that every dmq__enc_size_*
 * helper equals the bytes the matching dmq__enc_* call appended.
 *
 * Regenerate (only for an intended wire change, which needs a new version or
 * an appended field, see docs/wire.md):
 *   WIRE_GOLDEN_WRITE=1 build/tests/unit/test_wire_golden > \
 *     tests/unit/wire_golden.h && clang-format -i tests/unit/wire_golden.h
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "wire.h"
#include <dmq/dmq.h>

#include "wire_golden.h"

#define BIG_PAYLOAD 70000 /* bin32 */
#define BUF_CAP (BIG_PAYLOAD + 1024)

static uint8_t buf[BUF_CAP];
static char pattern[BIG_PAYLOAD];

static dmq__slice_t sl(const char *s) {
  dmq__slice_t x = {s, strlen(s)};
  return x;
}

static dmq__slice_t pat(size_t n) {
  dmq__slice_t x = {pattern, n};
  return x;
}

static void fill_pattern(void) {
  uint32_t x = 0x12345678u;
  for (size_t i = 0; i < sizeof pattern; i++) {
    x = x * 1103515245u + 12345u;
    pattern[i] = (char)('a' + (x >> 16) % 26); /* no NUL: usable as str */
  }
}

static uint64_t fnv1a(const uint8_t *p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

static dmq__enc_t enc;

static void begin(const char *label, const char *sender) {
  assert_int_equal(dmq__enc_begin(&enc, buf, sizeof buf, label,
                                  label ? strlen(label) : 0, sender,
                                  strlen(sender)),
                   0);
}

static const uint64_t ints[] = {0,
                                1,
                                0x7f,
                                0x80,
                                0xff,
                                0x100,
                                0xffff,
                                0x10000,
                                0xffffffffULL,
                                0x100000000ULL,
                                0xffffffffffffffffULL};
#define NINTS (sizeof ints / sizeof ints[0])

/* Builds case i into buf; returns the packet length, or 0 past the last
 * case. Every message appended checks its dmq__enc_size_* where one exists. */
static size_t build_case(int i, const char **name) {
  size_t before;
  switch (i) {
  case 0:
    *name = "empty";
    begin(NULL, "n");
    break;
  case 1:
    *name = "label_and_long_sender";
    begin("prod-cluster", "node-with-a-name-longer-than-31-bytes.example");
    assert_int_equal(enc.len, dmq__enc_size_envelope(45) + 1 + 12);
    break;
  case 2:
    *name = "ping_ack_nack_widths";
    begin(NULL, "sender-a");
    assert_int_equal(enc.len, dmq__enc_size_envelope(8));
    for (size_t k = 0; k < NINTS; k++) {
      uint32_t seq = (uint32_t)ints[k];
      assert_int_equal(dmq__enc_ping(&enc, seq, sl("target")), 0);
      assert_int_equal(dmq__enc_ack(&enc, seq), 0);
      assert_int_equal(dmq__enc_nack(&enc, seq), 0);
    }
    break;
  case 3:
    *name = "ping_req";
    begin(NULL, "sender-b");
    assert_int_equal(
        dmq__enc_ping_req(&enc, 7, sl("t"), sl("10.0.0.1:7946"), 0), 0);
    assert_int_equal(dmq__enc_ping_req(&enc, 0x12345678, pat(40), pat(128), 1),
                     0);
    break;
  case 4: {
    *name = "alive";
    dmq__slice_t cv[3] = {sl("a"), sl("orders"), pat(32)};
    dmq__chans_t ch = {3, cv, NULL, 0};
    dmq__chans_t none = {0, NULL, NULL, 0};
    begin(NULL, "sender-c");
    before = enc.len;
    assert_int_equal(
        dmq__enc_alive(&enc, sl("m1"), sl("10.0.0.2:1"), 0, 0, pat(0), NULL),
        0);
    assert_int_equal(enc.len - before, dmq__enc_size_alive(2, 10, 0, NULL));
    before = enc.len;
    assert_int_equal(dmq__enc_alive(&enc, pat(64), pat(128),
                                    0x0102030405060708ULL, 5, pat(512), &ch),
                     0);
    assert_int_equal(enc.len - before, dmq__enc_size_alive(64, 128, 512, &ch));
    assert_int_equal(dmq__enc_size_chans(&ch), 1 + 2 + 7 + 34);
    before = enc.len;
    assert_int_equal(
        dmq__enc_alive(&enc, sl("m2"), sl("h:2"), 3, 4, sl("meta"), &none), 0);
    assert_int_equal(enc.len - before, dmq__enc_size_alive(2, 3, 4, &none));
    break;
  }
  case 5:
    *name = "suspect_dead_left_widths";
    begin(NULL, "sender-d");
    for (size_t k = 0; k < NINTS; k++) {
      uint64_t a = ints[k], b = ints[NINTS - 1 - k];
      assert_int_equal(dmq__enc_suspect(&enc, sl("s"), a, b, sl("from-1")), 0);
      assert_int_equal(dmq__enc_dead(&enc, pat(33), b, a, pat(64)), 0);
      assert_int_equal(dmq__enc_left(&enc, sl("l"), a, a), 0);
    }
    break;
  case 6: {
    *name = "pushpull";
    dmq__slice_t cv[2] = {sl("x"), sl("yy")};
    dmq__record_t r[4];
    memset(r, 0, sizeof r);
    r[0].name = sl("r0");
    r[0].addr = sl("10.1.1.1:1");
    r[0].meta = pat(0);
    r[1].name = pat(50);
    r[1].addr = pat(100);
    r[1].incarnation = 0x1234;
    r[1].generation = 0x123456789aULL;
    r[1].state = 3;
    r[1].meta = pat(300);
    r[1].chans.n = 2;
    r[1].chans.v = cv;
    r[2].name = sl("r2");
    r[2].addr = sl("a");
    r[2].incarnation = UINT64_MAX;
    r[2].generation = 0x80;
    r[2].state = 1;
    r[2].meta = sl("m");
    r[3] = r[2];
    r[3].state = 2;
    r[3].meta.p = NULL;
    r[3].meta.n = 0;
    begin("lbl", "sender-e");
    assert_int_equal(dmq__enc_pushpull_begin(&enc, DMQ__PP_JOIN, 4), 0);
    for (int k = 0; k < 4; k++)
      assert_int_equal(dmq__enc_record(&enc, &r[k]), 0);
    assert_int_equal(dmq__enc_pushpull_begin(&enc, 0xff, 0), 0);
    assert_int_equal(
        dmq__enc_pushpull_begin(&enc, DMQ__PP_JOIN | DMQ__PP_REPLY, 1), 0);
    assert_int_equal(dmq__enc_record(&enc, &r[1]), 0);
    break;
  }
  case 7: {
    *name = "data";
    dmq__data_t d;
    begin(NULL, "sender-f");
    for (size_t k = 0; k < NINTS; k++) {
      memset(&d, 0, sizeof d);
      d.flags = (uint8_t)(k & DMQ__DATA_KNOWN);
      d.channel = k % 2 ? sl("c") : pat(32);
      d.src_gen = ints[k];
      d.dst_gen = ints[(k + 1) % NINTS];
      d.seq = ints[(k + 2) % NINTS];
      d.base = ints[(k + 3) % NINTS];
      d.ttl_ms = (uint32_t)ints[(k + 4) % NINTS];
      d.req_id = ints[(k + 5) % NINTS];
      d.payload = k == 3 ? pat(300) : k == 4 ? pat(255) : pat(k);
      if (k == 0)
        d.payload.p = NULL;
      before = enc.len;
      assert_int_equal(dmq__enc_data(&enc, &d), 0);
      assert_int_equal(enc.len - before, dmq__enc_size_data(&d));
    }
    break;
  }
  case 8: {
    *name = "data_bin32";
    dmq__data_t d;
    memset(&d, 0, sizeof d);
    d.flags = DMQ__DATA_RELIABLE | DMQ__DATA_MORE;
    d.channel = sl("bulk");
    d.src_gen = 1;
    d.dst_gen = 2;
    d.seq = 3;
    d.base = 1;
    d.ttl_ms = 30000;
    d.payload = pat(BIG_PAYLOAD);
    begin(NULL, "sender-g");
    before = enc.len;
    assert_int_equal(dmq__enc_data(&enc, &d), 0);
    assert_int_equal(enc.len - before, dmq__enc_size_data(&d));
    break;
  }
  case 9: {
    *name = "dack";
    uint64_t rs[DMQ__WIRE_MAX_REJ];
    uint8_t rr[DMQ__WIRE_MAX_REJ];
    dmq__dack_t a;
    for (int k = 0; k < DMQ__WIRE_MAX_REJ; k++) {
      rs[k] = ints[k % NINTS];
      rr[k] = (uint8_t)(k % 3 == 0 ? 255 : k % 3);
    }
    begin(NULL, "sender-h");
    for (int k = 0; k < 6; k++) {
      memset(&a, 0, sizeof a);
      a.src_gen = ints[k];
      a.dst_gen = ints[NINTS - 1 - k];
      a.cum = ints[(k + 4) % NINTS];
      a.sack = ints[(k + 7) % NINTS];
      a.rwnd = (uint32_t)ints[(k + 2) % NINTS];
      /* none; rejected only; delay only; both; 8 pairs (array16); 64 */
      a.nrej = k == 1 || k == 3 ? 2 : k == 4 ? 8 : k == 5 ? 64 : 0;
      a.rej_seq = rs;
      a.rej_reason = rr;
      a.delay_ms = k == 2 || k == 3 ? 5 : k == 5 ? 0x10000 : 0;
      before = enc.len;
      assert_int_equal(dmq__enc_dack(&enc, &a), 0);
      assert_int_equal(enc.len - before, dmq__enc_size_dack(&a));
    }
    break;
  }
  default:
    return 0;
  }
  return dmq__enc_end(&enc);
}

static void dump(void) {
  const char *name;
  size_t len;
  printf("/* Generated by WIRE_GOLDEN_WRITE=1 test_wire_golden: the packets "
         "of\n * tests/unit/test_wire_golden.c as the encoder wrote them. */\n"
         "#ifndef WIRE_GOLDEN_H\n#define WIRE_GOLDEN_H\n"
         "#include <stddef.h>\n#include <stdint.h>\n"
         "typedef struct wire_golden {\n  const char *name;\n  size_t len;\n"
         "  uint64_t fnv1a; /* of all len bytes */\n"
         "  const char *hex; /* the first (at most 2048) bytes */\n"
         "} wire_golden_t;\n"
         "static const wire_golden_t wire_golden[] = {\n");
  for (int i = 0; (len = build_case(i, &name)) != 0; i++) {
    size_t n = len < 2048 ? len : 2048;
    printf("{\"%s\", %zu, 0x%016llxULL,\n", name, len,
           (unsigned long long)fnv1a(buf, len));
    for (size_t k = 0; k < n; k += 32) {
      printf("\"");
      for (size_t j = k; j < n && j < k + 32; j++)
        printf("%02x", buf[j]);
      printf("\"\n");
    }
    printf("},\n");
  }
  printf("};\n#endif\n");
}

static void test_golden(void **state) {
  const char *name;
  size_t len;
  size_t ncases = sizeof wire_golden / sizeof wire_golden[0];
  int i;
  for (i = 0; (len = build_case(i, &name)) != 0; i++) {
    const wire_golden_t *g = &wire_golden[i];
    size_t n = len < 2048 ? len : 2048;
    char hex[2 * 2048 + 1];
    assert_true((size_t)i < ncases);
    assert_string_equal(name, g->name);
    for (size_t k = 0; k < n; k++)
      snprintf(hex + 2 * k, 3, "%02x", buf[k]);
    hex[2 * n] = '\0';
    assert_string_equal(hex, g->hex);
    assert_int_equal(len, g->len);
    assert_int_equal(fnv1a(buf, len), g->fnv1a);
  }
  assert_int_equal((size_t)i, ncases);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_golden),
  };
  fill_pattern();
  if (getenv("WIRE_GOLDEN_WRITE") != NULL) {
    dump();
    return 0;
  }
  return cmocka_run_group_tests(tests, NULL, NULL);
}
