"""Shared helpers for the test_saas_crm_* integration tests (no tests in here).

A CrmCase owns temporary projects and contract servers (tests/contract/) and
cleans them up. The model is a `users` table (id, email, first_name,
last_name, plan, ltv, vip, signup); expected_*() compute what each
destination must hold for it, so tests assert destination state == model.
"""
import os
import sqlite3
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
CONTRACT = os.path.join(os.path.dirname(HERE), "contract")
for p in (HERE, CONTRACT):
    if p not in sys.path:
        sys.path.insert(0, p)

from bfhelp import Project  # noqa: E402
from contract_base import ContractServer  # noqa: E402

HS_TOKEN = "pat-na1-11111111-2222-3333-4444-555555555555"
SF_TOKEN = "00D5g000004XyZa!AQ8AQLongSecretAccessToken.abc"
ZD_EMAIL = "agent@corp.example"
ZD_TOKEN = "zdTokenSecret0123456789abcdef"

MODEL_SQL = ("SELECT id, email, first_name, last_name, plan, ltv, vip = 1 AS vip, signup "
             "FROM users")

HS_SCHEMA = {"contacts": {"unique": ["email"], "properties": {
    "email": "string", "firstname": "string", "lastname": "string", "plan": "string",
    "ltv": "number", "vip": "bool", "signup": "datetime", "source": "string"}}}


def make_users(project, n, start=1):
    project.sql("CREATE TABLE IF NOT EXISTS users (id INTEGER, email TEXT, first_name TEXT,"
                " last_name TEXT, plan TEXT, ltv REAL, vip INTEGER, signup TEXT)")
    con = sqlite3.connect(project.db_path)
    con.executemany("INSERT INTO users VALUES (?,?,?,?,?,?,?,?)",
                    [(i, f"person{i}@example.com", f"First{i}", f"Last{i}", "free", i * 1.5,
                      i % 2, f"2024-01-{1 + i % 28:02d} 10:{i % 60:02d}:00")
                     for i in range(start, start + n)])
    con.commit()
    con.close()


def model_rows(project, sql=MODEL_SQL):
    con = sqlite3.connect(project.db_path)
    try:
        cur = con.execute(sql)
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, r)) for r in cur]
    finally:
        con.close()


def num_text(v):
    """How Backflow writes a number as text (shortest form that reads back)."""
    if v is None:
        return ""
    if isinstance(v, float):
        s = "%.15g" % v
        return s if float(s) == v else "%.17g" % v
    return str(v)


def iso(ts):
    return ts.replace(" ", "T") + "Z" if ts else ""


def hubspot_expected(project):
    out = {}
    for r in model_rows(project):
        out[r["email"].lower()] = {
            "email": r["email"].lower(), "firstname": r["first_name"] or "",
            "lastname": r["last_name"] or "", "plan": r["plan"] or "", "ltv": num_text(r["ltv"]),
            "vip": "true" if r["vip"] else "false", "signup": iso(r["signup"]), "source": "backflow"}
    return out


def hubspot_state(server, obj="contacts"):
    objs = server.state()["objects"][obj]
    return {p["email"]: p for p in objs.values()}


def base_config(destination_yaml, sync_yaml):
    return ("version: 1\n"
            "warehouses:\n"
            "  local: {type: sqlite, path: warehouse.db}\n"
            "models:\n"
            "  users:\n"
            "    warehouse: local\n"
            f"    sql: {MODEL_SQL}\n"
            "    primary_key: id\n"
            "    pii: {email: email, first_name: name, last_name: name}\n"
            "destinations:\n" + destination_yaml + "syncs:\n" + sync_yaml)


def hubspot_config(base_url, token=HS_TOKEN, mode="mirror", extra="", batch_size=None,
                   rate_limit="{requests_per_second: 0}", max_retries=3):
    dest = (f"  crm:\n    type: hubspot\n    token: \"{token}\"\n    base_url: \"{base_url}\"\n"
            f"    rate_limit: {rate_limit}\n    max_retries: {max_retries}\n    retry_base: 20ms\n"
            f"    retry_max_wait: 3s\n    timeout: 5s\n" + extra)
    sync = ("  contacts:\n    model: users\n    destination: crm\n"
            f"    mode: {mode}\n    object: contacts\n    match: {{email: email}}\n"
            "    fields: {firstname: first_name, lastname: last_name, plan: plan, ltv: ltv,"
            " vip: vip, signup: signup}\n"
            "    constants: {source: backflow}\n")
    if batch_size:
        sync += f"    batch_size: {batch_size}\n"
    return base_config(dest, sync)


class CrmCase(unittest.TestCase):
    """Base class with helpers; defines no tests itself."""

    def new_project(self, rows=0):
        p = Project()
        self.addCleanup(p.cleanup)
        if rows:
            make_users(p, rows)
        return p

    def new_server(self, script, config, **faults):
        s = ContractServer.start(script, config=config, faults=faults)
        self.addCleanup(s.stop)
        return s

    def run_sync(self, project, *args, expect=0, timeout=180):
        rc, doc, err = project.run_json("run", *args, timeout=timeout)
        self.assertEqual(rc, expect, f"exit {rc}, expected {expect}; stderr: {err!r}; out: {doc!r}")
        run = doc["runs"][0]
        run["_stderr"] = err
        return run

    def errors(self, project, sync):
        rc, doc, err = project.run_json("errors", sync)
        self.assertEqual(rc, 0, err)
        return doc["errors"]

    def assertCounts(self, run, **expected):
        self.assertEqual({k: run[k] for k in expected}, expected, run)

    def change_rows(self, project):
        """Changes 10 rows, adds 5, deletes 20 (ids 31..50). Returns (changed, added, removed)."""
        project.sql("UPDATE users SET plan = 'pro', ltv = ltv + 0.25 WHERE id <= 10")
        make_users(project, 5, start=10001)
        project.sql("DELETE FROM users WHERE id BETWEEN 31 AND 50")
        return 10, 5, 20
