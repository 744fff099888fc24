"""Projection pushdown in the SQLite reader (src/sources/sqlite.c): when some
columns of a model are unmapped, the reader runs SELECT "a", "b" FROM (<model
SQL>) with only the mapped ones, and falls back to the model's own statement
when the SQL holds ORDER, when column names repeat, or when the rewrite does
not prepare. Every test goes through the CLI and checks the exact records the
file destination receives.

A column `boom` computed as abs(-9223372036854775808) raises "integer overflow"
whenever SQLite evaluates it, so a sync with an unmapped `boom` shows which
statement ran: it succeeds only when the narrowed one did."""
import os
import shutil
import string
import unittest

from test_core_support import CoreCase, read_events

BOOM = "abs(-9223372036854775808) AS boom"

USERS = [
    # id, email, name, note, rank
    (1, "ann@example.com", "Ann", "n1", 10),
    (2, "bob@example.com", "Bob", "n2", 20),
    (3, "cy@example.com", "Cy", "n3", 30),
]


def upsert(key, **fields):
    return {"op": "upsert", "sync": "s", "key": {"user_id": key}, "fields": fields}


class Pushdown(CoreCase):
    def setUp(self):
        self.p = self.new_project()
        self.p.sql("CREATE TABLE users (id INTEGER, email TEXT, name TEXT, note TEXT,"
                   " rank INTEGER)")
        for row in USERS:
            self.p.sql("INSERT INTO users VALUES (?, ?, ?, ?, ?)", row)
        self.out = os.path.join(self.p.dir, "out", "m.jsonl")

    def configure(self, sql, fields, primary_key="id"):
        """One model `m` whose SQL is exactly sql (a YAML literal block), one
        sync `s` to a JSON Lines file, matched on user_id."""
        keep = sql.endswith("\n")  # |+ keeps trailing newlines, |- drops the last one
        lines = (sql[:-1] if keep else sql).split("\n")
        block = "".join(f"      {line}\n" for line in lines)
        fields_yaml = "{" + ", ".join(f"{k}: {v}" for k, v in fields.items()) + "}"
        self.p.write_config(
            "version: 1\n"
            "warehouses:\n"
            "  local: {type: sqlite, path: warehouse.db}\n"
            "models:\n"
            "  m:\n"
            "    warehouse: local\n"
            f"    sql: |{'+' if keep else '-'}\n" + block +
            f"    primary_key: {primary_key}\n"
            "destinations:\n"
            "  out: {type: file, path: out/m.jsonl, fsync: false}\n"
            "syncs:\n"
            "  s:\n"
            "    model: m\n"
            "    destination: out\n"
            "    mode: mirror\n"
            f"    match: {{user_id: {primary_key}}}\n"
            f"    fields: {fields_yaml}\n")

    def records(self):
        return sorted(read_events(self.out), key=lambda e: repr(e["key"]))

    def sync(self, sql, fields, expect=0, **kw):
        """A fresh first run of sql; returns (run, records written)."""
        self.configure(sql, fields, **kw)
        shutil.rmtree(os.path.join(self.p.dir, ".backflow"), ignore_errors=True)
        if os.path.exists(self.out):
            os.remove(self.out)
        run = self.run_sync(self.p, "s", expect=expect)
        return run, self.records()

    def assertRecords(self, sql, fields, expected, expect=0, **kw):
        run, got = self.sync(sql, fields, expect=expect, **kw)
        self.assertEqual(got, sorted(expected, key=lambda e: repr(e["key"])), run)
        return run

    def assertFailsOnBoom(self, sql, fields):
        """The model's own statement ran: the run fails on the overflow, names
        the model, and sends nothing."""
        self.configure(sql, fields)
        run = self.run_sync(self.p, "s", expect=3)
        self.assertEqual(run["status"], "failed", run)
        self.assertIn("model 'm'", run["error"])
        self.assertIn("integer overflow", run["error"])
        self.assertIn("model 'm'", run["_stderr"])
        self.assertEqual(read_events(self.out), [])

    # -- pushdown is used ----------------------------------------------------

    def test_unmapped_column_is_never_evaluated(self):
        sql = f"SELECT id, email, {BOOM} FROM users"
        fields = {"email": "email"}
        expected = [upsert(i, email=e) for i, e, *_ in USERS]
        self.configure(sql, fields)
        doc = self.plan(self.p, "s")
        self.assertCounts(doc, status="planned", rows_read=3, added=3, rejected=0, error=None)
        self.assertEqual(sorted(doc["sample"], key=lambda e: repr(e["key"])), expected)
        self.assertFalse(os.path.exists(self.out))

        run = self.run_sync(self.p, "s")
        self.assertCounts(run, status="succeeded", rows_read=3, added=3, rejected=0)
        self.assertEqual(self.records(), expected)

    def test_mapping_the_failing_column_fails_naming_the_model(self):
        sql = f"SELECT id, email, {BOOM} FROM users"
        self.configure(sql, {"email": "email", "boom": "boom"})
        rc, doc, err = self.p.run_json("plan", "s")
        self.assertEqual(rc, 3, (doc, err))
        self.assertIn("model 'm'", doc["error"])
        self.assertIn("integer overflow", doc["error"])
        self.assertIn("model 'm'", err)
        self.assertFailsOnBoom(sql, {"email": "email", "boom": "boom"})

    def test_trailing_semicolon_and_trailing_comment(self):
        expected = [upsert(i, email=e) for i, e, *_ in USERS]
        for sql in (f"SELECT id, email, {BOOM} FROM users;",
                    f"SELECT id, email, {BOOM} FROM users ;\n\n",
                    f"SELECT id, email, {BOOM}\nFROM users -- the end, no newline",
                    f"SELECT id, email, {BOOM}\nFROM users -- a comment; with a semicolon",
                    f"SELECT id, email, {BOOM}\nFROM users /* block */"):
            with self.subTest(sql=sql):
                # boom unmapped and the run succeeds: the narrowed statement ran.
                self.assertRecords(sql, {"email": "email"}, expected)

    def test_rewrite_that_does_not_prepare_falls_back(self):
        # A PRAGMA is a read-only query but no subquery: the model's own
        # statement runs, unmapped columns included.
        expected = [{"op": "upsert", "sync": "s", "key": {"user_id": cid}, "fields": {"name": n}}
                    for cid, n in enumerate(["id", "email", "name", "note", "rank"])]
        self.assertRecords("PRAGMA table_info(users)", {"name": "name"}, expected,
                           primary_key="cid")

    # -- ORDER BY ------------------------------------------------------------

    def test_order_by_decides_which_duplicate_key_wins(self):
        # Key 1 twice: in table order the low-ranked row comes first, in
        # ORDER BY rank DESC the high-ranked one does, and must win.
        self.p.sql("INSERT INTO users VALUES (1, 'ann-high@example.com', 'Ann2', 'n', 99)")
        sql = "SELECT id, email, note FROM users ORDER BY rank DESC"
        winners = [(1, "ann-high@example.com", "n"), (2, "bob@example.com", "n2"),
                   (3, "cy@example.com", "n3")]
        run = self.assertRecords(sql, {"email": "email"},
                                 [upsert(i, email=e) for i, e, _ in winners], expect=1)
        self.assertCounts(run, status="partial", rows_read=4, added=3, rejected=1)
        errs = self.errors(self.p, "s")["errors"]
        self.assertEqual(len(errs), 1, errs)
        self.assertIn("duplicate primary key", errs[0]["reason"])
        # The same with the unmapped column mapped too.
        self.assertRecords(sql, {"email": "email", "note": "note"},
                           [upsert(i, email=e, note=n) for i, e, n in winners], expect=1)
        # Without ORDER BY, table order: the first row inserted wins.
        self.assertRecords("SELECT id, email, note FROM users", {"email": "email", "note": "note"},
                           [upsert(i, email=e, note=n) for i, e, _, n, _ in USERS], expect=1)

    # Without ORDER BY, a narrowed statement could scan a covering index
    # instead of the table and read rows in another order: an unmapped column
    # would then decide which duplicate key wins (with a LIMIT, which rows are
    # synced at all). The reader narrows only when the query plan is the same.
    def test_unmapped_column_does_not_change_which_duplicate_wins(self):
        self.p.sql("CREATE INDEX users_email_id ON users (email, id);"
                   "INSERT INTO users VALUES (1, 'aaa@example.com', 'Ann2', 'n', 5)")
        sql = "SELECT id, email, note FROM users"
        _, all_mapped = self.sync(sql, {"email": "email", "note": "note"}, expect=1)
        self.assertEqual(all_mapped[0]["fields"]["email"], "ann@example.com")
        _, narrowed = self.sync(sql, {"email": "email"}, expect=1)
        self.assertEqual([e["fields"]["email"] for e in narrowed],
                         [e["fields"]["email"] for e in all_mapped])

    def test_unmapped_column_does_not_change_which_rows_a_limit_keeps(self):
        self.p.sql("CREATE INDEX users_email_id ON users (email, id);"
                   "INSERT INTO users VALUES (99, 'aaa@example.com', 'Zed', 'z', 0)")
        sql = "SELECT id, email, note FROM users LIMIT 2"
        _, all_mapped = self.sync(sql, {"email": "email", "note": "note"})
        _, narrowed = self.sync(sql, {"email": "email"})
        self.assertEqual(sorted(e["key"]["user_id"] for e in narrowed),
                         sorted(e["key"]["user_id"] for e in all_mapped))
        self.assertNotIn(99, [e["key"]["user_id"] for e in narrowed])  # table order: first two rows

    def test_order_by_runs_the_models_own_statement(self):
        self.assertFailsOnBoom(f"SELECT id, email, {BOOM} FROM users ORDER BY id",
                               {"email": "email"})

    # -- repeated column names -----------------------------------------------

    def test_repeated_column_names_resolve_to_the_first_with_or_without_extra_columns(self):
        emails = [upsert(i, email=e) for i, e, *_ in USERS]
        names = [upsert(i, email=n) for i, _, n, *_ in USERS]
        cases = [
            # (sql, what the mapped `email` holds: the first column so named)
            ("SELECT id, email, name AS email FROM users", emails),
            ("SELECT id, email, name AS email, note FROM users", emails),
            ("SELECT id, email, email AS email2, name AS email FROM users", emails),
            ("SELECT id, email, email AS email2, name AS email, note, rank FROM users", emails),
            ("SELECT id, name AS email, email FROM users", names),
            ("SELECT id, name AS email, email, note FROM users", names),
        ]
        for sql, expected in cases:
            with self.subTest(sql=sql):
                self.assertRecords(sql, {"email": "email"}, expected)

    def test_names_differing_in_case_are_distinct_columns(self):
        # The mapping matches names exactly; SQL resolves them ignoring case,
        # so a narrowed SELECT "email", "EMAIL" would read one column twice.
        expected = [upsert(i, email=e, display=n) for i, e, n, *_ in USERS]
        fields = {"email": "email", "display": "EMAIL"}
        self.assertRecords("SELECT id, email, name AS EMAIL FROM users", fields, expected)
        self.assertRecords("SELECT id, email, name AS EMAIL, note FROM users", fields, expected)

    def test_repeated_names_run_the_models_own_statement(self):
        self.assertFailsOnBoom(f"SELECT id, email, name AS email, {BOOM} FROM users",
                               {"email": "email"})

    # -- large values ----------------------------------------------------------

    def test_large_text_values_arrive_intact(self):
        # 200 000 bytes: 200 runs of a two-byte character and 998 letters.
        letters = string.ascii_letters * 21
        big = "".join("\u00e9" + letters[k % 52:k % 52 + 998] for k in range(200))
        big2 = "".join("0123456789\"\\\n\t"[i % 14] for i in range(70000))
        self.p.sql("UPDATE users SET note = ? WHERE id = 2", (big,))
        self.p.sql("UPDATE users SET note = ? WHERE id = 3", (big2,))
        self.p.sql("INSERT INTO users VALUES (4, 'dee@example.com', 'Dee', ?, 40)", (big[::-1],))
        self.assertEqual(self.p.query("SELECT length(CAST(note AS BLOB)) FROM users"
                                      " WHERE id = 2")[0][0], 200000)
        notes = {1: "n1", 2: big, 3: big2, 4: big[::-1]}
        expected = [upsert(i, note=notes[i]) for i in range(1, 5)]
        # name unmapped: the narrowed statement; then every column mapped.
        self.assertRecords("SELECT id, name, note FROM users", {"note": "note"}, expected)
        self.assertRecords("SELECT id, note FROM users", {"note": "note"}, expected)


if __name__ == "__main__":
    unittest.main()
