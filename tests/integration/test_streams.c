/* The TCP transport under hostile or heavy input, on loopback, with real
 * sockets (issue 12 streams, issue 13 descriptors):
 *   - a frame trickled a byte at a time is closed at the frame deadline and
 *     its buffer freed;
 *   - a header announcing 16 MiB followed by a few bytes does not make the
 *     reader allocate 16 MiB (the partial-frame gauge follows the bytes
 *     received), and a header beyond the mtu closes the connection;
 *   - the node-wide budget of partial-frame bytes holds across connections;
 *   - the inbound cap: idle connections are evicted (oldest first), busy
 *     ones make the new connection be closed at once;
 *   - a connection without traffic is closed after the idle timeout;
 *   - the outbound pool: more destinations than pool slots, every message
 *     completes exactly once with success;
 *   - descriptor exhaustion (the test process runs out of descriptors for
 *     real: RLIMIT_NOFILE lowered, the rest filled with dup()): accept,
 *     and socket creation for a connect, are counted and survived.
 * Nothing sleeps: each step runs the loop until a condition holds, under a
 * watchdog. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <dmq/uv.h>

#include "tcp/tcp.h"
#include "uv_until.h"

#define ST_TIMEOUT_MS 10000
#define ST_POLL_MS 5
#define ST_MIB (1024u * 1024u)
#define ST_KIB 1024u
#define ST_FRAME_START (64u * ST_KIB) /* tcp.c's first assembly size */
#define ST_MAX_FILLER 4096

/* ---- a transport under test ---- */

typedef struct srv {
  uv_loop_t *loop;
  dmq_transport_t *t;
  uint16_t port;
  char addr[64];
  unsigned recvd;
  size_t recvd_bytes;
  unsigned done_ok, done_err, done_total;
  unsigned done_by_cookie[8];
  int closed;
} srv_t;

static void srv_on_recv(dmq_transport_t *t, const char *from, const void *buf,
                        size_t len) {
  srv_t *s = t->owner;
  (void)from;
  (void)buf;
  s->recvd++;
  s->recvd_bytes += len;
}

static void srv_on_send_done(dmq_transport_t *t, void *cookie, int status) {
  srv_t *s = t->owner;
  s->done_total++;
  if (status == 0)
    s->done_ok++;
  else
    s->done_err++;
  uintptr_t k = (uintptr_t)cookie;
  if (k > 0 && k < 8)
    s->done_by_cookie[k]++;
}

static void srv_on_closed(dmq_transport_t *t) {
  ((srv_t *)t->owner)->closed = 1;
}

static void srv_open(srv_t *s, uv_loop_t *loop) {
  memset(s, 0, sizeof(*s));
  s->loop = loop;
  assert_int_equal(dmq_tcp_transport_new(loop, &s->t), 0);
  s->t->owner = s;
  s->t->on_recv = srv_on_recv;
  s->t->on_send_done = srv_on_send_done;
  s->t->on_closed = srv_on_closed;
  assert_int_equal(s->t->ops->bind(s->t, "tcp://127.0.0.1:0"), 0);
  assert_int_equal(s->t->ops->local_addr(s->t, s->addr, sizeof(s->addr)), 0);
  const char *colon = strrchr(s->addr, ':');
  assert_non_null(colon);
  s->port = (uint16_t)atoi(colon + 1);
}

static void srv_limits(srv_t *s, const dmq_stream_limits_t *l) {
  assert_int_equal(dmq_tcp_transport_set_limits(s->t, l), 0);
}

static dmq_stream_stats_t srv_stats(srv_t *s) {
  dmq_stream_stats_t st;
  assert_int_equal(dmq_tcp_transport_stats(s->t, &st), 0);
  return st;
}

static int pred_closed(void *ud) {
  return ((srv_t *)ud)->closed;
}

static void srv_close(srv_t *s) {
  s->t->ops->close(s->t);
  assert_true(uv_run_until(s->loop, pred_closed, s, ST_TIMEOUT_MS, ST_POLL_MS));
}

static void loop_done(uv_loop_t *loop) {
  uv_run(loop, UV_RUN_NOWAIT);
  assert_int_equal(uv_loop_close(loop), 0);
}

/* The default limits, for a test to change some of them. */
static dmq_stream_limits_t limits_default(void) {
  dmq_stream_limits_t l;
  assert_int_equal(dmq_stream_limits_init(&l), 0);
  return l;
}

/* A test's set-up: a loop, and a server on it with the limits l (NULL: the
 * defaults). */
static void srv_setup(uv_loop_t *loop, srv_t *s, const dmq_stream_limits_t *l) {
  assert_int_equal(uv_loop_init(loop), 0);
  srv_open(s, loop);
  if (l != NULL)
    srv_limits(s, l);
}

/* A test's tear-down: the server closed, then its loop. */
static void srv_teardown(srv_t *s) {
  uv_loop_t *loop = s->loop;
  srv_close(s);
  loop_done(loop);
}

/* Run the loop until s has received n frames (at most 2000 turns); it has
 * received exactly n. */
static void srv_wait_recvd(srv_t *s, unsigned n) {
  for (int i = 0; i < 2000 && s->recvd < n; i++)
    uv_run(s->loop, UV_RUN_ONCE);
  assert_int_equal(s->recvd, n);
}

/* ---- raw clients ---- */

static struct sockaddr_in loopback(uint16_t port) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

static int set_nonblock(int fd) {
  return fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static int client_connect(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  struct sockaddr_in a = loopback(port);
  assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  assert_int_equal(set_nonblock(fd), 0);
  return fd;
}

static void client_write(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
    if (w < 0 && (errno == EAGAIN || errno == EINTR))
      continue; /* loopback: the peer drains it when the loop runs */
    assert_true(w > 0);
    c += w;
    n -= (size_t)w;
  }
}

static void client_header(int fd, uint32_t len) {
  uint8_t h[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16),
                  (uint8_t)(len >> 8), (uint8_t)len};
  client_write(fd, h, sizeof(h));
}

/* 1: the server closed the connection (EOF or reset), 0: still open. */
static int client_gone(int fd) {
  char b[64];
  for (;;) {
    ssize_t r = recv(fd, b, sizeof(b), 0);
    if (r == 0)
      return 1;
    if (r > 0)
      continue;
    return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : 1;
  }
}

typedef struct gone_wait {
  int fd;
} gone_wait_t;

static int pred_gone(void *ud) {
  return client_gone(((gone_wait_t *)ud)->fd);
}

/* Run the loop until the server has closed fd's connection. */
static void wait_gone(uv_loop_t *loop, int fd) {
  gone_wait_t g = {fd};
  assert_true(uv_run_until(loop, pred_gone, &g, ST_TIMEOUT_MS, ST_POLL_MS));
}

/* ---- predicates on counters ---- */

typedef struct stat_wait {
  srv_t *s;
  size_t off; /* offsetof a uint64_t field of dmq_stream_stats_t */
  uint64_t at_least;
} stat_wait_t;

static int pred_stat(void *ud) {
  stat_wait_t *w = ud;
  dmq_stream_stats_t st = srv_stats(w->s);
  uint64_t v;
  memcpy(&v, (char *)&st + w->off, sizeof(v));
  return v >= w->at_least;
}

#define WAIT_STAT(srv, field, n)                                               \
  do {                                                                         \
    stat_wait_t w_ = {(srv), offsetof(dmq_stream_stats_t, field), (n)};        \
    assert_true(                                                               \
        uv_run_until((srv)->loop, pred_stat, &w_, ST_TIMEOUT_MS, ST_POLL_MS)); \
  } while (0)

/* ---- 1. trickled frame ---- */

typedef struct trickle {
  uv_timer_t tm;
  int fd;
  unsigned sent;
} trickle_t;

static void on_trickle(uv_timer_t *h) {
  trickle_t *tr = h->data;
  uint8_t b = 0x5a;
  if (send(tr->fd, &b, 1, MSG_NOSIGNAL) == 1)
    tr->sent++;
  else
    uv_timer_stop(h); /* closed by the server */
}

static void test_trickle_deadline(void **state) {
  (void)state;
  uv_loop_t loop;
  srv_t s;
  dmq_stream_limits_t l = limits_default();
  l.frame_timeout_ms = 300;
  srv_setup(&loop, &s, &l);

  int fd = client_connect(s.port);
  client_header(fd, 100000);
  trickle_t tr = {.fd = fd};
  uv_timer_init(&loop, &tr.tm);
  tr.tm.data = &tr;
  uv_update_time(&loop);
  uint64_t t0 = uv_now(&loop);
  uv_timer_start(&tr.tm, on_trickle, 0, 20);

  WAIT_STAT(&s, partial_bytes, 1);
  WAIT_STAT(&s, frame_timeouts, 1);
  uint64_t took = uv_now(&loop) - t0;
  dmq_stream_stats_t st = srv_stats(&s);
  printf("trickle: closed after %llu ms, %u bytes trickled, "
         "partial_bytes now %llu, peak %llu\n",
         (unsigned long long)took, tr.sent,
         (unsigned long long)st.partial_bytes,
         (unsigned long long)st.partial_peak);
  assert_true(took >= 300);
  assert_true(took < 3000);
  assert_true(tr.sent > 3);               /* it was active all along */
  assert_int_equal(st.partial_bytes, 0);  /* freed with the connection */
  assert_true(st.partial_peak <= 100000); /* never the announced size */
  assert_int_equal(st.idle_closes, 0);
  assert_int_equal(st.inbound, 0);
  wait_gone(&loop, fd);

  uv_timer_stop(&tr.tm);
  uv_close((uv_handle_t *)&tr.tm, NULL);
  close(fd);
  srv_teardown(&s);
}

/* ---- 2. 16 MiB header, few bytes; beyond the mtu ---- */

static void test_big_header(void **state) {
  (void)state;
  uv_loop_t loop;
  srv_t s;
  srv_setup(&loop, &s, NULL);
  assert_int_equal(s.t->mtu, 16 * ST_MIB);

  int fd = client_connect(s.port);
  client_header(fd, 16 * ST_MIB); /* exactly the mtu: allowed */
  uint8_t few[100];
  memset(few, 1, sizeof(few));
  client_write(fd, few, sizeof(few));
  WAIT_STAT(&s, partial_bytes, 1);
  dmq_stream_stats_t st = srv_stats(&s);
  printf("16 MiB header + 100 bytes: partial_bytes %llu\n",
         (unsigned long long)st.partial_bytes);
  assert_true(st.partial_bytes <= ST_FRAME_START);

  /* 300 KiB more: the buffer follows what arrived (doubling) */
  static uint8_t more[300 * ST_KIB];
  memset(more, 2, sizeof(more));
  client_write(fd, more, sizeof(more));
  WAIT_STAT(&s, partial_bytes, 512 * ST_KIB);
  st = srv_stats(&s);
  printf("after 300 KiB: partial_bytes %llu\n",
         (unsigned long long)st.partial_bytes);
  assert_true(st.partial_bytes <= 2 * (sizeof(more) + sizeof(few)));
  close(fd);
  /* the connection is gone: its buffer too */
  for (int i = 0; i < 1000 && srv_stats(&s).partial_bytes != 0; i++)
    uv_run(&loop, UV_RUN_ONCE);
  assert_int_equal(srv_stats(&s).partial_bytes, 0);

  /* beyond the mtu: closed, counted */
  fd = client_connect(s.port);
  client_header(fd, 16 * ST_MIB + 1);
  WAIT_STAT(&s, oversize_frames, 1);
  wait_gone(&loop, fd);
  close(fd);
  srv_teardown(&s);
}

/* ---- 3. partial-frame budget across connections ---- */

static void test_partial_budget(void **state) {
  (void)state;
  uv_loop_t loop;
  srv_t s;
  dmq_stream_limits_t l = limits_default();
  l.partial_budget = 300 * ST_KIB;
  srv_setup(&loop, &s, &l);

  static uint8_t body[200 * ST_KIB];
  memset(body, 3, sizeof(body));
  int a = client_connect(s.port);
  client_header(a, ST_MIB);
  client_write(a, body, sizeof(body)); /* holds 256 KiB */
  WAIT_STAT(&s, partial_bytes, 256 * ST_KIB);
  int b = client_connect(s.port);
  client_header(b, ST_MIB);
  client_write(b, body, 100 * ST_KIB); /* would need 128 KiB more */
  WAIT_STAT(&s, budget_drops, 1);
  dmq_stream_stats_t st = srv_stats(&s);
  printf("budget 300 KiB: partial_bytes %llu, peak %llu, budget_drops %llu\n",
         (unsigned long long)st.partial_bytes,
         (unsigned long long)st.partial_peak,
         (unsigned long long)st.budget_drops);
  assert_true(st.partial_peak <= l.partial_budget);
  assert_int_equal(st.budget_drops, 1);
  wait_gone(&loop, b);
  assert_false(client_gone(a)); /* the first one keeps going */
  close(a);
  close(b);
  srv_teardown(&s);
}

/* ---- 4. inbound cap ---- */

static void test_inbound_cap(void **state) {
  (void)state;
  uv_loop_t loop;
  srv_t s;
  dmq_stream_limits_t l = limits_default();
  l.max_inbound = 4;
  srv_setup(&loop, &s, &l);

  /* four busy connections (a frame of 1000 bytes begun on each: its
   * 1000-byte buffer shows in partial_bytes) */
  int busy[4];
  static uint8_t body[1000];
  for (int i = 0; i < 4; i++) {
    busy[i] = client_connect(s.port);
    client_header(busy[i], sizeof(body));
    client_write(busy[i], body, 1);
  }
  WAIT_STAT(&s, partial_bytes, 4 * sizeof(body));
  assert_int_equal(srv_stats(&s).inbound, 4);
  int extra = client_connect(s.port);
  WAIT_STAT(&s, inbound_rejected, 1);
  wait_gone(&loop, extra);
  dmq_stream_stats_t st = srv_stats(&s);
  assert_int_equal(st.inbound, 4);
  assert_int_equal(st.inbound_evicted, 0);
  close(extra);
  for (int i = 0; i < 4; i++)
    assert_false(client_gone(busy[i]));

  /* complete two frames: those connections are idle again, the oldest
   * idle one makes room for the next */
  client_write(busy[0], body, sizeof(body) - 1);
  client_write(busy[1], body, sizeof(body) - 1);
  srv_wait_recvd(&s, 2);
  int next = client_connect(s.port);
  WAIT_STAT(&s, inbound_evicted, 1);
  st = srv_stats(&s);
  printf("inbound cap 4: rejected %llu, evicted %llu, open %llu\n",
         (unsigned long long)st.inbound_rejected,
         (unsigned long long)st.inbound_evicted,
         (unsigned long long)st.inbound);
  assert_int_equal(st.inbound, 4);
  wait_gone(&loop, busy[0]); /* the least recently active idle one */
  assert_false(client_gone(busy[2]));
  assert_false(client_gone(busy[3]));
  assert_false(client_gone(next));
  close(next);
  for (int i = 0; i < 4; i++)
    close(busy[i]);
  srv_teardown(&s);
}

/* ---- 5. idle timeout ---- */

static void test_idle_close(void **state) {
  (void)state;
  uv_loop_t loop;
  srv_t s;
  dmq_stream_limits_t l = limits_default();
  l.idle_timeout_ms = 100; /* inbound: 200 ms */
  srv_setup(&loop, &s, &l);
  int fd = client_connect(s.port);
  uv_update_time(&loop);
  uint64_t t0 = uv_now(&loop);
  WAIT_STAT(&s, idle_closes, 1);
  uint64_t took = uv_now(&loop) - t0;
  printf("silent connection closed after %llu ms\n", (unsigned long long)took);
  assert_true(took >= 200 && took < 3000);
  wait_gone(&loop, fd);
  close(fd);
  srv_teardown(&s);
}

/* ---- 6. outbound pool ---- */

typedef struct pool_wait {
  srv_t *a, *dst[3];
} pool_wait_t;

static int pred_pool(void *ud) {
  pool_wait_t *w = ud;
  for (int i = 0; i < 3; i++)
    if (w->dst[i]->recvd < 1)
      return 0;
  return w->a->done_total >= 3;
}

static void test_outbound_pool(void **state) {
  (void)state;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  srv_t a, d[3];
  srv_open(&a, &loop);
  for (int i = 0; i < 3; i++)
    srv_open(&d[i], &loop);
  dmq_stream_limits_t l;
  dmq_stream_limits_init(&l);
  l.max_outbound = 2;
  srv_limits(&a, &l);
  const char msg[] = "pooled";
  for (uintptr_t i = 0; i < 3; i++)
    assert_int_equal(
        a.t->ops->send(a.t, d[i].addr, msg, sizeof(msg), (void *)(i + 1)), 0);
  pool_wait_t w = {&a, {&d[0], &d[1], &d[2]}};
  assert_true(uv_run_until(&loop, pred_pool, &w, ST_TIMEOUT_MS, ST_POLL_MS));
  dmq_stream_stats_t st = srv_stats(&a);
  printf("pool of 2, 3 destinations: ok %u, evictions %llu, deferred %llu, "
         "open %llu\n",
         a.done_ok, (unsigned long long)st.pool_evictions,
         (unsigned long long)st.connect_deferred,
         (unsigned long long)st.outbound);
  assert_int_equal(a.done_ok, 3);
  assert_int_equal(a.done_err, 0);
  assert_true(st.pool_evictions >= 1);
  assert_true(st.connect_deferred >= 1);
  assert_true(st.outbound <= 2);
  srv_close(&a);
  /* exactly once: close reported nothing more */
  assert_int_equal(a.done_total, 3);
  for (int i = 1; i <= 3; i++)
    assert_int_equal(a.done_by_cookie[i], 1);
  for (int i = 0; i < 3; i++)
    srv_close(&d[i]);
  loop_done(&loop);
}

/* ---- 7. descriptor exhaustion ---- */

static int fill[ST_MAX_FILLER];
static int nfill;
static struct rlimit saved_nofile;

/* Use up every descriptor: RLIMIT_NOFILE lowered to 256 (the process holds
 * far fewer), the rest filled with dup(). */
static void fds_exhaust(void) {
  struct rlimit rl;
  if (nfill == 0) {
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved_nofile), 0);
    rl = saved_nofile;
    rl.rlim_cur = 256;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
  }
  for (;;) {
    assert_true(nfill < ST_MAX_FILLER);
    int fd = dup(0);
    if (fd < 0) {
      assert_true(errno == EMFILE);
      return;
    }
    fill[nfill++] = fd;
  }
}

static void fds_release(int n) {
  while (n-- > 0 && nfill > 0)
    close(fill[--nfill]);
}

static void fds_restore(void) {
  fds_release(nfill);
  assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved_nofile), 0);
}

static int pred_delivered(void *ud) {
  srv_t **p = ud;
  return p[0]->done_total >= 1 && p[1]->recvd >= 1;
}

static int pred_no_outbound(void *ud) {
  return srv_stats(ud).outbound == 0;
}

static void test_emfile(void **state) {
  (void)state;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  srv_t a, b;
  srv_open(&a, &loop);
  srv_open(&b, &loop);
  /* clients' sockets, made while there are descriptors */
  int c[3];
  for (int i = 0; i < 3; i++)
    assert_true((c[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0);
  struct sockaddr_in ba = loopback(b.port);

  /* socket() of a connect: EMFILE, counted; the message waits and goes
   * out once descriptors are back */
  fds_exhaust();
  const char msg[] = "after EMFILE";
  assert_int_equal(a.t->ops->send(a.t, b.addr, msg, sizeof(msg), (void *)1), 0);
  WAIT_STAT(&a, emfile_connect, 1);
  assert_int_equal(a.done_total, 0);
  fds_release(4);
  srv_t *ab[2] = {&a, &b};
  assert_true(
      uv_run_until(&loop, pred_delivered, ab, ST_TIMEOUT_MS, ST_POLL_MS));
  assert_int_equal(a.done_ok, 1);
  assert_true(srv_stats(&a).connect_deferred >= 1);

  /* accept: EMFILE, an idle connection (b's inbound from a) gives its
   * descriptor back, the new one is accepted */
  fds_exhaust();
  assert_int_equal(connect(c[0], (struct sockaddr *)&ba, sizeof(ba)), 0);
  WAIT_STAT(&b, emfile_shed, 1);
  WAIT_STAT(&b, inbound, 1);
  dmq_stream_stats_t st = srv_stats(&b);
  assert_true(st.emfile_accept >= 1);
  assert_int_equal(st.accept_refused, 0);
  /* c[0] busy (a frame of 10 bytes begun), a's connection gone (b shed
   * it: a sees EOF and closes) before descriptors run out again */
  uint8_t part[5] = {0, 0, 0, 10, 0};
  assert_int_equal(send(c[0], part, sizeof(part), MSG_NOSIGNAL),
                   (ssize_t)sizeof(part));
  WAIT_STAT(&b, partial_bytes, 10);
  assert_true(
      uv_run_until(&loop, pred_no_outbound, &a, ST_TIMEOUT_MS, ST_POLL_MS));
  fds_exhaust();

  /* accept: EMFILE and nothing idle: the pending connection is accepted on
   * the spare descriptor and closed at once; accepting pauses, then works
   * again once descriptors are back */
  assert_int_equal(connect(c[1], (struct sockaddr *)&ba, sizeof(ba)), 0);
  WAIT_STAT(&b, accept_refused, 1);
  set_nonblock(c[1]);
  wait_gone(&loop, c[1]);
  fds_release(8);
  assert_int_equal(connect(c[2], (struct sockaddr *)&ba, sizeof(ba)), 0);
  WAIT_STAT(&b, inbound, 2);
  st = srv_stats(&b);
  printf("EMFILE: a: emfile_connect %llu deferred %llu; b: emfile_accept "
         "%llu shed %llu refused %llu, inbound %llu\n",
         (unsigned long long)srv_stats(&a).emfile_connect,
         (unsigned long long)srv_stats(&a).connect_deferred,
         (unsigned long long)st.emfile_accept,
         (unsigned long long)st.emfile_shed,
         (unsigned long long)st.accept_refused, (unsigned long long)st.inbound);
  set_nonblock(c[0]);
  assert_false(client_gone(c[0])); /* the busy one was kept */
  fds_restore();
  for (int i = 0; i < 3; i++)
    close(c[i]);
  srv_close(&a);
  srv_close(&b);
  assert_int_equal(a.done_total, 1);
  loop_done(&loop);
}

/* ---- 8. API misuse ---- */

static void uv_closed_cb(void *ud) {
  *(int *)ud = 1;
}

static int pred_flag(void *ud) {
  return *(int *)ud;
}

/* Close the runtime rt and run the loop until it says it is closed. */
static void rt_close(uv_loop_t *loop, dmq_uv_t *rt) {
  int closed = 0;
  dmq_uv_close(rt, 0, uv_closed_cb, &closed);
  assert_true(
      uv_run_until(loop, pred_flag, &closed, ST_TIMEOUT_MS, ST_POLL_MS));
}

static void test_api_errors(void **state) {
  (void)state;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  dmq_stream_limits_t l;
  dmq_stream_stats_t st;
  assert_int_equal(dmq_stream_limits_init(NULL), DMQ_EINVAL);
  assert_int_equal(dmq_stream_limits_init_sized(&l, 4), DMQ_EINVAL);
  assert_int_equal(dmq_stream_limits_init(&l), 0);
  assert_int_equal(l.size, sizeof(l));
  assert_int_equal(l.frame_timeout_ms, 5000);
  assert_int_equal(l.idle_timeout_ms, 15000);
  assert_int_equal(l.max_inbound, 256);
  assert_int_equal(l.max_outbound, 64);
  assert_int_equal(l.partial_budget, 64ull * ST_MIB);

  srv_t s;
  srv_open(&s, &loop);
  assert_int_equal(dmq_tcp_transport_set_limits(NULL, &l), DMQ_EINVAL);
  assert_int_equal(dmq_tcp_transport_set_limits(s.t, NULL), DMQ_EINVAL);
  dmq_stream_limits_t bad = l;
  bad.size = 0; /* not initialised */
  assert_int_equal(dmq_tcp_transport_set_limits(s.t, &bad), DMQ_EINVAL);
  uint32_t *fields[] = {&bad.frame_timeout_ms, &bad.idle_timeout_ms,
                        &bad.max_inbound, &bad.max_outbound};
  for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
    bad = l;
    *fields[i] = 0;
    assert_int_equal(dmq_tcp_transport_set_limits(s.t, &bad), DMQ_EINVAL);
  }
  bad = l;
  bad.partial_budget = 0;
  assert_int_equal(dmq_tcp_transport_set_limits(s.t, &bad), DMQ_EINVAL);
  assert_int_equal(dmq_tcp_transport_stats(NULL, &st), DMQ_EINVAL);
  assert_int_equal(dmq_tcp_transport_stats(s.t, NULL), DMQ_EINVAL);
  assert_int_equal(dmq_tcp_transport_stats_sized(s.t, &st, 8), DMQ_EINVAL);
  assert_int_equal(dmq_tcp_transport_stats(s.t, &st), 0);
  assert_int_equal(st.size, sizeof(st));

  /* not a TCP transport */
  dmq_transport_t *udp = NULL;
  assert_int_equal(dmq_udp_transport_new(&loop, &udp), 0);
  assert_int_equal(dmq_tcp_transport_set_limits(udp, &l), DMQ_EINVAL);
  assert_int_equal(dmq_tcp_transport_stats(udp, &st), DMQ_EINVAL);
  udp->ops->close(udp);

  /* the runtime's: without TCP, DMQ_ESTATE */
  assert_int_equal(dmq_uv_set_stream_limits(NULL, &l), DMQ_EINVAL);
  assert_int_equal(dmq_uv_stream_stats(NULL, &st), DMQ_EINVAL);
  dmq_config_t cfg;
  dmq_config_init(&cfg, DMQ_PROFILE_LAN);
  cfg.name = "solo";
  dmq_uv_options_t uo;
  dmq_uv_options_init(&uo);
  uo.bind = "127.0.0.1:0";
  uo.no_tcp = 1;
  dmq_uv_t *rt = NULL;
  assert_int_equal(dmq_uv_new(&loop, &cfg, &uo, &rt), 0);
  assert_int_equal(dmq_uv_set_stream_limits(rt, &l), DMQ_ESTATE);
  assert_int_equal(dmq_uv_stream_stats(rt, &st), DMQ_ESTATE);
  rt_close(&loop, rt);
  /* with TCP: applied to its transport */
  uo.no_tcp = 0;
  assert_int_equal(dmq_uv_new(&loop, &cfg, &uo, &rt), 0);
  assert_int_equal(dmq_uv_set_stream_limits(rt, NULL), DMQ_EINVAL);
  assert_int_equal(dmq_uv_set_stream_limits(rt, &l), 0);
  assert_int_equal(dmq_uv_stream_stats(rt, NULL), DMQ_EINVAL);
  assert_int_equal(dmq_uv_stream_stats(rt, &st), 0);
  rt_close(&loop, rt);

  srv_teardown(&s);
}

/* ---- 9. a header alone in a read ---- */

typedef struct polls {
  int n;
} polls_t;

static int pred_polls(void *ud) {
  return ++((polls_t *)ud)->n >= 10; /* ten loop wake-ups (50 ms) */
}

static void test_header_alone(void **state) {
  (void)state;
  uv_loop_t loop;
  srv_t s;
  dmq_stream_limits_t l = limits_default();
  l.frame_timeout_ms = 200;
  srv_setup(&loop, &s, &l);

  /* a header and nothing else: a partial frame too, closed at the
   * deadline (no buffer was ever needed) */
  int a = client_connect(s.port);
  client_header(a, 10);
  WAIT_STAT(&s, frame_timeouts, 1);
  assert_int_equal(srv_stats(&s).partial_peak, 0);
  wait_gone(&loop, a);
  close(a);

  /* a header read alone, its payload later: delivered */
  int b = client_connect(s.port);
  client_header(b, 10);
  WAIT_STAT(&s, inbound, 1);
  polls_t p = {0};
  uv_run_until(&loop, pred_polls, &p, ST_TIMEOUT_MS, ST_POLL_MS);
  client_write(b, "0123456789", 10);
  srv_wait_recvd(&s, 1);
  assert_int_equal(s.recvd_bytes, 10);
  close(b);
  srv_teardown(&s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_trickle_deadline),
      cmocka_unit_test(test_big_header),
      cmocka_unit_test(test_partial_budget),
      cmocka_unit_test(test_inbound_cap),
      cmocka_unit_test(test_idle_close),
      cmocka_unit_test(test_outbound_pool),
      cmocka_unit_test(test_emfile),
      cmocka_unit_test(test_api_errors),
      cmocka_unit_test(test_header_alone),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
