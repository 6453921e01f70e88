/* dmqlib - the internal interface between the two halves of the module.
 *
 * Kamailio's dmq module headers and libdmq's headers both define a type
 * called dmq_node_t. They must never meet in one translation unit, so the
 * module is split in two:
 *
 *   Kamailio side (dmqlib_mod.c, dmqlib_api.c): includes the stock
 *     modules/dmq/bind_dmq.h; owns the peer registry, the member mirror
 *     (whose entries start with a stock dmq_node_t), the worker processes,
 *     the cfg functions, the RPCs and the event routes.
 *   libdmq side (dmqlib_io.c): includes <dmq/uv.h>; owns the libdmq node on
 *     a private libuv loop in the "libdmq io" process. Every libdmq call of
 *     the module is in that file.
 *
 * This header is what they share: the shm queues (dmqlib_queue.c, no dmq
 * type at all), the item layouts that travel on them, the shared counters,
 * and a few functions each side provides to the other (declared below).
 * It includes neither side's dmq headers.
 */
#ifndef DMQLIB_H
#define DMQLIB_H

#include <stddef.h>
#include <stdint.h>

#include "../../core/locking.h"

#define DQL_MAX_PEERS 32      /* = DMQ_MAX_CHANNELS (libdmq) */
#define DQL_MAX_PEER_ID 32    /* = DMQ_MAX_CHANNEL (libdmq) */
#define DQL_MAX_NAME 64       /* = DMQ_MAX_NAME (libdmq) */
#define DQL_MAX_ADDR 128      /* = DMQ_MAX_ADDR (libdmq) */
#define DQL_MAX_URI 128       /* a member's SIP URI (its libdmq metadata) */
#define DQL_MAX_CT 64         /* content type carried with every message */
#define DQL_MAX_WORKERS 16
#define DQL_MAX_LIB_STATS 64  /* libdmq counters exported to the stats RPC */

/* -------------------------------------------------------------------------
 * Bounded shm queue: one lock, count and byte budgets, an eventfd written on
 * the empty -> non-empty transition. push never blocks; a full queue is a
 * counted drop (the caller owns the item again and frees it).
 */
typedef struct dql_item {
	struct dql_item *next;
	uint32_t size; /* bytes charged to the queue budget (whole shm block) */
	uint8_t kind;  /* DQL_K_* */
} dql_item_t;

typedef struct dql_queue {
	gen_lock_t lock;
	dql_item_t *head, *tail;
	uint32_t count, max_count;
	uint64_t bytes, max_bytes;
	uint32_t high_mark; /* above: pressure (inbound: pause the channels) */
	uint32_t low_mark;  /* below: pressure released */
	int pressure;
	int efd;
	/* consumer asleep (only for a consumer that maintains it, see
	 * dql_queue_sleeping): producers skip the eventfd write while it is
	 * awake and will look at the queue again anyway */
	int track_sleep;
	volatile int sleeping;
	/* counters (under the lock) */
	uint64_t pushed, popped, dropped, dropped_bytes;
	uint32_t peak_count;
	uint64_t peak_bytes;
} dql_queue_t;

int dql_queue_init(dql_queue_t *q, uint32_t max_count, uint64_t max_bytes,
		int nonblocking_efd);
/* 0 queued; -1 full (dropped counter bumped; the item is still the caller's) */
int dql_queue_push(dql_queue_t *q, dql_item_t *it);
/* append a list (linked through next, FIFO) under one lock and one wake-up,
 * in order, as far as the budgets allow: the rest (from the first item that
 * does not fit) is returned, still the caller's (not counted as dropped),
 * NULL if everything was queued; the queue is then under pressure */
dql_item_t *dql_queue_push_list(dql_queue_t *q, dql_item_t *head);
/* take the whole list (FIFO order), NULL if empty */
dql_item_t *dql_queue_take(dql_queue_t *q);
/* wake the consumer (also used to poke the io process) */
void dql_queue_wake(dql_queue_t *q);
/* drain the eventfd counter (non-blocking fd: returns at once; blocking fd:
 * waits until something was pushed) */
void dql_queue_wait(dql_queue_t *q);
/* the consumer is about to block on the eventfd (sleeping = 1; a push seen
 * in between wakes it) or has woken up (0). With track_sleep set, a push
 * writes the eventfd only when the consumer sleeps. */
void dql_queue_sleeping(dql_queue_t *q, int sleeping);
/* current count (racy read, for decisions that tolerate it) */
uint32_t dql_queue_count(dql_queue_t *q);

/* -------------------------------------------------------------------------
 * Items. Every item is one shm block: header, then a variable tail.
 * Their sizes are rounded up to a few size classes (dql_item_size): the
 * shm allocator (q_malloc by default) then finds an exact-size free block
 * at once instead of searching a fragmented free list, which a burst of
 * items of every size in between causes (measured: 4x slower writes).
 */
static inline size_t dql_item_size(size_t sz)
{
	size_t c = 128;
	if(sz > 65536)
		return sz;
	while(c < sz)
		c <<= 1;
	return c;
}

/* Item blocks. Even with size classes, q_malloc merges a freed block with
 * its free neighbours, so the exact-size list is often empty and a burst of
 * sends searches the whole free-list table per item (measured: 16% of the
 * writer's cfg loop in one shm_malloc per replicated key). So the items of
 * up to DQL_POOL_MAX_ITEM bytes come from per-class free lists in shm,
 * carved from shm in chunks and never merged: an allocation is a lock and a
 * pop, a free a lock and a push, in whichever process. The lists grow up to
 * the `item_pool` parameter (bytes); past it, items are plain shm blocks.
 *   dql_item_alloc(sz): a block of at least sz bytes, or NULL (no shm);
 *   dql_item_free(it):  gives back a block from dql_item_alloc. */
#define DQL_POOL_CLASSES 6 /* 128 .. 4096 bytes */
#define DQL_POOL_MAX_ITEM 4096
int dql_pool_init(uint64_t max_bytes);
void *dql_item_alloc(size_t sz);
void dql_item_free(dql_item_t *it);
/* pooled bytes (carved chunks) and blocks outside the pool, for the stats */
void dql_pool_stats(uint64_t *pooled, uint64_t *free_bytes, uint64_t *plain);
enum {
	/* any process -> io */
	DQL_K_SEND = 1,   /* unicast to a member slot */
	DQL_K_BCAST,      /* to every live member serving the channel */
	DQL_K_SIPIN,      /* SIP mode: libdmq bytes received in a KDMQ request */
	DQL_K_FORGET,     /* dmq.remove: forget a dead or left member now */
	/* io -> worker */
	DQL_K_MSG,        /* a message for a consumer's peer callback */
	DQL_K_OUTCOME,    /* the outcome of one destination of a send */
	DQL_K_INIT,       /* run a channel's init callback */
	DQL_K_MEMBER,     /* member event for the event routes */
};

/* Response callback as an opaque pair (the stock dmq_resp_cback_t is
 * {f, param}; the Kamailio side casts). */
typedef struct dql_cb {
	void *f;
	void *param;
} dql_cb_t;

/* DQL_K_SEND / DQL_K_BCAST */
typedef struct dql_out {
	dql_item_t h;
	int16_t peer;       /* registry index */
	int32_t slot;       /* SEND: destination member slot; BCAST: except (-1) */
	uint32_t slot_gen;  /* generation of that slot when the caller saw it */
	int32_t only_slot;  /* BCAST: -1, or the single member to send to (the
	                     * initial sync request goes to one member) */
	uint32_t only_gen;
	dql_cb_t cb;
	uint16_t ct_len;
	uint32_t body_len;
	char data[];        /* content type, then body (no separators) */
} dql_out_t;

/* DQL_K_SIPIN */
typedef struct dql_sipin {
	dql_item_t h;
	char from[72]; /* "host:<ip>:<port>" of the sender's SIP socket */
	uint32_t len;
	char data[];
} dql_sipin_t;

/* DQL_K_FORGET */
typedef struct dql_forget {
	dql_item_t h;
	char name[DQL_MAX_NAME + 1];
} dql_forget_t;

/* DQL_K_MSG */
typedef struct dql_msg {
	dql_item_t h;
	int16_t peer;
	int32_t slot; /* sender's member slot, -1 if unknown */
	uint32_t slot_gen;
	uint16_t ct_len;
	uint32_t body_len;
	char data[]; /* content type, then body, then a NUL */
} dql_msg_t;

/* DQL_K_OUTCOME: outcomes of single destinations, up to
 * DQL_OUTCOMES_PER_ITEM per item (a burst to N members makes N outcomes per
 * message: one shm block for many of them) */
#define DQL_OUTCOMES_PER_ITEM 64
typedef struct dql_outcome_e {
	dql_cb_t cb;
	int32_t slot; /* the destination */
	uint32_t slot_gen;
	int16_t peer;
	int16_t code; /* SIP-like: 200 408 404 513 503 */
} dql_outcome_e_t;

typedef struct dql_outcome {
	dql_item_t h;
	uint32_t n;
	dql_outcome_e_t e[DQL_OUTCOMES_PER_ITEM];
} dql_outcome_t;

/* DQL_K_INIT */
typedef struct dql_init {
	dql_item_t h;
	int16_t peer;
	int32_t slot; /* the member asked for the initial sync */
	uint32_t slot_gen;
} dql_init_t;

enum { DQL_EV_UP = 0, DQL_EV_SUSPECT, DQL_EV_DOWN, DQL_EV_LEFT, DQL_EV_COUNT };

/* DQL_K_MEMBER */
typedef struct dql_member_ev {
	dql_item_t h;
	int ev;
	int32_t slot;
	char name[DQL_MAX_NAME + 1];
	char addr[DQL_MAX_ADDR + 1];
	char uri[DQL_MAX_URI + 1];
} dql_member_ev_t;

/* -------------------------------------------------------------------------
 * Shared state (one shm block, created in mod_init).
 */
typedef struct dql_stat_kv {
	char name[40];
	uint64_t v;
} dql_stat_kv_t;

typedef struct dql_shared {
	dql_queue_t out;                  /* any process -> io */
	dql_queue_t in[DQL_MAX_WORKERS];  /* io -> worker i */
	int nworkers;
	/* module counters (atomic enough: each is written by one process, or
	 * under a queue lock; read racily by the stats RPC) */
	volatile uint64_t send_refused;   /* send/bcast refused: out queue full */
	volatile uint64_t send_bad;       /* send with an unknown node / peer */
	volatile uint64_t in_dropped;     /* inbound dropped: worker queue full */
	volatile uint64_t in_malformed;   /* inbound rejected: malformed body */
	volatile uint64_t cb_rejected;    /* peer callbacks answering >= 300 */
	volatile uint64_t cb_delivered;   /* peer callbacks run */
	volatile uint64_t outcomes[6];    /* 200, 408, 404, 513, 503, other */
	volatile uint64_t pauses;         /* channel pauses (inbound pressure) */
	volatile uint64_t init_runs;      /* init callbacks run */
	volatile uint64_t io_loops;       /* io heartbeat */
	volatile uint64_t io_stalls;      /* watchdog: io loop not turning */
	volatile uint64_t sip_out, sip_in, sip_out_failed; /* SIP mode packets */
	volatile int io_ready;            /* node created, channels open */
	volatile int joined;
	char self_name[DQL_MAX_NAME + 1];
	char self_addr[DQL_MAX_ADDR + 1];
	/* libdmq counters, refreshed by io every DQL_STATS_MS */
	gen_lock_t stats_lock;
	int nlib;
	dql_stat_kv_t lib[DQL_MAX_LIB_STATS];
} dql_shared_t;

extern dql_shared_t *dql_sh;

/* Module parameters (set in the main process before fork; read anywhere). */
typedef struct dql_params {
	char *bind;      /* host:port for libdmq's UDP+TCP */
	char *advertise; /* host:port others use; default: bind */
	char *seeds;     /* addresses and/or one DNS name, comma/space list */
	char *profile;   /* lan local fast wan */
	char *node_name; /* default: advertise or bind */
	char *sip_uri;   /* this instance's SIP URI (member metadata) */
	int workers;
	int out_max, out_bytes, in_max, in_bytes;
	int item_pool;   /* bytes of shm the item pool may carve (0: none) */
	int ttl_ms;      /* reliable TTL (0: libdmq default, 30 s) */
	int flush_ms;    /* leave flush bound at SIGTERM */
	int no_tcp;
	int reap_grace_ms;
	char *transport; /* "native" (libdmq's UDP/TCP) or "sip" (KDMQ) */
	int sip_mode;    /* transport == "sip" or "sip-tcp" */
	int sip_tcp;     /* transport == "sip-tcp" */
	char *bcast_mode; /* "unicast" (default) or "broadcast" */
	int queued_bytes_max; /* libdmq node-wide queue limit; 0: its default */
	int bcast_broadcast;
} dql_params_t;

extern dql_params_t dql_p;

/* -------------------------------------------------------------------------
 * Provided by the Kamailio side (dmqlib_api.c), called by io.
 */
int dql_peer_count(void);
/* registry entry idx: its id (NUL-terminated) or NULL */
const char *dql_peer_id(int idx);
/* has an init callback */
int dql_peer_has_init(int idx);

/* member mirror: io is the only writer. states: libdmq member states
 * (0 alive, 1 suspect, 2 dead, 3 left). Returns the slot or -1 (full). */
int dql_mirror_upsert(const char *name, const char *addr, const char *uri,
		int state, uint64_t generation, int is_self, uint32_t *slot_gen);
/* the member was reaped by libdmq: the slot becomes reusable after the
 * grace period (dql_p.reap_grace_ms) */
void dql_mirror_reap(int slot);
/* member name of a slot if its generation still matches (copied into out) */
int dql_mirror_name(int slot, uint32_t slot_gen, char *out, size_t outlen);
/* the live (alive/suspect) members' slots, self excluded */
int dql_mirror_live(int *slots, uint32_t *gens, int max);
/* event route lookup results (set in mod_init) */
int dql_member_route_exists(int ev);

/* worker for a sender / destination name (hash), 0..nworkers-1 */
int dql_worker_for(const char *name);

/* -------------------------------------------------------------------------
 * Provided by the libdmq side (dmqlib_io.c).
 */
/* mod_init: bind libdmq's UDP and TCP sockets (before the fork, a bad or
 * busy address stops start-up); -1 with an error logged on failure */
int dql_io_sockets_prepare(void);
/* in every child but the io process: close those sockets (hygiene) */
void dql_io_close_fds(void);
/* in mod_init: the profile name is one libdmq knows */
int dql_io_check_profile(const char *name);
/* the body of the io process; never returns */
void dql_io_main(void) __attribute__((noreturn));

#endif
