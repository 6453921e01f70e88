/* libdmq - socket options of the libuv runtime, shared by the adapters.
 *
 * dmq_uv_options_t is what dmq_uv_new() (dmq/uv.h) takes, and what
 * dmq_thread_options_t (dmq/thread.h) and dmq_poll_options_t (dmq/poll.h)
 * embed as their `uv` member. This header does not need <uv.h>.
 */
#ifndef DMQ_UV_OPTIONS_H
#define DMQ_UV_OPTIONS_H

#include <stddef.h>
#include <stdint.h>

#include "dmq/node.h"
#include "dmq/version.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dmq__uv_options {
  /* sizeof(dmq_uv_options_t) in the caller's headers, set by
   * dmq_uv_options_init() (and by the init of the options that embed it):
   * the library reads no further (dmq/dmq.h, "Growable structs"). */
  uint32_t size;
  /* "127.0.0.1:7946", "[::1]:0", "0.0.0.0:7946": UDP and TCP both bind
   * here (port 0: UDP picks a port, TCP binds the same one). Required. */
  const char *bind;
  /* host:port others should use; default (NULL): the bound address (an
   * unspecified bind address such as 0.0.0.0 then requires advertise). */
  const char *advertise;
  int no_tcp;              /* UDP only (no stream fallback, no large) */
  uint32_t dns_refresh_ms; /* re-resolve seed names; default 30000 */
  /* Sockets opened by the host (e.g. bound before forking), used instead
   * of binding when use_fds is non-zero (default 0). Then `bind` is
   * ignored (may be NULL) and:
   *   udp_fd  a bound IPv4/IPv6 UDP socket (required; -1: see below);
   *   tcp_fd  a bound, listening TCP socket on the same port (the core
   *           derives the stream endpoint tcp://h:p from udp://h:p), or -1
   *           for none (UDP only, as no_tcp; no_tcp also ignores it).
   * Both -1 (or udp_fd -1 with no_tcp), with dmq_uv_new() (the thread and
   * poll adapters offer no way to add a transport): no socket at all. The
   * node's only transports are those the host adds with
   * dmq_node_add_transport() before joining (dmq/host.h, e.g. the
   * Kamailio module's SIP mode), and cfg->advertise_addr, the address in
   * that transport's scheme ("host:10.0.0.11:5060"), is required
   * (DMQ_EINVAL without it). Join host addresses with dmq_node_join()
   * (dmq_uv_join() resolves socket addresses and DNS names only), and
   * close the host's transports after dmq_uv_close() has finished (the
   * runtime does not own them).
   * dmq_uv_options_init() sets both to -1. The runtime duplicates them
   * (F_DUPFD_CLOEXEC): the caller keeps its descriptors and may close them
   * once dmq_uv_new() returned (they share the socket, which is made
   * non-blocking and whose UDP buffers are raised to 4 MiB if smaller; do
   * not read from it meanwhile). The advertised address, unless advertise
   * or cfg->advertise_addr is set, is the UDP socket's getsockname(), which
   * must not be an unspecified address (0.0.0.0, ::). Errors (DMQ_EINVAL,
   * nothing is left open): an fd that is not open, not a socket, of the
   * wrong type, not bound, not listening (TCP), or TCP on another port
   * than UDP; the reason is logged through log_cb. */
  int use_fds;
  int udp_fd;
  int tcp_fd;
  /* Optional: dmq_uv_new() reports why it failed here (level
   * DMQ_LOG_ERROR, node NULL), e.g. "udp_fd: fd 7: not a socket". Only
   * used during dmq_uv_new(); set the node's own with
   * dmq_node_set_log_cb(). */
  dmq_log_cb log_cb;
  void *log_ud;
} dmq_uv_options_t;

/* Use dmq_uv_options_init(): it passes the caller's sizeof. DMQ_EINVAL for
 * NULL or a size below the 0.3.0 layout; at most size bytes written. */
DMQ_EXTERN int dmq_uv_options_init_sized(dmq_uv_options_t *o, size_t size);
/* Fill o with the defaults (bind and advertise NULL, TCP on, dns_refresh_ms
 * 30000, use_fds 0, udp_fd and tcp_fd -1, no log_cb) and set o->size. Required
 * before filling in the fields: an options struct with size 0 is refused with
 * DMQ_EINVAL. */
static inline int dmq_uv_options_init(dmq_uv_options_t *o) {
  return dmq_uv_options_init_sized(o, sizeof *o);
}

#ifdef __cplusplus
}
#endif
#endif
