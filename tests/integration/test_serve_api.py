"""`backflow serve` end to end (issue 6, design.md §6): a real server process
on a free port runs a sync scheduled `every: 1s`, takes triggers, answers
the JSON API, refuses every route but /healthz (and the static dashboard
page) without the right token, and serves /metrics that promtool accepts."""
import json
import os
import re
import shutil
import socket
import signal
import subprocess
import unittest

from test_serve_support import (TOKEN, Project, Server, new_project, serve_config, start_server,
                                users_table, wait_for)

SYNCS = (
    "  ticker:\n    model: users\n    destination: out\n    match: {user_id: id}\n"
    "    fields: {email: email}\n    schedule: {every: 1s}\n"
    "  by_hand:\n    model: users\n    destination: out2\n    match: {user_id: id}\n"
    "    fields: {email: email}\n"
    "  follower:\n    model: users\n    destination: out3\n    match: {user_id: id}\n"
    "    fields: {email: email}\n    schedule: {after: by_hand}\n")
DESTS = ("  out: {type: file, path: out/a.jsonl}\n  out2: {type: file, path: out/b.jsonl}\n"
         "  out3: {type: file, path: out/c.jsonl}\n")


class ServeApi(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # One server for the class: these tests only read, or trigger by_hand.
        cls.p = Project()
        users_table(cls.p, 20)
        cls.p.sql("INSERT INTO users VALUES (NULL, 'nokey@example.com', 'Nokey', 'free', 1, 'n')")
        cls.p.write_config(serve_config(SYNCS, DESTS))
        cls.s = Server(cls.p)

    @classmethod
    def tearDownClass(cls):
        code = cls.s.stop()
        cls.p.cleanup()
        assert code == 0, f"serve exited with {code}"

    def test_every_1s_runs_on_schedule(self):
        runs = wait_for(lambda: (r := self.s.finished_runs("ticker")) and len(r) >= 4 and r,
                        timeout=15, what="4 runs of ticker")
        starts = sorted(r["started_ms"] for r in runs)
        gaps = [b - a for a, b in zip(starts, starts[1:])]
        # Fixed one-second instants: no gap much shorter or longer than 1s.
        for g in gaps[-3:]:
            self.assertGreater(g, 700, gaps)
            self.assertLess(g, 2500, gaps)
        first = min(runs, key=lambda r: r["id"])
        self.assertEqual(first["counts"]["added"], 20)
        self.assertEqual(first["status"], "partial")  # the NULL key is rejected
        sync = self.s.get_json("/api/syncs/ticker")
        self.assertEqual(sync["schedule"], {"kind": "every", "every_ms": 1000, "text": "every 1s"})
        self.assertIsNotNone(sync["next_run_ms"])
        self.assertIsNotNone(sync["last_run"])

    def test_trigger_runs_now_and_after_follows(self):
        before = len(self.s.finished_runs("by_hand"))
        status, hdrs, body = self.s.request("POST", "/api/syncs/by_hand/trigger")
        self.assertEqual(status, 202, body)
        doc = json.loads(body)
        self.assertEqual(doc["sync"], "by_hand")
        self.assertTrue(doc["accepted"])
        wait_for(lambda: len(self.s.finished_runs("by_hand")) > before, timeout=10,
                 what="the triggered run")
        # `after: by_hand` runs once by_hand completed.
        wait_for(lambda: self.s.finished_runs("follower"), timeout=10, what="the follower run")
        sync = self.s.get_json("/api/syncs/by_hand")
        self.assertIsNone(sync["next_run_ms"])
        self.assertEqual(sync["schedule"]["kind"], "manual")
        self.assertIn(sync["last_run"]["status"], ("succeeded", "partial"))
        status, _, body = self.s.request("POST", "/api/syncs/nope/trigger")
        self.assertEqual(status, 404)
        self.assertIn("unknown sync 'nope'", json.loads(body)["error"])

    def test_list_of_syncs(self):
        doc = self.s.get_json("/api/syncs")
        self.assertEqual([s["name"] for s in doc["syncs"]], ["ticker", "by_hand", "follower"])
        for s in doc["syncs"]:
            for key in ("model", "destination", "mode", "schedule", "running", "queued",
                        "next_run_ms", "last_run"):
                self.assertIn(key, s)
        self.assertEqual(doc["syncs"][2]["schedule"], {"kind": "after", "after": "by_hand",
                                                       "text": "after by_hand"})

    def test_run_errors_name_rows_by_hash_only(self):
        run = wait_for(lambda: [r for r in self.s.finished_runs("ticker") if r["counts"]["rejected"]],
                       timeout=10, what="a run with a rejected row")[0]
        doc = self.s.get_json(f"/api/runs/{run['id']}/errors")
        self.assertEqual(doc["sync"], "ticker")
        self.assertEqual(doc["run"]["id"], run["id"])
        self.assertEqual(len(doc["errors"]), 1, doc)
        e = doc["errors"][0]
        self.assertEqual(e["column"], "id")
        self.assertIn("primary key is NULL", e["reason"])
        self.assertNotIn("nokey", json.dumps(doc))
        status, _, body = self.s.request("GET", "/api/runs/999999/errors")
        self.assertEqual(status, 404)
        self.assertEqual(json.loads(body), {"error": "no run 999999"})
        status, _, body = self.s.request("GET", "/api/runs/abc/errors")
        self.assertEqual(status, 400)

    def test_wrong_or_missing_token_is_401_everywhere_but_healthz(self):
        routes = [("GET", "/api/syncs"), ("GET", "/api/syncs/ticker"),
                  ("GET", "/api/syncs/ticker/runs"), ("POST", "/api/syncs/by_hand/trigger"),
                  ("GET", "/api/runs/1/errors"), ("GET", "/metrics"), ("GET", "/nope"),
                  ("GET", "/api/syncs/nope"), ("PUT", "/metrics"), ("DELETE", "/api/syncs"),
                  ("POST", "/hooks/out"), ("GET", "/hooks/out")]
        bad = [dict(token=None), dict(token="wrong"), dict(token=TOKEN + "x"), dict(token=TOKEN[:-1]),
               dict(auth=f"Basic {TOKEN}"), dict(auth=TOKEN), dict(auth="Bearer")]
        runs_before = len(self.s.runs("by_hand"))
        for method, path in routes:
            for kw in bad:
                status, hdrs, body = self.s.request(method, path, **kw)
                self.assertEqual(status, 401, (method, path, kw, body))
                self.assertIn("error", json.loads(body))
                self.assertEqual(hdrs["content-type"], "application/json")
        self.assertEqual(len(self.s.runs("by_hand")), runs_before, "a refused trigger ran")
        for kw in bad:
            status, _, body = self.s.request("GET", "/healthz", **kw)
            self.assertEqual(status, 200)
            self.assertEqual(json.loads(body)["status"], "ok")
        # The dashboard page holds no data (it asks for the token); its API calls need the token.
        status, hdrs, body = self.s.request("GET", "/", token=None)
        self.assertEqual(status, 200)
        self.assertTrue(hdrs["content-type"].startswith("text/html"))
        self.assertIn("frame-ancestors 'none'", hdrs["content-security-policy"])

    def test_json_errors_and_limits(self):
        status, hdrs, body = self.s.request("PUT", "/metrics")
        self.assertEqual(status, 405)
        self.assertEqual(hdrs["allow"], "GET")
        self.assertIn("not allowed", json.loads(body)["error"])
        status, _, body = self.s.request("GET", "/api/nothing")
        self.assertEqual(status, 404)
        self.assertIn("no route", json.loads(body)["error"])
        # A body over the limit is refused from its Content-Length, before it is read.
        with socket.create_connection(("127.0.0.1", self.s.port), timeout=10) as c:
            c.sendall(b"POST /hooks/out HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 2097152\r\n\r\n{")
            reply = b""
            while b"}" not in reply:
                chunk = c.recv(4096)
                if not chunk:
                    break
                reply += chunk
        self.assertTrue(reply.startswith(b"HTTP/1.1 413"), reply)
        self.assertIn(b'{"error":"request body larger than 1048576 bytes"}', reply)

    def test_metrics(self):
        wait_for(lambda: self.s.finished_runs("ticker"), timeout=10, what="a run")
        status, hdrs, body = self.s.request("GET", "/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(hdrs["content-type"].startswith("text/plain; version=0.0.4"))
        text = body.decode()
        runs = int(re.search(r'backflow_runs_total\{sync="ticker",status="partial"\} (\d+)', text)[1])
        self.assertGreaterEqual(runs, 1)
        self.assertRegex(text, r'backflow_records_total\{sync="ticker",outcome="added"\} 20\n')
        self.assertRegex(text, r'backflow_records_total\{sync="ticker",outcome="rejected"\} [1-9]')
        self.assertRegex(text, r'backflow_run_duration_seconds_bucket\{sync="ticker",le="\+Inf"\} [1-9]')
        self.assertRegex(text, r'backflow_last_success_timestamp_seconds\{sync="ticker"\} 1\d{9}\.\d+')
        self.assertIn('backflow_runs_total{sync="by_hand",status="failed"} 0', text)
        self.assertIn('backflow_destination_requests_total{status="2xx"}', text)
        self.assertIn("backflow_rate_limit_waits_total", text)
        self.assertTrue(shutil.which("promtool"),
                        "promtool not installed (Debian package prometheus, in scripts/deps.sh)")
        p = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True,
                           timeout=30)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)


class ServeLifecycle(unittest.TestCase):
    def test_sigterm_exits_0_and_sigint_too(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            p = new_project(self, serve_config(SYNCS, DESTS))
            s = start_server(self, p)
            wait_for(lambda: s.finished_runs("ticker"), timeout=10, what="a run")
            self.assertEqual(s.stop(sig), 0, s.log())
            self.assertIn("stopped", s.log())

    def test_bad_cron_is_a_config_error_naming_the_place(self):
        p = new_project(self, serve_config(
            "  c:\n    model: users\n    destination: out\n    match: {user_id: id}\n"
            "    schedule: {cron: \"0 25 * * *\"}\n"))
        r = p.run("serve", "--listen", "127.0.0.1:0", timeout=20)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("backflow.yml:", r.stderr)
        self.assertIn("sync 'c'", r.stderr)
        self.assertIn("hour '25' is out of range 0-23", r.stderr)

    def test_port_in_use_is_reported(self):
        p = new_project(self, serve_config(SYNCS, DESTS))
        s = start_server(self, p)
        r = p.run("serve", "--listen", f"127.0.0.1:{s.port}", timeout=20)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(f"cannot listen on 127.0.0.1:{s.port}", r.stderr)
        self.assertEqual(s.stop(), 0)

    def test_without_token_in_config_one_is_generated_0600(self):
        text = serve_config(SYNCS, DESTS).replace(f', token: "{TOKEN}"', "")
        p = new_project(self, text)
        s = start_server(self, p)
        path = os.path.join(p.dir, ".backflow", "server_token")
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        token = open(path).read().strip()
        self.assertGreaterEqual(len(token), 32)
        self.assertEqual(s.request("GET", "/api/syncs")[0], 401)
        self.assertEqual(s.request("GET", "/api/syncs", token=token)[0], 200)
        self.assertEqual(s.stop(), 0)


if __name__ == "__main__":
    unittest.main()
