/* libdmq - reading and writing the caller's growable structs.
 *
 * Input structs (dmq_config_t, dmq_delivery_config_t, dmq_send_opts_t,
 * dmq_uv_options_t, dmq_thread_options_t, dmq_poll_options_t) start with
 * `uint32_t size`, set by their init function to sizeof the struct in the
 * CALLER's headers. The library reads at most that many bytes, over a copy
 * filled with defaults, so fields a caller built against older headers
 * lacks take their defaults. Output structs (dmq_stats_t, ...) are written
 * through *_sized() functions that receive the caller's sizeof and write at
 * most that many bytes.
 *
 * Minimum sizes: 0.3.0 is the first release with size members; a struct
 * smaller than its 0.3.0 layout is refused with DMQ_EINVAL. DMQ__SIZE_UPTO
 * names the last field of that layout. Until 0.3.0 is released, fields
 * added for it move the marker (the _Static_asserts next to the loaders
 * fail until they do); from the release on, the markers are frozen and new
 * fields are appended after them.
 */
#ifndef DMQ_SIZED_H
#define DMQ_SIZED_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dmq/config.h"
#include "dmq/error.h"

/* Bytes of T up to and including field F. */
#define DMQ__SIZE_UPTO(T, F) (offsetof(T, F) + sizeof(((T *)0)->F))

/* Whether MIN covers all of T but its tail padding (see above). */
#define DMQ__SIZE_IS_WHOLE(T, MIN)                                             \
  (((MIN) + _Alignof(T) - 1) / _Alignof(T) * _Alignof(T) == sizeof(T))

/* Copy the caller's struct src (size bytes in its layout, at least min)
 * over dst, which holds the defaults of the current layout (cur bytes). */
static inline int dmq__sized_in(void *dst, size_t cur, const void *src,
                                uint32_t size, size_t min) {
  if (src == NULL || size < min)
    return DMQ_EINVAL;
  memcpy(dst, src, size < cur ? size : cur);
  return 0;
}

/* Write the current struct src (cur bytes) to the caller's dst of size
 * bytes (at least min): at most size bytes, the rest zeroed. */
static inline int dmq__sized_out(void *dst, size_t size, const void *src,
                                 size_t cur, size_t min) {
  if (dst == NULL || size < min)
    return DMQ_EINVAL;
  if (size <= cur) {
    memcpy(dst, src, size);
  } else {
    memcpy(dst, src, cur);
    memset((char *)dst + cur, 0, size - cur);
  }
  return 0;
}

/* Initialise the caller's input struct: defaults (cur bytes, size member
 * first, set here to the caller's size) into at most size bytes. */
static inline int dmq__sized_init(void *dst, size_t size, void *defaults,
                                  size_t cur, size_t min) {
  if (dst == NULL || size < min || size > UINT32_MAX)
    return DMQ_EINVAL;
  uint32_t s = (uint32_t)size;
  memcpy(defaults, &s, sizeof(s));
  return dmq__sized_out(dst, size, defaults, cur, min);
}

/* The caller's cfg into *dst (current layout, size = sizeof *dst): fields
 * it lacks take the lan profile's defaults. DMQ_EINVAL for NULL or a size
 * below the 0.3.0 layout. (config.c) */
int dmq__config_load(dmq_config_t *dst, const dmq_config_t *src);

/* The caller's uv options into *dst (current layout). (runtime_uv.c) */
struct dmq__uv_options;
int dmq__uv_options_load(struct dmq__uv_options *dst,
                         const struct dmq__uv_options *src);

#endif
