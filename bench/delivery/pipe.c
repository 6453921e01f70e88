/* delivery_bench: the command pipes between the sender (parent) and the
 * receiver process (child): one text line per command or answer.
 *   RESET <lat_on>  -> OK        start a phase (latency measured or not)
 *   COUNT           -> C <n>     messages counted so far
 *   REPORT          -> R <...>   the phase as the receivers saw it
 *   QUIT                         end (the child exits)
 * (the library child also answers TAIL, see receiver.c) */
#define _GNU_SOURCE /* sendmmsg, recvmmsg, sched_setaffinity */

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <unistd.h>

#include "db.h"

/* Write one line (short: atomic on a pipe). */
void line_write(int fd, const char *fmt, ...) {
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
int line_read(int fd, char *out, size_t cap, int timeout_ms) {
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

void expect_line(int fd, char *out, size_t cap) {
  if (!line_read(fd, out, cap, DB_ANSWER_MS))
    die("no answer from the other process");
}

/* "R <fields of db_rx_report_t>" */
void report_write(int fd, const db_rx_report_t *r) {
  char buf[DB_LINE];
  size_t n = 0;
  buf[n++] = 'R';
#define DB_REPORT_PUT(f)                                                       \
  n += (size_t)snprintf(buf + n, sizeof(buf) - n, " %" PRIu64, r->f);
  DB_RX_REPORT_FIELDS(DB_REPORT_PUT)
#undef DB_REPORT_PUT
  line_write(fd, "%s", buf);
}

static void report_read(const char *line, db_rx_report_t *r) {
  const char *s = line;
  char *end;
  if (*s++ != 'R')
    die("bad report");
#define DB_REPORT_GET(f)                                                       \
  errno = 0;                                                                   \
  r->f = strtoull(s, &end, 10);                                                \
  if (end == s || errno != 0 || (*end != ' ' && *end != '\0'))                 \
    die("bad report");                                                         \
  s = end;
  DB_RX_REPORT_FIELDS(DB_REPORT_GET)
#undef DB_REPORT_GET
  if (*s != '\0')
    die("bad report");
}

/* Ask the child for its count until it stops moving. */
void settle(int in, int out) {
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

void child_reset(int in, int out, int lat_on) {
  char l[DB_LINE];
  line_write(out, "RESET %d", lat_on);
  expect_line(in, l, sizeof(l));
  if (strcmp(l, "OK") != 0)
    die("bad RESET answer");
}

void child_report(int in, int out, db_rx_report_t *r) {
  char l[DB_LINE];
  line_write(out, "REPORT");
  expect_line(in, l, sizeof(l));
  report_read(l, r);
}

/* The paced latency phase of the baselines (raw, zmq), after phase 1 (ph):
 * for o->latency_s, every o->pace_us (clock_nanosleep to an absolute
 * deadline), send(ctx, n, lat) sends the n messages due for a constant
 * o->lat_load x phase 1's rate; then the drain and the receiver's report.
 * The hiccup meter runs meanwhile. */
void paced_latency(const db_opts_t *o, int in, int out, const db_phase_t *ph,
                   db_phase_t *lat, db_send_fn send, void *ctx) {
  memset(lat, 0, sizeof(*lat));
  double secs = (double)(ph->rx.last_ns - ph->t0) / (double)DB_NS_PER_S;
  double rate = secs > 0 ? (double)ph->rx.count / secs * o->lat_load : 0;
  child_reset(in, out, 1);
  db_hic_t hic;
  memset(&hic, 0, sizeof(hic));
  hic_start(&hic, o->hiccup);
  uint64_t c0 = cpu_ns();
  lat->t0 = mono_ns();
  uint64_t end = lat->t0 + (uint64_t)(o->latency_s * (double)DB_NS_PER_S);
  struct timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  for (uint64_t now = lat->t0; now < end; now = mono_ns()) {
    uint64_t due =
        (uint64_t)(rate * (double)(now - lat->t0) / (double)DB_NS_PER_S);
    if (due > lat->sent)
      send(ctx, due - lat->sent, lat);
    next.tv_nsec += (long)o->pace_us * (long)DB_NS_PER_US;
    if (next.tv_nsec >= (long)DB_NS_PER_S) {
      next.tv_nsec -= (long)DB_NS_PER_S;
      next.tv_sec++;
    }
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
  }
  hic_stop(&hic);
  hic_figures(&hic, &lat->hic_max_ns, &lat->hic_ns, &lat->hic_work_ns,
              &lat->hic_work_n);
  settle(in, out);
  lat->t1 = mono_ns();
  lat->cpu = cpu_ns() - c0;
  child_report(in, out, &lat->rx);
}
