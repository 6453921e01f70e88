/* libdmq - error strings, generated from the one list in dmq/error.h. */
#include "dmq/error.h"

const char *dmq_strerror(int err) {
  switch (err) {
#define DMQ__ERR_STR(name, val, desc)                                          \
  case (val):                                                                  \
    return desc;
    DMQ_ERRNO_MAP(DMQ__ERR_STR)
#undef DMQ__ERR_STR
  default:
    return "unknown error";
  }
}

const char *dmq_err_name(int err) {
  switch (err) {
#define DMQ__ERR_NAME(name, val, desc)                                         \
  case (val):                                                                  \
    return "DMQ_" #name;
    DMQ_ERRNO_MAP(DMQ__ERR_NAME)
#undef DMQ__ERR_NAME
  default:
    return "DMQ_UNKNOWN";
  }
}
