/* Helper program of test_dns.sh (not a test on its own): runs inside a
 * network namespace whose resolver is a dnsmasq the script started, and
 * checks seed resolution end to end:
 *   1. nodes on 127.0.0.1..3 join through an A name with two records
 *      ("seeds.dmq.test" -> .1 and .2, plus a name that does not exist)
 *      and through an SRV name ("_dmq._udp.dmq.test" -> seedhost -> .3);
 *      the seed lists are what DNS says, and the three converge;
 *   2. a name that never resolves is retried (back-off), harmlessly;
 *   3. the hosts file is rewritten so that seeds.dmq.test points at a
 *      fourth node (127.0.0.4) that joined nobody, and dnsmasq is sent
 *      SIGHUP: the joined nodes' seed lists follow without a restart, and
 *      their reconnect to the new seed pulls the fourth node in;
 *   4. everything closes and the loop closes cleanly.
 * Usage: dns_peer <hosts-file> <dnsmasq-pid> <port>. Exit 0 on success.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <dmq/uv.h>

#include "internal.h" /* the node's seed list, to check it followed DNS */
#include "runtime/runtime_test.h"

/* Hard bound on the program. */
#define PEER_ALARM_S 75
#define PEER_POLL_MS 20
#define PEER_PHASE_MS 20000
#define PEER_FLUSH_MS 1000
/* Low so that the test sees DNS changes quickly. */
#define PEER_DNS_REFRESH_MS 300
#define PEER_RECONNECT_MS 500
#define PEER_NODES 5 /* a, b, c joined; d the new seed; e never resolves */

typedef struct peer {
  const char *name;
  const char *ip;
  dmq_uv_t *rt;
  int closed;
} peer_t;

static peer_t peers[PEER_NODES] = {
    {"a", "127.0.0.1", NULL, 0}, {"b", "127.0.0.2", NULL, 0},
    {"c", "127.0.0.3", NULL, 0}, {"d", "127.0.0.4", NULL, 0},
    {"e", "127.0.0.5", NULL, 0},
};
static unsigned port;
static uv_loop_t loop;

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "dns_peer: FAIL: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  exit(1);
}

static void say(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("dns_peer: ");
  vprintf(fmt, ap);
  printf("\n");
  fflush(stdout);
  va_end(ap);
}

/* ---- running the loop until a predicate holds ---- */

typedef int (*pred_fn)(void);
static pred_fn cur_pred;
static int timed_out;

static void on_watchdog(uv_timer_t *h) {
  timed_out = 1;
  uv_stop(h->loop);
}

static void on_poll(uv_timer_t *h) {
  if (cur_pred())
    uv_stop(h->loop);
}

static void on_handle_closed(uv_handle_t *h) {
  (void)h;
}

static int run_until(pred_fn pred, uint64_t ms) {
  uv_timer_t wd, poll;
  uv_timer_init(&loop, &wd);
  uv_timer_init(&loop, &poll);
  cur_pred = pred;
  timed_out = 0;
  uv_timer_start(&wd, on_watchdog, ms, 0);
  uv_timer_start(&poll, on_poll, 0, PEER_POLL_MS);
  if (!pred())
    uv_run(&loop, UV_RUN_DEFAULT);
  uv_close((uv_handle_t *)&wd, on_handle_closed);
  uv_close((uv_handle_t *)&poll, on_handle_closed);
  uv_run(&loop, UV_RUN_NOWAIT);
  return pred();
}

/* ---- observations ---- */

static int sees_alive(int obs, int subj) {
  dmq_member_info_t info;
  return dmq_node_member(dmq_uv_node(peers[obs].rt), peers[subj].name, &info) ==
             0 &&
         info.state == DMQ_MEMBER_ALIVE;
}

static int converged_upto(int n) {
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++)
      if (i != j && !sees_alive(i, j))
        return 0;
  return 1;
}

static int converged3(void) {
  return converged_upto(3);
}

static int converged4(void) {
  return converged_upto(4);
}

/* The node's seed list equals exactly the given addresses (any order). */
static int seeds_are(int who, const char *const *want, size_t n) {
  const dmq_node_t *node = dmq_uv_node(peers[who].rt);
  if (node->nseeds != n)
    return 0;
  for (size_t i = 0; i < n; i++) {
    int found = 0;
    for (size_t j = 0; j < node->nseeds && !found; j++)
      found = strcmp(node->seeds[j], want[i]) == 0;
    if (!found)
      return 0;
  }
  return 1;
}

static void print_seeds(int who) {
  const dmq_node_t *node = dmq_uv_node(peers[who].rt);
  printf("dns_peer:   %s seeds (%zu):", peers[who].name, node->nseeds);
  for (size_t j = 0; j < node->nseeds; j++)
    printf(" %s", node->seeds[j]);
  printf("\n");
}

static char addr_of[PEER_NODES][64];

static int c_follows_dns(void) {
  const char *want[] = {addr_of[3]};
  return seeds_are(2, want, 1) && seeds_are(1, want, 1);
}

static int e_retried(void) {
  return dmq__uv_resolve_rounds(peers[4].rt) >= 3;
}

static int all_closed(void) {
  for (int i = 0; i < PEER_NODES; i++)
    if (!peers[i].closed)
      return 0;
  return 1;
}

static void on_rt_closed(void *ud) {
  ((peer_t *)ud)->closed = 1;
}

static void start(int i) {
  dmq_config_t cfg;
  dmq_config_init(&cfg, DMQ_PROFILE_LOCAL);
  cfg.name = peers[i].name;
  cfg.reconnect_interval_ms = PEER_RECONNECT_MS;
  char bind[64];
  snprintf(bind, sizeof(bind), "%s:%u", peers[i].ip, port);
  dmq_uv_options_t o;
  dmq_uv_options_init(&o);
  o.bind = bind;
  o.dns_refresh_ms = PEER_DNS_REFRESH_MS;
  int rc = dmq_uv_new(&loop, &cfg, &o, &peers[i].rt);
  if (rc != 0)
    die("dmq_uv_new(%s): %s", bind, dmq_strerror(rc));
  snprintf(addr_of[i], sizeof(addr_of[i]), "udp://%s:%u", peers[i].ip, port);
  if (strcmp(dmq_uv_addr(peers[i].rt), addr_of[i]) != 0)
    die("%s advertises %s", peers[i].name, dmq_uv_addr(peers[i].rt));
}

static void join(int i, const char *const *seeds, size_t n) {
  int rc = dmq_uv_join(peers[i].rt, seeds, n);
  if (rc != 0)
    die("dmq_uv_join(%s): %s", peers[i].name, dmq_strerror(rc));
}

static void rewrite_hosts(const char *path) {
  char tmp[4096];
  snprintf(tmp, sizeof(tmp), "%s.new", path);
  FILE *f = fopen(tmp, "w");
  if (f == NULL)
    die("cannot write %s", tmp);
  fprintf(f, "127.0.0.4 seeds.dmq.test\n127.0.0.3 seedhost.dmq.test\n");
  if (fclose(f) != 0 || rename(tmp, path) != 0)
    die("cannot replace %s", path);
}

int main(int argc, char **argv) {
  if (argc != 4)
    die("usage: dns_peer <hosts-file> <dnsmasq-pid> <port>");
  alarm(PEER_ALARM_S);
  const char *hosts = argv[1];
  pid_t dnsmasq = (pid_t)atoi(argv[2]);
  port = (unsigned)atoi(argv[3]);
  if (uv_loop_init(&loop) != 0)
    die("uv_loop_init");
  for (int i = 0; i < PEER_NODES; i++)
    start(i);

  /* 1. A records (two seeds, plus a name that fails) and SRV */
  char a_name[64];
  snprintf(a_name, sizeof(a_name), "seeds.dmq.test:%u", port);
  const char *by_a[] = {a_name, "missing.dmq.test"};
  const char *by_srv[] = {"_dmq._udp.dmq.test"};
  join(2, by_a, 1);
  join(1, by_a, 2);
  join(0, by_srv, 1);
  const char *never[] = {"never.dmq.test", "_never._udp.dmq.test"};
  join(4, never, 2);
  if (!run_until(converged3, PEER_PHASE_MS))
    die("a, b, c did not converge through DNS seeds");
  {
    const char *want_c[] = {addr_of[0], addr_of[1]};
    const char *want_a[] = {addr_of[2]};
    print_seeds(0);
    print_seeds(1);
    print_seeds(2);
    if (!seeds_are(2, want_c, 2) || !seeds_are(1, want_c, 2))
      die("seeds.dmq.test did not give both A records as seeds");
    if (!seeds_are(0, want_a, 1))
      die("the SRV name did not give seedhost:%u as the seed", port);
  }
  say("converged through A and SRV seeds");

  /* 2. a name that never resolves: retried, no join, no harm */
  if (!run_until(e_retried, PEER_PHASE_MS))
    die("resolution of a failing name was not retried");
  if (dmq_node_is_joined(dmq_uv_node(peers[4].rt)) ||
      dmq_node_member_count(dmq_uv_node(peers[4].rt), DMQ_MASK_ALL) != 1)
    die("e joined something through names that do not resolve");
  say("failing names retried (%llu rounds)",
      (unsigned long long)dmq__uv_resolve_rounds(peers[4].rt));

  /* 3. DNS changes: seeds.dmq.test -> d only */
  uint64_t rounds_before = dmq__uv_resolve_rounds(peers[2].rt);
  rewrite_hosts(hosts);
  if (kill(dnsmasq, SIGHUP) != 0)
    die("cannot signal dnsmasq (pid %d)", (int)dnsmasq);
  if (!run_until(c_follows_dns, PEER_PHASE_MS)) {
    print_seeds(1);
    print_seeds(2);
    die("seed lists did not follow the DNS change");
  }
  print_seeds(2);
  say("seed lists followed DNS after %llu more rounds",
      (unsigned long long)(dmq__uv_resolve_rounds(peers[2].rt) -
                           rounds_before));
  if (!run_until(converged4, PEER_PHASE_MS))
    die("the new seed d was not pulled into the cluster");
  say("new seed joined: a, b, c, d converged");

  /* 4. close everything; the loop must empty */
  for (int i = 0; i < PEER_NODES; i++)
    dmq_uv_close(peers[i].rt, PEER_FLUSH_MS, on_rt_closed, &peers[i]);
  if (!run_until(all_closed, PEER_PHASE_MS))
    die("runtimes did not close");
  if (uv_run(&loop, UV_RUN_DEFAULT) != 0 || uv_loop_close(&loop) != 0)
    die("handles left on the loop");
  say("OK");
  return 0;
}
