/* libdmq - error codes.
 *
 * Every function that can fail returns 0 (DMQ_OK) or one of the negative codes
 * below. A function that returns an error never calls the callback it was
 * given. The list is an X-macro so that the enum, dmq_strerror() and
 * dmq_err_name() can never drift apart.
 *
 * Limits: DMQ_ELIMIT is returned when a fixed or configured count limit is
 * reached (transports per node, channels per node, seeds); DMQ_ETOOBIG when
 * one message or field is larger than allowed; DMQ_EAGAIN only for a full
 * queue whose room is reported later (writable callback); DMQ_ENOMEM only
 * when memory allocation failed.
 */
#ifndef DMQ_ERROR_H
#define DMQ_ERROR_H

#include "dmq/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* X(NAME, value, description) */
#define DMQ_ERRNO_MAP(X)                                                       \
  X(OK, 0, "success")                                                          \
  X(EINVAL, -1, "invalid argument")                                            \
  X(ENOMEM, -2, "out of memory")                                               \
  X(ENOENT, -3, "no such member, channel or transport")                        \
  X(EEXIST, -4, "already exists")                                              \
  X(ESTATE, -5, "operation not allowed in the current state")                  \
  X(ETOOBIG, -6, "message or field larger than the configured maximum")        \
  X(EAGAIN, -7, "queue full, try again when room is reported")                 \
  X(ENOTRANSPORT, -8, "no transport registered for the address scheme")        \
  X(ECLOSED, -9, "node or transport closed")                                   \
  X(EPROTO, -10, "malformed or unsupported packet")                            \
  X(EADDR, -11, "malformed address")                                           \
  X(ETRANSPORT, -12, "transport failure")                                      \
  X(ENOTSUP, -13, "operation not supported")                                   \
  X(ECANCELED, -14, "operation cancelled")                                     \
  X(ETIMEDOUT, -15, "timed out")                                               \
  X(EBUSY, -16, "not allowed from inside a callback")                          \
  X(ERESOLVE, -17, "name resolution failed")                                   \
  X(ELIMIT, -18, "a configured limit was reached")

typedef enum dmq_err {
#define DMQ__ERR_ENUM(name, val, desc) DMQ_##name = (val),
  DMQ_ERRNO_MAP(DMQ__ERR_ENUM)
#undef DMQ__ERR_ENUM
} dmq_err_t;

/* Human readable description; never NULL ("unknown error" if unknown). */
DMQ_EXTERN const char *dmq_strerror(int err);
/* Symbolic name such as "DMQ_EINVAL"; never NULL ("DMQ_UNKNOWN"). */
DMQ_EXTERN const char *dmq_err_name(int err);

#ifdef __cplusplus
}
#endif
#endif
