"""meta_audience against the strict Meta contract server (issue 5): hashed
multi-key rows, adds and removes (mirror), row-level rejects for invalid
identifiers, Graph throttling retried, invalid_entry_samples mapped back,
lost batches resent; the audience ends equal to the model with exact counts."""
import hashlib
import os
import sqlite3
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "contract"))

from bfhelp import Project  # noqa: E402
from meta_audience_server import Server, meta_hash  # noqa: E402

TOKEN = "EAAtest-meta-token-0123456789"
AUDIENCE = "23850000000000001"


def person(i):
    first = ["José", "Mary-Ann", "Łukasz", "O'Brien", "Zoë"][i % 5]
    return {"id": i, "email": f" Person{i}@Example.COM ", "phone": f"+1 (650) 555-{i:04d}",
            "first_name": first, "country": "US" if i % 2 else "United Kingdom",
            "crm_id": f"crm-{i}"}


def config(url, batch_size=20, match="{EMAIL: email}",
           fields="{PHONE: phone, FN: first_name, COUNTRY: country, EXTERN_ID: crm_id}",
           token=TOKEN, extra=""):
    return f"""version: 1
warehouses:
  local: {{type: sqlite, path: warehouse.db}}
models:
  people:
    warehouse: local
    sql: SELECT id, email, phone, first_name, country, crm_id FROM people
    primary_key: id
    pii: {{email: email, phone: phone, first_name: name}}
destinations:
  fb:
    type: meta_audience
    token: "{token}"
    audience_id: "{AUDIENCE}"
    base_url: "{url}"
    retry_base: 5ms
    retry_max_wait: 200ms
    max_retries: 6
{extra}syncs:
  people_to_fb:
    model: people
    destination: fb
    mode: mirror
    match: {match}
    fields: {fields}
    batch_size: {batch_size}
"""


class MetaAudience(unittest.TestCase):
    def setUp(self):
        self.srv = Server(token=TOKEN, audience_id=AUDIENCE)
        self.addCleanup(self.srv.stop)
        self.p = Project()
        self.addCleanup(self.p.cleanup)
        self.p.sql("CREATE TABLE people (id INTEGER, email TEXT, phone TEXT, first_name TEXT,"
                   " country TEXT, crm_id TEXT)")

    def insert(self, rows):
        con = sqlite3.connect(self.p.db_path)
        con.executemany("INSERT INTO people VALUES (:id, :email, :phone, :first_name, :country,"
                        " :crm_id)", rows)
        con.commit()
        con.close()
        known = [{"EMAIL": r["email"], "PHONE": r["phone"], "FN": r["first_name"],
                  "COUNTRY": r["country"], "EXTERN_ID": r["crm_id"]} for r in rows]
        st = self.srv.httpd.state
        with st.lock:
            for k in known:
                for key, v in k.items():
                    if v is not None and str(v).strip():
                        st.known.setdefault(key, set()).add(meta_hash(key, v))

    def run_sync(self, expect=0):
        rc, doc, err = self.p.run_json("run", "people_to_fb")
        self.assertEqual(rc, expect, f"exit {rc}; stderr: {err!r}; out: {doc!r}")
        run = doc["runs"][0]
        run["_stderr"] = err
        return run

    def counts(self, run, **want):
        self.assertEqual({k: run[k] for k in want}, want, run)

    def model_emails(self):
        rows = self.p.query("SELECT email FROM people")
        return {meta_hash("EMAIL", e) for (e,) in rows}

    def audience_emails(self):
        return {m["EMAIL"] for m in self.srv.state()["members"]}

    def errors(self):
        rc, doc, err = self.p.run_json("errors", "people_to_fb")
        self.assertEqual(rc, 0, err)
        return doc["errors"]

    def test_adds_then_mirror_removes_leave_the_audience_equal_to_the_model(self):
        self.insert([person(i) for i in range(1, 51)])
        self.p.write_config(config(self.srv.url))
        run = self.run_sync()
        self.counts(run, status="succeeded", added=50, removed=0, rejected=0, failed=0)
        st = self.srv.state()
        c = st["counters"]
        self.assertEqual(c["hash_mismatch"], 0, "every hash is Meta's normalisation of the plaintext")
        self.assertEqual(c["bad_requests"], 0)
        self.assertEqual((c["add_requests"], c["rows_added"], c["max_rows_seen"]), (3, 50, 20))
        self.assertEqual(self.audience_emails(), self.model_emails())
        # One session for the run's adds, batch_seq 1..3.
        self.assertEqual(sorted(st["sessions"].values()), [3])
        # Every member carries all five keys; the ids went in clear, the rest hashed.
        m = st["members"][0]
        self.assertEqual(set(m), {"EMAIL", "PHONE", "FN", "COUNTRY", "EXTERN_ID"})
        self.assertIn(m["EXTERN_ID"], {f"crm-{i}" for i in range(1, 51)})
        self.assertEqual(meta_hash("EMAIL", "person1@example.com"),
                         hashlib.sha256(b"person1@example.com").hexdigest())
        # No plaintext identifier anywhere in the state folder (design.md §2).
        for path in self.p.state_files():
            with open(path, "rb") as f:
                data = f.read()
            self.assertNotIn(b"person1@example.com", data.lower(), path)

        self.p.sql("DELETE FROM people WHERE id > 40")
        run = self.run_sync()
        self.counts(run, status="succeeded", added=0, removed=10, rejected=0, failed=0)
        c = self.srv.state()["counters"]
        self.assertEqual((c["remove_requests"], c["rows_removed"]), (1, 10))
        self.assertEqual(self.audience_emails(), self.model_emails())

        run = self.run_sync()
        self.counts(run, status="succeeded", added=0, removed=0, unchanged=40)

    def test_invalid_identifiers_are_row_level_rejects_never_hashed(self):
        rows = [person(i) for i in range(1, 21)]
        rows[2]["phone"] = "n/a"               # id 3
        rows[6]["email"] = "not-an-email"      # id 7
        rows[9]["country"] = "Atlantis"        # id 10
        rows[11]["phone"] = "   "              # id 12: blank = absent, still sent
        self.insert(rows)
        self.p.write_config(config(self.srv.url))
        run = self.run_sync(expect=1)
        self.counts(run, status="partial", added=17, rejected=3, failed=0)
        reasons = sorted(e["reason"] for e in self.errors())
        self.assertEqual(len(reasons), 3, reasons)
        self.assertTrue(any(r.startswith("COUNTRY: not an ISO 3166-1") for r in reasons), reasons)
        self.assertTrue(any(r.startswith("EMAIL: not an email") for r in reasons), reasons)
        self.assertTrue(any(r.startswith("PHONE: has no digits") for r in reasons), reasons)
        for r in reasons:
            self.assertNotIn("not-an-email", r)
            self.assertNotIn("Atlantis", r)
        c = self.srv.state()["counters"]
        self.assertEqual((c["rows_received"], c["hash_mismatch"]), (17, 0))
        # Fixing the data sends exactly the rejected rows next run.
        self.p.sql("UPDATE people SET phone = '+44 20 7946 0003' WHERE id = 3;"
                   "UPDATE people SET email = 'seven@example.com' WHERE id = 7;"
                   "UPDATE people SET country = 'GB' WHERE id = 10")
        self.insert([])  # refresh nothing; known values below
        self.srv.control(known=[{"EMAIL": e, "PHONE": ph, "FN": fn, "COUNTRY": co, "EXTERN_ID": x}
                                for (e, ph, fn, co, x) in self.p.query(
                                    "SELECT email, phone, first_name, country, crm_id FROM people")])
        run = self.run_sync()
        self.counts(run, status="succeeded", added=3, rejected=0)
        self.assertEqual(self.audience_emails(), self.model_emails())
        self.assertEqual(self.srv.state()["counters"]["hash_mismatch"], 0)

    def test_graph_throttling_and_5xx_are_retried(self):
        self.insert([person(i) for i in range(1, 31)])
        self.srv.control(status_sequence=["throttle", "throttle613", 503, "transient", 429])
        self.p.write_config(config(self.srv.url, batch_size=10))
        run = self.run_sync()
        self.counts(run, status="succeeded", added=30, rejected=0, failed=0)
        c = self.srv.state()["counters"]
        self.assertEqual(c["faults_served"], 5)
        self.assertEqual(c["rows_added"], 30)
        self.assertEqual(self.audience_emails(), self.model_emails())

    def test_throttling_that_outlasts_the_retries_stops_the_run_and_loses_nothing(self):
        self.insert([person(i) for i in range(1, 11)])
        self.srv.control(status_sequence=["throttle"] * 10)
        self.p.write_config(config(self.srv.url, batch_size=10))
        run = self.run_sync(expect=4)
        self.assertEqual(run["status"], "failed")
        self.assertIn("User request limit reached", run["_stderr"])
        self.assertNotIn(TOKEN, run["_stderr"])
        self.srv.control(status_sequence=[])
        run = self.run_sync()
        self.counts(run, status="succeeded", added=10)
        self.assertEqual(self.audience_emails(), self.model_emails())

    def test_invalid_entry_samples_reject_exactly_those_rows(self):
        rows = [person(i) for i in range(1, 26)]
        self.insert(rows)
        self.srv.control(invalid_emails=["person4@example.com", "person17@example.com"])
        self.p.write_config(config(self.srv.url, batch_size=10))
        run = self.run_sync(expect=1)
        self.counts(run, status="partial", added=23, rejected=2, failed=0)
        reasons = [e["reason"] for e in self.errors()]
        self.assertEqual(reasons, ["Meta: invalid EMAIL entry: Invalid email"] * 2)
        self.assertEqual(len(self.audience_emails()), 23)

    def test_a_batch_meta_did_not_receive_is_sent_again(self):
        self.insert([person(i) for i in range(1, 16)])
        self.srv.control(short_received=1)
        self.p.write_config(config(self.srv.url, batch_size=10))
        run = self.run_sync()
        self.counts(run, status="succeeded", added=15, rejected=0, failed=0)
        self.assertEqual(self.audience_emails(), self.model_emails())
        self.assertEqual(self.srv.state()["counters"]["add_requests"], 3)

    def test_bad_token_stops_the_run_naming_the_cause_not_the_token(self):
        self.insert([person(1)])
        self.p.write_config(config(self.srv.url, token="EAAwrong-token-value"))
        run = self.run_sync(expect=4)
        self.assertIn("access token", run["_stderr"])
        self.assertNotIn("EAAwrong-token-value", run["_stderr"])
        self.assertEqual(self.srv.state()["members"], [])

    def test_unknown_schema_key_is_a_configuration_error(self):
        self.insert([person(1)])
        self.p.write_config(config(self.srv.url, fields="{PHONE: phone, FIRSTNAME: first_name}"))
        run = self.run_sync(expect=2)
        self.assertIn("'FIRSTNAME' is not a Meta audience schema key", run["_stderr"])
        self.assertEqual(self.srv.state()["counters"]["requests"], 0)

    def test_validate_checks_the_audience(self):
        self.p.write_config(config(self.srv.url))
        p = self.p.run("validate", "--connect")
        self.assertEqual(p.returncode, 0, p.stderr + p.stdout)
        self.p.write_config(config(self.srv.url, token="EAAwrong"))
        p = self.p.run("validate", "--connect")
        self.assertNotEqual(p.returncode, 0)


if __name__ == "__main__":
    unittest.main()
