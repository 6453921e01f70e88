/* Stand-alone driver for the libFuzzer targets in tests/fuzz/fuzz_*.c, used
 * when the compiler has no -fsanitize=fuzzer (gcc) or DMQ_FUZZ is off.
 *
 *   fuzz_x FILE_OR_DIR...   run LLVMFuzzerTestOneInput once per file
 *                           (directories: each regular file inside)
 *   fuzz_x                  run it over a fixed, deterministic pseudo-random
 *                           corpus of DMQ_FUZZ_ITERATIONS inputs
 *
 * The generated corpus mixes raw random bytes with mutations of earlier
 * inputs and of the optional seeds a target may provide by defining
 *
 *   size_t dmq_fuzz_seeds(const uint8_t *const **bufs, const size_t **lens);
 *
 * (returns the number of seeds), so that inputs get past magic bytes. A
 * target whose inputs are expensive (a whole cluster per input) may define
 *
 *   unsigned dmq_fuzz_iterations(void);
 *
 * to generate fewer than DMQ_FUZZ_ITERATIONS. The optional libFuzzer hook
 * LLVMFuzzerInitialize() is honoured as well.
 */
#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DMQ_FUZZ_ITERATIONS 20000
#define DMQ_FUZZ_SEED 0x646d712d66757a7aULL /* "dmq-fuzz" */
#define FUZZ_MAX_INPUT 4096
#define FUZZ_POOL 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));
size_t dmq_fuzz_seeds(const uint8_t *const **bufs, const size_t **lens)
    __attribute__((weak));
unsigned dmq_fuzz_iterations(void) __attribute__((weak));

static uint64_t rng_state = DMQ_FUZZ_SEED;

static uint64_t rng_next(void) { /* splitmix64 */
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static size_t rng_below(size_t n) {
  return n ? (size_t)(rng_next() % n) : 0;
}

/* Run one input from a private heap copy so that ASan catches over-reads. */
static void run_one(const uint8_t *data, size_t size) {
  uint8_t *copy = malloc(size ? size : 1);
  if (!copy) {
    fprintf(stderr, "standalone_main: out of memory\n");
    exit(2);
  }
  if (size)
    memcpy(copy, data, size);
  LLVMFuzzerTestOneInput(copy, size);
  free(copy);
}

static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    return 1;
  }
  size_t cap = 4096, len = 0;
  uint8_t *buf = malloc(cap);
  size_t n;
  while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
    len += n;
    if (len == cap) {
      uint8_t *nb = realloc(buf, cap *= 2);
      if (!nb) {
        free(buf);
        buf = NULL;
      } else {
        buf = nb;
      }
    }
  }
  fclose(f);
  if (!buf) {
    fprintf(stderr, "standalone_main: out of memory reading %s\n", path);
    return 1;
  }
  run_one(buf, len);
  free(buf);
  return 0;
}

static int run_path(const char *path, unsigned *count) {
  struct stat st;
  if (stat(path, &st) != 0) {
    perror(path);
    return 1;
  }
  if (!S_ISDIR(st.st_mode)) {
    ++*count;
    return run_file(path);
  }
  DIR *d = opendir(path);
  if (!d) {
    perror(path);
    return 1;
  }
  int rc = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    size_t need = strlen(path) + strlen(e->d_name) + 2;
    char *p = malloc(need);
    if (!p) {
      rc = 1;
      break;
    }
    snprintf(p, need, "%s/%s", path, e->d_name);
    if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
      ++*count;
      rc |= run_file(p);
    }
    free(p);
  }
  closedir(d);
  return rc;
}

typedef struct {
  uint8_t data[FUZZ_MAX_INPUT];
  size_t len;
} input_t;

static void mutate(input_t *in) {
  size_t rounds = 1 + rng_below(8);
  for (size_t r = 0; r < rounds; r++) {
    switch (rng_below(7)) {
    case 0: /* flip a bit */
      if (in->len)
        in->data[rng_below(in->len)] ^= (uint8_t)(1u << rng_below(8));
      break;
    case 1: /* random byte */
      if (in->len)
        in->data[rng_below(in->len)] = (uint8_t)rng_next();
      break;
    case 2: { /* interesting byte */
      static const uint8_t interesting[] = {
          0x00, 0x01, 0x7f, 0x80, 0xc0, 0xc1, 0xcc, 0xcd, 0xce, 0xcf,
          0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0x90, 0x9f, 0xff};
      if (in->len)
        in->data[rng_below(in->len)] =
            interesting[rng_below(sizeof interesting)];
      break;
    }
    case 3: /* truncate */
      in->len = rng_below(in->len + 1);
      break;
    case 4: { /* insert random bytes */
      size_t n = 1 + rng_below(16);
      if (in->len + n > FUZZ_MAX_INPUT)
        break;
      size_t at = rng_below(in->len + 1);
      memmove(in->data + at + n, in->data + at, in->len - at);
      for (size_t i = 0; i < n; i++)
        in->data[at + i] = (uint8_t)rng_next();
      in->len += n;
      break;
    }
    case 5: { /* erase a range */
      if (!in->len)
        break;
      size_t at = rng_below(in->len);
      size_t n = 1 + rng_below(in->len - at);
      memmove(in->data + at, in->data + at + n, in->len - at - n);
      in->len -= n;
      break;
    }
    default: { /* duplicate a range */
      if (!in->len)
        break;
      size_t at = rng_below(in->len);
      size_t n = 1 + rng_below(in->len - at);
      if (in->len + n > FUZZ_MAX_INPUT)
        break;
      memmove(in->data + at + n, in->data + at, in->len - at);
      in->len += n;
      break;
    }
    }
  }
}

static void run_generated(void) {
  static input_t pool[FUZZ_POOL];
  static input_t cur;
  size_t pool_len = 0;

  const uint8_t *const *seed_bufs = NULL;
  const size_t *seed_lens = NULL;
  size_t n_seeds = dmq_fuzz_seeds ? dmq_fuzz_seeds(&seed_bufs, &seed_lens) : 0;

  for (size_t i = 0; i < n_seeds && i < FUZZ_POOL; i++) {
    size_t len = seed_lens[i] < FUZZ_MAX_INPUT ? seed_lens[i] : FUZZ_MAX_INPUT;
    memcpy(pool[pool_len].data, seed_bufs[i], len);
    pool[pool_len].len = len;
    run_one(pool[pool_len].data, len);
    pool_len++;
  }

  unsigned iterations =
      dmq_fuzz_iterations ? dmq_fuzz_iterations() : DMQ_FUZZ_ITERATIONS;
  for (unsigned it = 0; it < iterations; it++) {
    size_t kind = rng_below(4);
    if (kind == 0 || pool_len == 0) { /* fresh random input, mostly short */
      size_t max = rng_below(4) == 0 ? FUZZ_MAX_INPUT : 64;
      cur.len = rng_below(max + 1);
      for (size_t i = 0; i < cur.len; i++)
        cur.data[i] = (uint8_t)rng_next();
    } else { /* mutate a pool entry */
      cur = pool[rng_below(pool_len)];
      mutate(&cur);
    }
    run_one(cur.data, cur.len);
    /* Keep the pool moving (seeds stay in the first n_seeds slots). */
    size_t keep = n_seeds < FUZZ_POOL ? n_seeds : FUZZ_POOL;
    if (pool_len < FUZZ_POOL)
      pool[pool_len++] = cur;
    else if (FUZZ_POOL > keep)
      pool[keep + rng_below(FUZZ_POOL - keep)] = cur;
  }
  printf("standalone fuzz: %u generated inputs (+%zu seeds), seed %#llx: OK\n",
         iterations, n_seeds, (unsigned long long)DMQ_FUZZ_SEED);
}

int main(int argc, char **argv) {
  if (LLVMFuzzerInitialize)
    LLVMFuzzerInitialize(&argc, &argv);
  if (argc > 1) {
    int rc = 0;
    unsigned count = 0;
    for (int i = 1; i < argc; i++) {
      if (argv[i][0] == '-') /* ignore libFuzzer-style flags */
        continue;
      rc |= run_path(argv[i], &count);
    }
    printf("standalone fuzz: %u inputs from files: %s\n", count,
           rc ? "ERRORS" : "OK");
    return rc;
  }
  run_generated();
  return 0;
}
