/* libdmq - umbrella header.
 *
 * Naming: every public struct is declared as `typedef struct dmq__<name>
 * dmq_<name>_t` (for example `typedef struct dmq__node dmq_node_t`). The
 * struct tags are in libdmq's reserved `dmq__` namespace so that a
 * translation unit that also includes another project's headers declaring
 * `typedef struct dmq_node {...} dmq_node_t` (Kamailio's dmq module) fails
 * to compile with "conflicting types" instead of silently merging an opaque
 * libdmq type with an unrelated struct. Use the `_t` names; the tags are not
 * part of the API (the ctest `tag_clash` checks this).
 *
 * Conventions shared by every header:
 *
 *   Out-pointer last: constructors take their inputs first and the
 *   pointer to the new object last (dmq_node_new(cfg, alloc, &node)); on
 *   error *out is NULL.
 *
 *   Errors: 0 or a negative dmq_err_t (dmq/error.h). DMQ_EBUSY is a call
 *   refused because it was made from inside a callback (dmq/node.h,
 *   "Callbacks"); DMQ_ELIMIT a count limit reached; DMQ_ENOMEM only a
 *   failed allocation.
 *
 *   Growable structs. Structs the caller fills (dmq_config_t,
 *   dmq_delivery_config_t, dmq_send_opts_t, dmq_alloc_t, dmq_uv_options_t,
 *   dmq_thread_options_t, dmq_poll_options_t, dmq_transport_ops_t) start
 *   with `uint32_t size`: sizeof the struct in the headers the caller was
 *   compiled with. Their init function (a static inline, e.g.
 *   dmq_config_init()) sets it by passing the caller's sizeof to an
 *   exported *_init_sized() function; calling it is REQUIRED (a size of 0
 *   is refused with DMQ_EINVAL; copying an initialised struct is fine). The
 *   library reads no more than `size` bytes: fields that the caller's
 *   (older) headers lack take their defaults, fields of newer headers are
 *   ignored. Structs the library fills (dmq_stats_t, dmq_delivery_stats_t,
 *   dmq_member_info_t, dmq_thread_event_t) are written through *_sized()
 *   functions, called by static inline wrappers with the caller's sizeof:
 *   the library writes at most that many bytes. Structs the library hands
 *   to callbacks (dmq_message_t, dmq_member_info_t, dmq_outcome_info_t,
 *   dmq_thread_member_t) may grow at the end: read their fields, do not
 *   copy them by value into storage another version reads. New fields are
 *   only ever appended. docs/abi.md has the rules, docs/changes.md the
 *   migration from 0.2.
 */
#ifndef DMQ_DMQ_H
#define DMQ_DMQ_H

#include "dmq/config.h"
#include "dmq/delivery.h"
#include "dmq/error.h"
#include "dmq/node.h"
#include "dmq/transport.h"
#include "dmq/version.h"

#endif
