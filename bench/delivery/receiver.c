/* delivery_bench: the library receiver(s), all in the child process on one
 * libuv loop; counts, checks order and histograms latency per message. */
#define _GNU_SOURCE /* sendmmsg, recvmmsg, sched_setaffinity */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <unistd.h>

#include "db.h"

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
    db_rx_report_t rep = {
        .count = r->count,
        .last_ns = r->last_ns,
        .cpu_ns = cpu_ns() - r->cpu0,
        .p50_ns = hist_pct(&r->h, 0.50),
        .p99_ns = hist_pct(&r->h, 0.99),
        .lat_n = r->h.n,
        .kdrops = socket_drops(r->ports, r->n) - r->kd0,
        .received = rc - r->received0,
        .delivered = dl - r->delivered0,
        .rxdrops = dr - r->drops0,
        .disorder = r->disorder,
        .events = r->events - r->events0,
        .lost_be = lo - r->lost0,
        .tails = tails,
    };
    hic_figures(&r->hic, &rep.hic_max_ns, &rep.hic_ns, &rep.hic_work_ns,
                &rep.hic_work_n);
    report_write(r->out, &rep);
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

void lib_child(const db_opts_t *o, int nrecv, int in, int out) {
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
    rx_node_t *rn = &r->nodes[i];
    rn->r = r;
    rn->idx = i;
    rn->rt = db_runtime_new(o, &r->loop, names[i]);
    dmq_node_t *n = dmq_uv_node(rn->rt);
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
