/* The hostile-peer test's own wire encoder (hwire.h), from docs/wire.md. */
#include "hwire.h"

#include <string.h>

static void put_be32(char *p, uint32_t v) {
  p[0] = (char)(v >> 24);
  p[1] = (char)(v >> 16);
  p[2] = (char)(v >> 8);
  p[3] = (char)v;
}

/* An array32 header whose count is patched later; its offset. */
static size_t reserve_array32(hw_t *w) {
  static const char hdr[5] = {(char)0xdd, 0, 0, 0, 0};
  size_t at = w->sb.size;
  msgpack_sbuffer_write(&w->sb, hdr, sizeof(hdr));
  return at;
}

static void str(hw_t *w, const char *s) {
  size_t n = strlen(s);
  msgpack_pack_str(&w->pk, n);
  msgpack_pack_str_body(&w->pk, s, n);
}

void hw_begin(hw_t *w, const char *label, const char *sender) {
  memset(w, 0, sizeof(*w));
  msgpack_sbuffer_init(&w->sb);
  msgpack_packer_init(&w->pk, &w->sb, msgpack_sbuffer_write);
  char env[4] = {'D', 'Q', 1, 0};
  if (label != NULL)
    env[3] = 1; /* LABEL */
  msgpack_sbuffer_write(&w->sb, env, sizeof(env));
  if (label != NULL) {
    char n = (char)strlen(label);
    msgpack_sbuffer_write(&w->sb, &n, 1);
    msgpack_sbuffer_write(&w->sb, label, strlen(label));
  }
  msgpack_pack_array(&w->pk, 2);
  str(w, sender);
  w->count_at = reserve_array32(w);
}

size_t hw_size(const hw_t *w) {
  return w->sb.size;
}

void hw_end(hw_t *w) {
  put_be32(w->sb.data + w->count_at + 1, w->count);
}

void hw_free(hw_t *w) {
  msgpack_sbuffer_destroy(&w->sb);
}

static void msg(hw_t *w, unsigned type, size_t nfields) {
  msgpack_pack_array(&w->pk, 1 + nfields);
  msgpack_pack_unsigned_int(&w->pk, type);
  w->count++;
}

void hw_ping(hw_t *w, uint32_t seq, const char *target) {
  msg(w, HW_PING, 2);
  msgpack_pack_uint32(&w->pk, seq);
  str(w, target);
}

void hw_ping_req(hw_t *w, uint32_t seq, const char *target, const char *addr,
                 int want_nack) {
  msg(w, HW_PING_REQ, 4);
  msgpack_pack_uint32(&w->pk, seq);
  str(w, target);
  str(w, addr);
  if (want_nack)
    msgpack_pack_true(&w->pk);
  else
    msgpack_pack_false(&w->pk);
}

void hw_ack(hw_t *w, uint32_t seq) {
  msg(w, HW_ACK, 1);
  msgpack_pack_uint32(&w->pk, seq);
}

void hw_alive(hw_t *w, const char *name, const char *addr, uint64_t inc,
              uint64_t gen) {
  msg(w, HW_ALIVE, 5);
  str(w, name);
  str(w, addr);
  msgpack_pack_uint64(&w->pk, inc);
  msgpack_pack_uint64(&w->pk, gen);
  msgpack_pack_bin(&w->pk, 0);
}

static void accuse(hw_t *w, unsigned type, const char *name, uint64_t inc,
                   uint64_t gen, const char *from) {
  msg(w, type, 4);
  str(w, name);
  msgpack_pack_uint64(&w->pk, inc);
  msgpack_pack_uint64(&w->pk, gen);
  str(w, from);
}

void hw_suspect(hw_t *w, const char *name, uint64_t inc, uint64_t gen,
                const char *from) {
  accuse(w, HW_SUSPECT, name, inc, gen, from);
}

void hw_dead(hw_t *w, const char *name, uint64_t inc, uint64_t gen,
             const char *from) {
  accuse(w, HW_DEAD, name, inc, gen, from);
}

void hw_left(hw_t *w, const char *name, uint64_t inc, uint64_t gen) {
  msg(w, HW_LEFT, 3);
  str(w, name);
  msgpack_pack_uint64(&w->pk, inc);
  msgpack_pack_uint64(&w->pk, gen);
}

void hw_pp_begin(hw_t *w, unsigned flags) {
  msg(w, HW_PUSHPULL, 2);
  msgpack_pack_unsigned_int(&w->pk, flags);
  w->rec_at = reserve_array32(w);
  w->recs = 0;
}

void hw_pp_record(hw_t *w, const char *name, const char *addr, uint64_t inc,
                  uint64_t gen, unsigned state) {
  msgpack_pack_array(&w->pk, 6);
  str(w, name);
  str(w, addr);
  msgpack_pack_uint64(&w->pk, inc);
  msgpack_pack_uint64(&w->pk, gen);
  msgpack_pack_unsigned_int(&w->pk, state);
  msgpack_pack_bin(&w->pk, 0);
  w->recs++;
}

void hw_pp_end(hw_t *w) {
  put_be32(w->sb.data + w->rec_at + 1, w->recs);
}

void hw_data(hw_t *w, unsigned flags, const char *channel, uint64_t src_gen,
             uint64_t dst_gen, uint64_t seq, uint64_t base, uint32_t ttl_ms,
             const void *payload, size_t len) {
  msg(w, HW_DATA, 9);
  msgpack_pack_unsigned_int(&w->pk, flags);
  str(w, channel);
  msgpack_pack_uint64(&w->pk, src_gen);
  msgpack_pack_uint64(&w->pk, dst_gen);
  msgpack_pack_uint64(&w->pk, seq);
  msgpack_pack_uint64(&w->pk, base);
  msgpack_pack_uint32(&w->pk, ttl_ms);
  msgpack_pack_uint64(&w->pk, 0); /* req_id */
  msgpack_pack_bin(&w->pk, len);
  if (len > 0)
    msgpack_pack_bin_body(&w->pk, payload, len);
}

void hw_dack(hw_t *w, uint64_t src_gen, uint64_t dst_gen, uint64_t cum,
             uint64_t sack, uint32_t rwnd) {
  msg(w, HW_DACK, 5);
  msgpack_pack_uint64(&w->pk, src_gen);
  msgpack_pack_uint64(&w->pk, dst_gen);
  msgpack_pack_uint64(&w->pk, cum);
  msgpack_pack_uint64(&w->pk, sack);
  msgpack_pack_uint32(&w->pk, rwnd);
}
