#!/usr/bin/env python3
"""HubSpot push benchmark (issue 4, "Speed"): `backflow run` against the HubSpot
contract server (tests/contract/hubspot_server.py, strict: it validates every
input and answers with HubSpot's full response shape).

  1. limits off: records/s of a first run of N contacts (goal >= 50,000/s), with the
     CPU seconds of each side, so a Python-bound figure is recognisable as such;
  2. the documented limit on (100 requests per rolling 10 s, the smallest HubSpot tier;
     the server enforces it and answers 429 past it; backflow runs with its defaults):
     achieved request rate / allowed rate (goal >= 0.95) and the number of 429s (goal 0).

  python3 bench/crm_bench.py --binary build/backflow [--rows N] [--limited-seconds S]
Prints a table and writes build/crm-bench-results.json.
"""
import argparse
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "contract"))
from contract_base import ContractServer  # noqa: E402

TOKEN = "pat-na1-bench-0000-1111-2222-333333333333"
DOC_MAX, DOC_INTERVAL_MS = 100, 10000  # HubSpot: 100 requests / 10 s (free & starter tiers)

CONFIG = """\
version: 1
warehouses:
  local: {{type: sqlite, path: warehouse.db}}
models:
  users:
    warehouse: local
    sql: SELECT id, email, first_name, last_name, plan, ltv FROM users
    primary_key: id
destinations:
  crm:
    type: hubspot
    token: "{token}"
    base_url: "{base}"
{limits}syncs:
  contacts:
    model: users
    destination: crm
    mode: upsert
    object: contacts
    match: {{email: email}}
    fields: {{firstname: first_name, lastname: last_name, plan: plan, ltv: ltv}}
{batch}"""


def make_warehouse(path, n):
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, first_name TEXT,"
                " last_name TEXT, plan TEXT, ltv REAL)")
    plans = ("free", "starter", "pro", "enterprise")
    con.executemany("INSERT INTO users VALUES (?,?,?,?,?,?)",
                    ((i, f"user{i}@example.com", f"First{i}", f"Last{i}", plans[i % 4], i * 0.75)
                     for i in range(1, n + 1)))
    con.commit()
    con.close()


def run_backflow(binary, project, timeout):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    p = subprocess.run([binary, "-p", project, "run", "contacts", "--json"], capture_output=True,
                       text=True, timeout=timeout)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if p.returncode != 0:
        raise SystemExit(f"backflow run failed ({p.returncode}): {p.stderr}")
    return json.loads(p.stdout)["runs"][0], wall, cpu


def project_with(rows, base, limits, batch=""):
    d = tempfile.mkdtemp(prefix="bf-crm-bench-")
    make_warehouse(os.path.join(d, "warehouse.db"), rows)
    with open(os.path.join(d, "backflow.yml"), "w") as f:
        f.write(CONFIG.format(token=TOKEN, base=base, limits=limits, batch=batch))
    return d


def unlimited(binary, rows, in_flight, batch_size):
    server = ContractServer.start("hubspot_server.py", config={"token": TOKEN})
    proj = project_with(rows, server.base,
                        f"    rate_limit: {{requests_per_second: 0}}\n    max_in_flight: {in_flight}\n",
                        f"    batch_size: {batch_size}\n")
    try:
        c0 = server.counters()
        run, wall, cpu = run_backflow(binary, proj, timeout=600)
        c1 = server.counters()
        assert run["added"] == rows, run
        server_cpu = c1["cpu_seconds"] - c0["cpu_seconds"]
        reqs = c1["counters"].get("upsert_requests", 0)
        return {"rows": rows, "wall_s": wall, "records_per_s": rows / wall, "requests": reqs,
                "client_cpu_s": cpu, "server_cpu_s": server_cpu,
                "server_busy": server_cpu / wall, "client_records_per_cpu_s": rows / cpu,
                "server_records_per_cpu_s": rows / server_cpu if server_cpu else 0.0,
                "rate_limited": c1["counters"].get("rate_limited", 0)}
    finally:
        server.stop()
        shutil.rmtree(proj, ignore_errors=True)


def limited(binary, seconds):
    server = ContractServer.start("hubspot_server.py", config={"token": TOKEN},
                                  faults={"rate_limit": {"max": DOC_MAX, "interval_ms": DOC_INTERVAL_MS}})
    allowed = DOC_MAX / (DOC_INTERVAL_MS / 1000.0)
    rows = int(allowed * seconds) * 100
    proj = project_with(rows, server.base, "")  # backflow's documented defaults
    try:
        run, wall, _ = run_backflow(binary, proj, timeout=seconds * 4 + 60)
        assert run["added"] == rows, run
        c = server.counters()["counters"]
        times = sorted(server.times())
        rate = (len(times) - 1) / (times[-1] - times[0])
        return {"rows": rows, "wall_s": wall, "requests": len(times), "allowed_per_s": allowed,
                "achieved_per_s": rate, "ratio": rate / allowed, "rate_limited": c.get("rate_limited", 0),
                "records_per_s": rows / wall}
    finally:
        server.stop()
        shutil.rmtree(proj, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "backflow"))
    ap.add_argument("--rows", type=int, default=200000)
    ap.add_argument("--in-flight", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=10000)
    ap.add_argument("--limited-seconds", type=int, default=12)
    ap.add_argument("--skip-limited", action="store_true")
    args = ap.parse_args()
    binary = os.path.abspath(args.binary)

    sys.stderr.write(f"crm bench: {args.rows} contacts, limits off ...\n")
    u = unlimited(binary, args.rows, args.in_flight, args.batch_size)
    res = {"unlimited": u}
    if not args.skip_limited:
        sys.stderr.write(f"crm bench: documented limit ({DOC_MAX} per {DOC_INTERVAL_MS // 1000} s), "
                         f"~{args.limited_seconds} s ...\n")
        res["limited"] = limited(binary, args.limited_seconds)

    print(f"{'figure':58} {'value':>14} {'goal':>10}")
    bound = "server-bound" if u["server_busy"] > 0.85 else "client-bound" if u["client_cpu_s"] / u["wall_s"] > 0.85 else ""
    print(f"{'HubSpot push, limits off: records/s':58} {u['records_per_s']:14,.0f} {'>= 50,000':>10} "
          f"{'PASS' if u['records_per_s'] >= 50000 else 'FAIL'} {bound}")
    print(f"{'  wall s / requests of 100':58} {u['wall_s']:9.2f} / {u['requests']}")
    print(f"{'  backflow CPU s (records per CPU s)':58} {u['client_cpu_s']:9.2f} ({u['client_records_per_cpu_s']:,.0f})")
    print(f"{'  contract server CPU s (busy share of wall)':58} {u['server_cpu_s']:9.2f} ({u['server_busy']:.0%})")
    if "limited" in res:
        lim = res["limited"]
        print(f"{'HubSpot push, documented limit: achieved / allowed':58} {lim['ratio']:14.3f} {'>= 0.95':>10} "
              f"{'PASS' if lim['ratio'] >= 0.95 and lim['rate_limited'] == 0 else 'FAIL'}")
        print(f"{'  requests/s achieved / allowed; 429s':58} {lim['achieved_per_s']:9.2f} / "
              f"{lim['allowed_per_s']:.2f}; {lim['rate_limited']}")
        print(f"{'  records/s under the limit':58} {lim['records_per_s']:14,.0f}")
    out = os.path.join(ROOT, "build", "crm-bench-results.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
