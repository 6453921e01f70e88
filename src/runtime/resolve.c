/* libdmq - seed parsing and asynchronous seed resolution.
 *
 * Seeds may be DNS names so that a cluster can be found through a stable
 * name (a headless service, a round-robin A record, an SRV record) whose
 * answer changes as machines come and go. Name lookups block, so they never
 * run on the loop: A/AAAA go through uv_getaddrinfo and SRV through
 * res_nquery + ns_parserr inside uv_queue_work, both on libuv's thread
 * pool. A round resolves every name of the list; when all answers (or
 * failures) are in, the callback gets the merged list. Rounds repeat every
 * refresh interval so that DNS changes are followed without a restart; a
 * round in which every name failed is retried with exponential back-off,
 * and a name that fails keeps its previous answer (a DNS outage must not
 * wipe the seed list).
 *
 * Lookups in flight are tagged with the round's generation: replacing the
 * list or closing the resolver bumps it, and late answers are dropped.
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/addr.h"
#include "internal.h"
#include "resolve.h"

/* Room for a formatted socket address. */
#define RESOLVE_ADDR_LEN DMQ__ADDR_STRLEN
/* Addresses kept per name and in the merged list (the node's seed cap). */
#define RESOLVE_MAX_ADDRS DMQ__MAX_SEEDS
/* SRV targets looked up per SRV name. */
#define RESOLVE_MAX_SRV_TARGETS 16
/* DNS answer buffer for SRV queries (largest DNS message over TCP). */
#define RESOLVE_ANSWER_MAX 65535
/* Back-off when every name failed: first retry, doubling, capped at the
 * refresh interval and at RESOLVE_RETRY_MAX_MS. */
#define RESOLVE_RETRY_MIN_MS 500
#define RESOLVE_RETRY_MAX_MS 30000
#define RESOLVE_MAX_PORT 65535

/* ---------------------------------------------------------------------- */
/* parsing                                                                 */

static int resolve_parse_port(const char *p, uint16_t *port) {
  if (*p == '\0')
    return DMQ_EADDR;
  unsigned long v = 0;
  for (; *p != '\0'; p++) {
    if (*p < '0' || *p > '9')
      return DMQ_EADDR;
    v = v * 10 + (unsigned long)(*p - '0');
    if (v > RESOLVE_MAX_PORT)
      return DMQ_EADDR;
  }
  *port = (uint16_t)v;
  return 0;
}

static int resolve_copy(char *dst, size_t cap, const char *src, size_t len) {
  if (len >= cap)
    return DMQ_EADDR;
  memcpy(dst, src, len);
  dst[len] = '\0';
  return 0;
}

int dmq__hostport_split(const char *s, char *host, size_t cap, uint16_t *port,
                        int *has_port) {
  if (s == NULL || host == NULL || port == NULL || has_port == NULL)
    return DMQ_EINVAL;
  *port = 0;
  *has_port = 0;
  if (s[0] == '[') {
    const char *close = strchr(s, ']');
    if (close == NULL || close == s + 1)
      return DMQ_EADDR;
    if (resolve_copy(host, cap, s + 1, (size_t)(close - s - 1)) != 0)
      return DMQ_EADDR;
    if (close[1] == '\0')
      return 0;
    if (close[1] != ':')
      return DMQ_EADDR;
    *has_port = 1;
    return resolve_parse_port(close + 2, port);
  }
  const char *colon = strchr(s, ':');
  if (colon != NULL && strchr(colon + 1, ':') != NULL) {
    /* two or more colons without brackets: a bare IPv6 literal */
    return resolve_copy(host, cap, s, strlen(s));
  }
  if (colon == NULL)
    return s[0] == '\0' ? DMQ_EADDR : resolve_copy(host, cap, s, strlen(s));
  if (colon == s)
    return DMQ_EADDR;
  if (resolve_copy(host, cap, s, (size_t)(colon - s)) != 0)
    return DMQ_EADDR;
  *has_port = 1;
  return resolve_parse_port(colon + 1, port);
}

/* Letters, digits, '-', '_' and dots between non-empty labels. */
static int resolve_valid_name(const char *s) {
  size_t len = strlen(s), label = 0;
  if (len == 0 || len > DMQ__NAME_MAX)
    return 0;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (c == '.') {
      if (label == 0)
        return 0;
      label = 0;
      continue;
    }
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
             (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok)
      return 0;
    label++;
  }
  return 1;
}

int dmq__seed_parse(const char *s, dmq__seed_t *out) {
  if (s == NULL || out == NULL)
    return DMQ_EINVAL;
  size_t len = strlen(s);
  if (len == 0 || len > DMQ_MAX_ADDR)
    return DMQ_EINVAL;
  memset(out, 0, sizeof(*out));
  const char *rest = s;
  const char *sep = strstr(s, "://");
  if (sep != NULL) {
    if (sep - s != 3 || strncmp(s, "udp", 3) != 0) {
      /* another scheme: the caller's own transport; pass it through */
      out->kind = DMQ__SEED_ADDR;
      memcpy(out->addr, s, len + 1);
      return 0;
    }
    rest = sep + 3;
  }
  char host[DMQ__NAME_MAX + 1];
  uint16_t port;
  int has_port;
  int rc = dmq__hostport_split(rest, host, sizeof(host), &port, &has_port);
  if (rc != 0)
    return rc;
  if (has_port && port == 0)
    return DMQ_EADDR;
  if (!has_port)
    port = DMQ__DEFAULT_PORT;
  /* an IP literal? normalise it the way the transports print addresses */
  char lit[DMQ__NAME_MAX + 16];
  struct sockaddr_storage ss;
  snprintf(lit, sizeof(lit), strchr(host, ':') ? "[%s]:%u" : "%s:%u", host,
           (unsigned)port);
  if (dmq__addr_parse(lit, "udp", &ss) == 0) {
    out->kind = DMQ__SEED_ADDR;
    out->port = port;
    return dmq__addr_format((const struct sockaddr *)&ss, "udp", out->addr,
                            sizeof(out->addr)) > 0
               ? 0
               : DMQ_EADDR;
  }
  if (!resolve_valid_name(host))
    return DMQ_EADDR;
  memcpy(out->name, host, strlen(host) + 1);
  if (host[0] == '_') {
    if (has_port) /* the SRV records carry the ports */
      return DMQ_EADDR;
    out->kind = DMQ__SEED_SRV;
    return 0;
  }
  out->kind = DMQ__SEED_NAME;
  out->port = port;
  return 0;
}

/* ---------------------------------------------------------------------- */
/* the resolver                                                            */

typedef struct resolve_list {
  size_t n;
  char a[RESOLVE_MAX_ADDRS][RESOLVE_ADDR_LEN];
} resolve_list_t;

typedef struct resolve_spec {
  dmq__seed_t seed;
  /* names only (NULL for a literal address, which needs neither: a
   * resolver with literal seeds stays a few hundred bytes): */
  resolve_list_t *good; /* latest successful answer */
  resolve_list_t *next; /* being collected by the current round */
} resolve_spec_t;

static void resolve_specs_free(resolve_spec_t *specs, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(specs[i].good); /* next lives in the same block */
  free(specs);
}

typedef struct resolve_srv_target {
  char name[DMQ__NAME_MAX + 1];
  uint16_t port, priority, weight;
} resolve_srv_target_t;

typedef struct resolve_req resolve_req_t;
struct resolve_req {
  union {
    uv_getaddrinfo_t gai;
    uv_work_t work;
  } u;
  int is_srv;
  dmq__resolver_t *r;
  uint64_t gen;
  size_t spec;
  uint16_t port;
  resolve_req_t *prev, *next; /* in-flight list, for cancellation */
  /* SRV: filled on the worker thread, read in the after-work callback */
  char qname[DMQ__NAME_MAX + 1];
  int err;
  size_t ntargets;
  resolve_srv_target_t targets[RESOLVE_MAX_SRV_TARGETS];
};

struct dmq__resolver {
  uv_loop_t *loop;
  uv_timer_t timer;
  dmq__resolve_cb cb;
  void *ud;
  uint32_t refresh_ms;
  uint32_t backoff_ms;
  resolve_spec_t *specs;
  size_t nspecs;
  size_t nnames;
  uint64_t gen;            /* current round; stale answers are dropped */
  unsigned round_pending;  /* lookups of the current round in flight */
  resolve_req_t *inflight; /* every request in flight, any round */
  unsigned ninflight;
  uint64_t rounds;
  const char *merged[RESOLVE_MAX_ADDRS];
  size_t nmerged;
  int closing, timer_closed;
  void (*done)(void *ud);
  void *done_ud;
};

static void resolve_round_start(dmq__resolver_t *r);
static void resolve_maybe_free(dmq__resolver_t *r);

static void resolve_list_add(resolve_list_t *l, const char *addr) {
  if (l->n == RESOLVE_MAX_ADDRS)
    return;
  for (size_t i = 0; i < l->n; i++)
    if (strcmp(l->a[i], addr) == 0)
      return;
  snprintf(l->a[l->n++], RESOLVE_ADDR_LEN, "%s", addr);
}

static void resolve_merge(dmq__resolver_t *r) {
  r->nmerged = 0;
  for (size_t i = 0; i < r->nspecs; i++) {
    resolve_spec_t *sp = &r->specs[i];
    size_t n = sp->seed.kind == DMQ__SEED_ADDR ? 1 : sp->good->n;
    for (size_t j = 0; j < n && r->nmerged < RESOLVE_MAX_ADDRS; j++) {
      const char *a =
          sp->seed.kind == DMQ__SEED_ADDR ? sp->seed.addr : sp->good->a[j];
      int dup = 0;
      for (size_t k = 0; k < r->nmerged && !dup; k++)
        dup = strcmp(r->merged[k], a) == 0;
      if (!dup)
        r->merged[r->nmerged++] = a;
    }
  }
}

static resolve_req_t *resolve_req_new(dmq__resolver_t *r, size_t spec,
                                      uint16_t port, int is_srv) {
  resolve_req_t *q = malloc(sizeof(*q));
  if (q == NULL)
    return NULL;
  memset(q, 0, sizeof(*q));
  q->r = r;
  q->gen = r->gen;
  q->spec = spec;
  q->port = port;
  q->is_srv = is_srv;
  q->next = r->inflight;
  if (r->inflight != NULL)
    r->inflight->prev = q;
  r->inflight = q;
  r->ninflight++;
  return q;
}

/* Unlink and free; returns 1 if the request belongs to the current round. */
static int resolve_req_done(resolve_req_t *q) {
  dmq__resolver_t *r = q->r;
  if (q->prev != NULL)
    q->prev->next = q->next;
  else
    r->inflight = q->next;
  if (q->next != NULL)
    q->next->prev = q->prev;
  r->ninflight--;
  int current = !r->closing && q->gen == r->gen;
  free(q);
  return current;
}

static void resolve_on_timer(uv_timer_t *t) {
  resolve_round_start(t->data);
}

static void resolve_schedule(dmq__resolver_t *r, uint64_t delay) {
  if (!r->closing)
    uv_timer_start(&r->timer, resolve_on_timer, delay, 0);
}

static void resolve_round_finish(dmq__resolver_t *r) {
  size_t ok = 0;
  for (size_t i = 0; i < r->nspecs; i++) {
    resolve_spec_t *sp = &r->specs[i];
    if (sp->seed.kind == DMQ__SEED_ADDR || sp->next->n == 0)
      continue;
    *sp->good = *sp->next; /* merged[] points into good: copy, no swap */
    ok++;
  }
  r->rounds++;
  if (ok > 0) {
    r->backoff_ms = 0;
    resolve_schedule(r, r->refresh_ms);
  } else {
    uint32_t cap = r->refresh_ms < RESOLVE_RETRY_MAX_MS ? r->refresh_ms
                                                        : RESOLVE_RETRY_MAX_MS;
    uint32_t b = r->backoff_ms == 0 ? RESOLVE_RETRY_MIN_MS : r->backoff_ms * 2;
    r->backoff_ms = b < cap ? b : cap;
    resolve_schedule(r, r->backoff_ms);
  }
  resolve_merge(r);
  r->cb(r->ud, r->merged, r->nmerged);
}

static void resolve_one_done(dmq__resolver_t *r) {
  if (--r->round_pending == 0)
    resolve_round_finish(r);
}

static void resolve_gai_cb(uv_getaddrinfo_t *req, int status,
                           struct addrinfo *res) {
  resolve_req_t *q = (resolve_req_t *)req;
  dmq__resolver_t *r = q->r;
  size_t spec = q->spec;
  uint16_t port = q->port;
  int current = resolve_req_done(q);
  if (current && status == 0) {
    resolve_list_t *l = r->specs[spec].next;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
      struct sockaddr_storage ss;
      char a[RESOLVE_ADDR_LEN];
      if (ai->ai_addrlen > sizeof(ss))
        continue;
      memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
      if (ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&ss)->sin_port = htons(port);
      else if (ss.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);
      else
        continue;
      if (dmq__addr_format((const struct sockaddr *)&ss, "udp", a, sizeof(a)) >
          0)
        resolve_list_add(l, a);
    }
  }
  if (res != NULL)
    uv_freeaddrinfo(res);
  if (current)
    resolve_one_done(r);
  else
    resolve_maybe_free(r);
}

static int resolve_gai_start(dmq__resolver_t *r, size_t spec, const char *name,
                             uint16_t port) {
  resolve_req_t *q = resolve_req_new(r, spec, port, 0);
  if (q == NULL)
    return DMQ_ENOMEM;
  struct addrinfo hints;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM; /* one entry per address */
  if (uv_getaddrinfo(r->loop, &q->u.gai, resolve_gai_cb, name, NULL, &hints) !=
      0) {
    resolve_req_done(q);
    return DMQ_ERESOLVE;
  }
  r->round_pending++;
  return 0;
}

static int resolve_srv_cmp(const void *a, const void *b) {
  const resolve_srv_target_t *x = a, *y = b;
  if (x->priority != y->priority)
    return x->priority < y->priority ? -1 : 1;
  if (x->weight != y->weight)
    return x->weight > y->weight ? -1 : 1;
  return 0;
}

/* Worker thread: query SRV records and parse them. Touches only q. */
static void resolve_srv_work(uv_work_t *w) {
  resolve_req_t *q = (resolve_req_t *)w;
  q->err = -1;
  unsigned char *ans = malloc(RESOLVE_ANSWER_MAX);
  if (ans == NULL)
    return;
  struct __res_state st;
  memset(&st, 0, sizeof(st));
  if (res_ninit(&st) != 0) {
    free(ans);
    return;
  }
  int len =
      res_nquery(&st, q->qname, ns_c_in, ns_t_srv, ans, RESOLVE_ANSWER_MAX);
  res_nclose(&st);
  ns_msg msg;
  if (len < 0 ||
      ns_initparse(ans, len < RESOLVE_ANSWER_MAX ? len : RESOLVE_ANSWER_MAX,
                   &msg) < 0) {
    free(ans);
    return;
  }
  int count = ns_msg_count(msg, ns_s_an);
  for (int i = 0; i < count && q->ntargets < RESOLVE_MAX_SRV_TARGETS; i++) {
    ns_rr rr;
    if (ns_parserr(&msg, ns_s_an, i, &rr) < 0)
      break;
    /* priority, weight, port (16 bits each) then the target name */
    if (ns_rr_type(rr) != ns_t_srv || ns_rr_rdlen(rr) < 3 * NS_INT16SZ + 1)
      continue;
    const unsigned char *rd = ns_rr_rdata(rr);
    resolve_srv_target_t *t = &q->targets[q->ntargets];
    t->priority = (uint16_t)ns_get16(rd);
    t->weight = (uint16_t)ns_get16(rd + NS_INT16SZ);
    t->port = (uint16_t)ns_get16(rd + 2 * NS_INT16SZ);
    if (dn_expand(ns_msg_base(msg), ns_msg_end(msg), rd + 3 * NS_INT16SZ,
                  t->name, sizeof(t->name)) < 0)
      continue;
    /* "." means the service is decidedly not available there */
    if (t->name[0] == '\0' || strcmp(t->name, ".") == 0 || t->port == 0)
      continue;
    q->ntargets++;
  }
  free(ans);
  qsort(q->targets, q->ntargets, sizeof(q->targets[0]), resolve_srv_cmp);
  q->err = 0;
}

static void resolve_srv_after(uv_work_t *w, int status) {
  resolve_req_t *q = (resolve_req_t *)w;
  dmq__resolver_t *r = q->r;
  size_t spec = q->spec;
  resolve_srv_target_t targets[RESOLVE_MAX_SRV_TARGETS];
  size_t nt = 0;
  if (status == 0 && q->err == 0) {
    nt = q->ntargets;
    memcpy(targets, q->targets, nt * sizeof(targets[0]));
  }
  int current = resolve_req_done(q);
  if (!current) {
    resolve_maybe_free(r);
    return;
  }
  for (size_t i = 0; i < nt; i++)
    resolve_gai_start(r, spec, targets[i].name, targets[i].port);
  resolve_one_done(r);
}

static int resolve_srv_start(dmq__resolver_t *r, size_t spec) {
  resolve_req_t *q = resolve_req_new(r, spec, 0, 1);
  if (q == NULL)
    return DMQ_ENOMEM;
  snprintf(q->qname, sizeof(q->qname), "%s", r->specs[spec].seed.name);
  if (uv_queue_work(r->loop, &q->u.work, resolve_srv_work, resolve_srv_after) !=
      0) {
    resolve_req_done(q);
    return DMQ_ERESOLVE;
  }
  r->round_pending++;
  return 0;
}

static void resolve_round_start(dmq__resolver_t *r) {
  if (r->closing || r->nnames == 0)
    return;
  r->gen++;
  r->round_pending = 1; /* held until every lookup is launched */
  for (size_t i = 0; i < r->nspecs; i++) {
    resolve_spec_t *sp = &r->specs[i];
    if (sp->next != NULL)
      sp->next->n = 0;
    if (sp->seed.kind == DMQ__SEED_NAME)
      resolve_gai_start(r, i, sp->seed.name, sp->seed.port);
    else if (sp->seed.kind == DMQ__SEED_SRV)
      resolve_srv_start(r, i);
  }
  resolve_one_done(r);
}

int dmq__resolver_new(uv_loop_t *loop, uint32_t refresh_ms, dmq__resolve_cb cb,
                      void *ud, dmq__resolver_t **out) {
  if (loop == NULL || cb == NULL || out == NULL || refresh_ms == 0)
    return DMQ_EINVAL;
  dmq__resolver_t *r = malloc(sizeof(*r));
  if (r == NULL)
    return DMQ_ENOMEM;
  memset(r, 0, sizeof(*r));
  r->loop = loop;
  r->cb = cb;
  r->ud = ud;
  r->refresh_ms = refresh_ms;
  uv_timer_init(loop, &r->timer);
  r->timer.data = r;
  *out = r;
  return 0;
}

int dmq__resolver_set(dmq__resolver_t *r, const char *const *seeds, size_t n) {
  if (r == NULL || r->closing || (seeds == NULL && n > 0))
    return DMQ_EINVAL;
  if (n > RESOLVE_MAX_ADDRS)
    return DMQ_ELIMIT;
  resolve_spec_t *specs = NULL;
  if (n > 0) {
    specs = calloc(n, sizeof(*specs));
    if (specs == NULL)
      return DMQ_ENOMEM;
  }
  size_t names = 0;
  for (size_t i = 0; i < n; i++) {
    int rc = dmq__seed_parse(seeds[i], &specs[i].seed);
    if (rc == 0 && specs[i].seed.kind != DMQ__SEED_ADDR) {
      resolve_list_t *l = calloc(2, sizeof(*l));
      if (l == NULL)
        rc = DMQ_ENOMEM;
      else {
        specs[i].good = &l[0];
        specs[i].next = &l[1];
        names++;
      }
    }
    if (rc != 0) {
      resolve_specs_free(specs, n);
      return rc;
    }
  }
  resolve_specs_free(r->specs, r->nspecs);
  r->specs = specs;
  r->nspecs = n;
  r->nnames = names;
  r->gen++; /* abandon the old round */
  r->round_pending = 0;
  r->backoff_ms = 0;
  resolve_merge(r);
  uv_timer_stop(&r->timer);
  if (names > 0)
    resolve_schedule(r, 0);
  return 0;
}

size_t dmq__resolver_name_count(const dmq__resolver_t *r) {
  return r != NULL ? r->nnames : 0;
}

size_t dmq__resolver_addrs(const dmq__resolver_t *r, const char **out,
                           size_t cap) {
  if (r == NULL || out == NULL)
    return 0;
  size_t n = r->nmerged < cap ? r->nmerged : cap;
  memcpy(out, r->merged, n * sizeof(*out));
  return n;
}

uint64_t dmq__resolver_rounds(const dmq__resolver_t *r) {
  return r != NULL ? r->rounds : 0;
}

static void resolve_maybe_free(dmq__resolver_t *r) {
  if (!r->closing || !r->timer_closed || r->ninflight > 0)
    return;
  void (*done)(void *) = r->done;
  void *ud = r->done_ud;
  resolve_specs_free(r->specs, r->nspecs);
  free(r);
  if (done != NULL)
    done(ud);
}

static void resolve_timer_closed(uv_handle_t *h) {
  dmq__resolver_t *r = h->data;
  r->timer_closed = 1;
  resolve_maybe_free(r);
}

void dmq__resolver_close(dmq__resolver_t *r, void (*done)(void *ud), void *ud) {
  if (r == NULL || r->closing)
    return;
  r->closing = 1;
  r->done = done;
  r->done_ud = ud;
  r->gen++;
  /* Lookups not yet started are cancelled (their callbacks then run with
   * UV_ECANCELED); running ones finish and are ignored. */
  for (resolve_req_t *q = r->inflight; q != NULL; q = q->next)
    uv_cancel(q->is_srv ? (uv_req_t *)&q->u.work : (uv_req_t *)&q->u.gai);
  uv_timer_stop(&r->timer);
  uv_close((uv_handle_t *)&r->timer, resolve_timer_closed);
}
