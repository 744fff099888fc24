"""The studio's segment preview and save on a PostgreSQL warehouse (issue
18), against a real server (pgredis.py): parameters bound by PostgreSQL,
relative dates in its dialect, injection attempts inert. Fails (never
skips) when PostgreSQL cannot be started."""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgredis  # noqa: E402
from test_serve_support import TOKEN, Project, start_server  # noqa: E402

EDITOR = "editor-token-0123456789ab"


class StudioPg(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pg = pgredis.shared_pg()

    def setUp(self):
        self.wh = self.pg.create_db("studio")
        self.pg.psql("CREATE TABLE people (id bigint PRIMARY KEY, email text, plan text,"
                     " ltv numeric(12,2), seen timestamptz);"
                     "INSERT INTO people SELECT i, 'p' || i || '@x.com', CASE WHEN i % 3 = 0 THEN"
                     " 'pro' ELSE 'free' END, i * 2.5, now() - i * interval '1 day'"
                     " FROM generate_series(1, 90) i", db=self.wh)
        self.p = Project(
            "version: 1\n"
            f"server:\n  token: \"{TOKEN}\"\n  tokens:\n"
            f"    - {{name: bob, token: \"{EDITOR}\", role: editor}}\n"
            "warehouses:\n  pg: {type: postgres, dsn: \"${PG_DSN}\"}\n"
            "models:\n  people:\n    warehouse: pg\n    sql: SELECT id, email, plan, ltv, seen FROM people\n"
            "    primary_key: id\n    pii: {email: email}\n"
            "destinations:\n  out: {type: file, path: out/a.jsonl}\n"
            "syncs:\n  s:\n    model: people\n    destination: out\n    match: {user_id: id}\n"
            "    fields: {email: email}\n")
        self.addCleanup(self.p.cleanup)
        self.env = {"PG_DSN": self.pg.dsn(self.wh)}
        self.s = start_server(self, self.p, env=self.env)


    def tearDown(self):
        # A graceful stop exits 0: under ASan, a leak or memory error makes it fail.
        code = self.s.stop()
        self.assertEqual(code, 0, self.s.log())
    def post(self, path, body, method="POST"):
        status, _, data = self.s.request(method, path, token=EDITOR, body=body)
        return status, json.loads(data)

    def test_preview_and_save_on_postgres(self):
        where = {"all": [{"column": "plan", "op": "=", "value": "pro"},
                         {"column": "seen", "op": "in_last_days", "value": 30},
                         {"any": [{"column": "ltv", "op": ">=", "value": 20},
                                  {"column": "email", "op": "starts_with", "value": "p3"}]}]}
        want = int(self.pg.psql("SELECT COUNT(*) FROM people WHERE plan = 'pro' AND seen >= "
                                "now() - interval '30 days' AND (ltv >= 20 OR email LIKE 'p3%')",
                                db=self.wh)[0][0])
        self.assertGreater(want, 0)
        status, doc = self.post("/api/studio/segments/preview",
                                {"base": {"model": "people"}, "where": where, "sample": 3})
        self.assertEqual(status, 200, doc)
        self.assertEqual(doc["row_count"], want)
        self.assertIn("make_interval(days => ($2)::int)", doc["sql"])
        self.assertEqual(len(doc["sample"]), 3)
        self.assertTrue(all(r["email"] == "***" for r in doc["sample"]))
        status, doc = self.post("/api/studio/segments/preview", {
            "base": {"warehouse": "pg", "table": "public.people"},
            "where": {"column": "plan", "op": "=", "value": "pro'; DROP TABLE people; --"}})
        self.assertEqual(status, 200, doc)
        self.assertEqual(doc["row_count"], 0)
        self.assertEqual(self.pg.psql("SELECT COUNT(*) FROM people", db=self.wh)[0][0], "90")
        status, doc = self.post("/api/studio/segments/preview", {
            "base": {"model": "people"}, "where": {"column": "ltv", "op": ">", "value": "abc"}})
        self.assertEqual(status, 422, doc)  # the warehouse refuses the value; nothing breaks
        status, doc = self.post("/api/studio/models/pro_recent",
                                {"base": {"model": "people"}, "where": where, "version": "new"},
                                method="PUT")
        self.assertEqual(status, 200, doc)
        r = self.p.run("validate", env=self.env)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        got = int(self.pg.psql(f"SELECT COUNT(*) FROM ({doc['sql']}) AS t", db=self.wh)[0][0])
        self.assertEqual(got, want)
        self.assertIn("make_interval(days => (30)::int)", doc["sql"])


if __name__ == "__main__":
    unittest.main()
