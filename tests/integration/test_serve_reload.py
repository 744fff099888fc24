"""Reloading `backflow serve` (issue 18: syncs saved by the studio or by hand
must reach the scheduler and the dashboard without a restart by hand): SIGHUP
or POST /api/reload restart the server in place, with the same process and the
same listening socket, once nothing runs; a project that no longer loads is
refused and the server goes on with what it has."""
import json
import os
import signal
import time

from test_serve_support import TOKEN, Project, Server, serve_config, users_table, wait_for

SYNC_A = "  a:\n    model: users\n    destination: out\n    match: {user_id: id}\n    fields: {email: email}\n"
SYNC_B = ("  b:\n    model: users\n    destination: out\n    match: {user_id: id}\n"
          "    fields: {name: first_name}\n    schedule: {every: 1h}\n")


def names(server):
    return sorted(s["name"] for s in server.get_json("/api/syncs")["syncs"])


class Reload(__import__("unittest").TestCase):
    def setUp(self):
        self.p = Project(serve_config(SYNC_A))
        self.addCleanup(self.p.cleanup)
        users_table(self.p, 5)
        self.s = Server(self.p)
        self.addCleanup(lambda: self.s.proc.poll() is None and self.s.kill())

    def test_sighup_and_the_api_reload_in_place(self):
        pid, port = self.s.proc.pid, self.s.port
        self.assertEqual(names(self.s), ["a"])
        # a sync added by hand, then SIGHUP: same process, same port, new sync scheduled
        self.p.write_config(serve_config(SYNC_A + SYNC_B))
        os.kill(pid, signal.SIGHUP)
        wait_for(lambda: self.try_names() == ["a", "b"], 20, "the reloaded server")
        self.assertEqual((self.s.proc.pid, self.s.port), (pid, port))
        self.assertIsNone(self.s.proc.poll())
        # the every: 1h sync runs once at the (re)start, as at any start
        runs = wait_for(lambda: [r for r in self.s.runs("b") if r["status"] != "running"], 30,
                        "b's first run")
        self.assertEqual(runs[0]["status"], "succeeded")
        # a broken project is refused, nothing restarts
        with open(os.path.join(self.p.dir, "backflow.yml"), "a") as f:
            f.write("syncs_typo: {\n")
        status, _, body = self.s.request("POST", "/api/reload")
        self.assertEqual(status, 422, body)
        self.assertIn("does not load", json.loads(body)["error"])
        os.kill(pid, signal.SIGHUP)
        time.sleep(2.5)
        self.assertIn("reload refused", self.s.log())
        self.assertEqual(names(self.s), ["a", "b"])
        # fixed, and reloaded through the API (editor token)
        self.p.write_config(serve_config(SYNC_B))
        status, _, body = self.s.request("POST", "/api/reload", token=None)
        self.assertEqual(status, 401)
        status, _, body = self.s.request("POST", "/api/reload")
        self.assertEqual(status, 202, body)
        wait_for(lambda: self.try_names() == ["b"], 20, "the second reload")
        self.assertEqual(self.s.proc.pid, pid)
        self.assertEqual(self.s.stop(), 0, self.s.log())

    def try_names(self):
        try:
            return names(self.s)
        except (ConnectionError, OSError, AssertionError, ValueError):
            return None
