/* libdmq - receive buffers shared by the transports of a process.
 *
 * A transport needs a large buffer only for the duration of one read
 * callback (UDP: a recvmmsg batch, TCP: one read), and a process running
 * many nodes (a benchmark, a test, a host with several clusters) would
 * otherwise keep one per transport. Buffers are pooled per size: get()
 * takes a spare one or allocates, put() returns it; spares are freed when
 * the last transport detaches. Thread-safe (a mutex around the pool), so
 * nodes on different loops and threads may share it.
 */
#ifndef DMQ_TRANSPORTS_COMMON_RXBUF_H
#define DMQ_TRANSPORTS_COMMON_RXBUF_H

#include <stddef.h>

/* A transport starts / stops using the pool. */
void dmq__rxbuf_attach(void);
void dmq__rxbuf_detach(void);
/* A buffer of exactly size bytes, or NULL when out of memory. */
void *dmq__rxbuf_get(size_t size);
/* Give back a buffer from dmq__rxbuf_get(p's size). NULL is ignored. */
void dmq__rxbuf_put(void *p, size_t size);

#endif
