/* libdmq - digest anti-entropy (antientropy.c): the periodic state exchange
 * between two members, which sends the member table only where the two
 * differ. Used by membership (swim.c). */
#ifndef DMQ_ANTIENTROPY_H
#define DMQ_ANTIENTROPY_H

#include "internal.h"
#include "wire.h"

/* Start one exchange with peer (alive, not ourselves): a DIGEST of our
 * table, or a full push/pull when we cannot send it a datagram or
 * n->ae_off is set. boost: one of the exchanges right after our join (on
 * the reliable class; periodic ones go as datagrams). */
void dmq__ae_round(dmq_node_t *n, dmq__member_t *peer, int boost);
/* boost: 0 periodic, 1 a scheduled round of the join boost, 2 one added
 * after a round that found a difference (dmq__swim_boost_differs). */
#define DMQ__AE_BOOST 1
#define DMQ__AE_BOOST_ADDED 2
/* A received DIGEST or DIFF (stream: it came on a stream-only transport,
 * from_addr is the connection's address). */
void dmq__ae_recv(dmq_node_t *n, const dmq__msg_t *msg, dmq__slice_t sender,
                  const char *from_addr, int stream);
/* The fallback when the peer did not answer in time: a full push/pull. */
void dmq__ae_tick(dmq_node_t *n);
/* When dmq__ae_tick has something to do (DMQ_NEVER: nothing). */
uint64_t dmq__ae_deadline(const dmq_node_t *n);

/* The table's digest over 2^k buckets of the name-hash space: sums[b] is
 * the sum (mod 2^64) of the hashes of the live members (alive or suspect)
 * whose name falls in bucket b. sums holds 2^k entries (k <=
 * DMQ__AE_MAX_K). Returns the number of live members. From the sums the
 * node keeps (O(2^k)), or a pass over the table when k is finer than
 * they are. */
uint32_t dmq__ae_sums(dmq_node_t *n, uint8_t k, uint64_t *sums);

/* The kept sums: dmq__ae_init at node creation (empty table),
 * dmq__ae_free at deletion. Every change of a member's liveness (alive or
 * suspect against the rest), incarnation or generation is bracketed by
 * dmq__ae_member_out (before; nothing if it is not live) and
 * dmq__ae_member_in (after); adding a member, in; removing a live one,
 * out. No allocation, cannot fail. */
void dmq__ae_init(dmq_node_t *n);
void dmq__ae_free(dmq_node_t *n);
void dmq__ae_member_in(dmq_node_t *n, const dmq__member_t *m);
void dmq__ae_member_out(dmq_node_t *n, const dmq__member_t *m);
/* Tests: 0 if the kept sums, the live count and the suspect count (the
 * running suspicions) match a pass over the table, -1 if not. */
int dmq__ae_sums_check(dmq_node_t *n);
/* The bucket of a name among 2^k. */
uint32_t dmq__ae_bucket(const char *name, size_t len, uint8_t k);

#endif
