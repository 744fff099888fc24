#!/usr/bin/env python3
"""The feedback loop's figures (`make bench`; issue 15):
  1. /hooks intake into PostgreSQL with the group commit: events/s with
     100-event deliveries and with one-event deliveries, from 4 client
     processes on keep-alive connections, and the latency of a delivery
     (request sent -> 200, which comes only after the commit);
  2. the closed loop of examples/closed_loop (SQLite, live sync to the
     webhook receiver): `unsubscribed` event posted -> person deleted at the
     destination, p50/p99 over 200 events.
Goals: >= 20,000 events/s intake; loop p99 < 2 s. Prints a table and writes
build/bench-hooks.json.

  python3 bench/hooks_bench.py --binary build/backflow
"""
import argparse
import base64
import hashlib
import hmac
import http.client
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import pgredis  # noqa: E402
from webhook_receiver import Receiver  # noqa: E402

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
TOKEN = "bench-token-4f1c"
KEY = base64.b64decode(SECRET[6:])


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def headers(body):
    mid = "msg_" + uuid.uuid4().hex
    ts = str(int(time.time()))
    mac = hmac.new(KEY, f"{mid}.{ts}.".encode() + body, hashlib.sha256).digest()
    return {"webhook-id": mid, "webhook-timestamp": ts, "Content-Type": "application/json",
            "webhook-signature": "v1," + base64.b64encode(mac).decode()}


def start_serve(binary, project, env):
    import subprocess
    full = dict(os.environ, **env)
    proc = subprocess.Popen([binary, "-p", project, "-v", "-v", "serve", "--listen", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=open(os.path.join(project, "serve.log"), "w"),
                            env=full)
    line = proc.stdout.readline().decode().strip()
    if not line.startswith("listening on http://"):
        raise SystemExit(f"serve did not start: {line}")
    return proc, int(line.rsplit(":", 1)[1])


def client(args):
    port, n_requests, per_request, seed = args
    # Bodies and signatures are made before the clock starts: the figure is
    # Backflow's intake, not the client's JSON encoding.
    reqs = []
    for i in range(n_requests):
        evs = [{"event": "opened", "user_id": seed * 1000000 + i * per_request + k,
                "campaign": "spring"} for k in range(per_request)]
        body = json.dumps(evs if per_request > 1 else evs[0]).encode()
        reqs.append((body, headers(body)))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    lat = []
    start = time.time()
    for body, h in reqs:
        t0 = time.monotonic()
        conn.request("POST", "/hooks/hook", body=body, headers=h)
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            raise SystemExit(f"status {r.status}")
        lat.append(time.monotonic() - t0)
    return start, time.time(), lat


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def intake(binary, per_request, n_requests, procs=8):
    pg = pgredis.shared_pg()
    db = pg.create_db("hooks")
    d = tempfile.mkdtemp(prefix="bf-hooks-bench-")
    with open(os.path.join(d, "backflow.yml"), "w") as f:
        f.write(f"""version: 1
server: {{listen: "127.0.0.1:8420", token: "{TOKEN}"}}
warehouses:
  pg: {{type: postgres, dsn: "${{PG_DSN}}"}}
models:
  users: {{warehouse: pg, sql: SELECT 1 AS id, primary_key: id}}
destinations:
  hook: {{type: webhook, url: "http://127.0.0.1:9/in", signing_secret: "{SECRET}"}}
syncs:
  s: {{model: users, destination: hook, match: {{user_id: id}}, fields: {{n: id}}}}
""")
    proc, port = start_serve(binary, d, {"PG_DSN": pg.dsn(db)})
    try:
        with multiprocessing.Pool(procs) as pool:
            res = pool.map(client, [(port, n_requests, per_request, s) for s in range(procs)])
        wall = max(r[1] for r in res) - min(r[0] for r in res)
        lat = [x for r in res for x in r[2]]
        with open(f"/proc/{proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        serve_cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        stored = int(pg.psql("SELECT count(*) FROM backflow.events", db=db)[0][0])
        want = procs * n_requests * per_request
        if stored != want:
            raise SystemExit(f"stored {stored} events, sent {want}")
        log(f"  serve used {serve_cpu:.2f} s of CPU: {want / serve_cpu:,.0f} events per CPU second")
        return {"events": want, "seconds": wall, "events_per_s": want / wall,
                "serve_cpu_s": serve_cpu, "events_per_serve_cpu_s": want / serve_cpu,
                "requests_per_s": procs * n_requests / wall,
                "latency_p50_ms": pct(lat, 50) * 1000, "latency_p99_ms": pct(lat, 99) * 1000}
    finally:
        proc.terminate()
        proc.wait(20)
        commits = [float(l.rsplit(" in ", 1)[1].split()[0]) for l in open(os.path.join(d, "serve.log"))
                   if "group commit into" in l]
        if commits:
            log(f"  {len(commits)} commits, p50 {pct(commits, 50):.1f} ms, p99 {pct(commits, 99):.1f} ms")
        shutil.rmtree(d, ignore_errors=True)


def loop(binary, n=200):
    import sqlite3
    import subprocess
    r = Receiver.start(SECRET)
    d = tempfile.mkdtemp(prefix="bf-loop-bench-")
    shutil.copy(os.path.join(ROOT, "examples", "closed_loop", "backflow.yml"), d)
    con = sqlite3.connect(os.path.join(d, "warehouse.db"))
    con.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, plan TEXT)")
    con.executemany("INSERT INTO users VALUES (?, ?, 'pro')",
                    [(i, f"u{i}@example.com") for i in range(1, n + 51)])
    con.commit()
    con.close()
    env = {"BACKFLOW_TOKEN": TOKEN, "CRM_URL": r.url, "CRM_SIGNING_SECRET": SECRET}
    subprocess.run([binary, "-p", d, "live", "setup", "audience_to_crm"], check=True,
                   env=dict(os.environ, **env), capture_output=True)
    proc, port = start_serve(binary, d, env)
    try:
        deadline = time.monotonic() + 60
        while len(r.store()) < n + 50:
            if time.monotonic() > deadline:
                raise SystemExit("the first full run did not finish")
            time.sleep(0.05)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        lat = []
        for uid in range(1, n + 1):
            body = json.dumps({"event": "unsubscribed", "user_id": uid}).encode()
            t0 = time.monotonic()
            conn.request("POST", "/hooks/crm", body=body, headers=headers(body))
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                raise SystemExit(f"status {resp.status}")
            key = json.dumps({"user_id": uid})
            while key in r.store():
                if time.monotonic() - t0 > 10:
                    raise SystemExit(f"user {uid} not removed")
                time.sleep(0.002)
            lat.append(time.monotonic() - t0)
        return {"events": n, "p50_ms": pct(lat, 50) * 1000, "p99_ms": pct(lat, 99) * 1000,
                "max_ms": max(lat) * 1000}
    finally:
        proc.terminate()
        proc.wait(20)
        r.stop()
        shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "backflow"))
    ap.add_argument("--requests", type=int, default=125, help="per client, 100-event deliveries")
    a = ap.parse_args()
    binary = os.path.abspath(a.binary)
    log("hooks bench: intake, 100 events per delivery ...")
    big = intake(binary, 100, a.requests)
    log("hooks bench: intake, 1 event per delivery ...")
    small = intake(binary, 1, a.requests * 4)
    log("hooks bench: closed loop, 200 events ...")
    lp = loop(binary)
    rows = [
        ("hook intake into PostgreSQL, 100-event deliveries", f"{big['events_per_s']:,.0f} events/s",
         ">= 20,000", big["events_per_s"] >= 20000),
        ("  delivery latency to 200 (after commit) p50 / p99",
         f"{big['latency_p50_ms']:.1f} / {big['latency_p99_ms']:.1f} ms", "< 1000", big["latency_p99_ms"] < 1000),
        ("hook intake, 1-event deliveries", f"{small['events_per_s']:,.0f} events/s", "", True),
        ("  delivery latency p50 / p99", f"{small['latency_p50_ms']:.1f} / {small['latency_p99_ms']:.1f} ms",
         "< 1000", small["latency_p99_ms"] < 1000),
        ("closed loop event -> removed, p50 / p99 (200 events)",
         f"{lp['p50_ms']:.0f} / {lp['p99_ms']:.0f} ms", "p99 < 2000", lp["p99_ms"] < 2000),
    ]
    print(f"{'figure':58} {'value':>24}  {'goal':>12}")
    for name, val, goal, ok in rows:
        print(f"{name:58} {val:>24}  {goal:>12} {'' if not goal else ('pass' if ok else 'FAIL')}")
    os.makedirs(os.path.join(ROOT, "build"), exist_ok=True)
    with open(os.path.join(ROOT, "build", "bench-hooks.json"), "w") as f:
        json.dump({"intake_100": big, "intake_1": small, "loop": lp}, f, indent=2)
    return 0 if all(ok for *_, ok in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
