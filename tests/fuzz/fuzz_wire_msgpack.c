/* Differential fuzz target: the decoder primitives of src/wire.c (the
 * bounded zero-copy cursor) against msgpack-c's unpacker.
 *
 * The input is read as a sequence of msgpack objects. At each object start,
 * msgpack_unpack_next() parses one object and wire_skip() (the generic skip
 * dmq__wire_next() uses to find where a message ends) must agree with it
 * exactly: both accept and end at the same byte, or both refuse (msgpack-c:
 * CONTINUE = truncated, PARSE_ERROR = 0xc1, NOMEM_ERROR = nested too deep).
 * Then every typed reader (uint with several maxima, str, bin, meta, array
 * header, flag, channels, DACK rejected pairs) is run at the same start and
 * must accept exactly the objects its rule below describes, read msgpack-c's
 * value (integers, lengths, bytes, element values) and stop at msgpack-c's
 * end. The walk goes on with the next object while both accept. Any
 * difference aborts.
 *
 * Where the two are allowed to differ, ours is the stricter or maps a value
 * on purpose (docs/wire.md, "Decoder and msgpack-c", which has them as a
 * table):
 *  - nesting: a container (array or map, even an empty one) is refused at
 *    depth >= 32 (the outermost object is depth 0), which is msgpack-c's own
 *    limit (MSGPACK_EMBED_STACK_SIZE, NOMEM_ERROR). Until this target our
 *    skip accepted an *empty* container at depth 32, one level more than
 *    msgpack-c: seen in msgpack-c's unpack_template.h while writing this
 *    target, confirmed by it (seed3 below, corpus/wire_msgpack), fixed in
 *    wire_skip, regression test_nesting_depth_empty in test_wire.c. (A
 *    120 s libFuzzer run from the golden packets alone, on the old skip, did
 *    not reach 33 nested arrays: it needs the seed.)
 *  - inside a packet a message array is at depth 2 of the body, and the
 *    message iterator starts its skip there (WIRE_MSG_DEPTH), so a packet
 *    nests no deeper than msgpack-c accepts for the whole body: this target
 *    checks the skip from depth 0 (one object at a time), test_nesting_depth
 *    and test_nesting_depth_empty the message boundary (30 below a
 *    message).
 *  - str fields (names, addresses, channels) refuse a str holding a NUL byte
 *    and lengths out of the field's bounds; msgpack-c accepts any str.
 *  - integers: a uint field takes any msgpack integer form whose value is in
 *    0..max (signed forms included: msgpack-c reads a non-negative signed
 *    integer as POSITIVE_INTEGER too); negative values, floats and values
 *    over max are refused.
 *  - nil is read as an empty bin (meta, payload) and as no channels; a flag
 *    is true/false or the integers 0/1. msgpack-c reports nil, bool and int.
 *  - the readers never allocate; msgpack-c allocates a zone per object (which
 *    is why the library does not use it to decode).
 *
 * Run: build with clang and -DDMQ_FUZZ=ON, then
 *   build-clang/tests/fuzz/fuzz_wire_msgpack -max_total_time=300 -jobs=1 \
 *     CORPUS_DIR tests/fuzz/corpus/wire_msgpack
 * Without libFuzzer, standalone_main.c runs it over a fixed corpus (ctest
 * fuzz_wire_msgpack_smoke).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

/* The primitives are static in wire.c: compile it into this target. */
#include "wire.c"

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond))                                                               \
      abort();                                                                 \
  } while (0)

typedef struct obj_ref {
  const msgpack_object *o;
  const uint8_t *start, *end; /* msgpack-c's bounds of the object */
  const uint8_t *buf_end;     /* end of the input */
} obj_ref_t;

static wire_cur_t cur_at(const obj_ref_t *r) {
  wire_cur_t c = {r->start, r->buf_end};
  return c;
}

static int has_nul(const char *p, size_t n) {
  return n > 0 && memchr(p, 0, n) != NULL;
}

static int is_uint(const msgpack_object *o, uint64_t max) {
  return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= max;
}

static int is_field_str(const msgpack_object *o, size_t min, size_t max) {
  return o->type == MSGPACK_OBJECT_STR && o->via.str.size >= min &&
         o->via.str.size <= max && !has_nul(o->via.str.ptr, o->via.str.size);
}

static void same_bytes(dmq__slice_t s, const char *p, size_t n) {
  CHECK(s.n == n);
  if (n > 0)
    CHECK(memcmp(s.p, p, n) == 0);
}

static void check_uint(const obj_ref_t *r, uint64_t max) {
  wire_cur_t c = cur_at(r);
  uint64_t v = 0;
  int ok = wire_rd_uint(&c, max, &v) == 0;
  CHECK(ok == is_uint(r->o, max));
  if (ok)
    CHECK(v == r->o->via.u64 && c.p == r->end);
}

static void check_str(const obj_ref_t *r, size_t min, size_t max) {
  wire_cur_t c = cur_at(r);
  dmq__slice_t s = {NULL, 0};
  int ok = wire_rd_str(&c, min, max, &s) == 0;
  CHECK(ok == is_field_str(r->o, min, max));
  if (ok) {
    CHECK(c.p == r->end);
    same_bytes(s, r->o->via.str.ptr, r->o->via.str.size);
    /* zero copy: the slice points into the input */
    CHECK((const uint8_t *)s.p >= r->start && (const uint8_t *)s.p <= r->end);
  }
}

static void check_bin(const obj_ref_t *r, int meta) {
  wire_cur_t c = cur_at(r);
  dmq__slice_t s = {NULL, 0};
  const msgpack_object *o = r->o;
  int ok = (meta ? wire_rd_meta(&c, &s) : wire_rd_bin(&c, &s)) == 0;
  int want = o->type == MSGPACK_OBJECT_NIL ||
             (o->type == MSGPACK_OBJECT_BIN &&
              (!meta || o->via.bin.size <= DMQ_MAX_META));
  CHECK(ok == want);
  if (!ok)
    return;
  CHECK(c.p == r->end && s.p != NULL);
  if (o->type == MSGPACK_OBJECT_NIL)
    CHECK(s.n == 0);
  else
    same_bytes(s, o->via.bin.ptr, o->via.bin.size);
}

static void check_array(const obj_ref_t *r) {
  wire_cur_t c = cur_at(r);
  uint32_t n;
  int ok = wire_rd_array(&c, &n) == 0;
  CHECK(ok == (r->o->type == MSGPACK_OBJECT_ARRAY));
  if (!ok)
    return;
  CHECK(n == r->o->via.array.size);
  if (n == 0)
    CHECK(c.p == r->end);
}

static void check_flag(const obj_ref_t *r) {
  wire_cur_t c = cur_at(r);
  uint8_t f;
  int ok = wire_rd_flag(&c, &f) == 0;
  int isbool = r->o->type == MSGPACK_OBJECT_BOOLEAN;
  CHECK(ok == (isbool || is_uint(r->o, 1)));
  if (ok)
    CHECK(c.p == r->end &&
          f == (isbool ? (uint8_t)r->o->via.boolean : (uint8_t)r->o->via.u64));
}

static void check_chans(const obj_ref_t *r) {
  wire_cur_t c = cur_at(r);
  dmq__chans_t ch;
  dmq__slice_t out[DMQ_MAX_CHANNELS];
  const msgpack_object *o = r->o;
  int ok = wire_rd_chans(&c, &ch) == 0;
  int want = o->type == MSGPACK_OBJECT_NIL;
  if (o->type == MSGPACK_OBJECT_ARRAY &&
      o->via.array.size <= DMQ_MAX_CHANNELS) {
    want = 1;
    for (uint32_t i = 0; i < o->via.array.size; i++)
      if (!is_field_str(&o->via.array.ptr[i], 1, DMQ_MAX_CHANNEL))
        want = 0;
  }
  CHECK(ok == want);
  if (!ok)
    return;
  CHECK(c.p == r->end);
  if (o->type == MSGPACK_OBJECT_NIL) {
    CHECK(ch.n == 0);
    return;
  }
  CHECK(ch.n == o->via.array.size);
  CHECK(dmq__wire_chans(&ch, out, DMQ_MAX_CHANNELS) == ch.n);
  for (uint32_t i = 0; i < ch.n; i++)
    same_bytes(out[i], o->via.array.ptr[i].via.str.ptr,
               o->via.array.ptr[i].via.str.size);
}

static void check_rejs(const obj_ref_t *r) {
  wire_cur_t c = cur_at(r);
  dmq__dack_t a;
  uint64_t seq[DMQ__WIRE_MAX_REJ];
  uint8_t reason[DMQ__WIRE_MAX_REJ];
  const msgpack_object *o = r->o;
  int ok, want = 0;
  memset(&a, 0, sizeof a);
  ok = wire_rd_rejs(&c, &a) == 0;
  if (o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size % 2 == 0 &&
      o->via.array.size / 2 <= DMQ__WIRE_MAX_REJ) {
    want = 1;
    for (uint32_t i = 0; i < o->via.array.size; i++)
      if (!is_uint(&o->via.array.ptr[i], i % 2 ? UINT8_MAX : UINT64_MAX))
        want = 0;
  }
  CHECK(ok == want);
  if (!ok)
    return;
  CHECK(c.p == r->end && a.nrej == o->via.array.size / 2);
  CHECK(dmq__wire_rejs(&a, seq, reason, DMQ__WIRE_MAX_REJ) == a.nrej);
  for (uint32_t i = 0; i < a.nrej; i++)
    CHECK(seq[i] == o->via.array.ptr[2 * i].via.u64 &&
          reason[i] == o->via.array.ptr[2 * i + 1].via.u64);
}

/* msgpack-c allocates a container's elements as soon as it reads its header
 * (24 bytes each, 48 per map pair), before it finds the input truncated:
 * dd ff ff ff ff asks for ~100 GB. Could it, reading data[p..end) any way,
 * meet an array or map 16/32 header whose count the rest cannot hold? Only
 * asked for an object our skip refused, so what this skips is the check that
 * msgpack-c refuses it too (ours may be the stricter anyway); an object our
 * skip accepts has every count bounded by the bytes left, and msgpack-c only
 * sees the bytes up to where our skip ended. */
static int may_overallocate(const uint8_t *p, const uint8_t *end) {
  for (; p + 3 <= end; p++) {
    size_t left = (size_t)(end - p), n;
    if (*p == 0xdc || *p == 0xde) {
      n = (size_t)p[1] << 8 | p[2];
      if (n > left - 3)
        return 1;
    } else if ((*p == 0xdd || *p == 0xdf) && left >= 5) {
      n = (size_t)p[1] << 24 | (size_t)p[2] << 16 | (size_t)p[3] << 8 | p[4];
      if (n > left - 5)
        return 1;
    }
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t off = 0;
  while (off < size) {
    msgpack_unpacked u;
    size_t next = off, lim = size;
    wire_cur_t c = {data + off, data + size};
    int ours = wire_skip(&c, 0) == 0;
    int rc;
    if (ours)
      lim = (size_t)(c.p - data); /* msgpack-c must end exactly there */
    else if (may_overallocate(data + off, data + size))
      break;
    msgpack_unpacked_init(&u);
    rc = msgpack_unpack_next(&u, (const char *)data, lim, &next);
    if (rc != MSGPACK_UNPACK_SUCCESS && rc != MSGPACK_UNPACK_EXTRA_BYTES) {
      /* CONTINUE (truncated), PARSE_ERROR (0xc1), NOMEM (too deep) */
      CHECK(rc == MSGPACK_UNPACK_CONTINUE || rc == MSGPACK_UNPACK_PARSE_ERROR ||
            rc == MSGPACK_UNPACK_NOMEM_ERROR);
      CHECK(!ours);
      msgpack_unpacked_destroy(&u);
      break;
    }
    /* msgpack-c took it: so must we, ending at the same byte */
    CHECK(ours);
    CHECK(c.p == data + next && next > off);
    {
      obj_ref_t r = {&u.data, data + off, data + next, data + size};
      check_uint(&r, UINT64_MAX);
      check_uint(&r, UINT32_MAX);
      check_uint(&r, UINT8_MAX);
      check_uint(&r, 1);
      check_uint(&r, DMQ_MEMBER_STATE_COUNT - 1);
      check_str(&r, 0, SIZE_MAX);
      check_str(&r, 1, DMQ_MAX_NAME);
      check_str(&r, 1, DMQ_MAX_ADDR);
      check_bin(&r, 0);
      check_bin(&r, 1);
      check_array(&r);
      check_flag(&r);
      check_chans(&r);
      check_rejs(&r);
    }
    msgpack_unpacked_destroy(&u);
    off = next;
  }
  return 0;
}

/* Belt and braces for may_overallocate() under ASan: should msgpack-c still
 * ask for a huge block, let malloc fail (msgpack-c then reports
 * NOMEM_ERROR) instead of ASan reporting it as a crash. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) {
  return "allocator_may_return_null=1";
}

/* Seeds for the stand-alone driver (libFuzzer starts from its corpus). */
static const uint8_t seed0[] = {0x93, 0x01, 0xa1, 'x', 0xc4, 0x01, 'y'};
static const uint8_t seed1[] = {
    0x96, 0x0b, 0xcf, 0, 0, 0, 0,    0,    0,    0,    1,    0xd3, 0,   0,
    0,    0,    0,    0, 0, 2, 0xcc, 0xff, 0xd0, 0x7f, 0x92, 0x05, 0x01};
static const uint8_t seed2[] = {0x92, 0xa2, 'a',  'b',  0xc0, 0xc3, 0xc2,
                                0x81, 0x01, 0x02, 0xd4, 0x01, 0x00, 0xca,
                                0,    0,    0,    0,    0xd9, 0x01, 'z'};
static const uint8_t seed3[] = {
    /* 33 nested arrays, the innermost empty: one level over msgpack-c's */
    0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91,
    0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91,
    0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x90};
static const uint8_t *const seed_bufs[] = {seed0, seed1, seed2, seed3};
static const size_t seed_lens[] = {sizeof seed0, sizeof seed1, sizeof seed2,
                                   sizeof seed3};

size_t dmq_fuzz_seeds(const uint8_t *const **bufs, const size_t **lens);
size_t dmq_fuzz_seeds(const uint8_t *const **bufs, const size_t **lens) {
  *bufs = seed_bufs;
  *lens = seed_lens;
  return sizeof seed_lens / sizeof seed_lens[0];
}
