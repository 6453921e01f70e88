/* The core alone: this program links the dmq_core objects with nothing but
 * libc and libm (no libuv, no libresolv, no msgpack-c library) and drives
 * two nodes by hand through a loopback transport of its own: they join,
 * one serves a channel, the other sends it a reliable message. It fails to
 * link if the core ever depends on more. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmq/dmq.h"

#define LOOP_PKTS 256
#define LOOP_MAX 65536

typedef struct pkt {
  int to;
  char from[16];
  size_t len;
  unsigned char buf[LOOP_MAX];
} pkt_t;

static pkt_t q[LOOP_PKTS];
static size_t qn;
static dmq_node_t *nodes[2];
static dmq_transport_t tps[2];
static int received, delivered;

static int loop_send(dmq_transport_t *t, const char *addr, const void *buf,
                     size_t len, void *cookie) {
  if (len > LOOP_MAX)
    return DMQ_ETOOBIG;
  if (strncmp(addr, "loop://", 7) != 0 || (addr[7] != '0' && addr[7] != '1'))
    return DMQ_EADDR;
  if (qn < LOOP_PKTS) {
    pkt_t *p = &q[qn++];
    p->to = addr[7] - '0';
    snprintf(p->from, sizeof p->from, "loop://%d", t == &tps[0] ? 0 : 1);
    p->len = len;
    memcpy(p->buf, buf, len);
  }
  if (cookie != NULL)
    dmq_transport_send_done(t, cookie, 0);
  return 0;
}

static const dmq_transport_ops_t loop_ops = {
    .size = sizeof(dmq_transport_ops_t),
    .scheme = "loop",
    .caps = DMQ_TRANSPORT_DATAGRAM | DMQ_TRANSPORT_RELIABLE,
    .send = loop_send,
};

static void on_recv(dmq_node_t *n, dmq_channel_t *ch, const dmq_message_t *m,
                    void *ud) {
  (void)n, (void)ch, (void)m, (void)ud;
  received++;
}

static void on_outcome(dmq_node_t *n, const dmq_outcome_info_t *o, void *ud) {
  (void)n, (void)ud;
  if (o->outcome == DMQ_OUTCOME_DELIVERED)
    delivered++;
}

static void run(uint64_t now) {
  for (int i = 0; i < 2; i++)
    if (dmq_node_next_deadline(nodes[i]) <= now)
      dmq_node_tick(nodes[i], now);
  while (qn > 0) {
    static pkt_t batch[LOOP_PKTS];
    size_t n = qn;
    memcpy(batch, q, n * sizeof q[0]);
    qn = 0;
    for (size_t i = 0; i < n; i++)
      dmq_node_recv(nodes[batch[i].to], &tps[batch[i].to], batch[i].from,
                    batch[i].buf, batch[i].len, now);
  }
}

int main(void) {
  const char *names[2] = {"a", "b"}, *addrs[2] = {"loop://0", "loop://1"};
  for (int i = 0; i < 2; i++) {
    dmq_config_t cfg;
    if (dmq_config_init(&cfg, DMQ_PROFILE_LAN) != 0)
      return 1;
    cfg.name = names[i];
    cfg.advertise_addr = addrs[i];
    cfg.generation = 1;
    cfg.rng_seed = (uint64_t)i + 1;
    tps[i].ops = &loop_ops;
    tps[i].mtu = 1400;
    if (dmq_node_new(&cfg, NULL, &nodes[i]) != 0 ||
        dmq_node_add_transport(nodes[i], &tps[i]) != 0 ||
        dmq_node_start(nodes[i], 0) != 0)
      return 1;
  }
  dmq_channel_t *ch;
  if (dmq_channel_open(nodes[1], "ch", on_recv, NULL, &ch) != 0)
    return 1;
  const char *seed = "loop://0";
  if (dmq_node_join(nodes[1], &seed, 1, 0) != 0)
    return 1;
  int sent = 0;
  for (uint64_t now = 0; now < 30000 && delivered == 0; now += 10) {
    run(now);
    if (!sent && dmq_member_serves(nodes[0], "b", "ch")) {
      dmq_send_opts_t o;
      dmq_send_opts_init(&o);
      o.mode = DMQ_SEND_RELIABLE;
      o.cb = on_outcome;
      if (dmq_send(nodes[0], "b", "ch", "hi", 2, &o, now, NULL) != 0)
        return 1;
      sent = 1;
    }
  }
  for (int i = 0; i < 2; i++)
    dmq_node_delete(nodes[i]);
  if (received != 1 || delivered != 1) {
    fprintf(stderr, "core_link: received %d delivered %d\n", received,
            delivered);
    return 1;
  }
  printf("core_link: OK\n");
  return 0;
}
