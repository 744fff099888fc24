"""Security basics (issue 7): secrets are never printed or stored, state files
are private whatever the umask, redirects are not followed.

Every test runs backflow with `-v -v` (debug logging) against a webhook
destination that carries every kind of secret the config can hold: a signing
secret, an Authorization header, a header from ${ENV}, user:password@ in the
URL, a token in its query string and a project secret from ${ENV}. Then it
greps stdout and stderr of every command, and every file the run created
(state dir and anything else in the project except backflow.yml and the
warehouse), for each secret value and its usual encodings."""
import base64
import binascii
import os
import stat
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from test_core_support import (WEBHOOK_SECRET, CoreCase, closed_port, config, sync_block,
                               webhook_dest)

N = 40
URL_USER = "bfuser"
URL_PASSWORD = "Pa55-Url-Secret-77"
QUERY_TOKEN = "Query-Token-Secret-66"
AUTH_TOKEN = "tok-Auth-9f8e7d6c5b4a"
ENV_API_KEY = "Env-Api-Key-Secret-31"
PROJECT_SECRET = "Project-Secret-0123456789abcdef"
BAD_SIGNING = "whsec_!!not-base64-Secret-55"
ENV = {"BF_TEST_API_KEY": ENV_API_KEY, "BF_TEST_PROJECT_SECRET": PROJECT_SECRET}


def needles():
    """Each secret as text, plus the forms it travels in (Basic auth, the
    signing key's base64 and hex)."""
    key_b64 = WEBHOOK_SECRET[len("whsec_"):]
    key = base64.b64decode(key_b64)
    basic = base64.b64encode(f"{URL_USER}:{URL_PASSWORD}".encode()).decode()
    return {
        "signing secret": WEBHOOK_SECRET, "signing key (base64)": key_b64,
        "signing key (hex)": binascii.hexlify(key).decode(),
        "url password": URL_PASSWORD, "query token": QUERY_TOKEN,
        "basic auth": basic, "authorization header": AUTH_TOKEN,
        "header from env": ENV_API_KEY, "project secret from env": PROJECT_SECRET,
        "malformed signing secret": BAD_SIGNING,
    }


def secret_url(base):
    """http://user:password@host:port/in?token=... for a receiver base URL."""
    scheme, rest = base.split("://", 1)
    return f"{scheme}://{URL_USER}:{URL_PASSWORD}@{rest}/in?token={QUERY_TOKEN}&x=1"


def secret_dest(url, signing=WEBHOOK_SECRET, max_retries=1, timeout="5s"):
    return webhook_dest(url, secret=signing, max_retries=max_retries, timeout=timeout,
                        extra=("    headers:\n"
                               f"      Authorization: \"Bearer {AUTH_TOKEN}\"\n"
                               "      X-Api-Key: \"${BF_TEST_API_KEY}\"\n"))


class SecretsNeverShown(CoreCase):
    def setUp(self):
        self.p = self.new_project(rows=N)
        self.outputs = []  # (command, stdout, stderr)

    def write(self, dest, mode="mirror", batch_size=10):
        text = config([dest], [sync_block("users", "hook", mode=mode, batch_size=batch_size)])
        text = text.replace("version: 1\n", "version: 1\nsecret: \"${BF_TEST_PROJECT_SECRET}\"\n", 1)
        self.p.write_config(text)

    def bf(self, *args, expect=None):
        proc = self.p.run("-v", "-v", *args, env=ENV)
        self.outputs.append((args, proc.stdout, proc.stderr))
        if expect is not None:
            self.assertEqual(proc.returncode, expect, f"{args}: {proc.stderr[-2000:]}")
        return proc

    def inspect(self, state_expected=True):
        """Runs the read-only commands too, then greps everything."""
        for args in (("plan", "users"), ("runs",), ("runs", "--json"), ("errors", "users"),
                     ("errors", "users", "--json"), ("validate", "--offline")):
            self.bf(*args)
        found = []
        for name, value in needles().items():
            for args, out, err in self.outputs:
                for stream, text in (("stdout", out), ("stderr", err)):
                    if value in text:
                        found.append(f"{name} in {stream} of {' '.join(args)}")
            for path in self.project_files():
                with open(path, "rb") as f:
                    if value.encode() in f.read():
                        found.append(f"{name} in {os.path.relpath(path, self.p.dir)}")
        self.assertEqual(found, [])
        if state_expected:
            self.assertGreater(len(self.project_files()), 0)

    def project_files(self):
        skip = {os.path.join(self.p.dir, "backflow.yml"), self.p.db_path}
        out = []
        for root, _, files in os.walk(self.p.dir):
            out.extend(os.path.join(root, f) for f in files
                       if os.path.join(root, f) not in skip)
        return out

    def test_successful_sync_with_rejects_and_retries(self):
        r = self.new_receiver(reject_keys=[3, 7], retry_keys=[5])
        self.write(secret_dest(secret_url(r.base)))
        self.bf("run", "users", expect=1)
        self.assertEqual(len(r.store()), N - 3)
        self.bf("validate", "--connect", expect=0)  # online: a signed, authenticated empty POST
        self.bf("run", "users", "--json", expect=1)
        self.inspect()

    def test_destination_failing_with_5xx_then_garbage(self):
        r = self.new_receiver(status_sequence=[503, 500, 503, 502], retry_after=0)
        self.write(secret_dest(secret_url(r.base)))
        proc = self.bf("run", "users", expect=4)
        self.assertIn("destination 'hook'", proc.stderr)
        self.assertIn("127.0.0.1", proc.stderr)  # the URL is named, without its secrets
        r.control(clear_faults=True, garbage_response=1)
        self.bf("run", "users", expect=0)
        self.inspect()

    def test_wrong_signing_secret_401(self):
        r = self.new_receiver()
        self.write(secret_dest(secret_url(r.base),
                               signing="whsec_" + base64.b64encode(b"another-key-16-bytes").decode()))
        proc = self.bf("run", "users", expect=4)
        self.assertIn("401", proc.stderr)
        self.inspect()

    def test_unreachable_and_timing_out_destinations(self):
        self.write(secret_dest(secret_url(f"http://127.0.0.1:{closed_port()}")))
        self.bf("run", "users", expect=4)
        self.bf("validate", "--connect", expect=4)
        r = self.new_receiver(delay_ms=3000)
        self.write(secret_dest(secret_url(r.base), max_retries=0, timeout="500ms"))
        proc = self.bf("run", "users", expect=4)
        self.assertIn("destination 'hook'", proc.stderr)
        self.inspect()

    def test_malformed_signing_secret_is_not_echoed(self):
        self.write(secret_dest("http://127.0.0.1:9/in", signing=BAD_SIGNING))
        proc = self.bf("run", "users", expect=2)
        self.assertIn("signing_secret", proc.stderr)
        self.inspect()

    def test_values_from_the_environment_are_not_echoed_in_config_errors(self):
        """A ${NAME} value in a place that fails validation is named, not shown."""
        places = [
            ("    timeout: 5s\n", "    timeout: \"${BF_TEST_API_KEY}\"\n"),
            ("    max_retries: 1\n", "    max_retries: \"${BF_TEST_API_KEY}\"\n"),
            ("    mode: mirror\n", "    mode: \"${BF_TEST_API_KEY}\"\n"),
            ("    match: {user_id: id}\n", "    match: {user_id: \"${BF_TEST_API_KEY}\"}\n"),
            ("    fields: {email: email,", "    fields: {email: \"${BF_TEST_API_KEY}\","),
            ("    primary_key: id\n", "    primary_key: \"${BF_TEST_API_KEY}\"\n"),
            ("    model: users\n", "    model: \"${BF_TEST_API_KEY}\"\n"),
        ]
        self.write(secret_dest("http://127.0.0.1:9/in"))
        with open(os.path.join(self.p.dir, "backflow.yml")) as f:
            good = f.read()
        for old, new in places:
            with self.subTest(new.strip()):
                self.assertIn(old, good)
                self.p.write_config(good.replace(old, new, 1))
                proc = self.bf("plan", "users")
                self.assertNotEqual(proc.returncode, 0, proc.stderr)
                self.assertIn("backflow.yml:", proc.stderr)
        self.inspect(state_expected=False)


class StateFilesArePrivate(CoreCase):
    def test_state_files_are_0600_and_dirs_0700_even_with_umask_0(self):
        p = self.new_project(rows=N)
        r = self.new_receiver(reject_keys=[2])
        p.write_config(config([webhook_dest(r.url)], [sync_block("users", "hook")]))
        old = os.umask(0)
        try:
            self.assertEqual(p.run("run", "users").returncode, 1)
            r.control(clear_faults=True)
            p.sql("DELETE FROM users WHERE id = 1")
            self.assertEqual(p.run("run", "users").returncode, 0)
            self.assertEqual(p.run("reset", "users").returncode, 0)
            self.assertEqual(p.run("run", "users").returncode, 0)
        finally:
            os.umask(old)
        state = os.path.join(p.dir, ".backflow")
        files = p.state_files()
        self.assertIn(os.path.join(state, "secret"), files)
        bad = []
        for path in files:
            mode = stat.S_IMODE(os.stat(path).st_mode)
            if mode != 0o600:
                bad.append(f"{os.path.relpath(path, p.dir)} {oct(mode)}")
        for root, dirs, _ in os.walk(state):
            for d in [root] + [os.path.join(root, x) for x in dirs]:
                mode = stat.S_IMODE(os.stat(d).st_mode)
                if mode & 0o077:
                    bad.append(f"{os.path.relpath(d, p.dir)}/ {oct(mode)}")
        self.assertEqual(bad, [])


class _Recorder(BaseHTTPRequestHandler):
    """Answers every request with the server's canned reply; counts them."""

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        with self.server.lock:
            self.server.requests.append((self.path, dict(self.headers), body))
        code, headers = self.server.reply
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


def start_recorder(case, code, headers=()):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    srv.lock = threading.Lock()
    srv.requests = []
    srv.reply = (code, list(headers))
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    case.addCleanup(lambda: (srv.shutdown(), srv.server_close()))
    return srv


class RedirectsAreNotFollowed(CoreCase):
    def test_a_redirect_elsewhere_is_a_failure_and_nothing_goes_there(self):
        """A 3xx could send the records (and the Authorization header) to another
        host: the run stops instead, and the other host sees nothing."""
        p = self.new_project(rows=N)
        elsewhere = start_recorder(self, 200)
        redirector = start_recorder(
            self, 307, [("Location", f"http://127.0.0.1:{elsewhere.server_address[1]}/steal")])
        p.write_config(config([secret_dest(f"http://127.0.0.1:{redirector.server_address[1]}/in")],
                              [sync_block("users", "hook")]))
        proc = p.run("run", "users", env=ENV)
        self.assertEqual(proc.returncode, 4, proc.stderr)
        self.assertIn("HTTP 307", proc.stderr)
        self.assertEqual(len(redirector.requests), 1)  # a 3xx is not retried either
        self.assertEqual(elsewhere.requests, [])
        proc = p.run("plan", "users", "--json", env=ENV)
        self.assertIn(f'"added":{N}', proc.stdout.replace(" ", ""))  # nothing counted as sent


if __name__ == "__main__":
    import unittest
    unittest.main()
