/* libdmq - what the thread and poll adapters share: loading their options
 * (a growable struct that embeds dmq_uv_options_t) and closing their
 * private loop. Internal; header-only, so that each adapter stays one
 * object. */
#ifndef DMQ_ADAPTER_COMMON_H
#define DMQ_ADAPTER_COMMON_H

#include <stdint.h>
#include <string.h>

#include <uv.h>

#include "dmq/uv_options.h"
#include "sized.h"

/* The caller's adapter options src (its `size` member first, at least min
 * bytes in its layout) over dst, which holds the defaults of the current
 * layout (cur bytes); dst's size is then cur. DMQ_EINVAL for NULL, a size
 * below min, or embedded uv options naming neither a bind address nor
 * host-opened sockets. */
static inline int dmq__adapter_options_load(void *dst, size_t cur,
                                            const void *src, size_t min,
                                            const dmq_uv_options_t *uv) {
  if (src == NULL)
    return DMQ_EINVAL;
  uint32_t size;
  memcpy(&size, src, sizeof(size));
  int rc = dmq__sized_in(dst, cur, src, size, min);
  size = (uint32_t)cur;
  memcpy(dst, &size, sizeof(size));
  if (rc == 0 && uv->bind == NULL && !uv->use_fds)
    rc = DMQ_EINVAL;
  return rc;
}

/* Run the loop until every handle has closed, then close it (creation
 * failed, or the runtime has closed). */
static inline void dmq__adapter_loop_finish(uv_loop_t *loop) {
  uv_run(loop, UV_RUN_DEFAULT);
  if (uv_loop_close(loop) != 0) {
    /* close callbacks queued by the last run: one more turn */
    uv_run(loop, UV_RUN_NOWAIT);
    (void)uv_loop_close(loop);
  }
}

#endif
