/* libdmq - key files (runtime layer: not in a DMQ_CORE_ONLY build).
 *
 * A key file holds a node's keyring (dmq/node.h, "Sealing"), one key per
 * line as 2 * DMQ_KEY_SIZE = 64 hex characters (either case); the first
 * key is the primary (sending) key, the others are accepted for receiving
 * only. Blank lines and lines whose first non-blank character is '#' are
 * ignored, as is blank space around a key. At most DMQ_MAX_KEYS keys, at
 * least one, no key twice. Keep the file readable by the service's user
 * only: it is the cluster's secret. docs/security.md has the format and the
 * rotation procedure.
 */
#ifndef DMQ_KEYFILE_H
#define DMQ_KEYFILE_H

#include <stddef.h>

#include "dmq/node.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Make node's keyring the keys of the file at path: keys not yet in the
 * keyring are added, the file's first key becomes primary, and keys that
 * are not in the file are removed (wiped). So the same call starts a node
 * and, after the file was edited, applies each step of a key rotation.
 * The file is read and checked whole first: a malformed file changes
 * nothing (a keyring that overflows DMQ_MAX_KEYS while the file's keys are
 * added keeps those added so far).
 * err (err_len bytes, may be NULL/0) gets a one-line reason on error,
 * naming path and line ("keys.txt:3: expected 64 hex characters, got
 * 12"); it never holds key material. Errors: DMQ_EINVAL (NULL node or
 * path, a malformed file), DMQ_ENOENT (the file cannot be opened or read),
 * DMQ_ELIMIT (more than DMQ_MAX_KEYS keys), DMQ_EBUSY (inside a callback of
 * the node), or what dmq_node_key_add() returns. Not from inside a
 * callback; with the runtimes (dmq/uv.h, thread, poll), call it from the
 * thread that runs the node's loop, after dmq_uv_new() and before the
 * first join. */
DMQ_EXTERN int dmq_node_load_keys(dmq_node_t *node, const char *path, char *err,
                                  size_t err_len);

#ifdef __cplusplus
}
#endif
#endif
