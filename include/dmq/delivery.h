/* libdmq - queued delivery: channels, unicast, broadcast, request/reply.
 *
 * Members serve named channels with a receive callback; messages go to one
 * member (dmq_send, dmq_request, dmq_reply) or to every member that serves
 * a channel (dmq_broadcast), best effort or reliable. Every reliable send
 * or request that returns 0 ends in exactly one call of its outcome
 * callback; a call that returns an error never calls it.
 *
 * Inside the receive, outcome and writable callbacks you may query, send,
 * reply, cancel and open channels; dmq_node_delete() and closing the
 * channel being delivered to return DMQ_EBUSY (all rules: docs/node.md,
 * "Threading and callbacks").
 *
 * The contract (outcomes, partial broadcast, queue limits, ordering and
 * pause, sizes, when packets go out): docs/delivery.md.
 */
#ifndef DMQ_DELIVERY_H
#define DMQ_DELIVERY_H

#include <stddef.h>
#include <stdint.h>

#include "dmq/node.h"
#include "dmq/version.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DMQ_MAX_CHANNEL 32  /* channel name: 1..32 bytes */
#define DMQ_MAX_CHANNELS 32 /* channels one member can serve */

typedef struct dmq__channel dmq_channel_t;

typedef enum dmq_send_mode {
  DMQ_SEND_BEST_EFFORT = 0,
  DMQ_SEND_RELIABLE = 1
} dmq_send_mode_t;

typedef enum dmq_outcome {
  DMQ_OUTCOME_DELIVERED = 0, /* acked by the receiver (request: replied) */
  DMQ_OUTCOME_EXPIRED,       /* TTL passed (request: no reply in time) */
  DMQ_OUTCOME_DEAD,          /* destination dead or restarted */
  DMQ_OUTCOME_LEFT,          /* destination left */
  DMQ_OUTCOME_CANCELLED,     /* dmq_delivery_cancel() */
  DMQ_OUTCOME_SHUTDOWN,      /* the node was deleted */
  DMQ_OUTCOME_UNKNOWN_DEST,  /* destination not a member / not serving */
  DMQ_OUTCOME_TOO_BIG,       /* the receiver's limits are smaller */
  /* broadcast only: a destination's queue (or the node-wide limit) had no
   * room, so it was skipped (docs/delivery.md, "Queues and backpressure") */
  DMQ_OUTCOME_QUEUE_FULL
} dmq_outcome_t;

DMQ_EXTERN const char *dmq_outcome_name(dmq_outcome_t o);

/* Identifies an accepted send, for cancel and for matching outcomes. */
typedef uint64_t dmq_msg_id_t;

/* Handed to the outcome callback, borrowed for the call. May grow at the
 * end in later releases: read the fields, do not copy the struct by value
 * into storage another version of libdmq reads. */
typedef struct dmq__outcome_info {
  dmq_msg_id_t id;
  dmq_outcome_t outcome;
  const char *dest; /* member name; NULL for a broadcast */
  const char *channel;
  uint32_t delivered; /* broadcast: destinations that acked */
  uint32_t failed;    /* broadcast: destinations that did not */
  /* request/reply: the reply (borrowed for the call), when DELIVERED */
  const void *reply;
  size_t reply_len;
  /* broadcast: destinations skipped because their queue was full (counted
   * in failed too) */
  uint32_t refused;
} dmq_outcome_info_t;

typedef void (*dmq_outcome_cb)(dmq_node_t *node, const dmq_outcome_info_t *o,
                               void *user_data);

/* Handle to answer a request, valid until dmq_reply() or the end of the
 * receive callback (copy it to answer later: it is a small value). Its
 * layout is fixed for a soname (callers copy it by value): it never
 * grows without a new soname. */
typedef struct dmq__reply_handle {
  char from[DMQ_MAX_NAME + 1];
  uint64_t from_gen;
  uint64_t req_id;
  char channel[DMQ_MAX_CHANNEL + 1]; /* the reply travels on it */
  int valid;
} dmq_reply_handle_t;

/* Handed to the receive callback, borrowed for the call. May grow at the
 * end in later releases: read the fields, do not copy the struct by value
 * into storage another version of libdmq reads. */
typedef struct dmq__message {
  const char *from; /* sender member name */
  const char *channel;
  const void *data; /* borrowed for the call */
  size_t len;
  int reliable;
  /* non-NULL for a request: pass to dmq_reply() */
  const dmq_reply_handle_t *request;
  /* The sender's advertised address ("udp://10.0.0.1:7946") and its
   * generation (the life of the sender the message comes from: it changes
   * when the sender restarts). sender_addr is borrowed for the call, like
   * from and data. */
  const char *sender_addr;
  uint64_t sender_generation;
} dmq_message_t;

typedef void (*dmq_receive_cb)(dmq_node_t *node, dmq_channel_t *ch,
                               const dmq_message_t *msg, void *user_data);

/* Called when a destination's queue that refused a send (DMQ_EAGAIN, or a
 * destination skipped by a partial broadcast) has room again (half its
 * limits). dest is NULL when the node-wide queue limit (max_queued_bytes)
 * refused and the total is back to half of it. */
typedef void (*dmq_writable_cb)(dmq_node_t *node, const char *dest,
                                void *user_data);

typedef struct dmq__delivery_config {
  /* sizeof(dmq_delivery_config_t) in the caller's headers, set by
   * dmq_delivery_config_init(): the library reads no further, and fields
   * the caller's headers lack take their defaults (dmq/dmq.h, "Growable
   * structs"). Do not change. */
  uint32_t size;
  uint32_t ttl_ms;     /* default TTL of reliable messages: 30000 */
  uint32_t rto_min_ms; /* first retransmission: 200 */
  uint32_t rto_max_ms; /* back-off cap: 5000 */
  uint32_t window;     /* unacked messages in flight per dest: 16384 */
  uint32_t
      queue_msgs; /* queued per destination: 16384 (bounds queueing delay) */
  size_t queue_bytes;          /* queued per destination: 64 MiB */
  size_t max_message;          /* largest message: 4 MiB */
  size_t reassembly_bytes;     /* per sender, fragments + reorder: 8 MiB */
  uint32_t request_timeout_ms; /* default request timeout: 5000 */
  /* unacked bytes in flight per dest (payload, channel and a DATA header
   * each; at least one message is always allowed): 4 MiB */
  size_t window_bytes;
  /* payload bytes queued for all destinations together (docs/delivery.md,
   * "Queues and backpressure"): 64 MiB; 0 in dmq_delivery_configure() =
   * this default */
  size_t max_queued_bytes;
  /* (0.3.1) receive state held for all senders together: reorder rings,
   * out-of-order and paused messages, reassembly buffers (docs/limits.md).
   * What would exceed it is dropped (stats drops[DMQ_DROP_BUDGET]) and
   * retransmitted by its sender later: 64 MiB; 0 in
   * dmq_delivery_configure() = this default */
  size_t max_rx_bytes;
} dmq_delivery_config_t;

/* Use dmq_delivery_config_init(): it passes the caller's sizeof. DMQ_EINVAL
 * for NULL or a size below the 0.3.0 layout; at most size bytes written. */
DMQ_EXTERN int dmq_delivery_config_init_sized(dmq_delivery_config_t *c,
                                              size_t size);
/* Fill c with the defaults (the values in the comments above) and set
 * c->size. Required: a dmq_delivery_config_t passed to libdmq must have
 * been initialised by it (size 0 is refused with DMQ_EINVAL). */
static inline int dmq_delivery_config_init(dmq_delivery_config_t *c) {
  return dmq_delivery_config_init_sized(c, sizeof *c);
}
/* Change delivery settings (before the first send: DMQ_ESTATE after it).
 * c is copied. DMQ_EINVAL for an uninitialised c (size below the 0.3.0
 * layout), zero values, rto_max < rto_min, window > 65536 or a
 * max_message that a max_packet-sized stream packet cannot carry. */
DMQ_EXTERN int dmq_delivery_configure(dmq_node_t *node,
                                      const dmq_delivery_config_t *c);
DMQ_EXTERN void dmq_delivery_set_writable_cb(dmq_node_t *node,
                                             dmq_writable_cb cb, void *ud);

/* Serve a channel: cb gets every message sent to it. The channel is
 * advertised to the cluster (the member's incarnation rises). DMQ_EEXIST if
 * already served, DMQ_EINVAL for a bad name, DMQ_ELIMIT when
 * DMQ_MAX_CHANNELS are open already, DMQ_ENOMEM. */
DMQ_EXTERN int dmq_channel_open(dmq_node_t *node, const char *name,
                                dmq_receive_cb cb, void *user_data,
                                dmq_channel_t **out);
/* Stop serving (advertised too). DMQ_EBUSY from inside this channel's
 * receive callback (and inside the log or wake callback), DMQ_ENOENT if
 * not open. */
DMQ_EXTERN int dmq_channel_close(dmq_channel_t *ch);
/* Hold (paused non-zero) or release the reliable messages for ch: the
 * receiver's backpressure (docs/delivery.md, "Pause"). Returns 0,
 * DMQ_EINVAL for NULL, DMQ_EBUSY inside the log or wake callback. */
DMQ_EXTERN int dmq_channel_pause(dmq_channel_t *ch, int paused);
/* Does member `name` serve `channel` (as far as this node knows)? */
DMQ_EXTERN int dmq_member_serves(const dmq_node_t *node, const char *name,
                                 const char *channel);

typedef struct dmq__send_opts {
  /* sizeof(dmq_send_opts_t) in the caller's headers, set by
   * dmq_send_opts_init(): the library reads no further (dmq/dmq.h,
   * "Growable structs"). Do not change. */
  uint32_t size;
  dmq_send_mode_t mode; /* default DMQ_SEND_BEST_EFFORT */
  uint32_t ttl_ms;      /* 0 = the configured default */
  dmq_outcome_cb cb;    /* required for reliable sends and requests */
  void *user_data;
  /* dmq_broadcast() only: member names that are not destinations (borrowed
   * for the call; names that are not members are ignored). n_exclude > 0
   * with exclude or an entry NULL is DMQ_EINVAL. A broadcast whose every
   * destination is excluded is one to nobody (DELIVERED, 0 / 0). */
  const char *const *exclude;
  size_t n_exclude;
} dmq_send_opts_t;

/* Use dmq_send_opts_init(): it passes the caller's sizeof. DMQ_EINVAL for
 * NULL or a size below the 0.3.0 layout; at most size bytes written. */
DMQ_EXTERN int dmq_send_opts_init_sized(dmq_send_opts_t *o, size_t size);
/* Fill o with the defaults (best effort, the default TTL, no callback) and
 * set o->size. Required before filling in the fields: sends with options
 * of size 0 are refused with DMQ_EINVAL. Initialise once and reuse: the
 * struct is only read by the sends it is passed to. opts NULL in a send
 * means best effort with the defaults. */
static inline int dmq_send_opts_init(dmq_send_opts_t *o) {
  return dmq_send_opts_init_sized(o, sizeof *o);
}

/* Unicast to member `dest` on `channel` (the destination does not need to
 * serve the channel for a unicast; if it does not, the message is dropped
 * there and the outcome is DMQ_OUTCOME_UNKNOWN_DEST).
 * Errors: DMQ_EINVAL (bad arguments, opts not initialised by
 * dmq_send_opts_init(), reliable without cb), DMQ_ENOENT
 * (dest not an alive/suspect member), DMQ_ETOOBIG (len > max_message),
 * DMQ_EAGAIN (queue full; a writable callback follows), DMQ_ESTATE (leaving).
 * *id (may be NULL) receives the message id. data is copied. */
DMQ_EXTERN int dmq_send(dmq_node_t *node, const char *dest, const char *channel,
                        const void *data, size_t len,
                        const dmq_send_opts_t *opts, uint64_t now,
                        dmq_msg_id_t *id);
/* Broadcast to every alive/suspect member that serves channel (self and
 * opts->exclude excluded). Same errors, but DMQ_EAGAIN only when no
 * destination had room (then nothing is queued and no outcome follows);
 * destinations without room are skipped and reported in the one outcome
 * (docs/delivery.md, "Queues and backpressure"). */
DMQ_EXTERN int dmq_broadcast(dmq_node_t *node, const char *channel,
                             const void *data, size_t len,
                             const dmq_send_opts_t *opts, uint64_t now,
                             dmq_msg_id_t *id);
/* Request: a reliable unicast whose outcome is DELIVERED with the reply,
 * or EXPIRED when no reply came within timeout_ms (0 = default), or DEAD /
 * LEFT / CANCELLED / SHUTDOWN. */
DMQ_EXTERN int dmq_request(dmq_node_t *node, const char *dest,
                           const char *channel, const void *data, size_t len,
                           uint32_t timeout_ms, dmq_outcome_cb cb, void *ud,
                           uint64_t now, dmq_msg_id_t *id);
/* Answer a request (reliable, with the default TTL; no outcome is
 * reported). The handle is invalidated. DMQ_ENOENT if the requester is gone
 * (or restarted), DMQ_EINVAL for a used handle, DMQ_EAGAIN / DMQ_ETOOBIG as
 * for dmq_send(). */
DMQ_EXTERN int dmq_reply(dmq_node_t *node, dmq_reply_handle_t *h,
                         const void *data, size_t len, uint64_t now);
/* Cancel a pending reliable send or request: its outcome is CANCELLED
 * (delivered from inside this call's return path, before it returns).
 * DMQ_ENOENT if it already has an outcome. */
DMQ_EXTERN int dmq_delivery_cancel(dmq_node_t *node, dmq_msg_id_t id);

/* Written by dmq_delivery_stats(). May grow at the end in later releases
 * (the library writes no more than the caller's sizeof). */
typedef struct dmq__delivery_stats {
  /* sent_be / sent_reliable: DATA messages put on the wire (first
   * transmissions; fragments included); received: DATA messages read */
  uint64_t sent_be, sent_reliable, received, delivered_app;
  uint64_t retransmits, duplicates, acks_sent, acks_received;
  uint64_t dropped_be;         /* best effort not sent (no room, no route) */
  uint64_t dropped_no_channel; /* arrived for a channel we do not serve */
  /* outcomes reported, by kind (per send, not per destination; dead counts
   * DEAD and LEFT); refused_full: sends refused with DMQ_EAGAIN */
  uint64_t expired, dead, cancelled, refused_full;
  /* fragments: sent counts every fragment of a fragmented message, received
   * the DATA flagged MORE_FRAGMENTS (all but the last of each message) */
  uint64_t fragments_sent, fragments_received, reassembly_drops;
  uint64_t queued_msgs, queued_bytes, inflight; /* current */
  /* receive side */
  uint64_t stale_gen;      /* DATA/DACK for another life of either side */
  uint64_t unknown_sender; /* DATA from a name that is not a member */
  uint64_t rx_expired;     /* TTL ran out before delivery (not delivered) */
  uint64_t rx_overflow;    /* beyond the receive window or byte budget */
  uint64_t dropped_paused; /* best effort for a paused channel */
  uint64_t late_replies;   /* reply after the request's outcome */
  uint64_t rx_buffered, rx_buffered_bytes; /* current: reorder + held */
  /* best-effort messages peers put on the wire to us that never arrived;
   * can go down when a late one arrives (docs/delivery.md, "Best-effort
   * loss accounting") */
  uint64_t rx_lost_be;
  /* destinations skipped by partial broadcasts (their queue, or the
   * node-wide limit, had no room) */
  uint64_t bcast_refused;
} dmq_delivery_stats_t;

/* Use dmq_delivery_stats(): it passes the caller's sizeof. Writes at most
 * size bytes (bytes past the library's struct are zeroed). 0, or
 * DMQ_EINVAL for NULL or a size below the 0.3.0 layout. */
DMQ_EXTERN int dmq_delivery_stats_sized(const dmq_node_t *node,
                                        dmq_delivery_stats_t *out, size_t size);
/* Delivery counters of node into *out. */
static inline int dmq_delivery_stats(const dmq_node_t *node,
                                     dmq_delivery_stats_t *out) {
  return dmq_delivery_stats_sized(node, out, sizeof *out);
}

/* The channels member `member` serves as far as this node knows (self
 * included: our own open channels), sorted by name. Writes up to cap
 * names to names[] (names may be NULL when cap is 0) and the number the
 * member serves to *count, even when it is larger than cap. The strings
 * are borrowed: valid until the next call into the node other than a
 * query (the next input, send, channel open or close). Returns 0, DMQ_ETOOBIG
 * when cap was too small (the first cap names are written), DMQ_ENOENT
 * for a name that is not in the member table, DMQ_EINVAL for bad
 * arguments. Callable from inside callbacks (DMQ_EVENT_CHANNELS_UPDATED:
 * the set as it is now). At most DMQ_MAX_CHANNELS names. */
DMQ_EXTERN int dmq_member_channels(const dmq_node_t *node, const char *member,
                                   const char **names, size_t cap,
                                   size_t *count);

#ifdef __cplusplus
}
#endif
#endif
