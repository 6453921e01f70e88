/* libdmq - the node's private PRNG (xoshiro256**, seeded with splitmix64).
 *
 * The core never calls rand(): every random choice (probe order, gossip
 * targets, jitter) comes from this generator, seeded from the config, so a
 * simulated cluster is a pure function of its seed. */
#include "internal.h"

static uint64_t rng_splitmix(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void dmq__rng_seed(dmq__rng_t *r, uint64_t seed) {
  for (int i = 0; i < 4; i++)
    r->s[i] = rng_splitmix(&seed);
}

static inline uint64_t rng_rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

uint64_t dmq__rng_next(dmq__rng_t *r) {
  uint64_t *s = r->s;
  uint64_t result = rng_rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rng_rotl(s[3], 45);
  return result;
}

uint64_t dmq__rng_below(dmq__rng_t *r, uint64_t n) {
  /* Lemire's multiply-shift; the tiny bias is irrelevant for our uses. */
  return (uint64_t)(((unsigned __int128)dmq__rng_next(r) * n) >> 64);
}
