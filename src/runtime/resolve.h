/* libdmq - seed parsing and asynchronous seed resolution (internal).
 *
 * Used by the libuv runtime (runtime_uv.c). A seed string is one of:
 *   - an address: "udp://1.2.3.4:7946", "1.2.3.4:7946", "[::1]:7946",
 *     "1.2.3.4" (default port), or any "<scheme>://..." other than udp,
 *     passed through untouched;
 *   - a DNS name: "name" or "name:port" (every A and AAAA record is a seed);
 *   - an SRV name starting with '_': "_dmq._udp.example.test" (every SRV
 *     target:port, each target resolved to its A/AAAA records).
 * Addresses are normalised to "udp://<ip>:<port>" ("udp://[v6]:port").
 *
 * The resolver runs lookups on libuv's thread pool (uv_getaddrinfo, and
 * res_nquery inside uv_queue_work for SRV), never blocking the loop.
 */
#ifndef DMQ_RESOLVE_H
#define DMQ_RESOLVE_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "dmq/dmq.h"

/* Port used for seeds given without one. */
#define DMQ__DEFAULT_PORT 7946
/* Longest DNS name (RFC 1035: 253 characters in text form). */
#define DMQ__NAME_MAX 253

typedef enum dmq__seed_kind {
  DMQ__SEED_ADDR = 0, /* addr holds the normalised address */
  DMQ__SEED_NAME,     /* name + port: A/AAAA lookup */
  DMQ__SEED_SRV       /* name: SRV lookup */
} dmq__seed_kind_t;

typedef struct dmq__seed {
  dmq__seed_kind_t kind;
  char name[DMQ__NAME_MAX + 1];
  uint16_t port;
  char addr[DMQ_MAX_ADDR + 1];
} dmq__seed_t;

/* Split "host:port", "[v6]:port", "host", "[v6]" or a bare IPv6 literal.
 * host gets the host without brackets; *port is 0 and *has_port 0 when no
 * port is given. DMQ_EADDR when malformed (bad port, unbalanced brackets,
 * host too long for cap). */
int dmq__hostport_split(const char *s, char *host, size_t cap, uint16_t *port,
                        int *has_port);

/* Classify and normalise one seed. DMQ_EINVAL for NULL/empty/too long,
 * DMQ_EADDR when malformed. */
int dmq__seed_parse(const char *s, dmq__seed_t *out);

/* ---- the resolver ---- */

typedef struct dmq__resolver dmq__resolver_t;

/* Called on the loop after every resolution round with the current seed
 * list: literal addresses, then for each name its latest successful answer
 * (a name that fails keeps its previous answer). n may be 0 when nothing
 * resolved yet. addrs is borrowed for the call. */
typedef void (*dmq__resolve_cb)(void *ud, const char *const *addrs, size_t n);

/* refresh_ms: delay between rounds after a round where at least one name
 * resolved; when every name fails, rounds are retried with exponential
 * back-off (capped at refresh_ms). */
int dmq__resolver_new(uv_loop_t *loop, uint32_t refresh_ms, dmq__resolve_cb cb,
                      void *ud, dmq__resolver_t **out);
/* Replace the seed list (parsed at once: DMQ_EINVAL/DMQ_EADDR on a bad seed,
 * the previous list is kept then). Lookups in flight for the old list are
 * abandoned. When the list contains names, a round starts on the next loop
 * iteration; otherwise no round runs and no callback is made. */
int dmq__resolver_set(dmq__resolver_t *r, const char *const *seeds, size_t n);
/* Number of name (A/AAAA or SRV) seeds in the current list. */
size_t dmq__resolver_name_count(const dmq__resolver_t *r);
/* Copy pointers to the current list (valid until the next set/round) into
 * out; returns how many (at most cap). */
size_t dmq__resolver_addrs(const dmq__resolver_t *r, const char **out,
                           size_t cap);
/* Rounds completed so far (tests). */
uint64_t dmq__resolver_rounds(const dmq__resolver_t *r);
/* Abandon lookups (cancelling those not started), close the timer and free
 * the resolver; done(ud) runs on the loop once nothing of ours is left.
 * The resolve callback is never called after this. */
void dmq__resolver_close(dmq__resolver_t *r, void (*done)(void *ud), void *ud);

#endif
