#!/usr/bin/env python3
"""PostgreSQL speed figures (issue 3, "Speed"), on a real local server.

  PostgreSQL source:  `backflow plan` on a ROWS-row model vs
                      `psql -c "\\copy (model sql) to /dev/null"` in the same run
                      (target: plan <= 1.3x the bare COPY).
  PostgreSQL destination: rows/s upserted into a table on loopback, full runs
                      (first load: all inserts; then every row changed: all
                      conflicts -> updates). Target: >= 50k rows/s.
  Redis destination:  rows/s for the same model into hashes (for reference).

Usage: python3 bench/pg_bench.py [--binary build/backflow] [--rows 1000000] [--repeat 3]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import pgredis  # noqa: E402

MODEL_SQL = "SELECT id, email, first_name, plan, ltv, score, active, updated_at FROM users"


def timed(argv, env=None, check=True):
    t0 = time.perf_counter()
    p = subprocess.run(argv, capture_output=True, text=True, env=env)
    dt = time.perf_counter() - t0
    if check and p.returncode != 0:
        raise RuntimeError(f"{argv[:3]} failed ({p.returncode}): {p.stderr[-2000:]}")
    return dt, p


def project(dir_, dest_yaml, mode="upsert"):
    with open(os.path.join(dir_, "backflow.yml"), "w") as f:
        f.write(f"""version: 1
warehouses:
  pg: {{type: postgres, dsn: "${{PG_DSN}}"}}
models:
  users:
    warehouse: pg
    sql: {MODEL_SQL}
    primary_key: id
destinations:
  out: {dest_yaml}
syncs:
  s:
    model: users
    destination: out
    mode: {mode}
    match: {{user_id: id}}
    fields: {{email: email, first_name: first_name, plan: plan, ltv: ltv, score: score, active: active,
              updated_at: updated_at}}
""")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "backflow"))
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dest-rows", type=int, default=0, help="rows for the destination runs (default: --rows)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    binary = os.path.abspath(args.binary)
    dest_rows = args.dest_rows or args.rows

    pg = pgredis.PgServer().start()
    redis = pgredis.RedisServer().start()
    work = tempfile.mkdtemp(prefix="bf-pgbench-")
    try:
        wh = pg.create_db("bench")
        print(f"generating {args.rows} rows ...", file=sys.stderr)
        pg.psql("CREATE TABLE users (id bigint PRIMARY KEY, email text, first_name text, plan text,"
                " ltv numeric(12,2), score float8, active bool, updated_at timestamptz, note text)", db=wh)
        pg.psql(f"INSERT INTO users SELECT i, 'person' || i || '@example.com', 'Name' || (i % 5000),"
                f" (ARRAY['free','pro','team'])[1 + i % 3], (i % 100000) * 1.25, i / 7.0, i % 2 = 0,"
                f" timestamptz '2024-01-01' + i * interval '1 second', 'note' FROM generate_series(1, {args.rows}) i", db=wh)
        pg.psql("VACUUM ANALYZE users", db=wh)
        env = dict(os.environ, PG_DSN=pg.dsn(wh))

        # --- source: plan vs bare COPY -------------------------------------
        src_dir = os.path.join(work, "src")
        os.makedirs(src_dir)
        project(src_dir, "{type: file, path: out.jsonl}")
        copy_cmd = ["psql", "-X", "-q", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres", "-d", wh,
                    "-c", f"\\copy ({MODEL_SQL}) to /dev/null"]
        penv = dict(os.environ, PGPASSWORD=pgredis.PG_PASSWORD)
        timed(copy_cmd, env=penv)  # warm the cache
        copy_t, plan_t = [], []
        for _ in range(args.repeat):
            copy_t.append(timed(copy_cmd, env=penv)[0])
            plan_t.append(timed([binary, "-p", src_dir, "plan", "s", "--json"], env=env)[0])
        c, pl = min(copy_t), min(plan_t)
        print(f"PostgreSQL source, {args.rows} rows: psql \\copy {c:.2f}s, backflow plan {pl:.2f}s"
              f" = {pl / c:.2f}x the bare COPY (target <= 1.3x)")
        cur_dir = os.path.join(work, "src-cursor")
        os.makedirs(cur_dir)
        project(cur_dir, "{type: file, path: out.jsonl}")
        with open(os.path.join(cur_dir, "backflow.yml")) as f:
            text = f.read()
        with open(os.path.join(cur_dir, "backflow.yml"), "w") as f:
            f.write(text.replace('dsn: "${PG_DSN}"}', 'dsn: "${PG_DSN}", read: cursor}'))
        cur_t = min(timed([binary, "-p", cur_dir, "plan", "s", "--json"], env=env)[0] for _ in range(args.repeat))
        print(f"PostgreSQL source, {args.rows} rows, read: cursor (FETCH 2048): backflow plan {cur_t:.2f}s"
              f" = {cur_t / c:.2f}x the bare COPY")

        # --- destination: PostgreSQL table ----------------------------------
        sub_sql = MODEL_SQL if dest_rows >= args.rows else f"{MODEL_SQL} WHERE id <= {dest_rows}"
        dest_db = pg.create_db("benchdest")
        for label, extra in (("postgres", f'{{type: postgres, dsn: "{pg.dsn(dest_db)}", table: public.users,'
                                          f' create_table: true}}'),
                             ("redis", f'{{type: redis, url: "{redis.url(0)}", prefix: "user:"}}')):
            d = os.path.join(work, "dest-" + label)
            os.makedirs(d)
            project(d, extra)
            if sub_sql != MODEL_SQL:
                with open(os.path.join(d, "backflow.yml")) as f:
                    text = f.read()
                with open(os.path.join(d, "backflow.yml"), "w") as f:
                    f.write(text.replace(f"sql: {MODEL_SQL}", f"sql: {sub_sql}"))
            t_insert, _ = timed([binary, "-p", d, "run", "s"], env=env)
            # Every row changes: the second run updates them all (conflict path).
            pg.psql("UPDATE users SET score = score + 1", db=wh)
            t_update, _ = timed([binary, "-p", d, "run", "s"], env=env)
            pg.psql("UPDATE users SET score = score - 1", db=wh)
            print(f"{label} destination, {dest_rows} rows: first load {t_insert:.2f}s"
                  f" ({dest_rows / t_insert:,.0f} rows/s), all rows changed {t_update:.2f}s"
                  f" ({dest_rows / t_update:,.0f} rows/s){'  (target >= 50,000 rows/s)' if label == 'postgres' else ''}")
        # --- why COPY into a stage table: the two ways to upsert, same rows ---
        method_rows = min(dest_rows, 200_000)
        rows = pg.psql(f"SELECT id, email, first_name, plan, ltv, score, active, updated_at FROM users"
                       f" WHERE id <= {method_rows} ORDER BY id", db=wh)

        def lit(v):
            return "NULL" if v is None else "'" + v.replace("'", "''") + "'"
        cols = "user_id, email, first_name, plan, ltv, score, active, updated_at"
        upd = ", ".join(f"{c} = EXCLUDED.{c}" for c in cols.split(", ")[1:])
        values_sql = [f"CREATE TABLE IF NOT EXISTS m1 (user_id bigint PRIMARY KEY, email text, first_name text,"
                      f" plan text, ltv numeric, score float8, active bool, updated_at timestamptz);"]
        for i in range(0, len(rows), 1000):
            chunk = rows[i:i + 1000]
            values_sql.append(f"BEGIN; INSERT INTO m1 ({cols}) VALUES "
                              + ",".join("(" + ",".join(lit(v) for v in r) + ")" for r in chunk)
                              + f" ON CONFLICT (user_id) DO UPDATE SET {upd}; COMMIT;")
        copy_sql = [f"CREATE TABLE IF NOT EXISTS m2 (user_id bigint PRIMARY KEY, email text, first_name text,"
                    f" plan text, ltv numeric, score float8, active bool, updated_at timestamptz);"
                    f" CREATE TEMP TABLE st ON COMMIT DELETE ROWS AS SELECT {cols} FROM m2 WITH NO DATA;"]
        for i in range(0, len(rows), 5000):
            chunk = rows[i:i + 5000]
            copy_sql.append(f"BEGIN;\nCOPY st FROM STDIN;\n"
                            + "".join("\t".join("\\N" if v is None else v for v in r) + "\n" for r in chunk)
                            + f"\\.\nINSERT INTO m2 SELECT * FROM st ON CONFLICT (user_id) DO UPDATE SET {upd};"
                            f" COMMIT;")
        method_t = {}
        for name, script in (("multi-row INSERT ... VALUES (1000 rows/statement)", "\n".join(values_sql)),
                             ("COPY into a stage + INSERT ... SELECT (5000 rows/batch)", "\n".join(copy_sql))):
            path = os.path.join(work, "method.sql")
            with open(path, "w") as f:
                f.write(script)
            t, _ = timed(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", pg.sock, "-p", str(pg.port),
                          "-U", "postgres", "-d", dest_db, "-f", path])
            method_t[name] = t
        for name, t in method_t.items():
            print(f"upsert method, {len(rows)} new rows via psql: {name}: {t:.2f}s ({len(rows) / t:,.0f} rows/s)")

        n = pg.psql("SELECT count(*) FROM users", db=dest_db)[0][0]
        if int(n) != dest_rows:
            print(f"WARNING: destination holds {n} rows, expected {dest_rows}", file=sys.stderr)
    finally:
        redis.destroy()
        pg.destroy()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
