/* libdmq - thread adapter: a dmq_uv_t on a private loop in its own thread.
 *
 * Layout: the creating thread builds the loop, the uv_async_t and the
 * runtime (so that bind errors are reported synchronously), then starts the
 * library thread, which only runs uv_run() until every handle is closed.
 * From then on the loop, the runtime and the node are touched on the library
 * thread only.
 *
 * Other threads talk to it through commands: a command is queued under
 * th->mu and the async handle is signalled (also under th->mu, so that it
 * cannot be closed in between); the library thread takes the whole queue in
 * the async callback and runs it in order. Synchronous commands live on the
 * caller's stack: the caller waits on th->cv until the library thread marks
 * them done (under th->mu; the command is not touched after that). The only
 * asynchronous command is dmq_thread_call(), allocated and freed here.
 * Calls made on the library thread itself run inline (waiting for ourselves
 * would deadlock); a thread-local pointer tells which thread we are on.
 *
 * Close: the closer marks the handle CLOSING (refusing new commands) and
 * queues the close command last; the library thread runs dmq_uv_close(),
 * whose callback (the runtime is freed then) closes the async handle, so
 * uv_run() returns and the thread ends. The closer joins it, waits until no
 * caller is still waiting on th->cv, closes the loop and frees everything.
 *
 * Events: the node's member callback copies each event into a queue (under
 * th->mu); the event descriptor is signalled when the queue becomes
 * non-empty and reset when it becomes empty, both under th->mu, so it is
 * readable exactly while events are queued.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef __linux__
#include <sys/eventfd.h>
#endif

#include <uv.h>

#include "dmq/thread.h"
#include "dmq/uv.h"
#include "sized.h"

#define TH_DEFAULT_FLUSH_MS 1000
#define TH_DEFAULT_MAX_EVENTS 1024

typedef enum th_state { TH_RUNNING = 0, TH_CLOSING } th_state_t;

typedef struct th_cmd th_cmd_t;

struct th_cmd {
  th_cmd_t *next;
  void (*run)(dmq_thread_t *th, th_cmd_t *c);
  int heap; /* allocated by dmq_thread_call(): freed after running */
  int done; /* synchronous: set under th->mu once run */
  int rc;
  /* arguments and results, by command */
  const char *const *seeds;
  size_t n;
  const void *meta;
  size_t len;
  dmq_stats_t *stats;
  size_t stats_size;            /* the caller's sizeof(dmq_stats_t) */
  dmq_thread_member_t *members; /* snapshot: allocated here, freed by caller */
  size_t nmembers;
  void (*fn)(dmq_node_t *node, void *ud);
  void *ud;
};

typedef struct th_event {
  struct th_event *next;
  dmq_thread_event_t ev;
} th_event_t;

struct dmq__thread {
  uv_loop_t loop;
  uv_async_t async;
  dmq_uv_t *rt; /* library thread only (creator before the thread starts) */
  pthread_t tid;
  /* fixed at creation */
  char addr[DMQ_MAX_ADDR + 1];
  uint32_t flush_ms;
  dmq_member_cb member_cb;
  void *member_ud;
  int event_queue;
  size_t max_events;
  int efd_r, efd_w; /* eventfd (both the same) or a pipe */
  th_cmd_t close_cmd;
  /* under mu */
  pthread_mutex_t mu;
  pthread_cond_t cv; /* command done, waiter gone */
  th_state_t state;
  unsigned waiters; /* callers waiting on cv for their command */
  th_cmd_t *q_head, *q_tail;
  th_event_t *ev_head, *ev_tail;
  size_t nevents;
  uint64_t lost_pending; /* events lost with no queued event to carry it */
};

/* The dmq_thread_t whose library thread this is (NULL elsewhere). */
static _Thread_local dmq_thread_t *th_current;

/* ---------------------------------------------------------------------- */
/* event descriptor                                                        */

static int th_efd_open(dmq_thread_t *th) {
#ifdef __linux__
  int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0)
    return DMQ_ETRANSPORT;
  th->efd_r = th->efd_w = fd;
#else
  int fds[2];
  if (pipe(fds) != 0)
    return DMQ_ETRANSPORT;
  for (int i = 0; i < 2; i++) {
    int fl = fcntl(fds[i], F_GETFL);
    if (fl < 0 || fcntl(fds[i], F_SETFL, fl | O_NONBLOCK) != 0 ||
        fcntl(fds[i], F_SETFD, FD_CLOEXEC) != 0) {
      close(fds[0]);
      close(fds[1]);
      return DMQ_ETRANSPORT;
    }
  }
  th->efd_r = fds[0];
  th->efd_w = fds[1];
#endif
  return 0;
}

static void th_efd_close(dmq_thread_t *th) {
  if (th->efd_r >= 0)
    close(th->efd_r);
  if (th->efd_w >= 0 && th->efd_w != th->efd_r)
    close(th->efd_w);
  th->efd_r = th->efd_w = -1;
}

/* Make the descriptor readable (under mu). A full eventfd/pipe is readable
 * already: EAGAIN is fine. */
static void th_efd_signal(dmq_thread_t *th) {
#ifdef __linux__
  uint64_t one = 1;
#else
  unsigned char one = 1;
#endif
  ssize_t r;
  do
    r = write(th->efd_w, &one, sizeof(one));
  while (r < 0 && errno == EINTR);
}

/* Make the descriptor not readable (under mu). */
static void th_efd_reset(dmq_thread_t *th) {
  unsigned char buf[64];
  ssize_t r;
  do
    r = read(th->efd_r, buf, sizeof(buf));
  while (r > 0 ? th->efd_r != th->efd_w : (r < 0 && errno == EINTR));
}

/* ---------------------------------------------------------------------- */
/* copies                                                                  */

static void th_strcpy(char *dst, size_t cap, const char *src) {
  size_t l = src != NULL ? strlen(src) : 0;
  if (l >= cap)
    l = cap - 1;
  if (l > 0)
    memcpy(dst, src, l);
  dst[l] = '\0';
}

static void th_copy_member(dmq_thread_member_t *o, const dmq_member_info_t *m) {
  th_strcpy(o->name, sizeof(o->name), m->name);
  th_strcpy(o->addr, sizeof(o->addr), m->addr);
  o->state = m->state;
  o->incarnation = m->incarnation;
  o->generation = m->generation;
  o->state_since = m->state_since;
  o->is_self = m->is_self;
  size_t l = m->meta != NULL ? m->meta_len : 0;
  if (l > sizeof(o->meta))
    l = sizeof(o->meta);
  if (l > 0)
    memcpy(o->meta, m->meta, l);
  o->meta_len = l;
}

/* ---------------------------------------------------------------------- */
/* events (library thread)                                                 */

static void th_push_event(dmq_thread_t *th, dmq_member_event_t kind,
                          const dmq_member_info_t *m) {
  th_event_t *e = malloc(sizeof(*e));
  if (e != NULL) {
    e->next = NULL;
    e->ev.kind = kind;
    th_copy_member(&e->ev.member, m);
  }
  th_event_t *dropped = NULL;
  pthread_mutex_lock(&th->mu);
  if (e == NULL) {
    th->lost_pending++;
  } else {
    e->ev.lost = th->lost_pending;
    th->lost_pending = 0;
    if (th->ev_tail != NULL)
      th->ev_tail->next = e;
    else
      th->ev_head = e;
    th->ev_tail = e;
    if (++th->nevents == 1)
      th_efd_signal(th);
    if (th->nevents > th->max_events) {
      /* drop the oldest; the new head (never NULL: e is queued) carries
       * the count */
      dropped = th->ev_head;
      th->ev_head = dropped->next;
      th->nevents--;
      th->ev_head->ev.lost += dropped->ev.lost + 1;
    }
  }
  pthread_mutex_unlock(&th->mu);
  free(dropped);
}

static void th_on_member(dmq_node_t *node, dmq_member_event_t ev,
                         const dmq_member_info_t *m, void *ud) {
  dmq_thread_t *th = ud;
  if (th->event_queue)
    th_push_event(th, ev, m);
  if (th->member_cb != NULL)
    th->member_cb(node, ev, m, th->member_ud);
}

/* ---------------------------------------------------------------------- */
/* commands (library thread)                                               */

static void th_run_join(dmq_thread_t *th, th_cmd_t *c) {
  c->rc = dmq_uv_join(th->rt, c->seeds, c->n);
}

static void th_run_meta(dmq_thread_t *th, th_cmd_t *c) {
  uv_update_time(&th->loop);
  c->rc = dmq_node_set_meta(dmq_uv_node(th->rt), c->meta, c->len,
                            uv_now(&th->loop));
}

static void th_run_stats(dmq_thread_t *th, th_cmd_t *c) {
  c->rc = dmq_node_stats_sized(dmq_uv_node(th->rt), c->stats, c->stats_size);
  c->rc = 0;
}

static int th_snap_one(const dmq_member_info_t *m, void *ud) {
  th_cmd_t *c = ud;
  if (c->nmembers >= c->n)
    return 1;
  th_copy_member(&c->members[c->nmembers++], m);
  return 0;
}

static void th_run_members(dmq_thread_t *th, th_cmd_t *c) {
  dmq_node_t *node = dmq_uv_node(th->rt);
  size_t n = dmq_node_member_count(node, DMQ_MASK_ALL);
  c->members = calloc(n > 0 ? n : 1, sizeof(*c->members));
  if (c->members == NULL) {
    c->rc = DMQ_ENOMEM;
    return;
  }
  c->n = n;
  c->nmembers = 0;
  dmq_node_members_foreach(node, th_snap_one, c);
  c->rc = 0;
}

static void th_run_call(dmq_thread_t *th, th_cmd_t *c) {
  c->fn(dmq_uv_node(th->rt), c->ud);
  c->rc = 0;
}

static void th_on_rt_closed(void *ud) {
  dmq_thread_t *th = ud;
  th->rt = NULL;
  /* the last handle: uv_run() returns once it is closed */
  uv_close((uv_handle_t *)&th->async, NULL);
}

static void th_run_close(dmq_thread_t *th, th_cmd_t *c) {
  dmq_uv_close(th->rt, th->flush_ms, th_on_rt_closed, th);
  c->rc = 0;
}

static void th_on_async(uv_async_t *h) {
  dmq_thread_t *th = h->data;
  pthread_mutex_lock(&th->mu);
  th_cmd_t *c = th->q_head;
  th->q_head = th->q_tail = NULL;
  pthread_mutex_unlock(&th->mu);
  while (c != NULL) {
    th_cmd_t *next = c->next;
    if (th->rt != NULL)
      c->run(th, c);
    else
      c->rc = DMQ_ECLOSED; /* not reached: nothing is queued after close */
    if (c->heap) {
      free(c);
    } else if (c != &th->close_cmd) {
      pthread_mutex_lock(&th->mu);
      c->done = 1;
      pthread_cond_broadcast(&th->cv);
      pthread_mutex_unlock(&th->mu);
    }
    c = next;
  }
  /* the commands may have moved the node's next deadline */
  if (th->rt != NULL)
    dmq_uv_kick(th->rt);
}

static void *th_main(void *arg) {
  dmq_thread_t *th = arg;
  th_current = th;
  uv_run(&th->loop, UV_RUN_DEFAULT);
  th_current = NULL;
  return NULL;
}

/* ---------------------------------------------------------------------- */
/* callers                                                                 */

/* Queue c (under mu) and wake the library thread. */
static void th_enqueue(dmq_thread_t *th, th_cmd_t *c) {
  c->next = NULL;
  if (th->q_tail != NULL)
    th->q_tail->next = c;
  else
    th->q_head = c;
  th->q_tail = c;
  uv_async_send(&th->async);
}

/* Run a synchronous command: inline on the library thread, else queued and
 * waited for. */
static int th_exec(dmq_thread_t *th, th_cmd_t *c) {
  pthread_mutex_lock(&th->mu);
  if (th->state != TH_RUNNING) {
    pthread_mutex_unlock(&th->mu);
    return DMQ_ECLOSED;
  }
  if (th_current == th) {
    pthread_mutex_unlock(&th->mu);
    c->run(th, c);
    return c->rc;
  }
  th->waiters++;
  th_enqueue(th, c);
  while (!c->done)
    pthread_cond_wait(&th->cv, &th->mu);
  if (--th->waiters == 0 && th->state != TH_RUNNING)
    pthread_cond_broadcast(&th->cv); /* the closer waits for this */
  pthread_mutex_unlock(&th->mu);
  return c->rc;
}

int dmq_thread_join(dmq_thread_t *th, const char *const *seeds, size_t n) {
  if (th == NULL || (seeds == NULL && n > 0))
    return DMQ_EINVAL;
  th_cmd_t c = {.run = th_run_join, .seeds = seeds, .n = n};
  return th_exec(th, &c);
}

int dmq_thread_set_meta(dmq_thread_t *th, const void *meta, size_t len) {
  if (th == NULL || (meta == NULL && len > 0))
    return DMQ_EINVAL;
  if (len > DMQ_MAX_META)
    return DMQ_ETOOBIG;
  th_cmd_t c = {.run = th_run_meta, .meta = meta, .len = len};
  return th_exec(th, &c);
}

int dmq_thread_members(dmq_thread_t *th,
                       int (*cb)(const dmq_thread_member_t *m, void *ud),
                       void *ud) {
  if (th == NULL || cb == NULL)
    return DMQ_EINVAL;
  th_cmd_t c = {.run = th_run_members};
  int rc = th_exec(th, &c);
  if (rc != 0) {
    free(c.members);
    return rc;
  }
  for (size_t i = 0; i < c.nmembers; i++)
    if (cb(&c.members[i], ud) != 0)
      break;
  free(c.members);
  return (int)c.nmembers;
}

int dmq_thread_stats_sized(dmq_thread_t *th, dmq_stats_t *out, size_t size) {
  if (th == NULL || out == NULL)
    return DMQ_EINVAL;
  th_cmd_t c = {.run = th_run_stats, .stats = out, .stats_size = size};
  return th_exec(th, &c);
}

int dmq_thread_call(dmq_thread_t *th, void (*fn)(dmq_node_t *node, void *ud),
                    void *ud) {
  if (th == NULL || fn == NULL)
    return DMQ_EINVAL;
  th_cmd_t *c = calloc(1, sizeof(*c));
  if (c == NULL)
    return DMQ_ENOMEM;
  c->run = th_run_call;
  c->heap = 1;
  c->fn = fn;
  c->ud = ud;
  pthread_mutex_lock(&th->mu);
  if (th->state != TH_RUNNING) {
    pthread_mutex_unlock(&th->mu);
    free(c);
    return DMQ_ECLOSED;
  }
  th_enqueue(th, c);
  pthread_mutex_unlock(&th->mu);
  return 0;
}

int dmq_thread_call_sync(dmq_thread_t *th,
                         void (*fn)(dmq_node_t *node, void *ud), void *ud) {
  if (th == NULL || fn == NULL)
    return DMQ_EINVAL;
  th_cmd_t c = {.run = th_run_call, .fn = fn, .ud = ud};
  return th_exec(th, &c);
}

uint64_t dmq_thread_now(dmq_thread_t *th) {
  if (th == NULL || th_current != th)
    return 0;
  uv_update_time(&th->loop);
  return uv_now(&th->loop);
}

const char *dmq_thread_addr(const dmq_thread_t *th) {
  return th != NULL ? th->addr : NULL;
}

int dmq_thread_event_fd(const dmq_thread_t *th) {
  return th != NULL && th->event_queue ? th->efd_r : -1;
}

/* The 0.3.0 layout of dmq_thread_event_t ends at lost (src/sized.h). */
#define TH_EVENT_MIN_SIZE DMQ__SIZE_UPTO(dmq_thread_event_t, lost)
_Static_assert(DMQ__SIZE_IS_WHOLE(dmq_thread_event_t, TH_EVENT_MIN_SIZE),
               "dmq_thread_event_t grew: move TH_EVENT_MIN_SIZE to its last "
               "field until 0.3.0 is released (src/sized.h)");

int dmq_thread_next_event_sized(dmq_thread_t *th, dmq_thread_event_t *ev,
                                size_t size) {
  if (th == NULL || ev == NULL || size < TH_EVENT_MIN_SIZE)
    return DMQ_EINVAL;
  if (!th->event_queue)
    return DMQ_ESTATE;
  pthread_mutex_lock(&th->mu);
  th_event_t *e = th->ev_head;
  if (e != NULL) {
    th->ev_head = e->next;
    if (th->ev_head == NULL)
      th->ev_tail = NULL;
    th->nevents--;
  }
  if (th->ev_head == NULL)
    th_efd_reset(th);
  pthread_mutex_unlock(&th->mu);
  if (e == NULL)
    return 0;
  dmq__sized_out(ev, size, &e->ev, sizeof(e->ev), TH_EVENT_MIN_SIZE);
  free(e);
  return 1;
}

/* ---------------------------------------------------------------------- */
/* lifecycle                                                               */

static void th_free(dmq_thread_t *th) {
  while (th->ev_head != NULL) {
    th_event_t *e = th->ev_head;
    th->ev_head = e->next;
    free(e);
  }
  th_efd_close(th);
  pthread_cond_destroy(&th->cv);
  pthread_mutex_destroy(&th->mu);
  free(th);
}

/* Run the loop on this thread until every handle has closed, then close
 * it (creation failed, or close after the library thread has ended). */
static void th_loop_finish(dmq_thread_t *th) {
  uv_run(&th->loop, UV_RUN_DEFAULT);
  if (uv_loop_close(&th->loop) != 0) {
    /* close callbacks queued by the last run: one more turn */
    uv_run(&th->loop, UV_RUN_NOWAIT);
    (void)uv_loop_close(&th->loop);
  }
}

/* The 0.3.0 layout ends at max_events (src/sized.h). The embedded uv options
 * are read by dmq_uv_new() according to uv.size; when dmq_uv_options_t
 * grows after 0.3.0, the fields after `uv` move: keep the older layouts
 * here and convert by size. */
#define TH_OPTIONS_MIN_SIZE DMQ__SIZE_UPTO(dmq_thread_options_t, max_events)
_Static_assert(DMQ__SIZE_IS_WHOLE(dmq_thread_options_t, TH_OPTIONS_MIN_SIZE),
               "dmq_thread_options_t grew: move TH_OPTIONS_MIN_SIZE to its "
               "last field until 0.3.0 is released (src/sized.h)");

static void th_options_defaults(dmq_thread_options_t *o) {
  memset(o, 0, sizeof(*o));
  o->size = sizeof(*o);
  dmq_uv_options_init(&o->uv);
  o->flush_timeout_ms = TH_DEFAULT_FLUSH_MS;
  o->max_events = TH_DEFAULT_MAX_EVENTS;
}

int dmq_thread_options_init_sized(dmq_thread_options_t *o, size_t size) {
  dmq_thread_options_t d;
  th_options_defaults(&d);
  return dmq__sized_init(o, size, &d, sizeof(d), TH_OPTIONS_MIN_SIZE);
}

static int th_options_load(dmq_thread_options_t *dst,
                           const dmq_thread_options_t *src) {
  th_options_defaults(dst);
  if (src == NULL)
    return DMQ_EINVAL;
  int rc =
      dmq__sized_in(dst, sizeof(*dst), src, src->size, TH_OPTIONS_MIN_SIZE);
  dst->size = sizeof(*dst);
  return rc;
}

int dmq_thread_new(const dmq_config_t *cfg,
                   const dmq_thread_options_t *caller_opts,
                   dmq_thread_t **out) {
  if (out == NULL)
    return DMQ_EINVAL;
  *out = NULL;
  dmq_thread_options_t o;
  const dmq_thread_options_t *opts = &o;
  if (cfg == NULL || th_options_load(&o, caller_opts) != 0 ||
      (o.uv.bind == NULL && !o.uv.use_fds))
    return DMQ_EINVAL;
  dmq_thread_t *th = calloc(1, sizeof(*th));
  if (th == NULL)
    return DMQ_ENOMEM;
  th->efd_r = th->efd_w = -1;
  th->flush_ms =
      opts->flush_timeout_ms ? opts->flush_timeout_ms : TH_DEFAULT_FLUSH_MS;
  th->member_cb = opts->member_cb;
  th->member_ud = opts->member_ud;
  th->event_queue = opts->event_queue != 0;
  th->max_events = opts->max_events ? opts->max_events : TH_DEFAULT_MAX_EVENTS;
  th->close_cmd.run = th_run_close;
  if (pthread_mutex_init(&th->mu, NULL) != 0) {
    free(th);
    return DMQ_ENOMEM;
  }
  if (pthread_cond_init(&th->cv, NULL) != 0) {
    pthread_mutex_destroy(&th->mu);
    free(th);
    return DMQ_ENOMEM;
  }
  int rc = th->event_queue ? th_efd_open(th) : 0;
  if (rc != 0) {
    th_free(th);
    return rc;
  }
  if (uv_loop_init(&th->loop) != 0) {
    th_free(th);
    return DMQ_ETRANSPORT;
  }
  if (uv_async_init(&th->loop, &th->async, th_on_async) != 0) {
    th_loop_finish(th);
    th_free(th);
    return DMQ_ETRANSPORT;
  }
  th->async.data = th;
  rc = dmq_uv_new(&th->loop, cfg, &opts->uv, &th->rt);
  if (rc != 0) {
    /* transports dmq_uv_new() gave up on close asynchronously */
    uv_close((uv_handle_t *)&th->async, NULL);
    th_loop_finish(th);
    th_free(th);
    return rc;
  }
  th_strcpy(th->addr, sizeof(th->addr), dmq_uv_addr(th->rt));
  if (th->event_queue || th->member_cb != NULL)
    dmq_node_set_member_cb(dmq_uv_node(th->rt), th_on_member, th);

  /* the library thread takes no signal: the program's threads do */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int prc = pthread_create(&th->tid, NULL, th_main, th);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (prc != 0) {
    /* no thread: close the runtime here (it never joined: no flush) */
    dmq_uv_close(th->rt, 0, th_on_rt_closed, th);
    th_loop_finish(th);
    th_free(th);
    return DMQ_ENOMEM;
  }
  *out = th;
  return 0;
}

int dmq_thread_close(dmq_thread_t *th) {
  if (th == NULL)
    return DMQ_EINVAL;
  if (th_current == th)
    return DMQ_EBUSY;
  pthread_mutex_lock(&th->mu);
  if (th->state != TH_RUNNING) {
    pthread_mutex_unlock(&th->mu);
    return DMQ_ECLOSED;
  }
  th->state = TH_CLOSING;
  th_enqueue(th, &th->close_cmd);
  pthread_mutex_unlock(&th->mu);

  pthread_join(th->tid, NULL);
  /* every queued command has run; let their callers leave cv */
  pthread_mutex_lock(&th->mu);
  while (th->waiters > 0)
    pthread_cond_wait(&th->cv, &th->mu);
  pthread_mutex_unlock(&th->mu);
  th_loop_finish(th);
  th_free(th);
  return 0;
}
