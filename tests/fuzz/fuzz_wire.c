/* libFuzzer target for the wire decoder over its own corpus
 * (tests/fuzz/corpus/wire/): the program of fuzz_envelope.c, which opens
 * the envelope of arbitrary bytes, iterates every message and every
 * push/pull record and checks the bounds and iterator contracts of
 * fuzz_common.h that the rest of libdmq relies on. Any violation aborts;
 * sanitizers catch out-of-bounds reads.
 */
#include "fuzz_envelope.c"
