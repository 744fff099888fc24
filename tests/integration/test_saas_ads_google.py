"""google_customer_match against the strict OfflineUserDataJobService
contract server (issue 5): job create -> addOperations (partial failure) ->
run -> poll; Google's normalisation (E.164 '+', Gmail dots, country and
postal code in clear); mirror removals; throttling; failed jobs retried."""
import hashlib
import os
import sqlite3
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "contract"))

from bfhelp import Project  # noqa: E402
from google_customer_match_server import Server, google_email, sha  # noqa: E402

ACCESS = "ya29.test-access-token"
DEV = "devtok-SECRET-123"


def person(i):
    return {"id": i, "email": f" Jane.Doe{i}+ads@Gmail.com ", "phone": f"+1 (800) 555-{i:04d}",
            "first_name": "Mary Ann", "last_name": f"O'Neil{'x' * (i % 3)}", "country": "us",
            "zip": f"{94000 + i}"}


def config(url, batch_size=20, access=ACCESS, dev=DEV, extra=""):
    return f"""version: 1
warehouses:
  local: {{type: sqlite, path: warehouse.db}}
models:
  people:
    warehouse: local
    sql: SELECT id, email, phone, first_name, last_name, country, zip FROM people
    primary_key: id
    pii: {{email: email, phone: phone, first_name: name, last_name: name}}
destinations:
  gads:
    type: google_customer_match
    developer_token: "{dev}"
    access_token: "{access}"
    customer_id: "1234567890"
    user_list_id: "555"
    base_url: "{url}"
    consent_ad_user_data: GRANTED
    consent_ad_personalization: GRANTED
    poll_interval: 10ms
    wait_for_job: 5s
    retry_base: 5ms
    retry_max_wait: 100ms
    max_retries: 5
{extra}syncs:
  people_to_gads:
    model: people
    destination: gads
    mode: mirror
    match: {{email: email}}
    fields: {{phone: phone, first_name: first_name, last_name: last_name, country_code: country, postal_code: zip}}
    batch_size: {batch_size}
"""


class GoogleCustomerMatch(unittest.TestCase):
    def setUp(self):
        self.srv = Server(token=ACCESS, dev_token=DEV)
        self.addCleanup(self.srv.stop)
        self.p = Project()
        self.addCleanup(self.p.cleanup)
        self.p.sql("CREATE TABLE people (id INTEGER, email TEXT, phone TEXT, first_name TEXT,"
                   " last_name TEXT, country TEXT, zip TEXT)")

    def insert(self, rows):
        con = sqlite3.connect(self.p.db_path)
        con.executemany("INSERT INTO people VALUES (:id, :email, :phone, :first_name, :last_name,"
                        " :country, :zip)", rows)
        con.commit()
        con.close()
        self.srv.control(known=[dict(zip(("email", "phone", "first_name", "last_name"), r))
                                for r in self.p.query("SELECT email, phone, first_name, last_name FROM people")])

    def run_sync(self, expect=0):
        rc, doc, err = self.p.run_json("run", "people_to_gads")
        self.assertEqual(rc, expect, f"exit {rc}; stderr: {err!r}; out: {doc!r}")
        run = doc["runs"][0]
        run["_stderr"] = err
        return run

    def counts(self, run, **want):
        self.assertEqual({k: run[k] for k in want}, want, run)

    def model_emails(self):
        return {sha(google_email(e)) for (e,) in self.p.query("SELECT email FROM people")}

    def list_emails(self):
        return {m["email"] for m in self.srv.state()["members"]}

    def test_jobs_add_then_mirror_removes_and_the_list_equals_the_model(self):
        self.insert([person(i) for i in range(1, 46)])
        self.p.write_config(config(self.srv.url))
        run = self.run_sync()
        self.counts(run, status="succeeded", added=45, removed=0, rejected=0, failed=0)
        st = self.srv.state()
        c = st["counters"]
        self.assertEqual((c["jobs_created"], c["jobs_run"], c["jobs_succeeded"]), (3, 3, 3))
        self.assertEqual((c["operations"], c["hash_mismatch"], c["bad_requests"]), (45, 0, 0))
        self.assertEqual(self.list_emails(), self.model_emails())
        # Google's rules: Gmail dots and +tag gone, E.164 with '+', country/zip in clear.
        m = [x for x in st["members"] if x["email"] == sha("janedoe1@gmail.com")]
        self.assertEqual(len(m), 1)
        self.assertEqual(m[0]["phone"], hashlib.sha256(b"+18005550001").hexdigest())
        self.assertEqual(m[0]["address"], [sha("mary ann"), sha("oneilx"), "US", "94001"])

        self.p.sql("DELETE FROM people WHERE id % 5 = 0")
        run = self.run_sync()
        self.counts(run, status="succeeded", added=0, removed=9, rejected=0, failed=0)
        self.assertEqual(self.srv.state()["counters"]["members_removed"], 9)
        self.assertEqual(self.list_emails(), self.model_emails())
        run = self.run_sync()
        self.counts(run, status="succeeded", added=0, removed=0, unchanged=36)

    def test_invalid_values_and_partial_failures_reject_exactly_those_rows(self):
        rows = [person(i) for i in range(1, 21)]
        rows[4]["phone"] = "call me"          # id 5: row-level reject, never sent
        rows[9]["country"] = "Neverland"      # id 10
        self.insert(rows)
        self.srv.control(invalid_emails=["jane.doe3+ads@gmail.com", "janedoe17@gmail.com"])
        self.p.write_config(config(self.srv.url, batch_size=10))
        run = self.run_sync(expect=1)
        self.counts(run, status="partial", added=16, rejected=4, failed=0)
        rc, doc, err = self.p.run_json("errors", "people_to_gads")
        reasons = sorted(e["reason"] for e in doc["errors"])
        self.assertEqual(len(reasons), 4, reasons)
        self.assertEqual(sum(r.startswith("Google: INVALID_USER_IDENTIFIER: The email address is not valid")
                             for r in reasons), 2, reasons)
        self.assertTrue(any(r.startswith("phone: ") for r in reasons), reasons)
        self.assertTrue(any(r.startswith("country_code: not an ISO 3166-1") for r in reasons), reasons)
        c = self.srv.state()["counters"]
        self.assertEqual((c["operations"], c["partial_failures"], c["hash_mismatch"]), (18, 2, 0))
        self.assertEqual(len(self.list_emails()), 16)

    def test_throttling_and_concurrent_modification_are_retried(self):
        self.insert([person(i) for i in range(1, 11)])
        self.srv.control(status_sequence=[429, "aborted", 503])
        self.p.write_config(config(self.srv.url))
        run = self.run_sync()
        self.counts(run, status="succeeded", added=10)
        self.assertEqual(self.srv.state()["counters"]["faults_served"], 3)
        self.assertEqual(self.list_emails(), self.model_emails())

    def test_a_failed_job_is_sent_again_and_nothing_is_lost(self):
        self.insert([person(i) for i in range(1, 11)])
        self.srv.control(fail_jobs=1, polls_to_finish=2)
        self.p.write_config(config(self.srv.url))
        run = self.run_sync()
        self.counts(run, status="succeeded", added=10, rejected=0, failed=0)
        c = self.srv.state()["counters"]
        self.assertEqual((c["jobs_failed"], c["jobs_succeeded"]), (1, 1))
        self.assertEqual(self.list_emails(), self.model_emails())

    def test_bad_developer_token_stops_the_run_without_printing_it(self):
        self.insert([person(1)])
        self.p.write_config(config(self.srv.url, dev="devtok-WRONG-999"))
        run = self.run_sync(expect=4)
        self.assertIn("developer token", run["_stderr"])
        self.assertNotIn("devtok-WRONG-999", run["_stderr"])
        self.assertNotIn(ACCESS, run["_stderr"])

    def test_validate_finds_the_user_list(self):
        self.p.write_config(config(self.srv.url))
        p = self.p.run("validate", "--connect")
        self.assertEqual(p.returncode, 0, p.stderr + p.stdout)


if __name__ == "__main__":
    unittest.main()
