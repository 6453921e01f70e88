/* libdmq - key files (dmq/keyfile.h). File I/O, so it lives in the
 * runtime layer, not in the sans-I/O core: it only calls the core's public
 * keyring API. Key bytes pass through buffers that are wiped before
 * returning, and no message ever quotes a line of the file. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "dmq/error.h"
#include "dmq/keyfile.h"
#include "dmq/node.h"
#include "seal.h" /* dmq__wipe */

/* Longest line read (a key is 64 characters; comments may be longer). */
#define KEYFILE_LINE 1024

static int keyfile_err(char *err, size_t len, int rc, const char *fmt, ...) {
  if (err != NULL && len > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
  }
  return rc;
}

static int keyfile_blank(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' ||
         c == '\v';
}

int dmq_node_load_keys(dmq_node_t *node, const char *path, char *err,
                       size_t err_len) {
  if (err != NULL && err_len > 0)
    err[0] = '\0';
  if (node == NULL || path == NULL)
    return keyfile_err(err, err_len, DMQ_EINVAL, "no node or no path");
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return keyfile_err(err, err_len, DMQ_ENOENT, "%s: cannot open: %s", path,
                       strerror(errno));
  uint8_t keys[DMQ_MAX_KEYS][DMQ_KEY_SIZE];
  char line[KEYFILE_LINE + 2];
  size_t nkeys = 0, lineno = 0;
  int rc = 0;
  while (rc == 0 && fgets(line, sizeof line, f) != NULL) {
    lineno++;
    size_t l = strlen(line);
    if (l == sizeof line - 1 && line[l - 1] != '\n') {
      rc = keyfile_err(err, err_len, DMQ_EINVAL,
                       "%s:%zu: line longer than %d characters", path, lineno,
                       KEYFILE_LINE);
      break;
    }
    char *s = line, *e = line + l;
    while (s < e && keyfile_blank(*s))
      s++;
    while (e > s && keyfile_blank(e[-1]))
      e--;
    if (s == e || *s == '#')
      continue;
    if (nkeys == DMQ_MAX_KEYS) {
      rc = keyfile_err(err, err_len, DMQ_ELIMIT, "%s:%zu: more than %d keys",
                       path, lineno, DMQ_MAX_KEYS);
      break;
    }
    if ((size_t)(e - s) != 2 * DMQ_KEY_SIZE ||
        dmq_key_from_hex(s, (size_t)(e - s), keys[nkeys]) != 0) {
      rc = keyfile_err(err, err_len, DMQ_EINVAL,
                       "%s:%zu: expected %d hex characters (a key), got %zu "
                       "characters%s",
                       path, lineno, 2 * DMQ_KEY_SIZE, (size_t)(e - s),
                       (size_t)(e - s) == 2 * DMQ_KEY_SIZE
                           ? " that are not all hex digits"
                           : "");
      break;
    }
    for (size_t i = 0; i < nkeys && rc == 0; i++)
      if (memcmp(keys[i], keys[nkeys], DMQ_KEY_SIZE) == 0)
        rc = keyfile_err(err, err_len, DMQ_EINVAL,
                         "%s:%zu: the same key as an earlier line", path,
                         lineno);
    nkeys++;
  }
  if (rc == 0 && ferror(f))
    rc = keyfile_err(err, err_len, DMQ_ENOENT, "%s: read error", path);
  fclose(f);
  if (rc == 0 && nkeys == 0)
    rc = keyfile_err(err, err_len, DMQ_EINVAL, "%s: no key in the file", path);
  uint32_t want[DMQ_MAX_KEYS];
  for (size_t i = 0; rc == 0 && i < nkeys; i++) {
    int a = dmq_node_key_add(node, keys[i], DMQ_KEY_SIZE, 0, &want[i]);
    if (a == DMQ_EEXIST)
      want[i] = dmq_key_id(keys[i], DMQ_KEY_SIZE);
    else if (a != 0)
      rc = keyfile_err(err, err_len, a, "%s: key %zu (id %08x): %s", path,
                       i + 1, (unsigned)dmq_key_id(keys[i], DMQ_KEY_SIZE),
                       dmq_strerror(a));
  }
  dmq__wipe(keys, sizeof keys);
  dmq__wipe(line, sizeof line);
  if (rc != 0)
    return rc;
  rc = dmq_node_key_use(node, want[0]);
  if (rc != 0)
    return keyfile_err(err, err_len, rc, "%s: %s", path, dmq_strerror(rc));
  uint32_t have[DMQ_MAX_KEYS];
  size_t nhave = dmq_node_keys(node, have, DMQ_MAX_KEYS, NULL);
  for (size_t i = 0; i < nhave && i < DMQ_MAX_KEYS; i++) {
    int listed = 0;
    for (size_t j = 0; j < nkeys; j++)
      listed |= have[i] == want[j];
    if (!listed && (rc = dmq_node_key_remove(node, have[i])) != 0)
      return keyfile_err(err, err_len, rc, "%s: removing key %08x: %s", path,
                         (unsigned)have[i], dmq_strerror(rc));
  }
  return 0;
}
