/* Unit-test allocator hooks (dmq_alloc_t) that count live blocks and live
 * bytes and can fail the n-th allocation, for leak checks, memory bounds
 * and allocation-failure loops. Every block carries its size in a header
 * of COUNTING_HDR bytes (16 keeps the alignment malloc gives).
 * Header-only: each unit test is its own program. */
#ifndef DMQ_TESTS_COUNTING_ALLOC_H
#define DMQ_TESTS_COUNTING_ALLOC_H

#include <stdlib.h>
#include <string.h>

#define COUNTING_HDR 16

typedef struct counting {
  long live;    /* blocks allocated and not yet freed */
  long calls;   /* malloc + realloc calls so far */
  long fail_at; /* fail the n-th allocation (1-based); 0 = never */
  size_t bytes; /* bytes in live blocks */
  long failed;  /* allocations failed on purpose */
} counting_t;

static inline void *c_malloc(size_t s, void *ud) {
  counting_t *c = ud;
  if (++c->calls == c->fail_at) {
    c->failed++;
    return NULL;
  }
  unsigned char *p = malloc(COUNTING_HDR + s);
  if (p == NULL)
    return NULL;
  memcpy(p, &s, sizeof s);
  c->live++;
  c->bytes += s;
  return p + COUNTING_HDR;
}

static inline void c_free(void *q, void *ud) {
  counting_t *c = ud;
  if (q == NULL)
    return;
  unsigned char *p = (unsigned char *)q - COUNTING_HDR;
  size_t s;
  memcpy(&s, p, sizeof s);
  c->live--;
  c->bytes -= s;
  free(p);
}

static inline void *c_realloc(void *q, size_t s, void *ud) {
  counting_t *c = ud;
  if (q == NULL)
    return c_malloc(s, ud);
  if (++c->calls == c->fail_at) {
    c->failed++;
    return NULL;
  }
  unsigned char *p = (unsigned char *)q - COUNTING_HDR;
  size_t old;
  memcpy(&old, p, sizeof old);
  unsigned char *np = realloc(p, COUNTING_HDR + s);
  if (np == NULL)
    return NULL;
  memcpy(np, &s, sizeof s);
  c->bytes = c->bytes - old + s;
  return np + COUNTING_HDR;
}

#endif
