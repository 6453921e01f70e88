/* delivery_bench: the latency histogram and the hiccup meter (db.h says
 * what the meter measures). */
#define _GNU_SOURCE /* sendmmsg, recvmmsg, sched_setaffinity */

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"

int hic_rt_seen = -1;       /* -1: no meter ran, else its last rt */
static uint64_t hic_ref_ns; /* fastest DB_HIC_WORK loop at startup */

/* The fixed loop: its time in ns. */
static uint64_t hic_work(void) {
  volatile uint64_t x = 1;
  uint64_t t = mono_ns();
  for (int i = 0; i < DB_HIC_WORK; i++)
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
  return mono_ns() - t;
}

void hic_calibrate(void) {
  hic_ref_ns = UINT64_MAX;
  for (int i = 0; i < DB_HIC_REF_RUNS; i++) {
    uint64_t w = hic_work();
    if (w < hic_ref_ns)
      hic_ref_ns = w;
  }
}

/* Mean speed of the CPU in the meter's phase, % of the reference. */
double hic_speed(uint64_t work_ns, uint64_t work_n) {
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
void hic_start(db_hic_t *h, int on) {
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

void hic_figures(db_hic_t *h, uint64_t *max_ns, uint64_t *stall_ns,
                 uint64_t *work_ns, uint64_t *work_n) {
  *max_ns = atomic_load(&h->max_ns);
  *stall_ns = atomic_load(&h->stall_ns);
  *work_ns = atomic_load(&h->work_ns);
  *work_n = atomic_load(&h->work_n);
}

void hic_stop(db_hic_t *h) {
  if (!h->started)
    return;
  atomic_store(&h->run, 0);
  pthread_join(h->th, NULL);
  h->started = 0;
}

void hist_init(db_hist_t *h, uint32_t trace_us) {
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

void hist_free(db_hist_t *h) {
  free(h->b);
  free(h->tl_n);
  free(h->tl_max);
}

/* One latency sample: sent at ts_ns (CLOCK_MONOTONIC), received now. */
void hist_add(db_hist_t *h, uint64_t ts_ns) {
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
void hist_trace(const db_hist_t *h, const char *who) {
  if (h->tl_n == NULL || h->n == 0)
    return;
  for (uint64_t i = 0; i < DB_TRACE_MS; i++)
    if (h->tl_max[i] > h->tl_thresh_us)
      fprintf(stderr, "lat-trace %s: ms %" PRIu64 " samples %u max %u us\n",
              who, i, h->tl_n[i], h->tl_max[i]);
}

uint64_t hist_pct(const db_hist_t *h, double p) {
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

void hist_reset(db_hist_t *h) {
  memset(h->b, 0, (DB_HIST_US + 1) * sizeof(*h->b));
  h->n = 0;
  if (h->tl_n != NULL) {
    memset(h->tl_n, 0, DB_TRACE_MS * sizeof(*h->tl_n));
    memset(h->tl_max, 0, DB_TRACE_MS * sizeof(*h->tl_max));
    h->tl_t0 = 0;
  }
}
