/* dmq-sim: the figures as CSV, and a chart of them as a self-contained SVG
 * (or an HTML page with the SVG inline and the figures as a table): four
 * panels (join time, detection time, false deaths, bytes per member and
 * second) against N, one line per (profile, loss). No scripts, no fonts or
 * styles from the network. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "dmqsim.h"

#define CH_W 960
#define CH_PW 400 /* panel plot area */
#define CH_PH 220
#define CH_ML 80 /* left margin of a panel */
#define CH_MT 60 /* top margin of the chart */
#define CH_GAP_X 480
#define CH_GAP_Y 300

static const char *const ch_colors[] = {"#1f77b4", "#d62728", "#2ca02c",
                                        "#ff7f0e", "#9467bd", "#8c564b",
                                        "#e377c2", "#17becf"};
#define CH_NCOLORS (sizeof(ch_colors) / sizeof(ch_colors[0]))

static const char *ch_header =
    "profile,loss,nodes,seed,join_s,suspect_s,detect_s,detect_floor_s,"
    "false_deaths,bytes_per_member_s,pkts_per_member_s,sim_s,wall_s,"
    "transport";

static void ch_opt(FILE *f, int ok, double v, int prec) {
  if (ok)
    fprintf(f, ",%.*f", prec, v);
  else
    fputc(',', f);
}

static const char *ch_transport(const ds_opts_t *o) {
  return o->udp_only ? "udp" : "udp+tcp";
}

static void ch_csv_row(FILE *f, const ds_opts_t *o, const ds_result_t *x) {
  fprintf(f, "%s,%g,%zu,%llu", dmq_profile_name(x->profile), x->loss, x->nodes,
          (unsigned long long)x->seed);
  ch_opt(f, x->join_ok, x->join_s, 3);
  ch_opt(f, x->suspect_ok, x->suspect_s, 3);
  ch_opt(f, x->detect_ok, x->detect_s, 3);
  fprintf(f, ",%.3f,%llu", x->detect_floor_s,
          (unsigned long long)x->false_deaths);
  ch_opt(f, x->join_ok, x->bytes_per_member_s, 1);
  ch_opt(f, x->join_ok, x->pkts_per_member_s, 2);
  fprintf(f, ",%.3f,%.3f,%s\n", x->sim_s, x->wall_s, ch_transport(o));
}

int ds_write_csv(const char *path, const ds_opts_t *o, const ds_result_t *r,
                 size_t nr) {
  FILE *f = fopen(path, "w");
  if (f == NULL) {
    fprintf(stderr, "dmq-sim: cannot write %s\n", path);
    return -1;
  }
  fprintf(f, "%s\n", ch_header);
  for (size_t i = 0; i < nr; i++)
    ch_csv_row(f, o, &r[i]);
  if (fclose(f) != 0) {
    fprintf(stderr, "dmq-sim: cannot write %s\n", path);
    return -1;
  }
  return 0;
}

/* A panel's figure of a result; 0 when it has none. */
typedef int (*ch_get_t)(const ds_result_t *x, double *v);
static int ch_join(const ds_result_t *x, double *v) {
  *v = x->join_s;
  return x->join_ok;
}
static int ch_detect(const ds_result_t *x, double *v) {
  *v = x->detect_s;
  return x->detect_ok;
}
static int ch_false(const ds_result_t *x, double *v) {
  *v = (double)x->false_deaths;
  return 1;
}
static int ch_bytes(const ds_result_t *x, double *v) {
  *v = x->bytes_per_member_s;
  return x->join_ok;
}

typedef struct ch_panel {
  const char *title, *unit;
  ch_get_t get;
} ch_panel_t;

static const ch_panel_t ch_panels[4] = {
    {"join: every member sees all N alive", "s", ch_join},
    {"detection: every member sees a killed one dead", "s", ch_detect},
    {"false deaths (members declared dead, never killed)", "count", ch_false},
    {"traffic per member, steady state", "bytes/s", ch_bytes},
};

/* A "nice" upper bound for an axis: 1, 2 or 5 times a power of ten. */
static double ch_nice(double v) {
  if (v <= 0)
    return 1;
  double p = pow(10, floor(log10(v)));
  double m = v / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

typedef struct ch_axes {
  double xmin, xmax;
  int xlog;
} ch_axes_t;

static double ch_x(const ch_axes_t *a, double n) {
  double f;
  if (a->xmax <= a->xmin)
    f = 0.5;
  else if (a->xlog)
    f = (log(n) - log(a->xmin)) / (log(a->xmax) - log(a->xmin));
  else
    f = (n - a->xmin) / (a->xmax - a->xmin);
  return CH_PW * f;
}

/* The series of (profile, loss) pairs, in grid order. */
static void ch_series(const ds_opts_t *o, size_t k, dmq_profile_t *p,
                      double *loss) {
  *p = o->profile[k / o->n_loss];
  *loss = o->loss[k % o->n_loss];
}

static void ch_panel(FILE *f, const ds_opts_t *o, const ds_result_t *r,
                     size_t nr, const ch_axes_t *ax, int idx) {
  const ch_panel_t *pn = &ch_panels[idx];
  double ox = CH_ML + (idx % 2) * CH_GAP_X, oy = CH_MT + (idx / 2) * CH_GAP_Y;
  double ymax = 0, v;
  for (size_t i = 0; i < nr; i++)
    if (pn->get(&r[i], &v) && v > ymax)
      ymax = v;
  ymax = ch_nice(ymax * 1.05);
  fprintf(f, "<g transform=\"translate(%.0f,%.0f)\">\n", ox, oy);
  fprintf(f,
          "<text x=\"%d\" y=\"-12\" text-anchor=\"middle\" "
          "font-weight=\"bold\">%s</text>\n",
          CH_PW / 2, pn->title);
  fprintf(f,
          "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"none\" "
          "stroke=\"#888\"/>\n",
          CH_PW, CH_PH);
  for (int t = 0; t <= 4; t++) { /* y grid and labels */
    double y = CH_PH - CH_PH * t / 4.0;
    fprintf(f,
            "<line x1=\"0\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>"
            "<text x=\"-6\" y=\"%.1f\" text-anchor=\"end\" "
            "dominant-baseline=\"middle\">%g</text>\n",
            y, CH_PW, y, y, ymax * t / 4.0);
  }
  fprintf(f,
          "<text transform=\"translate(-58,%d) rotate(-90)\" "
          "text-anchor=\"middle\">%s</text>\n",
          CH_PH / 2, pn->unit);
  for (size_t i = 0; i < o->n_nodes; i++) { /* x ticks: the grid's N */
    double x = ch_x(ax, (double)o->nodes[i]);
    fprintf(f,
            "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" "
            "stroke=\"#888\"/><text x=\"%.1f\" y=\"%d\" "
            "text-anchor=\"middle\">%zu</text>\n",
            x, CH_PH, x, CH_PH + 5, x, CH_PH + 20, o->nodes[i]);
  }
  fprintf(f,
          "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">members "
          "(N%s)</text>\n",
          CH_PW / 2, CH_PH + 40, ax->xlog ? ", log scale" : "");
  size_t ns = o->n_profile * o->n_loss;
  for (size_t s = 0; s < ns; s++) {
    dmq_profile_t p;
    double loss;
    ch_series(o, s, &p, &loss);
    const char *col = ch_colors[s % CH_NCOLORS];
    const char *dash = s / CH_NCOLORS % 2 ? " stroke-dasharray=\"6 3\"" : "";
    fprintf(f,
            "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s "
            "points=\"",
            col, dash);
    for (size_t i = 0; i < nr; i++)
      if (r[i].profile == p && r[i].loss == loss && pn->get(&r[i], &v))
        fprintf(f, "%.1f,%.1f ", ch_x(ax, (double)r[i].nodes),
                CH_PH - CH_PH * v / ymax);
    fprintf(f, "\"/>\n");
    for (size_t i = 0; i < nr; i++)
      if (r[i].profile == p && r[i].loss == loss && pn->get(&r[i], &v))
        fprintf(f,
                "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\">"
                "<title>%s loss %g N %zu: %g %s</title></circle>\n",
                ch_x(ax, (double)r[i].nodes), CH_PH - CH_PH * v / ymax, col,
                dmq_profile_name(p), loss, r[i].nodes, v, pn->unit);
  }
  fprintf(f, "</g>\n");
}

static void ch_svg(FILE *f, const ds_opts_t *o, const ds_result_t *r,
                   size_t nr) {
  ch_axes_t ax = {(double)o->nodes[0], (double)o->nodes[0], 0};
  for (size_t i = 0; i < o->n_nodes; i++) {
    if ((double)o->nodes[i] < ax.xmin)
      ax.xmin = (double)o->nodes[i];
    if ((double)o->nodes[i] > ax.xmax)
      ax.xmax = (double)o->nodes[i];
  }
  ax.xlog = ax.xmax >= 4 * ax.xmin;
  size_t ns = o->n_profile * o->n_loss;
  int legend_rows = (int)((ns + 3) / 4);
  int h = CH_MT + 2 * CH_GAP_Y + 20 + legend_rows * 20;
  fprintf(f,
          "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
          "height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" "
          "font-size=\"12\">\n"
          "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
          "<text x=\"%d\" y=\"24\" text-anchor=\"middle\" font-size=\"16\" "
          "font-weight=\"bold\">dmq-sim: libdmq membership in the simulator "
          "(%s, seed %llu)</text>\n",
          CH_W, h, CH_W, h, CH_W / 2, o->udp_only ? "UDP only" : "UDP + TCP",
          (unsigned long long)(nr > 0 ? r[0].seed : 0));
  for (int i = 0; i < 4; i++)
    ch_panel(f, o, r, nr, &ax, i);
  for (size_t s = 0; s < ns; s++) { /* legend */
    dmq_profile_t p;
    double loss;
    ch_series(o, s, &p, &loss);
    double x = 40 + (double)(s % 4) * 230,
           y = CH_MT + 2 * CH_GAP_Y + (double)(s / 4) * 20;
    fprintf(f,
            "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" "
            "stroke=\"%s\" stroke-width=\"2\"%s/><text x=\"%.0f\" "
            "y=\"%.0f\" dominant-baseline=\"middle\">profile %s, loss "
            "%g %%</text>\n",
            x, y, x + 30, y, ch_colors[s % CH_NCOLORS],
            s / CH_NCOLORS % 2 ? " stroke-dasharray=\"6 3\"" : "", x + 38, y,
            dmq_profile_name(p), loss * 100);
  }
  fprintf(f, "</svg>\n");
}

int ds_write_chart(const char *path, const ds_opts_t *o, const ds_result_t *r,
                   size_t nr) {
  FILE *f = fopen(path, "w");
  if (f == NULL) {
    fprintf(stderr, "dmq-sim: cannot write %s\n", path);
    return -1;
  }
  if (o->html) {
    fprintf(f, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
               "<title>dmq-sim</title>\n<style>body{font-family:sans-serif}"
               "table{border-collapse:collapse}td,th{border:1px solid #ccc;"
               "padding:2px 6px;text-align:right}</style></head><body>\n");
    ch_svg(f, o, r, nr);
    fprintf(f, "<table>\n<tr>");
    for (const char *c = ch_header; *c != '\0'; c++) {
      if (c == ch_header)
        fprintf(f, "<th>");
      if (*c == ',')
        fprintf(f, "</th><th>");
      else
        fputc(*c, f);
    }
    fprintf(f, "</th></tr>\n");
    for (size_t i = 0; i < nr; i++) {
      char row[512];
      FILE *m = fmemopen(row, sizeof(row), "w");
      if (m == NULL)
        break;
      ch_csv_row(m, o, &r[i]);
      fclose(m);
      row[sizeof(row) - 1] = '\0';
      fprintf(f, "<tr><td>");
      for (const char *c = row; *c != '\0' && *c != '\n'; c++) {
        if (*c == ',')
          fprintf(f, "</td><td>");
        else
          fputc(*c, f);
      }
      fprintf(f, "</td></tr>\n");
    }
    fprintf(f, "</table>\n</body></html>\n");
  } else {
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    ch_svg(f, o, r, nr);
  }
  if (fclose(f) != 0) {
    fprintf(stderr, "dmq-sim: cannot write %s\n", path);
    return -1;
  }
  return 0;
}
