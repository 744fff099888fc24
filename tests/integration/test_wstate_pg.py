"""`state: warehouse` (design.md §10, docs/scale.md) on a real PostgreSQL:
the state lives in schema backflow of the model's warehouse, the plan is
one statement there and only added, changed and removed rows leave it.
The same accounting, mirror, PII and crash rules as local state.

PostgreSQL comes from pgredis (initdb + postgres on a free port). If it
cannot be started the tests fail: they never skip."""
import json
import os
import shutil
import signal
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgredis  # noqa: E402
from bfhelp import BIN, Project  # noqa: E402

SECRET = "wstate-test-secret-0123456789abcdef"
N = 1000


def config(dsn, mode="mirror", sql="SELECT id, email, plan, ltv FROM users", batch=100,
           secret=SECRET, extra=""):
    return f"""version: 1
secret: "{secret}"
warehouses:
  pg: {{type: postgres, dsn: "{dsn}"}}
models:
  users: {{warehouse: pg, sql: "{sql}", primary_key: id, pii: {{email: email}}}}
destinations:
  out: {{type: file, path: out.jsonl}}
syncs:
  s:
    model: users
    destination: out
    mode: {mode}
    match: {{user_id: id}}
    fields: {{email: email, ltv: ltv}}
    state: warehouse
    batch_size: {batch}
{extra}"""


class WarehouseStateBase(unittest.TestCase):
    def setUp(self):
        self.pg = pgredis.shared_pg()
        self.db = self.pg.create_db("ws")
        self.psql(f"CREATE TABLE users (id bigint, email text, plan text, ltv numeric);"
                  f" INSERT INTO users SELECT i, 'person' || i || '@example.com', 'free', i"
                  f" FROM generate_series(1, {N}) i")
        self.p = Project(config(self.pg.dsn(self.db)))
        self.out = os.path.join(self.p.dir, "out.jsonl")

    def tearDown(self):
        self.p.cleanup()

    def psql(self, sql):
        return self.pg.psql(sql, db=self.db)

    def lines(self):
        """Records at the destination; a line being written (read while the
        run appends, or cut by a SIGKILL) is not a record yet."""
        out = []
        try:
            with open(self.out) as f:
                for x in f:
                    try:
                        out.append(json.loads(x))
                    except ValueError:
                        pass
        except FileNotFoundError:
            pass
        return out

    def run_sync(self, *extra, env=None):
        r = self.p.run("run", "s", "--json", *extra, env=env)
        try:
            return r.returncode, json.loads(r.stdout)["runs"][0], r.stderr
        except (ValueError, KeyError, IndexError):
            raise AssertionError(f"exit {r.returncode}: {r.stdout!r} {r.stderr!r}")

    def state_rows(self):
        return self.psql("SELECT encode(key, 'hex'), encode(fp, 'hex'), flags,"
                         " coalesce(encode(ident, 'hex'), '') FROM backflow.sync_state"
                         " WHERE sync = 's'")


class AccountingTest(WarehouseStateBase):
    def test_add_change_remove_and_unmapped_columns(self):
        rc, run, err = self.run_sync()
        self.assertEqual(rc, 0, err)
        self.assertEqual((run["added"], run["changed"], run["removed"]), (N, 0, 0))
        self.assertEqual(len(self.lines()), N)
        self.assertEqual(len(self.state_rows()), N)
        self.assertTrue(all(r[2] == "1" for r in self.state_rows()), "every key acknowledged")

        # 10 mapped changes, 7 unmapped-only changes, 5 removed, 3 new.
        self.psql("UPDATE users SET ltv = ltv + 1000 WHERE id <= 10;"
                  " UPDATE users SET plan = 'pro' WHERE id BETWEEN 100 AND 106;"
                  " DELETE FROM users WHERE id BETWEEN 500 AND 504;"
                  " INSERT INTO users VALUES (5001, 'new1@example.com', 'free', 1),"
                  " (5002, 'new2@example.com', 'free', 2), (5003, NULL, 'free', 3)")
        before = len(self.lines())
        rc, run, err = self.run_sync()
        self.assertEqual(rc, 0, err)
        self.assertEqual((run["added"], run["changed"], run["removed"], run["rejected"]),
                         (3, 10, 5, 0))
        # Only what changed left the warehouse.
        self.assertEqual(run["rows_read"], 13)
        new = self.lines()[before:]
        ups = sorted(x["key"]["user_id"] for x in new if x["op"] == "upsert")
        dels = sorted(x["key"]["user_id"] for x in new if x["op"] == "delete")
        self.assertEqual(ups, list(range(1, 11)) + [5001, 5002, 5003])
        self.assertEqual(dels, [500, 501, 502, 503, 504])
        self.assertEqual(len(self.state_rows()), N - 5 + 3)

        rc, run, err = self.run_sync()
        self.assertEqual(rc, 0, err)
        self.assertEqual((run["rows_read"], run["added"], run["changed"], run["removed"]),
                         (0, 0, 0, 0))

        # plan agrees with run and changes nothing.
        self.psql("UPDATE users SET email = 'changed@example.com' WHERE id = 42")
        r = self.p.run("plan", "s", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        plan = json.loads(r.stdout)
        self.assertEqual((plan["added"], plan["changed"], plan["removed"]), (0, 1, 0))
        rc, run, err = self.run_sync()
        self.assertEqual((run["changed"], run["rows_read"]), (1, 1))

    def test_upsert_mode_keeps_removed_keys(self):
        self.p.write_config(config(self.pg.dsn(self.db), mode="upsert"))
        self.assertEqual(self.run_sync()[0], 0)
        self.psql("DELETE FROM users WHERE id <= 3")
        rc, run, err = self.run_sync()
        self.assertEqual(rc, 0, err)
        self.assertEqual(run["removed"], 0)
        self.assertFalse([x for x in self.lines() if x["op"] == "delete"])
        # Not mirror: the keys that left stay in state and are not read back.
        self.assertEqual(run["rows_read"], 0)
        self.assertEqual(len(self.state_rows()), N)
        # upsert keeps no identifiers: nothing sealed in the table
        self.assertTrue(all(r[3] == "" for r in self.state_rows()))

    def test_null_and_duplicate_keys_are_rejected(self):
        sql = ("SELECT id, email, plan, ltv FROM users UNION ALL SELECT 7, 'dup@example.com',"
               " 'free', 1 UNION ALL SELECT NULL, 'nokey@example.com', 'free', 1")
        self.p.write_config(config(self.pg.dsn(self.db), sql=sql))
        rc, run, err = self.run_sync()
        self.assertEqual(rc, 1, err)
        self.assertEqual(run["added"], N - 1 + 1)  # one row of key 7 is kept
        self.assertEqual(run["rejected"], 2)
        r = self.p.run("errors", "s", "--json")
        reasons = json.dumps(json.loads(r.stdout))
        self.assertIn("primary key is NULL", reasons)
        self.assertIn("duplicate primary key", reasons)
        self.assertNotIn("dup@example.com", reasons)
        self.assertNotIn("nokey@example.com", reasons)
        ids = [x["key"]["user_id"] for x in self.lines()]
        self.assertEqual(ids.count(7), 1)

    def test_no_plaintext_in_the_state_tables(self):
        self.assertEqual(self.run_sync()[0], 0)
        dump = subprocess.run(["pg_dump", "-h", self.pg.sock, "-p", str(self.pg.port), "-U",
                               "postgres", "-n", "backflow", "--data-only", self.db],
                              capture_output=True, text=True, check=True).stdout
        self.assertIn("COPY backflow.sync_state", dump)
        for i in (1, 17, 999):
            self.assertNotIn(f"person{i}@example.com", dump)
        self.assertNotIn("example.com", dump)
        self.assertNotIn(SECRET, dump)
        # Identifiers for mirror deletes are sealed, not written as they are.
        self.assertNotIn('"user_id"', dump)
        self.assertNotIn("757365725f6964", dump)  # hex of "user_id"
        # Nor anything locally: the local folder has a scratch state only.
        for path in self.p.state_files():
            with open(path, "rb") as f:
                self.assertNotIn(b"person1@example.com", f.read(), path)

    def test_another_secret_is_refused(self):
        self.assertEqual(self.run_sync()[0], 0)
        sent = len(self.lines())
        self.p.write_config(config(self.pg.dsn(self.db), secret="another-secret-0123456789abcd"))
        r = self.p.run("run", "s")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("another secret", r.stderr)
        # Another machine (a fresh state_dir) with the wrong secret: the
        # warehouse's own key check refuses it.
        shutil.rmtree(os.path.join(self.p.dir, ".backflow"))
        r = self.p.run("run", "s")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("another secret", r.stderr)
        self.assertIn("backflow.sync_state", r.stderr)
        self.assertEqual(len(self.lines()), sent, "nothing sent under the wrong secret")

    def test_reset_clears_the_warehouse_state(self):
        self.assertEqual(self.run_sync()[0], 0)
        r = self.p.run("reset", "s")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.state_rows(), [])
        rc, run, err = self.run_sync()
        self.assertEqual((rc, run["added"]), (0, N), err)
        # A reset is also how a sync starts over under another secret.
        self.p.write_config(config(self.pg.dsn(self.db), secret="another-secret-0123456789abcd"))
        self.assertEqual(self.p.run("run", "s").returncode, 2)
        # (Files keyed by the old secret on this machine are refused by every
        # command, reset included; a fresh machine has none.)
        shutil.rmtree(os.path.join(self.p.dir, ".backflow"))
        self.assertEqual(self.p.run("run", "s").returncode, 2)
        r = self.p.run("reset", "s")
        self.assertEqual(r.returncode, 0, r.stderr)
        rc, run, err = self.run_sync()
        self.assertEqual((rc, run["added"]), (0, N), err)

    def test_plan_before_the_first_run_creates_nothing(self):
        r = self.p.run("plan", "s", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["added"], N)
        self.assertEqual(self.psql("SELECT to_regclass('backflow.sync_state') IS NULL"), [["t"]])
        self.assertEqual(self.lines(), [])

    def test_second_runner_is_locked_out(self):
        # The advisory lock is PostgreSQL's: held by a psql session here, as
        # another worker on another machine would hold it.
        self.assertEqual(self.run_sync()[0], 0)
        holder = subprocess.Popen(
            ["psql", "-X", "-q", "-h", self.pg.sock, "-p", str(self.pg.port), "-U", "postgres",
             "-d", self.db], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            holder.stdin.write("SELECT pg_advisory_lock(hashtext('backflow.sync'), hashtext('s'));"
                               "\\echo locked\n")
            holder.stdin.flush()
            for line in holder.stdout:
                if line.strip() == "locked":
                    break
            r = self.p.run("run", "s")
            self.assertEqual(r.returncode, 5, r.stderr)
            self.assertIn("holds its lock", r.stderr)
        finally:
            holder.stdin.close()
            holder.wait(timeout=30)
        self.assertEqual(self.run_sync()[0], 0)

    def test_validate(self):
        r = self.p.run("validate")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.p.write_config(f"""version: 1
warehouses:
  local: {{type: sqlite, path: warehouse.db}}
models:
  users: {{warehouse: local, sql: "SELECT 1 AS id", primary_key: id}}
destinations:
  out: {{type: file, path: out.jsonl}}
syncs:
  s: {{model: users, destination: out, match: {{user_id: id}}, state: warehouse}}
""")
        self.p.sql("CREATE TABLE IF NOT EXISTS t (x)")
        r = self.p.run("validate")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("backflow.yml:9:", r.stdout + r.stderr)
        self.assertIn("'state: warehouse' needs a postgres warehouse", r.stdout + r.stderr)
        r = self.p.run("run", "s")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.p.write_config(config(self.pg.dsn(self.db)).replace("state: warehouse",
                                                                   "state: elsewhere"))
        r = self.p.run("validate")
        self.assertEqual(r.returncode, 2)
        self.assertIn("must be local or warehouse", r.stdout + r.stderr)


class CrashTest(WarehouseStateBase):
    def test_crash_after_push_resends_nothing_lost(self):
        for point in ("before-push:4", "after-push:4"):
            with self.subTest(point=point):
                r = self.p.run("run", "s", env={"BACKFLOW_CRASH_AT": point})
                self.assertEqual(r.returncode, -signal.SIGKILL, r.stderr)
                rc, run, err = self.run_sync()
                self.assertEqual(rc, 0, err)
                ids = {x["key"]["user_id"] for x in self.lines()}
                self.assertEqual(ids, set(range(1, N + 1)), "a record was lost")
                rc, run, err = self.run_sync()
                self.assertEqual((run["added"], run["changed"], run["rows_read"]), (0, 0, 0))
                self.psql("TRUNCATE backflow.sync_state")
                os.unlink(self.out)

    def test_pending_key_that_left_the_model_is_deleted(self):
        # The 4th batch reached the destination, then the process died before
        # its acknowledgement was recorded: its keys are pending. They leave
        # the model; mirror must still delete them.
        r = self.p.run("run", "s", env={"BACKFLOW_CRASH_AT": "after-push:4"})
        self.assertEqual(r.returncode, -signal.SIGKILL, r.stderr)
        pushed = [x["key"]["user_id"] for x in self.lines()]
        self.assertEqual(len(pushed), 400)
        fourth = pushed[300:400]
        self.assertEqual(len(self.psql("SELECT 1 FROM backflow.sync_state WHERE flags & 2 <> 0")),
                         100)
        self.psql(f"DELETE FROM users WHERE id IN ({','.join(map(str, fourth))})")
        rc, run, err = self.run_sync()
        self.assertEqual(rc, 0, err)
        self.assertEqual(run["removed"], 100)
        dels = sorted(x["key"]["user_id"] for x in self.lines() if x["op"] == "delete")
        self.assertEqual(dels, sorted(fourth))
        self.assertEqual(len(self.state_rows()), N - 100)

    def test_sigkill_mid_run_resumes(self):
        # Enough rows that the kill lands while batches are still going out
        # (the plan statement's rows come at once; the sends take the time).
        big = 100000
        self.psql(f"INSERT INTO users SELECT i, 'person' || i || '@example.com', 'free', i"
                  f" FROM generate_series({N + 1}, {big}) i")
        self.p.write_config(config(self.pg.dsn(self.db), batch=50))
        proc = subprocess.Popen([BIN, "-p", self.p.dir, "run", "s"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        try:
            pgredis.wait_until(lambda: len(self.lines()) >= 5000 or proc.poll() is not None, 60,
                               "the first records at the destination")
            self.assertIsNone(proc.poll(), "the run ended before the kill")
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        before = len(self.lines())
        self.assertLess(before, big)
        rc, run, err = self.run_sync()
        self.assertEqual(rc, 0, err)
        ids = [x["key"]["user_id"] for x in self.lines()]
        self.assertEqual(set(ids), set(range(1, big + 1)))
        # At-least-once: only the batch in flight at the kill may go twice.
        self.assertLessEqual(len(ids) - big, 50)
        self.assertEqual(self.psql("SELECT count(*), min(flags), max(flags) FROM backflow.sync_state"),
                         [[str(big), "1", "1"]])
        rc, run, err = self.run_sync()
        self.assertEqual((run["added"], run["changed"], run["rows_read"]), (0, 0, 0))


if __name__ == "__main__":
    unittest.main()
