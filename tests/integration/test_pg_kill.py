"""Killing the PostgreSQL warehouse in the middle of a run (pg_ctl stop -m
immediate): the run stops with exit 3 and a clear message, and the run after
the restart completes with nothing lost or duplicated. Write-back catches up
on the failed run once the warehouse is back."""
import json
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgredis  # noqa: E402
from bfhelp import BIN, Project  # noqa: E402

N = 3000


class PgKillTest(unittest.TestCase):
    def setUp(self):
        self.pg = pgredis.PgServer().start()
        self.pg.psql("CREATE TABLE users (id bigint PRIMARY KEY, email text, ltv numeric)")
        self.pg.psql(f"INSERT INTO users SELECT i, 'p' || i || '@example.com', i * 2"
                     f" FROM generate_series(1, {N}) i")
        # pg_sleep makes the scan take a few seconds, so the kill lands mid-stream.
        self.p = Project(f"""version: 1
warehouses:
  pg: {{type: postgres, dsn: "${{PG_DSN}}"}}
write_back: {{warehouse: pg, schema: backflow}}
models:
  users:
    warehouse: pg
    sql: SELECT id, email, ltv, pg_sleep(0.002) AS pause FROM users ORDER BY id
    primary_key: id
destinations:
  out: {{type: file, path: out.jsonl}}
syncs:
  s:
    model: users
    destination: out
    match: {{user_id: id}}
    fields: {{email: email, ltv: ltv}}
    batch_size: 50
""")
        self.env = dict(os.environ, PG_DSN=self.pg.dsn())
        self.out = os.path.join(self.p.dir, "out.jsonl")

    def tearDown(self):
        self.pg.destroy()
        self.p.cleanup()

    def lines(self):
        try:
            with open(self.out) as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def test_kill_mid_run_then_resume(self):
        proc = subprocess.Popen([BIN, "-p", self.p.dir, "run", "s"], env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            pgredis.wait_until(lambda: len(self.lines()) >= 300 or proc.poll() is not None, 60,
                               "the first records at the destination")
            self.assertIsNone(proc.poll(), "the run finished before the kill: make the model slower")
            self.pg.stop("immediate")
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.assertEqual(proc.returncode, 3, err)
        self.assertIn("model 'users'", err)
        self.assertIn("warehouse 'pg'", err)
        self.assertIn("connection lost", err)
        self.assertNotIn(pgredis.PG_PASSWORD, out + err)
        sent_before = len(self.lines())
        self.assertGreater(sent_before, 0)
        self.assertLess(sent_before, N)

        self.pg.start()
        r = self.p.run("run", "s", env={"PG_DSN": self.pg.dsn()})
        self.assertEqual(r.returncode, 0, r.stderr)
        ids = [rec["key"]["user_id"] for rec in self.lines()]
        self.assertEqual(len(ids), N, "a record was sent twice or not at all")
        self.assertEqual(sorted(ids), list(range(1, N + 1)))

        runs = json.loads(self.p.run("runs", "s", "--json", env={"PG_DSN": self.pg.dsn()}).stdout)["runs"]
        self.assertEqual([x["status"] for x in runs], ["succeeded", "failed"])
        self.assertEqual(runs[0]["added"] + runs[1]["added"], N)
        # Write-back failed during the outage and caught up afterwards.
        rows = self.pg.psql("SELECT run_id, status, added, rows_read, error IS NOT NULL"
                            " FROM backflow.sync_runs ORDER BY run_id")
        self.assertEqual(rows, [[str(runs[1]["id"]), "failed", str(runs[1]["added"]),
                                 str(runs[1]["rows_read"]), "t"],
                                [str(runs[0]["id"]), "succeeded", str(runs[0]["added"]),
                                 str(runs[0]["rows_read"]), "f"]])
        self.assertNotIn(pgredis.PG_PASSWORD, self.pg.psql("SELECT error FROM backflow.sync_runs"
                                                           " WHERE status = 'failed'")[0][0])


class PgDestinationKillTest(unittest.TestCase):
    """The PostgreSQL destination goes away mid-run: the run reconnects with
    backoff, then stops with exit 4 (destination unavailable); after the
    restart the next run completes and the table holds exactly the model."""

    def setUp(self):
        self.wh = pgredis.shared_pg()
        self.db = self.wh.create_db("wh")
        self.wh.psql(f"CREATE TABLE users (id bigint PRIMARY KEY, email text);"
                     f" INSERT INTO users SELECT i, 'p' || i FROM generate_series(1, {N}) i", db=self.db)
        self.dest = pgredis.PgServer().start()
        self.p = Project(f"""version: 1
warehouses:
  pg: {{type: postgres, dsn: "${{PG_DSN}}"}}
models:
  users:
    warehouse: pg
    sql: SELECT id, email, pg_sleep(0.002) AS pause FROM users ORDER BY id
    primary_key: id
destinations:
  table: {{type: postgres, dsn: "{self.dest.dsn()}", table: copy, create_table: true,
          max_retries: 2, retry_base: 100ms}}
syncs:
  s:
    model: users
    destination: table
    mode: mirror
    match: {{user_id: id}}
    fields: {{email: email}}
    batch_size: 50
""")
        self.env = {"PG_DSN": self.wh.dsn(self.db)}

    def tearDown(self):
        self.dest.destroy()
        self.p.cleanup()

    def count(self):
        try:
            return int(self.dest.psql("SELECT count(*) FROM copy")[0][0])
        except RuntimeError:
            return 0

    def test_destination_killed_mid_run(self):
        proc = subprocess.Popen([BIN, "-p", self.p.dir, "run", "s"], env=dict(os.environ, **self.env),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            pgredis.wait_until(lambda: self.count() >= 200 or proc.poll() is not None, 60, "rows at the destination")
            self.assertIsNone(proc.poll(), "the run finished before the kill")
            self.dest.stop("immediate")
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.assertEqual(proc.returncode, 4, err)
        self.assertIn("destination 'table'", err)
        self.assertNotIn(pgredis.PG_PASSWORD, out + err)
        self.dest.start()
        # Delete some rows meanwhile: mirror must remove them too.
        self.wh.psql("DELETE FROM users WHERE id % 100 = 0", db=self.db)
        r = self.p.run("run", "s", env=self.env)
        self.assertEqual(r.returncode, 0, r.stderr)
        got = self.dest.psql("SELECT user_id, email FROM copy ORDER BY user_id")
        want = self.wh.psql("SELECT id, email FROM users ORDER BY id", db=self.db)
        self.assertEqual(got, want)


if __name__ == "__main__":
    unittest.main()
