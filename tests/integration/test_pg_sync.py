"""PostgreSQL warehouse and PostgreSQL destination against a real server
(tests/integration/pgredis.py starts it)."""
import base64
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgredis  # noqa: E402
from bfhelp import Project  # noqa: E402

N = 600


def pg_project(pg, wh_db, dest_yaml, sync_extra="", model_sql="SELECT * FROM users",
               wh_extra="", mode="mirror", fields=None):
    fields = fields or "{email: email, first_name: first_name, ltv: ltv, score: score, active: active}"
    return Project(f"""version: 1
warehouses:
  pg: {{type: postgres, dsn: "${{PG_DSN}}"{wh_extra}}}
models:
  users:
    warehouse: pg
    sql: {model_sql}
    primary_key: id
destinations:
  out: {dest_yaml}
syncs:
  s:
    model: users
    destination: out
    mode: {mode}
    match: {{user_id: id}}
    fields: {fields}
{sync_extra}""")


def make_users(pg, db, n=N):
    pg.psql("CREATE TABLE users (id bigint PRIMARY KEY, email text, first_name text, ltv numeric(12,2),"
            " score float8, active bool, created timestamptz, born date, meta jsonb, pic bytea, note text)",
            db=db)
    pg.psql(f"INSERT INTO users SELECT i, 'person' || i || '@example.com', 'Name' || i, i * 1.25,"
            f" i / 4.0, i % 2 = 0, timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute',"
            f" date '2000-01-01' + i, jsonb_build_object('i', i), decode('00ff', 'hex'), 'n'"
            f" FROM generate_series(1, {n}) i", db=db)


class PgSyncTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pg = pgredis.shared_pg()

    def setUp(self):
        self.wh = self.pg.create_db("wh")
        self.dest = self.pg.create_db("dest")
        make_users(self.pg, self.wh)
        self.env = {"PG_DSN": self.pg.dsn(self.wh)}
        self.projects = []

    def tearDown(self):
        for p in self.projects:
            p.cleanup()

    def project(self, *a, **kw):
        p = pg_project(self.pg, self.wh, *a, **kw)
        self.projects.append(p)
        return p

    def model_rows(self):
        rows = self.pg.psql("SELECT id, email, first_name, ltv::text, score, active FROM users ORDER BY id",
                            db=self.wh)
        return [[r[0], r[1], r[2], r[3], float(r[4]) if r[4] is not None else None, r[5]] for r in rows]

    def dest_rows(self, table="app.users"):
        rows = self.pg.psql(f"SELECT user_id, email, first_name, ltv, score, active FROM {table}"
                            f" ORDER BY user_id", db=self.dest)
        return [[r[0], r[1], r[2], r[3], float(r[4]) if r[4] is not None else None, r[5]] for r in rows]

    def test_pg_to_pg_mirror_exact_rows(self):
        p = self.project(f'{{type: postgres, dsn: "{self.pg.dsn(self.dest)}", table: app.users,'
                         f' create_table: true}}')
        r = p.run("run", "s", env=self.env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.dest_rows(), self.model_rows())
        cols = dict(self.pg.psql("SELECT column_name, data_type FROM information_schema.columns"
                                 " WHERE table_schema = 'app' AND table_name = 'users'", db=self.dest))
        self.assertEqual(cols["user_id"], "bigint")
        self.assertEqual(cols["score"], "double precision")
        self.assertEqual(cols["active"], "boolean")
        pk = self.pg.psql("SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid"
                          " AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'app.users'::regclass"
                          " AND i.indisprimary", db=self.dest)
        self.assertEqual(pk, [["user_id"]])

        # Changes, deletes and new rows; an unmapped column change pushes nothing.
        self.pg.psql("UPDATE users SET email = 'changed' || id WHERE id % 50 = 0;"
                     " DELETE FROM users WHERE id % 7 = 0;"
                     " UPDATE users SET note = 'unmapped' WHERE id % 11 = 0;"
                     f" INSERT INTO users (id, email, first_name) SELECT i, 'new' || i, NULL"
                     f" FROM generate_series({N + 1}, {N + 40}) i", db=self.wh)
        rc, doc, err = p.run_json("run", "s", env=self.env)
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.dest_rows(), self.model_rows())
        removed = len([i for i in range(1, N + 1) if i % 7 == 0])
        changed = len([i for i in range(1, N + 1) if i % 50 == 0 and i % 7 != 0])
        runs = json.loads(p.run("runs", "s", "--json", env=self.env).stdout)["runs"]
        self.assertEqual(runs[0]["removed"], removed)
        self.assertEqual(runs[0]["changed"], changed)
        self.assertEqual(runs[0]["added"], 40)

        # A third run with no changes sends nothing.
        r = p.run("run", "s", env=self.env)
        self.assertEqual(r.returncode, 0, r.stderr)
        runs = json.loads(p.run("runs", "s", "--json", env=self.env).stdout)["runs"]
        self.assertEqual((runs[0]["added"], runs[0]["changed"], runs[0]["removed"]), (0, 0, 0))
        self.assertEqual(self.dest_rows(), self.model_rows())

    def test_existing_table_types_and_constraint_rejects(self):
        """An existing table keeps its types (values are converted by
        PostgreSQL); rows breaking a constraint are rejected with the server's
        reason (no values in it) and the rest of the batch is written."""
        self.pg.psql("CREATE TABLE crm (user_id int PRIMARY KEY, email varchar(200) NOT NULL"
                     " CHECK (email NOT LIKE 'person1%'), ltv numeric(12,2), created timestamptz,"
                     " meta jsonb, extra text DEFAULT 'keep')", db=self.dest)
        p = self.project(f'{{type: postgres, dsn: "{self.pg.dsn(self.dest)}", table: crm}}',
                         fields="{email: email, ltv: ltv, created: created, meta: meta}",
                         sync_extra="    batch_size: 250\n")
        r = p.run("run", "s", env=self.env)
        self.assertEqual(r.returncode, 1, r.stderr)  # finished, some rejected
        bad = {i for i in range(1, N + 1) if str(i).startswith("1")}
        got = {int(x[0]) for x in self.pg.psql("SELECT user_id FROM crm", db=self.dest)}
        self.assertEqual(got, set(range(1, N + 1)) - bad)
        rows = self.pg.psql("SELECT ltv::text, created = timestamptz '2024-01-01 00:02:00+00', meta->>'i',"
                            " extra FROM crm WHERE user_id = 2", db=self.dest)
        self.assertEqual(rows, [["2.50", "t", "2", "keep"]])
        rc, doc, err = p.run_json("errors", "s", env=self.env)
        errors = doc.get("errors", doc) if isinstance(doc, dict) else doc
        text = json.dumps(doc)
        self.assertIn("check constraint", text)
        self.assertNotIn("person1@example.com", text)
        self.assertNotIn("person10@example.com", text)
        self.assertEqual(len(errors), len(bad))
        # Fix the data: the next run retries exactly the rejected rows.
        self.pg.psql("ALTER TABLE crm DROP CONSTRAINT crm_email_check", db=self.dest)
        r = p.run("run", "s", env=self.env)
        self.assertEqual(r.returncode, 0, r.stderr)
        runs = json.loads(p.run("runs", "s", "--json", env=self.env).stdout)["runs"]
        self.assertEqual(runs[0]["added"], len(bad))
        self.assertEqual(int(self.pg.psql("SELECT count(*) FROM crm", db=self.dest)[0][0]), N)

    def test_repeated_match_values_last_record_wins(self):
        """match columns that are not the model's key may repeat within a
        batch: the batch still goes in, the last record of each value wins."""
        p = pg_project(self.pg, self.wh, f'{{type: postgres, dsn: "{self.pg.dsn(self.dest)}", table: grp,'
                       f' create_table: true}}', mode="upsert",
                       model_sql="SELECT id, id % 10 AS grp, email FROM users ORDER BY id")
        self.projects.append(p)
        with open(os.path.join(p.dir, "backflow.yml")) as f:
            text = f.read()
        with open(os.path.join(p.dir, "backflow.yml"), "w") as f:
            f.write(text.replace("match: {user_id: id}", "match: {grp: grp}").replace(
                "fields: {email: email, first_name: first_name, ltv: ltv, score: score, active: active}",
                "fields: {email: email}"))
        r = p.run("run", "s", env=self.env)
        self.assertEqual(r.returncode, 0, r.stderr)
        got = self.pg.psql("SELECT grp, email FROM grp ORDER BY grp", db=self.dest)
        want = self.pg.psql("SELECT DISTINCT ON (id % 10) id % 10, email FROM users ORDER BY id % 10, id DESC",
                            db=self.wh)
        self.assertEqual(got, want)

    def test_missing_table_without_create_stops_run(self):
        p = self.project(f'{{type: postgres, dsn: "{self.pg.dsn(self.dest)}", table: nosuch}}')
        r = p.run("run", "s", env=self.env)
        self.assertEqual(r.returncode, 4, r.stderr)
        self.assertIn("nosuch", r.stderr)
        self.assertIn("create_table", r.stderr)
        # Nothing was acknowledged: after creating it, run 2 sends every row.
        self.pg.psql("CREATE TABLE nosuch (user_id bigint PRIMARY KEY, email text, first_name text,"
                     " ltv numeric, score float8, active bool)", db=self.dest)
        r = p.run("run", "s", env=self.env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.dest_rows("nosuch"), self.model_rows())

    def test_types_as_read(self):
        out = "out.jsonl"
        p = self.project(f"{{type: file, path: {out}}}",
                         fields="{email: email, ltv: ltv, score: score, active: active, created: created,"
                                " born: born, meta: meta, pic: pic}",
                         model_sql="SELECT * FROM users WHERE id <= 3 ORDER BY id", mode="upsert")
        self.pg.psql("INSERT INTO users (id) VALUES (0)", db=self.wh)
        r = p.run("run", "s", env=self.env)
        self.assertEqual(r.returncode, 0, r.stderr)
        recs = [json.loads(line) for line in open(os.path.join(p.dir, out))]
        by_id = {rec["key"]["user_id"]: rec["fields"] for rec in recs}
        self.assertEqual(by_id[2], {"email": "person2@example.com", "ltv": "2.50", "score": 0.5, "active": True,
                                    "created": "2024-01-01T00:02:00Z", "born": "2000-01-03",
                                    "meta": {"i": 2}, "pic": base64.b64encode(b"\x00\xff").decode()})
        self.assertEqual(set(by_id[0].values()), {None})
        self.assertEqual(by_id[1]["active"], False)

    def test_cursor_mode_matches_copy(self):
        outs = {}
        for mode in ("copy", "cursor"):
            p = self.project("{type: file, path: out.jsonl}", wh_extra=f", read: {mode}",
                             fields="{email: email, ltv: ltv, score: score, active: active, created: created,"
                                    " meta: meta, pic: pic, note: note}", mode="upsert",
                             model_sql="SELECT * FROM users ORDER BY id")
            r = p.run("run", "s", env=self.env)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(os.path.join(p.dir, "out.jsonl")) as f:
                outs[mode] = f.read()
        self.assertEqual(len(outs["copy"].splitlines()), N)
        self.assertEqual(outs["copy"], outs["cursor"])

    def test_text_escapes_roundtrip(self):
        self.pg.psql(r"""INSERT INTO users (id, email, first_name) VALUES
            (10001, E'tab\there', E'new\nline'), (10002, E'back\\slash', E'cr\rx'),
            (10003, 'üñîçødé ✓', '\N')""", db=self.wh)
        p = self.project(f'{{type: postgres, dsn: "{self.pg.dsn(self.dest)}", table: app.users,'
                         f' create_table: true}}')
        r = p.run("run", "s", env=self.env)
        self.assertEqual(r.returncode, 0, r.stderr)
        same = self.pg.psql("SELECT count(*) FROM users", db=self.wh)
        self.assertEqual(int(same[0][0]), N + 3)
        got = self.pg.psql("SELECT user_id, encode(convert_to(email || '|' || first_name, 'UTF8'), 'hex')"
                           " FROM app.users WHERE user_id > 10000 ORDER BY 1", db=self.dest)
        want = self.pg.psql("SELECT id, encode(convert_to(email || '|' || first_name, 'UTF8'), 'hex')"
                            " FROM users WHERE id > 10000 ORDER BY 1", db=self.wh)
        self.assertEqual(got, want)

    def test_unknown_table_names_model(self):
        p = self.project("{type: file, path: out.jsonl}", model_sql="SELECT * FROM no_such_table")
        r = p.run("run", "s", env=self.env)
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("model 'users'", r.stderr)
        self.assertIn("no_such_table", r.stderr)
        self.assertIn("warehouse 'pg'", r.stderr)
        r = p.run("plan", "s", env=self.env)
        self.assertEqual(r.returncode, 3, r.stderr)

    def test_wrong_password_is_not_printed(self):
        p = self.project("{type: file, path: out.jsonl}")
        secret = "Wr0ngPassw0rd-xyz"
        for dsn in (self.pg.dsn(self.wh, password=secret),
                    f"host=127.0.0.1 port={self.pg.port} dbname={self.wh} user=postgres password='{secret}'"):
            for args in (("run", "s"), ("plan", "s"), ("validate",), ("run", "s", "--json")):
                r = p.run(*args, env={"PG_DSN": dsn})
                self.assertEqual(r.returncode, 3, (args, r.stdout, r.stderr))
                self.assertNotIn(secret, r.stdout + r.stderr)
                self.assertIn("password authentication failed", r.stdout + r.stderr)
            for f in p.state_files():
                with open(f, "rb") as fh:
                    self.assertNotIn(secret.encode(), fh.read(), f)
        self.assertFalse(os.path.exists(os.path.join(p.dir, "out.jsonl")))

    def test_tls_settings_passed_through(self):
        # The test server has no TLS: sslmode=require must make libpq refuse.
        p = self.project("{type: file, path: out.jsonl}", wh_extra=", sslmode: require")
        r = p.run("run", "s", env=self.env)
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("SSL", r.stderr)
        p = self.project("{type: file, path: out.jsonl}", wh_extra=", sslmode: disable, statement_timeout: 30s")
        r = p.run("run", "s", env=self.env)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_statement_timeout(self):
        p = self.project("{type: file, path: out.jsonl}", wh_extra=", statement_timeout: 200ms",
                         model_sql="SELECT *, pg_sleep(1) AS z FROM users")
        r = p.run("run", "s", env=self.env)
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("statement timeout", r.stderr)
        self.assertIn("model 'users'", r.stderr)

    def test_permission_denied(self):
        role = "reader_" + self.wh[-6:]
        self.pg.psql(f"CREATE ROLE {role} LOGIN PASSWORD 'readerpw'", db=self.wh)
        p = self.project("{type: file, path: out.jsonl}")
        r = p.run("run", "s", env={"PG_DSN": self.pg.dsn(self.wh, user=role, password="readerpw")})
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("permission denied", r.stderr)
        self.assertIn("model 'users'", r.stderr)

    def test_model_must_be_a_query(self):
        p = self.project("{type: file, path: out.jsonl}", model_sql="\"DELETE FROM users\"")
        r = p.run("run", "s", env=self.env)
        self.assertEqual(r.returncode, 3, r.stderr)
        p2 = self.project("{type: file, path: out.jsonl}",
                          model_sql="\"SELECT * FROM users; DELETE FROM users\"")
        r = p2.run("run", "s", env=self.env)
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertEqual(int(self.pg.psql("SELECT count(*) FROM users", db=self.wh)[0][0]), N)


if __name__ == "__main__":
    unittest.main()
