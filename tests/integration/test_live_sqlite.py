"""Live syncs on SQLite (issue 12, design.md §8): capture triggers installed by
`backflow live setup`, commits of another process noticed at once, inserts,
updates and deletes pushed to the strict webhook receiver, bursts coalesced,
unmapped changes ignored, a SIGKILL and changes made while Backflow is down
losing nothing, and the errors a user meets."""
import os
import sqlite3
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bfhelp import WEBHOOK_SECRET, Project  # noqa: E402
from live_support import Live, expected_store, store_equals, wait_until  # noqa: E402
from webhook_receiver import Receiver, canonical_key  # noqa: E402

FIELDS = ("email", "plan")


def live_config(url, mode="mirror", live="{table: users, key: id}"):
    return f"""version: 1
warehouses:
  local: {{type: sqlite, path: warehouse.db}}
models:
  users:
    warehouse: local
    sql: SELECT id, email, plan FROM users WHERE plan <> 'gone'
    primary_key: id
    pii: {{email: email}}
    live: {live}
destinations:
  hook:
    type: webhook
    url: "{url}"
    signing_secret: "{WEBHOOK_SECRET}"
    retry_base: 10ms
syncs:
  u:
    model: users
    destination: hook
    mode: {mode}
    match: {{user_id: id}}
    fields: {{email: email, plan: plan}}
    schedule: live
"""


class LiveSqlite(unittest.TestCase):
    def setUp(self):
        self.r = Receiver.start(WEBHOOK_SECRET)
        self.p = Project(live_config(self.r.url))
        self.p.sql("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, plan TEXT, note TEXT);"
                   "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 100)"
                   " INSERT INTO users SELECT i, 'u' || i || '@example.com', 'free', 'n' FROM c;")
        self.live = None

    def tearDown(self):
        if self.live:
            self.live.kill()
        self.r.stop()
        self.p.cleanup()

    def table(self):
        return self.p.query("SELECT id, email, plan FROM users WHERE plan <> 'gone' ORDER BY id")

    def start(self):
        self.live = Live(self.p.dir, "u")
        self.live.wait_following()
        return self.live

    def setup_capture(self):
        p = self.p.run("live", "setup", "u")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("installed", p.stdout)

    def test_insert_update_delete_reach_the_receiver(self):
        self.setup_capture()
        self.start()
        wait_until(store_equals(self.r, expected_store(self.table(), FIELDS)), 20, "the full run")
        self.p.sql("INSERT INTO users VALUES (101, 'new@example.com', 'free', 'n')")
        wait_until(lambda: self.r.get({"user_id": 101}), 10, "the insert")
        self.assertEqual(self.r.get({"user_id": 101}), {"email": "new@example.com", "plan": "free"})
        self.p.sql("UPDATE users SET plan = 'pro' WHERE id = 5")
        wait_until(lambda: (self.r.get({"user_id": 5}) or {}).get("plan") == "pro", 10, "update")
        self.p.sql("DELETE FROM users WHERE id = 7")
        wait_until(lambda: self.r.get({"user_id": 7}) is None, 10, "the delete (mirror)")
        # Leaving the model without leaving the table is a removal too.
        self.p.sql("UPDATE users SET plan = 'gone' WHERE id = 8")
        wait_until(lambda: self.r.get({"user_id": 8}) is None, 10, "the row leaving the model")
        # A key that changes: the old one goes, the new one comes.
        self.p.sql("UPDATE users SET id = 500 WHERE id = 9")
        wait_until(store_equals(self.r, expected_store(self.table(), FIELDS)), 10, "the key change")
        self.assertEqual(self.live.interrupt(), 130, self.live.stderr())
        self.assertIn("stopped", self.live.stderr())
        # History: the full run, then live rows (not one per change).
        code, doc, err = self.p.run_json("runs", "u")
        self.assertEqual(code, 0, err)
        runs = doc["runs"]
        self.assertGreaterEqual(len(runs), 2)
        self.assertLess(len(runs), 6, runs)
        live_removed = sum(r["removed"] for r in runs)
        self.assertEqual(live_removed, 3, runs)  # 7, 8 and the old key 9

    def test_burst_is_coalesced_and_unmapped_changes_push_nothing(self):
        self.setup_capture()
        self.start()
        wait_until(store_equals(self.r, expected_store(self.table(), FIELDS)), 20, "the full run")
        before = self.r.counters()["ok"]
        # 300 updates of one key in one transaction: pushed once, last value.
        con = sqlite3.connect(self.p.db_path)
        with con:
            for i in range(300):
                con.execute("UPDATE users SET plan = ? WHERE id = 3", (f"p{i}",))
        con.close()
        wait_until(lambda: (self.r.get({"user_id": 3}) or {}).get("plan") == "p299", 10, "burst")
        self.assertEqual(self.r.counters()["ok"] - before, 1, "one record for 300 changes of a key")
        # An unmapped column changes: nothing goes out. A later marker change
        # proves the first was handled (changes are handled in commit order).
        before = self.r.counters()["ok"]
        self.p.sql("UPDATE users SET note = 'changed' WHERE id = 4")
        self.p.sql("UPDATE users SET plan = 'marker' WHERE id = 6")
        wait_until(lambda: (self.r.get({"user_id": 6}) or {}).get("plan") == "marker", 10, "marker")
        self.assertEqual(self.r.counters()["ok"] - before, 1, "the unmapped change was pushed")
        # The capture table is trimmed as changes are consumed.
        wait_until(lambda: self.p.query("SELECT count(*) FROM _backflow_changes_u")[0][0] == 0,
                   10, "the capture table to be trimmed")
        self.assertEqual(self.live.interrupt(), 130, self.live.stderr())

    def test_sigkill_and_changes_while_down_lose_nothing(self):
        self.setup_capture()
        self.start()
        wait_until(store_equals(self.r, expected_store(self.table(), FIELDS)), 20, "the full run")
        con = sqlite3.connect(self.p.db_path, timeout=10)
        for i in range(200):  # a steady stream of commits, killed in the middle
            with con:
                con.execute("UPDATE users SET plan = ? WHERE id = ?", (f"s{i}", 1 + i % 50))
            if i == 100:
                self.live.kill()
        with con:  # while Backflow is down
            con.execute("INSERT INTO users VALUES (300, 'down@example.com', 'free', 'n')")
            con.execute("DELETE FROM users WHERE id = 60")
        con.close()
        self.start()
        wait_until(store_equals(self.r, expected_store(self.table(), FIELDS)), 20,
                   "every change made around the kill and while down")
        self.assertEqual(self.live.interrupt(), 130, self.live.stderr())

    def test_without_setup_the_error_says_what_to_run(self):
        live = Live(self.p.dir, "u")
        self.assertEqual(live.exited(), 2, live.stderr())
        self.assertIn("backflow live setup u", live.stderr())
        self.assertEqual(self.r.counters()["requests"], 0, "nothing is sent before the check")

    def test_setup_errors_and_teardown(self):
        self.p.write_config(live_config(self.r.url, live="{table: users, key: user_id}"))
        p = self.p.run("live", "setup", "u")
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("backflow.yml:", p.stderr)
        self.assertIn("no column 'user_id'", p.stderr)
        self.p.write_config(live_config(self.r.url))
        self.setup_capture()
        self.setup_capture()  # twice is fine
        names = {r[0] for r in self.p.query("SELECT name FROM sqlite_master")}
        self.assertIn("_backflow_changes_u", names)
        self.assertTrue({"_backflow_u_users_ins", "_backflow_u_users_upd",
                         "_backflow_u_users_del"} <= names, names)
        p = self.p.run("live", "teardown", "u")
        self.assertEqual(p.returncode, 0, p.stderr)
        names = {r[0] for r in self.p.query("SELECT name FROM sqlite_master")}
        self.assertFalse({n for n in names if n.startswith("_backflow_")}, names)
        # The application's writes work as before.
        self.p.sql("UPDATE users SET plan = 'x' WHERE id = 1")

    def test_a_model_without_live_tables_is_refused(self):
        text = live_config(self.r.url).replace("    live: {table: users, key: id}\n", "")
        text = text.replace("    schedule: live\n", "")
        self.p.write_config(text)
        live = Live(self.p.dir, "u")
        self.assertEqual(live.exited(), 2, live.stderr())
        self.assertIn("has no 'live: {table: ..., key: ...}'", live.stderr())

    def test_store_key_is_canonical(self):
        # guards the helper the other tests rely on
        self.assertEqual(canonical_key({"user_id": 7}), '{"user_id": 7}')


if __name__ == "__main__":
    unittest.main()
