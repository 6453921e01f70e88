/* libdmq - checking a socket handed over by the host (internal, not
 * installed): dmq_udp_transport_open(), dmq_tcp_transport_open() and the
 * runtime's use_fds option. */
#ifndef DMQ_TRANSPORTS_FDCHECK_H
#define DMQ_TRANSPORTS_FDCHECK_H

#include <stddef.h>
#include <sys/socket.h>

/* fd must be an open IPv4 or IPv6 socket of `type` (SOCK_DGRAM or
 * SOCK_STREAM), bound to a port, and listening when `listening` is set.
 * Returns 0 with its local address in *name, or DMQ_EINVAL with the reason
 * in why (a short sentence, "fd 7: not a socket"; why may be NULL). */
int dmq__fd_check(int fd, int type, int listening,
                  struct sockaddr_storage *name, char *why, size_t cap);

#endif
