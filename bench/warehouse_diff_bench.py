#!/usr/bin/env python3
"""In-warehouse plan vs local plan (issue 17, docs/scale.md), on a real local
PostgreSQL: a ROWS-row model, 0.1% of its rows changed between runs.

For each of `state: local` and `state: warehouse`, after the first (full)
run, each measured run follows an UPDATE of 0.1% of the rows:
  wall time        of `backflow run` (direct connection);
  bytes read       from the warehouse connection, counted by a TCP relay
                   between Backflow and PostgreSQL (a separate run, so the
                   relay's cost is not in the wall time);
  peak RSS         of the backflow process (wait4 ru_maxrss).

Usage: python3 bench/warehouse_diff_bench.py [--binary build/backflow]
                                             [--rows 1000000] [--repeat 3]
`make bench` runs it (not `make test`).
"""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import pgredis  # noqa: E402

SECRET = "warehouse-diff-bench-secret-0123456789"


class Relay:
    """127.0.0.1:port -> PostgreSQL, counting bytes PostgreSQL sends."""

    def __init__(self, target_port):
        self.target = target_port
        self.down = 0
        self.lock = threading.Lock()
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(64)
        self.port = self.srv.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _pipe(self, src, dst, count):
        try:
            while True:
                data = src.recv(1 << 16)
                if not data:
                    break
                if count:
                    with self.lock:
                        self.down += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _accept(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            u = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pipe, args=(c, u, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(u, c, True), daemon=True).start()

    def take(self):
        with self.lock:
            n, self.down = self.down, 0
        return n


def project(dir_, dsn, state):
    os.makedirs(dir_, exist_ok=True)
    with open(os.path.join(dir_, "backflow.yml"), "w") as f:
        f.write(f"""version: 1
secret: "{SECRET}"
warehouses:
  pg: {{type: postgres, dsn: "${{PG_DSN}}"}}
models:
  users:
    warehouse: pg
    sql: SELECT id, email, first_name, plan, ltv, score, active, updated_at FROM users
    primary_key: id
destinations:
  out: {{type: file, path: out.jsonl}}
syncs:
  s:
    model: users
    destination: out
    state: {state}
    match: {{user_id: id}}
    fields: {{email: email, first_name: first_name, plan: plan, ltv: ltv, score: score,
              active: active, updated_at: updated_at}}
""")
    return dir_


def run(binary, dir_, dsn):
    """(wall seconds, peak RSS KiB) of one `backflow run s`."""
    env = dict(os.environ, PG_DSN=dsn)
    t0 = time.perf_counter()
    p = subprocess.Popen([binary, "-p", dir_, "run", "s"], env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    dt = time.perf_counter() - t0
    err = p.stderr.read().decode()
    p.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"run failed in {dir_}: {err[-2000:]}")
    return dt, ru.ru_maxrss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "backflow"))
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    binary = os.path.abspath(args.binary)
    pg = pgredis.PgServer(settings={"work_mem": "64MB"}).start()
    work = tempfile.mkdtemp(prefix="bf-whdiff-")
    try:
        db = pg.create_db("bench")
        print(f"generating {args.rows} rows ...", file=sys.stderr)
        pg.psql("CREATE TABLE users (id bigint PRIMARY KEY, email text, first_name text, plan text,"
                " ltv numeric(12,2), score float8, active bool, updated_at timestamptz)", db=db)
        pg.psql(f"INSERT INTO users SELECT i, 'person' || i || '@example.com', 'Name' || (i % 5000),"
                f" (ARRAY['free','pro','team'])[1 + i % 3], (i % 100000) * 1.25, i / 7.0,"
                f" i % 2 = 0, timestamptz '2024-01-01' + i * interval '1 second'"
                f" FROM generate_series(1, {args.rows}) i", db=db, timeout=3600)
        pg.psql("VACUUM ANALYZE users", db=db, timeout=3600)
        direct = pg.dsn(db)
        relay = Relay(pg.port)
        relayed = direct.replace(f":{pg.port}/", f":{relay.port}/")
        dirs = {m: project(os.path.join(work, m), direct, m) for m in ("local", "warehouse")}
        first = {}
        for m, d in dirs.items():
            relay.take()
            t, rss = run(binary, d, relayed)
            first[m] = (t, relay.take(), rss)
            os.truncate(os.path.join(d, "out.jsonl"), 0)
        changed = max(1, args.rows // 1000)
        results = {m: {"t": [], "bytes": [], "rss": []} for m in dirs}
        for k in range(args.repeat):
            for measure in ("time", "bytes"):
                # A fresh 0.1% of the rows changes before each measured pair.
                pg.psql(f"UPDATE users SET ltv = ltv + 1 WHERE id % 1000 = {(2 * k + (measure == 'bytes')) % 1000}",
                        db=db)
                for m, d in dirs.items():
                    if measure == "time":
                        t, rss = run(binary, d, direct)
                        results[m]["t"].append(t)
                        results[m]["rss"].append(rss)
                    else:
                        relay.take()
                        run(binary, d, relayed)
                        results[m]["bytes"].append(relay.take())
        print(f"\nwarehouse diff bench: PostgreSQL {args.rows} rows, {changed} changed (0.1%) per run,"
              f" best of {args.repeat}")
        print(f"{'state':<10} {'first run':>10} {'run wall':>10} {'bytes read':>14} {'peak RSS':>10}")
        for m in dirs:
            r = results[m]
            print(f"{m:<10} {first[m][0]:>9.2f}s {min(r['t']):>9.3f}s {min(r['bytes']):>14,}"
                  f" {max(r['rss']) / 1024:>8.1f}MB")
        lt, wt = min(results["local"]["t"]), min(results["warehouse"]["t"])
        lb, wb = min(results["local"]["bytes"]), min(results["warehouse"]["bytes"])
        print(f"warehouse vs local: {lt / wt:.1f}x less time, {lb / max(wb, 1):.0f}x fewer bytes"
              f" (goal: >= 10x time, >= 100x bytes)")
        print(f"first run (full load) bytes: local {first['local'][1]:,}, warehouse"
              f" {first['warehouse'][1]:,}")
    finally:
        pg.destroy()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
