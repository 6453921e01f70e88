/* libFuzzer target: the host transport's input (dmq/host.h) in front of a
 * live node: dmq_host_transport_input() with arbitrary `from` strings (not
 * "host:", too long, empty, none), arbitrary bytes, flushes and mtu
 * changes, mixed with every other operation of the stateful harness
 * (fuzz_world.h: every node of it talks over host transports).
 */
#define FUZZ_WORLD_HOST_OPS 1
#include "fuzz_world.h"
