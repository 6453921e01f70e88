/* delivery_bench: queued delivery (dmq/delivery.h) throughput, latency and
 * CPU over real sockets on 127.0.0.1, against a raw UDP baseline.
 *
 * Every scenario runs in two processes, so that each side has its own core
 * (on a 2-core machine) and its own CPU account: the parent is the sender,
 * a forked child the receiver(s), each with its own libuv loop and its own
 * dmq_uv_t runtime(s). They talk over two pipes (one text line per
 * command/answer). Scenarios, per payload size:
 *   raw_udp            no library: sendto() in a tight loop / poll()+recv()
 *                      until EAGAIN, one datagram per message
 *   best_effort        dmq_send(DMQ_SEND_BEST_EFFORT) to one receiver
 *   reliable           dmq_send(DMQ_SEND_RELIABLE) to one receiver
 *   bcast_best_effort  dmq_broadcast() to --receivers receivers (all in one
 *   bcast_reliable     child process, one loop)
 *
 * Phase 1, throughput: the sender sends as fast as the API accepts for
 * --duration-s (an idle handle sends --batch messages per loop turn; on
 * DMQ_EAGAIN it stops until the writable callback), then waits until every
 * reliable outcome is in (best effort: until the receiver's count stops
 * moving). msgs_per_s = messages delivered to the receivers' callbacks
 * (all receivers together for a broadcast) / (last receipt - first send).
 * cpu_pct = user+sys CPU of both processes over the phase / its wall time,
 * in % of one core (getrusage RUSAGE_SELF in each process).
 *
 * Phase 2, latency: a paced sender sends at half the phase-1 rate
 * (--lat-load 0.5) for --latency-s: every --pace-us (a timerfd; raw:
 * clock_nanosleep) it sends what is due for a constant rate. Every message
 * carries its CLOCK_MONOTONIC send time (one clock for both processes);
 * the receiver histograms now - sent (1 us buckets) and reports p50/p99.
 * The tick sets the burst size: at 1 ms pacing with a uv timer (which
 * fires about every 2.2 ms: libuv's clock has ms grain and the repeat
 * counts from the loop's time) a burst was ~2,700 messages and p99 was
 * the time to drain it (0.7-1.3 ms); at 100 us the wake-ups of both
 * processes cost the sender ~90% of a core on this VM at half load,
 * leaving no headroom. 250 us gives bursts of ~250 messages at ~55%.
 * lat_cpu_*_pct: CPU of each side during the latency phase.
 * --pin 1 (default) puts the sender on CPU 0 and the receiver(s) on CPU 1:
 * between phases the two wake each other through the command pipes, and
 * the scheduler's wake-affine placement then often ran both on one CPU
 * for the first 10-30 ms of the next phase (p99 0.4-0.65 ms unpinned vs
 * 0.16-0.2 ms pinned, best effort 100 B, three alternated runs each).
 * --lat-trace-us US prints, on stderr, each millisecond of the latency
 * phase (receive time) whose worst latency exceeded US.
 *
 * Best-effort accounting: sent = accepted sends (x receivers for a
 * broadcast) = delivered + dropped_be (sender: not sent) + rx_lib_drops
 * (receiver library: no channel, paused, expired, unknown sender, stale)
 * + net_lost (put on the wire by the sender, never read by the receiver:
 * sender sent_be - receivers' received). The receivers' library counts
 * net_lost itself from the gaps in the sender's best-effort numbers:
 * rx_lost_be. A gap is only known once a later message arrives, so each
 * best-effort phase ends, after the drain, with a tail probe: one more
 * message per destination, flagged in the bench header and not counted as
 * a delivery, resent until every receiver has one (tail_probes: copies
 * sent; they are part of sent_be, received and delivered_app, and the
 * identities account for them). net_lost is also explained by the
 * kernel's counters: kernel_drops = datagrams dropped on the receivers'
 * sockets (/proc/net/udp "drops") and softnet_drops (/proc/net/softnet_stat,
 * system-wide backlog drops); net_lost_est = those datagrams x the
 * messages per datagram the sender packed (sender_kernel_drops: datagrams
 * dropped on the sender's own socket: acks of reliable traffic, probes).
 * "accounted" is true when the identity holds exactly, the library's
 * rx_lost_be equals net_lost, net_lost is 0 exactly when no datagram was
 * dropped by the kernel, and net_lost is within 2% of net_lost_est.
 * --rx-work-ns N makes the receiver's callback busy-wait N ns per message
 * (a slow application): the receiver becomes the bottleneck, best effort
 * loses messages in the kernel, reliable senders hit DMQ_EAGAIN.
 *
 * raw_udp_mmsg (opt-in, not in the default --modes) is the raw baseline
 * with sendmmsg() batches of 16 and recvmmsg() batches of 20: what batching
 * the send side would buy on this machine.
 *
 * Output: one JSON object per line (after the raw line of a payload, every
 * line carries ratio_to_raw = msgs_per_s / raw msgs_per_s of the same
 * payload; null when raw_udp was not run).
 *
 * Usage: delivery_bench [--duration-s S] [--latency-s S] [--payload 100,1024]
 *          [--modes raw_udp,reliable,best_effort,bcast_reliable,
 *                   bcast_best_effort(,raw_udp_mmsg)]
 *          [--receivers N] [--batch N] [--profile lan|wan|local|fast]
 *          [--queue-msgs N] [--window N] [--rx-work-ns NS] [--trace-ms MS]
 *          [--lat-load F] [--pace-us US] [--lat-trace-us US] [--pin 0|1]
 *          [--stall-ms MS] [--stall-side rx|tx] [--hiccup 0|1]
 * --trace-ms MS prints the sender's queue (queued, in flight, acks) on
 * stderr every MS ms of each library phase. --stall-ms MS stops the
 * receiver (or, --stall-side tx, the sender) once for MS ms halfway through
 * the latency phase. --hiccup 0 turns off the hiccup meter (see hic_main).
 * Defaults: 3 s, 1.5 s, 100,1024, the five modes above, 10 receivers,
 * batch 256, lan, the library's queue and window, pace 250 us. The
 * default invocation
 * takes about 55 s. Exit status 2 on a setup failure (message on stderr).
 */
#define _GNU_SOURCE /* sendmmsg, recvmmsg */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

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
  M_COUNT
} db_mode_t;

static const char *const mode_names[M_COUNT] = {
    "raw_udp",        "reliable",          "best_effort",
    "bcast_reliable", "bcast_best_effort", "raw_udp_mmsg"};

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
} db_opts_t;

/* Every message starts with this (payload >= sizeof). */
typedef struct db_hdr {
  uint64_t ts_ns; /* CLOCK_MONOTONIC at the send call */
  uint64_t seq;   /* per sender (unicast: per destination) */
  uint32_t magic;
  uint32_t flags; /* DB_HDR_TAIL */
} db_hdr_t;

/* One phase as the receiver side saw it (answer to REPORT). */
typedef struct db_rx_report {
  uint64_t count, last_ns, cpu_ns, p50_ns, p99_ns, lat_n, kdrops;
  uint64_t received, delivered, rxdrops, disorder, events;
  uint64_t lost_be;            /* the library's rx_lost_be */
  uint64_t tails;              /* tail probes received (not in count) */
  uint64_t hic_max_ns, hic_ns; /* the receiver's hiccup meter */
  uint64_t hic_work_ns, hic_work_n;
} db_rx_report_t;

/* ---------------------------------------------------------------------- */
/* small helpers                                                           */

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * DB_NS_PER_S + (uint64_t)ts.tv_nsec;
}

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

static int hic_rt_seen = -1; /* -1: no meter ran, else its last rt */
static uint64_t hic_ref_ns;  /* fastest DB_HIC_WORK loop at startup */

/* The fixed loop: its time in ns. */
static uint64_t hic_work(void) {
  volatile uint64_t x = 1;
  uint64_t t = mono_ns();
  for (int i = 0; i < DB_HIC_WORK; i++)
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
  return mono_ns() - t;
}

static void hic_calibrate(void) {
  hic_ref_ns = UINT64_MAX;
  for (int i = 0; i < DB_HIC_REF_RUNS; i++) {
    uint64_t w = hic_work();
    if (w < hic_ref_ns)
      hic_ref_ns = w;
  }
}

/* Mean speed of the CPU in the meter's phase, % of the reference. */
static double hic_speed(uint64_t work_ns, uint64_t work_n) {
  return work_ns > 0
             ? 100.0 * (double)hic_ref_ns * (double)work_n / (double)work_ns
             : 0.0 / 0.0;
}

static void *hic_main(void *arg) {
  db_hic_t *h = arg;
  while (atomic_load(&h->run)) {
    uint64_t t = mono_ns();
    struct timespec ts = {0, DB_HIC_TICK_NS};
    nanosleep(&ts, NULL);
    uint64_t d = mono_ns() - t;
    d = d > (uint64_t)DB_HIC_TICK_NS ? d - (uint64_t)DB_HIC_TICK_NS : 0;
    if (d > atomic_load(&h->max_ns))
      atomic_store(&h->max_ns, d);
    if (d >= DB_HIC_STALL_NS)
      atomic_fetch_add(&h->stall_ns, d);
    atomic_fetch_add(&h->work_ns, hic_work());
    atomic_fetch_add(&h->work_n, 1);
  }
  return NULL;
}

/* Reset the figures; start the thread when on (and not running). */
static void hic_start(db_hic_t *h, int on) {
  atomic_store(&h->max_ns, 0);
  atomic_store(&h->stall_ns, 0);
  atomic_store(&h->work_ns, 0);
  atomic_store(&h->work_n, 0);
  if (!on || h->started)
    return;
  atomic_store(&h->run, 1);
  pthread_attr_t a;
  struct sched_param sp = {.sched_priority = 1};
  h->rt = 0;
  if (pthread_attr_init(&a) == 0) {
    h->rt = pthread_attr_setinheritsched(&a, PTHREAD_EXPLICIT_SCHED) == 0 &&
            pthread_attr_setschedpolicy(&a, SCHED_FIFO) == 0 &&
            pthread_attr_setschedparam(&a, &sp) == 0 &&
            pthread_create(&h->th, &a, hic_main, h) == 0;
    pthread_attr_destroy(&a);
  }
  h->started = h->rt || pthread_create(&h->th, NULL, hic_main, h) == 0;
  hic_rt_seen = h->rt;
}

static void hic_stop(db_hic_t *h) {
  if (!h->started)
    return;
  atomic_store(&h->run, 0);
  pthread_join(h->th, NULL);
  h->started = 0;
}

/* --stall-ms: the process does not run for ms (as when the host preempts
 * it), then carries on with whatever piled up meanwhile. */
static void stall(uint32_t ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static uint64_t cpu_ns(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) *
             DB_NS_PER_S +
         ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) *
             DB_NS_PER_US;
}

static void die(const char *what) {
  fprintf(stderr, "delivery_bench: %s\n", what);
  exit(2);
}

/* Write one line (short: atomic on a pipe). */
static void line_write(int fd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void line_write(int fd, const char *fmt, ...) {
  char buf[DB_LINE];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= sizeof(buf) - 1)
    die("line too long");
  buf[n++] = '\n';
  size_t off = 0;
  while (off < (size_t)n) {
    ssize_t w = write(fd, buf + off, (size_t)n - off);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      die("pipe write failed");
    off += (size_t)w;
  }
}

/* Read one line, waiting at most timeout_ms (-1: forever). 1 if a line was
 * read, 0 on timeout; dies on EOF. */
static int line_read(int fd, char *out, size_t cap, int timeout_ms) {
  size_t n = 0;
  for (;;) {
    struct pollfd p = {fd, POLLIN, 0};
    int r = poll(&p, 1, n == 0 ? timeout_ms : DB_ANSWER_MS);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      die("poll failed");
    if (r == 0) {
      if (n == 0)
        return 0;
      die("partial line");
    }
    char ch;
    ssize_t k = read(fd, &ch, 1);
    if (k < 0 && (errno == EINTR || errno == EAGAIN))
      continue;
    if (k <= 0)
      die("the other process went away");
    if (ch == '\n') {
      out[n] = '\0';
      return 1;
    }
    if (n + 1 < cap)
      out[n++] = ch;
  }
}

static void expect_line(int fd, char *out, size_t cap) {
  if (!line_read(fd, out, cap, DB_ANSWER_MS))
    die("no answer from the other process");
}

/* Sum of the "drops" column of /proc/net/udp for sockets bound to
 * 127.0.0.1 on one of ports[]. */
static uint64_t socket_drops(const uint16_t *ports, int n) {
  FILE *f = fopen("/proc/net/udp", "r");
  if (f == NULL)
    return 0;
  char line[512];
  uint64_t sum = 0;
  if (fgets(line, sizeof(line), f) == NULL) { /* header */
    fclose(f);
    return 0;
  }
  while (fgets(line, sizeof(line), f) != NULL) {
    unsigned ip, port;
    char *colon = strchr(line, ':');
    if (colon == NULL || sscanf(colon + 1, " %8X:%4X", &ip, &port) != 2)
      continue;
    int mine = 0;
    for (int i = 0; i < n; i++)
      mine |= port == ports[i];
    if (!mine)
      continue;
    /* drops is the last field (lines are padded with spaces) */
    char *last = NULL, *save = NULL;
    for (char *tok = strtok_r(line, " \t\n", &save); tok != NULL;
         tok = strtok_r(NULL, " \t\n", &save))
      last = tok;
    if (last != NULL)
      sum += strtoull(last, NULL, 10);
  }
  fclose(f);
  return sum;
}

/* System-wide packets dropped from the per-CPU input backlog (loopback
 * traffic goes through it): second column of /proc/net/softnet_stat. */
static uint64_t softnet_drops(void) {
  FILE *f = fopen("/proc/net/softnet_stat", "r");
  if (f == NULL)
    return 0;
  char line[512];
  uint64_t sum = 0;
  while (fgets(line, sizeof(line), f) != NULL) {
    unsigned long long processed, dropped;
    if (sscanf(line, "%llx %llx", &processed, &dropped) == 2)
      sum += dropped;
  }
  fclose(f);
  return sum;
}

/* 1-minute load average (other work on the machine skews everything). */
static double loadavg(void) {
  double l = 0.0 / 0.0;
  FILE *f = fopen("/proc/loadavg", "r");
  if (f != NULL) {
    if (fscanf(f, "%lf", &l) != 1)
      l = 0.0 / 0.0;
    fclose(f);
  }
  return l;
}

static uint16_t port_of(const char *addr) {
  const char *c = strrchr(addr, ':');
  return c != NULL ? (uint16_t)atoi(c + 1) : 0;
}

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

static void hist_init(db_hist_t *h, uint32_t trace_us) {
  memset(h, 0, sizeof(*h));
  h->b = calloc(DB_HIST_US + 1, sizeof(uint32_t));
  if (trace_us > 0) {
    h->tl_n = calloc(DB_TRACE_MS, sizeof(uint32_t));
    h->tl_max = calloc(DB_TRACE_MS, sizeof(uint32_t));
    h->tl_thresh_us = trace_us;
    if (h->tl_n == NULL || h->tl_max == NULL)
      h->b = NULL;
  }
  if (h->b == NULL)
    die("out of memory");
}

static void hist_free(db_hist_t *h) {
  free(h->b);
  free(h->tl_n);
  free(h->tl_max);
}

/* One latency sample: sent at ts_ns (CLOCK_MONOTONIC), received now. */
static void hist_add(db_hist_t *h, uint64_t ts_ns) {
  uint64_t now = mono_ns();
  uint64_t us = now > ts_ns ? (now - ts_ns) / DB_NS_PER_US : 0;
  h->b[us < DB_HIST_US ? us : DB_HIST_US]++;
  h->n++;
  if (h->tl_n != NULL) {
    if (h->tl_t0 == 0)
      h->tl_t0 = now;
    uint64_t ms = (now - h->tl_t0) / DB_NS_PER_MS;
    if (ms < DB_TRACE_MS) {
      h->tl_n[ms]++;
      if (us > h->tl_max[ms])
        h->tl_max[ms] = (uint32_t)(us < UINT32_MAX ? us : UINT32_MAX);
    }
  }
}

/* --lat-trace-us: the milliseconds whose worst latency passed the
 * threshold, on stderr. */
static void hist_trace(const db_hist_t *h, const char *who) {
  if (h->tl_n == NULL || h->n == 0)
    return;
  for (uint64_t i = 0; i < DB_TRACE_MS; i++)
    if (h->tl_max[i] > h->tl_thresh_us)
      fprintf(stderr, "lat-trace %s: ms %" PRIu64 " samples %u max %u us\n",
              who, i, h->tl_n[i], h->tl_max[i]);
}

static uint64_t hist_pct(const db_hist_t *h, double p) {
  if (h->n == 0)
    return 0;
  uint64_t want = (uint64_t)(p * (double)h->n);
  if (want >= h->n)
    want = h->n - 1;
  uint64_t acc = 0;
  for (uint64_t i = 0; i <= DB_HIST_US; i++) {
    acc += h->b[i];
    if (acc > want)
      return i * DB_NS_PER_US + DB_NS_PER_US / 2;
  }
  return DB_HIST_US * DB_NS_PER_US;
}

static void hist_reset(db_hist_t *h) {
  memset(h->b, 0, (DB_HIST_US + 1) * sizeof(*h->b));
  h->n = 0;
  if (h->tl_n != NULL) {
    memset(h->tl_n, 0, DB_TRACE_MS * sizeof(*h->tl_n));
    memset(h->tl_max, 0, DB_TRACE_MS * sizeof(*h->tl_max));
    h->tl_t0 = 0;
  }
}

/* ---------------------------------------------------------------------- */
/* raw UDP                                                                 */

static int raw_socket(void) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0)
    die("socket");
  int sz = DB_SOCKBUF;
  (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
  (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
  return fd;
}

/* Child: poll() the socket and the command pipe; read until EAGAIN with
 * recv() (raw_udp) or recvmmsg() (raw_udp_mmsg, DB_MMSG_RX per call, like
 * the library's UDP transport). */
static void raw_child(const db_opts_t *o, int in, int out, int mmsg) {
  int fd = raw_socket();
  struct sockaddr_in sin;
  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0)
    die("bind");
  socklen_t sl = sizeof(sin);
  getsockname(fd, (struct sockaddr *)&sin, &sl);
  uint16_t port = ntohs(sin.sin_port);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  db_hist_t h;
  hist_init(&h, o->lat_trace_us);
  char *bufs = malloc((size_t)DB_MMSG_RX * DB_RAW_SLOT);
  struct mmsghdr mh[DB_MMSG_RX];
  struct iovec iov[DB_MMSG_RX];
  if (bufs == NULL)
    die("out of memory");
  for (int i = 0; i < DB_MMSG_RX; i++) {
    iov[i].iov_base = bufs + (size_t)i * DB_RAW_SLOT;
    iov[i].iov_len = DB_RAW_SLOT;
    memset(&mh[i], 0, sizeof(mh[i]));
    mh[i].msg_hdr.msg_iov = &iov[i];
    mh[i].msg_hdr.msg_iovlen = 1;
  }
  line_write(out, "ADDR 127.0.0.1:%u", (unsigned)port);
  line_write(out, "READY");
  uint64_t count = 0, last_ns = 0, cpu0 = 0, kd0 = 0;
  int lat_on = 0;
  db_hic_t hic;
  memset(&hic, 0, sizeof(hic));
  for (;;) {
    struct pollfd p[2] = {{fd, POLLIN, 0}, {in, POLLIN, 0}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR)
        continue;
      die("poll");
    }
    if (p[0].revents & POLLIN) {
      uint64_t got = 0;
      for (;;) {
        int k;
        if (mmsg) {
          k = recvmmsg(fd, mh, DB_MMSG_RX, 0, NULL);
        } else {
          ssize_t r = recv(fd, bufs, DB_RAW_SLOT, 0);
          mh[0].msg_len = r > 0 ? (unsigned)r : 0;
          k = r < 0 ? -1 : 1;
        }
        if (k <= 0)
          break;
        got += (uint64_t)k;
        for (int i = 0; lat_on && i < k; i++)
          if (mh[i].msg_len >= sizeof(db_hdr_t)) {
            db_hdr_t hd;
            memcpy(&hd, iov[i].iov_base, sizeof(hd));
            hist_add(&h, hd.ts_ns);
          }
      }
      if (got > 0) {
        count += got;
        last_ns = mono_ns();
      }
    }
    if (p[1].revents & (POLLIN | POLLHUP)) {
      char cmd[DB_LINE];
      if (!line_read(in, cmd, sizeof(cmd), 0))
        continue;
      if (strncmp(cmd, "RESET", 5) == 0) {
        lat_on = atoi(cmd + 6);
        count = last_ns = 0;
        hist_reset(&h);
        hic_start(&hic, lat_on && o->hiccup);
        cpu0 = cpu_ns();
        kd0 = socket_drops(&port, 1);
        line_write(out, "OK");
      } else if (strcmp(cmd, "COUNT") == 0) {
        line_write(out, "C %" PRIu64, count);
      } else if (strcmp(cmd, "REPORT") == 0) {
        hist_trace(&h, mmsg ? "raw_udp_mmsg" : "raw_udp");
        hic_stop(&hic);
        line_write(out,
                   "R %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64
                   " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64
                   " %" PRIu64 " %" PRIu64 " 0 0 %" PRIu64 " %" PRIu64
                   " %" PRIu64 " %" PRIu64,
                   count, last_ns, cpu_ns() - cpu0, hist_pct(&h, 0.50),
                   hist_pct(&h, 0.99), h.n, socket_drops(&port, 1) - kd0, count,
                   count, (uint64_t)0, (uint64_t)0, (uint64_t)0,
                   (uint64_t)atomic_load(&hic.max_ns),
                   (uint64_t)atomic_load(&hic.stall_ns),
                   (uint64_t)atomic_load(&hic.work_ns),
                   (uint64_t)atomic_load(&hic.work_n));
      } else if (strcmp(cmd, "QUIT") == 0) {
        break;
      }
    }
  }
  hic_stop(&hic);
  free(bufs);
  hist_free(&h);
  close(fd);
}

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

static void parse_report(const char *line, db_rx_report_t *r) {
  if (sscanf(line,
             "R %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64
             " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64
             " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64
             " %" SCNu64 " %" SCNu64 " %" SCNu64,
             &r->count, &r->last_ns, &r->cpu_ns, &r->p50_ns, &r->p99_ns,
             &r->lat_n, &r->kdrops, &r->received, &r->delivered, &r->rxdrops,
             &r->disorder, &r->events, &r->lost_be, &r->tails, &r->hic_max_ns,
             &r->hic_ns, &r->hic_work_ns, &r->hic_work_n) != 18)
    die("bad report");
}

/* Ask the child for its count until it stops moving. */
static void settle(int in, int out) {
  char l[DB_LINE];
  uint64_t prev = UINT64_MAX;
  for (;;) {
    line_write(out, "COUNT");
    expect_line(in, l, sizeof(l));
    uint64_t c = strtoull(l + 2, NULL, 10);
    if (c == prev)
      return;
    prev = c;
    struct timespec ts = {0, DB_SETTLE_MS * (long)DB_NS_PER_MS};
    nanosleep(&ts, NULL);
  }
}

static void child_reset(int in, int out, int lat_on) {
  char l[DB_LINE];
  line_write(out, "RESET %d", lat_on);
  expect_line(in, l, sizeof(l));
  if (strcmp(l, "OK") != 0)
    die("bad RESET answer");
}

static void child_report(int in, int out, db_rx_report_t *r) {
  char l[DB_LINE];
  line_write(out, "REPORT");
  expect_line(in, l, sizeof(l));
  parse_report(l, r);
}

static void raw_fill(char *buf, size_t len, uint64_t seq) {
  db_hdr_t hd = {mono_ns(), seq, DB_MAGIC, 0};
  memcpy(buf, &hd, sizeof(hd) < len ? sizeof(hd) : len);
}

typedef struct raw_tx {
  int fd, mmsg;
  size_t payload;
  struct sockaddr_in to;
  char *bufs; /* DB_MMSG_TX payloads */
  struct mmsghdr mh[DB_MMSG_TX];
  struct iovec iov[DB_MMSG_TX];
  uint64_t seq;
} raw_tx_t;

/* Send up to `want` datagrams: one sendto() each, or sendmmsg() batches of
 * DB_MMSG_TX. Returns how many the kernel took. */
static uint64_t raw_send(raw_tx_t *r, uint64_t want, db_phase_t *ph) {
  uint64_t done = 0;
  while (done < want) {
    unsigned k = r->mmsg ? (unsigned)(want - done < DB_MMSG_TX ? want - done
                                                               : DB_MMSG_TX)
                         : 1;
    for (unsigned i = 0; i < k; i++)
      raw_fill(r->bufs + (size_t)i * r->payload, r->payload, r->seq + i);
    int got;
    if (r->mmsg) {
      got = sendmmsg(r->fd, r->mh, k, 0);
    } else {
      got = sendto(r->fd, r->bufs, r->payload, 0, (struct sockaddr *)&r->to,
                   sizeof(r->to)) == (ssize_t)r->payload
                ? 1
                : -1;
    }
    ph->attempts += k;
    if (got <= 0) {
      ph->errors += k;
      break;
    }
    ph->errors += k - (unsigned)got;
    ph->sent += (uint64_t)got;
    r->seq += (uint64_t)got;
    done += (uint64_t)got;
    if ((unsigned)got < k)
      break;
  }
  return done;
}

/* Parent side of raw_udp / raw_udp_mmsg: a tight send loop, then a paced
 * one (a 1 ms clock_nanosleep tick sending what is due). */
static void raw_parent(const db_opts_t *o, size_t payload, int mmsg, int in,
                       int out, db_phase_t *ph, db_phase_t *lat) {
  char l[DB_LINE];
  expect_line(in, l, sizeof(l));
  if (strncmp(l, "ADDR ", 5) != 0)
    die("bad ADDR");
  uint16_t port = port_of(l + 5);
  expect_line(in, l, sizeof(l)); /* READY */
  raw_tx_t *r = calloc(1, sizeof(*r));
  if (r == NULL)
    die("out of memory");
  r->fd = raw_socket();
  r->mmsg = mmsg;
  r->payload = payload;
  r->to.sin_family = AF_INET;
  r->to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  r->to.sin_port = htons(port);
  r->bufs = calloc(DB_MMSG_TX, payload);
  if (r->bufs == NULL)
    die("out of memory");
  for (int i = 0; i < DB_MMSG_TX; i++) {
    r->iov[i].iov_base = r->bufs + (size_t)i * payload;
    r->iov[i].iov_len = payload;
    r->mh[i].msg_hdr.msg_iov = &r->iov[i];
    r->mh[i].msg_hdr.msg_iovlen = 1;
    r->mh[i].msg_hdr.msg_name = &r->to;
    r->mh[i].msg_hdr.msg_namelen = sizeof(r->to);
  }

  /* throughput */
  memset(ph, 0, sizeof(*ph));
  child_reset(in, out, 0);
  uint64_t sn0 = softnet_drops();
  uint64_t c0 = cpu_ns();
  ph->t0 = mono_ns();
  uint64_t end = ph->t0 + (uint64_t)(o->duration_s * (double)DB_NS_PER_S);
  do
    raw_send(r, 4 * DB_MMSG_TX, ph);
  while (mono_ns() < end);
  settle(in, out);
  ph->t1 = mono_ns();
  ph->cpu = cpu_ns() - c0;
  ph->softnet = softnet_drops() - sn0;
  child_report(in, out, &ph->rx);

  /* latency at half the rate */
  memset(lat, 0, sizeof(*lat));
  double secs = (double)(ph->rx.last_ns - ph->t0) / (double)DB_NS_PER_S;
  double rate = secs > 0 ? (double)ph->rx.count / secs * o->lat_load : 0;
  child_reset(in, out, 1);
  db_hic_t hic;
  memset(&hic, 0, sizeof(hic));
  hic_start(&hic, o->hiccup);
  c0 = cpu_ns();
  lat->t0 = mono_ns();
  end = lat->t0 + (uint64_t)(o->latency_s * (double)DB_NS_PER_S);
  struct timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  for (uint64_t now = lat->t0; now < end; now = mono_ns()) {
    uint64_t due =
        (uint64_t)(rate * (double)(now - lat->t0) / (double)DB_NS_PER_S);
    if (due > lat->sent)
      raw_send(r, due - lat->sent, lat);
    next.tv_nsec += (long)o->pace_us * (long)DB_NS_PER_US;
    if (next.tv_nsec >= (long)DB_NS_PER_S) {
      next.tv_nsec -= (long)DB_NS_PER_S;
      next.tv_sec++;
    }
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
  }
  hic_stop(&hic);
  lat->hic_max_ns = atomic_load(&hic.max_ns);
  lat->hic_ns = atomic_load(&hic.stall_ns);
  lat->hic_work_ns = atomic_load(&hic.work_ns);
  lat->hic_work_n = atomic_load(&hic.work_n);
  settle(in, out);
  lat->t1 = mono_ns();
  lat->cpu = cpu_ns() - c0;
  child_report(in, out, &lat->rx);
  line_write(out, "QUIT");
  close(r->fd);
  free(r->bufs);
  free(r);
}

/* ---------------------------------------------------------------------- */
/* library: receiver child                                                 */

typedef struct rx_node {
  struct rx *r;
  int idx;
  dmq_uv_t *rt;
  uint64_t expect; /* next seq (reliable) */
  uint64_t tails;  /* tail probes since RESET */
} rx_node_t;

typedef struct rx {
  const db_opts_t *o;
  uv_loop_t loop;
  int n;
  rx_node_t nodes[DB_MAX_RECV];
  uint16_t ports[DB_MAX_RECV];
  int in, out;
  uv_poll_t cmd;
  uv_check_t check;
  uv_timer_t conv;
  int ready;
  char lbuf[DB_LINE];
  size_t lbuf_n;
  uint64_t count, seen_count, last_ns, disorder, events;
  int lat_on;
  uint64_t stall_at; /* --stall-ms: when the receiver stalls (0: not) */
  db_hic_t hic;
  db_hist_t h;
  uint64_t cpu0, kd0, received0, delivered0, drops0, events0, lost0;
  int closing, closed;
} rx_t;

static void rx_on_msg(dmq_node_t *node, dmq_channel_t *ch,
                      const dmq_message_t *m, void *ud) {
  rx_node_t *rn = ud;
  rx_t *r = rn->r;
  (void)node;
  (void)ch;
  db_hdr_t hd;
  if (m->len >= sizeof(hd)) {
    memcpy(&hd, m->data, sizeof(hd));
    if (hd.flags & DB_HDR_TAIL) {
      rn->tails++;
      return;
    }
  }
  r->count++;
  if (m->len < sizeof(db_hdr_t))
    return;
  if (m->reliable) {
    if (hd.seq != rn->expect)
      r->disorder++;
    rn->expect = hd.seq + 1;
  }
  if (r->lat_on)
    hist_add(&r->h, hd.ts_ns);
  if (r->stall_at != 0 && mono_ns() >= r->stall_at) {
    r->stall_at = 0;
    stall(r->o->stall_ms);
  }
  if (r->o->rx_work_ns > 0) {
    uint64_t until = mono_ns() + r->o->rx_work_ns;
    while (mono_ns() < until) {
    }
  }
}

static void rx_on_member(dmq_node_t *node, dmq_member_event_t ev,
                         const dmq_member_info_t *mi, void *ud) {
  rx_t *r = ud;
  (void)node;
  (void)mi;
  if (ev == DMQ_EVENT_SUSPECT || ev == DMQ_EVENT_DEAD)
    r->events++;
}

/* After each poll phase: time of the last receipt, at loop-turn grain. */
static void rx_on_check(uv_check_t *c) {
  rx_t *r = c->data;
  if (r->count != r->seen_count) {
    r->seen_count = r->count;
    r->last_ns = mono_ns();
  }
}

static void rx_totals(rx_t *r, uint64_t *received, uint64_t *delivered,
                      uint64_t *drops, uint64_t *lost) {
  *received = *delivered = *drops = *lost = 0;
  for (int i = 0; i < r->n; i++) {
    dmq_delivery_stats_t st;
    dmq_delivery_stats(dmq_uv_node(r->nodes[i].rt), &st);
    *received += st.received;
    *delivered += st.delivered_app;
    *drops += st.dropped_no_channel + st.dropped_paused + st.rx_expired +
              st.unknown_sender + st.stale_gen + st.rx_overflow;
    *lost += st.rx_lost_be;
  }
}

static void rx_on_closed(void *ud) {
  ((rx_t *)ud)->closed++;
}

static void rx_handle_closed(uv_handle_t *h) {
  (void)h;
}

static void rx_command(rx_t *r, const char *cmd) {
  if (strncmp(cmd, "RESET", 5) == 0) {
    r->lat_on = atoi(cmd + 6);
    hic_start(&r->hic, r->lat_on && r->o->hiccup);
    r->stall_at = 0;
    if (r->lat_on && r->o->stall_ms > 0 && r->o->stall_rx)
      r->stall_at =
          mono_ns() + (uint64_t)(r->o->latency_s / 2 * (double)DB_NS_PER_S);
    r->count = r->seen_count = r->last_ns = 0;
    r->disorder = 0;
    hist_reset(&r->h);
    r->cpu0 = cpu_ns();
    r->kd0 = socket_drops(r->ports, r->n);
    rx_totals(r, &r->received0, &r->delivered0, &r->drops0, &r->lost0);
    r->events0 = r->events;
    for (int i = 0; i < r->n; i++)
      r->nodes[i].tails = 0;
    line_write(r->out, "OK");
  } else if (strcmp(cmd, "COUNT") == 0) {
    line_write(r->out, "C %" PRIu64, r->count);
  } else if (strcmp(cmd, "TAILS") == 0) {
    /* receivers that have a tail probe since RESET */
    int have = 0;
    for (int i = 0; i < r->n; i++)
      have += r->nodes[i].tails > 0;
    line_write(r->out, "T %d", have);
  } else if (strcmp(cmd, "REPORT") == 0) {
    hist_trace(&r->h, "library");
    hic_stop(&r->hic);
    uint64_t rc, dl, dr, lo, tails = 0;
    rx_totals(r, &rc, &dl, &dr, &lo);
    for (int i = 0; i < r->n; i++)
      tails += r->nodes[i].tails;
    line_write(
        r->out,
        "R %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64
        " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64
        " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64,
        r->count, r->last_ns, cpu_ns() - r->cpu0, hist_pct(&r->h, 0.50),
        hist_pct(&r->h, 0.99), r->h.n, socket_drops(r->ports, r->n) - r->kd0,
        rc - r->received0, dl - r->delivered0, dr - r->drops0, r->disorder,
        r->events - r->events0, lo - r->lost0, tails,
        (uint64_t)atomic_load(&r->hic.max_ns),
        (uint64_t)atomic_load(&r->hic.stall_ns),
        (uint64_t)atomic_load(&r->hic.work_ns),
        (uint64_t)atomic_load(&r->hic.work_n));
  } else if (strcmp(cmd, "QUIT") == 0 && !r->closing) {
    hic_stop(&r->hic);
    r->closing = 1;
    uv_poll_stop(&r->cmd);
    uv_close((uv_handle_t *)&r->cmd, rx_handle_closed);
    uv_close((uv_handle_t *)&r->check, rx_handle_closed);
    uv_close((uv_handle_t *)&r->conv, rx_handle_closed);
    for (int i = 0; i < r->n; i++)
      dmq_uv_close(r->nodes[i].rt, 0, rx_on_closed, r);
  }
}

static void rx_on_cmd(uv_poll_t *p, int status, int events) {
  rx_t *r = p->data;
  (void)status;
  (void)events;
  char tmp[DB_LINE];
  ssize_t k = read(r->in, tmp, sizeof(tmp));
  if (k == 0) { /* the parent is gone */
    rx_command(r, "QUIT");
    return;
  }
  for (ssize_t i = 0; i < k && !r->closing; i++) {
    if (tmp[i] == '\n') {
      r->lbuf[r->lbuf_n] = '\0';
      r->lbuf_n = 0;
      rx_command(r, r->lbuf);
    } else if (r->lbuf_n + 1 < sizeof(r->lbuf)) {
      r->lbuf[r->lbuf_n++] = tmp[i];
    }
  }
}

/* Ready when every receiver sees every receiver and the sender alive. */
static void rx_on_conv(uv_timer_t *t) {
  rx_t *r = t->data;
  for (int i = 0; i < r->n; i++)
    if (dmq_node_member_count(dmq_uv_node(r->nodes[i].rt),
                              1u << DMQ_MEMBER_ALIVE) != (size_t)r->n + 1)
      return;
  uv_timer_stop(t);
  r->ready = 1;
  line_write(r->out, "READY");
}

static void make_cfg(const db_opts_t *o, dmq_config_t *cfg, const char *name) {
  dmq_config_init(cfg, o->profile);
  cfg->name = name;
}

static void configure_delivery(const db_opts_t *o, dmq_node_t *n) {
  dmq_delivery_config_t dc;
  dmq_delivery_config_init(&dc);
  if (o->queue_msgs)
    dc.queue_msgs = o->queue_msgs;
  if (o->window)
    dc.window = o->window;
  if (dmq_delivery_configure(n, &dc) != 0)
    die("bad delivery configuration");
}

static void lib_child(const db_opts_t *o, int nrecv, int in, int out) {
  rx_t *r = calloc(1, sizeof(*r));
  if (r == NULL)
    die("out of memory");
  hist_init(&r->h, o->lat_trace_us);
  r->o = o;
  r->in = in;
  r->out = out;
  r->n = nrecv;
  uv_loop_init(&r->loop);
  char names[DB_MAX_RECV][16];
  for (int i = 0; i < nrecv; i++) {
    snprintf(names[i], sizeof(names[i]), "r%d", i);
    dmq_config_t cfg;
    make_cfg(o, &cfg, names[i]);
    dmq_uv_options_t uo;
    memset(&uo, 0, sizeof(uo));
    uo.bind = "127.0.0.1:0";
    rx_node_t *rn = &r->nodes[i];
    rn->r = r;
    rn->idx = i;
    if (dmq_uv_new(&rn->rt, &r->loop, &cfg, &uo) != 0)
      die("dmq_uv_new (receiver)");
    dmq_node_t *n = dmq_uv_node(rn->rt);
    configure_delivery(o, n);
    dmq_node_set_member_cb(n, rx_on_member, r);
    if (dmq_channel_open(n, DB_CHANNEL, rx_on_msg, rn, NULL) != 0)
      die("dmq_channel_open");
    r->ports[i] = port_of(dmq_uv_addr(rn->rt));
  }
  const char *seed = dmq_uv_addr(r->nodes[0].rt);
  for (int i = 1; i < nrecv; i++)
    dmq_uv_join(r->nodes[i].rt, &seed, 1);
  line_write(out, "ADDR %s", seed);
  uv_poll_init(&r->loop, &r->cmd, in);
  r->cmd.data = r;
  uv_poll_start(&r->cmd, UV_READABLE, rx_on_cmd);
  uv_check_init(&r->loop, &r->check);
  r->check.data = r;
  uv_check_start(&r->check, rx_on_check);
  uv_timer_init(&r->loop, &r->conv);
  r->conv.data = r;
  uv_timer_start(&r->conv, rx_on_conv, 5, 5);
  uv_run(&r->loop, UV_RUN_DEFAULT);
  if (r->closed != nrecv || uv_loop_close(&r->loop) != 0)
    die("receiver loop did not close cleanly");
  hist_free(&r->h);
  free(r);
}

/* ---------------------------------------------------------------------- */
/* library: sender (parent)                                                */

typedef struct tx {
  const db_opts_t *o;
  db_mode_t mode;
  int bcast, reliable, nrecv;
  size_t payload;
  uv_loop_t loop;
  dmq_uv_t *rt;
  dmq_node_t *node;
  uv_idle_t idle;
  uv_timer_t stop, poll, trace;
  int pace_fd; /* timerfd, every --pace-us */
  uv_poll_t pace;
  int sending, blocked, pacing;
  uint64_t seq;
  db_phase_t *ph;
  /* pacing */
  double rate;
  uint64_t pace_t0, paced;
  uint64_t stall_at; /* --stall-ms: when the sender stalls (0: not) */
  db_hic_t hic;
  /* run_until */
  int (*pred)(struct tx *);
  uint64_t pred_deadline;
  int child_ready;
  int in, out;
  uint8_t *buf;
  dmq_send_opts_t so;
} tx_t;

static void tx_on_member(dmq_node_t *n, dmq_member_event_t ev,
                         const dmq_member_info_t *mi, void *ud) {
  tx_t *t = ud;
  (void)n;
  (void)mi;
  if ((ev == DMQ_EVENT_SUSPECT || ev == DMQ_EVENT_DEAD) && t->ph != NULL)
    t->ph->tx_events++;
}

static void tx_on_outcome(dmq_node_t *n, const dmq_outcome_info_t *oi,
                          void *ud) {
  tx_t *t = ud;
  (void)n;
  if (oi->dest == NULL) { /* broadcast */
    t->ph->delivered_out += oi->delivered;
    t->ph->failed_out += oi->failed;
  } else if (oi->outcome == DMQ_OUTCOME_DELIVERED) {
    t->ph->delivered_out++;
  } else {
    t->ph->failed_out++;
  }
}

/* One send; 0, DMQ_EAGAIN or another error. */
static int tx_send_one(tx_t *t, uint64_t now_ms) {
  db_hdr_t hd = {mono_ns(), t->seq, DB_MAGIC, 0};
  memcpy(t->buf, &hd, sizeof(hd));
  int rc = t->bcast ? dmq_broadcast(t->node, DB_CHANNEL, t->buf, t->payload,
                                    &t->so, now_ms, NULL)
                    : dmq_send(t->node, "r0", DB_CHANNEL, t->buf, t->payload,
                               &t->so, now_ms, NULL);
  t->ph->attempts++;
  if (rc == 0) {
    t->seq++;
    t->ph->sent += (uint64_t)(t->bcast ? t->nrecv : 1);
  } else if (rc == DMQ_EAGAIN) {
    t->ph->eagain++;
  } else {
    t->ph->errors++;
  }
  return rc;
}

static void tx_on_idle(uv_idle_t *h) {
  tx_t *t = h->data;
  uint64_t now = uv_now(&t->loop);
  for (int i = 0; i < t->o->batch; i++) {
    int rc = tx_send_one(t, now);
    if (rc == DMQ_EAGAIN) {
      t->blocked = 1;
      uv_idle_stop(h);
      break;
    }
    if (rc != 0)
      break;
  }
  dmq_uv_kick(t->rt);
}

static void tx_on_writable(dmq_node_t *n, const char *dest, void *ud) {
  tx_t *t = ud;
  (void)n;
  (void)dest;
  if (t->sending && t->blocked && !t->pacing) {
    t->blocked = 0;
    uv_idle_start(&t->idle, tx_on_idle);
  }
}

static void tx_on_pace(uv_poll_t *h, int status, int events) {
  tx_t *t = h->data;
  uint64_t expirations;
  (void)status;
  (void)events;
  if (read(t->pace_fd, &expirations, sizeof(expirations)) < 0 || !t->sending)
    return;
  uint64_t now = uv_now(&t->loop);
  if (t->stall_at != 0 && mono_ns() >= t->stall_at) {
    t->stall_at = 0;
    stall(t->o->stall_ms);
  }
  uint64_t due = (uint64_t)(t->rate * (double)(mono_ns() - t->pace_t0) /
                            (double)DB_NS_PER_S);
  while (t->paced < due) {
    if (tx_send_one(t, now) != 0)
      break; /* behind: caught up at the next tick */
    t->paced++;
  }
  dmq_uv_kick(t->rt);
}

/* --trace-ms: the sender's queue, every N ms of a phase. */
static void tx_on_trace(uv_timer_t *h) {
  tx_t *t = h->data;
  dmq_delivery_stats_t st;
  dmq_delivery_stats(t->node, &st);
  fprintf(stderr,
          "%s %zu t=%.3f sent=%" PRIu64 " eagain=%" PRIu64 " queued=%" PRIu64
          " inflight=%" PRIu64 " acks_in=%" PRIu64 " rtx=%" PRIu64
          " cpu_ms=%.1f\n",
          mode_names[t->mode], t->payload,
          (double)(mono_ns() - t->ph->t0) / (double)DB_NS_PER_S, t->ph->sent,
          t->ph->eagain, st.queued_msgs, st.inflight, st.acks_received,
          st.retransmits, (double)cpu_ns() / (double)DB_NS_PER_MS);
}

static void tx_on_stop(uv_timer_t *h) {
  tx_t *t = h->data;
  t->sending = 0;
  uv_idle_stop(&t->idle);
  uv_poll_stop(&t->pace);
  struct itimerspec off;
  memset(&off, 0, sizeof(off));
  (void)timerfd_settime(t->pace_fd, 0, &off, NULL);
}

static void tx_on_poll(uv_timer_t *h) {
  tx_t *t = h->data;
  if (t->pred(t) || mono_ns() >= t->pred_deadline)
    uv_stop(&t->loop);
}

/* Run the sender's loop until pred holds (checked every DB_POLL_MS) or
 * timeout_ms passes. */
static int tx_run_until(tx_t *t, int (*pred)(tx_t *), uint64_t timeout_ms) {
  t->pred = pred;
  t->pred_deadline = mono_ns() + timeout_ms * DB_NS_PER_MS;
  uv_timer_start(&t->poll, tx_on_poll, 0, DB_POLL_MS);
  if (!pred(t))
    uv_run(&t->loop, UV_RUN_DEFAULT);
  uv_timer_stop(&t->poll);
  return pred(t);
}

static int tx_cluster_ready(tx_t *t) {
  if (!t->child_ready) {
    struct pollfd p = {t->in, POLLIN, 0};
    if (poll(&p, 1, 0) == 1) {
      char l[DB_LINE];
      expect_line(t->in, l, sizeof(l));
      if (strcmp(l, "READY") != 0)
        die("bad READY");
      t->child_ready = 1;
    }
  }
  if (!t->child_ready)
    return 0;
  for (int i = 0; i < t->nrecv; i++) {
    char name[16];
    dmq_member_info_t mi;
    snprintf(name, sizeof(name), "r%d", i);
    if (dmq_node_member(t->node, name, &mi) != 0 ||
        mi.state != DMQ_MEMBER_ALIVE ||
        !dmq_member_serves(t->node, name, DB_CHANNEL))
      return 0;
  }
  return 1;
}

static int tx_not_sending(tx_t *t) {
  return !t->sending;
}

static int tx_drained(tx_t *t) {
  if (t->sending)
    return 0;
  dmq_delivery_stats_t st;
  dmq_delivery_stats(t->node, &st);
  if (t->reliable)
    return t->ph->delivered_out + t->ph->failed_out == t->ph->sent;
  return st.queued_msgs == 0;
}

static int tx_false(tx_t *t) {
  (void)t;
  return 0;
}

static void tx_snapshot(tx_t *t, int sign) {
  dmq_delivery_stats_t st;
  dmq_stats_t ns;
  dmq_delivery_stats(t->node, &st);
  dmq_node_stats(t->node, &ns);
  db_phase_t *p = t->ph;
  uint64_t s = (uint64_t)(int64_t)sign;
  p->dropped_be += s * st.dropped_be;
  p->sent_be += s * st.sent_be;
  p->retransmits += s * st.retransmits;
  p->tx_failed += s * ns.drops[DMQ_DROP_TX_FAILED];
  p->pkts_out += s * ns.pkts_out;
  p->data_msgs += s * (st.sent_be + st.sent_reliable + st.retransmits);
  p->softnet += s * softnet_drops();
  uint16_t port = port_of(dmq_uv_addr(t->rt));
  p->tx_kdrops += s * socket_drops(&port, 1);
}

/* Best effort, after the drain: a tail probe to every destination, so
 * that the receivers' libraries learn of losses at the very end of the
 * stream (a gap is only known once a later message arrives). Sent again
 * until every receiver has one (a probe lost too is counted like any
 * other message). Not counted as a send nor as a delivery. */
static void tx_tail(tx_t *t) {
  db_hdr_t hd = {mono_ns(), 0, DB_MAGIC, DB_HDR_TAIL};
  memcpy(t->buf, &hd, sizeof(hd));
  for (int k = 0; k < DB_TAIL_TRIES; k++) {
    uint64_t now = uv_now(&t->loop);
    int rc = t->bcast ? dmq_broadcast(t->node, DB_CHANNEL, t->buf, t->payload,
                                      &t->so, now, NULL)
                      : dmq_send(t->node, "r0", DB_CHANNEL, t->buf, t->payload,
                                 &t->so, now, NULL);
    if (rc == 0)
      t->ph->tails += (uint64_t)(t->bcast ? t->nrecv : 1);
    dmq_uv_kick(t->rt);
    for (int i = 0; i < DB_TAIL_POLLS; i++) {
      tx_run_until(t, tx_false, DB_SETTLE_MS);
      char l[DB_LINE];
      line_write(t->out, "TAILS");
      expect_line(t->in, l, sizeof(l));
      if (atoi(l + 2) >= t->nrecv)
        return;
    }
  }
  fprintf(stderr, "delivery_bench: %s: tail probe not received\n",
          mode_names[t->mode]);
}

/* One phase: throughput (rate 0) or paced at rate sends/s. */
static void tx_phase(tx_t *t, db_phase_t *ph, double rate, double secs) {
  memset(ph, 0, sizeof(*ph));
  t->ph = ph;
  child_reset(t->in, t->out, rate > 0);
  uv_update_time(&t->loop);
  tx_snapshot(t, -1);
  uint64_t c0 = cpu_ns();
  ph->t0 = mono_ns();
  t->sending = 1;
  t->blocked = 0;
  t->paced = 0;
  t->pacing = rate > 0;
  t->rate = rate;
  t->pace_t0 = ph->t0;
  t->stall_at = 0;
  if (rate > 0 && t->o->stall_ms > 0 && !t->o->stall_rx)
    t->stall_at = ph->t0 + (uint64_t)(secs / 2 * (double)DB_NS_PER_S);
  uv_timer_start(&t->stop, tx_on_stop, (uint64_t)(secs * 1000), 0);
  if (t->o->trace > 0)
    uv_timer_start(&t->trace, tx_on_trace, (uint64_t)t->o->trace,
                   (uint64_t)t->o->trace);
  if (rate > 0) {
    long ns = (long)t->o->pace_us * (long)DB_NS_PER_US;
    struct itimerspec its = {{ns / (long)DB_NS_PER_S, ns % (long)DB_NS_PER_S},
                             {0, 1}}; /* first tick now */
    if (timerfd_settime(t->pace_fd, 0, &its, NULL) != 0)
      die("timerfd_settime");
    uv_poll_start(&t->pace, UV_READABLE, tx_on_pace);
  } else
    uv_idle_start(&t->idle, tx_on_idle);
  hic_start(&t->hic, rate > 0 && t->o->hiccup);
  tx_run_until(t, tx_not_sending, (uint64_t)(secs * 1000) + DB_ANSWER_MS);
  hic_stop(&t->hic);
  ph->hic_max_ns = atomic_load(&t->hic.max_ns);
  ph->hic_ns = atomic_load(&t->hic.stall_ns);
  ph->hic_work_ns = atomic_load(&t->hic.work_ns);
  ph->hic_work_n = atomic_load(&t->hic.work_n);
  if (!tx_run_until(t, tx_drained, DB_DRAIN_MS))
    fprintf(stderr, "delivery_bench: %s did not drain\n", mode_names[t->mode]);
  /* best effort: until the receiver's count stops moving; keep our loop
   * running meanwhile (it answers probes) */
  if (!t->reliable) {
    uint64_t prev = UINT64_MAX;
    for (;;) {
      char l[DB_LINE];
      line_write(t->out, "COUNT");
      expect_line(t->in, l, sizeof(l));
      uint64_t c = strtoull(l + 2, NULL, 10);
      if (c == prev)
        break;
      prev = c;
      tx_run_until(t, tx_false, DB_SETTLE_MS);
    }
  }
  ph->t1 = mono_ns();
  ph->cpu = cpu_ns() - c0;
  uv_timer_stop(&t->trace);
  if (!t->reliable)
    tx_tail(t);
  tx_snapshot(t, 1);
  child_report(t->in, t->out, &ph->rx);
}

static void tx_closed(void *ud) {
  (*(int *)ud)++;
}

static void tx_handle_closed(uv_handle_t *h) {
  (void)h;
}

static void lib_parent(const db_opts_t *o, db_mode_t mode, size_t payload,
                       int nrecv, int in, int out, db_phase_t *ph,
                       db_phase_t *lat) {
  tx_t *t = calloc(1, sizeof(*t));
  if (t == NULL)
    die("out of memory");
  t->o = o;
  t->mode = mode;
  t->bcast = mode == M_BCAST_REL || mode == M_BCAST_BE;
  t->reliable = mode == M_RELIABLE || mode == M_BCAST_REL;
  t->nrecv = nrecv;
  t->payload = payload;
  t->in = in;
  t->out = out;
  t->buf = calloc(1, payload);
  if (t->buf == NULL)
    die("out of memory");
  t->so.mode = t->reliable ? DMQ_SEND_RELIABLE : DMQ_SEND_BEST_EFFORT;
  t->so.cb = t->reliable ? tx_on_outcome : NULL;
  t->so.user_data = t;
  char l[DB_LINE];
  expect_line(in, l, sizeof(l));
  if (strncmp(l, "ADDR ", 5) != 0)
    die("bad ADDR");
  const char *seed = l + 5;
  uv_loop_init(&t->loop);
  dmq_config_t cfg;
  make_cfg(o, &cfg, "sender");
  dmq_uv_options_t uo;
  memset(&uo, 0, sizeof(uo));
  uo.bind = "127.0.0.1:0";
  if (dmq_uv_new(&t->rt, &t->loop, &cfg, &uo) != 0)
    die("dmq_uv_new (sender)");
  t->node = dmq_uv_node(t->rt);
  configure_delivery(o, t->node);
  dmq_delivery_set_writable_cb(t->node, tx_on_writable, t);
  dmq_node_set_member_cb(t->node, tx_on_member, t);
  uv_idle_init(&t->loop, &t->idle);
  t->pace_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (t->pace_fd < 0 || uv_poll_init(&t->loop, &t->pace, t->pace_fd) != 0)
    die("timerfd");
  uv_timer_init(&t->loop, &t->stop);
  uv_timer_init(&t->loop, &t->poll);
  uv_timer_init(&t->loop, &t->trace);
  t->idle.data = t->pace.data = t->stop.data = t->poll.data = t->trace.data = t;
  if (dmq_uv_join(t->rt, &seed, 1) != 0)
    die("dmq_uv_join");
  if (!tx_run_until(t, tx_cluster_ready, DB_SETUP_MS))
    die("the cluster did not form");

  tx_phase(t, ph, 0, o->duration_s);
  double secs = (double)(ph->rx.last_ns - ph->t0) / (double)DB_NS_PER_S;
  double rate = secs > 0 ? (double)ph->rx.count / secs * o->lat_load : 0;
  if (t->bcast)
    rate /= nrecv; /* broadcasts per second */
  tx_phase(t, lat, rate > 1 ? rate : 1, o->latency_s);

  line_write(out, "QUIT");
  int closed = 0;
  uv_close((uv_handle_t *)&t->idle, tx_handle_closed);
  uv_close((uv_handle_t *)&t->pace, tx_handle_closed);
  uv_close((uv_handle_t *)&t->stop, tx_handle_closed);
  uv_close((uv_handle_t *)&t->poll, tx_handle_closed);
  uv_close((uv_handle_t *)&t->trace, tx_handle_closed);
  dmq_uv_close(t->rt, 0, tx_closed, &closed);
  if (uv_run(&t->loop, UV_RUN_DEFAULT) != 0 || closed != 1 ||
      uv_loop_close(&t->loop) != 0)
    die("sender loop did not close cleanly");
  close(t->pace_fd);
  free(t->buf);
  free(t);
}

/* ---------------------------------------------------------------------- */
/* driver                                                                  */

/* --pin: the calling process on one CPU (when the machine has it). The
 * sides wake each other through the command pipes between phases, and the
 * scheduler's wake-affine placement then often puts both on one CPU for
 * the first tens of ms of the next phase. */
static void pin_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sysconf(_SC_NPROCESSORS_ONLN) > cpu)
    (void)sched_setaffinity(0, sizeof(set), &set);
}

static void print_num(const char *key, double v, int prec) {
  if (v == v) /* not NaN */
    printf(",\"%s\":%.*f", key, prec, v);
  else
    printf(",\"%s\":null", key);
}

static double run_scenario(const db_opts_t *o, db_mode_t mode, size_t payload,
                           double raw_rate) {
  int nrecv = (mode == M_BCAST_REL || mode == M_BCAST_BE) ? o->receivers : 1;
  int p2c[2], c2p[2];
  if (pipe(p2c) != 0 || pipe(c2p) != 0)
    die("pipe");
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0)
    die("fork");
  if (o->pin)
    pin_cpu(pid == 0 ? 1 : 0);
  if (pid == 0) {
    close(p2c[1]);
    close(c2p[0]);
    if (mode == M_RAW || mode == M_RAW_MMSG)
      raw_child(o, p2c[0], c2p[1], mode == M_RAW_MMSG);
    else
      lib_child(o, nrecv, p2c[0], c2p[1]);
    _exit(0);
  }
  close(p2c[0]);
  close(c2p[1]);
  db_phase_t ph, lat;
  if (mode == M_RAW || mode == M_RAW_MMSG)
    raw_parent(o, payload, mode == M_RAW_MMSG, c2p[0], p2c[1], &ph, &lat);
  else
    lib_parent(o, mode, payload, nrecv, c2p[0], p2c[1], &ph, &lat);
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  close(p2c[1]);
  close(c2p[0]);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    die("the receiver process failed");

  const db_rx_report_t *rx = &ph.rx;
  double win = (double)(rx->last_ns > ph.t0 ? rx->last_ns - ph.t0 : 1) /
               (double)DB_NS_PER_S;
  double wall = (double)(ph.t1 - ph.t0) / (double)DB_NS_PER_S;
  double rate = (double)rx->count / win;
  double loss =
      ph.sent > 0
          ? (double)(ph.sent - (rx->count < ph.sent ? rx->count : ph.sent)) /
                (double)ph.sent
          : 0;
  double cpu = (double)(ph.cpu + rx->cpu_ns) / (double)DB_NS_PER_S / wall;
  printf("{\"mode\":\"%s\",\"payload\":%zu", mode_names[mode], payload);
  print_num("msgs_per_s", rate, 0);
  print_num("loss", loss, 6);
  print_num("p50_us", (double)lat.rx.p50_ns / (double)DB_NS_PER_US, 1);
  print_num("p99_us", (double)lat.rx.p99_ns / (double)DB_NS_PER_US, 1);
  print_num("cpu_pct", cpu * 100, 1);
  print_num("ratio_to_raw",
            mode == M_RAW  ? 1.0
            : raw_rate > 0 ? rate / raw_rate
                           : 0.0 / 0.0,
            3);
  printf(",\"receivers\":%d,\"pace_us\":%d,\"pinned\":%s", nrecv, o->pace_us,
         o->pin ? "true" : "false");
  if (o->stall_ms > 0 && mode != M_RAW && mode != M_RAW_MMSG)
    printf(",\"stall_ms\":%" PRIu32 ",\"stall_side\":\"%s\"", o->stall_ms,
           o->stall_rx ? "rx" : "tx");
  print_num("duration_s", win, 3);
  print_num("cpu_sender_pct", (double)ph.cpu / (double)DB_NS_PER_S / wall * 100,
            1);
  print_num("cpu_receiver_pct",
            (double)rx->cpu_ns / (double)DB_NS_PER_S / wall * 100, 1);
  printf(",\"attempts\":%" PRIu64 ",\"sent\":%" PRIu64 ",\"delivered\":%" PRIu64
         ",\"eagain\":%" PRIu64 ",\"errors\":%" PRIu64,
         ph.attempts, ph.sent, rx->count, ph.eagain, ph.errors);
  if (mode == M_RELIABLE || mode == M_BCAST_REL)
    printf(",\"outcome_delivered\":%" PRIu64 ",\"outcome_failed\":%" PRIu64
           ",\"retransmits\":%" PRIu64 ",\"disorder\":%" PRIu64,
           ph.delivered_out, ph.failed_out, ph.retransmits, rx->disorder);
  if (mode != M_RAW && mode != M_RAW_MMSG) {
    uint64_t net_lost =
        ph.sent_be > rx->received ? ph.sent_be - rx->received : 0;
    if (mode == M_BE || mode == M_BCAST_BE) {
      double mpd =
          ph.pkts_out > 0 ? (double)ph.data_msgs / (double)ph.pkts_out : 0;
      uint64_t kd = rx->kdrops + ph.softnet;
      double est = (double)kd * mpd;
      double diff = (double)net_lost - est;
      if (diff < 0)
        diff = -diff;
      /* every message counted somewhere; the network's share matches the
       * kernel's datagram drops (times the packing, an average: 2%) */
      /* (tail probes: in sent_be, received and delivered_app, not in
       * sent and count) */
      int accounted = ph.sent + ph.tails == ph.sent_be + ph.dropped_be &&
                      ph.sent_be == rx->received + net_lost &&
                      rx->received == rx->delivered + rx->rxdrops &&
                      rx->delivered == rx->count + rx->tails &&
                      rx->lost_be == net_lost && (net_lost == 0) == (kd == 0) &&
                      diff <= 0.02 * (double)net_lost + 2 * mpd;
      printf(",\"sent_be\":%" PRIu64 ",\"dropped_be\":%" PRIu64
             ",\"rx_lib_drops\":%" PRIu64 ",\"net_lost\":%" PRIu64
             ",\"rx_lost_be\":%" PRIu64 ",\"tail_probes\":%" PRIu64,
             ph.sent_be, ph.dropped_be, rx->rxdrops, net_lost, rx->lost_be,
             ph.tails);
      print_num("msgs_per_dgram", mpd, 2);
      print_num("net_lost_est", est, 0);
      printf(",\"accounted\":%s", accounted ? "true" : "false");
    }
    printf(",\"tx_failed\":%" PRIu64 ",\"member_events\":%" PRIu64,
           ph.tx_failed,
           rx->events + lat.rx.events + ph.tx_events + lat.tx_events);
  }
  /* datagrams the kernel dropped (a reliable sender retransmits them) */
  printf(",\"kernel_drops\":%" PRIu64 ",\"softnet_drops\":%" PRIu64, rx->kdrops,
         ph.softnet);
  if (mode != M_RAW && mode != M_RAW_MMSG)
    printf(",\"sender_kernel_drops\":%" PRIu64, ph.tx_kdrops);
  double lwin = (double)(lat.t1 - lat.t0) / (double)DB_NS_PER_S;
  print_num("lat_rate",
            (double)lat.sent / (o->latency_s > 0 ? o->latency_s : 1), 0);
  printf(",\"lat_samples\":%" PRIu64, lat.rx.lat_n);
  print_num("lat_wall_s", lwin, 3);
  print_num("lat_cpu_sender_pct",
            (double)lat.cpu / (double)DB_NS_PER_S / lwin * 100, 1);
  print_num("lat_cpu_receiver_pct",
            (double)lat.rx.cpu_ns / (double)DB_NS_PER_S / lwin * 100, 1);
  if (mode != M_RAW && mode != M_RAW_MMSG)
    printf(",\"lat_retransmits\":%" PRIu64, lat.retransmits);
  if (o->hiccup) {
    print_num("hiccup_max_us_sender", (double)lat.hic_max_ns / 1e3, 0);
    print_num("hiccup_max_us_receiver", (double)lat.rx.hic_max_ns / 1e3, 0);
    print_num("hiccup_ms_sender", (double)lat.hic_ns / 1e6, 1);
    print_num("hiccup_ms_receiver", (double)lat.rx.hic_ns / 1e6, 1);
    printf(",\"hiccup_rt\":%s", hic_rt_seen == 1 ? "true" : "false");
    print_num("cpu_speed_pct_sender",
              hic_speed(lat.hic_work_ns, lat.hic_work_n), 0);
    print_num("cpu_speed_pct_receiver",
              hic_speed(lat.rx.hic_work_ns, lat.rx.hic_work_n), 0);
  }
  print_num("loadavg", loadavg(), 2);
  printf("}\n");
  fflush(stdout);
  return rate;
}

static void usage(void) {
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
  exit(2);
}

static void parse_modes(db_opts_t *o, const char *v) {
  memset(o->modes, 0, sizeof(o->modes));
  char tmp[256];
  snprintf(tmp, sizeof(tmp), "%s", v);
  for (char *s = strtok(tmp, ","); s != NULL; s = strtok(NULL, ",")) {
    int found = 0;
    for (int m = 0; m < M_COUNT; m++)
      if (strcmp(s, mode_names[m]) == 0)
        o->modes[m] = found = 1;
    if (!found)
      usage();
  }
}

static void parse_payloads(db_opts_t *o, const char *v) {
  char tmp[256];
  snprintf(tmp, sizeof(tmp), "%s", v);
  o->n_payload = 0;
  for (char *s = strtok(tmp, ","); s != NULL; s = strtok(NULL, ",")) {
    long p = strtol(s, NULL, 10);
    if (p < (long)sizeof(db_hdr_t) || p > 1300 || o->n_payload == DB_MAX_LIST)
      usage(); /* a datagram's worth at most: raw sends one per message */
    o->payload[o->n_payload++] = (size_t)p;
  }
}

int main(int argc, char **argv) {
  db_opts_t o;
  memset(&o, 0, sizeof(o));
  o.duration_s = 3;
  o.latency_s = 1.5;
  o.lat_load = 0.5;
  o.pace_us = 250;
  o.pin = 1;
  o.stall_rx = 1;
  o.hiccup = 1;
  o.payload[0] = 100;
  o.payload[1] = 1024;
  o.n_payload = 2;
  for (int m = 0; m < M_COUNT; m++)
    o.modes[m] = m != M_RAW_MMSG;
  o.receivers = 10;
  o.batch = 256;
  o.profile = DMQ_PROFILE_LAN;
  o.profile_name = "lan";
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (v == NULL)
      usage();
    i++;
    if (strcmp(a, "--duration-s") == 0)
      o.duration_s = atof(v);
    else if (strcmp(a, "--latency-s") == 0)
      o.latency_s = atof(v);
    else if (strcmp(a, "--payload") == 0)
      parse_payloads(&o, v);
    else if (strcmp(a, "--modes") == 0)
      parse_modes(&o, v);
    else if (strcmp(a, "--receivers") == 0)
      o.receivers = atoi(v);
    else if (strcmp(a, "--batch") == 0)
      o.batch = atoi(v);
    else if (strcmp(a, "--profile") == 0) {
      if (dmq_profile_from_name(v, &o.profile) != 0)
        usage();
      o.profile_name = v;
    } else if (strcmp(a, "--queue-msgs") == 0)
      o.queue_msgs = (uint32_t)strtoul(v, NULL, 10);
    else if (strcmp(a, "--window") == 0)
      o.window = (uint32_t)strtoul(v, NULL, 10);
    else if (strcmp(a, "--rx-work-ns") == 0)
      o.rx_work_ns = strtoull(v, NULL, 10);
    else if (strcmp(a, "--trace-ms") == 0)
      o.trace = atoi(v);
    else if (strcmp(a, "--lat-load") == 0)
      o.lat_load = atof(v);
    else if (strcmp(a, "--pin") == 0)
      o.pin = atoi(v);
    else if (strcmp(a, "--lat-trace-us") == 0)
      o.lat_trace_us = (uint32_t)strtoul(v, NULL, 10);
    else if (strcmp(a, "--pace-us") == 0)
      o.pace_us = atoi(v);
    else if (strcmp(a, "--hiccup") == 0)
      o.hiccup = atoi(v);
    else if (strcmp(a, "--stall-ms") == 0)
      o.stall_ms = (uint32_t)strtoul(v, NULL, 10);
    else if (strcmp(a, "--stall-side") == 0) {
      if (strcmp(v, "rx") != 0 && strcmp(v, "tx") != 0)
        usage();
      o.stall_rx = strcmp(v, "rx") == 0;
    } else
      usage();
  }
  if (o.duration_s <= 0 || o.latency_s <= 0 || o.lat_load <= 0 ||
      o.lat_load > 1 || o.receivers < 1 || o.receivers > DB_MAX_RECV ||
      o.batch < 1 || o.pace_us < 10 || o.pace_us > 1000000)
    usage();
  signal(SIGPIPE, SIG_IGN);
  hic_calibrate();
  static const db_mode_t order[] = {M_RAW,       M_RELIABLE, M_BE,
                                    M_BCAST_REL, M_BCAST_BE, M_RAW_MMSG};
  for (size_t p = 0; p < o.n_payload; p++) {
    double raw = 0;
    for (size_t k = 0; k < sizeof(order) / sizeof(order[0]); k++) {
      if (!o.modes[order[k]])
        continue;
      double r = run_scenario(&o, order[k], o.payload[p], raw);
      if (order[k] == M_RAW)
        raw = r;
    }
  }
  return 0;
}
