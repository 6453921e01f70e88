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
