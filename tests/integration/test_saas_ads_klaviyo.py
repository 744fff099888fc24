"""klaviyo against the strict Klaviyo contract server (issue 5): bulk import jobs
(create with the revision header, poll, read import errors), list membership,
removal from the list on mirror, refusals and import errors mapped back to rows,
429 with Retry-After / 5xx / cancelled jobs retried; the list and the profiles end
equal to the model with exact counts."""
import json
import os
import sqlite3
import sys
import time
import unittest
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "contract"))

from bfhelp import Project  # noqa: E402
from contract_base import ContractServer  # noqa: E402

KEY = "pk_test_0123456789abcdef0123456789abcdef"
LIST = "Y6nRLr"


def config(url, batch_size=1000, list_id=LIST, key=KEY, extra="", fields=None):
    lid = f"    list_id: {list_id}\n" if list_id else ""
    fields = fields or "{phone_number: phone, first_name: first_name, city: city, plan: plan}"
    return f"""version: 1
warehouses:
  local: {{type: sqlite, path: warehouse.db}}
models:
  people:
    warehouse: local
    sql: SELECT id, email, phone, first_name, city, plan, bio FROM people
    primary_key: id
    pii: {{email: email, phone: phone, first_name: name}}
destinations:
  kl:
    type: klaviyo
    api_key: "{key}"
{lid}    base_url: "{url}"
    poll_interval: 5ms
    retry_base: 5ms
    retry_max_wait: 2s
    rate_limit: {{requests_per_second: 0}}
{extra}syncs:
  people_to_kl:
    model: people
    destination: kl
    mode: mirror
    match: {{email: email}}
    fields: {fields}
    batch_size: {batch_size}
"""


class Klaviyo(unittest.TestCase):
    def setUp(self):
        self.srv = ContractServer.start("klaviyo_server.py", config={"api_key": KEY, "lists": [LIST]})
        self.addCleanup(self.srv.stop)
        self.p = Project()
        self.addCleanup(self.p.cleanup)
        self.p.sql("CREATE TABLE people (id INTEGER, email TEXT, phone TEXT, first_name TEXT, city TEXT,"
                   " plan TEXT, bio TEXT)")

    def insert(self, n, start=1, bio=None):
        con = sqlite3.connect(self.p.db_path)
        con.executemany("INSERT INTO people VALUES (?,?,?,?,?,?,?)",
                        [(i, f" Person{i}@Example.com ", f"+1 (650) 555-{i % 10000:04d}", f"Name{i}",
                          None if i % 4 == 0 else "Paris", "free" if i % 2 else "pro", bio)
                         for i in range(start, start + n)])
        con.commit()
        con.close()

    def run_sync(self, *args, expect=0):
        rc, doc, err = self.p.run_json("run", "people_to_kl", *args)
        self.assertEqual(rc, expect, f"exit {rc}; stderr: {err!r}; out: {doc!r}")
        run = doc["runs"][0]
        run["_stderr"] = err
        return run

    def counts(self, run, **want):
        self.assertEqual({k: run[k] for k in want}, want, run)

    def model(self):
        """email -> what the profile must hold."""
        out = {}
        for (i, email, phone, fn, city, plan) in self.p.query(
                "SELECT id, email, phone, first_name, city, plan FROM people"):
            digits = "".join(ch for ch in phone if ch.isdigit())
            prof = {"email": email.strip().lower(), "phone_number": "+" + digits, "first_name": fn,
                    "properties": {"plan": plan}}
            if city is not None:
                prof["location"] = {"city": city}
            out[email.strip().lower()] = prof
        return out

    def listed(self, st=None):
        st = st or self.srv.state()
        return {st["profiles"][pid]["email"]: st["profiles"][pid] for pid in st["lists"][LIST]}

    def errors(self):
        rc, doc, _ = self.p.run_json("errors", "people_to_kl")
        return sorted(e["reason"] for e in doc["errors"])

    def test_adds_changes_and_removes_keep_the_list_equal_to_the_model(self):
        self.insert(2500)
        self.p.write_config(config(self.srv.base))
        run = self.run_sync()
        self.counts(run, status="succeeded", added=2500, changed=0, removed=0, rejected=0, failed=0)
        st = self.srv.state()
        c = st["counters"]
        self.assertEqual((c["jobs"], c["profiles_received"], c["profiles_created"], c["max_profiles_seen"]),
                         (3, 2500, 2500, 1000))
        self.assertEqual(c.get("missing_revision", 0) + c.get("bad_content_type", 0) + c.get("nulls_received", 0), 0)
        self.assertEqual(self.listed(st), self.model())
        self.assertTrue(all(j["status"] == "complete" for j in st["jobs"].values()))

        self.p.sql("UPDATE people SET plan = 'enterprise', city = 'Lyon' WHERE id <= 10;"
                   " DELETE FROM people WHERE id > 2466")
        run = self.run_sync()
        self.counts(run, status="succeeded", added=0, changed=10, removed=34, rejected=0, failed=0)
        st = self.srv.state()
        c = st["counters"]
        self.assertEqual((c["profiles_updated"], c["list_removed"], c["list_remove_requests"], c["profile_lookups"]),
                         (10, 34, 1, 1))
        self.assertEqual(self.listed(st), self.model())
        self.assertEqual(len(st["profiles"]), 2500, "removal takes profiles off the list, never deletes them")
        self.counts(self.run_sync(), status="succeeded", added=0, changed=0, removed=0, unchanged=2466)

    def test_refused_and_failed_profiles_are_rejected_rows_the_rest_imported(self):
        self.insert(40)
        self.p.sql("UPDATE people SET email = 'no-at-sign' WHERE id = 4;"
                   " UPDATE people SET phone = 'call after 5' WHERE id = 5")   # not a phone: local reject
        self.srv.control(refuse_emails=["person9@example.com", "person21@example.com"],
                         import_error_emails=["person30@example.com"])
        self.p.write_config(config(self.srv.base))
        run = self.run_sync(expect=1)
        self.counts(run, status="partial", added=35, rejected=5, failed=0)
        reasons = self.errors()
        self.assertEqual(len(reasons), 5, reasons)
        self.assertEqual(sum(r.startswith("Klaviyo: invalid:") for r in reasons), 3, reasons)
        self.assertTrue(any(r.startswith("email: not an email address") for r in reasons), reasons)
        self.assertTrue(any(r.startswith("phone_number: ") for r in reasons), reasons)
        for r in reasons:
            for i in (9, 21, 30):
                self.assertNotIn(f"erson{i}@", r)
        c = self.srv.state()["counters"]
        self.assertEqual((c["refused_jobs"], c["jobs"], c["import_errors"], c["import_error_requests"]), (1, 1, 1, 1))
        want = {e: p for e, p in self.model().items()
                if e not in ("no-at-sign", "person5@example.com", "person9@example.com",
                             "person21@example.com", "person30@example.com")}
        self.assertEqual(self.listed(), want)
        # Fixed in Klaviyo: the rejected rows go on the next run.
        self.srv.control(refuse_emails=[], import_error_emails=[])
        self.p.sql("UPDATE people SET email = 'person4@example.com' WHERE id = 4;"
                   " UPDATE people SET phone = '+1 650 555 0005' WHERE id = 5")
        run = self.run_sync()
        self.counts(run, status="succeeded", added=5, rejected=0)
        self.assertEqual(self.listed(), self.model())

    def test_import_errors_without_pointer_are_matched_by_original_payload_across_pages(self):
        self.insert(60)
        bad = [f"person{i}@example.com" for i in range(1, 60, 2)]    # 30 errors: 2 pages of 20 + ...
        self.srv.control(import_error_emails=bad, errors_without_pointer=True)
        self.p.write_config(config(self.srv.base))
        run = self.run_sync(expect=1)
        self.counts(run, status="partial", added=30, rejected=30)
        c = self.srv.state()["counters"]
        self.assertEqual(c["import_errors"], 30)
        self.assertEqual(c["import_error_requests"], 1, "pages of 100")
        self.assertEqual(set(self.listed()), {f"person{i}@example.com" for i in range(2, 61, 2)})

    def test_throttling_server_errors_and_cancelled_jobs_are_retried(self):
        self.insert(300)
        self.srv.control(status_sequence=[429, 503, 502], retry_after=1, cancel_jobs=1)
        self.p.write_config(config(self.srv.base, batch_size=150))
        t0 = time.monotonic()
        run = self.run_sync()
        self.counts(run, status="succeeded", added=300, rejected=0, failed=0)
        c = self.srv.state()["counters"]
        self.assertEqual((c["injected_faults"], c["cancelled_jobs"]), (3, 1))
        self.assertEqual(c["jobs"], 3, "two batches and the cancelled job's profiles again")
        self.assertGreaterEqual(time.monotonic() - t0, 1.0, "Retry-After was honoured")
        self.assertEqual(self.listed(), self.model())

    def test_jobs_are_split_at_5_mb(self):
        self.insert(2600, bio="x" * 2000)
        self.p.write_config(config(self.srv.base, batch_size=10000,
                                   fields="{first_name: first_name, bio: bio}"))
        run = self.run_sync()
        self.counts(run, status="succeeded", added=2600)
        c = self.srv.state()["counters"]
        self.assertEqual(c["jobs"], 2)
        self.assertLessEqual(c["max_body_bytes"], 5 * 1024 * 1024)
        self.assertEqual(len(self.listed()), 2600)

    def test_without_a_list_profiles_are_upserted_and_removals_send_nothing(self):
        self.insert(10)
        self.p.write_config(config(self.srv.base, list_id=None))
        self.counts(self.run_sync(), status="succeeded", added=10)
        self.p.sql("DELETE FROM people WHERE id > 7")
        run = self.run_sync()
        self.counts(run, status="succeeded", removed=3)
        self.assertIn("no list_id", run["_stderr"])
        st = self.srv.state()
        self.assertEqual(len(st["profiles"]), 10)
        self.assertEqual(st["lists"][LIST], [])
        self.assertEqual(st["counters"].get("list_remove_requests", 0) + st["counters"].get("profile_lookups", 0), 0)

    def test_bad_key_and_unknown_list_stop_the_run_without_printing_the_key(self):
        self.insert(3)
        self.p.write_config(config(self.srv.base, key="pk_wrong_fedcba9876543210"))
        run = self.run_sync(expect=4)
        self.assertIn("check api_key", run["_stderr"])
        self.assertNotIn("fedcba9876543210", run["_stderr"])
        self.p.write_config(config(self.srv.base, list_id="Nope12"))
        run = self.run_sync(expect=1)
        self.counts(run, status="partial", added=0, rejected=3)
        self.assertTrue(all("List relationship is invalid." in r for r in self.errors()))

    def test_the_contract_server_is_strict_about_revision_and_content_type(self):
        def call(headers, body=b"{}"):
            req = urllib.request.Request(self.srv.base + "/api/profile-bulk-import-jobs", data=body,
                                         method="POST", headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    return r.status, json.loads(r.read())
            except urllib.error.HTTPError as e:
                return e.code, json.loads(e.read())
        auth = {"Authorization": f"Klaviyo-API-Key {KEY}"}
        status, doc = call(dict(auth, **{"Content-Type": "application/vnd.api+json"}))
        self.assertEqual((status, doc["errors"][0]["source"]), (400, {"parameter": "revision"}))
        status, doc = call(dict(auth, **{"revision": "2025-01-15", "Content-Type": "application/json"}))
        self.assertEqual(status, 415)
        status, doc = call({"revision": "2025-01-15"})
        self.assertEqual((status, doc["errors"][0]["code"]), (401, "not_authenticated"))


if __name__ == "__main__":
    unittest.main()
