/* libdmq - address parsing and formatting for the socket transports.
 *
 * The UDP and TCP transports both speak "<scheme>://ip:port" strings with
 * the node and sockaddrs with libuv; this file is the one place that
 * converts between the two so that both transports accept and produce
 * exactly the same syntax (see addr.h for the grammar). Only numeric
 * literals are accepted: name resolution is the runtime's job, and a
 * transport that silently blocked on DNS inside send() would stall the loop.
 */
#include "common/addr.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "dmq/config.h"
#include "dmq/error.h"

/* Most decimal digits in a port ("65535"). */
#define ADDR_PORT_DIGITS 5
/* Largest port number. */
#define ADDR_PORT_MAX 65535u
/* Most decimal digits in a numeric IPv6 scope id (a uint32_t). */
#define ADDR_SCOPE_DIGITS 10
/* An IPv4-mapped IPv6 address (::ffff:a.b.c.d, RFC 4291 2.5.5.2) is ten
 * zero bytes, two 0xff bytes, then the IPv4 address. */
#define ADDR_V4MAPPED_FF 10
#define ADDR_V4MAPPED_V4 12
/* Longest IPv6 host text between the brackets: the address, '%' and a
 * scope (interface name or number). */
#define ADDR_V6_HOST_MAX                                                       \
  (INET6_ADDRSTRLEN + 1 + IF_NAMESIZE + ADDR_SCOPE_DIGITS)

static int addr_parse_port(const char *s, uint16_t *port) {
  uint32_t v = 0;
  size_t n = 0;
  for (; s[n] != '\0'; n++) {
    if (s[n] < '0' || s[n] > '9' || n == ADDR_PORT_DIGITS)
      return DMQ_EADDR;
    v = v * 10u + (uint32_t)(s[n] - '0');
  }
  if (n == 0 || v > ADDR_PORT_MAX)
    return DMQ_EADDR;
  *port = (uint16_t)v;
  return 0;
}

static int addr_parse_scope(const char *s, uint32_t *scope) {
  size_t n = strlen(s);
  if (n == 0)
    return DMQ_EADDR;
  if (strspn(s, "0123456789") == n) {
    uint64_t v = 0;
    if (n > ADDR_SCOPE_DIGITS)
      return DMQ_EADDR;
    for (size_t i = 0; i < n; i++)
      v = v * 10u + (uint64_t)(s[i] - '0');
    if (v > UINT32_MAX)
      return DMQ_EADDR;
    *scope = (uint32_t)v;
    return 0;
  }
  if (n >= IF_NAMESIZE)
    return DMQ_EADDR;
  unsigned idx = if_nametoindex(s);
  if (idx == 0)
    return DMQ_EADDR;
  *scope = idx;
  return 0;
}

int dmq__addr_parse(const char *addr, const char *scheme,
                    struct sockaddr_storage *out) {
  if (addr == NULL || out == NULL)
    return DMQ_EADDR;
  if (strnlen(addr, DMQ_MAX_ADDR + 1) > DMQ_MAX_ADDR)
    return DMQ_EADDR;
  const char *p = addr;
  const char *sep = strstr(addr, "://");
  if (sep != NULL) {
    size_t sl = (size_t)(sep - addr);
    if (scheme == NULL || sl == 0 || strlen(scheme) != sl ||
        strncasecmp(addr, scheme, sl) != 0)
      return DMQ_EADDR;
    p = sep + 3;
  }

  memset(out, 0, sizeof(*out));
  uint16_t port;
  if (*p == '[') {
    char host[ADDR_V6_HOST_MAX + 1];
    const char *end = strchr(p, ']');
    if (end == NULL || end[1] != ':')
      return DMQ_EADDR;
    size_t hl = (size_t)(end - (p + 1));
    if (hl == 0 || hl > ADDR_V6_HOST_MAX)
      return DMQ_EADDR;
    memcpy(host, p + 1, hl);
    host[hl] = '\0';
    if (addr_parse_port(end + 2, &port) != 0)
      return DMQ_EADDR;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)out;
    char *pct = strchr(host, '%');
    if (pct != NULL) {
      *pct = '\0';
      if (addr_parse_scope(pct + 1, &s6->sin6_scope_id) != 0)
        return DMQ_EADDR;
    }
    if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
      return DMQ_EADDR;
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(port);
    return 0;
  }

  char host[INET_ADDRSTRLEN];
  const char *colon = strchr(p, ':');
  if (colon == NULL)
    return DMQ_EADDR;
  size_t hl = (size_t)(colon - p);
  if (hl == 0 || hl >= sizeof(host))
    return DMQ_EADDR;
  memcpy(host, p, hl);
  host[hl] = '\0';
  if (addr_parse_port(colon + 1, &port) != 0)
    return DMQ_EADDR;
  struct sockaddr_in *s4 = (struct sockaddr_in *)out;
  if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
    return DMQ_EADDR;
  s4->sin_family = AF_INET;
  s4->sin_port = htons(port);
  return 0;
}

int dmq__addr_format(const struct sockaddr *sa, const char *scheme, char *buf,
                     size_t len) {
  char ip[INET6_ADDRSTRLEN];
  char scope[ADDR_SCOPE_DIGITS + 2] = "";
  const char *open = "", *close = "";
  uint16_t port;
  if (sa == NULL || buf == NULL ||
      (scheme != NULL && strlen(scheme) > DMQ__ADDR_SCHEME_MAX))
    return DMQ_EADDR;
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
    if (inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip)) == NULL)
      return DMQ_EADDR;
    port = ntohs(s4->sin_port);
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
    if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
      /* a dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; the rest
       * of the cluster knows them as a.b.c.d */
      if (inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[ADDR_V4MAPPED_V4], ip,
                    sizeof(ip)) == NULL)
        return DMQ_EADDR;
    } else {
      if (inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip)) == NULL)
        return DMQ_EADDR;
      open = "[";
      close = "]";
      if (s6->sin6_scope_id != 0)
        snprintf(scope, sizeof(scope), "%%%u", (unsigned)s6->sin6_scope_id);
    }
    port = ntohs(s6->sin6_port);
  } else {
    return DMQ_EADDR;
  }
  int n = snprintf(buf, len, "%s%s%s%s%s%s:%u", scheme ? scheme : "",
                   scheme ? "://" : "", open, ip, scope, close, (unsigned)port);
  if (n < 0)
    return DMQ_EADDR;
  if ((size_t)n >= len)
    return DMQ_ETOOBIG;
  return n;
}

uint16_t dmq__addr_port(const struct sockaddr *sa) {
  if (sa->sa_family == AF_INET)
    return ntohs(((const struct sockaddr_in *)sa)->sin_port);
  if (sa->sa_family == AF_INET6)
    return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
  return 0;
}

socklen_t dmq__addr_len(const struct sockaddr *sa) {
  if (sa->sa_family == AF_INET)
    return (socklen_t)sizeof(struct sockaddr_in);
  if (sa->sa_family == AF_INET6)
    return (socklen_t)sizeof(struct sockaddr_in6);
  return 0;
}

int dmq__addr_equal(const struct sockaddr *a, const struct sockaddr *b) {
  if (a->sa_family != b->sa_family)
    return 0;
  if (a->sa_family == AF_INET) {
    const struct sockaddr_in *x = (const struct sockaddr_in *)a;
    const struct sockaddr_in *y = (const struct sockaddr_in *)b;
    return x->sin_port == y->sin_port &&
           x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  if (a->sa_family == AF_INET6) {
    const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
    const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;
    return x->sin6_port == y->sin6_port &&
           x->sin6_scope_id == y->sin6_scope_id &&
           memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
  }
  return 0;
}

void dmq__addr_map_v4(struct sockaddr_storage *ss) {
  if (ss->ss_family != AF_INET)
    return;
  struct sockaddr_in s4 = *(const struct sockaddr_in *)ss;
  struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
  memset(s6, 0, sizeof(*s6));
  s6->sin6_family = AF_INET6;
  s6->sin6_port = s4.sin_port;
  s6->sin6_addr.s6_addr[ADDR_V4MAPPED_FF] = 0xff;
  s6->sin6_addr.s6_addr[ADDR_V4MAPPED_FF + 1] = 0xff;
  memcpy(&s6->sin6_addr.s6_addr[ADDR_V4MAPPED_V4], &s4.sin_addr,
         sizeof(s4.sin_addr));
}
