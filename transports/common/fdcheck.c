/* libdmq - checking a socket handed over by the host (fdcheck.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "common/addr.h"
#include "common/fdcheck.h"
#include "dmq/error.h"

static int fdc_fail(char *why, size_t cap, int fd, const char *what) {
  if (why != NULL && cap > 0)
    snprintf(why, cap, "fd %d: %s", fd, what);
  return DMQ_EINVAL;
}

int dmq__fd_check(int fd, int type, int listening,
                  struct sockaddr_storage *name, char *why, size_t cap) {
  if (fd < 0 || fcntl(fd, F_GETFD) < 0)
    return fdc_fail(why, cap, fd, "not an open file descriptor");
  int got = 0;
  socklen_t len = sizeof(got);
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &got, &len) != 0)
    return fdc_fail(why, cap, fd,
                    errno == ENOTSOCK ? "not a socket" : "SO_TYPE failed");
  if (got != type)
    return fdc_fail(why, cap, fd,
                    type == SOCK_DGRAM ? "not a datagram (UDP) socket"
                                       : "not a stream (TCP) socket");
  memset(name, 0, sizeof(*name));
  len = sizeof(*name);
  if (getsockname(fd, (struct sockaddr *)name, &len) != 0)
    return fdc_fail(why, cap, fd, "getsockname failed");
  if (name->ss_family != AF_INET && name->ss_family != AF_INET6)
    return fdc_fail(why, cap, fd, "not an IPv4 or IPv6 socket");
  if (dmq__addr_port((const struct sockaddr *)name) == 0)
    return fdc_fail(why, cap, fd, "not bound (bind it to an address first)");
#ifdef SO_ACCEPTCONN
  if (listening) {
    int acc = 0;
    len = sizeof(acc);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) != 0 || !acc)
      return fdc_fail(why, cap, fd, "not listening (call listen() first)");
  }
#else
  (void)listening;
#endif
  return 0;
}
