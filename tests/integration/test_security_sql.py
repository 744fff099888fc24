"""SQL identifiers in generated SQL are always quoted (issue 7).

Backflow generates SQL in three places (docs/reliability.md lists them): the
PostgreSQL destination (table, schema and every destination column, in
CREATE/INSERT ... ON CONFLICT/UPDATE/DELETE/COPY of a stage table) and the
write-back of run history to a PostgreSQL or SQLite warehouse (schema). Here
each of those names is hostile: quotes, semicolons, comments, spaces, case,
reserved words. A canary table must survive, the objects must exist under
exactly those names, and the rows must be right after upserts, updates,
deletes and inserts."""
import os
import sqlite3
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgredis  # noqa: E402
from bfhelp import Project, users_table  # noqa: E402

SCHEMA = 'S"x; DROP TABLE canary; --'
TABLE = 'T"; DROP TABLE canary; --'
MATCH_COL = 'id"); DELETE FROM canary; --'
FIELDS = {'e"; DROP TABLE canary; --': "email", "Select": "plan", "first name": "first_name"}
CONST_COL = "c'; DELETE FROM canary; --"
WB_SCHEMA = 'wb"; DROP TABLE canary; --'
SQLITE_WB = 'w"; DROP TABLE users; --'
N = 30


def yq(s):
    """A YAML single-quoted scalar."""
    return "'" + s.replace("'", "''") + "'"


def pg_ident(s):
    return '"' + s.replace('"', '""') + '"'


class GeneratedSqlQuotesIdentifiers(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pg = pgredis.shared_pg()

    def setUp(self):
        self.dest = self.pg.create_db("sec")
        self.pg.psql("CREATE TABLE canary (v int); INSERT INTO canary VALUES (42)", db=self.dest)
        self.p = Project()
        self.addCleanup(self.p.cleanup)
        users_table(self.p, N)
        fields = "".join(f"      {yq(k)}: {v}\n" for k, v in FIELDS.items())
        self.p.write_config(f"""version: 1
warehouses:
  local: {{type: sqlite, path: warehouse.db}}
  pgw: {{type: postgres, dsn: "{self.pg.dsn(self.dest)}"}}
models:
  users:
    warehouse: local
    sql: SELECT id, email, first_name, plan FROM users
    primary_key: id
destinations:
  pg:
    type: postgres
    dsn: "{self.pg.dsn(self.dest)}"
    table: {yq(SCHEMA + "." + TABLE)}
    create_table: true
syncs:
  mirror:
    model: users
    destination: pg
    mode: mirror
    match:
      {yq(MATCH_COL)}: id
    fields:
{fields}    constants:
      {yq(CONST_COL)}: 7
    write_back: {{warehouse: pgw, schema: {yq(WB_SCHEMA)}}}
  update:
    model: users
    destination: pg
    mode: update
    match:
      {yq(MATCH_COL)}: id
    fields:
{fields}    constants:
      {yq(CONST_COL)}: 7
    write_back: {{warehouse: local, schema: {yq(SQLITE_WB)}}}
""")

    def run_ok(self, sync, expect=0):
        r = self.p.run("run", sync)
        self.assertEqual(r.returncode, expect, r.stderr)
        self.assertNotIn("warning", r.stderr)  # write-back failures are warnings
        return r

    def dest_rows(self):
        cols = [MATCH_COL, *FIELDS, CONST_COL]
        sel = ", ".join(f"{pg_ident(c)}::text" for c in cols)
        rows = self.pg.psql(f"SELECT {sel} FROM {pg_ident(SCHEMA)}.{pg_ident(TABLE)}",
                            db=self.dest)
        return sorted(rows, key=lambda r: int(r[0]))

    def model_rows(self):
        return [[str(i), e, pl, fn, "7"] for i, e, fn, pl in
                self.p.query("SELECT id, email, first_name, plan FROM users ORDER BY id")]

    def assertCanary(self):
        self.assertEqual(self.pg.psql("SELECT v FROM canary", db=self.dest), [["42"]])

    def test_hostile_identifiers_stay_names(self):
        self.run_ok("mirror")  # CREATE SCHEMA/TABLE, stage, COPY, INSERT ... ON CONFLICT
        self.assertCanary()
        self.assertEqual(self.dest_rows(), self.model_rows())
        cols = self.pg.psql("SELECT column_name FROM information_schema.columns WHERE"
                            f" table_schema = '{SCHEMA.replace(chr(39), chr(39) * 2)}' AND"
                            f" table_name = '{TABLE.replace(chr(39), chr(39) * 2)}'"
                            " ORDER BY ordinal_position", db=self.dest)
        self.assertEqual([c[0] for c in cols], [MATCH_COL, *FIELDS, CONST_COL])

        # upsert of changed rows, delete of rows that left the model
        self.p.sql("UPDATE users SET plan = 'pro' WHERE id <= 10; DELETE FROM users WHERE id > 25")
        self.run_ok("mirror")
        self.assertCanary()
        self.assertEqual(self.dest_rows(), self.model_rows())

        # UPDATE ... FROM stage; a key the table lacks is rejected, not inserted
        self.p.sql("UPDATE users SET first_name = 'Renamed' WHERE id % 2 = 0")
        self.p.sql("INSERT INTO users VALUES (999, 'x@example.com', 'X', 'free', 1.0, 'n')")
        r = self.run_ok("update", expect=1)
        self.assertCanary()
        rows = self.dest_rows()
        self.assertEqual(len(rows), 25)
        self.assertTrue(all(r[3] == "Renamed" for r in rows if int(r[0]) % 2 == 0), rows)

        # write-back to PostgreSQL and SQLite under the hostile schema names
        self.assertEqual(self.pg.psql(f"SELECT count(*) FROM {pg_ident(WB_SCHEMA)}.sync_runs",
                                      db=self.dest), [["2"]])
        con = sqlite3.connect(self.p.db_path)
        try:
            names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            n = con.execute(f"SELECT count(*) FROM {pg_ident(SQLITE_WB + '_sync_runs')}").fetchone()
        finally:
            con.close()
        self.assertIn("users", names)
        self.assertIn(SQLITE_WB + "_sync_runs", names)
        self.assertIn(SQLITE_WB + "_sync_errors", names)
        self.assertEqual(n, (1,))
        self.assertCanary()


if __name__ == "__main__":
    unittest.main()
