"""mailchimp against the strict Mailchimp contract server (issue 5): batch
subscribe/update of 500 members a request with merge fields and tags, at most
10 connections, errors[] mapped back to rows by email, archive by subscriber
hash on removal (mirror), 429/5xx retried; the audience equals the model."""
import os
import sqlite3
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "contract"))

from bfhelp import Project  # noqa: E402
from mailchimp_server import Server, subscriber_hash  # noqa: E402

KEY = "0123456789abcdef0123456789abcdef-us14"


def config(url, batch_size=2000, key=KEY, extra=""):
    return f"""version: 1
warehouses:
  local: {{type: sqlite, path: warehouse.db}}
models:
  people:
    warehouse: local
    sql: SELECT id, email, first_name, plan, segments FROM people
    primary_key: id
    pii: {{email: email, first_name: name}}
destinations:
  mc:
    type: mailchimp
    api_key: "{key}"
    list_id: a1b2c3d4e5
    base_url: "{url}/3.0"
    max_in_flight: 20
    retry_base: 5ms
    retry_max_wait: 100ms
{extra}syncs:
  people_to_mc:
    model: people
    destination: mc
    mode: mirror
    match: {{email_address: email}}
    fields: {{FNAME: first_name, PLAN: plan, tags: segments}}
    batch_size: {batch_size}
"""


class Mailchimp(unittest.TestCase):
    def setUp(self):
        self.srv = Server(api_key=KEY)
        self.addCleanup(self.srv.stop)
        self.p = Project()
        self.addCleanup(self.p.cleanup)
        self.p.sql("CREATE TABLE people (id INTEGER, email TEXT, first_name TEXT, plan TEXT, segments TEXT)")

    def insert(self, n, start=1):
        con = sqlite3.connect(self.p.db_path)
        con.executemany("INSERT INTO people VALUES (?,?,?,?,?)",
                        [(i, f" Person{i}@Example.com", f"Name{i}", "free" if i % 2 else "pro",
                          "vip, early" if i % 3 == 0 else None) for i in range(start, start + n)])
        con.commit()
        con.close()

    def run_sync(self, expect=0):
        rc, doc, err = self.p.run_json("run", "people_to_mc")
        self.assertEqual(rc, expect, f"exit {rc}; stderr: {err!r}; out: {doc!r}")
        run = doc["runs"][0]
        run["_stderr"] = err
        return run

    def counts(self, run, **want):
        self.assertEqual({k: run[k] for k in want}, want, run)

    def expected(self):
        return {subscriber_hash(e): {"FNAME": fn, "PLAN": pl}
                for (e, fn, pl) in self.p.query("SELECT email, first_name, plan FROM people")}

    def active(self):
        return {h: m["merge_fields"] for h, m in self.srv.state()["members"].items()
                if m["status"] != "archived"}

    def test_upserts_in_requests_of_500_then_mirror_archives(self):
        self.insert(1234)
        self.p.write_config(config(self.srv.url))
        run = self.run_sync()
        self.counts(run, status="succeeded", added=1234, rejected=0, failed=0)
        st = self.srv.state()
        c = st["counters"]
        self.assertEqual((c["members_received"], c["created"], c["max_members_seen"]), (1234, 1234, 500))
        self.assertEqual(c["batch_requests"], 3)
        self.assertLessEqual(c["max_concurrent"], 10)
        self.assertEqual(c["too_many_connections"], 0)
        self.assertEqual(self.active(), self.expected())
        m = st["members"][subscriber_hash("person3@example.com")]
        self.assertEqual((m["email_address"], m["status"], m["tags"]),
                         ("Person3@Example.com", "subscribed", ["early", "vip"]))

        self.p.sql("UPDATE people SET plan = 'enterprise' WHERE id <= 10; DELETE FROM people WHERE id > 1200")
        run = self.run_sync()
        self.counts(run, status="succeeded", changed=10, removed=34, rejected=0, failed=0)
        c = self.srv.state()["counters"]
        self.assertEqual((c["updated"], c["archived"]), (10, 34))
        self.assertEqual(self.active(), self.expected())
        self.counts(self.run_sync(), status="succeeded", added=0, changed=0, removed=0, unchanged=1200)

    def test_members_mailchimp_refuses_are_rejected_by_email_without_the_value(self):
        self.insert(30)
        self.p.sql("UPDATE people SET email = 'no-at-sign' WHERE id = 4")
        self.srv.control(invalid_emails=["person9@example.com", "person21@example.com"])
        self.p.write_config(config(self.srv.url))
        run = self.run_sync(expect=1)
        self.counts(run, status="partial", added=27, rejected=3, failed=0)
        rc, doc, err = self.p.run_json("errors", "people_to_mc")
        reasons = sorted(e["reason"] for e in doc["errors"])
        self.assertEqual(len(reasons), 3, reasons)
        self.assertEqual(sum(r.startswith("Mailchimp: ERROR_GENERIC:") for r in reasons), 2, reasons)
        self.assertTrue(any(r.startswith("email_address: not an email") for r in reasons), reasons)
        for r in reasons:
            self.assertNotIn("erson9@", r)
            self.assertNotIn("erson21@", r)
        self.assertEqual(len(self.active()), 27)

    def test_throttling_and_server_errors_are_retried(self):
        self.insert(700)
        self.srv.control(status_sequence=[429, 503, "bare403"])
        self.p.write_config(config(self.srv.url))
        run = self.run_sync()
        self.counts(run, status="succeeded", added=700)
        self.assertEqual(self.srv.state()["counters"]["faults_served"], 3)
        self.assertEqual(self.active(), self.expected())

    def test_permanent_delete_on_removal(self):
        self.insert(5)
        self.p.write_config(config(self.srv.url, extra="    remove_action: delete_permanent\n"))
        self.run_sync()
        self.p.sql("DELETE FROM people WHERE id = 2")
        self.counts(self.run_sync(), removed=1)
        st = self.srv.state()
        self.assertEqual(st["counters"]["deleted"], 1)
        self.assertNotIn(subscriber_hash("person2@example.com"), st["members"])

    def test_bad_api_key_stops_the_run_without_printing_it(self):
        self.insert(3)
        self.p.write_config(config(self.srv.url, key="ffffffffffffffffffffffffffffffff-us14"))
        run = self.run_sync(expect=4)
        self.assertIn("check api_key", run["_stderr"])
        self.assertNotIn("ffffffffffffffff", run["_stderr"])

    def test_data_centre_comes_from_the_key(self):
        self.insert(1)
        self.p.write_config(config(self.srv.url).replace(f'    base_url: "{self.srv.url}/3.0"\n', "")
                            .replace(KEY, "0123456789abcdef0123456789abcdef"))
        run = self.run_sync(expect=2)
        self.assertIn("api_key must end with its data centre", run["_stderr"])


if __name__ == "__main__":
    unittest.main()
