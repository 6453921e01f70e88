/* delivery_bench: the library sender (parent process): a throughput phase
 * as fast as the API accepts, then a paced latency phase (timerfd). */
#define _GNU_SOURCE /* sendmmsg, recvmmsg, sched_setaffinity */

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/timerfd.h>
#include <unistd.h>

#include "db.h"

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
  hic_figures(&t->hic, &ph->hic_max_ns, &ph->hic_ns, &ph->hic_work_ns,
              &ph->hic_work_n);
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

void lib_parent(const db_opts_t *o, db_mode_t mode, size_t payload, int nrecv,
                int in, int out, db_phase_t *ph, db_phase_t *lat) {
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
  dmq_send_opts_init(&t->so);
  t->so.mode = t->reliable ? DMQ_SEND_RELIABLE : DMQ_SEND_BEST_EFFORT;
  t->so.cb = t->reliable ? tx_on_outcome : NULL;
  t->so.user_data = t;
  char l[DB_LINE];
  expect_line(in, l, sizeof(l));
  if (strncmp(l, "ADDR ", 5) != 0)
    die("bad ADDR");
  const char *seed = l + 5;
  uv_loop_init(&t->loop);
  t->rt = db_runtime_new(o, &t->loop, "sender");
  t->node = dmq_uv_node(t->rt);
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
