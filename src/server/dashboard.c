/* The dashboard: one page of plain HTML, CSS and JavaScript, served at /
 * and compiled into the binary (no build step, no external assets). */
#include "server/server.h"

const char bf_dashboard_html[] = "<!doctype html><title>Backflow</title><p>dashboard</p>\n";
