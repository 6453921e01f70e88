/* Compiled by tests/package/tag_clash.sh, never linked.
 *
 * With DMQ_TAG_CLASH defined, this is a translation unit that mixes a
 * foreign dmq_node_t (Kamailio's dmq module declares
 * `typedef struct dmq_node {...} dmq_node_t;`) with libdmq's headers: it must
 * NOT compile (libdmq's struct tags are dmq__*, so the two typedefs
 * conflict). Without it, the same file must compile (the control). */
#ifdef DMQ_TAG_CLASH
typedef struct dmq_node {
  int x;
} dmq_node_t;
#endif

#include <dmq/dmq.h>

int main(void) {
  dmq_config_t cfg;
  return dmq_config_init(&cfg, DMQ_PROFILE_LAN) == 0 ? 0 : 1;
}
