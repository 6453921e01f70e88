/* Host transport: two nodes joined only through host transports, the test
 * carrying their bytes through an in-memory queue on a fake clock; and the
 * transport's own contract: completions delivered exactly once, never
 * inside send(), ECLOSED on close, re-entrant close and flush. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <dmq/dmq.h>
#include <dmq/host.h>

/* ---------------------------------------------------------------------- */
/* an in-memory network of host endpoints                                  */

#define NET_MAX_EP 4
/* Most messages one delivery pass handles (a bound against ping-pong). */
#define NET_MAX_PASS 100000
#define NET_START_MS 1000

typedef struct net_msg {
  struct net_msg *next;
  int from;
  char dst[64];
  size_t len;
  unsigned char data[];
} net_msg_t;

typedef struct net net_t;

typedef struct net_ep {
  net_t *net;
  int idx;
  char addr[32];
  dmq_node_t *node;
  dmq_transport_t *t;
  int closed_calls;
  int left_seen; /* LEFT events about the other endpoint */
} net_ep_t;

struct net {
  uint64_t now;
  net_ep_t ep[NET_MAX_EP];
  int nep;
  net_msg_t *head, *tail;
  uint64_t sent, delivered;
};

static int net_send(void *ud, const char *dst, const void *buf, size_t len) {
  net_ep_t *ep = ud;
  net_t *net = ep->net;
  net_msg_t *m = malloc(sizeof(*m) + len);
  assert_non_null(m);
  m->next = NULL;
  m->from = ep->idx;
  assert_true(strlen(dst) < sizeof(m->dst));
  strcpy(m->dst, dst);
  m->len = len;
  memcpy(m->data, buf, len);
  if (net->tail != NULL)
    net->tail->next = m;
  else
    net->head = m;
  net->tail = m;
  net->sent++;
  return 0;
}

static void net_on_recv(dmq_transport_t *t, const char *from, const void *buf,
                        size_t len) {
  net_ep_t *ep = t->owner;
  assert_int_equal(dmq_node_recv(ep->node, t, from, buf, len, ep->net->now), 0);
}

static void net_on_closed(dmq_transport_t *t) {
  net_ep_t *ep = t->owner;
  ep->closed_calls++;
}

static void net_member_cb(dmq_node_t *node, dmq_member_event_t ev,
                          const dmq_member_info_t *m, void *ud) {
  (void)node;
  (void)m;
  net_ep_t *ep = ud;
  if (ev == DMQ_EVENT_LEFT)
    ep->left_seen++;
}

static void net_add(net_t *net, const char *name) {
  net_ep_t *ep = &net->ep[net->nep];
  ep->net = net;
  ep->idx = net->nep++;
  snprintf(ep->addr, sizeof(ep->addr), "host:%s", name);
  dmq_config_t cfg;
  assert_int_equal(dmq_config_init(&cfg, DMQ_PROFILE_LOCAL), 0);
  cfg.name = name;
  cfg.advertise_addr = ep->addr;
  cfg.generation = 1;
  cfg.rng_seed = 42 + (uint64_t)ep->idx;
  assert_int_equal(dmq_node_new(&cfg, NULL, &ep->node), 0);
  dmq_node_set_member_cb(ep->node, net_member_cb, ep);
  assert_int_equal(dmq_host_transport_new(net_send, ep, &ep->t), 0);
  assert_string_equal(ep->t->ops->scheme, "host");
  assert_int_equal(ep->t->ops->caps,
                   DMQ_TRANSPORT_DATAGRAM | DMQ_TRANSPORT_RELIABLE);
  assert_int_equal(ep->t->mtu, DMQ_HOST_DEFAULT_MTU);
  ep->t->owner = ep;
  ep->t->on_recv = net_on_recv;
  ep->t->on_closed = net_on_closed;
  assert_int_equal(dmq_node_add_transport(ep->node, ep->t), 0);
  assert_int_equal(dmq_node_start(ep->node, net->now), 0);
}

static net_ep_t *net_find(net_t *net, const char *addr) {
  for (int i = 0; i < net->nep; i++)
    if (strcmp(net->ep[i].addr, addr) == 0)
      return &net->ep[i];
  return NULL;
}

/* Deliver everything queued, including what deliveries send. */
static void net_deliver(net_t *net) {
  for (int n = 0; net->head != NULL && n < NET_MAX_PASS; n++) {
    net_msg_t *m = net->head;
    net->head = m->next;
    if (net->head == NULL)
      net->tail = NULL;
    net_ep_t *to = net_find(net, m->dst);
    if (to != NULL && to->node != NULL) {
      net->delivered++;
      assert_int_equal(dmq_host_transport_input(to->t, net->ep[m->from].addr,
                                                m->data, m->len),
                       0);
    }
    free(m);
  }
  assert_null(net->head);
}

/* Advance the clock to the next deadline and tick the nodes due. */
static void net_step(net_t *net) {
  uint64_t next = DMQ_NEVER;
  for (int i = 0; i < net->nep; i++) {
    if (net->ep[i].node == NULL)
      continue;
    uint64_t d = dmq_node_next_deadline(net->ep[i].node);
    if (d < next)
      next = d;
  }
  assert_true(next != DMQ_NEVER);
  if (next > net->now)
    net->now = next;
  for (int i = 0; i < net->nep; i++) {
    net_ep_t *ep = &net->ep[i];
    if (ep->node != NULL && dmq_node_next_deadline(ep->node) <= net->now)
      assert_int_equal(dmq_node_tick(ep->node, net->now), 0);
  }
  net_deliver(net);
}

static int net_sees(net_t *net, int obs, int subj, dmq_member_state_t st) {
  dmq_member_info_t info;
  return dmq_node_member(net->ep[obs].node, dmq_node_name(net->ep[subj].node),
                         &info) == 0 &&
         info.state == st;
}

static int net_run_until(net_t *net, uint64_t within_ms,
                         int (*pred)(net_t *net)) {
  uint64_t end = net->now + within_ms;
  net_deliver(net);
  while (net->now < end) {
    if (pred(net))
      return 1;
    net_step(net);
  }
  return pred(net);
}

static int net_converged(net_t *net) {
  for (int i = 0; i < net->nep; i++)
    for (int j = 0; j < net->nep; j++)
      if (i != j && !net_sees(net, i, j, DMQ_MEMBER_ALIVE))
        return 0;
  return 1;
}

static int net_b_sees_a_left(net_t *net) {
  return net_sees(net, 1, 0, DMQ_MEMBER_LEFT);
}

static void net_free_queue(net_t *net) {
  while (net->head != NULL) {
    net_msg_t *m = net->head;
    net->head = m->next;
    free(m);
  }
  net->tail = NULL;
}

static void test_two_nodes_converge(void **state) {
  net_t net;
  memset(&net, 0, sizeof(net));
  net.now = NET_START_MS;
  net_add(&net, "a");
  net_add(&net, "b");
  const char *seed = "host:a";
  assert_int_equal(dmq_node_join(net.ep[1].node, &seed, 1, net.now), 0);
  assert_true(net_run_until(&net, 10000, net_converged));
  assert_true(dmq_node_is_joined(net.ep[1].node));
  assert_true(net.delivered > 0);

  /* keep running: nobody is suspected over the host channel */
  assert_false(net_run_until(&net, 5000, net_b_sees_a_left));
  assert_true(net_converged(&net));

  /* graceful leave of a reaches b */
  assert_int_equal(dmq_node_leave(net.ep[0].node, net.now), 0);
  assert_true(net_run_until(&net, 5000, net_b_sees_a_left));
  assert_int_equal(net.ep[1].left_seen, 1);

  /* teardown order: node first, then its transport */
  for (int i = 0; i < net.nep; i++) {
    dmq_node_delete(net.ep[i].node);
    net.ep[i].node = NULL;
    net.ep[i].t->ops->close(net.ep[i].t);
    assert_int_equal(net.ep[i].closed_calls, 1);
  }
  net_free_queue(&net);
}

/* ---------------------------------------------------------------------- */
/* the transport contract                                                  */

#define REC_MAX 32
#define COOKIES 8

typedef struct rec {
  dmq_transport_t *t;
  int sends;           /* send_fn calls */
  int send_rc;         /* what send_fn returns */
  int in_send;         /* inside send_fn */
  int done[COOKIES];   /* completions per cookie */
  int status[COOKIES]; /* last status per cookie */
  int done_in_send;    /* completions seen while inside send() */
  int recvs, closed;
  char log[REC_MAX]; /* 'd' completion, 'r' recv, 'c' closed */
  int nlog;
  int close_in_done; /* close the transport from the first completion */
  int flush_in_done; /* flush again from inside a completion */
  int close_in_recv; /* close from on_recv */
  int after_close_send, after_close_input, after_close_flush;
  char last_dst[32];
  size_t last_len;
} rec_t;

static int cookie_ids[COOKIES];

static void *cookie(int i) {
  return &cookie_ids[i];
}

static int cookie_index(void *c) {
  return (int)((int *)c - cookie_ids);
}

static void rec_log(rec_t *r, char c) {
  if (r->nlog < REC_MAX)
    r->log[r->nlog++] = c;
}

static int rec_send_fn(void *ud, const char *dst, const void *buf, size_t len) {
  rec_t *r = ud;
  (void)buf;
  r->sends++;
  snprintf(r->last_dst, sizeof(r->last_dst), "%s", dst);
  r->last_len = len;
  return r->send_rc;
}

static int rec_send(rec_t *r, int i) {
  r->in_send = 1;
  int rc = r->t->ops->send(r->t, "host:peer", "x", 1, cookie(i));
  r->in_send = 0;
  return rc;
}

static void rec_on_done(dmq_transport_t *t, void *c, int status) {
  rec_t *r = t->owner;
  int i = cookie_index(c);
  assert_true(i >= 0 && i < COOKIES);
  if (r->in_send)
    r->done_in_send++;
  r->done[i]++;
  r->status[i] = status;
  rec_log(r, 'd');
  if (status == DMQ_ECLOSED) {
    r->after_close_send = t->ops->send(t, "host:peer", "x", 1, NULL);
    r->after_close_input = dmq_host_transport_input(t, "host:peer", "x", 1);
    r->after_close_flush = dmq_host_transport_flush(t);
  }
  if (r->flush_in_done) {
    r->flush_in_done = 0;
    assert_int_equal(dmq_host_transport_flush(t), 0);
  }
  if (r->close_in_done) {
    r->close_in_done = 0;
    t->ops->close(t);
    t->ops->close(t); /* twice is harmless */
  }
}

static void rec_on_recv(dmq_transport_t *t, const char *from, const void *buf,
                        size_t len) {
  rec_t *r = t->owner;
  (void)buf;
  (void)len;
  assert_string_equal(from, "host:peer");
  r->recvs++;
  rec_log(r, 'r');
  if (r->close_in_recv)
    t->ops->close(t);
}

static void rec_on_closed(dmq_transport_t *t) {
  rec_t *r = t->owner;
  r->closed++;
  rec_log(r, 'c');
  /* still valid inside on_closed, but closed */
  assert_int_equal(t->ops->send(t, "host:peer", "x", 1, cookie(0)),
                   DMQ_ECLOSED);
  assert_int_equal(dmq_host_transport_input(t, "host:peer", "x", 1),
                   DMQ_ECLOSED);
}

static void rec_init(rec_t *r) {
  memset(r, 0, sizeof(*r));
  assert_int_equal(dmq_host_transport_new(rec_send_fn, r, &r->t), 0);
  r->t->owner = r;
  r->t->on_send_done = rec_on_done;
  r->t->on_recv = rec_on_recv;
  r->t->on_closed = rec_on_closed;
}

static void test_completions_exactly_once(void **state) {
  rec_t r;
  rec_init(&r);
  for (int i = 0; i < 3; i++)
    assert_int_equal(rec_send(&r, i), 0);
  assert_int_equal(r.sends, 3);
  assert_string_equal(r.last_dst, "host:peer"); /* passed untouched */
  assert_int_equal(r.done_in_send, 0);
  for (int i = 0; i < 3; i++)
    assert_int_equal(r.done[i], 0); /* not before flush */
  assert_int_equal(dmq_host_transport_flush(r.t), 0);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(r.done[i], 1);
    assert_int_equal(r.status[i], 0);
  }
  assert_int_equal(dmq_host_transport_flush(r.t), 0);
  for (int i = 0; i < 3; i++)
    assert_int_equal(r.done[i], 1);

  /* a send without a cookie never completes */
  assert_int_equal(r.t->ops->send(r.t, "host:peer", "y", 1, NULL), 0);
  /* input delivers pending completions before the message */
  assert_int_equal(rec_send(&r, 3), 0);
  assert_int_equal(rec_send(&r, 4), 0);
  r.nlog = 0;
  assert_int_equal(dmq_host_transport_input(r.t, "host:peer", "m", 1), 0);
  assert_int_equal(r.nlog, 3);
  assert_memory_equal(r.log, "ddr", 3);
  assert_int_equal(r.done[3], 1);
  assert_int_equal(r.done[4], 1);

  /* a completion that flushes again does not see anything twice */
  assert_int_equal(rec_send(&r, 5), 0);
  assert_int_equal(rec_send(&r, 6), 0);
  r.flush_in_done = 1;
  assert_int_equal(dmq_host_transport_flush(r.t), 0);
  assert_int_equal(r.done[5], 1);
  assert_int_equal(r.done[6], 1);

  /* close completes the pending ones with ECLOSED, then on_closed */
  memset(r.done, 0, sizeof(r.done));
  assert_int_equal(rec_send(&r, 1), 0);
  assert_int_equal(rec_send(&r, 2), 0);
  r.nlog = 0;
  r.t->ops->close(r.t);
  assert_int_equal(r.done[1], 1);
  assert_int_equal(r.done[2], 1);
  assert_int_equal(r.status[1], DMQ_ECLOSED);
  assert_int_equal(r.status[2], DMQ_ECLOSED);
  assert_int_equal(r.after_close_send, DMQ_ECLOSED);
  assert_int_equal(r.after_close_input, DMQ_ECLOSED);
  assert_int_equal(r.after_close_flush, DMQ_ECLOSED);
  assert_int_equal(r.closed, 1);
  assert_memory_equal(r.log, "ddc", 3);
  for (int i = 0; i < COOKIES; i++)
    assert_true(r.done[i] <= 1);
}

static void test_close_inside_callbacks(void **state) {
  /* close from the first completion of a flush: the rest complete with
   * ECLOSED, once; the transport is freed when flush returns (ASan) */
  rec_t r;
  rec_init(&r);
  for (int i = 0; i < 4; i++)
    assert_int_equal(rec_send(&r, i), 0);
  r.close_in_done = 1;
  assert_int_equal(dmq_host_transport_flush(r.t), 0);
  assert_int_equal(r.closed, 1);
  assert_int_equal(r.status[0], 0);
  for (int i = 0; i < 4; i++)
    assert_int_equal(r.done[i], 1);
  for (int i = 1; i < 4; i++)
    assert_int_equal(r.status[i], DMQ_ECLOSED);

  /* close from on_recv */
  rec_init(&r);
  assert_int_equal(rec_send(&r, 0), 0);
  r.close_in_recv = 1;
  assert_int_equal(dmq_host_transport_input(r.t, "host:peer", "m", 1), 0);
  assert_int_equal(r.recvs, 1);
  assert_int_equal(r.done[0], 1);
  assert_int_equal(r.status[0], 0);
  assert_int_equal(r.closed, 1);
}

static void test_errors(void **state) {
  dmq_transport_t *t = NULL;
  assert_int_equal(dmq_host_transport_new(NULL, NULL, &t), DMQ_EINVAL);
  assert_null(t);
  assert_int_equal(dmq_host_transport_new(rec_send_fn, NULL, NULL), DMQ_EINVAL);
  assert_int_equal(dmq_host_transport_input(NULL, "host:x", "x", 1),
                   DMQ_EINVAL);
  assert_int_equal(dmq_host_transport_flush(NULL), DMQ_EINVAL);
  assert_int_equal(dmq_host_transport_set_mtu(NULL, 100), DMQ_EINVAL);

  rec_t r;
  rec_init(&r);
  assert_int_equal(dmq_host_transport_input(r.t, "host:peer", NULL, 1),
                   DMQ_EINVAL);
  assert_int_equal(r.t->ops->send(r.t, "udp://1.2.3.4:5", "x", 1, cookie(0)),
                   DMQ_EADDR);
  assert_int_equal(r.t->ops->send(r.t, NULL, "x", 1, cookie(0)), DMQ_EADDR);
  assert_int_equal(dmq_host_transport_set_mtu(r.t, 0), DMQ_EINVAL);
  assert_int_equal(dmq_host_transport_set_mtu(r.t, 8), 0);
  assert_int_equal(r.t->mtu, 8);
  char big[9] = {0};
  assert_int_equal(r.t->ops->send(r.t, "host:peer", big, 9, cookie(0)),
                   DMQ_ETOOBIG);
  assert_int_equal(r.t->ops->send(r.t, "host:peer", big, 8, NULL), 0);
  /* the host's failure is the send's failure, with no completion */
  r.send_rc = DMQ_ETRANSPORT;
  assert_int_equal(rec_send(&r, 1), DMQ_ETRANSPORT);
  r.send_rc = 7; /* not a valid answer */
  assert_int_equal(rec_send(&r, 2), DMQ_ETRANSPORT);
  assert_int_equal(dmq_host_transport_flush(r.t), 0);
  assert_int_equal(r.done[0] + r.done[1] + r.done[2], 0);
  /* an empty message is fine */
  r.send_rc = 0;
  assert_int_equal(r.t->ops->send(r.t, "host:", NULL, 0, NULL), 0);
  assert_int_equal(r.last_len, 0);
  r.t->ops->close(r.t);
  assert_int_equal(r.closed, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_two_nodes_converge),
      cmocka_unit_test(test_completions_exactly_once),
      cmocka_unit_test(test_close_inside_callbacks),
      cmocka_unit_test(test_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
