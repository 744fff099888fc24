"""pii_policy: hash sends the SHA-256 of the normalised value, drop never sends
the column, and a value that cannot be normalised is a row-level error
(never the hash of garbage)."""
import hashlib
import json
import os
import unittest

from bfhelp import Project

CONFIG = """
version: 1
warehouses:
  local: {type: sqlite, path: warehouse.db}
models:
  people:
    warehouse: local
    sql: SELECT id, email, phone, first_name FROM people
    primary_key: id
    pii: {email: email, phone: phone, first_name: name}
destinations:
  out: {type: file, path: out.jsonl}
syncs:
  people_out:
    model: people
    destination: out
    match: {person_id: id}
    fields: {email_sha256: email, phone_sha256: phone, first_name: first_name}
    pii_policy: {email: hash, phone: hash, first_name: drop}
"""


def sha(s):
    return hashlib.sha256(s.encode()).hexdigest()


class PiiPolicy(unittest.TestCase):
    def setUp(self):
        self.p = Project(CONFIG)
        self.addCleanup(self.p.cleanup)
        self.p.sql("CREATE TABLE people (id INTEGER, email TEXT, phone TEXT, first_name TEXT);"
                   "INSERT INTO people VALUES (1, '  Jane.Doe@Example.COM ', '+1 (650) 555-1212', 'Jane');"
                   "INSERT INTO people VALUES (2, 'not-an-email', '+1 650 555 0000', 'Ann');"
                   "INSERT INTO people VALUES (3, NULL, NULL, 'Bob');")

    def records(self):
        with open(os.path.join(self.p.dir, "out.jsonl")) as f:
            return {r["key"]["person_id"]: r for r in map(json.loads, f)}

    def test_hash_drop_and_invalid_values(self):
        code, doc, err = self.p.run_json("run", "people_out")
        self.assertEqual(code, 1, err)
        run = doc["runs"][0]
        self.assertEqual((run["added"], run["rejected"]), (2, 1))
        recs = self.records()
        self.assertEqual(recs[1]["fields"]["email_sha256"], sha("jane.doe@example.com"))
        self.assertEqual(recs[1]["fields"]["phone_sha256"], sha("16505551212"))
        self.assertNotIn("first_name", recs[1]["fields"])
        self.assertIsNone(recs[3]["fields"]["email_sha256"])  # NULL stays NULL
        self.assertNotIn(2, recs)
        code, errors, _ = self.p.run_json("errors", "people_out")
        self.assertEqual(len(errors["errors"]), 1)
        e = errors["errors"][0]
        self.assertEqual(e["column"], "email_sha256")
        self.assertIn("cannot hash", e["reason"])
        self.assertNotIn("not-an-email", e["reason"])
        # Fixed in the warehouse: the row goes on the next run, nothing else does.
        self.p.sql("UPDATE people SET email = 'ann@example.com' WHERE id = 2")
        code, doc, err = self.p.run_json("run", "people_out")
        self.assertEqual(code, 0, err)
        self.assertEqual((doc["runs"][0]["added"], doc["runs"][0]["changed"]), (1, 0))


if __name__ == "__main__":
    unittest.main()
