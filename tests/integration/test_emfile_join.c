/* Descriptor exhaustion at a seed (issue 13): a seed process whose
 * open-file limit is 256 and 500 members (one other process, one loop, like
 * bench/cluster_bench.c) joining it at the same instant. Every join opens a
 * stream connection to the seed (push/pull), so the seed runs out of
 * descriptors: that must be counted and survived. The cluster converges
 * (every member sees all 501 alive, the seed too) and no member is ever
 * declared dead, on either side, within EJ_TIMEOUT_MS.
 *
 * The seed is a forked child: RLIMIT_NOFILE 256 (soft and hard), one node
 * on its own loop; it talks to the parent over two pipes (its address; on
 * request, a line of counters; then it exits). The parent raises its own
 * soft limit to the hard one; it needs about 4 descriptors per member
 * (skipped, exit 77, when the hard limit is too low). Under
 * AddressSanitizer: 200 members, a seed limit of 100. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <dmq/uv.h>

#include "runtime/runtime_test.h" /* dmq__uv_abort */
#include "uv_until.h"

/* Under AddressSanitizer everything is several times slower: fewer members
 * and a lower limit at the seed, in the same ratio (more joiners than the
 * seed has descriptors). */
#if defined(__SANITIZE_ADDRESS__)
#define EJ_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EJ_SANITIZED 1
#endif
#endif
#ifdef EJ_SANITIZED
#define EJ_MEMBERS 200
#define EJ_SEED_NOFILE 100
#else
#define EJ_MEMBERS 500
#define EJ_SEED_NOFILE 256
#endif
#define EJ_PARENT_NOFILE_MIN 4096
/* wan: probes every 5 s and a long suspicion timeout, so that a loop slowed
 * down by a loaded machine (500 nodes on one loop) cannot get a member
 * declared dead; what is tested is the seed's descriptors, not failure
 * detection. */
#define EJ_PROFILE DMQ_PROFILE_WAN
#define EJ_TIMEOUT_MS 45000
#define EJ_POLL_MS 20
#define EJ_SKIP 77
#define EJ_EXIT_MS 5000

#define EJ_FAIL(...)                                                           \
  do {                                                                         \
    fprintf(stderr, "test_emfile_join: FAIL: " __VA_ARGS__);                   \
    fputc('\n', stderr);                                                       \
    goto out;                                                                  \
  } while (0)

/* ---- the seed (child) ---- */

typedef struct seed {
  uv_loop_t loop;
  dmq_uv_t *rt;
  uv_poll_t cmd;
  int in, out;
  uint64_t dead_events;
  int quit;
} seed_t;

static void seed_on_member(dmq_node_t *node, dmq_member_event_t ev,
                           const dmq_member_info_t *m, void *ud) {
  seed_t *s = ud;
  (void)node;
  (void)m;
  if (ev == DMQ_EVENT_DEAD)
    s->dead_events++;
}

static void seed_reply(seed_t *s) {
  dmq_stream_stats_t st;
  memset(&st, 0, sizeof(st));
  dmq_uv_stream_stats(s->rt, &st);
  uint32_t alive =
      dmq_node_member_count(dmq_uv_node(s->rt), 1u << DMQ_MEMBER_ALIVE);
  char line[512];
  int n = snprintf(line, sizeof(line),
                   "%" PRIu32 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64
                   " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 "\n",
                   alive, s->dead_events, st.emfile_accept, st.emfile_shed,
                   st.accept_refused, st.emfile_connect, st.connect_deferred,
                   st.inbound_evicted, st.idle_closes);
  if (write(s->out, line, (size_t)n) != n)
    s->quit = 1;
}

static void seed_on_cmd(uv_poll_t *h, int status, int events) {
  seed_t *s = h->data;
  (void)events;
  char c = 'x';
  if (status < 0 || read(s->in, &c, 1) != 1 || c == 'x') {
    s->quit = 1;
    uv_poll_stop(h);
    uv_stop(&s->loop);
    return;
  }
  if (c == 'q')
    seed_reply(s);
}

static void seed_closed(void *ud) {
  (void)ud;
}

static int seed_fail(const char *what) {
  fprintf(stderr, "test_emfile_join: seed: %s\n", what);
  return 2;
}

static int seed_main(int in, int out) {
  struct rlimit rl = {EJ_SEED_NOFILE, EJ_SEED_NOFILE};
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
    return seed_fail("setrlimit");
  seed_t s;
  memset(&s, 0, sizeof(s));
  s.in = in;
  s.out = out;
  if (uv_loop_init(&s.loop) != 0)
    return seed_fail("uv_loop_init");
  dmq_config_t cfg;
  dmq_config_init(&cfg, EJ_PROFILE);
  cfg.name = "seed";
  dmq_uv_options_t uo;
  dmq_uv_options_init(&uo);
  uo.bind = "127.0.0.1:0";
  int rc = dmq_uv_new(&s.loop, &cfg, &uo, &s.rt);
  if (rc != 0)
    return seed_fail(dmq_strerror(rc));
  dmq_node_set_member_cb(dmq_uv_node(s.rt), seed_on_member, &s);
  char line[128];
  int n = snprintf(line, sizeof(line), "%s\n", dmq_uv_addr(s.rt));
  if (write(out, line, (size_t)n) != n)
    return seed_fail("write");
  uv_poll_init(&s.loop, &s.cmd, in);
  s.cmd.data = &s;
  uv_poll_start(&s.cmd, UV_READABLE, seed_on_cmd);
  while (!s.quit)
    uv_run(&s.loop, UV_RUN_DEFAULT);
  uv_close((uv_handle_t *)&s.cmd, NULL);
  dmq__uv_abort(s.rt, seed_closed, NULL);
  uv_run(&s.loop, UV_RUN_DEFAULT);
  return uv_loop_close(&s.loop) == 0 ? 0 : 3;
}

/* ---- the members (parent) ---- */

typedef struct member {
  struct members *all;
  dmq_uv_t *rt;
  int full;
} member_t;

typedef struct members {
  uv_loop_t loop;
  member_t m[EJ_MEMBERS];
  size_t n_full, closing;
  uint64_t dead_events;
} members_t;

static void member_on_event(dmq_node_t *node, dmq_member_event_t ev,
                            const dmq_member_info_t *mi, void *ud) {
  member_t *m = ud;
  (void)mi;
  if (ev == DMQ_EVENT_DEAD)
    m->all->dead_events++;
  int full =
      dmq_node_member_count(node, 1u << DMQ_MEMBER_ALIVE) == EJ_MEMBERS + 1;
  if (full != m->full) {
    m->full = full;
    if (full)
      m->all->n_full++;
    else
      m->all->n_full--;
  }
}

static int pred_converged(void *ud) {
  members_t *a = ud;
  return a->n_full == EJ_MEMBERS || a->dead_events > 0;
}

static void member_closed(void *ud) {
  ((members_t *)ud)->closing--;
}

static int read_line(int fd, char *buf, size_t cap) {
  size_t n = 0;
  while (n + 1 < cap) {
    char c;
    ssize_t r = read(fd, &c, 1);
    if (r < 0 && errno == EINTR)
      continue;
    if (r != 1)
      return -1;
    if (c == '\n')
      break;
    buf[n++] = c;
  }
  buf[n] = '\0';
  return 0;
}

int main(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
    return 2;
  if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < EJ_PARENT_NOFILE_MIN) {
    printf("test_emfile_join: skipped: hard open-file limit %llu < %d\n",
           (unsigned long long)rl.rlim_max, EJ_PARENT_NOFILE_MIN);
    return EJ_SKIP;
  }
  int to_seed[2], from_seed[2];
  if (pipe(to_seed) != 0 || pipe(from_seed) != 0)
    return 2;
  signal(SIGPIPE, SIG_IGN); /* a seed that died is reported, not fatal */
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0)
    return 2;
  if (pid == 0) {
    close(to_seed[1]);
    close(from_seed[0]);
    _exit(seed_main(to_seed[0], from_seed[1]));
  }
  close(to_seed[0]);
  close(from_seed[1]);
  int rc = 1;
  int loop_ok = 0;
  members_t *a = calloc(1, sizeof(*a));
  char seed_addr[128], line[512];
  if (a == NULL)
    EJ_FAIL("out of memory");
  if (read_line(from_seed[0], seed_addr, sizeof(seed_addr)) != 0)
    EJ_FAIL("no address from the seed");
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);

  if (uv_loop_init(&a->loop) != 0)
    EJ_FAIL("uv_loop_init");
  loop_ok = 1;
  dmq_config_t cfg;
  dmq_config_init(&cfg, EJ_PROFILE);
  dmq_uv_options_t uo;
  dmq_uv_options_init(&uo);
  uo.bind = "127.0.0.1:0";
  for (size_t i = 0; i < EJ_MEMBERS; i++) {
    char name[32];
    snprintf(name, sizeof(name), "m%zu", i);
    cfg.name = name;
    a->m[i].all = a;
    int r = dmq_uv_new(&a->loop, &cfg, &uo, &a->m[i].rt);
    if (r != 0)
      EJ_FAIL("member %zu: %s", i, dmq_strerror(r));
    dmq_node_set_member_cb(dmq_uv_node(a->m[i].rt), member_on_event, &a->m[i]);
  }
  const char *seeds[1] = {seed_addr};
  uv_update_time(&a->loop);
  uint64_t t0 = uv_now(&a->loop);
  for (size_t i = 0; i < EJ_MEMBERS; i++)
    if (dmq_uv_join(a->m[i].rt, seeds, 1) != 0)
      EJ_FAIL("join %zu", i);
  int ok = uv_run_until(&a->loop, pred_converged, a, EJ_TIMEOUT_MS, EJ_POLL_MS);
  uint64_t took = uv_now(&a->loop) - t0;
  printf("test_emfile_join: %zu of %d members see all %d alive after %llu "
         "ms; DEAD events at members: %llu\n",
         a->n_full, EJ_MEMBERS, EJ_MEMBERS + 1, (unsigned long long)took,
         (unsigned long long)a->dead_events);
  if (!ok || a->dead_events > 0)
    EJ_FAIL("no convergence, or a member declared dead");

  /* the seed's view, and what exhaustion it went through */
  if (write(to_seed[1], "q", 1) != 1 ||
      read_line(from_seed[0], line, sizeof(line)) != 0)
    EJ_FAIL("no counters from the seed");
  unsigned long long alive, dead, ea, shed, refused, ec, deferred, evicted,
      idle;
  if (sscanf(line, "%llu %llu %llu %llu %llu %llu %llu %llu %llu", &alive,
             &dead, &ea, &shed, &refused, &ec, &deferred, &evicted, &idle) != 9)
    EJ_FAIL("bad counters from the seed: %s", line);
  printf("test_emfile_join: seed (RLIMIT_NOFILE %d): %llu alive, %llu DEAD "
         "events; emfile_accept %llu, emfile_shed %llu, accept_refused %llu, "
         "emfile_connect %llu, connect_deferred %llu, inbound_evicted %llu, "
         "idle_closes %llu\n",
         EJ_SEED_NOFILE, alive, dead, ea, shed, refused, ec, deferred, evicted,
         idle);
  if (alive != EJ_MEMBERS + 1 || dead != 0)
    EJ_FAIL("the seed does not see every member alive");
  if (ea + ec == 0)
    EJ_FAIL("the seed never ran out of descriptors: the test tested nothing");
  rc = 0;

out:
  if (write(to_seed[1], "x", 1) != 1) {
    /* the seed is gone already: waitpid below says how */
  }
  close(to_seed[1]);
  /* the seed exits: its end of the pipe closes (at most 5 s, then it is
   * killed) */
  int status = 0;
  struct pollfd pf = {.fd = from_seed[0], .events = POLLIN};
  char drain[64];
  for (;;) {
    int pr = poll(&pf, 1, EJ_EXIT_MS);
    if (pr < 0 && errno == EINTR)
      continue;
    if (pr > 0 && read(from_seed[0], drain, sizeof(drain)) > 0)
      continue;
    if (pr <= 0) {
      kill(pid, SIGKILL);
      rc = 1;
      fprintf(stderr, "test_emfile_join: FAIL: seed did not exit\n");
    }
    break;
  }
  waitpid(pid, &status, 0);
  if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
    fprintf(stderr, "test_emfile_join: FAIL: seed exit %d\n",
            WEXITSTATUS(status));
    rc = 1;
  }
  close(from_seed[0]);
  if (a != NULL && loop_ok) {
    for (size_t i = 0; i < EJ_MEMBERS; i++) {
      if (a->m[i].rt == NULL)
        continue;
      a->closing++;
      dmq__uv_abort(a->m[i].rt, member_closed, a);
    }
    uv_run(&a->loop, UV_RUN_DEFAULT);
    if (a->closing != 0 || uv_loop_close(&a->loop) != 0) {
      fprintf(stderr, "test_emfile_join: FAIL: loop not empty\n");
      rc = 1;
    }
  }
  free(a);
  return rc;
}
