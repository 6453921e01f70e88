/* dmq-peer: this member's metadata as ordered K=V pairs, encoded for the
 * node as "k=v;k2=v2" (--meta, the `meta` command). */
#include <stdlib.h>
#include <string.h>

#include "peer.h"

/* Key: non-empty, no '=', ';' or whitespace. Value: no ';'. */
int meta_split(const char *kv, const char **k, size_t *klen, const char **v,
               const char **why) {
  const char *eq = strchr(kv, '=');
  if (eq == NULL) {
    *why = "expected K=V";
    return -1;
  }
  if (eq == kv) {
    *why = "empty key";
    return -1;
  }
  for (const char *c = kv; c < eq; c++) {
    if (*c == ';' || *c == ' ' || *c == '\t' || (unsigned char)*c < 0x20) {
      *why = "key may not contain ';', spaces or control characters";
      return -1;
    }
  }
  if (strchr(eq + 1, ';') != NULL) {
    *why = "value may not contain ';'";
    return -1;
  }
  *k = kv;
  *klen = (size_t)(eq - kv);
  *v = eq + 1;
  return 0;
}

void meta_free(meta_kv_t *m, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(m[i].k);
    free(m[i].v);
  }
}

static char *dup_n(const char *s, size_t n) {
  char *d = malloc(n + 1);
  if (d != NULL) {
    memcpy(d, s, n);
    d[n] = '\0';
  }
  return d;
}

/* Copy (src, n) into dst; 0, or -1 (out of memory: dst holds nothing). */
int meta_copy(meta_kv_t *dst, const meta_kv_t *src, size_t n) {
  for (size_t i = 0; i < n; i++) {
    dst[i].k = dup_n(src[i].k, strlen(src[i].k));
    dst[i].v = dup_n(src[i].v, strlen(src[i].v));
    if (dst[i].k == NULL || dst[i].v == NULL) {
      meta_free(dst, i + 1);
      return -1;
    }
  }
  return 0;
}

/* Merge K=V into (m, *n); an empty V removes K. */
int meta_merge(meta_kv_t *m, size_t *n, const char *k, size_t klen,
               const char *v, const char **why) {
  size_t i;
  for (i = 0; i < *n; i++)
    if (strlen(m[i].k) == klen && memcmp(m[i].k, k, klen) == 0)
      break;
  if (*v == '\0') {
    if (i < *n) {
      free(m[i].k);
      free(m[i].v);
      memmove(&m[i], &m[i + 1], (*n - i - 1) * sizeof(*m));
      (*n)--;
    }
    return 0;
  }
  char *nv = dup_n(v, strlen(v));
  if (nv == NULL) {
    *why = "out of memory";
    return -1;
  }
  if (i < *n) {
    free(m[i].v);
    m[i].v = nv;
    return 0;
  }
  if (*n == PEER_MAX_META_KEYS) {
    free(nv);
    *why = "too many keys";
    return -1;
  }
  m[*n].k = dup_n(k, klen);
  if (m[*n].k == NULL) {
    free(nv);
    *why = "out of memory";
    return -1;
  }
  m[*n].v = nv;
  (*n)++;
  return 0;
}

/* "k=v;k2=v2" into out (at most cap bytes, no NUL needed by the node).
 * Returns the length, or -1 if it does not fit. */
int meta_encode(const meta_kv_t *m, size_t n, char *out, size_t cap) {
  size_t len = 0;
  for (size_t i = 0; i < n; i++) {
    size_t kl = strlen(m[i].k), vl = strlen(m[i].v);
    size_t need = kl + 1 + vl + (i > 0);
    if (len + need > cap)
      return -1;
    if (i > 0)
      out[len++] = ';';
    memcpy(out + len, m[i].k, kl);
    len += kl;
    out[len++] = '=';
    memcpy(out + len, m[i].v, vl);
    len += vl;
  }
  return (int)len;
}
