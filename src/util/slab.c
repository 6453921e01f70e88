/* libdmq - fixed-size blocks carved from chunks (see slab.h). */
#include <string.h>

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

#include "util/slab.h"

#define SLAB_ALIGN 16u

/* Under AddressSanitizer each block is followed by a poisoned redzone of
 * SLAB_ALIGN bytes, and free blocks are poisoned, so that an overrun into
 * the next block or a use after dmq__slab_put is reported as it was when
 * every block was its own malloc. */
#if defined(__SANITIZE_ADDRESS__)
#define SLAB_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLAB_ASAN 1
#endif
#endif
#ifdef SLAB_ASAN
#include <sanitizer/asan_interface.h>
#define SLAB_REDZONE SLAB_ALIGN
#define SLAB_POISON(p, len) ASAN_POISON_MEMORY_REGION((p), (len))
#define SLAB_UNPOISON(p, len) ASAN_UNPOISON_MEMORY_REGION((p), (len))
#else
#define SLAB_REDZONE 0u
#define SLAB_POISON(p, len) ((void)(p), (void)(len))
#define SLAB_UNPOISON(p, len) ((void)(p), (void)(len))
#endif

/* A chunk: this header, then blocks. */
struct dmq__slab_chunk {
  dmq__slab_chunk_t *next;
  size_t bytes;
};

#define SLAB_HDR                                                               \
  ((sizeof(dmq__slab_chunk_t) + SLAB_ALIGN - 1) & ~(size_t)(SLAB_ALIGN - 1))

void dmq__slab_init(dmq__slab_t *s, size_t size) {
  memset(s, 0, sizeof(*s));
  s->usable = (uint32_t)((size + SLAB_ALIGN - 1) & ~(size_t)(SLAB_ALIGN - 1));
  s->size = s->usable + SLAB_REDZONE;
  s->next_bytes = (uint32_t)(SLAB_HDR + DMQ__SLAB_FIRST_BLOCKS * s->size);
}

/* Fault the chunk's whole pages in with one call. Best effort: an older
 * kernel (EINVAL) or another system leaves them to fault on first use.
 * Nothing is cached between calls: nodes may run on different threads. */
static void slab_populate(void *p, size_t len) {
#if defined(__linux__)
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
  long pg = sysconf(_SC_PAGESIZE);
  if (pg <= 0)
    return;
  uintptr_t a = ((uintptr_t)p + (uintptr_t)pg - 1) & ~(uintptr_t)(pg - 1);
  uintptr_t e = ((uintptr_t)p + len) & ~(uintptr_t)(pg - 1);
  if (e > a) /* slabs grow a few times per backlog: no need to remember */
    (void)madvise((void *)a, e - a, MADV_POPULATE_WRITE);
#else
  (void)p;
  (void)len;
#endif
}

static int slab_grow(dmq_node_t *n, dmq__slab_t *s) {
  size_t bytes = s->next_bytes;
  dmq__slab_chunk_t *c = dmq__malloc(n, bytes);
  if (c == NULL)
    return DMQ_ENOMEM;
  slab_populate(c, bytes);
  c->bytes = bytes;
  c->next = s->chunks;
  s->chunks = c;
  s->fresh = (uint8_t *)c + SLAB_HDR;
  s->end = s->fresh + (bytes - SLAB_HDR) / s->size * s->size;
  SLAB_POISON(s->fresh, (size_t)(s->end - s->fresh));
  if (s->next_bytes < DMQ__SLAB_MAX_CHUNK)
    s->next_bytes = s->next_bytes * 2 < DMQ__SLAB_MAX_CHUNK
                        ? s->next_bytes * 2
                        : DMQ__SLAB_MAX_CHUNK;
  s->nchunks++;
  s->held += bytes;
  return 0;
}

void *dmq__slab_get(dmq_node_t *n, dmq__slab_t *s) {
  uint8_t *blk = s->free;
  if (blk != NULL) {
    SLAB_UNPOISON(blk, s->usable);
    memcpy(&s->free, blk, sizeof(void *));
  } else {
    if (s->fresh == s->end && slab_grow(n, s) != 0)
      return NULL;
    blk = s->fresh;
    s->fresh += s->size;
    SLAB_UNPOISON(blk, s->usable);
  }
  s->used++;
  s->idle = 0;
  return blk;
}

void dmq__slab_put(dmq__slab_t *s, void *b) {
  if (b == NULL)
    return;
  memcpy(b, &s->free, sizeof(void *));
  SLAB_POISON(b, s->usable);
  s->free = b;
  s->used--;
}

void dmq__slab_free_all(dmq_node_t *n, dmq__slab_t *s) {
  dmq__slab_chunk_t *c = s->chunks;
  while (c != NULL) {
    dmq__slab_chunk_t *nx = c->next;
    SLAB_UNPOISON(c, c->bytes);
    dmq__free(n, c);
    c = nx;
  }
  dmq__slab_init(s, s->usable);
}

void dmq__slab_trim(dmq_node_t *n, dmq__slab_t *s) {
  if (s->used > 0 || s->nchunks == 0)
    s->idle = 0;
  else if (s->idle)
    dmq__slab_free_all(n, s);
  else
    s->idle = 1;
}
