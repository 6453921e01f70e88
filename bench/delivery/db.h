/* delivery_bench: what its parts share (see delivery_bench.c for what it
 * measures and how).
 *
 *   delivery_bench.c  main: one scenario = a forked receiver + the sender
 *   options.c         command line (bench/benchopt.h)
 *   sender.c          library sender (parent process)
 *   receiver.c        library receiver(s) (child process)
 *   raw.c             raw UDP baseline, both sides
 *   zmq.c             ZeroMQ PUSH/PULL baseline, both sides (DB_HAVE_ZMQ)
 *   runtime.c         a dmq_uv_t set up the way both library sides need it
 *   meter.c           latency histogram and hiccup meter
 *   pipe.c            the command pipes between the two processes
 *   report.c          one JSON line per scenario
 *   util.c            clocks, CPU time, kernel drop counters, pinning
 */
#ifndef DMQ_BENCH_DELIVERY_DB_H
#define DMQ_BENCH_DELIVERY_DB_H

/* The most datagrams one kernel drop can stand for: a GSO run read whole
 * by a UDP_GRO socket (the kernel's UDP_MAX_SEGMENTS). */
#define DB_GRO_MAX_RUN 64

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <dmq/delivery.h>
#include <dmq/uv.h>

#define DB_MAX_LIST 8
#define DB_MAX_RECV 32
#define DB_CHANNEL "bench"
#define DB_MAX_PAYLOAD 65536
/* Latency histogram: 1 us buckets up to this, then one overflow bucket. */
#define DB_HIST_US 200000
/* --lat-trace-us: milliseconds of receive time traced per phase */
#define DB_TRACE_MS 120000
#define DB_NS_PER_S 1000000000ULL
#define DB_NS_PER_US 1000ULL
#define DB_NS_PER_MS 1000000ULL
/* Waiting for the cluster to form / for the child to answer. */
#define DB_SETUP_MS 20000
#define DB_ANSWER_MS 30000
/* Reliable: longest drain after the sending phase. */
#define DB_DRAIN_MS 60000
/* Best effort: the receiver's count is polled this often until it stops. */
#define DB_SETTLE_MS 30
/* Best effort: tail probes sent at most this many times, each waited for
 * at most DB_TAIL_POLLS x DB_SETTLE_MS. */
#define DB_TAIL_TRIES 5
#define DB_TAIL_POLLS 10
/* db_hdr_t.flags: a tail probe (not a measured message) */
#define DB_HDR_TAIL 1u
#define DB_POLL_MS 2
#define DB_SOCKBUF (4 * 1024 * 1024)
#define DB_LINE 1024
#define DB_MAGIC 0x646d7162u /* "dmqb" */
/* raw_udp_mmsg: datagrams per sendmmsg() / recvmmsg() call (the library's
 * UDP transport reads 20 per recvmmsg through libuv). */
#define DB_MMSG_TX 16
#define DB_MMSG_RX 20
#define DB_RAW_SLOT 2048

typedef enum db_mode {
  M_RAW = 0,
  M_RELIABLE,
  M_BE,
  M_BCAST_REL,
  M_BCAST_BE,
  M_RAW_MMSG, /* opt-in: what send-side batching buys */
  M_ZMQ,      /* ZeroMQ PUSH/PULL over TCP (only with DB_HAVE_ZMQ) */
  M_COUNT
} db_mode_t;

#ifdef DB_HAVE_ZMQ
#define DB_ZMQ_BUILT 1
#else
#define DB_ZMQ_BUILT 0
#endif

/* A baseline without libdmq (raw UDP, ZeroMQ): no library counters. */
#define DB_BASELINE(m) ((m) == M_RAW || (m) == M_RAW_MMSG || (m) == M_ZMQ)

extern const char *const mode_names[M_COUNT]; /* options.c */

typedef struct db_opts {
  double duration_s, latency_s;
  size_t payload[DB_MAX_LIST];
  size_t n_payload;
  int modes[M_COUNT];
  int receivers;
  int batch;
  dmq_profile_t profile;
  const char *profile_name;
  uint32_t queue_msgs, window;
  uint64_t rx_work_ns;   /* receiver: busy work per message (a slow app) */
  int trace;             /* sender queue trace on stderr */
  double lat_load;       /* latency phase rate, fraction of the max: 0.5 */
  int pace_us;           /* latency phase: send what is due this often */
  uint32_t lat_trace_us; /* receiver: trace ms with a worse latency */
  int pin;               /* sender on CPU 0, receiver on CPU 1 */
  int hiccup;            /* latency phase: hiccup meter in both processes */
  uint32_t stall_ms;     /* latency phase: one injected stall this long */
  int stall_rx;          /* ... of the receiver (1) or the sender (0) */
  int keyed;             /* --key-hex: both sides seal (mode required) */
  uint8_t key[DMQ_KEY_SIZE];
} db_opts_t;

/* Every message starts with this (payload >= sizeof). */
typedef struct db_hdr {
  uint64_t ts_ns; /* CLOCK_MONOTONIC at the send call */
  uint64_t seq;   /* per sender (unicast: per destination) */
  uint32_t magic;
  uint32_t flags; /* DB_HDR_TAIL */
} db_hdr_t;

/* One phase as the receiver side saw it: the answer to REPORT, one line
 * "R <field>..." in this order (pipe.c writes and reads it from this one
 * list). */
#define DB_RX_REPORT_FIELDS(X)                                                 \
  X(count)                                                                     \
  X(last_ns)                                                                   \
  X(cpu_ns)                                                                    \
  X(p50_ns)                                                                    \
  X(p99_ns)                                                                    \
  X(lat_n)                                                                     \
  X(kdrops)                                                                    \
  X(received)                                                                  \
  X(delivered)                                                                 \
  X(rxdrops)                                                                   \
  X(disorder)                                                                  \
  X(events)                                                                    \
  X(lost_be)    /* the library's rx_lost_be */                                 \
  X(tails)      /* tail probes received (not in count) */                      \
  X(hic_max_ns) /* the receiver's hiccup meter */                              \
  X(hic_ns)                                                                    \
  X(hic_work_ns)                                                               \
  X(hic_work_n)

typedef struct db_rx_report {
#define DB_RX_REPORT_FIELD(f) uint64_t f;
  DB_RX_REPORT_FIELDS(DB_RX_REPORT_FIELD)
#undef DB_RX_REPORT_FIELD
} db_rx_report_t;

/* Hiccup meter (--hiccup, latency phase): a thread of the process that
 * sleeps DB_HIC_TICK_NS at a time and records by how much it overslept.
 * It shares the process's CPU (pinned or not) but not its work, and runs
 * SCHED_FIFO (when allowed: hiccup_rt in the output), so it preempts the
 * process's busy thread as soon as it wakes: an oversleep of
 * DB_HIC_STALL_NS or more then means the CPU did not run the process at
 * all (the host descheduled the vCPU, or the kernel was busy elsewhere), a
 * stall of the environment that a latency figure of the same phase
 * includes. As an ordinary thread it overslept up to 4.7 ms next to a
 * sender at 99 % CPU: the scheduler let the busy thread finish its slice.
 * max: the longest oversleep; stall: the sum of those of DB_HIC_STALL_NS or
 * more. After each sleep it also times a fixed loop (DB_HIC_WORK steps):
 * the mean against the fastest of DB_HIC_REF_RUNS runs at startup is the
 * speed of the CPU during the phase (cpu_speed_pct), which drops when the
 * host gives the vCPU less (no steal time is reported on this VM): the
 * latency phase's "half load" is half of what phase 1 measured, and at 70 %
 * speed it is 70 % of what the CPU can do then. */
#define DB_HIC_TICK_NS 1000000L
#define DB_HIC_STALL_NS 2000000ULL
#define DB_HIC_WORK 4000
#define DB_HIC_REF_RUNS 300
typedef struct db_hic {
  pthread_t th;
  atomic_int run;
  _Atomic uint64_t max_ns, stall_ns, work_ns, work_n;
  int started, rt;
} db_hic_t;

/* Latency histogram. */
typedef struct db_hist {
  uint32_t *b; /* DB_HIST_US + 1 buckets */
  uint64_t n;
  /* --lat-trace-us: per ms of receive time since the first sample, the
   * samples and the worst latency (us); NULL when off */
  uint32_t *tl_n, *tl_max;
  uint64_t tl_t0;
  uint32_t tl_thresh_us;
} db_hist_t;

typedef struct db_phase {
  uint64_t t0, t1;   /* first send, end of the phase (drained) */
  uint64_t cpu;      /* sender CPU over [t0, t1] */
  uint64_t attempts; /* send calls */
  uint64_t sent;     /* accepted (x receivers for broadcasts) */
  uint64_t eagain, errors;
  uint64_t delivered_out, failed_out; /* reliable outcomes (copies) */
  uint64_t dropped_be, sent_be, retransmits, tx_failed;
  uint64_t tails; /* best effort: tail probe copies accepted */
  uint64_t pkts_out, data_msgs;
  uint64_t softnet;
  uint64_t tx_kdrops; /* datagrams dropped on the sender's socket (acks) */
  uint64_t tx_events; /* SUSPECT/DEAD events seen by the sender */
  uint64_t hic_max_ns, hic_ns; /* the sender's hiccup meter */
  uint64_t hic_work_ns, hic_work_n;
  db_rx_report_t rx;
} db_phase_t;

/* util.c */
uint64_t mono_ns(void);
uint64_t cpu_ns(void);
void stall(uint32_t ms);
void die(const char *what);
uint64_t socket_drops(const uint16_t *ports, int n);
uint64_t softnet_drops(void);
double loadavg(void);
uint16_t port_of(const char *addr);
void pin_cpu(int cpu);

/* meter.c */
extern int hic_rt_seen; /* -1: no meter ran, else its last rt */
void hic_calibrate(void);
double hic_speed(uint64_t work_ns, uint64_t work_n);
void hic_start(db_hic_t *h, int on);
void hic_stop(db_hic_t *h);
/* The figures since hic_start() */
void hic_figures(db_hic_t *h, uint64_t *max_ns, uint64_t *stall_ns,
                 uint64_t *work_ns, uint64_t *work_n);
void hist_init(db_hist_t *h, uint32_t trace_us);
void hist_free(db_hist_t *h);
void hist_add(db_hist_t *h, uint64_t ts_ns);
void hist_trace(const db_hist_t *h, const char *who);
uint64_t hist_pct(const db_hist_t *h, double p);
void hist_reset(db_hist_t *h);

/* pipe.c */
void line_write(int fd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int line_read(int fd, char *out, size_t cap, int timeout_ms);
void expect_line(int fd, char *out, size_t cap);
void report_write(int fd, const db_rx_report_t *r);
void settle(int in, int out);
void child_reset(int in, int out, int lat_on);
void child_report(int in, int out, db_rx_report_t *r);
/* Send n messages of the latency phase, counted in ph. */
typedef void (*db_send_fn)(void *ctx, uint64_t n, db_phase_t *ph);
void paced_latency(const db_opts_t *o, int in, int out, const db_phase_t *ph,
                   db_phase_t *lat, db_send_fn send, void *ctx);

/* runtime.c: a runtime on 127.0.0.1 (any port), delivery configured */
dmq_uv_t *db_runtime_new(const db_opts_t *o, uv_loop_t *loop, const char *name);

/* raw.c, receiver.c, sender.c: the two sides of a scenario */
void raw_child(const db_opts_t *o, int in, int out, int mmsg);
void raw_parent(const db_opts_t *o, size_t payload, int mmsg, int in, int out,
                db_phase_t *ph, db_phase_t *lat);
void lib_child(const db_opts_t *o, int nrecv, int in, int out);
void lib_parent(const db_opts_t *o, db_mode_t mode, size_t payload, int nrecv,
                int in, int out, db_phase_t *ph, db_phase_t *lat);

/* zmq.c (only with DB_HAVE_ZMQ): the ZeroMQ baseline */
void zmq_child(const db_opts_t *o, int in, int out);
void zmq_parent(const db_opts_t *o, size_t payload, int in, int out,
                db_phase_t *ph, db_phase_t *lat);

/* options.c */
int db_parse_args(int argc, char **argv, db_opts_t *o);

/* report.c: the scenario's JSON line; returns its msgs_per_s */
double report_scenario(const db_opts_t *o, db_mode_t mode, size_t payload,
                       int nrecv, double raw_rate, double zmq_rate,
                       const db_phase_t *ph, const db_phase_t *lat);

#endif
