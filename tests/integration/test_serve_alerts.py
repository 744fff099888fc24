"""Alerts and graceful shutdown of `backflow serve` (issue 6).

Alerts: a sync scheduled every second goes failing -> rejecting -> healthy
over many runs; the webhook sink gets exactly one Slack-compatible message
per state change ({"text": ...}), never one per run.

Shutdown: SIGTERM while a run is pushing batches to a slow destination stops
the run after its batch, exits 0, and the next run delivers the rest:
nothing acknowledged is lost, nothing is skipped."""
import json
import signal
import threading
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from test_serve_support import (WEBHOOK_SECRET, new_project, serve_config, start_server, wait_for)
from webhook_receiver import Receiver


class Sink:
    """Records JSON bodies POSTed to it."""

    def __init__(self):
        self.bodies = []
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(n)
                with sink.lock:
                    sink.bodies.append((self.headers.get("Content-Type"), json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/alert"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def texts(self):
        with self.lock:
            return [b["text"] for _, b in self.bodies]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Alerts(unittest.TestCase):
    def test_one_alert_per_state_change(self):
        sink = Sink()
        self.addCleanup(sink.close)
        syncs = ("  pulse:\n    model: users\n    destination: out\n    match: {user_id: id}\n"
                 "    fields: {email: email}\n    schedule: {every: 1s}\n")
        alerts = (f"alerts:\n  - {{type: webhook, url: \"{sink.url}\", "
                  "on: [failure, rejected_over: 5%, recovered]}\n")
        p = new_project(self, serve_config(syncs, extra=alerts,
                                           sql="SELECT id, email, first_name, ltv FROM people"))
        s = start_server(self, p)

        def runs_with(pred, n):
            return lambda: len([r for r in s.finished_runs("pulse") if pred(r)]) >= n

        # 1. The model's table does not exist: every run fails; one alert.
        wait_for(runs_with(lambda r: r["status"] == "failed", 3), timeout=15, what="3 failed runs")
        texts = wait_for(sink.texts, timeout=5, what="the failure alert")
        self.assertEqual(len(texts), 1, texts)
        self.assertIn("sync pulse failed", texts[0])
        self.assertIn("people", texts[0])  # the warehouse error says what is wrong
        ctype, body = sink.bodies[0]
        self.assertEqual(ctype, "application/json")
        # Slack reads text; the rest is for other receivers (test_serve_dashboard.py).
        self.assertEqual(list(body), ["text", "sync", "run_id", "run_url"])

        # 2. 1 row of 10 has no key (10% > 5%): runs are partial; one alert.
        p.sql("CREATE TABLE people AS SELECT * FROM users WHERE id <= 9;"
              "INSERT INTO people VALUES (NULL, 'x@example.com', 'X', 'free', 1, 'n');")
        wait_for(runs_with(lambda r: r["status"] == "partial", 3), timeout=15, what="3 partial runs")
        texts = wait_for(lambda: len(sink.texts()) >= 2 and sink.texts(), timeout=5,
                         what="the rejected_over alert")
        self.assertEqual(len(texts), 2, texts)
        self.assertIn("rejected 10.0% of the rows", texts[1])
        self.assertNotIn("x@example.com", texts[1])

        # 3. Fixed: runs succeed; one "recovered".
        p.sql("DELETE FROM people WHERE id IS NULL")
        wait_for(runs_with(lambda r: r["status"] == "succeeded", 3), timeout=15,
                 what="3 succeeded runs")
        texts = wait_for(lambda: len(sink.texts()) >= 3 and sink.texts(), timeout=5,
                         what="the recovered alert")
        self.assertIn("sync pulse recovered", texts[2])
        self.assertEqual(s.stop(), 0)
        self.assertEqual(len(sink.texts()), 3, sink.texts())

    def test_bad_alert_config_names_the_place(self):
        syncs = "  a:\n    model: users\n    destination: out\n    match: {user_id: id}\n"
        bad = {
            "alerts:\n  - {type: webhook, url: \"http://x/\", on: [failur]}\n": "unknown alert event 'failur'",
            "alerts:\n  - {type: email, url: \"http://x/\"}\n": "expected 'type: webhook'",
            "alerts:\n  - {type: webhook, url: \"ftp://x/\"}\n": "expected 'url: https://...'",
            "alerts:\n  - {type: webhook, url: \"http://x/\", on: [\"rejected_over: lots\"]}\n":
                "expected a percentage",
        }
        for extra, needle in bad.items():
            p = new_project(self, serve_config(syncs, extra=extra))
            r = p.run("serve", "--listen", "127.0.0.1:0", timeout=20)
            self.assertEqual(r.returncode, 2, (extra, r.stderr))
            self.assertIn("backflow.yml:", r.stderr)
            self.assertIn(needle, r.stderr)


class Shutdown(unittest.TestCase):
    def test_sigterm_mid_run_stops_after_the_batch_and_loses_nothing(self):
        # The runner checks for a stop between chunks of rows it reads, so
        # the model must be several chunks long for the stop to show.
        rows = 6000
        r = Receiver.start(WEBHOOK_SECRET, delay_ms=40)
        self.addCleanup(r.stop)
        dests = (f"  hook: {{type: webhook, url: \"{r.url}\", signing_secret: \"{WEBHOOK_SECRET}\"}}\n")
        syncs = ("  slow:\n    model: users\n    destination: hook\n    match: {user_id: id}\n"
                 "    fields: {email: email}\n    batch_size: 100\n")
        p = new_project(self, serve_config(syncs, dests), rows=rows)
        s = start_server(self, p)
        self.assertEqual(s.request("POST", "/api/syncs/slow/trigger")[0], 202)
        wait_for(lambda: r.counters()["requests"] >= 3, timeout=15, what="batches in flight")
        self.assertEqual(s.stop(signal.SIGTERM, timeout=15), 0, s.log())
        sent = len(r.store())
        self.assertGreater(sent, 0)
        self.assertLess(sent, rows, "the run should have stopped early")
        # The run is logged as stopped, not left "running".
        done = p.run_json("runs", "slow")[1]
        self.assertEqual(len(done["runs"]), 1, done)
        run = done["runs"][0]
        self.assertEqual(run["status"], "cancelled")
        self.assertIn("interrupted", run["error"])
        self.assertEqual(run["added"], sent)
        # The next run sends exactly the rest.
        r.control(delay_ms=0)
        code, doc, err = p.run_json("run", "slow")
        self.assertEqual(code, 0, err)
        self.assertEqual(doc["runs"][0]["added"], rows - sent)
        self.assertEqual(len(r.store()), rows)


if __name__ == "__main__":
    unittest.main()
