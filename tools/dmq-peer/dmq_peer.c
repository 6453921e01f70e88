/* dmq-peer - one libdmq member as a process, driven by lines on stdin and
 * reporting on stdout as JSON lines.
 *
 *   dmq-peer --name NAME --bind ADDR [--advertise ADDR] [--seed SEED]...
 *            [--profile lan|wan|local|fast] [--meta K=V]... [--udp-only]
 *            [--channel NAME]... [--ttl-ms N] [--request-timeout-ms N]
 *            [--exit-on-eof] [--log-level LEVEL]
 *
 * It runs a dmq_uv_t (dmq/uv.h) on libuv's default loop. Commands, one per
 * line on stdin (see the command table below, or `help`):
 *   members        one "member" event per member, then "members_end"
 *   stats          one "stats" event (delivery counters under "delivery")
 *   meta K=V...    merge into this member's metadata ("k=v;k2=v2") and set it
 *                  (an empty value removes the key)
 *   send MEMBER CHANNEL TEXT     reliable unicast (dmq_send)
 *   sendbe MEMBER CHANNEL TEXT   best-effort unicast (no outcome)
 *   bcast CHANNEL TEXT           reliable broadcast (dmq_broadcast)
 *   request MEMBER CHANNEL TEXT  request (dmq_request); a dmq-peer answers
 *                  every request it receives with the reply "ack:<TEXT>"
 *   channel NAME / unchannel NAME   start / stop serving a channel
 *   leave          graceful leave; the process keeps running
 *   quit           graceful leave, close, exit 0
 *   help           one "help" event listing the commands
 * Unknown commands get an "error" event. Empty lines and lines starting with
 * '#' are ignored. TEXT is the rest of the line after the blanks that follow
 * CHANNEL (blanks at the end of the line are trimmed; it may be empty).
 *
 * stdin may be a terminal, a pipe, a FIFO, a regular file or /dev/null, or
 * closed. End of input does not stop the peer (a peer started in the
 * background keeps running) unless --exit-on-eof is given; then it is a
 * `quit`. SIGTERM and SIGINT are a `quit` too (a second one exits at once
 * with status 1).
 *
 * Events (stdout, one JSON object per line, flushed line by line; every one
 * has "event" and "t_ms", milliseconds since the peer started):
 *   {"event":"ready","name":..,"addr":..,"generation":N,"profile":..,
 *    "seeds":N,"wall_ms":N,"channels":[..],"ttl_ms":N}
 *                             once bound; wall_ms: start, ms since the epoch
 *   {"event":"member","name":..,"addr":..,"state":..,"incarnation":N,
 *    "generation":N,"self":false,"change":"joined|suspect|alive_again|dead|
 *    left|meta_updated|reaped","meta":{..}}                   member callback
 *   the same without "change" for each member listed by `members`
 *   {"event":"members_end","count":N}
 *   {"event":"sent","id":N,"kind":"send|bcast|request","dest":..,
 *    "channel":..,"reliable":B,"len":N[,"ttl_ms":N][,"dests":N]}
 *                                       a send accepted (dest null: bcast)
 *   {"event":"message","from":..,"channel":..,PAYLOAD,"reliable":B,
 *    "request":B}                       a message received on a served channel
 *   {"event":"replied","to":..,"channel":..,"len":N}   answered a request
 *   {"event":"reply","id":N,"from":..,"channel":..,PAYLOAD}
 *                                       the reply to our request id
 *   {"event":"outcome","id":N,"kind":..,"outcome":"delivered|expired|dead|
 *    left|cancelled|shutdown|unknown_dest|too_big","dest":..,"channel":..,
 *    "delivered":N,"failed":N}          every reliable send / request ends in
 *                                       exactly one (a request's "delivered"
 *                                       follows its "reply" event)
 *   {"event":"stats",...}   {"event":"ok","command":..}   {"event":"help",..}
 *   {"event":"error","message":..[,"command":..,"error":"DMQ_E..."]}
 *   {"event":"closed","reason":"quit|signal|eof"}             before exit 0
 * PAYLOAD is "text":..,"len":N,"utf8":B. A payload that is valid UTF-8 is
 * "text" as is (JSON-escaped; control bytes as \u00XX), "utf8":true; any
 * other payload has every byte >= 0x80 written as \u00XX too, "utf8":false,
 * so its bytes are the code points of "text" (latin-1). "len" is the byte
 * count.
 * Diagnostics (bad arguments, libdmq log lines) go to stderr. Bad arguments
 * and start-up failures (bind) exit with status 2.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include <dmq/dmq.h>
#include <dmq/uv.h>

#define PEER_EXIT_USAGE 2
#define PEER_MAX_SEEDS 32
#define PEER_MAX_META_KEYS 64
#define PEER_LINE_MAX 4096
#define PEER_READ_CHUNK 4096
/* How long a graceful close waits for the leave to be gossiped. */
#define PEER_FLUSH_MS 1000
#define PEER_NS_PER_MS 1000000u
#define PEER_US_PER_MS 1000u
#define PEER_MS_PER_S 1000u
/* Default TTL of reliable sends and replies (--ttl-ms). */
#define PEER_DEFAULT_TTL_MS 30000u
/* The automatic answer to a request: this prefix, then the request's bytes. */
#define PEER_REPLY_PREFIX "ack:"

/* ---------------------------------------------------------------------- */
/* state                                                                   */

typedef enum in_mode {
  IN_NONE = 0,
  IN_STREAM, /* terminal, pipe, FIFO, socket: a uv_stream_t */
  IN_FILE    /* regular file, /dev/null, other devices: uv_fs_read() */
} in_mode_t;

typedef struct meta_kv {
  char *k, *v;
} meta_kv_t;

/* A channel this peer serves. */
typedef struct served {
  char name[DMQ_MAX_CHANNEL + 1];
  dmq_channel_t *ch;
} served_t;

typedef struct peer {
  uv_loop_t *loop;
  dmq_uv_t *rt;

  /* arguments */
  const char *name, *bind, *advertise;
  const char *seeds[PEER_MAX_SEEDS];
  size_t n_seeds;
  dmq_profile_t profile;
  int udp_only, exit_on_eof;
  int log_level;                            /* -1: none */
  const char *init_chans[DMQ_MAX_CHANNELS]; /* --channel */
  size_t n_init_chans;
  uint32_t ttl_ms;             /* --ttl-ms */
  uint32_t request_timeout_ms; /* --request-timeout-ms; 0: libdmq's default */

  /* channels served, in opening order */
  served_t chans[DMQ_MAX_CHANNELS];
  size_t n_chans;

  /* this member's metadata, in insertion order */
  meta_kv_t meta[PEER_MAX_META_KEYS];
  size_t n_meta;

  uint64_t t0_ns;   /* uv_hrtime() at start */
  uint64_t t0_wall; /* wall clock at start, ms since the epoch */

  /* stdin */
  in_mode_t in_mode;
  union {
    uv_tty_t tty;
    uv_pipe_t pipe;
  } in;
  int in_open;     /* in.tty/in.pipe initialised and not closed */
  int in_fs_busy;  /* a uv_fs_read() is in flight */
  int in_eof;      /* end of input seen */
  int stdin_flags; /* fcntl(0, F_GETFL) at start, restored at exit */
  uv_fs_t in_req;
  char in_buf[PEER_READ_CHUNK];
  char line[PEER_LINE_MAX + 1];
  size_t line_len;
  int line_overflow;
  int line_nul; /* the line holds a NUL byte */

  uv_signal_t sigterm, sigint;
  int quitting;
  const char *quit_reason;
} peer_t;

static peer_t g_peer; /* static: reachable at exit, whatever the path */

static uint64_t peer_t_ms(const peer_t *p) {
  return (uv_hrtime() - p->t0_ns) / PEER_NS_PER_MS;
}

/* ---------------------------------------------------------------------- */
/* JSON lines                                                              */

typedef struct jbuf {
  char *p;
  size_t len, cap;
  int oom;
} jbuf_t;

static void jb_raw(jbuf_t *b, const char *s, size_t n) {
  if (b->oom)
    return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1)
      cap *= 2;
    char *np = realloc(b->p, cap);
    if (np == NULL) {
      b->oom = 1;
      return;
    }
    b->p = np;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void jb_lit(jbuf_t *b, const char *s) {
  jb_raw(b, s, strlen(s));
}

/* Length of the valid UTF-8 sequence starting at s (n bytes available), or
 * 0 if it is not one. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  size_t len;
  unsigned min;
  if (c < 0x80)
    return 1;
  if ((c & 0xE0) == 0xC0) {
    len = 2;
    min = 0x80;
    c &= 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3;
    min = 0x800;
    c &= 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4;
    min = 0x10000;
    c &= 0x07;
  } else {
    return 0;
  }
  if (len > n)
    return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80)
      return 0;
    c = (c << 6) | (s[i] & 0x3F);
  }
  if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
    return 0;
  return len;
}

/* A JSON string: quotes, escapes; bytes that are not valid UTF-8 come out as
 * the code point of the same value (\u0080..\u00ff), so the line is always
 * valid JSON. bytewise: every byte >= 0x80 does (latin-1: the string's code
 * points are the bytes). */
static void jb_strn_mode(jbuf_t *b, const char *s, size_t n, int bytewise) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *u = (const unsigned char *)s;
  jb_raw(b, "\"", 1);
  size_t i = 0;
  while (i < n) {
    unsigned c = u[i];
    char esc[8];
    if (c == '"' || c == '\\') {
      esc[0] = '\\';
      esc[1] = (char)c;
      jb_raw(b, esc, 2);
      i++;
    } else if (c == '\n') {
      jb_raw(b, "\\n", 2);
      i++;
    } else if (c == '\r') {
      jb_raw(b, "\\r", 2);
      i++;
    } else if (c == '\t') {
      jb_raw(b, "\\t", 2);
      i++;
    } else if (c < 0x20 || c == 0x7F) {
      memcpy(esc, "\\u00", 4);
      esc[4] = hex[c >> 4];
      esc[5] = hex[c & 0xF];
      jb_raw(b, esc, 6);
      i++;
    } else {
      size_t l = bytewise ? 0 : utf8_seq(u + i, n - i);
      if (l == 0 && c < 0x80) {
        jb_raw(b, s + i, 1);
        i++;
      } else if (l == 0) {
        memcpy(esc, "\\u00", 4);
        esc[4] = hex[c >> 4];
        esc[5] = hex[c & 0xF];
        jb_raw(b, esc, 6);
        i++;
      } else {
        jb_raw(b, s + i, l);
        i += l;
      }
    }
  }
  jb_raw(b, "\"", 1);
}

static void jb_strn(jbuf_t *b, const char *s, size_t n) {
  jb_strn_mode(b, s, n, 0);
}

static int utf8_valid(const void *data, size_t n) {
  const unsigned char *u = data;
  size_t i = 0;
  while (i < n) {
    size_t l = utf8_seq(u + i, n - i);
    if (l == 0)
      return 0;
    i += l;
  }
  return 1;
}

static void jb_str(jbuf_t *b, const char *s) {
  if (s == NULL)
    jb_lit(b, "null");
  else
    jb_strn(b, s, strlen(s));
}

static void jb_key(jbuf_t *b, const char *k) {
  jb_raw(b, ",", 1);
  jb_str(b, k);
  jb_raw(b, ":", 1);
}

static void jb_kstr(jbuf_t *b, const char *k, const char *v) {
  jb_key(b, k);
  jb_str(b, v);
}

static void jb_ku64(jbuf_t *b, const char *k, uint64_t v) {
  char num[24];
  jb_key(b, k);
  snprintf(num, sizeof(num), "%" PRIu64, v);
  jb_lit(b, num);
}

static void jb_kbool(jbuf_t *b, const char *k, int v) {
  jb_key(b, k);
  jb_lit(b, v ? "true" : "false");
}

static void jb_begin(jbuf_t *b, const char *event) {
  b->len = 0;
  b->oom = 0;
  jb_lit(b, "{\"event\":");
  jb_str(b, event);
  jb_ku64(b, "t_ms", peer_t_ms(&g_peer));
}

/* Close the object and write it as one line. */
static void jb_emit(jbuf_t *b) {
  jb_raw(b, "}\n", 2);
  if (b->oom) {
    static const char oom[] = "{\"event\":\"error\",\"message\":\"out of "
                              "memory formatting an event\"}\n";
    fputs(oom, stdout);
  } else {
    fwrite(b->p, 1, b->len, stdout);
  }
  fflush(stdout);
  b->len = 0;
}

static jbuf_t g_jb;

static void emit_error(const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  jb_begin(&g_jb, "error");
  jb_kstr(&g_jb, "message", msg);
  jb_emit(&g_jb);
}

static void emit_ok(const char *command) {
  jb_begin(&g_jb, "ok");
  jb_kstr(&g_jb, "command", command);
  jb_emit(&g_jb);
}

/* A refusal by libdmq: {"event":"error","command":..,"error":"DMQ_E..",
 * "message":"<command>: <strerror>[ (detail)]"}. */
static void emit_refused(const char *command, int rc, const char *detail) {
  char msg[512];
  snprintf(msg, sizeof(msg), "%s: %s%s%s%s", command, dmq_strerror(rc),
           detail ? " (" : "", detail ? detail : "", detail ? ")" : "");
  jb_begin(&g_jb, "error");
  jb_kstr(&g_jb, "command", command);
  jb_kstr(&g_jb, "error", dmq_err_name(rc));
  jb_kstr(&g_jb, "message", msg);
  jb_emit(&g_jb);
}

/* "text":..,"len":N,"utf8":B for a message payload (see the top comment). */
static void jb_payload(jbuf_t *b, const void *data, size_t len) {
  int utf8 = utf8_valid(data, len);
  jb_key(b, "text");
  jb_strn_mode(b, data, len, !utf8);
  jb_ku64(b, "len", len);
  jb_kbool(b, "utf8", utf8);
}

/* Metadata "k=v;k2=v2" as a JSON object. A segment without '=' is a key
 * with an empty value; empty segments are skipped. */
static void jb_meta(jbuf_t *b, const void *meta, size_t len) {
  if (meta == NULL || len == 0) {
    jb_raw(b, "{}", 2);
    return;
  }
  const char *s = meta, *end = s + len;
  int first = 1;
  jb_raw(b, "{", 1);
  while (s != NULL && s < end) {
    const char *semi = memchr(s, ';', (size_t)(end - s));
    const char *seg_end = semi ? semi : end;
    if (seg_end > s) {
      const char *eq = memchr(s, '=', (size_t)(seg_end - s));
      if (!first)
        jb_raw(b, ",", 1);
      first = 0;
      if (eq != NULL) {
        jb_strn(b, s, (size_t)(eq - s));
        jb_raw(b, ":", 1);
        jb_strn(b, eq + 1, (size_t)(seg_end - eq - 1));
      } else {
        jb_strn(b, s, (size_t)(seg_end - s));
        jb_raw(b, ":\"\"", 3);
      }
    }
    s = seg_end + 1;
  }
  jb_raw(b, "}", 1);
}

static void emit_member(const dmq_member_info_t *m, const char *change) {
  jb_begin(&g_jb, "member");
  jb_kstr(&g_jb, "name", m->name);
  jb_kstr(&g_jb, "addr", m->addr);
  jb_kstr(&g_jb, "state", dmq_member_state_name(m->state));
  jb_ku64(&g_jb, "incarnation", m->incarnation);
  jb_ku64(&g_jb, "generation", m->generation);
  jb_kbool(&g_jb, "self", m->is_self);
  if (change != NULL)
    jb_kstr(&g_jb, "change", change);
  jb_key(&g_jb, "meta");
  jb_meta(&g_jb, m->meta, m->meta_len);
  jb_emit(&g_jb);
}

/* ---------------------------------------------------------------------- */
/* metadata                                                                */

/* Key: non-empty, no '=', ';' or whitespace. Value: no ';'. */
static int meta_split(const char *kv, const char **k, size_t *klen,
                      const char **v, const char **why) {
  const char *eq = strchr(kv, '=');
  if (eq == NULL) {
    *why = "expected K=V";
    return -1;
  }
  if (eq == kv) {
    *why = "empty key";
    return -1;
  }
  for (const char *c = kv; c < eq; c++) {
    if (*c == ';' || *c == ' ' || *c == '\t' || (unsigned char)*c < 0x20) {
      *why = "key may not contain ';', spaces or control characters";
      return -1;
    }
  }
  if (strchr(eq + 1, ';') != NULL) {
    *why = "value may not contain ';'";
    return -1;
  }
  *k = kv;
  *klen = (size_t)(eq - kv);
  *v = eq + 1;
  return 0;
}

static void meta_free(meta_kv_t *m, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(m[i].k);
    free(m[i].v);
  }
}

static char *dup_n(const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (d != NULL) {
    memcpy(d, s, n);
    d[n] = '\0';
  }
  return d;
}

/* Merge K=V into (m, *n); an empty V removes K. */
static int meta_merge(meta_kv_t *m, size_t *n, const char *k, size_t klen,
                      const char *v, const char **why) {
  size_t i;
  for (i = 0; i < *n; i++)
    if (strlen(m[i].k) == klen && memcmp(m[i].k, k, klen) == 0)
      break;
  if (*v == '\0') {
    if (i < *n) {
      free(m[i].k);
      free(m[i].v);
      memmove(&m[i], &m[i + 1], (*n - i - 1) * sizeof(*m));
      (*n)--;
    }
    return 0;
  }
  char *nv = dup_n(v, strlen(v));
  if (nv == NULL) {
    *why = "out of memory";
    return -1;
  }
  if (i < *n) {
    free(m[i].v);
    m[i].v = nv;
    return 0;
  }
  if (*n == PEER_MAX_META_KEYS) {
    free(nv);
    *why = "too many keys";
    return -1;
  }
  m[*n].k = dup_n(k, klen);
  if (m[*n].k == NULL) {
    free(nv);
    *why = "out of memory";
    return -1;
  }
  m[*n].v = nv;
  (*n)++;
  return 0;
}

/* "k=v;k2=v2" into out (at most cap bytes, no NUL needed by the node).
 * Returns the length, or -1 if it does not fit. */
static int meta_encode(const meta_kv_t *m, size_t n, char *out, size_t cap) {
  size_t len = 0;
  for (size_t i = 0; i < n; i++) {
    size_t kl = strlen(m[i].k), vl = strlen(m[i].v);
    size_t need = kl + 1 + vl + (i > 0);
    if (len + need > cap)
      return -1;
    if (i > 0)
      out[len++] = ';';
    memcpy(out + len, m[i].k, kl);
    len += kl;
    out[len++] = '=';
    memcpy(out + len, m[i].v, vl);
    len += vl;
  }
  return (int)len;
}

/* ---------------------------------------------------------------------- */
/* node callbacks                                                          */

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

/* ---------------------------------------------------------------------- */
/* delivery callbacks                                                      */

/* Kinds of sends, passed as the outcome callback's user data. */
static const char g_kind_send[] = "send";
static const char g_kind_bcast[] = "bcast";
static const char g_kind_request[] = "request";

static void on_outcome(dmq_node_t *node, const dmq_outcome_info_t *o,
                       void *ud) {
  const char *kind = ud;
  (void)node;
  if (kind == g_kind_request && o->outcome == DMQ_OUTCOME_DELIVERED) {
    jb_begin(&g_jb, "reply");
    jb_ku64(&g_jb, "id", o->id);
    jb_kstr(&g_jb, "from", o->dest);
    jb_kstr(&g_jb, "channel", o->channel);
    jb_payload(&g_jb, o->reply, o->reply_len);
    jb_emit(&g_jb);
  }
  uint64_t delivered = o->delivered, failed = o->failed;
  if (kind != g_kind_bcast) { /* a unicast: one destination */
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

/* Serve channel `name`; 0 or a libdmq error. */
static int serve(peer_t *p, const char *name) {
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
static void jb_channels(jbuf_t *b, const peer_t *p) {
  jb_key(b, "channels");
  jb_raw(b, "[", 1);
  for (size_t i = 0; i < p->n_chans; i++) {
    if (i > 0)
      jb_raw(b, ",", 1);
    jb_str(b, p->chans[i].name);
  }
  jb_raw(b, "]", 1);
}

/* ---------------------------------------------------------------------- */
/* shutdown                                                                */

static void in_close(peer_t *p);

static void on_handle_closed(uv_handle_t *h) {
  (void)h;
}

static void on_rt_closed(void *ud) {
  peer_t *p = ud;
  p->rt = NULL;
  p->n_chans = 0; /* freed with the node */
  jb_begin(&g_jb, "closed");
  jb_kstr(&g_jb, "reason", p->quit_reason);
  jb_emit(&g_jb);
  /* the last handles of ours: uv_run() returns once they are closed */
  in_close(p);
  if (!uv_is_closing((uv_handle_t *)&p->sigterm))
    uv_close((uv_handle_t *)&p->sigterm, on_handle_closed);
  if (!uv_is_closing((uv_handle_t *)&p->sigint))
    uv_close((uv_handle_t *)&p->sigint, on_handle_closed);
}

/* Graceful: leave, let the leave spread (at most PEER_FLUSH_MS), close. */
static void peer_quit(peer_t *p, const char *reason) {
  if (p->quitting)
    return;
  p->quitting = 1;
  p->quit_reason = reason;
  in_close(p);
  dmq_uv_close(p->rt, PEER_FLUSH_MS, on_rt_closed, p);
}

static void on_signal(uv_signal_t *h, int signum) {
  peer_t *p = h->data;
  if (p->quitting) {
    fprintf(stderr, "dmq-peer[%s]: second %s, exiting at once\n", p->name,
            signum == SIGINT ? "SIGINT" : "SIGTERM");
    fflush(stdout);
    _exit(1);
  }
  peer_quit(p, "signal");
}

/* ---------------------------------------------------------------------- */
/* commands                                                                */

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

static void cmd_stats(peer_t *p, char *args) {
  (void)args;
  dmq_stats_t st;
  dmq_node_stats(dmq_uv_node(p->rt), &st);
  jbuf_t *b = &g_jb;
  jb_begin(b, "stats");
  jb_kstr(b, "name", p->name);
  jb_ku64(b, "pkts_in", st.pkts_in);
  jb_ku64(b, "pkts_out", st.pkts_out);
  jb_ku64(b, "bytes_in", st.bytes_in);
  jb_ku64(b, "bytes_out", st.bytes_out);
  jb_ku64(b, "msgs_in", st.msgs_in);
  jb_ku64(b, "msgs_out", st.msgs_out);
  uint64_t total = 0;
  for (int i = 0; i < DMQ_DROP_COUNT; i++)
    total += st.drops[i];
  jb_ku64(b, "drops_total", total);
  jb_key(b, "drops");
  jb_raw(b, "{", 1);
  for (int i = 0; i < DMQ_DROP_COUNT; i++) {
    char key[32];
    const char *n = dmq_drop_reason_name((dmq_drop_reason_t)i);
    size_t j = 0;
    for (; n[j] != '\0' && j + 1 < sizeof(key); j++)
      key[j] = (char)((n[j] >= 'A' && n[j] <= 'Z') ? n[j] - 'A' + 'a' : n[j]);
    key[j] = '\0';
    if (i > 0)
      jb_raw(b, ",", 1);
    jb_str(b, key);
    char num[24];
    snprintf(num, sizeof(num), ":%" PRIu64, st.drops[i]);
    jb_lit(b, num);
  }
  jb_raw(b, "}", 1);
  jb_ku64(b, "probes", st.probes);
  jb_ku64(b, "probe_direct_ok", st.probe_direct_ok);
  jb_ku64(b, "probe_indirect_ok", st.probe_indirect_ok);
  jb_ku64(b, "probe_failed", st.probe_failed);
  jb_ku64(b, "suspicions_raised", st.suspicions_raised);
  jb_ku64(b, "refutations", st.refutations);
  jb_ku64(b, "deaths_declared", st.deaths_declared);
  jb_ku64(b, "pushpull_sent", st.pushpull_sent);
  jb_ku64(b, "pushpull_received", st.pushpull_received);
  jb_ku64(b, "gossip_updates_sent", st.gossip_updates_sent);
  jb_key(b, "members");
  jb_raw(b, "{", 1);
  for (int s = 0; s < DMQ_MEMBER_STATE_COUNT; s++) {
    char num[48];
    snprintf(num, sizeof(num), "%s\"%s\":%" PRIu32, s > 0 ? "," : "",
             dmq_member_state_name((dmq_member_state_t)s), st.members[s]);
    jb_lit(b, num);
  }
  jb_raw(b, "}", 1);
  jb_ku64(b, "health_score", st.health_score);
  dmq_delivery_stats_t ds;
  dmq_delivery_stats(dmq_uv_node(p->rt), &ds);
  const struct {
    const char *k;
    uint64_t v;
  } dv[] = {
      {"sent_be", ds.sent_be},
      {"sent_reliable", ds.sent_reliable},
      {"received", ds.received},
      {"delivered_app", ds.delivered_app},
      {"retransmits", ds.retransmits},
      {"duplicates", ds.duplicates},
      {"acks_sent", ds.acks_sent},
      {"acks_received", ds.acks_received},
      {"dropped_be", ds.dropped_be},
      {"dropped_no_channel", ds.dropped_no_channel},
      {"expired", ds.expired},
      {"dead", ds.dead},
      {"cancelled", ds.cancelled},
      {"refused_full", ds.refused_full},
      {"fragments_sent", ds.fragments_sent},
      {"fragments_received", ds.fragments_received},
      {"reassembly_drops", ds.reassembly_drops},
      {"queued_msgs", ds.queued_msgs},
      {"queued_bytes", ds.queued_bytes},
      {"inflight", ds.inflight},
      {"stale_gen", ds.stale_gen},
      {"unknown_sender", ds.unknown_sender},
      {"rx_expired", ds.rx_expired},
      {"rx_overflow", ds.rx_overflow},
      {"dropped_paused", ds.dropped_paused},
      {"late_replies", ds.late_replies},
      {"rx_buffered", ds.rx_buffered},
      {"rx_buffered_bytes", ds.rx_buffered_bytes},
      {"rx_lost_be", ds.rx_lost_be},
  };
  jb_key(b, "delivery");
  jb_raw(b, "{", 1);
  for (size_t i = 0; i < sizeof(dv) / sizeof(dv[0]); i++) {
    char num[24];
    if (i > 0)
      jb_raw(b, ",", 1);
    jb_str(b, dv[i].k);
    snprintf(num, sizeof(num), ":%" PRIu64, dv[i].v);
    jb_lit(b, num);
  }
  jb_raw(b, "}", 1);
  jb_channels(b, p);
  jb_emit(b);
}

static void cmd_meta(peer_t *p, char *args) {
  meta_kv_t next[PEER_MAX_META_KEYS];
  size_t n = 0;
  const char *why = NULL;
  char *save = NULL;
  int any = 0;
  /* work on a copy: nothing changes unless every pair is good */
  for (size_t i = 0; i < p->n_meta; i++) {
    next[n].k = dup_n(p->meta[i].k, strlen(p->meta[i].k));
    next[n].v = dup_n(p->meta[i].v, strlen(p->meta[i].v));
    n++;
    if (next[n - 1].k == NULL || next[n - 1].v == NULL) {
      why = "out of memory";
      goto fail;
    }
  }
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

static int is_space(char c);

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

static uint64_t peer_now(peer_t *p) {
  uv_update_time(p->loop);
  return uv_now(p->loop);
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
  if (kind == g_kind_request)
    jb_ku64(&g_jb, "timeout_ms", p->request_timeout_ms);
  else if (reliable)
    jb_ku64(&g_jb, "ttl_ms", p->ttl_ms);
  if (kind == g_kind_bcast) {
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
  const char *kind = g_kind_send;
  if (mode < 0) {
    kind = g_kind_request;
    rc = dmq_request(node, dest, channel, args, len, p->request_timeout_ms,
                     on_outcome, (void *)g_kind_request, peer_now(p), &id);
  } else {
    dmq_send_opts_t o;
    memset(&o, 0, sizeof(o));
    o.mode = (dmq_send_mode_t)mode;
    if (mode == DMQ_SEND_RELIABLE) {
      o.ttl_ms = p->ttl_ms;
      o.cb = on_outcome;
      o.user_data = (void *)g_kind_send;
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
  memset(&o, 0, sizeof(o));
  o.mode = DMQ_SEND_RELIABLE;
  o.ttl_ms = p->ttl_ms;
  o.cb = on_outcome;
  o.user_data = (void *)g_kind_bcast;
  dmq_msg_id_t id = 0;
  int rc = dmq_broadcast(dmq_uv_node(p->rt), channel, args, len, &o,
                         peer_now(p), &id);
  if (rc != 0) {
    emit_refused("bcast", rc, channel);
    return;
  }
  dmq_uv_kick(p->rt);
  emit_sent(p, id, g_kind_bcast, NULL, channel, 1, len);
}

static void cmd_channel(peer_t *p, char *args) {
  char *name = next_word(&args);
  if (name == NULL || *args != '\0') {
    emit_error("usage: channel NAME");
    return;
  }
  int rc = serve(p, name);
  if (rc != 0) {
    emit_refused("channel", rc, name);
    return;
  }
  dmq_uv_kick(p->rt);
  jb_begin(&g_jb, "ok");
  jb_kstr(&g_jb, "command", "channel");
  jb_kstr(&g_jb, "channel", name);
  jb_emit(&g_jb);
}

static void cmd_unchannel(peer_t *p, char *args) {
  char *name = next_word(&args);
  if (name == NULL || *args != '\0') {
    emit_error("usage: unchannel NAME");
    return;
  }
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
  jb_begin(&g_jb, "ok");
  jb_kstr(&g_jb, "command", "unchannel");
  jb_kstr(&g_jb, "channel", name);
  jb_emit(&g_jb);
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

static int is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static void run_line(peer_t *p, char *line) {
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
  while (*args != '\0' && !is_space(*args))
    args++;
  if (*args != '\0') {
    *args++ = '\0';
    while (is_space(*args))
      args++;
  }
  for (size_t i = 0; i < N_COMMANDS; i++) {
    if (strcmp(line, g_commands[i].name) == 0) {
      g_commands[i].run(p, args);
      return;
    }
  }
  emit_error("unknown command '%s' (try 'help')", line);
}

/* ---------------------------------------------------------------------- */
/* stdin                                                                   */

static void in_feed(peer_t *p, const char *buf, size_t n) {
  for (size_t i = 0; i < n; i++) {
    char c = buf[i];
    if (c == '\n') {
      if (p->line_overflow)
        emit_error("command line longer than %d bytes ignored", PEER_LINE_MAX);
      else if (p->line_nul)
        emit_error("command line with a NUL byte ignored");
      else {
        p->line[p->line_len] = '\0';
        run_line(p, p->line);
      }
      p->line_len = 0;
      p->line_overflow = 0;
      p->line_nul = 0;
      /* `quit` stops reading: the rest of the input is not for us */
      if (p->quitting)
        return;
    } else if (p->line_len < PEER_LINE_MAX) {
      if (c == '\0')
        p->line_nul = 1;
      p->line[p->line_len++] = c;
    } else {
      p->line_overflow = 1;
    }
  }
}

static void in_on_eof(peer_t *p) {
  if (p->in_eof)
    return;
  p->in_eof = 1;
  /* a last line without a newline is still a command */
  if (p->line_len > 0 && !p->quitting)
    in_feed(p, "\n", 1);
  in_close(p);
  if (p->exit_on_eof)
    peer_quit(p, "eof");
}

static void in_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  peer_t *p = h->data;
  (void)suggested;
  buf->base = p->in_buf;
  buf->len = sizeof(p->in_buf);
}

static void in_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  peer_t *p = s->data;
  if (nread > 0)
    in_feed(p, buf->base, (size_t)nread);
  else if (nread < 0)
    in_on_eof(p); /* UV_EOF, or an error: either way no more input */
}

static void in_fs_next(peer_t *p);

static void in_on_fs_read(uv_fs_t *req) {
  peer_t *p = req->data;
  ssize_t n = req->result;
  uv_fs_req_cleanup(req);
  p->in_fs_busy = 0;
  if (p->in_mode != IN_FILE)
    return; /* closed meanwhile */
  if (n > 0) {
    in_feed(p, p->in_buf, (size_t)n);
    if (p->in_mode == IN_FILE)
      in_fs_next(p);
  } else {
    in_on_eof(p);
  }
}

static void in_fs_next(peer_t *p) {
  uv_buf_t b = uv_buf_init(p->in_buf, sizeof(p->in_buf));
  p->in_req.data = p;
  if (uv_fs_read(p->loop, &p->in_req, 0, &b, 1, -1, in_on_fs_read) == 0)
    p->in_fs_busy = 1;
  else
    in_on_eof(p);
}

static void in_start(peer_t *p) {
  uv_handle_type t = uv_guess_handle(0);
  int rc = -1;
  p->stdin_flags = fcntl(0, F_GETFL);
  if (t == UV_TTY) {
    /* libuv reopens the terminal: stdout's O_NONBLOCK is left alone */
    rc = uv_tty_init(p->loop, &p->in.tty, 0, 1);
  } else if (t == UV_NAMED_PIPE || t == UV_TCP) {
    rc = uv_pipe_init(p->loop, &p->in.pipe, 0);
    if (rc == 0) {
      rc = uv_pipe_open(&p->in.pipe, 0);
      if (rc != 0)
        uv_close((uv_handle_t *)&p->in.pipe, on_handle_closed);
    }
  }
  if (rc == 0) {
    uv_stream_t *s = (uv_stream_t *)&p->in;
    s->data = p;
    p->in_mode = IN_STREAM;
    p->in_open = 1;
    rc = uv_read_start(s, in_alloc, in_on_read);
    if (rc != 0)
      in_on_eof(p);
    return;
  }
  if (t == UV_UNKNOWN_HANDLE && fcntl(0, F_GETFD) < 0) {
    in_on_eof(p); /* closed */
    return;
  }
  /* regular file, /dev/null, another device: read on the thread pool */
  p->in_mode = IN_FILE;
  in_fs_next(p);
}

static void in_close(peer_t *p) {
  if (p->in_mode == IN_STREAM && p->in_open) {
    p->in_open = 0;
    uv_close((uv_handle_t *)&p->in, on_handle_closed);
  }
  /* an in-flight uv_fs_read() completes on its own and is then ignored */
  p->in_mode = IN_NONE;
}

/* ---------------------------------------------------------------------- */
/* arguments                                                               */

static void usage(FILE *f) {
  fprintf(f,
          "usage: dmq-peer --name NAME --bind ADDR [options]\n"
          "\n"
          "Runs one libdmq member. Commands are read from stdin, one per "
          "line;\n"
          "events are written to stdout as JSON lines.\n"
          "\n"
          "options:\n"
          "  --name NAME          member name (required, 1..64 bytes, unique)\n"
          "  --bind ADDR          host:port for UDP and TCP, e.g. "
          "127.0.0.1:7946 (required)\n"
          "  --advertise ADDR     host:port others use (default: the bound "
          "address)\n"
          "  --seed SEED          seed address (host:port) or DNS name "
          "(name, name:port,\n"
          "                       _dmq._udp.domain for SRV); repeatable, at "
          "most %d\n"
          "  --profile NAME       lan (default), wan, local or fast\n"
          "  --meta K=V           initial metadata; repeatable\n"
          "  --udp-only           no TCP (no push/pull stream, no stream "
          "fallback probe)\n"
          "  --channel NAME       serve channel NAME (1..%d bytes, no "
          "blanks): its messages\n"
          "                       are printed, requests answered "
          "\"ack:TEXT\"; repeatable\n"
          "  --ttl-ms N           TTL of reliable sends and replies "
          "(default %u)\n"
          "  --request-timeout-ms N\n"
          "                       how long a request waits for its reply "
          "(default 5000)\n"
          "  --exit-on-eof        quit when stdin ends (default: keep "
          "running)\n"
          "  --log-level LEVEL    libdmq log lines to stderr: none, error, "
          "warn (default),\n"
          "                       info, debug\n"
          "  --help               this text\n"
          "\n"
          "commands (stdin; TEXT: the rest of the line):\n",
          PEER_MAX_SEEDS, DMQ_MAX_CHANNEL, PEER_DEFAULT_TTL_MS);
  for (size_t i = 0; i < N_COMMANDS; i++) {
    char head[64];
    snprintf(head, sizeof(head), "%s%s%s", g_commands[i].name,
             g_commands[i].args[0] ? " " : "", g_commands[i].args);
    fprintf(f, "  %-28s %s\n", head, g_commands[i].help);
  }
  fprintf(f, "\n"
             "SIGTERM/SIGINT: graceful leave, exit 0. Exit status 2: bad "
             "arguments or\n"
             "start-up failure (e.g. the address is in use).\n");
}

static void die_usage(const char *fmt, ...) {
  va_list ap;
  fputs("dmq-peer: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputs("\n(dmq-peer --help for usage)\n", stderr);
  exit(PEER_EXIT_USAGE);
}

enum opt_id {
  OPT_NAME,
  OPT_BIND,
  OPT_ADVERTISE,
  OPT_SEED,
  OPT_PROFILE,
  OPT_META,
  OPT_UDP_ONLY,
  OPT_CHANNEL,
  OPT_TTL_MS,
  OPT_REQUEST_TIMEOUT_MS,
  OPT_EXIT_ON_EOF,
  OPT_LOG_LEVEL,
  OPT_HELP
};

typedef struct opt {
  const char *name;
  int has_arg;
  enum opt_id id;
} opt_t;

static const opt_t g_opts[] = {
    {"name", 1, OPT_NAME},
    {"bind", 1, OPT_BIND},
    {"advertise", 1, OPT_ADVERTISE},
    {"seed", 1, OPT_SEED},
    {"profile", 1, OPT_PROFILE},
    {"meta", 1, OPT_META},
    {"udp-only", 0, OPT_UDP_ONLY},
    {"exit-on-eof", 0, OPT_EXIT_ON_EOF},
    {"log-level", 1, OPT_LOG_LEVEL},
    {"help", 0, OPT_HELP},
    {"channel", 1, OPT_CHANNEL},
    {"ttl-ms", 1, OPT_TTL_MS},
    {"request-timeout-ms", 1, OPT_REQUEST_TIMEOUT_MS},
};

/* A decimal number of milliseconds, 1..UINT32_MAX; -1 if it is not one. */
static int parse_ms(const char *s, uint32_t *out) {
  if (*s < '0' || *s > '9')
    return -1;
  errno = 0;
  char *end;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0' || v == 0 || v > UINT32_MAX)
    return -1;
  *out = (uint32_t)v;
  return 0;
}

static void parse_args(peer_t *p, int argc, char **argv) {
  p->profile = DMQ_PROFILE_LAN;
  p->log_level = DMQ_LOG_WARN;
  p->ttl_ms = PEER_DEFAULT_TTL_MS;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-h") == 0) {
      usage(stdout);
      exit(0);
    }
    if (strncmp(a, "--", 2) != 0 || a[2] == '\0')
      die_usage("unexpected argument '%s'", a);
    const char *nm = a + 2;
    const char *eq = strchr(nm, '=');
    size_t nl = eq ? (size_t)(eq - nm) : strlen(nm);
    const opt_t *o = NULL;
    for (size_t j = 0; j < sizeof(g_opts) / sizeof(g_opts[0]); j++)
      if (strlen(g_opts[j].name) == nl && memcmp(g_opts[j].name, nm, nl) == 0)
        o = &g_opts[j];
    if (o == NULL)
      die_usage("unknown option '%.*s'", (int)(nl + 2), a);
    const char *val = NULL;
    if (o->has_arg) {
      if (eq != NULL)
        val = eq + 1;
      else if (i + 1 < argc)
        val = argv[++i];
      else
        die_usage("option --%s needs a value", o->name);
    } else if (eq != NULL) {
      die_usage("option --%s takes no value", o->name);
    }
    switch (o->id) {
    case OPT_NAME:
      if (val[0] == '\0' || strlen(val) > DMQ_MAX_NAME)
        die_usage("--name must be 1..%d bytes", DMQ_MAX_NAME);
      p->name = val;
      break;
    case OPT_BIND:
      p->bind = val;
      break;
    case OPT_ADVERTISE:
      p->advertise = val;
      break;
    case OPT_SEED:
      if (val[0] == '\0')
        die_usage("--seed needs a non-empty address or name");
      if (p->n_seeds == PEER_MAX_SEEDS)
        die_usage("at most %d --seed options", PEER_MAX_SEEDS);
      p->seeds[p->n_seeds++] = val;
      break;
    case OPT_PROFILE:
      if (dmq_profile_from_name(val, &p->profile) != 0)
        die_usage("unknown profile '%s' (lan, wan, local or fast)", val);
      break;
    case OPT_META: {
      const char *k, *v, *why;
      size_t klen;
      if (meta_split(val, &k, &klen, &v, &why) != 0)
        die_usage("--meta '%s': %s", val, why);
      if (meta_merge(p->meta, &p->n_meta, k, klen, v, &why) != 0)
        die_usage("--meta '%s': %s", val, why);
      break;
    }
    case OPT_UDP_ONLY:
      p->udp_only = 1;
      break;
    case OPT_CHANNEL: {
      size_t l = strlen(val);
      if (l == 0 || l > DMQ_MAX_CHANNEL)
        die_usage("--channel must be 1..%d bytes", DMQ_MAX_CHANNEL);
      for (size_t j = 0; j < l; j++)
        if ((unsigned char)val[j] <= ' ' || val[j] == 0x7F)
          die_usage("--channel '%s': no blanks or control characters", val);
      for (size_t j = 0; j < p->n_init_chans; j++)
        if (strcmp(p->init_chans[j], val) == 0)
          die_usage("--channel '%s' given twice", val);
      if (p->n_init_chans == DMQ_MAX_CHANNELS)
        die_usage("at most %d --channel options", DMQ_MAX_CHANNELS);
      p->init_chans[p->n_init_chans++] = val;
      break;
    }
    case OPT_TTL_MS:
      if (parse_ms(val, &p->ttl_ms) != 0)
        die_usage("--ttl-ms '%s': a number of milliseconds, 1..%" PRIu32, val,
                  UINT32_MAX);
      break;
    case OPT_REQUEST_TIMEOUT_MS:
      if (parse_ms(val, &p->request_timeout_ms) != 0)
        die_usage("--request-timeout-ms '%s': a number of milliseconds, "
                  "1..%" PRIu32,
                  val, UINT32_MAX);
      break;
    case OPT_EXIT_ON_EOF:
      p->exit_on_eof = 1;
      break;
    case OPT_LOG_LEVEL: {
      static const char *const lv[] = {"error", "warn", "info", "debug"};
      int found = strcmp(val, "none") == 0;
      p->log_level = -1;
      for (int j = 0; j < 4 && !found; j++)
        if (strcmp(val, lv[j]) == 0) {
          p->log_level = j;
          found = 1;
        }
      if (!found)
        die_usage("unknown log level '%s' (none, error, warn, info, debug)",
                  val);
      break;
    }
    case OPT_HELP:
      usage(stdout);
      exit(0);
    }
  }
  if (p->name == NULL)
    die_usage("--name is required");
  if (p->bind == NULL)
    die_usage("--bind is required");
}

/* ---------------------------------------------------------------------- */
/* main                                                                    */

/* A peer started with a standard descriptor closed must not have a socket
 * land on it (and be read as commands, or written events to). */
static void fix_std_fds(void) {
  for (int fd = 0; fd <= 2; fd++) {
    if (fcntl(fd, F_GETFD) < 0 && errno == EBADF) {
      int n = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
      if (n >= 0 && n != fd) {
        dup2(n, fd);
        close(n);
      }
    }
  }
}

int main(int argc, char **argv) {
  peer_t *p = &g_peer;
  fix_std_fds();
  setvbuf(stdout, NULL, _IOLBF, 0);
  signal(SIGPIPE, SIG_IGN); /* a reader that went away is not fatal */
  p->t0_ns = uv_hrtime();
  uv_timeval64_t tv;
  if (uv_gettimeofday(&tv) == 0)
    p->t0_wall = (uint64_t)tv.tv_sec * PEER_MS_PER_S +
                 (uint64_t)tv.tv_usec / PEER_US_PER_MS;
  parse_args(p, argc, argv);
  p->loop = uv_default_loop();

  char meta[DMQ_MAX_META];
  int meta_len = meta_encode(p->meta, p->n_meta, meta, sizeof(meta));
  if (meta_len < 0)
    die_usage("--meta: metadata larger than %d bytes", DMQ_MAX_META);

  dmq_config_t cfg;
  dmq_config_init(&cfg, p->profile);
  cfg.name = p->name;
  cfg.meta = meta;
  cfg.meta_len = (size_t)meta_len;
  dmq_uv_options_t opts;
  memset(&opts, 0, sizeof(opts));
  opts.bind = p->bind;
  opts.advertise = p->advertise;
  opts.no_tcp = p->udp_only;
  int rc = dmq_uv_new(&p->rt, p->loop, &cfg, &opts);
  if (rc != 0) {
    fprintf(
        stderr, "dmq-peer: cannot start (name '%s', bind '%s'%s%s): %s (%s)\n",
        p->name, p->bind, p->advertise ? ", advertise " : "",
        p->advertise ? p->advertise : "", dmq_strerror(rc), dmq_err_name(rc));
    if (rc == DMQ_ETRANSPORT)
      fprintf(stderr, "dmq-peer: is the port in use (UDP or TCP), or the "
                      "address not local?\n");
    return PEER_EXIT_USAGE;
  }
  dmq_node_t *node = dmq_uv_node(p->rt);
  dmq_node_set_member_cb(node, on_member, p);
  if (p->log_level >= 0)
    dmq_node_set_log_cb(node, on_log, (dmq_log_level_t)p->log_level, p);

  /* before joining: the first state gossiped lists the channels */
  dmq_delivery_config_t dc;
  dmq_delivery_config_init(&dc);
  dc.ttl_ms = p->ttl_ms; /* replies too */
  if (p->request_timeout_ms != 0)
    dc.request_timeout_ms = p->request_timeout_ms;
  p->request_timeout_ms = dc.request_timeout_ms;
  rc = dmq_delivery_configure(node, &dc);
  if (rc != 0) {
    fprintf(stderr, "dmq-peer: delivery settings refused: %s (%s)\n",
            dmq_strerror(rc), dmq_err_name(rc));
    return PEER_EXIT_USAGE;
  }
  for (size_t i = 0; i < p->n_init_chans; i++) {
    rc = serve(p, p->init_chans[i]);
    if (rc != 0) {
      fprintf(stderr, "dmq-peer: --channel '%s': %s (%s)\n", p->init_chans[i],
              dmq_strerror(rc), dmq_err_name(rc));
      return PEER_EXIT_USAGE;
    }
  }

  if (p->n_seeds > 0) {
    rc = dmq_uv_join(p->rt, p->seeds, p->n_seeds);
    if (rc != 0) {
      fprintf(stderr, "dmq-peer: bad --seed list: %s (%s)\n", dmq_strerror(rc),
              dmq_err_name(rc));
      return PEER_EXIT_USAGE;
    }
  }

  uv_signal_init(p->loop, &p->sigterm);
  uv_signal_init(p->loop, &p->sigint);
  p->sigterm.data = p->sigint.data = p;
  uv_signal_start(&p->sigterm, on_signal, SIGTERM);
  uv_signal_start(&p->sigint, on_signal, SIGINT);

  dmq_member_info_t self;
  memset(&self, 0, sizeof(self));
  dmq_node_member(node, p->name, &self);
  jb_begin(&g_jb, "ready");
  jb_kstr(&g_jb, "name", p->name);
  jb_kstr(&g_jb, "addr", dmq_uv_addr(p->rt));
  jb_ku64(&g_jb, "generation", self.generation);
  jb_kstr(&g_jb, "profile", dmq_profile_name(p->profile));
  jb_ku64(&g_jb, "seeds", p->n_seeds);
  /* wall_ms + t_ms = wall-clock time of an event (comparable across peers) */
  jb_ku64(&g_jb, "wall_ms", p->t0_wall);
  jb_channels(&g_jb, p);
  jb_ku64(&g_jb, "ttl_ms", p->ttl_ms);
  jb_ku64(&g_jb, "request_timeout_ms", p->request_timeout_ms);
  jb_emit(&g_jb);

  in_start(p);

  uv_run(p->loop, UV_RUN_DEFAULT);
  rc = uv_loop_close(p->loop);
  if (rc != 0)
    fprintf(stderr, "dmq-peer: loop not empty at exit: %s\n", uv_strerror(rc));
  if (p->stdin_flags >= 0)
    fcntl(0, F_SETFL, p->stdin_flags);
  meta_free(p->meta, p->n_meta);
  free(g_jb.p);
  return 0;
}
