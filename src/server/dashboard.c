/* The dashboard: one page of plain HTML, CSS and JavaScript served at / and
 * compiled into the binary (no build step, no external assets, nothing
 * fetched from elsewhere). The page itself holds no data, so / needs no
 * token; it asks for the server token once, keeps it in sessionStorage, and
 * reads everything through the JSON API, which does. Data is inserted with
 * textContent only, never as HTML. Routes are in the URL fragment: #/ (syncs
 * and run history), #/sync/NAME, #/run/ID.
 *
 * The page is assembled from dashboard_css.c (style), dashboard_js.c
 * (helpers, API client, chart) and dashboard_views.c (views, refresh). */
#include "server/server.h"

static const char head[] =
    "<!doctype html>\n"
    "<html lang=\"en\">\n"
    "<head>\n"
    "<meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<title>Backflow</title>\n"
    "<style>\n";

static const char body[] = "</style>\n"
                           "</head>\n"
                           "<body>\n"
                           "<header>\n"
                           "  <h1><a href=\"#/\">Backflow</a></h1>\n"
                           "  <a href=\"#/pii\" id=\"nav-pii\">Personal data</a>\n"
                           "  <span class=\"grow\"></span>\n"
                           "  <span class=\"meta\" id=\"meta\"></span>\n"
                           "  <button id=\"signout\" hidden>Forget token</button>\n"
                           "</header>\n"
                           "<main id=\"app\"></main>\n"
                           "<script>\n";

static const char tail[] = "</script>\n"
                           "</body>\n"
                           "</html>\n";

void bf_api_dashboard(struct bf_http_req *req, struct bf_http_resp *resp) {
  (void)req;
  resp->status = 200;
  resp->content_type = "text/html; charset=utf-8";
  resp->html = true;
  bf_buf_puts(&resp->body, head);
  bf_buf_puts(&resp->body, bf_dashboard_css);
  bf_buf_puts(&resp->body, body);
  bf_buf_puts(&resp->body, bf_dashboard_js);
  bf_buf_puts(&resp->body, bf_dashboard_views_js);
  bf_buf_puts(&resp->body, bf_dashboard_pii_js);
  bf_buf_puts(&resp->body, tail);
}
