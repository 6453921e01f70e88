/* libdmq - internal hooks of the TCP transport, for tests only (not
 * installed, not exported). */
#ifndef DMQ_TRANSPORTS_TCP_H
#define DMQ_TRANSPORTS_TCP_H

#include <stddef.h>
#include <stdint.h>

#include "dmq/transport.h"

/* Open connections of a TCP transport (outbound, including those still
 * connecting, plus accepted inbound ones); 0 if t is not a TCP transport. */
size_t dmq__tcp_connection_count(dmq_transport_t *t);

/* Override the idle timeout (default TCP_IDLE_MS, 15 s) after which a
 * connection with no traffic is closed; inbound connections use twice the
 * value. */
void dmq__tcp_set_idle_timeout(dmq_transport_t *t, uint64_t ms);

/* Override the connect timeout (default 5 s). */
void dmq__tcp_set_connect_timeout(dmq_transport_t *t, uint64_t ms);

#endif
