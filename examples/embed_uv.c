/* embed_uv - libdmq on the application's own libuv loop.
 *
 * The first way to embed libdmq (docs/embedding.md): the program already runs
 * a libuv loop, so the nodes simply live on it (dmq_uv_new() on that loop)
 * and every callback runs on the loop's thread, between the program's own
 * callbacks. No thread, no locking.
 *
 * The program has its own timer doing "application work" (a counter) and
 * embeds two nodes, "a" and "b", on 127.0.0.1 with system-chosen ports. "b"
 * joins through "a"; member events are printed. Once each node has seen the
 * other alive (or after WATCHDOG_MS), both nodes are closed gracefully with
 * dmq_uv_close(), the program's timers are closed, uv_run() returns on its
 * own and uv_loop_close() must succeed. Exit status 0 when both nodes saw
 * each other and everything closed cleanly.
 */
#include <stdio.h>
#include <string.h>

#include <uv.h>

#include <dmq/uv.h>

#define APP_TICK_MS 100
#define WATCHDOG_MS 5000
#define FLUSH_MS 500

typedef struct app {
  uv_loop_t loop;
  uv_timer_t work;     /* the application's own periodic work */
  uv_timer_t watchdog; /* gives up after WATCHDOG_MS */
  dmq_uv_t *node[2];   /* "a" and "b" */
  const char *name[2]; /* their names */
  int sees_peer[2];    /* node[i] has seen the other alive */
  int closing, closed; /* dmq_uv_close() calls made / called back */
  unsigned long ticks; /* application work done */
} app_t;

static void on_member(dmq_node_t *node, dmq_member_event_t ev,
                      const dmq_member_info_t *m, void *ud) {
  app_t *app = ud;
  const char *self = dmq_node_name(node);
  printf("[%s] %s %s (%s)\n", self, m->name, dmq_member_event_name(ev),
         m->addr);
  for (int i = 0; i < 2; i++)
    if (strcmp(self, app->name[i]) == 0 &&
        strcmp(m->name, app->name[1 - i]) == 0 && m->state == DMQ_MEMBER_ALIVE)
      app->sees_peer[i] = 1;
}

static void on_node_closed(void *ud) {
  app_t *app = ud;
  app->closed++;
  printf("node closed (%d/2)\n", app->closed);
}

static void on_handle_closed(uv_handle_t *h) {
  (void)h;
}

/* Close everything of ours: the loop then runs out of handles. */
static void app_shutdown(app_t *app) {
  if (app->closing)
    return;
  app->closing = 1;
  for (int i = 0; i < 2; i++)
    dmq_uv_close(app->node[i], FLUSH_MS, on_node_closed, app);
  uv_close((uv_handle_t *)&app->work, on_handle_closed);
  uv_close((uv_handle_t *)&app->watchdog, on_handle_closed);
}

static void on_work(uv_timer_t *h) {
  app_t *app = h->data;
  app->ticks++; /* the program's own work would go here */
  if (app->sees_peer[0] && app->sees_peer[1]) {
    printf("both nodes see each other after %lu ticks: closing\n", app->ticks);
    app_shutdown(app);
  }
}

static void on_watchdog(uv_timer_t *h) {
  app_t *app = h->data;
  fprintf(stderr, "embed_uv: nodes did not converge in %d ms\n", WATCHDOG_MS);
  app_shutdown(app);
}

static int make_node(app_t *app, int i) {
  dmq_config_t cfg;
  dmq_config_init(&cfg, DMQ_PROFILE_LOCAL);
  cfg.name = app->name[i];
  dmq_uv_options_t opts;
  dmq_uv_options_init(&opts);
  opts.bind = "127.0.0.1:0";
  int rc = dmq_uv_new(&app->loop, &cfg, &opts, &app->node[i]);
  if (rc != 0) {
    fprintf(stderr, "embed_uv: dmq_uv_new(%s): %s\n", cfg.name,
            dmq_strerror(rc));
    return rc;
  }
  dmq_node_set_member_cb(dmq_uv_node(app->node[i]), on_member, app);
  printf("[%s] listening on %s\n", cfg.name, dmq_uv_addr(app->node[i]));
  return 0;
}

int main(void) {
  static app_t app; /* zeroed */
  app.name[0] = "a";
  app.name[1] = "b";
  if (uv_loop_init(&app.loop) != 0)
    return 1;
  uv_timer_init(&app.loop, &app.work);
  uv_timer_init(&app.loop, &app.watchdog);
  app.work.data = app.watchdog.data = &app;
  uv_timer_start(&app.work, on_work, APP_TICK_MS, APP_TICK_MS);
  uv_timer_start(&app.watchdog, on_watchdog, WATCHDOG_MS, 0);

  if (make_node(&app, 0) != 0 || make_node(&app, 1) != 0)
    return 1; /* (a real program would close what it opened) */
  const char *seed = dmq_uv_addr(app.node[0]);
  int rc = dmq_uv_join(app.node[1], &seed, 1);
  if (rc != 0) {
    fprintf(stderr, "embed_uv: join: %s\n", dmq_strerror(rc));
    return 1;
  }

  uv_run(&app.loop, UV_RUN_DEFAULT); /* returns once everything closed */
  int lc = uv_loop_close(&app.loop);
  printf("loop closed: %s\n", lc == 0 ? "ok" : uv_strerror(lc));
  int ok = app.sees_peer[0] && app.sees_peer[1] && app.closed == 2 && lc == 0;
  printf("embed_uv: %s\n", ok ? "OK" : "FAILED");
  return ok ? 0 : 1;
}
