/* delivery_bench: one JSON object per scenario on stdout (fields in
 * docs/bench.md). */
#include <inttypes.h>
#include <stdio.h>

#include "db.h"

static void print_num(const char *key, double v, int prec) {
  if (v == v) /* not NaN */
    printf(",\"%s\":%.*f", key, prec, v);
  else
    printf(",\"%s\":null", key);
}

double report_scenario(const db_opts_t *o, db_mode_t mode, size_t payload,
                       int nrecv, double raw_rate, double zmq_rate,
                       const db_phase_t *ph, const db_phase_t *lat) {
  const db_rx_report_t *rx = &ph->rx;
  double win = (double)(rx->last_ns > ph->t0 ? rx->last_ns - ph->t0 : 1) /
               (double)DB_NS_PER_S;
  double wall = (double)(ph->t1 - ph->t0) / (double)DB_NS_PER_S;
  double rate = (double)rx->count / win;
  double loss =
      ph->sent > 0
          ? (double)(ph->sent - (rx->count < ph->sent ? rx->count : ph->sent)) /
                (double)ph->sent
          : 0;
  double cpu = (double)(ph->cpu + rx->cpu_ns) / (double)DB_NS_PER_S / wall;
  printf("{\"mode\":\"%s\",\"payload\":%zu,\"sealed\":%s", mode_names[mode],
         payload, o->keyed ? "true" : "false");
  print_num("msgs_per_s", rate, 0);
  print_num("loss", loss, 6);
  print_num("p50_us", (double)lat->rx.p50_ns / (double)DB_NS_PER_US, 1);
  print_num("p99_us", (double)lat->rx.p99_ns / (double)DB_NS_PER_US, 1);
  print_num("cpu_pct", cpu * 100, 1);
  print_num("ratio_to_raw",
            mode == M_RAW  ? 1.0
            : raw_rate > 0 ? rate / raw_rate
                           : 0.0 / 0.0,
            3);
  if (zmq_rate > 0 && mode != M_ZMQ)
    print_num("ratio_to_zmq", rate / zmq_rate, 3);
  printf(",\"receivers\":%d,\"pace_us\":%d,\"pinned\":%s", nrecv, o->pace_us,
         o->pin ? "true" : "false");
  if (o->stall_ms > 0 && !DB_BASELINE(mode))
    printf(",\"stall_ms\":%" PRIu32 ",\"stall_side\":\"%s\"", o->stall_ms,
           o->stall_rx ? "rx" : "tx");
  print_num("duration_s", win, 3);
  print_num("cpu_sender_pct",
            (double)ph->cpu / (double)DB_NS_PER_S / wall * 100, 1);
  print_num("cpu_receiver_pct",
            (double)rx->cpu_ns / (double)DB_NS_PER_S / wall * 100, 1);
  /* CPU of both processes per delivered message, sender and receiver:
   * unlike msgs_per_s it does not depend on how much CPU the scheduler
   * gave each process (see "Against ZeroMQ") */
  print_num("cpu_ns_per_msg_sender",
            rx->count > 0 ? (double)ph->cpu / (double)rx->count : 0.0 / 0.0, 0);
  print_num("cpu_ns_per_msg_receiver",
            rx->count > 0 ? (double)rx->cpu_ns / (double)rx->count : 0.0 / 0.0,
            0);
  printf(",\"attempts\":%" PRIu64 ",\"sent\":%" PRIu64 ",\"delivered\":%" PRIu64
         ",\"eagain\":%" PRIu64 ",\"errors\":%" PRIu64,
         ph->attempts, ph->sent, rx->count, ph->eagain, ph->errors);
  if (mode == M_RELIABLE || mode == M_BCAST_REL)
    printf(",\"outcome_delivered\":%" PRIu64 ",\"outcome_failed\":%" PRIu64
           ",\"retransmits\":%" PRIu64 ",\"disorder\":%" PRIu64,
           ph->delivered_out, ph->failed_out, ph->retransmits, rx->disorder);
  if (!DB_BASELINE(mode)) {
    uint64_t net_lost =
        ph->sent_be > rx->received ? ph->sent_be - rx->received : 0;
    if (mode == M_BE || mode == M_BCAST_BE) {
      double mpd =
          ph->pkts_out > 0 ? (double)ph->data_msgs / (double)ph->pkts_out : 0;
      uint64_t kd = rx->kdrops + ph->softnet;
      double est = (double)kd * mpd;
      double low = est - (0.02 * est + 2 * mpd);
      double high = est * DB_GRO_MAX_RUN + 0.02 * est + 2 * mpd;
      /* every message counted somewhere; the network's share matches the
       * kernel's drops times the packing (an average: 2%). A drop counts
       * one packet, and a receiving socket with UDP_GRO (the UDP
       * transport on Linux) queues a GSO sender's run of up to
       * DB_GRO_MAX_RUN datagrams as one packet: between 1x and that many
       * times the estimate. */
      /* (tail probes: in sent_be, received and delivered_app, not in
       * sent and count) */
      int accounted = ph->sent + ph->tails == ph->sent_be + ph->dropped_be &&
                      ph->sent_be == rx->received + net_lost &&
                      rx->received == rx->delivered + rx->rxdrops &&
                      rx->delivered == rx->count + rx->tails &&
                      rx->lost_be == net_lost && (net_lost == 0) == (kd == 0) &&
                      (double)net_lost >= low && (double)net_lost <= high;
      printf(",\"sent_be\":%" PRIu64 ",\"dropped_be\":%" PRIu64
             ",\"rx_lib_drops\":%" PRIu64 ",\"net_lost\":%" PRIu64
             ",\"rx_lost_be\":%" PRIu64 ",\"tail_probes\":%" PRIu64,
             ph->sent_be, ph->dropped_be, rx->rxdrops, net_lost, rx->lost_be,
             ph->tails);
      print_num("msgs_per_dgram", mpd, 2);
      print_num("net_lost_est", est, 0);
      printf(",\"accounted\":%s", accounted ? "true" : "false");
    }
    printf(",\"tx_failed\":%" PRIu64 ",\"member_events\":%" PRIu64,
           ph->tx_failed,
           rx->events + lat->rx.events + ph->tx_events + lat->tx_events);
  }
  /* datagrams the kernel dropped (a reliable sender retransmits them) */
  printf(",\"kernel_drops\":%" PRIu64 ",\"softnet_drops\":%" PRIu64, rx->kdrops,
         ph->softnet);
  if (!DB_BASELINE(mode))
    printf(",\"sender_kernel_drops\":%" PRIu64, ph->tx_kdrops);
  double lwin = (double)(lat->t1 - lat->t0) / (double)DB_NS_PER_S;
  print_num("lat_rate",
            (double)lat->sent / (o->latency_s > 0 ? o->latency_s : 1), 0);
  printf(",\"lat_samples\":%" PRIu64, lat->rx.lat_n);
  print_num("lat_wall_s", lwin, 3);
  print_num("lat_cpu_sender_pct",
            (double)lat->cpu / (double)DB_NS_PER_S / lwin * 100, 1);
  print_num("lat_cpu_receiver_pct",
            (double)lat->rx.cpu_ns / (double)DB_NS_PER_S / lwin * 100, 1);
  if (!DB_BASELINE(mode))
    printf(",\"lat_retransmits\":%" PRIu64, lat->retransmits);
  if (o->hiccup) {
    print_num("hiccup_max_us_sender", (double)lat->hic_max_ns / 1e3, 0);
    print_num("hiccup_max_us_receiver", (double)lat->rx.hic_max_ns / 1e3, 0);
    print_num("hiccup_ms_sender", (double)lat->hic_ns / 1e6, 1);
    print_num("hiccup_ms_receiver", (double)lat->rx.hic_ns / 1e6, 1);
    printf(",\"hiccup_rt\":%s", hic_rt_seen == 1 ? "true" : "false");
    print_num("cpu_speed_pct_sender",
              hic_speed(lat->hic_work_ns, lat->hic_work_n), 0);
    print_num("cpu_speed_pct_receiver",
              hic_speed(lat->rx.hic_work_ns, lat->rx.hic_work_n), 0);
  }
  print_num("loadavg", loadavg(), 2);
  printf("}\n");
  fflush(stdout);
  return rate;
}
