/* libdmq - queued delivery (internal): the hooks through which the node
 * (node.c, the composition root) drives src/delivery. The public API is
 * include/dmq/delivery.h. */
#ifndef DMQ_DELIVERY_DELIVERY_H
#define DMQ_DELIVERY_DELIVERY_H

#include <stddef.h>
#include <stdint.h>

#include "dmq/delivery.h"
#include "internal.h"
#include "wire.h"

/* Node lifecycle: init in dmq_node_new (DMQ_ENOMEM); shutdown at the start
 * of dmq_node_delete (every pending reliable send and request gets
 * DMQ_OUTCOME_SHUTDOWN, callbacks run); free at its end, after the members
 * (and with them the per-member state) are gone. */
int dmq__delivery_init(dmq_node_t *n);
void dmq__delivery_shutdown(dmq_node_t *n);
void dmq__delivery_free(dmq_node_t *n);

/* Member changes, relayed by node.c from the member listener. changed: m became
 * DEAD or LEFT, or came back with a new generation (why = DMQ_OUTCOME_DEAD or
 * DMQ_OUTCOME_LEFT): everything queued for it fails with `why`; m is
 * ourselves when we took a new generation (swim.c, another member claimed
 * our name): every stream restarts and everything queued fails. removed: m
 * is about to be freed. */
void dmq__delivery_member_changed(dmq_node_t *n, dmq__member_t *m,
                                  dmq_outcome_t why);
void dmq__delivery_member_removed(dmq_node_t *n, dmq__member_t *m);

/* Inbound DATA / DACK, from dmq_node_recv; payload slices stay borrowed
 * from the packet until dmq__delivery_recv_done(), called at the end of
 * dmq_node_recv after the callbacks ran. */
void dmq__delivery_on_data(dmq_node_t *n, const dmq__data_t *d,
                           dmq__slice_t sender);
void dmq__delivery_on_dack(dmq_node_t *n, const dmq__dack_t *a,
                           dmq__slice_t sender);
void dmq__delivery_recv_done(dmq_node_t *n);

/* Timers due at n->now, then the pending packets (data, acks). */
void dmq__delivery_tick(dmq_node_t *n);
/* Run the application callbacks that are due (receives, outcomes,
 * writable); called by dmq__flush_events with n->in_callback set. Returns 1
 * if it ran anything (new work may have been queued meanwhile). */
int dmq__delivery_flush(dmq_node_t *n);
/* n->now while packets or callbacks are pending, else the earliest timer,
 * else DMQ_NEVER. */
uint64_t dmq__delivery_deadline(const dmq_node_t *n);

#endif
