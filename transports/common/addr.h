/* libdmq - address strings <-> socket addresses, shared by the socket
 * transports (internal, not installed).
 *
 * Accepted forms: "<scheme>://<host>:<port>" and "<host>:<port>", where host
 * is an IPv4 literal ("1.2.3.4") or a bracketed IPv6 literal ("[::1]",
 * "[fe80::1%eth0]"). DNS names are not accepted: the runtime resolves them
 * before a transport ever sees an address. Parsing is strict: anything else
 * (missing or out-of-range port, stray characters, wrong scheme) is
 * DMQ_EADDR.
 */
#ifndef DMQ_TRANSPORTS_ADDR_H
#define DMQ_TRANSPORTS_ADDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Longest formatted address plus NUL: "tcp://" (scheme up to
 * DMQ__ADDR_SCHEME_MAX chars + "://") "[" INET6_ADDRSTRLEN-1 "%" scope id
 * (up to 10 digits) "]:65535". 96 leaves room for all of them. */
#define DMQ__ADDR_STRLEN 96
/* Longest scheme accepted by dmq__addr_format(). */
#define DMQ__ADDR_SCHEME_MAX 16

/* Parse addr into *out (sin_port/sin6_port in network order). scheme is the
 * transport's scheme: a "<scheme>://" prefix, when present, must match it
 * (case-insensitively). Port 0 is accepted (callers that need a real port
 * check dmq__addr_port()). Returns 0 or DMQ_EADDR. */
int dmq__addr_parse(const char *addr, const char *scheme,
                    struct sockaddr_storage *out);

/* Write "<scheme>://ip:port" ("<scheme>://[v6]:port" for IPv6; an
 * IPv4-mapped IPv6 address is written as plain IPv4) into buf. Returns the
 * string length, DMQ_ETOOBIG when buf is too small or DMQ_EADDR for an
 * unsupported address family. */
int dmq__addr_format(const struct sockaddr *sa, const char *scheme, char *buf,
                     size_t len);

/* Port in host order (0 for an unsupported family). */
uint16_t dmq__addr_port(const struct sockaddr *sa);

/* sizeof the concrete sockaddr for sa's family (0 if unsupported). */
socklen_t dmq__addr_len(const struct sockaddr *sa);

/* Equality of family, address, port and scope (not of padding). */
int dmq__addr_equal(const struct sockaddr *a, const struct sockaddr *b);

/* Turn an IPv4 address into its IPv4-mapped IPv6 form (::ffff:a.b.c.d) in
 * place, so that it can be used with an AF_INET6 socket. Other families are
 * left alone. */
void dmq__addr_map_v4(struct sockaddr_storage *ss);

#endif
