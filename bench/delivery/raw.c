/* delivery_bench: the raw UDP baseline (no library): sendto() in a tight
 * loop (or sendmmsg() batches) against poll()+recv() until EAGAIN (or
 * recvmmsg()), one datagram per message. */
#define _GNU_SOURCE /* sendmmsg, recvmmsg, sched_setaffinity */

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "db.h"

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
void raw_child(const db_opts_t *o, int in, int out, int mmsg) {
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
        db_rx_report_t rep = {
            .count = count,
            .last_ns = last_ns,
            .cpu_ns = cpu_ns() - cpu0,
            .p50_ns = hist_pct(&h, 0.50),
            .p99_ns = hist_pct(&h, 0.99),
            .lat_n = h.n,
            .kdrops = socket_drops(&port, 1) - kd0,
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
  free(bufs);
  hist_free(&h);
  close(fd);
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

static void raw_send_due(void *ctx, uint64_t n, db_phase_t *ph) {
  raw_send(ctx, n, ph);
}

/* Parent side of raw_udp / raw_udp_mmsg: a tight send loop, then a paced
 * one (a 1 ms clock_nanosleep tick sending what is due). */
void raw_parent(const db_opts_t *o, size_t payload, int mmsg, int in, int out,
                db_phase_t *ph, db_phase_t *lat) {
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
  paced_latency(o, in, out, ph, lat, raw_send_due, r);
  line_write(out, "QUIT");
  close(r->fd);
  free(r->bufs);
  free(r);
}
