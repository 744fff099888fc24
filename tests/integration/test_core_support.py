"""Shared helpers for the test_core_* integration tests (no tests in here).

A CoreCase owns temporary projects and webhook receivers and cleans them up;
config() writes a backflow.yml for a `users` model synced either to the strict
webhook receiver (destination `hook`) or to a JSON Lines file (destination `out`).
"""
import json
import os
import socket
import sqlite3
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from bfhelp import WEBHOOK_SECRET, Project, users_table  # noqa: E402,F401
from webhook_receiver import Receiver, canonical_key  # noqa: E402

MODEL_SQL = "SELECT id, email, first_name, plan, ltv, note FROM users"
DEFAULT_FIELDS = {"email": "email", "first_name": "first_name", "plan": "plan"}
MATCH = {"user_id": "id"}


def _yaml_map(d):
    return "{" + ", ".join(f"{k}: {v}" for k, v in d.items()) + "}"


def webhook_dest(url, secret=WEBHOOK_SECRET, max_retries=2, timeout="5s", extra=""):
    return (f"  hook:\n"
            f"    type: webhook\n"
            f"    url: \"{url}\"\n"
            f"    signing_secret: \"{secret}\"\n"
            f"    timeout: {timeout}\n"
            f"    max_retries: {max_retries}\n"
            f"    retry_base: 10ms\n"
            f"    retry_max_wait: 5s\n" + extra)


def file_dest(path="out/users.jsonl"):
    return f"  out: {{type: file, path: {path}, fsync: false}}\n"


def sync_block(name, destination, mode="mirror", fields=None, model="users", batch_size=None,
               match=None):
    text = (f"  {name}:\n"
            f"    model: {model}\n"
            f"    destination: {destination}\n"
            f"    mode: {mode}\n"
            f"    match: {_yaml_map(match or MATCH)}\n"
            f"    fields: {_yaml_map(fields or DEFAULT_FIELDS)}\n")
    if batch_size:
        text += f"    batch_size: {batch_size}\n"
    return text


def config(destinations, syncs, models=None):
    """destinations/syncs: YAML fragments (indented 2); models: {name: sql}."""
    models = models or {"users": MODEL_SQL}
    text = ("version: 1\n"
            "warehouses:\n"
            "  local: {type: sqlite, path: warehouse.db}\n"
            "models:\n")
    for name, sql in models.items():
        text += (f"  {name}:\n"
                 f"    warehouse: local\n"
                 f"    sql: {sql}\n"
                 f"    primary_key: id\n"
                 f"    pii: {{email: email, first_name: name}}\n")
    text += "destinations:\n" + "".join(destinations)
    text += "syncs:\n" + "".join(syncs)
    return text


def expected_store(project, fields=None, sql=MODEL_SQL, match=None):
    """What the destination must hold for this model: canonical key -> fields.
    First row of a duplicated key wins, NULL keys are skipped (design.md §1.3)."""
    fields = fields or DEFAULT_FIELDS
    match = match or MATCH
    con = sqlite3.connect(project.db_path)
    try:
        cur = con.execute(sql)
        cols = [c[0] for c in cur.description]
        out = {}
        for row in cur:
            r = dict(zip(cols, row))
            if r["id"] is None:
                continue
            ck = canonical_key({k: r[v] for k, v in match.items()})
            if ck in out:
                continue
            out[ck] = {k: r[v] for k, v in fields.items()}
        return out
    finally:
        con.close()


def read_events(path):
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def fold_events(events):
    """Replays JSON Lines events into a store like the receiver's."""
    store = {}
    for ev in events:
        ck = canonical_key(ev["key"])
        if ev["op"] == "delete":
            store.pop(ck, None)
        else:
            store[ck] = ev["fields"]
    return store


def closed_port():
    """A TCP port on 127.0.0.1 that nothing listens on."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def snapshot(paths):
    out = {}
    for p in paths:
        with open(p, "rb") as f:
            out[p] = f.read()
    return out


def delta(before, after, *names):
    return {n: after[n] - before[n] for n in names}


class CoreCase(unittest.TestCase):
    """Base class with helpers; defines no tests itself."""

    def new_project(self, rows=0, config_text=None):
        p = Project(config_text)
        self.addCleanup(p.cleanup)
        if rows:
            users_table(p, rows)
        return p

    def new_receiver(self, **kw):
        r = Receiver.start(WEBHOOK_SECRET, **kw)
        self.addCleanup(r.stop)
        return r

    def run_sync(self, project, *args, expect=0):
        """`run ARGS --json`; asserts the exit status; returns the first run object."""
        rc, doc, err = project.run_json("run", *args)
        self.assertEqual(rc, expect, f"exit {rc}, expected {expect}; stderr: {err!r}; out: {doc!r}")
        self.assertEqual(len(doc["runs"]), 1, doc)
        run = doc["runs"][0]
        run["_stderr"] = err
        return run

    def plan(self, project, sync, expect=0):
        rc, doc, err = project.run_json("plan", sync)
        self.assertEqual(rc, expect, f"plan exit {rc}; stderr: {err!r}")
        return doc

    def errors(self, project, sync, *extra):
        rc, doc, err = project.run_json("errors", sync, *extra)
        self.assertEqual(rc, 0, f"errors exit {rc}; stderr: {err!r}")
        return doc

    def assertCounts(self, run, **expected):
        got = {k: run[k] for k in expected}
        self.assertEqual(got, expected, run)
