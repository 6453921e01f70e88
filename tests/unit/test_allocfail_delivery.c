/* Allocation failure in delivery (allocfail.h): node 0's k-th allocation
 * fails, for every k, through reliable and best-effort sends both ways,
 * fragmented messages (sent and received), a broadcast, requests and
 * replies both ways, a destination that dies with messages pending, and
 * delete with messages still queued; then all of it again with every node
 * keyed and sealing required (allocfail.h, "Sealed").
 */
#include "allocfail.h"

static void delivery(af_run_t *r, long fail_at) {
  if (af_start(r, fail_at) != 0) {
    af_run_until(r, 1000);
    return;
  }
  af_run_until(r, 2500);
  af_send(r, 0, 1, 10, 1);
  af_send(r, 0, 2, 5000, 1); /* fragments (mtu 1400) */
  af_send(r, 0, 3, 20, 0);
  af_broadcast(r, 0, 100);
  af_request(r, 0, 1);
  af_send(r, 1, 0, 5000, 1); /* fragments received */
  af_send(r, 2, 0, 30, 1);
  af_send(r, 3, 0, 30, 0);
  af_request(r, 1, 0); /* node 0 replies */
  af_run_until(r, 4000);
  /* n3 dies with messages pending towards it */
  r->net.drop_from = 1u << 3;
  af_send(r, 0, 3, 3000, 1);
  af_send(r, 0, 3, 10, 1);
  af_run_until(r, 22000);
  /* still queued at delete: they end with SHUTDOWN */
  af_send(r, 0, 1, 4000, 1);
  af_request(r, 0, 2);
}

/* The reference run went through every step. */
static void check_delivery(const af_run_t *ref) {
  const dmq_delivery_stats_t *ds = &ref->ds0;
  assert_true(ds->fragments_sent > 0 && ds->fragments_received > 0);
  assert_true(ds->acks_received > 0 && ds->acks_sent > 0);
  assert_true(ds->delivered_app >= 4); /* 2 reliable, best effort, request */
  assert_true(ds->dead >= 1);          /* the sends to n3 */
  assert_true(ds->queued_msgs >= 1);   /* left for delete */
}

static void test_delivery(void **state) {
  (void)state;
  check_delivery(af_loop("delivery", delivery));
}

/* The same, every node keyed and in DMQ_SEAL_REQUIRED mode. */
static void test_delivery_sealed(void **state) {
  (void)state;
  check_delivery(af_loop_sealed("delivery sealed", delivery));
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_delivery),
                                     cmocka_unit_test(test_delivery_sealed)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
