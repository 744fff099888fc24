#!/usr/bin/env python3
"""Live sync latency and throughput (issue 12): from COMMIT in PostgreSQL to
receipt at a local webhook receiver.

A real PostgreSQL (wal_level=logical) holds `events(id, v, committed_us)`;
every writing statement sets committed_us = clock_timestamp() in unix
microseconds, taken inside the transaction just before its COMMIT, and the
model maps it, so each record the receiver gets carries its own commit
time. `backflow run bench --live` follows the table. The receiver (a small
HTTP/1.1 keep-alive server in this process, answering Backflow's
per-record results) takes latency = receipt time - committed_us for every
record.

Scenarios:
  single     one UPDATE every 20 ms from one session (a quiet system)
  1000/s     pgbench at 1,000 single-row commits/s for --seconds
  sustained  pgbench commits of 50 rows each, stepping the change rate up;
             reports the highest rate delivered with p99 < 1 s
Prints p50, p95, p99 and max per scenario, and whether the goals are met
(p50 < 20 ms and p99 < 200 ms at 1,000 commits/s; >= 10,000 changes/s).
Progress goes to stderr.

  python3 bench/live_bench.py --binary build/backflow [--seconds 10]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import pgredis  # noqa: E402

ROWS = 100_000
NOW_US = "(extract(epoch from clock_timestamp()) * 1000000)::bigint"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Sink:
    """Collects (receipt_us - committed_us) for every record received."""

    def __init__(self):
        self.lock = threading.Lock()
        self.samples = []
        self.records = 0
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # One write per answer, sent at once: a header write then a body
            # write would meet Nagle's algorithm and the client's delayed ACK
            # (40 ms on Linux), which would be the receiver's latency, not ours.
            wbufsize = -1
            disable_nagle_algorithm = True

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                now_us = time.time_ns() // 1000
                doc = json.loads(body)
                recs = doc.get("records", [])
                lat = [now_us - int(r["fields"]["committed_us"]) for r in recs
                       if r.get("op") == "upsert" and r["fields"].get("committed_us") is not None]
                if os.environ.get("LIVE_BENCH_DEBUG"):
                    for r in recs:
                        c = r["fields"].get("committed_us")
                        if c is not None and now_us - int(c) > 1000000:
                            log(f"late: {r['key']} v={r['fields']['v']} {(now_us - int(c)) / 1e6:.1f}s")
                with sink.lock:
                    sink.samples.extend(lat)
                    sink.records += len(recs)
                out = ('{"results":[' + ",".join(['{"status":"ok"}'] * len(recs)) + "]}").encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def take(self):
        with self.lock:
            s, self.samples = self.samples, []
            n, self.records = self.records, 0
        return s, n


def pct(sorted_vals, p):
    if not sorted_vals:
        return float("nan")
    i = min(len(sorted_vals) - 1, max(0, int(round(p / 100.0 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[i]


def summary(samples_us):
    s = sorted(samples_us)
    return {k: pct(s, p) / 1000.0 for k, p in (("p50", 50), ("p95", 95), ("p99", 99))} | {
        "max": (s[-1] / 1000.0) if s else float("nan"), "n": len(s)}


def pgbench(pg, db, script, rate, seconds, clients=4):
    path = os.path.join(pg.dir, f"script-{rate}.sql")
    with open(path, "w") as f:
        f.write(script)
    os.chmod(pg.dir, 0o755)
    os.chmod(path, 0o644)
    p = subprocess.run(["pgbench", "-n", "-h", pg.sock, "-p", str(pg.port), "-U", "postgres",
                        "-f", path, "-R", str(rate), "-T", str(seconds), "-c", str(clients),
                        "-j", "2", db], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"pgbench failed: {p.stderr}")
    tps = 0.0
    for line in p.stdout.splitlines():
        if line.startswith("tps = "):
            tps = float(line.split()[2])
    return tps


def drain(sink, quiet_s=1.0, limit_s=30.0):
    """Waits until nothing arrives for quiet_s; returns what arrived."""
    samples, records = [], 0
    deadline = time.monotonic() + limit_s
    last = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        s, n = sink.take()
        if n:
            samples += s
            records += n
            last = time.monotonic()
        elif time.monotonic() - last > quiet_s:
            break
    return samples, records


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(HERE, "..", "build", "backflow"))
    ap.add_argument("--seconds", type=int, default=10)
    args = ap.parse_args()
    binary = os.path.abspath(args.binary)

    log("live_bench: starting PostgreSQL (wal_level=logical)")
    pg = pgredis.PgServer(pgredis.LOGICAL).start()
    sink = Sink()
    proj = tempfile.mkdtemp(prefix="bf-live-bench-")
    proc = None
    try:
        db = pg.create_db("bench")
        pg.psql(f"CREATE TABLE events (id bigint PRIMARY KEY, v int NOT NULL, committed_us bigint);"
                f"INSERT INTO events SELECT i, 0, NULL FROM generate_series(1, {ROWS}) i", db=db)
        with open(os.path.join(proj, "backflow.yml"), "w") as f:
            f.write(f"""version: 1
warehouses:
  pg: {{type: postgres, dsn: "{pg.dsn(db)}"}}
models:
  events:
    warehouse: pg
    sql: SELECT id, v, committed_us FROM events
    primary_key: id
    live: {{table: public.events, key: id}}
destinations:
  sink: {{type: webhook, url: "http://127.0.0.1:{sink.port}/in"}}
syncs:
  bench:
    model: events
    destination: sink
    match: {{id: id}}
    fields: {{v: v, committed_us: committed_us}}
    schedule: live
""")
        err_path = os.path.join(proj, "live.err")
        errf = open(err_path, "w")
        proc = subprocess.Popen([binary, "-p", proj, "run", "bench", "--live"],
                                stdout=subprocess.DEVNULL, stderr=errf)
        deadline = time.monotonic() + 120
        while "following changes" not in open(err_path).read():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("backflow did not start following: " + open(err_path).read())
            time.sleep(0.05)
        drain(sink)  # the initial full run (committed_us NULL: no samples)
        log(f"live_bench: following; full run of {ROWS} rows done")
        results = []

        # 1. single changes on a quiet system
        writer = subprocess.Popen(["psql", "-X", "-q", "-h", pg.sock, "-p", str(pg.port), "-U",
                                   "postgres", "-d", db], stdin=subprocess.PIPE, text=True,
                                  stdout=subprocess.DEVNULL)
        for i in range(200):
            writer.stdin.write(f"UPDATE events SET v = v + 1, committed_us = {NOW_US}"
                               f" WHERE id = {1 + i};\n")
            writer.stdin.flush()
            time.sleep(0.02)
        writer.stdin.close()
        writer.wait()
        samples, _ = drain(sink)
        results.append(("single changes, 50/s", None, summary(samples)))
        log(f"live_bench: single: {results[-1][2]}")

        # 2. 1,000 single-row commits per second
        script = ("\\set id random(1, %d)\n" % ROWS +
                  f"UPDATE events SET v = v + 1, committed_us = {NOW_US} WHERE id = :id;\n")
        tps = pgbench(pg, db, script, 1000, args.seconds)
        samples, _ = drain(sink)
        at_1000 = summary(samples)
        results.append((f"1,000 commits/s (pgbench: {tps:.0f} tps)", tps, at_1000))
        log(f"live_bench: 1000/s: {at_1000}")

        # 3. sustained change rate: commits of 50 rows each, stepped up
        best = 0.0
        per = 50
        # Ranges in index order: overlapping commits queue on row locks in
        # the same order, they never deadlock.
        script = ("\\set s random(1, %d)\n" % (ROWS - per) +
                  f"UPDATE events SET v = v + 1, committed_us = {NOW_US}"
                  f" WHERE id BETWEEN :s AND :s + {per - 1};\n")
        for rate in (2000, 5000, 10000, 20000, 40000, 80000):
            t0 = time.monotonic()
            tps = pgbench(pg, db, script, rate // per, args.seconds)
            samples, records = drain(sink)
            elapsed = time.monotonic() - t0
            s = summary(samples)
            changes = tps * per
            results.append((f"{rate:,} changes/s asked ({changes:,.0f} committed/s,"
                            f" {records / args.seconds:,.0f} records/s delivered)", rate, s))
            log(f"live_bench: {rate}/s: {s} in {elapsed:.1f}s")
            delivered = records / args.seconds
            # Sustained: the rate asked was committed, and (coalescing of
            # repeated keys aside) delivered as fast, with p99 under 1 s.
            if s["p99"] < 1000 and changes >= 0.9 * rate and delivered >= 0.95 * changes:
                best = max(best, changes)
            else:
                break

        print("\nLive sync latency, COMMIT (clock_timestamp in the row) to receipt at a local "
              "webhook receiver, ms")
        print(f"{'scenario':<78} {'n':>7} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8}")
        for name, _, s in results:
            print(f"{name:<78} {s['n']:>7} {s['p50']:>8.1f} {s['p95']:>8.1f} {s['p99']:>8.1f}"
                  f" {s['max']:>8.1f}")
        met1 = at_1000["p50"] < 20 and at_1000["p99"] < 200
        print(f"\ngoal p50 < 20 ms and p99 < 200 ms at 1,000 commits/s: "
              f"{'met' if met1 else 'NOT met'} (p50 {at_1000['p50']:.1f} ms, "
              f"p99 {at_1000['p99']:.1f} ms)")
        print(f"goal >= 10,000 changes/s sustained with p99 < 1 s: "
              f"{'met' if best >= 10000 else 'NOT met'} (highest: {best:,.0f} changes/s)")
    finally:
        if proc and proc.poll() is None:
            proc.send_signal(2)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        sink.server.shutdown()
        pg.destroy()
        shutil.rmtree(proj, ignore_errors=True)


if __name__ == "__main__":
    main()
