/* libdmq - internal interface between node.c and swim.c. */
#ifndef DMQ_SWIM_H
#define DMQ_SWIM_H

#include "internal.h"

uint64_t dmq__hash(const char *p, size_t n);
dmq__member_t *dmq__member_find(const dmq_node_t *n, const char *name,
                                size_t len);
dmq__member_t *dmq__member_add(dmq_node_t *n, const char *name, size_t nlen,
                               const char *addr, size_t alen);
void dmq__member_remove(dmq_node_t *n, dmq__member_t *m);
int dmq__member_set_addr(dmq_node_t *n, dmq__member_t *m, const char *addr,
                         size_t len);
/* Returns 1 if changed, 0 if equal, DMQ_ENOMEM. */
int dmq__member_set_meta(dmq_node_t *n, dmq__member_t *m, const void *meta,
                         size_t len);
void dmq__members_shuffle(dmq_node_t *n);

void dmq__emit(dmq_node_t *n, dmq_member_event_t ev, const dmq__member_t *m);
void dmq__flush_events(dmq_node_t *n);

int dmq__send(dmq_node_t *n, const char *addr, const uint8_t *buf, size_t len,
              int reliable, uint32_t nmsgs);

/* 1 if reliable sends to addr would use another transport than datagram
 * sends (a real stream fallback exists). */
int dmq__has_separate_stream(dmq_node_t *n, const char *addr);
/* Whether the reliable class reaches addr through a RELIABLE transport. */
int dmq__has_stream(dmq_node_t *n, const char *addr);
/* mtu of the transport that carries datagrams to addr (0: none). */
size_t dmq__datagram_mtu(dmq_node_t *n, const char *addr);

/* swim.c */
void dmq__bc_remove(dmq_node_t *n, dmq__member_t *m);
void dmq__suspicion_clear(dmq_node_t *n, dmq__member_t *m);
/* Our own gossiped state changed (channels): raise the incarnation and queue
 * it for dissemination, like dmq_node_set_meta(). No-op while leaving. */
void dmq__self_changed(dmq_node_t *n);

#endif
