/* Shared helpers of the libFuzzer targets in tests/fuzz (docs/testing.md):
 * an abort-on-failure CHECK, a cursor over the fuzz input, and the checks of
 * the wire decoder's contracts (every slice inside the packet and within its
 * bound, iterators that end) that several targets run on what they decode.
 * Header-only: each target is its own program.
 */
#ifndef DMQ_TESTS_FUZZ_COMMON_H
#define DMQ_TESTS_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"
#include <dmq/dmq.h>

/* Not assert(): stays on in release builds. */
#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      abort();                                                                 \
    }                                                                          \
  } while (0)

/* ---- reading the fuzz input ---- */

typedef struct fuzz_in {
  const uint8_t *p;
  size_t n;
} fuzz_in_t;

static inline int fuzz_left(const fuzz_in_t *in) {
  return in->n > 0;
}

/* Past the end every read returns zeros, so a short input is still a
 * complete (if dull) program. */
static inline uint8_t fuzz_u8(fuzz_in_t *in) {
  if (in->n == 0)
    return 0;
  in->n--;
  return *in->p++;
}

static inline uint16_t fuzz_u16(fuzz_in_t *in) {
  uint16_t hi = fuzz_u8(in);
  return (uint16_t)(hi << 8 | fuzz_u8(in));
}

static inline uint32_t fuzz_u32(fuzz_in_t *in) {
  uint32_t hi = fuzz_u16(in);
  return hi << 16 | fuzz_u16(in);
}

static inline uint64_t fuzz_u64(fuzz_in_t *in) {
  uint64_t hi = fuzz_u32(in);
  return hi << 32 | fuzz_u32(in);
}

/* Up to want bytes, borrowed from the input; *got says how many. */
static inline const uint8_t *fuzz_bytes(fuzz_in_t *in, size_t want,
                                        size_t *got) {
  const uint8_t *p = in->p;
  if (want > in->n)
    want = in->n;
  in->p += want;
  in->n -= want;
  *got = want;
  return p;
}

/* The 12 bytes of a valid envelope from sender "s" holding `count`
 * messages, as an initializer list: 'D' 'Q' version flags | array(2) |
 * str "s" | array32(count). The message area follows. */
#define FUZZ_ENVELOPE_LEN 12
#define FUZZ_ENVELOPE(count)                                                   \
  DMQ__WIRE_MAGIC0, DMQ__WIRE_MAGIC1, DMQ__WIRE_VERSION, 0, 0x92, 0xa1, 's',   \
      0xdd, 0, 0, 0, (count)

/* ---- wire decoder contracts ---- */

/* Every byte of a slice lies inside the packet, and it is within max. */
static inline void fuzz_check_slice(dmq__slice_t s, const uint8_t *data,
                                    size_t size, size_t max) {
  CHECK(s.n <= max);
  if (s.n > 0)
    CHECK((const uint8_t *)s.p >= data &&
          (const uint8_t *)s.p + s.n <= data + size);
}

static inline void fuzz_check_chans(const dmq__chans_t *c, const uint8_t *data,
                                    size_t size) {
  dmq__slice_t v[DMQ_MAX_CHANNELS];
  CHECK(c->n <= DMQ_MAX_CHANNELS);
  size_t k = dmq__wire_chans(c, v, DMQ_MAX_CHANNELS);
  CHECK(k == c->n);
  for (size_t i = 0; i < k; i++) {
    CHECK(v[i].n >= 1);
    fuzz_check_slice(v[i], data, size, DMQ_MAX_CHANNEL);
  }
}

/* Iterate the records of a decoded push/pull: all valid (dmq__wire_next()
 * validated them), exactly rec_count of them. */
static inline void fuzz_check_records(const dmq__msg_t *m, const uint8_t *data,
                                      size_t size) {
  dmq__rec_iter_t ri;
  dmq__record_t r;
  uint32_t n = 0;
  int rc;
  CHECK(m->rec_count <= DMQ__WIRE_MAX_RECORDS);
  dmq__wire_records(m, &ri);
  while ((rc = dmq__wire_next_record(&ri, &r)) == 1) {
    CHECK(r.name.n >= 1 && r.addr.n >= 1);
    fuzz_check_slice(r.name, data, size, DMQ_MAX_NAME);
    fuzz_check_slice(r.addr, data, size, DMQ_MAX_ADDR);
    fuzz_check_slice(r.meta, data, size, DMQ_MAX_META);
    CHECK(r.state < DMQ_MEMBER_STATE_COUNT);
    fuzz_check_chans(&r.chans, data, size);
    CHECK(++n <= m->rec_count);
  }
  CHECK(rc == 0 && n == m->rec_count);
}

/* One decoded message (dmq__wire_next() returned 1). */
static inline void fuzz_check_msg(const dmq__msg_t *m, const uint8_t *data,
                                  size_t size) {
  CHECK(m->type >= 1 && m->type <= DMQ__MSG_TYPE_MAX_KNOWN);
  fuzz_check_slice(m->name, data, size, DMQ_MAX_NAME);
  fuzz_check_slice(m->addr, data, size, DMQ_MAX_ADDR);
  fuzz_check_slice(m->from, data, size, DMQ_MAX_NAME);
  fuzz_check_slice(m->meta, data, size, DMQ_MAX_META);
  switch (m->type) {
  case DMQ__MSG_PING:
  case DMQ__MSG_PING_REQ:
  case DMQ__MSG_ALIVE:
  case DMQ__MSG_SUSPECT:
  case DMQ__MSG_DEAD:
  case DMQ__MSG_LEFT:
    CHECK(m->name.n >= 1);
    break;
  default:
    break;
  }
  if (m->type == DMQ__MSG_ALIVE)
    fuzz_check_chans(&m->chans, data, size);
  if (m->type == DMQ__MSG_PUSHPULL)
    fuzz_check_records(m, data, size);
  if (m->type == DMQ__MSG_DATA) {
    /* unknown DATA flag bits are accepted (newer senders) and ignored */
    CHECK(m->data.channel.n >= 1);
    fuzz_check_slice(m->data.channel, data, size, DMQ_MAX_CHANNEL);
    fuzz_check_slice(m->data.payload, data, size, size);
  }
  if (m->type == DMQ__MSG_DACK) {
    uint64_t seq[DMQ__WIRE_MAX_REJ];
    uint8_t reason[DMQ__WIRE_MAX_REJ];
    CHECK(m->dack.nrej <= DMQ__WIRE_MAX_REJ);
    CHECK(dmq__wire_rejs(&m->dack, seq, reason, DMQ__WIRE_MAX_REJ) ==
          m->dack.nrej);
  }
}

/* Iterate every message of an opened envelope, checking each. Returns the
 * number of messages decoded (1) plus skipped (2). */
static inline uint32_t fuzz_check_msgs(const dmq__envelope_t *env,
                                       const uint8_t *data, size_t size) {
  dmq__msg_iter_t it;
  dmq__msg_t m;
  uint32_t seen = 0;
  int rc;
  dmq__wire_msgs(env, &it);
  while ((rc = dmq__wire_next(&it, &m)) != 0) {
    if (rc == -1) {
      CHECK(dmq__wire_next(&it, &m) == -1); /* stays stopped */
      break;
    }
    CHECK(rc == 1 || rc == 2);
    CHECK(++seen <= env->msg_count);
    CHECK(m.type <= DMQ__MSG_TYPE_MAX_KNOWN);
    if (rc == 1)
      fuzz_check_msg(&m, data, size);
  }
  return seen;
}

/* The envelope of a packet that opened. */
static inline void fuzz_check_envelope(const dmq__envelope_t *env,
                                       const uint8_t *data, size_t size) {
  CHECK(env->version == DMQ__WIRE_VERSION);
  CHECK((env->flags & ~DMQ__WIRE_FLAGS_KNOWN) == 0);
  CHECK(env->msg_count <= DMQ__WIRE_MAX_MSGS);
  CHECK(env->sender.n >= 1);
  fuzz_check_slice(env->sender, data, size, DMQ_MAX_NAME);
  fuzz_check_slice(env->label, data, size, DMQ_MAX_LABEL);
  if (env->msgs_len > 0)
    CHECK(env->msgs_p >= data && env->msgs_p + env->msgs_len <= data + size);
}

#endif
