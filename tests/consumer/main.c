/* Installed-tree consumer: built against an installed libdmq by
 * tests/consumer/run.sh, once through pkg-config and once through
 * find_package(dmq). */
#include <stdio.h>
#include <string.h>

#include <dmq/dmq.h>

int main(void) {
  dmq_config_t cfg;
  int rc = dmq_config_init(&cfg, DMQ_PROFILE_LAN);

  printf("libdmq %s\n", dmq_version_string());
  printf("config_init: %s\n", dmq_strerror(rc));
  printf("einval: %s\n", dmq_strerror(DMQ_EINVAL));
  if (rc != DMQ_OK || dmq_version() != DMQ_VERSION_HEX) {
    fprintf(stderr, "consumer: unexpected result\n");
    return 1;
  }
  return 0;
}
