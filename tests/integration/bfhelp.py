"""Shared helpers for integration tests: temporary projects, running the
backflow binary, reading its JSON output."""
import json
import os
import shlex
import shutil
import sqlite3
import subprocess
import tempfile

BIN = os.environ.get("BACKFLOW_BIN") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "backflow")
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
# Optional command prefix for Project.run, e.g. "valgrind --error-exitcode=99"
# (`make valgrind` sets it).
RUN_PREFIX = shlex.split(os.environ.get("BACKFLOW_VALGRIND", ""))


class Project:
    """A project folder with a SQLite warehouse and a backflow.yml."""

    def __init__(self, config_text=None):
        self.dir = tempfile.mkdtemp(prefix="bf-test-")
        self.db_path = os.path.join(self.dir, "warehouse.db")
        if config_text is not None:
            self.write_config(config_text)

    def write_config(self, text):
        with open(os.path.join(self.dir, "backflow.yml"), "w") as f:
            f.write(text)

    def sql(self, statements, params=()):
        con = sqlite3.connect(self.db_path)
        try:
            if params:
                con.execute(statements, params)
            else:
                con.executescript(statements)
            con.commit()
        finally:
            con.close()

    def query(self, sql):
        con = sqlite3.connect(self.db_path)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()

    def run(self, *args, env=None, timeout=120):
        """Runs backflow -p DIR ARGS; returns CompletedProcess (text)."""
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        return subprocess.run([*RUN_PREFIX, BIN, "-p", self.dir, *args], capture_output=True, text=True,
                              env=full_env, timeout=timeout)

    def run_json(self, *args, **kw):
        p = self.run(*args, "--json", **kw)
        try:
            doc = json.loads(p.stdout)
        except ValueError:
            raise AssertionError(f"not JSON (exit {p.returncode}): {p.stdout!r} {p.stderr!r}")
        return p.returncode, doc, p.stderr

    def state_files(self):
        out = []
        for root, _, files in os.walk(os.path.join(self.dir, ".backflow")):
            out.extend(os.path.join(root, f) for f in files)
        return out

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def users_table(project, n, start=1):
    """Creates users(id, email, first_name, plan, ltv, note) with n rows."""
    project.sql("CREATE TABLE IF NOT EXISTS users (id INTEGER, email TEXT, first_name TEXT,"
                " plan TEXT, ltv REAL, note TEXT)")
    con = sqlite3.connect(project.db_path)
    con.executemany("INSERT INTO users VALUES (?,?,?,?,?,?)",
                    [(i, f"person{i}@example.com", f"Name{i}", "free", i * 1.5, "n")
                     for i in range(start, start + n)])
    con.commit()
    con.close()
