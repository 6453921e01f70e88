/* libdmq - fixed-size blocks carved from chunks (a slab allocator).
 *
 * Queued delivery takes an op, a queue entry and a payload block per
 * message and gives them back when the message is acknowledged. A slab
 * serves them from chunks it gets from the node's allocator:
 *
 * - No allocator call per block. The first chunk holds
 *   DMQ__SLAB_FIRST_BLOCKS blocks and each next one is twice as large, up
 *   to DMQ__SLAB_MAX_CHUNK bytes, so a node that sends little holds little
 *   and a busy one makes few allocator calls.
 * - A new chunk's pages are faulted in with one madvise(MADV_POPULATE_WRITE)
 *   call where the kernel has it (Linux 5.14+), instead of one page fault
 *   per page on first use. The first touch of a page costs 11-16 us on a
 *   virtual machine of the kind the benchmarks run on and 0.7 us populated
 *   (docs/design.md, "Where queued messages live"): a backlog that outgrows
 *   the memory already held must not cost more per message than sending.
 * - A chunk goes back to the allocator when it had no block in use at two
 *   dmq__slab_trim calls in a row (the owner calls it every second or so):
 *   memory follows a backlog down once it is gone, and a rate that empties
 *   and refills a chunk many times a second does not allocate it anew each
 *   time.
 *
 * Each block has a 16-byte header naming its chunk. Not thread-safe: a
 * slab belongs to one node. */
#ifndef DMQ_UTIL_SLAB_H
#define DMQ_UTIL_SLAB_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

#define DMQ__SLAB_FIRST_BLOCKS 4u
#define DMQ__SLAB_MAX_CHUNK (256u * 1024u)

typedef struct dmq__slab_chunk dmq__slab_chunk_t;

typedef struct dmq__slab {
  dmq__slab_chunk_t *avail; /* chunks with a free or never-used block */
  dmq__slab_chunk_t *all;   /* every chunk held */
  uint32_t size;            /* block stride: header + payload, 16-aligned */
  uint32_t nchunks;         /* chunks held */
  uint32_t next_bytes;      /* size of the next chunk */
  size_t used;              /* blocks handed out */
  size_t held;              /* bytes of chunks held */
} dmq__slab_t;

/* A slab of blocks of at least `size` usable bytes (size > 0). */
void dmq__slab_init(dmq__slab_t *s, size_t size);
/* A block (contents undefined), or NULL when a new chunk was needed and
 * the allocator failed (counted as DMQ_DROP_NOMEM by dmq__malloc). */
void *dmq__slab_get(dmq_node_t *n, dmq__slab_t *s);
/* Give back a block from dmq__slab_get on the same slab. */
void dmq__slab_put(dmq__slab_t *s, void *b);
/* Give back the chunks that had no block in use at this call and the
 * previous one. */
void dmq__slab_trim(dmq_node_t *n, dmq__slab_t *s);
/* Free every chunk; blocks still out become invalid. */
void dmq__slab_free_all(dmq_node_t *n, dmq__slab_t *s);

#endif
