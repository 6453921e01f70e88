/* libdmq - fixed-size blocks carved from chunks (see slab.h). */
#include <errno.h>
#include <string.h>

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

#include "util/slab.h"

#define SLAB_ALIGN 16u

/* Under AddressSanitizer, block headers and free blocks are poisoned, so
 * that an overrun into the next block or a use after dmq__slab_put is
 * reported as it was when every block was its own malloc. */
#if defined(__SANITIZE_ADDRESS__)
#define SLAB_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLAB_ASAN 1
#endif
#endif
#ifdef SLAB_ASAN
#include <sanitizer/asan_interface.h>
#define SLAB_POISON(p, len) ASAN_POISON_MEMORY_REGION((p), (len))
#define SLAB_UNPOISON(p, len) ASAN_UNPOISON_MEMORY_REGION((p), (len))
#else
#define SLAB_POISON(p, len) ((void)(p), (void)(len))
#define SLAB_UNPOISON(p, len) ((void)(p), (void)(len))
#endif

/* A chunk: this header, then blocks. A block's first 16 bytes hold the
 * chunk's address; what the caller gets starts after them. Free blocks are
 * linked through the word after the header; blocks never handed out are
 * the ones from `fresh` on (no pass over a new chunk to link them). */
struct dmq__slab_chunk {
  dmq__slab_chunk_t *prev, *next;   /* on the slab's avail list */
  dmq__slab_chunk_t *aprev, *anext; /* on the slab's list of all chunks */
  void *free;                       /* freed blocks (block addresses) */
  uint8_t *fresh, *end;             /* never handed out: [fresh, end) */
  size_t used;
  size_t bytes;
  uint8_t listed;
  uint8_t idle; /* had nothing in use at the last dmq__slab_trim */
};

#define SLAB_HDR                                                               \
  ((sizeof(dmq__slab_chunk_t) + SLAB_ALIGN - 1) & ~(size_t)(SLAB_ALIGN - 1))

void dmq__slab_init(dmq__slab_t *s, size_t size) {
  memset(s, 0, sizeof(*s));
  size_t stride =
      SLAB_ALIGN + ((size + SLAB_ALIGN - 1) & ~(size_t)(SLAB_ALIGN - 1));
  s->size = (uint32_t)stride;
  s->next_bytes = (uint32_t)(SLAB_HDR + DMQ__SLAB_FIRST_BLOCKS * stride);
}

static void slab_link(dmq__slab_t *s, dmq__slab_chunk_t *c) {
  c->prev = NULL;
  c->next = s->avail;
  if (s->avail != NULL)
    s->avail->prev = c;
  s->avail = c;
  c->listed = 1;
}

static void slab_unlink(dmq__slab_t *s, dmq__slab_chunk_t *c) {
  if (c->prev != NULL)
    c->prev->next = c->next;
  else
    s->avail = c->next;
  if (c->next != NULL)
    c->next->prev = c->prev;
  c->prev = c->next = NULL;
  c->listed = 0;
}

/* Fault the chunk's whole pages in with one call. Best effort: an older
 * kernel (EINVAL) or another system leaves them to fault on first use. */
static void slab_populate(void *p, size_t len) {
#if defined(__linux__)
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
  static int unsupported;
  long pg = sysconf(_SC_PAGESIZE);
  if (unsupported || pg <= 0)
    return;
  uintptr_t a = ((uintptr_t)p + (uintptr_t)pg - 1) & ~(uintptr_t)(pg - 1);
  uintptr_t e = ((uintptr_t)p + len) & ~(uintptr_t)(pg - 1);
  if (e > a && madvise((void *)a, e - a, MADV_POPULATE_WRITE) != 0 &&
      errno == EINVAL)
    unsupported = 1;
#else
  (void)p;
  (void)len;
#endif
}

static dmq__slab_chunk_t *slab_grow(dmq_node_t *n, dmq__slab_t *s) {
  size_t bytes = s->next_bytes;
  dmq__slab_chunk_t *c = dmq__malloc(n, bytes);
  if (c == NULL)
    return NULL;
  slab_populate(c, bytes);
  memset(c, 0, sizeof(*c));
  c->bytes = bytes;
  c->fresh = (uint8_t *)c + SLAB_HDR;
  c->end = c->fresh + (bytes - SLAB_HDR) / s->size * s->size;
  if (s->next_bytes < DMQ__SLAB_MAX_CHUNK)
    s->next_bytes = s->next_bytes * 2 < DMQ__SLAB_MAX_CHUNK
                        ? s->next_bytes * 2
                        : DMQ__SLAB_MAX_CHUNK;
  SLAB_POISON(c->fresh, (size_t)(c->end - c->fresh));
  s->nchunks++;
  s->held += bytes;
  c->anext = s->all;
  if (s->all != NULL)
    s->all->aprev = c;
  s->all = c;
  slab_link(s, c);
  return c;
}

void *dmq__slab_get(dmq_node_t *n, dmq__slab_t *s) {
  dmq__slab_chunk_t *c = s->avail;
  if (c == NULL && (c = slab_grow(n, s)) == NULL)
    return NULL;
  uint8_t *blk;
  if (c->free != NULL) {
    blk = c->free;
    SLAB_UNPOISON(blk + SLAB_ALIGN, s->size - SLAB_ALIGN);
    memcpy(&c->free, blk + SLAB_ALIGN, sizeof(void *));
  } else {
    blk = c->fresh;
    c->fresh += s->size;
    SLAB_UNPOISON(blk, s->size);
    memcpy(blk, &c, sizeof(c));
    SLAB_POISON(blk, SLAB_ALIGN);
  }
  c->used++;
  c->idle = 0;
  if (c->free == NULL && c->fresh == c->end)
    slab_unlink(s, c);
  s->used++;
  return blk + SLAB_ALIGN;
}

void dmq__slab_put(dmq__slab_t *s, void *b) {
  if (b == NULL)
    return;
  uint8_t *blk = (uint8_t *)b - SLAB_ALIGN;
  dmq__slab_chunk_t *c;
  SLAB_UNPOISON(blk, SLAB_ALIGN);
  memcpy(&c, blk, sizeof(c));
  SLAB_POISON(blk, SLAB_ALIGN);
  memcpy(blk + SLAB_ALIGN, &c->free, sizeof(void *));
  SLAB_POISON(blk + SLAB_ALIGN, s->size - SLAB_ALIGN);
  c->free = blk;
  s->used--;
  c->used--;
  if (!c->listed)
    slab_link(s, c);
}

static void slab_release(dmq_node_t *n, dmq__slab_t *s, dmq__slab_chunk_t *c) {
  if (c->listed)
    slab_unlink(s, c);
  if (c->aprev != NULL)
    c->aprev->anext = c->anext;
  else
    s->all = c->anext;
  if (c->anext != NULL)
    c->anext->aprev = c->aprev;
  s->nchunks--;
  s->held -= c->bytes;
  SLAB_UNPOISON(c, c->bytes);
  dmq__free(n, c);
}

void dmq__slab_trim(dmq_node_t *n, dmq__slab_t *s) {
  dmq__slab_chunk_t *c = s->all;
  while (c != NULL) {
    dmq__slab_chunk_t *nx = c->anext;
    if (c->used > 0)
      c->idle = 0;
    else if (c->idle)
      slab_release(n, s, c);
    else
      c->idle = 1;
    c = nx;
  }
  if (s->nchunks == 0) /* start small again */
    dmq__slab_init(s, s->size - SLAB_ALIGN);
}

void dmq__slab_free_all(dmq_node_t *n, dmq__slab_t *s) {
  dmq__slab_chunk_t *c = s->all;
  while (c != NULL) {
    dmq__slab_chunk_t *nx = c->anext;
    SLAB_UNPOISON(c, c->bytes);
    dmq__free(n, c);
    c = nx;
  }
  dmq__slab_init(s, s->size - SLAB_ALIGN);
}
