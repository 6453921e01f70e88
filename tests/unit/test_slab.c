/* util/slab: blocks carved from chunks, geometric growth, last-in
 * first-out reuse, chunks given back only after two trims with nothing in
 * use, allocation failure, poisoning under ASan, and every chunk freed. The
 * node is a bare dmq_node_t with counting allocator hooks: the slab uses
 * nothing else of it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif
#ifdef TEST_ASAN
#include <sanitizer/asan_interface.h>
#endif

#include "counting_alloc.h"
#include "internal.h"
#include "util/slab.h"

typedef struct env {
  dmq_node_t n;
  counting_t ca;
} env_t;

static void env_init(env_t *e) {
  memset(e, 0, sizeof(*e));
  e->n.alloc.malloc_fn = c_malloc;
  e->n.alloc.realloc_fn = c_realloc;
  e->n.alloc.free_fn = c_free;
  e->n.alloc.ud = &e->ca;
}

#define NB 2000

/* Distinct, 16-aligned, writable blocks; the allocator is called once per
 * chunk, not per block; chunks double up to DMQ__SLAB_MAX_CHUNK. */
static void test_blocks_and_growth(void **state) {
  (void)state;
  static uint8_t *b[NB];
  env_t e;
  env_init(&e);
  dmq__slab_t s;
  dmq__slab_init(&s, 100);
  for (int i = 0; i < NB; i++) {
    b[i] = dmq__slab_get(&e.n, &s);
    assert_non_null(b[i]);
    assert_int_equal((uintptr_t)b[i] % 16, 0);
    memset(b[i], i & 0xff, 100);
  }
  for (int i = 0; i < NB; i++)
    for (int j = 0; j < 100; j++)
      assert_int_equal(b[i][j], i & 0xff); /* no two blocks overlap */
  assert_int_equal(s.used, NB);
  /* 4, 8, 16... blocks per chunk, doubling up to 256 KiB: 2000 blocks of
   * 112 bytes (128 under ASan: a redzone) take 9 chunks */
  assert_int_equal(s.nchunks, 9);
  assert_int_equal(e.ca.live, 9);
  assert_int_equal(e.ca.bytes, s.held);
  assert_true(s.held >= (size_t)NB * s.size);
  assert_true(s.held < (size_t)NB * s.size * 2 + 4096);
  /* what comes back is handed out again before anything new is taken */
  for (int i = 0; i < NB; i += 2)
    dmq__slab_put(&s, b[i]);
  long calls = e.ca.calls;
  for (int i = 0; i < NB; i += 2)
    assert_non_null(b[i] = dmq__slab_get(&e.n, &s));
  assert_int_equal(e.ca.calls, calls);
  assert_int_equal(s.used, NB);
  dmq__slab_put(&s, NULL); /* a no-op */
  dmq__slab_free_all(&e.n, &s);
  assert_int_equal(e.ca.live, 0);
  assert_int_equal(s.nchunks, 0);
  assert_int_equal(s.held, 0);
}

/* The chunks go back only when nothing was in use at two trims in a row
 * and nothing was taken in between; then the slab starts small again. */
static void test_trim(void **state) {
  (void)state;
  static void *b[NB];
  env_t e;
  env_init(&e);
  dmq__slab_t s;
  dmq__slab_init(&s, 1024);
  dmq__slab_trim(&e.n, &s); /* nothing held: nothing to do */
  dmq__slab_trim(&e.n, &s);
  assert_int_equal(e.ca.calls, 0);
  for (int i = 0; i < NB; i++)
    assert_non_null(b[i] = dmq__slab_get(&e.n, &s));
  uint32_t chunks = s.nchunks;
  assert_true(chunks > 3);
  for (int i = 1; i < NB; i++) /* keep one block out */
    dmq__slab_put(&s, b[i]);
  dmq__slab_trim(&e.n, &s);
  dmq__slab_trim(&e.n, &s);
  dmq__slab_trim(&e.n, &s);
  assert_int_equal(s.nchunks, chunks); /* one block in use holds them */
  dmq__slab_put(&s, b[0]);
  assert_int_equal(s.used, 0);
  dmq__slab_trim(&e.n, &s); /* idle once */
  void *again = dmq__slab_get(&e.n, &s);
  assert_ptr_equal(again, b[0]); /* the block given back last */
  dmq__slab_put(&s, again);
  dmq__slab_trim(&e.n, &s); /* taken in between: idle once, again */
  assert_int_equal(s.nchunks, chunks);
  assert_int_equal(e.ca.live, chunks);
  dmq__slab_trim(&e.n, &s);
  assert_int_equal(s.nchunks, 0);
  assert_int_equal(e.ca.live, 0);
  assert_int_equal(s.held, 0);
  /* and it starts small again: the next chunk holds 4 blocks */
  assert_non_null(b[0] = dmq__slab_get(&e.n, &s));
  assert_int_equal(e.ca.live, 1);
  assert_true(s.held < 5 * 1040 + 128);
  dmq__slab_free_all(&e.n, &s);
  assert_int_equal(e.ca.live, 0);
}

/* A failed chunk allocation gives NULL, is counted, and leaves the slab
 * usable: the next call succeeds and the blocks already out stay valid. */
static void test_alloc_failure(void **state) {
  (void)state;
  env_t e;
  env_init(&e);
  dmq__slab_t s;
  dmq__slab_init(&s, 64);
  void *b[5];
  for (int i = 0; i < 4; i++)
    assert_non_null(b[i] = dmq__slab_get(&e.n, &s)); /* the first chunk */
  e.ca.fail_at = e.ca.calls + 1;
  assert_null(dmq__slab_get(&e.n, &s));
  assert_int_equal(e.n.stats.drops[DMQ_DROP_NOMEM], 1);
  assert_int_equal(s.used, 4);
  assert_int_equal(s.nchunks, 1);
  assert_non_null(b[4] = dmq__slab_get(&e.n, &s));
  assert_int_equal(s.nchunks, 2);
  for (int i = 0; i < 5; i++)
    dmq__slab_put(&s, b[i]);
  assert_int_equal(s.used, 0);
  dmq__slab_free_all(&e.n, &s);
  assert_int_equal(e.ca.live, 0);
}

/* Under AddressSanitizer the slab poisons what no caller may touch: a
 * redzone after each block (an overrun into the next block is caught),
 * blocks never handed out, and blocks given back. */
static void test_poison(void **state) {
  (void)state;
#ifdef TEST_ASAN
  env_t e;
  env_init(&e);
  dmq__slab_t s;
  dmq__slab_init(&s, 40); /* 48 usable bytes, stride 64 */
  uint8_t *a = dmq__slab_get(&e.n, &s);
  uint8_t *b = dmq__slab_get(&e.n, &s);
  assert_ptr_equal(b, a + 64);
  assert_false(__asan_region_is_poisoned(a, 48) != NULL);
  assert_true(__asan_address_is_poisoned(a + 48)); /* a's redzone */
  assert_true(__asan_address_is_poisoned(b - 1));
  assert_true(__asan_address_is_poisoned(b + 64)); /* never handed out */
  dmq__slab_put(&s, a);
  assert_true(__asan_address_is_poisoned(a));
  assert_true(__asan_address_is_poisoned(a + 47));
  assert_ptr_equal(dmq__slab_get(&e.n, &s), a);
  assert_false(__asan_region_is_poisoned(a, 48) != NULL);
  dmq__slab_free_all(&e.n, &s);
  assert_int_equal(e.ca.live, 0);
#else
  skip();
#endif
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_blocks_and_growth),
      cmocka_unit_test(test_trim),
      cmocka_unit_test(test_alloc_failure),
      cmocka_unit_test(test_poison),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
