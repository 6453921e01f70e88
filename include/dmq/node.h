/* libdmq - the node: membership, failure detection and dissemination.
 *
 * A dmq_node_t is sans-I/O: it never opens a socket, reads a clock or calls
 * rand(). Whoever drives it (the libuv runtime, the simulator, your own loop)
 * feeds it:
 *   - the time, as a monotonic millisecond counter `now`, in every call that
 *     takes one (it must never go backwards);
 *   - received bytes, with dmq_node_recv();
 *   - timer expiry, by calling dmq_node_tick() at or after
 *     dmq_node_next_deadline().
 * and the node sends through the transports registered with
 * dmq_node_add_transport().
 *
 * Threading: a node is not thread safe; call it from one thread at a time.
 *
 * Callbacks run on the caller's thread, from inside the libdmq call that
 * caused them. Event callbacks (member events; delivery's receive, outcome
 * and writable) run after the node has finished processing: inside them
 * queries, set_meta, set_seeds, leave, the setters and sending are
 * allowed; recv, tick, join and delete return DMQ_EBUSY. The log and wake
 * callbacks run at once, possibly mid-update: inside them only read-only
 * queries are allowed, every call that changes the node returns DMQ_EBUSY.
 * Misuse is never ignored. The callback rules: docs/node.md, "Threading
 * and callbacks".
 */
#ifndef DMQ_NODE_H
#define DMQ_NODE_H

#include <stddef.h>
#include <stdint.h>

#include "dmq/config.h"
#include "dmq/error.h"
#include "dmq/transport.h"
#include "dmq/version.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dmq__node dmq_node_t;

#define DMQ_NEVER UINT64_MAX

/* Allocator hooks, per node. Initialise with dmq_alloc_init(), then set all
 * three hooks; or pass NULL to dmq_node_new() to use the C library. ud is
 * passed through. Memory returned by one hook is freed by the same node's
 * free hook. */
typedef struct dmq__alloc {
  /* sizeof(dmq_alloc_t) in the caller's headers, set by dmq_alloc_init():
   * the library reads no further (dmq/dmq.h, "Growable structs"). */
  uint32_t size;
  void *(*malloc_fn)(size_t size, void *ud);
  void *(*realloc_fn)(void *ptr, size_t size, void *ud);
  void (*free_fn)(void *ptr, void *ud);
  void *ud;
} dmq_alloc_t;

/* Use dmq_alloc_init(): it passes the caller's sizeof. DMQ_EINVAL for NULL
 * or a size below the 0.3.0 layout; at most size bytes written. */
DMQ_EXTERN int dmq_alloc_init_sized(dmq_alloc_t *a, size_t size);
/* Set a->size, the hooks and ud to NULL. Required before setting the hooks:
 * dmq_node_new() refuses hooks with size 0 (DMQ_EINVAL). */
static inline int dmq_alloc_init(dmq_alloc_t *a) {
  return dmq_alloc_init_sized(a, sizeof *a);
}

typedef enum dmq_member_state {
  DMQ_MEMBER_ALIVE = 0,
  DMQ_MEMBER_SUSPECT = 1,
  DMQ_MEMBER_DEAD = 2,
  DMQ_MEMBER_LEFT = 3
} dmq_member_state_t;
#define DMQ_MEMBER_STATE_COUNT 4

DMQ_EXTERN const char *dmq_member_state_name(dmq_member_state_t s);

/* A snapshot of one member. Pointers are borrowed: valid until the next call
 * that feeds the node input (recv, tick, join, leave, set_meta, delete).
 * Handed to member callbacks (borrowed for the call) and written by
 * dmq_node_member(). May grow at the end in later releases: read the
 * fields, do not copy the struct by value into storage another version of
 * libdmq reads. */
typedef struct dmq__member_info {
  const char *name;
  const char *addr;
  dmq_member_state_t state;
  uint64_t incarnation;
  uint64_t generation;
  const void *meta;
  size_t meta_len;
  uint64_t state_since; /* node time of the last state change */
  int is_self;
} dmq_member_info_t;

typedef enum dmq_member_event {
  DMQ_EVENT_JOINED = 0,   /* first seen alive (or a new generation) */
  DMQ_EVENT_SUSPECT,      /* alive -> suspect */
  DMQ_EVENT_ALIVE_AGAIN,  /* suspect -> alive (refuted) */
  DMQ_EVENT_DEAD,         /* declared dead */
  DMQ_EVENT_LEFT,         /* left gracefully */
  DMQ_EVENT_META_UPDATED, /* metadata changed */
  DMQ_EVENT_REAPED,       /* dead/left member forgotten after retention */
  /* The set of delivery channels the member serves changed (it opened or
   * closed one: dmq_channel_open() on its side). Not raised for a member
   * first seen or restarted (JOINED carries it). Read the new set with
   * dmq_member_channels() (dmq/delivery.h); when two changes arrive in one
   * input, the callback sees the newest set at each of the two events. */
  DMQ_EVENT_CHANNELS_UPDATED
} dmq_member_event_t;

DMQ_EXTERN const char *dmq_member_event_name(dmq_member_event_t e);

typedef void (*dmq_member_cb)(dmq_node_t *node, dmq_member_event_t ev,
                              const dmq_member_info_t *member, void *user_data);

typedef enum dmq_log_level {
  DMQ_LOG_ERROR = 0,
  DMQ_LOG_WARN,
  DMQ_LOG_INFO,
  DMQ_LOG_DEBUG
} dmq_log_level_t;

/* Log callback: runs synchronously, where the message is logged, possibly
 * in the middle of an update (queries only, every other call returns
 * DMQ_EBUSY: docs/node.md). msg is borrowed for the call. */
typedef void (*dmq_log_cb)(dmq_node_t *node, dmq_log_level_t level,
                           const char *msg, void *user_data);

/* Why an inbound packet (or part of it) was dropped. Every drop is counted. */
#define DMQ_DROP_MAP(X)                                                        \
  X(SHORT, "shorter than the envelope")                                        \
  X(MAGIC, "not a libdmq packet")                                              \
  X(VERSION, "unsupported wire version")                                       \
  X(LABEL, "cluster label mismatch")                                           \
  X(MALFORMED, "malformed body")                                               \
  X(UNKNOWN_TYPE, "unknown message type")                                      \
  X(OVERSIZE, "larger than accepted")                                          \
  X(NOT_FOR_US, "addressed to another member")                                 \
  X(SELF, "sent by a member with our own name")                                \
  X(UNSUPPORTED, "feature not enabled (encryption)")                           \
  X(TX_FAILED, "outbound send refused or failed in the transport")             \
  X(TX_NO_TRANSPORT, "no transport for the destination")                       \
  X(AUTH, "sealed packet failed authentication (wrong key or forged)")         \
  X(KEY_UNKNOWN, "sealed with a key id not in the keyring")                    \
  X(PLAINTEXT, "unsealed packet while encryption is required")                 \
  X(REPLAY, "replayed or too old sealed packet")                               \
  X(MEMBER_LIMIT, "member table at its configured maximum")                    \
  X(IMPLAUSIBLE, "incarnation or generation out of the plausible range")       \
  X(RATE_LIMITED, "reply or probe rate limit reached")                         \
  X(UNKNOWN_SENDER, "data or anti-entropy from a sender not a member")         \
  X(BUDGET, "node-wide receive state budget exhausted")                        \
  X(NOMEM, "an allocation failed: the work it was for was dropped")

/* clang-format off */
typedef enum dmq_drop_reason {
#define DMQ__DROP_ENUM(n, d) DMQ_DROP_##n,
  DMQ_DROP_MAP(DMQ__DROP_ENUM)
#undef DMQ__DROP_ENUM
  DMQ_DROP_COUNT
} dmq_drop_reason_t;
/* clang-format on */

/* Capacity of dmq_stats_t.drops: fixed, so that a new drop reason takes a
 * free slot (slots >= DMQ_DROP_COUNT read 0) instead of moving the fields
 * after it. */
#define DMQ_DROP_SLOTS 32
#ifdef __cplusplus
static_assert(DMQ_DROP_COUNT <= DMQ_DROP_SLOTS,
              "more drop reasons than dmq_stats_t.drops slots");
#else
_Static_assert(DMQ_DROP_COUNT <= DMQ_DROP_SLOTS,
               "more drop reasons than dmq_stats_t.drops slots");
#endif

DMQ_EXTERN const char *dmq_drop_reason_name(dmq_drop_reason_t r);

/* Written by dmq_node_stats(). May grow at the end in later releases (the
 * library writes no more than the caller's sizeof): new fields are
 * appended after the last one, new drop reasons take free drops slots. */
typedef struct dmq__stats {
  uint64_t pkts_in, pkts_out;
  uint64_t bytes_in, bytes_out;
  uint64_t msgs_in, msgs_out; /* protocol messages inside packets */
  /* by dmq_drop_reason_t; DMQ_DROP_SLOTS, of which DMQ_DROP_COUNT used */
  uint64_t drops[DMQ_DROP_SLOTS];
  uint64_t probes, probe_direct_ok, probe_indirect_ok, probe_failed;
  uint64_t suspicions_raised, refutations, deaths_declared;
  uint64_t pushpull_sent, pushpull_received;
  uint64_t gossip_updates_sent;
  uint32_t members[DMQ_MEMBER_STATE_COUNT]; /* by state, self included */
  uint32_t health_score;                    /* Lifeguard local health */
  /* Member events dropped because the event log could not grow (the
   * allocator failed); each is logged at DMQ_LOG_ERROR too. The member
   * table itself is right: query it to resynchronise. */
  uint64_t events_lost;
} dmq_stats_t;

/* Create a node. cfg (initialised by dmq_config_init()) and alloc
 * (initialised by dmq_alloc_init(), all three hooks set) are copied; alloc
 * may be NULL. On success *out is set and 0 returned;
 * otherwise *out is NULL and the error is DMQ_EINVAL (NULL out or cfg, cfg
 * not initialised by dmq_config_init(), bad config: missing name or
 * address, zero generation, out-of-range timers) or DMQ_ENOMEM. */
DMQ_EXTERN int dmq_node_new(const dmq_config_t *cfg, const dmq_alloc_t *alloc,
                            dmq_node_t **out);
/* Free the node: pending reliable sends and requests end with
 * DMQ_OUTCOME_SHUTDOWN (their outcome callbacks run from inside this
 * call), then everything is freed. Transports are not closed or freed (the
 * caller owns them). Leave first for a graceful exit. Returns 0 (also for
 * NULL); DMQ_EBUSY, freeing nothing, when called from inside any libdmq
 * callback of this node (delete it after the callback has returned). */
DMQ_EXTERN int dmq_node_delete(dmq_node_t *node);

DMQ_EXTERN void dmq_node_set_member_cb(dmq_node_t *node, dmq_member_cb cb,
                                       void *user_data);
DMQ_EXTERN void dmq_node_set_log_cb(dmq_node_t *node, dmq_log_cb cb,
                                    dmq_log_level_t max_level, void *user_data);
DMQ_EXTERN void *dmq_node_user_data(const dmq_node_t *node);
DMQ_EXTERN void dmq_node_set_user_data(dmq_node_t *node, void *user_data);

/* Register a transport (not owned). At most 8 transports (DMQ_ELIMIT
 * beyond); one per scheme: DMQ_EEXIST for a second transport with the same
 * scheme. */
DMQ_EXTERN int dmq_node_add_transport(dmq_node_t *node, dmq_transport_t *t);

/* Start the protocol clock: schedules probes, gossip and push/pull. */
DMQ_EXTERN int dmq_node_start(dmq_node_t *node, uint64_t now);

/* Most seed addresses dmq_node_join() and dmq_node_set_seeds() take
 * (DMQ_ELIMIT beyond). */
#define DMQ_MAX_SEEDS 32

/* Join the cluster through seed addresses (copied). The node retries with
 * exponential back-off and jitter until one seed answers, and re-joins
 * through them if it later finds itself alone. Calling it again replaces the
 * seed list. */
DMQ_EXTERN int dmq_node_join(dmq_node_t *node, const char *const *seeds,
                             size_t n_seeds, uint64_t now);

/* Replace the seed list (copied) without restarting the join: used when a
 * seed name resolves to new addresses. Seeds not alive in our view are
 * contacted every reconnect interval, so a healed partition merges. */
DMQ_EXTERN int dmq_node_set_seeds(dmq_node_t *node, const char *const *seeds,
                                  size_t n_seeds);
DMQ_EXTERN int dmq_node_is_joined(const dmq_node_t *node);

/* Graceful leave: announce LEFT to the cluster. The node keeps answering
 * probes until deleted; dmq_node_left_flushed() tells when the announcement
 * has been sent often enough. */
DMQ_EXTERN int dmq_node_leave(dmq_node_t *node, uint64_t now);
DMQ_EXTERN int dmq_node_left_flushed(const dmq_node_t *node);

/* Forget a DEAD or LEFT member now instead of after dead_retention_ms (an
 * operator's "remove this node"): the member gets its REAPED event and
 * leaves the table, and what delivery kept for it is freed. Only this
 * node's view changes; gossip about a member we do not know as DEAD or LEFT
 * is ignored, so it does not come back unless it is alive somewhere (then
 * it is learned again, as a member that joins). Errors: DMQ_EINVAL (NULL
 * arguments), DMQ_ENOENT (no such member), DMQ_ESTATE (alive, suspect, or
 * ourselves: failure detection removes members, not the operator),
 * DMQ_EBUSY inside a callback. */
DMQ_EXTERN int dmq_node_forget(dmq_node_t *node, const char *name);

/* Replace this node's metadata (copied, <= DMQ_MAX_META bytes); bumps the
 * incarnation and gossips it. */
DMQ_EXTERN int dmq_node_set_meta(dmq_node_t *node, const void *meta, size_t len,
                                 uint64_t now);

/* Feed bytes received by transport t from from_addr (may be NULL when the
 * transport cannot tell). buf is borrowed for the call. Bad packets are not
 * an error for the caller: they are counted in stats and dropped; the return
 * value is 0 then. DMQ_EBUSY inside a callback. */
DMQ_EXTERN int dmq_node_recv(dmq_node_t *node, dmq_transport_t *t,
                             const char *from_addr, const void *buf, size_t len,
                             uint64_t now);
/* Run everything due at `now`. DMQ_ESTATE before dmq_node_start(),
 * DMQ_EBUSY inside a callback. */
DMQ_EXTERN int dmq_node_tick(dmq_node_t *node, uint64_t now);
/* Earliest time at which dmq_node_tick() has work; DMQ_NEVER if none. */
DMQ_EXTERN uint64_t dmq_node_next_deadline(const dmq_node_t *node);

/* Deadline wake-up, for drivers that re-read dmq_node_next_deadline() only
 * after their own calls into the node. cb(user_data) is called when a call
 * other than dmq_node_tick() and dmq_node_recv() may have made the next
 * deadline earlier (dmq_node_start(), dmq_node_join(), dmq_send(),
 * dmq_node_set_meta(), ... or a callback of the node doing so): it runs
 * synchronously, from inside that call, on the caller's thread, at most once
 * until the driver next calls dmq_node_next_deadline(). Inside cb only note
 * that the deadline must be re-read (set a flag, start a loop handle): it is
 * a synchronous callback (docs/node.md): every call that changes the node
 * returns DMQ_EBUSY. cb NULL removes the hook. */
typedef void (*dmq_wake_cb)(void *user_data);
DMQ_EXTERN void dmq_node_set_wake_cb(dmq_node_t *node, dmq_wake_cb cb,
                                     void *user_data);

/* Queries. */
DMQ_EXTERN const char *dmq_node_name(const dmq_node_t *node);
/* Use dmq_node_member(): it passes the caller's sizeof. Writes at most size
 * bytes; DMQ_EINVAL for a size below the 0.3.0 layout. */
DMQ_EXTERN int dmq_node_member_sized(const dmq_node_t *node, const char *name,
                                     dmq_member_info_t *out, size_t size);
/* The member called name into *out: 0, DMQ_ENOENT if unknown, DMQ_EINVAL
 * for NULL or a bad name. */
static inline int dmq_node_member(const dmq_node_t *node, const char *name,
                                  dmq_member_info_t *out) {
  return dmq_node_member_sized(node, name, out, sizeof *out);
}
/* Number of members (self included) whose state bit (1u << state) is in
 * state_mask. O(1) for DMQ_MASK_ALL, DMQ_MASK_LIVE, alive alone, suspect
 * alone and the dead and left together; a pass over the table for any
 * other mask. */
DMQ_EXTERN size_t dmq_node_member_count(const dmq_node_t *node,
                                        unsigned state_mask);
#define DMQ_MASK_ALL 0xFu
#define DMQ_MASK_LIVE ((1u << DMQ_MEMBER_ALIVE) | (1u << DMQ_MEMBER_SUSPECT))
/* Call cb for every member (self included) in table order; stop early when
 * cb returns non-zero. Do not feed the node input from cb. */
DMQ_EXTERN int dmq_node_members_foreach(const dmq_node_t *node,
                                        int (*cb)(const dmq_member_info_t *m,
                                                  void *ud),
                                        void *ud);
/* Use dmq_node_stats(): it passes the caller's sizeof. Writes at most size
 * bytes (bytes past the library's struct are zeroed). 0, or DMQ_EINVAL for
 * NULL or a size below the 0.3.0 layout. */
DMQ_EXTERN int dmq_node_stats_sized(const dmq_node_t *node, dmq_stats_t *out,
                                    size_t size);
/* Counters of node into *out. */
static inline int dmq_node_stats(const dmq_node_t *node, dmq_stats_t *out) {
  return dmq_node_stats_sized(node, out, sizeof *out);
}

/* ---- Sealing: keyring and mode (docs/security.md) ----
 *
 * When the node has a primary key and its mode is not DMQ_SEAL_OFF, every
 * packet it sends is sealed with libsodium AEAD (XChaCha20-Poly1305, or
 * AES-256-GCM where the CPU has it, chosen at run time; a receiver opens
 * either). Received sealed packets are opened with whichever keyring key
 * their key id names, so keys rotate across a running cluster without
 * downtime: add the new key everywhere, make it primary everywhere, then
 * remove the old one. A key id is a 32-bit value derived from the key
 * (the same on every node); it is what the library logs, never the key.
 *
 * Key bytes are copied into memory allocated with libsodium's
 * sodium_malloc (guard pages, locked where the system allows; not through
 * the node's dmq_alloc_t hooks) and wiped when the key is removed or the
 * node deleted. These calls change the node: DMQ_EBUSY from inside any
 * callback of the node, like every other mutator. Call them after
 * dmq_node_new() and before the first dmq_node_join(); later calls take
 * effect for the next packet sent or received. */
#define DMQ_KEY_SIZE 32 /* bytes of a key */
#define DMQ_MAX_KEYS 16 /* keys in a keyring */

/* Add a DMQ_KEY_SIZE-byte key (len must be DMQ_KEY_SIZE). The first key
 * added becomes the primary (sending) key, and so does one added with
 * primary != 0. *key_id (may be NULL) gets its id. Errors: DMQ_EINVAL
 * (NULL, wrong len), DMQ_EEXIST (already in the keyring), DMQ_ELIMIT
 * (DMQ_MAX_KEYS keys), DMQ_ENOMEM, DMQ_ENOTSUP (libsodium failed to
 * initialise), DMQ_EBUSY. */
DMQ_EXTERN int dmq_node_key_add(dmq_node_t *node, const void *key, size_t len,
                                int primary, uint32_t *key_id);
/* Make the key key_id the primary (sending) key. DMQ_ENOENT if it is not
 * in the keyring, DMQ_EBUSY. */
DMQ_EXTERN int dmq_node_key_use(dmq_node_t *node, uint32_t key_id);
/* Remove the key key_id (wiped). DMQ_ENOENT if unknown; DMQ_ESTATE for
 * the primary key while other keys remain (make another one primary
 * first), or for the last key while the mode is not DMQ_SEAL_OFF;
 * DMQ_EBUSY. */
DMQ_EXTERN int dmq_node_key_remove(dmq_node_t *node, uint32_t key_id);
/* The ids of the keyring's keys into ids (at most max; ids may be NULL
 * with max 0) and the primary key's id into *primary (may be NULL; 0 when
 * the keyring is empty). Returns the number of keys. A query: allowed
 * everywhere. */
DMQ_EXTERN size_t dmq_node_keys(const dmq_node_t *node, uint32_t *ids,
                                size_t max, uint32_t *primary);
/* The id a key would have (the same on every node). 0 for NULL. */
DMQ_EXTERN uint32_t dmq_key_id(const void *key, size_t len);
/* Parse 2*DMQ_KEY_SIZE hex characters (either case) into key. DMQ_EINVAL
 * for any other input. */
DMQ_EXTERN int dmq_key_from_hex(const char *hex, size_t len,
                                uint8_t key[DMQ_KEY_SIZE]);
/* Change the sealing mode. DMQ_EINVAL for an unknown mode, DMQ_ESTATE for
 * TRANSITION or REQUIRED with an empty keyring, DMQ_EBUSY. */
DMQ_EXTERN int dmq_node_set_seal_mode(dmq_node_t *node, dmq_seal_mode_t mode);
/* The configured mode (what dmq_node_set_seal_mode set, or the config's). */
DMQ_EXTERN dmq_seal_mode_t dmq_node_seal_mode(const dmq_node_t *node);
DMQ_EXTERN const char *dmq_seal_mode_name(dmq_seal_mode_t mode);
/* "off", "transition", "required". DMQ_ENOENT if unknown. */
DMQ_EXTERN int dmq_seal_mode_from_name(const char *name, dmq_seal_mode_t *out);

#ifdef __cplusplus
}
#endif
#endif
