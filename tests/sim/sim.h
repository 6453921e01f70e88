/* libdmq deterministic simulator (test/bench support, not installed).
 *
 * A world holds N simulated hosts, each running a real dmq_node_t over a
 * simulated transport ("sim://<index>"), a fake clock driven by an event heap
 * (ordered by time, then insertion sequence) and one seeded PRNG that decides
 * every fault. No global state: several worlds can coexist.
 *
 * Time is milliseconds from 0. Nothing sleeps: dmq_sim_run_until() pops
 * events (packet deliveries, node deadlines) in order and advances the clock.
 *
 * Network model: a send of at most `mtu` bytes is a datagram (link loss,
 * duplication, jitter and blocks apply); a larger one, up to 16 MiB, is a
 * reliable stream message (not lost or duplicated, in order per directed
 * pair, base delay plus send delay, but blocked by partitions); above 16 MiB
 * send() returns DMQ_ETOOBIG (see opts.stream_transport for a separate
 * stream transport instead). Loss and blocks are decided at send time.
 * Packets to or from a host killed while they are in flight are dropped.
 *
 * "Live" host (for converged and the spec helpers): up, not left, not paused.
 */
#ifndef DMQ_SIM_H
#define DMQ_SIM_H

#include <stddef.h>
#include <stdint.h>

#include <dmq/dmq.h>

typedef struct dmq_sim dmq_sim_t;

#define DMQ_SIM_DEFAULT_SEED 0x5eed5eedULL

/* Link properties, per directed pair (from -> to) or the default for all. */
typedef struct dmq_sim_link {
  double loss;        /* probability a datagram is dropped, 0..1 */
  uint32_t delay_ms;  /* base one-way delay */
  uint32_t jitter_ms; /* extra uniform 0..jitter delay (causes reordering) */
  double dup;         /* probability a datagram is delivered twice */
  int blocked;        /* 1 = partitioned: everything dropped */
} dmq_sim_link_t;

typedef struct dmq_sim_opts {
  uint64_t seed;       /* 0 = DMQ_SIM_SEED env var or the default */
  dmq_sim_link_t link; /* default link for every pair (opts_init:
                          1 ms delay, no jitter, loss or dup) */
  size_t mtu;          /* datagram MTU (default 1400) */
  int quiet;           /* do not print the seed on failure hooks */
  /* 0 (default): one transport per host, "sim", DATAGRAM|RELIABLE; the size
   * of a send decides its class (see above), so a small push/pull is a
   * lossy datagram. 1: two transports per host like UDP+TCP: "sim" is
   * DATAGRAM only (> mtu: DMQ_ETOOBIG) and "simtcp://<index>" (RELIABLE
   * only) carries every stream message, whatever its size. */
  int stream_transport;
  /* 1: UDP only - one "sim" transport, DATAGRAM only, that refuses sends
   * above the mtu with DMQ_ETOOBIG; there is no stream class at all
   * (overrides stream_transport). */
  int no_stream;
  /* Which member events the log keeps (dmq_sim_events()): 0 (default)
   * every one; else a mask of 1u << dmq_member_event_t. A full log holds
   * about N^2 events after N hosts join (40 bytes each: 4 GB at N=10000);
   * a benchmark that reads only deaths keeps (1u << DMQ_EVENT_DEAD).
   * dmq_sim_false_deaths() and dmq_sim_event_total() count every event
   * whatever the mask. */
  unsigned event_mask;
  /* 1 (opts_init's default): after calls into a node, check the digest
   * sums it keeps (src/antientropy.c) against a pass over its table, and
   * abort with the seed on a mismatch. Every call while the table is
   * small, every (members / 32 + 1)-th call of each host above (a wrong
   * sum stays wrong). sim_bench turns it off. */
  int check_digest;
  /* 0 (default): one thread, and one generator for the network's random
   * decisions (loss, jitter, duplication) in the order of the sends.
   * N >= 1: each host's sends draw from a generator of its own, and the
   * events of a time step run on N threads (the caller's and N - 1 more,
   * started at the first step that has enough events; hosts are split by
   * index modulo N). A run is the same for every N >= 1 (not the same as
   * with 0, whose network draws come in another order). Callbacks into the
   * caller (a node's, through a test's own hooks) may then run on those
   * threads, so no test hook with shared state; a tap (dmq_sim_set_tap)
   * makes the world step on one thread. $DMQ_SIM_LANES sets N when this
   * is 0 (to run a test suite with lanes). */
  int lanes;
} dmq_sim_opts_t;

void dmq_sim_opts_init(dmq_sim_opts_t *o);
dmq_sim_t *dmq_sim_new(const dmq_sim_opts_t *o);
void dmq_sim_delete(dmq_sim_t *w);
uint64_t dmq_sim_seed(const dmq_sim_t *w);
uint64_t dmq_sim_now(const dmq_sim_t *w);

/* Add a host with a node named "n<index>" (or name if not NULL, unique) using
 * cfg (copied; NULL = the lan profile; name, advertise_addr, generation and
 * rng_seed are filled in by the world when 0/NULL: generation = now + 1,
 * rng_seed from the world PRNG; cfg->mtu is capped at the world's mtu).
 * Returns the host index (0, 1, 2, ...) or -1. The node is started at the
 * current time but does not join. */
int dmq_sim_add(dmq_sim_t *w, const dmq_config_t *cfg, const char *name);
dmq_node_t *dmq_sim_node(dmq_sim_t *w, int host); /* NULL when down */
const char *dmq_sim_addr(dmq_sim_t *w, int host); /* "sim://<host>" */
int dmq_sim_host_count(const dmq_sim_t *w);

/* Make host join through the given seed hosts (at current time). */
int dmq_sim_join(dmq_sim_t *w, int host, const int *seeds, size_t n);
/* Crash: node deleted without a word, its packets in flight dropped. */
void dmq_sim_kill(dmq_sim_t *w, int host);
/* Restart a killed host: new node, same name and address, generation
 * max(previous + 1, now + 1), fresh rng seed. It does not re-join: call
 * dmq_sim_join(). DMQ_ESTATE if the host is not down. */
int dmq_sim_restart(dmq_sim_t *w, int host);
/* Graceful leave (dmq_node_leave); the node keeps running. */
int dmq_sim_leave(dmq_sim_t *w, int host);
/* Pause: the host processes nothing (like SIGSTOP); inbound packets queue
 * and are delivered on resume, its timers fire late. */
void dmq_sim_pause(dmq_sim_t *w, int host);
void dmq_sim_resume(dmq_sim_t *w, int host);

/* Links. */
void dmq_sim_set_link(dmq_sim_t *w, int from, int to, const dmq_sim_link_t *l);
void dmq_sim_set_default_link(dmq_sim_t *w, const dmq_sim_link_t *l);
/* Extra delay on everything host sends (a slow member). */
void dmq_sim_set_send_delay(dmq_sim_t *w, int host, uint32_t delay_ms);
/* One-way partition: nothing from any host in a to any host in b. */
void dmq_sim_block(dmq_sim_t *w, const int *a, size_t na, const int *b,
                   size_t nb);
/* Two-way partition between groups a and b. */
void dmq_sim_partition(dmq_sim_t *w, const int *a, size_t na, const int *b,
                       size_t nb);
/* Remove every block. */
void dmq_sim_heal(dmq_sim_t *w);

/* Run. */
void dmq_sim_run_until(dmq_sim_t *w, uint64_t t);
void dmq_sim_run_for(dmq_sim_t *w, uint64_t ms);
/* Run until pred(w, ud) returns non-zero (checked after each event batch at
 * one time) or until deadline. Returns 1 if pred held, 0 on timeout; *at is
 * the time it first held. */
int dmq_sim_run_until_pred(dmq_sim_t *w, uint64_t deadline,
                           int (*pred)(dmq_sim_t *w, void *ud), void *ud,
                           uint64_t *at);

/* Observations. State of `subject` as seen by `observer` (-1 = unknown). */
int dmq_sim_state(dmq_sim_t *w, int observer, int subject);
/* Every live host sees every other live (not killed/left) host alive. */
int dmq_sim_converged(dmq_sim_t *w);

/* Event log: every member event of every node is recorded (the array moves
 * as it grows: re-read dmq_sim_events() after running). */
typedef struct dmq_sim_event {
  uint64_t t;
  int observer, subject; /* host indices; subject -1 if unknown name */
  dmq_member_event_t ev;
  uint64_t incarnation, generation;
} dmq_sim_event_t;
size_t dmq_sim_event_count(const dmq_sim_t *w);
/* Every event recorded or not (opts.event_mask), since the world began. */
size_t dmq_sim_event_total(const dmq_sim_t *w);
const dmq_sim_event_t *dmq_sim_events(const dmq_sim_t *w);
/* Number of DEAD events about a host that was never killed, left or paused
 * (a false death), since the world began. Judged at the event's time: a DEAD
 * event before the host's first kill/leave/pause is false. Deaths caused by
 * partitions count as false. */
size_t dmq_sim_false_deaths(const dmq_sim_t *w);

/* Network counters. */
typedef struct dmq_sim_net_stats {
  uint64_t sent, delivered, lost, duplicated, blocked, oversize;
  uint64_t bytes_sent;
  /* Dropped on delivery: destination (or sender) down or killed meanwhile,
   * or no such host. */
  uint64_t undeliverable;
  uint64_t bytes_delivered;
} dmq_sim_net_stats_t;
void dmq_sim_net_stats(const dmq_sim_t *w, dmq_sim_net_stats_t *out);
/* With opts.lanes: how many generations of events ran on threads (the
 * others were too small and ran on the caller's). */
uint64_t dmq_sim_threaded_generations(const dmq_sim_t *w);

/* ---- spec helpers: return 1 if the property holds, else print what did not
 * hold (with the seed) to stderr and return 0; use as assert_true(...).
 * They return as soon as the property holds (the clock stops there). States
 * are re-checked on every member event about the subject and at least every
 * 10 ms; convergence every 10 ms * (1 + N/100) when member events happened.
 * ---- */
/* Run until every live host other than `subject` sees it in `state`, within
 * `within_ms` from now. */
int dmq_sim_expect_seen_by_all(dmq_sim_t *w, int subject,
                               dmq_member_state_t state, uint64_t within_ms);
/* Run until every live host sees every other live host alive. */
int dmq_sim_expect_converged(dmq_sim_t *w, uint64_t within_ms);
/* Within [now, now+not_before_ms) no observer sees subject in state, and by
 * now+by_ms at least `observer` does (observer -1 = any). */
int dmq_sim_expect_state_window(dmq_sim_t *w, int observer, int subject,
                                dmq_member_state_t state,
                                uint64_t not_before_ms, uint64_t by_ms);
/* Run for ms and check that nobody ever saw `subject` DEAD. */
int dmq_sim_expect_never_dead(dmq_sim_t *w, int subject, uint64_t ms);

/* ---- test hooks for the simulator itself ---- */
/* Send buf from host `from` to host `to` through from's sim transport, as the
 * node would (no completion cookie). Returns what the transport's send()
 * returns (0, DMQ_ETOOBIG, DMQ_ECLOSED after kill, DMQ_EINVAL bad host). */
int dmq_sim_raw_send(dmq_sim_t *w, int from, int to, const void *buf,
                     size_t len);
/* tap sees every delivery just before it is handed to dmq_node_recv(). */
void dmq_sim_set_tap(dmq_sim_t *w,
                     void (*tap)(void *ud, int from, int to, const void *buf,
                                 size_t len, uint64_t t),
                     void *ud);
/* Next number from the world's PRNG (for scenario choices such as which host
 * to kill, so that they too follow the seed). */
uint64_t dmq_sim_rand(dmq_sim_t *w);
/* The host's simulated transport (scheme "sim"). */
dmq_transport_t *dmq_sim_transport(dmq_sim_t *w, int host);
/* Its stream transport ("simtcp"), NULL unless opts.stream_transport. */
dmq_transport_t *dmq_sim_stream_transport(dmq_sim_t *w, int host);
/* After feeding a host's node directly (dmq_send(), dmq_channel_pause(),
 * ...) from outside the simulator: re-read its next deadline, so that the
 * work the call queued runs at the right time. */
void dmq_sim_poke(dmq_sim_t *w, int host);

#endif
