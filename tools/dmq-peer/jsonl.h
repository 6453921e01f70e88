/* dmq-peer's JSON-lines emitter: one event is built in a buffer, then
 * written to stdout as one line and flushed.
 *
 *   jb_begin(b, "event");  {"event":"event","t_ms":N
 *   jb_kstr / jb_ku64 / jb_kbool / jb_key + a value
 *   jb_emit(b);            }\n
 *
 * Strings are JSON-escaped; bytes that are not valid UTF-8 come out as the
 * code point of the same value, so a line is always valid JSON. */
#ifndef DMQ_PEER_JSONL_H
#define DMQ_PEER_JSONL_H

#include <stddef.h>
#include <stdint.h>

#include <dmq/dmq.h>

typedef struct jbuf {
  char *p;
  size_t len, cap;
  int oom;
} jbuf_t;

/* The buffer every event is built in (one thread, one event at a time). */
extern jbuf_t g_jb;

/* t_ms of every event counts from this uv_hrtime() value. */
void jb_set_epoch(uint64_t t0_ns);
uint64_t jb_t_ms(void);
void jb_free(jbuf_t *b);

void jb_raw(jbuf_t *b, const char *s, size_t n);
void jb_lit(jbuf_t *b, const char *s);
void jb_str(jbuf_t *b, const char *s); /* NULL: null */
void jb_strn(jbuf_t *b, const char *s, size_t n);
void jb_key(jbuf_t *b, const char *k); /* ,"k": */
void jb_kstr(jbuf_t *b, const char *k, const char *v);
void jb_ku64(jbuf_t *b, const char *k, uint64_t v);
void jb_kbool(jbuf_t *b, const char *k, int v);
/* ,"k":{ or ,"k":[ (open is '{' or '['); close with jb_raw(b, "}", 1) */
void jb_kopen(jbuf_t *b, const char *k, char open);
/* "name":v inside an object; first: no comma before it */
void jb_item_u64(jbuf_t *b, int first, const char *name, uint64_t v);
void jb_begin(jbuf_t *b, const char *event);
void jb_emit(jbuf_t *b);

/* "text":..,"len":N,"utf8":B for a message payload. */
void jb_payload(jbuf_t *b, const void *data, size_t len);
/* Metadata "k=v;k2=v2" as a JSON object. */
void jb_meta(jbuf_t *b, const void *meta, size_t len);

/* Whole events */
void emit_error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
void emit_ok(const char *command);
void emit_ok_channel(const char *command, const char *channel);
void emit_refused(const char *command, int rc, const char *detail);
void emit_member(const dmq_member_info_t *m, const char *change);

#endif
