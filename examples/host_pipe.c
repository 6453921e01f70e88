/* host_pipe - libdmq riding on a channel the application owns.
 *
 * Shows the host transport (dmq/host.h) and driving a node by hand, for
 * applications that already move bytes between their processes and do not
 * want libdmq to open sockets. Two processes (fork) are connected by a
 * socketpair. Each runs its own libuv loop and:
 *   - carries its node's messages over the pipe: the host transport's send
 *     callback writes one frame per message,
 *       u16 destination length | u32 payload length | destination | payload
 *     (big endian), and frames read from the pipe are handed back with
 *     dmq_host_transport_input();
 *   - drives the node's clock itself: one uv_timer armed from
 *     dmq_node_next_deadline() after every call into the node, calling
 *     dmq_node_tick() when it fires (no dmq_uv_t: this is what it does for
 *     you on sockets).
 * Node "b" joins through "host:a". Each process prints what its node sees;
 * once it has seen its peer alive it lingers a moment (so that the peer sees
 * it too), leaves gracefully and exits. The parent exits 0 when both
 * children saw each other.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <uv.h>

#include <dmq/dmq.h>
#include <dmq/host.h>

/* Frame header: u16 destination length + u32 payload length. */
#define PIPE_HDR 6
/* Largest payload accepted from the pipe (the transport's mtu). */
#define PIPE_MAX_PAYLOAD DMQ_HOST_DEFAULT_MTU
#define PIPE_MAX_DST 256
#define PIPE_READ_CHUNK (64 * 1024)
/* After seeing the peer alive, stay this long before leaving. */
#define LINGER_MS 1000
/* Most time to wait for the leave to be gossiped. */
#define LEAVE_FLUSH_MS 1000
/* Give up if the peer is not seen alive by then. */
#define WATCHDOG_MS 10000
#define MS_PER_S 1000
#define US_PER_MS 1000

typedef struct app {
  const char *name, *peer_name;
  char self_addr[32], peer_addr[32];
  uv_loop_t loop;
  uv_pipe_t pipe;
  uv_timer_t tick, linger, watchdog;
  dmq_node_t *node;
  dmq_transport_t *t;
  uint8_t *rbuf; /* bytes read but not yet a whole frame */
  size_t rlen, rcap;
  uint64_t leave_deadline;
  int saw_peer, leaving, finished;
} app_t;

typedef struct write_req {
  uv_write_t req;
  uint8_t data[]; /* the frame */
} write_req_t;

static void app_finish(app_t *a);

/* ---- driving the node ---- */

static void app_arm(app_t *a);
static void app_on_linger(uv_timer_t *h);

static void app_on_tick(uv_timer_t *h) {
  app_t *a = h->data;
  dmq_node_tick(a->node, uv_now(&a->loop));
  if (a->leaving && (dmq_node_left_flushed(a->node) ||
                     uv_now(&a->loop) >= a->leave_deadline)) {
    app_finish(a);
    return;
  }
  app_arm(a);
}

/* Call after every call into the node: its next deadline may have moved. */
static void app_arm(app_t *a) {
  if (a->finished)
    return;
  uint64_t d = dmq_node_next_deadline(a->node);
  if (d == DMQ_NEVER) {
    uv_timer_stop(&a->tick);
    return;
  }
  uint64_t now = uv_now(&a->loop);
  uv_timer_start(&a->tick, app_on_tick, d > now ? d - now : 0, 0);
}

static void app_on_member(dmq_node_t *node, dmq_member_event_t ev,
                          const dmq_member_info_t *m, void *ud) {
  (void)node;
  app_t *a = ud;
  printf("%s: member %s (%s) %s\n", a->name, m->name, m->addr,
         dmq_member_event_name(ev));
  if (strcmp(m->name, a->peer_name) == 0 && m->state == DMQ_MEMBER_ALIVE &&
      !a->saw_peer) {
    a->saw_peer = 1;
    printf("%s: sees %s alive\n", a->name, m->name);
    /* not from inside the node's callback: from the loop, a bit later */
    uv_timer_start(&a->linger, app_on_linger, LINGER_MS, 0);
  }
}

static void app_on_linger(uv_timer_t *h) {
  app_t *a = h->data;
  printf("%s: leaving\n", a->name);
  a->leaving = 1;
  a->leave_deadline = uv_now(&a->loop) + LEAVE_FLUSH_MS;
  dmq_node_leave(a->node, uv_now(&a->loop));
  app_arm(a);
}

static void app_on_watchdog(uv_timer_t *h) {
  app_t *a = h->data;
  fprintf(stderr, "%s: timed out\n", a->name);
  app_finish(a);
}

/* ---- the host transport's side: frames on the pipe ---- */

static void app_on_written(uv_write_t *req, int status) {
  (void)status; /* a write that fails after the peer left is fine */
  free(req);
}

/* Host send callback: buf is only valid during the call, so the frame is
 * a copy owned by the write request. */
static int app_send(void *ud, const char *dst, const void *buf, size_t len) {
  app_t *a = ud;
  size_t dlen = strlen(dst);
  if (a->finished)
    return DMQ_ECLOSED;
  if (dlen > PIPE_MAX_DST || len > PIPE_MAX_PAYLOAD)
    return DMQ_ETOOBIG;
  write_req_t *w = malloc(sizeof(*w) + PIPE_HDR + dlen + len);
  if (w == NULL)
    return DMQ_ENOMEM;
  uint8_t *p = w->data;
  p[0] = (uint8_t)(dlen >> 8);
  p[1] = (uint8_t)dlen;
  p[2] = (uint8_t)(len >> 24);
  p[3] = (uint8_t)(len >> 16);
  p[4] = (uint8_t)(len >> 8);
  p[5] = (uint8_t)len;
  memcpy(p + PIPE_HDR, dst, dlen);
  if (len > 0)
    memcpy(p + PIPE_HDR + dlen, buf, len);
  uv_buf_t b = uv_buf_init((char *)p, (unsigned)(PIPE_HDR + dlen + len));
  if (uv_write(&w->req, (uv_stream_t *)&a->pipe, &b, 1, app_on_written) != 0) {
    free(w);
    return DMQ_ETRANSPORT;
  }
  return 0;
}

/* The owner hook: what the transport received goes to the node. */
static void app_on_recv(dmq_transport_t *t, const char *from, const void *buf,
                        size_t len) {
  app_t *a = t->owner;
  dmq_node_recv(a->node, t, from, buf, len, uv_now(&a->loop));
}

static void app_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h;
  (void)suggested;
  static char chunk[PIPE_READ_CHUNK];
  *buf = uv_buf_init(chunk, sizeof(chunk));
}

/* Hand every whole frame addressed to us to the transport. */
static int app_unframe(app_t *a) {
  size_t off = 0;
  while (a->rlen - off >= PIPE_HDR) {
    const uint8_t *p = a->rbuf + off;
    size_t dlen = ((size_t)p[0] << 8) | p[1];
    size_t plen = ((size_t)p[2] << 24) | ((size_t)p[3] << 16) |
                  ((size_t)p[4] << 8) | p[5];
    if (dlen > PIPE_MAX_DST || plen > PIPE_MAX_PAYLOAD)
      return -1; /* garbage on the pipe */
    if (a->rlen - off < PIPE_HDR + dlen + plen)
      break;
    char dst[PIPE_MAX_DST + 1];
    memcpy(dst, p + PIPE_HDR, dlen);
    dst[dlen] = '\0';
    /* one peer per pipe: the sender is the other end */
    if (strcmp(dst, a->self_addr) == 0)
      dmq_host_transport_input(a->t, a->peer_addr, p + PIPE_HDR + dlen, plen);
    off += PIPE_HDR + dlen + plen;
    if (a->finished)
      return 0;
  }
  memmove(a->rbuf, a->rbuf + off, a->rlen - off);
  a->rlen -= off;
  return 0;
}

static void app_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  app_t *a = s->data;
  if (n < 0) {
    printf("%s: pipe closed by %s\n", a->name, a->peer_name);
    app_finish(a);
    return;
  }
  if (a->rlen + (size_t)n > a->rcap) {
    size_t nc = a->rcap ? a->rcap : PIPE_READ_CHUNK;
    while (nc < a->rlen + (size_t)n)
      nc *= 2;
    uint8_t *nb = realloc(a->rbuf, nc);
    if (nb == NULL) {
      app_finish(a);
      return;
    }
    a->rbuf = nb;
    a->rcap = nc;
  }
  memcpy(a->rbuf + a->rlen, buf->base, (size_t)n);
  a->rlen += (size_t)n;
  if (app_unframe(a) != 0) {
    fprintf(stderr, "%s: bad frame\n", a->name);
    app_finish(a);
    return;
  }
  app_arm(a);
}

/* ---- one process ---- */

static void app_finish(app_t *a) {
  if (a->finished)
    return;
  a->finished = 1;
  /* node first (it stops sending), then the transport it used */
  dmq_node_delete(a->node);
  a->node = NULL;
  a->t->ops->close(a->t);
  a->t = NULL;
  uv_close((uv_handle_t *)&a->pipe, NULL);
  uv_close((uv_handle_t *)&a->tick, NULL);
  uv_close((uv_handle_t *)&a->linger, NULL);
  uv_close((uv_handle_t *)&a->watchdog, NULL);
}

static int app_run(const char *name, const char *peer, int fd, int join) {
  app_t a;
  memset(&a, 0, sizeof(a));
  a.name = name;
  a.peer_name = peer;
  snprintf(a.self_addr, sizeof(a.self_addr), "host:%s", name);
  snprintf(a.peer_addr, sizeof(a.peer_addr), "host:%s", peer);
  if (uv_loop_init(&a.loop) != 0)
    return 1;

  dmq_config_t cfg;
  dmq_config_init(&cfg, DMQ_PROFILE_LOCAL);
  cfg.name = name;
  cfg.advertise_addr = a.self_addr;
  uv_timeval64_t tv;
  uv_gettimeofday(&tv);
  cfg.generation =
      (uint64_t)tv.tv_sec * MS_PER_S + (uint64_t)tv.tv_usec / US_PER_MS;
  cfg.rng_seed = uv_hrtime() ^ (uint64_t)getpid();
  if (dmq_node_new(&cfg, NULL, &a.node) != 0 ||
      dmq_host_transport_new(app_send, &a, &a.t) != 0)
    return 1;
  a.t->owner = &a;
  a.t->on_recv = app_on_recv;
  dmq_node_add_transport(a.node, a.t);
  dmq_node_set_member_cb(a.node, app_on_member, &a);

  uv_pipe_init(&a.loop, &a.pipe, 0);
  uv_pipe_open(&a.pipe, fd);
  a.pipe.data = &a;
  uv_timer_init(&a.loop, &a.tick);
  uv_timer_init(&a.loop, &a.linger);
  uv_timer_init(&a.loop, &a.watchdog);
  a.tick.data = a.linger.data = a.watchdog.data = &a;
  uv_timer_start(&a.watchdog, app_on_watchdog, WATCHDOG_MS, 0);
  uv_read_start((uv_stream_t *)&a.pipe, app_alloc, app_on_read);

  dmq_node_start(a.node, uv_now(&a.loop));
  if (join) {
    const char *seed = a.peer_addr;
    dmq_node_join(a.node, &seed, 1, uv_now(&a.loop));
  }
  app_arm(&a);
  printf("%s: running as %s (pid %d)\n", name, a.self_addr, (int)getpid());

  uv_run(&a.loop, UV_RUN_DEFAULT);
  free(a.rbuf);
  if (uv_loop_close(&a.loop) != 0)
    fprintf(stderr, "%s: handles left on the loop\n", name);
  printf("%s: done (%s)\n", name, a.saw_peer ? "saw peer" : "never saw peer");
  return a.saw_peer ? 0 : 1;
}

static pid_t spawn(const char *name, const char *peer, int fd, int other,
                   int join) {
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    close(other);
    exit(app_run(name, peer, fd, join));
  }
  return pid;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  signal(SIGPIPE, SIG_IGN); /* a write after the peer exited is an error */
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
    perror("socketpair");
    return 1;
  }
  pid_t pa = spawn("a", "b", sv[0], sv[1], 0);
  pid_t pb = spawn("b", "a", sv[1], sv[0], 1);
  close(sv[0]);
  close(sv[1]);
  if (pa < 0 || pb < 0) {
    perror("fork");
    return 1;
  }
  int ok = 1;
  pid_t pids[2] = {pa, pb};
  for (int i = 0; i < 2; i++) {
    int st = 0;
    if (waitpid(pids[i], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
      ok = 0;
  }
  printf("host_pipe: %s\n", ok ? "both nodes saw each other alive" : "FAILED");
  return ok ? 0 : 1;
}
