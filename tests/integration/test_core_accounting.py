"""Exact diff accounting (issue 2, design.md §1): what each run pushes, to the
strict webhook receiver and to the file destination, and what it reports."""
import os
import sqlite3

from test_core_support import (DEFAULT_FIELDS, MODEL_SQL, CoreCase, config, delta,
                               expected_store, file_dest, fold_events, read_events, snapshot,
                               sync_block, users_table, webhook_dest)

N = 60


class WebhookAccounting(CoreCase):
    def setUp(self):
        self.r = self.new_receiver()
        self.p = self.new_project(rows=N)
        self.configure()

    def configure(self, mode="mirror", fields=None, batch_size=25, extra_syncs="", models=None):
        self.p.write_config(config([webhook_dest(self.r.url)],
                                   [sync_block("users", "hook", mode=mode, fields=fields,
                                               batch_size=batch_size), extra_syncs],
                                   models=models))

    def assertStoreIsModel(self, fields=None):
        self.assertEqual(self.r.store(), expected_store(self.p, fields=fields))

    def first_run(self):
        run = self.run_sync(self.p, "users")
        self.assertCounts(run, status="succeeded", rows_read=N, added=N, changed=0, removed=0,
                          unchanged=0, rejected=0, failed=0)
        self.assertStoreIsModel()
        return run

    def test_first_run_equals_model_and_second_run_pushes_nothing(self):
        self.first_run()
        c1 = self.r.counters()
        self.assertEqual(c1["upsert"], N)
        self.assertEqual(c1["records"], N)
        self.assertEqual(c1["requests"], 3)  # batch_size 25
        self.assertEqual(c1["redeliveries"], 0)
        run = self.run_sync(self.p, "users")
        self.assertCounts(run, status="succeeded", rows_read=N, added=0, changed=0, removed=0,
                          unchanged=N, rejected=0, failed=0)
        c2 = self.r.counters()
        self.assertEqual(delta(c1, c2, "requests", "records"), {"requests": 0, "records": 0})
        self.assertStoreIsModel()

    def test_changing_k_rows_pushes_exactly_k_changes(self):
        self.first_run()
        c1 = self.r.counters()
        k = 7
        self.p.sql("UPDATE users SET plan = 'pro' WHERE id IN (3, 9, 10, 22, 41, 59, 60)")
        run = self.run_sync(self.p, "users")
        self.assertCounts(run, added=0, changed=k, removed=0, unchanged=N - k, rejected=0)
        c2 = self.r.counters()
        self.assertEqual(delta(c1, c2, "records", "upsert", "delete"),
                         {"records": k, "upsert": k, "delete": 0})
        self.assertStoreIsModel()
        self.assertEqual(self.r.get({"user_id": 22})["plan"], "pro")

    def test_deleting_k_rows_under_mirror_pushes_exactly_k_deletes(self):
        self.first_run()
        c1 = self.r.counters()
        self.p.sql("DELETE FROM users WHERE id IN (1, 2, 30, 60)")
        run = self.run_sync(self.p, "users")
        self.assertCounts(run, rows_read=N - 4, added=0, changed=0, removed=4, unchanged=N - 4,
                          rejected=0, failed=0)
        c2 = self.r.counters()
        self.assertEqual(delta(c1, c2, "records", "delete", "upsert"),
                         {"records": 4, "delete": 4, "upsert": 0})
        self.assertStoreIsModel()
        self.assertEqual(len(self.r.store()), N - 4)
        # Removed keys are gone from state: the next run deletes nothing again.
        run = self.run_sync(self.p, "users")
        self.assertCounts(run, removed=0, unchanged=N - 4)
        self.assertEqual(self.r.counters()["records"], c2["records"])

    def test_deleting_rows_under_upsert_deletes_nothing(self):
        self.configure(mode="upsert")
        self.first_run()
        c1 = self.r.counters()
        self.p.sql("DELETE FROM users WHERE id IN (5, 6)")
        run = self.run_sync(self.p, "users")
        self.assertCounts(run, removed=0, unchanged=N - 2)
        self.assertEqual(self.r.counters()["records"], c1["records"])
        self.assertEqual(len(self.r.store()), N)

    def test_changing_an_unmapped_column_pushes_nothing(self):
        self.first_run()
        c1 = self.r.counters()
        self.p.sql("UPDATE users SET note = 'changed', ltv = ltv + 1000")
        run = self.run_sync(self.p, "users")
        self.assertCounts(run, added=0, changed=0, removed=0, unchanged=N)
        self.assertEqual(delta(c1, self.r.counters(), "requests", "records"),
                         {"requests": 0, "records": 0})

    def test_changing_the_mapping_resends_everything(self):
        self.first_run()
        c1 = self.r.counters()
        fields = dict(DEFAULT_FIELDS, lifetime_value="ltv")
        self.configure(fields=fields)
        run = self.run_sync(self.p, "users")
        self.assertCounts(run, added=0, changed=N, removed=0, unchanged=0, rejected=0)
        self.assertEqual(delta(c1, self.r.counters(), "records", "upsert"),
                         {"records": N, "upsert": N})
        self.assertStoreIsModel(fields=fields)
        self.assertEqual(self.r.get({"user_id": 4})["lifetime_value"], 6.0)
        # and then it is settled again
        run = self.run_sync(self.p, "users")
        self.assertCounts(run, changed=0, unchanged=N)

    def test_null_and_duplicate_primary_keys_are_rejected_and_not_deleted(self):
        self.p.sql("INSERT INTO users VALUES (NULL, 'nokey@example.com', 'Nokey', 'free', 1, 'n');"
                   "INSERT INTO users VALUES (3, 'dup3@example.com', 'Dup3', 'gold', 2, 'n');")
        run = self.run_sync(self.p, "users", expect=1)
        self.assertCounts(run, status="partial", rows_read=N + 2, added=N, rejected=2, failed=0)
        # first row of key 3 wins; the NULL key went nowhere
        self.assertStoreIsModel()
        self.assertEqual(self.r.get({"user_id": 3})["email"], "person3@example.com")
        self.assertEqual(self.r.counters()["records"], N)
        errs = self.errors(self.p, "users")
        self.assertEqual(errs["run_id"], run["run_id"])
        reasons = sorted(e["reason"] for e in errs["errors"])
        self.assertEqual(len(reasons), 2, errs)
        self.assertIn("duplicate primary key", reasons[0])
        self.assertIn("primary key is NULL", reasons[1])
        for e in errs["errors"]:
            self.assertEqual(e["column"], "id", e)
        dup = [e for e in errs["errors"] if "duplicate" in e["reason"]][0]
        self.assertRegex(dup["key_hash"], r"^[0-9a-f]{32}$")

        # Under mirror, the duplicated key is still in the model: never a removal.
        c1 = self.r.counters()
        run = self.run_sync(self.p, "users", expect=1)
        self.assertCounts(run, added=0, changed=0, removed=0, unchanged=N, rejected=2)
        c2 = self.r.counters()
        self.assertEqual(delta(c1, c2, "records", "delete"), {"records": 0, "delete": 0})
        self.assertIsNotNone(self.r.get({"user_id": 3}))

        # Removing the winning row: the other row of key 3 becomes its value.
        self.p.sql("DELETE FROM users WHERE id = 3 AND email = 'person3@example.com';"
                   "DELETE FROM users WHERE id IS NULL")
        run = self.run_sync(self.p, "users")
        self.assertCounts(run, added=0, changed=1, removed=0, rejected=0)
        self.assertEqual(self.r.get({"user_id": 3})["email"], "dup3@example.com")
        self.assertStoreIsModel()
        self.assertEqual(self.errors(self.p, "users")["errors"], [])

    def test_duplicate_key_whose_row_moves_is_not_deleted(self):
        """Both rows of a duplicated key present in run 1; in run 2 the kept row and the
        duplicate swap order: still one key in the model, no delete."""
        self.p.sql("INSERT INTO users VALUES (8, 'other8@example.com', 'Other8', 'free', 1, 'n')")
        self.run_sync(self.p, "users", expect=1)
        self.p.sql("DELETE FROM users WHERE id = 8 AND email = 'person8@example.com';"
                   "INSERT INTO users VALUES (8, 'person8@example.com', 'Name8', 'free', 12, 'n')")
        c1 = self.r.counters()
        run = self.run_sync(self.p, "users", expect=1)
        self.assertCounts(run, removed=0, rejected=1)
        self.assertEqual(delta(c1, self.r.counters(), "delete"), {"delete": 0})
        self.assertStoreIsModel()

    def test_insert_mode_sends_only_new_keys(self):
        self.configure(mode="insert")
        run = self.run_sync(self.p, "users")
        self.assertCounts(run, added=N, changed=0, rejected=0)
        c1 = self.r.counters()
        self.assertEqual((c1["insert"], c1["upsert"], c1["update"]), (N, 0, 0))
        self.assertStoreIsModel()
        self.p.sql("UPDATE users SET plan = 'pro' WHERE id IN (1, 2, 3)")
        users_table(self.p, 4, start=N + 1)
        run = self.run_sync(self.p, "users")
        self.assertCounts(run, rows_read=N + 4, added=4, changed=0, skipped=3, rejected=0)
        c2 = self.r.counters()
        self.assertEqual(delta(c1, c2, "records", "insert", "upsert", "update"),
                         {"records": 4, "insert": 4, "upsert": 0, "update": 0})
        self.assertEqual(c2["duplicate_inserts"], 0)
        store = self.r.store()
        self.assertEqual(len(store), N + 4)
        self.assertEqual(self.r.get({"user_id": 1})["plan"], "free")  # not updated
        self.assertEqual(self.r.get({"user_id": N + 2})["email"], f"person{N + 2}@example.com")

    def test_update_mode_sends_update_and_unknown_keys_are_rejected(self):
        seed = sync_block("seed", "hook", mode="upsert", model="seed_users")
        self.configure(mode="update", extra_syncs=seed,
                       models={"users": MODEL_SQL, "seed_users": MODEL_SQL + " WHERE id <= 10"})
        self.run_sync(self.p, "seed")
        self.p.sql("DELETE FROM users WHERE id > 20; UPDATE users SET plan = 'pro'")
        c1 = self.r.counters()
        run = self.run_sync(self.p, "users", expect=1)
        self.assertCounts(run, status="partial", rows_read=20, rejected=10, failed=0)
        self.assertEqual(run["added"] + run["changed"], 10, run)
        c2 = self.r.counters()
        self.assertEqual(delta(c1, c2, "records", "update", "upsert", "not_found"),
                         {"records": 20, "update": 20, "upsert": 0, "not_found": 10})
        store = self.r.store()
        self.assertEqual(len(store), 10)  # update never creates
        for i in range(1, 11):
            self.assertEqual(self.r.get({"user_id": i})["plan"], "pro")
        errs = self.errors(self.p, "users")["errors"]
        self.assertEqual(len(errs), 10, errs)
        for e in errs:
            self.assertIn("not found", e["reason"])
            self.assertRegex(e["key_hash"], r"^[0-9a-f]{32}$")
        self.assertEqual(len({e["key_hash"] for e in errs}), 10)
        # The updated keys are settled; the unknown ones are tried again (and refused again).
        run = self.run_sync(self.p, "users", expect=1)
        self.assertCounts(run, unchanged=10, rejected=10)
        self.assertEqual(delta(c2, self.r.counters(), "update"), {"update": 10})

    def test_plan_changes_nothing(self):
        # Before any run: plan creates no state at all.
        doc = self.plan(self.p, "users")
        self.assertCounts(doc, status="planned", added=N, changed=0, removed=0)
        self.assertFalse(os.path.exists(os.path.join(self.p.dir, ".backflow")))
        self.assertEqual(self.r.counters()["requests"], 0)

        self.first_run()
        self.p.sql("UPDATE users SET plan = 'pro' WHERE id IN (4, 5);"
                   "DELETE FROM users WHERE id IN (7, 8, 9)")
        users_table(self.p, 2, start=N + 1)
        files = sorted(self.p.state_files())
        before = snapshot(files)
        c1 = self.r.counters()
        runs_before = self.p.run_json("runs")[1]
        for _ in range(2):
            doc = self.plan(self.p, "users")
            self.assertCounts(doc, status="planned", rows_read=N - 1, added=2, changed=2,
                              removed=3, unchanged=N - 5, rejected=0)
            self.assertIsInstance(doc["sample"], list)
            self.assertTrue(doc["sample"])
        self.assertEqual(sorted(self.p.state_files()), files)
        self.assertEqual(snapshot(files), before)
        self.assertEqual(delta(c1, self.r.counters(), "requests", "records"),
                         {"requests": 0, "records": 0})
        self.assertEqual(self.p.run_json("runs")[1], runs_before)
        # and the run then does exactly what the plan said
        run = self.run_sync(self.p, "users")
        self.assertCounts(run, added=2, changed=2, removed=3, unchanged=N - 5)
        self.assertStoreIsModel()

    def test_reset_then_run_resends_everything(self):
        self.first_run()
        c1 = self.r.counters()
        p = self.p.run("reset", "users")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertCounts(self.plan(self.p, "users"), added=N, changed=0, removed=0)
        run = self.run_sync(self.p, "users")
        self.assertCounts(run, added=N, changed=0, removed=0, unchanged=0)
        self.assertEqual(delta(c1, self.r.counters(), "records", "upsert", "delete"),
                         {"records": N, "upsert": N, "delete": 0})
        self.assertStoreIsModel()
        run = self.run_sync(self.p, "users")
        self.assertCounts(run, added=0, changed=0, unchanged=N)

    def test_full_resync_resends_everything(self):
        self.first_run()
        self.p.sql("DELETE FROM users WHERE id = 11")
        c1 = self.r.counters()
        run = self.run_sync(self.p, "users", "--full-resync")
        self.assertEqual(run["added"] + run["changed"], N - 1, run)
        self.assertCounts(run, removed=1, unchanged=0, rejected=0)
        self.assertEqual(delta(c1, self.r.counters(), "records", "upsert", "delete"),
                         {"records": N, "upsert": N - 1, "delete": 1})
        self.assertStoreIsModel()
        run = self.run_sync(self.p, "users")
        self.assertCounts(run, added=0, changed=0, removed=0, unchanged=N - 1)

    def test_runs_history_matches_the_runs(self):
        done = [self.first_run()]
        done.append(self.run_sync(self.p, "users"))
        self.p.sql("UPDATE users SET plan = 'x' WHERE id < 6; DELETE FROM users WHERE id = 50;"
                   "INSERT INTO users VALUES (NULL, 'a@b.example', 'A', 'free', 1, 'n')")
        done.append(self.run_sync(self.p, "users", expect=1))
        rc, doc, err = self.p.run_json("runs")
        self.assertEqual(rc, 0, err)
        hist = doc["runs"]
        self.assertEqual([h["id"] for h in hist], [r["run_id"] for r in reversed(done)])
        keys = ("sync", "status", "rows_read", "added", "changed", "removed", "unchanged",
                "skipped", "rejected", "failed", "error")
        for h, r in zip(hist, reversed(done)):
            self.assertEqual({k: h[k] for k in keys}, {k: r[k] for k in keys})
            self.assertGreaterEqual(h["finished_ms"], h["started_ms"])
        self.assertEqual(hist[0]["status"], "partial")
        self.assertEqual((hist[0]["changed"], hist[0]["removed"], hist[0]["rejected"]), (5, 1, 1))
        rc, doc, _ = self.p.run_json("runs", "users")
        self.assertEqual(rc, 0)
        self.assertEqual([h["id"] for h in doc["runs"]], [h["id"] for h in hist])
        # errors --run ID names an earlier run
        errs = self.errors(self.p, "users", "--run", str(done[1]["run_id"]))
        self.assertEqual((errs["run_id"], errs["errors"]), (done[1]["run_id"], []))


class FileAccounting(CoreCase):
    def setUp(self):
        self.p = self.new_project(rows=N)
        self.out = os.path.join(self.p.dir, "out", "users.jsonl")
        self.configure()

    def configure(self, mode="mirror", fields=None):
        self.p.write_config(config([file_dest()],
                                   [sync_block("users", "out", mode=mode, fields=fields)]))

    def events(self):
        return read_events(self.out)

    def test_accounting_to_a_file(self):
        run = self.run_sync(self.p, "users")
        self.assertCounts(run, added=N, changed=0, removed=0, rejected=0)
        ev = self.events()
        self.assertEqual(len(ev), N)
        self.assertEqual({e["op"] for e in ev}, {"upsert"})
        self.assertEqual({e["sync"] for e in ev}, {"users"})
        self.assertEqual(fold_events(ev), expected_store(self.p))

        size = os.path.getsize(self.out)
        run = self.run_sync(self.p, "users")
        self.assertCounts(run, added=0, changed=0, removed=0, unchanged=N)
        self.assertEqual(os.path.getsize(self.out), size)

        self.p.sql("UPDATE users SET email = 'new' || id || '@example.com' WHERE id IN (2, 4, 6);"
                   "UPDATE users SET note = 'unmapped change'")
        run = self.run_sync(self.p, "users")
        self.assertCounts(run, changed=3, unchanged=N - 3)
        new = self.events()[N:]
        self.assertEqual(sorted(e["key"]["user_id"] for e in new), [2, 4, 6])
        self.assertEqual({e["op"] for e in new}, {"upsert"})

        self.p.sql("DELETE FROM users WHERE id IN (10, 20)")
        before = self.events()
        run = self.run_sync(self.p, "users")
        self.assertCounts(run, removed=2, changed=0, added=0)
        new = self.events()[len(before):]
        self.assertEqual(sorted((e["op"], e["key"]["user_id"]) for e in new),
                         [("delete", 10), ("delete", 20)])
        for e in new:
            self.assertFalse(e.get("fields"), e)
        self.assertEqual(fold_events(self.events()), expected_store(self.p))

    def test_plan_leaves_the_file_and_state_untouched(self):
        doc = self.plan(self.p, "users")
        self.assertCounts(doc, added=N)
        self.assertFalse(os.path.exists(self.out))
        self.assertFalse(os.path.exists(os.path.join(self.p.dir, ".backflow")))
        self.run_sync(self.p, "users")
        self.p.sql("DELETE FROM users WHERE id = 1; UPDATE users SET plan = 'pro' WHERE id = 2")
        files = sorted(self.p.state_files() + [self.out])
        before = snapshot(files)
        doc = self.plan(self.p, "users")
        self.assertCounts(doc, added=0, changed=1, removed=1, unchanged=N - 2)
        self.assertEqual(snapshot(files), before)
        self.assertEqual(sorted(self.p.state_files() + [self.out]), files)

    def test_insert_mode_and_mapping_change_to_a_file(self):
        self.configure(mode="insert")
        self.run_sync(self.p, "users")
        self.p.sql("UPDATE users SET plan = 'pro' WHERE id = 1")
        users_table(self.p, 2, start=N + 1)
        run = self.run_sync(self.p, "users")
        self.assertCounts(run, added=2, skipped=1)
        new = self.events()[N:]
        self.assertEqual(sorted((e["op"], e["key"]["user_id"]) for e in new),
                         [("insert", N + 1), ("insert", N + 2)])

        fields = dict(DEFAULT_FIELDS, lifetime_value="ltv")
        self.configure(mode="upsert", fields=fields)
        before = len(self.events())
        run = self.run_sync(self.p, "users")
        self.assertEqual(run["added"] + run["changed"], N + 2, run)
        new = self.events()[before:]
        self.assertEqual(len(new), N + 2)
        self.assertEqual(fold_events(self.events()), expected_store(self.p, fields=fields))


if __name__ == "__main__":
    import unittest
    unittest.main()
