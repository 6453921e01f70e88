/* libdmq - free lists of same-size blocks (see pool.h). */
#include <string.h>

#include "util/pool.h"

void *dmq__pool_get(dmq__pool_t *p) {
  void *b = p->head;
  if (b != NULL) {
    memcpy(&p->head, b, sizeof(void *));
    p->n--;
  }
  return b;
}

void dmq__pool_put(dmq_node_t *n, dmq__pool_t *p, void *b, uint32_t max) {
  if (p->n >= max) {
    dmq__free(n, b);
    return;
  }
  memcpy(b, &p->head, sizeof(void *));
  p->head = b;
  p->n++;
}

void dmq__pool_drain(dmq_node_t *n, dmq__pool_t *p) {
  void *b;
  while ((b = dmq__pool_get(p)) != NULL)
    dmq__free(n, b);
}
