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
} dmq_uv_options_t;

/* Use dmq_uv_options_init(): it passes the caller's sizeof. DMQ_EINVAL for
 * NULL or a size below the 0.3.0 layout; at most size bytes written. */
DMQ_EXTERN int dmq_uv_options_init_sized(dmq_uv_options_t *o, size_t size);
/* Fill o with the defaults (bind and advertise NULL, TCP on, dns_refresh_ms
 * 30000) and set o->size. Required before filling in the fields: an options
 * struct with size 0 is refused with DMQ_EINVAL. */
static inline int dmq_uv_options_init(dmq_uv_options_t *o) {
  return dmq_uv_options_init_sized(o, sizeof *o);
}

#ifdef __cplusplus
}
#endif
#endif
