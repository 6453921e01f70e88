/* libdmq - open-addressing hash tables with linear probing: a power-of-two
 * array of element pointers (NULL = empty), each element at or after its
 * home slot (hash & mask). Used by the member index (members.c) and
 * delivery's message id map (delivery/outcome.c). */
#ifndef DMQ_UTIL_OAMAP_H
#define DMQ_UTIL_OAMAP_H

#include <stddef.h>
#include <stdint.h>

/* Open addressing with linear probing (the member index, delivery's id
 * table): empty slot i of table `slots` (capacity mask + 1, elements of
 * pointer type `type`) and shift the rest of its probe chain back, so that
 * every entry stays reachable from its home slot. HOME is the home slot of
 * the entry `c` (the macro declares c). */
#define DMQ__OA_REMOVE(type, slots, mask, i, HOME)                             \
  do {                                                                         \
    uint32_t oa_i_ = (i);                                                      \
    int oa_more_ = 1;                                                          \
    while (oa_more_) {                                                         \
      (slots)[oa_i_] = NULL;                                                   \
      uint32_t oa_k_ = oa_i_;                                                  \
      for (;;) {                                                               \
        oa_k_ = (oa_k_ + 1) & (mask);                                          \
        type c = (slots)[oa_k_];                                               \
        if (c == NULL) {                                                       \
          oa_more_ = 0;                                                        \
          break;                                                               \
        }                                                                      \
        uint32_t oa_h_ = (HOME);                                               \
        /* c may move to slot i unless its home is cyclically in (i, k] */     \
        if ((oa_i_ <= oa_k_) ? (oa_h_ <= oa_i_ || oa_h_ > oa_k_)               \
                             : (oa_h_ <= oa_i_ && oa_h_ > oa_k_)) {            \
          (slots)[oa_i_] = c;                                                  \
          oa_i_ = oa_k_;                                                       \
          break;                                                               \
        }                                                                      \
      }                                                                        \
    }                                                                          \
  } while (0)

#endif
