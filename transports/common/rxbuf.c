/* libdmq - receive buffers shared by the transports of a process
 * (see rxbuf.h). */
#include <stdlib.h>

#include <uv.h>

#include "common/rxbuf.h"

/* Buffer sizes pooled at once (UDP batch, TCP read): others are plain
 * malloc/free. */
#define RXBUF_CLASSES 4
/* Spare buffers kept per size: one per thread reading at the same time. */
#define RXBUF_SPARES 2

typedef struct rxbuf_class {
  size_t size; /* 0 = unused slot */
  void *spare[RXBUF_SPARES];
  unsigned nspare;
} rxbuf_class_t;

static uv_once_t rxbuf_once = UV_ONCE_INIT;
static uv_mutex_t rxbuf_mu;
static unsigned long rxbuf_users;
static rxbuf_class_t rxbuf_classes[RXBUF_CLASSES];

static void rxbuf_init(void) {
  if (uv_mutex_init(&rxbuf_mu) != 0)
    abort(); /* no way to report it; libuv aborts on lock failures too */
}

static rxbuf_class_t *rxbuf_class(size_t size, int add) {
  rxbuf_class_t *freeslot = NULL;
  for (int i = 0; i < RXBUF_CLASSES; i++) {
    if (rxbuf_classes[i].size == size)
      return &rxbuf_classes[i];
    if (rxbuf_classes[i].size == 0 && freeslot == NULL)
      freeslot = &rxbuf_classes[i];
  }
  if (add && freeslot != NULL)
    freeslot->size = size;
  return add ? freeslot : NULL;
}

void dmq__rxbuf_attach(void) {
  uv_once(&rxbuf_once, rxbuf_init);
  uv_mutex_lock(&rxbuf_mu);
  rxbuf_users++;
  uv_mutex_unlock(&rxbuf_mu);
}

void dmq__rxbuf_detach(void) {
  void *gone[RXBUF_CLASSES * RXBUF_SPARES];
  unsigned ngone = 0;
  uv_once(&rxbuf_once, rxbuf_init);
  uv_mutex_lock(&rxbuf_mu);
  if (rxbuf_users > 0 && --rxbuf_users == 0) {
    for (int i = 0; i < RXBUF_CLASSES; i++) {
      rxbuf_class_t *c = &rxbuf_classes[i];
      while (c->nspare > 0)
        gone[ngone++] = c->spare[--c->nspare];
      c->size = 0;
    }
  }
  uv_mutex_unlock(&rxbuf_mu);
  for (unsigned i = 0; i < ngone; i++)
    free(gone[i]);
}

void *dmq__rxbuf_get(size_t size) {
  void *p = NULL;
  uv_once(&rxbuf_once, rxbuf_init);
  uv_mutex_lock(&rxbuf_mu);
  rxbuf_class_t *c = rxbuf_class(size, 0);
  if (c != NULL && c->nspare > 0)
    p = c->spare[--c->nspare];
  uv_mutex_unlock(&rxbuf_mu);
  return p != NULL ? p : malloc(size);
}

void dmq__rxbuf_put(void *p, size_t size) {
  if (p == NULL)
    return;
  uv_once(&rxbuf_once, rxbuf_init);
  uv_mutex_lock(&rxbuf_mu);
  rxbuf_class_t *c = rxbuf_users > 0 ? rxbuf_class(size, 1) : NULL;
  if (c != NULL && c->nspare < RXBUF_SPARES) {
    c->spare[c->nspare++] = p;
    p = NULL;
  }
  uv_mutex_unlock(&rxbuf_mu);
  free(p);
}
