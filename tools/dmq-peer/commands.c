/* dmq-peer: the commands read from stdin, one per line (`help` lists them;
 * main.c's top comment documents them and their events). */
#include <stdlib.h>
#include <string.h>

#include "jsonl.h"
#include "peer.h"

static int is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

typedef struct command {
  const char *name;
  const char *args; /* for help */
  const char *help;
  void (*run)(peer_t *p, char *args);
} command_t;

static int list_one(const dmq_member_info_t *m, void *ud) {
  size_t *count = ud;
  emit_member(m, NULL);
  (*count)++;
  return 0;
}

static void cmd_members(peer_t *p, char *args) {
  (void)args;
  size_t count = 0;
  dmq_node_members_foreach(dmq_uv_node(p->rt), list_one, &count);
  jb_begin(&g_jb, "members_end");
  jb_ku64(&g_jb, "count", count);
  jb_emit(&g_jb);
}

/* The counters of dmq_stats_t in the order "stats" prints them: U64(f) is
 * a uint64_t field printed as "f"; DROPS() the drops[] array (as
 * "drops_total" and a "drops" object keyed by the lower-case reason name);
 * MEMBERS() the members[] array (a "members" object keyed by state name). */
#define PEER_NODE_STATS(U64, DROPS, MEMBERS)                                   \
  U64(pkts_in)                                                                 \
  U64(pkts_out)                                                                \
  U64(bytes_in)                                                                \
  U64(bytes_out)                                                               \
  U64(msgs_in)                                                                 \
  U64(msgs_out)                                                                \
  DROPS()                                                                      \
  U64(probes)                                                                  \
  U64(probe_direct_ok)                                                         \
  U64(probe_indirect_ok)                                                       \
  U64(probe_failed)                                                            \
  U64(suspicions_raised)                                                       \
  U64(refutations)                                                             \
  U64(deaths_declared)                                                         \
  U64(pushpull_sent)                                                           \
  U64(pushpull_received)                                                       \
  U64(gossip_updates_sent)                                                     \
  MEMBERS()                                                                    \
  U64(health_score)                                                            \
  U64(events_lost)

/* The counters of dmq_delivery_stats_t, printed under "delivery". */
#define PEER_DELIVERY_STATS(U64)                                               \
  U64(sent_be)                                                                 \
  U64(sent_reliable)                                                           \
  U64(received)                                                                \
  U64(delivered_app)                                                           \
  U64(retransmits)                                                             \
  U64(duplicates)                                                              \
  U64(acks_sent)                                                               \
  U64(acks_received)                                                           \
  U64(dropped_be)                                                              \
  U64(dropped_no_channel)                                                      \
  U64(expired)                                                                 \
  U64(dead)                                                                    \
  U64(cancelled)                                                               \
  U64(refused_full)                                                            \
  U64(fragments_sent)                                                          \
  U64(fragments_received)                                                      \
  U64(reassembly_drops)                                                        \
  U64(queued_msgs)                                                             \
  U64(queued_bytes)                                                            \
  U64(inflight)                                                                \
  U64(stale_gen)                                                               \
  U64(unknown_sender)                                                          \
  U64(rx_expired)                                                              \
  U64(rx_overflow)                                                             \
  U64(dropped_paused)                                                          \
  U64(late_replies)                                                            \
  U64(rx_buffered)                                                             \
  U64(rx_buffered_bytes)                                                       \
  U64(rx_lost_be)                                                              \
  U64(bcast_refused)

/* The counters of dmq_stream_stats_t (the TCP transport), printed under
 * "stream" (absent with --no-tcp). */
#define PEER_STREAM_STATS(U64)                                                 \
  U64(frame_timeouts)                                                          \
  U64(idle_closes)                                                             \
  U64(oversize_frames)                                                         \
  U64(budget_drops)                                                            \
  U64(inbound_rejected)                                                        \
  U64(inbound_evicted)                                                         \
  U64(pool_evictions)                                                          \
  U64(connect_deferred)                                                        \
  U64(emfile_accept)                                                           \
  U64(emfile_connect)                                                          \
  U64(emfile_shed)                                                             \
  U64(accept_refused)                                                          \
  U64(accept_errors)                                                           \
  U64(inbound)                                                                 \
  U64(outbound)                                                                \
  U64(partial_bytes)                                                           \
  U64(partial_peak)

/* ,"drops_total":N,"drops":{"reason":N,...} */
static void jb_drops(jbuf_t *b, const dmq_stats_t *st) {
  uint64_t total = 0;
  for (int i = 0; i < DMQ_DROP_COUNT; i++)
    total += st->drops[i];
  jb_ku64(b, "drops_total", total);
  jb_kopen(b, "drops", '{');
  for (int i = 0; i < DMQ_DROP_COUNT; i++) {
    char key[32];
    const char *n = dmq_drop_reason_name((dmq_drop_reason_t)i);
    size_t j = 0;
    for (; n[j] != '\0' && j + 1 < sizeof(key); j++)
      key[j] = (char)((n[j] >= 'A' && n[j] <= 'Z') ? n[j] - 'A' + 'a' : n[j]);
    key[j] = '\0';
    jb_item_u64(b, i == 0, key, st->drops[i]);
  }
  jb_raw(b, "}", 1);
}

/* ,"members":{"alive":N,...} */
static void jb_members(jbuf_t *b, const dmq_stats_t *st) {
  jb_kopen(b, "members", '{');
  for (int s = 0; s < DMQ_MEMBER_STATE_COUNT; s++)
    jb_item_u64(b, s == 0, dmq_member_state_name((dmq_member_state_t)s),
                st->members[s]);
  jb_raw(b, "}", 1);
}

static void cmd_stats(peer_t *p, char *args) {
  (void)args;
  dmq_stats_t st;
  dmq_delivery_stats_t ds;
  dmq_node_stats(dmq_uv_node(p->rt), &st);
  dmq_delivery_stats(dmq_uv_node(p->rt), &ds);
  jbuf_t *b = &g_jb;
  jb_begin(b, "stats");
  jb_kstr(b, "name", p->name);
#define NODE_U64(f) jb_ku64(b, #f, st.f);
#define NODE_DROPS() jb_drops(b, &st);
#define NODE_MEMBERS() jb_members(b, &st);
  PEER_NODE_STATS(NODE_U64, NODE_DROPS, NODE_MEMBERS)
#undef NODE_U64
#undef NODE_DROPS
#undef NODE_MEMBERS
  int first = 1;
  jb_kopen(b, "delivery", '{');
#define DLV_U64(f)                                                             \
  jb_item_u64(b, first, #f, ds.f);                                             \
  first = 0;
  PEER_DELIVERY_STATS(DLV_U64)
#undef DLV_U64
  jb_raw(b, "}", 1);
  dmq_stream_stats_t ss;
  if (dmq_uv_stream_stats(p->rt, &ss) == 0) {
    first = 1;
    jb_kopen(b, "stream", '{');
#define STREAM_U64(f)                                                          \
  jb_item_u64(b, first, #f, ss.f);                                             \
  first = 0;
    PEER_STREAM_STATS(STREAM_U64)
#undef STREAM_U64
    jb_raw(b, "}", 1);
  }
  peer_jb_channels(b, p);
  jb_emit(b);
}

static void cmd_meta(peer_t *p, char *args) {
  meta_kv_t next[PEER_MAX_META_KEYS];
  size_t n = 0;
  const char *why = NULL;
  char *save = NULL;
  int any = 0;
  /* work on a copy: nothing changes unless every pair is good */
  if (meta_copy(next, p->meta, p->n_meta) != 0) {
    emit_error("meta: out of memory");
    return;
  }
  n = p->n_meta;
  for (char *tok = strtok_r(args, " \t", &save); tok != NULL;
       tok = strtok_r(NULL, " \t", &save)) {
    const char *k, *v;
    size_t klen;
    any = 1;
    if (meta_split(tok, &k, &klen, &v, &why) != 0 ||
        meta_merge(next, &n, k, klen, v, &why) != 0)
      goto fail;
  }
  if (!any) {
    why = "usage: meta K=V [K=V...]";
    goto fail;
  }
  char enc[DMQ_MAX_META];
  int len = meta_encode(next, n, enc, sizeof(enc));
  if (len < 0) {
    emit_error("meta: metadata larger than %d bytes", DMQ_MAX_META);
    meta_free(next, n);
    return;
  }
  uv_update_time(p->loop);
  int rc =
      dmq_node_set_meta(dmq_uv_node(p->rt), enc, (size_t)len, uv_now(p->loop));
  if (rc != 0) {
    emit_error("meta: %s", dmq_strerror(rc));
    meta_free(next, n);
    return;
  }
  dmq_uv_kick(p->rt);
  meta_free(p->meta, p->n_meta);
  memcpy(p->meta, next, n * sizeof(*next));
  p->n_meta = n;
  emit_ok("meta");
  return;
fail:
  emit_error("meta: %s", why);
  meta_free(next, n);
}

static void cmd_leave(peer_t *p, char *args) {
  (void)args;
  uv_update_time(p->loop);
  int rc = dmq_node_leave(dmq_uv_node(p->rt), uv_now(p->loop));
  if (rc != 0) {
    emit_error("leave: %s", dmq_strerror(rc));
    return;
  }
  dmq_uv_kick(p->rt);
  emit_ok("leave");
}

/* ---- messaging ---- */

/* The next blank-separated word of *s (NUL-terminated in place), or NULL;
 * *s moves past it and the blanks after it. */
static char *next_word(char **s) {
  char *w = *s;
  if (*w == '\0')
    return NULL;
  char *e = w;
  while (*e != '\0' && !is_space(*e))
    e++;
  if (*e != '\0') {
    *e++ = '\0';
    while (is_space(*e))
      e++;
  }
  *s = e;
  return w;
}

typedef struct count_serving {
  const dmq_node_t *node;
  const char *channel;
  uint64_t n;
} count_serving_t;

static int count_one(const dmq_member_info_t *m, void *ud) {
  count_serving_t *c = ud;
  if (!m->is_self &&
      (m->state == DMQ_MEMBER_ALIVE || m->state == DMQ_MEMBER_SUSPECT) &&
      dmq_member_serves(c->node, m->name, c->channel))
    c->n++;
  return 0;
}

static void emit_sent(peer_t *p, dmq_msg_id_t id, const char *kind,
                      const char *dest, const char *channel, int reliable,
                      size_t len) {
  jb_begin(&g_jb, "sent");
  jb_ku64(&g_jb, "id", id);
  jb_kstr(&g_jb, "kind", kind);
  jb_kstr(&g_jb, "dest", dest);
  jb_kstr(&g_jb, "channel", channel);
  jb_kbool(&g_jb, "reliable", reliable);
  jb_ku64(&g_jb, "len", len);
  if (kind == peer_kind_request)
    jb_ku64(&g_jb, "timeout_ms", p->request_timeout_ms);
  else if (reliable)
    jb_ku64(&g_jb, "ttl_ms", p->ttl_ms);
  if (kind == peer_kind_bcast) {
    /* destinations as this node sees them now (dmq_broadcast's rule) */
    count_serving_t c = {dmq_uv_node(p->rt), channel, 0};
    dmq_node_members_foreach(dmq_uv_node(p->rt), count_one, &c);
    jb_ku64(&g_jb, "dests", c.n);
  }
  jb_emit(&g_jb);
}

/* send / sendbe / request: MEMBER CHANNEL TEXT */
static void unicast(peer_t *p, char *args, const char *cmd, int mode) {
  char *dest = next_word(&args);
  char *channel = next_word(&args);
  if (dest == NULL || channel == NULL) {
    emit_error("usage: %s MEMBER CHANNEL TEXT", cmd);
    return;
  }
  size_t len = strlen(args);
  dmq_node_t *node = dmq_uv_node(p->rt);
  dmq_msg_id_t id = 0;
  int rc;
  const char *kind = peer_kind_send;
  if (mode < 0) {
    kind = peer_kind_request;
    rc = dmq_request(node, dest, channel, args, len, p->request_timeout_ms,
                     peer_on_outcome, (void *)peer_kind_request, peer_now(p),
                     &id);
  } else {
    dmq_send_opts_t o;
    dmq_send_opts_init(&o);
    o.mode = (dmq_send_mode_t)mode;
    if (mode == DMQ_SEND_RELIABLE) {
      o.ttl_ms = p->ttl_ms;
      o.cb = peer_on_outcome;
      o.user_data = (void *)peer_kind_send;
    }
    rc = dmq_send(node, dest, channel, args, len, &o, peer_now(p), &id);
  }
  if (rc != 0) {
    emit_refused(cmd, rc, dest);
    return;
  }
  dmq_uv_kick(p->rt);
  emit_sent(p, id, kind, dest, channel, mode != DMQ_SEND_BEST_EFFORT, len);
}

static void cmd_send(peer_t *p, char *args) {
  unicast(p, args, "send", DMQ_SEND_RELIABLE);
}

static void cmd_sendbe(peer_t *p, char *args) {
  unicast(p, args, "sendbe", DMQ_SEND_BEST_EFFORT);
}

static void cmd_request(peer_t *p, char *args) {
  unicast(p, args, "request", -1);
}

static void cmd_bcast(peer_t *p, char *args) {
  char *channel = next_word(&args);
  if (channel == NULL) {
    emit_error("usage: bcast CHANNEL TEXT");
    return;
  }
  size_t len = strlen(args);
  dmq_send_opts_t o;
  dmq_send_opts_init(&o);
  o.mode = DMQ_SEND_RELIABLE;
  o.ttl_ms = p->ttl_ms;
  o.cb = peer_on_outcome;
  o.user_data = (void *)peer_kind_bcast;
  dmq_msg_id_t id = 0;
  int rc = dmq_broadcast(dmq_uv_node(p->rt), channel, args, len, &o,
                         peer_now(p), &id);
  if (rc != 0) {
    emit_refused("bcast", rc, channel);
    return;
  }
  dmq_uv_kick(p->rt);
  emit_sent(p, id, peer_kind_bcast, NULL, channel, 1, len);
}

/* The one word of `cmd NAME`, or NULL (usage error emitted). */
static char *one_name(char *args, const char *cmd) {
  char *name = next_word(&args);
  if (name == NULL || *args != '\0') {
    emit_error("usage: %s NAME", cmd);
    return NULL;
  }
  return name;
}

static void cmd_channel(peer_t *p, char *args) {
  char *name = one_name(args, "channel");
  if (name == NULL)
    return;
  int rc = peer_serve(p, name);
  if (rc != 0) {
    emit_refused("channel", rc, name);
    return;
  }
  dmq_uv_kick(p->rt);
  emit_ok_channel("channel", name);
}

static void cmd_unchannel(peer_t *p, char *args) {
  char *name = one_name(args, "unchannel");
  if (name == NULL)
    return;
  size_t i = 0;
  while (i < p->n_chans && strcmp(p->chans[i].name, name) != 0)
    i++;
  if (i == p->n_chans) {
    emit_refused("unchannel", DMQ_ENOENT, name);
    return;
  }
  int rc = dmq_channel_close(p->chans[i].ch);
  if (rc != 0) {
    emit_refused("unchannel", rc, name);
    return;
  }
  memmove(&p->chans[i], &p->chans[i + 1],
          (p->n_chans - i - 1) * sizeof(p->chans[0]));
  p->n_chans--;
  dmq_uv_kick(p->rt);
  emit_ok_channel("unchannel", name);
}

/* `keys`: the keyring (ids only) and mode; `keys reload`: re-read
 * --key-file (a rotation step); `keys mode MODE`: set the seal mode. */
static void cmd_keys(peer_t *p, char *args) {
  dmq_node_t *node = dmq_uv_node(p->rt);
  char *verb = next_word(&args);
  if (verb != NULL && strcmp(verb, "reload") == 0 && *args == '\0') {
    char why[256];
    if (p->key_file == NULL) {
      emit_error("keys reload: no --key-file");
      return;
    }
    int rc = dmq_node_load_keys(node, p->key_file, why, sizeof why);
    if (rc != 0) {
      emit_error("keys reload: %s", why);
      return;
    }
    dmq_uv_kick(p->rt);
    emit_ok("keys");
    return;
  }
  if (verb != NULL && strcmp(verb, "mode") == 0) {
    char *m = next_word(&args);
    dmq_seal_mode_t mode;
    if (m == NULL || *args != '\0' || dmq_seal_mode_from_name(m, &mode) != 0) {
      emit_error("usage: keys mode off|transition|required");
      return;
    }
    int rc = dmq_node_set_seal_mode(node, mode);
    if (rc != 0) {
      emit_error("keys mode: %s", dmq_strerror(rc));
      return;
    }
    p->seal_mode = mode;
    dmq_uv_kick(p->rt);
    emit_ok("keys");
    return;
  }
  if (verb != NULL) {
    emit_error("usage: keys [reload | mode off|transition|required]");
    return;
  }
  uint32_t ids[DMQ_MAX_KEYS], primary;
  size_t n = dmq_node_keys(node, ids, DMQ_MAX_KEYS, &primary);
  char hex[16];
  jbuf_t b = {0};
  jb_begin(&b, "keys");
  jb_kstr(&b, "mode", dmq_seal_mode_name(dmq_node_seal_mode(node)));
  snprintf(hex, sizeof hex, "%08x", (unsigned)primary);
  jb_kstr(&b, "primary", n > 0 ? hex : NULL);
  jb_kopen(&b, "ids", '[');
  for (size_t i = 0; i < n && i < DMQ_MAX_KEYS; i++) {
    if (i > 0)
      jb_raw(&b, ",", 1);
    snprintf(hex, sizeof hex, "%08x", (unsigned)ids[i]);
    jb_str(&b, hex);
  }
  jb_raw(&b, "]", 1);
  jb_emit(&b);
  jb_free(&b);
}

static void cmd_quit(peer_t *p, char *args) {
  (void)args;
  peer_quit(p, "quit");
}

static void cmd_help(peer_t *p, char *args);

/* To add a command (e.g. messaging), add a row. Handlers run on the loop
 * thread, outside libdmq callbacks; call dmq_uv_kick() after changing the
 * node. args is the rest of the line, whitespace-trimmed (may be ""). */
static const command_t g_commands[] = {
    {"members", "", "list every member (member events, then members_end)",
     cmd_members},
    {"stats", "", "counters, members by state, health score, delivery counters",
     cmd_stats},
    {"meta", "K=V [K=V...]",
     "merge into this member's metadata (empty V removes K)", cmd_meta},
    {"send", "MEMBER CHANNEL TEXT",
     "reliable unicast (sent, then one outcome event)", cmd_send},
    {"sendbe", "MEMBER CHANNEL TEXT", "best-effort unicast (no outcome)",
     cmd_sendbe},
    {"bcast", "CHANNEL TEXT",
     "reliable broadcast to every member serving CHANNEL", cmd_bcast},
    {"request", "MEMBER CHANNEL TEXT",
     "request (answered \"ack:TEXT\": reply event, then outcome)", cmd_request},
    {"channel", "NAME", "serve channel NAME (print its messages)", cmd_channel},
    {"unchannel", "NAME", "stop serving channel NAME", cmd_unchannel},
    {"leave", "", "leave the cluster gracefully, keep running", cmd_leave},
    {"quit", "", "leave gracefully, close and exit 0", cmd_quit},
    {"keys", "[reload | mode MODE]",
     "key ids and seal mode; re-read --key-file; set the seal mode", cmd_keys},
    {"help", "", "list the commands", cmd_help},
};
#define N_COMMANDS (sizeof(g_commands) / sizeof(g_commands[0]))

static void cmd_help(peer_t *p, char *args) {
  (void)p;
  (void)args;
  jb_begin(&g_jb, "help");
  jb_key(&g_jb, "commands");
  jb_raw(&g_jb, "[", 1);
  for (size_t i = 0; i < N_COMMANDS; i++) {
    if (i > 0)
      jb_raw(&g_jb, ",", 1);
    jb_lit(&g_jb, "{\"name\":");
    jb_str(&g_jb, g_commands[i].name);
    jb_lit(&g_jb, ",\"args\":");
    jb_str(&g_jb, g_commands[i].args);
    jb_lit(&g_jb, ",\"help\":");
    jb_str(&g_jb, g_commands[i].help);
    jb_raw(&g_jb, "}", 1);
  }
  jb_raw(&g_jb, "]", 1);
  jb_emit(&g_jb);
}

void peer_run_line(peer_t *p, char *line) {
  while (is_space(*line))
    line++;
  size_t n = strlen(line);
  while (n > 0 && is_space(line[n - 1]))
    line[--n] = '\0';
  if (n == 0 || line[0] == '#')
    return;
  if (p->quitting) {
    emit_error("closing: '%s' ignored", line);
    return;
  }
  char *args = line;
  next_word(&args); /* line: the command, args: the rest */
  for (size_t i = 0; i < N_COMMANDS; i++) {
    if (strcmp(line, g_commands[i].name) == 0) {
      g_commands[i].run(p, args);
      return;
    }
  }
  emit_error("unknown command '%s' (try 'help')", line);
}

void peer_commands_usage(FILE *f) {
  for (size_t i = 0; i < N_COMMANDS; i++) {
    char head[64];
    snprintf(head, sizeof(head), "%s%s%s", g_commands[i].name,
             g_commands[i].args[0] ? " " : "", g_commands[i].args);
    fprintf(f, "  %-28s %s\n", head, g_commands[i].help);
  }
}
