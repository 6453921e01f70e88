/* sim_bench: membership benchmarks in the deterministic simulator.
 *
 * For every combination of --nodes and --loss it builds a world of N hosts,
 * makes hosts 1..N-1 join through host 0 (the seed) at t=0, and measures:
 *   join_all_s         first simulated time every node sees N members alive
 *                      (checked every 50 ms of simulated time)
 *   rounds_join        join_all_s / gossip interval
 *   drain_pkts_per_member_s, drain_bytes_per_member_s
 *                      packets and bytes sent per member per second during
 *                      the settling period after convergence (--settle-s,
 *                      default 30 probe intervals), while the join updates
 *                      are still being gossiped
 *   pkts_per_member_s, bytes_per_member_s
 *                      the same over the steady-state window that follows
 *                      (--steady-s, default 10 s)
 *   suspect_all_s      after a random non-seed host is killed at the end of
 *                      that window: time until every other host sees it
 *                      suspect or dead
 *   fail_detect_all_s  time until every other host sees it dead
 *   first_dead_s       time until the first host declared it dead
 *   dissem_s           fail_detect_all_s - first_dead_s (dissemination)
 *   dissem_rounds      dissem_s / gossip interval, against
 *   rounds_bound       3 * log2(N) gossip rounds (issue 13's bound);
 *                      dissem_within_bound: dissem_rounds <= rounds_bound
 *   false_dead         DEAD events about hosts never killed/left/paused
 *   events             member events of all nodes (the simulator logs only
 *                      DEAD ones: a full log is N^2 entries, 4 GB at 10000)
 *   wall_s             wall-clock time of the run (wall_join_s: until
 *                      convergence)
 * and prints one JSON object per line. Everything but wall_s is a pure
 * function of the seed.
 *
 * --stream gives every host a separate stream transport (opts.stream_transport:
 * push/pull is never lost, like TCP); by default the simulator's single
 * transport lets size decide, so small push/pulls (joins) are lossy.
 *
 * Joins: by default (and with --burst) every host joins at the same instant,
 * t=0; --stagger MS spreads the joins evenly over MS milliseconds instead.
 *
 * Usage: sim_bench [--nodes 10,100,1000] [--loss 0,0.05] [--profile lan]
 *                  [--seed S] [--burst | --stagger MS] [--max-sim-s S]
 *                  [--settle-s S] [--steady-s S] [--delay-ms D]
 *                  [--jitter-ms J] [--stream] [--lanes N] [--thp 0|1]
 * --seed defaults to $DMQ_SIM_SEED, else DMQ_SIM_DEFAULT_SEED; every run of
 * one invocation uses the same seed.
 * --lanes N: the simulator on N threads (dmq_sim_opts_t.lanes; default one
 * per CPU, at most 8; 0: single-threaded with the tests' network draws, so
 * other figures for the same seed). --thp 1 (default): the heap on
 * transparent huge pages (the bench runs itself again with glibc's
 * glibc.malloc.hugetlb=1 tunable). The JSON says which: "lanes", "thp".
 * Exit status 1 if a run did not converge or detect the failure within
 * --max-sim-s simulated seconds (its JSON line has null fields).
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, setenv */

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h> /* sysconf */

#include "benchcluster.h"
#include "benchopt.h"
#include "sim.h"

#define BENCH_STEP_MS 50
#define BENCH_MAX_LIST 32

typedef struct bench_opts {
  size_t nodes[BENCH_MAX_LIST];
  size_t n_nodes;
  double loss[BENCH_MAX_LIST];
  size_t n_loss;
  benchcluster_opts_t c; /* settle_s < 0: by profile */
  double max_sim_s;
  long delay_ms, jitter_ms; /* -1 = by profile */
  int stream;               /* --stream: separate stream transport */
  long lanes;               /* --lanes: simulator threads (opts.lanes) */
  long thp;                 /* --thp: the heap on transparent huge pages */
} bench_opts_t;

typedef struct bench_result {
  double join_all_s, drain_pkts, drain_bytes, pkts, bytes, suspect_all_s,
      fail_all_s, first_dead_s;
  int joined, suspected, detected, first_dead_seen;
  int victim;
  uint64_t seed;
  size_t false_dead, events;
  double sim_s, wall_s, wall_join_s, settle_s;
} bench_result_t;

static double bench_wall(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* With --thp 1 (the default), run again with glibc's malloc asking for
 * transparent huge pages (the glibc.malloc.hugetlb tunable, read only at
 * startup). At 10000 members the simulated nodes hold ~11 GB: with 4 KiB
 * pages a third of the run was the kernel's page faults (docs/bench.md). A
 * kernel with THP "never" simply ignores the request; the tunable is
 * reported as "thp" in the JSON. */
static int bench_thp_active(void) {
  const char *t = getenv("GLIBC_TUNABLES");
  return t != NULL && strstr(t, "glibc.malloc.hugetlb=1") != NULL;
}

static void bench_thp_reexec(char **argv) {
  if (bench_thp_active() || getenv("SIM_BENCH_REEXEC") != NULL)
    return;
  const char *t = getenv("GLIBC_TUNABLES");
  char v[1024];
  int len = snprintf(v, sizeof v, "%s%sglibc.malloc.hugetlb=1",
                     t != NULL ? t : "", t != NULL && *t ? ":" : "");
  if (len < 0 || (size_t)len >= sizeof v)
    return;
  setenv("GLIBC_TUNABLES", v, 1);
  setenv("SIM_BENCH_REEXEC", "1", 1); /* once, whatever happens */
  execv("/proc/self/exe", argv);
  unsetenv("GLIBC_TUNABLES"); /* no exec: go on without */
  if (t != NULL)
    setenv("GLIBC_TUNABLES", t, 1);
}

static void bench_usage(const char *prog) {
  fprintf(stderr,
          "usage: %s [--nodes N[,N...]] [--loss P[,P...]] "
          "[--profile lan|wan|local|fast]\n"
          "          [--seed S] [--burst | --stagger MS] [--max-sim-s S]\n"
          "          [--settle-s S] [--steady-s S] [--delay-ms D] "
          "[--jitter-ms J] [--stream] [--lanes N] [--thp 0|1]\n",
          prog);
}

static int bench_opt_flag(const char *a, void *ctx) {
  bench_opts_t *o = ctx;
  if (benchcluster_flag(a, &o->c))
    return 1;
  if (strcmp(a, "--stream") == 0)
    o->stream = 1;
  else if (strcmp(a, "--no-stream") == 0)
    o->stream = 0;
  else
    return 0;
  return 1;
}

static int bench_opt_value(const char *a, const char *v, void *ctx) {
  bench_opts_t *o = ctx;
  double d[BENCH_MAX_LIST];
  int n = benchcluster_value(a, v, &o->c);
  if (n != 0)
    return n < 0 ? -1 : 0;
  if (strcmp(a, "--nodes") == 0) {
    if ((n = benchopt_parse_doubles(v, d, BENCH_MAX_LIST)) < 0)
      return -1;
    for (int k = 0; k < n; k++) {
      if (d[k] < 1 || d[k] > 100000 || d[k] != (double)(size_t)d[k])
        return -1;
      o->nodes[k] = (size_t)d[k];
    }
    o->n_nodes = (size_t)n;
  } else if (strcmp(a, "--loss") == 0) {
    if ((n = benchopt_parse_doubles(v, o->loss, BENCH_MAX_LIST)) < 0)
      return -1;
    for (int k = 0; k < n; k++)
      if (o->loss[k] < 0 || o->loss[k] > 1)
        return -1;
    o->n_loss = (size_t)n;
  } else if (strcmp(a, "--max-sim-s") == 0) {
    if (benchopt_parse_double(v, &o->max_sim_s) != 0 || o->max_sim_s <= 0)
      return -1;
  } else if (strcmp(a, "--thp") == 0) {
    if (strcmp(v, "0") != 0 && strcmp(v, "1") != 0)
      return -1;
    o->thp = v[0] - '0';
  } else if (strcmp(a, "--lanes") == 0) {
    uint64_t x;
    if (benchopt_parse_u64_dec(v, &x) != 0 || x > 64)
      return -1;
    o->lanes = (long)x;
  } else if (strcmp(a, "--delay-ms") == 0 || strcmp(a, "--jitter-ms") == 0) {
    uint64_t x;
    if (benchopt_parse_u64_dec(v, &x) != 0 || x > 100000)
      return -1;
    *(strcmp(a, "--delay-ms") == 0 ? &o->delay_ms : &o->jitter_ms) = (long)x;
  } else {
    return -1;
  }
  return 0;
}

static int bench_parse_args(int argc, char **argv, bench_opts_t *o) {
  memset(o, 0, sizeof(*o));
  o->nodes[0] = 100;
  o->n_nodes = 1;
  o->loss[0] = 0;
  o->n_loss = 1;
  o->c.profile = DMQ_PROFILE_LAN;
  o->c.profile_name = "lan";
  o->c.seed = 0; /* the simulator's choice: $DMQ_SIM_SEED or its default */
  o->max_sim_s = 120;
  o->c.steady_s = 10;
  o->c.settle_s = -1;
  o->delay_ms = -1;
  o->jitter_ms = -1;
  o->stream = 1; /* model UDP + TCP like the runtime; --no-stream: one */
  o->lanes = -1; /* one per CPU */
  o->thp = 1;
  static const benchopt_spec_t spec = {"sim_bench", bench_usage, bench_opt_flag,
                                       bench_opt_value};
  if (benchopt_parse_args(argc, argv, &spec, o) != 0)
    return -1;
  if (o->lanes < 0) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    o->lanes = cpus < 1 ? 1 : cpus > 8 ? 8 : cpus;
  }
  /* Link defaults per profile: one-way delay and jitter. */
  if (o->delay_ms < 0)
    o->delay_ms = o->c.profile == DMQ_PROFILE_WAN     ? 40
                  : o->c.profile == DMQ_PROFILE_LOCAL ? 0
                                                      : 1;
  if (o->jitter_ms < 0)
    o->jitter_ms = o->c.profile == DMQ_PROFILE_WAN     ? 20
                   : o->c.profile == DMQ_PROFILE_LOCAL ? 0
                                                       : 1;
  return 0;
}

/* Every live node counts n members alive. O(N). */
static int bench_all_joined(dmq_sim_t *w, size_t n) {
  int hosts = dmq_sim_host_count(w);
  for (int i = 0; i < hosts; i++) {
    dmq_node_t *node = dmq_sim_node(w, i);
    if (node != NULL &&
        dmq_node_member_count(node, 1u << DMQ_MEMBER_ALIVE) != n)
      return 0;
  }
  return 1;
}

/* Every other live host sees victim in a state of `mask`. O(N). */
static int bench_all_see(dmq_sim_t *w, int victim, unsigned mask) {
  int hosts = dmq_sim_host_count(w);
  for (int i = 0; i < hosts; i++) {
    if (i == victim || dmq_sim_node(w, i) == NULL)
      continue;
    int st = dmq_sim_state(w, i, victim);
    if (st < 0 || !((1u << st) & mask))
      return 0;
  }
  return 1;
}

static void bench_run(const bench_opts_t *o, size_t n, double loss,
                      bench_result_t *r) {
  double wall0 = bench_wall();
  memset(r, 0, sizeof(*r));
  r->victim = -1;
  dmq_sim_opts_t so;
  dmq_sim_opts_init(&so);
  so.seed = o->c.seed;
  so.link.loss = loss;
  so.link.delay_ms = (uint32_t)o->delay_ms;
  so.link.jitter_ms = (uint32_t)o->jitter_ms;
  so.stream_transport = o->stream;
  so.event_mask = 1u << DMQ_EVENT_DEAD; /* only deaths are read */
  so.check_digest = 0;                  /* O(N) checks: a test's job */
  so.lanes = (int)o->lanes;
  dmq_sim_t *w = dmq_sim_new(&so);
  if (w == NULL) {
    fprintf(stderr, "sim_bench: out of memory\n");
    exit(2);
  }
  r->seed = dmq_sim_seed(w);
  dmq_config_t cfg;
  dmq_config_init(&cfg, o->c.profile);
  /* a table of every member, and a push/pull of it in one stream packet
   * (the defaults hold 8192 members) */
  if (n > cfg.max_members) {
    cfg.max_members = (uint32_t)n;
    cfg.max_packet = (uint32_t)(n * DMQ_MAX_RECORD + 4096);
  }
  for (size_t i = 0; i < n; i++) {
    if (dmq_sim_add(w, &cfg, NULL) < 0) {
      fprintf(stderr, "sim_bench: cannot add host %zu\n", i);
      exit(2);
    }
  }
  uint64_t max_ms = (uint64_t)(o->max_sim_s * 1000.0);
  int seed_host = 0;
  /* Joins: host i at i * stagger / n (all at t=0 in burst mode). */
  for (size_t i = 1; i < n; i++) {
    uint64_t at = o->c.stagger_ms * i / n;
    if (at > dmq_sim_now(w))
      dmq_sim_run_until(w, at);
    dmq_sim_join(w, (int)i, &seed_host, 1);
  }
  uint64_t t = dmq_sim_now(w);
  while (!(r->joined = bench_all_joined(w, n)) && t < max_ms) {
    t += BENCH_STEP_MS;
    dmq_sim_run_until(w, t);
  }
  if (!r->joined)
    goto done;
  r->join_all_s = (double)dmq_sim_now(w) / 1000.0;
  r->wall_join_s = bench_wall() - wall0;

  /* Settle (the join updates drain), then steady state. */
  dmq_sim_net_stats_t a, b;
  dmq_sim_net_stats(w, &a);
  double settle_s = o->c.settle_s >= 0
                        ? o->c.settle_s
                        : 30.0 * (double)cfg.probe_interval_ms / 1000.0;
  r->settle_s = settle_s;
  if (settle_s > 0) {
    dmq_sim_run_for(w, (uint64_t)(settle_s * 1000.0));
    dmq_sim_net_stats(w, &b);
    r->drain_pkts = (double)(b.sent - a.sent) / (double)n / settle_s;
    r->drain_bytes =
        (double)(b.bytes_sent - a.bytes_sent) / (double)n / settle_s;
    a = b;
  }
  uint64_t steady_ms = (uint64_t)(o->c.steady_s * 1000.0);
  dmq_sim_run_for(w, steady_ms);
  dmq_sim_net_stats(w, &b);
  r->pkts = (double)(b.sent - a.sent) / (double)n / o->c.steady_s;
  r->bytes = (double)(b.bytes_sent - a.bytes_sent) / (double)n / o->c.steady_s;

  if (n < 2)
    goto done;
  r->victim = 1 + (int)(dmq_sim_rand(w) % (n - 1));
  uint64_t kill_at = dmq_sim_now(w);
  size_t ev0 = dmq_sim_event_count(w);
  dmq_sim_kill(w, r->victim);
  const unsigned susp = (1u << DMQ_MEMBER_SUSPECT) | (1u << DMQ_MEMBER_DEAD);
  const unsigned dead = 1u << DMQ_MEMBER_DEAD;
  t = kill_at;
  for (;;) {
    if (!r->suspected && bench_all_see(w, r->victim, susp)) {
      r->suspected = 1;
      r->suspect_all_s = (double)(dmq_sim_now(w) - kill_at) / 1000.0;
    }
    if (bench_all_see(w, r->victim, dead)) {
      r->detected = 1;
      r->fail_all_s = (double)(dmq_sim_now(w) - kill_at) / 1000.0;
      if (!r->suspected) { /* passed suspect within the same step */
        r->suspected = 1;
        r->suspect_all_s = r->fail_all_s;
      }
      break;
    }
    if (t - kill_at >= max_ms)
      break;
    t += BENCH_STEP_MS;
    dmq_sim_run_until(w, t);
  }
  const dmq_sim_event_t *ev = dmq_sim_events(w);
  size_t nev = dmq_sim_event_count(w);
  for (size_t i = ev0; i < nev; i++) {
    if (ev[i].subject == r->victim && ev[i].ev == DMQ_EVENT_DEAD) {
      r->first_dead_seen = 1;
      r->first_dead_s = (double)(ev[i].t - kill_at) / 1000.0;
      break;
    }
  }

done:
  r->false_dead = dmq_sim_false_deaths(w);
  r->events = dmq_sim_event_total(w);
  r->sim_s = (double)dmq_sim_now(w) / 1000.0;
  dmq_sim_delete(w);
  r->wall_s = bench_wall() - wall0;
}

static void bench_num(const char *key, int valid, double v, int prec) {
  if (valid)
    printf(",\"%s\":%.*f", key, prec, v);
  else
    printf(",\"%s\":null", key);
}

static void bench_print(const bench_opts_t *o, size_t n, double loss,
                        const bench_result_t *r) {
  dmq_config_t cfg;
  dmq_config_init(&cfg, o->c.profile);
  double gossip_s = (double)cfg.gossip_interval_ms / 1000.0;
  printf("{\"nodes\":%zu,\"loss\":%g,\"profile\":\"%s\",\"seed\":%" PRIu64
         ",\"delay_ms\":%ld,\"jitter_ms\":%ld,\"stagger_ms\":%" PRIu64
         ",\"stream\":%d,\"lanes\":%ld,\"thp\":%d",
         n, loss, o->c.profile_name, r->seed, o->delay_ms, o->jitter_ms,
         o->c.stagger_ms, o->stream, o->lanes, bench_thp_active());
  bench_num("join_all_s", r->joined, r->join_all_s, 3);
  bench_num("rounds_join", r->joined && gossip_s > 0,
            gossip_s > 0 ? r->join_all_s / gossip_s : 0, 1);
  bench_num("settle_s", r->joined, r->settle_s, 1);
  bench_num("drain_pkts_per_member_s", r->joined, r->drain_pkts, 2);
  bench_num("drain_bytes_per_member_s", r->joined, r->drain_bytes, 1);
  bench_num("pkts_per_member_s", r->joined, r->pkts, 2);
  bench_num("bytes_per_member_s", r->joined, r->bytes, 1);
  if (r->victim >= 0)
    printf(",\"victim\":%d", r->victim);
  else
    printf(",\"victim\":null");
  bench_num("suspect_all_s", r->suspected, r->suspect_all_s, 3);
  bench_num("fail_detect_all_s", r->detected, r->fail_all_s, 3);
  bench_num("first_dead_s", r->first_dead_seen, r->first_dead_s, 3);
  int dissem_ok = r->detected && r->first_dead_seen && gossip_s > 0;
  double dissem_rounds =
      dissem_ok ? (r->fail_all_s - r->first_dead_s) / gossip_s : 0;
  double bound = n > 1 ? 3.0 * log2((double)n) : 0;
  bench_num("dissem_s", r->detected && r->first_dead_seen,
            r->fail_all_s - r->first_dead_s, 3);
  bench_num("dissem_rounds", dissem_ok, dissem_rounds, 1);
  bench_num("rounds_bound", n > 1, bound, 1);
  if (dissem_ok)
    printf(",\"dissem_within_bound\":%s",
           dissem_rounds <= bound ? "true" : "false");
  else
    printf(",\"dissem_within_bound\":null");
  printf(",\"false_dead\":%zu,\"events\":%zu,\"sim_s\":%.3f", r->false_dead,
         r->events, r->sim_s);
  bench_num("wall_join_s", r->joined, r->wall_join_s, 3);
  printf(",\"wall_s\":%.3f}\n", r->wall_s);
  fflush(stdout);
}

int main(int argc, char **argv) {
  bench_opts_t o;
  if (bench_parse_args(argc, argv, &o) != 0)
    return 2;
  if (o.thp)
    bench_thp_reexec(argv);
  int failed = 0;
  for (size_t i = 0; i < o.n_nodes; i++) {
    for (size_t j = 0; j < o.n_loss; j++) {
      bench_result_t r;
      bench_run(&o, o.nodes[i], o.loss[j], &r);
      bench_print(&o, o.nodes[i], o.loss[j], &r);
      if (!r.joined || (o.nodes[i] > 1 && !r.detected))
        failed = 1;
    }
  }
  return failed;
}
