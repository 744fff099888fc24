"""Real PostgreSQL and redis-server for integration tests (no mocks).

PgServer: initdb into a temporary folder, postgres on a free loopback port
(unix socket in the same folder), as an unprivileged user when running as
root (initdb refuses root). Local socket connections are trusted (psql from
the tests); TCP connections need the password (Backflow's DSN), so wrong
passwords can be tested.

RedisServer: redis-server on a free loopback port, no persistence.

Both wait for readiness by polling (pg_isready / PING), never by sleeping a
fixed time, and stop at the end. shared_pg() / shared_redis() give one server
per test process (stopped at exit); tests that stop and restart PostgreSQL
start their own PgServer.
"""
import atexit
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid

PG_BIN_CANDIDATES = ["/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin",
                     "/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/14/bin"]
PG_PASSWORD = "s3cret-Pw-4-tests"


def pg_bin_dir():
    env = os.environ.get("PG_BIN")
    if env:
        return env
    for d in PG_BIN_CANDIDATES:
        if os.path.exists(os.path.join(d, "initdb")):
            return d
    found = shutil.which("initdb")
    if found:
        return os.path.dirname(found)
    raise RuntimeError("PostgreSQL server binaries not found (install the postgresql package)")


def available():
    """True when both servers can be started here."""
    try:
        pg_bin_dir()
    except RuntimeError:
        return False
    return shutil.which("redis-server") is not None and shutil.which("psql") is not None


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(cond, timeout=30.0, what="condition"):
    """Polls cond() until it returns a true value; raises after timeout."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def _unprivileged_user():
    """The user postgres runs as when we are root: 'nobody', or created."""
    for name in ("nobody", "backflow-test"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            pass
    subprocess.run(["useradd", "--system", "--no-create-home", "backflow-test"], check=True)
    return "backflow-test"


class PgServer:
    def __init__(self, settings=None):
        """settings: extra server settings, e.g. {"wal_level": "logical"}."""
        self.settings = dict(settings or {})
        self.bin = pg_bin_dir()
        self.dir = tempfile.mkdtemp(prefix="bf-pg-")
        self.data = os.path.join(self.dir, "data")
        self.sock = self.dir
        self.log = os.path.join(self.dir, "postgres.log")
        self.port = None
        self.user = None
        self.running = False
        if os.geteuid() == 0:
            self.user = _unprivileged_user()
            pw = pwd.getpwnam(self.user)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        os.chmod(self.dir, 0o755)

    def _as_user(self, argv):
        return ["runuser", "-u", self.user, "--", *argv] if self.user else argv

    def _run(self, argv, **kw):
        return subprocess.run(self._as_user(argv), capture_output=True, text=True, **kw)

    def start(self):
        if not os.path.exists(self.data):
            pwfile = os.path.join(self.dir, "pwfile")
            with open(pwfile, "w") as f:
                f.write(PG_PASSWORD + "\n")
            if self.user:
                pw = pwd.getpwnam(self.user)
                os.chown(pwfile, pw.pw_uid, pw.pw_gid)
            p = self._run([os.path.join(self.bin, "initdb"), "-D", self.data, "-U", "postgres",
                           "--auth-local=trust", "--auth-host=scram-sha-256",
                           "--pwfile", pwfile, "-E", "UTF8", "--no-sync"], timeout=120)
            os.unlink(pwfile)
            if p.returncode != 0:
                raise RuntimeError(f"initdb failed: {p.stdout}\n{p.stderr}")
        if self.port is None:
            self.port = free_port()
        # fsync=off is safe for tests that kill the server (the OS keeps the
        # written WAL); synchronous_commit stays on, or a commit Backflow saw
        # acknowledged could vanish with `pg_ctl stop -m immediate`.
        opts = (f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1 -c fsync=off "
                f"-c full_page_writes=off -c max_connections=50 -c shared_buffers=128MB")
        for k, v in self.settings.items():
            opts += f" -c {k}={v}"
        p = self._run([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-l", self.log,
                       "-o", opts, "-W", "start"], timeout=60)
        if p.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {p.stdout}\n{p.stderr}\n{self.log_tail()}")
        self.running = True
        self.wait_ready()
        return self

    def wait_ready(self, timeout=60):
        isready = os.path.join(self.bin, "pg_isready")

        def ready():
            r = subprocess.run([isready, "-q", "-h", "127.0.0.1", "-p", str(self.port),
                                "-U", "postgres", "-d", "postgres"], capture_output=True)
            return r.returncode == 0
        wait_until(ready, timeout, "postgres to accept connections")

    def stop(self, mode="immediate"):
        """Stops the server (immediate = like a crash: connections drop)."""
        if not self.running:
            return
        self._run([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-m", mode, "-w", "stop"],
                  timeout=60)
        self.running = False

    def restart(self):
        self.stop()
        return self.start()

    def destroy(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, n=30):
        try:
            with open(self.log) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    # --- client side -------------------------------------------------------
    def dsn(self, db="postgres", password=PG_PASSWORD, user="postgres"):
        """TCP DSN as Backflow uses it (password authentication)."""
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{db}"

    def psql(self, sql, db="postgres", check=True, timeout=120):
        """Runs sql over the unix socket; returns rows as lists of strings
        (NULL as None)."""
        p = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.sock,
                            "-p", str(self.port), "-U", "postgres", "-d", db, "-At",
                            "-F", "\x1f", "-R", "\x1e", "-P", "null=\x01NULL", "-c", sql],
                           capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise RuntimeError(f"psql failed ({p.returncode}): {p.stderr}")
        rows = []
        for line in p.stdout.split("\x1e"):
            line = line.rstrip("\n")
            if not line:
                continue
            rows.append([None if v == "\x01NULL" else v for v in line.split("\x1f")])
        return rows

    def create_db(self, prefix="t"):
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        self.psql(f'CREATE DATABASE "{name}"')
        return name


class RedisServer:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="bf-redis-")
        self.port = None
        self.proc = None

    def start(self):
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--dir", self.dir, "--databases", "64"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: self.proc.poll() is not None or self.ping(), 30, "redis PING")
        if self.proc.poll() is not None:
            raise RuntimeError("redis-server exited at start")
        return self

    def ping(self):
        try:
            return self.cli("PING", check=False) == "PONG"
        except Exception:
            return False

    def cli(self, *args, db=0, check=True):
        p = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), "-n", str(db),
                            "--raw", *args],
                           capture_output=True, text=True, timeout=30)
        if check and p.returncode != 0:
            raise RuntimeError(f"redis-cli failed: {p.stderr}")
        return p.stdout.rstrip("\n")

    def keys(self, pattern="*", db=0):
        out = self.cli("--scan", "--pattern", pattern, db=db)
        return sorted(k for k in out.split("\n") if k)

    def hgetall(self, key, db=0):
        out = self.cli("HGETALL", key, db=db)
        parts = out.split("\n") if out else []
        return dict(zip(parts[0::2], parts[1::2]))

    def url(self, db=0):
        return f"redis://127.0.0.1:{self.port}/{db}"

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def destroy(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


_shared = {}


def shared_pg():
    """One PostgreSQL per test process; tests make their own database."""
    if "pg" not in _shared:
        pg = PgServer().start()
        _shared["pg"] = pg
        atexit.register(pg.destroy)
    return _shared["pg"]


LOGICAL = {"wal_level": "logical", "max_replication_slots": "10", "max_wal_senders": "10"}


def shared_logical_pg():
    """One PostgreSQL with wal_level=logical per test process (live syncs)."""
    if "logical" not in _shared:
        pg = PgServer(LOGICAL).start()
        _shared["logical"] = pg
        atexit.register(pg.destroy)
    return _shared["logical"]


def shared_redis():
    if "redis" not in _shared:
        r = RedisServer().start()
        _shared["redis"] = r
        atexit.register(r.destroy)
    return _shared["redis"]
