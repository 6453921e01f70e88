/* libdmq - the spare descriptor of a process (see spare.h). */
#define _GNU_SOURCE /* accept4 */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <sys/socket.h>
#include <uv.h>

#include "common/spare.h"

static uv_once_t spare_once = UV_ONCE_INIT;
static uv_mutex_t spare_mu;
static unsigned long spare_users;
static int spare_fd = -1;

static void spare_init(void) {
  if (uv_mutex_init(&spare_mu) != 0)
    abort(); /* no way to report it; libuv aborts on lock failures too */
}

/* With the mutex held. */
static void spare_open(void) {
  if (spare_fd < 0)
    spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

void dmq__spare_attach(void) {
  uv_once(&spare_once, spare_init);
  uv_mutex_lock(&spare_mu);
  spare_users++;
  spare_open();
  uv_mutex_unlock(&spare_mu);
}

void dmq__spare_detach(void) {
  uv_once(&spare_once, spare_init);
  uv_mutex_lock(&spare_mu);
  if (spare_users > 0 && --spare_users == 0 && spare_fd >= 0) {
    close(spare_fd);
    spare_fd = -1;
  }
  uv_mutex_unlock(&spare_mu);
}

int dmq__spare_refuse(int lfd) {
  int refused = 0;
  uv_once(&spare_once, spare_init);
  uv_mutex_lock(&spare_mu);
  if (spare_fd >= 0) {
    close(spare_fd);
    spare_fd = -1;
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0) {
      close(fd);
      refused = 1;
    }
  }
  spare_open();
  uv_mutex_unlock(&spare_mu);
  return refused;
}
