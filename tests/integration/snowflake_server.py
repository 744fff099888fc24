#!/usr/bin/env python3
"""Strict local contract server for the Snowflake SQL API v2, for Backflow's
integration tests (Python 3 stdlib + the `cryptography` module, or the
`openssl` command when that module is missing).

Written from the vendor's published reference:
  SQL API reference (operations, request headers, ResultSet, QueryStatus,
  QueryFailureStatus, codes 200/202/408/422/429):
    https://docs.snowflake.com/en/developer-guide/sql-api/reference
  Submitting requests, async=true, requestId/retry, partitions:
    https://docs.snowflake.com/en/developer-guide/sql-api/submitting-requests
  Handling responses (202 + polling, partitions fetched with ?partition=N,
  jsonv2 cell formats: DATE as days since the epoch, TIME/TIMESTAMP_NTZ/LTZ
  as seconds with 9 decimals, TIMESTAMP_TZ as "seconds offset" with the
  offset in minutes plus 1440, everything as strings):
    https://docs.snowflake.com/en/developer-guide/sql-api/handling-responses
  Key-pair authentication (Authorization: Bearer <JWT>,
  X-Snowflake-Authorization-Token-Type: KEYPAIR_JWT; iss =
  ACCOUNT.USER.SHA256:<base64 SHA-256 of the public key DER>, sub =
  ACCOUNT.USER, exp at most one hour after iat):
    https://docs.snowflake.com/en/developer-guide/sql-api/authenticating
    https://docs.snowflake.com/en/user-guide/key-pair-auth
  "JWT token is invalid" is error 390144 (sqlState 08001):
    https://docs.snowflake.com/en/user-guide/key-pair-auth-troubleshooting

What it enforces on every /api/v2 request:
  Authorization: Bearer <JWT> whose RS256 signature verifies with the
  configured public key, header {"alg":"RS256","typ":"JWT"}, iss/sub as
  above (account upper case, without the region of a locator), iat not in the
  future (60 s skew), exp in the future and exp - iat <= 3600
  -> else 401 {"code": "390144", "message": "JWT token is invalid. [uuid]"};
  X-Snowflake-Authorization-Token-Type: KEYPAIR_JWT, Accept: application/json,
  a User-Agent, and Content-Type: application/json on POSTs -> else 400/415.

Routes:
  POST /api/v2/statements[?async=true&requestId=UUID&retry=true]
       body {"statement": SQL, timeout?, database?, schema?, warehouse?, role?,
             bindings?, parameters?}; other fields -> 400.
       Syntax errors -> 422 {"code","message","sqlState","statementHandle"}.
       async=true -> 202 QueryStatus {"code": "333334", ...}; else runs it.
       The same requestId with retry=true returns the statement already made.
  GET  /api/v2/statements/<handle>          202 while "running" (running_polls
       polls), then 200 ResultSet (metadata + partition 0) or 422 on failure
       (unknown table: code 002003, sqlState 42S02).
  GET  /api/v2/statements/<handle>?partition=N   200 {"data": [...]}, sent with
       Content-Encoding: gzip for N >= 1.
  POST /api/v2/statements/<handle>/cancel  200.
SQL understood: SELECT <* | col, ...> FROM <table> [LIMIT n] over the tables
given in the data file: {"TABLE": {"columns": [rowType entries], "rows":
[[cell strings or null, ...], ...]}}; anything else -> syntax error naming
the first word it cannot read.

Control (no auth): GET /_state (counters), POST /_control (faults to merge;
{"tables": {...}} replaces the data, {"reset": true} the counters),
POST /_shutdown. Faults: partition_rows (rows per partition), running_polls,
post_429 / partition_429 (answer the next N with 429 + Retry-After:
retry_after), partition_delay (seconds before each partition), reject_tokens
(the next N valid tokens get 401 390144, as an expired one would),
statement_delay (seconds a statement "runs" before it completes).
"""
import argparse
import gzip
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from jwt_verify import Verifier, b64url_decode  # noqa: E402


class State:
    def __init__(self, verifier, account, user, tables):
        self.lock = threading.Lock()
        self.verifier = verifier
        self.account = account.split(".")[0].upper()
        self.user = user.upper()
        self.tables = tables
        self.statements = {}  # handle -> dict
        self.request_ids = {}  # requestId -> handle
        self.faults = self.default_faults()
        self.counters = self.zero_counters()

    @staticmethod
    def default_faults():
        return {"partition_rows": 1000, "running_polls": 1, "post_429": 0, "partition_429": 0,
                "retry_after": 1, "partition_delay": 0, "reject_tokens": 0, "statement_delay": 0}

    @staticmethod
    def zero_counters():
        return {"requests": 0, "statements": 0, "polls": 0, "partitions": 0, "cancels": 0,
                "gzip_partitions": 0, "sent_429": 0, "rejected_401": 0, "tokens": [],
                "iats": [], "last_body": None, "bad_requests": 0, "auth_errors": []}

    def take(self, name):
        with self.lock:
            if self.faults.get(name, 0) > 0:
                self.faults[name] -= 1
                return True
            return False


def error_body(code, message, sql_state=None, handle=None):
    body = {"code": code, "message": message}
    if sql_state:
        body["sqlState"] = sql_state
    if handle:
        body["statementHandle"] = handle
    return body


SELECT_RE = re.compile(r"^\s*SELECT\s+(?P<cols>.+?)\s+FROM\s+(?P<table>[A-Za-z_][\w.]*)"
                       r"(?:\s+LIMIT\s+(?P<limit>\d+))?\s*;?\s*$", re.I | re.S)


def first_unexpected(sql):
    """Where the little grammar above stops: (position, word)."""
    m = re.match(r"^\s*SELECT\s+.+?\s+FROM\s+\S+\s+", sql, re.I | re.S)
    if m and m.end() < len(sql):
        return m.end(), sql[m.end():].split()[0]
    word = (sql.split() or ["<EOF>"])[0]
    return sql.find(word) if word in sql else 0, word


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "SnowflakeContract/1"

    def setup(self):
        super().setup()
        # Headers and body go out in two writes: without TCP_NODELAY the body
        # waits for the client's delayed ACK (~40 ms a request on keep-alive).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *args):
        pass

    @property
    def st(self):
        return self.server.state

    def reply(self, code, body, extra=None, gz=False):
        data = json.dumps(body).encode()
        if gz:
            data = gzip.compress(data)
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        if gz:
            self.send_header("Content-Encoding", "gzip")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    # ---- checks
    def bad(self, code, message, status=400):
        with self.st.lock:
            self.st.counters["bad_requests"] += 1
        self.reply(status, error_body(code, message))
        return False

    def auth_fail(self, why):
        with self.st.lock:
            self.st.counters["rejected_401"] += 1
            self.st.counters["auth_errors"].append(why)
        self.reply(401, error_body("390144", f"JWT token is invalid. [{uuid.uuid4()}]", "08001"))
        return False

    def check_request(self, post):
        h = self.headers
        if h.get("X-Snowflake-Authorization-Token-Type") != "KEYPAIR_JWT":
            return self.bad("391907", "X-Snowflake-Authorization-Token-Type must be KEYPAIR_JWT")
        if "application/json" not in (h.get("Accept") or ""):
            return self.bad("391902", "Accept must be application/json")
        if not h.get("User-Agent"):
            return self.bad("391903", "User-Agent header is required")
        if post and (h.get("Content-Type") or "").split(";")[0].strip() != "application/json":
            return self.bad("391904", "Content-Type must be application/json", 415)
        auth = h.get("Authorization") or ""
        if not auth.startswith("Bearer "):
            return self.auth_fail("no bearer token")
        token = auth[7:]
        parts = token.split(".")
        if len(parts) != 3:
            return self.auth_fail("not a compact JWT")
        try:
            header = json.loads(b64url_decode(parts[0]))
            claims = json.loads(b64url_decode(parts[1]))
            sig = b64url_decode(parts[2])
        except Exception:
            return self.auth_fail("undecodable JWT")
        if header.get("alg") != "RS256" or header.get("typ", "JWT") != "JWT":
            return self.auth_fail("alg is not RS256")
        if not self.st.verifier.verify(f"{parts[0]}.{parts[1]}".encode(), sig):
            return self.auth_fail("bad signature")
        sub = f"{self.st.account}.{self.st.user}"
        if claims.get("sub") != sub:
            return self.auth_fail(f"sub {claims.get('sub')!r} != {sub!r}")
        if claims.get("iss") != f"{sub}.{self.st.verifier.fingerprint}":
            return self.auth_fail("iss does not name the key's fingerprint")
        iat, exp, now = claims.get("iat"), claims.get("exp"), time.time()
        if not isinstance(iat, int) or not isinstance(exp, int):
            return self.auth_fail("iat/exp not integers")
        if iat > now + 60:
            return self.auth_fail("iat in the future")
        if exp <= now:
            return self.auth_fail("expired")
        if exp - iat > 3600:
            return self.auth_fail("lifetime over one hour")
        if self.st.take("reject_tokens"):
            return self.auth_fail("rejected by fault")
        with self.st.lock:
            c = self.st.counters
            if token not in c["tokens"]:
                c["tokens"].append(token)
                c["iats"].append(iat)
        return True

    # ---- routes
    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        with self.st.lock:
            self.st.counters["requests"] += 1
        if url.path == "/_state":
            with self.st.lock:
                c = dict(self.st.counters)
                c["tokens"] = len(c["tokens"])
                return self.reply(200, {"counters": c, "faults": self.st.faults})
        m = re.fullmatch(r"/api/v2/statements/([\w-]+)", url.path)
        if not m:
            return self.reply(404, error_body("390404", "Not found"))
        if not self.check_request(False):
            return
        q = urllib.parse.parse_qs(url.query)
        handle = m.group(1)
        stmt = self.st.statements.get(handle)
        if not stmt:
            return self.reply(404, error_body("333333", "Statement not found", None, handle))
        if "partition" in q:
            return self.partition(stmt, q["partition"][0])
        with self.st.lock:
            self.st.counters["polls"] += 1
            stmt["polls"] += 1
            running = (stmt["polls"] <= self.st.faults["running_polls"]
                       or time.time() - stmt["created"] < self.st.faults["statement_delay"])
        if stmt["cancelled"]:
            return self.reply(422, error_body("000604", "SQL execution canceled", "57014", handle))
        if running:
            return self.reply(202, self.query_status(handle))
        if stmt["error"]:
            return self.reply(422, stmt["error"])
        return self.reply(200, self.result_set(stmt))

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        body = self.read_body()
        with self.st.lock:
            self.st.counters["requests"] += 1
        if url.path == "/_control":
            kw = json.loads(body or b"{}")
            with self.st.lock:
                if kw.pop("reset", False):
                    self.st.counters = State.zero_counters()
                if "tables" in kw:
                    self.st.tables = {k.upper(): v for k, v in kw.pop("tables").items()}
                self.st.faults.update(kw)
            return self.reply(200, {"faults": self.st.faults})
        if url.path == "/_shutdown":
            self.reply(200, {})
            threading.Thread(target=self.server.shutdown, daemon=True).start()
            return
        m = re.fullmatch(r"/api/v2/statements/([\w-]+)/cancel", url.path)
        if m:
            if not self.check_request(True):
                return
            stmt = self.st.statements.get(m.group(1))
            if not stmt:
                return self.reply(404, error_body("333333", "Statement not found"))
            with self.st.lock:
                stmt["cancelled"] = True
                self.st.counters["cancels"] += 1
            return self.reply(200, {"code": "000604", "message": "Statement cancellation requested.",
                                    "sqlState": "00000", "statementHandle": m.group(1)})
        if url.path != "/api/v2/statements":
            return self.reply(404, error_body("390404", "Not found"))
        if not self.check_request(True):
            return
        if self.st.take("post_429"):
            with self.st.lock:
                self.st.counters["sent_429"] += 1
            return self.reply(429, error_body("000000", "Too many requests"),
                              {"Retry-After": str(self.st.faults["retry_after"])})
        try:
            req = json.loads(body)
        except ValueError:
            return self.bad("391901", "The request body is not valid JSON")
        allowed = {"statement", "timeout", "database", "schema", "warehouse", "role", "bindings",
                   "parameters"}
        if not isinstance(req, dict) or not isinstance(req.get("statement"), str):
            return self.bad("391901", "statement is required")
        if set(req) - allowed:
            return self.bad("391901", f"Unknown field(s): {sorted(set(req) - allowed)}")
        if "timeout" in req and (not isinstance(req["timeout"], int) or req["timeout"] < 0):
            return self.bad("391901", "timeout must be a non-negative integer")
        q = urllib.parse.parse_qs(url.query)
        rid = q.get("requestId", [None])[0]
        if rid is not None:
            try:
                uuid.UUID(rid)
            except ValueError:
                return self.bad("391901", "requestId must be a UUID")
        with self.st.lock:
            self.st.counters["last_body"] = req
            if rid and q.get("retry", ["false"])[0] == "true" and rid in self.st.request_ids:
                handle = self.st.request_ids[rid]
                return self.reply(202, self.query_status(handle))
        handle = str(uuid.uuid4())
        stmt = {"handle": handle, "sql": req["statement"], "polls": 0, "created": time.time(),
                "cancelled": False, "error": None, "columns": None, "rows": None}
        syntax = self.compile(stmt)
        if syntax:
            return self.reply(422, syntax)
        with self.st.lock:
            self.st.statements[handle] = stmt
            self.st.counters["statements"] += 1
            if rid:
                self.st.request_ids[rid] = handle
        if q.get("async", ["false"])[0] == "true":
            return self.reply(202, self.query_status(handle))
        if stmt["error"]:
            return self.reply(422, stmt["error"])
        return self.reply(200, self.result_set(stmt))

    # ---- the SQL engine and results
    def compile(self, stmt):
        m = SELECT_RE.match(stmt["sql"])
        if not m:
            pos, word = first_unexpected(stmt["sql"])
            return error_body("001003", f"SQL compilation error:\nsyntax error line 1 at position "
                              f"{pos} unexpected '{word}'.", "42000", stmt["handle"])
        table = m.group("table").split(".")[-1].upper()
        t = self.st.tables.get(table)
        if t is None:
            stmt["error"] = error_body(
                "002003", f"SQL compilation error:\nObject '{table}' does not exist or not "
                "authorized.", "42S02", stmt["handle"])
            return None
        names = [c["name"] for c in t["columns"]]
        cols = m.group("cols").strip()
        if cols == "*":
            idx = list(range(len(names)))
        else:
            idx = []
            for c in (x.strip().strip('"').upper() for x in cols.split(",")):
                if c not in names:
                    stmt["error"] = error_body(
                        "000904", f"SQL compilation error: error line 1 at position 7\n"
                        f"invalid identifier '{c}'", "42000", stmt["handle"])
                    return None
                idx.append(names.index(c))
        rows = t["rows"]
        if m.group("limit"):
            rows = rows[:int(m.group("limit"))]
        stmt["columns"] = [t["columns"][i] for i in idx]
        stmt["rows"] = [[r[i] for i in idx] for r in rows]
        return None

    def query_status(self, handle):
        return {"code": "333334",
                "message": "Asynchronous execution in progress. Use provided query id to perform "
                           "query monitoring and management.",
                "statementHandle": handle, "statementStatusUrl": f"/api/v2/statements/{handle}"}

    def partitions(self, stmt):
        n = max(1, int(self.st.faults["partition_rows"]))
        rows = stmt["rows"]
        return [rows[i:i + n] for i in range(0, len(rows), n)] or [[]]

    def result_set(self, stmt):
        parts = self.partitions(stmt)
        info = []
        for p in parts:
            raw = len(json.dumps(p))
            info.append({"rowCount": len(p), "uncompressedSize": raw})
        return {"resultSetMetaData": {"numRows": len(stmt["rows"]), "format": "jsonv2",
                                      "partitionInfo": info, "rowType": stmt["columns"]},
                "data": parts[0], "code": "090001", "sqlState": "00000",
                "statementStatusUrl": f"/api/v2/statements/{stmt['handle']}",
                "statementHandle": stmt["handle"], "message": "Statement executed successfully.",
                "createdOn": int(stmt["created"] * 1000)}

    def partition(self, stmt, n):
        if stmt["rows"] is None or stmt["error"] or stmt["cancelled"]:
            return self.reply(422, error_body("000709", "Statement has no result", None,
                                              stmt["handle"]))
        parts = self.partitions(stmt)
        try:
            i = int(n)
            assert 0 <= i < len(parts)
        except (ValueError, AssertionError):
            return self.reply(422, error_body("000709", f"Invalid partition {n}", None,
                                              stmt["handle"]))
        if self.st.take("partition_429"):
            with self.st.lock:
                self.st.counters["sent_429"] += 1
            return self.reply(429, error_body("000000", "Too many requests"),
                              {"Retry-After": str(self.st.faults["retry_after"])})
        delay = self.st.faults["partition_delay"]
        if delay:
            time.sleep(delay)
        gz = i >= 1
        with self.st.lock:
            self.st.counters["partitions"] += 1
            self.st.counters["gzip_partitions"] += 1 if gz else 0
        self.reply(200, {"data": parts[i]}, gz=gz)


class Server(ThreadingHTTPServer):
    daemon_threads = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--public-key", required=True)
    ap.add_argument("--account", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--data", required=True, help="JSON file of tables")
    ap.add_argument("--faults", default="{}")
    a = ap.parse_args()
    with open(a.data) as f:
        tables = {k.upper(): v for k, v in json.load(f).items()}
    st = State(Verifier(a.public_key), a.account, a.user, tables)
    st.faults.update(json.loads(a.faults))
    srv = Server(("127.0.0.1", a.port), Handler)
    srv.state = st
    if a.port_file:
        tmp = a.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(srv.server_address[1]))
        os.replace(tmp, a.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


class SnowflakeServer:
    """Runs this server as a subprocess for a test.

        s = SnowflakeServer(dir, public_key_path, "XY12345", "BACKFLOW", tables, faults)
        s.url ... s.state() ... s.control(post_429=1) ... s.stop()
    """

    def __init__(self, workdir, public_key, account, user, tables, faults=None):
        import urllib.request  # noqa: F401
        data = os.path.join(workdir, "sf_tables.json")
        with open(data, "w") as f:
            json.dump(tables, f)
        port_file = os.path.join(workdir, "sf_port")
        self.log = open(os.path.join(workdir, "sf_server.log"), "wb")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--port-file", port_file,
             "--public-key", public_key, "--account", account, "--user", user, "--data", data,
             "--faults", json.dumps(faults or {})],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        wait = 0.005
        while not os.path.exists(port_file):
            if self.proc.poll() is not None:
                raise RuntimeError("snowflake_server exited: " + open(self.log.name).read())
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("snowflake_server did not start")
            time.sleep(wait)
            wait = min(wait * 2, 0.05)
        with open(port_file) as f:
            self.port = int(f.read())
        self.url = f"http://127.0.0.1:{self.port}"

    def _call(self, method, route, payload=None):
        import urllib.request
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(self.url + route, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"{}")

    def state(self):
        return self._call("GET", "/_state")["counters"]

    def control(self, **kw):
        return self._call("POST", "/_control", kw)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


if __name__ == "__main__":
    sys.exit(main())
