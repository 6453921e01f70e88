/* dmq-sim: what its parts share (the program: main.c's --help).
 *
 *   main.c    options, the grid, progress on stderr
 *   run.c     one grid point: a simulated cluster, its figures
 *   chart.c   the CSV and the SVG / HTML chart
 */
#ifndef DMQ_TOOLS_DMQSIM_H
#define DMQ_TOOLS_DMQSIM_H

#include <stddef.h>
#include <stdint.h>

#include <dmq/config.h>

#define DS_MAX_LIST 32

typedef struct ds_opts {
  size_t nodes[DS_MAX_LIST];
  size_t n_nodes;
  double loss[DS_MAX_LIST];
  size_t n_loss;
  dmq_profile_t profile[DS_MAX_LIST];
  size_t n_profile;
  uint64_t seed;    /* 0: the simulator's default */
  double max_sim_s; /* per phase (join, detection) */
  double settle_s;  /* < 0: 10 probe intervals of the profile */
  double steady_s;
  const char *out; /* prefix: <out>.csv and <out>.svg / <out>.html */
  int html;
  int udp_only; /* no stream transport: datagrams only */
  int quiet;
} ds_opts_t;

/* One grid point's figures; *_ok 0 when the phase did not finish within
 * max_sim_s (the figure is then empty in the CSV and not drawn). */
typedef struct ds_result {
  size_t nodes;
  double loss;
  dmq_profile_t profile;
  uint64_t seed;
  int join_ok, suspect_ok, detect_ok;
  double join_s, suspect_s, detect_s, detect_floor_s;
  uint64_t false_deaths;
  double bytes_per_member_s, pkts_per_member_s;
  double sim_s, wall_s;
} ds_result_t;

/* run.c */
void ds_run(const ds_opts_t *o, size_t n, double loss, dmq_profile_t p,
            ds_result_t *r);

/* chart.c: 0, or -1 with a message on stderr */
int ds_write_csv(const char *path, const ds_opts_t *o, const ds_result_t *r,
                 size_t nr);
int ds_write_chart(const char *path, const ds_opts_t *o, const ds_result_t *r,
                   size_t nr);

#endif
