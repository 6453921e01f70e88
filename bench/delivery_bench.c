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
 *   zmq                ZeroMQ PUSH/PULL over TCP on 127.0.0.1, one ZeroMQ
 *                      message per message (delivery/zmq.c; only in a build
 *                      that found libzmq: the baseline a C user would pick
 *                      instead of libdmq)
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
 * The tick sets the burst size (why 250 us: docs/bench.md).
 * lat_cpu_*_pct: CPU of each side during the latency phase.
 * --pin 1 (default) puts the sender on CPU 0 and the receiver(s) on CPU 1:
 * between phases the two wake each other through the command pipes, and
 * the scheduler's wake-affine placement would otherwise often run both on
 * one CPU for the first tens of ms of the next phase (docs/bench.md).
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
 * payload; null when raw_udp was not run; after the zmq line, every line
 * also carries ratio_to_zmq, msgs_per_s / zmq msgs_per_s).
 *
 * Usage: delivery_bench [--duration-s S] [--latency-s S] [--payload 100,1024]
 *          [--modes raw_udp,zmq,reliable,best_effort,bcast_reliable,
 *                   bcast_best_effort(,raw_udp_mmsg)]
 *          [--receivers N] [--batch N] [--profile lan|wan|local|fast]
 *          [--queue-msgs N] [--window N] [--rx-work-ns NS] [--trace-ms MS]
 *          [--lat-load F] [--pace-us US] [--lat-trace-us US] [--pin 0|1]
 *          [--stall-ms MS] [--stall-side rx|tx] [--hiccup 0|1]
 * --trace-ms MS prints the sender's queue (queued, in flight, acks) on
 * stderr every MS ms of each library phase. --stall-ms MS stops the
 * receiver (or, --stall-side tx, the sender) once for MS ms halfway through
 * the latency phase. --hiccup 0 turns off the hiccup meter (db.h).
 * Defaults: 3 s, 1.5 s, 100,1024, the six modes above (zmq when built),
 * 10 receivers,
 * batch 256, lan, the library's queue and window, pace 250 us. Exit
 * status 2 on a bad option or a setup failure (message on stderr).
 *
 * The parts of the program are listed in delivery/db.h.
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

#include <errno.h>
#include <signal.h>
#include <stdio.h>

#include <sys/wait.h>
#include <unistd.h>

#include "delivery/db.h"

/* One scenario: fork the receiver side, run the sender side, report. */
static double run_scenario(const db_opts_t *o, db_mode_t mode, size_t payload,
                           double raw_rate, double zmq_rate) {
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
#ifdef DB_HAVE_ZMQ
    else if (mode == M_ZMQ)
      zmq_child(o, p2c[0], c2p[1]);
#endif
    else
      lib_child(o, nrecv, p2c[0], c2p[1]);
    _exit(0);
  }
  close(p2c[0]);
  close(c2p[1]);
  db_phase_t ph, lat;
  if (mode == M_RAW || mode == M_RAW_MMSG)
    raw_parent(o, payload, mode == M_RAW_MMSG, c2p[0], p2c[1], &ph, &lat);
#ifdef DB_HAVE_ZMQ
  else if (mode == M_ZMQ)
    zmq_parent(o, payload, c2p[0], p2c[1], &ph, &lat);
#endif
  else
    lib_parent(o, mode, payload, nrecv, c2p[0], p2c[1], &ph, &lat);
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  close(p2c[1]);
  close(c2p[0]);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    die("the receiver process failed");
  return report_scenario(o, mode, payload, nrecv, raw_rate, zmq_rate, &ph,
                         &lat);
}

int main(int argc, char **argv) {
  db_opts_t o;
  if (db_parse_args(argc, argv, &o) != 0)
    return 2;
  signal(SIGPIPE, SIG_IGN);
  hic_calibrate();
  static const db_mode_t order[] = {M_RAW,       M_ZMQ,      M_RELIABLE, M_BE,
                                    M_BCAST_REL, M_BCAST_BE, M_RAW_MMSG};
  for (size_t p = 0; p < o.n_payload; p++) {
    double raw = 0, zmq = 0;
    for (size_t k = 0; k < sizeof(order) / sizeof(order[0]); k++) {
      if (!o.modes[order[k]])
        continue;
      double r = run_scenario(&o, order[k], o.payload[p], raw, zmq);
      if (order[k] == M_RAW)
        raw = r;
      else if (order[k] == M_ZMQ)
        zmq = r;
    }
  }
  return 0;
}
