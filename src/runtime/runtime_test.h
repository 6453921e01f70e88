/* libdmq - debug hooks of the libuv runtime (runtime_uv.c), for tests and
 * benchmarks only: not installed, not exported, not included by production
 * code other than runtime_uv.c. */
#ifndef DMQ_RUNTIME_TEST_H
#define DMQ_RUNTIME_TEST_H

#include <stdint.h>

struct dmq__uv;
/* Resolution rounds completed by the runtime's resolver (0 if none). */
uint64_t dmq__uv_resolve_rounds(struct dmq__uv *rt);
/* Simulated crash: close everything and delete the node without leaving (no
 * LEFT gossip); cb(ud) runs once all is closed and rt freed. Not from inside
 * a libdmq callback. */
void dmq__uv_abort(struct dmq__uv *rt, void (*cb)(void *ud), void *ud);

#endif
