/* delivery_bench: clocks, CPU time, the kernel's drop counters, pinning. */
#define _GNU_SOURCE /* sendmmsg, recvmmsg, sched_setaffinity */

#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/resource.h>
#include <unistd.h>

#include "db.h"

uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * DB_NS_PER_S + (uint64_t)ts.tv_nsec;
}

/* --stall-ms: the process does not run for ms (as when the host preempts
 * it), then carries on with whatever piled up meanwhile. */
void stall(uint32_t ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

uint64_t cpu_ns(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) *
             DB_NS_PER_S +
         ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) *
             DB_NS_PER_US;
}

void die(const char *what) {
  fprintf(stderr, "delivery_bench: %s\n", what);
  exit(2);
}

/* Sum over the lines of a /proc file of what value() finds in each (0 if
 * it cannot be read). */
static uint64_t proc_sum(const char *path,
                         int (*value)(const char *line, const void *ctx,
                                      uint64_t *v),
                         const void *ctx) {
  FILE *f = fopen(path, "r");
  char line[512];
  uint64_t sum = 0, v;
  while (f != NULL && fgets(line, sizeof(line), f) != NULL)
    if (value(line, ctx, &v))
      sum += v;
  if (f != NULL)
    fclose(f);
  return sum;
}

typedef struct port_set {
  const uint16_t *ports;
  int n;
} port_set_t;

/* A /proc/net/udp line ("sl: local rem st tx:rx tr:tm retrnsmt uid timeout
 * inode ref pointer drops"; not the header): its drops, when its local
 * port is one of the set's. */
static int udp_line_drops(const char *line, const void *ctx, uint64_t *v) {
  const port_set_t *ps = ctx;
  unsigned ip, port;
  if (sscanf(line,
             "%*s %8X:%4X %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %" SCNu64,
             &ip, &port, v) != 3)
    return 0;
  for (int i = 0; i < ps->n; i++)
    if (port == ps->ports[i])
      return 1;
  return 0;
}

/* Sum of the "drops" column of /proc/net/udp for sockets bound to
 * 127.0.0.1 on one of ports[]. */
uint64_t socket_drops(const uint16_t *ports, int n) {
  port_set_t ps = {ports, n};
  return proc_sum("/proc/net/udp", udp_line_drops, &ps);
}

/* A /proc/net/softnet_stat line (one per CPU, hex): its second column. */
static int softnet_line_drops(const char *line, const void *ctx, uint64_t *v) {
  unsigned long long processed, dropped;
  (void)ctx;
  if (sscanf(line, "%llx %llx", &processed, &dropped) != 2)
    return 0;
  *v = dropped;
  return 1;
}

/* System-wide packets dropped from the per-CPU input backlog (loopback
 * traffic goes through it). */
uint64_t softnet_drops(void) {
  return proc_sum("/proc/net/softnet_stat", softnet_line_drops, NULL);
}

/* 1-minute load average (other work on the machine skews everything). */
double loadavg(void) {
  double l = 0.0 / 0.0;
  FILE *f = fopen("/proc/loadavg", "r");
  if (f != NULL) {
    if (fscanf(f, "%lf", &l) != 1)
      l = 0.0 / 0.0;
    fclose(f);
  }
  return l;
}

uint16_t port_of(const char *addr) {
  const char *c = strrchr(addr, ':');
  return c != NULL ? (uint16_t)atoi(c + 1) : 0;
}

/* --pin: the calling process on one CPU (when the machine has it). The
 * sides wake each other through the command pipes between phases, and the
 * scheduler's wake-affine placement then often puts both on one CPU for
 * the first tens of ms of the next phase. */
void pin_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sysconf(_SC_NPROCESSORS_ONLN) > cpu)
    (void)sched_setaffinity(0, sizeof(set), &set);
}
