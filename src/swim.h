/* libdmq - membership (swim.c): what the node (node.c) drives. swim.c knows
 * the member table (members.h) and the node's services (internal.h), not
 * delivery. */
#ifndef DMQ_SWIM_H
#define DMQ_SWIM_H

#include "internal.h"
#include "wire.h"

/* One membership message of a received packet (any type but DATA and
 * DACK, which the node hands to delivery). stream: it arrived on a
 * stream-only transport. */
void dmq__swim_recv(dmq_node_t *n, const dmq__msg_t *msg, dmq__slice_t sender,
                    const char *from_addr, int stream);
/* Membership timers due at n->now. */
void dmq__swim_tick(dmq_node_t *n);
/* Earliest membership deadline (started node), DMQ_NEVER if none. */
uint64_t dmq__swim_deadline(const dmq_node_t *n);

/* m is about to leave the table: out of the dissemination queue and the
 * suspects. */
void dmq__swim_member_removed(dmq_node_t *n, dmq__member_t *m);
/* Our own gossiped state changed (channels): raise the incarnation and queue
 * it for dissemination, like dmq_node_set_meta(). No-op while leaving. */
void dmq__self_changed(dmq_node_t *n);

/* The membership layer's own bookkeeping checked against the table, for
 * tests: the list of members heard from themselves (each once, all of
 * them but those left out for want of memory) and the reaping schedule
 * (no dead member due before reap_due). 0 if consistent, -1 if not. */
int dmq__swim_check(dmq_node_t *n);
/* Records of a push/pull or DIFF message merged into the table (join: a
 * joiner's own table, whose newcomers are announced). echo: set ae_echo on
 * every member whose ALIVE record we now hold exactly as the message had it
 * (a DIFF request, whose reply leaves those out). */
void dmq__swim_apply_records(dmq_node_t *n, const dmq__msg_t *msg,
                             dmq__slice_t sender, int join, int echo);
/* May the packet being received cause one more outbound packet? At most
 * SWIM_REPLIES_PER_PACKET (4) per inbound packet, whatever its messages
 * (membership and anti-entropy alike); a refusal is counted as
 * DMQ_DROP_RATE_LIMITED. */
int dmq__swim_reply_ok(dmq_node_t *n);
/* A round of the join boost found our table and the peer's different: one
 * more round, a quarter probe period from now (antientropy.c). */
void dmq__swim_boost_differs(dmq_node_t *n);
/* A full push/pull (periodic kind) to addr: the fallback of antientropy.c. */
void dmq__swim_send_pushpull(dmq_node_t *n, const char *addr);

#endif
