/* Allocation failure in membership (allocfail.h): node 0's k-th allocation
 * fails, for every k, through node create, join by push/pull, probes
 * (direct and indirect), suspicion and refutation (of a peer and of node 0
 * itself), a death, a graceful leave and delete; then all of it again with
 * every node keyed and sealing required (allocfail.h, "Sealed").
 */
#include "allocfail.h"

/* Does node i see member `name` in state st? */
static int sees(af_run_t *r, int i, const char *name, dmq_member_state_t st) {
  dmq_member_info_t m;
  return r->node[i] != NULL && dmq_node_member(r->node[i], name, &m) == 0 &&
         m.state == st;
}

static void membership(af_run_t *r, long fail_at) {
  if (af_start(r, fail_at) != 0) {
    af_run_until(r, 1000);
    return;
  }
  af_run_until(r, 3000);
  /* n3's packets are lost until node 0 suspects it: its own probes of n3
   * failed, or it heard the suspicion from n1 or n2, whose probes failed
   * first (each node probes the three others once per round of three
   * periods, in a random order). Bounded at 8 s for runs where an
   * allocation failure kept node 0 from it. Then n3 is heard again and
   * refutes. */
  r->net.drop_from = 1u << 3;
  for (int t = 0; t < 32 && !sees(r, 0, "n3", DMQ_MEMBER_SUSPECT); t++)
    af_run_until(r, r->now + 250);
  if (fail_at == 0) /* the reference run */
    assert_true(sees(r, 0, "n3", DMQ_MEMBER_SUSPECT));
  r->net.drop_from = 0;
  af_run_until(r, r->now + 2500);
  /* node 0's own packets are lost until another node suspects it (its
   * probe of node 0 failed: whether one comes within a given time depends
   * on the random probe order, so the loop waits for it, bounded at 8 s),
   * then it is heard again and refutes */
  r->net.drop_from = 1u << 0;
  for (int t = 0; t < 32 && !sees(r, 1, "n0", DMQ_MEMBER_SUSPECT) &&
                  !sees(r, 2, "n0", DMQ_MEMBER_SUSPECT) &&
                  !sees(r, 3, "n0", DMQ_MEMBER_SUSPECT);
       t++)
    af_run_until(r, r->now + 250);
  r->net.drop_from = 0;
  af_run_until(r, r->now + 2000);
  /* n2 is gone for good: suspected, declared dead */
  r->net.drop_from = 1u << 2;
  af_run_until(r, r->now + 18000);
  af_note(r, 0, dmq_node_set_meta(r->node[0], "m", 1, r->now));
  af_run_until(r, r->now + 1000);
  af_note(r, 0, dmq_node_leave(r->node[0], r->now));
  af_run_until(r, r->now + 2000);
}

/* The reference run went through every step. */
static void check_membership(const af_run_t *ref) {
  const dmq_stats_t *st = &ref->st0;
  assert_true(st->pushpull_sent > 0 && st->pushpull_received > 0);
  assert_true(st->probe_direct_ok > 0);
  assert_true(st->suspicions_raised >= 1);        /* n2 (n3: above) */
  assert_true(st->refutations >= 1);              /* node 0 itself */
  assert_true(st->deaths_declared >= 1);          /* n2 */
  assert_true(st->members[DMQ_MEMBER_LEFT] == 1); /* node 0 left */
}

static void test_membership(void **state) {
  (void)state;
  check_membership(af_loop("membership", membership));
}

/* The same, every node keyed and in DMQ_SEAL_REQUIRED mode. */
static void test_membership_sealed(void **state) {
  (void)state;
  check_membership(af_loop_sealed("membership sealed", membership));
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_membership),
                                     cmocka_unit_test(test_membership_sealed)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
