/* Sockets opened by the host (dmq_uv_options_t.use_fds, and the transports'
 * dmq_udp_transport_open() / dmq_tcp_transport_open()) on loopback: the
 * test binds a UDP and a listening TCP socket per node, hands them over,
 * the two nodes join and a reliable message goes through (one large enough
 * to take the TCP stream, one small); the advertised address is the UDP
 * socket's; the caller's descriptors stay open and usable. Bad descriptors
 * (closed, not a socket, wrong type, unbound, not listening, TCP on
 * another port) fail with DMQ_EINVAL and a log line saying why, and leave
 * the loop empty. Nothing sleeps: the loop runs under a watchdog. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <dmq/delivery.h>
#include <dmq/host.h>
#include <dmq/poll.h>
#include <dmq/thread.h>
#include <dmq/uv.h>

#include "uv_until.h"

#define FD_TEST_TIMEOUT_MS 15000
#define FD_TEST_POLL_MS 10
#define BIG_LEN 20000

/* ---- loop helpers ---- */

typedef uv_until_pred_fn pred_fn;

static int run_until(uv_loop_t *loop, pred_fn pred, void *ud) {
  return uv_run_until(loop, pred, ud, FD_TEST_TIMEOUT_MS, FD_TEST_POLL_MS);
}

/* ---- sockets the "host" opens ---- */

static uint16_t fd_port(int fd) {
  struct sockaddr_in a;
  socklen_t l = sizeof a;
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
  return ntohs(a.sin_port);
}

/* A socket of type on 127.0.0.1:port (0: any), bound when bind_it. */
static int sock_on(int type, uint16_t port, int bind_it) {
  int fd = socket(AF_INET, type, 0);
  assert_true(fd >= 0);
  int one = 1;
  assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)),
                   0);
  if (bind_it) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
      close(fd);
      return -1;
    }
  }
  return fd;
}

/* A bound UDP socket and a listening TCP socket on the same port. */
static void host_pair(int *udp, int *tcp) {
  for (int attempt = 0; attempt < 16; attempt++) {
    *udp = sock_on(SOCK_DGRAM, 0, 1);
    assert_true(*udp >= 0);
    *tcp = sock_on(SOCK_STREAM, fd_port(*udp), 1);
    if (*tcp >= 0) {
      assert_int_equal(listen(*tcp, 16), 0);
      return;
    }
    close(*udp);
  }
  fail_msg("no port free for both UDP and TCP");
}

/* ---- nodes ---- */

typedef struct logbuf {
  int lines;
  char last[256];
} logbuf_t;

static void on_setup_log(dmq_node_t *node, dmq_log_level_t level,
                         const char *msg, void *ud) {
  logbuf_t *l = ud;
  assert_null(node);
  assert_int_equal(level, DMQ_LOG_ERROR);
  l->lines++;
  snprintf(l->last, sizeof l->last, "%s", msg);
}

static int rt_new_fds(uv_loop_t *loop, const char *name, int udp, int tcp,
                      logbuf_t *log, dmq_uv_t **out) {
  dmq_config_t cfg;
  assert_int_equal(dmq_config_init(&cfg, DMQ_PROFILE_LOCAL), 0);
  cfg.name = name;
  dmq_uv_options_t o;
  dmq_uv_options_init(&o);
  o.use_fds = 1;
  o.udp_fd = udp;
  o.tcp_fd = tcp;
  o.log_cb = on_setup_log;
  o.log_ud = log;
  return dmq_uv_new(loop, &cfg, &o, out);
}

typedef struct xfer {
  dmq_uv_t *a, *b;
  int rx, rx_big, outcomes, delivered;
  struct ns_world *ns; /* test_fds_no_sockets */
} xfer_t;

static void on_rx(dmq_node_t *node, dmq_channel_t *ch, const dmq_message_t *m,
                  void *ud) {
  (void)node;
  (void)ch;
  xfer_t *x = ud;
  x->rx++;
  if (m->len == BIG_LEN)
    x->rx_big++;
  assert_string_equal(m->from, "a");
  assert_string_equal(m->sender_addr, dmq_uv_addr(x->a));
}

static void on_outcome(dmq_node_t *node, const dmq_outcome_info_t *o,
                       void *ud) {
  (void)node;
  xfer_t *x = ud;
  x->outcomes++;
  if (o->outcome == DMQ_OUTCOME_DELIVERED)
    x->delivered++;
}

static int joined(void *ud) {
  xfer_t *x = ud;
  return dmq_member_serves(dmq_uv_node(x->a), "b", "ch") &&
         dmq_node_member_count(dmq_uv_node(x->b), DMQ_MASK_LIVE) == 2;
}

static int done(void *ud) {
  xfer_t *x = ud;
  return x->outcomes == 2;
}

typedef struct closed {
  int n;
} closed_t;

static void on_closed(void *ud) {
  ((closed_t *)ud)->n++;
}

static int all_closed(void *ud) {
  return ((closed_t *)ud)->n == 2;
}

/* Reliable, from a to b on "ch": a small message (a datagram) and a large
 * one (the stream); on_outcome and on_rx count them. */
static void send_small_and_big(uv_loop_t *loop, xfer_t *x) {
  dmq_send_opts_t o;
  dmq_send_opts_init(&o);
  o.mode = DMQ_SEND_RELIABLE;
  o.cb = on_outcome;
  o.user_data = x;
  static uint8_t big[BIG_LEN];
  dmq_node_t *na = dmq_uv_node(x->a);
  assert_int_equal(dmq_send(na, "b", "ch", "hi", 2, &o, uv_now(loop), NULL), 0);
  assert_int_equal(
      dmq_send(na, "b", "ch", big, sizeof big, &o, uv_now(loop), NULL), 0);
  dmq_uv_kick(x->a);
}

/* Both messages of send_small_and_big, run until `finished` (done, or the
 * host-transport variant): both DELIVERED, both received, one of them big. */
static void transfer_small_and_big(uv_loop_t *loop, xfer_t *x,
                                   pred_fn finished) {
  send_small_and_big(loop, x);
  assert_true(run_until(loop, finished, x));
  assert_int_equal(x->delivered, 2);
  assert_int_equal(x->rx, 2);
  assert_int_equal(x->rx_big, 1);
}

static void test_fds_join_and_deliver(void **state) {
  (void)state;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  int ua, ta, ub, tb;
  host_pair(&ua, &ta);
  host_pair(&ub, &tb);
  logbuf_t log = {0, ""};
  xfer_t x;
  memset(&x, 0, sizeof x);
  assert_int_equal(rt_new_fds(&loop, "a", ua, ta, &log, &x.a), 0);
  assert_int_equal(rt_new_fds(&loop, "b", ub, tb, &log, &x.b), 0);
  assert_int_equal(log.lines, 0);
  /* the advertised address is the UDP socket's */
  char want[64];
  snprintf(want, sizeof want, "udp://127.0.0.1:%u", (unsigned)fd_port(ua));
  assert_string_equal(dmq_uv_addr(x.a), want);
  /* the caller's descriptors are still its own */
  assert_true(fcntl(ua, F_GETFD) >= 0 && fcntl(ta, F_GETFD) >= 0);
  close(ua);
  close(ta);
  close(ub);
  close(tb);
  dmq_channel_t *ch;
  assert_int_equal(dmq_channel_open(dmq_uv_node(x.b), "ch", on_rx, &x, &ch), 0);
  dmq_uv_kick(x.b);
  const char *seed = dmq_uv_addr(x.a);
  assert_int_equal(dmq_uv_join(x.b, &seed, 1), 0);
  assert_true(run_until(&loop, joined, &x));
  transfer_small_and_big(&loop, &x, done);
  closed_t c = {0};
  dmq_uv_close(x.b, 500, on_closed, &c);
  dmq_uv_close(x.a, 500, on_closed, &c);
  assert_true(run_until(&loop, all_closed, &c));
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* UDP only: tcp_fd -1. */
static void test_fds_udp_only(void **state) {
  (void)state;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  int u = sock_on(SOCK_DGRAM, 0, 1);
  logbuf_t log = {0, ""};
  dmq_uv_t *rt = NULL;
  assert_int_equal(rt_new_fds(&loop, "u", u, -1, &log, &rt), 0);
  close(u);
  closed_t c = {0};
  dmq_uv_close(rt, 0, on_closed, &c);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(c.n, 1);
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* No sockets at all (udp_fd and tcp_fd -1): the host's own transport
 * (dmq/host.h) carries everything, here an in-memory queue drained from the
 * loop. The Kamailio module's SIP mode is such a host: it must not leave a
 * socket bound that nothing uses. */
#define NS_QMAX 4096
typedef struct ns_msg {
  char from[16], to[16];
  size_t len;
  uint8_t *buf;
} ns_msg_t;
typedef struct ns_world {
  dmq_uv_t *rt[2];
  dmq_transport_t *t[2];
  ns_msg_t q[NS_QMAX];
  size_t nq;
} ns_world_t;
/* The send hook's ud: the world and which node sends ("host:a" + idx). */
typedef struct ns_side {
  ns_world_t *w;
  int idx;
} ns_side_t;

static int ns_send(void *ud, const char *dst, const void *buf, size_t len) {
  ns_side_t *sd = ud;
  ns_world_t *w = sd->w;
  if (w->nq == NS_QMAX)
    return DMQ_EAGAIN; /* lost, as a datagram: the protocol copes */
  ns_msg_t *m = &w->q[w->nq];
  m->buf = malloc(len);
  assert_non_null(m->buf);
  memcpy(m->buf, buf, len);
  m->len = len;
  snprintf(m->from, sizeof m->from, "host:%c", 'a' + sd->idx);
  snprintf(m->to, sizeof m->to, "%s", dst);
  w->nq++;
  return 0;
}

static void ns_on_recv(dmq_transport_t *t, const char *from, const void *buf,
                       size_t len) {
  dmq_uv_t *rt = t->owner;
  dmq_node_recv(dmq_uv_node(rt), t, from, buf, len, uv_now(dmq_uv_loop(rt)));
  dmq_uv_kick(rt);
}

static void ns_drain(ns_world_t *w) {
  /* what is delivered may send more: take the batch first */
  static ns_msg_t batch[NS_QMAX];
  size_t n = w->nq;
  memcpy(batch, w->q, n * sizeof *batch);
  w->nq = 0;
  for (size_t i = 0; i < n; i++) {
    int to = strcmp(batch[i].to, "host:a") == 0   ? 0
             : strcmp(batch[i].to, "host:b") == 0 ? 1
                                                  : -1;
    if (to >= 0 && w->t[to] != NULL)
      dmq_host_transport_input(w->t[to], batch[i].from, batch[i].buf,
                               batch[i].len);
    free(batch[i].buf);
  }
}

/* joined() and done(), with the host's queue drained first */
static int ns_joined(void *ud) {
  ns_drain(((xfer_t *)ud)->ns);
  return joined(ud);
}

static int ns_done(void *ud) {
  ns_drain(((xfer_t *)ud)->ns);
  return done(ud);
}

static int ns_sockets(void) {
  /* this process's open sockets */
  char path[64], link[64];
  int n = 0;
  for (int fd = 0; fd < 1024; fd++) {
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ssize_t l = readlink(path, link, sizeof link - 1);
    if (l > 0) {
      link[l] = '\0';
      n += strncmp(link, "socket:", 7) == 0;
    }
  }
  return n;
}

static void test_fds_no_sockets(void **state) {
  (void)state;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  static ns_world_t w;
  memset(&w, 0, sizeof w);
  ns_side_t side[2] = {{&w, 0}, {&w, 1}};
  int sockets0 = ns_sockets();
  logbuf_t log = {0, ""};
  /* without cfg->advertise_addr there is no address to give: refused */
  {
    dmq_uv_t *rt = NULL;
    assert_int_equal(rt_new_fds(&loop, "a", -1, -1, &log, &rt), DMQ_EINVAL);
    assert_null(rt);
    assert_non_null(strstr(log.last, "advertise_addr is required"));
  }
  for (int i = 0; i < 2; i++) {
    dmq_config_t cfg;
    assert_int_equal(dmq_config_init(&cfg, DMQ_PROFILE_LOCAL), 0);
    cfg.name = i == 0 ? "a" : "b";
    cfg.advertise_addr = i == 0 ? "host:a" : "host:b";
    dmq_uv_options_t o;
    dmq_uv_options_init(&o);
    o.use_fds = 1; /* udp_fd and tcp_fd stay -1 */
    o.log_cb = on_setup_log;
    o.log_ud = &log;
    assert_int_equal(dmq_uv_new(&loop, &cfg, &o, &w.rt[i]), 0);
    assert_string_equal(dmq_uv_addr(w.rt[i]), cfg.advertise_addr);
    assert_int_equal(dmq_host_transport_new(ns_send, &side[i], &w.t[i]), 0);
    w.t[i]->owner = w.rt[i];
    w.t[i]->on_recv = ns_on_recv;
    assert_int_equal(dmq_node_add_transport(dmq_uv_node(w.rt[i]), w.t[i]), 0);
  }
  /* no socket was opened for either node (libuv's loop has none) */
  assert_int_equal(ns_sockets(), sockets0);
  xfer_t x;
  memset(&x, 0, sizeof x);
  x.a = w.rt[0];
  x.b = w.rt[1];
  x.ns = &w;
  dmq_channel_t *ch;
  assert_int_equal(dmq_channel_open(dmq_uv_node(x.b), "ch", on_rx, &x, &ch), 0);
  /* dmq_uv_join takes socket addresses and DNS names: a host address
   * goes to the node itself */
  const char *seed = "host:a";
  assert_int_equal(dmq_node_join(dmq_uv_node(x.b), &seed, 1, uv_now(&loop)), 0);
  dmq_uv_kick(x.b);
  assert_true(run_until(&loop, ns_joined, &x));
  transfer_small_and_big(&loop, &x, ns_done);
  closed_t c = {0};
  for (int i = 0; i < 2; i++)
    dmq_uv_close(w.rt[i], 0, on_closed, &c);
  assert_true(run_until(&loop, all_closed, &c));
  /* the nodes are gone: the host closes its transports */
  for (int i = 0; i < 2; i++)
    w.t[i]->ops->close(w.t[i]);
  w.t[0] = w.t[1] = NULL;
  ns_drain(&w);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void expect_bad(uv_loop_t *loop, int udp, int tcp, const char *why) {
  logbuf_t log = {0, ""};
  dmq_uv_t *rt = (dmq_uv_t *)&log; /* must be reset to NULL */
  assert_int_equal(rt_new_fds(loop, "bad", udp, tcp, &log, &rt), DMQ_EINVAL);
  assert_null(rt);
  assert_int_equal(log.lines, 1);
  if (strstr(log.last, why) == NULL)
    fail_msg("log line \"%s\" does not say \"%s\"", log.last, why);
}

static void test_fds_bad(void **state) {
  (void)state;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  int u, t;
  host_pair(&u, &t);
  int pipefd[2];
  assert_int_equal(pipe(pipefd), 0);
  int unbound_udp = sock_on(SOCK_DGRAM, 0, 0);
  int tcp_not_listening = sock_on(SOCK_STREAM, 0, 1);
  int other_port_tcp = sock_on(SOCK_STREAM, 0, 1);
  assert_int_equal(listen(other_port_tcp, 4), 0);
  int closed_fd = dup(u); /* closed last: its number is not reused */
  close(closed_fd);

  expect_bad(&loop, closed_fd, t, "udp_fd: fd");
  expect_bad(&loop, closed_fd, t, "not an open file descriptor");
  expect_bad(&loop, -1, t, "not an open file descriptor");
  expect_bad(&loop, pipefd[0], t, "not a socket");
  expect_bad(&loop, t, t, "not a datagram (UDP) socket");
  expect_bad(&loop, unbound_udp, t, "not bound");
  expect_bad(&loop, u, u, "tcp_fd: fd");
  expect_bad(&loop, u, u, "not a stream (TCP) socket");
  expect_bad(&loop, u, tcp_not_listening, "not listening");
  expect_bad(&loop, u, other_port_tcp, "must share the port");
  expect_bad(&loop, u, pipefd[1], "not a socket");
  /* bound to 0.0.0.0: the address to advertise must be given */
  int any = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_ANY);
  assert_int_equal(bind(any, (struct sockaddr *)&sa, sizeof sa), 0);
  expect_bad(&loop, any, -1, "unspecified address");
  {
    dmq_config_t ac;
    assert_int_equal(dmq_config_init(&ac, DMQ_PROFILE_LOCAL), 0);
    ac.name = "any";
    dmq_uv_options_t ao;
    dmq_uv_options_init(&ao);
    ao.use_fds = 1;
    ao.udp_fd = any;
    ao.tcp_fd = -1;
    char adv[32];
    snprintf(adv, sizeof adv, "127.0.0.1:%u", (unsigned)fd_port(any));
    ao.advertise = adv;
    dmq_uv_t *art = NULL;
    assert_int_equal(dmq_uv_new(&loop, &ac, &ao, &art), 0);
    char want[48];
    snprintf(want, sizeof want, "udp://%s", adv);
    assert_string_equal(dmq_uv_addr(art), want);
    closed_t ac_closed = {0};
    dmq_uv_close(art, 0, on_closed, &ac_closed);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(ac_closed.n, 1);
  }
  close(any);
  /* use_fds off: fds are ignored, bind is required */
  dmq_config_t cfg;
  assert_int_equal(dmq_config_init(&cfg, DMQ_PROFILE_LOCAL), 0);
  cfg.name = "x";
  dmq_uv_options_t o;
  dmq_uv_options_init(&o);
  o.udp_fd = u;
  dmq_uv_t *rt = NULL;
  assert_int_equal(dmq_uv_new(&loop, &cfg, &o, &rt), DMQ_EINVAL);

  /* the transports' own entry points */
  dmq_transport_t *ut = NULL, *tt = NULL;
  assert_int_equal(dmq_udp_transport_new(&loop, &ut), 0);
  assert_int_equal(dmq_tcp_transport_new(&loop, &tt), 0);
  assert_int_equal(dmq_udp_transport_open(tt, u), DMQ_EINVAL); /* tcp's */
  assert_int_equal(dmq_tcp_transport_open(ut, t), DMQ_EINVAL);
  assert_int_equal(dmq_udp_transport_open(NULL, u), DMQ_EINVAL);
  assert_int_equal(dmq_udp_transport_open(ut, pipefd[0]), DMQ_EINVAL);
  assert_int_equal(dmq_tcp_transport_open(tt, tcp_not_listening), DMQ_EINVAL);
  assert_int_equal(dmq_udp_transport_open(ut, u), 0);
  assert_int_equal(dmq_udp_transport_open(ut, u), DMQ_ESTATE);
  assert_int_equal(dmq_tcp_transport_open(tt, t), 0);
  char a[64], b[64];
  assert_int_equal(ut->ops->local_addr(ut, a, sizeof a), 0);
  assert_int_equal(tt->ops->local_addr(tt, b, sizeof b), 0);
  assert_string_equal(a + 3, b + 3); /* "udp://h:p" and "tcp://h:p" */
  assert_int_equal(tt->ops->bind(tt, "tcp://127.0.0.1:0"), DMQ_ESTATE);
  ut->ops->close(ut);
  tt->ops->close(tt);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(&loop), 0);
  /* the test's descriptors were never closed by libdmq */
  assert_true(fcntl(u, F_GETFD) >= 0 && fcntl(t, F_GETFD) >= 0);
  close(u);
  close(t);
  close(pipefd[0]);
  close(pipefd[1]);
  close(unbound_udp);
  close(tcp_not_listening);
  close(other_port_tcp);
}

/* The poll and thread adapters forward the fds to the runtime. */
static void test_fds_adapters(void **state) {
  (void)state;
  dmq_config_t cfg;
  assert_int_equal(dmq_config_init(&cfg, DMQ_PROFILE_LOCAL), 0);
  char want[64];
  int u, t;
  host_pair(&u, &t);
  dmq_poll_options_t po;
  dmq_poll_options_init(&po);
  po.uv.use_fds = 1;
  po.uv.udp_fd = u;
  po.uv.tcp_fd = t;
  cfg.name = "p";
  dmq_poll_t *p = NULL;
  assert_int_equal(dmq_poll_new(&cfg, &po, &p), 0);
  snprintf(want, sizeof want, "udp://127.0.0.1:%u", (unsigned)fd_port(u));
  assert_string_equal(dmq_poll_addr(p), want);
  assert_int_equal(dmq_poll_close(p), 0);
  po.uv.tcp_fd = u; /* wrong type */
  p = NULL;
  assert_int_equal(dmq_poll_new(&cfg, &po, &p), DMQ_EINVAL);
  close(u);
  close(t);

  host_pair(&u, &t);
  dmq_thread_options_t to;
  dmq_thread_options_init(&to);
  to.uv.use_fds = 1;
  to.uv.udp_fd = u;
  to.uv.tcp_fd = t;
  cfg.name = "t";
  dmq_thread_t *th = NULL;
  assert_int_equal(dmq_thread_new(&cfg, &to, &th), 0);
  snprintf(want, sizeof want, "udp://127.0.0.1:%u", (unsigned)fd_port(u));
  assert_string_equal(dmq_thread_addr(th), want);
  assert_int_equal(dmq_thread_close(th), 0);
  to.uv.udp_fd = t; /* wrong type */
  th = NULL;
  assert_int_equal(dmq_thread_new(&cfg, &to, &th), DMQ_EINVAL);
  close(u);
  close(t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fds_join_and_deliver),
      cmocka_unit_test(test_fds_udp_only),
      cmocka_unit_test(test_fds_bad),
      cmocka_unit_test(test_fds_no_sockets),
      cmocka_unit_test(test_fds_adapters),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
