/* embed_poll - libdmq driven by a plain poll() loop.
 *
 * The third way to embed libdmq (docs/embedding.md): the program has its own
 * event loop (here: poll()) and runs libdmq on its thread. Each dmq_poll_t
 * gives a descriptor to wait on (dmq_poll_fd) and how long the program may
 * wait (dmq_poll_timeout_ms); after every wakeup the program calls
 * dmq_poll_run(), which runs what is due, member callbacks included.
 *
 * Two nodes, "a" and "b", each in its own dmq_poll_t, on 127.0.0.1 with
 * system-chosen ports; "b" joins through "a". One loop polls both
 * descriptors (and would poll the program's own ones too). Once both see
 * each other, both leave without blocking the loop, which keeps running
 * until each dmq_poll_run() reports its node closed; dmq_poll_close() then
 * frees them. Bounded by DEADLINE_MS; exit status 0 on success.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <dmq/poll.h>

#define DEADLINE_MS 10000
#define FLUSH_MS 500

typedef struct peer {
  const char *name, *other;
  dmq_poll_t *p;
  int sees_other, closed;
} peer_t;

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Runs inside dmq_poll_run(), on this thread. */
static void on_member(dmq_node_t *node, dmq_member_event_t ev,
                      const dmq_member_info_t *m, void *ud) {
  (void)node;
  peer_t *pe = ud;
  printf("[%s] %s %s (%s)\n", pe->name, m->name, dmq_member_event_name(ev),
         m->addr);
  if (strcmp(m->name, pe->other) == 0 && m->state == DMQ_MEMBER_ALIVE)
    pe->sees_other = 1;
}

static int make_peer(peer_t *pe) {
  dmq_config_t cfg;
  dmq_config_init(&cfg, DMQ_PROFILE_LOCAL);
  cfg.name = pe->name;
  dmq_poll_options_t opts;
  dmq_poll_options_init(&opts);
  opts.uv.bind = "127.0.0.1:0";
  opts.flush_timeout_ms = FLUSH_MS;
  opts.member_cb = on_member;
  opts.member_ud = pe;
  int rc = dmq_poll_new(&cfg, &opts, &pe->p);
  if (rc != 0) {
    fprintf(stderr, "embed_poll: dmq_poll_new(%s): %s\n", pe->name,
            dmq_strerror(rc));
    return rc;
  }
  printf("[%s] listening on %s, poll fd %d\n", pe->name, dmq_poll_addr(pe->p),
         dmq_poll_fd(pe->p));
  return 0;
}

int main(void) {
  peer_t peers[2] = {{.name = "a", .other = "b"}, {.name = "b", .other = "a"}};
  if (make_peer(&peers[0]) != 0)
    return 1;
  if (make_peer(&peers[1]) != 0) {
    dmq_poll_close(peers[0].p);
    return 1;
  }
  const char *seed = dmq_poll_addr(peers[0].p);
  int rc = dmq_poll_join(peers[1].p, &seed, 1);
  if (rc != 0)
    fprintf(stderr, "embed_poll: join: %s\n", dmq_strerror(rc));

  int converged = 0, leaving = 0;
  uint64_t deadline = now_ms() + DEADLINE_MS;
  while (rc == 0 && !(peers[0].closed && peers[1].closed)) {
    uint64_t now = now_ms();
    if (now >= deadline) {
      fprintf(stderr, "embed_poll: deadline reached\n");
      break;
    }
    /* wait for the earliest of: our deadline, each node's timeout */
    int timeout = (int)(deadline - now);
    struct pollfd fds[2];
    nfds_t n = 0;
    for (int i = 0; i < 2; i++) {
      if (peers[i].closed)
        continue;
      int t = dmq_poll_timeout_ms(peers[i].p); /* -1: no deadline */
      if (t >= 0 && t < timeout)
        timeout = t;
      fds[n].fd = dmq_poll_fd(peers[i].p);
      fds[n].events = POLLIN;
      fds[n].revents = 0;
      n++;
    }
    if (poll(fds, n, timeout) < 0 && errno != EINTR)
      break;
    /* after every wakeup, whatever woke us: let each node run */
    for (int i = 0; i < 2; i++)
      if (!peers[i].closed && dmq_poll_run(peers[i].p) == 1) {
        peers[i].closed = 1;
        printf("[%s] closed\n", peers[i].name);
      }
    if (!leaving && peers[0].sees_other && peers[1].sees_other) {
      converged = 1;
      leaving = 1;
      printf("a and b see each other: leaving\n");
      dmq_poll_leave(peers[0].p); /* non-blocking: the loop goes on */
      dmq_poll_leave(peers[1].p);
    }
  }
  int closed = peers[0].closed && peers[1].closed;
  /* frees; blocks only if a node had not finished closing */
  dmq_poll_close(peers[0].p);
  dmq_poll_close(peers[1].p);
  int ok = converged && closed;
  printf("embed_poll: %s\n", ok ? "OK" : "FAILED");
  return ok ? 0 : 1;
}
