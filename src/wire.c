/* libdmq - wire codec: the packet envelope, an encoder that appends whole
 * messages to a fixed caller buffer through msgpack-c's packer, and a
 * bounded, zero-copy, non-allocating msgpack decoder for the messages of
 * wire.h.
 *
 * The encoder writes each message's field list once (wire_pk_*), runs it
 * with a counting writer for the exact size first, so an append is all or
 * nothing, then with a writer into the buffer. msgpack-c's pack functions are
 * static inline: the library uses its headers and links nothing of it. The
 * decoder first skips a message generically (every msgpack type, nesting
 * bounded by WIRE_SKIP_DEPTH) to find where it ends, then reads its fields
 * from inside those bounds only: a malformed or unknown message never
 * desynchronises the iterator, and nothing is read past the end of the
 * packet. (A push/pull or DIFF, the messages with records, is read in one
 * walk instead: dmq__wire_next.) tests/fuzz/fuzz_wire_msgpack.c checks the
 * decoder's primitives against msgpack-c's unpacker.
 */
#include "wire.h"

#include <string.h>

#include <msgpack/pack.h>

#include "dmq/delivery.h" /* DMQ_MAX_CHANNEL(S) */
#include "dmq/error.h"
#include "dmq/node.h"

/* Containers nest at most WIRE_SKIP_DEPTH deep, counted from the packet
 * body (depth 0), and a container at depth WIRE_SKIP_DEPTH is refused, as
 * msgpack-c's unpacker refuses it (MSGPACK_EMBED_STACK_SIZE = 32) when it is
 * given the whole body: so no packet we accept is one msgpack-c refuses. A
 * message array sits at depth WIRE_MSG_DEPTH (body array, messages array),
 * the fields of a push/pull record three levels below it (fields array,
 * records array, record array). */
#define WIRE_SKIP_DEPTH 32
#define WIRE_MSG_DEPTH 2
#define WIRE_RECORD_FIELD_DEPTH (WIRE_MSG_DEPTH + 3)

/* Fields after the type, per known message type. */
static const uint8_t wire_nfields[DMQ__MSG_TYPE_MAX_KNOWN + 1] = {
    [DMQ__MSG_PING] = 2, [DMQ__MSG_PING_REQ] = 4, [DMQ__MSG_ACK] = 1,
    [DMQ__MSG_NACK] = 1, [DMQ__MSG_ALIVE] = 5,    [DMQ__MSG_SUSPECT] = 4,
    [DMQ__MSG_DEAD] = 4, [DMQ__MSG_LEFT] = 3,     [DMQ__MSG_PUSHPULL] = 2,
    [DMQ__MSG_DATA] = 9, [DMQ__MSG_DACK] = 5,     [DMQ__MSG_DIGEST] = 4,
    [DMQ__MSG_DIFF] = 4,
};
/* Optional trailing fields read when present: ALIVE channels (6th field),
 * record channels (7th element), DACK rejected pairs (6th field) and ack
 * delay (7th field). */
#define WIRE_ALIVE_CHANS_FIELD 6
#define WIRE_RECORD_CHANS_ELEM 7
#define WIRE_DACK_REJ_FIELD 6
#define WIRE_DACK_DELAY_FIELD 7

/* ======================================================================
 * Decoding
 * ====================================================================== */

typedef struct wire_cur {
  const uint8_t *p, *end;
} wire_cur_t;

static size_t wire_left(const wire_cur_t *c) {
  return (size_t)(c->end - c->p);
}

/* Read an n-byte big-endian number. */
static int wire_take(wire_cur_t *c, size_t n, uint64_t *v) {
  uint64_t x = 0;
  if (wire_left(c) < n)
    return -1;
  for (size_t i = 0; i < n; i++)
    x = (x << 8) | c->p[i];
  c->p += n;
  *v = x;
  return 0;
}

/* Any msgpack integer in 0..max (signed forms accepted when >= 0). */
static int wire_rd_uint(wire_cur_t *c, uint64_t max, uint64_t *out) {
  uint64_t v;
  size_t n;
  int sign = 0;
  uint8_t t;
  if (c->p >= c->end)
    return -1;
  t = *c->p++;
  if (t <= 0x7f) {
    v = t;
  } else {
    switch (t) {
    case 0xcc:
      n = 1;
      break;
    case 0xcd:
      n = 2;
      break;
    case 0xce:
      n = 4;
      break;
    case 0xcf:
      n = 8;
      break;
    case 0xd0:
      n = 1;
      sign = 1;
      break;
    case 0xd1:
      n = 2;
      sign = 1;
      break;
    case 0xd2:
      n = 4;
      sign = 1;
      break;
    case 0xd3:
      n = 8;
      sign = 1;
      break;
    default:
      return -1; /* negative fixint, or not an integer */
    }
    if (wire_take(c, n, &v))
      return -1;
    if (sign && (v >> (8 * n - 1)) != 0)
      return -1; /* negative */
  }
  if (v > max)
    return -1;
  *out = v;
  return 0;
}

/* Length-prefixed bytes: take the payload after a length of lbytes. */
static int wire_rd_payload(wire_cur_t *c, size_t lbytes, dmq__slice_t *s) {
  uint64_t n;
  if (wire_take(c, lbytes, &n) || n > wire_left(c))
    return -1;
  s->p = (const char *)c->p;
  s->n = (size_t)n;
  c->p += n;
  return 0;
}

/* A str of min..max bytes with no NUL byte (names and addresses). */
static int wire_rd_str(wire_cur_t *c, size_t min, size_t max, dmq__slice_t *s) {
  uint8_t t;
  size_t lb;
  if (c->p >= c->end)
    return -1;
  t = *c->p++;
  if (t >= 0xa0 && t <= 0xbf) {
    if ((size_t)(t & 0x1f) > wire_left(c))
      return -1;
    s->p = (const char *)c->p;
    s->n = t & 0x1f;
    c->p += s->n;
  } else {
    switch (t) {
    case 0xd9:
      lb = 1;
      break;
    case 0xda:
      lb = 2;
      break;
    case 0xdb:
      lb = 4;
      break;
    default:
      return -1;
    }
    if (wire_rd_payload(c, lb, s))
      return -1;
  }
  if (s->n < min || s->n > max || memchr(s->p, 0, s->n) != NULL)
    return -1;
  return 0;
}

/* Any bin (payload), bounded only by the packet; nil = empty. */
static int wire_rd_bin(wire_cur_t *c, dmq__slice_t *s) {
  size_t lb;
  if (c->p >= c->end)
    return -1;
  switch (*c->p++) {
  case 0xc0:
    s->p = (const char *)c->p; /* empty, but never NULL */
    s->n = 0;
    return 0;
  case 0xc4:
    lb = 1;
    break;
  case 0xc5:
    lb = 2;
    break;
  case 0xc6:
    lb = 4;
    break;
  default:
    return -1;
  }
  return wire_rd_payload(c, lb, s);
}

/* Metadata: bin of 0..DMQ_MAX_META bytes, or nil for none. */
static int wire_rd_meta(wire_cur_t *c, dmq__slice_t *s) {
  if (wire_rd_bin(c, s) || s->n > DMQ_MAX_META)
    return -1;
  return 0;
}

static int wire_rd_array(wire_cur_t *c, uint32_t *n);

/* Channels field: array of 0..DMQ_MAX_CHANNELS names, or nil. */
static int wire_rd_chans(wire_cur_t *c, dmq__chans_t *ch) {
  uint32_t n;
  dmq__slice_t s;
  memset(ch, 0, sizeof *ch);
  if (c->p < c->end && *c->p == 0xc0) {
    c->p++;
    return 0;
  }
  if (wire_rd_array(c, &n) || n > DMQ_MAX_CHANNELS)
    return -1;
  ch->raw = c->p;
  for (uint32_t i = 0; i < n; i++)
    if (wire_rd_str(c, 1, DMQ_MAX_CHANNEL, &s))
      return -1;
  ch->n = n;
  ch->raw_len = (size_t)(c->p - ch->raw);
  return 0;
}

size_t dmq__wire_chans(const dmq__chans_t *ch, dmq__slice_t *out, size_t max) {
  wire_cur_t c;
  size_t k = 0;
  if (ch == NULL || ch->n == 0)
    return 0;
  if (ch->raw == NULL) { /* encoder-side value */
    for (; k < ch->n && k < max; k++)
      out[k] = ch->v[k];
    return k;
  }
  c.p = ch->raw;
  c.end = ch->raw + ch->raw_len;
  for (; k < ch->n && k < max; k++)
    if (wire_rd_str(&c, 1, DMQ_MAX_CHANNEL, &out[k]))
      break;
  return k;
}

/* DACK rejected pairs: array of 2k uints, k <= DMQ__WIRE_MAX_REJ. */
static int wire_rd_rejs(wire_cur_t *c, dmq__dack_t *a) {
  uint32_t n;
  uint64_t v;
  if (wire_rd_array(c, &n) || n % 2 != 0 || n / 2 > DMQ__WIRE_MAX_REJ)
    return -1;
  a->rej_raw = c->p;
  for (uint32_t i = 0; i < n; i++)
    if (wire_rd_uint(c, i % 2 ? UINT8_MAX : UINT64_MAX, &v))
      return -1;
  a->nrej = n / 2;
  a->rej_len = (size_t)(c->p - a->rej_raw);
  return 0;
}

size_t dmq__wire_rejs(const dmq__dack_t *a, uint64_t *seq, uint8_t *reason,
                      size_t max) {
  wire_cur_t c;
  uint64_t s, r;
  size_t k = 0;
  if (a == NULL || a->nrej == 0)
    return 0;
  if (a->rej_raw == NULL) {
    for (; k < a->nrej && k < max; k++) {
      seq[k] = a->rej_seq[k];
      reason[k] = a->rej_reason[k];
    }
    return k;
  }
  c.p = a->rej_raw;
  c.end = a->rej_raw + a->rej_len;
  for (; k < a->nrej && k < max; k++) {
    if (wire_rd_uint(&c, UINT64_MAX, &s) || wire_rd_uint(&c, UINT8_MAX, &r))
      break;
    seq[k] = s;
    reason[k] = (uint8_t)r;
  }
  return k;
}

static int wire_rd_array(wire_cur_t *c, uint32_t *n) {
  uint64_t v;
  uint8_t t;
  if (c->p >= c->end)
    return -1;
  t = *c->p++;
  if (t >= 0x90 && t <= 0x9f) {
    *n = t & 0x0f;
    return 0;
  }
  if (t == 0xdc && wire_take(c, 2, &v) == 0) {
    *n = (uint32_t)v;
    return 0;
  }
  if (t == 0xdd && wire_take(c, 4, &v) == 0) {
    *n = (uint32_t)v;
    return 0;
  }
  return -1;
}

/* true/false, or the integers 0/1. */
static int wire_rd_flag(wire_cur_t *c, uint8_t *out) {
  uint64_t v;
  if (c->p < c->end && (*c->p == 0xc2 || *c->p == 0xc3)) {
    *out = *c->p++ == 0xc3;
    return 0;
  }
  if (wire_rd_uint(c, 1, &v))
    return -1;
  *out = (uint8_t)v;
  return 0;
}

/* What follows tag t (0x80 and above, not nil or bool): *skip bytes, or
 * *items objects of a container. 0, or -1 for a short or unused tag. */
static int wire_skip_head(wire_cur_t *c, uint8_t t, uint64_t *skip,
                          uint64_t *items) {
  /* the fixed sizes of 0xc0..0xdf: float, (u)int, fixext (type + data) */
  static const uint8_t fixed[0x20] = {
      [0x0a] = 4, [0x0b] = 8, [0x0c] = 1, [0x0d] = 2, [0x0e] = 4,
      [0x0f] = 8, [0x10] = 1, [0x11] = 2, [0x12] = 4, [0x13] = 8,
      [0x14] = 2, [0x15] = 3, [0x16] = 5, [0x17] = 9, [0x18] = 17};
  uint64_t v;
  if (t <= 0x8f) {
    *items = 2u * (t & 0x0f); /* fixmap */
    return 0;
  }
  if (t <= 0x9f) {
    *items = t & 0x0f; /* fixarray */
    return 0;
  }
  if (t <= 0xbf) {
    *skip = t & 0x1f; /* fixstr */
    return 0;
  }
  if (fixed[t - 0xc0] != 0) {
    *skip = fixed[t - 0xc0];
    return 0;
  }
  switch (t) {
  case 0xc4:
  case 0xc5:
  case 0xc6: /* bin8, bin16, bin32 */
    return wire_take(c, (size_t)1 << (t - 0xc4), skip);
  case 0xd9:
  case 0xda:
  case 0xdb: /* str8, str16, str32 */
    return wire_take(c, (size_t)1 << (t - 0xd9), skip);
  case 0xc7:
  case 0xc8:
  case 0xc9: /* ext8, ext16, ext32: len, type, data */
    if (wire_take(c, (size_t)1 << (t - 0xc7), &v))
      return -1;
    *skip = v + 1;
    return 0;
  case 0xdc:
  case 0xdd: /* array16, array32 */
    return wire_take(c, (size_t)2 << (t - 0xdc), items);
  case 0xde:
  case 0xdf: /* map16, map32 */
    if (wire_take(c, (size_t)2 << (t - 0xde), &v))
      return -1;
    *items = 2 * v;
    return 0;
  default: /* 0xc1: never used */
    return -1;
  }
}

/* Skip one msgpack object of any type. Every element of a container takes at
 * least one byte, so a count larger than the bytes left is rejected before
 * looping: the work is linear in the input. */
static int wire_skip(wire_cur_t *c, int depth) {
  uint64_t skip = 0, items = 0;
  uint8_t t;
  if (depth > WIRE_SKIP_DEPTH || c->p >= c->end)
    return -1;
  t = *c->p++;
  if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3)
    return 0; /* fixint, nil, bool */
  /* A container (array or map, even an empty one) at WIRE_SKIP_DEPTH or
   * deeper is refused, as msgpack-c does (an empty one used to pass here,
   * one level deeper than msgpack-c: see tests/fuzz/fuzz_wire_msgpack.c). */
  if (depth >= WIRE_SKIP_DEPTH && ((t >= 0x80 && t <= 0x9f) || t >= 0xdc))
    return -1;
  if (wire_skip_head(c, t, &skip, &items))
    return -1;
  if (skip > 0) {
    if (skip > wire_left(c))
      return -1;
    c->p += skip;
    return 0;
  }
  if (items > wire_left(c))
    return -1;
  while (items-- > 0)
    if (wire_skip(c, depth + 1))
      return -1;
  return 0;
}

int dmq__wire_head(const uint8_t *buf, size_t len, dmq__envelope_t *env,
                   size_t *body_off) {
  size_t off = 4;
  memset(env, 0, sizeof *env);
  *body_off = 0;
  if (buf == NULL || len < 4)
    return DMQ_DROP_SHORT + 1;
  if (buf[0] != DMQ__WIRE_MAGIC0 || buf[1] != DMQ__WIRE_MAGIC1)
    return DMQ_DROP_MAGIC + 1;
  env->version = buf[2];
  env->flags = buf[3];
  if (buf[2] != DMQ__WIRE_VERSION)
    return DMQ_DROP_VERSION + 1;
  if (buf[3] & ~DMQ__WIRE_FLAGS_KNOWN)
    return DMQ_DROP_MALFORMED + 1;
  if (buf[3] & DMQ__WIRE_FLAG_LABEL) {
    if (len < 5)
      return DMQ_DROP_SHORT + 1;
    if (buf[4] == 0 || buf[4] > DMQ_MAX_LABEL)
      return DMQ_DROP_MALFORMED + 1;
    if (len - 5 < buf[4])
      return DMQ_DROP_SHORT + 1;
    env->label.p = (const char *)buf + 5;
    env->label.n = buf[4];
    off = 5 + (size_t)buf[4];
  }
  *body_off = off;
  return 0;
}

int dmq__wire_body(const uint8_t *p, size_t len, dmq__envelope_t *env) {
  wire_cur_t c;
  uint32_t n;
  c.p = p;
  c.end = p + len;
  if (p == NULL || wire_rd_array(&c, &n) || n < 2 ||
      wire_rd_str(&c, 1, DMQ_MAX_NAME, &env->sender) || wire_rd_array(&c, &n))
    return DMQ_DROP_MALFORMED + 1;
  if (n > DMQ__WIRE_MAX_MSGS)
    return DMQ_DROP_OVERSIZE + 1;
  if (n > wire_left(&c))
    return DMQ_DROP_MALFORMED + 1; /* cannot hold n messages */
  env->msgs_p = c.p;
  env->msgs_len = wire_left(&c);
  env->msg_count = n;
  return 0;
}

int dmq__wire_open(const uint8_t *buf, size_t len, dmq__envelope_t *env) {
  size_t off;
  int rc = dmq__wire_head(buf, len, env, &off);
  if (rc != 0)
    return rc;
  if (buf[3] & DMQ__WIRE_FLAG_SEALED)
    return DMQ_DROP_UNSUPPORTED + 1;
  return dmq__wire_body(buf + off, len - off, env);
}

void dmq__wire_msgs(const dmq__envelope_t *env, dmq__msg_iter_t *it) {
  it->p = env->msgs_p;
  it->end = env->msgs_p != NULL ? env->msgs_p + env->msgs_len : NULL;
  it->left = env->msgs_p != NULL ? env->msg_count : 0;
}

/* One push/pull record; extra trailing fields are skipped. */
static int wire_rd_record(wire_cur_t *c, dmq__record_t *r) {
  uint64_t state;
  uint32_t n, known = 6;
  if (wire_rd_array(c, &n) || n < 6 || n - 6 > wire_left(c) ||
      wire_rd_str(c, 1, DMQ_MAX_NAME, &r->name) ||
      wire_rd_str(c, 1, DMQ_MAX_ADDR, &r->addr) ||
      wire_rd_uint(c, UINT64_MAX, &r->incarnation) ||
      wire_rd_uint(c, UINT64_MAX, &r->generation) ||
      wire_rd_uint(c, DMQ_MEMBER_STATE_COUNT - 1, &state) ||
      wire_rd_meta(c, &r->meta))
    return -1;
  r->state = (uint8_t)state;
  if (n >= WIRE_RECORD_CHANS_ELEM) {
    if (wire_rd_chans(c, &r->chans))
      return -1;
    known = WIRE_RECORD_CHANS_ELEM;
  }
  for (n -= known; n > 0; n--)
    if (wire_skip(c, WIRE_RECORD_FIELD_DEPTH))
      return -1;
  return 0;
}

/* A push/pull's fields: its flag and its records, each validated now so
 * that it is accepted or rejected as a whole before the caller applies any
 * of it. */
static int wire_rd_pushpull_records(wire_cur_t *c, dmq__msg_t *m) {
  uint32_t n;
  dmq__record_t r;
  if (wire_rd_array(c, &n) || n > DMQ__WIRE_MAX_RECORDS)
    return -1;
  m->rec_p = c->p;
  m->rec_count = n;
  for (uint32_t i = 0; i < n; i++)
    if (wire_rd_record(c, &r))
      return -1;
  m->rec_len = (size_t)(c->p - m->rec_p);
  return 0;
}

static int wire_rd_pushpull(wire_cur_t *c, dmq__msg_t *m) {
  uint64_t v;
  if (wire_rd_uint(c, UINT8_MAX, &v))
    return -1;
  m->flag = (uint8_t)v;
  return wire_rd_pushpull_records(c, m);
}

/* DIGEST [flags, k, count, hashes] and DIFF [flags, k, mask, records]: the
 * bin must have exactly the length k gives; a mask's bits past 2^k must be
 * 0; records are validated whole, as in a push/pull. */
static int wire_rd_ae(wire_cur_t *c, dmq__msg_t *m) {
  uint64_t f, k, cnt = 0;
  if (wire_rd_uint(c, UINT8_MAX, &f) || wire_rd_uint(c, DMQ__AE_MAX_K, &k))
    return -1;
  m->flag = (uint8_t)f;
  m->ae_k = (uint8_t)k;
  if (m->type == DMQ__MSG_DIGEST) {
    if (wire_rd_uint(c, UINT32_MAX, &cnt) || wire_rd_bin(c, &m->ae_bin) ||
        m->ae_bin.n != (size_t)8 << k)
      return -1;
    m->ae_count = (uint32_t)cnt;
    return 0;
  }
  size_t nb = (size_t)1 << k;
  if (k == 0 || wire_rd_bin(c, &m->ae_bin) || m->ae_bin.n != (nb + 7) / 8)
    return -1;
  if (nb % 8 != 0 && ((uint8_t)m->ae_bin.p[m->ae_bin.n - 1] >> (nb % 8)) != 0)
    return -1;
  return wire_rd_pushpull_records(c, m);
}

static int wire_rd_data(wire_cur_t *c, dmq__data_t *d) {
  uint64_t v, w;
  if (wire_rd_uint(c, UINT8_MAX, &v) ||
      wire_rd_str(c, 1, DMQ_MAX_CHANNEL, &d->channel) ||
      wire_rd_uint(c, UINT64_MAX, &d->src_gen) ||
      wire_rd_uint(c, UINT64_MAX, &d->dst_gen) ||
      wire_rd_uint(c, UINT64_MAX, &d->seq) ||
      wire_rd_uint(c, UINT64_MAX, &d->base) ||
      wire_rd_uint(c, UINT32_MAX, &w) ||
      wire_rd_uint(c, UINT64_MAX, &d->req_id) || wire_rd_bin(c, &d->payload))
    return -1;
  d->flags = (uint8_t)v;
  d->ttl_ms = (uint32_t)w;
  return 0;
}

/* A DACK's fields; the rejections and the ack delay when the sender's
 * version has them (nf fields). */
static int wire_rd_dack(wire_cur_t *c, dmq__dack_t *a, uint32_t nf) {
  uint64_t v;
  if (wire_rd_uint(c, UINT64_MAX, &a->src_gen) ||
      wire_rd_uint(c, UINT64_MAX, &a->dst_gen) ||
      wire_rd_uint(c, UINT64_MAX, &a->cum) ||
      wire_rd_uint(c, UINT64_MAX, &a->sack) || wire_rd_uint(c, UINT32_MAX, &v))
    return -1;
  a->rwnd = (uint32_t)v;
  if (nf >= WIRE_DACK_REJ_FIELD && wire_rd_rejs(c, a))
    return -1;
  if (nf >= WIRE_DACK_DELAY_FIELD) {
    if (wire_rd_uint(c, UINT32_MAX, &v))
      return -1;
    a->delay_ms = (uint32_t)v;
  }
  return 0;
}

/* Fields of a known message type, read from c (bounded by the message);
 * nf = number of fields after the type. */
static int wire_rd_fields(wire_cur_t *c, dmq__msg_t *m, uint32_t nf) {
  uint64_t v;
  switch (m->type) {
  case DMQ__MSG_PING:
  case DMQ__MSG_PING_REQ:
    if (wire_rd_uint(c, UINT32_MAX, &v) ||
        wire_rd_str(c, 1, DMQ_MAX_NAME, &m->name))
      return -1;
    m->seq = (uint32_t)v;
    if (m->type == DMQ__MSG_PING)
      return 0;
    return wire_rd_str(c, 1, DMQ_MAX_ADDR, &m->addr) ||
                   wire_rd_flag(c, &m->flag)
               ? -1
               : 0;
  case DMQ__MSG_ACK:
  case DMQ__MSG_NACK:
    if (wire_rd_uint(c, UINT32_MAX, &v))
      return -1;
    m->seq = (uint32_t)v;
    return 0;
  case DMQ__MSG_ALIVE:
    if (wire_rd_str(c, 1, DMQ_MAX_NAME, &m->name) ||
        wire_rd_str(c, 1, DMQ_MAX_ADDR, &m->addr) ||
        wire_rd_uint(c, UINT64_MAX, &m->incarnation) ||
        wire_rd_uint(c, UINT64_MAX, &m->generation) ||
        wire_rd_meta(c, &m->meta))
      return -1;
    if (nf >= WIRE_ALIVE_CHANS_FIELD)
      return wire_rd_chans(c, &m->chans);
    return 0;
  case DMQ__MSG_SUSPECT:
  case DMQ__MSG_DEAD:
  case DMQ__MSG_LEFT:
    if (wire_rd_str(c, 1, DMQ_MAX_NAME, &m->name) ||
        wire_rd_uint(c, UINT64_MAX, &m->incarnation) ||
        wire_rd_uint(c, UINT64_MAX, &m->generation))
      return -1;
    if (m->type == DMQ__MSG_LEFT)
      return 0;
    return wire_rd_str(c, 1, DMQ_MAX_NAME, &m->from);
  case DMQ__MSG_PUSHPULL:
    return wire_rd_pushpull(c, m);
  case DMQ__MSG_DATA:
    return wire_rd_data(c, &m->data);
  case DMQ__MSG_DACK:
    return wire_rd_dack(c, &m->dack, nf);
  case DMQ__MSG_DIGEST:
  case DMQ__MSG_DIFF:
    return wire_rd_ae(c, m);
  default:
    return -1;
  }
}

int dmq__wire_next(dmq__msg_iter_t *it, dmq__msg_t *m) {
  wire_cur_t c, f;
  uint64_t type;
  uint32_t n;
  uint8_t t;
  memset(m, 0, sizeof *m);
  if (it->left == 0)
    return 0;
  if (it->p == NULL)
    return -1;
  c.p = it->p;
  c.end = it->end;
  /* A push/pull or a DIFF with this version's fields (its records the last
   * of them) is read straight from the packet, which also finds where it
   * ends: the walk to its end below read each of its records once more
   * (sim_bench, 10000 members: 10^8 records). What the walk accepts is a
   * superset of what the fields' readers accept, so the result is the
   * same; anything else, or a failure, goes the general way. */
  f = c;
  if (wire_rd_array(&f, &n) == 0 && n >= 1 &&
      wire_rd_uint(&f, DMQ__MSG_TYPE_MAX_KNOWN, &type) == 0 &&
      (type == DMQ__MSG_PUSHPULL || type == DMQ__MSG_DIFF) &&
      n - 1 == wire_nfields[type]) {
    m->type = (uint8_t)type;
    if (wire_rd_fields(&f, m, n - 1) == 0) {
      it->p = f.p;
      it->left--;
      return 1;
    }
    memset(m, 0, sizeof *m);
  }
  if (wire_skip(&c, WIRE_MSG_DEPTH)) {
    it->p = NULL; /* sticky: every later call returns -1 */
    return -1;
  }
  f.p = it->p;
  f.end = c.p;
  it->p = c.p;
  it->left--;
  if (wire_rd_array(&f, &n) || n < 1 ||
      wire_rd_uint(&f, DMQ__MSG_TYPE_MAX_KNOWN, &type) || type == 0)
    return 2; /* unknown type (or not a message at all): m->type = 0 */
  t = (uint8_t)type;
  m->type = t;
  if (n - 1 < wire_nfields[t] || wire_rd_fields(&f, m, n - 1)) {
    memset(m, 0, sizeof *m);
    m->type = t;
    return 2;
  }
  return 1;
}

void dmq__wire_records(const dmq__msg_t *m, dmq__rec_iter_t *it) {
  it->p = m->rec_p;
  it->end = m->rec_p != NULL ? m->rec_p + m->rec_len : NULL;
  it->left = m->rec_p != NULL ? m->rec_count : 0;
}

int dmq__wire_next_record(dmq__rec_iter_t *it, dmq__record_t *r) {
  wire_cur_t c;
  memset(r, 0, sizeof *r);
  if (it->left == 0)
    return 0;
  if (it->p == NULL)
    return -1;
  c.p = it->p;
  c.end = it->end;
  if (wire_rd_record(&c, r)) {
    memset(r, 0, sizeof *r);
    it->p = NULL;
    return -1;
  }
  it->p = c.p;
  it->left--;
  return 1;
}

/* ======================================================================
 * Encoding
 *
 * Every field list is written once, as a wire_pk_* function over a
 * msgpack_packer. msgpack-c's pack functions are static inline (pack.h,
 * pack_template.h), so this needs its headers only: nothing of libmsgpackc is
 * linked. A message is run through its wire_pk_* twice: with a counting
 * writer, for its exact size (the dmq__enc_size_* helpers, and the room check
 * that keeps an append all or nothing: a message that does not fit writes no
 * byte), then with a writer that copies into the buffer.
 * ====================================================================== */

/* The field lists and the two writers are inlined into each call site so
 * that the compiler sees which writer a packer holds: the callback becomes a
 * direct call, inlined too, and its memcpy a fixed-size store. */
#if defined(__GNUC__) || defined(__clang__)
#define WIRE_INLINE static inline __attribute__((always_inline))
#else
#define WIRE_INLINE static inline
#endif

typedef struct wire_out {
  uint8_t *p; /* where the message starts (writer only) */
  size_t n;   /* bytes counted or written */
} wire_out_t;

WIRE_INLINE int wire_count_cb(void *data, const char *b, size_t len) {
  (void)b;
  ((wire_out_t *)data)->n += len;
  return 0;
}

/* The room was checked by counting first: no bound to check here. */
WIRE_INLINE int wire_write_cb(void *data, const char *b, size_t len) {
  wire_out_t *o = data;
  if (len > 0)
    memcpy(o->p + o->n, b, len);
  o->n += len;
  return 0;
}

static msgpack_packer *wire_counter(msgpack_packer *pk, wire_out_t *o) {
  o->p = NULL;
  o->n = 0;
  msgpack_packer_init(pk, o, wire_count_cb);
  return pk;
}

/* dmq__enc_size_<name>(): the exact size of what wire_pk_<name> writes,
 * through the counting writer (the same field list as the append). */
#define WIRE_SIZE_FN(name, type)                                               \
  size_t dmq__enc_size_##name(const type *x) {                                 \
    msgpack_packer pk;                                                         \
    wire_out_t o;                                                              \
    wire_pk_##name(wire_counter(&pk, &o), x);                                  \
    return o.n;                                                                \
  }

static msgpack_packer *wire_writer(msgpack_packer *pk, wire_out_t *o,
                                   uint8_t *p) {
  o->p = p;
  o->n = 0;
  msgpack_packer_init(pk, o, wire_write_cb);
  return pk;
}

/* Bytes as they are (the binary envelope), outside msgpack. */
WIRE_INLINE void wire_pk_raw(msgpack_packer *pk, const void *b, size_t n) {
  pk->callback(pk->data, (const char *)b, n);
}

/* array32 header whatever n is (patched later, or a fixed-size reserve). */
WIRE_INLINE void wire_pk_array32(msgpack_packer *pk, uint32_t n) {
  uint8_t h[5] = {0xdd, (uint8_t)(n >> 24), (uint8_t)(n >> 16),
                  (uint8_t)(n >> 8), (uint8_t)n};
  wire_pk_raw(pk, h, sizeof h);
}

WIRE_INLINE void wire_pk_str(msgpack_packer *pk, dmq__slice_t s) {
  msgpack_pack_str(pk, s.n);
  if (s.n > 0)
    msgpack_pack_str_body(pk, s.p, s.n);
}

WIRE_INLINE void wire_pk_bin(msgpack_packer *pk, dmq__slice_t s) {
  msgpack_pack_bin(pk, s.n);
  if (s.n > 0)
    msgpack_pack_bin_body(pk, s.p, s.n);
}

/* A name or address the decoder will accept: 1..max bytes, no NUL. */
static int wire_ok_str(dmq__slice_t s, size_t max) {
  return s.p != NULL && s.n >= 1 && s.n <= max && memchr(s.p, 0, s.n) == NULL;
}

static int wire_ok_meta(dmq__slice_t s) {
  return s.n <= DMQ_MAX_META && (s.p != NULL || s.n == 0);
}

/* A channels field the decoder will accept (NULL = none). */
static int wire_ok_chans(const dmq__chans_t *c) {
  if (c == NULL || c->n == 0)
    return 1;
  if (c->n > DMQ_MAX_CHANNELS || c->v == NULL)
    return 0;
  for (uint32_t i = 0; i < c->n; i++)
    if (!wire_ok_str(c->v[i], DMQ_MAX_CHANNEL))
      return 0;
  return 1;
}

/* The channels field; nothing when there is no channel. */
WIRE_INLINE void wire_pk_chans(msgpack_packer *pk, const dmq__chans_t *c) {
  if (c == NULL || c->n == 0)
    return;
  msgpack_pack_array(pk, c->n);
  for (uint32_t i = 0; i < c->n; i++)
    wire_pk_str(pk, c->v[i]);
}

WIRE_SIZE_FN(chans, dmq__chans_t)

/* Envelope and body header: magic, version, flags(, label)(, sealed header
 * room) | [sender, messages] with the message count as an array32 patched
 * by dmq__enc_end. The sealed header room is left as zeros: the node's
 * sealing (src/seal.c) writes it and encrypts the body in place. */
WIRE_INLINE void wire_pk_head(msgpack_packer *pk, dmq__slice_t label,
                              dmq__slice_t sender, int sealed) {
  static const uint8_t room[DMQ__WIRE_SEAL_HDR];
  uint8_t h[5] = {DMQ__WIRE_MAGIC0, DMQ__WIRE_MAGIC1, DMQ__WIRE_VERSION,
                  (uint8_t)((label.n > 0 ? DMQ__WIRE_FLAG_LABEL : 0) |
                            (sealed ? DMQ__WIRE_FLAG_SEALED : 0)),
                  (uint8_t)label.n};
  wire_pk_raw(pk, h, label.n > 0 ? 5 : 4);
  if (label.n > 0)
    wire_pk_raw(pk, label.p, label.n);
  if (sealed)
    wire_pk_raw(pk, room, sizeof room);
  msgpack_pack_array(pk, 2);
  wire_pk_str(pk, sender);
  wire_pk_array32(pk, 0);
}

size_t dmq__enc_size_envelope(size_t sender_len) {
  dmq__slice_t none = {NULL, 0}, sender = {NULL, sender_len};
  msgpack_packer pk;
  wire_out_t o;
  wire_pk_head(wire_counter(&pk, &o), none, sender, 0);
  return o.n;
}

size_t dmq__wire_overhead(size_t label_len, int sealed) {
  return (label_len > 0 ? 1 + label_len : 0) +
         (sealed ? DMQ__WIRE_SEAL_HDR + DMQ__WIRE_SEAL_TAG : 0);
}

/* Room for a message of size bytes (counted by its wire_pk_*): 0, or why
 * not. msg = 0 for a push/pull record (not counted as a message). */
static int wire_room(const dmq__enc_t *e, size_t size, int msg) {
  if (e->buf == NULL || e->count_pos == 0 || e->len > e->cap)
    return DMQ_EINVAL; /* not begun */
  if (msg && e->count >= DMQ__WIRE_MAX_MSGS)
    return DMQ_ETOOBIG;
  if (e->cap - e->len < size)
    return DMQ_ETOOBIG;
  return 0;
}

/* Account for what the writer o appended. */
static int wire_commit(dmq__enc_t *e, const wire_out_t *o, int msg) {
  e->len += o->n;
  if (msg)
    e->count++;
  return 0;
}

/* One message: count fields(pk, ...), check the room, then write it.
 * Expands inside a function returning an int error. */
#define WIRE_APPEND(e, msg, fields, ...)                                       \
  do {                                                                         \
    msgpack_packer pk_;                                                        \
    wire_out_t o_;                                                             \
    int err_;                                                                  \
    fields(wire_counter(&pk_, &o_), __VA_ARGS__);                              \
    if ((err_ = wire_room((e), o_.n, (msg))) != 0)                             \
      return err_;                                                             \
    fields(wire_writer(&pk_, &o_, (e)->buf + (e)->len), __VA_ARGS__);          \
    return wire_commit((e), &o_, (msg));                                       \
  } while (0)

int dmq__enc_begin_sealed(dmq__enc_t *e, uint8_t *buf, size_t cap,
                          const char *label, size_t label_len,
                          const char *sender, size_t sender_len, int sealed) {
  dmq__slice_t s = {sender, sender_len};
  dmq__slice_t l = {label, label_len};
  msgpack_packer pk;
  wire_out_t o;
  e->buf = buf;
  e->cap = cap;
  e->len = 0;
  e->count_pos = 0;
  e->count = 0;
  if (label == NULL)
    l.n = 0;
  if (!wire_ok_str(s, DMQ_MAX_NAME) || l.n > DMQ_MAX_LABEL)
    return DMQ_EINVAL;
  /* the tag goes after the body: keep its room free */
  if (sealed) {
    if (cap < DMQ__WIRE_SEAL_TAG)
      return DMQ_ETOOBIG;
    e->cap = cap -= DMQ__WIRE_SEAL_TAG;
  }
  wire_pk_head(wire_counter(&pk, &o), l, s, sealed);
  if (buf == NULL || cap < o.n)
    return DMQ_ETOOBIG;
  wire_pk_head(wire_writer(&pk, &o, buf), l, s, sealed);
  e->count_pos = o.n - 5;
  e->len = o.n;
  return 0;
}

int dmq__enc_begin(dmq__enc_t *e, uint8_t *buf, size_t cap, const char *label,
                   size_t label_len, const char *sender, size_t sender_len) {
  return dmq__enc_begin_sealed(e, buf, cap, label, label_len, sender,
                               sender_len, 0);
}

size_t dmq__enc_end(dmq__enc_t *e) {
  msgpack_packer pk;
  wire_out_t o;
  if (e->buf == NULL || e->count_pos == 0)
    return 0;
  wire_pk_array32(wire_writer(&pk, &o, e->buf + e->count_pos), e->count);
  return e->len;
}

/* PING, ACK and NACK share [type, seq(, target)]. */
WIRE_INLINE void wire_pk_seq(msgpack_packer *pk, uint8_t type, uint32_t seq,
                             const dmq__slice_t *target) {
  msgpack_pack_array(pk, target != NULL ? 3 : 2);
  msgpack_pack_uint8(pk, type);
  msgpack_pack_uint32(pk, seq);
  if (target != NULL)
    wire_pk_str(pk, *target);
}

static int wire_enc_seq(dmq__enc_t *e, uint8_t type, uint32_t seq,
                        const dmq__slice_t *target) {
  if (target != NULL && !wire_ok_str(*target, DMQ_MAX_NAME))
    return DMQ_EINVAL;
  WIRE_APPEND(e, 1, wire_pk_seq, type, seq, target);
}

int dmq__enc_ping(dmq__enc_t *e, uint32_t seq, dmq__slice_t target) {
  return wire_enc_seq(e, DMQ__MSG_PING, seq, &target);
}

int dmq__enc_ack(dmq__enc_t *e, uint32_t seq) {
  return wire_enc_seq(e, DMQ__MSG_ACK, seq, NULL);
}

int dmq__enc_nack(dmq__enc_t *e, uint32_t seq) {
  return wire_enc_seq(e, DMQ__MSG_NACK, seq, NULL);
}

WIRE_INLINE void wire_pk_ping_req(msgpack_packer *pk, uint32_t seq,
                                  dmq__slice_t target, dmq__slice_t target_addr,
                                  int want_nack) {
  msgpack_pack_array(pk, 5);
  msgpack_pack_uint8(pk, DMQ__MSG_PING_REQ);
  msgpack_pack_uint32(pk, seq);
  wire_pk_str(pk, target);
  wire_pk_str(pk, target_addr);
  if (want_nack)
    msgpack_pack_true(pk);
  else
    msgpack_pack_false(pk);
}

int dmq__enc_ping_req(dmq__enc_t *e, uint32_t seq, dmq__slice_t target,
                      dmq__slice_t target_addr, int want_nack) {
  if (!wire_ok_str(target, DMQ_MAX_NAME) ||
      !wire_ok_str(target_addr, DMQ_MAX_ADDR))
    return DMQ_EINVAL;
  WIRE_APPEND(e, 1, wire_pk_ping_req, seq, target, target_addr, want_nack);
}

/* ALIVE writes incarnation and generation as fixed 9-byte uint64s, so that
 * its size depends on the lengths only (dmq__enc_size_alive). */
WIRE_INLINE void wire_pk_alive(msgpack_packer *pk, dmq__slice_t name,
                               dmq__slice_t addr, uint64_t inc, uint64_t gen,
                               dmq__slice_t meta, const dmq__chans_t *chans) {
  msgpack_pack_array(pk, chans != NULL && chans->n > 0 ? 7 : 6);
  msgpack_pack_uint8(pk, DMQ__MSG_ALIVE);
  wire_pk_str(pk, name);
  wire_pk_str(pk, addr);
  msgpack_pack_fix_uint64(pk, inc);
  msgpack_pack_fix_uint64(pk, gen);
  wire_pk_bin(pk, meta);
  wire_pk_chans(pk, chans);
}

size_t dmq__enc_size_alive(size_t name, size_t addr, size_t meta,
                           const dmq__chans_t *chans) {
  /* the counting writer reads lengths only, never the bytes */
  dmq__slice_t n = {NULL, name}, a = {NULL, addr}, m = {NULL, meta};
  msgpack_packer pk;
  wire_out_t o;
  wire_pk_alive(wire_counter(&pk, &o), n, a, 0, 0, m, chans);
  return o.n;
}

int dmq__enc_alive(dmq__enc_t *e, dmq__slice_t name, dmq__slice_t addr,
                   uint64_t inc, uint64_t gen, dmq__slice_t meta,
                   const dmq__chans_t *chans) {
  if (!wire_ok_str(name, DMQ_MAX_NAME) || !wire_ok_str(addr, DMQ_MAX_ADDR) ||
      !wire_ok_meta(meta) || !wire_ok_chans(chans))
    return DMQ_EINVAL;
  WIRE_APPEND(e, 1, wire_pk_alive, name, addr, inc, gen, meta, chans);
}

/* SUSPECT, DEAD and LEFT share [type, name, inc, gen(, from)]. */
WIRE_INLINE void wire_pk_state(msgpack_packer *pk, uint8_t type,
                               dmq__slice_t name, uint64_t inc, uint64_t gen,
                               const dmq__slice_t *from) {
  msgpack_pack_array(pk, from != NULL ? 5 : 4);
  msgpack_pack_uint8(pk, type);
  wire_pk_str(pk, name);
  msgpack_pack_uint64(pk, inc);
  msgpack_pack_uint64(pk, gen);
  if (from != NULL)
    wire_pk_str(pk, *from);
}

static int wire_enc_state(dmq__enc_t *e, uint8_t type, dmq__slice_t name,
                          uint64_t inc, uint64_t gen,
                          const dmq__slice_t *from) {
  if (!wire_ok_str(name, DMQ_MAX_NAME) ||
      (from != NULL && !wire_ok_str(*from, DMQ_MAX_NAME)))
    return DMQ_EINVAL;
  WIRE_APPEND(e, 1, wire_pk_state, type, name, inc, gen, from);
}

int dmq__enc_suspect(dmq__enc_t *e, dmq__slice_t name, uint64_t inc,
                     uint64_t gen, dmq__slice_t from) {
  return wire_enc_state(e, DMQ__MSG_SUSPECT, name, inc, gen, &from);
}

int dmq__enc_dead(dmq__enc_t *e, dmq__slice_t name, uint64_t inc, uint64_t gen,
                  dmq__slice_t from) {
  return wire_enc_state(e, DMQ__MSG_DEAD, name, inc, gen, &from);
}

int dmq__enc_left(dmq__enc_t *e, dmq__slice_t name, uint64_t inc,
                  uint64_t gen) {
  return wire_enc_state(e, DMQ__MSG_LEFT, name, inc, gen, NULL);
}

/* [9, flags, records] with the records' array header as a fixed array32. */
WIRE_INLINE void wire_pk_pushpull(msgpack_packer *pk, uint8_t flags,
                                  uint32_t nrec) {
  msgpack_pack_array(pk, 3);
  msgpack_pack_uint8(pk, DMQ__MSG_PUSHPULL);
  msgpack_pack_uint8(pk, flags);
  wire_pk_array32(pk, nrec);
}

int dmq__enc_pushpull_begin(dmq__enc_t *e, uint8_t flags, uint32_t nrec) {
  if (nrec > DMQ__WIRE_MAX_RECORDS)
    return DMQ_EINVAL;
  WIRE_APPEND(e, 1, wire_pk_pushpull, flags, nrec);
}

WIRE_INLINE void wire_pk_record(msgpack_packer *pk, const dmq__record_t *r) {
  msgpack_pack_array(pk, r->chans.n > 0 ? 7 : 6);
  wire_pk_str(pk, r->name);
  wire_pk_str(pk, r->addr);
  msgpack_pack_uint64(pk, r->incarnation);
  msgpack_pack_uint64(pk, r->generation);
  msgpack_pack_uint8(pk, r->state);
  wire_pk_bin(pk, r->meta);
  wire_pk_chans(pk, &r->chans);
}

int dmq__enc_record(dmq__enc_t *e, const dmq__record_t *r) {
  if (!wire_ok_str(r->name, DMQ_MAX_NAME) ||
      !wire_ok_str(r->addr, DMQ_MAX_ADDR) || !wire_ok_meta(r->meta) ||
      r->state >= DMQ_MEMBER_STATE_COUNT || !wire_ok_chans(&r->chans))
    return DMQ_EINVAL;
  WIRE_APPEND(e, 0, wire_pk_record, r);
}

WIRE_INLINE void wire_pk_data(msgpack_packer *pk, const dmq__data_t *d) {
  msgpack_pack_array(pk, 10);
  msgpack_pack_uint8(pk, DMQ__MSG_DATA);
  msgpack_pack_uint8(pk, d->flags);
  wire_pk_str(pk, d->channel);
  msgpack_pack_uint64(pk, d->src_gen);
  msgpack_pack_uint64(pk, d->dst_gen);
  msgpack_pack_uint64(pk, d->seq);
  msgpack_pack_uint64(pk, d->base);
  msgpack_pack_uint32(pk, d->ttl_ms);
  msgpack_pack_uint64(pk, d->req_id);
  wire_pk_bin(pk, d->payload);
}

WIRE_SIZE_FN(data, dmq__data_t)

int dmq__enc_data(dmq__enc_t *e, const dmq__data_t *d) {
  if (!wire_ok_str(d->channel, DMQ_MAX_CHANNEL) ||
      (d->flags & ~DMQ__DATA_KNOWN) != 0 ||
      (d->payload.p == NULL && d->payload.n > 0) ||
      (uint64_t)d->payload.n > UINT32_MAX)
    return DMQ_EINVAL;
  WIRE_APPEND(e, 1, wire_pk_data, d);
}

/* rejected is written when there is a pair or a delay after it. */
WIRE_INLINE void wire_pk_dack(msgpack_packer *pk, const dmq__dack_t *a) {
  int rej = a->nrej > 0 || a->delay_ms > 0;
  msgpack_pack_array(pk, a->delay_ms > 0 ? 8 : rej ? 7 : 6);
  msgpack_pack_uint8(pk, DMQ__MSG_DACK);
  msgpack_pack_uint64(pk, a->src_gen);
  msgpack_pack_uint64(pk, a->dst_gen);
  msgpack_pack_uint64(pk, a->cum);
  msgpack_pack_uint64(pk, a->sack);
  msgpack_pack_uint32(pk, a->rwnd);
  if (rej) {
    msgpack_pack_array(pk, 2 * (size_t)a->nrej);
    for (uint32_t i = 0; i < a->nrej; i++) {
      msgpack_pack_uint64(pk, a->rej_seq[i]);
      msgpack_pack_uint8(pk, a->rej_reason[i]);
    }
  }
  if (a->delay_ms > 0)
    msgpack_pack_uint32(pk, a->delay_ms);
}

WIRE_SIZE_FN(dack, dmq__dack_t)

int dmq__enc_dack(dmq__enc_t *e, const dmq__dack_t *a) {
  if (a->nrej > DMQ__WIRE_MAX_REJ ||
      (a->nrej > 0 && (a->rej_seq == NULL || a->rej_reason == NULL)))
    return DMQ_EINVAL;
  WIRE_APPEND(e, 1, wire_pk_dack, a);
}

/* [12, flags, k, count, hashes] */
WIRE_INLINE void wire_pk_digest(msgpack_packer *pk, uint8_t flags, uint8_t k,
                                uint32_t count, const uint8_t *hashes) {
  dmq__slice_t h = {(const char *)hashes, (size_t)8 << k};
  msgpack_pack_array(pk, 5);
  msgpack_pack_uint8(pk, DMQ__MSG_DIGEST);
  msgpack_pack_uint8(pk, flags);
  msgpack_pack_uint8(pk, k);
  msgpack_pack_uint32(pk, count);
  wire_pk_bin(pk, h);
}

size_t dmq__enc_size_digest(uint8_t k, uint32_t count) {
  msgpack_packer pk;
  wire_out_t o;
  if (k > DMQ__AE_MAX_K)
    return 0;
  wire_pk_digest(wire_counter(&pk, &o), 0, k, count, NULL);
  return o.n;
}

int dmq__enc_digest(dmq__enc_t *e, uint8_t flags, uint8_t k, uint32_t count,
                    const uint8_t *hashes) {
  if (k > DMQ__AE_MAX_K || hashes == NULL)
    return DMQ_EINVAL;
  WIRE_APPEND(e, 1, wire_pk_digest, flags, k, count, hashes);
}

/* [13, flags, k, mask, records] with the records' header an array32. */
WIRE_INLINE void wire_pk_diff(msgpack_packer *pk, uint8_t flags, uint8_t k,
                              const uint8_t *mask) {
  dmq__slice_t m = {(const char *)mask, (((size_t)1 << k) + 7) / 8};
  msgpack_pack_array(pk, 5);
  msgpack_pack_uint8(pk, DMQ__MSG_DIFF);
  msgpack_pack_uint8(pk, flags);
  msgpack_pack_uint8(pk, k);
  wire_pk_bin(pk, m);
  wire_pk_array32(pk, 0);
}

static int wire_enc_diff(dmq__enc_t *e, uint8_t flags, uint8_t k,
                         const uint8_t *mask) {
  WIRE_APPEND(e, 1, wire_pk_diff, flags, k, mask);
}

int dmq__enc_diff_begin(dmq__enc_t *e, uint8_t flags, uint8_t k,
                        const uint8_t *mask, size_t *rec_pos) {
  size_t nb = (size_t)1 << k;
  if (k == 0 || k > DMQ__AE_MAX_K || mask == NULL || rec_pos == NULL ||
      (nb % 8 != 0 && (mask[(nb + 7) / 8 - 1] >> (nb % 8)) != 0))
    return DMQ_EINVAL;
  int rc = wire_enc_diff(e, flags, k, mask);
  if (rc == 0)
    *rec_pos = e->len - 5;
  return rc;
}

void dmq__enc_diff_end(dmq__enc_t *e, size_t rec_pos, uint32_t nrec) {
  msgpack_packer pk;
  wire_out_t o;
  if (e->buf == NULL || rec_pos + 5 > e->len)
    return;
  wire_pk_array32(wire_writer(&pk, &o, e->buf + rec_pos), nrec);
}
