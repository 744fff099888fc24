#!/usr/bin/env python3
"""Strict local contract server for the BigQuery REST API v2 and Google's
OAuth 2.0 token endpoint (service accounts), for Backflow's integration
tests (Python 3 stdlib + `cryptography`, or the `openssl` command).

Written from the vendor's published reference:
  jobs.query: https://cloud.google.com/bigquery/docs/reference/rest/v2/jobs/query
    (QueryRequest: query, useLegacySql — true unless set, so a client must
    send false for GoogleSQL —, maxResults, timeoutMs, location, requestId,
    formatOptions, jobTimeoutMs, defaultDataset; QueryResponse: jobReference,
    jobComplete, schema, rows, pageToken, totalRows)
  jobs.getQueryResults:
    https://cloud.google.com/bigquery/docs/reference/rest/v2/jobs/getQueryResults
    (pageToken, maxResults, timeoutMs, location "must be specified" outside
    US/EU; jobComplete false until done)
  jobs.cancel: https://cloud.google.com/bigquery/docs/reference/rest/v2/jobs/cancel
  DataFormatOptions.useInt64Timestamp (TIMESTAMP as int64 microseconds, else
    float seconds): https://cloud.google.com/bigquery/docs/reference/rest/v2/DataFormatOptions
  Errors ({"error": {"code", "message", "errors": [{"reason", ...}], "status"}};
    invalidQuery 400, notFound 404, rateLimitExceeded 403, 429, 401 authError):
    https://cloud.google.com/bigquery/docs/error-messages
  Service-account tokens (JWT header {"alg":"RS256","typ":"JWT","kid"}, claims
    iss = client_email, scope, aud = token_uri, iat, exp <= iat + 1 h; POST
    grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=JWT as
    application/x-www-form-urlencoded; {"access_token","expires_in",
    "token_type"}; errors {"error": "invalid_grant", "error_description"}):
    https://developers.google.com/identity/protocols/oauth2/service-account

Routes:
  POST /token                                        the token endpoint
  POST /bigquery/v2/projects/<p>/queries             jobs.query
  GET  /bigquery/v2/projects/<p>/queries/<job>       jobs.getQueryResults
  POST /bigquery/v2/projects/<p>/jobs/<job>/cancel   jobs.cancel
  GET /_state, POST /_control (faults; {"tables": ...}; {"reset": true})
Every API request needs Authorization: Bearer <a token this server issued,
not expired> (else 401 authError). The project must be the configured one
and a job's location the datasets' location.
SQL understood: SELECT <* | col, ...> FROM [`]<[project.]dataset.table>[`] [LIMIT n].
Faults: page_rows, running_polls, job_delay (seconds), post_429, page_429,
rate_limit_403 (next N pages get 403 rateLimitExceeded), retry_after,
page_delay, token_expires_in (seconds), revoke_tokens (next N API requests
get 401 whatever the token).
"""
import argparse
import json
import os
import re
import socket
import secrets
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from jwt_verify import Verifier, b64url_decode  # noqa: E402
from snowflake_server import first_unexpected  # noqa: E402

GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SCOPES = {"https://www.googleapis.com/auth/bigquery",
          "https://www.googleapis.com/auth/bigquery.readonly",
          "https://www.googleapis.com/auth/cloud-platform"}
SELECT_RE = re.compile(r"^\s*SELECT\s+(?P<cols>.+?)\s+FROM\s+`?(?P<table>[\w.-]+)`?"
                       r"(?:\s+LIMIT\s+(?P<limit>\d+))?\s*;?\s*$", re.I | re.S)


def gerror(code, status, reason, message, location=None):
    e = {"message": message, "domain": "global", "reason": reason}
    if location:
        e["location"] = location
        e["locationType"] = "parameter"
    return {"error": {"code": code, "message": message, "errors": [e], "status": status}}


class State:
    def __init__(self, verifier, key, project, location, tables, token_uri):
        self.lock = threading.Lock()
        self.verifier = verifier
        self.key = key  # the service-account key file's fields
        self.project = project
        self.location = location
        self.tables = tables
        self.token_uri = token_uri
        self.tokens = {}  # access token -> expiry (unix seconds)
        self.jobs = {}
        self.request_ids = {}
        self.page_tokens = {}  # token -> (job id, offset)
        self.faults = {"page_rows": 1000, "running_polls": 1, "job_delay": 0, "post_429": 0,
                       "page_429": 0, "rate_limit_403": 0, "retry_after": 1, "page_delay": 0,
                       "token_expires_in": 3599, "revoke_tokens": 0}
        self.counters = self.zero()

    @staticmethod
    def zero():
        return {"grants": 0, "grant_errors": [], "queries": 0, "polls": 0, "pages": 0,
                "cancels": 0, "sent_429": 0, "sent_403": 0, "rejected_401": 0, "last_body": None,
                "bad_requests": 0, "locations": []}

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
        # Headers and body go out in two writes: without TCP_NODELAY the body
        # waits for the client's delayed ACK (~40 ms a request on keep-alive).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *args):
        pass

    @property
    def st(self):
        return self.server.state

    def reply(self, code, body, extra=None):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def bad(self, message):
        with self.st.lock:
            self.st.counters["bad_requests"] += 1
        return self.reply(400, gerror(400, "INVALID_ARGUMENT", "invalid", message))

    # ---- the token endpoint
    def token(self, raw):
        def refuse(why, error="invalid_grant"):
            with self.st.lock:
                self.st.counters["grant_errors"].append(why)
            return self.reply(400, {"error": error, "error_description": why})
        if (self.headers.get("Content-Type") or "").split(";")[0] != \
                "application/x-www-form-urlencoded":
            return refuse("Content-Type must be application/x-www-form-urlencoded",
                          "invalid_request")
        form = urllib.parse.parse_qs(raw.decode(), strict_parsing=True)
        if form.get("grant_type") != [GRANT]:
            return refuse("Invalid grant_type", "unsupported_grant_type")
        parts = (form.get("assertion") or [""])[0].split(".")
        if len(parts) != 3:
            return refuse("Invalid JWT: Token must be a short-lived token and in a reasonable "
                          "timeframe")
        try:
            header = json.loads(b64url_decode(parts[0]))
            claims = json.loads(b64url_decode(parts[1]))
            sig = b64url_decode(parts[2])
        except ValueError:
            return refuse("Invalid JWT")
        if header.get("alg") != "RS256" or header.get("kid") != self.st.key["private_key_id"]:
            return refuse("Invalid JWT header (alg RS256 and kid = private_key_id expected)")
        if not self.st.verifier.verify(f"{parts[0]}.{parts[1]}".encode(), sig):
            return refuse("Invalid JWT Signature.")
        now = time.time()
        if claims.get("iss") != self.st.key["client_email"]:
            return refuse("Invalid issuer")
        if claims.get("aud") != self.st.token_uri:
            return refuse("Invalid JWT: aud must be the token_uri")
        if not set((claims.get("scope") or "").split()) & SCOPES:
            return refuse("Invalid OAuth scope or ID token audience provided.", "invalid_scope")
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, int) or not isinstance(exp, int) or iat > now + 60 or \
                exp <= now or exp - iat > 3600:
            return refuse("Invalid JWT: Token must be a short-lived token (60 minutes) and in a "
                          "reasonable timeframe. Check your iat and exp values in the JWT claim.")
        token = "ya29." + secrets.token_urlsafe(32)
        life = int(self.st.faults["token_expires_in"])
        with self.st.lock:
            self.st.tokens[token] = now + life
            self.st.counters["grants"] += 1
        self.reply(200, {"access_token": token, "expires_in": life, "token_type": "Bearer"})

    def authorized(self):
        auth = self.headers.get("Authorization") or ""
        token = auth[7:] if auth.startswith("Bearer ") else None
        exp = self.st.tokens.get(token) if token else None
        ok = exp is not None and exp > time.time() and not self.st.take("revoke_tokens")
        if not ok:
            with self.st.lock:
                self.st.counters["rejected_401"] += 1
            self.reply(401, {"error": {
                "code": 401, "message": "Request had invalid authentication credentials. "
                "Expected OAuth 2 access token, login cookie or other valid authentication "
                "credential.", "errors": [{"message": "Invalid Credentials", "domain": "global",
                                           "reason": "authError", "location": "Authorization",
                                           "locationType": "header"}],
                "status": "UNAUTHENTICATED"}})
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
        if url.path == "/token":
            return self.token(raw)
        m = re.fullmatch(r"/bigquery/v2/projects/([^/]+)/(queries|jobs/([\w-]+)/cancel)", url.path)
        if not m:
            return self.reply(404, gerror(404, "NOT_FOUND", "notFound", "Not found"))
        if not self.authorized():
            return
        if urllib.parse.unquote(m.group(1)) != self.st.project:
            return self.reply(403, gerror(403, "PERMISSION_DENIED", "accessDenied",
                                          f"Access Denied: Project {m.group(1)}: User does not "
                                          "have bigquery.jobs.create permission in project"))
        if m.group(3):
            job = self.st.jobs.get(m.group(3))
            if not job:
                return self.reply(404, gerror(404, "NOT_FOUND", "notFound",
                                              f"Not found: Job {self.st.project}:{m.group(3)}"))
            with self.st.lock:
                job["cancelled"] = True
                self.st.counters["cancels"] += 1
            return self.reply(200, {"kind": "bigquery#jobCancelResponse",
                                    "job": {"jobReference": self.ref(job)}})
        if (self.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
            return self.bad("Content-Type must be application/json")
        if self.st.take("post_429"):
            with self.st.lock:
                self.st.counters["sent_429"] += 1
            return self.reply(429, gerror(429, "RESOURCE_EXHAUSTED", "rateLimitExceeded",
                                          "Too many requests"),
                              {"Retry-After": str(self.st.faults["retry_after"])})
        try:
            req = json.loads(raw)
        except ValueError:
            return self.bad("Invalid JSON payload received.")
        allowed = {"query", "useLegacySql", "maxResults", "timeoutMs", "location", "requestId",
                   "formatOptions", "jobTimeoutMs", "defaultDataset", "kind", "dryRun",
                   "useQueryCache", "labels", "jobCreationMode"}
        if not isinstance(req, dict) or not isinstance(req.get("query"), str):
            return self.bad("Required parameter is missing: query")
        if set(req) - allowed:
            return self.bad(f"Invalid JSON payload received. Unknown name "
                            f"\"{sorted(set(req) - allowed)[0]}\"")
        if req.get("useLegacySql") is not False:
            return self.reply(400, gerror(400, "INVALID_ARGUMENT", "invalidQuery",
                                          "Legacy SQL: Encountered \" \"SELECT\" ...", "query"))
        if "jobTimeoutMs" in req and not re.fullmatch(r"\d+", str(req["jobTimeoutMs"])):
            return self.bad("Invalid value at 'job_timeout_ms'")
        with self.st.lock:
            self.st.counters["last_body"] = req
            self.st.counters["locations"].append(req.get("location"))
            rid = req.get("requestId")
            if rid and rid in self.st.request_ids:
                return self.reply(200, self.results(self.st.jobs[self.st.request_ids[rid]], 0,
                                                    req))
        loc = req.get("location") or "US"
        if loc.upper() != self.st.location.upper():
            return self.reply(404, gerror(404, "NOT_FOUND", "notFound",
                                          f"Not found: Dataset {self.st.project}:analytics was "
                                          f"not found in location {loc}"))
        job = {"id": "job_" + secrets.token_urlsafe(12).replace("-", "_"), "location": loc,
               "created": time.time(), "polls": 0, "cancelled": False, "error": None,
               "schema": None, "rows": None,
               "int64_ts": bool((req.get("formatOptions") or {}).get("useInt64Timestamp"))}
        err = self.compile(req["query"], req.get("defaultDataset"), job)
        if err:
            return self.reply(err["error"]["code"], err)
        with self.st.lock:
            self.st.jobs[job["id"]] = job
            self.st.counters["queries"] += 1
            if rid:
                self.st.request_ids[rid] = job["id"]
        self.reply(200, self.results(job, 0, req))

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/_state":
            with self.st.lock:
                return self.reply(200, {"counters": self.st.counters, "faults": self.st.faults})
        m = re.fullmatch(r"/bigquery/v2/projects/([^/]+)/queries/([\w-]+)", url.path)
        if not m:
            return self.reply(404, gerror(404, "NOT_FOUND", "notFound", "Not found"))
        if not self.authorized():
            return
        q = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        job = self.st.jobs.get(m.group(2))
        if not job or urllib.parse.unquote(m.group(1)) != self.st.project or \
                q.get("location", "US").upper() != job["location"].upper():
            return self.reply(404, gerror(404, "NOT_FOUND", "notFound",
                                          f"Not found: Job {self.st.project}:{m.group(2)}"))
        job["int64_ts"] = q.get("formatOptions.useInt64Timestamp") == "true"
        offset = 0
        if "pageToken" in q:
            tok = self.st.page_tokens.get(q["pageToken"])
            if not tok or tok[0] != job["id"]:
                return self.bad("Invalid page token")
            offset = tok[1]
            if self.st.take("page_429"):
                with self.st.lock:
                    self.st.counters["sent_429"] += 1
                return self.reply(429, gerror(429, "RESOURCE_EXHAUSTED", "rateLimitExceeded",
                                              "Too many requests"),
                                  {"Retry-After": str(self.st.faults["retry_after"])})
            if self.st.take("rate_limit_403"):
                with self.st.lock:
                    self.st.counters["sent_403"] += 1
                return self.reply(403, gerror(403, "PERMISSION_DENIED", "rateLimitExceeded",
                                              "Exceeded rate limits: too many api requests per "
                                              "user per method for this user_method"))
            if self.st.faults["page_delay"]:
                time.sleep(self.st.faults["page_delay"])
            with self.st.lock:
                self.st.counters["pages"] += 1
        else:
            with self.st.lock:
                self.st.counters["polls"] += 1
        self.reply(200, self.results(job, offset, {"maxResults": q.get("maxResults")}))

    # ---- engine
    def compile(self, sql, default_ds, job):
        m = SELECT_RE.match(sql)
        if not m:
            pos, word = first_unexpected(sql)
            return gerror(400, "INVALID_ARGUMENT", "invalidQuery",
                          f"Syntax error: Unexpected identifier \"{word}\" at [1:{pos + 1}]",
                          "query")
        parts = m.group("table").split(".")
        if len(parts) == 3:
            parts = parts[1:]
        if len(parts) == 1:
            if not default_ds:
                return gerror(400, "INVALID_ARGUMENT", "invalid",
                              f"Table \"{parts[0]}\" must be qualified with a dataset (e.g. "
                              "dataset.table).", "query")
            parts = [default_ds["datasetId"], parts[0]]
        name = ".".join(parts).upper()
        t = self.st.tables.get(name)
        if t is None:
            return gerror(404, "NOT_FOUND", "notFound",
                          f"Not found: Table {self.st.project}:{'.'.join(parts)} was not found in "
                          f"location {job['location']}")
        fields = t["schema"]["fields"]
        names = [f["name"].upper() for f in fields]
        cols = m.group("cols").strip()
        idx = list(range(len(fields))) if cols == "*" else []
        if cols != "*":
            for c in (x.strip().strip("`").upper() for x in cols.split(",")):
                if c not in names:
                    return gerror(400, "INVALID_ARGUMENT", "invalidQuery",
                                  f"Unrecognized name: {c} at [1:8]", "query")
                idx.append(names.index(c))
        rows = t["rows"][:int(m.group("limit"))] if m.group("limit") else t["rows"]
        job["schema"] = {"fields": [fields[i] for i in idx]}
        job["rows"] = [{"f": [r["f"][i] for i in idx]} for r in rows]
        job["ts_cols"] = [k for k, i in enumerate(idx) if fields[i]["type"] == "TIMESTAMP"]
        return None

    def ref(self, job):
        return {"projectId": self.st.project, "jobId": job["id"], "location": job["location"]}

    def results(self, job, offset, req):
        with self.st.lock:
            job["polls"] += 1
            running = (job["polls"] <= self.st.faults["running_polls"]
                       or time.time() - job["created"] < self.st.faults["job_delay"])
        out = {"kind": "bigquery#queryResponse", "jobReference": self.ref(job)}
        if job["cancelled"]:
            return gerror(400, "INVALID_ARGUMENT", "stopped", "Job execution was cancelled: "
                          "User requested cancellation")
        if running and offset == 0:
            out["jobComplete"] = False
            return out
        n = min(int(req.get("maxResults") or 100000), int(self.st.faults["page_rows"]))
        rows = job["rows"][offset:offset + n]
        if not job["int64_ts"]:  # float seconds, as BigQuery sends them by default
            rows = [{"f": [{"v": f"{int(c['v']) / 1e6:.6E}"} if k in job["ts_cols"] and c["v"]
                           else c for k, c in enumerate(r["f"])]} for r in rows]
        out.update({"jobComplete": True, "schema": job["schema"], "totalRows":
                    str(len(job["rows"])), "rows": rows, "cacheHit": False,
                    "totalBytesProcessed": "0"})
        if offset + n < len(job["rows"]):
            tok = secrets.token_urlsafe(16) + "=="
            with self.st.lock:
                self.st.page_tokens[tok] = (job["id"], offset + n)
            out["pageToken"] = tok
        return out


class Server(ThreadingHTTPServer):
    daemon_threads = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--public-key", required=True)
    ap.add_argument("--key-json", required=True, help="the service-account key file (client_email, private_key_id)")
    ap.add_argument("--project", required=True)
    ap.add_argument("--location", default="EU")
    ap.add_argument("--data", required=True)
    ap.add_argument("--faults", default="{}")
    a = ap.parse_args()
    with open(a.key_json) as f:
        key = json.load(f)
    with open(a.data) as f:
        tables = {k.upper(): v for k, v in json.load(f).items()}
    srv = Server(("127.0.0.1", 0), Handler)
    # The token endpoint is this server: the aud a JWT must carry.
    token_uri = f"http://127.0.0.1:{srv.server_address[1]}/token"
    st = State(Verifier(a.public_key), key, a.project, a.location, tables, token_uri)
    st.faults.update(json.loads(a.faults))
    srv.state = st
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.replace(tmp, a.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


class BigQueryServer:
    """Runs this server for a test; key_path is then a service-account key
    file whose token_uri is this server's /token."""

    def __init__(self, workdir, public_key, key, project, tables, location="EU", faults=None):
        port_file = os.path.join(workdir, "bq_port")
        data = os.path.join(workdir, "bq_tables.json")
        with open(data, "w") as f:
            json.dump(tables, f)
        self.key_path = os.path.join(workdir, "sa.json")
        with open(self.key_path, "w") as f:
            json.dump(key, f)
        self.log = open(os.path.join(workdir, "bq_server.log"), "wb")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--port-file", port_file,
             "--public-key", public_key, "--key-json", self.key_path, "--project", project,
             "--location", location, "--data", data, "--faults", json.dumps(faults or {})],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while not os.path.exists(port_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("bigquery_server did not start: " + open(self.log.name).read())
            time.sleep(0.01)
        with open(port_file) as f:
            self.port = int(f.read())
        self.url = f"http://127.0.0.1:{self.port}"
        with open(self.key_path, "w") as f:
            json.dump(dict(key, token_uri=self.url + "/token"), f)

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
