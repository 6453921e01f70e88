/* dmq-peer: stdin into command lines. stdin may be a terminal, a pipe, a
 * FIFO, a socket (read as a uv_stream_t), a regular file or a device (read
 * with uv_fs_read() on the thread pool), or closed. */
#include <fcntl.h>
#include <unistd.h>

#include "jsonl.h"
#include "peer.h"

static void in_feed(peer_t *p, const char *buf, size_t n) {
  for (size_t i = 0; i < n; i++) {
    char c = buf[i];
    if (c == '\n') {
      if (p->line_overflow)
        emit_error("command line longer than %d bytes ignored", PEER_LINE_MAX);
      else if (p->line_nul)
        emit_error("command line with a NUL byte ignored");
      else {
        p->line[p->line_len] = '\0';
        peer_run_line(p, p->line);
      }
      p->line_len = 0;
      p->line_overflow = 0;
      p->line_nul = 0;
      /* `quit` stops reading: the rest of the input is not for us */
      if (p->quitting)
        return;
    } else if (p->line_len < PEER_LINE_MAX) {
      if (c == '\0')
        p->line_nul = 1;
      p->line[p->line_len++] = c;
    } else {
      p->line_overflow = 1;
    }
  }
}

static void in_on_eof(peer_t *p) {
  if (p->in_eof)
    return;
  p->in_eof = 1;
  /* a last line without a newline is still a command */
  if (p->line_len > 0 && !p->quitting)
    in_feed(p, "\n", 1);
  peer_in_close(p);
  if (p->exit_on_eof)
    peer_quit(p, "eof");
}

static void in_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  peer_t *p = h->data;
  (void)suggested;
  buf->base = p->in_buf;
  buf->len = sizeof(p->in_buf);
}

static void in_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  peer_t *p = s->data;
  if (nread > 0)
    in_feed(p, buf->base, (size_t)nread);
  else if (nread < 0)
    in_on_eof(p); /* UV_EOF, or an error: either way no more input */
}

static void in_fs_next(peer_t *p);

static void in_on_fs_read(uv_fs_t *req) {
  peer_t *p = req->data;
  ssize_t n = req->result;
  uv_fs_req_cleanup(req);
  p->in_fs_busy = 0;
  if (p->in_mode != IN_FILE)
    return; /* closed meanwhile */
  if (n > 0) {
    in_feed(p, p->in_buf, (size_t)n);
    if (p->in_mode == IN_FILE)
      in_fs_next(p);
  } else {
    in_on_eof(p);
  }
}

static void in_fs_next(peer_t *p) {
  uv_buf_t b = uv_buf_init(p->in_buf, sizeof(p->in_buf));
  p->in_req.data = p;
  if (uv_fs_read(p->loop, &p->in_req, 0, &b, 1, -1, in_on_fs_read) == 0)
    p->in_fs_busy = 1;
  else
    in_on_eof(p);
}

void peer_in_start(peer_t *p) {
  uv_handle_type t = uv_guess_handle(0);
  int rc = -1;
  p->stdin_flags = fcntl(0, F_GETFL);
  if (t == UV_TTY) {
    /* libuv reopens the terminal: stdout's O_NONBLOCK is left alone */
    rc = uv_tty_init(p->loop, &p->in.tty, 0, 1);
  } else if (t == UV_NAMED_PIPE || t == UV_TCP) {
    rc = uv_pipe_init(p->loop, &p->in.pipe, 0);
    if (rc == 0) {
      rc = uv_pipe_open(&p->in.pipe, 0);
      if (rc != 0)
        uv_close((uv_handle_t *)&p->in.pipe, peer_on_handle_closed);
    }
  }
  if (rc == 0) {
    uv_stream_t *s = (uv_stream_t *)&p->in;
    s->data = p;
    p->in_mode = IN_STREAM;
    p->in_open = 1;
    rc = uv_read_start(s, in_alloc, in_on_read);
    if (rc != 0)
      in_on_eof(p);
    return;
  }
  if (t == UV_UNKNOWN_HANDLE && fcntl(0, F_GETFD) < 0) {
    in_on_eof(p); /* closed */
    return;
  }
  /* regular file, /dev/null, another device: read on the thread pool */
  p->in_mode = IN_FILE;
  in_fs_next(p);
}

void peer_in_close(peer_t *p) {
  if (p->in_mode == IN_STREAM && p->in_open) {
    p->in_open = 0;
    uv_close((uv_handle_t *)&p->in, peer_on_handle_closed);
  }
  /* an in-flight uv_fs_read() completes on its own and is then ignored */
  p->in_mode = IN_NONE;
}
