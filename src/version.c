/* libdmq - version query. */
#include "dmq/version.h"

#define DMQ__STR2(x) #x
#define DMQ__STR(x) DMQ__STR2(x)

unsigned dmq_version(void) {
  return DMQ_VERSION_HEX;
}

const char *dmq_version_string(void) {
  return DMQ__STR(DMQ_VERSION_MAJOR) "." DMQ__STR(
      DMQ_VERSION_MINOR) "." DMQ__STR(DMQ_VERSION_PATCH);
}
