/* Options shared by the cluster benchmarks (cluster_bench: real nodes on
 * loopback; sim_bench: the simulator): the profile, the seed and the
 * phases of a run (joins staggered or in a burst, settling, steady state).
 * Header-only, on benchopt.h. */
#ifndef DMQ_BENCH_BENCHCLUSTER_H
#define DMQ_BENCH_BENCHCLUSTER_H

#include <stdint.h>
#include <string.h>

#include "benchopt.h"
#include "dmq/config.h"

typedef struct benchcluster_opts {
  dmq_profile_t profile;
  const char *profile_name;
  uint64_t seed;       /* 0: the bench's default */
  uint64_t stagger_ms; /* between joins; 0 (--burst): all at once */
  double settle_s, steady_s;
} benchcluster_opts_t;

/* --burst: 1 if a was it (and it was taken), else 0. */
static inline int benchcluster_flag(const char *a, benchcluster_opts_t *c) {
  if (strcmp(a, "--burst") != 0)
    return 0;
  c->stagger_ms = 0;
  return 1;
}

/* --profile, --seed, --stagger, --settle-s, --steady-s with value v: 1 if
 * taken, 0 if a is none of them, -1 for a bad value. */
static inline int benchcluster_value(const char *a, const char *v,
                                     benchcluster_opts_t *c) {
  if (strcmp(a, "--profile") == 0) {
    if (dmq_profile_from_name(v, &c->profile) != 0)
      return -1;
    c->profile_name = dmq_profile_name(c->profile);
  } else if (strcmp(a, "--seed") == 0) {
    if (benchopt_parse_u64_dec(v, &c->seed) != 0 || c->seed == 0)
      return -1;
  } else if (strcmp(a, "--stagger") == 0) {
    if (benchopt_parse_u64_dec(v, &c->stagger_ms) != 0 ||
        c->stagger_ms > 3600000)
      return -1;
  } else if (strcmp(a, "--settle-s") == 0) {
    if (benchopt_parse_double(v, &c->settle_s) != 0 || c->settle_s < 0)
      return -1;
  } else if (strcmp(a, "--steady-s") == 0) {
    if (benchopt_parse_double(v, &c->steady_s) != 0 || c->steady_s <= 0)
      return -1;
  } else {
    return 0;
  }
  return 1;
}

#endif
