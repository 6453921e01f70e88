/* delivery_bench: the command line, on bench/benchopt.h. Every option takes
 * a value; a bad one prints "delivery_bench: bad option ..." and the usage,
 * and the bench exits with status 2. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchopt.h"
#include "db.h"

const char *const mode_names[M_COUNT] = {"raw_udp",           "reliable",
                                         "best_effort",       "bcast_reliable",
                                         "bcast_best_effort", "raw_udp_mmsg"};

static void usage(const char *argv0) {
  (void)argv0;
  fprintf(
      stderr,
      "usage: delivery_bench [--duration-s S] [--latency-s S]\n"
      "         [--payload 100,1024] [--modes "
      "raw_udp,reliable,best_effort,bcast_reliable,bcast_best_effort\n"
      "                  (,raw_udp_mmsg)]\n"
      "         [--receivers N] [--batch N] [--profile lan|wan|local|fast]\n"
      "         [--queue-msgs N] [--window N] [--rx-work-ns NS]\n"
      "         [--trace-ms MS] [--lat-load F] [--pace-us US]\n"
      "         [--lat-trace-us US] [--pin 0|1]\n"
      "         [--stall-ms MS] [--stall-side rx|tx] [--hiccup 0|1]\n");
}

static int mode_item(const char *tok, size_t k, void *ctx) {
  db_opts_t *o = ctx;
  (void)k;
  for (int m = 0; m < M_COUNT; m++)
    if (strcmp(tok, mode_names[m]) == 0) {
      o->modes[m] = 1;
      return 0;
    }
  return -1;
}

/* A datagram's worth at most: raw sends one datagram per message. */
static int payload_item(const char *tok, size_t k, void *ctx) {
  db_opts_t *o = ctx;
  uint64_t p;
  if (benchopt_parse_u64(tok, &p) != 0 || p < sizeof(db_hdr_t) || p > 1300)
    return -1;
  o->payload[k] = (size_t)p;
  return 0;
}

/* An unsigned number no larger than max. */
static int parse_max(const char *v, uint64_t max, uint64_t *out) {
  return benchopt_parse_u64(v, out) != 0 || *out > max ? -1 : 0;
}

static int u32_opt(const char *v, uint32_t *out) {
  uint64_t x;
  if (parse_max(v, UINT32_MAX, &x) != 0)
    return -1;
  *out = (uint32_t)x;
  return 0;
}

static int int_opt(const char *v, uint64_t max, int *out) {
  uint64_t x;
  if (parse_max(v, max, &x) != 0)
    return -1;
  *out = (int)x;
  return 0;
}

static int opt_flag(const char *a, void *ctx) {
  (void)a;
  (void)ctx;
  return 0; /* every option takes a value */
}

static int opt_value(const char *a, const char *v, void *ctx) {
  db_opts_t *o = ctx;
  if (strcmp(a, "--duration-s") == 0)
    return benchopt_parse_double(v, &o->duration_s);
  if (strcmp(a, "--latency-s") == 0)
    return benchopt_parse_double(v, &o->latency_s);
  if (strcmp(a, "--lat-load") == 0)
    return benchopt_parse_double(v, &o->lat_load);
  if (strcmp(a, "--payload") == 0) {
    int n = benchopt_parse_list(v, DB_MAX_LIST, payload_item, o);
    o->n_payload = n > 0 ? (size_t)n : 0;
    return n > 0 ? 0 : -1;
  }
  if (strcmp(a, "--modes") == 0) {
    memset(o->modes, 0, sizeof(o->modes));
    return benchopt_parse_list(v, M_COUNT * 4, mode_item, o) > 0 ? 0 : -1;
  }
  if (strcmp(a, "--profile") == 0) {
    if (dmq_profile_from_name(v, &o->profile) != 0)
      return -1;
    o->profile_name = v;
    return 0;
  }
  if (strcmp(a, "--stall-side") == 0) {
    if (strcmp(v, "rx") != 0 && strcmp(v, "tx") != 0)
      return -1;
    o->stall_rx = strcmp(v, "rx") == 0;
    return 0;
  }
  if (strcmp(a, "--rx-work-ns") == 0)
    return benchopt_parse_u64(v, &o->rx_work_ns);
  if (strcmp(a, "--queue-msgs") == 0)
    return u32_opt(v, &o->queue_msgs);
  if (strcmp(a, "--window") == 0)
    return u32_opt(v, &o->window);
  if (strcmp(a, "--lat-trace-us") == 0)
    return u32_opt(v, &o->lat_trace_us);
  if (strcmp(a, "--stall-ms") == 0)
    return u32_opt(v, &o->stall_ms);
  if (strcmp(a, "--receivers") == 0)
    return int_opt(v, DB_MAX_RECV, &o->receivers);
  if (strcmp(a, "--batch") == 0)
    return int_opt(v, 1000000, &o->batch);
  if (strcmp(a, "--trace-ms") == 0)
    return int_opt(v, 3600000, &o->trace);
  if (strcmp(a, "--pace-us") == 0)
    return int_opt(v, 1000000, &o->pace_us);
  if (strcmp(a, "--pin") == 0)
    return int_opt(v, 1, &o->pin);
  if (strcmp(a, "--hiccup") == 0)
    return int_opt(v, 1, &o->hiccup);
  return -1;
}

int db_parse_args(int argc, char **argv, db_opts_t *o) {
  memset(o, 0, sizeof(*o));
  o->duration_s = 3;
  o->latency_s = 1.5;
  o->lat_load = 0.5;
  o->pace_us = 250;
  o->pin = 1;
  o->stall_rx = 1;
  o->hiccup = 1;
  o->payload[0] = 100;
  o->payload[1] = 1024;
  o->n_payload = 2;
  for (int m = 0; m < M_COUNT; m++)
    o->modes[m] = m != M_RAW_MMSG;
  o->receivers = 10;
  o->batch = 256;
  o->profile = DMQ_PROFILE_LAN;
  o->profile_name = "lan";
  static const benchopt_spec_t spec = {"delivery_bench", usage, opt_flag,
                                       opt_value};
  if (benchopt_parse_args(argc, argv, &spec, o) != 0)
    return -1;
  if (o->duration_s <= 0 || o->latency_s <= 0 || o->lat_load <= 0 ||
      o->lat_load > 1 || o->receivers < 1 || o->batch < 1 || o->pace_us < 10) {
    fprintf(stderr, "delivery_bench: a value out of range\n");
    usage(argv[0]);
    return -1;
  }
  return 0;
}
