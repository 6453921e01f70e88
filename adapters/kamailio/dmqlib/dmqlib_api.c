/* dmqlib - the stock dmq API (bind_dmq), the peer registry and the member
 * mirror. Kamailio side: compiled against the stock modules/dmq headers of
 * the same tree, so dmq_api_t, dmq_peer_t and dmq_node_t have exactly the
 * stock layout.
 *
 * - register_dmq_peer copies the consumer's (stack) struct into a shm
 *   registry created on first use: consumers call it from their own mod_init,
 *   possibly before ours. Each peer id is a libdmq channel; the io process
 *   opens the channels it finds in the registry.
 * - send_message / bcast_message copy body and content type into one shm
 *   item and push it on the outbound queue: they never block (consumers call
 *   them holding their own locks) and a full queue is a counted drop
 *   (return -1, logged rate-limited).
 * - The member mirror is written only by the io process and read by anyone
 *   (find_dmq_node_uri, except filtering, dmq_is_from_node, RPC lists, the
 *   node handed to callbacks).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../../core/dprint.h"
#include "../../core/ip_addr.h"
#include "../../core/mem/shm_mem.h"
#include "../../core/parser/parse_uri.h"
#include "../../core/resolve.h"
#include "../../core/ut.h"

#include "dmqlib_kam.h"

dql_registry_t *dql_reg = NULL;
dql_mirror_t *dql_mirror = NULL;

int dql_init_peer = -1;
int dql_init_slot = -1;
uint32_t dql_init_gen = 0;

static uint64_t dql_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* one error line per second at most, with the number suppressed */
static void dql_ratelimited(const char *what, uint64_t total)
{
	static uint64_t last_ms = 0, last_total = 0;
	uint64_t now = dql_mono_ms();
	if(now - last_ms >= 1000) {
		LM_ERR("%s (total %llu, %llu since the last report)\n", what,
				(unsigned long long)total,
				(unsigned long long)(total - last_total));
		last_ms = now;
		last_total = total;
	}
}

/* ------------------------------------------------------------------------ */
/* registry                                                                  */

int dql_registry_init(void)
{
	if(dql_reg)
		return 0;
	dql_reg = shm_malloc(sizeof(*dql_reg));
	if(dql_reg == NULL) {
		SHM_MEM_ERROR;
		return -1;
	}
	memset(dql_reg, 0, sizeof(*dql_reg));
	if(lock_init(&dql_reg->lock) == NULL) {
		shm_free(dql_reg);
		dql_reg = NULL;
		return -1;
	}
	return 0;
}

static int dql_valid_peer_id(const str *id)
{
	int i;
	if(id == NULL || id->s == NULL || id->len <= 0
			|| id->len > DQL_MAX_PEER_ID)
		return 0;
	for(i = 0; i < id->len; i++) {
		unsigned char c = (unsigned char)id->s[i];
		if(c <= 0x20 || c >= 0x7f)
			return 0;
	}
	return 1;
}

dql_pentry_t *dql_find_peer(str *id)
{
	int i, n;
	if(dql_reg == NULL || id == NULL)
		return NULL;
	n = dql_reg->count;
	for(i = 0; i < n; i++) {
		dql_pentry_t *e = &dql_reg->p[i];
		if(e->peer.peer_id.len == id->len
				&& memcmp(e->peer.peer_id.s, id->s, id->len) == 0)
			return e;
	}
	return NULL;
}

dmq_peer_t *dql_register_peer(dmq_peer_t *peer)
{
	dql_pentry_t *e;
	int n;

	if(peer == NULL) {
		LM_ERR("dmqlib: register_dmq_peer(NULL)\n");
		return NULL;
	}
	if(!dql_valid_peer_id(&peer->peer_id)) {
		LM_ERR("dmqlib: cannot register peer '%.*s': a peer id is 1..%d "
			   "printable characters without spaces\n",
				peer->peer_id.s ? peer->peer_id.len : 0,
				peer->peer_id.s ? peer->peer_id.s : "", DQL_MAX_PEER_ID);
		return NULL;
	}
	if(dql_reg == NULL && dql_registry_init() < 0) {
		LM_ERR("dmqlib: cannot register peer '%.*s': no shared memory for "
			   "the registry\n",
				peer->peer_id.len, peer->peer_id.s);
		return NULL;
	}
	lock_get(&dql_reg->lock);
	if(dql_find_peer(&peer->peer_id) != NULL) {
		lock_release(&dql_reg->lock);
		LM_ERR("dmqlib: cannot register peer '%.*s': already registered "
			   "(two modules use the same dmq channel?)\n",
				peer->peer_id.len, peer->peer_id.s);
		return NULL;
	}
	n = dql_reg->count;
	if(n >= DQL_MAX_PEERS) {
		lock_release(&dql_reg->lock);
		LM_ERR("dmqlib: cannot register peer '%.*s': at most %d peers "
			   "(libdmq channels per member)\n",
				peer->peer_id.len, peer->peer_id.s, DQL_MAX_PEERS);
		return NULL;
	}
	e = &dql_reg->p[n];
	memset(e, 0, sizeof(*e));
	/* the caller's struct is often on its stack with `next` uninitialised:
	 * copy the fields, never the pointer */
	e->peer.callback = peer->callback;
	e->peer.init_callback = peer->init_callback;
	memcpy(e->id, peer->peer_id.s, peer->peer_id.len);
	e->peer.peer_id.s = e->id;
	e->peer.peer_id.len = peer->peer_id.len;
	if(peer->description.s && peer->description.len > 0) {
		int dl = peer->description.len < (int)sizeof(e->desc) - 1
						 ? peer->description.len
						 : (int)sizeof(e->desc) - 1;
		memcpy(e->desc, peer->description.s, dl);
		e->peer.description.len = dl;
	}
	e->peer.description.s = e->desc;
	e->peer.next = NULL;
	e->idx = n;
	membar_write();
	dql_reg->count = n + 1;
	lock_release(&dql_reg->lock);
	LM_INFO("dmqlib: peer '%s' registered (libdmq channel %d)\n", e->id, n);
	/* registered at run time (cfg dmq_bcast_message): wake io so that it
	 * opens the channel */
	if(dql_sh)
		dql_queue_wake(&dql_sh->out);
	return &e->peer;
}

int dql_peer_count(void)
{
	return dql_reg ? dql_reg->count : 0;
}

const char *dql_peer_id(int idx)
{
	if(dql_reg == NULL || idx < 0 || idx >= dql_reg->count)
		return NULL;
	return dql_reg->p[idx].id;
}

int dql_peer_has_init(int idx)
{
	if(dql_reg == NULL || idx < 0 || idx >= dql_reg->count)
		return 0;
	return dql_reg->p[idx].peer.init_callback != NULL;
}

static int dql_peer_index(dmq_peer_t *peer)
{
	dql_pentry_t *e;
	if(dql_reg == NULL || peer == NULL)
		return -1;
	e = (dql_pentry_t *)peer;
	if(e < &dql_reg->p[0] || e >= &dql_reg->p[dql_reg->count])
		return -1;
	return e->idx;
}

/* ------------------------------------------------------------------------ */
/* member mirror                                                             */

int dql_mirror_init(void)
{
	dql_mirror = shm_malloc(sizeof(*dql_mirror));
	if(dql_mirror == NULL) {
		SHM_MEM_ERROR;
		return -1;
	}
	memset(dql_mirror, 0, sizeof(*dql_mirror));
	if(lock_init(&dql_mirror->lock) == NULL)
		return -1;
	return 0;
}

const char *dql_state_name(int state)
{
	switch(state) {
		case 0:
			return "alive";
		case 1:
			return "suspect";
		case 2:
			return "dead";
		case 3:
			return "left";
	}
	return "unknown";
}

static int dql_stock_status(int state)
{
	/* alive and suspect members still get messages (a suspect may refute);
	 * dead and left ones do not */
	return (state == 0 || state == 1) ? DMQ_NODE_ACTIVE : DMQ_NODE_DISABLED;
}

/* "udp://h:p" -> "h:p" */
static const char *dql_addr_hostport(const char *addr)
{
	const char *p = strstr(addr, "://");
	return p ? p + 3 : addr;
}

/* fill the stock node of e from e->uri (under the mirror lock) */
static void dql_fill_stock_node(dql_mentry_t *e)
{
	ip_addr_t *ip;
	memset(&e->node, 0, sizeof(e->node));
	e->node.local = e->is_self;
	e->node.orig_uri.s = e->uri;
	e->node.orig_uri.len = strlen(e->uri);
	e->node.status = dql_stock_status(e->state);
	if(parse_uri(e->node.orig_uri.s, e->node.orig_uri.len, &e->node.uri) < 0) {
		LM_WARN("dmqlib: member %s: cannot parse its SIP URI '%s'\n", e->name,
				e->uri);
		memset(&e->node.uri, 0, sizeof(e->node.uri));
		return;
	}
	/* no DNS here (io must not block): an IP host only */
	ip = str2ip(&e->node.uri.host);
	if(ip == NULL)
		ip = str2ip6(&e->node.uri.host);
	if(ip)
		e->node.ip_address = *ip;
}

int dql_mirror_upsert(const char *name, const char *addr, const char *uri,
		int state, uint64_t generation, int is_self, uint32_t *slot_gen)
{
	int i, slot = -1, free_slot = -1, old_slot = -1;
	uint64_t oldest = UINT64_MAX, now;
	dql_mentry_t *e;

	if(dql_mirror == NULL)
		return -1;
	now = dql_mono_ms();
	lock_get(&dql_mirror->lock);
	for(i = 0; i < DQL_MIRROR_MAX; i++) {
		e = &dql_mirror->m[i];
		if(e->used && strcmp(e->name, name) == 0) {
			slot = i;
			break;
		}
		if(!e->used && free_slot < 0)
			free_slot = i;
		if(e->used == 2 && now - e->reaped_at >= (uint64_t)dql_p.reap_grace_ms
				&& e->reaped_at < oldest) {
			oldest = e->reaped_at;
			old_slot = i;
		}
	}
	if(slot < 0) {
		slot = free_slot >= 0 ? free_slot : old_slot;
		if(slot < 0) {
			lock_release(&dql_mirror->lock);
			return -1;
		}
		e = &dql_mirror->m[slot];
		e->gen++;
		snprintf(e->name, sizeof(e->name), "%s", name);
	}
	e = &dql_mirror->m[slot];
	e->used = 1;
	e->state = state;
	e->is_self = is_self;
	e->generation = generation;
	snprintf(e->addr, sizeof(e->addr), "%s", addr ? addr : "");
	if(uri && strncmp(uri, "sip:", 4) == 0)
		snprintf(e->uri, sizeof(e->uri), "%s", uri);
	else
		snprintf(e->uri, sizeof(e->uri), "sip:%s",
				dql_addr_hostport(addr ? addr : ""));
	dql_fill_stock_node(e);
	if(slot_gen)
		*slot_gen = e->gen;
	lock_release(&dql_mirror->lock);
	return slot;
}

void dql_mirror_reap(int slot)
{
	if(dql_mirror == NULL || slot < 0 || slot >= DQL_MIRROR_MAX)
		return;
	lock_get(&dql_mirror->lock);
	if(dql_mirror->m[slot].used == 1) {
		dql_mirror->m[slot].used = 2;
		dql_mirror->m[slot].reaped_at = dql_mono_ms();
		dql_mirror->m[slot].node.status = DMQ_NODE_DISABLED;
	}
	lock_release(&dql_mirror->lock);
}

int dql_mirror_name(int slot, uint32_t slot_gen, char *out, size_t outlen)
{
	int rc = -1;
	if(dql_mirror == NULL || slot < 0 || slot >= DQL_MIRROR_MAX)
		return -1;
	lock_get(&dql_mirror->lock);
	if(dql_mirror->m[slot].used == 1 && dql_mirror->m[slot].gen == slot_gen) {
		snprintf(out, outlen, "%s", dql_mirror->m[slot].name);
		rc = 0;
	}
	lock_release(&dql_mirror->lock);
	return rc;
}

int dql_mirror_live(int *slots, uint32_t *gens, int max)
{
	int i, n = 0;
	if(dql_mirror == NULL)
		return 0;
	lock_get(&dql_mirror->lock);
	for(i = 0; i < DQL_MIRROR_MAX && n < max; i++) {
		dql_mentry_t *e = &dql_mirror->m[i];
		if(e->used == 1 && !e->is_self && (e->state == 0 || e->state == 1)) {
			slots[n] = i;
			gens[n] = e->gen;
			n++;
		}
	}
	lock_release(&dql_mirror->lock);
	return n;
}

int dql_node_slot(dmq_node_t *node, uint32_t *gen)
{
	dql_mentry_t *e = (dql_mentry_t *)node;
	int slot;
	if(dql_mirror == NULL || node == NULL)
		return -1;
	if(e < &dql_mirror->m[0] || e >= &dql_mirror->m[DQL_MIRROR_MAX])
		return -1;
	slot = (int)(e - &dql_mirror->m[0]);
	if(&dql_mirror->m[slot] != e)
		return -1; /* not the start of an entry */
	if(gen)
		*gen = e->gen;
	return slot;
}

dql_mentry_t *dql_slot_entry(int slot, uint32_t gen)
{
	if(dql_mirror == NULL || slot < 0 || slot >= DQL_MIRROR_MAX)
		return NULL;
	if(dql_mirror->m[slot].used == 0 || dql_mirror->m[slot].gen != gen)
		return NULL;
	return &dql_mirror->m[slot];
}

static int dql_uri_match(dql_mentry_t *e, struct sip_uri *u)
{
	unsigned short p1, p2;
	if(e->node.uri.host.len != u->host.len
			|| strncasecmp(e->node.uri.host.s, u->host.s, u->host.len) != 0)
		return 0;
	p1 = e->node.uri.port_no ? e->node.uri.port_no : SIP_PORT;
	p2 = u->port_no ? u->port_no : SIP_PORT;
	return p1 == p2;
}

dmq_node_t *dql_find_node_uri(str *uri)
{
	struct sip_uri u;
	dmq_node_t *found = NULL;
	int i;
	if(dql_mirror == NULL || uri == NULL || uri->s == NULL)
		return NULL;
	if(parse_uri(uri->s, uri->len, &u) < 0)
		return NULL;
	lock_get(&dql_mirror->lock);
	for(i = 0; i < DQL_MIRROR_MAX; i++) {
		dql_mentry_t *e = &dql_mirror->m[i];
		if(e->used == 1 && e->node.uri.host.s && dql_uri_match(e, &u)) {
			found = &e->node;
			break;
		}
	}
	lock_release(&dql_mirror->lock);
	return found;
}

int dql_is_from_node(struct sip_msg *msg)
{
	int i, rc = -1;
	if(dql_mirror == NULL || msg == NULL)
		return -1;
	lock_get(&dql_mirror->lock);
	for(i = 0; i < DQL_MIRROR_MAX; i++) {
		dql_mentry_t *e = &dql_mirror->m[i];
		if(e->used == 1 && !e->is_self && (e->state == 0 || e->state == 1)
				&& e->node.ip_address.af
				&& ip_addr_cmp(&msg->rcv.src_ip, &e->node.ip_address)) {
			rc = 1;
			break;
		}
	}
	lock_release(&dql_mirror->lock);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* send / broadcast                                                          */

static dql_out_t *dql_out_new(int kind, int peer, str *body, str *ct,
		dmq_resp_cback_t *cb)
{
	static const str json = str_init("application/json");
	dql_out_t *o;
	size_t sz;
	if(ct == NULL || ct->s == NULL || ct->len <= 0)
		ct = (str *)&json;
	if(ct->len > DQL_MAX_CT) {
		LM_ERR("dmqlib: content type longer than %d bytes\n", DQL_MAX_CT);
		return NULL;
	}
	if(body == NULL || body->len < 0 || (body->len > 0 && body->s == NULL))
		return NULL;
	sz = dql_item_size(sizeof(*o) + ct->len + body->len);
	o = dql_item_alloc(sz);
	if(o == NULL) {
		SHM_MEM_ERROR;
		return NULL;
	}
	memset(o, 0, sizeof(*o));
	o->h.size = sz;
	o->h.kind = kind;
	o->peer = peer;
	o->slot = -1;
	o->only_slot = -1;
	if(cb) {
		o->cb.f = (void *)cb->f;
		o->cb.param = cb->param;
	}
	o->ct_len = ct->len;
	o->body_len = body->len;
	memcpy(o->data, ct->s, ct->len);
	if(body->len)
		memcpy(o->data + ct->len, body->s, body->len);
	return o;
}

static int dql_out_push(dql_out_t *o)
{
	if(dql_sh == NULL) {
		dql_item_free(&o->h);
		return -1;
	}
	if(dql_queue_push(&dql_sh->out, &o->h) < 0) {
		uint64_t n = __atomic_add_fetch(
				&dql_sh->send_refused, 1, __ATOMIC_RELAXED);
		dql_item_free(&o->h);
		dql_ratelimited("dmqlib: outbound queue full, message dropped "
						"(raise out_queue_max/out_queue_bytes?)",
				n);
		return -1;
	}
	return 0;
}

int dql_send_message(dmq_peer_t *peer, str *body, dmq_node_t *node,
		dmq_resp_cback_t *resp_cback, int max_forwards, str *content_type)
{
	int pidx, slot;
	uint32_t gen = 0;
	dql_out_t *o;
	(void)max_forwards; /* no SIP hops: libdmq delivers to the member */

	if(dql_sh == NULL) {
		LM_ERR("dmqlib: send_message before dmqlib's mod_init\n");
		return -1;
	}
	pidx = dql_peer_index(peer);
	if(pidx < 0) {
		__atomic_add_fetch(&dql_sh->send_bad, 1, __ATOMIC_RELAXED);
		LM_ERR("dmqlib: send_message: peer %p was not returned by "
			   "register_dmq_peer\n",
				peer);
		return -1;
	}
	slot = dql_node_slot(node, &gen);
	if(slot < 0 && node != NULL && node->orig_uri.s) {
		/* a copy of a node (not our pointer): find it by its URI */
		dmq_node_t *n2 = dql_find_node_uri(&node->orig_uri);
		slot = dql_node_slot(n2, &gen);
	}
	if(slot < 0) {
		__atomic_add_fetch(&dql_sh->send_bad, 1, __ATOMIC_RELAXED);
		LM_ERR("dmqlib: send_message on '%.*s': unknown destination node\n",
				peer->peer_id.len, peer->peer_id.s);
		return -1;
	}
	o = dql_out_new(DQL_K_SEND, pidx, body, content_type, resp_cback);
	if(o == NULL)
		return -1;
	o->slot = slot;
	o->slot_gen = gen;
	return dql_out_push(o);
}

int dql_bcast_message(dmq_peer_t *peer, str *body, dmq_node_t *except,
		dmq_resp_cback_t *resp_cback, int max_forwards, str *content_type)
{
	int pidx;
	dql_out_t *o;
	(void)max_forwards;

	if(dql_sh == NULL) {
		LM_ERR("dmqlib: bcast_message before dmqlib's mod_init\n");
		return -1;
	}
	pidx = dql_peer_index(peer);
	if(pidx < 0) {
		__atomic_add_fetch(&dql_sh->send_bad, 1, __ATOMIC_RELAXED);
		LM_ERR("dmqlib: bcast_message: peer %p was not returned by "
			   "register_dmq_peer\n",
				peer);
		return -1;
	}
	o = dql_out_new(DQL_K_BCAST, pidx, body, content_type, resp_cback);
	if(o == NULL)
		return -1;
	if(except) {
		uint32_t g;
		int s = dql_node_slot(except, &g);
		if(s < 0 && except->orig_uri.s)
			s = dql_node_slot(dql_find_node_uri(&except->orig_uri), &g);
		if(s >= 0) {
			o->slot = s;
			o->slot_gen = g;
		}
	}
	if(dql_init_peer == pidx && dql_init_slot >= 0) {
		/* from inside this peer's init callback: the sync request goes to
		 * the one member chosen by io, not to every member */
		o->only_slot = dql_init_slot;
		o->only_gen = dql_init_gen;
	}
	return dql_out_push(o);
}

int dql_bind_dmq(dmq_api_t *api)
{
	if(api == NULL) {
		LM_ERR("dmqlib: bind_dmq(NULL)\n");
		return -1;
	}
	/* consumers bind from their mod_init, maybe before ours: make the
	 * registry now so that register_dmq_peer works */
	if(dql_registry_init() < 0)
		return -1;
	api->register_dmq_peer = dql_register_peer;
	api->bcast_message = dql_bcast_message;
	api->send_message = dql_send_message;
	api->find_dmq_node_uri = dql_find_node_uri;
	return 0;
}
