/* Unit-test allocator hooks (dmq_alloc_t) that count live blocks and can
 * fail the n-th allocation, for leak checks and allocation-failure loops.
 * Header-only: each unit test is its own program. */
#ifndef DMQ_TESTS_COUNTING_ALLOC_H
#define DMQ_TESTS_COUNTING_ALLOC_H

#include <stdlib.h>

typedef struct counting {
  long live;    /* blocks allocated and not yet freed */
  long calls;   /* malloc + realloc calls so far */
  long fail_at; /* fail the n-th allocation (1-based); 0 = never */
} counting_t;

static inline void *c_malloc(size_t s, void *ud) {
  counting_t *c = ud;
  if (++c->calls == c->fail_at)
    return NULL;
  void *p = malloc(s);
  if (p)
    c->live++;
  return p;
}

static inline void *c_realloc(void *p, size_t s, void *ud) {
  counting_t *c = ud;
  if (++c->calls == c->fail_at)
    return NULL;
  void *q = realloc(p, s);
  if (q && p == NULL)
    c->live++;
  return q;
}

static inline void c_free(void *p, void *ud) {
  counting_t *c = ud;
  if (p)
    c->live--;
  free(p);
}

#endif
