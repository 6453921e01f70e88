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

/* The 0.3.0 layout ends at max_packet (src/sized.h). */
#define CONFIG_MIN_SIZE DMQ__SIZE_UPTO(dmq_config_t, max_packet)
_Static_assert(DMQ__SIZE_IS_WHOLE(dmq_config_t, CONFIG_MIN_SIZE),
               "dmq_config_t grew: move CONFIG_MIN_SIZE to its last field "
               "until 0.3.0 is released (src/sized.h)");

static const char *const config_profile_names[] = {"lan", "wan", "local",
                                                   "fast"};

static int config_defaults(dmq_config_t *cfg, dmq_profile_t profile) {
  memset(cfg, 0, sizeof(*cfg));
  cfg->size = sizeof(*cfg);
  /* Shared defaults. */
  cfg->indirect_checks = 3;
  cfg->suspicion_mult = 4;
  cfg->suspicion_max_mult = 6;
  cfg->suspicion_confirmations = 3;
  cfg->awareness_max = 8;
  cfg->retransmit_mult = 4;
  cfg->gossip_nodes = 3;
  cfg->mtu = 1400; /* fits a 1500-byte Ethernet frame with IP/UDP headers */
  cfg->max_packet = 16u << 20;
  cfg->announce_budget = 16;
  switch (profile) {
  case DMQ_PROFILE_LAN:
    cfg->probe_interval_ms = 1000;
    cfg->probe_timeout_ms = 500;
    cfg->gossip_interval_ms = 200;
    cfg->gossip_to_dead_ms = 30000;
    cfg->pushpull_interval_ms = 30000;
    cfg->reconnect_interval_ms = 10000;
    cfg->dead_retention_ms = 60000;
    cfg->join_jitter_ms = 100;
    cfg->join_retry_ms = 500;
    cfg->join_retry_max_ms = 30000;
    break;
  case DMQ_PROFILE_WAN:
    cfg->probe_interval_ms = 5000;
    cfg->probe_timeout_ms = 3000;
    cfg->suspicion_mult = 6;
    cfg->retransmit_mult = 4;
    cfg->gossip_interval_ms = 500;
    cfg->gossip_nodes = 4;
    cfg->gossip_to_dead_ms = 60000;
    cfg->pushpull_interval_ms = 60000;
    cfg->reconnect_interval_ms = 30000;
    cfg->dead_retention_ms = 180000;
    cfg->join_jitter_ms = 500;
    cfg->join_retry_ms = 2000;
    cfg->join_retry_max_ms = 60000;
    break;
  case DMQ_PROFILE_LOCAL:
    cfg->probe_interval_ms = 1000;
    cfg->probe_timeout_ms = 200;
    cfg->suspicion_mult = 3;
    cfg->retransmit_mult = 3;
    cfg->gossip_interval_ms = 100;
    cfg->gossip_to_dead_ms = 15000;
    cfg->pushpull_interval_ms = 15000;
    cfg->reconnect_interval_ms = 5000;
    cfg->dead_retention_ms = 30000;
    cfg->join_jitter_ms = 50;
    cfg->join_retry_ms = 200;
    cfg->join_retry_max_ms = 5000;
    break;
  case DMQ_PROFILE_FAST:
    cfg->probe_interval_ms = 200;
    cfg->probe_timeout_ms = 100;
    cfg->gossip_interval_ms = 50;
    cfg->gossip_to_dead_ms = 10000;
    cfg->pushpull_interval_ms = 10000;
    cfg->reconnect_interval_ms = 3000;
    cfg->dead_retention_ms = 30000;
    cfg->join_jitter_ms = 200;
    cfg->join_retry_ms = 200;
    cfg->join_retry_max_ms = 5000;
    break;
  default:
    return DMQ_EINVAL;
  }
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
  return rc;
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
