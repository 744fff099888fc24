"""`backflow forget` on a PostgreSQL warehouse: the person is looked up with a
parameterised query (the source's query_params), emails and phones normalised
on both sides, and erased from a file destination."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgredis  # noqa: E402
from bfhelp import Project  # noqa: E402
from test_core_support import canonical_key, fold_events, read_events  # noqa: E402


class PgForgetTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pg = pgredis.shared_pg()

    def setUp(self):
        self.wh = self.pg.create_db("wh")
        self.pg.psql("CREATE TABLE people (id bigint PRIMARY KEY, email text, phone text, mobile bigint)",
                     db=self.wh)
        self.pg.psql("INSERT INTO people SELECT i, 'Person' || i || '@Example.com', "
                     "'+1 (650) 555-' || lpad(i::text, 4, '0'), 4915100000000 + i "
                     "FROM generate_series(1, 50) i", db=self.wh)
        self.p = Project(f"""version: 1
warehouses:
  pg: {{type: postgres, dsn: "${{PG_DSN}}"}}
models:
  people:
    warehouse: pg
    sql: SELECT id, email, phone, mobile FROM people -- a trailing comment
    primary_key: id
    pii: {{email: email, phone: phone, mobile: phone}}
destinations:
  out: {{type: file, path: out/people.jsonl}}
syncs:
  people_out:
    model: people
    destination: out
    match: {{person_id: id}}
    fields: {{email: email}}
""")
        self.addCleanup(self.p.cleanup)
        self.env = {"PG_DSN": self.pg.dsn(self.wh)}
        self.out = os.path.join(self.p.dir, "out", "people.jsonl")
        rc, doc, err = self.p.run_json("run", "people_out", env=self.env)
        self.assertEqual(rc, 0, err)

    def held(self):
        return fold_events(read_events(self.out))

    def forget(self, *args):
        rc, doc, err = self.p.run_json("forget", *args, env=self.env)
        self.assertEqual(rc, 0, f"{err!r} {doc!r}")
        self.assertEqual(doc["status"], "complete", doc)
        return doc["syncs"][0]

    def test_email_phone_and_key_on_postgres(self):
        self.assertEqual(len(self.held()), 50)
        s = self.forget("--email", " person7@EXAMPLE.COM")
        self.assertEqual((s["found"], s["deleted"]), (1, 1))
        self.assertNotIn(canonical_key({"person_id": 7}), self.held())
        # typed with other separators than the warehouse's
        s = self.forget("--phone", "+1-650-555-0012")
        self.assertEqual((s["found"], s["deleted"]), (1, 1))
        self.assertNotIn(canonical_key({"person_id": 12}), self.held())
        # a phone held as a number (a bigint column)
        s = self.forget("--phone", "+49 151 0000 0033")
        self.assertEqual((s["found"], s["deleted"]), (1, 1))
        self.assertNotIn(canonical_key({"person_id": 33}), self.held())
        s = self.forget("--key", "people=40")
        self.assertEqual((s["found"], s["deleted"]), (1, 1))
        self.assertEqual(len(self.held()), 46)
        rc, doc, err = self.p.run_json("run", "people_out", "--full-resync", env=self.env)
        self.assertEqual(rc, 0, err)
        self.assertEqual(doc["runs"][0]["skipped"], 4)
        self.assertEqual(len(self.held()), 46)

    def test_warehouse_down_leaves_the_request_pending(self):
        env = {"PG_DSN": self.pg.dsn(self.wh, password="wrong")}
        rc, doc, err = self.p.run_json("forget", "--email", "person3@example.com", env=env)
        self.assertEqual(rc, 3, err)
        self.assertEqual(doc["status"], "pending")
        self.assertIn(canonical_key({"person_id": 3}), self.held())
        rc, doc, err = self.p.run_json("forget", "--retry", env=self.env)
        self.assertEqual(rc, 0, err)
        self.assertEqual(doc["requests"][0]["status"], "complete")
        self.assertNotIn(canonical_key({"person_id": 3}), self.held())
        for path in self.p.state_files():
            with open(path, "rb") as f:
                self.assertNotIn(b"erson3@", f.read(), path)


if __name__ == "__main__":
    unittest.main()
