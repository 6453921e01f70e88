/* dmq-peer: command-line options (getopt_long) and --help. An option's value
 * is the next argument or follows '=' (--name=a); unambiguous prefixes of a
 * long option are accepted. Anything wrong exits with PEER_EXIT_USAGE. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "peer.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: dmq-peer --name NAME --bind ADDR [options]\n"
          "\n"
          "Runs one libdmq member. Commands are read from stdin, one per "
          "line;\n"
          "events are written to stdout as JSON lines.\n"
          "\n"
          "options:\n"
          "  --name NAME          member name (required, 1..64 bytes, unique)\n"
          "  --bind ADDR          host:port for UDP and TCP, e.g. "
          "127.0.0.1:7946 (required)\n"
          "  --advertise ADDR     host:port others use (default: the bound "
          "address)\n"
          "  --seed SEED          seed address (host:port) or DNS name "
          "(name, name:port,\n"
          "                       _dmq._udp.domain for SRV); repeatable, at "
          "most %d\n"
          "  --profile NAME       lan (default), wan, local or fast\n"
          "  --meta K=V           initial metadata; repeatable\n"
          "  --udp-only           no TCP (no push/pull stream, no stream "
          "fallback probe)\n"
          "  --channel NAME       serve channel NAME (1..%d bytes, no "
          "blanks): its messages\n"
          "                       are printed, requests answered "
          "\"ack:TEXT\"; repeatable\n"
          "  --ttl-ms N           TTL of reliable sends and replies "
          "(default %u)\n"
          "  --request-timeout-ms N\n"
          "                       how long a request waits for its reply "
          "(default 5000)\n"
          "  --exit-on-eof        quit when stdin ends (default: keep "
          "running)\n"
          "  --log-level LEVEL    libdmq log lines to stderr: none, error, "
          "warn (default),\n"
          "                       info, debug\n"
          "  --key-file PATH      seal every packet: one key per line, 64 hex "
          "characters,\n"
          "                       the first one primary (docs/security.md); "
          "`keys reload`\n"
          "                       re-reads it\n"
          "  --seal-mode MODE     off, transition or required (default "
          "required with\n"
          "                       --key-file)\n"
          "  --label NAME         cluster label (1..%d printable bytes): "
          "packets of other\n"
          "                       labels are dropped\n"
          "  --help               this text\n"
          "\n"
          "commands (stdin; TEXT: the rest of the line):\n",
          PEER_MAX_SEEDS, DMQ_MAX_CHANNEL, PEER_DEFAULT_TTL_MS, DMQ_MAX_LABEL);
  peer_commands_usage(f);
  fprintf(f, "\n"
             "SIGTERM/SIGINT: graceful leave, exit 0. Exit status 2: bad "
             "arguments or\n"
             "start-up failure (e.g. the address is in use).\n");
}

void peer_die_usage(const char *fmt, ...) {
  va_list ap;
  fputs("dmq-peer: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputs("\n(dmq-peer --help for usage)\n", stderr);
  exit(PEER_EXIT_USAGE);
}

enum opt_id {
  OPT_HELP = 'h',
  OPT_NAME = 256,
  OPT_BIND,
  OPT_ADVERTISE,
  OPT_SEED,
  OPT_PROFILE,
  OPT_META,
  OPT_UDP_ONLY,
  OPT_CHANNEL,
  OPT_TTL_MS,
  OPT_REQUEST_TIMEOUT_MS,
  OPT_EXIT_ON_EOF,
  OPT_LOG_LEVEL,
  OPT_KEY_FILE,
  OPT_SEAL_MODE,
  OPT_LABEL
};

static const struct option g_opts[] = {
    {"name", required_argument, NULL, OPT_NAME},
    {"bind", required_argument, NULL, OPT_BIND},
    {"advertise", required_argument, NULL, OPT_ADVERTISE},
    {"seed", required_argument, NULL, OPT_SEED},
    {"profile", required_argument, NULL, OPT_PROFILE},
    {"meta", required_argument, NULL, OPT_META},
    {"udp-only", no_argument, NULL, OPT_UDP_ONLY},
    {"exit-on-eof", no_argument, NULL, OPT_EXIT_ON_EOF},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"help", no_argument, NULL, OPT_HELP},
    {"channel", required_argument, NULL, OPT_CHANNEL},
    {"ttl-ms", required_argument, NULL, OPT_TTL_MS},
    {"request-timeout-ms", required_argument, NULL, OPT_REQUEST_TIMEOUT_MS},
    {"key-file", required_argument, NULL, OPT_KEY_FILE},
    {"seal-mode", required_argument, NULL, OPT_SEAL_MODE},
    {"label", required_argument, NULL, OPT_LABEL},
    {NULL, 0, NULL, 0},
};

/* A decimal number of milliseconds, 1..UINT32_MAX; -1 if it is not one. */
static int parse_ms(const char *s, uint32_t *out) {
  if (*s < '0' || *s > '9')
    return -1;
  errno = 0;
  char *end;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0' || v == 0 || v > UINT32_MAX)
    return -1;
  *out = (uint32_t)v;
  return 0;
}

/* One option; c is getopt_long's return value. */
static void apply_opt(peer_t *p, int c, char **argv) {
  switch (c) {
  case OPT_NAME:
    if (optarg[0] == '\0' || strlen(optarg) > DMQ_MAX_NAME)
      peer_die_usage("--name must be 1..%d bytes", DMQ_MAX_NAME);
    p->name = optarg;
    break;
  case OPT_BIND:
    p->bind = optarg;
    break;
  case OPT_ADVERTISE:
    p->advertise = optarg;
    break;
  case OPT_SEED:
    if (optarg[0] == '\0')
      peer_die_usage("--seed needs a non-empty address or name");
    if (p->n_seeds == PEER_MAX_SEEDS)
      peer_die_usage("at most %d --seed options", PEER_MAX_SEEDS);
    p->seeds[p->n_seeds++] = optarg;
    break;
  case OPT_PROFILE:
    if (dmq_profile_from_name(optarg, &p->profile) != 0)
      peer_die_usage("unknown profile '%s' (lan, wan, local or fast)", optarg);
    break;
  case OPT_META: {
    const char *k, *v, *why;
    size_t klen;
    if (meta_split(optarg, &k, &klen, &v, &why) != 0)
      peer_die_usage("--meta '%s': %s", optarg, why);
    if (meta_merge(p->meta, &p->n_meta, k, klen, v, &why) != 0)
      peer_die_usage("--meta '%s': %s", optarg, why);
    break;
  }
  case OPT_UDP_ONLY:
    p->udp_only = 1;
    break;
  case OPT_CHANNEL: {
    size_t l = strlen(optarg);
    if (l == 0 || l > DMQ_MAX_CHANNEL)
      peer_die_usage("--channel must be 1..%d bytes", DMQ_MAX_CHANNEL);
    for (size_t j = 0; j < l; j++)
      if ((unsigned char)optarg[j] <= ' ' || optarg[j] == 0x7F)
        peer_die_usage("--channel '%s': no blanks or control characters",
                       optarg);
    for (size_t j = 0; j < p->n_init_chans; j++)
      if (strcmp(p->init_chans[j], optarg) == 0)
        peer_die_usage("--channel '%s' given twice", optarg);
    if (p->n_init_chans == DMQ_MAX_CHANNELS)
      peer_die_usage("at most %d --channel options", DMQ_MAX_CHANNELS);
    p->init_chans[p->n_init_chans++] = optarg;
    break;
  }
  case OPT_TTL_MS:
    if (parse_ms(optarg, &p->ttl_ms) != 0)
      peer_die_usage("--ttl-ms '%s': a number of milliseconds, 1..%" PRIu32,
                     optarg, UINT32_MAX);
    break;
  case OPT_REQUEST_TIMEOUT_MS:
    if (parse_ms(optarg, &p->request_timeout_ms) != 0)
      peer_die_usage("--request-timeout-ms '%s': a number of milliseconds, "
                     "1..%" PRIu32,
                     optarg, UINT32_MAX);
    break;
  case OPT_EXIT_ON_EOF:
    p->exit_on_eof = 1;
    break;
  case OPT_LOG_LEVEL: {
    static const char *const lv[] = {"error", "warn", "info", "debug"};
    int found = strcmp(optarg, "none") == 0;
    p->log_level = -1;
    for (int j = 0; j < 4 && !found; j++)
      if (strcmp(optarg, lv[j]) == 0) {
        p->log_level = j;
        found = 1;
      }
    if (!found)
      peer_die_usage("unknown log level '%s' (none, error, warn, info, debug)",
                     optarg);
    break;
  }
  case OPT_KEY_FILE:
    if (optarg[0] == '\0')
      peer_die_usage("--key-file needs a path");
    p->key_file = optarg;
    break;
  case OPT_SEAL_MODE:
    if (dmq_seal_mode_from_name(optarg, &p->seal_mode) != 0)
      peer_die_usage("unknown seal mode '%s' (off, transition or required)",
                     optarg);
    p->seal_mode_set = 1;
    break;
  case OPT_LABEL: {
    size_t l = strlen(optarg);
    if (l == 0 || l > DMQ_MAX_LABEL)
      peer_die_usage("--label must be 1..%d bytes", DMQ_MAX_LABEL);
    for (size_t j = 0; j < l; j++)
      if ((unsigned char)optarg[j] <= ' ' || optarg[j] == 0x7F)
        peer_die_usage("--label '%s': no blanks or control characters", optarg);
    p->label = optarg;
    break;
  }
  case OPT_HELP:
    usage(stdout);
    exit(0);
  case ':':
    peer_die_usage("option %s needs a value", argv[optind - 1]);
    break;
  default: /* '?': unknown, or a value given to a flag */
    peer_die_usage("bad option '%s'", argv[optind - 1]);
  }
}

void peer_parse_args(peer_t *p, int argc, char **argv) {
  p->profile = DMQ_PROFILE_LAN;
  p->log_level = DMQ_LOG_WARN;
  p->ttl_ms = PEER_DEFAULT_TTL_MS;
  opterr = 0; /* our messages, on stderr, exit 2 */
  int c;
  /* '+': stop at the first non-option; ':': a missing value is ':' */
  while ((c = getopt_long(argc, argv, "+:h", g_opts, NULL)) != -1)
    apply_opt(p, c, argv);
  if (optind < argc)
    peer_die_usage("unexpected argument '%s'", argv[optind]);
  if (p->name == NULL)
    peer_die_usage("--name is required");
  if (p->bind == NULL)
    peer_die_usage("--bind is required");
  if (p->seal_mode_set && p->seal_mode != DMQ_SEAL_OFF && p->key_file == NULL)
    peer_die_usage("--seal-mode %s needs --key-file",
                   dmq_seal_mode_name(p->seal_mode));
  if (!p->seal_mode_set)
    p->seal_mode = p->key_file != NULL ? DMQ_SEAL_REQUIRED : DMQ_SEAL_OFF;
}
