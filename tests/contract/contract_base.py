"""Shared machinery for the vendor contract servers (Python 3 stdlib only).

A contract server is a strict local stand-in for a SaaS API: it checks auth,
batch limits and payload shapes, answers with the vendor's response shapes,
keeps what it was sent so a test can compare it with the model, and can be
told to misbehave. Each vendor module (hubspot_server.py, ...) subclasses
ContractState (the vendor's data and routes) and calls serve().

Control routes (no auth, never rate limited, never faulted):
  GET  /_state      {"objects": ..., "counters": {...}, "faults": {...}}  (vendor shape)
  GET  /_counters   {"counters": {...}, "faults": {...}, "cpu_seconds": ...}
  GET  /_times      {"times": [monotonic arrival time of each API request, ...]}
  POST /_control    JSON object merged into the faults / limits (see FAULTS);
                    {"reset": true} also forgets every object and counter.
  POST /_shutdown

Faults and limits (POST /_control, or --faults JSON at startup):
  status_sequence      list answered to the next API requests, in order, before
                       normal handling: an HTTP status (429/503 carry Retry-After
                       when retry_after is set; 429 always does), "close" (drop
                       the connection), "slow" (sleep slow_ms, then handle)
  retry_after          seconds (number) or an HTTP date (string) for Retry-After
  delay_ms             sleep before every API request
  slow_ms              how long "slow" sleeps (default 2000)
  fail_after_requests  after N more API requests, answer 503 to every one
  apply_then_fail      N: the next N requests are applied, then answered 500
  reject_ids           ids (vendor's matching value) to fail per record
  fault_path           only API requests whose path contains this string get the
                       faults above (e.g. "batch/upsert"); null: all
  rate_limit           {"requests_per_second": R, "burst": B} token bucket, or
                       {"max": N, "interval_ms": W} rolling window (HubSpot style);
                       null: no limit. Over the limit -> 429 (vendor body).
"""

import argparse
import collections
import email.utils
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY_BYTES = 200 * 1024 * 1024
_PHRASES = {s.value: s.phrase for s in HTTPStatus}

FAULTS = ("status_sequence", "retry_after", "delay_ms", "slow_ms", "fail_after_requests",
          "apply_then_fail", "reject_ids", "rate_limit", "fault_path")


class RateLimiter:
    """Token bucket (requests_per_second, burst) or rolling window (max, interval_ms)."""

    def __init__(self, spec):
        self.spec = spec
        self.rate = self.burst = None
        self.window = None
        if spec is None:
            return
        if not isinstance(spec, dict):
            raise ValueError("rate_limit must be an object or null")
        if "requests_per_second" in spec:
            self.rate = float(spec["requests_per_second"])
            self.burst = float(spec.get("burst", max(1.0, self.rate)))
            if self.rate <= 0 or self.burst < 1:
                raise ValueError("rate_limit: requests_per_second > 0 and burst >= 1")
            self.tokens = self.burst
            self.last = time.monotonic()
        elif "max" in spec:
            self.max = int(spec["max"])
            self.interval = float(spec.get("interval_ms", 10000)) / 1000.0
            if self.max < 1 or self.interval <= 0:
                raise ValueError("rate_limit: max >= 1 and interval_ms > 0")
            self.window = collections.deque()
        else:
            raise ValueError("rate_limit needs requests_per_second or max")

    def admit(self, now):
        """Returns (admitted, headers). Caller holds the state lock."""
        if self.spec is None:
            return True, []
        if self.window is not None:
            while self.window and self.window[0] <= now - self.interval:
                self.window.popleft()
            ok = len(self.window) < self.max
            if ok:
                self.window.append(now)
            remaining = self.max - len(self.window)
            return ok, [("X-HubSpot-RateLimit-Max", str(self.max)),
                        ("X-HubSpot-RateLimit-Remaining", str(remaining)),
                        ("X-HubSpot-RateLimit-Interval-Milliseconds", str(int(self.interval * 1000)))]
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True, []
        return False, []


class ApiError(Exception):
    """Raised by a route: answered as (status, body, headers)."""

    def __init__(self, status, body, headers=None):
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or []


class ContractState:
    """Subclass per vendor. Routes return (status, body, headers[, content_type]); body is a
    dict/list (JSON), bytes/str (sent as is, see content_type) or None."""

    name = "contract"

    def __init__(self, config):
        self.config = config
        self.lock = threading.Lock()
        self.faults = self.default_faults()
        self.limiter = RateLimiter(None)
        self.counters = collections.Counter()
        self.times = collections.deque(maxlen=200000)
        self.fail_base = None
        self.reset_data()

    # ---- to override
    def reset_data(self):
        pass

    def check_auth(self, handler):
        """Returns None, or (status, body, headers) for a refused request."""
        return None

    def route(self, handler, method, path, query, body):
        raise ApiError(404, {"error": "no such route"})

    def state_view(self):
        return {}

    def rate_limited_answer(self):
        return 429, {"error": "rate limited"}, []

    def server_error_answer(self, status):
        return status, {"error": f"injected {status}"}, []

    # ---- faults
    @staticmethod
    def default_faults():
        return {"status_sequence": [], "retry_after": None, "delay_ms": 0, "slow_ms": 2000,
                "fail_after_requests": None, "apply_then_fail": 0, "reject_ids": [],
                "rate_limit": None, "fault_path": None}

    def set_faults(self, kw):
        if not isinstance(kw, dict):
            raise ValueError("control body must be a JSON object")
        for k in kw:
            if k not in FAULTS and k not in ("reset", "clear_faults") and not self.extra_control(k, kw[k]):
                raise ValueError(f"unknown control key: {k}")
        if kw.get("reset"):
            self.reset_data()
            self.counters.clear()
            self.times.clear()
        if kw.get("clear_faults"):
            self.faults = self.default_faults()
            self.limiter = RateLimiter(None)
        for k in FAULTS:
            if k in kw:
                v = kw[k]
                if k == "rate_limit":
                    self.limiter = RateLimiter(v)
                if k == "status_sequence":
                    v = list(v or [])
                if k == "reject_ids":
                    v = [str(x).lower() for x in (v or [])]
                if k == "fail_after_requests":
                    self.fail_base = self.counters["api_requests"]
                self.faults[k] = v

    def extra_control(self, key, value):
        """Vendor-specific control keys; return True when handled."""
        return False

    def is_rejected(self, value):
        return value is not None and str(value).lower() in self.faults["reject_ids"]

    def retry_after_header(self):
        ra = self.faults["retry_after"]
        if ra is None:
            return []
        if isinstance(ra, str):
            return [("Retry-After", ra)]
        return [("Retry-After", str(int(ra)) if float(ra).is_integer() else str(ra))]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "backflow-contract"
    disable_nagle_algorithm = True
    rbufsize = 256 * 1024

    def log_request(self, code="-", size="-"):
        pass

    def log_message(self, fmt, *args):
        if not self.server.quiet:
            sys.stderr.write(f"{self.server.state.name}: " + (fmt % args) + "\n")

    def reply(self, status, body, headers=(), content_type="application/json"):
        if body is None:
            data = b""
        elif isinstance(body, (bytes, bytearray)):
            data = bytes(body)
        elif isinstance(body, str):
            data = body.encode("utf-8")
        else:
            data = json.dumps(body, separators=(",", ":")).encode("utf-8")
        head = [f"HTTP/1.1 {status} {_PHRASES.get(status, 'Status')}\r\n"]
        if status != 204:
            head.append(f"Content-Type: {content_type}\r\nContent-Length: {len(data)}\r\n")
        for k, v in headers:
            if k.lower() == "content-type":
                continue
            head.append(f"{k}: {v}\r\n")
        if self.close_connection:
            head.append("Connection: close\r\n")
        head.append("\r\n")
        self.wfile.write("".join(head).encode("latin-1") + (data if status != 204 else b""))

    def read_body(self):
        cl = self.headers.get("Content-Length")
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            parts = []
            while True:
                size = int(self.rfile.readline(65537).split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline(3)
        if cl is None:
            return b""
        n = int(cl)
        if n > MAX_BODY_BYTES:
            raise ApiError(413, {"error": "body too large"})
        return self.rfile.read(n) if n else b""

    def _control_route(self, method, path, body):
        st = self.server.state
        if path == "/_state" and method == "GET":
            with st.lock:
                doc = st.state_view()
                doc["counters"] = dict(st.counters)
            return self.reply(200, doc)
        if path == "/_counters" and method == "GET":
            with st.lock:
                doc = {"counters": dict(st.counters), "faults": {k: v for k, v in st.faults.items()},
                       "cpu_seconds": time.process_time()}
            return self.reply(200, doc)
        if path == "/_times" and method == "GET":
            with st.lock:
                doc = {"times": list(st.times)}
            return self.reply(200, doc)
        if path == "/_control" and method == "POST":
            try:
                kw = json.loads(body or b"{}")
                with st.lock:
                    st.set_faults(kw)
            except (ValueError, TypeError) as e:
                return self.reply(400, {"error": str(e)})
            return self.reply(200, {"ok": True})
        if path == "/_shutdown" and method == "POST":
            self.close_connection = True
            self.reply(200, {"shutdown": True})
            threading.Thread(target=self.server.shutdown, daemon=True).start()
            return None
        return self.reply(404, {"error": "unknown control route"})

    def _handle(self, method):
        t0 = time.perf_counter()
        try:
            return self._handle2(method)
        finally:
            st = self.server.state
            with st.lock:
                st.counters["handler_us"] += int((time.perf_counter() - t0) * 1e6)

    def _handle2(self, method):
        st = self.server.state
        try:
            body = self.read_body()
        except ApiError as e:
            self.close_connection = True
            return self.reply(e.status, e.body, e.headers)
        except (ValueError, OSError):
            self.close_connection = True
            return None
        path, _, query = self.path.partition("?")
        if path.startswith("/_"):
            return self._control_route(method, path, body)
        now = time.monotonic()
        slow = False
        with st.lock:
            st.counters["api_requests"] += 1
            st.times.append(now)
            st.counters["bytes_in"] += len(body)
            denied = st.check_auth(self)
            fault = None
            if denied is None:
                ok, rl_headers = st.limiter.admit(now)
                if not ok:
                    st.counters["rate_limited"] += 1
                    status, rbody, hdrs = st.rate_limited_answer()
                    denied = (status, rbody, rl_headers + hdrs)
                elif st.faults["fault_path"] and st.faults["fault_path"] not in path:
                    pass
                else:
                    seq = st.faults["status_sequence"]
                    if seq:
                        fault = seq.pop(0)
                    fa = st.faults["fail_after_requests"]
                    if fault is None and fa is not None and st.counters["api_requests"] - st.fail_base > fa:
                        fault = 503
                    apply_then_fail = st.faults["apply_then_fail"]
                    if fault is None and apply_then_fail:
                        st.faults["apply_then_fail"] = apply_then_fail - 1
                        fault = "apply_then_fail"
                    if fault is not None:
                        st.counters["injected_faults"] += 1
            else:
                st.counters["auth_failures"] += 1
                rl_headers = []
            delay = st.faults["delay_ms"]
            slow_ms = st.faults["slow_ms"]
            retry_after = st.retry_after_header()
        if denied is not None:
            return self.reply(*denied)
        if delay:
            time.sleep(delay / 1000.0)
        if fault == "close":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return None
        if fault == "slow":
            slow = True
            time.sleep(slow_ms / 1000.0)
        elif isinstance(fault, int):
            status, rbody, hdrs = st.server_error_answer(fault)
            if fault == 429 or (fault == 503 and retry_after):
                hdrs = list(hdrs) + (retry_after or [("Retry-After", "1")])
            return self.reply(status, rbody, rl_headers + list(hdrs))
        try:
            with st.lock:
                res = st.route(self, method, path, query, body)
                status, rbody, hdrs = res[:3]
                ctype = res[3] if len(res) > 3 else "application/json"
                st.counters[f"status_{status}"] += 1
        except ApiError as e:
            with st.lock:
                st.counters[f"status_{e.status}"] += 1
            return self.reply(e.status, e.body, rl_headers + e.headers)
        if fault == "apply_then_fail":
            return self.reply(500, {"error": "injected: applied, then failed"}, rl_headers)
        _ = slow
        return self.reply(status, rbody, rl_headers + list(hdrs), content_type=ctype)

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_PUT(self):
        self._handle("PUT")

    def do_PATCH(self):
        self._handle("PATCH")

    def do_DELETE(self):
        self._handle("DELETE")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def http_date(offset_s):
    return email.utils.formatdate(time.time() + offset_s, usegmt=True)


def serve(state_cls):
    ap = argparse.ArgumentParser(description=f"{state_cls.name} contract server")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--config", default="{}", help="JSON: vendor config (token, ...)")
    ap.add_argument("--faults", default="{}", help="JSON: initial faults (see contract_base)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    state = state_cls(json.loads(args.config))
    state.set_faults(json.loads(args.faults))
    srv = Server(("127.0.0.1", args.port), Handler)
    srv.state = state
    srv.quiet = args.quiet
    port = srv.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(port))
        os.rename(tmp, args.port_file)
    else:
        print(port, flush=True)
    try:
        srv.serve_forever(poll_interval=0.2)
    finally:
        srv.server_close()


class ContractServer:
    """Runs a vendor server module as a subprocess.

        s = ContractServer.start("hubspot_server.py", config={"token": "t"}, faults={...})
        s.base ("http://127.0.0.1:PORT"), s.state(), s.counters(), s.control(...), s.stop()
    """

    HERE = os.path.dirname(os.path.abspath(__file__))

    def __init__(self):
        self.proc = None
        self.base = None
        self.dir = None

    @classmethod
    def start(cls, script, config=None, faults=None, timeout=10.0, quiet=True):
        self = cls()
        self.dir = tempfile.mkdtemp(prefix="bf-contract-")
        port_file = os.path.join(self.dir, "port")
        self.output_path = os.path.join(self.dir, "output.txt")
        cmd = [sys.executable, os.path.join(cls.HERE, script), "--port", "0",
               "--port-file", port_file, "--config", json.dumps(config or {}),
               "--faults", json.dumps(faults or {})]
        if quiet:
            cmd.append("--quiet")
        with open(self.output_path, "wb") as out:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not os.path.exists(port_file):
            if self.proc.poll() is not None:
                raise RuntimeError(f"{script} exited: {self.output()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{script} did not start")
            time.sleep(0.01)
        with open(port_file) as f:
            self.port = int(f.read())
        self.base = f"http://127.0.0.1:{self.port}"
        return self

    def output(self):
        try:
            with open(self.output_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def _call(self, method, route, payload=None, timeout=30.0):
        data = None if payload is None else json.dumps(payload).encode("utf-8")
        req = urllib.request.Request(self.base + route, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"{method} {route} -> {e.code}: {e.read()!r}") from None

    def state(self):
        return self._call("GET", "/_state")

    def counters(self):
        return self._call("GET", "/_counters")

    def times(self):
        return self._call("GET", "/_times")["times"]

    def control(self, **kw):
        return self._call("POST", "/_control", kw)

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self._call("POST", "/_shutdown", {}, timeout=2)
            except Exception:  # noqa: BLE001 - it may be wedged; kill below
                pass
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
