/* delivery_bench: the ZeroMQ baseline (mode zmq, built only when libzmq is
 * found): what a C user would pick instead of libdmq to move messages. A
 * PUSH socket in the sender connects over TCP to a PULL socket bound on
 * 127.0.0.1 in the receiver, one ZeroMQ message per bench message, the
 * library's defaults otherwise (one I/O thread per context, high-water
 * mark 1000 messages, its own write batching). The sender's zmq_send()
 * blocks at the high-water mark, which is ZeroMQ's back-pressure (the
 * counterpart of DMQ_EAGAIN); TCP loses nothing, so a phase ends when the
 * receiver's count stops moving. The receiver zmq_poll()s its socket and
 * the command pipe and reads with ZMQ_DONTWAIT until EAGAIN. Both phases
 * and the report are those of the other modes (delivery_bench.c). */
#define _GNU_SOURCE

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zmq.h>

#include "db.h"

static void zdie(const char *what) {
  fprintf(stderr, "delivery_bench: zmq: %s: %s\n", what,
          zmq_strerror(zmq_errno()));
  exit(2);
}

static void *zsock(void *ctx, int type) {
  void *s = zmq_socket(ctx, type);
  int linger = 0;
  if (s == NULL)
    zdie("zmq_socket");
  if (zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger)) != 0)
    zdie("ZMQ_LINGER");
  return s;
}

/* Child: PULL bound on 127.0.0.1 (any port); its endpoint goes to the
 * parent as "ADDR tcp://127.0.0.1:<port>". */
void zmq_child(const db_opts_t *o, int in, int out) {
  void *ctx = zmq_ctx_new();
  if (ctx == NULL)
    zdie("zmq_ctx_new");
  void *s = zsock(ctx, ZMQ_PULL);
  if (zmq_bind(s, "tcp://127.0.0.1:*") != 0)
    zdie("zmq_bind");
  char ep[256];
  size_t epl = sizeof(ep);
  if (zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, ep, &epl) != 0)
    zdie("ZMQ_LAST_ENDPOINT");
  db_hist_t h;
  hist_init(&h, o->lat_trace_us);
  char *buf = malloc(DB_RAW_SLOT);
  if (buf == NULL)
    die("out of memory");
  line_write(out, "ADDR %s", ep);
  line_write(out, "READY");
  uint64_t count = 0, last_ns = 0, cpu0 = 0;
  int lat_on = 0;
  db_hic_t hic;
  memset(&hic, 0, sizeof(hic));
  for (;;) {
    zmq_pollitem_t p[2] = {{s, 0, ZMQ_POLLIN, 0}, {NULL, in, ZMQ_POLLIN, 0}};
    if (zmq_poll(p, 2, -1) < 0) {
      if (zmq_errno() == EINTR)
        continue;
      zdie("zmq_poll");
    }
    if (p[0].revents & ZMQ_POLLIN) {
      uint64_t got = 0;
      for (;;) {
        int r = zmq_recv(s, buf, DB_RAW_SLOT, ZMQ_DONTWAIT);
        if (r < 0)
          break;
        got++;
        if (lat_on && (size_t)r >= sizeof(db_hdr_t)) {
          db_hdr_t hd;
          memcpy(&hd, buf, sizeof(hd));
          hist_add(&h, hd.ts_ns);
        }
      }
      if (got > 0) {
        count += got;
        last_ns = mono_ns();
      }
    }
    if (p[1].revents & (ZMQ_POLLIN | ZMQ_POLLERR)) {
      char cmd[DB_LINE];
      if (!line_read(in, cmd, sizeof(cmd), 0))
        continue;
      if (strncmp(cmd, "RESET", 5) == 0) {
        lat_on = atoi(cmd + 6);
        count = last_ns = 0;
        hist_reset(&h);
        hic_start(&hic, lat_on && o->hiccup);
        cpu0 = cpu_ns();
        line_write(out, "OK");
      } else if (strcmp(cmd, "COUNT") == 0) {
        line_write(out, "C %" PRIu64, count);
      } else if (strcmp(cmd, "REPORT") == 0) {
        hist_trace(&h, "zmq");
        hic_stop(&hic);
        db_rx_report_t rep = {
            .count = count,
            .last_ns = last_ns,
            .cpu_ns = cpu_ns() - cpu0,
            .p50_ns = hist_pct(&h, 0.50),
            .p99_ns = hist_pct(&h, 0.99),
            .lat_n = h.n,
            .received = count,
            .delivered = count,
        };
        hic_figures(&hic, &rep.hic_max_ns, &rep.hic_ns, &rep.hic_work_ns,
                    &rep.hic_work_n);
        report_write(out, &rep);
      } else if (strcmp(cmd, "QUIT") == 0) {
        break;
      }
    }
  }
  hic_stop(&hic);
  free(buf);
  hist_free(&h);
  zmq_close(s);
  zmq_ctx_term(ctx);
}

/* Send up to `want` messages (blocking at the high-water mark). */
static uint64_t zsend(void *s, char *buf, size_t payload, uint64_t want,
                      uint64_t *seq, db_phase_t *ph) {
  uint64_t done = 0;
  while (done < want) {
    db_hdr_t hd = {mono_ns(), *seq, DB_MAGIC, 0};
    memcpy(buf, &hd, sizeof(hd));
    ph->attempts++;
    if (zmq_send(s, buf, payload, 0) != (int)payload) {
      if (zmq_errno() == EINTR)
        continue;
      ph->errors++;
      break;
    }
    ph->sent++;
    (*seq)++;
    done++;
  }
  return done;
}

typedef struct zmq_tx {
  void *s;
  char *buf;
  size_t payload;
  uint64_t *seq;
} zmq_tx_t;

static void zsend_due(void *ctx, uint64_t n, db_phase_t *ph) {
  zmq_tx_t *z = ctx;
  zsend(z->s, z->buf, z->payload, n, z->seq, ph);
}

/* Parent: PUSH connected to the child's endpoint; a tight send loop, then
 * a paced one (every --pace-us, what is due for half the rate). */
void zmq_parent(const db_opts_t *o, size_t payload, int in, int out,
                db_phase_t *ph, db_phase_t *lat) {
  char l[DB_LINE];
  expect_line(in, l, sizeof(l));
  if (strncmp(l, "ADDR ", 5) != 0)
    die("bad ADDR");
  char ep[DB_LINE];
  snprintf(ep, sizeof(ep), "%s", l + 5);
  expect_line(in, l, sizeof(l)); /* READY */
  void *ctx = zmq_ctx_new();
  if (ctx == NULL)
    zdie("zmq_ctx_new");
  void *s = zsock(ctx, ZMQ_PUSH);
  /* a send blocked at the high-water mark gives up (an error) if the
   * receiver stops reading for this long (it died) */
  int sndtimeo = DB_ANSWER_MS;
  if (zmq_setsockopt(s, ZMQ_SNDTIMEO, &sndtimeo, sizeof(sndtimeo)) != 0)
    zdie("ZMQ_SNDTIMEO");
  if (zmq_connect(s, ep) != 0)
    zdie("zmq_connect");
  char *buf = calloc(1, payload);
  if (buf == NULL)
    die("out of memory");
  uint64_t seq = 0;

  /* throughput */
  memset(ph, 0, sizeof(*ph));
  child_reset(in, out, 0);
  uint64_t c0 = cpu_ns();
  ph->t0 = mono_ns();
  uint64_t end = ph->t0 + (uint64_t)(o->duration_s * (double)DB_NS_PER_S);
  do
    zsend(s, buf, payload, 64, &seq, ph);
  while (mono_ns() < end);
  settle(in, out);
  ph->t1 = mono_ns();
  ph->cpu = cpu_ns() - c0;
  child_report(in, out, &ph->rx);

  /* latency at half the rate */
  zmq_tx_t z = {s, buf, payload, &seq};
  paced_latency(o, in, out, ph, lat, zsend_due, &z);
  line_write(out, "QUIT");
  free(buf);
  zmq_close(s);
  zmq_ctx_term(ctx);
}
