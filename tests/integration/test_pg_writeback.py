"""Write-back: run summaries and row-level errors appended to the warehouse
(PostgreSQL: <schema>.sync_runs / sync_errors; SQLite: backflow_sync_runs /
backflow_sync_errors), matching `backflow runs --json` / `errors --json`."""
import json
import os
import sqlite3
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgredis  # noqa: E402
from bfhelp import Project, users_table  # noqa: E402

COUNTS = ["rows_read", "added", "changed", "removed", "unchanged", "skipped", "rejected", "failed"]


class PgWriteBackTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pg = pgredis.shared_pg()

    def setUp(self):
        self.wh = self.pg.create_db("wh")
        self.pg.psql("CREATE TABLE users (id int PRIMARY KEY, email text, ltv numeric);"
                     " INSERT INTO users SELECT i, 'p' || i || '@example.com', i"
                     " FROM generate_series(1, 200) i;"
                     # The destination table refuses a few rows.
                     " CREATE TABLE crm (user_id int PRIMARY KEY, email text CHECK (email NOT LIKE 'p1_@%'),"
                     " ltv numeric)", db=self.wh)
        self.env = {"PG_DSN": self.pg.dsn(self.wh)}
        self.p = Project(f"""version: 1
warehouses:
  pg: {{type: postgres, dsn: "${{PG_DSN}}"}}
  down: {{type: postgres, dsn: "postgresql://u:DownPw123@127.0.0.1:{pgredis.free_port()}/x"}}
write_back: {{warehouse: pg, schema: health}}
models:
  users:
    warehouse: pg
    sql: SELECT id, email, ltv FROM users
    primary_key: id
destinations:
  crm: {{type: postgres, dsn: "${{PG_DSN}}", table: crm}}
syncs:
  s:
    model: users
    destination: crm
    mode: mirror
    match: {{user_id: id}}
    fields: {{email: email, ltv: ltv}}
  t:
    model: users
    destination: crm
    match: {{user_id: id}}
    fields: {{email: email}}
    write_back: {{warehouse: down}}
""")

    def tearDown(self):
        self.p.cleanup()

    def test_runs_and_errors_written_back(self):
        r = self.p.run("run", "s", env=self.env)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.pg.psql("UPDATE users SET ltv = ltv + 1 WHERE id <= 40; DELETE FROM users WHERE id > 190", db=self.wh)
        r = self.p.run("run", "s", env=self.env)
        self.assertEqual(r.returncode, 1, r.stderr)

        runs = json.loads(self.p.run("runs", "s", "--json", env=self.env).stdout)["runs"]
        self.assertEqual(len(runs), 2)
        rows = self.pg.psql("SELECT run_id, sync, model, destination, status,"
                            " (extract(epoch FROM started_at) * 1000)::bigint,"
                            " (extract(epoch FROM finished_at) * 1000)::bigint, duration_ms, "
                            + ", ".join(COUNTS) + ", error FROM health.sync_runs ORDER BY run_id DESC",
                            db=self.wh)
        self.assertEqual(len(rows), 2)
        for run, row in zip(runs, rows):
            self.assertEqual(row[:5], [str(run["id"]), "s", "users", "crm", run["status"]])
            self.assertEqual(int(row[5]), run["started_ms"])
            self.assertEqual(int(row[6]), run["finished_ms"])
            self.assertEqual(int(row[7]), run["duration_ms"])
            self.assertEqual([int(x) for x in row[8:16]], [run[c] for c in COUNTS])
            self.assertEqual(row[16], run["error"])

        for run in runs:
            rc, doc, err = self.p.run_json("errors", "s", "--run", str(run["id"]), env=self.env)
            want = sorted((e["key_hash"], e["column"], e["reason"]) for e in doc["errors"])
            got = sorted(tuple(x) for x in self.pg.psql(
                f"SELECT key_hash, column_name, reason FROM health.sync_errors WHERE sync = 's'"
                f" AND run_id = {run['id']}", db=self.wh))
            self.assertEqual(got, want)
            self.assertEqual(len(got), run["rejected"])
            self.assertGreater(len(got), 0)
        dump = json.dumps(self.pg.psql("SELECT * FROM health.sync_errors", db=self.wh))
        self.assertNotIn("@example.com", dump)

        # Writing back again never duplicates (rows are keyed by sync, run, start).
        r = self.p.run("run", "s", env=self.env)
        n = self.pg.psql("SELECT count(*), count(DISTINCT run_id) FROM health.sync_runs", db=self.wh)
        self.assertEqual(n, [["3", "3"]])

    def test_write_back_failure_is_only_a_warning(self):
        r = self.p.run("run", "t", env=self.env)
        self.assertEqual(r.returncode, 1, r.stderr)  # rejected rows, not the write-back
        self.assertIn("write-back", r.stderr)
        self.assertIn("warning", r.stderr)
        self.assertNotIn("DownPw123", r.stderr)
        runs = json.loads(self.p.run("runs", "t", "--json", env=self.env).stdout)["runs"]
        self.assertEqual(runs[0]["status"], "partial")
        # The sync-level setting replaced the project-wide one.
        self.assertEqual(self.pg.psql("SELECT to_regclass('health.sync_runs') IS NULL", db=self.wh), [["t"]])


class SqliteWriteBackTest(unittest.TestCase):
    def test_sqlite_warehouse_write_back(self):
        p = Project("""version: 1
warehouses:
  local: {type: sqlite, path: warehouse.db}
models:
  users:
    warehouse: local
    sql: SELECT id, email, ltv FROM users
    primary_key: id
destinations:
  out: {type: file, path: out.jsonl}
syncs:
  s:
    model: users
    destination: out
    match: {user_id: id}
    fields: {email: email, ltv: ltv}
    write_back: {warehouse: local}
""")
        try:
            users_table(p, 50)
            p.sql("INSERT INTO users (id, email) VALUES (NULL, 'nokey@example.com')")
            for _ in range(2):
                r = p.run("run", "s")
                self.assertEqual(r.returncode, 1, r.stderr)  # the NULL key is rejected
            runs = json.loads(p.run("runs", "s", "--json").stdout)["runs"]
            rows = p.query("SELECT run_id, sync, model, destination, status, duration_ms, "
                           + ", ".join(COUNTS) + " FROM backflow_sync_runs ORDER BY run_id DESC")
            self.assertEqual(len(rows), 2)
            for run, row in zip(runs, rows):
                self.assertEqual(list(row[:5]), [run["id"], "s", "users", "out", run["status"]])
                self.assertEqual(row[5], run["duration_ms"])
                self.assertEqual(list(row[6:]), [run[c] for c in COUNTS])
            errs = p.query("SELECT run_id, key_hash, column_name, reason FROM backflow_sync_errors ORDER BY run_id")
            self.assertEqual([e[0] for e in errs], [runs[1]["id"], runs[0]["id"]])
            self.assertEqual(errs[0][2], "id")
            self.assertIn("NULL", errs[0][3])
        finally:
            p.cleanup()


if __name__ == "__main__":
    unittest.main()
