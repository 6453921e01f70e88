/* dmq-sim: a planning tool. Runs libdmq's membership protocol (the real
 * code, in the deterministic simulator) over a grid of cluster sizes, link
 * losses and timer profiles, and writes the figures as CSV and a chart. The
 * manual is dmq_sim_help below (--help) and docs/dmq-sim.md. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmqsim.h"

static const char dmq_sim_help[] =
    "NAME\n"
    "    dmq-sim - how many members, which timers and how much loss a libdmq\n"
    "    cluster tolerates, from the protocol itself in a simulator\n"
    "\n"
    "SYNOPSIS\n"
    "    dmq-sim [--nodes N,...] [--loss P,...] [--profile NAME,...]\n"
    "            [--out PREFIX] [--html] [--seed S] [--max-sim-s S]\n"
    "            [--settle-s S] [--steady-s S] [--udp-only] [--quiet]\n"
    "\n"
    "DESCRIPTION\n"
    "    For every combination of N, loss and profile, dmq-sim builds a\n"
    "    simulated cluster of N members that run libdmq's membership code\n"
    "    (SWIM with Lifeguard, gossip, push/pull) with simulated time, over a\n"
    "    simulated network: datagrams lost with probability P each, a\n"
    "    reliable stream beside them (as UDP and TCP in the runtime; never\n"
    "    lost: probes that fail over datagrams fall back to it), one-way\n"
    "    delay 1 ms plus 0-1 ms of jitter (wan: 40 plus 0-20 ms, local: 0).\n"
    "    Members 1..N-1 join through member 0 at once; then it measures:\n"
    "      join_s           simulated seconds until every member sees all N\n"
    "                       alive (checked every 50 ms)\n"
    "      bytes_per_member_s, pkts_per_member_s\n"
    "                       what a member sends per second in steady state\n"
    "                       (--steady-s after --settle-s)\n"
    "      suspect_s, detect_s\n"
    "                       after one random member (not member 0) is\n"
    "                       killed: seconds until every other member sees it\n"
    "                       suspect, and dead\n"
    "      detect_floor_s   the shortest detection the timers allow\n"
    "                       (suspicion_mult x max(1, log10(N-1)) x\n"
    "                       probe_interval): detect_s is never below it\n"
    "                       when no member died falsely in the run (it\n"
    "                       takes N-1 live members at the declaring one)\n"
    "      false_deaths     members declared dead that were never killed,\n"
    "                       over the whole run\n"
    "    The run is deterministic: the same options and seed give the same\n"
    "    figures (sim_s, wall_s aside: wall_s is the real time it took).\n"
    "    Memory and time grow with N^2 (every member holds every other):\n"
    "    about 160 bytes per member pair, 1000 members take seconds.\n"
    "\n"
    "OPTIONS\n"
    "    --nodes N,...     cluster sizes, 1..100000, run in ascending order\n"
    "                      (default 10,50,100,200)\n"
    "    --loss P,...      datagram loss, 0..1 (default 0,0.05)\n"
    "    --profile NAME,...\n"
    "                      timer profiles: lan, wan, local, fast\n"
    "                      (dmq_config_init; default lan)\n"
    "    --out PREFIX      write PREFIX.csv and PREFIX.svg (default dmq-sim)\n"
    "    --html            write PREFIX.html (the chart inline, the figures\n"
    "                      as a table) instead of PREFIX.svg\n"
    "    --seed S          simulator seed, > 0 (default $DMQ_SIM_SEED, else\n"
    "                      the simulator's fixed default)\n"
    "    --max-sim-s S     give up a join or a detection after S simulated\n"
    "                      seconds (default 120; the figure is then empty)\n"
    "    --settle-s S      simulated seconds between join and the steady\n"
    "                      window (default 10 probe intervals)\n"
    "    --steady-s S      the steady window (default 10)\n"
    "    --udp-only        members without a stream transport (as dmq-peer\n"
    "                      --udp-only): no TCP beside the datagrams, so no\n"
    "                      lossless push/pull and no stream fallback probe;\n"
    "                      --loss then hits everything\n"
    "    --quiet           no progress lines on stderr\n"
    "    -h, --help        this text\n"
    "\n"
    "OUTPUT\n"
    "    PREFIX.csv: a header line, then one line per grid point (profile,\n"
    "    then loss, then N ascending, varying fastest):\n"
    "      profile,loss,nodes,seed,join_s,suspect_s,detect_s,detect_floor_s,\n"
    "      false_deaths,bytes_per_member_s,pkts_per_member_s,sim_s,wall_s,\n"
    "      transport (udp+tcp, or udp with --udp-only)\n"
    "    a field is empty when its phase did not finish within --max-sim-s.\n"
    "    PREFIX.svg: four panels against N (log scale when the sizes span a\n"
    "    factor of 4 or more), one line per profile and loss. Self-contained:\n"
    "    no scripts, nothing loaded from the network.\n"
    "\n"
    "EXIT STATUS\n"
    "    0 every grid point joined and detected the killed member; 1 some\n"
    "    did not (their fields are empty); 2 bad options or a file that\n"
    "    cannot be written.\n"
    "\n"
    "EXAMPLES\n"
    "    dmq-sim --nodes 50,100,200,500 --loss 0,0.05 --profile lan,fast\n"
    "    dmq-sim --nodes 100 --loss 0,0.1,0.2,0.3 --out loss --html\n";

static int ds_usage(void) {
  fprintf(stderr, "usage: dmq-sim [--nodes N,...] [--loss P,...] "
                  "[--profile NAME,...] [--out PREFIX]\n"
                  "               [--html] [--seed S] [--max-sim-s S] "
                  "[--settle-s S] [--steady-s S]\n"
                  "               [--udp-only] [--quiet] (--help: the "
                  "manual)\n");
  return 2;
}

static int ds_double(const char *s, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (end == s || *end != '\0' || errno != 0 || v != v)
    return -1;
  *out = v;
  return 0;
}

/* A comma-separated list: item() for each element; the count or -1. */
static int ds_list(const char *v,
                   int (*item)(const char *tok, size_t k, ds_opts_t *o),
                   ds_opts_t *o) {
  char buf[1024];
  if (strlen(v) >= sizeof(buf))
    return -1;
  strcpy(buf, v);
  size_t k = 0;
  char *save = NULL;
  for (char *t = strtok_r(buf, ",", &save); t != NULL;
       t = strtok_r(NULL, ",", &save)) {
    if (k == DS_MAX_LIST || item(t, k, o) != 0)
      return -1;
    k++;
  }
  return k > 0 ? (int)k : -1;
}

static int ds_node_item(const char *t, size_t k, ds_opts_t *o) {
  double d;
  if (ds_double(t, &d) != 0 || d < 1 || d > 100000 || d != (double)(size_t)d)
    return -1;
  o->nodes[k] = (size_t)d;
  return 0;
}

static int ds_loss_item(const char *t, size_t k, ds_opts_t *o) {
  return ds_double(t, &o->loss[k]) != 0 || o->loss[k] < 0 || o->loss[k] > 1 ? -1
                                                                            : 0;
}

static int ds_profile_item(const char *t, size_t k, ds_opts_t *o) {
  return dmq_profile_from_name(t, &o->profile[k]) != 0 ? -1 : 0;
}

static int ds_cmp_size(const void *a, const void *b) {
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  return x < y ? -1 : x > y;
}

/* The sizes ascending, each once: the chart's lines run left to right. */
static void ds_sort_nodes(ds_opts_t *o) {
  qsort(o->nodes, o->n_nodes, sizeof(o->nodes[0]), ds_cmp_size);
  size_t k = 0;
  for (size_t i = 0; i < o->n_nodes; i++)
    if (k == 0 || o->nodes[i] != o->nodes[k - 1])
      o->nodes[k++] = o->nodes[i];
  o->n_nodes = k;
}

static int ds_parse(int argc, char **argv, ds_opts_t *o) {
  memset(o, 0, sizeof(*o));
  static const size_t def_nodes[] = {10, 50, 100, 200};
  memcpy(o->nodes, def_nodes, sizeof(def_nodes));
  o->n_nodes = 4;
  o->loss[1] = 0.05;
  o->n_loss = 2;
  o->profile[0] = DMQ_PROFILE_LAN;
  o->n_profile = 1;
  o->max_sim_s = 120;
  o->settle_s = -1;
  o->steady_s = 10;
  o->out = "dmq-sim";
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      fputs(dmq_sim_help, stdout);
      exit(0);
    }
    if (strcmp(a, "--html") == 0) {
      o->html = 1;
      continue;
    }
    if (strcmp(a, "--udp-only") == 0) {
      o->udp_only = 1;
      continue;
    }
    if (strcmp(a, "--quiet") == 0) {
      o->quiet = 1;
      continue;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "dmq-sim: %s: unknown option or no value\n", a);
      return -1;
    }
    const char *v = argv[++i];
    int n = 0;
    double d = 0;
    if (strcmp(a, "--nodes") == 0) {
      n = ds_list(v, ds_node_item, o);
      o->n_nodes = n > 0 ? (size_t)n : 0;
    } else if (strcmp(a, "--loss") == 0) {
      n = ds_list(v, ds_loss_item, o);
      o->n_loss = n > 0 ? (size_t)n : 0;
    } else if (strcmp(a, "--profile") == 0) {
      n = ds_list(v, ds_profile_item, o);
      o->n_profile = n > 0 ? (size_t)n : 0;
    } else if (strcmp(a, "--out") == 0) {
      o->out = v;
      n = *v != '\0' && strlen(v) < 4000 ? 0 : -1;
    } else if (strcmp(a, "--seed") == 0) {
      char *end;
      errno = 0;
      unsigned long long s = strtoull(v, &end, 10);
      n = end == v || *end != '\0' || errno != 0 || s == 0 || *v == '-' ? -1
                                                                        : 0;
      o->seed = s;
    } else if (strcmp(a, "--max-sim-s") == 0) {
      n = ds_double(v, &d) != 0 || d <= 0 || d > 86400 ? -1 : 0;
      o->max_sim_s = d;
    } else if (strcmp(a, "--settle-s") == 0) {
      n = ds_double(v, &d) != 0 || d < 0 || d > 86400 ? -1 : 0;
      o->settle_s = d;
    } else if (strcmp(a, "--steady-s") == 0) {
      n = ds_double(v, &d) != 0 || d <= 0 || d > 86400 ? -1 : 0;
      o->steady_s = d;
    } else {
      fprintf(stderr, "dmq-sim: %s: unknown option\n", a);
      return -1;
    }
    if (n < 0) {
      fprintf(stderr, "dmq-sim: bad value for %s: %s\n", a, v);
      return -1;
    }
  }
  ds_sort_nodes(o);
  return 0;
}

int main(int argc, char **argv) {
  ds_opts_t o;
  if (ds_parse(argc, argv, &o) != 0)
    return ds_usage();
  size_t nr = o.n_profile * o.n_loss * o.n_nodes;
  ds_result_t *r = calloc(nr, sizeof(*r));
  if (r == NULL) {
    fprintf(stderr, "dmq-sim: out of memory\n");
    return 2;
  }
  char csv[4100], chart[4100];
  snprintf(csv, sizeof(csv), "%s.csv", o.out);
  snprintf(chart, sizeof(chart), "%s.%s", o.out, o.html ? "html" : "svg");
  int failed = 0;
  size_t k = 0;
  for (size_t p = 0; p < o.n_profile; p++)
    for (size_t l = 0; l < o.n_loss; l++)
      for (size_t i = 0; i < o.n_nodes; i++, k++) {
        ds_run(&o, o.nodes[i], o.loss[l], o.profile[p], &r[k]);
        if (!r[k].join_ok || (o.nodes[i] > 1 && !r[k].detect_ok))
          failed = 1;
        if (!o.quiet)
          fprintf(stderr,
                  "dmq-sim: %zu/%zu profile %s loss %g N %zu: join %.2f s, "
                  "detect %.2f s, false deaths %llu, %.0f B/s per member "
                  "(%.1f s)\n",
                  k + 1, nr, dmq_profile_name(o.profile[p]), o.loss[l],
                  o.nodes[i], r[k].join_s, r[k].detect_s,
                  (unsigned long long)r[k].false_deaths,
                  r[k].bytes_per_member_s, r[k].wall_s);
      }
  int rc =
      ds_write_csv(csv, &o, r, nr) != 0 || ds_write_chart(chart, &o, r, nr) != 0
          ? 2
          : failed;
  free(r);
  if (rc != 2 && !o.quiet)
    fprintf(stderr, "dmq-sim: wrote %s and %s\n", csv, chart);
  return rc;
}
