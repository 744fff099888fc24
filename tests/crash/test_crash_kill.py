"""Crash tests (issue 2 "Nothing lost", issue 7 crash harness, design.md §1.5).

A real `backflow run` (SQLite model -> webhook receiver) is killed with SIGKILL
at many points, then run again; the receiver must then hold exactly the model
(every key, latest values, nothing the model left), every record delivered at
least once, and a further run must push nothing (state neither behind nor
ahead of the destination).

  1. deterministic points: BACKFLOW_CRASH_AT=<point>:<n> (the binary kills
     itself) for before-push / after-push / journal-write over the first ~30
     batches, fold-base and fold-journal, also during the delete batches of a
     mirror sync, with the model changed between crash and recovery (rows
     changed, rows deleted whose records were delivered but not acknowledged,
     rows added, deleted rows brought back). Also: crashes in a row, a torn journal tail / stale state.bin.tmp, and
     with `durability: power` a power cut emulated from an strace of the killed
     run (append-only state files cut back to their last fsync);
  2. random points: a 100k-row mirror sync SIGKILLed by the test at seeded
     random times;
  3. disk full: RLIMIT_FSIZE (`ulimit -f`) so that a state file write fails
     with EFBIG in the middle of a run.

Measured per scenario and printed (stderr) / written to tests/artifacts/crash-results.md
when the whole class ran: kills, records lost, ghosts, redeliveries,
duplicated inserts, records pushed by the run after recovery.

"records lost": model keys the receiver lacks or holds with stale values after
recovery. "ghosts": receiver keys the model no longer has. "redeliveries":
records received during recovery beyond what a perfect recovery would send
(= keys whose final value the receiver did not already hold + deletes of keys
it did hold), i.e. the at-least-once overhead. "duplicated inserts": the
receiver's count of `insert` ops on a key it already held.

Run: python3 tests/integration/run.py --binary build/backflow -k test_crash -v
 or: cd tests/crash && python3 -m unittest test_crash_kill -v
"""
import os
import random
import re
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import bfhelp  # noqa: E402
from bfhelp import Project, WEBHOOK_SECRET, users_table  # noqa: E402
from webhook_receiver import Receiver, canonical_key  # noqa: E402

SYNC = "users_hook"
DET_ROWS = 3000
DET_BATCH = 100
DET_NS = (1, 2, 3, 5, 8, 13, 21, 30)
RAND_ROWS = 100_000
RAND_BATCH = 500
RAND_KILLS = 10
RAND_SEED = int(os.environ.get("BACKFLOW_CRASH_SEED", "20240607"))
# Written where git does not look, so running the tests leaves the tree clean;
# tests/crash/RESULTS.md is a committed copy of one run (docs/reliability.md).
RESULTS_MD = os.environ.get("BACKFLOW_CRASH_RESULTS") or os.path.join(
    HERE, "..", "artifacts", "crash-results.md")


def config(url, mode, batch_size):
    return f"""version: 1
warehouses:
  local: {{type: sqlite, path: warehouse.db}}
models:
  users:
    warehouse: local
    sql: SELECT id, email, first_name, plan, ltv FROM users
    primary_key: id
destinations:
  hook:
    type: webhook
    url: "{url}"
    signing_secret: "{WEBHOOK_SECRET}"
    timeout: 10s
    max_retries: 2
    retry_base: 50ms
syncs:
  {SYNC}:
    model: users
    destination: hook
    mode: {mode}
    batch_size: {batch_size}
    match: {{user_id: id}}
    fields: {{email: email, first_name: first_name, plan: plan, ltv: ltv}}
"""


def model_records(project):
    """What the receiver must hold: canonical key -> fields, from the model."""
    con = sqlite3.connect(project.db_path)
    try:
        rows = con.execute("SELECT id, email, first_name, plan, ltv FROM users").fetchall()
    finally:
        con.close()
    return {canonical_key({"user_id": i}): {"email": e, "first_name": f, "plan": p, "ltv": l}
            for i, e, f, p, l in rows}


def compare(store, model):
    """(missing, stale, ghosts) key lists."""
    missing = [k for k in model if k not in store]
    stale = [k for k, v in model.items() if k in store and store[k] != v]
    ghosts = [k for k in store if k not in model]
    return missing, stale, ghosts


def ideal_sends(before, after):
    """Records a perfect engine sends to take a receiver holding `before` to `after`."""
    n = sum(1 for k, v in after.items() if before.get(k) != v)
    return n + sum(1 for k in before if k not in after)


def key_id(k):
    return int(k.split(":")[1].rstrip("}"))


def pushed(doc):
    run = doc["runs"][0]
    return run["added"] + run["changed"] + run["removed"]


def fsize_limit(nbytes):
    def pre():
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() fails with EFBIG instead
    return pre


class PowerCut:
    """Emulates a power cut at the moment a traced process was killed: each
    append-only file in `names` keeps what it held before the run plus the bytes
    appended up to its last fsync/fdatasync (strace -f -y output). A file the run
    replaced by rename (write_atomic: tmp, fsync, rename) is left as it is."""
    SYSCALLS = ("write", "pwrite64", "writev", "fsync", "fdatasync", "rename", "renameat",
                "renameat2", "ftruncate", "truncate", "openat")
    LINE = re.compile(r"^(\d+)\s+(\w+)\((.*)\)\s+=\s+(-?\d+)")

    def __init__(self, folder, names):
        self.paths = {os.path.join(folder, n): n for n in names}
        self.before = {path: os.path.getsize(path) for path in self.paths if os.path.exists(path)}

    def apply(self, trace):
        written = dict.fromkeys(self.paths, 0)
        durable = dict.fromkeys(self.paths, 0)
        replaced, dsync = set(), set()
        unfinished = {}
        with open(trace) as f:
            for line in f:
                line = line.rstrip("\n")
                pid = line.split(None, 1)[0]
                if line.endswith("<unfinished ...>"):
                    unfinished[pid] = line[: -len("<unfinished ...>")].rstrip()
                    continue
                m = re.match(r"^(\d+)\s+<\.\.\. \w+ resumed>(.*)$", line)
                if m:
                    line = unfinished.pop(m.group(1), "") + m.group(2)
                m = self.LINE.match(line)
                if not m:
                    continue
                call, args, ret = m.group(2), m.group(3), int(m.group(4))
                fd_path = re.match(r"(?:AT_FDCWD|\d+)<([^>]*)>", args)
                path = fd_path.group(1) if fd_path else None
                if call == "openat":
                    target = re.search(r'= \d+<([^>]*)>$', line)
                    if target and target.group(1) in self.paths and re.search(r"O_D?SYNC", args):
                        dsync.add(target.group(1))
                elif call in ("write", "pwrite64", "writev") and path in self.paths and ret > 0:
                    written[path] += ret
                    if path in dsync:
                        durable[path] = written[path]
                elif call in ("fsync", "fdatasync") and path in self.paths and ret == 0:
                    durable[path] = written[path]
                elif call.startswith("rename"):
                    dst = re.findall(r'"([^"]*)"', args)[-1:]
                    if dst and dst[0] in self.paths:
                        replaced.add(dst[0])
                elif call in ("ftruncate", "truncate"):
                    name = path or (re.findall(r'"([^"]*)"', args) or [None])[0]
                    if name in self.paths:
                        raise AssertionError(f"power-cut emulation: {name} was truncated in the run")
        lost = {}
        for path, name in self.paths.items():
            if path in replaced or not os.path.exists(path):
                continue
            keep = self.before.get(path, 0) + durable[path]
            size = os.path.getsize(path)
            lost[name] = max(size - keep, 0)
            if size > keep:
                os.truncate(path, keep)
        return lost


class CrashKillTest(unittest.TestCase):
    rows = []          # result table rows (dicts)
    groups_done = set()
    started = None

    @classmethod
    def setUpClass(cls):
        cls.started = time.monotonic()
        cls.rows = []
        cls.groups_done = set()
        cls.rec = Receiver.start(WEBHOOK_SECRET, max_batch=1000)
        # Run a private copy of the binary: a concurrent `make` may replace build/backflow
        # while these tests run (and a copy cannot change under a 90 s test either).
        cls.bin_dir = tempfile.mkdtemp(prefix="bf-crash-bin-")
        cls.saved_bin = bfhelp.BIN
        bfhelp.BIN = os.path.join(cls.bin_dir, "backflow")
        shutil.copy2(cls.saved_bin, bfhelp.BIN)

    @classmethod
    def tearDownClass(cls):
        cls.rec.stop()
        bfhelp.BIN = cls.saved_bin
        shutil.rmtree(cls.bin_dir, ignore_errors=True)
        elapsed = time.monotonic() - cls.started
        table = cls._table()
        sys.stderr.write("\n" + table + f"\n(crash tests: {elapsed:.1f}s)\n")
        if cls.groups_done >= {n for n in dir(cls) if n.startswith("test_")}:  # whole class ran
            os.makedirs(os.path.dirname(RESULTS_MD), exist_ok=True)
            with open(RESULTS_MD, "w") as f:
                f.write("# Crash test results\n\n"
                        "Written by `tests/crash/test_crash_kill.py` (run: `python3 tests/integration/"
                        "run.py --binary build/backflow -k test_crash -v`); every count is measured "
                        f"in that run (random seed {RAND_SEED}, {elapsed:.0f} s on this machine).\n\n"
                        "- **records lost**: model keys missing at the receiver or held with stale "
                        "values after the recovery run (must be 0).\n"
                        "- **ghosts**: keys the receiver holds that left the model (must be 0; "
                        "includes records delivered-but-unacknowledged whose key then left the model).\n"
                        "- **redeliveries**: records received during recovery beyond what a perfect "
                        "recovery would send (at-least-once overhead; at most the batch in flight).\n"
                        "- **dup inserts**: the receiver's count of `insert` ops on a key it already "
                        "held (0 expected for upsert/mirror; the insert-mode row shows what "
                        "at-least-once means for inserts).\n"
                        "- **next run pushed**: records pushed by a run after recovery (must be 0).\n\n")
                f.write(table + "\n")
                errors = [r for r in cls.rows if r.get("error")]
                if errors:
                    f.write("\nDisk-full runs, exit status and stderr:\n\n")
                    for r in errors:
                        f.write(f"- {r['scenario']}: `{r['error']}`\n")

    @classmethod
    def _table(cls):
        head = ("scenario", "kills", "records lost", "ghosts", "redeliveries", "dup inserts",
                "next run pushed", "result")
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in cls.rows:
            lines.append("| " + " | ".join(str(r.get(h, "")) for h in head) + " |")
        tot = {h: sum(r[h] for r in cls.rows if isinstance(r.get(h), int))
               for h in ("kills", "records lost", "ghosts", "redeliveries", "dup inserts")}
        fails = sum(1 for r in cls.rows if r.get("result") != "ok")
        lines.append(f"| **total ({len(cls.rows)} scenarios)** | {tot['kills']} | {tot['records lost']} | "
                     f"{tot['ghosts']} | {tot['redeliveries']} | {tot['dup inserts']} | | "
                     f"{'ok' if not fails else f'{fails} FAILED'} |")
        return "\n".join(lines)

    # ---- helpers -----------------------------------------------------------
    def setUp(self):
        self.rec.control(reset=True, clear_faults=True)
        self.t0 = time.monotonic()
        self.groups_done.add(self._testMethodName)

    def tearDown(self):
        sys.stderr.write(f"[{self._testMethodName}: {time.monotonic() - self.t0:.1f}s] ")

    def project(self, nrows, mode="mirror", batch=DET_BATCH):
        p = Project(config(self.rec.url, mode, batch))
        self.addCleanup(p.cleanup)
        users_table(p, nrows)
        return p

    def quiesce(self, timeout=10.0):
        """Waits until every request the receiver has read was applied."""
        deadline = time.monotonic() + timeout
        while True:
            c = self.rec.counters()
            if c["requests"] == c["applied_requests"]:
                return c
            if time.monotonic() > deadline:
                self.fail(f"receiver did not settle: {c}")
            time.sleep(0.005)

    def run_ok(self, p, what):
        code, doc, err = p.run_json("run", SYNC)
        self.assertEqual(code, 0, f"{what}: exit {code}: {doc} {err}")
        return doc

    def check_recovered(self, p, row, label):
        """store == model after a recovery; fills row; returns the model."""
        model = model_records(p)
        store = self.rec.store()
        missing, stale, ghosts = compare(store, model)
        row["records lost"] = len(missing) + len(stale)
        row["ghosts"] = len(ghosts)
        self.assertFalse(missing or stale or ghosts,
                         f"{label}: receiver != model: {len(missing)} missing (e.g. {missing[:5]}), "
                         f"{len(stale)} stale (e.g. {[(k, store[k], model[k]) for k in stale[:3]]}), "
                         f"{len(ghosts)} ghosts (e.g. {ghosts[:5]})")
        return model

    def check_next_run_pushes_nothing(self, p, row, label):
        before = self.quiesce()["records"]
        doc = self.run_ok(p, f"{label}: run after recovery")
        sent = self.quiesce()["records"] - before
        row["next run pushed"] = max(pushed(doc), sent)
        self.assertEqual((pushed(doc), sent), (0, 0), f"{label}: run after recovery pushed {doc}")

    def record(self, row):
        row.setdefault("result", "FAIL")
        self.rows.append(row)

    # ---- 1. deterministic crash points ---------------------------------------
    def crash_case(self, point, n, mutate, mode="mirror"):
        """Crash run at point:n, optional model change, recovery, checks."""
        label = f"{mode} {point}:{n}" + (" +model changed" if mutate else "")
        row = {"scenario": label, "kills": 0}
        self.record(row)
        self.rec.control(reset=True)
        p = self.project(DET_ROWS, mode)
        crash = p.run("run", SYNC, env={"BACKFLOW_CRASH_AT": f"{point}:{n}"})
        self.assertEqual(crash.returncode, -signal.SIGKILL,
                         f"{label}: expected death by SIGKILL: {crash.stdout} {crash.stderr}")
        row["kills"] = 1
        self.quiesce()
        snap = self.rec.store()

        # Where exactly did it die? Batch b covers ids (b-1)*100+1 .. b*100 (scan order).
        if point in ("before-push", "after-push"):
            inflight, delivered = n, n if point == "after-push" else n - 1
        elif point == "journal-write":  # 2 journal writes per batch: PENDING, then ACK
            inflight = (n + 1) // 2
            delivered = inflight if n % 2 == 0 else inflight - 1
        else:
            inflight = delivered = DET_ROWS // DET_BATCH
        expect = {canonical_key({"user_id": i}) for i in range(1, delivered * DET_BATCH + 1)}
        self.assertEqual(set(snap), expect, f"{label}: receiver after the crash holds "
                         f"{len(snap)} records, expected batches 1..{delivered}")

        if mutate:
            lo = (inflight - 1) * DET_BATCH
            # keys of the batch in flight (delivered-but-unacked for after-push and an ACK
            # journal-write; pending-but-unsent for before-push and a PENDING journal-write)
            gone = [lo + 1, lo + 17, lo + 50, lo + 99, lo + 100]
            if lo > DET_BATCH:
                gone.append(7)  # acknowledged long ago
            gone.append(DET_ROWS - 1)  # never sent
            if mode == "mirror":  # other modes never delete at the destination
                p.sql(f"DELETE FROM users WHERE id IN ({','.join(map(str, gone))})")
            p.sql("UPDATE users SET plan = 'pro', ltv = ltv + 1000 WHERE id % 97 = 0 OR id = ?",
                  (lo + 2,))
            users_table(p, 10, start=DET_ROWS + 1)

        model = model_records(p)
        c0 = self.quiesce()["records"]
        doc = self.run_ok(p, f"{label}: recovery")
        c = self.quiesce()
        row["redeliveries"] = (c["records"] - c0) - ideal_sends(snap, model)
        row["dup inserts"] = c["duplicate_inserts"]
        self.check_recovered(p, row, label)
        self.check_next_run_pushes_nothing(p, row, label)

        # The run log knows the killed run.
        code, runs, _ = p.run_json("runs", SYNC)
        self.assertEqual(code, 0)
        self.assertIn("crashed", [r["status"] for r in runs["runs"]], f"{label}: {runs}")
        self.assertGreaterEqual(row["redeliveries"], 0, f"{label}: {doc}")
        self.assertLessEqual(row["redeliveries"], DET_BATCH,
                             f"{label}: recovery resent more than the batch in flight")
        if mode != "insert":
            self.assertEqual(row["dup inserts"], 0, label)
        row["result"] = "ok"

    def test_1_deterministic_points(self):
        cases = []
        for point in ("before-push", "after-push"):
            for n in DET_NS:
                cases.append((point, n, point == "after-push" or n in (3, 13, 30)))
        for n in DET_NS + (59, 60):
            cases.append(("journal-write", n, n in (2, 3, 8, 13, 30, 60)))
        cases += [("fold-base", 1, False), ("fold-base", 1, True),
                  ("fold-journal", 1, False), ("fold-journal", 1, True)]
        for point, n, mutate in cases:
            with self.subTest(point=point, n=n, mutate=mutate):
                self.crash_case(point, n, mutate)
        with self.subTest(mode="upsert"):
            self.crash_case("after-push", 5, True, mode="upsert")
        with self.subTest(mode="insert"):
            self.crash_case("after-push", 3, False, mode="insert")

    # ---- 1b. crash while a mirror sync sends its deletes -----------------------
    def delete_phase_case(self, point, n):
        label = f"mirror deletes {point}:{n} +deleted rows back"
        row = {"scenario": label, "kills": 0}
        self.record(row)
        self.rec.control(reset=True)
        p = self.project(DET_ROWS, "mirror")
        self.run_ok(p, f"{label}: first sync")
        p.sql("DELETE FROM users WHERE id % 12 = 0")  # 250 deletes: batches of 100, 100, 50
        before = self.rec.store()
        crash = p.run("run", SYNC, env={"BACKFLOW_CRASH_AT": f"{point}:{n}"})
        self.assertEqual(crash.returncode, -signal.SIGKILL, f"{label}: {crash.stdout} {crash.stderr}")
        row["kills"] = 1
        self.quiesce()
        snap = self.rec.store()
        deleted_at_receiver = sorted(key_id(k) for k in before if k not in snap)
        self.assertTrue(deleted_at_receiver, f"{label}: no delete reached the receiver")
        # Bring back some rows whose delete was delivered (acknowledged or not), with
        # new values for half of them; change a few other rows.
        back = deleted_at_receiver[::10]
        con = sqlite3.connect(p.db_path)
        con.executemany("INSERT INTO users VALUES (?,?,?,?,?,?)",
                        [(i, f"person{i}@example.com", f"Name{i}", "free" if j % 2 else "back",
                          i * 1.5, "n") for j, i in enumerate(back)])
        con.commit()
        con.close()
        p.sql("UPDATE users SET first_name = first_name || 'x' WHERE id % 101 = 0")
        model = model_records(p)
        c0 = self.quiesce()["records"]
        self.run_ok(p, f"{label}: recovery")
        c = self.quiesce()
        row["redeliveries"] = (c["records"] - c0) - ideal_sends(snap, model)
        row["dup inserts"] = c["duplicate_inserts"]
        self.check_recovered(p, row, label)
        self.check_next_run_pushes_nothing(p, row, label)
        self.assertGreaterEqual(row["redeliveries"], 0)
        self.assertLessEqual(row["redeliveries"], DET_BATCH)
        self.assertEqual(row["dup inserts"], 0)
        row["result"] = "ok"

    def test_2_delete_phase(self):
        # journal-write in that run: 1 PENDING batch 1, 2 ACK batch 1, 3 PENDING batch 2, ...
        for point, n in (("before-push", 2), ("after-push", 1), ("after-push", 2),
                         ("journal-write", 4), ("journal-write", 5), ("after-push", 3)):
            with self.subTest(point=point, n=n):
                self.delete_phase_case(point, n)

    # ---- 1c. crashes in a row, and torn files --------------------------------
    def test_2b_crash_chain(self):
        # Several crashed runs in a row (each a recovery of the one before), the
        # model changing between them, then one clean run.
        chain = ("after-push:5", "journal-write:4", "before-push:2", "after-push:1", "fold-base:1")
        label = "mirror crash chain " + ", ".join(chain) + " +model changed"
        row = {"scenario": label, "kills": 0, "redeliveries": 0}
        self.record(row)
        self.rec.control(reset=True)
        p = self.project(DET_ROWS, "mirror")
        snap, c0 = self.rec.store(), self.quiesce()["records"]
        for step, spec in enumerate(chain + (None,)):
            model = model_records(p)
            if spec:
                run = p.run("run", SYNC, env={"BACKFLOW_CRASH_AT": spec})
                self.assertEqual(run.returncode, -signal.SIGKILL, f"{spec}: {run.stdout} {run.stderr}")
                row["kills"] += 1
            else:
                self.run_ok(p, f"{label}: recovery")
            c = self.quiesce()["records"]
            after = self.rec.store()
            # records beyond the progress they made towards this run's model
            row["redeliveries"] += (c - c0) - (ideal_sends(snap, model) - ideal_sends(after, model))
            snap, c0 = after, c
            if spec:  # between runs: delete some delivered records, change and add rows
                ids = sorted(key_id(k) for k in after)[-3:]
                if ids:
                    p.sql(f"DELETE FROM users WHERE id IN ({','.join(map(str, ids))})")
                p.sql(f"UPDATE users SET ltv = ltv + 1 WHERE id % 50 = {step}")
                users_table(p, 5, start=DET_ROWS + 1 + 5 * step)
        row["dup inserts"] = self.rec.counters()["duplicate_inserts"]
        self.check_recovered(p, row, label)
        self.check_next_run_pushes_nothing(p, row, label)
        self.assertLessEqual(row["redeliveries"], DET_BATCH * len(chain))
        self.assertEqual(row["dup inserts"], 0)
        row["result"] = "ok"

    def test_2c_torn_files(self):
        # What a crash of the machine (not only the process) can leave: a torn last
        # journal record plus junk after it, a half-written state.bin.tmp.
        label = "mirror journal-write:7 on a 2nd run, then journal tail torn + junk, stale state.bin.tmp"
        row = {"scenario": label, "kills": 0}
        self.record(row)
        self.rec.control(reset=True)
        p = self.project(DET_ROWS, "mirror")
        self.run_ok(p, "first sync")
        p.sql("UPDATE users SET plan = 'gold' WHERE id % 3 = 0")  # 1000 changes, 10 batches
        crash = p.run("run", SYNC, env={"BACKFLOW_CRASH_AT": "journal-write:7"})
        self.assertEqual(crash.returncode, -signal.SIGKILL, f"{crash.stdout} {crash.stderr}")
        row["kills"] = 1
        self.quiesce()
        snap, model = self.rec.store(), model_records(p)
        sdir = os.path.join(p.dir, ".backflow", "syncs", SYNC)
        journal = os.path.join(sdir, "journal.bin")
        size = os.path.getsize(journal)
        # header + PENDING/ACK x 3 batches of 100 (the 4th PENDING write is where it died)
        self.assertEqual(size, 32 + 6 * 100 * 32, "journal size after journal-write:7")
        with open(journal, "r+b") as f:
            f.truncate(size - 20)            # the last ACK record loses its tail
            f.seek(0, os.SEEK_END)
            f.write(b"\x5a" * 45)           # and junk follows (not a whole record's worth)
        with open(os.path.join(sdir, "state.bin"), "rb") as f:
            half = f.read(40000)
        with open(os.path.join(sdir, "state.bin.tmp"), "wb") as f:
            f.write(half)
        c0 = self.quiesce()["records"]
        self.run_ok(p, f"{label}: recovery")
        c = self.quiesce()
        row["redeliveries"] = (c["records"] - c0) - ideal_sends(snap, model)
        row["dup inserts"] = c["duplicate_inserts"]
        self.check_recovered(p, row, label)
        self.check_next_run_pushes_nothing(p, row, label)
        # Only the record whose ACK was torn may come again.
        self.assertIn(row["redeliveries"], (0, 1))
        row["result"] = "ok"

    # ---- 1d. power cut (durability: power) ------------------------------------
    def power_cut_case(self, point, n):
        label = f"durability power: {point}:{n} as a power cut (un-fsynced appends lost)"
        row = {"scenario": label, "kills": 0}
        self.record(row)
        self.rec.control(reset=True)
        p = self.project(DET_ROWS, "mirror")
        with open(os.path.join(p.dir, "backflow.yml"), "a") as f:
            f.write("durability: power\n")
        self.run_ok(p, "first sync")
        # 2750 changes (batches 1-28), then 250 deletes (batches 29-31)
        p.sql("UPDATE users SET plan = 'team'; DELETE FROM users WHERE id % 12 = 0")
        sdir = os.path.join(p.dir, ".backflow", "syncs", SYNC)
        cut = PowerCut(sdir, ("journal.bin", "vault.bin"))
        trace = os.path.join(p.dir, "strace.txt")
        env = dict(os.environ, BACKFLOW_CRASH_AT=f"{point}:{n}")
        crash = subprocess.run(["strace", "-f", "-qq", "-y", "-s", "0", "-o", trace, "-e",
                                "trace=" + ",".join(PowerCut.SYSCALLS), bfhelp.BIN, "-p", p.dir,
                                "run", SYNC], env=env, capture_output=True, text=True, timeout=120)
        self.assertEqual(crash.returncode, -signal.SIGKILL, f"{label}: {crash.stdout} {crash.stderr}")
        row["kills"] = 1
        self.quiesce()
        lost = cut.apply(trace)  # what the disk holds after the power cut
        row["scenario"] += f" [{', '.join(f'{k} -{v} B' for k, v in lost.items() if v) or 'nothing lost'}]"
        snap, model = self.rec.store(), model_records(p)
        c0 = self.quiesce()["records"]
        code, doc, err = p.run_json("run", SYNC)
        c = self.quiesce()
        row["redeliveries"] = (c["records"] - c0) - ideal_sends(snap, model)
        row["dup inserts"] = c["duplicate_inserts"]
        self.check_recovered(p, row, label)
        self.assertEqual(code, 0, f"{label}: recovery: exit {code}, {doc['runs'][0]['rejected']} rejected:"
                         f" {p.run('errors', SYNC).stdout.splitlines()[1:2]}")
        self.check_next_run_pushes_nothing(p, row, label)
        self.assertLessEqual(row["redeliveries"], DET_BATCH)
        row["result"] = "ok"

    def test_2d_power_cut(self):
        # journal-write: 2 per batch (PENDING fsynced before the send, ACK appended after
        # it without fsync); 57/58 = delete batch 1 (batch 29), 59 = PENDING of batch 30.
        for point, n in (("before-push", 5), ("after-push", 5), ("journal-write", 10),
                         ("journal-write", 11), ("after-push", 29), ("after-push", 30),
                         ("journal-write", 59), ("fold-base", 1), ("fold-journal", 1)):
            with self.subTest(point=point, n=n):
                self.power_cut_case(point, n)

    # ---- 2. random SIGKILLs from the outside ---------------------------------
    def test_3_random_kills(self):
        label = f"mirror {RAND_ROWS // 1000}k rows, SIGKILL at random times (seed {RAND_SEED})"
        row = {"scenario": label, "kills": 0, "redeliveries": 0}
        self.record(row)
        self.rec.control(reset=True)
        p = self.project(RAND_ROWS, "mirror", RAND_BATCH)
        t0 = time.monotonic()
        self.run_ok(p, "uninterrupted first sync")
        duration = time.monotonic() - t0
        model = self.check_recovered(p, {}, "first sync")
        rng = random.Random(RAND_SEED)
        next_id = RAND_ROWS + 1
        lost = ghosts = 0
        kill_log = []
        for i in range(RAND_KILLS):
            # Every row changes, so the killed run has a full run's work to do; some rows
            # leave the model (deletes), some arrive.
            ids = [key_id(k) for k in rng.sample(sorted(model), 200)]
            p.sql(f"UPDATE users SET ltv = ltv + 1, plan = 'p{i}' WHERE id % 7 = {i % 7};"
                  f"UPDATE users SET ltv = ltv + 1 WHERE id % 7 != {i % 7};"
                  f"DELETE FROM users WHERE id IN ({','.join(map(str, ids))})")
            users_table(p, 200, start=next_id)
            next_id += 200
            before, model = model, model_records(p)
            c0 = self.quiesce()["records"]
            delay = rng.uniform(0, duration)
            proc = subprocess.Popen([bfhelp.BIN, "-p", p.dir, "run", SYNC],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                proc.wait(timeout=delay)  # the random kill time is the point here
            except subprocess.TimeoutExpired:
                proc.kill()
            _, err = proc.communicate()
            killed = proc.returncode == -signal.SIGKILL
            self.assertTrue(killed or proc.returncode == 0, f"kill {i}: exit {proc.returncode} {err}")
            row["kills"] += killed
            self.quiesce()
            self.run_ok(p, f"recovery {i}")
            c = self.quiesce()
            sub = {}
            try:
                self.check_recovered(p, sub, f"recovery after kill {i} at {delay:.2f}s")
            finally:
                lost += sub.get("records lost", 0)
                ghosts += sub.get("ghosts", 0)
                row["records lost"], row["ghosts"] = lost, ghosts
            extra = (c["records"] - c0) - ideal_sends(before, model)
            kill_log.append(f"{delay:.2f}s{'' if killed else ' (finished first)'}: +{extra}")
            row["redeliveries"] += extra
            self.assertGreaterEqual(extra, 0)
            self.assertLessEqual(extra, RAND_BATCH, f"kill {i}: recovery resent more than a batch")
        row["dup inserts"] = self.rec.counters()["duplicate_inserts"]
        self.check_next_run_pushes_nothing(p, row, label)
        sys.stderr.write(f"\nrandom kills (uninterrupted run {duration:.2f}s), delay: redeliveries: "
                         + ", ".join(kill_log) + "\n")
        self.assertGreaterEqual(row["kills"], RAND_KILLS // 2, "most kills should land mid-run")
        self.assertEqual(row["dup inserts"], 0)
        row["result"] = "ok"

    # ---- 3. disk full ---------------------------------------------------------
    def disk_full_case(self, label, mode, limit, expect_file, prepare=None):
        row = {"scenario": f"disk full (RLIMIT_FSIZE {limit // 1024} KiB): {label}", "kills": 0}
        self.record(row)
        self.rec.control(reset=True)
        p = self.project(DET_ROWS, mode)
        if prepare:
            prepare(p)
        c0 = self.quiesce()["records"]
        before = self.rec.store()
        full = subprocess.run([bfhelp.BIN, "-p", p.dir, "run", SYNC], capture_output=True, text=True,
                              timeout=120, preexec_fn=fsize_limit(limit), restore_signals=False)
        self.assertGreater(full.returncode, 0,
                           f"{label}: expected a clean error exit, got {full.returncode}: {full.stderr}")
        state_dir = os.path.join(p.dir, ".backflow", "syncs", SYNC)
        self.assertIn(os.path.join(state_dir, expect_file), full.stderr, f"{label}: {full.stderr!r}")
        # strerror(EFBIG); SQLite (the vault was once vault.db) says "disk I/O error"
        self.assertRegex(full.stderr, "File too large|disk is full|disk I/O error", label)
        self.assertNotIn("BUG", full.stderr, label)
        self.assertLessEqual(len(full.stderr.strip().splitlines()), 2, f"{label}: {full.stderr!r}")
        row["error"] = f"exit {full.returncode}: " + full.stderr.strip().replace(p.dir, "<project>")
        snap = self.rec.store()
        model = model_records(p)
        mid = self.quiesce()["records"]
        self.assertGreater(mid - c0, 0, f"{label}: the limit should hit mid-run, after some pushes")
        self.run_ok(p, f"{label}: run with room again")
        c = self.quiesce()
        row["redeliveries"] = (c["records"] - mid) - ideal_sends(snap, model)
        row["dup inserts"] = c["duplicate_inserts"]
        self.check_recovered(p, row, label)
        self.check_next_run_pushes_nothing(p, row, label)
        self.assertGreaterEqual(row["redeliveries"], 0)
        self.assertLessEqual(row["redeliveries"], DET_BATCH)
        self.assertEqual(row["dup inserts"], 0)
        self.assertNotEqual(before, snap)
        row["result"] = "ok"

    def test_4_disk_full(self):
        def first_sync_then_change(p):
            self.run_ok(p, "first sync")
            p.sql("UPDATE users SET plan = 'pro' WHERE id % 30 = 0")  # 100 changes

        cases = [
            # journal: 32 B per PENDING and per ACK record -> full after ~15 of 30 batches
            ("journal append, upsert", "upsert", 100 * 1024, "journal.bin", None),
            # mirror keeps each identifier (encrypted) in the vault: it fills first
            ("vault, mirror", "mirror", 100 * 1024, "vault.", None),  # vault.bin (was vault.db)
            # 100 changes fit in the journal, the new state.bin (96 KiB) does not
            ("state fold, upsert", "upsert", 64 * 1024, "state.bin", first_sync_then_change),
        ]
        for label, mode, limit, expect_file, prepare in cases:
            with self.subTest(label=label):
                self.disk_full_case(label, mode, limit, expect_file, prepare)


if __name__ == "__main__":
    unittest.main()
