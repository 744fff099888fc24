"""What the dashboard of `backflow serve` shows, through its API (issue 16):
live progress of a running run (the runner writes counts into runs.db at most
every 250 ms), records that failed delivery listed apart from rejected rows,
pause/resume through the API and the CLI (the scheduler starts no run of a
paused sync; a live sync cannot be paused), links from alerts to the run page
(run_url under server.public_url, which is validated), and the README's
claims about destinations and which routes need the token. The page itself
is checked in headless Chromium by tests/browser/dashboard.test.mjs."""
import json
import os
import re
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from test_serve_support import (BIN, TOKEN, WEBHOOK_SECRET, new_project, serve_config,
                                start_server, wait_for)
from webhook_receiver import Receiver

ROOT = os.environ.get("BACKFLOW_ROOT", os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))


def hook_dest(url, extra=""):
    return f"  hook: {{type: webhook, url: \"{url}\", signing_secret: \"{WEBHOOK_SECRET}\"{extra}}}\n"


def sync(name, dest="out", schedule=None, extra=""):
    text = (f"  {name}:\n    model: users\n    destination: {dest}\n    match: {{user_id: id}}\n"
            "    fields: {email: email}\n")
    if schedule:
        text += f"    schedule: {schedule}\n"
    return text + extra


class Sink:
    """Records the JSON bodies POSTed to it (an alert webhook)."""

    def __init__(self):
        self.bodies = []
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with sink.lock:
                    sink.bodies.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/alert"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def all(self):
        with self.lock:
            return list(self.bodies)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Progress(unittest.TestCase):
    def test_counts_of_a_running_run_are_live(self):
        rows = 3000
        r = Receiver.start(WEBHOOK_SECRET, delay_ms=60)
        self.addCleanup(r.stop)
        p = new_project(self, serve_config(sync("slow", "hook", extra="    batch_size: 100\n"),
                                           hook_dest(r.url)), rows=rows)
        s = start_server(self, p)
        self.assertEqual(s.request("POST", "/api/syncs/slow/trigger")[0], 202)
        seen = []  # (added, rows_read) of the run in flight, as the API shows it

        def sample():
            doc = s.get_json("/api/syncs/slow")
            cur = doc["current_run"]
            if cur is None:
                return doc["last_run"] and doc["last_run"]["status"] != "running"
            self.assertEqual(doc["last_run"]["id"], cur["id"])
            self.assertGreaterEqual(cur["elapsed_ms"], 0)
            seen.append((cur["counts"]["added"], cur["counts"]["rows_read"]))
            # The run history shows the same counts for the running run.
            run = s.runs("slow")[0]
            self.assertEqual(run["status"], "running")
            self.assertGreaterEqual(run["counts"]["added"], seen[-1][0])
            return False

        wait_for(sample, timeout=60, what="the run to finish")
        added = [a for a, _ in seen]
        self.assertGreaterEqual(len(set(added)), 3, f"progress should move while the run runs: {seen}")
        self.assertEqual(added, sorted(added), "counts only grow")
        self.assertTrue(any(0 < a < rows for a in added), seen)
        final = s.finished_runs("slow")[0]
        self.assertEqual(final["counts"]["added"], rows)
        self.assertIsNone(s.get_json("/api/syncs/slow")["current_run"])


class FailedDelivery(unittest.TestCase):
    def test_run_page_lists_failed_deliveries_apart_from_rejects(self):
        r = Receiver.start(WEBHOOK_SECRET, retry_keys=[3, 4], reject_keys=[5])
        self.addCleanup(r.stop)
        p = new_project(self, serve_config(sync("s", "hook"), hook_dest(r.url, ", retry_base: 10ms")),
                        rows=20)
        p.sql("INSERT INTO users VALUES (NULL, 'nokey@example.com', 'Nokey', 'free', 1, 'n')")
        s = start_server(self, p)
        self.assertEqual(s.request("POST", "/api/syncs/s/trigger")[0], 202)
        run = wait_for(lambda: s.finished_runs("s") and s.finished_runs("s")[0], timeout=30,
                       what="the run")
        self.assertEqual(run["status"], "partial")
        self.assertEqual(run["counts"]["failed"], 2, run)
        self.assertEqual(run["counts"]["rejected"], 2, run)  # key 5, and the NULL key
        doc = s.get_json(f"/api/runs/{run['id']}/errors")
        self.assertEqual((doc["total"], doc["failed"], doc["rejected"]), (4, 2, 2), doc)
        kinds = sorted(e["kind"] for e in doc["errors"])
        self.assertEqual(kinds, ["failed", "failed", "rejected", "rejected"])
        for e in doc["errors"]:
            if e["kind"] == "failed":
                self.assertRegex(e["reason"], r"^not accepted after \d+ attempts")
                self.assertRegex(e["key_hash"], r"^[0-9a-f]{32}$")
            else:
                self.assertNotIn("not accepted after", e["reason"])
        self.assertNotIn("nokey@example.com", json.dumps(doc))
        # `backflow errors --json` tells them apart the same way.
        code, cli, _ = p.run_json("errors", "s", "--run", str(run["id"]))
        self.assertEqual(sorted(e["kind"] for e in cli["errors"]), kinds)

    def test_run_log_from_before_the_kind_column(self):
        import sqlite3
        p = new_project(self, serve_config(sync("s")), rows=3)
        os.makedirs(os.path.join(p.dir, ".backflow"), exist_ok=True)
        db = sqlite3.connect(os.path.join(p.dir, ".backflow", "runs.db"))
        db.executescript(
            "CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, sync TEXT NOT NULL,"
            " status TEXT NOT NULL, started_ms INTEGER NOT NULL, finished_ms INTEGER,"
            " rows_read INTEGER DEFAULT 0, added INTEGER DEFAULT 0, changed INTEGER DEFAULT 0,"
            " removed INTEGER DEFAULT 0, unchanged INTEGER DEFAULT 0, skipped INTEGER DEFAULT 0,"
            " rejected INTEGER DEFAULT 0, failed INTEGER DEFAULT 0, error TEXT);"
            "CREATE TABLE run_errors (run_id INTEGER NOT NULL, key_hash TEXT NOT NULL,"
            " column_name TEXT, reason TEXT NOT NULL);"
            "INSERT INTO runs(sync, status, started_ms, finished_ms, failed, rejected)"
            " VALUES ('s', 'partial', 1, 2, 1, 1);"
            "INSERT INTO run_errors VALUES (1, 'aa', NULL, 'not accepted after 3 attempts: 503');"
            "INSERT INTO run_errors VALUES (1, '', 'id', 'primary key is NULL');")
        db.commit()
        db.close()
        # Read-only (errors): the kind from the runner's words.
        code, doc, err = p.run_json("errors", "s", "--run", "1")
        self.assertEqual(code, 0, err)
        self.assertEqual([e["kind"] for e in doc["errors"]], ["failed", "rejected"])
        # A run (read-write) adds the column and keeps the old rows.
        r = p.run("run", "s")
        self.assertEqual(r.returncode, 0, r.stderr)
        code, doc, err = p.run_json("errors", "s", "--run", "1")
        self.assertEqual([e["kind"] for e in doc["errors"]], ["failed", "rejected"])

    def test_records_not_sent_when_the_destination_is_down_are_listed(self):
        dest = "  hook: {type: webhook, url: \"http://127.0.0.1:9/in\", max_retries: 0, timeout: 2s}\n"
        p = new_project(self, serve_config(sync("down", "hook"), dest), rows=5)
        s = start_server(self, p)
        s.request("POST", "/api/syncs/down/trigger")
        run = wait_for(lambda: s.finished_runs("down") and s.finished_runs("down")[0], timeout=30,
                       what="the run")
        self.assertEqual(run["status"], "failed")
        doc = s.get_json(f"/api/runs/{run['id']}/errors")
        self.assertEqual(doc["failed"], run["counts"]["failed"], doc)
        self.assertGreater(doc["failed"], 0)
        self.assertTrue(all(e["kind"] == "failed" and "not sent" in e["reason"] for e in doc["errors"]))


class Pause(unittest.TestCase):
    def _config(self):
        syncs = sync("tick", schedule="{every: 1s}") + sync("other", "out2", schedule="{every: 1s}")
        dests = "  out: {type: file, path: out/a.jsonl}\n  out2: {type: file, path: out/b.jsonl}\n"
        return serve_config(syncs, dests)

    def _runs_started(self, s, name):
        return len(s.runs(name))

    def _assert_no_new_runs(self, s, name, seconds=2.5):
        # A run in flight when the pause came may still finish; none may start after it.
        wait_for(lambda: s.get_json(f"/api/syncs/{name}")["running"] is False, timeout=10,
                 what="the run in flight")
        before = self._runs_started(s, name)
        other = self._runs_started(s, "other")
        time.sleep(seconds)  # the schedule fires every second: 2+ instants pass by
        self.assertEqual(self._runs_started(s, name), before, f"{name} ran while paused")
        self.assertGreater(self._runs_started(s, "other"), other, "the other sync keeps running")

    def test_pause_and_resume_through_the_api_and_the_cli(self):
        p = new_project(self, self._config())
        s = start_server(self, p)
        wait_for(lambda: len(s.finished_runs("tick")) >= 1, timeout=15, what="a run of tick")
        marker = os.path.join(p.dir, ".backflow", "paused", "tick")

        # The token is needed.
        self.assertEqual(s.request("POST", "/api/syncs/tick/pause", token=None)[0], 401)
        self.assertEqual(s.request("POST", "/api/syncs/tick/pause", token="wrong")[0], 401)
        self.assertEqual(s.request("POST", "/api/syncs/nope/pause")[0], 404)
        self.assertEqual(s.request("GET", "/api/syncs/tick/pause")[0], 405)
        self.assertFalse(os.path.exists(marker))

        status, _, body = s.request("POST", "/api/syncs/tick/pause")
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body), {"sync": "tick", "paused": True, "changed": True})
        self.assertTrue(os.path.exists(marker))
        doc = s.get_json("/api/syncs/tick")
        self.assertTrue(doc["paused"])
        self.assertGreater(doc["paused_since_ms"], 0)
        self.assertTrue(doc["pausable"])
        self._assert_no_new_runs(s, "tick")
        status, _, body = s.request("POST", "/api/syncs/tick/trigger")
        self.assertEqual(status, 409, body)
        self.assertIn("paused", json.loads(body)["error"])

        # `backflow resume` from the command line: the server reads the marker.
        r = p.run("resume", "tick")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("resumed", r.stdout)
        self.assertFalse(os.path.exists(marker))
        before = self._runs_started(s, "tick")
        wait_for(lambda: self._runs_started(s, "tick") > before, timeout=10, what="runs after resume")
        self.assertFalse(s.get_json("/api/syncs/tick")["paused"])

        # `backflow pause` from the command line, `resume` through the API.
        r = p.run("pause", "tick")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("paused", r.stdout)
        self.assertTrue(s.get_json("/api/syncs/tick")["paused"])
        self._assert_no_new_runs(s, "tick")
        rc, doc, _ = p.run_json("pause", "tick")
        self.assertEqual((rc, doc), (0, {"sync": "tick", "paused": True, "changed": False}))
        status, _, body = s.request("POST", "/api/syncs/tick/resume")
        self.assertEqual((status, json.loads(body)["changed"]), (200, True), body)
        before = self._runs_started(s, "tick")
        wait_for(lambda: self._runs_started(s, "tick") > before, timeout=10, what="runs after resume")
        self.assertEqual(s.stop(), 0)

    def test_cli_errors(self):
        p = new_project(self, self._config())
        r = p.run("pause")
        self.assertEqual(r.returncode, 2)
        self.assertIn("usage: backflow pause SYNC", r.stderr)
        r = p.run("pause", "nope")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown sync 'nope'", r.stderr)
        r = p.run("resume", "tick")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("was not paused", r.stdout)
        for cmd in ("pause", "resume"):
            r = p.run("help", cmd)
            self.assertEqual(r.returncode, 0)
            self.assertIn(f"usage: backflow {cmd} SYNC", r.stdout)
        self.assertIn("pause", p.run("--completion", "bash").stdout)

    def test_live_sync_cannot_be_paused(self):
        syncs = sync("lv", schedule="live")
        text = serve_config(syncs).replace("    primary_key: id\n",
                                           "    primary_key: id\n    live: {table: users, key: id}\n")
        p = new_project(self, text)
        r = p.run("pause", "lv")
        self.assertEqual(r.returncode, 2, r.stdout)
        self.assertIn("sync 'lv' is live and cannot be paused", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(p.dir, ".backflow", "paused", "lv")))
        setup = p.run("live", "setup", "lv")
        self.assertEqual(setup.returncode, 0, setup.stderr)
        s = start_server(self, p)
        status, _, body = s.request("POST", "/api/syncs/lv/pause")
        self.assertEqual(status, 409, body)
        self.assertIn("is live and cannot be paused", json.loads(body)["error"])
        self.assertFalse(s.get_json("/api/syncs/lv")["pausable"])
        self.assertEqual(s.stop(), 0)


class AlertLinks(unittest.TestCase):
    def _failing(self, extra_server=""):
        sink = Sink()
        self.addCleanup(sink.close)
        alerts = f"alerts:\n  - {{type: webhook, url: \"{sink.url}\", on: [failure]}}\n"
        text = serve_config(sync("pulse", schedule="{every: 1s}"), extra=alerts,
                            sql="SELECT id, email, first_name, ltv FROM missing_table")
        if extra_server:
            text = text.replace(f'token: "{TOKEN}"}}', f'token: "{TOKEN}", {extra_server}}}')
        p = new_project(self, text)
        return sink, p

    def test_run_url_under_public_url(self):
        sink, p = self._failing('public_url: "https://backflow.example.com/ops/"')
        s = start_server(self, p)
        body = wait_for(lambda: sink.all() and sink.all()[0], timeout=15, what="the alert")
        run = s.finished_runs("pulse")[-1]  # the first run failed and alerted
        self.assertEqual(body["sync"], "pulse")
        self.assertEqual(body["run_id"], run["id"])
        self.assertEqual(body["run_url"], f"https://backflow.example.com/ops/#/run/{run['id']}")
        self.assertIn(body["run_url"], body["text"])  # Slack shows text only
        self.assertEqual(s.stop(), 0)

    def test_run_url_defaults_to_the_listen_address(self):
        sink, p = self._failing()
        s = start_server(self, p)
        body = wait_for(lambda: sink.all() and sink.all()[0], timeout=15, what="the alert")
        self.assertEqual(body["run_url"], f"{s.base}/#/run/{body['run_id']}")
        # The link opens the dashboard (the page is public; its data needs the token).
        status, hdrs, _ = s.request("GET", "/", token=None)
        self.assertEqual(status, 200)
        self.assertTrue(hdrs["content-type"].startswith("text/html"))
        self.assertEqual(s.stop(), 0)

    def test_public_url_is_validated(self):
        bad = ["ftp://x.example.com", "backflow.example.com", "https://", "https://x.example.com/?a=1",
               "https://x.example.com/#/", "https://user@x.example.com", "https://x y.example.com"]
        for url in bad:
            text = serve_config(sync("a")).replace(f'token: "{TOKEN}"}}',
                                                   f'token: "{TOKEN}", public_url: "{url}"}}')
            p = new_project(self, text)
            r = p.run("validate")
            self.assertEqual(r.returncode, 2, (url, r.stdout, r.stderr))
            self.assertRegex(r.stderr, r"backflow\.yml:2:\d+: invalid 'public_url'", url)
        text = serve_config(sync("a")).replace(f'token: "{TOKEN}"}}',
                                               f'token: "{TOKEN}", public_url: "http://10.0.0.5:8420"}}')
        p = new_project(self, text)
        r = p.run("validate")
        self.assertEqual(r.returncode, 0, r.stderr)


class ReadmeClaims(unittest.TestCase):
    def test_destinations_listed_are_the_ones_in_the_tree(self):
        import subprocess
        types = json.loads(subprocess.run([BIN, "types", "--json"], capture_output=True, text=True,
                                          check=True).stdout)
        names = [d["name"] for d in types["destinations"]]
        self.assertEqual(len(names), 12, names)
        intro = open(os.path.join(ROOT, "README.md")).read().split("\n\n")[1]
        self.assertNotIn("to come", intro)
        words = {"webhook": "webhooks", "file": "files", "postgres": "PostgreSQL", "redis": "Redis",
                 "hubspot": "HubSpot", "salesforce": "Salesforce", "zendesk": "Zendesk",
                 "meta_audience": "Meta", "google_customer_match": "Google", "mailchimp": "Mailchimp",
                 "braze": "Braze", "klaviyo": "Klaviyo"}
        self.assertEqual(sorted(words), sorted(names), "a destination the README does not name")
        for name, word in words.items():
            self.assertIn(word, intro, name)
        m = re.search(r"tools business teams work in: (.*?)\. You write", intro, re.S)
        self.assertIsNotNone(m, intro)
        self.assertEqual(len(re.split(r",\s*|\s+and\s+", m.group(1).replace("\n", " "))), 12, m.group(1))

    def test_token_statement_matches_the_routes(self):
        readme = open(os.path.join(ROOT, "README.md")).read()
        self.assertIn("`/healthz` and the\ndashboard page `/` are public", readme)
        p = new_project(self, serve_config(sync("a")))
        s = start_server(self, p)
        self.assertEqual(s.request("GET", "/healthz", token=None)[0], 200)
        self.assertEqual(s.request("GET", "/", token=None)[0], 200)
        for method, path in [("GET", "/api/syncs"), ("GET", "/api/syncs/a"), ("GET", "/api/syncs/a/runs"),
                             ("POST", "/api/syncs/a/trigger"), ("POST", "/api/syncs/a/pause"),
                             ("POST", "/api/syncs/a/resume"), ("GET", "/api/runs/1/errors"),
                             ("GET", "/metrics")]:
            self.assertEqual(s.request(method, path, token=None)[0], 401, path)
        self.assertFalse(os.path.exists(os.path.join(p.dir, ".backflow", "paused", "a")))
        self.assertEqual(s.stop(), 0)


if __name__ == "__main__":
    unittest.main()
