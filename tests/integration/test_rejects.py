"""Rejected rows must be actionable (issue 16): `errors SYNC --reveal` prints
each error's primary key (hashed again locally, nothing stored); `plan`
counts the rows it would reject per reason; `reject_threshold` turns a run
with few rejects into `succeeded` with a warning and exit 0."""
import json
import os

from test_core_support import CoreCase, config, file_dest, sync_block, webhook_dest

import unittest


def bad_rows(p):
    # 30 users; add a duplicate of id 7 and two NULL ids
    p.sql("INSERT INTO users (id, email, first_name, plan) VALUES (7, 'dup@x.com', 'D', 'free');"
          "INSERT INTO users (id, email, first_name, plan) VALUES (NULL, 'n1@x.com', 'N', 'free');"
          "INSERT INTO users (id, email, first_name, plan) VALUES (NULL, 'n2@x.com', 'N', 'free');")


class Rejects(CoreCase):
    def project(self, threshold=None, dest=None, destination="out"):
        s = sync_block("s", destination, mode="upsert")
        if threshold is not None:
            s += f"    reject_threshold: \"{threshold}\"\n"
        p = self.new_project(rows=30, config_text=config([dest or file_dest()], [s]))
        return p

    def test_plan_counts_rejects_per_reason(self):
        p = self.project()
        bad_rows(p)
        doc = self.plan(p, "s")
        self.assertEqual(doc["rejected"], 3)
        self.assertEqual(sorted((r["reason"], r["count"]) for r in doc["reasons"]),
                         [("id: duplicate primary key: an earlier row with this key was kept", 1),
                          ("id: primary key is NULL", 2)])
        r = p.run("plan", "s")
        self.assertIn("would reject:", r.stdout)
        self.assertRegex(r.stdout, r"\n\s+2  id: primary key is NULL\n")

    def test_reveal_prints_the_keys_and_stores_nothing(self):
        recv = self.new_receiver(reject_keys=[12])
        p = self.project(dest=webhook_dest(recv.url), destination="hook")
        bad_rows(p)
        run = self.run_sync(p, "s", expect=1)
        self.assertEqual(run["rejected"], 4)
        plain = self.errors(p, "s")
        self.assertNotIn('"key"', json.dumps(plain["errors"]))
        before = {f: os.path.getsize(f) for f in p.state_files()}
        rc, doc, err = p.run_json("errors", "s", "--reveal")
        self.assertEqual(rc, 0, err)
        by_reason = sorted((e["key"], e["reason"]) for e in doc["errors"] if e["key"] is not None)
        self.assertEqual(by_reason, [(7, "duplicate primary key: an earlier row with this key was "
                                         "kept"), (12, "rejected by test receiver: user_id")])
        self.assertEqual(sum(1 for e in doc["errors"] if e["key"] is None), 2)  # NULL keys
        self.assertEqual(doc["revealed"], 2)
        r = p.run("errors", "s", "--reveal")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"\n  7 +id +duplicate primary key")
        self.assertRegex(r.stdout, r"\n  12 +- +rejected by test receiver")
        # Nothing written anywhere (the state folder is unchanged).
        self.assertEqual({f: os.path.getsize(f) for f in p.state_files()}, before)

    def test_threshold_makes_few_rejects_a_success_with_a_warning(self):
        p = self.project(threshold="10%")
        bad_rows(p)  # 3 rejects of 33 rows read = 9.1%
        run = self.run_sync(p, "s", expect=0)
        self.assertEqual(run["status"], "succeeded")
        self.assertEqual(run["rejected"], 3)
        self.assertIn("warning: sync 's': 3 rejected rows", run["_stderr"])
        self.assertIn("within reject_threshold 10%", run["_stderr"])
        runs = json.loads(p.run("runs", "--json").stdout)["runs"]
        self.assertEqual(runs[0]["status"], "succeeded")

    def test_over_the_threshold_stays_partial(self):
        for threshold in ("5%", "2"):
            p = self.project(threshold=threshold)
            bad_rows(p)
            run = self.run_sync(p, "s", expect=1)
            self.assertEqual(run["status"], "partial", threshold)
        p = self.project(threshold="3")
        bad_rows(p)
        self.assertEqual(self.run_sync(p, "s", expect=0)["status"], "succeeded")

    def test_bad_threshold_is_a_config_error_at_its_place(self):
        p = self.project(threshold="lots")
        r = p.run("validate")
        self.assertEqual(r.returncode, 2)
        self.assertRegex(r.stderr, r"backflow\.yml:\d+:23: invalid reject_threshold in sync 's'")
        types = p.run("types", "sync")
        self.assertIn("reject_threshold", types.stdout)


if __name__ == "__main__":
    unittest.main()
