/* libdmq - wire codec (internal).
 *
 * Packet layout (all packets, every transport):
 *
 *    0       1       2       3
 *   +-------+-------+-------+-------+
 *   |  'D'  |  'Q'  |  ver  | flags |   ver = DMQ__WIRE_VERSION
 *   +-------+-------+-------+-------+
 *   | [lablen | label ...]          |   present when flags & LABEL
 *   +-------------------------------+
 *   | [sealed header, 37 bytes]     |   present when flags & SEALED
 *   +-------------------------------+   (src/seal.h, docs/wire.md)
 *   | body                          |   msgpack; encrypted when SEALED,
 *   +-------------------------------+
 *   | [tag, 16 bytes]               |   then followed by the AEAD tag
 *   +-------------------------------+
 *
 *   body = array(2) [ sender_name: str, messages: array(n) ]
 *   message = array [ type: uint, fields... ]   (see below)
 *
 * Decoding never allocates: strings and byte fields are slices into the
 * packet, valid while the packet buffer is. Every length is bounded
 * (DMQ_MAX_NAME, DMQ_MAX_ADDR, DMQ_MAX_META, counts) and anything out of
 * bounds makes the message (or the whole packet, if the envelope is bad)
 * malformed. Unknown message types are skipped whole, so newer peers can add
 * message types without breaking older ones.
 *
 * DATA and DACK carry queued delivery (src/delivery.c); the optional trailing
 * `channels` field of ALIVE and of push/pull records advertises the channels
 * a member serves (absent = none, so older peers stay compatible).
 */
#ifndef DMQ_WIRE_H
#define DMQ_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "dmq/config.h"

#define DMQ__WIRE_MAGIC0 0x44 /* 'D' */
#define DMQ__WIRE_MAGIC1 0x51 /* 'Q' */
#define DMQ__WIRE_VERSION 1
#define DMQ__WIRE_FLAG_LABEL 0x01
#define DMQ__WIRE_FLAG_SEALED 0x02
#define DMQ__WIRE_FLAGS_KNOWN 0x03
/* Sealed packets (src/seal.h): the header after the envelope (and label)
 * and the AEAD tag after the encrypted body. */
#define DMQ__WIRE_SEAL_HDR 37
#define DMQ__WIRE_SEAL_TAG 16
/* Largest number of messages in one packet and records in one push/pull. */
#define DMQ__WIRE_MAX_MSGS 4096
#define DMQ__WIRE_MAX_RECORDS 65536

typedef struct dmq__slice {
  const char *p; /* not NUL-terminated */
  size_t n;
} dmq__slice_t;

enum dmq__msg_type {
  DMQ__MSG_PING = 1,     /* [1, seq, target_name] */
  DMQ__MSG_PING_REQ = 2, /* [2, seq, target_name, target_addr, want_nack] */
  DMQ__MSG_ACK = 3,      /* [3, seq] */
  DMQ__MSG_NACK = 4,     /* [4, seq] */
  DMQ__MSG_ALIVE = 5,    /* [5, name, addr, incarnation, generation, meta] */
  DMQ__MSG_SUSPECT = 6,  /* [6, name, incarnation, generation, from] */
  DMQ__MSG_DEAD = 7,     /* [7, name, incarnation, generation, from] */
  DMQ__MSG_LEFT = 8,     /* [8, name, incarnation, generation] */
  /* [9, flags, [record...]],
   * record = [name, addr, incarnation, generation, state, meta] */
  DMQ__MSG_PUSHPULL = 9,
  /* [10, flags, channel, src_gen, dst_gen, seq, base, ttl_ms, req_id,
   *  payload] */
  DMQ__MSG_DATA = 10,
  /* [11, src_gen, dst_gen, cum, sack, rwnd(, rejected)] */
  DMQ__MSG_DACK = 11,
  /* [12, flags, k, count, hashes]: digest anti-entropy (antientropy.c) */
  DMQ__MSG_DIGEST = 12,
  /* [13, flags, k, mask, [record...]]: the records of the buckets in mask */
  DMQ__MSG_DIFF = 13,
  DMQ__MSG_TYPE_MAX_KNOWN = 13
};

/* DIGEST and DIFF flags (other bits are ignored). */
#define DMQ__AE_REPLY 0x01
/* DIGEST REPLY: the requester is not a live member of the replier's table
 * (unknown, dead or left): it should send a full push/pull instead. */
#define DMQ__AE_NOT_MEMBER 0x02
/* Largest k (2^k buckets of the name-hash space) of a DIGEST or DIFF: a
 * DIGEST's hashes are 8 << k bytes, a DIFF's mask (2^k + 7) / 8 bytes. */
#define DMQ__AE_MAX_K 10

/* DATA flags. */
#define DMQ__DATA_RELIABLE 0x01
#define DMQ__DATA_REQUEST 0x02
#define DMQ__DATA_REPLY 0x04
#define DMQ__DATA_MORE 0x08 /* MORE_FRAGMENTS: not the last fragment */
#define DMQ__DATA_KNOWN 0x0f
/* Most (seq, reason) pairs in the optional `rejected` field of a DACK. */
#define DMQ__WIRE_MAX_REJ 64
/* Reasons in `rejected`: why the receiver consumed a message without
 * delivering it. */
#define DMQ__REJ_NO_CHANNEL 1 /* it does not serve the channel */
#define DMQ__REJ_TOO_BIG 2    /* over its max_message / reassembly memory */

#define DMQ__PP_JOIN 0x01  /* sender is joining */
#define DMQ__PP_REPLY 0x02 /* this is the answer to a push/pull */

/* The channels a member serves (trailing field of ALIVE and of push/pull
 * records: msgpack array of 0..DMQ_MAX_CHANNELS str of 1..DMQ_MAX_CHANNEL
 * bytes; absent or nil = none). Encoding reads v; decoding sets raw to the
 * validated array elements (read them with dmq__wire_chans). */
typedef struct dmq__chans {
  uint32_t n;
  const dmq__slice_t *v;
  const uint8_t *raw;
  size_t raw_len;
} dmq__chans_t;

/* Decoded channel names into out (at most max); returns how many. */
size_t dmq__wire_chans(const dmq__chans_t *c, dmq__slice_t *out, size_t max);

typedef struct dmq__record {
  dmq__slice_t name, addr, meta;
  uint64_t incarnation, generation;
  uint8_t state; /* dmq_member_state_t; validated < 4 */
  dmq__chans_t chans;
} dmq__record_t;

/* DATA: one queued-delivery message (or fragment). Best effort (RELIABLE
 * clear): base = 0 and seq is the sender's best-effort number towards this
 * receiver (1, 2, ...; 0 from senders that do not number them). payload is
 * any bin (bounded by the packet). */
typedef struct dmq__data {
  uint8_t flags; /* DMQ__DATA_* */
  dmq__slice_t channel;
  uint64_t src_gen, dst_gen;
  uint64_t seq, base;
  uint32_t ttl_ms;
  uint64_t req_id;
  dmq__slice_t payload;
} dmq__data_t;

/* DACK: cumulative + selective ack of the DATA stream src -> dst. Encoding
 * reads rej_seq/rej_reason; decoding sets rej_raw (read the pairs with
 * dmq__wire_rejs). */
typedef struct dmq__dack {
  uint64_t src_gen, dst_gen;
  uint64_t cum, sack;
  uint32_t rwnd;
  uint32_t nrej;
  const uint64_t *rej_seq;
  const uint8_t *rej_reason;
  const uint8_t *rej_raw;
  size_t rej_len;
  uint32_t delay_ms; /* optional: how long the newest arrival waited */
} dmq__dack_t;

/* Decoded `rejected` pairs (at most max); returns how many. */
size_t dmq__wire_rejs(const dmq__dack_t *a, uint64_t *seq, uint8_t *reason,
                      size_t max);

typedef struct dmq__msg {
  uint8_t type;
  uint32_t seq;         /* PING, PING_REQ, ACK, NACK */
  uint8_t flag;         /* PING_REQ: want_nack; PUSHPULL: DMQ__PP_* */
  dmq__slice_t name;    /* PING/PING_REQ: target; ALIVE..LEFT: subject */
  dmq__slice_t addr;    /* PING_REQ, ALIVE */
  dmq__slice_t from;    /* SUSPECT, DEAD */
  dmq__slice_t meta;    /* ALIVE */
  uint64_t incarnation; /* ALIVE..LEFT */
  uint64_t generation;  /* ALIVE..LEFT */
  dmq__chans_t chans;   /* ALIVE */
  dmq__data_t data;     /* DATA */
  dmq__dack_t dack;     /* DACK */
  /* DIGEST, DIFF: bucket bits (2^ae_k buckets); DIGEST: the sender's live
   * members and its hashes (8 << ae_k bytes, big-endian uint64s); DIFF: the
   * bucket mask ((2^ae_k + 7) / 8 bytes, bucket i = bit i % 8 of byte
   * i / 8; bits past 2^ae_k are 0). flag holds the DMQ__AE_* flags. */
  uint8_t ae_k;
  uint32_t ae_count;
  dmq__slice_t ae_bin;
  /* PUSHPULL, DIFF: records are decoded one at a time with
   * dmq__wire_next_record */
  const uint8_t *rec_p;
  size_t rec_len;
  uint32_t rec_count;
} dmq__msg_t;

typedef struct dmq__envelope {
  uint8_t version, flags;
  dmq__slice_t label;
  dmq__slice_t sender;
  const uint8_t *msgs_p; /* start of the first message */
  size_t msgs_len;
  uint32_t msg_count;
} dmq__envelope_t;

/* Decode the envelope and body header of a plain packet. Returns 0 or a
 * dmq_drop_reason_t + 1 (i.e. >0) naming why the packet is dropped; a
 * sealed packet is DMQ_DROP_UNSUPPORTED (the node opens those with
 * dmq__wire_head, src/seal.h and dmq__wire_body). */
int dmq__wire_open(const uint8_t *buf, size_t len, dmq__envelope_t *env);
/* The envelope alone: version, flags and label into env (sender and
 * messages left empty) and in *body_off where the body (or, when
 * env->flags & SEALED, the sealed header) starts. 0 or drop reason + 1. */
int dmq__wire_head(const uint8_t *buf, size_t len, dmq__envelope_t *env,
                   size_t *body_off);
/* The (plain) body p[0..len): sender and messages into env. 0 or drop
 * reason + 1. */
int dmq__wire_body(const uint8_t *p, size_t len, dmq__envelope_t *env);

/* Message iterator over env->msgs_p. */
typedef struct dmq__msg_iter {
  const uint8_t *p, *end;
  uint32_t left;
} dmq__msg_iter_t;

void dmq__wire_msgs(const dmq__envelope_t *env, dmq__msg_iter_t *it);
/* Next message. Returns 1 and fills *m; 0 at the end; -1 when the rest of the
 * packet is malformed (stop); 2 for an unknown or malformed message that was
 * skipped (m->type tells which type it had, 0 if unknown; continue). */
int dmq__wire_next(dmq__msg_iter_t *it, dmq__msg_t *m);

typedef struct dmq__rec_iter {
  const uint8_t *p, *end;
  uint32_t left;
} dmq__rec_iter_t;
void dmq__wire_records(const dmq__msg_t *m, dmq__rec_iter_t *it);
/* 1 = record filled, 0 = end, -1 = malformed (stop). */
int dmq__wire_next_record(dmq__rec_iter_t *it, dmq__record_t *r);

/* ---- encoding ----
 * An encoder writes into a caller-owned buffer of fixed capacity and never
 * allocates. Each dmq__enc_* call either appends the whole message and
 * returns 0, or leaves the buffer unchanged and returns DMQ_ETOOBIG (no room,
 * or DMQ__WIRE_MAX_MSGS messages already). Fields the decoder would reject
 * (names/addresses empty, too long or holding a NUL byte, meta over
 * DMQ_MAX_META, state >= 4, more than DMQ__WIRE_MAX_RECORDS records) are
 * refused with DMQ_EINVAL, never DMQ_ETOOBIG, so "flush and retry" loops end;
 * so is any message added after a dmq__enc_begin() that failed. */
typedef struct dmq__enc {
  uint8_t *buf;
  size_t cap, len;
  size_t count_pos; /* where the message-count array header lives */
  uint32_t count;   /* messages written */
} dmq__enc_t;

/* Start a packet: envelope + body header with sender. label may be NULL. */
int dmq__enc_begin(dmq__enc_t *e, uint8_t *buf, size_t cap, const char *label,
                   size_t label_len, const char *sender, size_t sender_len);
/* The same; with `sealed`, the SEALED flag is set, DMQ__WIRE_SEAL_HDR zero
 * bytes are reserved after the label and DMQ__WIRE_SEAL_TAG bytes at the
 * end of buf are kept free (the encoder's capacity is cap minus the tag),
 * so that dmq__send() can seal the packet in place. Use dmq__node_enc_begin
 * (internal.h), which picks label and sealing from the node. */
int dmq__enc_begin_sealed(dmq__enc_t *e, uint8_t *buf, size_t cap,
                          const char *label, size_t label_len,
                          const char *sender, size_t sender_len, int sealed);
/* Finish: patches the message count. Returns the packet length. */
size_t dmq__enc_end(dmq__enc_t *e);

int dmq__enc_ping(dmq__enc_t *e, uint32_t seq, dmq__slice_t target);
int dmq__enc_ping_req(dmq__enc_t *e, uint32_t seq, dmq__slice_t target,
                      dmq__slice_t target_addr, int want_nack);
int dmq__enc_ack(dmq__enc_t *e, uint32_t seq);
int dmq__enc_nack(dmq__enc_t *e, uint32_t seq);
/* chans may be NULL (or hold n = 0): the field is then left out. */
int dmq__enc_alive(dmq__enc_t *e, dmq__slice_t name, dmq__slice_t addr,
                   uint64_t inc, uint64_t gen, dmq__slice_t meta,
                   const dmq__chans_t *chans);
int dmq__enc_suspect(dmq__enc_t *e, dmq__slice_t name, uint64_t inc,
                     uint64_t gen, dmq__slice_t from);
int dmq__enc_dead(dmq__enc_t *e, dmq__slice_t name, uint64_t inc, uint64_t gen,
                  dmq__slice_t from);
int dmq__enc_left(dmq__enc_t *e, dmq__slice_t name, uint64_t inc, uint64_t gen);
/* Push/pull: begin with the number of records that will follow, then add
 * exactly that many. The encoder reserves a 5-byte array header. */
int dmq__enc_pushpull_begin(dmq__enc_t *e, uint8_t flags, uint32_t nrec);
int dmq__enc_record(dmq__enc_t *e, const dmq__record_t *r);
/* DIGEST: hashes holds 8 << k bytes (k <= DMQ__AE_MAX_K). */
int dmq__enc_digest(dmq__enc_t *e, uint8_t flags, uint8_t k, uint32_t count,
                    const uint8_t *hashes);
/* DIFF: begin with the mask ((2^k + 7) / 8 bytes, 1 <= k <= DMQ__AE_MAX_K);
 * the records' array header is an array32 at *rec_pos, patched by
 * dmq__enc_diff_end with the number of dmq__enc_record() calls that
 * succeeded (a record that does not fit may simply be left out). */
int dmq__enc_diff_begin(dmq__enc_t *e, uint8_t flags, uint8_t k,
                        const uint8_t *mask, size_t *rec_pos);
void dmq__enc_diff_end(dmq__enc_t *e, size_t rec_pos, uint32_t nrec);
/* Exact encoded size of a DIGEST with 2^k buckets. */
size_t dmq__enc_size_digest(uint8_t k, uint32_t count);
/* Queued delivery. Refused with DMQ_EINVAL: channel not 1..DMQ_MAX_CHANNEL
 * bytes or holding a NUL, unknown flag bits, more than DMQ__WIRE_MAX_REJ
 * rejected pairs. */
int dmq__enc_data(dmq__enc_t *e, const dmq__data_t *d);
int dmq__enc_dack(dmq__enc_t *e, const dmq__dack_t *a);

/* Exact encoded size of one gossip message, to pack up to the MTU. ALIVE
 * writes incarnation and generation as fixed 9-byte uint64s so that its size
 * does not depend on their values. chans may be NULL. */
size_t dmq__enc_size_alive(size_t name, size_t addr, size_t meta,
                           const dmq__chans_t *chans);
/* Exact encoded size of the channels field (0 when left out). */
size_t dmq__enc_size_chans(const dmq__chans_t *chans);
/* Exact encoded sizes of DATA and DACK messages. */
size_t dmq__enc_size_data(const dmq__data_t *d);
size_t dmq__enc_size_dack(const dmq__dack_t *a);
/* Packet overhead before the first message (envelope, no label, body and
 * message-array headers) for a sender name of sender_len bytes. */
size_t dmq__enc_size_envelope(size_t sender_len);
/* What a label of label_len bytes (0: none) and sealing add to a packet
 * (label length byte and label; sealed header and tag). */
size_t dmq__wire_overhead(size_t label_len, int sealed);

#endif
