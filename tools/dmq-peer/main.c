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
 *   stats          one "stats" event (delivery counters under "delivery",
 *                  TCP transport counters under "stream")
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
 *   {"event":"message","from":..,"sender_addr":..,"sender_generation":N,
 *    "channel":..,PAYLOAD,"reliable":B,"request":B}
 *                                       a message received on a served channel
 *   {"event":"replied","to":..,"channel":..,"len":N}   answered a request
 *   {"event":"reply","id":N,"from":..,"channel":..,PAYLOAD}
 *                                       the reply to our request id
 *   {"event":"outcome","id":N,"kind":..,"outcome":"delivered|expired|dead|
 *    left|cancelled|shutdown|unknown_dest|too_big|queue_full","dest":..,
 *    "channel":..,"delivered":N,"failed":N[,"refused":N (bcast)]}
 *                                       every reliable send / request ends in
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
 *
 * This file: start-up, signals and the graceful shutdown. The other parts
 * are listed in peer.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jsonl.h"
#include "peer.h"

static peer_t g_peer; /* static: reachable at exit, whatever the path */

void peer_on_handle_closed(uv_handle_t *h) {
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
  peer_in_close(p);
  if (!uv_is_closing((uv_handle_t *)&p->sigterm))
    uv_close((uv_handle_t *)&p->sigterm, peer_on_handle_closed);
  if (!uv_is_closing((uv_handle_t *)&p->sigint))
    uv_close((uv_handle_t *)&p->sigint, peer_on_handle_closed);
  if (!uv_is_closing((uv_handle_t *)&p->join_check))
    uv_close((uv_handle_t *)&p->join_check, peer_on_handle_closed);
}

/* With seeds: say so on stderr when no seed has answered after
 * PEER_JOIN_WARN_MS (a seed down, or one with another key or label: its
 * packets and ours are dropped on both sides). */
#define PEER_JOIN_WARN_MS 5000
static void on_join_check(uv_timer_t *t) {
  peer_t *p = t->data;
  if (p->rt == NULL || p->quitting || dmq_node_is_joined(dmq_uv_node(p->rt)))
    return;
  fprintf(stderr,
          "dmq-peer[%s]: not joined %d s after start: no seed answered (are "
          "the seeds up, and do they use the same key%s and label?)\n",
          p->name, PEER_JOIN_WARN_MS / 1000,
          p->key_file != NULL ? " file" : "");
}

/* Graceful: leave, let the leave spread (at most PEER_FLUSH_MS), close. */
void peer_quit(peer_t *p, const char *reason) {
  if (p->quitting)
    return;
  p->quitting = 1;
  p->quit_reason = reason;
  peer_in_close(p);
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
  jb_set_epoch(uv_hrtime());
  uv_timeval64_t tv;
  if (uv_gettimeofday(&tv) == 0)
    p->t0_wall = (uint64_t)tv.tv_sec * PEER_MS_PER_S +
                 (uint64_t)tv.tv_usec / PEER_US_PER_MS;
  peer_parse_args(p, argc, argv);
  p->loop = uv_default_loop();

  char meta[DMQ_MAX_META];
  int meta_len = meta_encode(p->meta, p->n_meta, meta, sizeof(meta));
  if (meta_len < 0)
    peer_die_usage("--meta: metadata larger than %d bytes", DMQ_MAX_META);

  dmq_config_t cfg;
  dmq_config_init(&cfg, p->profile);
  cfg.name = p->name;
  cfg.meta = meta;
  cfg.meta_len = (size_t)meta_len;
  cfg.label = p->label;
  dmq_uv_options_t opts;
  dmq_uv_options_init(&opts);
  opts.bind = p->bind;
  opts.advertise = p->advertise;
  opts.no_tcp = p->udp_only;
  int rc = dmq_uv_new(p->loop, &cfg, &opts, &p->rt);
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
  peer_install_callbacks(p);

  /* keys before the first packet (docs/security.md) */
  if (p->key_file != NULL) {
    char why[256];
    rc = dmq_node_load_keys(node, p->key_file, why, sizeof why);
    if (rc != 0) {
      fprintf(stderr, "dmq-peer: --key-file: %s\n", why);
      return PEER_EXIT_USAGE;
    }
    uint32_t primary;
    size_t nk = dmq_node_keys(node, NULL, 0, &primary);
    fprintf(stderr,
            "dmq-peer: %zu key%s loaded, primary key id %08x, seal mode "
            "%s\n",
            nk, nk == 1 ? "" : "s", (unsigned)primary,
            dmq_seal_mode_name(p->seal_mode));
  }
  rc = dmq_node_set_seal_mode(node, p->seal_mode);
  if (rc != 0) {
    fprintf(stderr, "dmq-peer: --seal-mode: %s (%s)\n", dmq_strerror(rc),
            dmq_err_name(rc));
    return PEER_EXIT_USAGE;
  }

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
    rc = peer_serve(p, p->init_chans[i]);
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

  uv_timer_init(p->loop, &p->join_check);
  p->join_check.data = p;
  if (p->n_seeds > 0) {
    uv_timer_start(&p->join_check, on_join_check, PEER_JOIN_WARN_MS, 0);
    uv_unref((uv_handle_t *)&p->join_check);
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
  peer_jb_channels(&g_jb, p);
  jb_ku64(&g_jb, "ttl_ms", p->ttl_ms);
  jb_ku64(&g_jb, "request_timeout_ms", p->request_timeout_ms);
  jb_emit(&g_jb);

  peer_in_start(p);

  uv_run(p->loop, UV_RUN_DEFAULT);
  rc = uv_loop_close(p->loop);
  if (rc != 0)
    fprintf(stderr, "dmq-peer: loop not empty at exit: %s\n", uv_strerror(rc));
  if (p->stdin_flags >= 0)
    fcntl(0, F_SETFL, p->stdin_flags);
  meta_free(p->meta, p->n_meta);
  jb_free(&g_jb);
  return 0;
}
