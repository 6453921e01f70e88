/* libdmq - an indexed binary min-heap of timers.
 *
 * A timer is embedded in the object it belongs to and knows its position
 * in the heap, so that moving or removing it is O(log n) with no search.
 * Capacity is reserved when the owning object is accepted (reserve /
 * release), so that arming a timer never fails later. */
#ifndef DMQ_UTIL_HEAP_H
#define DMQ_UTIL_HEAP_H

#include <stdint.h>

#include "internal.h"

/* idx of a timer that is not armed */
#define DMQ__HEAP_NONE UINT32_MAX

typedef struct dmq__timer {
  uint64_t at;
  uint32_t idx; /* position in the heap, DMQ__HEAP_NONE when not armed */
  uint8_t kind; /* the owner's tag */
} dmq__timer_t;

typedef struct dmq__heap {
  dmq__timer_t **v;
  uint32_t n, cap;
  uint32_t need; /* reserved: timers that may be armed at once */
} dmq__heap_t;

/* Room for k more armed timers (capacity grows from init_cap, doubling).
 * 0 or DMQ_ENOMEM. */
int dmq__heap_reserve(dmq_node_t *n, dmq__heap_t *h, uint32_t k,
                      uint32_t init_cap);
void dmq__heap_release(dmq__heap_t *h, uint32_t k);
/* Arm (or move) t to fire at `at`; capacity was reserved. Returns 1 if t
 * is now the earliest timer. */
int dmq__heap_set(dmq__heap_t *h, dmq__timer_t *t, uint64_t at);
/* Disarm t (no-op if not armed). */
void dmq__heap_del(dmq__heap_t *h, dmq__timer_t *t);
/* The earliest timer, NULL if none. */
static inline dmq__timer_t *dmq__heap_top(const dmq__heap_t *h) {
  return h->n > 0 ? h->v[0] : NULL;
}
void dmq__heap_free(dmq_node_t *n, dmq__heap_t *h);

#endif
