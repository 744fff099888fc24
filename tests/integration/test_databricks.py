"""Databricks warehouse against the strict Statement Execution API + OAuth M2M +
presigned-storage contract server (tests/integration/databricks_server.py),
syncing to a file destination."""
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
from bfhelp import BIN, Project  # noqa: E402
from databricks_server import DatabricksServer  # noqa: E402

WAREHOUSE = "abcdef1234567890"
PAT = "dapi0123456789abcdef0123456789ab"
CLIENT_ID = "6f3c1a2e-sp-backflow"
CLIENT_SECRET = "dose0123456789abcdef0123456789"
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def col(name, text, type_name, precision=None, scale=None):
    c = {"name": name, "type_text": text, "type_name": type_name}
    if precision is not None:
        c.update(type_precision=precision, type_scale=scale)
    return c


COLUMNS = [col("ID", "bigint", "LONG"), col("EMAIL", "string", "STRING"),
           col("LTV", "decimal(12,2)", "DECIMAL", 12, 2), col("SCORE", "double", "DOUBLE"),
           col("ACTIVE", "boolean", "BOOLEAN"), col("BORN", "date", "DATE"),
           col("CREATED", "timestamp", "TIMESTAMP"), col("BIG", "bigint", "LONG"),
           col("NOTE", "string", "STRING"), col("TAGS", "array<string>", "ARRAY"),
           col("ATTRS", "map<string,int>", "MAP"), col("PIC", "binary", "BINARY")]
FIELDS = {"email": "EMAIL", "ltv": "LTV", "score": "SCORE", "active": "ACTIVE", "born": "BORN",
          "created": "CREATED", "big": "BIG", "note": "NOTE", "tags": "TAGS", "attrs": "ATTRS"}


def make_row(i, version=0):
    secs = 1704067200 + i * 60
    t = EPOCH + datetime.timedelta(seconds=secs)
    frac = ".500" if i % 3 == 0 else ".000"
    email = f"zoë{i}@exämple.com" if i % 7 == 0 else f"person{i}@example.com"
    if version:
        email = f"changed{version}.{i}@example.com"
    big = "-9223372036854775808" if i == 1 else str(1234567890123456789 + i)
    ltv = f"{i * 125 // 100}.{i * 125 % 100:02d}"
    tags = json.dumps(["a", f"t{i}"], separators=(",", ":"))
    attrs = json.dumps({"k": i}, separators=(",", ":"))
    born = (datetime.date(2000, 1, 1) + datetime.timedelta(days=i)).isoformat()
    row = [str(i), email, ltv, None if i % 11 == 0 else str(i / 4),
           "true" if i % 2 == 0 else "false", born,
           t.strftime("%Y-%m-%dT%H:%M:%S") + frac + "Z", big,
           None if i % 5 == 0 else f"note ✓ {i}", tags, attrs, "AP8Q"]
    fields = {"email": email, "ltv": ltv, "score": None if i % 11 == 0 else i / 4,
              "active": i % 2 == 0, "born": born,
              "created": t.strftime("%Y-%m-%dT%H:%M:%S") + (".5" if i % 3 == 0 else "") + "Z",
              "big": big, "note": None if i % 5 == 0 else f"note ✓ {i}", "tags": tags,
              "attrs": attrs}
    return row, fields


def tables(n, changed=()):
    return {"main.analytics.users": {"columns": COLUMNS,
                                     "rows": [make_row(i, 1 if i in changed else 0)[0]
                                              for i in range(1, n + 1)]}}


def expected(n, changed=()):
    return {i: make_row(i, 1 if i in changed else 0)[1] for i in range(1, n + 1)}


def config(url, auth, sql="SELECT * FROM main.analytics.users", wh_extra=""):
    fields = ", ".join(f"{k}: {v}" for k, v in FIELDS.items())
    return f"""version: 1
warehouses:
  dbx:
    type: databricks
    host: "{url}"
    warehouse_id: {WAREHOUSE}
{auth}    catalog: main
    retry_base: 10ms
{wh_extra}models:
  users:
    warehouse: dbx
    sql: {sql}
    primary_key: ID
destinations:
  out: {{type: file, path: out.jsonl}}
syncs:
  s:
    model: users
    destination: out
    mode: mirror
    match: {{user_id: ID}}
    fields: {{{fields}}}
"""


PAT_AUTH = f"    token: {PAT}\n"
M2M_AUTH = f"    client_id: {CLIENT_ID}\n    client_secret: {CLIENT_SECRET}\n"


class DatabricksTest(unittest.TestCase):
    def start(self, n, faults=None, auth=M2M_AUTH, **kw):
        self.work = tempfile.mkdtemp(prefix="bf-dbx-")
        self.server = DatabricksServer(self.work, tables(n), WAREHOUSE, PAT, CLIENT_ID,
                                       CLIENT_SECRET, faults)
        self.addCleanup(self.server.stop)
        self.p = Project(config(self.server.url, auth, **kw))
        self.addCleanup(self.p.cleanup)
        return self.p

    def lines(self):
        path = os.path.join(self.p.dir, "out.jsonl")
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return [json.loads(line) for line in f]

    def store(self):
        out = {}
        for r in self.lines():
            out[r["key"]["user_id"]] = r["fields"]
        return out

    def assertNoSecrets(self, *texts):
        for t in texts:
            for s in (PAT, CLIENT_SECRET, "eyJraWQiOi", "X-Amz-Signature"):
                self.assertNotIn(s, t)

    def test_external_links_exact_types_then_one_percent_change(self):
        n = 5000
        p = self.start(n, {"chunk_rows": 1100, "running_polls": 2})
        r = p.run("run", "s")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.lines()), n)
        self.assertEqual(self.store(), expected(n))
        st = self.server.state()
        self.assertEqual(st["statements"], 1)
        self.assertGreaterEqual(st["polls"], 1)
        self.assertEqual(st["chunks"], [1, 2, 3, 4])  # chunk 0 came with the answer
        self.assertEqual(st["downloads"], [0, 1, 2, 3, 4])
        self.assertEqual(st["auth_on_links"], 0)
        self.assertEqual(st["grants"], 1)
        self.assertEqual(st["bad_requests"], [])
        body = st["last_body"]
        self.assertEqual((body["disposition"], body["format"], body["warehouse_id"],
                          body["catalog"]), ("EXTERNAL_LINKS", "JSON_ARRAY", WAREHOUSE, "main"))
        self.assertEqual(self.store()[1]["big"], "-9223372036854775808")
        self.assertEqual(self.store()[2]["big"], "1234567890123456791")
        changed = set(range(1, n + 1, 100))
        self.server.control(tables=tables(n, changed))
        before = len(self.lines())
        r = p.run("run", "s")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.lines()) - before, len(changed))
        self.assertEqual({r["key"]["user_id"] for r in self.lines()[before:]}, changed)
        self.assertEqual(self.store(), expected(n, changed))
        self.assertNoSecrets(r.stdout, r.stderr)

    def test_inline_with_a_personal_access_token(self):
        p = self.start(700, {"chunk_rows": 300}, auth=PAT_AUTH,
                       wh_extra="    disposition: INLINE\n")
        r = p.run("run", "s")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.store(), expected(700))
        st = self.server.state()
        self.assertEqual(st["chunks"], [1, 2])
        self.assertEqual(st["downloads"], [])
        self.assertEqual(st["grants"], 0)
        self.assertEqual(st["last_body"]["disposition"], "INLINE")

    def test_validate_and_plan(self):
        p = self.start(120, {"chunk_rows": 50})
        r = p.run("validate")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("ok   model users (12 columns)", r.stdout)
        rc, doc, err = p.run_json("plan", "s")
        self.assertEqual(rc, 0, err)
        self.assertIn("120", json.dumps(doc))
        self.assertEqual(self.lines(), [])

    def test_sql_errors_exit_3_with_the_vendor_message(self):
        p = self.start(10, sql="SELECT ID FROM main.analytics.users ORDER")
        r = p.run("run", "s")
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("[PARSE_SYNTAX_ERROR] Syntax error at or near 'ORDER'", r.stderr)
        self.assertIn("error_code BAD_REQUEST, SQL state 42601", r.stderr)
        p.write_config(config(self.server.url, M2M_AUTH, "SELECT * FROM analytics.missing"))
        r = p.run("validate")
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("[TABLE_OR_VIEW_NOT_FOUND] The table or view `main`.`analytics`.`missing` "
                      "cannot be found", r.stderr)
        p.write_config(config(self.server.url, M2M_AUTH,
                              "SELECT 1 AS ID; DROP TABLE main.analytics.users"))
        before = self.server.state()["statements"]
        r = p.run("run", "s")
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("the SQL must be one query", r.stderr)
        self.assertEqual(self.server.state()["statements"], before)
        self.assertEqual(self.lines(), [])

    def test_bad_credentials_are_clear_errors_without_secrets(self):
        p = self.start(10, auth=f"    client_id: {CLIENT_ID}\n    client_secret: {PAT}\n")
        r = p.run("run", "s")
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("refused the client_credentials grant: invalid_client: Client "
                      "authentication failed (HTTP 401)", r.stderr)
        self.assertNoSecrets(r.stdout, r.stderr)
        p.write_config(config(self.server.url, "    token: dapiwrongwrongwrong\n"))
        r = p.run("run", "s")
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("Invalid access token. (error_code UNAUTHENTICATED, HTTP 401)", r.stderr)
        self.assertNotIn("dapiwrongwrongwrong", r.stderr)
        p.write_config(config(self.server.url, ""))
        r = p.run("validate")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("needs either token", r.stderr)

    def test_token_expiring_mid_run_is_refreshed_and_once_on_a_401(self):
        p = self.start(600, {"chunk_rows": 100, "chunk_delay": 0.5, "token_expires_in": 2})
        r = p.run("run", "s")
        self.assertEqual(r.returncode, 0, r.stderr)
        st = self.server.state()
        self.assertEqual(st["rejected_401"], 0)
        self.assertGreaterEqual(st["grants"], 2)
        self.assertEqual(self.store(), expected(600))
        self.server.control(revoke_tokens=1, reset=True, chunk_delay=0, token_expires_in=3600)
        p.run("reset", "s")
        r = p.run("run", "s")
        self.assertEqual(r.returncode, 0, r.stderr)
        st = self.server.state()
        self.assertEqual(st["rejected_401"], 1)
        self.assertEqual(st["grants"], 2)  # the first, and one after the 401

    def test_expired_links_are_fetched_again(self):
        p = self.start(300, {"chunk_rows": 100, "expire_links": 2})
        r = p.run("run", "s")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.store(), expected(300))
        st = self.server.state()
        self.assertEqual(st["expired_links"], 2)
        self.assertEqual(st["downloads"], [0, 1, 2])
        self.assertEqual(st["auth_on_links"], 0)

    def test_429_is_retried_and_statement_timeout_cancels(self):
        p = self.start(200, {"chunk_rows": 100, "post_429": 1})
        r = p.run("run", "s")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.server.state()["sent_429"], 1)
        self.assertEqual(self.server.state()["statements"], 1)
        self.assertEqual(self.store(), expected(200))
        self.server.control(job_delay=60)
        p.write_config(config(self.server.url, M2M_AUTH, wh_extra="    statement_timeout: 1s\n"))
        p.run("reset", "s")
        r = p.run("run", "s")
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("the query ran longer than statement_timeout (1000 ms) and was cancelled",
                      r.stderr)
        self.assertEqual(self.server.state()["cancels"], 1)

    def test_stop_cancels_the_running_statement(self):
        p = self.start(10, {"job_delay": 60})
        proc = subprocess.Popen([BIN, "-p", p.dir, "run", "s"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20
        while self.server.state()["polls"] < 1:
            self.assertLess(time.monotonic(), deadline, "the statement was never polled")
            self.assertIsNone(proc.poll())
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        self.assertEqual(proc.returncode, 143, err)
        self.assertEqual(self.server.state()["cancels"], 1, err)


if __name__ == "__main__":
    unittest.main()
