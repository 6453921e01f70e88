/* cluster_bench: a real cluster in one process.
 *
 * For every N of --nodes, N libuv runtimes (dmq_uv_t, UDP + TCP on the same
 * loopback port, 127.0.0.1:0) run in ONE process (a child forked per N, so
 * that CPU and memory figures of one N are not mixed with those of
 * another), on ONE libuv loop, or with --threads T on T loops, each in a
 * thread of its own (node i on loop i % T). One loop makes the nodes take
 * turns on one core: the join of a large cluster then measures the CPU all
 * N nodes spend, one after the other, where N real hosts would spend it in
 * parallel; T loops let the process use T cores. Nodes 0..K-1 are the seeds
 * (--seed-count K, default 1); node 0 does not join, every other node joins
 * through the seeds' addresses (itself excluded). The scenario:
 *
 *   1. join: all joins are issued at the same instant (burst; --stagger MS
 *      spreads them evenly over MS ms instead). join_all_s is the wall time
 *      from the first join call until every node sees N members alive (a
 *      member callback recounts the node's alive members on every event, so
 *      the instant is exact, not polled). join_cpu_pct is the process's
 *      CPU time over that interval, in % of one core (up to T * 100).
 *   2. settle (--settle-s, default 0), then the steady-state window
 *      (--steady-s S, default 10): cpu_pct is the process's user+sys CPU time
 *      (getrusage RUSAGE_SELF) over the window's wall time, in % of one core;
 *      pkts_per_member_s / bytes_per_member_s are the packets and bytes SENT
 *      (dmq_stats_t pkts_out / bytes_out summed over all nodes, UDP and TCP)
 *      per member per second over the window; pushpull_per_s the push/pull
 *      exchanges started per second by the whole cluster (they dominate
 *      the byte count: a window with or without one differs a lot).
 *      rss_kib is VmRSS (/proc/self/status) at the end of the window,
 *      rss_per_member_kib = (rss_kib - RSS before the nodes were created)/N;
 *      rss_anon_per_member_kib is the same with RssAnon (heap and other
 *      anonymous memory; VmRSS also counts the file-backed pages of the
 *      code, which are touched once and shared, not per member).
 *      rss_join_kib is VmRSS at convergence, rss_peak_kib VmHWM.
 *   3. crash: a random non-seed node is aborted (dmq__uv_abort: sockets
 *      closed, node deleted, no leave announced). suspect_all_s is the time
 *      until every other node has seen it SUSPECT or DEAD, fail_detect_all_s
 *      until every other node has a DEAD event for it, first_dead_s until the
 *      first one has (all from member-event timestamps).
 *   4. graceful close of every node (dmq_uv_close), then uv_loop_close(),
 *      which must return 0.
 * false_dead counts DEAD events (one per observer) about nodes never killed,
 * from the first join until the close starts.
 *
 * Memory breakdown fields: heap_rss_kib (Rss of [heap], from
 * /proc/self/smaps), mmap_rss_kib (Rss of the other anonymous mappings: the
 * large malloc() blocks glibc serves with mmap, e.g. the UDP receive
 * buffers, and libuv/thread stacks), malloc_used_kib and malloc_mmap_kib
 * (mallinfo2: bytes in use in the brk heap, bytes of mmap()ed blocks), all
 * taken with rss_kib; then rss_trim_per_member_kib, like rss_per_member_kib
 * but after malloc_trim(0) has returned the allocator's free pages to the
 * kernel (the difference is memory freed after the join burst that glibc
 * kept resident).
 *
 * bcast_all_s is always null here: it is filled by the delivery bench.
 *
 * Usage: cluster_bench [--nodes 10,100] [--profile lan|wan|local|fast]
 *                      [--burst | --stagger MS] [--seed-count K]
 *                      [--settle-s S] [--steady-s S] [--max-s S]
 *                      [--flush-ms MS] [--seed X] [--no-fork]
 *                      [--stream-pool N] [--threads T]
 * --stream-pool N: each node's pool of outbound stream connections
 * (dmq_stream_limits_t.max_outbound; default the library's, 64).
 * One JSON object per line and N. Exit status 1 if a run did not converge or
 * detect the failure within --max-s seconds (that phase's fields are null),
 * or if the loop did not close cleanly.
 */
#define _GNU_SOURCE /* mallinfo2 */

#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <dmq/uv.h>

#include "benchcluster.h"
#include "benchopt.h"
#include "runtime/runtime_test.h" /* dmq__uv_abort */

#define BENCH_MAX_LIST 32
#define BENCH_MAX_NODES 5000
/* Most seeds a node accepts (DMQ__MAX_SEEDS in src/internal.h). */
#define BENCH_MAX_SEEDS 32
/* Most loops (--threads) */
#define BENCH_MAX_THREADS 16
#define BENCH_NAME_PREFIX "n"
#define BENCH_NS_PER_S 1e9
#define BENCH_MS_PER_S 1000.0
/* Stagger mode: how often the join timer issues the joins now due. */
#define BENCH_STAGGER_TICK_MS 1
/* bench_t.state of a member a node does not hold */
#define BENCH_ST_NONE 0xff

typedef struct bench_opts {
  size_t nodes[BENCH_MAX_LIST];
  size_t n_nodes;
  benchcluster_opts_t c; /* seed: victim choice; 0 = from the clock */
  size_t seed_count;
  double max_s;
  uint32_t flush_ms;
  uint32_t stream_pool; /* 0: the library's default */
  int fork;
  int keyed; /* --key-hex: every node seals (mode required) */
  uint8_t key[DMQ_KEY_SIZE];
  int trace;      /* --trace: join progress on stderr every 500 ms */
  size_t threads; /* --threads T: loops the nodes are spread over */
} bench_opts_t;

typedef enum bench_phase {
  PH_JOIN = 0,
  PH_STEADY,
  PH_DETECT,
  PH_CLOSE
} bench_phase_t;

struct bench;

/* The nodes i with i % T == gi, on one loop: group 0 on the main thread's
 * loop (bench_t.loop, which also runs the deadline), the others each on a
 * loop of its own in a worker thread. Between phases every worker loop is
 * stopped ("parked", bench_park), so that the main thread may read and
 * change any node (stats, joins, the crash, the close) with no loop
 * running; callbacks on the loops only touch their own nodes and the
 * atomic counters of bench_t. */
typedef struct bench_group {
  struct bench *b;
  size_t gi;
  uv_loop_t own;   /* a worker's loop */
  uv_loop_t *loop; /* &own, or the main loop for group 0 */
  /* group 0: stops the main loop if want_stop is set (sent by the other
   * groups' callbacks); the other groups: stops (parks) their loop */
  uv_async_t wake;
  uv_timer_t stagger, trace;
  uv_thread_t tid;
  size_t joins_left; /* stagger mode: nodes of the group yet to join */
  int left;          /* uv_run()'s result in the final run */
} bench_group_t;

typedef struct bench_node {
  struct bench *b;
  bench_group_t *g;
  size_t idx;
  dmq_uv_t *rt;     /* NULL once aborted or closing */
  int full;         /* join phase: sees every node alive */
  size_t alive;     /* members it sees alive (itself included) */
  int joined_call;  /* dmq_uv_join() issued */
  uint64_t susp_ns; /* first SUSPECT or DEAD event about the victim */
  uint64_t dead_ns; /* first DEAD event about the victim */
  char addr[DMQ_MAX_ADDR + 1];
} bench_node_t;

typedef struct bench_result {
  int joined, suspected, detected, first_dead_seen, loop_ok;
  double join_all_s, suspect_all_s, fail_all_s, first_dead_s;
  double cpu_pct, cpu_user_pct, cpu_sys_pct, pkts, bytes, pushpull;
  double join_cpu_pct;
  long rss_base_kib, rss_join_kib, rss_kib, rss_peak_kib;
  long anon_base_kib, anon_kib; /* RssAnon */
  long rss_trim_kib;            /* VmRSS after malloc_trim(0) */
  long heap_rss_kib, mmap_rss_kib, malloc_used_kib, malloc_mmap_kib;
  size_t false_dead;
  long victim;
  uint64_t seed;
  double wall_s;
} bench_result_t;

typedef struct bench {
  const bench_opts_t *o;
  uv_loop_t loop;
  size_t n;
  bench_node_t *nodes;
  /* state[o * n + s]: the state node o last reported for node s
   * (BENCH_ST_NONE: not in its table), so that the alive count moves by
   * one per event instead of a scan of the table per event, which made the
   * bench itself O(N^3) over a burst join (1000 nodes: 10^9 steps) */
  uint8_t *state;
  bench_phase_t phase; /* changed by the main thread, loops parked */
  atomic_size_t n_full, n_susp, n_dead, n_join_calls, closing, false_dead;
  atomic_int join_done, want_stop;
  _Atomic uint64_t join_t1, first_dead_t;
  uint64_t join_t0, kill_t0;
  long victim;
  int killed, timed_out;
  uv_timer_t deadline;
  bench_result_t *r;
  bench_group_t *groups;
  size_t ngroups;
  /* parking the worker loops: a worker runs its loop once per change of
   * gen, and counts itself in parked when the loop stops */
  uv_mutex_t mu;
  uv_cond_t go, stopped;
  uint64_t gen;
  size_t parked;
  int final; /* the last run: until the worker's loop is empty */
} bench_t;

/* ---------------------------------------------------------------------- */
/* options                                                                 */

static void bench_usage(const char *prog) {
  fprintf(stderr,
          "usage: %s [--nodes N[,N...]] [--profile lan|wan|local|fast]\n"
          "          [--burst | --stagger MS] [--seed-count K] [--settle-s S]\n"
          "          [--steady-s S] [--max-s S] [--flush-ms MS] [--seed X]\n"
          "          [--no-fork] [--key-hex 64HEX] [--stream-pool N]\n"
          "          [--threads T]\n",
          prog);
}

static int bench_node_item(const char *tok, size_t k, void *ctx) {
  bench_opts_t *o = ctx;
  uint64_t v;
  if (benchopt_parse_u64(tok, &v) != 0 || v < 1 || v > BENCH_MAX_NODES)
    return -1;
  o->nodes[k] = (size_t)v;
  return 0;
}

static int bench_opt_flag(const char *a, void *ctx) {
  bench_opts_t *o = ctx;
  if (benchcluster_flag(a, &o->c))
    return 1;
  if (strcmp(a, "--no-fork") == 0)
    o->fork = 0;
  else if (strcmp(a, "--trace") == 0)
    o->trace = 1;
  else
    return 0;
  return 1;
}

static int bench_opt_value(const char *a, const char *v, void *ctx) {
  bench_opts_t *o = ctx;
  uint64_t u;
  int n = benchcluster_value(a, v, &o->c);
  if (n != 0)
    return n < 0 ? -1 : 0;
  if (strcmp(a, "--nodes") == 0) {
    if ((n = benchopt_parse_list(v, BENCH_MAX_LIST, bench_node_item, o)) < 0)
      return -1;
    o->n_nodes = (size_t)n;
  } else if (strcmp(a, "--seed-count") == 0) {
    if (benchopt_parse_u64(v, &u) != 0 || u < 1 || u > BENCH_MAX_SEEDS)
      return -1;
    o->seed_count = (size_t)u;
  } else if (strcmp(a, "--max-s") == 0) {
    if (benchopt_parse_double(v, &o->max_s) != 0 || o->max_s <= 0)
      return -1;
  } else if (strcmp(a, "--key-hex") == 0) {
    if (dmq_key_from_hex(v, strlen(v), o->key) != 0)
      return -1;
    o->keyed = 1;
  } else if (strcmp(a, "--flush-ms") == 0) {
    if (benchopt_parse_u64(v, &u) != 0 || u > 600000)
      return -1;
    o->flush_ms = (uint32_t)u;
  } else if (strcmp(a, "--stream-pool") == 0) {
    if (benchopt_parse_u64(v, &u) != 0 || u < 1 || u > 65535)
      return -1;
    o->stream_pool = (uint32_t)u;
  } else if (strcmp(a, "--threads") == 0) {
    if (benchopt_parse_u64(v, &u) != 0 || u < 1 || u > BENCH_MAX_THREADS)
      return -1;
    o->threads = (size_t)u;
  } else {
    return -1;
  }
  return 0;
}

static int bench_parse_args(int argc, char **argv, bench_opts_t *o) {
  memset(o, 0, sizeof(*o));
  o->nodes[0] = 100;
  o->n_nodes = 1;
  o->c.profile = DMQ_PROFILE_LAN;
  o->c.profile_name = "lan";
  o->seed_count = 1;
  o->c.settle_s = 0;
  o->c.steady_s = 10;
  o->max_s = 120;
  o->flush_ms = 2000;
  o->fork = 1;
  o->threads = 1;
  static const benchopt_spec_t spec = {"cluster_bench", bench_usage,
                                       bench_opt_flag, bench_opt_value};
  return benchopt_parse_args(argc, argv, &spec, o);
}

/* ---------------------------------------------------------------------- */
/* process measurements                                                    */

/* A "Key:   123 kB" line of a /proc file; -1 if absent. */
static long bench_proc_kib(const char *path, const char *key) {
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return -1;
  char line[256];
  size_t kl = strlen(key);
  long v = -1;
  while (fgets(line, sizeof(line), f) != NULL) {
    if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
      v = strtol(line + kl + 1, NULL, 10);
      break;
    }
  }
  fclose(f);
  return v;
}

static long bench_rss_kib(void) {
  return bench_proc_kib("/proc/self/status", "VmRSS");
}

/* Rss of [heap] and of the other anonymous mappings (no path name), from
 * /proc/self/smaps. */
static void bench_smaps(long *heap_kib, long *mmap_kib) {
  *heap_kib = *mmap_kib = -1;
  FILE *f = fopen("/proc/self/smaps", "r");
  if (f == NULL)
    return;
  char line[512];
  enum { M_OTHER, M_HEAP, M_ANON } cur = M_OTHER;
  long heap = 0, anon = 0;
  while (fgets(line, sizeof(line), f) != NULL) {
    /* mapping header: "start-end perms offset dev inode [path]" */
    unsigned long lo, hi;
    char perms[8];
    int pos = 0;
    if (sscanf(line, "%lx-%lx %7s %*s %*s %*s%n", &lo, &hi, perms, &pos) == 3 &&
        pos > 0) {
      const char *p = line + pos;
      while (*p == ' ')
        p++;
      if (strncmp(p, "[heap]", 6) == 0)
        cur = M_HEAP;
      else if (*p == '\n' || *p == '\0')
        cur = M_ANON;
      else
        cur = M_OTHER;
      continue;
    }
    if (strncmp(line, "Rss:", 4) == 0) {
      long v = strtol(line + 4, NULL, 10);
      if (cur == M_HEAP)
        heap += v;
      else if (cur == M_ANON)
        anon += v;
    }
  }
  fclose(f);
  *heap_kib = heap;
  *mmap_kib = anon;
}

/* Everything measured with rss_kib. */
static void bench_memory(bench_result_t *r) {
  r->rss_kib = bench_rss_kib();
  r->anon_kib = bench_proc_kib("/proc/self/status", "RssAnon");
  r->rss_peak_kib = bench_proc_kib("/proc/self/status", "VmHWM");
  bench_smaps(&r->heap_rss_kib, &r->mmap_rss_kib);
  struct mallinfo2 mi = mallinfo2();
  r->malloc_used_kib = (long)(mi.uordblks / 1024);
  r->malloc_mmap_kib = (long)(mi.hblkhd / 1024);
  /* what the allocator holds but nobody uses: free pages returned to the
   * kernel (after everything else was measured) */
  malloc_trim(0);
  r->rss_trim_kib = bench_rss_kib();
}

static double bench_cpu_s(int user) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  const struct timeval *tv = user ? &ru.ru_utime : &ru.ru_stime;
  return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

static void bench_raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

/* splitmix64 */
static uint64_t bench_rand(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* ---------------------------------------------------------------------- */
/* events                                                                  */

/* Index of a node from its name ("n<index>"); -1 if not ours. */
static long bench_index(const char *name) {
  size_t pl = strlen(BENCH_NAME_PREFIX);
  if (name == NULL || strncmp(name, BENCH_NAME_PREFIX, pl) != 0)
    return -1;
  char *end = NULL;
  long v = strtol(name + pl, &end, 10);
  return end != name + pl && *end == '\0' ? v : -1;
}

/* A phase ended (from a callback of group g's loop): stop the main loop,
 * which then parks the others. */
static void bench_stop(bench_group_t *g) {
  bench_t *b = g->b;
  atomic_store(&b->want_stop, 1);
  if (g->gi == 0)
    uv_stop(&b->loop);
  else
    uv_async_send(&b->groups[0].wake);
}

static void bench_on_member(dmq_node_t *node, dmq_member_event_t ev,
                            const dmq_member_info_t *m, void *ud) {
  bench_node_t *bn = ud;
  bench_t *b = bn->b;
  if (b->phase == PH_CLOSE)
    return;
  long subj = bench_index(m->name);
  if (subj >= 0 && (size_t)subj < b->n) {
    uint8_t *st = &b->state[bn->idx * b->n + (size_t)subj];
    uint8_t now_st = ev == DMQ_EVENT_REAPED ? BENCH_ST_NONE : (uint8_t)m->state;
    if (*st == DMQ_MEMBER_ALIVE && now_st != DMQ_MEMBER_ALIVE)
      bn->alive--;
    else if (*st != DMQ_MEMBER_ALIVE && now_st == DMQ_MEMBER_ALIVE)
      bn->alive++;
    *st = now_st;
  }
  (void)node;
  if (b->phase == PH_JOIN) {
    int full = bn->alive == b->n;
    if (full != bn->full) {
      bn->full = full;
      if (full)
        atomic_fetch_add(&b->n_full, 1);
      else
        atomic_fetch_sub(&b->n_full, 1);
    }
    if (atomic_load(&b->n_full) == b->n &&
        atomic_load(&b->n_join_calls) == b->n - 1 &&
        !atomic_exchange(&b->join_done, 1)) {
      atomic_store(&b->join_t1, uv_hrtime());
      bench_stop(bn->g);
    }
  }
  if (ev != DMQ_EVENT_SUSPECT && ev != DMQ_EVENT_DEAD)
    return;
  if (b->killed && subj == b->victim) {
    uint64_t now = uv_hrtime();
    if (bn->susp_ns == 0) {
      bn->susp_ns = now;
      atomic_fetch_add(&b->n_susp, 1);
    }
    if (ev == DMQ_EVENT_DEAD && bn->dead_ns == 0) {
      bn->dead_ns = now;
      size_t before = atomic_fetch_add(&b->n_dead, 1);
      if (before == 0)
        atomic_store(&b->first_dead_t, now);
      if (before + 1 == b->n - 1)
        bench_stop(bn->g);
    }
  } else if (ev == DMQ_EVENT_DEAD) {
    atomic_fetch_add(&b->false_dead, 1);
  }
}

/* ---------------------------------------------------------------------- */
/* loop helpers                                                            */

static void bench_on_deadline(uv_timer_t *h) {
  bench_t *b = h->data;
  b->timed_out = 1;
  uv_stop(&b->loop);
}

static void bench_on_wake(uv_async_t *h) {
  bench_group_t *g = h->data;
  if (g->gi != 0)
    uv_stop(g->loop);
  else if (atomic_load(&g->b->want_stop))
    uv_stop(g->loop);
}

/* A worker thread: runs its group's loop once each time the main thread
 * resumes it (bench_resume), until the loop is stopped (bench_park) or, in
 * the final run, until it is empty. */
static void bench_worker(void *arg) {
  bench_group_t *g = arg;
  bench_t *b = g->b;
  uint64_t seen = 0;
  for (;;) {
    uv_mutex_lock(&b->mu);
    while (b->gen == seen)
      uv_cond_wait(&b->go, &b->mu);
    seen = b->gen;
    int final = b->final;
    uv_mutex_unlock(&b->mu);
    int left = uv_run(g->loop, UV_RUN_DEFAULT);
    uv_mutex_lock(&b->mu);
    if (final)
      g->left = left;
    b->parked++;
    uv_cond_signal(&b->stopped);
    uv_mutex_unlock(&b->mu);
    if (final)
      return;
  }
}

static void bench_resume(bench_t *b, int final) {
  if (b->ngroups == 1)
    return;
  uv_mutex_lock(&b->mu);
  b->final = final;
  b->parked = 0;
  b->gen++;
  uv_cond_broadcast(&b->go);
  uv_mutex_unlock(&b->mu);
}

/* Wait until every worker loop has stopped (the final run: has ended). */
static void bench_park(bench_t *b) {
  if (b->ngroups == 1)
    return;
  if (!b->final)
    for (size_t g = 1; g < b->ngroups; g++)
      uv_async_send(&b->groups[g].wake);
  uv_mutex_lock(&b->mu);
  while (b->parked < b->ngroups - 1)
    uv_cond_wait(&b->stopped, &b->mu);
  uv_mutex_unlock(&b->mu);
}

/* Run the loops until a callback stops them or seconds pass (timed_out);
 * they are all parked on return. */
static void bench_run_for(bench_t *b, double seconds) {
  b->timed_out = 0;
  atomic_store(&b->want_stop, 0);
  uv_timer_start(&b->deadline, bench_on_deadline,
                 (uint64_t)(seconds * BENCH_MS_PER_S), 0);
  bench_resume(b, 0);
  uv_run(&b->loop, UV_RUN_DEFAULT);
  uv_timer_stop(&b->deadline);
  bench_park(b);
}

static void bench_join_one(bench_t *b, size_t i) {
  const char *seeds[BENCH_MAX_SEEDS];
  size_t k = 0;
  for (size_t s = 0; s < b->o->seed_count && s < b->n; s++)
    if (s != i)
      seeds[k++] = b->nodes[s].addr;
  if (k > 0 && dmq_uv_join(b->nodes[i].rt, seeds, k) != 0) {
    fprintf(stderr, "cluster_bench: join of node %zu failed\n", i);
    exit(2);
  }
  b->nodes[i].joined_call = 1;
  b->nodes[i].g->joins_left--;
  atomic_fetch_add(&b->n_join_calls, 1);
}

/* Stagger mode: node i joins at (i - 1) * stagger / (n - 1) ms (each group
 * joins its own nodes). */
static void bench_on_stagger(uv_timer_t *h) {
  bench_group_t *g = h->data;
  bench_t *b = g->b;
  uint64_t elapsed_ms = (uv_hrtime() - b->join_t0) / 1000000u;
  for (size_t i = g->gi; i < b->n; i += b->ngroups) {
    if (i == 0 || b->nodes[i].joined_call)
      continue;
    uint64_t at = b->n > 2 ? b->o->c.stagger_ms * (i - 1) / (b->n - 2) : 0;
    if (at > elapsed_ms)
      break;
    bench_join_one(b, i);
  }
  if (g->joins_left == 0)
    uv_timer_stop(h);
}

/* --trace: how far the join got (nodes that see everyone alive; in the
 * group, the fewest members alive any node sees, drops and push/pulls so
 * far). */
static void bench_on_trace(uv_timer_t *h) {
  bench_group_t *g = h->data;
  bench_t *b = g->b;
  size_t least = b->n;
  uint64_t drops = 0, pp = 0, joined = 0;
  for (size_t i = g->gi; i < b->n; i += b->ngroups) {
    if (b->nodes[i].rt == NULL)
      continue;
    dmq_node_t *node = dmq_uv_node(b->nodes[i].rt);
    size_t c = dmq_node_member_count(node, 1u << DMQ_MEMBER_ALIVE);
    if (c < least)
      least = c;
    joined += dmq_node_is_joined(node) != 0;
    dmq_stats_t st;
    dmq_node_stats(node, &st);
    for (int d = 0; d < DMQ_DROP_COUNT; d++)
      drops += st.drops[d];
    pp += st.pushpull_sent;
  }
  fprintf(stderr,
          "cluster_bench: t=%.1fs group=%zu full=%zu joined=%" PRIu64
          " least_alive=%zu drops=%" PRIu64 " pushpull_sent=%" PRIu64 "\n",
          (double)(uv_hrtime() - b->join_t0) / 1e9, g->gi,
          atomic_load(&b->n_full), joined, least, drops, pp);
}

static void bench_on_rt_closed(void *ud) {
  bench_t *b = ud;
  atomic_fetch_sub(&b->closing, 1);
}

static void bench_on_handle_closed(uv_handle_t *h) {
  (void)h;
}

static double bench_since(uint64_t t0, uint64_t t1) {
  return (double)(t1 - t0) / BENCH_NS_PER_S;
}

static void bench_sum_stats(bench_t *b, uint64_t *pkts, uint64_t *bytes,
                            uint64_t *pushpulls) {
  *pkts = *bytes = *pushpulls = 0;
  for (size_t i = 0; i < b->n; i++) {
    if (b->nodes[i].rt == NULL)
      continue;
    dmq_stats_t st;
    dmq_node_stats(dmq_uv_node(b->nodes[i].rt), &st);
    *pkts += st.pkts_out;
    *bytes += st.bytes_out;
    *pushpulls += st.pushpull_sent;
  }
}

/* ---------------------------------------------------------------------- */
/* one run                                                                 */

static void bench_run(const bench_opts_t *o, size_t n, bench_result_t *r) {
  uint64_t wall0 = uv_hrtime();
  memset(r, 0, sizeof(*r));
  r->victim = -1;
  r->seed = o->c.seed != 0 ? o->c.seed : (uv_hrtime() ^ (uint64_t)getpid());
  uint64_t rng = r->seed;

  bench_t b;
  memset(&b, 0, sizeof(b));
  b.o = o;
  b.n = n;
  b.r = r;
  b.victim = -1;
  if (uv_loop_init(&b.loop) != 0) {
    fprintf(stderr, "cluster_bench: uv_loop_init failed\n");
    exit(2);
  }
  uv_timer_init(&b.loop, &b.deadline);
  b.deadline.data = &b;
  b.ngroups = o->threads < n ? o->threads : n;
  b.groups = calloc(b.ngroups, sizeof(*b.groups));
  if (b.groups == NULL || uv_mutex_init(&b.mu) != 0 ||
      uv_cond_init(&b.go) != 0 || uv_cond_init(&b.stopped) != 0) {
    fprintf(stderr, "cluster_bench: out of memory\n");
    exit(2);
  }
  for (size_t gi = 0; gi < b.ngroups; gi++) {
    bench_group_t *g = &b.groups[gi];
    g->b = &b;
    g->gi = gi;
    g->loop = gi == 0 ? &b.loop : &g->own;
    if (gi != 0 && uv_loop_init(g->loop) != 0) {
      fprintf(stderr, "cluster_bench: uv_loop_init failed\n");
      exit(2);
    }
    uv_async_init(g->loop, &g->wake, bench_on_wake);
    uv_timer_init(g->loop, &g->stagger);
    uv_timer_init(g->loop, &g->trace);
    g->wake.data = g->stagger.data = g->trace.data = g;
  }
  b.nodes = calloc(n, sizeof(*b.nodes));
  /* touched now, so that it is part of the baseline RSS */
  b.state = malloc(n * n);
  if (b.state != NULL)
    memset(b.state, BENCH_ST_NONE, n * n);
  for (size_t i = 0; b.state != NULL && b.nodes != NULL && i < n; i++) {
    b.state[i * n + i] = DMQ_MEMBER_ALIVE;
    b.nodes[i].alive = 1;
  }
  if (b.nodes == NULL || b.state == NULL) {
    fprintf(stderr, "cluster_bench: out of memory\n");
    exit(2);
  }
  r->rss_base_kib = bench_rss_kib();
  r->anon_base_kib = bench_proc_kib("/proc/self/status", "RssAnon");

  dmq_config_t cfg;
  dmq_config_init(&cfg, o->c.profile);
  dmq_uv_options_t uo;
  dmq_uv_options_init(&uo);
  uo.bind = "127.0.0.1:0";
  for (size_t i = 0; i < n; i++) {
    bench_node_t *bn = &b.nodes[i];
    char name[32];
    snprintf(name, sizeof(name), BENCH_NAME_PREFIX "%zu", i);
    cfg.name = name;
    bn->b = &b;
    bn->g = &b.groups[i % b.ngroups];
    bn->idx = i;
    if (i != 0)
      bn->g->joins_left++;
    int rc = dmq_uv_new(bn->g->loop, &cfg, &uo, &bn->rt);
    if (rc != 0) {
      fprintf(stderr, "cluster_bench: node %zu: %s\n", i, dmq_strerror(rc));
      exit(2);
    }
    if (o->keyed &&
        (dmq_node_key_add(dmq_uv_node(bn->rt), o->key, sizeof o->key, 1,
                          NULL) != 0 ||
         dmq_node_set_seal_mode(dmq_uv_node(bn->rt), DMQ_SEAL_REQUIRED) != 0)) {
      fprintf(stderr, "cluster_bench: node %zu: key refused\n", i);
      exit(2);
    }
    if (o->stream_pool != 0) {
      dmq_stream_limits_t sl;
      dmq_stream_limits_init(&sl);
      sl.max_outbound = o->stream_pool;
      dmq_uv_set_stream_limits(bn->rt, &sl);
    }
    snprintf(bn->addr, sizeof(bn->addr), "%s", dmq_uv_addr(bn->rt));
    dmq_node_set_member_cb(dmq_uv_node(bn->rt), bench_on_member, bn);
  }
  for (size_t gi = 1; gi < b.ngroups; gi++)
    if (uv_thread_create(&b.groups[gi].tid, bench_worker, &b.groups[gi]) != 0) {
      fprintf(stderr, "cluster_bench: thread creation failed\n");
      exit(2);
    }

  /* 1. join */
  b.phase = PH_JOIN;
  uv_update_time(&b.loop);
  b.join_t0 = uv_hrtime();
  double jcpu0 = bench_cpu_s(1) + bench_cpu_s(0);
  if (o->c.stagger_ms == 0) {
    for (size_t i = 1; i < n; i++)
      bench_join_one(&b, i);
  } else if (n > 1) {
    for (size_t gi = 0; gi < b.ngroups; gi++)
      if (b.groups[gi].joins_left > 0)
        uv_timer_start(&b.groups[gi].stagger, bench_on_stagger, 0,
                       BENCH_STAGGER_TICK_MS);
  }
  if (o->trace)
    for (size_t gi = 0; gi < b.ngroups; gi++)
      uv_timer_start(&b.groups[gi].trace, bench_on_trace, 500, 500);
  if (n == 1) {
    b.join_t1 = b.join_t0;
    b.join_done = 1;
  } else {
    bench_run_for(&b, o->max_s);
  }
  for (size_t gi = 0; gi < b.ngroups; gi++) {
    uv_timer_stop(&b.groups[gi].stagger);
    uv_timer_stop(&b.groups[gi].trace);
  }
  if (!atomic_load(&b.join_done))
    goto close;
  b.phase = PH_STEADY;
  /* the counts kept from the events agree with the tables */
  for (size_t i = 0; i < n; i++) {
    size_t c = dmq_node_member_count(dmq_uv_node(b.nodes[i].rt),
                                     1u << DMQ_MEMBER_ALIVE);
    if (c != b.nodes[i].alive) {
      fprintf(stderr, "cluster_bench: node %zu: %zu alive, events say %zu\n", i,
              c, b.nodes[i].alive);
      exit(2);
    }
  }
  r->joined = 1;
  r->join_all_s = bench_since(b.join_t0, b.join_t1);
  if (r->join_all_s > 0)
    r->join_cpu_pct =
        (bench_cpu_s(1) + bench_cpu_s(0) - jcpu0) / r->join_all_s * 100.0;
  r->rss_join_kib = bench_rss_kib();

  /* 2. settle, steady state */
  if (o->c.settle_s > 0)
    bench_run_for(&b, o->c.settle_s);
  uint64_t p0, by0, pp0, p1, by1, pp1;
  bench_sum_stats(&b, &p0, &by0, &pp0);
  double u0 = bench_cpu_s(1), s0 = bench_cpu_s(0);
  uint64_t t0 = uv_hrtime();
  bench_run_for(&b, o->c.steady_s);
  uint64_t t1 = uv_hrtime();
  double u1 = bench_cpu_s(1), s1 = bench_cpu_s(0);
  bench_sum_stats(&b, &p1, &by1, &pp1);
  double win = bench_since(t0, t1);
  r->cpu_user_pct = (u1 - u0) / win * 100.0;
  r->cpu_sys_pct = (s1 - s0) / win * 100.0;
  r->cpu_pct = r->cpu_user_pct + r->cpu_sys_pct;
  r->pkts = (double)(p1 - p0) / (double)n / win;
  r->bytes = (double)(by1 - by0) / (double)n / win;
  r->pushpull = (double)(pp1 - pp0) / win;
  bench_memory(r);

  /* 3. crash a random non-seed node */
  if (o->seed_count >= n)
    goto close;
  b.phase = PH_DETECT;
  b.victim =
      (long)(o->seed_count + bench_rand(&rng) % (uint64_t)(n - o->seed_count));
  r->victim = b.victim;
  bench_node_t *v = &b.nodes[b.victim];
  atomic_fetch_add(&b.closing, 1);
  b.killed = 1;
  b.kill_t0 = uv_hrtime();
  dmq__uv_abort(v->rt, bench_on_rt_closed, &b);
  v->rt = NULL;
  bench_run_for(&b, o->max_s);
  if (b.n_susp == n - 1) {
    uint64_t last = 0;
    for (size_t i = 0; i < n; i++)
      if ((long)i != b.victim && b.nodes[i].susp_ns > last)
        last = b.nodes[i].susp_ns;
    r->suspected = 1;
    r->suspect_all_s = bench_since(b.kill_t0, last);
  }
  r->first_dead_seen = b.n_dead > 0;
  if (b.n_dead > 0)
    r->first_dead_s = bench_since(b.kill_t0, b.first_dead_t);
  if (b.n_dead == n - 1) {
    uint64_t last = 0;
    for (size_t i = 0; i < n; i++)
      if ((long)i != b.victim && b.nodes[i].dead_ns > last)
        last = b.nodes[i].dead_ns;
    r->detected = 1;
    r->fail_all_s = bench_since(b.kill_t0, last);
  }

close:
  /* 4. graceful close; the loop must end up empty */
  r->false_dead = atomic_load(&b.false_dead);
  if (!r->joined)
    bench_memory(r);
  b.phase = PH_CLOSE;
  for (size_t i = 0; i < n; i++) {
    if (b.nodes[i].rt == NULL)
      continue;
    atomic_fetch_add(&b.closing, 1);
    dmq_uv_close(b.nodes[i].rt, o->flush_ms, bench_on_rt_closed, &b);
    b.nodes[i].rt = NULL;
  }
  uv_close((uv_handle_t *)&b.deadline, bench_on_handle_closed);
  for (size_t gi = 0; gi < b.ngroups; gi++) {
    uv_close((uv_handle_t *)&b.groups[gi].wake, bench_on_handle_closed);
    uv_close((uv_handle_t *)&b.groups[gi].stagger, bench_on_handle_closed);
    uv_close((uv_handle_t *)&b.groups[gi].trace, bench_on_handle_closed);
  }
  /* the final run: every loop until it is empty */
  bench_resume(&b, 1);
  int left = uv_run(&b.loop, UV_RUN_DEFAULT);
  bench_park(&b);
  for (size_t gi = 1; gi < b.ngroups; gi++) {
    uv_thread_join(&b.groups[gi].tid);
    left += b.groups[gi].left;
    if (uv_loop_close(b.groups[gi].loop) != 0)
      left++;
  }
  r->loop_ok =
      left == 0 && atomic_load(&b.closing) == 0 && uv_loop_close(&b.loop) == 0;
  if (!r->loop_ok)
    fprintf(stderr, "cluster_bench: loop not empty after close (%zu open)\n",
            atomic_load(&b.closing));
  uv_cond_destroy(&b.go);
  uv_cond_destroy(&b.stopped);
  uv_mutex_destroy(&b.mu);
  free(b.groups);
  free(b.nodes);
  free(b.state);
  r->wall_s = bench_since(wall0, uv_hrtime());
}

/* ---------------------------------------------------------------------- */
/* output                                                                  */

static void bench_num(const char *key, int valid, double v, int prec) {
  if (valid)
    printf(",\"%s\":%.*f", key, prec, v);
  else
    printf(",\"%s\":null", key);
}

static void bench_kib(const char *key, long v) {
  if (v >= 0)
    printf(",\"%s\":%ld", key, v);
  else
    printf(",\"%s\":null", key);
}

static void bench_print(const bench_opts_t *o, size_t n,
                        const bench_result_t *r) {
  int steady = r->joined;
  printf("{\"nodes\":%zu,\"profile\":\"%s\",\"sealed\":%s", n,
         o->c.profile_name, o->keyed ? "true" : "false");
  bench_num("join_all_s", r->joined, r->join_all_s, 3);
  bench_num("fail_detect_all_s", r->detected, r->fail_all_s, 3);
  bench_num("suspect_all_s", r->suspected, r->suspect_all_s, 3);
  printf(",\"false_dead\":%zu", r->false_dead);
  bench_num("cpu_pct", steady, r->cpu_pct, 2);
  bench_kib("rss_kib", steady ? r->rss_kib : -1);
  bench_num("rss_per_member_kib", steady && r->rss_kib >= 0,
            (double)(r->rss_kib - r->rss_base_kib) / (double)n, 1);
  bench_num("pkts_per_member_s", steady, r->pkts, 2);
  bench_num("bytes_per_member_s", steady, r->bytes, 1);
  bench_num("rss_anon_per_member_kib",
            steady && r->anon_kib >= 0 && r->anon_base_kib >= 0,
            (double)(r->anon_kib - r->anon_base_kib) / (double)n, 1);
  printf(",\"bcast_all_s\":null");
  printf(",\"threads\":%zu", o->threads < n ? o->threads : n);
  printf(",\"seeds\":%zu,\"stagger_ms\":%" PRIu64
         ",\"settle_s\":%g,\"steady_s\":%g",
         o->seed_count, o->c.stagger_ms, o->c.settle_s, o->c.steady_s);
  bench_num("pushpull_per_s", steady, r->pushpull, 2);
  bench_num("join_cpu_pct", steady, r->join_cpu_pct, 1);
  bench_num("cpu_user_pct", steady, r->cpu_user_pct, 2);
  bench_num("cpu_sys_pct", steady, r->cpu_sys_pct, 2);
  bench_kib("rss_base_kib", r->rss_base_kib);
  bench_kib("rss_join_kib", r->joined ? r->rss_join_kib : -1);
  bench_kib("rss_peak_kib", r->rss_peak_kib);
  bench_kib("heap_rss_kib", r->heap_rss_kib);
  bench_kib("mmap_rss_kib", r->mmap_rss_kib);
  bench_kib("malloc_used_kib", r->malloc_used_kib);
  bench_kib("malloc_mmap_kib", r->malloc_mmap_kib);
  bench_num("rss_trim_per_member_kib", steady && r->rss_trim_kib >= 0,
            (double)(r->rss_trim_kib - r->rss_base_kib) / (double)n, 1);
  if (r->victim >= 0)
    printf(",\"victim\":%ld", r->victim);
  else
    printf(",\"victim\":null");
  bench_num("first_dead_s", r->first_dead_seen, r->first_dead_s, 3);
  printf(",\"seed\":%" PRIu64 ",\"loop_closed\":%s", r->seed,
         r->loop_ok ? "true" : "false");
  printf(",\"wall_s\":%.3f}\n", r->wall_s);
  fflush(stdout);
}

/* Exit status of one run: 0 when everything converged and closed. */
static int bench_status(const bench_opts_t *o, size_t n,
                        const bench_result_t *r) {
  if (!r->joined || !r->loop_ok)
    return 1;
  if (o->seed_count < n && !r->detected)
    return 1;
  return 0;
}

static int bench_one(const bench_opts_t *o, size_t n) {
  bench_result_t r;
  if (!o->fork) {
    bench_run(o, n, &r);
    bench_print(o, n, &r);
    return bench_status(o, n, &r);
  }
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) {
    perror("cluster_bench: fork");
    return 2;
  }
  if (pid == 0) {
    bench_run(o, n, &r);
    bench_print(o, n, &r);
    _exit(bench_status(o, n, &r));
  }
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(st))
    return WEXITSTATUS(st);
  printf("{\"nodes\":%zu,\"profile\":\"%s\",\"error\":\"killed by signal "
         "%d\"}\n",
         n, o->c.profile_name, WIFSIGNALED(st) ? WTERMSIG(st) : -1);
  fflush(stdout);
  return 1;
}

int main(int argc, char **argv) {
  bench_opts_t o;
  if (bench_parse_args(argc, argv, &o) != 0)
    return 2;
  bench_raise_nofile();
  /* a TCP write to a crashed peer must fail with EPIPE, not kill us */
  signal(SIGPIPE, SIG_IGN);
  int failed = 0;
  for (size_t i = 0; i < o.n_nodes; i++) {
    int rc = bench_one(&o, o.nodes[i]);
    if (rc > failed)
      failed = rc;
  }
  return failed;
}
