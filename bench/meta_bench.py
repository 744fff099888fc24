#!/usr/bin/env python3
"""Meta audience speed (issue 5): rows/s normalised + hashed + sent to the Meta
contract server (tests/contract/meta_audience_server.py) with the rate limit
off, and hashes/s of the normaliser alone (build/tools/pii_hash_bench).

  python3 bench/meta_bench.py [--binary build/backflow] [--rows 200000] [--keys 3]

Goal: >= 100,000 rows/s end to end. Prints a small table; exits 1 below goal.
The server runs in its own process with --no-verify (it still checks the
payload shape, the hex of every hashed cell and batch_seq, and keeps the
audience); the first run's wall time covers the scan, PRF keys, diff, state
journal, normalisation, SHA-256, JSON and HTTP.
"""
import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CONFIG = """version: 1
warehouses:
  local: {{type: sqlite, path: warehouse.db}}
models:
  people:
    warehouse: local
    sql: SELECT id, email, phone, first_name, country FROM people
    primary_key: id
    pii: {{email: email, phone: phone, first_name: name}}
destinations:
  fb:
    type: meta_audience
    token: "bench-token"
    audience_id: "23850000000000001"
    base_url: "{url}"
    rate_limit: {{requests_per_second: 0}}
syncs:
  people_to_fb:
    model: people
    destination: fb
    mode: mirror
    match: {{EMAIL: email}}
    fields: {fields}
"""
FIELDS = {1: "{}", 2: "{PHONE: phone}", 3: "{PHONE: phone, FN: first_name}",
          4: "{PHONE: phone, FN: first_name, COUNTRY: country}"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "backflow"))
    ap.add_argument("--rows", type=int, default=200000)
    ap.add_argument("--keys", type=int, default=3, choices=sorted(FIELDS))
    ap.add_argument("--goal", type=float, default=100000)
    a = ap.parse_args()
    tools = os.path.join(os.path.dirname(os.path.abspath(a.binary)), "tools")

    hb = subprocess.run([os.path.join(tools, "pii_hash_bench"), "--n", "500000"],
                        capture_output=True, text=True, check=True)
    hashes = json.loads(hb.stdout)

    work = tempfile.mkdtemp(prefix="bf-meta-bench-")
    db = os.path.join(work, "warehouse.db")
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT, phone TEXT,"
                " first_name TEXT, country TEXT)")
    names = ["José", "Mary-Ann", "Łukasz", "O'Brien", "Zoë", "Anna"]
    con.executemany("INSERT INTO people VALUES (?,?,?,?,?)",
                    ((i, f" User.{i}@Example.com", f"+1 (650) {i // 10000 % 1000:03d}-{i % 10000:04d}",
                      names[i % 6], "US") for i in range(1, a.rows + 1)))
    con.commit()
    con.close()

    port_file = os.path.join(work, "port")
    srv = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "contract", "meta_audience_server.py"),
                            "--port", "0", "--port-file", port_file, "--token", "bench-token",
                            "--no-verify", "--lean"], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(port_file):
            if time.monotonic() > deadline or srv.poll() is not None:
                sys.exit("contract server did not start")
            time.sleep(0.01)
        url = f"http://127.0.0.1:{open(port_file).read().strip()}"
        with open(os.path.join(work, "backflow.yml"), "w") as f:
            f.write(CONFIG.format(url=url, fields=FIELDS[a.keys]))
        t0 = time.monotonic()
        p = subprocess.run([a.binary, "-p", work, "run", "people_to_fb", "--json"],
                           capture_output=True, text=True)
        wall = time.monotonic() - t0
        if p.returncode != 0:
            sys.exit(f"run failed ({p.returncode}): {p.stderr}")
        run = json.loads(p.stdout)["runs"][0]
        with urllib.request.urlopen(url + "/_state") as r:
            st = json.loads(r.read())
        c = st["counters"]
        if run["added"] != a.rows or c["rows_added"] != a.rows or c["bad_requests"]:
            sys.exit(f"wrong result: run {run}, server {c}")
        rps = a.rows / wall
        res = {"rows": a.rows, "keys": a.keys, "wall_s": round(wall, 3), "rows_per_s": round(rps),
               "requests": c["add_requests"], "normaliser_hashes_per_s": hashes["hashes_per_s"],
               "normaliser_rows_per_s_3_keys": hashes["rows_per_s"], "goal_rows_per_s": a.goal,
               "pass": rps >= a.goal}
        print(f"{'figure':<44} {'value':>14}  goal")
        print(f"{'meta_audience rows/s (' + str(a.keys) + ' keys, end to end)':<44} {rps:>14,.0f}  "
              f">= {a.goal:,.0f} {'PASS' if res['pass'] else 'FAIL'}")
        print(f"{'normaliser alone, hashes/s':<44} {hashes['hashes_per_s']:>14,.0f}")
        print(f"{'normaliser alone, rows/s (3 keys)':<44} {hashes['rows_per_s']:>14,.0f}")
        print(f"{'requests of <= 10,000 rows':<44} {c['add_requests']:>14}")
        os.makedirs(os.path.join(ROOT, "build"), exist_ok=True)
        with open(os.path.join(ROOT, "build", "meta-bench-results.json"), "w") as f:
            json.dump(res, f, indent=1)
        return 0 if res["pass"] else 1
    finally:
        srv.terminate()
        srv.wait()


if __name__ == "__main__":
    sys.exit(main())
