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
 * - Free blocks form one last-in first-out list, so the next block handed
 *   out is the one given back last, still in the cache. A get or a put is
 *   a pointer pop or push, as with the free lists this replaced.
 * - The chunks go back to the allocator, all together, when no block was
 *   in use at two dmq__slab_trim calls in a row and none was taken in
 *   between (the owner trims every second or so). A node that is never
 *   idle keeps what its largest backlog needed, which the queue limits
 *   bound; giving back single chunks would need a chunk lookup on every
 *   put, and that cost the sender 4 % at 100-byte messages (docs/design.md).
 *
 * Blocks carry no header; they are aligned as the allocator's blocks are,
 * up to 16 bytes (the chunk header and the stride are multiples of 16).
 * Not thread-safe: a slab belongs to one node. */
#ifndef DMQ_UTIL_SLAB_H
#define DMQ_UTIL_SLAB_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

#define DMQ__SLAB_FIRST_BLOCKS 4u
#define DMQ__SLAB_MAX_CHUNK (256u * 1024u)

typedef struct dmq__slab_chunk dmq__slab_chunk_t;

typedef struct dmq__slab {
  void *free;                /* blocks given back, linked by first word */
  uint8_t *fresh, *end;      /* never handed out, in the newest chunk */
  dmq__slab_chunk_t *chunks; /* every chunk held */
  uint32_t usable;           /* block size asked for, rounded up to 16 */
  uint32_t size;             /* block stride (ASan builds: + a redzone) */
  uint32_t nchunks;          /* chunks held */
  uint32_t next_bytes;       /* size of the next chunk */
  size_t used;               /* blocks handed out */
  size_t held;               /* bytes of chunks held */
  int idle;                  /* nothing in use at the last trim */
} dmq__slab_t;

/* A slab of blocks of at least `size` usable bytes (size > 0). */
void dmq__slab_init(dmq__slab_t *s, size_t size);
/* A block (contents undefined), or NULL when a new chunk was needed and
 * the allocator failed (counted as DMQ_DROP_NOMEM by dmq__malloc). */
void *dmq__slab_get(dmq_node_t *n, dmq__slab_t *s);
/* Give back a block from dmq__slab_get on the same slab. */
void dmq__slab_put(dmq__slab_t *s, void *b);
/* Give back every chunk when no block was in use at this call and the
 * previous one, and none was taken in between. */
void dmq__slab_trim(dmq_node_t *n, dmq__slab_t *s);
/* Free every chunk; blocks still out become invalid. */
void dmq__slab_free_all(dmq_node_t *n, dmq__slab_t *s);

#endif
