/* Test helpers for sealed packets (src/seal.h), shared by the unit tests
 * (tests/unit/test_seal.c) and the fuzz targets (tests/fuzz/fuzz_seal.c,
 * fuzz_world.h): the allocator of a sealing state made outside a node, and
 * sealing a packet that dmq__enc_begin_sealed() began (the sealed header's
 * offset read from the envelope). Header only; no assertions of its own, so
 * that cmocka tests and fuzz targets check the results their own way.
 */
#ifndef DMQ_TESTS_SEAL_UTIL_H
#define DMQ_TESTS_SEAL_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "seal.h"
#include "wire.h"

static inline void *seal_util_malloc(size_t n, void *ud) {
  (void)ud;
  return malloc(n);
}

static inline void *seal_util_realloc(void *p, size_t n, void *ud) {
  (void)ud;
  return realloc(p, n);
}

static inline void seal_util_free(void *p, void *ud) {
  (void)ud;
  free(p);
}

/* Plain libc hooks for dmq__seal_init() (dmq_alloc_init() leaves them for
 * dmq_node_new to fill in); LeakSanitizer watches what they allocate. */
static const dmq_alloc_t seal_util_alloc = {sizeof(dmq_alloc_t),
                                            seal_util_malloc, seal_util_realloc,
                                            seal_util_free, NULL};

/* Where the sealed header starts in a packet that dmq__enc_begin_sealed()
 * began: after the 4 envelope bytes and the label (length byte + label)
 * when the LABEL flag is set. */
static inline size_t seal_util_off(const uint8_t *pkt) {
  return 4 + ((pkt[3] & DMQ__WIRE_FLAG_LABEL) ? 1 + (size_t)pkt[4] : 0);
}

/* Seal in place the len bytes of buf (begun by dmq__enc_begin_sealed with
 * sealed room, ended by dmq__enc_end; DMQ__SEAL_TAG bytes of room after
 * them) with s on the datagram (stream 0) or stream path; *out gets the
 * sealed length. Returns dmq__seal_close()'s result. */
static inline int seal_util_close(dmq__seal_t *s, uint8_t *buf, size_t len,
                                  int stream, size_t *out) {
  return dmq__seal_close(s, buf, len, seal_util_off(buf), stream, out);
}

#endif
