"""Snowflake warehouse against the strict SQL API contract server
(tests/integration/snowflake_server.py), syncing to the webhook receiver.
Key pairs are generated per test class with `openssl genpkey`."""
import datetime
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bfhelp import BIN, WEBHOOK_SECRET, Project  # noqa: E402
from snowflake_server import SnowflakeServer  # noqa: E402
from webhook_receiver import Receiver  # noqa: E402

ACCOUNT = "xy12345.eu-west-1"  # a locator with region: the JWT names XY12345
USER = "backflow"
PASSPHRASE = "correct-horse-battery-staple"
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
BIG38 = "12345678901234567890123456789012345678"

COLUMNS = [
    ("ID", "fixed", 0), ("EMAIL", "text", None), ("LTV", "fixed", 2), ("SCORE", "real", None),
    ("ACTIVE", "boolean", None), ("BORN", "date", None), ("CREATED", "timestamp_ltz", 9),
    ("LOCAL_TS", "timestamp_ntz", 9), ("TZ_TS", "timestamp_tz", 9), ("AT_TIME", "time", 9),
    ("META", "variant", None), ("BIG", "fixed", 0), ("NOTE", "text", None), ("BIN", "binary", None),
]
FIELDS = {"email": "EMAIL", "ltv": "LTV", "score": "SCORE", "active": "ACTIVE", "born": "BORN",
          "created": "CREATED", "local_ts": "LOCAL_TS", "tz_ts": "TZ_TS", "at_time": "AT_TIME",
          "meta": "META", "big": "BIG", "note": "NOTE"}


def row_type():
    out = []
    for name, typ, scale in COLUMNS:
        c = {"name": name, "database": "ANALYTICS", "schema": "PUBLIC", "table": "USERS",
             "type": typ, "nullable": name not in ("ID",), "byteLength": None, "length": None,
             "collation": None, "precision": 38 if typ == "fixed" else None, "scale": scale}
        out.append(c)
    return out


def make_row(i, version=0):
    """One row in the SQL API's jsonv2 cell format, and what the receiver must hold."""
    secs = 1704067200 + i * 60
    frac = ".500000000" if i % 3 == 0 else ".000000000"
    email = f"zoë{i}@exämple.com" if i % 7 == 0 else f"person{i}@example.com"
    if version:
        email = f"changed{version}.{i}@example.com"
    born = datetime.date(2000, 1, 1) + datetime.timedelta(days=i)
    big = BIG38 if i == 1 else str(2 ** 53 + i)
    meta = json.dumps({"i": i, "tags": ["a", "ü"]}, indent=2, ensure_ascii=False)
    at = (i * 37) % 86400
    cells = [str(i), email, f"{i * 125 // 100}.{i * 125 % 100:02d}",
             None if i % 11 == 0 else str(i / 4), "true" if i % 2 == 0 else "false",
             str((born - datetime.date(1970, 1, 1)).days), f"{secs}{frac}", f"{secs}{frac}",
             f"{secs}{frac} {1440 + 120}", f"{at}.000000000", meta, big,
             None if i % 5 == 0 else f"note ✓ {i}", "00ff10"]
    t = EPOCH + datetime.timedelta(seconds=secs)
    ts = t.strftime("%Y-%m-%dT%H:%M:%S") + (".5" if i % 3 == 0 else "")
    tz = (t + datetime.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S") + \
        (".5" if i % 3 == 0 else "") + "+02:00"
    fields = {"email": email, "ltv": cells[2], "score": None if i % 11 == 0 else i / 4,
              "active": i % 2 == 0, "born": born.isoformat(), "created": ts + "Z",
              "local_ts": ts, "tz_ts": tz,
              "at_time": f"{at // 3600:02d}:{at // 60 % 60:02d}:{at % 60:02d}",
              "meta": meta, "big": big, "note": None if i % 5 == 0 else f"note ✓ {i}"}
    return cells, fields


def tables(n, changed=()):
    rows = []
    for i in range(1, n + 1):
        rows.append(make_row(i, 1 if i in changed else 0)[0])
    return {"USERS": {"columns": row_type(), "rows": rows}}


def expected(n, changed=()):
    return {json.dumps({"user_id": i}): make_row(i, 1 if i in changed else 0)[1]
            for i in range(1, n + 1)}


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


class Keys:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="bf-sfkeys-")
        self.private = os.path.join(self.dir, "rsa_key.p8")
        self.public = os.path.join(self.dir, "rsa_key.pub")
        self.encrypted = os.path.join(self.dir, "rsa_key_enc.p8")
        self.other = os.path.join(self.dir, "other.p8")
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                "-out", self.private)
        openssl("pkey", "-in", self.private, "-pubout", "-out", self.public)
        openssl("pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", self.private,
                "-passout", f"pass:{PASSPHRASE}", "-out", self.encrypted)
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                "-out", self.other)


def config(url, hook_url, key_file, sql="SELECT * FROM users", wh_extra=""):
    fields = ", ".join(f"{k}: {v}" for k, v in FIELDS.items())
    return f"""version: 1
warehouses:
  snow:
    type: snowflake
    account: {ACCOUNT}
    user: {USER}
    private_key_file: {key_file}
    warehouse: COMPUTE_WH
    database: ANALYTICS
    schema: PUBLIC
    role: BACKFLOW_ROLE
    base_url: "{url}"
    retry_base: 10ms
{wh_extra}models:
  users:
    warehouse: snow
    sql: {sql}
    primary_key: ID
destinations:
  hook:
    type: webhook
    url: "{hook_url}"
    signing_secret: "{WEBHOOK_SECRET}"
    max_retries: 2
    retry_base: 10ms
syncs:
  s:
    model: users
    destination: hook
    mode: mirror
    match: {{user_id: ID}}
    fields: {{{fields}}}
"""


class SnowflakeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.keys = Keys()

    def start(self, n, faults=None, sql="SELECT * FROM users", wh_extra="", key_file=None):
        self.work = tempfile.mkdtemp(prefix="bf-sf-")
        self.server = SnowflakeServer(self.work, self.keys.public, ACCOUNT, USER, tables(n),
                                      faults)
        self.addCleanup(self.server.stop)
        self.hook = Receiver.start(WEBHOOK_SECRET)
        self.addCleanup(self.hook.stop)
        self.p = Project(config(self.server.url, self.hook.url, key_file or self.keys.private,
                                sql, wh_extra))
        self.addCleanup(self.p.cleanup)
        return self.p

    def assertNoSecrets(self, *texts):
        with open(self.keys.private) as f:
            body = "".join(f.read().splitlines()[1:-1])
        for t in texts:
            self.assertNotIn(PASSPHRASE, t)
            self.assertNotIn(body[:40], t)
            self.assertNotIn("eyJhbGciOiJSUzI1NiIs", t)  # a JWT's header

    def test_sync_across_partitions_with_exact_types_then_one_percent_change(self):
        n = 5000
        p = self.start(n, {"partition_rows": 1100, "running_polls": 2})
        r = p.run("run", "s")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.hook.store(), expected(n))
        st = self.server.state()
        self.assertEqual(st["statements"], 1)
        self.assertEqual(st["partitions"], 4)  # 1..4; partition 0 came with the result
        self.assertEqual(st["gzip_partitions"], 4)
        self.assertGreaterEqual(st["polls"], 3)
        self.assertEqual(st["rejected_401"], 0, st["auth_errors"])
        body = st["last_body"]
        self.assertEqual((body["warehouse"], body["database"], body["schema"], body["role"]),
                         ("COMPUTE_WH", "ANALYTICS", "PUBLIC", "BACKFLOW_ROLE"))
        # 19-digit and 38-digit integers arrive as exact strings
        self.assertEqual(self.hook.store()[json.dumps({"user_id": 1})]["big"], BIG38)
        self.assertEqual(self.hook.store()[json.dumps({"user_id": 2})]["big"], "9007199254740994")
        changed = set(range(1, n + 1, 100))  # 1%
        self.server.control(tables=tables(n, changed))
        before = self.hook.counters()["records"]
        r = p.run("run", "s")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.hook.counters()["records"] - before, len(changed))
        self.assertEqual(self.hook.store(), expected(n, changed))
        self.assertNoSecrets(r.stdout, r.stderr)

    def test_plan_validate_and_types(self):
        p = self.start(250, {"partition_rows": 100})
        r = p.run("validate")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("ok   model users (14 columns)", r.stdout)
        rc, doc, err = p.run_json("plan", "s")
        self.assertEqual(rc, 0, err)
        self.assertIn("250", json.dumps(doc))
        self.assertEqual(self.hook.counters()["records"], 0)
        r = subprocess.run([BIN, "types"], capture_output=True, text=True)
        self.assertIn("snowflake", r.stdout)
        self.assertIn("private_key_file", r.stdout)

    def test_sql_errors_exit_3_with_the_vendor_message(self):
        p = self.start(10, sql="SELECT ID FROM users ORDER")
        r = p.run("run", "s")
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("syntax error line 1 at position 21 unexpected 'ORDER'", r.stderr)
        self.assertIn("code 001003, SQL state 42000", r.stderr)
        p.write_config(config(self.server.url, self.hook.url, self.keys.private,
                              "SELECT * FROM missing_table"))
        r = p.run("validate")
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("Object 'MISSING_TABLE' does not exist or not authorized", r.stderr)
        self.assertIn("code 002003, SQL state 42S02", r.stderr)
        p.write_config(config(self.server.url, self.hook.url, self.keys.private,
                              "SELECT * FROM users; DELETE FROM users"))
        before = self.server.state()["statements"]
        r = p.run("run", "s")
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("the SQL must be one query", r.stderr)
        self.assertEqual(self.server.state()["statements"], before)  # never sent

    def test_wrong_key_is_a_clear_auth_error_without_secrets(self):
        p = self.start(10, key_file=self.keys.other)
        r = p.run("run", "s")
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("JWT token is invalid", r.stderr)
        self.assertIn("code 390144", r.stderr)
        self.assertIn("RSA_PUBLIC_KEY", r.stderr)
        self.assertIn("bad signature", self.server.state()["auth_errors"])
        self.assertNoSecrets(r.stdout, r.stderr)
        # an encrypted key: the right passphrase works, a wrong one is a config error
        for passphrase, status in ((PASSPHRASE, 0), ("wrong-passphrase", 2)):
            p.write_config(config(self.server.url, self.hook.url, self.keys.encrypted,
                                  wh_extra=f"    private_key_passphrase: \"{passphrase}\"\n"))
            r = p.run("run", "s")
            self.assertEqual(r.returncode, status, r.stderr)
            self.assertNotIn(passphrase, r.stdout + r.stderr)
        p.write_config(config(self.server.url, self.hook.url, "no/such/key.p8"))
        r = p.run("validate")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("cannot open the private key file", r.stderr)

    def test_429_is_retried_after_retry_after(self):
        p = self.start(300, {"partition_rows": 100, "post_429": 1, "partition_429": 1,
                             "retry_after": 1})
        t0 = time.monotonic()
        r = p.run("run", "s")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertGreaterEqual(time.monotonic() - t0, 1.9)  # two Retry-After: 1 waits
        self.assertEqual(self.server.state()["sent_429"], 2)
        self.assertEqual(self.hook.store(), expected(300))

    def test_jwt_renewed_before_expiry_and_once_after_a_401(self):
        p = self.start(600, {"partition_rows": 100, "partition_delay": 0.6},
                       wh_extra="    jwt_lifetime: 2s\n")
        r = p.run("run", "s")
        self.assertEqual(r.returncode, 0, r.stderr)
        st = self.server.state()
        self.assertEqual(st["rejected_401"], 0, st["auth_errors"])
        self.assertGreaterEqual(st["tokens"], 2)
        self.assertEqual(self.hook.store(), expected(600))
        self.server.control(reject_tokens=1, reset=True)
        p.run("reset", "s")
        r = p.run("run", "s")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.server.state()["rejected_401"], 1)

    def test_stop_cancels_the_running_statement(self):
        p = self.start(10, {"statement_delay": 60})
        proc = subprocess.Popen([BIN, "-p", p.dir, "run", "s"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20
        while self.server.state()["polls"] < 1:
            self.assertLess(time.monotonic(), deadline, "the statement was never polled")
            self.assertIsNone(proc.poll())
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        self.assertEqual(proc.returncode, 143, err)  # cancelled by SIGTERM, as a run is
        self.assertEqual(self.server.state()["cancels"], 1, err)
        self.assertEqual(self.hook.counters()["records"], 0)


if __name__ == "__main__":
    unittest.main()
