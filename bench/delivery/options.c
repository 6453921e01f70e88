/* delivery_bench: the command line, on bench/benchopt.h. Every option takes
 * a value; a bad one prints "delivery_bench: bad option ..." and the usage,
 * and the bench exits with status 2. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchopt.h"
#include "db.h"

const char *const mode_names[M_COUNT] = {
    "raw_udp",           "reliable",     "best_effort", "bcast_reliable",
    "bcast_best_effort", "raw_udp_mmsg", "zmq"};

static void usage(const char *argv0) {
  (void)argv0;
  fprintf(
      stderr,
      "usage: delivery_bench [--duration-s S] [--latency-s S]\n"
      "         [--payload 100,1024] [--modes "
      "raw_udp,zmq,reliable,best_effort,bcast_reliable,\n"
      "                  bcast_best_effort(,raw_udp_mmsg)]\n"
      "         (zmq: ZeroMQ PUSH/PULL over TCP, only when built with libzmq;\n"
      "         this build: %s)\n"
      "         [--receivers N] [--batch N] [--profile lan|wan|local|fast]\n"
      "         [--queue-msgs N] [--window N] [--rx-work-ns NS]\n"
      "         [--trace-ms MS] [--lat-load F] [--pace-us US]\n"
      "         [--lat-trace-us US] [--pin 0|1]\n"
      "         [--stall-ms MS] [--stall-side rx|tx] [--hiccup 0|1]\n"
      "         [--key-hex 64HEX]  (seal every packet with this key)\n",
      DB_ZMQ_BUILT ? "with libzmq" : "without libzmq");
}

static int mode_item(const char *tok, size_t k, void *ctx) {
  db_opts_t *o = ctx;
  (void)k;
  for (int m = 0; m < M_COUNT; m++)
    if (strcmp(tok, mode_names[m]) == 0) {
      if (m == M_ZMQ && !DB_ZMQ_BUILT) {
        fprintf(stderr, "delivery_bench: built without libzmq: no zmq mode\n");
        return -1;
      }
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

/* The numeric options: where each goes in db_opts_t, and its largest
 * value (the smallest is checked after parsing, with the rest). */
typedef enum num_kind { NUM_DOUBLE, NUM_U64, NUM_U32, NUM_INT } num_kind_t;
typedef struct num_opt {
  const char *name;
  num_kind_t kind;
  size_t off;
  uint64_t max;
} num_opt_t;

#define NUM(name, kind, field, max)                                            \
  { name, kind, offsetof(db_opts_t, field), max }
static const num_opt_t g_num_opts[] = {
    NUM("--duration-s", NUM_DOUBLE, duration_s, 0),
    NUM("--latency-s", NUM_DOUBLE, latency_s, 0),
    NUM("--lat-load", NUM_DOUBLE, lat_load, 0),
    NUM("--rx-work-ns", NUM_U64, rx_work_ns, UINT64_MAX),
    NUM("--queue-msgs", NUM_U32, queue_msgs, UINT32_MAX),
    NUM("--window", NUM_U32, window, UINT32_MAX),
    NUM("--lat-trace-us", NUM_U32, lat_trace_us, UINT32_MAX),
    NUM("--stall-ms", NUM_U32, stall_ms, UINT32_MAX),
    NUM("--receivers", NUM_INT, receivers, DB_MAX_RECV),
    NUM("--batch", NUM_INT, batch, 1000000),
    NUM("--trace-ms", NUM_INT, trace, 3600000),
    NUM("--pace-us", NUM_INT, pace_us, 1000000),
    NUM("--pin", NUM_INT, pin, 1),
    NUM("--hiccup", NUM_INT, hiccup, 1),
};
#undef NUM

/* 1 if a is a numeric option (0 or -1 in *rc: parsed and stored, or bad) */
static int num_opt(db_opts_t *o, const char *a, const char *v, int *rc) {
  for (size_t i = 0; i < sizeof(g_num_opts) / sizeof(g_num_opts[0]); i++) {
    const num_opt_t *n = &g_num_opts[i];
    if (strcmp(a, n->name) != 0)
      continue;
    void *dst = (char *)o + n->off;
    uint64_t x = 0;
    *rc = -1;
    if (n->kind == NUM_DOUBLE) {
      *rc = benchopt_parse_double(v, dst);
    } else if (benchopt_parse_u64(v, &x) == 0 && x <= n->max) {
      if (n->kind == NUM_U64)
        *(uint64_t *)dst = x;
      else if (n->kind == NUM_U32)
        *(uint32_t *)dst = (uint32_t)x;
      else
        *(int *)dst = (int)x;
      *rc = 0;
    }
    return 1;
  }
  return 0;
}

static int opt_flag(const char *a, void *ctx) {
  (void)a;
  (void)ctx;
  return 0; /* every option takes a value */
}

static int opt_value(const char *a, const char *v, void *ctx) {
  db_opts_t *o = ctx;
  int rc;
  if (num_opt(o, a, v, &rc))
    return rc;
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
  if (strcmp(a, "--key-hex") == 0) {
    if (dmq_key_from_hex(v, strlen(v), o->key) != 0)
      return -1;
    o->keyed = 1;
    return 0;
  }
  if (strcmp(a, "--stall-side") == 0) {
    if (strcmp(v, "rx") != 0 && strcmp(v, "tx") != 0)
      return -1;
    o->stall_rx = strcmp(v, "rx") == 0;
    return 0;
  }
  return -1;
}

int db_parse_args(int argc, char **argv, db_opts_t *o) {
  static const db_opts_t defaults = {
      .duration_s = 3,
      .latency_s = 1.5,
      .payload = {100, 1024},
      .n_payload = 2,
      .modes = {[M_RAW] = 1,
                [M_RELIABLE] = 1,
                [M_BE] = 1,
                [M_BCAST_REL] = 1,
                [M_BCAST_BE] = 1,
                [M_ZMQ] = DB_ZMQ_BUILT}, /* not M_RAW_MMSG: opt-in */
      .receivers = 10,
      .batch = 256,
      .profile = DMQ_PROFILE_LAN,
      .profile_name = "lan",
      .lat_load = 0.5,
      .pace_us = 250,
      .pin = 1,
      .hiccup = 1,
      .stall_rx = 1,
  };
  *o = defaults;
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
