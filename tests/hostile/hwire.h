/* The hostile-peer test's own encoder of the libdmq wire format, written from
 * docs/wire.md alone (it does not call src/wire.c: the point is an
 * independent implementation). msgpack-c's packer is the byte writer.
 *
 *   hw_t w;
 *   hw_begin(&w, label, sender);   envelope, [label], body header
 *   hw_ping(&w, seq, target) ...   one call per message
 *   hw_end(&w);                    patches the message count
 *   w.sb.data, w.sb.size           the packet
 *   hw_free(&w);
 *
 * Nothing here checks the bounds: a hostile peer writes what it likes. */
#ifndef HOSTILE_HWIRE_H
#define HOSTILE_HWIRE_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

enum {
  HW_PING = 1,
  HW_PING_REQ = 2,
  HW_ACK = 3,
  HW_NACK = 4,
  HW_ALIVE = 5,
  HW_SUSPECT = 6,
  HW_DEAD = 7,
  HW_LEFT = 8,
  HW_PUSHPULL = 9,
  HW_DATA = 10,
  HW_DACK = 11
};

/* DATA flags */
#define HW_DATA_RELIABLE 1u
/* PUSHPULL flags */
#define HW_PP_JOIN 1u
#define HW_PP_REPLY 2u
/* push/pull record states */
#define HW_ST_ALIVE 0u
#define HW_ST_SUSPECT 1u
#define HW_ST_DEAD 2u
#define HW_ST_LEFT 3u

typedef struct hw {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  size_t count_at; /* offset of the array32 message count */
  uint32_t count;
  size_t rec_at; /* offset of a push/pull record count (array32) */
  uint32_t recs;
} hw_t;

/* label NULL: no LABEL flag. */
void hw_begin(hw_t *w, const char *label, const char *sender);
/* The packet so far is complete; its size if hw_end() were called now. */
size_t hw_size(const hw_t *w);
void hw_end(hw_t *w);
void hw_free(hw_t *w);

void hw_ping(hw_t *w, uint32_t seq, const char *target);
void hw_ping_req(hw_t *w, uint32_t seq, const char *target, const char *addr,
                 int want_nack);
void hw_ack(hw_t *w, uint32_t seq);
void hw_alive(hw_t *w, const char *name, const char *addr, uint64_t inc,
              uint64_t gen);
void hw_suspect(hw_t *w, const char *name, uint64_t inc, uint64_t gen,
                const char *from);
void hw_dead(hw_t *w, const char *name, uint64_t inc, uint64_t gen,
             const char *from);
void hw_left(hw_t *w, const char *name, uint64_t inc, uint64_t gen);
/* A PUSHPULL message: hw_pp_begin, hw_pp_record..., hw_pp_end. */
void hw_pp_begin(hw_t *w, unsigned flags);
void hw_pp_record(hw_t *w, const char *name, const char *addr, uint64_t inc,
                  uint64_t gen, unsigned state);
void hw_pp_end(hw_t *w);
void hw_data(hw_t *w, unsigned flags, const char *channel, uint64_t src_gen,
             uint64_t dst_gen, uint64_t seq, uint64_t base, uint32_t ttl_ms,
             const void *payload, size_t len);
void hw_dack(hw_t *w, uint64_t src_gen, uint64_t dst_gen, uint64_t cum,
             uint64_t sack, uint32_t rwnd);

#endif
