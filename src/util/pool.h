/* libdmq - a free list of same-size blocks (object pool).
 *
 * The link lives in a block's first word (blocks are reset or overwritten
 * when taken again). A pool keeps at most `max` blocks; beyond that they
 * go back to the node's allocator, which bounds memory after a burst. */
#ifndef DMQ_UTIL_POOL_H
#define DMQ_UTIL_POOL_H

#include <stdint.h>

#include "internal.h"

typedef struct dmq__pool {
  void *head;
  uint32_t n;
} dmq__pool_t;

/* A kept block, or NULL when the pool is empty (allocate one then). */
void *dmq__pool_get(dmq__pool_t *p);
/* Keep b for reuse, or free it when the pool already holds max blocks. */
void dmq__pool_put(dmq_node_t *n, dmq__pool_t *p, void *b, uint32_t max);
/* Free every kept block. */
void dmq__pool_drain(dmq_node_t *n, dmq__pool_t *p);

#endif
