#!/usr/bin/env python3
"""Erasure figures (`make bench`; issue 13): a SQLite model of --rows people
synced by upsert syncs to 3 destinations (webhook receiver, JSON Lines file,
a real Redis); --people of them leave the warehouse, then one
`backflow forget --from FILE` erases them all through the identifier index.
Prints wall time (goal: 1,000 people across 3 destinations < 10 s), deletes
per second, and the identifier index's and vault's bytes per record.
Writes build/bench-forget.json.

  python3 bench/forget_bench.py --binary build/backflow [--rows 100000] [--people 1000]
"""
import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import pgredis  # noqa: E402
from webhook_receiver import Receiver  # noqa: E402

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def config(hook_url, redis_url):
    return f"""version: 1
warehouses:
  local: {{type: sqlite, path: warehouse.db}}
models:
  users:
    warehouse: local
    sql: SELECT id, email, plan FROM users
    primary_key: id
    pii: {{email: email}}
destinations:
  hook: {{type: webhook, url: "{hook_url}", signing_secret: "{SECRET}", timeout: 10s}}
  out: {{type: file, path: out/users.jsonl, fsync: false}}
  cache: {{type: redis, url: "{redis_url}", prefix: "user:"}}
syncs:
  to_hook: {{model: users, destination: hook, match: {{user_id: id}}, fields: {{email: email, plan: plan}}}}
  to_file: {{model: users, destination: out, match: {{user_id: id}}, fields: {{email: email, plan: plan}}}}
  to_redis: {{model: users, destination: cache, match: {{user_id: id}}, fields: {{email: email, plan: plan}}}}
"""


def run(binary, project, *args):
    started = time.monotonic()
    prefix = os.environ.get("BF_BENCH_PREFIX", "").split()  # e.g. "perf record -g -o FILE"
    p = subprocess.run([*prefix, binary, "-p", project, *args, "--json"], capture_output=True,
                       text=True)
    return time.monotonic() - started, p


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "backflow"))
    ap.add_argument("--rows", type=int, default=100000)
    ap.add_argument("--people", type=int, default=1000)
    ap.add_argument("--keep", action="store_true", help="keep the project (prints its folder)")
    args = ap.parse_args()
    binary = os.path.abspath(args.binary)
    tmp = tempfile.mkdtemp(prefix="bf-forget-bench-")
    redis = pgredis.RedisServer().start()
    receiver = Receiver.start(SECRET)
    try:
        project = os.path.join(tmp, "p")
        os.makedirs(project)
        with open(os.path.join(project, "backflow.yml"), "w") as f:
            f.write(config(receiver.url, redis.url(0)))
        con = sqlite3.connect(os.path.join(project, "warehouse.db"))
        con.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, plan TEXT)")
        con.executemany("INSERT INTO users VALUES (?,?,?)",
                        ((i, f"person{i}@example.com", "free") for i in range(1, args.rows + 1)))
        con.commit()
        log(f"first run: {args.rows} rows to 3 destinations")
        secs, p = run(binary, project, "run", "--all")
        if p.returncode != 0:
            raise SystemExit(f"run failed: {p.stderr}")
        log(f"  {secs:.1f} s")
        step = max(1, args.rows // args.people)
        gone = [i for i in range(1, args.rows + 1, step)][:args.people]
        con.executemany("DELETE FROM users WHERE id = ?", ((i,) for i in gone))
        con.commit()
        con.close()
        listing = os.path.join(tmp, "erase.txt")
        with open(listing, "w") as f:
            f.writelines(f"Person{i}@Example.com\n" for i in gone)
        log(f"forget --from: {len(gone)} people who left the warehouse, 3 destinations")
        secs, p = run(binary, project, "forget", "--from", listing)
        if p.returncode != 0:
            raise SystemExit(f"forget failed ({p.returncode}): {p.stderr[-2000:]}")
        doc = json.loads(p.stdout)
        deleted = sum(s["deleted"] for r in doc["requests"] for s in r["syncs"])
        if deleted != 3 * len(gone):
            raise SystemExit(f"expected {3 * len(gone)} deletes, got {deleted}")
        left = [k for k in redis.keys("user:*") if int(k.split(":")[1]) in set(gone)]
        if left:
            raise SystemExit(f"{len(left)} erased people still in Redis")
        sync_dir = os.path.join(project, ".backflow", "syncs", "to_file")
        index_bytes = os.path.getsize(os.path.join(sync_dir, "idindex.bin"))
        vault_bytes = os.path.getsize(os.path.join(sync_dir, "vault.bin"))
        state_bytes = sum(os.path.getsize(os.path.join(sync_dir, f))
                          for f in ("state.bin", "journal.bin")
                          if os.path.exists(os.path.join(sync_dir, f)))
        result = {
            "rows": args.rows, "people": len(gone), "destinations": 3,
            "forget_seconds": round(secs, 2), "deletes": deleted,
            "deletes_per_second": round(deleted / secs, 1),
            "index_bytes_per_row": round(index_bytes / args.rows, 1),
            "vault_bytes_per_row": round(vault_bytes / args.rows, 1),
            "state_bytes_per_row": round(state_bytes / args.rows, 1),
            "goal_seconds": 10, "goal_met": secs < 10,
        }
        print(f"forget of {len(gone)} people across 3 destinations ({args.rows} rows per sync): "
              f"{secs:.2f} s ({result['deletes_per_second']} deletes/s; goal < 10 s: "
              f"{'met' if secs < 10 else 'NOT met'})")
        print(f"per record and sync: identifier index {result['index_bytes_per_row']} B, "
              f"vault {result['vault_bytes_per_row']} B, state {result['state_bytes_per_row']} B")
        os.makedirs(os.path.join(ROOT, "build"), exist_ok=True)
        with open(os.path.join(ROOT, "build", "bench-forget.json"), "w") as f:
            json.dump(result, f, indent=2)
    finally:
        receiver.stop()
        redis.destroy()
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
