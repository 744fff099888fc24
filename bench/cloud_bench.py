#!/usr/bin/env python3
"""Cloud warehouse read benchmark (issue 14): `backflow plan` reading an N-row model
from the Snowflake and BigQuery contract servers (tests/integration/*_server.py),
against the raw download of the same result from the same server by a bare client
(the HTTP requests, gunzip and JSON parsing a client needs to find the next page,
nothing else). Reports rows/s, the ratio to the raw download (goal <= 1.3) and
backflow's peak RSS at N/4 and N rows (goal: flat in the row count).

Both sides are bound by the Python server producing the answers, which is the point:
the ratio says what backflow adds on top of fetching the data.

  python3 bench/cloud_bench.py --binary build/backflow [--rows N] [--page-rows P]
Prints a table and writes build/cloud-bench-results.json.
"""
import argparse
import base64
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from bigquery_server import BigQueryServer  # noqa: E402
from snowflake_server import SnowflakeServer  # noqa: E402

TIME = "/usr/bin/time"
ACCOUNT, USER, PROJECT = "BENCH", "BACKFLOW", "bench-project"


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def sign_jwt(key_path, header, claims):
    head = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key_path], input=head.encode(),
                         capture_output=True, check=True).stdout
    return head + "." + b64url(sig)


def http(method, url, body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=600) as r:
        data = r.read()
        if r.headers.get("Content-Encoding") == "gzip":
            data = gzip.decompress(data)
        return data


def measure(cmd, workdir):
    tpath = os.path.join(workdir, ".time")
    use_time = os.access(TIME, os.X_OK)
    full = [TIME, "-f", "%M", "-o", tpath, *cmd] if use_time else cmd
    t0 = time.perf_counter()
    p = subprocess.run(full, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} exited {p.returncode}: {p.stderr[-2000:]}")
    rss = int(open(tpath).read().split()[-1]) if use_time else 0
    return wall, rss


# ---- Snowflake ------------------------------------------------------------
SF_COLS = [{"name": "ID", "type": "fixed", "scale": 0}, {"name": "EMAIL", "type": "text"},
           {"name": "LTV", "type": "fixed", "scale": 2}, {"name": "ACTIVE", "type": "boolean"},
           {"name": "CREATED", "type": "timestamp_ltz", "scale": 9}]


def sf_tables(n):
    return {"USERS": {"columns": SF_COLS, "rows": [
        [str(i), f"person{i}@example.com", f"{i}.25", "true" if i % 2 else "false",
         f"{1704067200 + i}.000000000"] for i in range(1, n + 1)]}}


def sf_raw(url, key, fingerprint):
    now = int(time.time())
    sub = f"{ACCOUNT}.{USER}"
    jwt = sign_jwt(key, {"alg": "RS256", "typ": "JWT"},
                   {"iss": f"{sub}.{fingerprint}", "sub": sub, "iat": now, "exp": now + 3600})
    h = {"Authorization": f"Bearer {jwt}", "X-Snowflake-Authorization-Token-Type": "KEYPAIR_JWT",
         "Accept": "application/json", "User-Agent": "bench", "Accept-Encoding": "gzip",
         "Content-Type": "application/json"}
    t0 = time.perf_counter()
    first = json.loads(http("POST", url + "/api/v2/statements",
                            json.dumps({"statement": "SELECT * FROM users"}).encode(), h))
    handle = first["statementHandle"]
    for i in range(1, len(first["resultSetMetaData"]["partitionInfo"])):
        http("GET", f"{url}/api/v2/statements/{handle}?partition={i}", None, h)
    return time.perf_counter() - t0


# ---- BigQuery -------------------------------------------------------------
BQ_SCHEMA = [{"name": "ID", "type": "INTEGER"}, {"name": "EMAIL", "type": "STRING"},
             {"name": "LTV", "type": "NUMERIC"}, {"name": "ACTIVE", "type": "BOOLEAN"},
             {"name": "CREATED", "type": "TIMESTAMP"}]


def bq_tables(n):
    return {"ANALYTICS.USERS": {"schema": {"fields": BQ_SCHEMA}, "rows": [
        {"f": [{"v": str(i)}, {"v": f"person{i}@example.com"}, {"v": f"{i}.25"},
               {"v": "true" if i % 2 else "false"}, {"v": str((1704067200 + i) * 1000000)}]}
        for i in range(1, n + 1)]}}


def bq_raw(server, key, page_rows):
    kj = json.load(open(server.key_path))
    now = int(time.time())
    t0 = time.perf_counter()
    assertion = sign_jwt(key, {"alg": "RS256", "typ": "JWT", "kid": kj["private_key_id"]},
                         {"iss": kj["client_email"], "aud": kj["token_uri"], "iat": now,
                          "exp": now + 3600, "scope": "https://www.googleapis.com/auth/bigquery"})
    form = urllib.parse.urlencode({"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                                   "assertion": assertion}).encode()
    tok = json.loads(http("POST", kj["token_uri"], form,
                          {"Content-Type": "application/x-www-form-urlencoded"}))["access_token"]
    h = {"Authorization": f"Bearer {tok}", "Content-Type": "application/json",
         "Accept-Encoding": "gzip"}
    base = f"{server.url}/bigquery/v2/projects/{PROJECT}/queries"
    page = json.loads(http("POST", base, json.dumps({
        "query": "SELECT * FROM analytics.users", "useLegacySql": False, "location": "EU",
        "maxResults": page_rows, "formatOptions": {"useInt64Timestamp": True}}).encode(), h))
    job = page["jobReference"]["jobId"]
    while page.get("pageToken"):
        q = urllib.parse.urlencode({"pageToken": page["pageToken"], "location": "EU",
                                    "maxResults": page_rows,
                                    "formatOptions.useInt64Timestamp": "true"})
        page = json.loads(http("GET", f"{base}/{job}?{q}", None, h))
    return time.perf_counter() - t0


def project_dir(workdir, warehouse_yaml):
    d = tempfile.mkdtemp(prefix="bench-", dir=workdir)
    with open(os.path.join(d, "backflow.yml"), "w") as f:
        f.write(f"""version: 1
warehouses:
  w:
{warehouse_yaml}models:
  users:
    warehouse: w
    sql: {"SELECT * FROM analytics.users" if "bigquery" in warehouse_yaml
          else "SELECT * FROM users"}
    primary_key: ID
destinations:
  out: {{type: file, path: out.jsonl}}
syncs:
  s: {{model: users, destination: out, match: {{id: ID}},
      fields: {{email: EMAIL, ltv: LTV, active: ACTIVE, created: CREATED}}}}
""")
    return d


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "backflow"))
    ap.add_argument("--rows", type=int, default=int(os.environ.get("BENCH_CLOUD_ROWS", 200000)))
    ap.add_argument("--page-rows", type=int, default=10000)
    a = ap.parse_args()
    binary = os.path.abspath(a.binary)
    workdir = tempfile.mkdtemp(prefix="bf-cloud-bench-")
    key, pub = os.path.join(workdir, "k.p8"), os.path.join(workdir, "k.pub")
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", key], check=True, capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-out", pub], check=True,
                   capture_output=True)
    results = []
    try:
        for vendor in ("snowflake", "bigquery"):
            rss = {}
            for n in (a.rows // 4, a.rows):
                sub = tempfile.mkdtemp(dir=workdir)
                if vendor == "snowflake":
                    srv = SnowflakeServer(sub, pub, ACCOUNT, USER, sf_tables(n),
                                          {"partition_rows": a.page_rows, "running_polls": 0})
                    from jwt_verify import Verifier
                    raw = sf_raw(srv.url, key, Verifier(pub).fingerprint)
                    wh = (f"    {{type: snowflake, account: {ACCOUNT}, user: {USER}, "
                          f"private_key_file: {key}, base_url: \"{srv.url}\"}}\n")
                else:
                    kj = {"type": "service_account", "project_id": PROJECT,
                          "private_key_id": "bench", "private_key": open(key).read(),
                          "client_email": f"bench@{PROJECT}.iam.gserviceaccount.com"}
                    srv = BigQueryServer(sub, pub, kj, PROJECT, bq_tables(n),
                                         faults={"page_rows": a.page_rows, "running_polls": 0})
                    raw = bq_raw(srv, key, a.page_rows)
                    wh = (f"    {{type: bigquery, credentials_file: {srv.key_path}, location: EU,"
                          f" page_size: {a.page_rows}, base_url: \"{srv.url}\"}}\n")
                try:
                    wall, rss[n] = measure([binary, "-p", project_dir(sub, wh), "plan", "s"],
                                           workdir)
                finally:
                    srv.stop()
                results.append({"warehouse": vendor, "rows": n, "plan_s": round(wall, 3),
                                "raw_download_s": round(raw, 3), "ratio": round(wall / raw, 2),
                                "rows_per_s": int(n / wall), "peak_rss_mib": round(rss[n] / 1024, 1)})
        print(f"{'warehouse':<10} {'rows':>8} {'plan s':>8} {'raw s':>8} {'ratio':>6} "
              f"{'rows/s':>9} {'peak RSS':>9}")
        for r in results:
            print(f"{r['warehouse']:<10} {r['rows']:>8} {r['plan_s']:>8.2f} "
                  f"{r['raw_download_s']:>8.2f} {r['ratio']:>6.2f} {r['rows_per_s']:>9} "
                  f"{r['peak_rss_mib']:>7.1f} MiB")
        os.makedirs(os.path.join(ROOT, "build"), exist_ok=True)
        with open(os.path.join(ROOT, "build", "cloud-bench-results.json"), "w") as f:
            json.dump(results, f, indent=2)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
