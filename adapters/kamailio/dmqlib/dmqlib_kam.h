/* dmqlib - Kamailio side: declarations shared by dmqlib_mod.c and
 * dmqlib_api.c. Includes the stock dmq module's headers (for dmq_api_t,
 * dmq_peer_t, dmq_node_t); never include libdmq headers next to this one.
 */
#ifndef DMQLIB_KAM_H
#define DMQLIB_KAM_H

#ifdef DMQ_NODE_H
#error "libdmq's dmq/node.h and Kamailio's dmq headers in one translation unit"
#endif

#include "../dmq/bind_dmq.h"

#include "dmqlib.h"

#define DQL_MIRROR_MAX 256 /* members mirrored (self included) */

/* One member in the shm mirror. The stock dmq_node_t comes FIRST, so a
 * pointer to an entry is a valid `dmq_node_t *` for consumers. Entries are
 * never freed; a slot is reused for another member only after libdmq has
 * reaped the previous one and the grace period has passed. */
typedef struct dql_mentry {
	dmq_node_t node;
	uint32_t gen;   /* slot generation: bumped when reused for another name */
	int used;       /* 0 never used, 1 member, 2 reaped (grace running) */
	int state;      /* libdmq member state: 0 alive 1 suspect 2 dead 3 left */
	int is_self;
	uint64_t generation; /* the member's libdmq generation (restart id) */
	uint64_t reaped_at;  /* monotonic ms */
	char name[DQL_MAX_NAME + 1];
	char addr[DQL_MAX_ADDR + 1];
	char uri[DQL_MAX_URI + 1]; /* node.orig_uri and node.uri point here */
} dql_mentry_t;

typedef struct dql_mirror {
	gen_lock_t lock;
	dql_mentry_t m[DQL_MIRROR_MAX];
} dql_mirror_t;

extern dql_mirror_t *dql_mirror;

/* Peer registry entry: the stock struct first (the pointer handed back by
 * register_dmq_peer), then our index and the copied strings. */
typedef struct dql_pentry {
	dmq_peer_t peer;
	int idx;
	char id[DQL_MAX_PEER_ID + 1];
	char desc[64];
} dql_pentry_t;

typedef struct dql_registry {
	gen_lock_t lock;
	volatile int count;
	dql_pentry_t p[DQL_MAX_PEERS];
} dql_registry_t;

extern dql_registry_t *dql_reg;

int dql_registry_init(void);
int dql_mirror_init(void);

/* the stock API (bind_dmq fills dmq_api_t with these) */
int dql_bind_dmq(dmq_api_t *api);
dmq_peer_t *dql_register_peer(dmq_peer_t *peer);
int dql_bcast_message(dmq_peer_t *peer, str *body, dmq_node_t *except,
		dmq_resp_cback_t *resp_cback, int max_forwards, str *content_type);
int dql_send_message(dmq_peer_t *peer, str *body, dmq_node_t *node,
		dmq_resp_cback_t *resp_cback, int max_forwards, str *content_type);
dmq_node_t *dql_find_node_uri(str *uri);

dql_pentry_t *dql_find_peer(str *id);
/* index of a mirror entry handed out as a node pointer, or -1 */
int dql_node_slot(dmq_node_t *node, uint32_t *gen);
/* the mirror entry of slot if its generation matches, else NULL */
dql_mentry_t *dql_slot_entry(int slot, uint32_t gen);
/* is the source address of msg a (remote) member's SIP address */
int dql_is_from_node(struct sip_msg *msg);
/* libdmq state name */
const char *dql_state_name(int state);

/* Set by a worker while it runs an init callback: a broadcast on that peer
 * from inside the callback goes to that one member only. */
extern int dql_init_peer;
extern int dql_init_slot;
extern uint32_t dql_init_gen;

#endif
