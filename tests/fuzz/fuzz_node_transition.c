/* libFuzzer target: fuzz_node.c with every node of the world keyed and in
 * TRANSITION mode (fuzz_world.h, "Sealing"): nodes send sealed packets and
 * accept both sealed and plain ones, so RAW and MUTATE bytes reach the
 * state machines next to sealed BUILT packets.
 */
#define FUZZ_WORLD_KEYED 1
#define FUZZ_WORLD_SEAL_MODE DMQ_SEAL_TRANSITION
#include "fuzz_node.c"
