/* libFuzzer target: a live node's membership state machine (SWIM probes,
 * suspicion and refutation, deaths, leaves, push/pull anti-entropy) driven
 * by a program of packets and time steps against n0 of a 3-node cluster
 * (fuzz_world.h). BUILT packets carry membership messages (ping .. push/
 * pull); RAW and MUTATE packets anything.
 */
#define FUZZ_WORLD_TYPES                                                       \
  ((1u << DMQ__MSG_PING) | (1u << DMQ__MSG_PING_REQ) | (1u << DMQ__MSG_ACK) |  \
   (1u << DMQ__MSG_NACK) | (1u << DMQ__MSG_ALIVE) | (1u << DMQ__MSG_SUSPECT) | \
   (1u << DMQ__MSG_DEAD) | (1u << DMQ__MSG_LEFT) | (1u << DMQ__MSG_PUSHPULL))
#include "fuzz_world.h"
