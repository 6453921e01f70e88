/* libFuzzer target: the compound packet iterator and every message type's
 * decoder. The target writes a valid envelope (sender "s", message count
 * from the first input byte) and puts the rest of the input after it as
 * the message area, so that every input reaches dmq__wire_next() instead
 * of stopping at the magic bytes. Each decoded message is checked
 * (fuzz_check_msg: slices in bounds, push/pull records, channels, DACK
 * rejected pairs), the iterator must end and stay ended.
 */
#include "fuzz_common.h"

#define HDR_LEN FUZZ_ENVELOPE_LEN

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  uint8_t count = data[0];
  size_t body = size - 1;
  /* exactly sized, so that ASan sees a read past the end */
  uint8_t *pkt = malloc(HDR_LEN + body);
  CHECK(pkt != NULL);
  const uint8_t hdr[HDR_LEN] = {FUZZ_ENVELOPE(count)};
  memcpy(pkt, hdr, HDR_LEN);
  if (body > 0)
    memcpy(pkt + HDR_LEN, data + 1, body);
  dmq__envelope_t env;
  int rc = dmq__wire_open(pkt, HDR_LEN + body, &env);
  if (count > body) { /* cannot hold count messages */
    CHECK(rc == DMQ_DROP_MALFORMED + 1);
    free(pkt);
    return 0;
  }
  CHECK(rc == 0); /* else the header is valid whatever follows */
  fuzz_check_envelope(&env, pkt, HDR_LEN + body);
  CHECK(env.msg_count == count);
  (void)fuzz_check_msgs(&env, pkt, HDR_LEN + body);
  free(pkt);
  return 0;
}
