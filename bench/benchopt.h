/* Command-line parsing shared by the benchmarks (header-only: every
 * bench/<name>.c is its own program, see bench/CMakeLists.txt).
 *
 * benchopt_parse_args() walks argv: a word the bench's flag() takes (an
 * option without a value) is done; -h / --help print the usage and exit 0;
 * any other word takes the next one as its value and goes to the bench's
 * value(). A word value() refuses, or one with no next word, is reported
 * as "<prog>: bad option <word> [<value>]" followed by the usage, and the
 * parse returns -1. */
#ifndef DMQ_BENCH_BENCHOPT_H
#define DMQ_BENCH_BENCHOPT_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct benchopt_spec {
  const char *prog;                 /* name in the error message */
  void (*usage)(const char *argv0); /* prints to stderr */
  /* 1 if `a` is a flag of the bench (and it took it), else 0 */
  int (*flag)(const char *a, void *ctx);
  /* option `a` with value `v`: 0, or -1 if unknown or v is bad */
  int (*value)(const char *a, const char *v, void *ctx);
} benchopt_spec_t;

static inline int benchopt_parse_args(int argc, char **argv,
                                      const benchopt_spec_t *spec, void *ctx) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (spec->flag(a, ctx))
      continue;
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      spec->usage(argv[0]);
      exit(0);
    }
    if (v != NULL) {
      i++;
      if (spec->value(a, v, ctx) == 0)
        continue;
    }
    fprintf(stderr, "%s: bad option %s%s%s\n", spec->prog, a, v ? " " : "",
            v ? v : "");
    spec->usage(argv[0]);
    return -1;
  }
  return 0;
}

/* strtoull(digits, base) that must take all of s: 0, or -1 if s is not a
 * number, does not fit, or (minus_ok 0) starts with '-'. */
static inline int benchopt_u64_(const char *s, const char *digits, int base,
                                int minus_ok, uint64_t *out) {
  char *end = NULL;
  errno = 0;
  uint64_t v = strtoull(digits, &end, base);
  if (errno != 0 || end == s || *end != '\0' || (!minus_ok && s[0] == '-'))
    return -1;
  *out = v;
  return 0;
}

/* Unsigned number as C writes it (0x hex, 0 octal, else decimal); no
 * minus sign. */
static inline int benchopt_parse_u64(const char *s, uint64_t *out) {
  return benchopt_u64_(s, s, 0, 0, out);
}

/* Unsigned number in decimal, or hex after 0x; a minus sign is taken as
 * strtoull takes it (negated modulo 2^64). */
static inline int benchopt_parse_u64_dec(const char *s, uint64_t *out) {
  int hex = s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
  return benchopt_u64_(s, hex ? s + 2 : s, hex ? 16 : 10, 1, out);
}

static inline int benchopt_parse_double(const char *s, double *out) {
  char *end = NULL;
  errno = 0;
  double v = strtod(s, &end);
  if (errno != 0 || end == s || *end != '\0')
    return -1;
  *out = v;
  return 0;
}

/* Comma-separated list: item(tok, k, ctx) for the k-th item. Returns the
 * count, or -1 if s is longer than 511 bytes, has no item or more than
 * max, or item() returns non-zero. */
static inline int benchopt_parse_list(const char *s, size_t max,
                                      int (*item)(const char *tok, size_t k,
                                                  void *ctx),
                                      void *ctx) {
  char buf[512];
  if (strlen(s) >= sizeof(buf))
    return -1;
  strcpy(buf, s);
  size_t n = 0;
  char *save = NULL;
  for (char *tok = strtok_r(buf, ",", &save); tok != NULL;
       tok = strtok_r(NULL, ",", &save)) {
    if (n == max || item(tok, n, ctx) != 0)
      return -1;
    n++;
  }
  return n > 0 ? (int)n : -1;
}

static inline int benchopt_double_item_(const char *tok, size_t k, void *ctx) {
  return benchopt_parse_double(tok, &((double *)ctx)[k]);
}

/* Comma-separated doubles into out[0..max); the count or -1. */
static inline int benchopt_parse_doubles(const char *s, double *out,
                                         size_t max) {
  return benchopt_parse_list(s, max, benchopt_double_item_, out);
}

#endif
