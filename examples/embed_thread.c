/* embed_thread - libdmq in a thread of its own, events through a descriptor.
 *
 * The second way to embed libdmq (docs/embedding.md): the program does not
 * use libuv; each node runs on a private loop in its own thread
 * (dmq_thread_t) and the program's thread talks to it with calls that are
 * safe from any thread. Member events are copied into a queue; the queue's
 * descriptor (dmq_thread_event_fd) is readable while events wait, so the
 * main thread can poll() it along with whatever else it waits for, and pop
 * the events on its own thread (dmq_thread_next_event).
 *
 * Two nodes, "a" and "b", on 127.0.0.1 with system-chosen ports; "b" joins
 * through "a". The main thread does its own work in slices between polls.
 * Once both see each other (checked with dmq_thread_members, a snapshot
 * copied on the library thread), "b" sets its metadata and the program waits
 * until "a" reports it; then both nodes are closed from the main thread.
 * Bounded by DEADLINE_MS; exit status 0 on success.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <dmq/thread.h>

#define DEADLINE_MS 10000
#define WORK_SLICE_MS 50 /* the main thread's own work between polls */
#define FLUSH_MS 500
#define META "role=worker"

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static dmq_thread_t *make_node(const char *name) {
  dmq_config_t cfg;
  dmq_config_init(&cfg, DMQ_PROFILE_LOCAL);
  cfg.name = name;
  dmq_thread_options_t opts;
  dmq_thread_options_init(&opts);
  opts.uv.bind = "127.0.0.1:0";
  opts.flush_timeout_ms = FLUSH_MS;
  opts.event_queue = 1; /* events for this thread, via the descriptor */
  dmq_thread_t *th = NULL;
  int rc = dmq_thread_new(&cfg, &opts, &th); /* bind errors reported here */
  if (rc != 0) {
    fprintf(stderr, "embed_thread: dmq_thread_new(%s): %s\n", name,
            dmq_strerror(rc));
    return NULL;
  }
  printf("[%s] running on its own thread, listening on %s\n", name,
         dmq_thread_addr(th));
  return th;
}

/* dmq_thread_members() callback: runs on this thread, over a copy. */
typedef struct lookup {
  const char *name;
  int alive;
  char meta[DMQ_MAX_META + 1];
} lookup_t;

static int lookup_cb(const dmq_thread_member_t *m, void *ud) {
  lookup_t *l = ud;
  if (strcmp(m->name, l->name) != 0)
    return 0;
  l->alive = m->state == DMQ_MEMBER_ALIVE;
  memcpy(l->meta, m->meta, m->meta_len);
  l->meta[m->meta_len] = '\0';
  return 1;
}

static int sees(dmq_thread_t *obs, const char *name, const char *meta) {
  lookup_t l = {.name = name};
  if (dmq_thread_members(obs, lookup_cb, &l) < 0 || !l.alive)
    return 0;
  return meta == NULL || strcmp(l.meta, meta) == 0;
}

/* Pop and print every queued event of one node. */
static void drain(const char *who, dmq_thread_t *th) {
  dmq_thread_event_t ev;
  while (dmq_thread_next_event(th, &ev) == 1) {
    if (ev.lost > 0)
      printf("[%s] (%llu events lost)\n", who, (unsigned long long)ev.lost);
    printf("[%s] %s %s (%s) meta=\"%.*s\"\n", who, ev.member.name,
           dmq_member_event_name(ev.kind), ev.member.addr,
           (int)ev.member.meta_len, (const char *)ev.member.meta);
  }
}

int main(void) {
  dmq_thread_t *a = make_node("a");
  dmq_thread_t *b = a != NULL ? make_node("b") : NULL;
  if (b == NULL) {
    if (a != NULL)
      dmq_thread_close(a);
    return 1;
  }
  const char *seed = dmq_thread_addr(a);
  int rc = dmq_thread_join(b, &seed, 1);
  if (rc != 0)
    fprintf(stderr, "embed_thread: join: %s\n", dmq_strerror(rc));

  enum { CONVERGING, META_SENT, DONE } phase = CONVERGING;
  uint64_t deadline = now_ms() + DEADLINE_MS;
  unsigned long work = 0;
  while (rc == 0 && phase != DONE && now_ms() < deadline) {
    /* wait for events of either node, at most one work slice */
    struct pollfd fds[2] = {
        {.fd = dmq_thread_event_fd(a), .events = POLLIN},
        {.fd = dmq_thread_event_fd(b), .events = POLLIN},
    };
    if (poll(fds, 2, WORK_SLICE_MS) < 0 && errno != EINTR)
      break;
    drain("a", a);
    drain("b", b);
    work++; /* the main thread's own work would go here */

    if (phase == CONVERGING && sees(a, "b", NULL) && sees(b, "a", NULL)) {
      printf("a and b see each other (after %lu work slices)\n", work);
      rc = dmq_thread_set_meta(b, META, strlen(META));
      phase = META_SENT;
    } else if (phase == META_SENT && sees(a, "b", META)) {
      printf("a sees b's metadata \"%s\"\n", META);
      phase = DONE;
    }
  }
  dmq_stats_t st;
  if (dmq_thread_stats(a, &st) == 0)
    printf("a: %llu packets in, %llu out\n", (unsigned long long)st.pkts_in,
           (unsigned long long)st.pkts_out);
  /* graceful: leave, flush, stop and join the thread, free */
  dmq_thread_close(b);
  dmq_thread_close(a);
  printf("embed_thread: %s\n", phase == DONE ? "OK" : "FAILED");
  return phase == DONE ? 0 : 1;
}
