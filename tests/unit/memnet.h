/* In-memory transport for the unit tests: a FIFO of packets between nodes
 * addressed "mem://<index>", driven by hand (no sockets, no simulator).
 *
 * One memnet_t is the network; every node gets a memnet_tp_t (its
 * dmq_transport_t) with index i and address "mem://i". Packets wait in the
 * FIFO until memnet_run() hands them to the destination node, then fires
 * the nodes' deadlines in time order. A packet to an index that has no
 * node (or a NULL one, e.g. a crashed node) is dropped.
 *
 * Knobs, all off after memnet_init() and changeable at any time:
 *   refuse     send() fails with DMQ_ETRANSPORT
 *   blackhole  send() accepts the packet and drops it
 *   drop_from  bit i set: packets node i sent are lost on delivery
 *   max_len    send() of more bytes fails with DMQ_ETOOBIG (0: no limit)
 * send() fails with DMQ_EADDR for an address that is not mem://, with
 * DMQ_EAGAIN while the FIFO holds `cap` packets. */
#ifndef DMQ_TESTS_MEMNET_H
#define DMQ_TESTS_MEMNET_H

#include <stddef.h>
#include <stdint.h>

#include <dmq/dmq.h>

typedef struct memnet_pkt {
  int to, from; /* node indexes */
  size_t len;
  uint8_t *buf;
} memnet_pkt_t;

typedef struct memnet {
  memnet_pkt_t *q; /* ring of cap packets, [head, tail) queued */
  size_t cap, head, tail;
  size_t max_len;
  int refuse;
  int blackhole;
  unsigned drop_from;
  /* Called (when set) on node idx's config in memnet_node_new, before
   * dmq_node_new: e.g. a label and a sealing mode. */
  void (*on_config)(dmq_config_t *cfg, int idx, void *ud);
  void *on_config_ud;
} memnet_t;

typedef struct memnet_tp {
  dmq_transport_t t; /* first: the node hands this back to send() */
  memnet_t *net;
  int idx;
  char addr[32];
} memnet_tp_t;

extern const dmq_transport_ops_t memnet_ops;

/* An empty network holding at most cap packets (fails the test if out of
 * memory). memnet_free() drops what is queued; the memnet_t can then be
 * initialised again. */
void memnet_init(memnet_t *net, size_t cap);
void memnet_free(memnet_t *net);

/* Transport of node idx: memnet_ops, MTU 1400, address "mem://<idx>". */
void memnet_tp_init(memnet_tp_t *tp, memnet_t *net, int idx);

/* Node idx on the network: named "n<idx>", LAN profile, generation 1,
 * rng_seed idx + 1, advertising and added to transport tp (set up with
 * memnet_tp_init), the config passed through net->on_config if set. Not
 * started. Returns dmq_node_new()'s or
 * dmq_node_add_transport()'s error; *node is set as dmq_node_new() left it
 * (delete it even when adding the transport failed). */
int memnet_node_new(memnet_t *net, memnet_tp_t *tp, int idx,
                    const dmq_alloc_t *alloc, dmq_node_t **node);

/* Hand every queued packet to its node (as memnet_run does), at time now,
 * without firing deadlines; packets sent meanwhile are delivered too. */
void memnet_deliver(memnet_t *net, dmq_node_t *const *node, memnet_tp_t *tp,
                    int n, uint64_t now);

/* Deliver the queued packets and fire deadlines until `until`: node[i]
 * (NULL: gone) receives over tp[i] what is sent to "mem://<i>", for i < n.
 * *now moves forward to each deadline as it fires (callbacks can read it)
 * and ends at `until` at least. Fails the test if a deadline never moves
 * on. */
void memnet_run(memnet_t *net, dmq_node_t *const *node, memnet_tp_t *tp, int n,
                uint64_t *now, uint64_t until);

#endif
