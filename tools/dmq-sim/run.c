/* dmq-sim: one grid point. N hosts running the real protocol code in the
 * deterministic simulator (tests/sim): hosts 1..N-1 join through host 0 at
 * t=0; then the cluster settles and its traffic is measured over a steady
 * window; then a random non-seed host is killed and the time until every
 * other host sees it suspect, and dead, is measured. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dmqsim.h"
#include "sim.h"

#define DS_STEP_MS 50

static double ds_wall(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Every live host counts n members alive. */
static int ds_all_joined(dmq_sim_t *w, size_t n) {
  for (int i = 0; i < dmq_sim_host_count(w); i++) {
    dmq_node_t *node = dmq_sim_node(w, i);
    if (node != NULL &&
        dmq_node_member_count(node, 1u << DMQ_MEMBER_ALIVE) != n)
      return 0;
  }
  return 1;
}

/* Every other live host sees victim in a state of mask. */
static int ds_all_see(dmq_sim_t *w, int victim, unsigned mask) {
  for (int i = 0; i < dmq_sim_host_count(w); i++) {
    if (i == victim || dmq_sim_node(w, i) == NULL)
      continue;
    int st = dmq_sim_state(w, i, victim);
    if (st < 0 || !((1u << st) & mask))
      return 0;
  }
  return 1;
}

void ds_run(const ds_opts_t *o, size_t n, double loss, dmq_profile_t p,
            ds_result_t *r) {
  double wall0 = ds_wall();
  memset(r, 0, sizeof(*r));
  r->nodes = n;
  r->loss = loss;
  r->profile = p;
  dmq_sim_opts_t so;
  dmq_sim_opts_init(&so);
  so.seed = o->seed;
  so.quiet = 1;
  so.link.loss = loss;
  /* one-way delay and jitter of the profile's kind of network */
  so.link.delay_ms = p == DMQ_PROFILE_WAN ? 40 : p == DMQ_PROFILE_LOCAL ? 0 : 1;
  so.link.jitter_ms = p == DMQ_PROFILE_WAN     ? 20
                      : p == DMQ_PROFILE_LOCAL ? 0
                                               : 1;
  so.stream_transport = 1;    /* UDP + TCP, like the runtime */
  so.no_stream = o->udp_only; /* or UDP alone (dmq-peer --udp-only) */
  so.event_mask = 1u << DMQ_EVENT_DEAD;
  dmq_sim_t *w = dmq_sim_new(&so);
  if (w == NULL) {
    fprintf(stderr, "dmq-sim: out of memory\n");
    exit(2);
  }
  r->seed = dmq_sim_seed(w);
  dmq_config_t cfg;
  dmq_config_init(&cfg, p);
  /* Lifeguard's shortest suspicion (swim.c: scale log10 of the live
   * members the suspecting node counts, itself and the suspect included):
   * while no other member is dead, nobody can declare the victim dead
   * sooner after its death than this */
  double lg = n > 11 ? log10((double)(n - 1)) : 1.0;
  r->detect_floor_s =
      (double)cfg.suspicion_mult * lg * (double)cfg.probe_interval_ms / 1000.0;
  for (size_t i = 0; i < n; i++)
    if (dmq_sim_add(w, &cfg, NULL) < 0) {
      fprintf(stderr, "dmq-sim: cannot add host %zu\n", i);
      exit(2);
    }
  uint64_t max_ms = (uint64_t)(o->max_sim_s * 1000.0);
  int seed_host = 0;
  for (size_t i = 1; i < n; i++)
    dmq_sim_join(w, (int)i, &seed_host, 1);
  uint64_t t = dmq_sim_now(w);
  while (!(r->join_ok = ds_all_joined(w, n)) && t < max_ms) {
    t += DS_STEP_MS;
    dmq_sim_run_until(w, t);
  }
  if (!r->join_ok)
    goto done;
  r->join_s = (double)dmq_sim_now(w) / 1000.0;

  double settle_s = o->settle_s >= 0
                        ? o->settle_s
                        : 10.0 * (double)cfg.probe_interval_ms / 1000.0;
  dmq_sim_run_for(w, (uint64_t)(settle_s * 1000.0));
  dmq_sim_net_stats_t a, b;
  dmq_sim_net_stats(w, &a);
  dmq_sim_run_for(w, (uint64_t)(o->steady_s * 1000.0));
  dmq_sim_net_stats(w, &b);
  r->bytes_per_member_s =
      (double)(b.bytes_sent - a.bytes_sent) / (double)n / o->steady_s;
  r->pkts_per_member_s = (double)(b.sent - a.sent) / (double)n / o->steady_s;
  if (n < 2)
    goto done;

  int victim = 1 + (int)(dmq_sim_rand(w) % (n - 1));
  uint64_t kill_at = dmq_sim_now(w);
  dmq_sim_kill(w, victim);
  const unsigned susp = (1u << DMQ_MEMBER_SUSPECT) | (1u << DMQ_MEMBER_DEAD);
  const unsigned dead = 1u << DMQ_MEMBER_DEAD;
  for (t = kill_at;; t += DS_STEP_MS) {
    if (t > kill_at)
      dmq_sim_run_until(w, t);
    if (!r->suspect_ok && ds_all_see(w, victim, susp)) {
      r->suspect_ok = 1;
      r->suspect_s = (double)(t - kill_at) / 1000.0;
    }
    if (ds_all_see(w, victim, dead)) {
      r->detect_ok = 1;
      r->detect_s = (double)(t - kill_at) / 1000.0;
      break;
    }
    if (t - kill_at >= max_ms)
      break;
  }
done:
  r->false_deaths = dmq_sim_false_deaths(w);
  r->sim_s = (double)dmq_sim_now(w) / 1000.0;
  dmq_sim_delete(w);
  r->wall_s = ds_wall() - wall0;
}
