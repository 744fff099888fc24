#!/usr/bin/env python3
"""Strict local webhook receiver for Backflow's integration tests, crash tests
and benchmark (Python 3.11 stdlib only).

It implements the *receiving* side of the webhook destination contract:

  POST <any path>   Content-Type: application/json
  body  {"sync": "...", "batch_id": "...", "records": [
           {"op": "upsert"|"update"|"insert"|"delete", "sync": "...",
            "key": {"user_id": 7}, "fields": {...}}, ...]}
  signed per Standard Webhooks (webhook-id / webhook-timestamp /
  webhook-signature: "v1,<b64 HMAC-SHA256(key, id.ts.body)>" [space-separated list]),
  key = base64-decode of the signing secret after "whsec_".

  200 {"results": [{"status": "ok"} | {"status": "rejected", "reason": ...}
                   | {"status": "retry", "reason": ...}, ...]}   (request order)
  400 malformed JSON / wrong shape     401 missing/bad signature or stale timestamp
  411 no Content-Length (and not chunked)   413 more than --max-batch records
  415 Content-Type not application/json     405 non-POST on a webhook path

Store: canonical key (json.dumps(key, sort_keys=True), default separators, i.e.
'{"user_id": 7}'; see canonical_key()) -> fields dict.

Control routes (no signature):
  GET  /_state     {"store": {...}, "counters": {...}, "faults": {...}}
  GET  /_counters  {"counters": {...}, "faults": {...}}   (cheap: no store dump)
  POST /_control   JSON object of faults to merge; {"reset": true} clears store
                   and counters; {"clear_faults": true} restores default faults.
  POST /_shutdown

Faults (CLI flags at startup, or POST /_control at runtime):
  reject_keys          list of key values -> record "rejected", not stored
  retry_keys           list of key values -> record "retry", not stored
                       (a record matches if any value of its key object, as a
                       string - JSON text for non-strings - equals an entry)
  fail_after_requests  N: after N more successful (200) requests, every webhook
                       request gets 503 (counted from when the fault was set);
                       null turns it off
  retry_after          seconds for Retry-After (429 always sends one, default 1;
                       503 sends one only if retry_after is set)
  status_sequence      list of HTTP statuses answered to the next requests, in
                       order, before normal handling (not applied). Entries may
                       also be "close" or "garbage" (one-shot connection drop /
                       non-JSON 200).
  delay_ms             sleep this long before handling each webhook request
  garbage_response     200 with a non-JSON body, request not applied
  close_connection     drop the connection without answering, not applied
  apply_then_fail      apply the batch, then answer 500 (lost ack)
  The three booleans also accept an integer N: "only the next N requests".

CLI:
  python3 webhook_receiver.py --port 0 --secret whsec_... [--max-batch 1000]
      [--port-file PATH] [--log PATH] [--quiet] [--faults JSON] [fault flags]

Importable helper: Receiver (see below), sign_headers(), canonical_key().
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OPS = ("upsert", "update", "insert", "delete")
DEFAULT_MAX_BATCH = 1000
DEFAULT_TOLERANCE = 300
MAX_BODY_BYTES = 64 * 1024 * 1024

_dumps = json.dumps
_loads = json.loads
_esc = json.encoder.encode_basestring_ascii


_sorted_encode = json.JSONEncoder(sort_keys=True).encode


def canonical_key(key):
    """Store key for a record key object: exactly json.dumps(key, sort_keys=True),
    e.g. {"user_id": 7} -> '{"user_id": 7}'. Fast path for one int/str field."""
    if len(key) == 1:
        for name, v in key.items():
            t = type(v)
            if t is int:
                return "{" + _esc(name) + ": " + str(v) + "}"
            if t is str:
                return "{" + _esc(name) + ": " + _esc(v) + "}"
    return _sorted_encode(key)


def secret_key_bytes(secret):
    """HMAC key for a Standard Webhooks secret ("whsec_<base64>")."""
    if isinstance(secret, bytes):
        secret = secret.decode("ascii")
    if secret.startswith("whsec_"):
        secret = secret[len("whsec_"):]
    return base64.b64decode(secret)


def compute_signature(secret, msg_id, timestamp, body):
    """Return 'v1,<base64>' for the given message."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    mac = hmac.new(secret_key_bytes(secret),
                   f"{msg_id}.{timestamp}.".encode("utf-8") + body,
                   hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode("ascii")


def sign_headers(secret, body, msg_id=None, timestamp=None):
    """Headers for a correctly signed webhook request (for tests/bench)."""
    if msg_id is None:
        msg_id = "msg_" + base64.b32encode(os.urandom(10)).decode("ascii").lower()
    if timestamp is None:
        timestamp = int(time.time())
    return {
        "Content-Type": "application/json",
        "webhook-id": str(msg_id),
        "webhook-timestamp": str(timestamp),
        "webhook-signature": compute_signature(secret, msg_id, timestamp, body),
    }


# --------------------------------------------------------------------------
# server state
# --------------------------------------------------------------------------

def _norm_value(v):
    return v if type(v) is str else _dumps(v)


_BOOL_FAULTS = ("garbage_response", "close_connection", "apply_then_fail")


class State:
    def __init__(self, secret, max_batch, tolerance, log_path, quiet):
        self.key = secret_key_bytes(secret)
        self.max_batch = max_batch
        self.tolerance = tolerance
        self.quiet = quiet
        self.lock = threading.Lock()
        self.log_lock = threading.Lock()
        self.log = open(log_path, "a", buffering=1) if log_path else None
        self.store = {}
        self.seen_ids = {}      # webhook-id -> hash(body)
        self.applied_ids = set()
        self.counters = self._zero_counters()
        self.fail_base = 0
        self.faults = self._default_faults()

    @staticmethod
    def _zero_counters():
        c = {
            "requests": 0, "records": 0, "bytes": 0,
            "ok_requests": 0, "applied_requests": 0,
            "ok": 0, "rejected": 0, "retry": 0,
            "not_found": 0, "duplicate_inserts": 0,
            "redeliveries": 0, "reapplied_batches": 0, "id_conflicts": 0,
            "injected_faults": 0, "control_requests": 0,
        }
        for op in OPS:
            c[op] = 0
        return c

    @staticmethod
    def _default_faults():
        return {
            "reject_keys": [], "retry_keys": [],
            "fail_after_requests": None, "retry_after": None,
            "status_sequence": [], "delay_ms": 0,
            "garbage_response": False, "close_connection": False,
            "apply_then_fail": False,
        }

    def faults_view(self):
        f = dict(self.faults)
        f["reject_keys"] = sorted(f["reject_keys"])
        f["retry_keys"] = sorted(f["retry_keys"])
        f["status_sequence"] = list(f["status_sequence"])
        return f

    def set_faults(self, kw):
        """Validate and merge a faults dict. Raises ValueError. Caller holds lock."""
        if not isinstance(kw, dict):
            raise ValueError("control body must be a JSON object")
        new = {}
        for name, v in kw.items():
            if name in ("reset", "clear_faults"):
                if not isinstance(v, bool):
                    raise ValueError(f"{name} must be a boolean")
            elif name in ("reject_keys", "retry_keys"):
                if v is None:
                    v = []
                if not isinstance(v, list):
                    raise ValueError(f"{name} must be a list")
                new[name] = frozenset(_norm_value(x) for x in v)
            elif name == "fail_after_requests":
                if v is not None and (type(v) is not int or v < 0):
                    raise ValueError("fail_after_requests must be a non-negative int or null")
                new[name] = v
            elif name == "retry_after":
                if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0):
                    raise ValueError("retry_after must be a non-negative number or null")
                new[name] = v
            elif name == "status_sequence":
                if v is None:
                    v = []
                if not isinstance(v, list):
                    raise ValueError("status_sequence must be a list")
                for s in v:
                    ok = (type(s) is int and 100 <= s <= 599) or s in ("close", "garbage")
                    if not ok:
                        raise ValueError(f"bad status_sequence entry: {s!r}")
                new[name] = list(v)
            elif name == "delay_ms":
                if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                    raise ValueError("delay_ms must be a non-negative number")
                new[name] = v
            elif name in _BOOL_FAULTS:
                if v is None:
                    v = False
                if not isinstance(v, (bool, int)) or (type(v) is int and v < 0):
                    raise ValueError(f"{name} must be a boolean or a non-negative int")
                new[name] = v
            else:
                raise ValueError(f"unknown control key: {name}")
        if kw.get("reset"):
            self.store.clear()
            self.seen_ids.clear()
            self.applied_ids.clear()
            self.counters = self._zero_counters()
            self.fail_base = 0
        if kw.get("clear_faults"):
            self.faults = self._default_faults()
            self.faults["reject_keys"] = frozenset()
            self.faults["retry_keys"] = frozenset()
        self.faults.update(new)
        if "fail_after_requests" in new:
            self.fail_base = self.counters["ok_requests"]

    def take_bool_fault(self, name):
        """True if a boolean/count fault fires for this request. Caller holds lock."""
        v = self.faults[name]
        if v is True:
            return True
        if type(v) is int and v > 0:
            self.faults[name] = v - 1
            return True
        return False

    def write_log(self, line):
        if self.log is not None:
            with self.log_lock:
                self.log.write(line + "\n")


_PHRASES = {s.value: s.phrase for s in HTTPStatus}
_OK_RESULT = '{"status": "ok"}'
_GARBAGE = b"<html>this is not json {{{"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "backflow-test-receiver"
    disable_nagle_algorithm = True
    rbufsize = 256 * 1024

    # silence the default per-request stderr line
    def log_request(self, code="-", size="-"):
        pass

    def log_message(self, fmt, *args):
        st = self.server.state
        if not st.quiet:
            sys.stderr.write("receiver: " + (fmt % args) + "\n")

    # ---- response helpers -------------------------------------------------
    def _reply(self, code, body, ctype="application/json", extra=None):
        if isinstance(body, str):
            body = body.encode("utf-8")
        head = [f"HTTP/1.1 {code} {_PHRASES.get(code, 'Status')}\r\n"
                f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"]
        if extra:
            for k, v in extra:
                head.append(f"{k}: {v}\r\n")
        if self.close_connection:
            head.append("Connection: close\r\n")
        head.append("\r\n")
        self.wfile.write("".join(head).encode("latin-1") + body)
        self._status = code

    def _error(self, code, msg, extra=None):
        self._reply(code, _dumps({"error": msg}), extra=extra)
        self._reason = msg

    def _read_body(self, allow_missing_length=False):
        """Return the body bytes, or None after having answered an error.
        Control routes pass allow_missing_length=True (no Content-Length = empty)."""
        te = self.headers.get("Transfer-Encoding")
        if te is not None and "chunked" in te.lower():
            parts, total = [], 0
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    self.close_connection = True
                    return None
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers
                        t = self.rfile.readline(65537)
                        if t in (b"\r\n", b"\n", b""):
                            break
                    break
                total += size
                if total > MAX_BODY_BYTES:
                    self.close_connection = True
                    self._error(413, "body too large")
                    return None
                parts.append(self.rfile.read(size))
                self.rfile.readline(3)
            return b"".join(parts)
        cl = self.headers.get("Content-Length")
        if cl is None:
            if allow_missing_length:
                return b""
            self.close_connection = True
            self._error(411, "Content-Length required")
            return None
        try:
            n = int(cl)
            if n < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            self._error(400, "bad Content-Length")
            return None
        if n > MAX_BODY_BYTES:
            self.close_connection = True
            self._error(413, "body too large")
            return None
        body = self.rfile.read(n) if n else b""
        if len(body) != n:
            self.close_connection = True
            return None
        return body

    # ---- routing -----------------------------------------------------------
    def do_GET(self):
        path = self.path.split("?", 1)[0]
        st = self.server.state
        if path == "/_state":
            with st.lock:
                st.counters["control_requests"] += 1
                body = _dumps({"store": st.store, "counters": st.counters,
                               "faults": st.faults_view()})
            self._reply(200, body)
        elif path in ("/_counters", "/_control"):
            with st.lock:
                st.counters["control_requests"] += 1
                body = _dumps({"counters": st.counters, "faults": st.faults_view()})
            self._reply(200, body)
        else:
            self._error(405, "use POST", extra=[("Allow", "POST")])

    def _drain_then_405(self):
        if self._read_body() is not None:
            self._error(405, "use POST", extra=[("Allow", "POST")])

    do_PUT = do_PATCH = do_DELETE = _drain_then_405

    def do_POST(self):
        path = self.path.split("?", 1)[0]
        if path == "/_control":
            return self._control()
        if path == "/_shutdown":
            body = self._read_body(True)
            if body is None:
                return
            self.close_connection = True
            self._reply(200, '{"shutdown": true}')
            threading.Thread(target=self.server.shutdown, daemon=True).start()
            return
        self._status = None
        self._reason = ""
        self._nrec = 0
        try:
            self._webhook()
        finally:
            st = self.server.state
            if st.log is not None:
                st.write_log(
                    f"{time.time():.3f} POST {self.path} id={self.headers.get('webhook-id', '-')}"
                    f" records={self._nrec} status={self._status or 'dropped'}"
                    + (f" reason={self._reason}" if self._reason else ""))
            elif not st.quiet and self._status not in (200, None):
                sys.stderr.write(f"receiver: {self._status} {self._reason}\n")

    def _control(self):
        st = self.server.state
        body = self._read_body(True)
        if body is None:
            return
        try:
            kw = _loads(body) if body.strip() else {}
        except ValueError as e:
            return self._error(400, f"bad JSON: {e}")
        with st.lock:
            st.counters["control_requests"] += 1
            try:
                st.set_faults(kw)
            except ValueError as e:
                return self._error(400, str(e))
            out = _dumps({"faults": st.faults_view()})
        self._reply(200, out)

    # ---- the webhook path --------------------------------------------------
    def _webhook(self):
        st = self.server.state
        body = self._read_body()
        if body is None:
            return
        hdrs = self.headers
        msg_id = hdrs.get("webhook-id")
        bh = hash(body) if msg_id is not None else None

        with st.lock:
            c = st.counters
            c["requests"] += 1
            c["bytes"] += len(body)
            if msg_id is not None:
                prev = st.seen_ids.get(msg_id)
                if prev is not None:
                    c["redeliveries"] += 1
                    if prev != bh:
                        c["id_conflicts"] += 1
                st.seen_ids[msg_id] = bh
            f = st.faults
            delay = f["delay_ms"]
            action = None
            if f["status_sequence"]:
                action = f["status_sequence"].pop(0)
            elif st.take_bool_fault("close_connection"):
                action = "close"
            elif (f["fail_after_requests"] is not None
                  and c["ok_requests"] - st.fail_base >= f["fail_after_requests"]):
                action = 503
            if action is not None:
                c["injected_faults"] += 1
            retry_after = f["retry_after"]

        if delay:
            time.sleep(delay / 1000.0)

        if action is not None:
            if action == "close":
                self.close_connection = True
                self._reason = "injected close"
                return
            if action == "garbage":
                self._reason = "injected garbage"
                return self._reply(200, _GARBAGE, ctype="application/json")
            extra = None
            if action == 429:
                extra = [("Retry-After", _fmt_num(retry_after if retry_after is not None else 1))]
            elif retry_after is not None and action in (503, 500, 502, 504):
                extra = [("Retry-After", _fmt_num(retry_after))]
            return self._error(action, f"injected status {action}", extra=extra)

        # ---- authentication
        ts = hdrs.get("webhook-timestamp")
        sig = hdrs.get("webhook-signature")
        if msg_id is None or ts is None or sig is None:
            return self._error(401, "missing webhook-id/webhook-timestamp/webhook-signature header")
        try:
            tsi = int(ts)
        except ValueError:
            return self._error(401, "bad webhook-timestamp")
        if abs(time.time() - tsi) > st.tolerance:
            return self._error(401, "webhook-timestamp outside tolerance")
        mac = hmac.new(st.key, f"{msg_id}.{ts}.".encode("utf-8"), hashlib.sha256)
        mac.update(body)
        expected = base64.b64encode(mac.digest())
        good = False
        for part in sig.split():
            ver, _, val = part.partition(",")
            if ver == "v1" and hmac.compare_digest(val.encode("latin-1", "replace"), expected):
                good = True
        if not good:
            return self._error(401, "bad webhook-signature")

        ctype = hdrs.get("Content-Type", "")
        if ctype.split(";", 1)[0].strip().lower() != "application/json":
            return self._error(415, "Content-Type must be application/json")

        # ---- parse + validate (whole batch, before applying anything)
        try:
            doc = _loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            return self._error(400, f"malformed JSON: {e}")
        if type(doc) is not dict:
            return self._error(400, "body must be a JSON object")
        records = doc.get("records")
        if type(records) is not list:
            return self._error(400, "records must be a list")
        sync = doc.get("sync")
        if type(sync) is not str or not sync:
            return self._error(400, "sync must be a non-empty string")
        batch_id = doc.get("batch_id")
        if type(batch_id) not in (str, int) or batch_id == "":
            return self._error(400, "batch_id must be a non-empty string")
        n = len(records)
        self._nrec = n
        if n > st.max_batch:
            return self._error(413, f"batch of {n} records exceeds max batch {st.max_batch}")

        with st.lock:
            f = st.faults
            reject = f["reject_keys"]
            retry = f["retry_keys"]
        check_faults = bool(reject or retry)

        prepared = []
        append = prepared.append
        opcount = {"upsert": 0, "update": 0, "insert": 0, "delete": 0}
        for i, rec in enumerate(records):
            if type(rec) is not dict:
                return self._error(400, f"records[{i}] is not an object")
            op = rec.get("op")
            if type(op) is not str or op not in opcount:
                return self._error(400, f"records[{i}]: missing or unknown op {op!r}")
            key = rec.get("key")
            if type(key) is not dict or not key:
                return self._error(400, f"records[{i}]: key must be a non-empty object")
            fields = rec.get("fields")
            if op == "delete":
                if fields is not None and fields != {}:
                    return self._error(400, f"records[{i}]: delete must not carry fields")
            elif type(fields) is not dict:
                return self._error(400, f"records[{i}]: fields must be an object")
            rsync = rec.get("sync")
            if rsync is not None and rsync != sync:
                return self._error(400, f"records[{i}]: sync {rsync!r} != batch sync {sync!r}")
            opcount[op] += 1
            fault = None
            if check_faults:
                for kname, kv in key.items():
                    s = _norm_value(kv)
                    if s in reject:
                        fault = ("rejected", f"rejected by test receiver: {kname}")
                        break
                    if s in retry:
                        fault = ("retry", f"retry requested by test receiver: {kname}")
                        break
            append((op, canonical_key(key), fields, fault))

        with st.lock:
            c = st.counters
            c["records"] += n
            for op, k in opcount.items():
                c[op] += k
            garbage = st.take_bool_fault("garbage_response")
            if garbage:
                c["injected_faults"] += 1
            else:
                fail_after_apply = st.take_bool_fault("apply_then_fail")
                if fail_after_apply:
                    c["injected_faults"] += 1
                results = self._apply(st, c, prepared)
                c["applied_requests"] += 1
                if msg_id in st.applied_ids:
                    c["reapplied_batches"] += 1
                else:
                    st.applied_ids.add(msg_id)
                if not fail_after_apply:
                    c["ok_requests"] += 1

        if garbage:
            self._reason = "injected garbage"
            return self._reply(200, _GARBAGE, ctype="application/json")
        if fail_after_apply:
            return self._error(500, "injected failure after apply")
        self._reply(200, '{"results": [' + ", ".join(results) + "]}")

    @staticmethod
    def _apply(st, c, prepared):
        store = st.store
        results = []
        out = results.append
        ok = rejected = retry = not_found = dup = 0
        for op, ck, fields, fault in prepared:
            if fault is not None:
                if fault[0] == "retry":
                    retry += 1
                else:
                    rejected += 1
                out(_dumps({"status": fault[0], "reason": fault[1]}))
                continue
            if op == "upsert":
                store[ck] = fields
            elif op == "delete":
                store.pop(ck, None)
            elif op == "update":
                if ck not in store:
                    not_found += 1
                    rejected += 1
                    out('{"status": "rejected", "reason": "not found"}')
                    continue
                store[ck] = fields
            else:  # insert
                if ck in store:
                    dup += 1
                store[ck] = fields
            ok += 1
            out(_OK_RESULT)
        c["ok"] += ok
        c["rejected"] += rejected
        c["retry"] += retry
        c["not_found"] += not_found
        c["duplicate_inserts"] += dup
        return results


def _fmt_num(v):
    return str(int(v)) if float(v).is_integer() else str(v)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def server_bind(self):
        # Skip HTTPServer.server_bind's socket.getfqdn() (a reverse DNS lookup).
        socketserver.TCPServer.server_bind(self)
        self.server_name = "127.0.0.1"
        self.server_port = self.server_address[1]

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, socket.timeout)):
            return
        if not self.state.quiet:
            super().handle_error(request, client_address)


def _write_port_file(path, port):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as fh:
        fh.write(f"{port}\n")
    os.replace(tmp, path)


def _csv(s):
    return [x for x in (p.strip() for p in s.split(",")) if x]


def main(argv=None):
    ap = argparse.ArgumentParser(description="Strict Backflow webhook test receiver")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--secret", required=True, help="whsec_<base64>")
    ap.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH)
    ap.add_argument("--tolerance", type=int, default=DEFAULT_TOLERANCE,
                    help="max |now - webhook-timestamp| in seconds (default 300)")
    ap.add_argument("--port-file")
    ap.add_argument("--log")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--faults", help="JSON object of faults (same as POST /_control)")
    ap.add_argument("--reject-keys", type=_csv)
    ap.add_argument("--retry-keys", type=_csv)
    ap.add_argument("--fail-after-requests", type=int)
    ap.add_argument("--retry-after", type=float)
    ap.add_argument("--status-sequence", type=lambda s: [x if x in ("close", "garbage") else int(x) for x in _csv(s)])
    ap.add_argument("--delay-ms", type=float)
    ap.add_argument("--garbage-response", action="store_true")
    ap.add_argument("--close-connection", action="store_true")
    ap.add_argument("--apply-then-fail", action="store_true")
    a = ap.parse_args(argv)

    try:
        state = State(a.secret, a.max_batch, a.tolerance, a.log, a.quiet)
    except (ValueError, TypeError) as e:
        ap.error(f"bad --secret: {e}")
    faults = json.loads(a.faults) if a.faults else {}
    for name in ("reject_keys", "retry_keys", "fail_after_requests", "retry_after",
                 "status_sequence", "delay_ms"):
        v = getattr(a, name)
        if v is not None:
            faults[name] = v
    for name in _BOOL_FAULTS:
        if getattr(a, name):
            faults[name] = True
    faults.setdefault("reject_keys", [])
    faults.setdefault("retry_keys", [])
    try:
        state.set_faults(faults)
    except ValueError as e:
        ap.error(str(e))

    srv = Server(("127.0.0.1", a.port), Handler)
    srv.state = state
    port = srv.server_address[1]
    if a.port_file:
        _write_port_file(a.port_file, port)
    sys.stdout.write(f"listening 127.0.0.1:{port}\n")
    sys.stdout.flush()
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()
        if state.log is not None:
            state.log.close()
    return 0


# --------------------------------------------------------------------------
# importable helper
# --------------------------------------------------------------------------

class _HybridStart:
    """Receiver.start(...) builds and starts a Receiver; r.start(...) starts r."""

    def __get__(self, obj, cls):
        if obj is None:
            return lambda *a, **kw: cls()._start(*a, **kw)
        return obj._start


class Receiver:
    """Run webhook_receiver.py as a subprocess.

        r = Receiver.start("whsec_...", max_batch=1000, reject_keys=[7])
        ... point Backflow at r.url ...
        r.store(); r.counters(); r.control(retry_keys=[8]); r.stop()

    Also usable as a context manager.
    """

    start = _HybridStart()

    def __init__(self):
        self.proc = None
        self.port = None
        self.url = None
        self.base = None
        self.secret = None
        self.dir = None
        self.log_path = None
        self.output_path = None

    def _start(self, secret, max_batch=DEFAULT_MAX_BATCH, path="/in", log=None,
               quiet=True, timeout=10.0, tolerance=None, python=None, **faults):
        if self.proc is not None:
            raise RuntimeError("receiver already started")
        self.secret = secret
        self.dir = tempfile.mkdtemp(prefix="bf-receiver-")
        port_file = os.path.join(self.dir, "port")
        self.output_path = os.path.join(self.dir, "output.txt")
        self.log_path = log
        cmd = [python or sys.executable, os.path.abspath(__file__),
               "--port", "0", "--secret", secret, "--max-batch", str(max_batch),
               "--port-file", port_file]
        if log:
            cmd += ["--log", log]
        if quiet:
            cmd.append("--quiet")
        if tolerance is not None:
            cmd += ["--tolerance", str(tolerance)]
        if faults:
            cmd += ["--faults", json.dumps(faults)]
        out = open(self.output_path, "wb")
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT)
        finally:
            out.close()
        deadline = time.monotonic() + timeout
        wait = 0.002
        while True:
            try:
                with open(port_file) as fh:
                    txt = fh.read().strip()
                if txt:
                    self.port = int(txt)
                    break
            except FileNotFoundError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"receiver exited with {self.proc.returncode}: {self.output()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"receiver did not write its port file within {timeout}s")
            time.sleep(wait)
            wait = min(wait * 2, 0.05)
        self.base = f"http://127.0.0.1:{self.port}"
        self.url = self.base + (path if path.startswith("/") else "/" + path)
        return self

    # ---- control calls
    def _call(self, method, route, payload=None, timeout=10.0):
        data = None if payload is None else json.dumps(payload).encode("utf-8")
        req = urllib.request.Request(self.base + route, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"{method} {route} -> {e.code}: {e.read().decode('utf-8', 'replace')}") from None

    def state(self):
        return self._call("GET", "/_state")

    def store(self):
        return self.state()["store"]

    def counters(self):
        return self._call("GET", "/_counters")["counters"]

    def faults(self):
        return self._call("GET", "/_counters")["faults"]

    def control(self, **kw):
        return self._call("POST", "/_control", kw)

    def reset(self):
        return self.control(reset=True)

    def get(self, key):
        """Fields stored for a key object (dict), or None."""
        return self.store().get(canonical_key(key))

    def output(self):
        try:
            with open(self.output_path, "rb") as fh:
                return fh.read().decode("utf-8", "replace")
        except (OSError, TypeError):
            return ""

    def stop(self, timeout=5.0):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self._call("POST", "/_shutdown", {}, timeout=timeout)
            except Exception:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._cleanup()

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._cleanup()

    def _cleanup(self):
        if self.dir and os.path.isdir(self.dir):
            for name in os.listdir(self.dir):
                try:
                    os.unlink(os.path.join(self.dir, name))
                except OSError:
                    pass
            try:
                os.rmdir(self.dir)
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def __del__(self):
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()
        except Exception:
            pass


if __name__ == "__main__":
    sys.exit(main())
