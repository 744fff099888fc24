"""TLS verification (issue 7): on by default; `insecure: true` turns it off
and says so on stderr.

- an https:// URL whose port speaks plain HTTP fails with a TLS error and
  sends no record (the listener sees only a TLS handshake);
- an HTTPS receiver with a self-signed certificate is refused by default
  before any HTTP request is made;
- with `insecure: true` the same receiver gets the records and every
  command that opens the destination warns, even without -v."""
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from test_core_support import CoreCase, config, sync_block, webhook_dest

N = 20
WARNING = "TLS verification is off (insecure: true)"


class PlainListener:
    """Accepts TCP connections, records what arrives, answers plain HTTP."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.received = []
        self.stop = False
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            with conn:
                conn.settimeout(2)
                data = b""
                try:
                    data = conn.recv(65536)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                except OSError:
                    pass
                self.received.append(data)

    def close(self):
        self.stop = True
        self.thread.join(5)
        self.sock.close()


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            self.server.bodies.append(body)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


def self_signed(folder):
    cert, key = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


class TlsVerification(CoreCase):
    def setUp(self):
        self.p = self.new_project(rows=N)

    def write(self, url, insecure=None):
        extra = f"    insecure: {str(insecure).lower()}\n" if insecure is not None else ""
        self.p.write_config(config([webhook_dest(url, max_retries=1, timeout="5s", extra=extra)],
                                   [sync_block("users", "hook", mode="upsert")]))

    def https_server(self):
        folder = tempfile.mkdtemp(prefix="bf-tls-")
        self.addCleanup(shutil.rmtree, folder, True)
        cert, key = self_signed(folder)
        srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        srv.lock = threading.Lock()
        srv.bodies = []
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        self.addCleanup(lambda: (srv.shutdown(), srv.server_close()))
        return srv

    def test_https_url_on_a_plain_http_port_fails_with_a_tls_error_and_sends_nothing(self):
        lst = PlainListener()
        self.addCleanup(lst.close)
        self.write(f"https://127.0.0.1:{lst.port}/in")
        proc = self.p.run("run", "users")
        self.assertEqual(proc.returncode, 4, proc.stderr)
        self.assertRegex(proc.stderr, r"SSL|TLS")
        self.assertIn("destination 'hook'", proc.stderr)
        self.assertGreaterEqual(len(lst.received), 1)
        for data in lst.received:
            # A TLS record (handshake, 0x16) or nothing: never the HTTP request.
            self.assertTrue(data == b"" or data[0] == 0x16, data[:40])
            for needle in (b"POST", b"records", b"user_id", b"example.com", b"webhook-signature"):
                self.assertNotIn(needle, data)
        plan = self.p.run("plan", "users")
        self.assertEqual(plan.returncode, 0, plan.stderr)
        self.assertNotIn(WARNING, proc.stderr + plan.stderr)

    def test_self_signed_certificate_is_refused_by_default(self):
        srv = self.https_server()
        self.write(f"https://127.0.0.1:{srv.server_address[1]}/in")
        proc = self.p.run("run", "users")
        self.assertEqual(proc.returncode, 4, proc.stderr)
        self.assertRegex(proc.stderr, r"(?i)certificate|SSL|TLS")
        self.assertEqual(srv.bodies, [])
        self.assertNotIn(WARNING, proc.stderr)
        proc = self.p.run("validate", "--connect")
        self.assertEqual(proc.returncode, 4, proc.stderr)
        self.assertEqual(srv.bodies, [])

    def test_insecure_true_warns_and_delivers(self):
        srv = self.https_server()
        self.write(f"https://127.0.0.1:{srv.server_address[1]}/in", insecure=True)
        proc = self.p.run("run", "users")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn(WARNING, proc.stderr)
        self.assertIn("destination 'hook'", proc.stderr)
        self.assertGreaterEqual(len(srv.bodies), 1)
        self.assertEqual(sum(b.count(b'"op":"upsert"') for b in srv.bodies), N)
        proc = self.p.run("validate", "--connect")
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn(WARNING, proc.stderr)

    def test_insecure_false_is_the_default(self):
        srv = self.https_server()
        self.write(f"https://127.0.0.1:{srv.server_address[1]}/in", insecure=False)
        proc = self.p.run("run", "users")
        self.assertEqual(proc.returncode, 4, proc.stderr)
        self.assertEqual(srv.bodies, [])
        self.assertNotIn(WARNING, proc.stderr)


if __name__ == "__main__":
    unittest.main()
