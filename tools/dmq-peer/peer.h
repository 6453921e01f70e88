/* dmq-peer: the state of one peer process and what its parts share.
 *
 *   main.c      start-up, signals, graceful shutdown (the top comment there
 *               documents the commands and the events)
 *   args.c      command-line options (getopt_long) and --help
 *   commands.c  the stdin commands: table, parsing of a line, handlers
 *   input.c     reading stdin (stream or file) into lines
 *   events.c    libdmq callbacks: members, log, messages, outcomes
 *   meta.c      this member's metadata, "k=v;k2=v2"
 *   jsonl.c     the JSON-lines emitter (jsonl.h)
 */
#ifndef DMQ_PEER_H
#define DMQ_PEER_H

#include <stdint.h>
#include <stdio.h>

#include <uv.h>

#include <dmq/dmq.h>
#include <dmq/keyfile.h>
#include <dmq/uv.h>

#define PEER_EXIT_USAGE 2
#define PEER_MAX_SEEDS 32
#define PEER_MAX_META_KEYS 64
#define PEER_LINE_MAX 4096
#define PEER_READ_CHUNK 4096
/* How long a graceful close waits for the leave to be gossiped. */
#define PEER_FLUSH_MS 1000
#define PEER_US_PER_MS 1000u
#define PEER_MS_PER_S 1000u
/* Default TTL of reliable sends and replies (--ttl-ms). */
#define PEER_DEFAULT_TTL_MS 30000u
/* The automatic answer to a request: this prefix, then the request's bytes. */
#define PEER_REPLY_PREFIX "ack:"

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
  const char *key_file;        /* --key-file */
  const char *label;           /* --label */
  dmq_seal_mode_t seal_mode;   /* --seal-mode (default: required with keys) */
  int seal_mode_set;

  /* channels served, in opening order */
  served_t chans[DMQ_MAX_CHANNELS];
  size_t n_chans;

  /* this member's metadata, in insertion order */
  meta_kv_t meta[PEER_MAX_META_KEYS];
  size_t n_meta;

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
  uv_timer_t join_check; /* "not joined" warning, once, with seeds */
  int quitting;
  const char *quit_reason;
} peer_t;

/* args.c */
void peer_parse_args(peer_t *p, int argc, char **argv);
void peer_die_usage(const char *fmt, ...);

/* commands.c */
void peer_run_line(peer_t *p, char *line);
void peer_commands_usage(FILE *f); /* one line per command, for --help */

/* input.c */
void peer_in_start(peer_t *p);
void peer_in_close(peer_t *p);

/* events.c */
void peer_install_callbacks(peer_t *p);
int peer_serve(peer_t *p, const char *name); /* 0 or a libdmq error */
uint64_t peer_now(peer_t *p);                /* the loop's time, updated */
/* Kinds of sends, passed as the outcome callback's user data. */
extern const char peer_kind_send[], peer_kind_bcast[], peer_kind_request[];
void peer_on_outcome(dmq_node_t *node, const dmq_outcome_info_t *o, void *ud);
struct jbuf;
void peer_jb_channels(struct jbuf *b, const peer_t *p); /* ,"channels":[..] */

/* main.c */
void peer_quit(peer_t *p, const char *reason); /* graceful: leave, close */
void peer_on_handle_closed(uv_handle_t *h);

/* meta.c */
int meta_split(const char *kv, const char **k, size_t *klen, const char **v,
               const char **why);
int meta_merge(meta_kv_t *m, size_t *n, const char *k, size_t klen,
               const char *v, const char **why);
int meta_encode(const meta_kv_t *m, size_t n, char *out, size_t cap);
int meta_copy(meta_kv_t *dst, const meta_kv_t *src, size_t n);
void meta_free(meta_kv_t *m, size_t n);

#endif
