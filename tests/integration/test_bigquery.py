"""BigQuery warehouse against the strict REST API + token endpoint contract
server (tests/integration/bigquery_server.py), syncing to the webhook
receiver. The service-account key pair is generated with `openssl genpkey`."""
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
from bigquery_server import BigQueryServer  # noqa: E402
from webhook_receiver import Receiver  # noqa: E402

PROJECT = "my-project"
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)

SCHEMA = [
    {"name": "ID", "type": "INTEGER", "mode": "REQUIRED"},
    {"name": "EMAIL", "type": "STRING", "mode": "NULLABLE"},
    {"name": "LTV", "type": "NUMERIC", "mode": "NULLABLE"},
    {"name": "SCORE", "type": "FLOAT", "mode": "NULLABLE"},
    {"name": "ACTIVE", "type": "BOOLEAN", "mode": "NULLABLE"},
    {"name": "BORN", "type": "DATE", "mode": "NULLABLE"},
    {"name": "CREATED", "type": "TIMESTAMP", "mode": "NULLABLE"},
    {"name": "LOCAL_TS", "type": "DATETIME", "mode": "NULLABLE"},
    {"name": "META", "type": "JSON", "mode": "NULLABLE"},
    {"name": "BIG", "type": "INTEGER", "mode": "NULLABLE"},
    {"name": "NOTE", "type": "STRING", "mode": "NULLABLE"},
    {"name": "PIC", "type": "BYTES", "mode": "NULLABLE"},
    {"name": "ADDR", "type": "RECORD", "mode": "NULLABLE",
     "fields": [{"name": "CITY", "type": "STRING", "mode": "NULLABLE"},
                {"name": "ZIP", "type": "INTEGER", "mode": "NULLABLE"}]},
    {"name": "TAGS", "type": "STRING", "mode": "REPEATED"},
]
FIELDS = {"email": "EMAIL", "ltv": "LTV", "score": "SCORE", "active": "ACTIVE", "born": "BORN",
          "created": "CREATED", "local_ts": "LOCAL_TS", "meta": "META", "big": "BIG",
          "note": "NOTE", "pic": "PIC", "addr": "ADDR", "tags": "TAGS"}


def make_row(i, version=0):
    secs = 1704067200 + i * 60
    micros = secs * 1000000 + (500000 if i % 3 == 0 else 0)
    email = f"zoë{i}@exämple.com" if i % 7 == 0 else f"person{i}@example.com"
    if version:
        email = f"changed{version}.{i}@example.com"
    born = datetime.date(2000, 1, 1) + datetime.timedelta(days=i)
    t = EPOCH + datetime.timedelta(seconds=secs)
    frac = ".5" if i % 3 == 0 else ""
    big = "-9223372036854775808" if i == 1 else str(2 ** 53 + i)
    ltv = f"{i * 125 // 100}.{i * 125 % 100:02d}".rstrip("0").rstrip(".")
    cells = [str(i), email, ltv, None if i % 11 == 0 else str(i / 4),
             "true" if i % 2 == 0 else "false", born.isoformat(), str(micros),
             t.strftime("%Y-%m-%dT%H:%M:%S"), json.dumps({"i": i}, separators=(",", ":")), big,
             None if i % 5 == 0 else f"note ✓ {i}", "AP8Q",
             {"f": [{"v": "Zürich"}, {"v": str(8000 + i)}]},
             [{"v": "a"}, {"v": f"t{i}"}]]
    row = {"f": [{"v": c} for c in cells]}
    fields = {"email": email, "ltv": ltv, "score": None if i % 11 == 0 else i / 4,
              "active": i % 2 == 0, "born": born.isoformat(),
              "created": t.strftime("%Y-%m-%dT%H:%M:%S") + frac + "Z",
              "local_ts": t.strftime("%Y-%m-%dT%H:%M:%S"), "meta": cells[8], "big": big,
              "note": None if i % 5 == 0 else f"note ✓ {i}", "pic": "AP8Q",
              "addr": json.dumps({"CITY": "Zürich", "ZIP": 8000 + i}, separators=(",", ":"),
                                 ensure_ascii=False),
              "tags": json.dumps(["a", f"t{i}"], separators=(",", ":"))}
    return row, fields


def tables(n, changed=()):
    return {"ANALYTICS.USERS": {"schema": {"fields": SCHEMA},
                                "rows": [make_row(i, 1 if i in changed else 0)[0]
                                         for i in range(1, n + 1)]}}


def expected(n, changed=()):
    return {json.dumps({"user_id": i}): make_row(i, 1 if i in changed else 0)[1]
            for i in range(1, n + 1)}


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


class Keys:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="bf-bqkeys-")
        self.private = os.path.join(self.dir, "sa.pem")
        self.public = os.path.join(self.dir, "sa.pub")
        self.other = os.path.join(self.dir, "other.pem")
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                "-out", self.private)
        openssl("pkey", "-in", self.private, "-pubout", "-out", self.public)
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                "-out", self.other)

    def key_json(self, pem_path=None):
        with open(pem_path or self.private) as f:
            pem = f.read()
        return {"type": "service_account", "project_id": PROJECT,
                "private_key_id": "0123456789abcdef0123456789abcdef01234567",
                "private_key": pem, "client_email": f"backflow@{PROJECT}.iam.gserviceaccount.com",
                "client_id": "123456789", "token_uri": "https://oauth2.googleapis.com/token"}


def config(url, hook_url, key_file, sql="SELECT * FROM analytics.users", wh_extra="",
           location="EU"):
    fields = ", ".join(f"{k}: {v}" for k, v in FIELDS.items())
    return f"""version: 1
warehouses:
  bq:
    type: bigquery
    credentials_file: {key_file}
    location: {location}
    base_url: "{url}"
    retry_base: 10ms
{wh_extra}models:
  users:
    warehouse: bq
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


class BigQueryTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.keys = Keys()

    def start(self, n, faults=None, sql="SELECT * FROM analytics.users", wh_extra="",
              location="EU", pem=None):
        self.work = tempfile.mkdtemp(prefix="bf-bq-")
        self.server = BigQueryServer(self.work, self.keys.public, self.keys.key_json(pem),
                                     PROJECT, tables(n), faults=faults)
        self.addCleanup(self.server.stop)
        self.hook = Receiver.start(WEBHOOK_SECRET)
        self.addCleanup(self.hook.stop)
        self.p = Project(config(self.server.url, self.hook.url, self.server.key_path, sql,
                                wh_extra, location))
        self.addCleanup(self.p.cleanup)
        return self.p

    def assertNoSecrets(self, *texts):
        with open(self.keys.private) as f:
            body = "".join(f.read().splitlines()[1:-1])
        for t in texts:
            self.assertNotIn(body[:40], t)
            self.assertNotIn("ya29.", t)
            self.assertNotIn("eyJhbGciOiJSUzI1NiIs", t)

    def test_sync_across_pages_with_exact_types_then_one_percent_change(self):
        n = 5000
        p = self.start(n, {"page_rows": 1100, "running_polls": 1})
        r = p.run("run", "s")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.hook.store(), expected(n))
        st = self.server.state()
        self.assertEqual(st["queries"], 1)
        self.assertEqual(st["pages"], 4)  # the first page came with the completed job
        self.assertGreaterEqual(st["polls"], 1)
        self.assertEqual(st["grants"], 1)
        self.assertEqual(st["rejected_401"], 0)
        self.assertEqual(st["locations"], ["EU"])
        self.assertIs(st["last_body"]["useLegacySql"], False)
        self.assertEqual(self.hook.store()[json.dumps({"user_id": 1})]["big"],
                         "-9223372036854775808")
        changed = set(range(1, n + 1, 100))
        self.server.control(tables=tables(n, changed))
        before = self.hook.counters()["records"]
        r = p.run("run", "s")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.hook.counters()["records"] - before, len(changed))
        self.assertEqual(self.hook.store(), expected(n, changed))
        self.assertNoSecrets(r.stdout, r.stderr)

    def test_plan_validate_and_types(self):
        p = self.start(120, {"page_rows": 50})
        r = p.run("validate")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("ok   model users (14 columns)", r.stdout)
        rc, doc, err = p.run_json("plan", "s")
        self.assertEqual(rc, 0, err)
        self.assertIn("120", json.dumps(doc))
        self.assertEqual(self.hook.counters()["records"], 0)
        r = subprocess.run([BIN, "types"], capture_output=True, text=True)
        self.assertIn("bigquery", r.stdout)
        self.assertIn("credentials_file", r.stdout)

    def test_sql_errors_exit_3_with_the_vendor_message(self):
        p = self.start(10, sql="SELECT ID FROM analytics.users ORDER")
        r = p.run("run", "s")
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn('Syntax error: Unexpected identifier "ORDER" at [1:32]', r.stderr)
        self.assertIn("reason invalidQuery, HTTP 400", r.stderr)
        p.write_config(config(self.server.url, self.hook.url, self.server.key_path,
                              "SELECT * FROM analytics.missing"))
        r = p.run("validate")
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("Not found: Table my-project:analytics.missing was not found in location EU",
                      r.stderr)
        p.write_config(config(self.server.url, self.hook.url, self.server.key_path,
                              location="US"))
        r = p.run("run", "s")
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("not found in location US", r.stderr)
        p.write_config(config(self.server.url, self.hook.url, self.server.key_path,
                              "SELECT 1 AS ID; DROP TABLE analytics.users"))
        before = self.server.state()["queries"]
        r = p.run("run", "s")
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("the SQL must be one query", r.stderr)
        self.assertEqual(self.server.state()["queries"], before)  # never sent

    def test_wrong_key_is_a_clear_auth_error_without_secrets(self):
        p = self.start(10, pem=self.keys.other)
        r = p.run("run", "s")
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("refused the service account", r.stderr)
        self.assertIn("invalid_grant: Invalid JWT Signature.", r.stderr)
        self.assertNoSecrets(r.stdout, r.stderr)
        with open(self.server.key_path, "w") as f:
            f.write('{"type": "authorized_user"}')
        r = p.run("validate")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("is not a service-account key file", r.stderr)

    def test_429_and_rate_limit_403_are_retried(self):
        p = self.start(300, {"page_rows": 100, "post_429": 1, "page_429": 1, "rate_limit_403": 1,
                             "retry_after": 1})
        r = p.run("run", "s")
        self.assertEqual(r.returncode, 0, r.stderr)
        st = self.server.state()
        self.assertEqual((st["sent_429"], st["sent_403"]), (2, 1))
        self.assertEqual(self.hook.store(), expected(300))

    def test_token_refreshed_before_expiry_and_once_on_a_401(self):
        p = self.start(600, {"page_rows": 100, "page_delay": 0.5, "token_expires_in": 2})
        r = p.run("run", "s")
        self.assertEqual(r.returncode, 0, r.stderr)
        st = self.server.state()
        self.assertEqual(st["rejected_401"], 0)
        self.assertGreaterEqual(st["grants"], 2)
        self.assertEqual(self.hook.store(), expected(600))
        self.server.control(revoke_tokens=1, reset=True, page_delay=0, token_expires_in=3599)
        p.run("reset", "s")
        r = p.run("run", "s")
        self.assertEqual(r.returncode, 0, r.stderr)
        st = self.server.state()
        self.assertEqual(st["rejected_401"], 1)
        self.assertEqual(st["grants"], 2)  # the first, and one after the 401

    def test_stop_cancels_the_running_job(self):
        p = self.start(10, {"job_delay": 60})
        proc = subprocess.Popen([BIN, "-p", p.dir, "run", "s"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20
        while self.server.state()["polls"] < 1:
            self.assertLess(time.monotonic(), deadline, "the job was never polled")
            self.assertIsNone(proc.poll())
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        self.assertEqual(proc.returncode, 143, err)  # cancelled by SIGTERM, as a run is
        self.assertEqual(self.server.state()["cancels"], 1, err)


if __name__ == "__main__":
    unittest.main()
