/* libdmq - node configuration.
 *
 * Fill a dmq_config_t with dmq_config_init() (which applies a named profile),
 * change what you need, then pass it to dmq_node_new(). The node copies
 * everything it needs (strings and metadata included); the caller keeps
 * ownership of the struct and what it points to.
 *
 * All durations are milliseconds. docs/config.md explains every field, its
 * default in each profile and what it trades.
 */
#ifndef DMQ_CONFIG_H
#define DMQ_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "dmq/version.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DMQ_MAX_NAME 64  /* member name: 1..64 bytes, no NUL */
#define DMQ_MAX_ADDR 128 /* transport address string */
#define DMQ_MAX_META 512 /* member metadata */
#define DMQ_MAX_LABEL 64 /* cluster label: 1..64 printable bytes */

/* Sealing: what a node does with its keyring (dmq_node_key_add(),
 * docs/security.md). With an empty keyring every mode behaves as OFF. */
typedef enum dmq_seal_mode {
  /* Send plain packets. Sealed packets are still opened when their key is
   * in the keyring (the first step of turning encryption on). */
  DMQ_SEAL_OFF = 0,
  /* Send sealed packets (primary key), accept sealed and plain ones: the
   * mode a live cluster passes through while encryption is turned on (or
   * off), node by node. */
  DMQ_SEAL_TRANSITION = 1,
  /* Send sealed packets and accept only sealed ones: a plain packet is
   * dropped and counted (DMQ_DROP_PLAINTEXT). */
  DMQ_SEAL_REQUIRED = 2
} dmq_seal_mode_t;

typedef enum dmq_profile {
  DMQ_PROFILE_LAN = 0, /* one data centre: probe 1 s, timeout 500 ms */
  DMQ_PROFILE_WAN,     /* links across sites: probe 5 s, timeout 3 s */
  DMQ_PROFILE_LOCAL,   /* one host / loopback: probe 1 s, timeout 200 ms */
  DMQ_PROFILE_FAST     /* aggressive: probe 200 ms, timeout 100 ms */
} dmq_profile_t;

typedef struct dmq__config {
  /* sizeof(dmq_config_t) in the caller's headers, set by dmq_config_init():
   * the library reads no further, and fields the caller's headers lack
   * take their defaults (dmq/dmq.h, "Growable structs"). Do not change. */
  uint32_t size;
  /* Identity. name is required (1..DMQ_MAX_NAME bytes, printable). */
  const char *name;
  /* Address other members use to reach this node, e.g. "udp://10.0.0.1:7946".
   * Required by the core; the runtime fills it from the bind address when
   * left NULL. */
  const char *advertise_addr;
  /* Changes on every restart so that a restarted member replaces its old
   * self. 0 = invalid for the core; the runtime uses wall-clock ms. */
  uint64_t generation;
  /* Seed for the node's private PRNG (probe order, jitter, gossip targets). */
  uint64_t rng_seed;
  /* Initial metadata (copied), at most DMQ_MAX_META bytes. */
  const void *meta;
  size_t meta_len;

  /* Failure detection (SWIM + Lifeguard). */
  uint32_t probe_interval_ms;  /* one probe per period */
  uint32_t probe_timeout_ms;   /* direct ack wait before indirect probes */
  uint32_t indirect_checks;    /* k members asked to probe indirectly */
  uint32_t suspicion_mult;     /* min suspicion = mult*log10(N)*probe */
  uint32_t suspicion_max_mult; /* max suspicion = max_mult * min */
  /* Lifeguard's K: independent confirmations (other members' failed probes)
   * that shrink a suspicion from its maximum down to its minimum; capped by
   * the number of other live members. 0 = none needed (the minimum applies
   * at once). Default 3 in every profile (memberlist uses suspicion_mult - 2,
   * i.e. 2 for lan and 1 for local, which declares a member behind a short
   * partition dead sooner in small clusters). */
  uint32_t suspicion_confirmations;
  uint32_t awareness_max; /* local health score cap (timeouts x (1+s)) */

  /* Dissemination. */
  uint32_t retransmit_mult; /* each update sent mult*ceil(log10(N+1)) times */
  uint32_t gossip_interval_ms;
  uint32_t gossip_nodes;      /* members gossiped to per interval */
  uint32_t gossip_to_dead_ms; /* keep gossiping to dead members this long */

  /* Anti-entropy and lifecycle. */
  uint32_t pushpull_interval_ms; /* full state exchange; 0 = never */
  /* Partition healing: this often, push/pull with a seed that is not alive
   * in our view and with one random dead member. */
  uint32_t reconnect_interval_ms;
  uint32_t dead_retention_ms; /* keep dead/left members before reaping */
  uint32_t join_jitter_ms;    /* first join attempt delayed 0..jitter */
  uint32_t join_retry_ms;     /* first retry; doubles up to join_retry_max */
  uint32_t join_retry_max_ms;
  /* Join storm protection: at most this many announcements of never-seen
   * members are queued for gossip per probe interval; the rest learn of the
   * newcomers through push/pull. 0 = unlimited. */
  uint32_t announce_budget;

  /* Packets. */
  uint32_t mtu;        /* datagram payload budget in bytes */
  uint32_t max_packet; /* largest stream packet accepted (push/pull) */

  /* Security (0.3.1; docs/security.md). */
  /* Cluster label (copied): NULL or "" for none, else 1..DMQ_MAX_LABEL
   * printable bytes. Carried in clear in every packet and compared, also
   * without a key (and covered by the seal when there is one): a packet
   * whose label differs from ours, or that has one when we have none and
   * vice versa, is dropped (DMQ_DROP_LABEL), so two clusters sharing a
   * network never merge. Default NULL. */
  const char *label;
  /* Initial sealing mode (default DMQ_SEAL_OFF); dmq_node_set_seal_mode()
   * changes it at run time. Keys are added with dmq_node_key_add() (or
   * dmq_node_load_keys(), dmq/keyfile.h) after dmq_node_new() and before
   * the first join; while the keyring is empty every mode acts as OFF. */
  dmq_seal_mode_t seal_mode;
  /* (0.3.1) Most members in the table, ourselves and dead/left ones
   * included (docs/limits.md). A new member beyond it is dropped
   * (stats drops[DMQ_DROP_MEMBER_LIMIT], and a DMQ_LOG_WARN line at the
   * 1st, 2nd, 4th, 8th... drop) unless a dead or left one can be
   * reaped early to make room; live members are never evicted. Default
   * 8192; 0 = the default. A push/pull of a full table must fit
   * max_packet: max_members * DMQ_MAX_RECORD + 4096 > max_packet, or more
   * than 65536, is refused by dmq_node_new() (DMQ_EINVAL). */
  uint32_t max_members;
} dmq_config_t;

/* Largest encoded push/pull record of one member (name, address, metadata
 * and channels at their maxima), for sizing max_packet against
 * max_members. */
#define DMQ_MAX_RECORD 1900

/* Use dmq_config_init(): it passes the caller's sizeof. size is at least
 * the 0.3.0 layout's, else DMQ_EINVAL; at most size bytes of cfg are
 * written. */
DMQ_EXTERN int dmq_config_init_sized(dmq_config_t *cfg, size_t size,
                                     dmq_profile_t profile);
/* Fill cfg with the defaults of profile and set cfg->size. Required: every
 * dmq_config_t passed to libdmq must have been initialised by it (a struct
 * with size 0 is refused with DMQ_EINVAL). name/advertise_addr/meta are set
 * to NULL, generation and rng_seed to 0. Returns DMQ_EINVAL for NULL or a
 * bad profile. Copying an initialised struct (with its size) is fine. */
static inline int dmq_config_init(dmq_config_t *cfg, dmq_profile_t profile) {
  return dmq_config_init_sized(cfg, sizeof *cfg, profile);
}
/* Profile by name: "lan", "wan", "local", "fast". DMQ_ENOENT if unknown. */
DMQ_EXTERN int dmq_profile_from_name(const char *name, dmq_profile_t *out);
DMQ_EXTERN const char *dmq_profile_name(dmq_profile_t profile);

#ifdef __cplusplus
}
#endif
#endif
