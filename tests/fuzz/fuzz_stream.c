/* libFuzzer target: the TCP transport's stream framing (4-byte big-endian
 * length, then the payload; transports/tcp/tcp.c, tcp_parse()). The input
 * is [mtu: u16][nsplit: u8][nsplit split points: u16 each][stream bytes]:
 * the stream is fed to the frame reassembler of one socket in chunks cut at
 * the split points, as reads of arbitrary sizes would deliver it. What the
 * transport delivers must equal what a one-pass reference parser of the
 * whole stream finds: the same frames, in order, byte for byte, none after
 * a frame announcing more than the mtu (the connection is closed there)
 * and none for a trailing partial frame. Then the transport is closed and
 * its loop run until every handle is gone (LeakSanitizer checks the rest).
 *
 * tcp_parse() is static: the target compiles transports/tcp/tcp.c into
 * itself (its public symbols then come from this object, not from
 * libdmq.a's copy) and drives a socket handle that is never connected.
 */
#include "../../transports/tcp/tcp.c"

#include "fuzz_common.h"

#define MAX_FRAMES 4096

typedef struct frame_ref {
  const uint8_t *p;
  size_t n;
} frame_ref_t;

static struct {
  frame_ref_t want[MAX_FRAMES];
  size_t nwant, got;
} fs;

static void on_recv(dmq_transport_t *t, const char *from, const void *buf,
                    size_t len) {
  (void)t;
  CHECK(from != NULL && strcmp(from, "tcp://192.0.2.1:9") == 0);
  CHECK(fs.got < fs.nwant);
  CHECK(len == fs.want[fs.got].n);
  CHECK(len == 0 || memcmp(buf, fs.want[fs.got].p, len) == 0);
  fs.got++;
}

static void on_closed(dmq_transport_t *t) {
  (void)t;
}

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         (uint32_t)p[3];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static uv_loop_t loop;
  static int loop_ready;
  if (!loop_ready) {
    CHECK(uv_loop_init(&loop) == 0);
    loop_ready = 1;
  }
  fuzz_in_t in = {data, size};
  /* small mtus make the "larger than the mtu" cut reachable */
  size_t mtu = fuzz_u16(&in);
  size_t nsplit = fuzz_u8(&in) % 32;
  size_t split[32];
  for (size_t i = 0; i < nsplit; i++)
    split[i] = fuzz_u16(&in);
  const uint8_t *stream = in.p;
  size_t slen = in.n;

  /* reference: one pass over the whole stream */
  fs.nwant = fs.got = 0;
  int cut = 0;
  for (size_t off = 0; off + 4 <= slen && fs.nwant < MAX_FRAMES;) {
    uint32_t flen = be32(stream + off);
    if (flen > mtu) {
      cut = 1;
      break;
    }
    if (slen - off - 4 < flen)
      break; /* partial frame at the end: never delivered */
    fs.want[fs.nwant].p = stream + off + 4;
    fs.want[fs.nwant].n = flen;
    fs.nwant++;
    off += 4 + flen;
  }
  if (fs.nwant == MAX_FRAMES)
    return 0; /* not a stream worth comparing (only 4-byte frames) */

  dmq_transport_t *t;
  CHECK(dmq_tcp_transport_new(&loop, &t) == 0);
  t->mtu = mtu;
  t->on_recv = on_recv;
  t->on_closed = on_closed;
  tcp_t *tcp = t->impl;
  tcp_sock_t *s = NULL;
  CHECK(tcp_sock_new(tcp, AF_UNSPEC, &s) == 0 && s != NULL);
  s->inbound = 1;
  tcp->n_inbound++; /* as the accept path counts it (tcp_sock_close) */
  snprintf(s->peer, sizeof s->peer, "tcp://192.0.2.1:9");

  /* feed in chunks: each split point is a chunk length (0 = one byte) */
  size_t off = 0;
  for (size_t i = 0; off < slen && !s->closing; i++) {
    size_t n = slen - off;
    if (i < nsplit) {
      size_t want = split[i] ? split[i] : 1;
      if (want < n)
        n = want;
    }
    /* a private copy of the chunk: ASan sees reads past its end */
    uint8_t *chunk = malloc(n);
    CHECK(chunk != NULL);
    memcpy(chunk, stream + off, n);
    tcp_parse(s, chunk, n);
    free(chunk);
    off += n;
  }
  CHECK(fs.got == fs.nwant);
  CHECK(s->closing == cut);
  t->ops->close(t);
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
  return 0;
}
