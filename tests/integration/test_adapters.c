/* The embedding adapters on real sockets over loopback.
 *
 * Thread adapter (dmq/thread.h): two dmq_thread_t converge (checked with
 * dmq_thread_members() from the test thread), events arrive through the
 * event descriptor, metadata set from another thread propagates, member
 * callbacks and dmq_thread_call() functions run on the library thread,
 * calls made there run inline (close is refused), the event queue bound
 * drops the oldest event and says so, bind errors are synchronous, a close
 * racing with other calls (a second close included) refuses them while
 * still running the calls it accepted, four threads hammer one handle, and
 * closing from the test thread frees everything (ASan/valgrind check that).
 *
 * Poll adapter (dmq/poll.h): two dmq_poll_t driven by a plain poll() loop
 * converge, metadata propagates, one leaves without blocking (the other sees
 * LEFT), both close; re-entrant calls from a member callback are refused.
 *
 * Nothing sleeps to synchronise: the test waits on condition variables with
 * timeouts, or in poll() on the adapters' descriptors with timeouts, and
 * re-checks its condition after every wakeup. An alarm bounds the program.
 *
 * Usage: test_adapters [cmocka test filter], e.g. `test_adapters 'test_poll*'`
 * (what the valgrind run uses).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <dmq/poll.h>
#include <dmq/thread.h>

/* Hard bound on the whole program (a hang must not hang ctest). */
#define AD_ALARM_S 240
/* Longest wait for any condition (generous: valgrind is slow). */
#define AD_WAIT_MS 20000
/* Re-check conditions at least this often while waiting on descriptors. */
#define AD_RECHECK_MS 100
#define AD_FLUSH_MS 500
#define AD_HAMMER_THREADS 4
#define AD_HAMMER_ROUNDS 200
#define AD_NS_PER_MS 1000000L
#define AD_MS_PER_S 1000

/* ---------------------------------------------------------------------- */
/* helpers                                                                 */

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * AD_MS_PER_S +
         (uint64_t)ts.tv_nsec / AD_NS_PER_MS;
}

static int ms_left(uint64_t deadline) {
  uint64_t now = mono_ms();
  return now >= deadline ? 0 : (int)(deadline - now);
}

static void cfg_local(dmq_config_t *cfg, const char *name) {
  assert_int_equal(dmq_config_init(cfg, DMQ_PROFILE_LOCAL), 0);
  cfg->name = name;
}

/* What a library-thread member callback saw; waited on with a timeout. */
typedef struct recorder {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  unsigned by_kind[DMQ_EVENT_REAPED + 1];
  pthread_t tid; /* thread of the last callback */
  int calls;
  int from_other_thread; /* a callback not on the library thread's id */
} recorder_t;

static void rec_init(recorder_t *r) {
  memset(r, 0, sizeof(*r));
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  assert_int_equal(pthread_mutex_init(&r->mu, NULL), 0);
  assert_int_equal(pthread_cond_init(&r->cv, &ca), 0);
  pthread_condattr_destroy(&ca);
}

static void rec_destroy(recorder_t *r) {
  pthread_cond_destroy(&r->cv);
  pthread_mutex_destroy(&r->mu);
}

static void rec_on_member(dmq_node_t *node, dmq_member_event_t ev,
                          const dmq_member_info_t *m, void *ud) {
  (void)node;
  (void)m;
  recorder_t *r = ud;
  pthread_mutex_lock(&r->mu);
  if (r->calls > 0 && !pthread_equal(r->tid, pthread_self()))
    r->from_other_thread = 1;
  r->tid = pthread_self();
  r->calls++;
  if ((unsigned)ev <= DMQ_EVENT_REAPED)
    r->by_kind[ev]++;
  pthread_cond_broadcast(&r->cv);
  pthread_mutex_unlock(&r->mu);
}

/* Wait until the recorder has seen `count` events of `kind`. */
static int rec_wait(recorder_t *r, dmq_member_event_t kind, unsigned count) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  ts.tv_sec += AD_WAIT_MS / AD_MS_PER_S;
  pthread_mutex_lock(&r->mu);
  int rc = 0;
  while (r->by_kind[kind] < count && rc == 0)
    rc = pthread_cond_timedwait(&r->cv, &r->mu, &ts);
  int ok = r->by_kind[kind] >= count;
  pthread_mutex_unlock(&r->mu);
  return ok;
}

static dmq_thread_t *th_make(const char *name, const char *bind,
                             int event_queue, recorder_t *rec,
                             size_t max_events) {
  dmq_config_t cfg;
  cfg_local(&cfg, name);
  dmq_thread_options_t o;
  dmq_thread_options_init(&o);
  o.uv.bind = bind;
  o.flush_timeout_ms = AD_FLUSH_MS;
  o.event_queue = event_queue;
  o.max_events = max_events;
  if (rec != NULL) {
    o.member_cb = rec_on_member;
    o.member_ud = rec;
  }
  dmq_thread_t *th = NULL;
  int rc = dmq_thread_new(&cfg, &o, &th);
  if (rc != 0)
    fail_msg("dmq_thread_new(%s): %s", name, dmq_strerror(rc));
  assert_non_null(th);
  return th;
}

/* Look a member up in a dmq_thread_members() snapshot. */
typedef struct find {
  const char *name;
  int found;
  dmq_thread_member_t m;
} find_t;

static int find_cb(const dmq_thread_member_t *m, void *ud) {
  find_t *f = ud;
  if (strcmp(m->name, f->name) != 0)
    return 0;
  f->found = 1;
  f->m = *m;
  return 1; /* stop */
}

static int th_sees(dmq_thread_t *obs, const char *name, dmq_member_state_t st,
                   const char *meta) {
  find_t f = {.name = name};
  int n = dmq_thread_members(obs, find_cb, &f);
  assert_true(n >= 1);
  if (!f.found || f.m.state != st)
    return 0;
  if (meta != NULL &&
      (f.m.meta_len != strlen(meta) || memcmp(f.m.meta, meta, f.m.meta_len)))
    return 0;
  return 1;
}

/* Events popped from one handle's queue, the newest AD_LOG_MAX kept. */
#define AD_LOG_MAX 256
typedef struct evlog {
  dmq_thread_t *th;
  dmq_thread_event_t ev[AD_LOG_MAX];
  size_t n;
  uint64_t lost;
} evlog_t;

static void evlog_drain(evlog_t *l) {
  dmq_thread_event_t ev;
  int rc;
  while ((rc = dmq_thread_next_event(l->th, &ev)) == 1) {
    l->lost += ev.lost;
    if (l->n == AD_LOG_MAX)
      memmove(&l->ev[0], &l->ev[1], (AD_LOG_MAX - 1) * sizeof(l->ev[0]));
    else
      l->n++;
    l->ev[l->n - 1] = ev;
  }
  assert_int_equal(rc, 0);
}

static const dmq_thread_event_t *
evlog_find(const evlog_t *l, dmq_member_event_t kind, const char *name) {
  for (size_t i = 0; i < l->n; i++)
    if (l->ev[i].kind == kind && strcmp(l->ev[i].member.name, name) == 0)
      return &l->ev[i];
  return NULL;
}

typedef int (*pred_fn)(void *ud);

/* Wait in poll() on the logs' event descriptors (draining them on every
 * wakeup) until pred holds; the descriptors wake us when something
 * happened, the re-check interval covers changes that raise no event. */
static int wait_events(evlog_t **logs, size_t n, pred_fn pred, void *ud) {
  uint64_t deadline = mono_ms() + AD_WAIT_MS;
  struct pollfd fds[4];
  assert_true(n <= 4);
  for (;;) {
    for (size_t i = 0; i < n; i++)
      evlog_drain(logs[i]);
    if (pred(ud)) {
      /* events raised by what pred observed were queued before it ran */
      for (size_t i = 0; i < n; i++)
        evlog_drain(logs[i]);
      return 1;
    }
    int left = ms_left(deadline);
    if (left == 0)
      return 0;
    for (size_t i = 0; i < n; i++) {
      fds[i].fd = dmq_thread_event_fd(logs[i]->th);
      fds[i].events = POLLIN;
      fds[i].revents = 0;
    }
    int rc = poll(fds, (nfds_t)n, left < AD_RECHECK_MS ? left : AD_RECHECK_MS);
    assert_true(rc >= 0 || errno == EINTR);
  }
}

/* ---------------------------------------------------------------------- */
/* thread adapter                                                          */

typedef struct pair {
  dmq_thread_t *a, *b;
  evlog_t *la, *lb;
  const char *meta; /* expected meta of b seen by a, or NULL */
} pair_t;

static int pair_converged(void *ud) {
  pair_t *p = ud;
  return th_sees(p->a, "b", DMQ_MEMBER_ALIVE, NULL) &&
         th_sees(p->b, "a", DMQ_MEMBER_ALIVE, NULL);
}

static int pair_meta_seen(void *ud) {
  pair_t *p = ud;
  return th_sees(p->a, "b", DMQ_MEMBER_ALIVE, p->meta) &&
         evlog_find(p->la, DMQ_EVENT_META_UPDATED, "b") != NULL;
}

static int pair_left_seen(void *ud) {
  pair_t *p = ud;
  return evlog_find(p->la, DMQ_EVENT_LEFT, "b") != NULL;
}

typedef struct meta_job {
  dmq_thread_t *th;
  const char *meta;
  int rc;
} meta_job_t;

static void *meta_thread(void *arg) {
  meta_job_t *j = arg;
  j->rc = dmq_thread_set_meta(j->th, j->meta, strlen(j->meta));
  return NULL;
}

/* What a dmq_thread_call() function saw on the library thread. */
typedef struct call_probe {
  dmq_thread_t *th;
  pthread_t tid;
  uint64_t now;
  int close_rc, stats_rc, members_n, counted, nested_rc, nested_ran;
  char name[DMQ_MAX_NAME + 1];
  /* async call: signalled when done */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int async_done;
} call_probe_t;

static int count_cb(const dmq_thread_member_t *m, void *ud) {
  (void)m;
  (*(int *)ud)++;
  return 0;
}

static void nested_fn(dmq_node_t *node, void *ud) {
  (void)node;
  ((call_probe_t *)ud)->nested_ran = 1;
}

static void probe_fn(dmq_node_t *node, void *ud) {
  call_probe_t *c = ud;
  c->tid = pthread_self();
  c->now = dmq_thread_now(c->th);
  snprintf(c->name, sizeof(c->name), "%s", dmq_node_name(node));
  /* on the library thread: synchronous calls run inline, close refused */
  c->close_rc = dmq_thread_close(c->th);
  dmq_stats_t st;
  c->stats_rc = dmq_thread_stats(c->th, &st);
  c->members_n = dmq_thread_members(c->th, count_cb, &c->counted);
  c->nested_rc = dmq_thread_call_sync(c->th, nested_fn, c);
}

static void async_fn(dmq_node_t *node, void *ud) {
  call_probe_t *c = ud;
  pthread_mutex_lock(&c->mu);
  c->tid = pthread_self();
  snprintf(c->name, sizeof(c->name), "%s", dmq_node_name(node));
  c->async_done++;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
}

static void test_thread_pair(void **state) {
  recorder_t rec;
  rec_init(&rec);
  dmq_thread_t *a = th_make("a", "127.0.0.1:0", 1, NULL, 0);
  dmq_thread_t *b = th_make("b", "127.0.0.1:0", 1, &rec, 0);
  assert_true(strncmp(dmq_thread_addr(a), "udp://127.0.0.1:", 16) == 0);
  assert_true(dmq_thread_event_fd(a) >= 0);
  assert_true(dmq_thread_event_fd(b) >= 0);
  evlog_t *la = calloc(1, sizeof(*la)), *lb = calloc(1, sizeof(*lb));
  assert_non_null(la);
  assert_non_null(lb);
  la->th = a;
  lb->th = b;
  evlog_t *logs[2] = {la, lb};
  pair_t p = {.a = a, .b = b, .la = la, .lb = lb};

  /* join from the test thread; converge; events through the descriptor */
  const char *seed = dmq_thread_addr(a);
  assert_int_equal(dmq_thread_join(b, &seed, 1), 0);
  assert_true(wait_events(logs, 2, pair_converged, &p));
  const dmq_thread_event_t *e = evlog_find(la, DMQ_EVENT_JOINED, "b");
  assert_non_null(e);
  assert_string_equal(e->member.addr, dmq_thread_addr(b));
  assert_int_equal(e->member.state, DMQ_MEMBER_ALIVE);
  assert_false(e->member.is_self);
  assert_non_null(evlog_find(lb, DMQ_EVENT_JOINED, "a"));
  assert_int_equal(la->lost + lb->lost, 0);
  /* b's library-thread callback saw a join too, not on this thread */
  assert_true(rec_wait(&rec, DMQ_EVENT_JOINED, 1));
  pthread_mutex_lock(&rec.mu);
  pthread_t cb_tid = rec.tid;
  assert_false(pthread_equal(cb_tid, pthread_self()));
  assert_false(rec.from_other_thread);
  pthread_mutex_unlock(&rec.mu);
  /* the descriptor is readable exactly while events are queued */
  evlog_drain(la);
  struct pollfd pf = {.fd = dmq_thread_event_fd(a), .events = POLLIN};
  assert_int_equal(poll(&pf, 1, 0), 0);

  dmq_stats_t st;
  assert_int_equal(dmq_thread_stats(a, &st), 0);
  assert_int_equal(st.members[DMQ_MEMBER_ALIVE], 2);
  assert_true(st.pkts_in > 0);
  find_t self = {.name = "a"};
  assert_int_equal(dmq_thread_members(a, find_cb, &self), 2);
  assert_true(self.found && self.m.is_self);

  /* metadata set from another thread reaches a */
  meta_job_t job = {.th = b, .meta = "hello"};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, meta_thread, &job), 0);
  assert_int_equal(pthread_join(t, NULL), 0);
  assert_int_equal(job.rc, 0);
  p.meta = "hello";
  assert_true(wait_events(logs, 2, pair_meta_seen, &p));
  e = evlog_find(la, DMQ_EVENT_META_UPDATED, "b");
  assert_int_equal(e->member.meta_len, 5);
  assert_memory_equal(e->member.meta, "hello", 5);
  char big[DMQ_MAX_META + 1];
  memset(big, 'x', sizeof(big));
  assert_int_equal(dmq_thread_set_meta(b, big, sizeof(big)), DMQ_ETOOBIG);
  assert_int_equal(dmq_thread_set_meta(b, NULL, 1), DMQ_EINVAL);

  /* dmq_thread_call_sync: on the library thread, inline calls there */
  call_probe_t c;
  memset(&c, 0, sizeof(c));
  c.th = b;
  assert_int_equal(pthread_mutex_init(&c.mu, NULL), 0);
  assert_int_equal(pthread_cond_init(&c.cv, NULL), 0);
  assert_int_equal(dmq_thread_call_sync(b, probe_fn, &c), 0);
  assert_false(pthread_equal(c.tid, pthread_self()));
  assert_true(pthread_equal(c.tid, cb_tid));
  assert_string_equal(c.name, "b");
  assert_true(c.now > 0);
  assert_int_equal(dmq_thread_now(b), 0); /* not the library thread */
  assert_int_equal(c.close_rc, DMQ_EBUSY);
  assert_int_equal(c.stats_rc, 0);
  assert_int_equal(c.members_n, 2);
  assert_int_equal(c.counted, 2);
  assert_int_equal(c.nested_rc, 0);
  assert_int_equal(c.nested_ran, 1);
  /* dmq_thread_call: queued, runs there once */
  memset(c.name, 0, sizeof(c.name));
  assert_int_equal(dmq_thread_call(a, async_fn, &c), 0);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += AD_WAIT_MS / AD_MS_PER_S;
  pthread_mutex_lock(&c.mu);
  while (c.async_done == 0)
    if (pthread_cond_timedwait(&c.cv, &c.mu, &ts) != 0)
      break;
  assert_int_equal(c.async_done, 1);
  assert_string_equal(c.name, "a");
  assert_false(pthread_equal(c.tid, pthread_self()));
  pthread_mutex_unlock(&c.mu);
  assert_int_equal(dmq_thread_call(a, NULL, NULL), DMQ_EINVAL);

  /* b closes from this thread: a sees it leave */
  assert_int_equal(dmq_thread_close(b), 0);
  lb->th = NULL;
  assert_true(wait_events(logs, 1, pair_left_seen, &p));
  assert_true(th_sees(a, "b", DMQ_MEMBER_LEFT, NULL));
  assert_int_equal(dmq_thread_close(a), 0);
  assert_int_equal(dmq_thread_close(NULL), DMQ_EINVAL);
  pthread_cond_destroy(&c.cv);
  pthread_mutex_destroy(&c.mu);
  rec_destroy(&rec);
  free(la);
  free(lb);
}

/* A full queue drops the oldest event and the next one says how many. */
static void test_thread_queue_bound(void **state) {
  recorder_t rec;
  rec_init(&rec);
  dmq_thread_t *a = th_make("a", "127.0.0.1:0", 1, &rec, 1);
  dmq_thread_t *b = th_make("b", "127.0.0.1:0", 0, NULL, 0);
  assert_int_equal(dmq_thread_event_fd(b), -1);
  dmq_thread_event_t ev;
  assert_int_equal(dmq_thread_next_event(b, &ev), DMQ_ESTATE);
  const char *seed = dmq_thread_addr(a);
  assert_int_equal(dmq_thread_join(b, &seed, 1), 0);
  /* a's callback runs after the event is queued: wait on it, not on the
   * descriptor (which stays readable while the event is left queued) */
  assert_true(rec_wait(&rec, DMQ_EVENT_JOINED, 1));
  assert_int_equal(dmq_thread_set_meta(b, "m", 1), 0);
  assert_true(rec_wait(&rec, DMQ_EVENT_META_UPDATED, 1));
  struct pollfd pf = {.fd = dmq_thread_event_fd(a), .events = POLLIN};
  assert_int_equal(poll(&pf, 1, 0), 1);
  assert_int_equal(dmq_thread_next_event(a, &ev), 1);
  assert_true(ev.lost >= 1); /* the JOINED event was dropped */
  while (dmq_thread_next_event(a, &ev) == 1)
    ;
  assert_int_equal(poll(&pf, 1, 0), 0);
  assert_int_equal(dmq_thread_close(b), 0);
  /* events still queued at close are freed with the handle */
  assert_int_equal(dmq_thread_close(a), 0);
  rec_destroy(&rec);
}

static void test_thread_errors(void **state) {
  dmq_config_t cfg;
  cfg_local(&cfg, "x");
  dmq_thread_options_t o;
  dmq_thread_options_init(&o);
  dmq_thread_t *th = (dmq_thread_t *)&o;
  assert_int_equal(dmq_thread_new(&cfg, &o, NULL), DMQ_EINVAL);
  assert_int_equal(dmq_thread_new(&cfg, &o, &th), DMQ_EINVAL); /* no bind */
  assert_null(th);
  o.uv.bind = "not an address";
  assert_int_equal(dmq_thread_new(&cfg, &o, &th), DMQ_EINVAL);
  assert_null(th);
  o.uv.bind = "127.0.0.1:0";
  assert_int_equal(dmq_thread_new(NULL, &o, &th), DMQ_EINVAL);
  cfg.name = NULL;
  assert_int_equal(dmq_thread_new(&cfg, &o, &th), DMQ_EINVAL);
  cfg.name = "x";
  /* the port in use: reported by dmq_thread_new() itself */
  dmq_thread_t *a = th_make("a", "127.0.0.1:0", 1, NULL, 0);
  const char *addr = dmq_thread_addr(a) + strlen("udp://");
  o.uv.bind = addr;
  o.event_queue = 1;
  int rc = dmq_thread_new(&cfg, &o, &th);
  assert_true(rc < 0);
  assert_null(th);
  assert_int_equal(dmq_thread_join(NULL, NULL, 0), DMQ_EINVAL);
  assert_int_equal(dmq_thread_join(a, NULL, 1), DMQ_EINVAL);
  assert_int_equal(dmq_thread_members(a, NULL, NULL), DMQ_EINVAL);
  assert_int_equal(dmq_thread_stats(a, NULL), DMQ_EINVAL);
  assert_int_equal(dmq_thread_next_event(a, NULL), DMQ_EINVAL);
  assert_int_equal(dmq_thread_event_fd(NULL), -1);
  assert_null(dmq_thread_addr(NULL));
  /* closing a node that never joined is quick and clean */
  assert_int_equal(dmq_thread_close(a), 0);
}

/* Close racing with other calls: the library thread is held inside a
 * dmq_thread_call() function (a gate) while another thread closes, so the
 * handle is certainly alive and CLOSING when this thread calls again. */
typedef struct gate {
  dmq_thread_t *th;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int entered, open;
  int stats_rc_closing; /* inline call made on the library thread */
  int noop_runs;
} gate_t;

static void gate_fn(dmq_node_t *node, void *ud) {
  (void)node;
  gate_t *g = ud;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += AD_WAIT_MS / AD_MS_PER_S;
  pthread_mutex_lock(&g->mu);
  g->entered = 1;
  pthread_cond_broadcast(&g->cv);
  while (!g->open)
    if (pthread_cond_timedwait(&g->cv, &g->mu, &ts) != 0)
      break;
  pthread_mutex_unlock(&g->mu);
  dmq_stats_t st;
  g->stats_rc_closing = dmq_thread_stats(g->th, &st);
}

static void noop_fn(dmq_node_t *node, void *ud) {
  (void)node;
  ((gate_t *)ud)->noop_runs++; /* library thread only */
}

typedef struct closer {
  dmq_thread_t *th;
  int rc;
} closer_t;

static void *closer_thread(void *arg) {
  closer_t *c = arg;
  c->rc = dmq_thread_close(c->th);
  return NULL;
}

static void test_thread_close_race(void **state) {
  gate_t g;
  memset(&g, 0, sizeof(g));
  assert_int_equal(pthread_mutex_init(&g.mu, NULL), 0);
  assert_int_equal(pthread_cond_init(&g.cv, NULL), 0);
  g.th = th_make("g", "127.0.0.1:0", 1, NULL, 0);
  assert_int_equal(dmq_thread_call(g.th, gate_fn, &g), 0);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += AD_WAIT_MS / AD_MS_PER_S;
  pthread_mutex_lock(&g.mu);
  while (!g.entered)
    if (pthread_cond_timedwait(&g.cv, &g.mu, &ts) != 0)
      break;
  assert_int_equal(g.entered, 1);
  pthread_mutex_unlock(&g.mu);

  /* the library thread is held: queued calls wait; close starts elsewhere */
  closer_t c = {.th = g.th, .rc = 1};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, closer_thread, &c), 0);
  /* async calls are accepted until close has marked the handle; each
   * accepted one must run before the node closes */
  int accepted = 0, rc;
  uint64_t deadline = mono_ms() + AD_WAIT_MS;
  while ((rc = dmq_thread_call(g.th, noop_fn, &g)) == 0 &&
         mono_ms() < deadline) {
    accepted++;
    sched_yield();
  }
  assert_int_equal(rc, DMQ_ECLOSED);
  /* a second close while the first is in progress is refused */
  assert_int_equal(dmq_thread_close(g.th), DMQ_ECLOSED);
  assert_int_equal(dmq_thread_join(g.th, NULL, 0), DMQ_ECLOSED);
  assert_int_equal(dmq_thread_set_meta(g.th, "x", 1), DMQ_ECLOSED);
  dmq_thread_event_t ev;
  assert_true(dmq_thread_next_event(g.th, &ev) >= 0); /* still allowed */

  pthread_mutex_lock(&g.mu);
  g.open = 1;
  pthread_cond_broadcast(&g.cv);
  pthread_mutex_unlock(&g.mu);
  assert_int_equal(pthread_join(t, NULL), 0);
  assert_int_equal(c.rc, 0);
  assert_int_equal(g.stats_rc_closing, DMQ_ECLOSED);
  assert_int_equal(g.noop_runs, accepted);
  pthread_cond_destroy(&g.cv);
  pthread_mutex_destroy(&g.mu);
}

/* Four threads use one handle at once, for a bounded number of rounds,
 * while this thread drains its events. */
typedef struct hammer {
  dmq_thread_t *th;
  int id;
  int errors;
  int members_min;
} hammer_t;

static void hammer_fn(dmq_node_t *node, void *ud) {
  (void)node;
  (void)ud;
}

static void *hammer_thread(void *arg) {
  hammer_t *h = arg;
  h->members_min = 1 << 30;
  for (int i = 0; i < AD_HAMMER_ROUNDS; i++) {
    char meta[32];
    int l = snprintf(meta, sizeof(meta), "t%d-%d", h->id, i);
    if (dmq_thread_set_meta(h->th, meta, (size_t)l) != 0)
      h->errors++;
    int counted = 0;
    int n = dmq_thread_members(h->th, count_cb, &counted);
    if (n < 1 || n != counted)
      h->errors++;
    else if (n < h->members_min)
      h->members_min = n;
    dmq_stats_t st;
    if (dmq_thread_stats(h->th, &st) != 0)
      h->errors++;
    if (i % 16 == 0 && dmq_thread_call(h->th, hammer_fn, NULL) != 0)
      h->errors++;
  }
  return NULL;
}

static void test_thread_hammer(void **state) {
  dmq_thread_t *a = th_make("a", "127.0.0.1:0", 1, NULL, 0);
  dmq_thread_t *b = th_make("b", "127.0.0.1:0", 1, NULL, 0);
  evlog_t *la = calloc(1, sizeof(*la)), *lb = calloc(1, sizeof(*lb));
  assert_non_null(la);
  assert_non_null(lb);
  la->th = a;
  lb->th = b;
  evlog_t *logs[2] = {la, lb};
  pair_t p = {.a = a, .b = b, .la = la, .lb = lb};
  const char *seed = dmq_thread_addr(a);
  assert_int_equal(dmq_thread_join(b, &seed, 1), 0);
  assert_true(wait_events(logs, 2, pair_converged, &p));

  hammer_t h[AD_HAMMER_THREADS];
  pthread_t t[AD_HAMMER_THREADS];
  for (int i = 0; i < AD_HAMMER_THREADS; i++) {
    h[i] = (hammer_t){.th = b, .id = i};
    assert_int_equal(pthread_create(&t[i], NULL, hammer_thread, &h[i]), 0);
  }
  /* meanwhile: this thread consumes a's events */
  for (int i = 0; i < AD_HAMMER_THREADS; i++) {
    assert_int_equal(pthread_join(t[i], NULL), 0);
    evlog_drain(la);
    la->n = 0;
  }
  for (int i = 0; i < AD_HAMMER_THREADS; i++) {
    assert_int_equal(h[i].errors, 0);
    assert_int_equal(h[i].members_min, 2);
  }
  /* the last value set reaches a */
  assert_int_equal(dmq_thread_set_meta(b, "final", 5), 0);
  la->n = 0;
  p.meta = "final";
  assert_true(wait_events(logs, 2, pair_meta_seen, &p));
  assert_int_equal(dmq_thread_close(a), 0);
  assert_int_equal(dmq_thread_close(b), 0);
  free(la);
  free(lb);
}

/* ---------------------------------------------------------------------- */
/* poll adapter                                                            */

typedef struct pnode {
  dmq_poll_t *p;
  const char *name;
  unsigned by_kind[DMQ_EVENT_REAPED + 1];
  int run_rc_in_cb, close_rc_in_cb; /* re-entrant calls from the callback */
  int closed;                       /* dmq_poll_run() returned 1 */
} pnode_t;

static void pnode_on_member(dmq_node_t *node, dmq_member_event_t ev,
                            const dmq_member_info_t *m, void *ud) {
  (void)node;
  (void)m;
  pnode_t *n = ud;
  if ((unsigned)ev <= DMQ_EVENT_REAPED)
    n->by_kind[ev]++;
  n->run_rc_in_cb = dmq_poll_run(n->p);
  n->close_rc_in_cb = dmq_poll_close(n->p);
}

static void pnode_make(pnode_t *n, const char *name) {
  memset(n, 0, sizeof(*n));
  n->name = name;
  dmq_config_t cfg;
  cfg_local(&cfg, name);
  dmq_poll_options_t o;
  dmq_poll_options_init(&o);
  o.uv.bind = "127.0.0.1:0";
  o.flush_timeout_ms = AD_FLUSH_MS;
  o.member_cb = pnode_on_member;
  o.member_ud = n;
  int rc = dmq_poll_new(&cfg, &o, &n->p);
  if (rc != 0)
    fail_msg("dmq_poll_new(%s): %s", name, dmq_strerror(rc));
  assert_true(dmq_poll_fd(n->p) >= 0);
}

static int pnode_sees(pnode_t *obs, const char *name, dmq_member_state_t st,
                      const char *meta) {
  dmq_node_t *node = dmq_poll_node(obs->p);
  dmq_member_info_t info;
  if (node == NULL || dmq_node_member(node, name, &info) != 0 ||
      info.state != st)
    return 0;
  return meta == NULL || (info.meta_len == strlen(meta) &&
                          memcmp(info.meta, meta, info.meta_len) == 0);
}

/* A plain poll() loop over the nodes' descriptors, as a host would write
 * it, until pred holds. Returns pred. */
static int drive(pnode_t **nodes, size_t n, pred_fn pred, void *ud) {
  uint64_t deadline = mono_ms() + AD_WAIT_MS;
  struct pollfd fds[2];
  assert_true(n <= 2);
  for (;;) {
    if (pred(ud))
      return 1;
    int timeout = ms_left(deadline);
    if (timeout == 0)
      return 0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
      if (nodes[i]->closed)
        continue;
      int t = dmq_poll_timeout_ms(nodes[i]->p);
      assert_true(t >= -1);
      if (t >= 0 && t < timeout)
        timeout = t;
      fds[k].fd = dmq_poll_fd(nodes[i]->p);
      fds[k].events = POLLIN;
      fds[k].revents = 0;
      k++;
    }
    int rc = poll(fds, (nfds_t)k, timeout);
    assert_true(rc >= 0 || errno == EINTR);
    /* after every wakeup, readable or not: run what is due */
    for (size_t i = 0; i < n; i++) {
      if (nodes[i]->closed)
        continue;
      rc = dmq_poll_run(nodes[i]->p);
      assert_true(rc == 0 || rc == 1);
      if (rc == 1)
        nodes[i]->closed = 1;
    }
  }
}

typedef struct ppair {
  pnode_t *a, *b;
  const char *meta;
} ppair_t;

static int ppair_converged(void *ud) {
  ppair_t *p = ud;
  return pnode_sees(p->a, "b", DMQ_MEMBER_ALIVE, p->meta) &&
         pnode_sees(p->b, "a", DMQ_MEMBER_ALIVE, NULL);
}

static int ppair_b_gone(void *ud) {
  ppair_t *p = ud;
  return p->b->closed && pnode_sees(p->a, "b", DMQ_MEMBER_LEFT, NULL);
}

static void test_poll_pair(void **state) {
  pnode_t a, b;
  pnode_make(&a, "a");
  pnode_make(&b, "b");
  assert_true(dmq_poll_fd(a.p) != dmq_poll_fd(b.p));
  assert_true(strncmp(dmq_poll_addr(a.p), "udp://127.0.0.1:", 16) == 0);
  pnode_t *nodes[2] = {&a, &b};
  ppair_t pp = {.a = &a, .b = &b};
  const char *seed = dmq_poll_addr(a.p);
  assert_int_equal(dmq_poll_join(b.p, &seed, 1), 0);
  assert_true(drive(nodes, 2, ppair_converged, &pp));
  assert_true(a.by_kind[DMQ_EVENT_JOINED] >= 1);
  assert_true(b.by_kind[DMQ_EVENT_JOINED] >= 1);
  /* re-entrant calls from a member callback are refused */
  assert_int_equal(a.run_rc_in_cb, DMQ_EBUSY);
  assert_int_equal(a.close_rc_in_cb, DMQ_EBUSY);
  assert_true(dmq_poll_now(a.p) > 0);

  /* metadata, set between runs: the timeout computation picks it up */
  assert_int_equal(dmq_poll_set_meta(b.p, "pm", 2), 0);
  pp.meta = "pm";
  assert_true(drive(nodes, 2, ppair_converged, &pp));
  assert_true(a.by_kind[DMQ_EVENT_META_UPDATED] >= 1);

  /* b leaves without blocking; the loop keeps driving both */
  assert_int_equal(dmq_poll_leave(b.p), 0);
  assert_int_equal(dmq_poll_leave(b.p), DMQ_ECLOSED);
  assert_int_equal(dmq_poll_join(b.p, &seed, 1), DMQ_ECLOSED);
  assert_int_equal(dmq_poll_set_meta(b.p, "x", 1), DMQ_ECLOSED);
  assert_true(drive(nodes, 2, ppair_b_gone, &pp));
  assert_null(dmq_poll_node(b.p));
  assert_int_equal(dmq_poll_timeout_ms(b.p), -1);
  assert_int_equal(dmq_poll_run(b.p), 1);
  assert_int_equal(a.by_kind[DMQ_EVENT_LEFT], 1);
  assert_int_equal(dmq_poll_close(b.p), 0);
  /* a closes in one blocking call */
  assert_int_equal(dmq_poll_close(a.p), 0);
}

static void test_poll_errors(void **state) {
  dmq_config_t cfg;
  cfg_local(&cfg, "x");
  dmq_poll_options_t o;
  dmq_poll_options_init(&o);
  dmq_poll_t *p = (dmq_poll_t *)&o;
  assert_int_equal(dmq_poll_new(&cfg, &o, NULL), DMQ_EINVAL);
  assert_int_equal(dmq_poll_new(&cfg, &o, &p), DMQ_EINVAL);
  assert_null(p);
  o.uv.bind = "bogus";
  assert_int_equal(dmq_poll_new(&cfg, &o, &p), DMQ_EINVAL);
  assert_null(p);
  o.uv.bind = "127.0.0.1:0";
  assert_int_equal(dmq_poll_new(&cfg, &o, &p), 0);
  /* the port in use */
  dmq_poll_t *q = NULL;
  o.uv.bind = dmq_poll_addr(p) + strlen("udp://");
  assert_true(dmq_poll_new(&cfg, &o, &q) < 0);
  assert_null(q);
  assert_int_equal(dmq_poll_fd(NULL), -1);
  assert_int_equal(dmq_poll_timeout_ms(NULL), -1);
  assert_int_equal(dmq_poll_run(NULL), DMQ_EINVAL);
  assert_null(dmq_poll_node(NULL));
  assert_int_equal(dmq_poll_join(NULL, NULL, 0), DMQ_EINVAL);
  assert_int_equal(dmq_poll_leave(NULL), DMQ_EINVAL);
  assert_int_equal(dmq_poll_close(NULL), DMQ_EINVAL);
  /* a node that is alone: timers only, so a finite timeout */
  assert_int_equal(dmq_poll_run(p), 0);
  int t = dmq_poll_timeout_ms(p);
  assert_true(t >= 0);
  assert_int_equal(dmq_poll_close(p), 0); /* never joined, never run much */
}

int main(int argc, char **argv) {
  alarm(AD_ALARM_S);
  if (argc > 1)
    cmocka_set_test_filter(argv[1]);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_thread_pair),
      cmocka_unit_test(test_thread_queue_bound),
      cmocka_unit_test(test_thread_errors),
      cmocka_unit_test(test_thread_close_race),
      cmocka_unit_test(test_thread_hammer),
      cmocka_unit_test(test_poll_pair),
      cmocka_unit_test(test_poll_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
