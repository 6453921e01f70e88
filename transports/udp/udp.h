/* libdmq - internal hooks of the UDP transport, for tests only (not
 * installed, not exported). */
#ifndef DMQ_TRANSPORTS_UDP_H
#define DMQ_TRANSPORTS_UDP_H

#include "dmq/transport.h"

/* 1 when t is a bound UDP transport whose socket receives with recvmmsg
 * (batched), 0 otherwise. */
int dmq__udp_using_recvmmsg(dmq_transport_t *t);

/* on != 0: skip uv_udp_try_send(), so that every send takes the copied,
 * queued uv_udp_send() path (normally used only when the socket buffer is
 * full, which loopback tests cannot provoke reliably). */
void dmq__udp_set_queued_only(dmq_transport_t *t, int on);

/* GSO/GRO of a bound UDP transport: bit 0 set when runs of batched
 * datagrams go out as GSO entries, bit 1 when the socket reads coalesced
 * runs (UDP_GRO); -1 when t is not a UDP transport. *gso_runs and
 * *gro_runs (may be NULL): GSO entries sent and coalesced runs read so
 * far. */
int dmq__udp_gso_state(dmq_transport_t *t, uint64_t *gso_runs,
                       uint64_t *gro_runs);

/* on == 0: send every datagram alone (the path without GSO). */
void dmq__udp_set_gso(dmq_transport_t *t, int on);

#endif
