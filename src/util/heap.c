/* libdmq - indexed binary min-heap of timers (see heap.h). */
#include "util/heap.h"

int dmq__heap_reserve(dmq_node_t *n, dmq__heap_t *h, uint32_t k,
                      uint32_t init_cap) {
  if (h->need + k > h->cap) {
    uint32_t nc = h->cap ? h->cap * 2 : init_cap;
    while (nc < h->need + k)
      nc *= 2;
    dmq__timer_t **nv = dmq__realloc(n, h->v, nc * sizeof(*nv));
    if (nv == NULL)
      return DMQ_ENOMEM;
    h->v = nv;
    h->cap = nc;
  }
  h->need += k;
  return 0;
}

void dmq__heap_release(dmq__heap_t *h, uint32_t k) {
  h->need -= k;
}

static void heap_swap(dmq__heap_t *h, uint32_t i, uint32_t j) {
  dmq__timer_t *t = h->v[i];
  h->v[i] = h->v[j];
  h->v[j] = t;
  h->v[i]->idx = i;
  h->v[j]->idx = j;
}

static void heap_up(dmq__heap_t *h, uint32_t i) {
  while (i > 0) {
    uint32_t p = (i - 1) / 2;
    if (h->v[p]->at <= h->v[i]->at)
      break;
    heap_swap(h, i, p);
    i = p;
  }
}

static void heap_down(dmq__heap_t *h, uint32_t i) {
  for (;;) {
    uint32_t l = 2 * i + 1, s = i;
    if (l < h->n && h->v[l]->at < h->v[s]->at)
      s = l;
    if (l + 1 < h->n && h->v[l + 1]->at < h->v[s]->at)
      s = l + 1;
    if (s == i)
      return;
    heap_swap(h, i, s);
    i = s;
  }
}

int dmq__heap_set(dmq__heap_t *h, dmq__timer_t *t, uint64_t at) {
  if (t->idx == DMQ__HEAP_NONE) {
    t->at = at;
    t->idx = h->n;
    h->v[h->n++] = t;
    heap_up(h, t->idx);
  } else {
    uint64_t old = t->at;
    t->at = at;
    if (at < old)
      heap_up(h, t->idx);
    else
      heap_down(h, t->idx);
  }
  return t->idx == 0;
}

void dmq__heap_del(dmq__heap_t *h, dmq__timer_t *t) {
  if (t->idx == DMQ__HEAP_NONE)
    return;
  uint32_t i = t->idx, last = h->n - 1;
  t->idx = DMQ__HEAP_NONE;
  h->n--;
  if (i == last)
    return;
  h->v[i] = h->v[last];
  h->v[i]->idx = i;
  heap_up(h, i);
  heap_down(h, h->v[i]->idx);
}

void dmq__heap_free(dmq_node_t *n, dmq__heap_t *h) {
  dmq__free(n, h->v);
  h->v = NULL;
  h->n = h->cap = h->need = 0;
}
