/* libdmq - wire codec: the packet envelope, a msgpack encoder that appends
 * whole messages to a fixed caller buffer, and a bounded, zero-copy,
 * non-allocating msgpack decoder for the messages of wire.h.
 *
 * The encoder computes the exact size of a message first, so an append is
 * all or nothing. The decoder first skips a message generically (every
 * msgpack type, nesting bounded by WIRE_SKIP_DEPTH) to find where it ends,
 * then reads its fields from inside those bounds only: a malformed or unknown
 * message never desynchronises the iterator, and nothing is read past the end
 * of the packet.
 */
#include "wire.h"

#include <string.h>

#include "dmq/delivery.h" /* DMQ_MAX_CHANNEL(S) */
#include "dmq/error.h"
#include "dmq/node.h"

/* Deepest container nesting the generic skip accepts (the message array is
 * depth 0). */
#define WIRE_SKIP_DEPTH 32

/* Fields after the type, per known message type. */
static const uint8_t wire_nfields[DMQ__MSG_TYPE_MAX_KNOWN + 1] = {
    [DMQ__MSG_PING] = 2, [DMQ__MSG_PING_REQ] = 4, [DMQ__MSG_ACK] = 1,
    [DMQ__MSG_NACK] = 1, [DMQ__MSG_ALIVE] = 5,    [DMQ__MSG_SUSPECT] = 4,
    [DMQ__MSG_DEAD] = 4, [DMQ__MSG_LEFT] = 3,     [DMQ__MSG_PUSHPULL] = 2,
    [DMQ__MSG_DATA] = 9, [DMQ__MSG_DACK] = 5,
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

/* Skip one msgpack object of any type. Every element of a container takes at
 * least one byte, so a count larger than the bytes left is rejected before
 * looping: the work is linear in the input. */
static int wire_skip(wire_cur_t *c, int depth) {
  uint64_t skip = 0, items = 0, v;
  uint8_t t;
  if (depth > WIRE_SKIP_DEPTH || c->p >= c->end)
    return -1;
  t = *c->p++;
  if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3)
    return 0; /* fixint, nil, bool */
  if (t <= 0x8f) {
    items = 2u * (t & 0x0f); /* fixmap */
  } else if (t <= 0x9f) {
    items = t & 0x0f; /* fixarray */
  } else if (t <= 0xbf) {
    skip = t & 0x1f; /* fixstr */
  } else {
    switch (t) {
    case 0xc4:
    case 0xd9: /* bin8, str8 */
      if (wire_take(c, 1, &skip))
        return -1;
      break;
    case 0xc5:
    case 0xda: /* bin16, str16 */
      if (wire_take(c, 2, &skip))
        return -1;
      break;
    case 0xc6:
    case 0xdb: /* bin32, str32 */
      if (wire_take(c, 4, &skip))
        return -1;
      break;
    case 0xc7: /* ext8: len, type, data */
      if (wire_take(c, 1, &v))
        return -1;
      skip = v + 1;
      break;
    case 0xc8: /* ext16 */
      if (wire_take(c, 2, &v))
        return -1;
      skip = v + 1;
      break;
    case 0xc9: /* ext32 */
      if (wire_take(c, 4, &v))
        return -1;
      skip = v + 1;
      break;
    case 0xca:
      skip = 4;
      break; /* float32 */
    case 0xcb:
      skip = 8;
      break; /* float64 */
    case 0xcc:
    case 0xd0:
      skip = 1;
      break;
    case 0xcd:
    case 0xd1:
      skip = 2;
      break;
    case 0xce:
    case 0xd2:
      skip = 4;
      break;
    case 0xcf:
    case 0xd3:
      skip = 8;
      break;
    case 0xd4:
      skip = 2;
      break; /* fixext1: type + 1 */
    case 0xd5:
      skip = 3;
      break; /* fixext2 */
    case 0xd6:
      skip = 5;
      break; /* fixext4 */
    case 0xd7:
      skip = 9;
      break; /* fixext8 */
    case 0xd8:
      skip = 17;
      break;   /* fixext16 */
    case 0xdc: /* array16 */
      if (wire_take(c, 2, &items))
        return -1;
      break;
    case 0xdd: /* array32 */
      if (wire_take(c, 4, &items))
        return -1;
      break;
    case 0xde: /* map16 */
      if (wire_take(c, 2, &v))
        return -1;
      items = 2 * v;
      break;
    case 0xdf: /* map32 */
      if (wire_take(c, 4, &v))
        return -1;
      items = 2 * v;
      break;
    default: /* 0xc1: never used */
      return -1;
    }
  }
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

int dmq__wire_open(const uint8_t *buf, size_t len, dmq__envelope_t *env) {
  wire_cur_t c;
  uint32_t n;
  size_t off = 4;
  memset(env, 0, sizeof *env);
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
  if (buf[3] & DMQ__WIRE_FLAG_SEALED)
    return DMQ_DROP_UNSUPPORTED + 1;
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
  c.p = buf + off;
  c.end = buf + len;
  if (wire_rd_array(&c, &n) || n < 2 ||
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
    if (wire_skip(c, 1))
      return -1;
  return 0;
}

/* Fields of a known message type, read from c (bounded by the message);
 * nf = number of fields after the type. */
static int wire_rd_fields(wire_cur_t *c, dmq__msg_t *m, uint32_t nf) {
  uint64_t v, w;
  uint32_t n;
  dmq__record_t r;
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
    if (wire_rd_uint(c, UINT8_MAX, &v) || wire_rd_array(c, &n) ||
        n > DMQ__WIRE_MAX_RECORDS)
      return -1;
    m->flag = (uint8_t)v;
    m->rec_p = c->p;
    m->rec_count = n;
    /* Validate every record now, so that a push/pull is accepted or
     * rejected as a whole before the caller applies any of it. */
    for (uint32_t i = 0; i < n; i++)
      if (wire_rd_record(c, &r))
        return -1;
    m->rec_len = (size_t)(c->p - m->rec_p);
    return 0;
  case DMQ__MSG_DATA: {
    dmq__data_t *d = &m->data;
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
  case DMQ__MSG_DACK: {
    dmq__dack_t *a = &m->dack;
    if (wire_rd_uint(c, UINT64_MAX, &a->src_gen) ||
        wire_rd_uint(c, UINT64_MAX, &a->dst_gen) ||
        wire_rd_uint(c, UINT64_MAX, &a->cum) ||
        wire_rd_uint(c, UINT64_MAX, &a->sack) ||
        wire_rd_uint(c, UINT32_MAX, &v))
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
  if (wire_skip(&c, 0)) {
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
 * ====================================================================== */

static size_t wire_sz_uint(uint64_t v) {
  if (v <= 0x7f)
    return 1;
  if (v <= 0xff)
    return 2;
  if (v <= 0xffff)
    return 3;
  return v <= 0xffffffff ? 5 : 9;
}

static size_t wire_sz_str(size_t n) {
  return n + (n < 32 ? 1 : n <= 0xff ? 2 : n <= 0xffff ? 3 : 5);
}

static size_t wire_sz_bin(size_t n) {
  return n + (n <= 0xff ? 2 : n <= 0xffff ? 3 : 5);
}

static uint8_t *wire_w_be(uint8_t *p, uint64_t v, size_t n) {
  for (size_t i = n; i > 0; i--) {
    p[i - 1] = (uint8_t)v;
    v >>= 8;
  }
  return p + n;
}

static uint8_t *wire_w_uint(uint8_t *p, uint64_t v) {
  if (v <= 0x7f) {
    *p++ = (uint8_t)v;
    return p;
  }
  if (v <= 0xff) {
    *p++ = 0xcc;
    return wire_w_be(p, v, 1);
  }
  if (v <= 0xffff) {
    *p++ = 0xcd;
    return wire_w_be(p, v, 2);
  }
  if (v <= 0xffffffff) {
    *p++ = 0xce;
    return wire_w_be(p, v, 4);
  }
  *p++ = 0xcf;
  return wire_w_be(p, v, 8);
}

/* uint64 in its fixed 9-byte form (ALIVE, so that its size is exact). */
static uint8_t *wire_w_u64(uint8_t *p, uint64_t v) {
  *p++ = 0xcf;
  return wire_w_be(p, v, 8);
}

static uint8_t *wire_w_bytes(uint8_t *p, const char *s, size_t n) {
  if (n > 0)
    memcpy(p, s, n);
  return p + n;
}

static uint8_t *wire_w_str(uint8_t *p, dmq__slice_t s) {
  if (s.n < 32) {
    *p++ = (uint8_t)(0xa0 | s.n);
  } else if (s.n <= 0xff) {
    *p++ = 0xd9;
    p = wire_w_be(p, s.n, 1);
  } else if (s.n <= 0xffff) {
    *p++ = 0xda;
    p = wire_w_be(p, s.n, 2);
  } else {
    *p++ = 0xdb;
    p = wire_w_be(p, s.n, 4);
  }
  return wire_w_bytes(p, s.p, s.n);
}

static uint8_t *wire_w_bin(uint8_t *p, dmq__slice_t s) {
  if (s.n <= 0xff) {
    *p++ = 0xc4;
    p = wire_w_be(p, s.n, 1);
  } else if (s.n <= 0xffff) {
    *p++ = 0xc5;
    p = wire_w_be(p, s.n, 2);
  } else {
    *p++ = 0xc6;
    p = wire_w_be(p, s.n, 4);
  }
  return wire_w_bytes(p, s.p, s.n);
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

static size_t wire_sz_array(size_t n) {
  return n <= 15 ? 1 : n <= 0xffff ? 3 : 5;
}

static uint8_t *wire_w_array(uint8_t *p, size_t n) {
  if (n <= 15) {
    *p++ = (uint8_t)(0x90 | n);
    return p;
  }
  if (n <= 0xffff) {
    *p++ = 0xdc;
    return wire_w_be(p, n, 2);
  }
  *p++ = 0xdd;
  return wire_w_be(p, n, 4);
}

size_t dmq__enc_size_chans(const dmq__chans_t *c) {
  size_t size;
  if (c == NULL || c->n == 0)
    return 0;
  size = wire_sz_array(c->n);
  for (uint32_t i = 0; i < c->n; i++)
    size += wire_sz_str(c->v[i].n);
  return size;
}

static uint8_t *wire_w_chans(uint8_t *p, const dmq__chans_t *c) {
  p = wire_w_array(p, c->n);
  for (uint32_t i = 0; i < c->n; i++)
    p = wire_w_str(p, c->v[i]);
  return p;
}

size_t dmq__enc_size_envelope(size_t sender_len) {
  /* magic, version, flags | [sender, messages] | sender | array32 header */
  return 4 + 1 + wire_sz_str(sender_len) + 5;
}

/* Room for a message of size bytes: returns where to write it, or NULL with
 * *err set. msg = 0 for a push/pull record (not counted as a message). */
static uint8_t *wire_room(dmq__enc_t *e, size_t size, int msg, int *err) {
  *err = DMQ_EINVAL;
  if (e->buf == NULL || e->count_pos == 0 || e->len > e->cap)
    return NULL; /* not begun */
  *err = DMQ_ETOOBIG;
  if (msg && e->count >= DMQ__WIRE_MAX_MSGS)
    return NULL;
  if (e->cap - e->len < size)
    return NULL;
  *err = 0;
  return e->buf + e->len;
}

/* Account for what was written up to q. */
static int wire_commit(dmq__enc_t *e, const uint8_t *q, int msg) {
  e->len = (size_t)(q - e->buf);
  if (msg)
    e->count++;
  return 0;
}

int dmq__enc_begin(dmq__enc_t *e, uint8_t *buf, size_t cap, const char *label,
                   size_t label_len, const char *sender, size_t sender_len) {
  dmq__slice_t s = {sender, sender_len};
  dmq__slice_t l = {label, label_len};
  uint8_t *p = buf;
  size_t size;
  e->buf = buf;
  e->cap = cap;
  e->len = 0;
  e->count_pos = 0;
  e->count = 0;
  if (label == NULL)
    l.n = 0;
  if (!wire_ok_str(s, DMQ_MAX_NAME) || l.n > DMQ_MAX_LABEL)
    return DMQ_EINVAL;
  size = 4 + (l.n > 0 ? 1 + l.n : 0) + 1 + wire_sz_str(s.n) + 5;
  if (buf == NULL || cap < size)
    return DMQ_ETOOBIG;
  *p++ = DMQ__WIRE_MAGIC0;
  *p++ = DMQ__WIRE_MAGIC1;
  *p++ = DMQ__WIRE_VERSION;
  *p++ = l.n > 0 ? DMQ__WIRE_FLAG_LABEL : 0;
  if (l.n > 0) {
    *p++ = (uint8_t)l.n;
    p = wire_w_bytes(p, l.p, l.n);
  }
  *p++ = 0x92; /* [sender, messages] */
  p = wire_w_str(p, s);
  e->count_pos = (size_t)(p - buf);
  *p++ = 0xdd; /* array32, patched by dmq__enc_end */
  p = wire_w_be(p, 0, 4);
  e->len = (size_t)(p - buf);
  return 0;
}

size_t dmq__enc_end(dmq__enc_t *e) {
  if (e->buf == NULL || e->count_pos == 0)
    return 0;
  e->buf[e->count_pos] = 0xdd;
  wire_w_be(e->buf + e->count_pos + 1, e->count, 4);
  return e->len;
}

/* PING, ACK and NACK share [type, seq(, target)]. */
static int wire_enc_seq(dmq__enc_t *e, uint8_t type, uint32_t seq,
                        const dmq__slice_t *target) {
  size_t size = 2 + wire_sz_uint(seq);
  uint8_t *p;
  int err;
  if (target != NULL) {
    if (!wire_ok_str(*target, DMQ_MAX_NAME))
      return DMQ_EINVAL;
    size += wire_sz_str(target->n);
  }
  if ((p = wire_room(e, size, 1, &err)) == NULL)
    return err;
  *p++ = target != NULL ? 0x93 : 0x92;
  *p++ = type;
  p = wire_w_uint(p, seq);
  if (target != NULL)
    p = wire_w_str(p, *target);
  return wire_commit(e, p, 1);
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

int dmq__enc_ping_req(dmq__enc_t *e, uint32_t seq, dmq__slice_t target,
                      dmq__slice_t target_addr, int want_nack) {
  size_t size;
  uint8_t *p;
  int err;
  if (!wire_ok_str(target, DMQ_MAX_NAME) ||
      !wire_ok_str(target_addr, DMQ_MAX_ADDR))
    return DMQ_EINVAL;
  size = 2 + wire_sz_uint(seq) + wire_sz_str(target.n) +
         wire_sz_str(target_addr.n) + 1;
  if ((p = wire_room(e, size, 1, &err)) == NULL)
    return err;
  *p++ = 0x95;
  *p++ = DMQ__MSG_PING_REQ;
  p = wire_w_uint(p, seq);
  p = wire_w_str(p, target);
  p = wire_w_str(p, target_addr);
  *p++ = want_nack ? 0xc3 : 0xc2;
  return wire_commit(e, p, 1);
}

size_t dmq__enc_size_alive(size_t name, size_t addr, size_t meta,
                           const dmq__chans_t *chans) {
  /* array, type, name, addr, inc and gen as fixed uint64, meta, channels */
  return 2 + wire_sz_str(name) + wire_sz_str(addr) + 9 + 9 + wire_sz_bin(meta) +
         dmq__enc_size_chans(chans);
}

int dmq__enc_alive(dmq__enc_t *e, dmq__slice_t name, dmq__slice_t addr,
                   uint64_t inc, uint64_t gen, dmq__slice_t meta,
                   const dmq__chans_t *chans) {
  uint8_t *p;
  int err;
  int with = chans != NULL && chans->n > 0;
  if (!wire_ok_str(name, DMQ_MAX_NAME) || !wire_ok_str(addr, DMQ_MAX_ADDR) ||
      !wire_ok_meta(meta) || !wire_ok_chans(chans))
    return DMQ_EINVAL;
  p = wire_room(e, dmq__enc_size_alive(name.n, addr.n, meta.n, chans), 1, &err);
  if (p == NULL)
    return err;
  *p++ = with ? 0x97 : 0x96;
  *p++ = DMQ__MSG_ALIVE;
  p = wire_w_str(p, name);
  p = wire_w_str(p, addr);
  p = wire_w_u64(p, inc);
  p = wire_w_u64(p, gen);
  p = wire_w_bin(p, meta);
  if (with)
    p = wire_w_chans(p, chans);
  return wire_commit(e, p, 1);
}

/* SUSPECT, DEAD and LEFT share [type, name, inc, gen(, from)]. */
static int wire_enc_state(dmq__enc_t *e, uint8_t type, dmq__slice_t name,
                          uint64_t inc, uint64_t gen,
                          const dmq__slice_t *from) {
  size_t size;
  uint8_t *p;
  int err;
  if (!wire_ok_str(name, DMQ_MAX_NAME) ||
      (from != NULL && !wire_ok_str(*from, DMQ_MAX_NAME)))
    return DMQ_EINVAL;
  size = 2 + wire_sz_str(name.n) + wire_sz_uint(inc) + wire_sz_uint(gen) +
         (from != NULL ? wire_sz_str(from->n) : 0);
  if ((p = wire_room(e, size, 1, &err)) == NULL)
    return err;
  *p++ = from != NULL ? 0x95 : 0x94;
  *p++ = type;
  p = wire_w_str(p, name);
  p = wire_w_uint(p, inc);
  p = wire_w_uint(p, gen);
  if (from != NULL)
    p = wire_w_str(p, *from);
  return wire_commit(e, p, 1);
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

int dmq__enc_pushpull_begin(dmq__enc_t *e, uint8_t flags, uint32_t nrec) {
  uint8_t *p;
  int err;
  if (nrec > DMQ__WIRE_MAX_RECORDS)
    return DMQ_EINVAL;
  if ((p = wire_room(e, 2 + wire_sz_uint(flags) + 5, 1, &err)) == NULL)
    return err;
  *p++ = 0x93;
  *p++ = DMQ__MSG_PUSHPULL;
  p = wire_w_uint(p, flags);
  *p++ = 0xdd;
  p = wire_w_be(p, nrec, 4);
  return wire_commit(e, p, 1);
}

int dmq__enc_record(dmq__enc_t *e, const dmq__record_t *r) {
  size_t size;
  uint8_t *p;
  int err;
  int with = r->chans.n > 0;
  if (!wire_ok_str(r->name, DMQ_MAX_NAME) ||
      !wire_ok_str(r->addr, DMQ_MAX_ADDR) || !wire_ok_meta(r->meta) ||
      r->state >= DMQ_MEMBER_STATE_COUNT || !wire_ok_chans(&r->chans))
    return DMQ_EINVAL;
  size = 1 + wire_sz_str(r->name.n) + wire_sz_str(r->addr.n) +
         wire_sz_uint(r->incarnation) + wire_sz_uint(r->generation) + 1 +
         wire_sz_bin(r->meta.n) + dmq__enc_size_chans(&r->chans);
  if ((p = wire_room(e, size, 0, &err)) == NULL)
    return err;
  *p++ = with ? 0x97 : 0x96;
  p = wire_w_str(p, r->name);
  p = wire_w_str(p, r->addr);
  p = wire_w_uint(p, r->incarnation);
  p = wire_w_uint(p, r->generation);
  *p++ = r->state;
  p = wire_w_bin(p, r->meta);
  if (with)
    p = wire_w_chans(p, &r->chans);
  return wire_commit(e, p, 0);
}

size_t dmq__enc_size_data(const dmq__data_t *d) {
  /* array(10), type, flags, channel, 4 x u64, ttl, req_id, payload */
  return 2 + wire_sz_uint(d->flags) + wire_sz_str(d->channel.n) +
         wire_sz_uint(d->src_gen) + wire_sz_uint(d->dst_gen) +
         wire_sz_uint(d->seq) + wire_sz_uint(d->base) +
         wire_sz_uint(d->ttl_ms) + wire_sz_uint(d->req_id) +
         wire_sz_bin(d->payload.n);
}

int dmq__enc_data(dmq__enc_t *e, const dmq__data_t *d) {
  uint8_t *p;
  int err;
  if (!wire_ok_str(d->channel, DMQ_MAX_CHANNEL) ||
      (d->flags & ~DMQ__DATA_KNOWN) != 0 ||
      (d->payload.p == NULL && d->payload.n > 0) ||
      (uint64_t)d->payload.n > UINT32_MAX)
    return DMQ_EINVAL;
  if ((p = wire_room(e, dmq__enc_size_data(d), 1, &err)) == NULL)
    return err;
  *p++ = 0x9a;
  *p++ = DMQ__MSG_DATA;
  p = wire_w_uint(p, d->flags);
  p = wire_w_str(p, d->channel);
  p = wire_w_uint(p, d->src_gen);
  p = wire_w_uint(p, d->dst_gen);
  p = wire_w_uint(p, d->seq);
  p = wire_w_uint(p, d->base);
  p = wire_w_uint(p, d->ttl_ms);
  p = wire_w_uint(p, d->req_id);
  p = wire_w_bin(p, d->payload);
  return wire_commit(e, p, 1);
}

size_t dmq__enc_size_dack(const dmq__dack_t *a) {
  size_t size = 2 + wire_sz_uint(a->src_gen) + wire_sz_uint(a->dst_gen) +
                wire_sz_uint(a->cum) + wire_sz_uint(a->sack) +
                wire_sz_uint(a->rwnd);
  if (a->nrej > 0 || a->delay_ms > 0) {
    size += wire_sz_array(2 * (size_t)a->nrej);
    for (uint32_t i = 0; i < a->nrej; i++)
      size += wire_sz_uint(a->rej_seq[i]) + wire_sz_uint(a->rej_reason[i]);
  }
  if (a->delay_ms > 0)
    size += wire_sz_uint(a->delay_ms);
  return size;
}

int dmq__enc_dack(dmq__enc_t *e, const dmq__dack_t *a) {
  uint8_t *p;
  int err;
  if (a->nrej > DMQ__WIRE_MAX_REJ ||
      (a->nrej > 0 && (a->rej_seq == NULL || a->rej_reason == NULL)))
    return DMQ_EINVAL;
  if ((p = wire_room(e, dmq__enc_size_dack(a), 1, &err)) == NULL)
    return err;
  /* rejected is written when there is a pair or a delay after it */
  *p++ = a->delay_ms > 0 ? 0x98 : a->nrej > 0 ? 0x97 : 0x96;
  *p++ = DMQ__MSG_DACK;
  p = wire_w_uint(p, a->src_gen);
  p = wire_w_uint(p, a->dst_gen);
  p = wire_w_uint(p, a->cum);
  p = wire_w_uint(p, a->sack);
  p = wire_w_uint(p, a->rwnd);
  if (a->nrej > 0 || a->delay_ms > 0) {
    p = wire_w_array(p, 2 * (size_t)a->nrej);
    for (uint32_t i = 0; i < a->nrej; i++) {
      p = wire_w_uint(p, a->rej_seq[i]);
      p = wire_w_uint(p, a->rej_reason[i]);
    }
  }
  if (a->delay_ms > 0)
    p = wire_w_uint(p, a->delay_ms);
  return wire_commit(e, p, 1);
}
