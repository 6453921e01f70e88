/* libFuzzer target: push/pull records. The target writes a valid envelope
 * holding one push/pull message whose header ([9, flags, array32(n)]) takes
 * flags and the record count n from the first two input bytes; the rest of
 * the input is the record area. A push/pull either decodes with every
 * record valid and exactly n of them (fuzz_check_records) or is reported
 * malformed as a whole.
 */
#include "fuzz_common.h"

/* envelope (12) | fixarray(3) 9 flags | array32(n) */
#define HDR_LEN (FUZZ_ENVELOPE_LEN + 8)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2)
    return 0;
  uint8_t flags = data[0] & 0x7f;
  uint8_t nrec = data[1];
  size_t body = size - 2;
  uint8_t *pkt = malloc(HDR_LEN + body);
  CHECK(pkt != NULL);
  const uint8_t hdr[HDR_LEN] = {
      FUZZ_ENVELOPE(1), 0x93, DMQ__MSG_PUSHPULL, flags, 0xdd, 0, 0, 0, nrec};
  memcpy(pkt, hdr, HDR_LEN);
  if (body > 0)
    memcpy(pkt + HDR_LEN, data + 2, body);
  size_t len = HDR_LEN + body;
  dmq__envelope_t env;
  CHECK(dmq__wire_open(pkt, len, &env) == 0);
  dmq__msg_iter_t it;
  dmq__msg_t m;
  dmq__wire_msgs(&env, &it);
  int rc = dmq__wire_next(&it, &m);
  CHECK(rc == 1 || rc == 2 || rc == -1);
  if (rc == 1) {
    CHECK(m.type == DMQ__MSG_PUSHPULL && m.rec_count == nrec);
    fuzz_check_msg(&m, pkt, len);
    CHECK(dmq__wire_next(&it, &m) == 0);
  }
  free(pkt);
  return 0;
}
