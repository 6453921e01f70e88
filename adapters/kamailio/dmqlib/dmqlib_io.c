/* dmqlib - the "libdmq io" process: the libdmq node on a private libuv loop.
 *
 * This is the only file of the module that includes libdmq headers (and so
 * the only one to adapt when the libdmq API changes). It never includes
 * Kamailio's modules/dmq headers: both define dmq_node_t.
 *
 * The process is forked with PROC_NOCHLDINIT and runs no cfg or consumer
 * code. Its loop has:
 *   - the libdmq runtime (dmq_uv_t: UDP+TCP transports, timers, DNS);
 *   - a uv_poll on the outbound queue's eventfd: send/bcast items from any
 *     process become reliable libdmq sends, one per destination, each with
 *     its own outcome (so a full destination fails alone, and `except`
 *     works: see NOTES.md, partial broadcast);
 *   - a uv_prepare that calls cfg_update() every iteration;
 *   - a 50 ms housekeeping timer: channels for peers registered at run time,
 *     init callbacks, resuming paused channels, stats export;
 *   - a uv_signal for SIGTERM: leave, flush for at most flush_timeout ms,
 *     then _exit. uv_run never returns into Kamailio's code.
 * Received messages, outcomes, init requests and member events go to the
 * workers' queues; a sender's messages always to the same worker.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include <dmq/host.h>
#include <dmq/keyfile.h>
#include <dmq/uv.h>

#ifdef _DMQNODE_H_
#error "Kamailio's modules/dmq headers and libdmq's in one translation unit"
#endif

#include "../../core/cfg/cfg_struct.h"
#include "../../core/dprint.h"
#include "../../core/ip_addr.h"
#include "../../core/mem/shm_mem.h"
#include "../../core/forward.h"
#include "../../core/resolve.h"
#include "../../core/socket_info.h"
#include "../../core/udp_server.h"

#include "dmqlib.h"

#define DQL_HOUSEKEEP_MS 50 /* init checks, backlog retry, stats; idle cost x members */
#define DQL_STATS_MS 500

static uv_loop_t dql_loop;
static dmq_uv_t *dql_rt;
static dmq_node_t *dql_node;
static uv_poll_t dql_outpoll;
static uv_prepare_t dql_prep;
static uv_check_t dql_check;
static uv_timer_t dql_hk;
static uv_timer_t dql_exit_timer;
static uv_signal_t dql_sigterm;
static int dql_closing;

static dmq_channel_t *dql_chan[DQL_MAX_PEERS];
static int dql_nchan;                   /* channels opened (registry prefix) */
static int dql_init_done[DQL_MAX_PEERS];
static int dql_paused;
static uint64_t dql_last_stats;
static char dql_self_uri[DQL_MAX_URI + 1];
/* SIP mode: libdmq's host transport, its bytes in KDMQ requests */
static dmq_transport_t *dql_host_t;
static char dql_host_addr[DQL_MAX_URI + 8]; /* "host:<sip ip>:<port>" */
static char dql_sip_hostport[DQL_MAX_URI + 1];
static unsigned dql_sip_seq;

/* io-local view of the mirror: member name -> slot */
typedef struct dql_lm {
	char name[DQL_MAX_NAME + 1];
	int slot;
	uint32_t gen;
	int state;
	int is_self;
} dql_lm_t;
static dql_lm_t *dql_lm;
static int dql_nlm;
#define DQL_LM_MAX 256

/* what an accepted send carries to its outcome */
typedef struct dql_pending {
	dql_cb_t cb;
	int16_t peer;
	int32_t slot;
	uint32_t gen;
} dql_pending_t;

/* ------------------------------------------------------------------------ */
/* start-up checks (main process, before the fork)                          */

int dql_io_check_profile(const char *name)
{
	dmq_profile_t p;
	return (name && dmq_profile_from_name(name, &p) == 0) ? 0 : -1;
}

int dql_io_check_seal(void)
{
	dmq_seal_mode_t m = DMQ_SEAL_OFF;
	size_t i, l;

	if(dql_p.key_file && dql_p.key_file[0] == '\0')
		dql_p.key_file = NULL;
	if(dql_p.label && dql_p.label[0] == '\0')
		dql_p.label = NULL;
	if(dql_p.seal_mode && dql_p.seal_mode[0]) {
		if(dmq_seal_mode_from_name(dql_p.seal_mode, &m) != 0) {
			LM_ERR("dmqlib: seal_mode must be off, transition or required, "
				   "not '%s'\n",
					dql_p.seal_mode);
			return -1;
		}
	} else if(dql_p.key_file) {
		m = DMQ_SEAL_REQUIRED;
	}
	if(m != DMQ_SEAL_OFF && dql_p.key_file == NULL) {
		LM_ERR("dmqlib: seal_mode %s needs key_file\n", dmq_seal_mode_name(m));
		return -1;
	}
	dql_p.seal_mode_v = (int)m;
	if(dql_p.label) {
		l = strlen(dql_p.label);
		for(i = 0; i < l; i++)
			if((unsigned char)dql_p.label[i] <= ' '
					|| dql_p.label[i] == 0x7f)
				break;
		if(l > DMQ_MAX_LABEL || i < l) {
			LM_ERR("dmqlib: label must be 1..%d bytes without blanks or "
				   "control characters\n",
					DMQ_MAX_LABEL);
			return -1;
		}
	}
	if(dql_p.key_file) {
		/* read and check it now, so that a bad file stops the start-up
		 * with its file:line */
		char why[256];
		if(dql_io_check_keyfile(why, sizeof(why)) < 0) {
			LM_ERR("dmqlib: key_file: %s\n", why);
			return -1;
		}
	}
	return 0;
}

int dql_io_check_keyfile(char *why, size_t cap)
{
	dmq_config_t cfg;
	dmq_node_t *n = NULL;
	int rc;
	if(cap)
		why[0] = '\0';
	if(dql_p.key_file == NULL) {
		snprintf(why, cap, "no key_file configured");
		return -1;
	}
	dmq_config_init(&cfg, DMQ_PROFILE_LAN);
	cfg.name = "dmqlib-keycheck";
	cfg.advertise_addr = "udp://127.0.0.1:1";
	cfg.generation = 1;
	if(dmq_node_new(&cfg, NULL, &n) != 0) {
		snprintf(why, cap, "cannot check it (out of memory)");
		return -1;
	}
	rc = dmq_node_load_keys(n, dql_p.key_file, why, cap);
	dmq_node_delete(n);
	if(rc != 0 && cap && why[0] == '\0')
		snprintf(why, cap, "%s", dmq_strerror(rc));
	return rc == 0 ? 0 : -1;
}

/* publish the keyring's ids for dmqlib.keys (io only) */
static void dql_publish_keys(int ok, const char *why)
{
	uint32_t ids[16], primary = 0;
	size_t n = dmq_node_keys(dql_node, ids, 16, &primary), i;
	lock_get(&dql_sh->stats_lock);
	dql_sh->n_keys = (int)(n < 16 ? n : 16);
	for(i = 0; i < (size_t)dql_sh->n_keys; i++)
		dql_sh->key_ids[i] = ids[i];
	dql_sh->key_primary = primary;
	if(ok) {
		dql_sh->key_loads++;
		dql_sh->key_error[0] = '\0';
	} else {
		dql_sh->key_load_failed++;
		snprintf(dql_sh->key_error, sizeof(dql_sh->key_error), "%s", why);
	}
	lock_release(&dql_sh->stats_lock);
}

/* dmqlib.keys_reload: the keyring becomes the file's (first line primary);
 * a bad file changes nothing (dmq_node_load_keys) */
static void dql_reload_keys(void)
{
	char why[160];
	uint32_t primary = 0;
	int rc;
	why[0] = '\0';
	rc = dmq_node_load_keys(dql_node, dql_p.key_file, why, sizeof(why));
	if(rc != 0) {
		LM_ERR("dmqlib: keys_reload: %s (keyring unchanged)\n",
				why[0] ? why : dmq_strerror(rc));
		dql_publish_keys(0, why[0] ? why : dmq_strerror(rc));
		return;
	}
	dql_publish_keys(1, "");
	dmq_node_keys(dql_node, NULL, 0, &primary);
	LM_INFO("dmqlib: keys_reload: %d key(s), sealing with key id %08x\n",
			dql_sh->n_keys, (unsigned)primary);
}

/* "h:p" or "[v6]:p" -> sockaddr */
static int dql_parse_hostport(const char *s, struct sockaddr_storage *ss)
{
	char host[128];
	const char *colon;
	long port;
	char *end;
	size_t hl;
	memset(ss, 0, sizeof(*ss));
	if(s == NULL)
		return -1;
	if(s[0] == '[') {
		const char *rb = strchr(s, ']');
		if(rb == NULL || rb[1] != ':')
			return -1;
		hl = (size_t)(rb - s - 1);
		if(hl >= sizeof(host))
			return -1;
		memcpy(host, s + 1, hl);
		host[hl] = '\0';
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if(colon == NULL)
			return -1;
		hl = (size_t)(colon - s);
		if(hl == 0 || hl >= sizeof(host))
			return -1;
		memcpy(host, s, hl);
		host[hl] = '\0';
	}
	port = strtol(colon + 1, &end, 10);
	if(*end != '\0' || port < 0 || port > 65535)
		return -1;
	if(inet_pton(AF_INET, host, &((struct sockaddr_in *)ss)->sin_addr) == 1) {
		((struct sockaddr_in *)ss)->sin_family = AF_INET;
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
		return 0;
	}
	if(inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)ss)->sin6_addr)
			== 1) {
		((struct sockaddr_in6 *)ss)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
		return 0;
	}
	return -1;
}

/* bind (and for TCP listen on) a socket of type on ss: the fd, or -errno */
static int dql_bind_socket(const struct sockaddr_storage *ss, int type)
{
	int fd, one = 1;
	socklen_t sl = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
											  : sizeof(struct sockaddr_in);
	fd = socket(ss->ss_family, type | SOCK_CLOEXEC, 0);
	if(fd < 0)
		return -errno;
	if(type == SOCK_STREAM)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if(bind(fd, (const struct sockaddr *)ss, sl) < 0
			|| (type == SOCK_STREAM && listen(fd, 4096) < 0)) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

/* The fds bound in mod_init, handed to libdmq in the io process (libdmq
 * 0.3: dmq_uv_options_t.use_fds / udp_fd / tcp_fd); -1 when none. */
static int dql_udp_fd = -1;
static int dql_tcp_fd = -1;

/* The one place that deals with the sockets before the fork: bind libdmq's
 * UDP and TCP sockets here (still root, before the fork), so that a bad or
 * busy address stops start-up with a clear error; the io process hands them
 * to libdmq (dql_io_main), the other children close them
 * (dql_io_close_fds). */
int dql_io_sockets_prepare(void)
{
	struct sockaddr_storage ss;
	int fd;
	if(dql_p.sip_mode)
		return 0; /* no socket of libdmq's own: Kamailio's carry it all */
	if(dql_parse_hostport(dql_p.bind, &ss) < 0) {
		LM_ERR("dmqlib: bind '%s' is not an IP address with a port "
			   "(\"10.0.0.1:7946\", \"[::1]:7946\")\n",
				dql_p.bind);
		return -1;
	}
	if(((struct sockaddr_in *)&ss)->sin_port == 0) {
		LM_ERR("dmqlib: bind '%s': a fixed port is required\n", dql_p.bind);
		return -1;
	}
	fd = dql_bind_socket(&ss, SOCK_DGRAM);
	if(fd < 0) {
		LM_ERR("dmqlib: cannot bind UDP %s: %s\n", dql_p.bind, strerror(-fd));
		return -1;
	}
	dql_udp_fd = fd;
	if(!dql_p.no_tcp) {
		fd = dql_bind_socket(&ss, SOCK_STREAM);
		if(fd < 0) {
			LM_ERR("dmqlib: cannot bind TCP %s: %s\n", dql_p.bind,
					strerror(-fd));
			close(dql_udp_fd);
			dql_udp_fd = -1;
			return -1;
		}
		dql_tcp_fd = fd;
	}
	return 0;
}

void dql_io_close_fds(void)
{
	if(dql_udp_fd >= 0)
		close(dql_udp_fd);
	if(dql_tcp_fd >= 0)
		close(dql_tcp_fd);
	dql_udp_fd = dql_tcp_fd = -1;
}

/* ------------------------------------------------------------------------ */
/* helpers                                                                   */

/* Items for the workers are collected during one loop iteration and queued
 * at its end (check and prepare phases): one lock and at most one wake-up
 * per worker per iteration instead of one per message. */
static dql_item_t *dql_batch_head[DQL_MAX_WORKERS];
static dql_item_t **dql_batch_tail[DQL_MAX_WORKERS];
static int dql_batch_n[DQL_MAX_WORKERS];
static dql_outcome_t *dql_open_oc[DQL_MAX_WORKERS]; /* being filled */
#define DQL_BATCH_MAX 512 /* flushed early beyond this */

static void dql_ratelimited(const char *what, uint64_t total);

/* Queue worker w's batch. What does not fit stays here, in order, and is
 * retried at every loop iteration and housekeeping tick while the channels
 * are paused: a message libdmq has delivered (and acknowledged) is never
 * dropped for lack of room; the backlog is bounded by what libdmq delivers
 * before the pause takes effect. */
static void dql_append(int w, dql_item_t *it)
{
	if(dql_batch_tail[w] == NULL)
		dql_batch_tail[w] = &dql_batch_head[w];
	it->next = NULL;
	*dql_batch_tail[w] = it;
	dql_batch_tail[w] = &it->next;
	dql_batch_n[w]++;
}

/* the open outcome block joins the batch (it is complete, or its turn has
 * come: items keep their order) */
static void dql_close_oc(int w)
{
	if(dql_open_oc[w]) {
		dql_append(w, &dql_open_oc[w]->h);
		dql_open_oc[w] = NULL;
	}
}

static void dql_flush_worker(int w)
{
	dql_item_t *rest, *it;
	dql_close_oc(w);
	if(dql_batch_head[w] == NULL)
		return;
	rest = dql_queue_push_list(&dql_sh->in[w], dql_batch_head[w]);
	dql_batch_head[w] = rest;
	dql_batch_n[w] = 0;
	dql_batch_tail[w] = &dql_batch_head[w];
	for(it = rest; it; it = it->next) {
		dql_batch_n[w]++;
		dql_batch_tail[w] = &it->next;
	}
}

static void dql_flush_all(void)
{
	int w;
	for(w = 0; w < dql_sh->nworkers; w++)
		dql_flush_worker(w);
}

static void dql_to_worker(int w, dql_item_t *it)
{
	dql_close_oc(w);
	dql_append(w, it);
	if(dql_batch_n[w] >= DQL_BATCH_MAX)
		dql_flush_worker(w); /* (a backlog kept by a full queue stays) */
}

static uint64_t dql_now(void)
{
	return uv_now(&dql_loop);
}

static dql_lm_t *dql_lm_find(const char *name)
{
	int i;
	for(i = 0; i < dql_nlm; i++)
		if(strcmp(dql_lm[i].name, name) == 0)
			return &dql_lm[i];
	return NULL;
}

static dql_lm_t *dql_lm_by_slot(int slot, uint32_t gen)
{
	int i;
	for(i = 0; i < dql_nlm; i++)
		if(dql_lm[i].slot == slot && dql_lm[i].gen == gen)
			return &dql_lm[i];
	return NULL;
}

static void dql_count_outcome(int code)
{
	int i;
	switch(code) {
		case 200:
			i = 0;
			break;
		case 408:
			i = 1;
			break;
		case 404:
			i = 2;
			break;
		case 513:
			i = 3;
			break;
		case 503:
			i = 4;
			break;
		default:
			i = 5;
	}
	dql_sh->outcomes[i]++;
}

static int dql_code_of(dmq_outcome_t o)
{
	switch(o) {
		case DMQ_OUTCOME_DELIVERED:
			return 200;
		case DMQ_OUTCOME_EXPIRED:
		case DMQ_OUTCOME_DEAD:
		case DMQ_OUTCOME_LEFT:
			return 408;
		case DMQ_OUTCOME_UNKNOWN_DEST:
			return 404;
		case DMQ_OUTCOME_TOO_BIG:
			return 513;
		case DMQ_OUTCOME_CANCELLED:
		case DMQ_OUTCOME_SHUTDOWN:
		case DMQ_OUTCOME_QUEUE_FULL:
			return 503;
	}
	return 500;
}

static int dql_code_of_err(int err)
{
	switch(err) {
		case DMQ_ENOENT:
			return 404; /* not an alive member (any more) */
		case DMQ_ETOOBIG:
			return 513;
		default:
			return 503; /* EAGAIN (destination queue full), ESTATE, ... */
	}
}

static void dql_ratelimited(const char *what, uint64_t total)
{
	static uint64_t last_ms = 0, last_total = 0;
	uint64_t now = dql_now();
	if(now - last_ms >= 1000 || last_ms == 0) {
		LM_ERR("%s (total %llu, %llu since the last report)\n", what,
				(unsigned long long)total,
				(unsigned long long)(total - last_total));
		last_ms = now;
		last_total = total;
	}
}

/* report one destination's outcome to the worker that owns that member
 * (appended to that worker's open outcome block) */
static void dql_report(const dql_cb_t *cb, int peer, int slot, uint32_t gen,
		const char *dest, int code)
{
	dql_outcome_t *o;
	dql_outcome_e_t *e;
	int w;
	dql_count_outcome(code);
	if(cb->f == NULL)
		return;
	w = dql_worker_for(dest ? dest : "");
	o = dql_open_oc[w];
	if(o == NULL) {
		o = dql_item_alloc(dql_item_size(sizeof(*o)));
		if(o == NULL) {
			dql_sh->in_dropped++;
			dql_ratelimited("dmqlib: no shm for an outcome (dropped)",
					dql_sh->in_dropped);
			return;
		}
		o->h.next = NULL;
		o->h.size = dql_item_size(sizeof(*o));
		o->h.kind = DQL_K_OUTCOME;
		o->n = 0;
		dql_open_oc[w] = o;
	}
	e = &o->e[o->n++];
	e->cb = *cb;
	e->peer = peer;
	e->slot = slot;
	e->slot_gen = gen;
	e->code = code;
	if(o->n == DQL_OUTCOMES_PER_ITEM)
		dql_close_oc(w);
}

/* ------------------------------------------------------------------------ */
/* SIP mode: libdmq's bytes in KDMQ requests                                 */

/* "host:1.2.3.4:5060" / "host:[::1]:5060" -> ip, port */
static int dql_host_dst(const char *dst, struct ip_addr *ip, unsigned short *port)
{
	char h[64];
	const char *p = dst, *c;
	struct ip_addr *x;
	str hs;
	size_t l;
	long pn;
	if(strncmp(p, "host:", 5) != 0)
		return -1;
	p += 5;
	c = strrchr(p, ':');
	if(c == NULL)
		return -1;
	l = (size_t)(c - p);
	if(l > 1 && p[0] == '[' && p[l - 1] == ']') {
		p++;
		l -= 2;
	}
	if(l == 0 || l >= sizeof(h))
		return -1;
	memcpy(h, p, l);
	h[l] = '\0';
	pn = strtol(c + 1, NULL, 10);
	if(pn <= 0 || pn > 65535)
		return -1;
	hs.s = h;
	hs.len = (int)l;
	x = str2ip(&hs);
	if(x == NULL)
		x = str2ip6(&hs);
	if(x == NULL)
		return -1;
	*ip = *x;
	*port = (unsigned short)pn;
	return 0;
}

/* host transport send: one stateless KDMQ request per libdmq packet, from
 * this instance's SIP socket (UDP). No SIP reply is expected: libdmq
 * acknowledges and retransmits itself. */
static int dql_host_send(void *ud, const char *dst, const void *buf, size_t len)
{
	static char *out = NULL;
	static size_t cap = 0;
	struct dest_info di;
	struct ip_addr ip;
	unsigned short port;
	struct socket_info *si;
	char dhp[80], ipb[IP6_MAX_STR_SIZE + 1];
	int hl;
	(void)ud;

	if(dql_host_dst(dst, &ip, &port) < 0) {
		dql_sh->sip_out_failed++;
		return DMQ_EADDR;
	}
	/* the first SIP socket of the protocol (UDP: its address is the one
	 * advertised; TCP: connections go through tcp_main) */
	si = dql_p.sip_tcp ? tcp_listen : udp_listen;
	if(si == NULL) {
		dql_sh->sip_out_failed++;
		return DMQ_ETRANSPORT;
	}
	memset(ipb, 0, sizeof(ipb));
	ip_addr2sbuf(&ip, ipb, IP6_MAX_STR_SIZE);
	snprintf(dhp, sizeof(dhp), ip.af == AF_INET6 ? "[%s]:%u" : "%s:%u", ipb,
			(unsigned)port);
	if(cap < len + 1024) {
		free(out);
		cap = len + 1024 < 4096 ? 4096 : len + 1024;
		out = malloc(cap);
		if(out == NULL) {
			cap = 0;
			return DMQ_ENOMEM;
		}
	}
	dql_sip_seq++;
	hl = snprintf(out, cap,
			"KDMQ sip:dmqlib@%s SIP/2.0\r\n"
			"Via: SIP/2.0/%s %s;branch=z9hG4bKdql%x.%u\r\n"
			"From: <sip:dmqlib@%s>;tag=dql%x\r\n"
			"To: <sip:dmqlib@%s>\r\n"
			"Call-ID: dql-%x-%u@%s\r\n"
			"CSeq: 1 KDMQ\r\n"
			"Max-Forwards: 1\r\n"
			"Content-Type: application/x-dmqlib\r\n"
			"Content-Length: %zu\r\n\r\n",
			dhp, dql_p.sip_tcp ? "TCP" : "UDP", dql_sip_hostport,
			(unsigned)getpid(), dql_sip_seq,
			dql_sip_hostport, (unsigned)getpid(), dhp, (unsigned)getpid(),
			dql_sip_seq, dql_sip_hostport, len);
	if(hl < 0 || (size_t)hl + len > cap)
		return DMQ_ETOOBIG;
	memcpy(out + hl, buf, len);
	init_dest_info(&di);
	di.proto = dql_p.sip_tcp ? PROTO_TCP : PROTO_UDP;
	di.send_sock = si;
	init_su(&di.to, &ip, port);
	if((dql_p.sip_tcp ? msg_send(&di, out, hl + (int)len)
					  : udp_send(&di, out, (unsigned)(hl + len)))
			< 0) {
		dql_sh->sip_out_failed++;
		return DMQ_ETRANSPORT;
	}
	dql_sh->sip_out++;
	return 0;
}

static void dql_host_on_recv(
		dmq_transport_t *t, const char *from, const void *buf, size_t len)
{
	dmq_node_recv(dql_node, t, from, buf, len, dql_now());
}

/* ------------------------------------------------------------------------ */
/* outbound                                                                  */

static void dql_on_outcome(
		dmq_node_t *node, const dmq_outcome_info_t *o, void *ud)
{
	dql_pending_t *p = ud;
	(void)node;
	dql_report(&p->cb, p->peer, p->slot, p->gen, o->dest, dql_code_of(o->outcome));
	free(p);
}

/* one reliable unicast with its own outcome; an immediate error is
 * reported as the outcome (the consumer already got 0 from send) */
static void dql_send_one(dql_out_t *o, dql_lm_t *dest)
{
	dmq_send_opts_t so;
	dql_pending_t *p;
	const char *chan;
	int rc;

	chan = dql_peer_id(o->peer);
	p = malloc(sizeof(*p));
	if(p == NULL || chan == NULL) {
		free(p);
		dql_report(&o->cb, o->peer, dest->slot, dest->gen, dest->name, 503);
		return;
	}
	p->cb = o->cb;
	p->peer = o->peer;
	p->slot = dest->slot;
	p->gen = dest->gen;
	dmq_send_opts_init(&so);
	so.mode = DMQ_SEND_RELIABLE;
	so.ttl_ms = dql_p.ttl_ms > 0 ? (uint32_t)dql_p.ttl_ms : 0;
	so.cb = dql_on_outcome;
	so.user_data = p;
	/* wire payload: [ct_len:1][content type][body] */
	{
		size_t len = 1 + o->ct_len + o->body_len;
		char stackbuf[2048];
		char *buf = len <= sizeof(stackbuf) ? stackbuf : malloc(len);
		if(buf == NULL) {
			free(p);
			dql_report(&o->cb, o->peer, dest->slot, dest->gen, dest->name, 503);
			return;
		}
		buf[0] = (char)o->ct_len;
		memcpy(buf + 1, o->data, o->ct_len + o->body_len);
		rc = dmq_send(dql_node, dest->name, chan, buf, len, &so, dql_now(), NULL);
		if(buf != stackbuf)
			free(buf);
	}
	if(rc != 0) {
		free(p);
		dql_report(&o->cb, o->peer, dest->slot, dest->gen, dest->name,
				dql_code_of_err(rc));
	}
}

static void dql_on_bcast_outcome(
		dmq_node_t *node, const dmq_outcome_info_t *o, void *ud)
{
	dql_pending_t *p = ud;
	(void)node;
	/* a broadcast to nobody: no callback (stock calls none either) */
	if(o->delivered + o->failed > 0)
		dql_report(&p->cb, p->peer, -1, 0, NULL,
				o->outcome == DMQ_OUTCOME_DELIVERED ? 200
													: dql_code_of(o->outcome));
	free(p);
}

static void dql_bcast_one(dql_out_t *o, const char *chan)
{
	dmq_send_opts_t so;
	dql_pending_t *p;
	dql_lm_t *ex = NULL;
	const char *exn[1];
	size_t len = 1 + o->ct_len + o->body_len;
	char stackbuf[2048];
	char *buf;
	int rc;

	p = malloc(sizeof(*p));
	buf = len <= sizeof(stackbuf) ? stackbuf : malloc(len);
	if(p == NULL || buf == NULL) {
		free(p);
		if(buf != stackbuf)
			free(buf);
		dql_report(&o->cb, o->peer, -1, 0, NULL, 503);
		return;
	}
	p->cb = o->cb;
	p->peer = o->peer;
	p->slot = -1;
	p->gen = 0;
	dmq_send_opts_init(&so);
	so.mode = DMQ_SEND_RELIABLE;
	so.ttl_ms = dql_p.ttl_ms > 0 ? (uint32_t)dql_p.ttl_ms : 0;
	so.cb = dql_on_bcast_outcome;
	so.user_data = p;
	if(o->slot >= 0)
		ex = dql_lm_by_slot(o->slot, o->slot_gen);
	if(ex) {
		exn[0] = ex->name;
		so.exclude = exn;
		so.n_exclude = 1;
	}
	buf[0] = (char)o->ct_len;
	memcpy(buf + 1, o->data, o->ct_len + o->body_len);
	rc = dmq_broadcast(dql_node, chan, buf, len, &so, dql_now(), NULL);
	if(buf != stackbuf)
		free(buf);
	if(rc != 0) {
		free(p);
		dql_report(&o->cb, o->peer, -1, 0, NULL, dql_code_of_err(rc));
	}
}

static void dql_handle_out(dql_out_t *o)
{
	int i;
	const char *chan = dql_peer_id(o->peer);
	if(chan == NULL || o->peer >= dql_nchan) {
		/* a peer registered after the last channel scan: open it now */
		extern void dql_open_channels(void);
		dql_open_channels();
		chan = dql_peer_id(o->peer);
	}
	if(o->h.kind == DQL_K_SEND) {
		dql_lm_t *d = dql_lm_by_slot(o->slot, o->slot_gen);
		if(d == NULL || d->is_self || d->state > 1) {
			dql_report(&o->cb, o->peer, o->slot, o->slot_gen,
					d ? d->name : NULL, d && d->state > 1 ? 408 : 404);
			return;
		}
		dql_send_one(o, d);
		return;
	}
	/* bcast_mode "broadcast": one libdmq broadcast (partial: destinations
	 * without room are skipped and counted), `except` as its exclude list,
	 * and ONE response callback for the whole broadcast (node NULL) instead
	 * of one per destination. Not for the initial sync request (one member). */
	if(dql_p.bcast_broadcast && o->only_slot < 0 && chan != NULL) {
		dql_bcast_one(o, chan);
		return;
	}
	/* DQL_K_BCAST: every live member serving the channel, but `except`;
	 * or the single member chosen for an initial sync */
	for(i = 0; i < dql_nlm; i++) {
		dql_lm_t *d = &dql_lm[i];
		if(d->is_self || d->state > 1)
			continue;
		if(o->slot >= 0 && d->slot == o->slot && d->gen == o->slot_gen)
			continue;
		if(o->only_slot >= 0
				&& (d->slot != o->only_slot || d->gen != o->only_gen))
			continue;
		if(chan == NULL || !dmq_member_serves(dql_node, d->name, chan))
			continue;
		dql_send_one(o, d);
	}
}

static void dql_check_pause(void);

/* sends that reached the out queue after SIGTERM: the instance is stopping
 * (its workers too), so they get no response callback; counted and logged
 * when the io process exits, never dropped silently */
static uint64_t dql_dropped_at_exit;

static void dql_drain_out(void)
{
	dql_item_t *l, *next;
	int n = 0;
	while((l = dql_queue_take(&dql_sh->out)) != NULL) {
		for(; l; l = next) {
			next = l->next;
			if(!dql_closing
					&& (l->kind == DQL_K_SEND || l->kind == DQL_K_BCAST)) {
				dql_handle_out((dql_out_t *)l);
				n++;
			} else if(l->kind == DQL_K_SEND || l->kind == DQL_K_BCAST) {
				dql_dropped_at_exit++;
			} else if(!dql_closing && l->kind == DQL_K_FORGET) {
				dql_forget_t *f = (dql_forget_t *)l;
				int rc;
				f->name[sizeof(f->name) - 1] = '\0';
				rc = dmq_node_forget(dql_node, f->name);
				if(rc == 0)
					LM_INFO("dmqlib: dmq.remove: %s forgotten\n", f->name);
				else
					LM_WARN("dmqlib: dmq.remove: %s: %s\n", f->name,
							dmq_strerror(rc));
			} else if(!dql_closing && l->kind == DQL_K_KEYS && dql_p.key_file) {
				dql_reload_keys();
			} else if(!dql_closing && l->kind == DQL_K_SIPIN && dql_host_t) {
				dql_sipin_t *si = (dql_sipin_t *)l;
				si->from[sizeof(si->from) - 1] = '\0';
				dmq_host_transport_input(dql_host_t, si->from, si->data, si->len);
				n++;
			}
			dql_item_free(l);
		}
	}
	if(n && !dql_closing)
		dmq_uv_kick(dql_rt);
}

/* last look at the out queue before the io process exits */
static void dql_exit_report(void)
{
	dql_drain_out();
	if(dql_dropped_at_exit)
		LM_WARN("dmqlib: %llu sends queued after SIGTERM were dropped"
				" without a response callback (the instance is stopping)\n",
				(unsigned long long)dql_dropped_at_exit);
}

static void dql_on_out_readable(uv_poll_t *h, int status, int events)
{
	(void)h;
	(void)status;
	(void)events;
	dql_queue_sleeping(&dql_sh->out, 0); /* awake: pushes need no wake-up */
	dql_queue_wait(&dql_sh->out);        /* non-blocking: clears the counter */
	dql_drain_out();
	dql_check_pause();
}

/* ------------------------------------------------------------------------ */
/* inbound                                                                   */

static void dql_pause_all(int paused)
{
	int i;
	for(i = 0; i < dql_nchan; i++)
		if(dql_chan[i])
			dmq_channel_pause(dql_chan[i], paused);
	dql_paused = paused;
	if(paused)
		dql_sh->pauses++;
}

static void dql_check_pause(void)
{
	int i, pressure = 0;
	for(i = 0; i < dql_sh->nworkers; i++)
		if(dql_sh->in[i].pressure || dql_batch_head[i] != NULL)
			pressure = 1;
	if(pressure != dql_paused && !dql_closing) {
		dql_pause_all(pressure);
		if(!pressure)
			dmq_uv_kick(dql_rt);
	}
}

static void dql_on_message(dmq_node_t *node, dmq_channel_t *ch,
		const dmq_message_t *m, void *ud)
{
	int peer = (int)(intptr_t)ud;
	const unsigned char *p = m->data;
	size_t ct_len, body_len, i;
	dql_msg_t *it;
	dql_lm_t *s;
	int w;
	(void)node;
	(void)ch;

	/* payload: [ct_len][content type][body]; reject anything else */
	if(m->len < 1 || (ct_len = p[0]) == 0 || ct_len > DQL_MAX_CT
			|| 1 + ct_len > m->len)
		goto malformed;
	for(i = 0; i < ct_len; i++)
		if(p[1 + i] <= 0x20 || p[1 + i] >= 0x7f)
			goto malformed;
	body_len = m->len - 1 - ct_len;
	if(body_len > 0 && memchr(p + 1 + ct_len, '\0', body_len) != NULL)
		goto malformed; /* consumers read the body as a C string */

	it = dql_item_alloc(dql_item_size(sizeof(*it) + ct_len + body_len + 1));
	if(it == NULL) {
		dql_sh->in_dropped++;
		dql_ratelimited("dmqlib: no shm for an inbound message (dropped)",
				dql_sh->in_dropped);
		return;
	}
	memset(it, 0, sizeof(*it));
	it->h.size = dql_item_size(sizeof(*it) + ct_len + body_len + 1);
	it->h.kind = DQL_K_MSG;
	it->peer = peer;
	s = dql_lm_find(m->from);
	it->slot = s ? s->slot : -1;
	it->slot_gen = s ? s->gen : 0;
	it->ct_len = ct_len;
	it->body_len = body_len;
	memcpy(it->data, p + 1, ct_len + body_len);
	it->data[ct_len + body_len] = '\0';
	w = dql_worker_for(m->from);
	dql_to_worker(w, &it->h);
	if(dql_sh->in[w].pressure && !dql_paused)
		dql_pause_all(1);
	return;
malformed:
	dql_sh->in_malformed++;
	LM_NOTICE("dmqlib: malformed message from %s on '%s' rejected (%zu "
			  "bytes)\n",
			m->from, m->channel, m->len);
}

/* open a libdmq channel for every registered peer not opened yet */
void dql_open_channels(void)
{
	int n = dql_peer_count(), rc;
	while(dql_nchan < n && dql_nchan < DQL_MAX_PEERS) {
		const char *id = dql_peer_id(dql_nchan);
		rc = dmq_channel_open(dql_node, id, dql_on_message,
				(void *)(intptr_t)dql_nchan, &dql_chan[dql_nchan]);
		if(rc != 0) {
			LM_ERR("dmqlib: cannot open libdmq channel '%s': %s\n", id,
					dmq_strerror(rc));
			dql_chan[dql_nchan] = NULL;
		} else {
			LM_INFO("dmqlib: serving channel '%s'\n", id);
			if(dql_paused)
				dmq_channel_pause(dql_chan[dql_nchan], 1);
		}
		dql_nchan++;
	}
}

/* ------------------------------------------------------------------------ */
/* membership                                                                */

static int dql_ev_of(dmq_member_event_t ev)
{
	switch(ev) {
		case DMQ_EVENT_JOINED:
		case DMQ_EVENT_ALIVE_AGAIN:
			return DQL_EV_UP;
		case DMQ_EVENT_SUSPECT:
			return DQL_EV_SUSPECT;
		case DMQ_EVENT_DEAD:
			return DQL_EV_DOWN;
		case DMQ_EVENT_LEFT:
			return DQL_EV_LEFT;
		default:
			return -1;
	}
}

static void dql_member_uri(const dmq_member_info_t *m, char *out, size_t len)
{
	out[0] = '\0';
	if(m->meta && m->meta_len > 4 && m->meta_len < len
			&& memcmp(m->meta, "sip:", 4) == 0
			&& memchr(m->meta, '\0', m->meta_len) == NULL) {
		memcpy(out, m->meta, m->meta_len);
		out[m->meta_len] = '\0';
	}
}

static int dql_remote_live(void)
{
	int i, n = 0;
	for(i = 0; i < dql_nlm; i++)
		if(!dql_lm[i].is_self && dql_lm[i].state <= 1)
			n++;
	return n;
}

static void dql_check_init(void);

static void dql_on_member(dmq_node_t *node, dmq_member_event_t ev,
		const dmq_member_info_t *m, void *ud)
{
	char uri[DQL_MAX_URI + 1];
	dql_lm_t *l;
	int e;
	(void)node;
	(void)ud;

	l = dql_lm_find(m->name);
	if(ev == DMQ_EVENT_REAPED) {
		if(l) {
			dql_mirror_reap(l->slot);
			*l = dql_lm[--dql_nlm];
		}
		return;
	}
	dql_member_uri(m, uri, sizeof(uri));
	if(m->is_self && dql_self_uri[0])
		snprintf(uri, sizeof(uri), "%s", dql_self_uri);
	if(l == NULL) {
		if(dql_nlm >= DQL_LM_MAX) {
			LM_ERR("dmqlib: more than %d members: %s not mirrored\n",
					DQL_LM_MAX, m->name);
			return;
		}
		l = &dql_lm[dql_nlm];
		memset(l, 0, sizeof(*l));
		snprintf(l->name, sizeof(l->name), "%s", m->name);
		l->slot = dql_mirror_upsert(m->name, m->addr, uri, (int)m->state,
				m->generation, m->is_self, &l->gen);
		if(l->slot < 0) {
			LM_ERR("dmqlib: member mirror full: %s not mirrored\n", m->name);
			return;
		}
		dql_nlm++;
	} else {
		uint32_t g;
		int s = dql_mirror_upsert(m->name, m->addr, uri, (int)m->state,
				m->generation, m->is_self, &g);
		if(s >= 0) {
			l->slot = s;
			l->gen = g;
		}
	}
	l->state = (int)m->state;
	l->is_self = m->is_self;

	if(m->is_self)
		return;
	LM_INFO("dmqlib: member %s (%s) %s\n", m->name, m->addr,
			dmq_member_event_name(ev));
	e = dql_ev_of(ev);
	if(e >= 0 && dql_member_route_exists(e)) {
		dql_member_ev_t *it = dql_item_alloc(sizeof(*it));
		if(it) {
			memset(it, 0, sizeof(*it));
			it->h.size = sizeof(*it);
			it->h.kind = DQL_K_MEMBER;
			it->ev = e;
			it->slot = l->slot;
			snprintf(it->name, sizeof(it->name), "%s", m->name);
			snprintf(it->addr, sizeof(it->addr), "%s", m->addr);
			snprintf(it->uri, sizeof(it->uri), "%s", uri);
			dql_to_worker(dql_worker_for(m->name), &it->h);
		}
	}
	/* alone again: the next member to appear triggers the init callbacks
	 * again (stock re-arms them the same way) */
	if(dql_remote_live() == 0)
		memset(dql_init_done, 0, sizeof(dql_init_done));
	/* a member appeared or changed the channels it serves: maybe a channel
	 * can run its init callback now (the housekeeping tick also checks) */
	if(ev == DMQ_EVENT_JOINED || ev == DMQ_EVENT_ALIVE_AGAIN
			|| ev == DMQ_EVENT_CHANNELS_UPDATED)
		dql_check_init();
}

/* Init callbacks: once joined, for each channel with an init callback, when
 * a live member serves it, run the callback in a worker with that member as
 * the one destination of the sync request. */
static void dql_check_init(void)
{
	int c, i;
	if(!dmq_node_is_joined(dql_node))
		return;
	for(c = 0; c < dql_nchan; c++) {
		const char *chan;
		if(dql_init_done[c] || dql_chan[c] == NULL || !dql_peer_has_init(c))
			continue;
		chan = dql_peer_id(c);
		for(i = 0; i < dql_nlm; i++) {
			dql_lm_t *d = &dql_lm[i];
			dql_init_t *it;
			if(d->is_self || d->state != 0
					|| !dmq_member_serves(dql_node, d->name, chan))
				continue;
			it = dql_item_alloc(sizeof(*it));
			if(it == NULL)
				return;
			memset(it, 0, sizeof(*it));
			it->h.size = sizeof(*it);
			it->h.kind = DQL_K_INIT;
			it->peer = c;
			it->slot = d->slot;
			it->slot_gen = d->gen;
			dql_flush_worker(dql_worker_for(d->name));
			if(dql_queue_push(&dql_sh->in[dql_worker_for(d->name)], &it->h)
					< 0) {
				dql_item_free(&it->h);
				return; /* retried at the next housekeeping tick */
			}
			LM_INFO("dmqlib: channel '%s': initial sync from %s\n", chan,
					d->name);
			dql_init_done[c] = 1;
			break;
		}
	}
}

/* ------------------------------------------------------------------------ */
/* stats export                                                              */

static void dql_export_stats(void)
{
	dmq_stats_t s;
	dmq_delivery_stats_t d;
	int n = 0, i;
	dql_stat_kv_t kv[DQL_MAX_LIB_STATS];
#define KV(nm, val)                                                    \
	do {                                                               \
		if(n < DQL_MAX_LIB_STATS) {                                    \
			snprintf(kv[n].name, sizeof(kv[n].name), "%s", nm);        \
			kv[n].v = (uint64_t)(val);                                 \
			n++;                                                       \
		}                                                              \
	} while(0)
	dmq_node_stats(dql_node, &s);
	dmq_delivery_stats(dql_node, &d);
	KV("members_alive", s.members[DMQ_MEMBER_ALIVE]);
	KV("members_suspect", s.members[DMQ_MEMBER_SUSPECT]);
	KV("members_dead", s.members[DMQ_MEMBER_DEAD]);
	KV("members_left", s.members[DMQ_MEMBER_LEFT]);
	KV("health_score", s.health_score);
	KV("pkts_in", s.pkts_in);
	KV("pkts_out", s.pkts_out);
	KV("bytes_in", s.bytes_in);
	KV("bytes_out", s.bytes_out);
	for(i = 0; i < DMQ_DROP_COUNT; i++) {
		char nm[40];
		snprintf(nm, sizeof(nm), "drop_%s",
				dmq_drop_reason_name((dmq_drop_reason_t)i));
		KV(nm, s.drops[i]);
	}
	KV("probes", s.probes);
	KV("probe_failed", s.probe_failed);
	KV("suspicions", s.suspicions_raised);
	KV("deaths", s.deaths_declared);
	KV("sent_reliable", d.sent_reliable);
	KV("received", d.received);
	KV("delivered_app", d.delivered_app);
	KV("retransmits", d.retransmits);
	KV("duplicates", d.duplicates);
	KV("expired", d.expired);
	KV("dead", d.dead);
	KV("refused_full", d.refused_full);
	KV("dropped_no_channel", d.dropped_no_channel);
	KV("queued_msgs", d.queued_msgs);
	KV("queued_bytes", d.queued_bytes);
	KV("inflight", d.inflight);
	KV("rx_overflow", d.rx_overflow);
	KV("rx_expired", d.rx_expired);
	KV("unknown_sender", d.unknown_sender);
	KV("reassembly_drops", d.reassembly_drops);
#undef KV
	lock_get(&dql_sh->stats_lock);
	memcpy(dql_sh->lib, kv, sizeof(kv[0]) * n);
	dql_sh->nlib = n;
	lock_release(&dql_sh->stats_lock);
}

/* ------------------------------------------------------------------------ */
/* loop                                                                      */

static void dql_on_check(uv_check_t *h)
{
	(void)h;
	dql_flush_all();
	if(!dql_closing)
		dql_check_pause();
}

static void dql_on_prepare(uv_prepare_t *h)
{
	(void)h;
	dql_flush_all(); /* what timers and idle work produced, before polling */
	cfg_update();
	/* about to poll: producers must write the eventfd from now on */
	dql_queue_sleeping(&dql_sh->out, 1);
	dql_sh->io_loops++;
}

static void dql_on_housekeep(uv_timer_t *h)
{
	(void)h;
	if(dql_closing)
		return;
	dql_open_channels();
	dql_flush_all(); /* a backlog kept by a full worker queue */
	dql_drain_out(); /* a wake-up lost to a race costs at most a tick */
	dql_check_pause();
	dql_sh->joined = dmq_node_is_joined(dql_node);
	dql_check_init();
	if(dql_now() - dql_last_stats >= DQL_STATS_MS) {
		dql_last_stats = dql_now();
		dql_export_stats();
	}
}

static void dql_on_closed(void *ud)
{
	(void)ud;
	dql_exit_report();
	LM_INFO("dmqlib: left the cluster, io process exits\n");
	_exit(0);
}

static void dql_on_exit_timer(uv_timer_t *h)
{
	(void)h;
	dql_exit_report();
	LM_WARN("dmqlib: leave not finished in time, io process exits\n");
	_exit(0);
}

static void dql_on_sigterm(uv_signal_t *h, int sig)
{
	(void)h;
	(void)sig;
	if(dql_closing)
		return;
	/* what was queued before the signal is still handed to libdmq: it may
	 * be delivered while the leave is flushed */
	dql_drain_out();
	dql_closing = 1;
	LM_INFO("dmqlib: SIGTERM: leaving (flush at most %d ms)\n",
			dql_p.flush_ms);
	uv_timer_stop(&dql_hk);
	uv_poll_stop(&dql_outpoll);
	uv_timer_init(&dql_loop, &dql_exit_timer);
	uv_timer_start(&dql_exit_timer, dql_on_exit_timer,
			(uint64_t)dql_p.flush_ms + 1000, 0);
	dmq_uv_close(dql_rt, (uint32_t)dql_p.flush_ms, dql_on_closed, NULL);
}

static void dql_on_log(dmq_node_t *node, dmq_log_level_t level,
		const char *msg, void *ud)
{
	(void)node;
	(void)ud;
	switch(level) {
		case DMQ_LOG_ERROR:
			LM_ERR("libdmq: %s\n", msg);
			break;
		case DMQ_LOG_WARN:
			LM_WARN("libdmq: %s\n", msg);
			break;
		case DMQ_LOG_INFO:
			LM_INFO("libdmq: %s\n", msg);
			break;
		default:
			LM_DBG("libdmq: %s\n", msg);
	}
}

/* split "a, b c" into at most max pointers into buf */
static int dql_split(char *buf, const char **out, int max)
{
	int n = 0;
	char *tok, *save = NULL;
	for(tok = strtok_r(buf, ", \t", &save); tok && n < max;
			tok = strtok_r(NULL, ", \t", &save))
		out[n++] = tok;
	return n;
}

static void dql_self_sip_uri(void)
{
	struct socket_info *si;
	if(dql_p.sip_uri && dql_p.sip_uri[0]) {
		snprintf(dql_self_uri, sizeof(dql_self_uri), "%s", dql_p.sip_uri);
		return;
	}
	si = get_first_socket();
	if(si && si->address_str.s && si->port_no_str.s) {
		if(si->address.af == AF_INET6)
			snprintf(dql_self_uri, sizeof(dql_self_uri), "sip:[%.*s]:%.*s",
					si->address_str.len, si->address_str.s,
					si->port_no_str.len, si->port_no_str.s);
		else
			snprintf(dql_self_uri, sizeof(dql_self_uri), "sip:%.*s:%.*s",
					si->address_str.len, si->address_str.s,
					si->port_no_str.len, si->port_no_str.s);
	}
}

void dql_io_main(void)
{
	dmq_config_t cfg;
	dmq_uv_options_t opts;
	dmq_profile_t prof;
	int rc;

	if(uv_loop_init(&dql_loop) != 0) {
		LM_CRIT("dmqlib: uv_loop_init failed\n");
		_exit(1);
	}
	dql_lm = calloc(DQL_LM_MAX, sizeof(*dql_lm));
	if(dql_lm == NULL)
		_exit(1);
	dql_self_sip_uri();

	dmq_profile_from_name(dql_p.profile, &prof);
	dmq_config_init(&cfg, prof);
	cfg.name = dql_p.node_name && dql_p.node_name[0]
					   ? dql_p.node_name
					   : (dql_p.advertise && dql_p.advertise[0] ? dql_p.advertise
																: dql_p.bind);
	if(cfg.name == NULL || cfg.name[0] == '\0') {
		/* SIP mode without bind: named after the SIP socket */
		cfg.name = strncmp(dql_self_uri, "sip:", 4) == 0 ? dql_self_uri + 4
														  : dql_self_uri;
	}
	/* our SIP URI travels as member metadata: the others' mirrors use it
	 * for find_dmq_node_uri, dmq_is_from_node and the From of the requests
	 * handed to consumers */
	if(dql_self_uri[0]) {
		cfg.meta = dql_self_uri;
		cfg.meta_len = strlen(dql_self_uri);
	}
	if(dql_p.sip_mode) {
		/* members reach each other through their SIP sockets */
		const char *hp = strncmp(dql_self_uri, "sip:", 4) == 0
								 ? dql_self_uri + 4
								 : dql_self_uri;
		snprintf(dql_sip_hostport, sizeof(dql_sip_hostport), "%s", hp);
		snprintf(dql_host_addr, sizeof(dql_host_addr), "host:%s", hp);
		cfg.advertise_addr = dql_host_addr;
	}
	cfg.label = dql_p.label;
	dmq_uv_options_init(&opts);
	opts.bind = dql_p.bind;
	opts.advertise = dql_p.advertise && dql_p.advertise[0] ? dql_p.advertise
														   : NULL;
	opts.no_tcp = dql_p.no_tcp;
	/* the sockets bound in mod_init (dql_io_sockets_prepare); none in SIP
	 * mode (both -1: the host transport added below is the only one) */
	opts.use_fds = 1;
	opts.udp_fd = dql_udp_fd;
	opts.tcp_fd = dql_p.no_tcp ? -1 : dql_tcp_fd;
	opts.log_cb = dql_on_log;
	rc = dmq_uv_new(&dql_loop, &cfg, &opts, &dql_rt);
	dql_io_close_fds(); /* libdmq works on its own duplicates */
	if(rc != 0) {
		/* exiting stops the whole instance (main: SIGCHLD) */
		LM_CRIT("dmqlib: cannot start libdmq on %s: %s\n",
				dql_p.sip_mode ? dql_host_addr : dql_p.bind, dmq_strerror(rc));
		_exit(1);
	}
	dql_node = dmq_uv_node(dql_rt);
	if(dql_p.key_file) {
		/* keys before the first packet (docs/security.md); key ids only
		 * are ever logged */
		char why[256];
		uint32_t primary = 0;
		rc = dmq_node_load_keys(dql_node, dql_p.key_file, why, sizeof(why));
		if(rc == 0)
			rc = dmq_node_set_seal_mode(
					dql_node, (dmq_seal_mode_t)dql_p.seal_mode_v);
		if(rc != 0) {
			LM_CRIT("dmqlib: key_file: %s\n", why[0] ? why : dmq_strerror(rc));
			_exit(1);
		}
		dql_publish_keys(1, "");
		dmq_node_keys(dql_node, NULL, 0, &primary);
		LM_INFO("dmqlib: sealing with key id %08x, seal mode %s%s%s\n",
				(unsigned)primary,
				dmq_seal_mode_name((dmq_seal_mode_t)dql_p.seal_mode_v),
				dql_p.label ? ", label " : "", dql_p.label ? dql_p.label : "");
	}
	if(dql_p.queued_bytes_max > 0) {
		/* libdmq's node-wide bound on what is queued for all destinations
		 * (before the first send, as dmq_delivery_configure requires) */
		dmq_delivery_config_t dc;
		dmq_delivery_config_init(&dc);
		dc.max_queued_bytes = (size_t)dql_p.queued_bytes_max;
		rc = dmq_delivery_configure(dql_node, &dc);
		if(rc != 0)
			LM_ERR("dmqlib: queued_bytes_max %d refused by libdmq: %s\n",
					dql_p.queued_bytes_max, dmq_strerror(rc));
	}
	if(dql_p.sip_mode) {
		rc = dmq_host_transport_new(dql_host_send, NULL, &dql_host_t);
		if(rc == 0) {
			/* a KDMQ over UDP: stay below the largest SIP datagram */
			dmq_host_transport_set_mtu(dql_host_t, 60000);
			dql_host_t->on_recv = dql_host_on_recv;
			dql_host_t->owner = dql_rt;
			rc = dmq_node_add_transport(dql_node, dql_host_t);
		}
		if(rc != 0) {
			LM_CRIT("dmqlib: SIP mode: cannot add the host transport: %s\n",
					dmq_strerror(rc));
			_exit(1);
		}
	}
	snprintf(dql_sh->self_name, sizeof(dql_sh->self_name), "%s",
			dmq_node_name(dql_node));
	snprintf(dql_sh->self_addr, sizeof(dql_sh->self_addr), "%s",
			dmq_uv_addr(dql_rt));
	dmq_node_set_log_cb(dql_node, dql_on_log, DMQ_LOG_INFO, NULL);
	dmq_node_set_member_cb(dql_node, dql_on_member, NULL);
	{
		/* self in the mirror */
		dmq_member_info_t me;
		if(dmq_node_member(dql_node, dmq_node_name(dql_node), &me) == 0)
			dql_on_member(dql_node, DMQ_EVENT_JOINED, &me, NULL);
	}
	dql_open_channels();

	uv_prepare_init(&dql_loop, &dql_prep);
	uv_prepare_start(&dql_prep, dql_on_prepare);
	uv_check_init(&dql_loop, &dql_check);
	uv_check_start(&dql_check, dql_on_check);
	uv_poll_init(&dql_loop, &dql_outpoll, dql_sh->out.efd);
	uv_poll_start(&dql_outpoll, UV_READABLE, dql_on_out_readable);
	uv_timer_init(&dql_loop, &dql_hk);
	uv_timer_start(&dql_hk, dql_on_housekeep, DQL_HOUSEKEEP_MS,
			DQL_HOUSEKEEP_MS);
	uv_signal_init(&dql_loop, &dql_sigterm);
	uv_signal_start(&dql_sigterm, dql_on_sigterm, SIGTERM);

	if(dql_p.seeds && dql_p.seeds[0]) {
		char *buf = strdup(dql_p.seeds);
		const char *seeds[64];
		int n = buf ? dql_split(buf, seeds, 64) : 0;
		if(dql_p.sip_mode) {
			/* seeds are SIP host:port: libdmq host addresses, no DNS */
			static char hs[64][DQL_MAX_ADDR + 1];
			int i;
			for(i = 0; i < n; i++) {
				snprintf(hs[i], sizeof(hs[i]), "host:%s",
						strncmp(seeds[i], "sip:", 4) == 0 ? seeds[i] + 4
														  : seeds[i]);
				seeds[i] = hs[i];
			}
			rc = n > 0 ? dmq_node_join(dql_node, seeds, (size_t)n, dql_now())
					   : DMQ_EINVAL;
			dmq_uv_kick(dql_rt);
		} else {
			rc = n > 0 ? dmq_uv_join(dql_rt, seeds, (size_t)n) : DMQ_EINVAL;
		}
		if(rc != 0)
			LM_ERR("dmqlib: join through '%s' failed to start: %s\n",
					dql_p.seeds, dmq_strerror(rc));
		/* buf stays allocated: the process lives as long as the node */
	}
	dql_sh->io_ready = 1;
	LM_INFO("dmqlib: libdmq node '%s' on %s (profile %s, SIP %s)\n",
			dmq_node_name(dql_node), dmq_uv_addr(dql_rt), dql_p.profile,
			dql_self_uri[0] ? dql_self_uri : "-");

	uv_run(&dql_loop, UV_RUN_DEFAULT);
	/* never return into Kamailio's code (this would become a second main) */
	_exit(0);
}
