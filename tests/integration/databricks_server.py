#!/usr/bin/env python3
"""Strict local contract server for the Databricks SQL Statement Execution API
2.0, its OAuth M2M token endpoint and the cloud storage behind EXTERNAL_LINKS,
for Backflow's integration tests (Python 3 stdlib only).

Written from the vendor's published reference:
  Statement Execution API (v1 of the reference = API 2.0 paths):
    https://docs.databricks.com/api/statement-execution/v1/statement-execution.md
    POST /api/2.0/sql/statements (statement and warehouse_id required;
      wait_timeout "0s" or 5s..50s; on_wait_timeout CONTINUE | CANCEL;
      disposition INLINE | EXTERNAL_LINKS; format JSON_ARRAY | ARROW_STREAM |
      CSV, INLINE only with JSON_ARRAY; catalog, schema, row_limit,
      byte_limit, parameters)
    GET /api/2.0/sql/statements/{id}: status.state PENDING, RUNNING,
      SUCCEEDED, FAILED (status.error {error_code, message}, sql_state),
      CANCELED, CLOSED; manifest {format, schema {column_count, columns
      [{name, type_text, type_name, position, type_precision, type_scale}]},
      total_chunk_count, chunks, total_row_count, truncated}; result = the
      first chunk
      https://docs.databricks.com/api/statement-execution/v1/get-statement-result
    GET /api/2.0/sql/statements/{id}/result/chunks/{chunk_index}: the same
      result object (chunk_index, row_offset, row_count, data_array or
      external_links [{external_link, expiration, http_headers, ...}],
      next_chunk_index, next_chunk_internal_link)
      https://docs.databricks.com/api/statement-execution/v1/get-result-data.md
    POST /api/2.0/sql/statements/{id}/cancel
  External links: presigned URLs valid <= 15 minutes; "you must not set an
    Authorization header" on them, but must send the link's http_headers; an
    expired link is replaced by fetching the chunk again. Storage answers a
    request with a second auth mechanism 400 InvalidArgument and an expired
    URL 403 AccessDenied "Request has expired" (S3 semantics).
  REST errors: {"error_code": "...", "message": "..."} with the HTTP status.
  OAuth M2M: POST https://<host>/oidc/v1/token with HTTP Basic
    client_id:client_secret, form grant_type=client_credentials&scope=all-apis;
    {"access_token", "token_type": "Bearer", "expires_in": 3600, "scope"};
    failures {"error": "invalid_client", "error_description"}
    https://docs.databricks.com/aws/en/dev-tools/auth/oauth-m2m.md

Routes: the above, GET /_storage/<key> (the links), GET /_state,
POST /_control (faults; {"tables": ...}; {"reset": true}).
SQL understood: SELECT <* | col, ...> FROM <[catalog.]schema.table> [LIMIT n].
Faults: chunk_rows, running_polls, job_delay (s), token_expires_in (s),
link_ttl (s), expire_links (next N downloads get 403 expired), revoke_tokens
(next N API requests get 401), chunk_delay (s), post_429.
"""
import argparse
import base64
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SELECT_RE = re.compile(r"^\s*SELECT\s+(?P<cols>.+?)\s+FROM\s+`?(?P<table>[\w.]+)`?"
                       r"(?:\s+LIMIT\s+(?P<limit>\d+))?\s*;?\s*$", re.I | re.S)
STATEMENT_KEYS = {"statement", "warehouse_id", "wait_timeout", "on_wait_timeout", "disposition",
                  "format", "catalog", "schema", "row_limit", "byte_limit", "parameters"}


def rest_error(code, message):
    return {"error_code": code, "message": message}


def iso(t):
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class State:
    def __init__(self, warehouse_id, pat, client_id, client_secret, tables):
        self.lock = threading.Lock()
        self.warehouse_id = warehouse_id
        self.pat = pat
        self.client = (client_id, client_secret)
        self.tables = tables
        self.tokens = {}  # OAuth access token -> expiry
        self.statements = {}
        self.links = {}  # storage key -> (statement id, chunk index, expiry, header value)
        self.faults = {"chunk_rows": 1000, "running_polls": 1, "job_delay": 0,
                       "token_expires_in": 3600, "link_ttl": 900, "expire_links": 0,
                       "revoke_tokens": 0, "chunk_delay": 0, "post_429": 0}
        self.counters = self.zero()

    @staticmethod
    def zero():
        return {"grants": 0, "grant_errors": [], "statements": 0, "polls": 0, "chunks": [],
                "downloads": [], "expired_links": 0, "cancels": 0, "rejected_401": 0,
                "bad_requests": [], "last_body": None, "sent_429": 0, "auth_on_links": 0}

    def take(self, name):
        with self.lock:
            if self.faults.get(name, 0) > 0:
                self.faults[name] -= 1
                return True
            return False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *args):
        pass

    @property
    def st(self):
        return self.server.state

    def reply(self, code, body, extra=None, ctype="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def bad(self, message, code="INVALID_PARAMETER_VALUE"):
        with self.st.lock:
            self.st.counters["bad_requests"].append(message)
        return self.reply(400, rest_error(code, message))

    # ---- OAuth M2M
    def token(self, raw):
        def refuse(status, error, why):
            with self.st.lock:
                self.st.counters["grant_errors"].append(why)
            return self.reply(status, {"error": error, "error_description": why})
        if (self.headers.get("Content-Type") or "").split(";")[0] != \
                "application/x-www-form-urlencoded":
            return refuse(400, "invalid_request",
                          "Content-Type must be application/x-www-form-urlencoded")
        auth = self.headers.get("Authorization") or ""
        try:
            cid, _, secret = base64.b64decode(auth[6:]).decode().partition(":") \
                if auth.startswith("Basic ") else ("", "", "")
        except ValueError:
            cid, secret = "", ""
        if (urllib.parse.unquote(cid), urllib.parse.unquote(secret)) != self.st.client:
            return refuse(401, "invalid_client", "Client authentication failed")
        form = urllib.parse.parse_qs(raw.decode(), strict_parsing=True)
        if form.get("grant_type") != ["client_credentials"]:
            return refuse(400, "unsupported_grant_type", "grant_type must be client_credentials")
        if form.get("scope") != ["all-apis"]:
            return refuse(400, "invalid_scope", "scope must be all-apis")
        token = "eyJraWQiOi" + secrets.token_urlsafe(32)
        life = int(self.st.faults["token_expires_in"])
        with self.st.lock:
            self.st.tokens[token] = time.time() + life
            self.st.counters["grants"] += 1
        self.reply(200, {"access_token": token, "token_type": "Bearer", "expires_in": life,
                         "scope": "all-apis"})

    def authorized(self):
        auth = self.headers.get("Authorization") or ""
        token = auth[7:] if auth.startswith("Bearer ") else None
        ok = bool(token) and (token == self.st.pat or self.st.tokens.get(token, 0) > time.time())
        if ok and self.st.take("revoke_tokens"):
            ok = False
        if not ok:
            with self.st.lock:
                self.st.counters["rejected_401"] += 1
            self.reply(401, rest_error("UNAUTHENTICATED", "Invalid access token."))
        return ok

    # ---- routes
    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        raw = self.body()
        if url.path == "/_control":
            kw = json.loads(raw or b"{}")
            with self.st.lock:
                if kw.pop("reset", False):
                    self.st.counters = State.zero()
                if "tables" in kw:
                    self.st.tables = {k.upper(): v for k, v in kw.pop("tables").items()}
                self.st.faults.update(kw)
            return self.reply(200, {"faults": self.st.faults})
        if url.path == "/oidc/v1/token":
            return self.token(raw)
        m = re.fullmatch(r"/api/2\.0/sql/statements(?:/([\w-]+)/cancel)?/?", url.path)
        if not m:
            return self.reply(404, rest_error("ENDPOINT_NOT_FOUND", "No API found for "
                                              f"'POST {url.path}'"))
        if not self.authorized():
            return
        if m.group(1):
            s = self.st.statements.get(m.group(1))
            if not s:
                return self.reply(404, rest_error("RESOURCE_DOES_NOT_EXIST",
                                                  f"Statement {m.group(1)} not found"))
            with self.st.lock:
                s["state"] = "CANCELED"
                self.st.counters["cancels"] += 1
            return self.reply(200, {})
        if (self.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
            return self.bad("Content-Type must be application/json")
        if self.st.take("post_429"):
            with self.st.lock:
                self.st.counters["sent_429"] += 1
            return self.reply(429, rest_error("TOO_MANY_REQUESTS", "Too many requests"),
                              {"Retry-After": "1"})
        try:
            req = json.loads(raw)
        except ValueError:
            return self.bad("Malformed request: invalid JSON", "MALFORMED_REQUEST")
        if not isinstance(req, dict):
            return self.bad("Malformed request", "MALFORMED_REQUEST")
        unknown = set(req) - STATEMENT_KEYS
        if unknown:
            return self.bad(f"Unknown field: {sorted(unknown)[0]}")
        for k in ("statement", "warehouse_id"):
            if not isinstance(req.get(k), str) or not req[k]:
                return self.bad(f"Missing required field: {k}")
        if req["warehouse_id"] != self.st.warehouse_id:
            return self.bad(f"Warehouse {req['warehouse_id']} does not exist.",
                            "RESOURCE_DOES_NOT_EXIST")
        wait = req.get("wait_timeout", "10s")
        wm = re.fullmatch(r"(\d+)s", str(wait))
        if not wm or not (int(wm.group(1)) == 0 or 5 <= int(wm.group(1)) <= 50):
            return self.bad("wait_timeout must be 0s or between 5s and 50s")
        if req.get("on_wait_timeout", "CONTINUE") not in ("CONTINUE", "CANCEL"):
            return self.bad("on_wait_timeout must be CONTINUE or CANCEL")
        disp = req.get("disposition", "INLINE")
        fmt = req.get("format", "JSON_ARRAY")
        if disp not in ("INLINE", "EXTERNAL_LINKS") or \
                fmt not in ("JSON_ARRAY", "ARROW_STREAM", "CSV"):
            return self.bad("Invalid disposition or format")
        if disp == "INLINE" and fmt != "JSON_ARRAY":
            return self.bad("INLINE disposition only supports JSON_ARRAY format")
        if fmt != "JSON_ARRAY":
            return self.bad("this contract server only serves JSON_ARRAY")
        sid = "01ef" + secrets.token_hex(14)
        s = {"id": sid, "created": time.time(), "polls": 0, "state": "PENDING",
             "disposition": disp, "error": None, "next_chunk": 0}
        self.compile(req, s)
        with self.st.lock:
            self.st.statements[sid] = s
            self.st.counters["statements"] += 1
            self.st.counters["last_body"] = req
        self.reply(200, self.response(s))

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/_state":
            with self.st.lock:
                return self.reply(200, {"counters": self.st.counters, "faults": self.st.faults})
        if url.path.startswith("/_storage/"):
            return self.storage(url)
        m = re.fullmatch(r"/api/2\.0/sql/statements/([\w-]+)(?:/result/chunks/(-?\d+))?", url.path)
        if not m:
            return self.reply(404, rest_error("ENDPOINT_NOT_FOUND",
                                              f"No API found for 'GET {url.path}'"))
        if not self.authorized():
            return
        s = self.st.statements.get(m.group(1))
        if not s:
            return self.reply(404, rest_error("RESOURCE_DOES_NOT_EXIST",
                                              f"Statement {m.group(1)} not found"))
        if m.group(2) is None:
            with self.st.lock:
                self.st.counters["polls"] += 1
            return self.reply(200, self.response(s))
        if s["state"] != "SUCCEEDED":
            return self.bad(f"Statement {s['id']} is {s['state']}; no result to fetch",
                            "BAD_REQUEST")
        i = int(m.group(2))
        if i < 0 or i >= len(s["chunks"]):
            return self.bad(f"chunk_index {i} is out of range [0, {len(s['chunks'])})")
        # A client reads chunks in order; asking again for the chunk just read
        # (a fresh external link) is allowed, skipping one is not.
        if i > s["next_chunk"]:
            return self.bad(f"chunk {i} requested before chunk {s['next_chunk']}")
        if self.st.faults["chunk_delay"]:
            time.sleep(self.st.faults["chunk_delay"])
        with self.st.lock:
            self.st.counters["chunks"].append(i)
            s["next_chunk"] = max(s["next_chunk"], i + 1)
        self.reply(200, self.chunk(s, i))

    def storage(self, url):
        key = url.path[len("/_storage/"):]
        link = self.st.links.get(key)
        q = urllib.parse.parse_qs(url.query)
        if self.headers.get("Authorization"):
            with self.st.lock:
                self.st.counters["auth_on_links"] += 1
            return self.reply(400, b"<Error><Code>InvalidArgument</Code><Message>Only one auth "
                              b"mechanism allowed</Message></Error>", ctype="application/xml")
        if not link or q.get("X-Amz-Signature") != [link["signature"]]:
            return self.reply(403, b"<Error><Code>SignatureDoesNotMatch</Code></Error>",
                              ctype="application/xml")
        if self.headers.get("x-amz-server-side-encryption-customer-key") != link["sse_key"]:
            return self.reply(400, b"<Error><Code>InvalidRequest</Code><Message>The "
                              b"encryption key is missing</Message></Error>",
                              ctype="application/xml")
        if time.time() >= link["expires"] or self.st.take("expire_links"):
            with self.st.lock:
                self.st.counters["expired_links"] += 1
            return self.reply(403, b"<Error><Code>AccessDenied</Code><Message>Request has "
                              b"expired</Message></Error>", ctype="application/xml")
        s = self.st.statements[link["statement"]]
        lo, hi = s["chunks"][link["chunk"]]
        with self.st.lock:
            self.st.counters["downloads"].append(link["chunk"])
        self.reply(200, json.dumps(s["rows"][lo:hi]).encode())

    # ---- engine
    def compile(self, req, s):
        def fail(code, message, sql_state):
            s["state"] = "FAILED"
            s["error"] = {"error_code": code, "message": message}
            s["sql_state"] = sql_state
        sql = req["statement"]
        m = SELECT_RE.match(sql)
        if not m:
            word = (re.sub(r"^\s*SELECT\s+.+?\s+FROM\s+\S+\s+", "", sql, flags=re.I | re.S)
                    .split() or ["<EOF>"])[0]
            return fail("BAD_REQUEST", f"[PARSE_SYNTAX_ERROR] Syntax error at or near '{word}'. "
                        "SQLSTATE: 42601", "42601")
        parts = m.group("table").split(".")
        if len(parts) == 1 and req.get("schema"):
            parts = [req["schema"], parts[0]]
        if len(parts) == 2:
            parts = [req.get("catalog") or "hive_metastore", *parts]
        t = self.st.tables.get(".".join(parts).upper())
        if t is None:
            return fail("BAD_REQUEST", "[TABLE_OR_VIEW_NOT_FOUND] The table or view "
                        + ".".join(f"`{p}`" for p in parts) + " cannot be found. Verify the "
                        "spelling and correctness of the schema and catalog. SQLSTATE: 42P01",
                        "42P01")
        cols = t["columns"]
        names = [c["name"].upper() for c in cols]
        sel = m.group("cols").strip()
        idx = list(range(len(cols))) if sel == "*" else []
        if sel != "*":
            for c in (x.strip().strip("`").upper() for x in sel.split(",")):
                if c not in names:
                    return fail("BAD_REQUEST", f"[UNRESOLVED_COLUMN.WITH_SUGGESTION] A column "
                                f"with name `{c}` cannot be resolved. SQLSTATE: 42703", "42703")
                idx.append(names.index(c))
        rows = t["rows"][:int(m.group("limit"))] if m.group("limit") else t["rows"]
        s["columns"] = [dict(cols[i], position=k) for k, i in enumerate(idx)]
        s["rows"] = [[r[i] for i in idx] for r in rows]
        n = int(self.st.faults["chunk_rows"])
        s["chunks"] = [(lo, min(lo + n, len(rows))) for lo in range(0, len(rows), n)] or [(0, 0)]

    def response(self, s):
        with self.st.lock:
            s["polls"] += 1
            if s["state"] == "PENDING" and s["polls"] > 1:
                s["state"] = "RUNNING"
            if s["state"] in ("PENDING", "RUNNING") and \
                    s["polls"] > self.st.faults["running_polls"] and \
                    time.time() - s["created"] >= self.st.faults["job_delay"]:
                s["state"] = "SUCCEEDED"
        out = {"statement_id": s["id"], "status": {"state": s["state"]}}
        if s["state"] == "FAILED":
            out["status"]["error"] = s["error"]
            out["status"]["sql_state"] = s["sql_state"]
        if s["state"] != "SUCCEEDED":
            return out
        out["manifest"] = {
            "format": "JSON_ARRAY",
            "schema": {"column_count": len(s["columns"]), "columns": s["columns"]},
            "total_chunk_count": len(s["chunks"]),
            "chunks": [{"chunk_index": i, "row_offset": lo, "row_count": hi - lo}
                       for i, (lo, hi) in enumerate(s["chunks"])],
            "total_row_count": len(s["rows"]), "truncated": False}
        with self.st.lock:
            s["next_chunk"] = max(s["next_chunk"], 1)
        out["result"] = self.chunk(s, 0)
        return out

    def chunk(self, s, i):
        lo, hi = s["chunks"][i]
        c = {"chunk_index": i, "row_offset": lo, "row_count": hi - lo}
        nxt = {}
        if i + 1 < len(s["chunks"]):
            nxt = {"next_chunk_index": i + 1, "next_chunk_internal_link":
                   f"/api/2.0/sql/statements/{s['id']}/result/chunks/{i + 1}"}
        if s["disposition"] == "INLINE":
            return dict(c, data_array=s["rows"][lo:hi], **nxt)
        key = secrets.token_hex(16)
        link = {"statement": s["id"], "chunk": i, "signature": secrets.token_hex(20),
                "expires": time.time() + float(self.st.faults["link_ttl"]),
                "sse_key": base64.b64encode(secrets.token_bytes(32)).decode()}
        with self.st.lock:
            self.st.links[key] = link
        port = self.server.server_address[1]
        ext = dict(c, byte_count=len(json.dumps(s["rows"][lo:hi])),
                   external_link=f"http://127.0.0.1:{port}/_storage/{key}?X-Amz-Algorithm="
                   f"AWS4-HMAC-SHA256&X-Amz-Signature={link['signature']}",
                   expiration=iso(link["expires"]),
                   http_headers={"x-amz-server-side-encryption-customer-key": link["sse_key"]},
                   **nxt)
        return dict(c, external_links=[ext], **nxt)


class Server(ThreadingHTTPServer):
    daemon_threads = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--config", required=True, help="JSON: warehouse_id, pat, client_id, "
                    "client_secret, tables, faults")
    a = ap.parse_args()
    with open(a.config) as f:
        c = json.load(f)
    srv = Server(("127.0.0.1", 0), Handler)
    st = State(c["warehouse_id"], c["pat"], c["client_id"], c["client_secret"],
               {k.upper(): v for k, v in c["tables"].items()})
    st.faults.update(c.get("faults") or {})
    srv.state = st
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.replace(tmp, a.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


class DatabricksServer:
    """Runs this server for a test."""

    def __init__(self, workdir, tables, warehouse_id="abcdef1234567890", pat="dapi0123abcd",
                 client_id="sp-client", client_secret="dose-secret-0123", faults=None):
        port_file = os.path.join(workdir, "dbx_port")
        conf = os.path.join(workdir, "dbx_server.json")
        with open(conf, "w") as f:
            json.dump({"warehouse_id": warehouse_id, "pat": pat, "client_id": client_id,
                       "client_secret": client_secret, "tables": tables,
                       "faults": faults or {}}, f)
        self.log = open(os.path.join(workdir, "dbx_server.log"), "wb")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--port-file", port_file,
             "--config", conf], stdin=subprocess.DEVNULL, stdout=self.log,
            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while not os.path.exists(port_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("databricks_server did not start: " +
                                   open(self.log.name).read())
            time.sleep(0.01)
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
