/* libdmq - configuration profiles.
 *
 * The `lan` profile uses the timers of the SWIM/Lifeguard deployments that
 * work well inside one data centre (memberlist's LAN figures), so that our
 * measurements compare like with like. `local` shortens the probe timeout for
 * loopback clusters, `wan` stretches everything for lossy, slow links and
 * `fast` is for small farms that want sub-second detection.
 */
#include <string.h>

#include "dmq/config.h"
#include "dmq/error.h"
#include "sized.h"

/* The 0.3.0 layout ends at max_packet (src/sized.h): the minimum size.
 * Fields appended since (0.3.1: label, seal_mode) take their defaults when
 * the caller's size does not cover them. The check names the current last
 * field, so that a field appended later moves it. */
#define CONFIG_MIN_SIZE DMQ__SIZE_UPTO(dmq_config_t, max_packet)
/* The current layout ends at max_members (0.3.1). */
DMQ__SIZE_CHECK(dmq_config_t, DMQ__SIZE_UPTO(dmq_config_t, max_members));

static const char *const config_profile_names[] = {"lan", "wan", "local",
                                                   "fast"};

/* The timers and fan-outs each profile sets (the others are shared). */
typedef struct config_profile {
  uint32_t probe_interval_ms, probe_timeout_ms, suspicion_mult, retransmit_mult,
      gossip_interval_ms, gossip_nodes, gossip_to_dead_ms, pushpull_interval_ms,
      reconnect_interval_ms, dead_retention_ms, join_jitter_ms, join_retry_ms,
      join_retry_max_ms;
} config_profile_t;

static const config_profile_t config_profiles[] = {
    [DMQ_PROFILE_LAN] = {.probe_interval_ms = 1000,
                         .probe_timeout_ms = 500,
                         .suspicion_mult = 4,
                         .retransmit_mult = 4,
                         .gossip_interval_ms = 200,
                         .gossip_nodes = 3,
                         .gossip_to_dead_ms = 30000,
                         .pushpull_interval_ms = 30000,
                         .reconnect_interval_ms = 10000,
                         .dead_retention_ms = 60000,
                         .join_jitter_ms = 100,
                         .join_retry_ms = 500,
                         .join_retry_max_ms = 30000},
    [DMQ_PROFILE_WAN] = {.probe_interval_ms = 5000,
                         .probe_timeout_ms = 3000,
                         .suspicion_mult = 6,
                         .retransmit_mult = 4,
                         .gossip_interval_ms = 500,
                         .gossip_nodes = 4,
                         .gossip_to_dead_ms = 60000,
                         .pushpull_interval_ms = 60000,
                         .reconnect_interval_ms = 30000,
                         .dead_retention_ms = 180000,
                         .join_jitter_ms = 500,
                         .join_retry_ms = 2000,
                         .join_retry_max_ms = 60000},
    [DMQ_PROFILE_LOCAL] = {.probe_interval_ms = 1000,
                           .probe_timeout_ms = 200,
                           .suspicion_mult = 3,
                           .retransmit_mult = 3,
                           .gossip_interval_ms = 100,
                           .gossip_nodes = 3,
                           .gossip_to_dead_ms = 15000,
                           .pushpull_interval_ms = 15000,
                           .reconnect_interval_ms = 5000,
                           .dead_retention_ms = 30000,
                           .join_jitter_ms = 50,
                           .join_retry_ms = 200,
                           .join_retry_max_ms = 5000},
    [DMQ_PROFILE_FAST] = {.probe_interval_ms = 200,
                          .probe_timeout_ms = 100,
                          .suspicion_mult = 4,
                          .retransmit_mult = 4,
                          .gossip_interval_ms = 50,
                          .gossip_nodes = 3,
                          .gossip_to_dead_ms = 10000,
                          .pushpull_interval_ms = 10000,
                          .reconnect_interval_ms = 3000,
                          .dead_retention_ms = 30000,
                          .join_jitter_ms = 200,
                          .join_retry_ms = 200,
                          .join_retry_max_ms = 5000},
};

static int config_defaults(dmq_config_t *cfg, dmq_profile_t profile) {
  if ((unsigned)profile >= sizeof(config_profiles) / sizeof(config_profiles[0]))
    return DMQ_EINVAL;
  const config_profile_t *p = &config_profiles[profile];
  memset(cfg, 0, sizeof(*cfg));
  cfg->size = sizeof(*cfg);
  /* Shared defaults. */
  cfg->indirect_checks = 3;
  cfg->suspicion_max_mult = 6;
  cfg->suspicion_confirmations = 3;
  cfg->awareness_max = 8;
  cfg->mtu = 1400; /* fits a 1500-byte Ethernet frame with IP/UDP headers */
  cfg->max_packet = 16u << 20;
  cfg->announce_budget = 16;
  cfg->max_members = 8192; /* 8x the 1000-member goal; fits max_packet */
  /* The profile's. */
  cfg->probe_interval_ms = p->probe_interval_ms;
  cfg->probe_timeout_ms = p->probe_timeout_ms;
  cfg->suspicion_mult = p->suspicion_mult;
  cfg->retransmit_mult = p->retransmit_mult;
  cfg->gossip_interval_ms = p->gossip_interval_ms;
  cfg->gossip_nodes = p->gossip_nodes;
  cfg->gossip_to_dead_ms = p->gossip_to_dead_ms;
  cfg->pushpull_interval_ms = p->pushpull_interval_ms;
  cfg->reconnect_interval_ms = p->reconnect_interval_ms;
  cfg->dead_retention_ms = p->dead_retention_ms;
  cfg->join_jitter_ms = p->join_jitter_ms;
  cfg->join_retry_ms = p->join_retry_ms;
  cfg->join_retry_max_ms = p->join_retry_max_ms;
  return 0;
}

int dmq_config_init_sized(dmq_config_t *cfg, size_t size,
                          dmq_profile_t profile) {
  dmq_config_t d;
  int rc = config_defaults(&d, profile);
  if (rc != 0)
    return rc;
  return dmq__sized_init(cfg, size, &d, sizeof(d), CONFIG_MIN_SIZE);
}

int dmq__config_load(dmq_config_t *dst, const dmq_config_t *src) {
  config_defaults(dst, DMQ_PROFILE_LAN);
  if (src == NULL)
    return DMQ_EINVAL;
  int rc = dmq__sized_in(dst, sizeof(*dst), src, src->size, CONFIG_MIN_SIZE);
  dst->size = sizeof(*dst);
  if (rc != 0)
    return rc;
  if (dst->max_members == 0)
    dst->max_members = 8192;
  /* a full table's push/pull must fit one stream packet and the decoder's
   * record limit (65536) */
  if (dst->max_members > 65536 ||
      (uint64_t)dst->max_members * DMQ_MAX_RECORD + 4096 > dst->max_packet)
    return DMQ_EINVAL;
  return 0;
}

int dmq_profile_from_name(const char *name, dmq_profile_t *out) {
  if (name == NULL || out == NULL)
    return DMQ_EINVAL;
  for (size_t i = 0; i < sizeof(config_profile_names) / sizeof(char *); i++) {
    if (strcmp(name, config_profile_names[i]) == 0) {
      *out = (dmq_profile_t)i;
      return 0;
    }
  }
  return DMQ_ENOENT;
}

const char *dmq_profile_name(dmq_profile_t p) {
  if ((unsigned)p >= sizeof(config_profile_names) / sizeof(char *))
    return "unknown";
  return config_profile_names[p];
}
