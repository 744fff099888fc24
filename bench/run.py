#!/usr/bin/env python3
"""Backflow benchmark (`make bench`; issue 2, "Speed it must reach").

Measures, in one run on this machine:
  1. a generated SQLite warehouse of N customers (bench/gen_warehouse.c);
  2. the bare scan of the model's query (bench/scan.c): the floor; and, for comparison, a bare
     scan of only the mapped columns, which is what Backflow's reader runs (pushdown);
  3. `backflow plan` on the first run (empty state) and after a real run and 1% of rows
     changed: best-of-R wall time, ratio to the scan, rows/s, peak RSS;
  4. state size per row (state.bin + journal.bin of the sync's state folder);
  5. peak RSS of `plan` with 2 mapped columns and with 7;
  6. push throughput of `backflow run` to the Python webhook receiver
     (tests/integration/webhook_receiver.py) and to a minimal C sink (bench/sink.c), with the
     CPU time of each side.
Prints a table (figure, value, goal, pass/fail) and writes build/bench-results.json.
Progress goes to stderr.

  python3 bench/run.py --binary build/backflow [--rows N] [--repeat R] [--batch-size B]
"""
import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MODEL_SQL = "SELECT id, email, first_name, last_name, country, plan, ltv, updated_at FROM users"
FIELDS_WIDE = ("{email: email, first_name: first_name, last_name: last_name, country: country,"
               " plan: plan, lifetime_value: ltv}")       # + the match column id = 7 columns
FIELDS_NARROW = "{email: email}"                           # + the match column id = 2 columns
# What Backflow's SQLite reader runs for the wide syncs (projection pushdown: only the mapped
# columns, src/sources/sqlite.c): the bench also scans it bare, to show what the pushdown saves.
MAPPED_SQL = ('SELECT "id", "email", "first_name", "last_name", "country", "plan", "ltv" FROM (\n'
              + MODEL_SQL + "\n)")
CLK_TCK = os.sysconf("SC_CLK_TCK")

CONFIG = """\
# Written by bench/run.py.
version: 1
state_dir: .backflow
warehouses:
  local: {{type: sqlite, path: warehouse.db}}
models:
  customers:
    warehouse: local
    sql: {sql}
    primary_key: id
    pii: {{email: email, first_name: name, last_name: name}}
destinations:
  out: {{type: file, path: out/customers.jsonl}}
  receiver: {{type: webhook, url: "${{BENCH_RECEIVER_URL}}", signing_secret: "{secret}"}}
  sink: {{type: webhook, url: "${{BENCH_SINK_URL}}", signing_secret: "{secret}"}}
syncs:
  wide_to_file:
    model: customers
    destination: out
    mode: upsert
    match: {{customer_id: id}}
    fields: {wide}
    batch_size: {batch}
  narrow_to_file:
    model: customers
    destination: out
    mode: upsert
    match: {{customer_id: id}}
    fields: {narrow}
    batch_size: {batch}
  wide_to_receiver:
    model: customers
    destination: receiver
    mode: upsert
    match: {{customer_id: id}}
    fields: {wide}
    batch_size: {batch}
  wide_to_sink:
    model: customers
    destination: sink
    mode: upsert
    match: {{customer_id: id}}
    fields: {wide}
    batch_size: {batch}
"""


def log(msg):
    sys.stderr.write(f"bench: {msg}\n")
    sys.stderr.flush()


def die(msg):
    log("ERROR: " + msg)
    sys.exit(1)


class Measured:
    def __init__(self, cmd, rc, wall, rss_kb, user, sys_, stdout, stderr):
        self.cmd, self.rc, self.wall, self.rss_kb = cmd, rc, wall, rss_kb
        self.user, self.sys, self.stdout, self.stderr = user, sys_, stdout, stderr

    @property
    def cpu(self):
        return self.user + self.sys


TIME = "/usr/bin/time"


def measure(cmd, env=None, check=True):
    """Runs cmd; wall clock around it, peak RSS and CPU of that process alone.

    Peak RSS: a child forked from this Python process starts with Python's own RSS as its
    high-water mark (Linux keeps it across exec), so when GNU time is installed the command runs
    under `/usr/bin/time -f "%M %U %S"`, whose report is the command's own figure (floor: a tiny
    `time` process). Without it, wait4's rusage is used and RSS figures below ~20 MiB are this
    script's floor, not the command's."""
    out_path = os.path.join(ARGS.workdir, ".out")
    err_path = os.path.join(ARGS.workdir, ".err")
    time_path = os.path.join(ARGS.workdir, ".time")
    use_time = os.access(TIME, os.X_OK)
    full = [TIME, "-f", "%M %U %S", "-o", time_path, *cmd] if use_time else cmd
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(full, stdout=out, stderr=err, env=env)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
    rss_kb, user, sys_ = ru.ru_maxrss, ru.ru_utime, ru.ru_stime
    if use_time:
        with open(time_path) as f:
            last = f.read().strip().splitlines()[-1].split()  # "Command exited with ..." may come first
        rss_kb, user, sys_ = int(last[0]), float(last[1]), float(last[2])
    with open(out_path, encoding="utf-8", errors="replace") as f:
        stdout = f.read()
    with open(err_path, encoding="utf-8", errors="replace") as f:
        stderr = f.read()
    m = Measured(cmd, p.returncode, wall, rss_kb, user, sys_, stdout, stderr)
    if check and m.rc != 0:
        die(f"{' '.join(cmd)} exited {m.rc}\nstdout: {stdout[-2000:]}\nstderr: {stderr[-2000:]}")
    return m


def best_of(label, cmd, env=None, validate=None):
    runs = []
    for i in range(ARGS.repeat):
        m = measure(cmd, env)
        if validate:
            validate(m)
        runs.append(m)
        log(f"{label} {i + 1}/{ARGS.repeat}: {m.wall:.3f}s, peak RSS {m.rss_kb / 1024:.1f} MiB, "
            f"CPU {m.user:.2f}s user + {m.sys:.2f}s sys")
    best = min(runs, key=lambda m: m.wall)
    best.all_walls = [r.wall for r in runs]
    best.max_rss_kb = max(r.rss_kb for r in runs)
    return best


def bf(*args):
    return [ARGS.binary, "-p", ARGS.project, *args]


def bf_env(receiver_url="http://127.0.0.1:9/in", sink_url="http://127.0.0.1:9/in"):
    env = dict(os.environ)
    env["BENCH_RECEIVER_URL"] = receiver_url
    env["BENCH_SINK_URL"] = sink_url
    return env


def json_out(m):
    try:
        doc = json.loads(m.stdout)
    except ValueError:
        die(f"not JSON from {' '.join(m.cmd)}: {m.stdout[:500]!r}")
    return doc["runs"][0] if "runs" in doc else doc


def expect_counts(what, **want):
    def check(m):
        doc = json_out(m)
        for k, v in want.items():
            if doc.get(k) != v:
                die(f"{what}: expected {k}={v}, got {doc}")
    return check


def proc_cpu_seconds(pid):
    """user+system CPU of a live process (and its reaped children: none here)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def wait_port_file(path, proc, what, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            die(f"{what} exited early ({proc.returncode})")
        try:
            with open(path) as f:
                text = f.read().strip()
            if text:
                return int(text)
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    die(f"{what} did not write its port file in {timeout}s")


def http_json(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def push(label, sync, server_cmd, counters_path, counters_key, url_var):
    """Starts a receiver, times `backflow run SYNC` of the full table to it."""
    port_file = os.path.join(ARGS.workdir, f"{sync}.port")
    if os.path.exists(port_file):
        os.unlink(port_file)
    server_log = open(os.path.join(ARGS.workdir, f"{sync}.server.log"), "wb")
    server = subprocess.Popen(server_cmd + ["--port-file", port_file], stdout=server_log,
                              stderr=subprocess.STDOUT)
    try:
        port = wait_port_file(port_file, server, label)
        url = f"http://127.0.0.1:{port}/in"
        env = bf_env(**{url_var: url})
        cpu0 = proc_cpu_seconds(server.pid)
        log(f"push to {label} on 127.0.0.1:{port}: backflow run {sync} ({ARGS.rows} records, "
            f"batch_size {ARGS.batch_size}) ...")
        m = measure(bf("run", sync, "--json"), env, check=False)
        server_cpu = proc_cpu_seconds(server.pid) - cpu0
        doc = json_out(m)
        counters = http_json(f"http://127.0.0.1:{port}{counters_path}")
        if counters_key:
            counters = counters[counters_key]
    finally:
        stop(server)
        server_log.close()
    if m.rc != 0 or doc.get("added") != ARGS.rows:
        die(f"push to {label}: exit {m.rc}, {doc}; stderr: {m.stderr[-2000:]}")
    got = counters.get("records")
    if got != ARGS.rows:
        log(f"WARNING: {label} counted {got} records, expected {ARGS.rows}")
    rate = ARGS.rows / m.wall
    log(f"push to {label}: {m.wall:.3f}s = {rate:,.0f} records/s; backflow CPU {m.cpu:.2f}s "
        f"({100 * m.cpu / m.wall:.0f}% of one core), {label} CPU {server_cpu:.2f}s "
        f"({100 * server_cpu / m.wall:.0f}%), peak RSS {m.rss_kb / 1024:.1f} MiB, "
        f"{counters.get('requests')} requests")
    return {
        "seconds": round(m.wall, 4), "records_per_s": round(rate), "records": ARGS.rows,
        "backflow_cpu_s": round(m.cpu, 3), "receiver_cpu_s": round(server_cpu, 3),
        "backflow_cpu_pct": round(100 * m.cpu / m.wall), "receiver_cpu_pct": round(100 * server_cpu / m.wall),
        "backflow_peak_rss_kb": m.rss_kb, "receiver_counted_records": got,
        "requests": counters.get("requests"),
    }


def load_average():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def binary_info():
    st = os.stat(ARGS.binary)
    info = {"path": ARGS.binary, "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(st.st_mtime))}
    try:
        head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "src"], capture_output=True,
                               text=True, timeout=10).stdout.splitlines()
        info["git_head"] = head
        info["src_files_uncommitted"] = len(dirty)
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def main():
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "backflow"))
    ap.add_argument("--tools", help="folder with gen_warehouse, scan, sink (default: <binary dir>/tools)")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5, help="runs per timed figure, scan and plans alike; the best counts")
    ap.add_argument("--batch-size", type=int, default=1000, help="webhook/file batch size")
    ap.add_argument("--workdir", help="default: <binary dir>/bench")
    ap.add_argument("--results", help="default: <binary dir>/bench-results.json")
    ap.add_argument("--sink-mode", choices=("results", "empty"), default="results",
                    help="C sink answer: per-record results JSON (default) or an empty 200")
    ap.add_argument("--no-python-receiver", action="store_true", help="skip the push to the Python receiver")
    ap.add_argument("--receiver", default=os.path.join(ROOT, "tests", "integration", "webhook_receiver.py"))
    ARGS = ap.parse_args()
    ARGS.binary = os.path.abspath(ARGS.binary)
    bindir = os.path.dirname(ARGS.binary)
    ARGS.tools = os.path.abspath(ARGS.tools or os.path.join(bindir, "tools"))
    ARGS.workdir = os.path.abspath(ARGS.workdir or os.path.join(bindir, "bench"))
    ARGS.results = os.path.abspath(ARGS.results or os.path.join(bindir, "bench-results.json"))
    ARGS.project = os.path.join(ARGS.workdir, "project")
    n = ARGS.rows
    if n < 100:
        die("--rows must be at least 100")
    for tool in ("gen_warehouse", "scan", "sink"):
        if not os.access(os.path.join(ARGS.tools, tool), os.X_OK):
            die(f"{ARGS.tools}/{tool} is missing: build it with `make bench` (or make all)")

    extra, argv = [], sys.argv[1:]
    while argv:  # everything but --binary came from BENCH_ARGS
        a = argv.pop(0)
        if a == "--binary" and argv:
            argv.pop(0)
        elif not a.startswith("--binary="):
            extra.append(a)
    command = "make bench" + (f' BENCH_ARGS="{" ".join(extra)}"' if extra else "")
    direct = "python3 bench/run.py " + " ".join(sys.argv[1:])
    shutil.rmtree(ARGS.workdir, ignore_errors=True)
    os.makedirs(ARGS.project)
    db = os.path.join(ARGS.project, "warehouse.db")
    with open(os.path.join(ARGS.project, "backflow.yml"), "w") as f:
        f.write(CONFIG.format(sql=MODEL_SQL, secret=SECRET, wide=FIELDS_WIDE, narrow=FIELDS_NARROW,
                              batch=ARGS.batch_size))
    env = bf_env()
    results = {"rows": n, "command": command, "direct_command": direct, "repeat": ARGS.repeat,
               "batch_size": ARGS.batch_size, "model_sql": MODEL_SQL,
               "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                           "python": platform.python_version(), "loadavg_at_start": load_average()},
               "binary": binary_info()}
    if results["machine"]["loadavg_at_start"][0] > 0.5:
        log(f"WARNING: load average {results['machine']['loadavg_at_start'][0]:.2f} at start: other processes "
            "share these CPUs, the figures will be noisy")

    # 1. warehouse
    log(f"generating a warehouse of {n:,} customers in {db} ...")
    m = measure([os.path.join(ARGS.tools, "gen_warehouse"), db, "--rows", str(n)], None)
    sys.stderr.write(m.stderr)
    results["generate"] = {"seconds": round(m.wall, 3), "db_bytes": os.path.getsize(db)}
    log(f"generated in {m.wall:.2f}s ({os.path.getsize(db) / 2**20:.1f} MiB)")

    # 2. bare scan (the first read also warms the page cache for everything after it)
    measure([os.path.join(ARGS.tools, "scan"), db, MODEL_SQL])

    def scan_ok(m):
        if not m.stdout.startswith(f"rows={n} "):
            die(f"scan read {m.stdout.strip()}, expected rows={n}")
    scan = best_of("bare scan", [os.path.join(ARGS.tools, "scan"), db, MODEL_SQL], validate=scan_ok)
    results["scan"] = {"seconds": round(scan.wall, 4), "all_seconds": [round(x, 4) for x in scan.all_walls],
                       "rows_per_s": round(n / scan.wall), "peak_rss_kb": scan.rss_kb, "cpu_s": round(scan.cpu, 3)}
    scan_mapped = best_of("bare scan of the mapped columns only", [os.path.join(ARGS.tools, "scan"), db, MAPPED_SQL],
                          validate=scan_ok)
    results["scan_mapped_columns"] = {"seconds": round(scan_mapped.wall, 4), "sql": MAPPED_SQL,
                                      "ratio_to_scan": round(scan_mapped.wall / scan.wall, 3)}

    def plan_figure(m):
        return {"seconds": round(m.wall, 4), "all_seconds": [round(x, 4) for x in m.all_walls],
                "ratio_to_scan": round(m.wall / scan.wall, 3), "rows_per_s": round(n / m.wall),
                "ratio_to_mapped_scan": round(m.wall / scan_mapped.wall, 3),
                "peak_rss_kb": m.max_rss_kb, "cpu_s": round(m.cpu, 3),
                "cpu_ratio_to_scan": round(m.cpu / scan.cpu, 3) if scan.cpu else None,
                "engine_duration_ms": json_out(m).get("duration_ms")}

    # 3a. plan on the first run, 7 mapped columns and 2 (5.)
    first = best_of("plan wide_to_file (first run)", bf("plan", "wide_to_file", "--json"), env,
                    expect_counts("first plan", rows_read=n, added=n, changed=0))
    results["plan_first"] = plan_figure(first)
    narrow = best_of("plan narrow_to_file (first run, 2 columns)", bf("plan", "narrow_to_file", "--json"), env,
                     expect_counts("narrow plan", rows_read=n, added=n))
    results["plan_first_narrow"] = plan_figure(narrow)

    # A real run to the file destination.
    log(f"backflow run wide_to_file ({n:,} records to a JSON Lines file) ...")
    m = measure(bf("run", "wide_to_file", "--json"), env)
    expect_counts("first run", added=n, failed=0, rejected=0)(m)
    results["run_file_first"] = {"seconds": round(m.wall, 4), "records_per_s": round(n / m.wall),
                                 "peak_rss_kb": m.rss_kb, "cpu_s": round(m.cpu, 3)}
    log(f"run to file: {m.wall:.3f}s ({n / m.wall:,.0f} records/s), peak RSS {m.rss_kb / 1024:.1f} MiB")

    # 4. state size
    sync_dir = os.path.join(ARGS.project, ".backflow", "syncs", "wide_to_file")
    files = {f: os.path.getsize(os.path.join(sync_dir, f)) for f in sorted(os.listdir(sync_dir))}
    counted = {f: s for f, s in files.items() if f in ("state.bin", "journal.bin")}
    state_bytes = sum(counted.values())
    results["state"] = {"files": files, "counted_bytes": state_bytes}
    log(f"state folder: {files}; {state_bytes / n:.4f} bytes/row")

    # 3b. 1% changed, plan again
    m = measure([os.path.join(ARGS.tools, "gen_warehouse"), db, "--change", "100"])
    log(m.stdout.strip())
    changed = n // 100
    after = best_of("plan wide_to_file (after run + 1% changed)", bf("plan", "wide_to_file", "--json"), env,
                    expect_counts("plan after change", rows_read=n, added=0, changed=changed,
                                  unchanged=n - changed))
    results["plan_changed"] = plan_figure(after)

    log(f"backflow run wide_to_file (incremental: {changed:,} changed) ...")
    m = measure(bf("run", "wide_to_file", "--json"), env)
    expect_counts("incremental run", changed=changed, added=0, failed=0)(m)
    results["run_file_incremental"] = {"seconds": round(m.wall, 4), "ratio_to_scan": round(m.wall / scan.wall, 3),
                                       "peak_rss_kb": m.rss_kb}

    # 6. push throughput
    sink_cmd = [os.path.join(ARGS.tools, "sink"), "--port", "0", "--mode", ARGS.sink_mode]
    results["push_sink"] = push("C sink", "wide_to_sink", sink_cmd, "/_counters", None, "sink_url")
    results["push_sink"]["sink_mode"] = ARGS.sink_mode
    if not ARGS.no_python_receiver:
        if not os.path.exists(ARGS.receiver):
            log(f"WARNING: {ARGS.receiver} is missing: no push to the Python receiver")
        else:
            recv_cmd = [sys.executable, ARGS.receiver, "--port", "0", "--secret", SECRET, "--quiet",
                        "--max-batch", "10000"]
            results["push_receiver"] = push("Python receiver", "wide_to_receiver", recv_cmd, "/_counters",
                                            "counters", "receiver_url")

    # Report.
    rows_fmt = lambda r: f"{r:,.0f} rows/s"
    table = []

    def row(figure, value, goal="", ok=None):
        table.append((figure, value, goal, "" if ok is None else ("PASS" if ok else "FAIL")))

    s = results["scan"]
    row("bare scan (floor), best of %d" % ARGS.repeat,
        f"{s['seconds']:.3f}s  {rows_fmt(s['rows_per_s'])}  RSS {s['peak_rss_kb'] / 1024:.1f} MiB  "
        f"CPU {s['cpu_s']:.2f}s")
    sm = results["scan_mapped_columns"]
    row("bare scan of the 7 mapped columns only", f"{sm['seconds']:.3f}s  {sm['ratio_to_scan']:.2f}x scan")
    for key, name in (("plan_first", "plan, first run (empty state)"),
                      ("plan_changed", "plan, after run + 1% changed")):
        p = results[key]
        ok = p["ratio_to_scan"] <= 1.15
        p["pass"] = ok
        row(name, f"{p['seconds']:.3f}s  {p['ratio_to_scan']:.2f}x scan ({p['ratio_to_mapped_scan']:.2f}x "
            f"mapped-column scan)  {rows_fmt(p['rows_per_s'])}  RSS {p['peak_rss_kb'] / 1024:.1f} MiB  "
            f"CPU {p['cpu_s']:.2f}s", "<= 1.15x scan", ok)
    st = results["state"]
    # Per row: fixed file headers (a few dozen bytes whatever the row count) are not per row.
    st["pass"] = st["counted_bytes"] <= 32 * n + 4096
    st["bytes_per_row"] = round(st["counted_bytes"] / n, 4)
    row("state size (state.bin + journal.bin)", f"{st['counted_bytes'] / n:.4f} bytes/row "
        f"({st['counted_bytes']:,} B = 32 x rows {st['counted_bytes'] - 32 * n:+,} B)",
        "<= 32 B/row (+4 KiB headers)", st["pass"])
    r2, r7 = results["plan_first_narrow"]["peak_rss_kb"], results["plan_first"]["peak_rss_kb"]
    # "Must not grow": allow 5% (or 1 MiB) of noise between two runs of the same row count.
    rss_ok = r7 <= max(r2 * 1.05, r2 + 1024)
    results["rss_vs_columns"] = {"rss_kb_2_columns": r2, "rss_kb_7_columns": r7,
                                 "growth_pct": round(100 * (r7 - r2) / r2, 1), "pass": rss_ok}
    row("plan peak RSS: 2 vs 7 mapped columns", f"{r2 / 1024:.1f} MiB vs {r7 / 1024:.1f} MiB "
        f"({results['rss_vs_columns']['growth_pct']:+.1f}%)", "no growth (<= +5%)", rss_ok)
    rf = results["run_file_first"]
    row("run to file, first (all rows)", f"{rf['seconds']:.3f}s  {rf['records_per_s']:,} records/s  "
        f"RSS {rf['peak_rss_kb'] / 1024:.1f} MiB")
    ri = results["run_file_incremental"]
    row("run to file, incremental (1% changed)", f"{ri['seconds']:.3f}s  {ri['ratio_to_scan']:.2f}x scan")
    for key, name in (("push_sink", f"push to C sink (answers {ARGS.sink_mode})"),
                      ("push_receiver", "push to Python receiver")):
        if key not in results:
            continue
        p = results[key]
        p["pass"] = p["records_per_s"] >= 100_000
        row(name, f"{p['records_per_s']:,} records/s ({p['seconds']:.2f}s; CPU backflow "
            f"{p['backflow_cpu_pct']}%, receiver {p['receiver_cpu_pct']}%)", ">= 100k records/s", p["pass"])

    with open(ARGS.results, "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    w0 = max(len(t[0]) for t in table)
    w1 = max(len(t[1]) for t in table)
    w2 = max(len(t[2]) for t in table)
    print()
    print(f"Backflow benchmark: {n:,} rows, {os.cpu_count()} CPUs, best of {ARGS.repeat} "
          f"(wall clock, process start included)")
    print(f"{'figure':<{w0}}  {'value':<{w1}}  {'goal':<{w2}}  result")
    print(f"{'-' * w0}  {'-' * w1}  {'-' * w2}  ------")
    for t in table:
        print(f"{t[0]:<{w0}}  {t[1]:<{w1}}  {t[2]:<{w2}}  {t[3]}")
    print()
    la = results["machine"]["loadavg_at_start"]
    b = results["binary"]
    print(f"binary: {b['path']} built {b['built']}, git {b.get('git_head', '?')}"
          f"{' + %d uncommitted src files' % b['src_files_uncommitted'] if b.get('src_files_uncommitted') else ''}"
          f"; load average at start {la[0]:.2f}, at end {load_average()[0]:.2f}")
    print(f"command: {command}   (same as: {direct})")
    print(f"results: {ARGS.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
