"""State integrity (issue 19): a lost or replaced secret and a damaged state
directory are refused before anything is read or sent.

Every file of the state directory keyed by the secret (state.bin,
journal.bin, vault.bin, forgotten.bin, erasure_pending.bin, audit.jsonl)
is attacked four ways: truncated, one byte flipped in the middle, zeroed,
and replaced by the same file of another project (another secret). Each
time rows changed in the warehouse, so a run would send something: it must
instead exit 2 with a message naming the file, and send nothing. Then the
issue's own scenario: the secret removed after an erasure, the run sends
nothing; `reset --all --new-secret` starts over knowingly."""
import os
import shutil
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bfhelp import WEBHOOK_SECRET, Project, users_table  # noqa: E402
from webhook_receiver import Receiver  # noqa: E402

CONFIG = """version: 1
state_dir: .backflow
warehouses:
  wh: {type: sqlite, path: warehouse.db}
models:
  users:
    warehouse: wh
    sql: SELECT id, email, first_name, plan FROM users
    primary_key: id
    pii: {email: email}
destinations:
  out: {type: file, path: out.jsonl}
  down: {type: webhook, url: "URL", signing_secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw,
         retry_base: 10ms, retry_max_wait: 200ms}
syncs:
  u:
    model: users
    destination: out
    mode: mirror
    match: {user_id: id}
    fields: {email: email, plan: plan}
  dead:
    model: users
    destination: down
    mode: upsert
    match: {user_id: id}
    fields: {email: email}
"""

ERASED = "person3@example.com"


RECEIVER = None


def receiver():
    """One receiver for the `dead` sync, answering 503 once it has its rows."""
    global RECEIVER
    if RECEIVER is None:
        RECEIVER = Receiver.start(WEBHOOK_SECRET)
    return RECEIVER


def build(with_journal=False, with_pending=False):
    """A project after a run of `u` and an erasure. with_journal: a second
    run killed before its fold, so journal.bin holds records. with_pending:
    an erasure that could not reach the `dead` sync's destination."""
    p = Project(CONFIG.replace("URL", receiver().url))
    users_table(p, 200)
    r = p.run("run", "u")
    assert r.returncode == 0, r.stderr
    r = p.run("forget", "--email", ERASED)
    assert r.returncode == 0, r.stdout + r.stderr
    if with_pending:
        receiver().control(fail_after_requests=None)
        r = p.run("run", "dead")
        assert r.returncode == 0, r.stdout + r.stderr
        receiver().control(fail_after_requests=0)  # every request: 503
        r = p.run("forget", "--email", "person4@example.com")
        assert r.returncode == 4, r.stdout + r.stderr
    if with_journal:
        p.sql("UPDATE users SET plan = 'pro' WHERE id <= 20")
        r = p.run("run", "u", env={"BACKFLOW_CRASH_AT": "fold-base:1"})
        assert r.returncode != 0
    return p


def path_of(p, name):
    per_sync = ("state.bin", "journal.bin", "vault.bin")
    return os.path.join(p.dir, ".backflow", *(("syncs", "u") if name in per_sync else ()), name)


def truncate(path, other):
    with open(path, "r+b") as f:
        size = os.path.getsize(path)
        f.truncate(size // 2 if size > 64 else size - 1)


def flip(path, other):
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.seek(size // 2)
        b = f.read(1)
        f.seek(size // 2)
        f.write(bytes([b[0] ^ 0x10]))


def zero(path, other):
    size = os.path.getsize(path)
    with open(path, "wb") as f:
        f.write(b"\0" * size)


def foreign(path, other):
    shutil.copyfile(other, path)


ATTACKS = {"truncated": truncate, "flipped": flip, "zeroed": zero, "another project": foreign}


class DamagedFiles(unittest.TestCase):
    def check_file(self, name, command, **build_kw):
        other = build(**build_kw)
        try:
            for attack, fn in ATTACKS.items():
                with self.subTest(file=name, attack=attack):
                    p = build(**build_kw)
                    try:
                        path = path_of(p, name)
                        self.assertTrue(os.path.getsize(path) > 0, path)
                        fn(path, path_of(other, name))
                        p.sql("UPDATE users SET plan = 'changed' WHERE id <= 10")
                        out = os.path.join(p.dir, "out.jsonl")
                        before = open(out, "rb").read()
                        r = p.run(*command)
                        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
                        self.assertIn(name, r.stderr)
                        self.assertRegex(r.stderr, r"damaged|another secret")
                        self.assertRegex(r.stderr, r"backflow (doctor|reset)")
                        self.assertEqual(open(out, "rb").read(), before, "something was sent")
                        self.assertEqual(r.stderr.count("\n"), 1, r.stderr)  # printed once
                    finally:
                        p.cleanup()
        finally:
            other.cleanup()

    def test_state(self):
        self.check_file("state.bin", ("run", "u"))

    def test_journal(self):
        self.check_file("journal.bin", ("run", "u"), with_journal=True)

    def test_vault(self):
        self.check_file("vault.bin", ("run", "u"))

    def test_suppression_list(self):
        self.check_file("forgotten.bin", ("run", "u"))

    def test_pending_erasures(self):
        self.check_file("erasure_pending.bin", ("forget", "--retry"), with_pending=True)

    def test_audit_log(self):
        self.check_file("audit.jsonl", ("forget", "--email", "person5@example.com"))


class LostSecret(unittest.TestCase):
    def setUp(self):
        self.p = build()
        self.out = os.path.join(self.p.dir, "out.jsonl")

    def tearDown(self):
        self.p.cleanup()

    def sent(self):
        with open(self.out) as f:
            return f.read()

    def test_removed_secret_sends_nothing_and_exits_2(self):
        before = self.sent()
        self.assertNotIn(ERASED, before.split("\n")[-2])
        os.unlink(os.path.join(self.p.dir, ".backflow", "secret"))
        for cmd in (("run", "u"), ("plan", "u"), ("forget", "--email", "a@example.com")):
            r = self.p.run(*cmd)
            self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
            self.assertIn("secret is missing", r.stderr)
            self.assertIn("backflow reset --all --new-secret", r.stderr)
        self.assertEqual(self.sent(), before)
        self.assertFalse(os.path.exists(os.path.join(self.p.dir, ".backflow", "secret")),
                         "a new secret was generated")

    def test_changed_configured_secret_is_refused(self):
        # The project switches from the generated file to BACKFLOW_SECRET.
        cfg = CONFIG.replace("state_dir: .backflow", "state_dir: .backflow\nsecret: ${BACKFLOW_SECRET}")
        self.p.write_config(cfg)
        before = self.sent()
        r = self.p.run("run", "u", env={"BACKFLOW_SECRET": "a-different-secret-of-32-chars-xx"})
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("written under another secret", r.stderr)
        self.assertEqual(self.sent(), before)

    def test_reset_new_secret_recovers_knowingly(self):
        os.unlink(os.path.join(self.p.dir, ".backflow", "secret"))
        r = self.p.run("reset", "--new-secret")
        self.assertEqual(r.returncode, 2)  # --new-secret needs --all
        r = self.p.run("reset", "--all", "--new-secret")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("WARNING", r.stderr)
        self.assertIn("suppression list holds 2 entries", r.stderr)
        self.assertIn("1 erasure request", r.stderr)
        archived = [d for d in os.listdir(os.path.join(self.p.dir, ".backflow"))
                    if d.startswith("replaced-")]
        self.assertEqual(len(archived), 1)
        self.assertTrue(os.path.exists(os.path.join(self.p.dir, ".backflow", archived[0],
                                                    "forgotten.bin")))
        r = self.p.run("run", "u")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("200 added", r.stdout)

    def test_new_project_still_generates_its_secret(self):
        p = Project(CONFIG)
        try:
            users_table(p, 5)
            r = p.run("run", "u")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(os.path.getsize(os.path.join(p.dir, ".backflow", "secret")), 32)
        finally:
            p.cleanup()


class Doctor(unittest.TestCase):
    def test_doctor_names_the_damaged_file_and_the_sync_to_reset(self):
        p = build()
        try:
            r = p.run("doctor")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("ok", r.stdout)
            flip(path_of(p, "state.bin"), None)
            r = p.run("doctor")
            self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
            self.assertIn("state.bin", r.stdout)
            self.assertIn("backflow reset u", r.stdout)
        finally:
            p.cleanup()


def tearDownModule():
    if RECEIVER is not None:
        RECEIVER.stop()


if __name__ == "__main__":
    unittest.main()
