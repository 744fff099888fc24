"""coordinator: {warehouse: pg} (docs/scale.md): three `backflow serve`
workers share one schedule through real PostgreSQL. 50 syncs on a short
interval; one worker is SIGKILLed while it holds leases. Every scheduled
run (sync, instant) happens exactly once, the killed worker's runs are
resumed by another after its lease expires, nothing is lost, and every
worker's API shows every worker's runs.

PostgreSQL comes from pgredis; if it cannot be started the test fails."""
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgredis  # noqa: E402
from bfhelp import Project  # noqa: E402
from test_serve_support import TOKEN, Server, wait_for  # noqa: E402

SYNCS = 50
EVERY_S = 4
ROWS = 20


def config(dsn, out_dir):
    syncs = "".join(
        f"  s{i}: {{model: users, destination: d{i}, match: {{user_id: id}}, fields: {{v: v}},"
        f" schedule: {{every: {EVERY_S}s}}, state: warehouse}}\n" for i in range(SYNCS))
    dests = "".join(f"  d{i}: {{type: file, path: {out_dir}/s{i}.jsonl}}\n" for i in range(SYNCS))
    return f"""version: 1
secret: "coordinator-test-secret-0123456789"
server: {{listen: "127.0.0.1:8420", token: "{TOKEN}"}}
coordinator: {{warehouse: pg, lease: 3s, runners: 4}}
warehouses:
  pg: {{type: postgres, dsn: "{dsn}"}}
models:
  users: {{warehouse: pg, sql: "SELECT id, v FROM users", primary_key: id}}
destinations:
{dests}syncs:
{syncs}"""


class CoordinatorTest(unittest.TestCase):
    def setUp(self):
        self.pg = pgredis.shared_pg()
        self.db = self.pg.create_db("coord")
        self.psql(f"CREATE TABLE users (id bigint PRIMARY KEY, v bigint);"
                  f" INSERT INTO users SELECT i, 0 FROM generate_series(1, {ROWS}) i")
        self.out_dir = tempfile.mkdtemp(prefix="bf-coord-out-")
        text = config(self.pg.dsn(self.db), self.out_dir)
        self.projects = [Project(text) for _ in range(3)]
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            if s.proc.poll() is None:
                s.kill()
        for p in self.projects:
            p.cleanup()
        shutil.rmtree(self.out_dir, ignore_errors=True)

    def psql(self, sql):
        return self.pg.psql(sql, db=self.db)

    def test_validate_requires_warehouse_state(self):
        p = self.projects[0]
        p.write_config(config(self.pg.dsn(self.db), self.out_dir).replace(
            "  s3: {model: users, destination: d3, match: {user_id: id}, fields: {v: v},"
            f" schedule: {{every: {EVERY_S}s}}, state: warehouse}}",
            "  s3: {model: users, destination: d3, match: {user_id: id}, fields: {v: v}}"))
        r = p.run("validate")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("sync 's3' is shared by the workers of 'coordinator'", r.stdout + r.stderr)
        self.assertIn("needs 'state: warehouse'", r.stdout + r.stderr)
        r = p.run("serve", "--listen", "127.0.0.1:0")
        self.assertEqual(r.returncode, 2, r.stderr)

    def test_trigger_on_one_worker_shows_on_another(self):
        text = config(self.pg.dsn(self.db), self.out_dir).replace(
            f" schedule: {{every: {EVERY_S}s}},", "")  # manual syncs: only triggers run them
        for p in self.projects[:2]:
            p.write_config(text)
        self.servers = [Server(p) for p in self.projects[:2]]
        status, _, body = self.servers[0].request("POST", "/api/syncs/s7/trigger")
        self.assertIn(status, (200, 202), body)
        runs = wait_for(lambda: self.servers[1].finished_runs("s7"), 30, "the run on worker 2")
        self.assertEqual([r["status"] for r in runs], ["succeeded"])
        self.assertEqual(runs[0]["counts"]["added"], ROWS)
        self.assertGreater(runs[0]["started_ms"], 0)
        self.assertEqual(self.servers[1].finished_runs("s8"), [])
        for s in self.servers:
            self.assertEqual(s.stop(), 0, s.log())

    def test_three_workers_one_killed_every_run_exactly_once(self):
        self.servers = [Server(p) for p in self.projects]
        pids = [s.proc.pid for s in self.servers]
        victim = self.servers[0]
        # Kill the first worker while it holds leases (runs in flight).
        wait_for(lambda: self.psql(f"SELECT count(*) FROM backflow.coord_runs WHERE state ="
                                   f" 'leased' AND worker LIKE '%:{pids[0]}'")[0][0] != "0",
                 30, "the first worker to lease runs")
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(timeout=10)
        victim._log.close()
        # What the dead worker still held (a run it finished between the check
        # above and the kill is not held any more).
        held = [r[0] for r in self.psql(f"SELECT id FROM backflow.coord_runs WHERE state ="
                                        f" 'leased' AND worker LIKE '%:{pids[0]}'")]
        killed_at_slot = int(time.time()) // EVERY_S
        self.psql("UPDATE users SET v = v + 1")
        # Two more instants under the two survivors, with a change to send.
        end_slot = killed_at_slot + 2
        wait_for(lambda: int(time.time()) // EVERY_S > end_slot, 3 * EVERY_S + 5, "two instants")
        self.psql("UPDATE users SET v = v + 10 WHERE id <= 5")
        # The first instant that starts after the change (a run of the current
        # one may have read the model before it).
        end_slot = int(time.time()) // EVERY_S + 1
        wait_for(lambda: self.psql(f"SELECT count(*) FROM backflow.coord_runs WHERE slot ="
                                   f" {end_slot} AND state = 'done'")[0][0] == str(SYNCS),
                 90, "every sync's run of the instant after the change")
        wait_for(lambda: self.psql(f"SELECT count(*) FROM backflow.coord_runs WHERE slot <="
                                   f" {end_slot} AND slot >= 0 AND state <> 'done'")[0][0] == "0",
                 90, "every run up to the last instant to finish")

        # Every worker's API shows every worker's runs (the survivors').
        # (Runs of later instants keep finishing meanwhile: compare those up to
        # the last instant.)
        done_s0 = {int(r[0]) for r in self.psql(f"SELECT id FROM backflow.coord_runs WHERE sync ="
                                                f" 's0' AND state = 'done' AND slot >= 0 AND slot"
                                                f" <= {end_slot}")}
        self.assertGreaterEqual(len(done_s0), 3)
        for s in self.servers[1:]:
            listed = {r["id"] for r in s.finished_runs("s0")}
            self.assertTrue(done_s0 <= listed, (done_s0, listed))
        for s in self.servers[1:]:
            self.assertEqual(s.stop(), 0, s.log())

        rows = self.psql(f"SELECT sync, slot, state, status, attempts, worker FROM"
                         f" backflow.coord_runs WHERE slot >= 0 AND slot <= {end_slot}")
        by_sync = {}
        for sync, slot, state, status, attempts, worker in rows:
            by_sync.setdefault(sync, []).append((int(slot), state, status, int(attempts), worker))
        self.assertEqual(len(by_sync), SYNCS)
        for sync, runs in by_sync.items():
            slots = sorted(r[0] for r in runs)
            # One row per instant, none missing between the first and the last.
            self.assertEqual(slots, list(range(slots[0], end_slot + 1)), sync)
            for slot, state, status, attempts, worker in runs:
                self.assertEqual((state, status), ("done", "succeeded"), (sync, slot, worker))
                self.assertFalse(worker.endswith(f":{pids[0]}") and attempts == 1 and
                                 slot >= killed_at_slot + 1, "the dead worker finished a run")
        # The runs the victim held were resumed by a survivor.
        for rid in held:
            state, attempts, worker = self.psql(f"SELECT state, attempts, worker FROM"
                                                f" backflow.coord_runs WHERE id = {rid}")[0]
            self.assertEqual(state, "done")
            self.assertGreaterEqual(int(attempts), 2)
            self.assertFalse(worker.endswith(f":{pids[0]}"), worker)

        # Executed exactly once: the survivors' own run logs hold as many
        # succeeded runs as the rows they finished. The victim may have
        # finished a run and died before recording it: that run went again
        # (at-least-once), at most once per runner thread it had.
        def done_by(pid, negate=False):
            op = "NOT LIKE" if negate else "LIKE"
            return len(self.psql(f"SELECT 1 FROM backflow.coord_runs WHERE state = 'done' AND"
                                 f" status = 'succeeded' AND worker {op} '%:{pid}'"))

        def executed(p):
            n = 0
            for i in range(SYNCS):
                r = p.run("runs", f"s{i}", "--json")
                self.assertEqual(r.returncode, 0, r.stderr)
                n += sum(1 for x in json.loads(r.stdout)["runs"] if x["status"] == "succeeded")
            return n

        self.assertEqual(executed(self.projects[1]) + executed(self.projects[2]),
                         done_by(pids[0], negate=True))
        extra = executed(self.projects[0]) - done_by(pids[0])
        self.assertGreaterEqual(extra, 0)
        self.assertLessEqual(extra, 4, "the killed worker ran more than its runners held")

        # Nothing lost: every sync's destination holds the last values.
        want = {int(i): int(v) for i, v in self.psql("SELECT id, v FROM users")}
        for i in range(SYNCS):
            last = {}
            with open(os.path.join(self.out_dir, f"s{i}.jsonl")) as f:
                for line in f:
                    rec = json.loads(line)
                    last[rec["key"]["user_id"]] = rec["fields"]["v"]
            self.assertEqual(last, want, f"s{i}")


if __name__ == "__main__":
    unittest.main()
