/* libFuzzer target: the delivery receive path (DATA, fragments, DACKs,
 * requests and replies, best effort) of a live node with reliable streams
 * in flight both ways, driven by a program of packets, time steps, network
 * loss/reordering and API calls against n0 of a 3-node cluster
 * (fuzz_world.h). BUILT packets carry DATA and DACK messages whose
 * generations and sequence numbers are mostly those of the live streams.
 */
#define FUZZ_WORLD_TYPES ((1u << DMQ__MSG_DATA) | (1u << DMQ__MSG_DACK))
#include "fuzz_world.h"
