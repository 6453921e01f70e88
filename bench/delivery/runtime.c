/* delivery_bench: a dmq_uv_t as both library sides use it: the bench's
 * profile, bound to 127.0.0.1 (any port), delivery queue and window from
 * the options. The one place the bench creates a runtime. */
#include <string.h>

#include "db.h"

dmq_uv_t *db_runtime_new(const db_opts_t *o, uv_loop_t *loop,
                         const char *name) {
  dmq_config_t cfg;
  dmq_config_init(&cfg, o->profile);
  cfg.name = name;
  dmq_uv_options_t uo;
  dmq_uv_options_init(&uo);
  uo.bind = "127.0.0.1:0";
  dmq_uv_t *rt = NULL;
  if (dmq_uv_new(loop, &cfg, &uo, &rt) != 0)
    die("dmq_uv_new");
  if (o->keyed &&
      (dmq_node_key_add(dmq_uv_node(rt), o->key, sizeof o->key, 1, NULL) != 0 ||
       dmq_node_set_seal_mode(dmq_uv_node(rt), DMQ_SEAL_REQUIRED) != 0))
    die("key");
  dmq_delivery_config_t dc;
  dmq_delivery_config_init(&dc);
  if (o->queue_msgs)
    dc.queue_msgs = o->queue_msgs;
  if (o->window)
    dc.window = o->window;
  if (dmq_delivery_configure(dmq_uv_node(rt), &dc) != 0)
    die("bad delivery configuration");
  return rt;
}
