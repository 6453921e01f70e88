/* dmqlib - Kamailio module: libdmq as a drop-in for the stock dmq module.
 *
 * Processes (forked in child_init(PROC_MAIN), counted in mod_init):
 *   "libdmq io"      x1  owns the libdmq node on a private libuv loop
 *                        (dmqlib_io.c); never runs cfg or consumer code.
 *   "libdmq worker"  xN  run consumers' peer, init and response callbacks
 *                        and the member event routes; rank PROC_RPC with a
 *                        tcp_main socket, like the stock DMQ workers, so
 *                        modules' child_init(PROC_RPC) prepares them the same
 *                        way (DB handles, tm). A sender's messages always go
 *                        to the same worker (hash of its name): order holds.
 * IPC: bounded shm queues + eventfds (dmqlib_queue.c), created here before
 * the fork. This file never includes libdmq headers (see dmqlib.h).
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../../core/action.h"
#include "../../core/cfg/cfg_struct.h"
#include "../../core/dprint.h"
#include "../../core/fmsg.h"
#include "../../core/kemi.h"
#include "../../core/mem/mem.h"
#include "../../core/mem/shm_mem.h"
#include "../../core/mod_fix.h"
#include "../../core/msg_translator.h"
#include "../../core/parser/msg_parser.h"
#include "../../core/parser/parse_uri.h"
#include "../../core/pt.h"
#include "../../core/pvar.h"
#include "../../core/receive.h"
#include "../../core/route.h"
#include "../../core/rpc.h"
#include "../../core/rpc_lookup.h"
#include "../../core/sr_module.h"
#include "../../core/timer.h"
#include "../../core/dset.h"
#include "../../core/ut.h"
#include "../../modules/tm/tm_load.h"

#include "dmqlib_kam.h"

MODULE_VERSION

dql_shared_t *dql_sh = NULL;

dql_params_t dql_p = {
		.bind = NULL,
		.advertise = NULL,
		.seeds = NULL,
		.profile = "lan",
		.node_name = NULL,
		.sip_uri = NULL,
		.workers = 1,
		.out_max = 200000,
		.out_bytes = 64 * 1024 * 1024,
		.in_max = 65536,
		.in_bytes = 32 * 1024 * 1024,
		.item_pool = 16 * 1024 * 1024,
		.ttl_ms = 0,
		.flush_ms = 1000,
		.no_tcp = 0,
		.reap_grace_ms = 60000,
		.transport = "native",
		.sip_mode = 0,
		.bcast_mode = "unicast",
		.bcast_broadcast = 0,
};

static int mod_init(void);
static int child_init(int rank);
static void mod_destroy(void);

static int w_dmq_handle_message(struct sip_msg *msg, char *p1, char *p2);
static int w_dmq_send_message(
		struct sip_msg *msg, char *peer, char *to, char *body, char *ct);
static int w_dmq_bcast_message(
		struct sip_msg *msg, char *peer, char *body, char *ct);
static int w_dmq_is_from_node(struct sip_msg *msg, char *p1, char *p2);
static int w_dmq_t_replicate(struct sip_msg *msg, char *p1, char *p2);

static struct tm_binds dql_tmb;
static int dql_have_tm = 0;

static int pv_get_dmqlib(struct sip_msg *msg, pv_param_t *param, pv_value_t *res);
static int pv_parse_dmqlib(pv_spec_t *sp, str *in);

static rpc_export_t dql_rpc[];

/* clang-format off */
static cmd_export_t cmds[] = {
	{"bind_dmq", (cmd_function)dql_bind_dmq, 0, 0, 0, 0},
	{"dmq_handle_message", (cmd_function)w_dmq_handle_message, 0,
		0, 0, ANY_ROUTE},
	{"dmq_handle_message", (cmd_function)w_dmq_handle_message, 1,
		fixup_igp_null, fixup_free_igp_null, ANY_ROUTE},
	{"dmq_process_message", (cmd_function)w_dmq_handle_message, 0,
		0, 0, ANY_ROUTE},
	{"dmq_process_message", (cmd_function)w_dmq_handle_message, 1,
		fixup_igp_null, fixup_free_igp_null, ANY_ROUTE},
	{"dmq_send_message", (cmd_function)w_dmq_send_message, 4,
		fixup_spve_all, fixup_free_spve_all, ANY_ROUTE},
	{"dmq_bcast_message", (cmd_function)w_dmq_bcast_message, 3,
		fixup_spve_all, fixup_free_spve_all, ANY_ROUTE},
	{"dmq_is_from_node", (cmd_function)w_dmq_is_from_node, 0,
		0, 0, ANY_ROUTE},
	{"dmq_t_replicate", (cmd_function)w_dmq_t_replicate, 0,
		0, 0, REQUEST_ROUTE},
	{"dmq_t_replicate", (cmd_function)w_dmq_t_replicate, 1,
		fixup_igp_null, fixup_free_igp_null, REQUEST_ROUTE},
	{0, 0, 0, 0, 0, 0}
};

static param_export_t params[] = {
	{"bind", PARAM_STRING, &dql_p.bind},
	{"advertise", PARAM_STRING, &dql_p.advertise},
	{"seeds", PARAM_STRING, &dql_p.seeds},
	{"profile", PARAM_STRING, &dql_p.profile},
	{"node_name", PARAM_STRING, &dql_p.node_name},
	{"sip_uri", PARAM_STRING, &dql_p.sip_uri},
	{"workers", INT_PARAM, &dql_p.workers},
	{"out_queue_max", INT_PARAM, &dql_p.out_max},
	{"out_queue_bytes", INT_PARAM, &dql_p.out_bytes},
	{"in_queue_max", INT_PARAM, &dql_p.in_max},
	{"in_queue_bytes", INT_PARAM, &dql_p.in_bytes},
	{"item_pool", INT_PARAM, &dql_p.item_pool},
	{"ttl", INT_PARAM, &dql_p.ttl_ms},
	{"flush_timeout", INT_PARAM, &dql_p.flush_ms},
	{"no_tcp", INT_PARAM, &dql_p.no_tcp},
	{"reap_grace", INT_PARAM, &dql_p.reap_grace_ms},
	{"transport", PARAM_STRING, &dql_p.transport},
	{"bcast_mode", PARAM_STRING, &dql_p.bcast_mode},
	{"queued_bytes_max", INT_PARAM, &dql_p.queued_bytes_max},
	{"key_file", PARAM_STRING, &dql_p.key_file},
	{"label", PARAM_STRING, &dql_p.label},
	{"seal_mode", PARAM_STRING, &dql_p.seal_mode},
	{0, 0, 0}
};

static pv_export_t mod_pvs[] = {
	{{"dmqlib", sizeof("dmqlib") - 1}, PVT_OTHER, pv_get_dmqlib, 0,
		pv_parse_dmqlib, 0, 0, 0},
	{{0, 0}, 0, 0, 0, 0, 0, 0, 0}
};

struct module_exports exports = {
	"dmqlib",         /* module name */
	DEFAULT_DLFLAGS,  /* dlopen flags */
	cmds,             /* exported functions */
	params,           /* exported parameters */
	0,                /* RPC methods (registered in mod_init) */
	mod_pvs,          /* exported pseudo-variables */
	0,                /* response handling function */
	mod_init,         /* module initialization function */
	child_init,       /* per-child init function */
	mod_destroy       /* module destroy function */
};
/* clang-format on */

static const char *dql_ev_route_names[DQL_EV_COUNT] = {"dmqlib:member-up",
		"dmqlib:member-suspect", "dmqlib:member-down", "dmqlib:member-left"};
static const char *dql_ev_names[DQL_EV_COUNT] = {
		"up", "suspect", "down", "left"};
static int dql_ev_route[DQL_EV_COUNT] = {-1, -1, -1, -1};

/* the member event being routed (read by $dmqlib(...)) */
static dql_member_ev_t *dql_cur_ev = NULL;

int dql_member_route_exists(int ev)
{
	return ev >= 0 && ev < DQL_EV_COUNT && dql_ev_route[ev] >= 0;
}

int dql_worker_for(const char *name)
{
	/* FNV-1a */
	uint32_t h = 2166136261u;
	int n = dql_sh ? dql_sh->nworkers : 1;
	for(; *name; name++) {
		h ^= (unsigned char)*name;
		h *= 16777619u;
	}
	return n > 0 ? (int)(h % (uint32_t)n) : 0;
}

/* The io loop turns at least every housekeeping tick (50 ms) and bumps
 * io_loops each time; a count that does not move for DQL_WATCHDOG_S seconds
 * means the loop is stuck (membership, delivery and failure detection with
 * it). Runs in the core's slow timer process; logs, and counts in
 * dmqlib.stats (io_stalls). */
#define DQL_WATCHDOG_S 5
static void dql_watchdog(unsigned int ticks, void *param)
{
	static uint64_t last = 0;
	uint64_t now;
	(void)ticks;
	(void)param;
	if(dql_sh == NULL || !dql_sh->io_ready)
		return;
	now = dql_sh->io_loops;
	if(now == last) {
		dql_sh->io_stalls++;
		LM_ERR("dmqlib: the libdmq io process has not turned its loop for "
			   "%d s (stuck?)\n",
				DQL_WATCHDOG_S);
	}
	last = now;
}

/* ------------------------------------------------------------------------ */
/* init                                                                      */

static int mod_init(void)
{
	int i;

	if(find_module_by_name("dmq") != NULL) {
		LM_ERR("dmqlib: the stock 'dmq' module is loaded too: load only one "
			   "of them (dmqlib replaces dmq; consumers would bind whichever "
			   "is loaded last)\n");
		return -1;
	}
	if(dql_io_check_profile(dql_p.profile) < 0) {
		LM_ERR("dmqlib: unknown profile '%s' (lan, local, fast, wan)\n",
				dql_p.profile);
		return -1;
	}
	if(dql_io_check_seal() < 0)
		return -1;
	if(dql_p.workers < 1 || dql_p.workers > DQL_MAX_WORKERS) {
		LM_ERR("dmqlib: workers must be 1..%d\n", DQL_MAX_WORKERS);
		return -1;
	}
	if(dql_p.out_max < 16 || dql_p.in_max < 16 || dql_p.out_bytes < 65536
			|| dql_p.in_bytes < 65536) {
		LM_ERR("dmqlib: queue limits too small (at least 16 items and "
			   "65536 bytes)\n");
		return -1;
	}
	if(dql_p.transport && strcmp(dql_p.transport, "sip") == 0) {
		dql_p.sip_mode = 1;
	} else if(dql_p.transport && strcmp(dql_p.transport, "sip-tcp") == 0) {
		dql_p.sip_mode = 1;
		dql_p.sip_tcp = 1;
	} else if(dql_p.transport && strcmp(dql_p.transport, "native") != 0) {
		LM_ERR("dmqlib: transport must be \"native\", \"sip\" or "
			   "\"sip-tcp\"\n");
		return -1;
	}
	if(dql_p.sip_mode) {
		/* libdmq's packets go through Kamailio's SIP sockets only: no
		 * socket of its own is opened (an unused one would be a port that
		 * takes membership traffic nobody asked for) */
		if(dql_p.bind != NULL && dql_p.bind[0] != '\0')
			LM_WARN("dmqlib: transport \"%s\": bind \"%s\" is not used (no "
					"socket of libdmq's own in SIP mode)\n",
					dql_p.transport, dql_p.bind);
	} else if(dql_p.bind == NULL || dql_p.bind[0] == '\0') {
		LM_ERR("dmqlib: modparam(\"dmqlib\", \"bind\", \"host:port\") is "
			   "required (the address libdmq's UDP and TCP listen on)\n");
		return -1;
	}
	if(dql_p.bcast_mode && strcmp(dql_p.bcast_mode, "broadcast") == 0) {
		dql_p.bcast_broadcast = 1;
	} else if(dql_p.bcast_mode && strcmp(dql_p.bcast_mode, "unicast") != 0) {
		LM_ERR("dmqlib: bcast_mode must be \"unicast\" or \"broadcast\"\n");
		return -1;
	}
	if(dql_p.flush_ms < 0 || dql_p.flush_ms > 30000) {
		LM_ERR("dmqlib: flush_timeout must be 0..30000 ms\n");
		return -1;
	}
	if(dql_registry_init() < 0 || dql_mirror_init() < 0)
		return -1;

	dql_sh = shm_malloc(sizeof(*dql_sh));
	if(dql_sh == NULL) {
		SHM_MEM_ERROR;
		return -1;
	}
	memset(dql_sh, 0, sizeof(*dql_sh));
	if(dql_p.item_pool < 0) {
		LM_ERR("dmqlib: item_pool must be >= 0 (bytes)\n");
		return -1;
	}
	if(dql_pool_init((uint64_t)dql_p.item_pool) < 0)
		return -1;
	if(lock_init(&dql_sh->stats_lock) == NULL)
		return -1;
	dql_sh->nworkers = dql_p.workers;
	if(dql_queue_init(&dql_sh->out, dql_p.out_max, dql_p.out_bytes, 1) < 0)
		return -1;
	dql_sh->out.track_sleep = 1; /* the io loop reports when it sleeps */
	for(i = 0; i < dql_p.workers; i++)
		if(dql_queue_init(&dql_sh->in[i], dql_p.in_max, dql_p.in_bytes, 0) < 0)
			return -1;

	/* bind address checked now, before the fork: a bad one stops start-up */
	if(dql_io_sockets_prepare() < 0)
		return -1;

	for(i = 0; i < DQL_EV_COUNT; i++) {
		int rt = route_lookup(&event_rt, (char *)dql_ev_route_names[i]);
		if(rt >= 0 && event_rt.rlist[rt] != NULL)
			dql_ev_route[i] = rt;
	}

	if(register_timer(dql_watchdog, NULL, DQL_WATCHDOG_S) < 0) {
		LM_ERR("dmqlib: cannot register the io watchdog timer\n");
		return -1;
	}
	if(rpc_register_array(dql_rpc) != 0) {
		LM_ERR("dmqlib: failed to register the RPC commands\n");
		return -1;
	}
	register_procs(1 + dql_p.workers);
	cfg_register_child(1 + dql_p.workers);
	LM_INFO("dmqlib: %s%s, profile %s, %d worker(s), %d peer(s) "
			"registered so far\n",
			dql_p.sip_mode ? "transport " : "bind ",
			dql_p.sip_mode ? dql_p.transport : dql_p.bind, dql_p.profile,
			dql_p.workers, dql_peer_count());
	return 0;
}

static void dql_worker_main(int idx) __attribute__((noreturn));

static int child_init(int rank)
{
	int pid, i;
	char desc[32];

	if(rank != PROC_MAIN) {
		/* libdmq's sockets belong to the io process (forked from main at
		 * PROC_MAIN, after this runs in the SIP receivers) */
		if(rank != PROC_INIT)
			dql_io_close_fds();
		return 0;
	}
	/* SIP mode over TCP sends through tcp_main: the io process needs its
	 * unix socket to it (make_sock) */
	pid = fork_process(PROC_NOCHLDINIT, "libdmq io", dql_p.sip_tcp ? 1 : 0);
	if(pid < 0) {
		LM_ERR("dmqlib: cannot fork the io process\n");
		return -1;
	}
	if(pid == 0) {
		if(cfg_child_init())
			_exit(1);
		dql_io_main(); /* never returns */
	}
	for(i = 0; i < dql_p.workers; i++) {
		snprintf(desc, sizeof(desc), "libdmq worker %d", i);
		pid = fork_process(PROC_RPC, desc, 1);
		if(pid < 0) {
			LM_ERR("dmqlib: cannot fork worker %d\n", i);
			return -1;
		}
		if(pid == 0) {
			if(cfg_child_init())
				_exit(1);
			dql_worker_main(i); /* never returns */
		}
	}
	return 0;
}

static void mod_destroy(void)
{
	/* shm goes away with the instance; children are gone by now */
}

/* ------------------------------------------------------------------------ */
/* worker                                                                    */

/* "sip:h:p" of a mirror entry -> "h:p" (into buf) */
static void dql_entry_hostport(dql_mentry_t *e, char *buf, size_t len)
{
	if(e && e->node.uri.host.s) {
		if(e->node.uri.port.len)
			snprintf(buf, len, "%.*s:%.*s", e->node.uri.host.len,
					e->node.uri.host.s, e->node.uri.port.len,
					e->node.uri.port.s);
		else
			snprintf(buf, len, "%.*s", e->node.uri.host.len,
					e->node.uri.host.s);
	} else {
		snprintf(buf, len, "0.0.0.0");
	}
}

static dql_mentry_t *dql_self_entry(void)
{
	int i;
	if(dql_mirror == NULL)
		return NULL;
	for(i = 0; i < DQL_MIRROR_MAX; i++)
		if(dql_mirror->m[i].used == 1 && dql_mirror->m[i].is_self)
			return &dql_mirror->m[i];
	return NULL;
}

/* Zero the stack the consumer's callback is about to use. Stock htable's
 * ht_dmq_handle_msg() reads an uninitialised `str htname` when a (remote,
 * possibly malformed) body has no "htname" ({"action":99}): with stack
 * garbage it crashes the worker, and a dead child stops the whole instance;
 * with zeros ht_get_table() sees a NULL name and refuses cleanly. Cheap
 * (8 KiB memset per message) hardening against that class of consumer bug,
 * not a guarantee (tests/kamailio/test_malformed.sh sends that body). */
static __attribute__((noinline)) void dql_scrub_stack(void)
{
	volatile char pad[8192];
	memset((char *)pad, 0, sizeof(pad));
	__asm__ __volatile__("" : : "r"(pad) : "memory");
}

static unsigned int dql_msg_seq = 0;
static char *dql_wbuf = NULL;
static size_t dql_wbuf_cap = 0;
static unsigned dql_pid = 0;

/* Build a KDMQ request as text, parse it, and hand it to the peer's
 * callback. The body is NUL-terminated (consumers parse it as a C string).
 * The From URI is sip:<peer>@<sender's SIP host:port>, as stock builds it,
 * so find_dmq_node_uri(From) finds the sender. */
static void dql_run_peer_cb(dql_msg_t *m)
{
	dql_pentry_t *pe;
	dql_mentry_t *sender;
	peer_reponse_t resp;
	struct sip_msg msg;
	char shp[DQL_MAX_URI + 8], mhp[DQL_MAX_URI + 8];
	char *buf;
	int hlen, len, rc;
	size_t cap;
	const char *ct = m->data;
	const char *body = m->data + m->ct_len;

	if(dql_reg == NULL || m->peer < 0 || m->peer >= dql_reg->count)
		return;
	pe = &dql_reg->p[m->peer];
	if(pe->peer.callback == NULL)
		return;
	sender = m->slot >= 0 ? dql_slot_entry(m->slot, m->slot_gen) : NULL;
	dql_entry_hostport(sender, shp, sizeof(shp));
	dql_entry_hostport(dql_self_entry(), mhp, sizeof(mhp));

	cap = 512 + 4 * strlen(pe->id) + 2 * strlen(shp) + strlen(mhp) + m->ct_len
		  + m->body_len + 1;
	/* one buffer per worker, grown as needed (no pkg malloc per message) */
	if(cap > dql_wbuf_cap) {
		if(dql_wbuf)
			pkg_free(dql_wbuf);
		dql_wbuf_cap = 0;
		dql_wbuf = pkg_malloc(cap < 4096 ? 4096 : cap);
		if(dql_wbuf == NULL) {
			PKG_MEM_ERROR;
			return;
		}
		dql_wbuf_cap = cap < 4096 ? 4096 : cap;
	}
	buf = dql_wbuf;
	if(dql_pid == 0)
		dql_pid = (unsigned)getpid();
	dql_msg_seq++;
	/* Content-Length and Content-Type right after the Via: the worker
	 * parses the headers only up to Content-Length (the rest is parsed
	 * when a consumer asks for it, e.g. dmq_usrloc's From): header
	 * parsing allocates a pkg block per header, a third of a worker's time
	 * per message when all eight were parsed up front */
	hlen = snprintf(buf, cap,
			"KDMQ sip:%s@%s SIP/2.0\r\n"
			"Via: SIP/2.0/UDP %s;branch=z9hG4bKdmqlib%x.%u\r\n"
			"Content-Length: %u\r\n"
			"Content-Type: %.*s\r\n"
			"From: <sip:%s@%s>;tag=dmqlib%x\r\n"
			"To: <sip:%s@%s>\r\n"
			"Call-ID: dmqlib-%x-%u@%s\r\n"
			"CSeq: 10 KDMQ\r\n"
			"Max-Forwards: 1\r\n"
			"\r\n",
			pe->id, mhp, shp, dql_pid, dql_msg_seq, (unsigned)m->body_len,
			(int)m->ct_len, ct, pe->id, shp, dql_pid, pe->id, mhp, dql_pid,
			dql_msg_seq, shp);
	if(hlen < 0 || (size_t)hlen + m->body_len + 1 > cap)
		return;
	memcpy(buf + hlen, body, m->body_len);
	len = hlen + (int)m->body_len;
	buf[len] = '\0';

	if(build_sip_msg_from_buf(&msg, buf, len, inc_msg_no()) < 0
			|| parse_headers(&msg, HDR_CONTENTLENGTH_F, 0) < 0
			|| msg.content_length == NULL) {
		__atomic_add_fetch(&dql_sh->in_malformed, 1, __ATOMIC_RELAXED);
		LM_NOTICE("dmqlib: message on '%s' rejected: not parseable as a "
				  "request (content type or sender address)\n",
				pe->id);
		free_sip_msg(&msg);
		return;
	}
	if(sender && sender->node.ip_address.af) {
		msg.rcv.src_ip = sender->node.ip_address;
		msg.rcv.src_port = sender->node.uri.port_no ? sender->node.uri.port_no
													: SIP_PORT;
		msg.rcv.proto = PROTO_UDP;
	}

	memset(&resp, 0, sizeof(resp));
	dql_scrub_stack();
	rc = pe->peer.callback(&msg, &resp, sender ? &sender->node : NULL);
	__atomic_add_fetch(&dql_sh->cb_delivered, 1, __ATOMIC_RELAXED);
	if(rc < 0 || resp.resp_code >= 300) {
		__atomic_add_fetch(&dql_sh->cb_rejected, 1, __ATOMIC_RELAXED);
		LM_DBG("dmqlib: peer '%s' answered %d %.*s\n", pe->id, resp.resp_code,
				resp.reason.s ? resp.reason.len : 0,
				resp.reason.s ? resp.reason.s : "");
	}
	if(resp.body.s)
		pkg_free(resp.body.s);
	free_sip_msg(&msg);
	ksr_msg_env_reset();
}

static void dql_run_outcomes(dql_outcome_t *o)
{
	dmq_resp_cback_t cb;
	dql_mentry_t *dest;
	uint32_t i;
	for(i = 0; i < o->n && i < DQL_OUTCOMES_PER_ITEM; i++) {
		dql_outcome_e_t *e = &o->e[i];
		if(e->cb.f == NULL)
			continue;
		cb.f = (int (*)(struct sip_msg *, int, dmq_node_t *, void *))e->cb.f;
		cb.param = e->cb.param;
		dest = e->slot >= 0 ? dql_slot_entry(e->slot, e->slot_gen) : NULL;
		/* no reply message: the outcome is libdmq's, not a SIP reply (stock
		 * passes tm's FAKED_REPLY for local timeouts; consumers only print
		 * the pointer) */
		cb.f(NULL, e->code, dest ? &dest->node : NULL, cb.param);
	}
}

static void dql_run_init(dql_init_t *it)
{
	dql_pentry_t *pe;
	if(dql_reg == NULL || it->peer < 0 || it->peer >= dql_reg->count)
		return;
	pe = &dql_reg->p[it->peer];
	if(pe->peer.init_callback == NULL)
		return;
	LM_INFO("dmqlib: running the init callback of '%s' (sync from member "
			"slot %d)\n",
			pe->id, it->slot);
	dql_init_peer = it->peer;
	dql_init_slot = it->slot;
	dql_init_gen = it->slot_gen;
	pe->peer.init_callback();
	dql_init_peer = -1;
	dql_init_slot = -1;
	__atomic_add_fetch(&dql_sh->init_runs, 1, __ATOMIC_RELAXED);
}

static void dql_run_member_route(dql_member_ev_t *ev)
{
	int rt, backup_rt;
	struct run_act_ctx ctx;
	sip_msg_t tmsg;

	if(ev->ev < 0 || ev->ev >= DQL_EV_COUNT)
		return;
	rt = dql_ev_route[ev->ev];
	if(rt < 0)
		return;
	if(faked_msg_get_new(&tmsg) < 0) {
		LM_ERR("dmqlib: no faked message for the event route\n");
		return;
	}
	dql_cur_ev = ev;
	backup_rt = get_route_type();
	set_route_type(EVENT_ROUTE);
	init_run_actions_ctx(&ctx);
	run_top_route(event_rt.rlist[rt], &tmsg, &ctx);
	set_route_type(backup_rt);
	dql_cur_ev = NULL;
	free_sip_msg(&tmsg);
	ksr_msg_env_reset();
}

static void dql_worker_main(int idx)
{
	dql_queue_t *q = &dql_sh->in[idx];
	dql_item_t *l, *next;

	LM_INFO("dmqlib: worker %d started (pid %d)\n", idx, (int)getpid());
	for(;;) {
		dql_queue_wait(q);
		while((l = dql_queue_take(q)) != NULL) {
			cfg_update();
			for(; l; l = next) {
				next = l->next;
				switch(l->kind) {
					case DQL_K_MSG:
						dql_run_peer_cb((dql_msg_t *)l);
						break;
					case DQL_K_OUTCOME:
						dql_run_outcomes((dql_outcome_t *)l);
						break;
					case DQL_K_INIT:
						dql_run_init((dql_init_t *)l);
						break;
					case DQL_K_MEMBER:
						dql_run_member_route((dql_member_ev_t *)l);
						break;
				}
				dql_item_free(l);
			}
		}
		/* backlog gone: let io resume paused channels */
		if(q->pressure) {
			lock_get(&q->lock);
			if(q->count <= q->low_mark)
				q->pressure = 0;
			lock_release(&q->lock);
			if(!q->pressure)
				dql_queue_wake(&dql_sh->out);
		}
	}
}

/* ------------------------------------------------------------------------ */
/* pseudo-variable $dmqlib(name|addr|uri|event|self|joined)                 */

enum {
	DQL_PV_NAME = 1,
	DQL_PV_ADDR,
	DQL_PV_URI,
	DQL_PV_EVENT,
	DQL_PV_SELF,
	DQL_PV_JOINED
};

static int pv_parse_dmqlib(pv_spec_t *sp, str *in)
{
	static const struct {
		const char *n;
		int v;
	} keys[] = {{"name", DQL_PV_NAME}, {"addr", DQL_PV_ADDR},
			{"uri", DQL_PV_URI}, {"event", DQL_PV_EVENT},
			{"self", DQL_PV_SELF}, {"joined", DQL_PV_JOINED}};
	unsigned i;
	if(sp == NULL || in == NULL || in->len <= 0)
		return -1;
	for(i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if(in->len == (int)strlen(keys[i].n)
				&& strncmp(in->s, keys[i].n, in->len) == 0) {
			sp->pvp.pvn.type = PV_NAME_INTSTR;
			sp->pvp.pvn.u.isname.type = 0;
			sp->pvp.pvn.u.isname.name.n = keys[i].v;
			return 0;
		}
	}
	LM_ERR("dmqlib: unknown $dmqlib(%.*s) (name addr uri event self "
		   "joined)\n",
			in->len, in->s);
	return -1;
}

static int pv_get_dmqlib(struct sip_msg *msg, pv_param_t *param, pv_value_t *res)
{
	switch(param->pvn.u.isname.name.n) {
		case DQL_PV_NAME:
			return dql_cur_ev ? pv_get_strzval(msg, param, res, dql_cur_ev->name)
							  : pv_get_null(msg, param, res);
		case DQL_PV_ADDR:
			return dql_cur_ev ? pv_get_strzval(msg, param, res, dql_cur_ev->addr)
							  : pv_get_null(msg, param, res);
		case DQL_PV_URI:
			return dql_cur_ev ? pv_get_strzval(msg, param, res, dql_cur_ev->uri)
							  : pv_get_null(msg, param, res);
		case DQL_PV_EVENT:
			return dql_cur_ev ? pv_get_strzval(msg, param, res,
							 (char *)dql_ev_names[dql_cur_ev->ev])
							  : pv_get_null(msg, param, res);
		case DQL_PV_SELF:
			return dql_sh ? pv_get_strzval(msg, param, res, dql_sh->self_name)
						  : pv_get_null(msg, param, res);
		case DQL_PV_JOINED:
			return pv_get_sintval(msg, param, res, dql_sh ? dql_sh->joined : 0);
	}
	return pv_get_null(msg, param, res);
}

/* ------------------------------------------------------------------------ */
/* cfg functions                                                             */

/* dmq_handle_message(): in SIP mode, a KDMQ request to sip:dmqlib@...
 * carries libdmq bytes: hand them to the io process (no SIP reply: libdmq
 * acknowledges and retransmits itself). Otherwise a no-op kept so that
 * stock configurations load. */
static int w_dmq_handle_message(struct sip_msg *msg, char *p1, char *p2)
{
	static int warned = 0;
	char *body;
	int blen;
	dql_sipin_t *it;
	char ip[IP6_MAX_STR_SIZE + 1];
	size_t sz;
	(void)p1;
	(void)p2;

	if(!dql_p.sip_mode) {
		if(!warned) {
			LM_NOTICE("dmqlib: dmq_handle_message()/dmq_process_message() do "
					  "nothing with transport \"native\" (messages do not "
					  "travel as SIP)\n");
			warned = 1;
		}
		return 1;
	}
	if(msg == NULL || msg->first_line.type != SIP_REQUEST
			|| parse_sip_msg_uri(msg) < 0 || msg->parsed_uri.user.len != 6
			|| strncmp(msg->parsed_uri.user.s, "dmqlib", 6) != 0) {
		LM_DBG("dmqlib: not a dmqlib KDMQ request\n");
		return -1;
	}
	body = get_body(msg);
	if(body == NULL)
		return -1;
	blen = msg->len - (int)(body - msg->buf);
	if(blen <= 0 || blen > 65535) {
		__atomic_add_fetch(&dql_sh->in_malformed, 1, __ATOMIC_RELAXED);
		return -1;
	}
	sz = dql_item_size(sizeof(*it) + blen);
	it = dql_item_alloc(sz);
	if(it == NULL) {
		SHM_MEM_ERROR;
		return -1;
	}
	memset(it, 0, sizeof(*it));
	it->h.size = sz;
	it->h.kind = DQL_K_SIPIN;
	/* the sender as it advertises itself: the Via sent-by it wrote (over
	 * TCP the source port is an ephemeral one); the source address when
	 * there is no Via */
	if(msg->via1 && msg->via1->host.len > 0
			&& msg->via1->host.len < (int)sizeof(it->from) - 16) {
		snprintf(it->from, sizeof(it->from), "host:%.*s:%u",
				msg->via1->host.len, msg->via1->host.s,
				(unsigned)(msg->via1->port ? msg->via1->port : SIP_PORT));
	} else {
		memset(ip, 0, sizeof(ip));
		ip_addr2sbuf(&msg->rcv.src_ip, ip, IP6_MAX_STR_SIZE);
		snprintf(it->from, sizeof(it->from),
				msg->rcv.src_ip.af == AF_INET6 ? "host:[%s]:%u" : "host:%s:%u",
				ip, (unsigned)msg->rcv.src_port);
	}
	it->len = blen;
	memcpy(it->data, body, blen);
	if(dql_queue_push(&dql_sh->out, &it->h) < 0) {
		dql_item_free(&it->h);
		__atomic_add_fetch(&dql_sh->send_refused, 1, __ATOMIC_RELAXED);
		return -1;
	}
	__atomic_add_fetch(&dql_sh->sip_in, 1, __ATOMIC_RELAXED);
	return 1;
}

/* the callback of peers registered from the cfg (as stock's
 * empty_peer_callback: accepted, nothing else) */
static int dql_empty_peer_cb(
		struct sip_msg *msg, peer_reponse_t *resp, dmq_node_t *node)
{
	static str reason = str_init("Accepted DMQ");
	(void)msg;
	(void)node;
	resp->resp_code = 202;
	resp->reason = reason;
	return 0;
}

static dql_pentry_t *dql_cfg_peer(str *id)
{
	dql_pentry_t *pe = dql_find_peer(id);
	dmq_peer_t p;
	if(pe)
		return pe;
	/* stock registers an unknown peer on first use */
	memset(&p, 0, sizeof(p));
	p.peer_id = *id;
	p.description = *id;
	p.callback = dql_empty_peer_cb;
	if(dql_register_peer(&p) == NULL)
		return NULL;
	return dql_find_peer(id);
}

static int dql_ki_send_message(
		sip_msg_t *msg, str *speer, str *sto, str *sbody, str *sct)
{
	dql_pentry_t *pe;
	dmq_node_t *node;
	(void)msg;
	pe = dql_cfg_peer(speer);
	if(pe == NULL)
		return -1;
	node = dql_find_node_uri(sto);
	if(node == NULL) {
		LM_ERR("dmqlib: dmq_send_message: no member with SIP URI %.*s\n",
				sto->len, sto->s);
		return -1;
	}
	return dql_send_message(&pe->peer, sbody, node, NULL, 1, sct) < 0 ? -1 : 1;
}

static int w_dmq_send_message(
		struct sip_msg *msg, char *peer, char *to, char *body, char *ct)
{
	str speer, sto, sbody, sct;
	if(fixup_get_svalue(msg, (gparam_t *)peer, &speer) < 0
			|| fixup_get_svalue(msg, (gparam_t *)to, &sto) < 0
			|| fixup_get_svalue(msg, (gparam_t *)body, &sbody) < 0
			|| fixup_get_svalue(msg, (gparam_t *)ct, &sct) < 0) {
		LM_ERR("dmqlib: dmq_send_message: bad parameters\n");
		return -1;
	}
	return dql_ki_send_message(msg, &speer, &sto, &sbody, &sct);
}

static int dql_ki_bcast_message(
		sip_msg_t *msg, str *speer, str *sbody, str *sct)
{
	dql_pentry_t *pe;
	(void)msg;
	pe = dql_cfg_peer(speer);
	if(pe == NULL)
		return -1;
	return dql_bcast_message(&pe->peer, sbody, NULL, NULL, 1, sct) < 0 ? -1 : 1;
}

static int w_dmq_bcast_message(
		struct sip_msg *msg, char *peer, char *body, char *ct)
{
	str speer, sbody, sct;
	if(fixup_get_svalue(msg, (gparam_t *)peer, &speer) < 0
			|| fixup_get_svalue(msg, (gparam_t *)body, &sbody) < 0
			|| fixup_get_svalue(msg, (gparam_t *)ct, &sct) < 0) {
		LM_ERR("dmqlib: dmq_bcast_message: bad parameters\n");
		return -1;
	}
	return dql_ki_bcast_message(msg, &speer, &sbody, &sct);
}

static int w_dmq_is_from_node(struct sip_msg *msg, char *p1, char *p2)
{
	(void)p1;
	(void)p2;
	return dql_is_from_node(msg);
}

/* dmq_t_replicate([mode]): relay the request statefully (tm t_replicate)
 * to the SIP URI of every live member but self, as stock does; mode 0 (the
 * default) does nothing for a request that comes from a member (loops).
 * The URIs are copied out of the mirror first: no lock is held while tm
 * sends. */
static int dql_ki_t_replicate_mode(sip_msg_t *msg, int mode)
{
	char uris[DQL_MIRROR_MAX > 64 ? 64 : DQL_MIRROR_MAX][DQL_MAX_URI + 1];
	int n = 0, i, first = 1;
	str u;

	/* tm is bound on first use (per process): at mod_init time it may not
	 * be initialised yet, whatever the load order */
	if(!dql_have_tm) {
		if(find_module_by_name("tm") == NULL || load_tm_api(&dql_tmb) != 0) {
			LM_ERR("dmqlib: dmq_t_replicate() needs the tm module\n");
			return -1;
		}
		dql_have_tm = 1;
	}
	if(mode == 0 && dql_is_from_node(msg) > 0) {
		LM_DBG("dmqlib: request from a member: not replicated\n");
		return -1;
	}
	lock_get(&dql_mirror->lock);
	for(i = 0; i < DQL_MIRROR_MAX && n < 64; i++) {
		dql_mentry_t *e = &dql_mirror->m[i];
		if(e->used == 1 && !e->is_self && (e->state == 0 || e->state == 1)
				&& e->uri[0])
			memcpy(uris[n++], e->uri, sizeof(uris[0]));
	}
	lock_release(&dql_mirror->lock);
	for(i = 0; i < n; i++) {
		if(!first
				&& append_branch(msg, 0, 0, 0, Q_UNSPECIFIED, 0, 0, 0, 0, 0, 0)
						   == -1) {
			LM_ERR("dmqlib: dmq_t_replicate: cannot append a branch\n");
			continue;
		}
		first = 0;
		u.s = uris[i];
		u.len = strlen(uris[i]);
		if(dql_tmb.t_replicate(msg, &u) < 0) {
			LM_ERR("dmqlib: t_replicate to %s failed\n", uris[i]);
			return -1;
		}
	}
	return 1;
}

static int w_dmq_t_replicate(struct sip_msg *msg, char *p1, char *p2)
{
	int mode = 0;
	(void)p2;
	if(p1 != NULL && fixup_get_ivalue(msg, (gparam_t *)p1, &mode) < 0)
		return -1;
	return dql_ki_t_replicate_mode(msg, mode);
}

/* ------------------------------------------------------------------------ */
/* KEMI: the stock module's exports under the same KEMI module name "dmq",
 * so KEMI scripts (KSR.dmq.*) work unchanged                                */

static int dql_ki_handle_message(sip_msg_t *msg)
{
	return w_dmq_handle_message(msg, NULL, NULL);
}

static int dql_ki_handle_message_rc(sip_msg_t *msg, int rc)
{
	(void)rc;
	return w_dmq_handle_message(msg, NULL, NULL);
}

static int dql_ki_is_from_node(sip_msg_t *msg)
{
	return dql_is_from_node(msg);
}

static int dql_ki_t_replicate(sip_msg_t *msg)
{
	return dql_ki_t_replicate_mode(msg, 0);
}

#define DQL_KI_NONE                                                          \
	{                                                                        \
		SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE,          \
				SR_KEMIP_NONE, SR_KEMIP_NONE                                 \
	}
#define DQL_KI_INT                                                           \
	{                                                                        \
		SR_KEMIP_INT, SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE,           \
				SR_KEMIP_NONE, SR_KEMIP_NONE                                 \
	}

/* clang-format off */
static sr_kemi_t sr_kemi_dmqlib_exports[] = {
	{ str_init("dmq"), str_init("handle_message"), SR_KEMIP_INT,
		dql_ki_handle_message, DQL_KI_NONE },
	{ str_init("dmq"), str_init("handle_message_rc"), SR_KEMIP_INT,
		dql_ki_handle_message_rc, DQL_KI_INT },
	{ str_init("dmq"), str_init("process_message"), SR_KEMIP_INT,
		dql_ki_handle_message, DQL_KI_NONE },
	{ str_init("dmq"), str_init("process_message_rc"), SR_KEMIP_INT,
		dql_ki_handle_message_rc, DQL_KI_INT },
	{ str_init("dmq"), str_init("is_from_node"), SR_KEMIP_INT,
		dql_ki_is_from_node, DQL_KI_NONE },
	{ str_init("dmq"), str_init("t_replicate"), SR_KEMIP_INT,
		dql_ki_t_replicate, DQL_KI_NONE },
	{ str_init("dmq"), str_init("t_replicate_mode"), SR_KEMIP_INT,
		dql_ki_t_replicate_mode, DQL_KI_INT },
	{ str_init("dmq"), str_init("send_message"), SR_KEMIP_INT,
		dql_ki_send_message,
		{ SR_KEMIP_STR, SR_KEMIP_STR, SR_KEMIP_STR,
			SR_KEMIP_STR, SR_KEMIP_NONE, SR_KEMIP_NONE } },
	{ str_init("dmq"), str_init("bcast_message"), SR_KEMIP_INT,
		dql_ki_bcast_message,
		{ SR_KEMIP_STR, SR_KEMIP_STR, SR_KEMIP_STR,
			SR_KEMIP_NONE, SR_KEMIP_NONE, SR_KEMIP_NONE } },
	{ {0, 0}, {0, 0}, 0, NULL, { 0, 0, 0, 0, 0, 0 } }
};
/* clang-format on */

int mod_register(char *path, int *dlflags, void *p1, void *p2)
{
	(void)path;
	(void)dlflags;
	(void)p1;
	(void)p2;
	sr_kemi_modules_add(sr_kemi_dmqlib_exports);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* RPC                                                                       */

static void dql_rpc_list_nodes(rpc_t *rpc, void *c)
{
	void *h;
	int i;
	char ip[IP6_MAX_STR_SIZE + 1];
	if(dql_mirror == NULL)
		return;
	lock_get(&dql_mirror->lock);
	for(i = 0; i < DQL_MIRROR_MAX; i++) {
		dql_mentry_t *e = &dql_mirror->m[i];
		str status;
		if(e->used != 1)
			continue;
		memset(ip, 0, sizeof(ip));
		if(e->node.ip_address.af)
			ip_addr2sbuf(&e->node.ip_address, ip, IP6_MAX_STR_SIZE);
		status.s = (e->state == 0 || e->state == 1) ? "active" : "disabled";
		status.len = strlen(status.s);
		if(rpc->add(c, "{", &h) < 0)
			goto error;
		if(rpc->struct_add(h, "SSssSdd", "host", &e->node.uri.host, "port",
				   &e->node.uri.port, "proto", "udp", "resolved_ip", ip,
				   "status", &status, "last_notification", 0, "local",
				   e->is_self)
				< 0)
			goto error;
		if(rpc->struct_add(h, "sssd", "name", e->name, "addr", e->addr, "state",
				   dql_state_name(e->state), "slot", i)
				< 0)
			goto error;
	}
	lock_release(&dql_mirror->lock);
	return;
error:
	lock_release(&dql_mirror->lock);
	rpc->fault(c, 500, "Server failure");
}

static const char *dql_rpc_list_nodes_doc[2] = {
		"List the members (stock dmq fields plus libdmq name, address and "
		"state)",
		0};

static void dql_rpc_remove(rpc_t *rpc, void *c)
{
	str name = STR_NULL;
	dql_forget_t *it;
	int i, state = -1;
	if(rpc->scan(c, "S", &name) < 1 || name.len <= 0
			|| name.len > DQL_MAX_NAME) {
		rpc->fault(c, 400, "Member name required (as in dmq.list_nodes)");
		return;
	}
	if(dql_mirror == NULL || dql_sh == NULL) {
		rpc->fault(c, 500, "Not initialised");
		return;
	}
	lock_get(&dql_mirror->lock);
	for(i = 0; i < DQL_MIRROR_MAX; i++) {
		dql_mentry_t *e = &dql_mirror->m[i];
		if(e->used == 1 && (int)strlen(e->name) == name.len
				&& memcmp(e->name, name.s, name.len) == 0) {
			state = e->is_self ? 0 : e->state;
			break;
		}
	}
	lock_release(&dql_mirror->lock);
	if(state < 0) {
		rpc->fault(c, 404, "No such member");
		return;
	}
	/* libdmq removes members that fail or leave by itself; by hand only a
	 * dead or left one, before its retention ends */
	if(state == 0 || state == 1) {
		rpc->fault(c, 409, "Member is alive or suspect (or this node):"
						   " failed members are detected and removed by libdmq");
		return;
	}
	it = dql_item_alloc(sizeof(*it));
	if(it == NULL) {
		SHM_MEM_ERROR;
		rpc->fault(c, 500, "No shared memory");
		return;
	}
	memset(it, 0, sizeof(*it));
	it->h.size = sizeof(*it);
	it->h.kind = DQL_K_FORGET;
	memcpy(it->name, name.s, name.len);
	if(dql_queue_push(&dql_sh->out, &it->h) < 0) {
		dql_item_free(&it->h);
		rpc->fault(c, 503, "Queue to the io process full");
		return;
	}
	rpc->rpl_printf(c, "Removing %.*s from this node's view", name.len,
			name.s);
}

/* dmqlib.keys_reload: read key_file again in the io process (rotation
 * without a restart: add the new key everywhere, make it first everywhere,
 * remove the old one, reloading every instance after each step). The file
 * is checked here first, so a bad one is reported to the caller. */
static void dql_rpc_keys_reload(rpc_t *rpc, void *c)
{
	char why[256];
	dql_item_t *it;
	if(dql_sh == NULL) {
		rpc->fault(c, 500, "Not initialised");
		return;
	}
	if(dql_p.key_file == NULL) {
		rpc->fault(c, 400, "No key_file configured");
		return;
	}
	if(dql_io_check_keyfile(why, sizeof(why)) < 0) {
		rpc->fault(c, 400, "key_file: %s (keyring unchanged)", why);
		return;
	}
	it = dql_item_alloc(sizeof(*it));
	if(it == NULL) {
		rpc->fault(c, 500, "No shared memory");
		return;
	}
	memset(it, 0, sizeof(*it));
	it->size = sizeof(*it);
	it->kind = DQL_K_KEYS;
	if(dql_queue_push(&dql_sh->out, it) < 0) {
		dql_item_free(it);
		rpc->fault(c, 503, "Queue to the io process full");
		return;
	}
	rpc->rpl_printf(c, "Reloading %s (dmqlib.keys shows the result)",
			dql_p.key_file);
}

static const char *dql_rpc_keys_reload_doc[2] = {
		"Read key_file again: the keyring becomes the file's, first line "
		"the primary (sending) key",
		0};

/* dmqlib.keys: the key ids in use (never key material) */
static void dql_rpc_keys(rpc_t *rpc, void *c)
{
	void *h, *ha;
	int i;
	char id[12];
	if(dql_sh == NULL) {
		rpc->fault(c, 500, "Not initialised");
		return;
	}
	if(rpc->add(c, "{", &h) < 0)
		return;
	lock_get(&dql_sh->stats_lock);
	snprintf(id, sizeof(id), "%08x", (unsigned)dql_sh->key_primary);
	rpc->struct_add(h, "ss", "key_file", dql_p.key_file ? dql_p.key_file : "",
			"primary", dql_sh->n_keys ? id : "");
	if(rpc->struct_add(h, "[", "ids", &ha) >= 0)
		for(i = 0; i < dql_sh->n_keys; i++) {
			snprintf(id, sizeof(id), "%08x", (unsigned)dql_sh->key_ids[i]);
			rpc->array_add(ha, "s", id);
		}
	rpc->struct_add(h, "jjs", "loads", (unsigned long long)dql_sh->key_loads,
			"load_failed", (unsigned long long)dql_sh->key_load_failed,
			"last_error", dql_sh->key_error);
	lock_release(&dql_sh->stats_lock);
}

static const char *dql_rpc_keys_doc[2] = {
		"Key ids of the keyring and the primary one, reloads and the last "
		"reload error",
		0};

static const char *dql_rpc_remove_doc[2] = {
		"Forget a dead or left member now (this node's view only; an alive "
		"one is refused: libdmq detects failures)",
		0};

static void dql_rpc_stats(rpc_t *rpc, void *c)
{
	void *h, *hq;
	int i;
	static const char *codes[6] = {
			"outcome_200", "outcome_408", "outcome_404", "outcome_513",
			"outcome_503", "outcome_other"};
	if(dql_sh == NULL)
		return;
	if(rpc->add(c, "{", &h) < 0)
		goto error;
	rpc->struct_add(h, "ssdd", "name", dql_sh->self_name, "addr",
			dql_sh->self_addr, "joined", dql_sh->joined, "io_ready",
			dql_sh->io_ready);
	rpc->struct_add(h, "jjjjjjjjj", "send_refused_queue_full",
			(unsigned long long)dql_sh->send_refused, "send_bad",
			(unsigned long long)dql_sh->send_bad, "in_dropped_queue_full",
			(unsigned long long)dql_sh->in_dropped, "in_malformed",
			(unsigned long long)dql_sh->in_malformed, "callbacks_run",
			(unsigned long long)dql_sh->cb_delivered, "callbacks_rejected",
			(unsigned long long)dql_sh->cb_rejected, "init_callbacks",
			(unsigned long long)dql_sh->init_runs, "channel_pauses",
			(unsigned long long)dql_sh->pauses, "io_loops",
			(unsigned long long)dql_sh->io_loops);
	rpc->struct_add(h, "j", "io_stalls", (unsigned long long)dql_sh->io_stalls);
	{
		uint64_t pooled, pfree, plain;
		dql_pool_stats(&pooled, &pfree, &plain);
		rpc->struct_add(h, "jjj", "item_pool_bytes", (unsigned long long)pooled,
				"item_pool_free_bytes", (unsigned long long)pfree,
				"items_outside_pool", (unsigned long long)plain);
	}
	rpc->struct_add(h, "sjjj", "transport", dql_p.sip_mode ? "sip" : "native",
			"sip_out", (unsigned long long)dql_sh->sip_out, "sip_in",
			(unsigned long long)dql_sh->sip_in, "sip_out_failed",
			(unsigned long long)dql_sh->sip_out_failed);
	for(i = 0; i < 6; i++)
		rpc->struct_add(h, "j", codes[i], (unsigned long long)dql_sh->outcomes[i]);
	for(i = -1; i < dql_sh->nworkers; i++) {
		dql_queue_t *q = i < 0 ? &dql_sh->out : &dql_sh->in[i];
		char qn[24];
		if(i < 0)
			snprintf(qn, sizeof(qn), "queue_out");
		else
			snprintf(qn, sizeof(qn), "queue_worker%d", i);
		if(rpc->struct_add(h, "{", qn, &hq) < 0)
			goto error;
		lock_get(&q->lock);
		rpc->struct_add(hq, "ddjjjjjj", "count", (int)q->count, "max",
				(int)q->max_count, "bytes", (unsigned long long)q->bytes,
				"pushed", (unsigned long long)q->pushed, "dropped",
				(unsigned long long)q->dropped, "dropped_bytes",
				(unsigned long long)q->dropped_bytes, "peak_count",
				(unsigned long long)q->peak_count, "peak_bytes",
				(unsigned long long)q->peak_bytes);
		lock_release(&q->lock);
	}
	if(rpc->struct_add(h, "{", "libdmq", &hq) < 0)
		goto error;
	lock_get(&dql_sh->stats_lock);
	for(i = 0; i < dql_sh->nlib; i++)
		rpc->struct_add(hq, "j", dql_sh->lib[i].name,
				(unsigned long long)dql_sh->lib[i].v);
	lock_release(&dql_sh->stats_lock);
	return;
error:
	rpc->fault(c, 500, "Server failure");
}

static const char *dql_rpc_stats_doc[2] = {
		"dmqlib counters: queue drops, outcomes, libdmq statistics", 0};

static void dql_rpc_peers(rpc_t *rpc, void *c)
{
	int i, n = dql_peer_count();
	void *h;
	for(i = 0; i < n; i++) {
		if(rpc->add(c, "{", &h) < 0)
			return;
		rpc->struct_add(h, "sdd", "peer", dql_reg->p[i].id, "index", i,
				"init_callback", dql_reg->p[i].peer.init_callback != NULL);
	}
}

static const char *dql_rpc_peers_doc[2] = {
		"List the registered peers (libdmq channels)", 0};

static rpc_export_t dql_rpc[] = {
		{"dmq.list_nodes", dql_rpc_list_nodes, dql_rpc_list_nodes_doc,
				RET_ARRAY},
		{"dmq.remove", dql_rpc_remove, dql_rpc_remove_doc, 0},
		{"dmqlib.keys_reload", dql_rpc_keys_reload, dql_rpc_keys_reload_doc, 0},
		{"dmqlib.keys", dql_rpc_keys, dql_rpc_keys_doc, 0},
		{"dmqlib.stats", dql_rpc_stats, dql_rpc_stats_doc, 0},
		{"dmqlib.peers", dql_rpc_peers, dql_rpc_peers_doc, RET_ARRAY},
		{0, 0, 0, 0}};
