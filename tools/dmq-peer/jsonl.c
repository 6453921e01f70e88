/* dmq-peer: the JSON-lines emitter (see jsonl.h). */
#include "jsonl.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#define JB_NS_PER_MS 1000000u

jbuf_t g_jb;
static uint64_t g_t0_ns;

void jb_set_epoch(uint64_t t0_ns) {
  g_t0_ns = t0_ns;
}

uint64_t jb_t_ms(void) {
  return (uv_hrtime() - g_t0_ns) / JB_NS_PER_MS;
}

void jb_free(jbuf_t *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

void jb_raw(jbuf_t *b, const char *s, size_t n) {
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

void jb_lit(jbuf_t *b, const char *s) {
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
/* \u00XX for the byte c */
static void jb_u00(jbuf_t *b, unsigned c) {
  static const char hex[] = "0123456789abcdef";
  char esc[6] = {'\\', 'u', '0', '0', hex[(c >> 4) & 0xF], hex[c & 0xF]};
  jb_raw(b, esc, sizeof(esc));
}

static void jb_strn_mode(jbuf_t *b, const char *s, size_t n, int bytewise) {
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
      jb_u00(b, c);
      i++;
    } else {
      size_t l = bytewise ? 0 : utf8_seq(u + i, n - i);
      if (l == 0 && c < 0x80) {
        jb_raw(b, s + i, 1);
        i++;
      } else if (l == 0) {
        jb_u00(b, c);
        i++;
      } else {
        jb_raw(b, s + i, l);
        i += l;
      }
    }
  }
  jb_raw(b, "\"", 1);
}

void jb_strn(jbuf_t *b, const char *s, size_t n) {
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

void jb_str(jbuf_t *b, const char *s) {
  if (s == NULL)
    jb_lit(b, "null");
  else
    jb_strn(b, s, strlen(s));
}

void jb_key(jbuf_t *b, const char *k) {
  jb_raw(b, ",", 1);
  jb_str(b, k);
  jb_raw(b, ":", 1);
}

void jb_kstr(jbuf_t *b, const char *k, const char *v) {
  jb_key(b, k);
  jb_str(b, v);
}

void jb_ku64(jbuf_t *b, const char *k, uint64_t v) {
  char num[24];
  jb_key(b, k);
  snprintf(num, sizeof(num), "%" PRIu64, v);
  jb_lit(b, num);
}

void jb_kbool(jbuf_t *b, const char *k, int v) {
  jb_key(b, k);
  jb_lit(b, v ? "true" : "false");
}

void jb_kopen(jbuf_t *b, const char *k, char open) {
  jb_key(b, k);
  jb_raw(b, &open, 1);
}

void jb_item_u64(jbuf_t *b, int first, const char *name, uint64_t v) {
  char num[24];
  if (!first)
    jb_raw(b, ",", 1);
  jb_str(b, name);
  snprintf(num, sizeof(num), ":%" PRIu64, v);
  jb_lit(b, num);
}

void jb_begin(jbuf_t *b, const char *event) {
  b->len = 0;
  b->oom = 0;
  jb_lit(b, "{\"event\":");
  jb_str(b, event);
  jb_ku64(b, "t_ms", jb_t_ms());
}

/* Close the object and write it as one line. */
void jb_emit(jbuf_t *b) {
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

void emit_error(const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  jb_begin(&g_jb, "error");
  jb_kstr(&g_jb, "message", msg);
  jb_emit(&g_jb);
}

void emit_ok(const char *command) {
  jb_begin(&g_jb, "ok");
  jb_kstr(&g_jb, "command", command);
  jb_emit(&g_jb);
}

void emit_ok_channel(const char *command, const char *channel) {
  jb_begin(&g_jb, "ok");
  jb_kstr(&g_jb, "command", command);
  jb_kstr(&g_jb, "channel", channel);
  jb_emit(&g_jb);
}

/* A refusal by libdmq: {"event":"error","command":..,"error":"DMQ_E..",
 * "message":"<command>: <strerror>[ (detail)]"}. */
void emit_refused(const char *command, int rc, const char *detail) {
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
void jb_payload(jbuf_t *b, const void *data, size_t len) {
  int utf8 = utf8_valid(data, len);
  jb_key(b, "text");
  jb_strn_mode(b, data, len, !utf8);
  jb_ku64(b, "len", len);
  jb_kbool(b, "utf8", utf8);
}

/* Metadata "k=v;k2=v2" as a JSON object. A segment without '=' is a key
 * with an empty value; empty segments are skipped. */
void jb_meta(jbuf_t *b, const void *meta, size_t len) {
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

void emit_member(const dmq_member_info_t *m, const char *change) {
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
