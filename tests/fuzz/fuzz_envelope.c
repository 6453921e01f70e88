/* libFuzzer target: the packet envelope (dmq__wire_open) on arbitrary bytes.
 * A packet that opens has a valid version, known flags, a sender within
 * bounds and a message area inside the packet; one that does not names a
 * drop reason. The messages of an opened packet are iterated (and checked)
 * so that the envelope's message count and area agree with the iterator.
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  dmq__envelope_t env;
  int rc = dmq__wire_open(data, size, &env);
  if (rc != 0) {
    CHECK(rc > 0 && rc <= DMQ_DROP_COUNT);
    return 0;
  }
  fuzz_check_envelope(&env, data, size);
  (void)fuzz_check_msgs(&env, data, size);
  return 0;
}
