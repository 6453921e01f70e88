/* libFuzzer target: fuzz_host.c with every node of the world keyed and in
 * REQUIRED mode and the packets the harness builds sealed (fuzz_world.h,
 * "Sealing"): the host transport's input behind the opening of sealed
 * packets, and the label, plaintext, authentication and replay drops.
 */
#define FUZZ_WORLD_KEYED 1
#include "fuzz_host.c"
