/* In-memory transport for the unit tests: see memnet.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "memnet.h"

static int memnet_send(dmq_transport_t *t, const char *addr, const void *buf,
                       size_t len, void *cookie) {
  (void)cookie;
  memnet_tp_t *m = (memnet_tp_t *)t;
  memnet_t *net = m->net;
  if (net->refuse)
    return DMQ_ETRANSPORT;
  if (strncmp(addr, "mem://", 6) != 0)
    return DMQ_EADDR;
  if (net->max_len != 0 && len > net->max_len)
    return DMQ_ETOOBIG;
  if (net->tail - net->head >= net->cap)
    return DMQ_EAGAIN;
  if (net->blackhole)
    return 0;
  memnet_pkt_t *p = &net->q[net->tail++ % net->cap];
  p->to = atoi(addr + 6);
  p->from = m->idx;
  p->buf = malloc(len ? len : 1);
  assert_non_null(p->buf);
  memcpy(p->buf, buf, len);
  p->len = len;
  return 0;
}

const dmq_transport_ops_t memnet_ops = {
    .size = sizeof(dmq_transport_ops_t),
    .scheme = "mem",
    .caps = DMQ_TRANSPORT_DATAGRAM | DMQ_TRANSPORT_RELIABLE,
    .send = memnet_send,
};

void memnet_init(memnet_t *net, size_t cap) {
  memset(net, 0, sizeof(*net));
  net->q = calloc(cap, sizeof(*net->q));
  assert_non_null(net->q);
  net->cap = cap;
}

void memnet_free(memnet_t *net) {
  while (net->head < net->tail) {
    memnet_pkt_t *k = &net->q[net->head++ % net->cap];
    free(k->buf);
    k->buf = NULL;
  }
  free(net->q);
  net->q = NULL;
}

void memnet_tp_init(memnet_tp_t *tp, memnet_t *net, int idx) {
  memset(tp, 0, sizeof(*tp));
  tp->t.ops = &memnet_ops;
  tp->t.mtu = 1400;
  tp->net = net;
  tp->idx = idx;
  snprintf(tp->addr, sizeof(tp->addr), "mem://%d", idx);
}

int memnet_node_new(memnet_t *net, memnet_tp_t *tp, int idx,
                    const dmq_alloc_t *alloc, dmq_node_t **node) {
  dmq_config_t cfg;
  dmq_config_init(&cfg, DMQ_PROFILE_LAN);
  char name[16];
  snprintf(name, sizeof(name), "n%d", idx);
  memnet_tp_init(tp, net, idx);
  cfg.name = name;
  cfg.advertise_addr = tp->addr;
  cfg.generation = 1;
  cfg.rng_seed = (uint64_t)idx + 1;
  if (net->on_config != NULL)
    net->on_config(&cfg, idx, net->on_config_ud);
  int rc = dmq_node_new(&cfg, alloc, node);
  if (rc != 0)
    return rc;
  return dmq_node_add_transport(*node, &tp->t);
}

void memnet_deliver(memnet_t *net, dmq_node_t *const *node, memnet_tp_t *tp,
                    int n, uint64_t now) {
  while (net->head < net->tail) {
    /* a copy: what the node sends while receiving may reuse the slot */
    memnet_pkt_t k = net->q[net->head % net->cap];
    net->q[net->head++ % net->cap].buf = NULL;
    int lost = k.from >= 0 && k.from < 32 && (net->drop_from >> k.from) & 1u;
    if (!lost && k.to >= 0 && k.to < n && node[k.to] != NULL)
      dmq_node_recv(node[k.to], &tp[k.to].t, tp[k.from].addr, k.buf, k.len,
                    now);
    free(k.buf);
  }
}

void memnet_run(memnet_t *net, dmq_node_t *const *node, memnet_tp_t *tp, int n,
                uint64_t *now, uint64_t until) {
  long guard = 0;
  while (*now <= until) {
    assert_true(++guard < 1000000); /* a deadline that never moves on */
    memnet_deliver(net, node, tp, n, *now);
    uint64_t d = DMQ_NEVER;
    for (int i = 0; i < n; i++) {
      uint64_t x = node[i] ? dmq_node_next_deadline(node[i]) : DMQ_NEVER;
      if (x < d)
        d = x;
    }
    if (d == DMQ_NEVER || d > until)
      break;
    if (d > *now)
      *now = d;
    for (int i = 0; i < n; i++)
      if (node[i] && dmq_node_next_deadline(node[i]) <= *now)
        dmq_node_tick(node[i], *now);
  }
  if (*now < until)
    *now = until;
}
