/* dmq-peer: what libdmq tells the peer (members, log lines, messages,
 * outcomes of its sends), written as events. */
#include <stdlib.h>
#include <string.h>

#include "jsonl.h"
#include "peer.h"

static void on_member(dmq_node_t *node, dmq_member_event_t ev,
                      const dmq_member_info_t *m, void *ud) {
  (void)node;
  (void)ud;
  emit_member(m, dmq_member_event_name(ev));
}

static void on_log(dmq_node_t *node, dmq_log_level_t level, const char *msg,
                   void *ud) {
  static const char *const names[] = {"error", "warn", "info", "debug"};
  peer_t *p = ud;
  (void)node;
  fprintf(stderr, "dmq-peer[%s] %s: %s\n", p->name,
          (unsigned)level < 4 ? names[level] : "log", msg);
}

const char peer_kind_send[] = "send";
const char peer_kind_bcast[] = "bcast";
const char peer_kind_request[] = "request";

void peer_on_outcome(dmq_node_t *node, const dmq_outcome_info_t *o, void *ud) {
  const char *kind = ud;
  (void)node;
  if (kind == peer_kind_request && o->outcome == DMQ_OUTCOME_DELIVERED) {
    jb_begin(&g_jb, "reply");
    jb_ku64(&g_jb, "id", o->id);
    jb_kstr(&g_jb, "from", o->dest);
    jb_kstr(&g_jb, "channel", o->channel);
    jb_payload(&g_jb, o->reply, o->reply_len);
    jb_emit(&g_jb);
  }
  uint64_t delivered = o->delivered, failed = o->failed;
  if (kind != peer_kind_bcast) { /* a unicast: one destination */
    delivered = o->outcome == DMQ_OUTCOME_DELIVERED;
    failed = !delivered;
  }
  jb_begin(&g_jb, "outcome");
  jb_ku64(&g_jb, "id", o->id);
  jb_kstr(&g_jb, "kind", kind);
  jb_kstr(&g_jb, "outcome", dmq_outcome_name(o->outcome));
  jb_kstr(&g_jb, "dest", o->dest);
  jb_kstr(&g_jb, "channel", o->channel);
  jb_ku64(&g_jb, "delivered", delivered);
  jb_ku64(&g_jb, "failed", failed);
  if (kind == peer_kind_bcast)
    jb_ku64(&g_jb, "refused", o->refused); /* queue full: skipped */
  jb_emit(&g_jb);
}

/* Every message on a served channel is printed; every request is answered
 * with PEER_REPLY_PREFIX + its bytes. */
static void on_message(dmq_node_t *node, dmq_channel_t *ch,
                       const dmq_message_t *m, void *ud) {
  peer_t *p = ud;
  (void)ch;
  jb_begin(&g_jb, "message");
  jb_kstr(&g_jb, "from", m->from);
  jb_kstr(&g_jb, "sender_addr", m->sender_addr);
  jb_ku64(&g_jb, "sender_generation", m->sender_generation);
  jb_kstr(&g_jb, "channel", m->channel);
  jb_payload(&g_jb, m->data, m->len);
  jb_kbool(&g_jb, "reliable", m->reliable);
  jb_kbool(&g_jb, "request", m->request != NULL);
  jb_emit(&g_jb);
  if (m->request == NULL)
    return;
  size_t plen = sizeof(PEER_REPLY_PREFIX) - 1;
  char *r = malloc(plen + m->len + 1);
  if (r == NULL) {
    emit_refused("reply", DMQ_ENOMEM, m->from);
    return;
  }
  memcpy(r, PEER_REPLY_PREFIX, plen);
  if (m->len > 0)
    memcpy(r + plen, m->data, m->len);
  dmq_reply_handle_t h = *m->request;
  /* inside a libdmq callback: the runtime re-arms its timer afterwards */
  int rc = dmq_reply(node, &h, r, plen + m->len, uv_now(p->loop));
  free(r);
  if (rc != 0) {
    emit_refused("reply", rc, m->from);
    return;
  }
  jb_begin(&g_jb, "replied");
  jb_kstr(&g_jb, "to", m->from);
  jb_kstr(&g_jb, "channel", m->channel);
  jb_ku64(&g_jb, "len", plen + m->len);
  jb_emit(&g_jb);
}

/* Serve channel `name`; 0 or a libdmq error. The one place a channel is
 * opened. */
int peer_serve(peer_t *p, const char *name) {
  if (p->n_chans == DMQ_MAX_CHANNELS)
    return DMQ_ENOMEM;
  served_t *sv = &p->chans[p->n_chans];
  int rc = dmq_channel_open(dmq_uv_node(p->rt), name, on_message, p, &sv->ch);
  if (rc != 0)
    return rc;
  snprintf(sv->name, sizeof(sv->name), "%s", name);
  p->n_chans++;
  return 0;
}

/* ,"channels":[..] served now */
void peer_jb_channels(jbuf_t *b, const peer_t *p) {
  jb_key(b, "channels");
  jb_raw(b, "[", 1);
  for (size_t i = 0; i < p->n_chans; i++) {
    if (i > 0)
      jb_raw(b, ",", 1);
    jb_str(b, p->chans[i].name);
  }
  jb_raw(b, "]", 1);
}

uint64_t peer_now(peer_t *p) {
  uv_update_time(p->loop);
  return uv_now(p->loop);
}

void peer_install_callbacks(peer_t *p) {
  dmq_node_t *node = dmq_uv_node(p->rt);
  dmq_node_set_member_cb(node, on_member, p);
  if (p->log_level >= 0)
    dmq_node_set_log_cb(node, on_log, (dmq_log_level_t)p->log_level, p);
}
