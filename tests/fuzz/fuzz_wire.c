/* libFuzzer target for the wire decoder: opens the envelope of arbitrary
 * bytes, iterates every message and every push/pull record, and checks the
 * bounds and iterator contracts that the rest of libdmq relies on. Any
 * violation aborts; sanitizers catch out-of-bounds reads.
 */
#include <stdint.h>
#include <stdlib.h>

#include "wire.h"
#include <dmq/dmq.h>

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond))                                                               \
      abort();                                                                 \
  } while (0)

/* Every byte of a slice must lie inside the packet. */
static void check_slice(dmq__slice_t s, const uint8_t *data, size_t size,
                        size_t max) {
  CHECK(s.n <= max);
  if (s.n > 0)
    CHECK((const uint8_t *)s.p >= data &&
          (const uint8_t *)s.p + s.n <= data + size);
}

static void fuzz_records(const dmq__msg_t *m, const uint8_t *data,
                         size_t size) {
  dmq__rec_iter_t ri;
  dmq__record_t r;
  uint32_t n = 0;
  int rc;
  CHECK(m->rec_count <= DMQ__WIRE_MAX_RECORDS);
  dmq__wire_records(m, &ri);
  while ((rc = dmq__wire_next_record(&ri, &r)) == 1) {
    CHECK(r.name.n >= 1 && r.addr.n >= 1);
    check_slice(r.name, data, size, DMQ_MAX_NAME);
    check_slice(r.addr, data, size, DMQ_MAX_ADDR);
    check_slice(r.meta, data, size, DMQ_MAX_META);
    CHECK(r.state < DMQ_MEMBER_STATE_COUNT);
    n++;
  }
  /* dmq__wire_next() validated every record of the push/pull */
  CHECK(rc == 0 && n == m->rec_count);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  dmq__envelope_t env;
  dmq__msg_iter_t it;
  dmq__msg_t m;
  uint32_t seen = 0;
  int rc = dmq__wire_open(data, size, &env);
  if (rc != 0) {
    CHECK(rc > 0 && rc <= DMQ_DROP_COUNT);
    return 0;
  }
  CHECK(env.version == DMQ__WIRE_VERSION);
  CHECK(env.msg_count <= DMQ__WIRE_MAX_MSGS);
  CHECK(env.sender.n >= 1);
  check_slice(env.sender, data, size, DMQ_MAX_NAME);
  check_slice(env.label, data, size, DMQ_MAX_LABEL);
  dmq__wire_msgs(&env, &it);
  while ((rc = dmq__wire_next(&it, &m)) != 0) {
    if (rc == -1) {
      CHECK(dmq__wire_next(&it, &m) == -1);
      break;
    }
    CHECK(rc == 1 || rc == 2);
    CHECK(++seen <= env.msg_count);
    CHECK(m.type <= DMQ__MSG_TYPE_MAX_KNOWN);
    if (rc == 2)
      continue;
    CHECK(m.type >= 1);
    check_slice(m.name, data, size, DMQ_MAX_NAME);
    check_slice(m.addr, data, size, DMQ_MAX_ADDR);
    check_slice(m.from, data, size, DMQ_MAX_NAME);
    check_slice(m.meta, data, size, DMQ_MAX_META);
    if (m.type == DMQ__MSG_PUSHPULL)
      fuzz_records(&m, data, size);
  }
  return 0;
}
