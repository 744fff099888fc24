"""braze against the strict Braze contract server (issue 5): /users/track with
75 objects a request by external_id or email alias, non-fatal errors mapped
to rows by index, 429/5xx retried, /users/delete on mirror removals; the
users equal the model with exact counts."""
import os
import sqlite3
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "contract"))

from bfhelp import Project  # noqa: E402
from braze_server import Server  # noqa: E402

KEY = "braze-rest-key-123"


def config(url, match="{external_id: id}", key=KEY, batch_size=750):
    return f"""version: 1
warehouses:
  local: {{type: sqlite, path: warehouse.db}}
models:
  people:
    warehouse: local
    sql: SELECT id, email, first_name, plan FROM people
    primary_key: id
    pii: {{email: email, first_name: name}}
destinations:
  bz:
    type: braze
    api_key: "{key}"
    base_url: "{url}"
    retry_base: 5ms
    retry_max_wait: 100ms
syncs:
  people_to_braze:
    model: people
    destination: bz
    mode: mirror
    match: {match}
    fields: {{email: email, first_name: first_name, plan: plan}}
    batch_size: {batch_size}
"""


class Braze(unittest.TestCase):
    def setUp(self):
        self.srv = Server(api_key=KEY)
        self.addCleanup(self.srv.stop)
        self.p = Project()
        self.addCleanup(self.p.cleanup)
        self.p.sql("CREATE TABLE people (id INTEGER, email TEXT, first_name TEXT, plan TEXT)")

    def insert(self, n):
        con = sqlite3.connect(self.p.db_path)
        con.executemany("INSERT INTO people VALUES (?,?,?,?)",
                        [(i, f"person{i}@example.com", f"Name{i}", "free" if i % 2 else None)
                         for i in range(1, n + 1)])
        con.commit()
        con.close()

    def run_sync(self, expect=0):
        rc, doc, err = self.p.run_json("run", "people_to_braze")
        self.assertEqual(rc, expect, f"exit {rc}; stderr: {err!r}; out: {doc!r}")
        run = doc["runs"][0]
        run["_stderr"] = err
        return run

    def counts(self, run, **want):
        self.assertEqual({k: run[k] for k in want}, want, run)

    def expected(self, key="external_id"):
        out = {}
        for (i, e, fn, plan) in self.p.query("SELECT id, email, first_name, plan FROM people"):
            u = {"email": e, "first_name": fn}
            if plan is not None:
                u["plan"] = plan
            out[f"external_id:{i}" if key == "external_id" else f"alias:email:{e}"] = u
        return out

    def test_track_in_requests_of_75_then_mirror_deletes(self):
        self.insert(400)
        self.p.write_config(config(self.srv.url))
        run = self.run_sync()
        self.counts(run, status="succeeded", added=400, rejected=0, failed=0)
        c = self.srv.state()["counters"]
        self.assertEqual((c["track_requests"], c["max_objects_seen"], c["applied"]), (6, 75, 400))
        self.assertEqual(self.srv.state()["users"], self.expected())

        self.p.sql("UPDATE people SET plan = NULL WHERE id = 1; DELETE FROM people WHERE id > 380")
        run = self.run_sync()
        self.counts(run, status="succeeded", changed=1, removed=20)
        c = self.srv.state()["counters"]
        self.assertEqual((c["delete_requests"], c["deleted"]), (1, 20))
        self.assertEqual(self.srv.state()["users"], self.expected())

    def test_email_alias_users(self):
        self.insert(10)
        self.p.write_config(config(self.srv.url, match="{user_alias: email}"))
        self.counts(self.run_sync(), status="succeeded", added=10)
        self.assertEqual(self.srv.state()["users"], self.expected("alias"))
        self.p.sql("DELETE FROM people WHERE id = 3")
        self.counts(self.run_sync(), removed=1)
        self.assertEqual(self.srv.state()["users"], self.expected("alias"))

    def test_non_fatal_errors_reject_exactly_those_rows(self):
        self.insert(100)
        self.srv.control(invalid_ids=["7", "80"])
        self.p.write_config(config(self.srv.url))
        run = self.run_sync(expect=1)
        self.counts(run, status="partial", added=98, rejected=2, failed=0)
        rc, doc, err = self.p.run_json("errors", "people_to_braze")
        self.assertEqual(len(doc["errors"]), 2)
        for e in doc["errors"]:
            self.assertTrue(e["reason"].startswith("Braze: "), e)
        self.assertEqual(len(self.srv.state()["users"]), 98)

    def test_throttling_and_5xx_are_retried(self):
        self.insert(200)
        self.srv.control(status_sequence=[429, 500, 503])
        self.p.write_config(config(self.srv.url))
        self.counts(self.run_sync(), status="succeeded", added=200)
        self.assertEqual(self.srv.state()["counters"]["faults_served"], 3)
        self.assertEqual(self.srv.state()["users"], self.expected())

    def test_bad_key_stops_the_run_without_printing_it(self):
        self.insert(3)
        self.p.write_config(config(self.srv.url, key="wrong-key-value-42"))
        run = self.run_sync(expect=4)
        self.assertIn("check api_key", run["_stderr"])
        self.assertNotIn("wrong-key-value-42", run["_stderr"])


if __name__ == "__main__":
    unittest.main()
