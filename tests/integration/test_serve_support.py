"""Helpers for the `backflow serve` integration tests (test_serve_*.py): a
project with a SQLite warehouse, the server as a real process on a free port,
authenticated HTTP calls, Standard Webhooks signing and waiting on conditions.
Holds no tests itself."""
import base64
import hashlib
import hmac
import http.client
import json
import os
import select
import signal
import subprocess
import tempfile
import time
import uuid

from bfhelp import BIN, WEBHOOK_SECRET, Project, users_table  # noqa: F401

TOKEN = "serve-test-token-7f3a"


def wait_for(fn, timeout=10.0, what="condition"):
    """Polls fn() until it returns something truthy; returns that value."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def sign(secret, body, msg_id=None, timestamp=None):
    """Standard Webhooks headers for body (bytes)."""
    msg_id = msg_id or "msg_" + uuid.uuid4().hex
    timestamp = str(int(time.time()) if timestamp is None else timestamp)
    key = base64.b64decode(secret[len("whsec_"):])
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return {"webhook-id": msg_id, "webhook-timestamp": timestamp,
            "webhook-signature": "v1," + base64.b64encode(mac).decode()}


def serve_config(syncs, destinations=None, extra="", sql="SELECT id, email, first_name, ltv FROM users"):
    """backflow.yml with model `users` on warehouse.db; syncs is YAML text
    indented by two spaces under `syncs:`."""
    destinations = destinations or "  out: {type: file, path: out/users.jsonl}\n"
    return (
        "version: 1\n"
        f"server: {{listen: \"127.0.0.1:8420\", token: \"{TOKEN}\"}}\n"
        "warehouses:\n  local: {type: sqlite, path: warehouse.db}\n"
        "models:\n  users:\n    warehouse: local\n"
        f"    sql: {sql}\n"
        "    primary_key: id\n    pii: {email: email, first_name: name}\n"
        "destinations:\n" + destinations +
        "syncs:\n" + syncs + extra)


class Server:
    """`backflow -p DIR serve --listen 127.0.0.1:0` as a child process."""

    def __init__(self, project, env=None, timeout=15.0):
        self.project = project
        self.log_path = os.path.join(project.dir, "serve.log")
        full_env = dict(os.environ)
        full_env.update(env or {})
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen([BIN, "-p", project.dir, "serve", "--listen", "127.0.0.1:0"],
                                     stdout=subprocess.PIPE, stderr=self._log, env=full_env)
        line = b""
        deadline = time.monotonic() + timeout
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                self.kill()
                raise AssertionError(f"serve did not start: {line!r} {self.log()}")
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                ch = os.read(self.proc.stdout.fileno(), 1)
                if not ch:
                    continue
                line += ch
        text = line.decode().strip()
        assert text.startswith("listening on http://127.0.0.1:"), text
        self.port = int(text.rsplit(":", 1)[1])
        self.base = f"http://127.0.0.1:{self.port}"

    def request(self, method, path, token=TOKEN, body=None, headers=None, auth=None):
        """Returns (status, headers dict lower-cased, body bytes)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        h = dict(headers or {})
        if auth is not None:
            h["Authorization"] = auth
        elif token is not None:
            h["Authorization"] = f"Bearer {token}"
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        data = r.read()
        out = (r.status, {k.lower(): v for k, v in r.getheaders()}, data)
        conn.close()
        return out

    def get_json(self, path, expect=200):
        status, hdrs, data = self.request("GET", path)
        assert status == expect, (path, status, data)
        assert hdrs["content-type"].startswith("application/json"), hdrs
        return json.loads(data)

    def runs(self, sync):
        return self.get_json(f"/api/syncs/{sync}/runs?limit=1000")["runs"]

    def finished_runs(self, sync):
        return [r for r in self.runs(sync) if r["status"] != "running"]

    def log(self):
        if not self._log.closed:
            self._log.flush()
        with open(self.log_path) as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM, timeout=20.0):
        """Sends sig and returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"serve did not stop within {timeout}s: {self.log()}")
        finally:
            self._log.close()
            self.proc.stdout.close()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def new_project(case, config_text, rows=20):
    """A Project with `rows` users, cleaned up with the test case."""
    p = Project()
    case.addCleanup(p.cleanup)
    users_table(p, rows)
    p.write_config(config_text)
    return p


def start_server(case, project, **kw):
    s = Server(project, **kw)

    def cleanup():
        if s.proc.poll() is None:
            s.kill()
    case.addCleanup(cleanup)
    return s


def tmpdir(case):
    d = tempfile.mkdtemp(prefix="bf-serve-")
    case.addCleanup(lambda: subprocess.run(["rm", "-rf", d]))
    return d
