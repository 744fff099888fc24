"""`backflow forget` (design.md §2 and §4, docs/privacy.md): an erasure request
removes the person from every destination that holds them, in one command, with
an audit log that holds no plaintext; the person is never sent again although
the warehouse still holds them; a dead destination leaves the request pending
(exit 4) and `forget --retry` completes it. Two models, two syncs: users to the
strict webhook receiver (mirror), orders to a JSON Lines file (upsert)."""
import hashlib
import json
import os
import sqlite3

from test_core_support import (CoreCase, Project, WEBHOOK_SECRET, canonical_key, fold_events,
                               read_events, users_table)

N_USERS = 12
ORDERS_SQL = "SELECT order_id, customer_email, amount FROM orders"


def orders_for(i):
    """Two orders per user; the first writes the email the way people type it."""
    return [(i * 100 + 1, f"  Person{i}@EXAMPLE.com ", i * 2.5), (i * 100 + 2, f"person{i}@example.com", 1.0)]


def make_config(hook_url, users_policy="{first_name: hash}"):
    return f"""version: 1
warehouses:
  local: {{type: sqlite, path: warehouse.db}}
models:
  users:
    warehouse: local
    sql: SELECT id, email, first_name, plan, ltv, note FROM users
    primary_key: id
    pii: {{email: email, first_name: name, note: other}}
  orders:
    warehouse: local
    sql: {ORDERS_SQL}
    primary_key: order_id
    pii: {{customer_email: email}}
destinations:
  hook:
    type: webhook
    url: "{hook_url}"
    signing_secret: "{WEBHOOK_SECRET}"
    timeout: 5s
    max_retries: 1
    retry_base: 10ms
    retry_max_wait: 1s
  out: {{type: file, path: out/orders.jsonl, fsync: false}}
syncs:
  users_to_hook:
    model: users
    destination: hook
    mode: mirror
    match: {{user_id: id}}
    fields: {{email: email, first_name: first_name, plan: plan}}
    pii_policy: {users_policy}
  orders_to_file:
    model: orders
    destination: out
    match: {{order_id: order_id}}
    fields: {{email: customer_email, amount: amount}}
"""


def needles(i):
    """What must never be found in the state folder for person i."""
    email = f"person{i}@example.com"
    return {email, email.upper(), f"Person{i}@EXAMPLE.com", f"person{i}", f"Person{i}"}


def scan_state(project, words):
    hits = []
    for path in project.state_files():
        with open(path, "rb") as f:
            data = f.read()
        for w in words:
            if w.encode() in data:
                hits.append((os.path.relpath(path, project.dir), w))
    return hits


class ForgetCase(CoreCase):
    def setUp(self):
        self.r = self.new_receiver()
        self.p = self.new_project(rows=N_USERS)
        self.p.write_config(make_config(self.r.url))
        self.p.sql("CREATE TABLE orders (order_id INTEGER, customer_email TEXT, amount REAL)")
        con = sqlite3.connect(self.p.db_path)
        for i in range(1, N_USERS + 1):
            con.executemany("INSERT INTO orders VALUES (?,?,?)", orders_for(i))
        con.commit()
        con.close()
        self.out = os.path.join(self.p.dir, "out", "orders.jsonl")
        rc, doc, err = self.p.run_json("run", "--all")
        self.assertEqual(rc, 0, err)

    # -- helpers
    def forget(self, *args, expect=0):
        rc, doc, err = self.p.run_json("forget", *args)
        self.assertEqual(rc, expect, f"forget exit {rc}: {err!r} {doc!r}")
        return doc

    def audit(self):
        rc, doc, err = self.p.run_json("audit")
        self.assertEqual(rc, 0, err)
        return doc

    def hook_has(self, i):
        return canonical_key({"user_id": i}) in self.r.store()

    def file_store(self):
        return fold_events(read_events(self.out))

    def file_has_orders_of(self, i):
        store = self.file_store()
        return [o for o, _, _ in orders_for(i) if canonical_key({"order_id": o}) in store]

    def sync_result(self, doc, sync):
        return next(s for s in doc["syncs"] if s["sync"] == sync)


class TestForget(ForgetCase):
    def test_forget_by_email_removes_person_everywhere_and_it_sticks(self):
        self.assertTrue(self.hook_has(3))
        self.assertEqual(len(self.file_has_orders_of(3)), 2)
        # typed differently from both warehouse spellings: normalised on both sides
        doc = self.forget("--email", "  PERSON3@example.COM")
        self.assertEqual(doc["status"], "complete", doc)
        self.assertEqual(doc["kind"], "email")
        users = self.sync_result(doc, "users_to_hook")
        orders = self.sync_result(doc, "orders_to_file")
        self.assertEqual((users["found"], users["deleted"], users["status"]), (1, 1, "deleted"), users)
        self.assertEqual((orders["found"], orders["deleted"], orders["status"]), (2, 2, "deleted"), orders)
        self.assertFalse(self.hook_has(3))
        self.assertEqual(self.file_has_orders_of(3), [])
        # nobody else was touched
        self.assertEqual(len(self.r.store()), N_USERS - 1)
        self.assertEqual(len(self.file_store()), 2 * N_USERS - 2)

        # the audit log: the request, one entry per sync/destination, the end; no plaintext
        entries = self.audit()["entries"]
        req = [e for e in entries if e["request"] == doc["request"]]
        per_sync = [e for e in req if e["event"] == "sync"]
        self.assertEqual(sorted((e["sync"], e["destination"], e["status"]) for e in per_sync),
                         [("orders_to_file", "out", "deleted"), ("users_to_hook", "hook", "deleted")])
        self.assertEqual(req[0]["event"], "complete")  # newest first
        self.assertEqual(req[-1]["event"], "request")
        self.assertTrue(all(e["identifier_hash"] == doc["identifier_hash"] for e in req))
        self.assertEqual(scan_state(self.p, needles(3)), [])
        # the person's entries are found by their keyed hash, however typed
        rc, mine, err = self.p.run_json("audit", "--email", "Person3@Example.com")
        self.assertEqual(rc, 0, err)
        self.assertEqual([e["event"] for e in mine["entries"]], ["complete", "sync", "sync", "request"])
        rc, other, err = self.p.run_json("audit", "--email", "person4@example.com")
        self.assertEqual((rc, other["entries"]), (0, []))
        audit_path = os.path.join(self.p.dir, ".backflow", "audit.jsonl")
        self.assertEqual(os.stat(audit_path).st_mode & 0o777, 0o600)
        forgotten = os.path.join(self.p.dir, ".backflow", "forgotten.bin")
        self.assertEqual(os.stat(forgotten).st_mode & 0o777, 0o600)

        # the person is still in the warehouse: a later run must not send them again
        hook_before = self.r.counters()
        file_before = len(read_events(self.out))
        rc, runs, err = self.p.run_json("run", "--all")
        self.assertEqual(rc, 0, err)
        by = {r["sync"]: r for r in runs["runs"]}
        self.assertEqual((by["users_to_hook"]["skipped"], by["users_to_hook"]["added"]), (1, 0))
        self.assertEqual((by["orders_to_file"]["skipped"], by["orders_to_file"]["added"]), (2, 0))
        self.assertFalse(self.hook_has(3))
        self.assertEqual(len(read_events(self.out)), file_before)
        self.assertEqual(self.r.counters()["records"], hook_before["records"])
        # a full resync does not either, and the reason names the request
        rc, runs, err = self.p.run_json("run", "--all", "--full-resync")
        self.assertEqual(rc, 0, err)
        self.assertFalse(self.hook_has(3))
        self.assertEqual(self.file_has_orders_of(3), [])
        errs = self.errors(self.p, "users_to_hook")
        reasons = [e["reason"] for e in errs["errors"]]
        self.assertEqual(reasons, [f"forgotten (erasure request {doc['request']})"])
        # a new row of the same person (new key, same email) is held back too
        self.p.sql("INSERT INTO orders VALUES (9999, 'person3@example.com', 5)")
        rc, runs, err = self.p.run_json("run", "orders_to_file")
        self.assertEqual(rc, 0, err)
        self.assertNotIn(canonical_key({"order_id": 9999}), self.file_store())

    def test_forget_by_key_follows_the_person_into_other_models(self):
        doc = self.forget("--key", "users=5")
        self.assertEqual(doc["status"], "complete", doc)
        self.assertEqual(doc["model"], "users")
        self.assertEqual(self.sync_result(doc, "users_to_hook")["deleted"], 1)
        # orders has no user id: the key's email found them there
        self.assertEqual(self.sync_result(doc, "orders_to_file")["deleted"], 2)
        self.assertFalse(self.hook_has(5))
        self.assertEqual(self.file_has_orders_of(5), [])
        self.assertTrue(self.hook_has(4) and self.hook_has(6))
        rc, runs, err = self.p.run_json("run", "--all")
        self.assertEqual(rc, 0, err)
        self.assertFalse(self.hook_has(5))
        self.assertEqual(self.file_has_orders_of(5), [])
        self.assertEqual(scan_state(self.p, needles(5)), [])
        per_sync = [e for e in self.audit()["entries"] if e["event"] == "sync"]
        self.assertEqual(len(per_sync), 2)

    def test_unknown_person_is_recorded_and_found_nowhere(self):
        doc = self.forget("--email", "nobody@example.org")
        self.assertEqual(doc["status"], "complete")
        self.assertEqual([s["status"] for s in doc["syncs"]], ["not_found", "not_found"])
        self.assertEqual(len(self.r.store()), N_USERS)
        self.assertEqual(scan_state(self.p, {"nobody@example.org", "nobody"}), [])

    def test_bad_input_is_a_usage_error(self):
        for args in (["--email", "not-an-email"], ["--phone", "12"], ["--key", "nomodel=1"],
                     ["--key", "users"], ["--email", "a@b.co", "--phone", "+15551234567"], []):
            p = self.p.run("forget", *args)
            self.assertEqual(p.returncode, 2, (args, p.stderr))
        self.assertNotIn("not-an-email", self.p.run("forget", "--email", "not-an-email").stderr)

    def test_dead_destination_gives_exit_4_and_retry_completes(self):
        self.r.control(fail_after_requests=0)  # every webhook request: 503
        doc = self.forget("--email", "person7@example.com", expect=4)
        self.assertEqual(doc["status"], "pending")
        self.assertEqual(self.sync_result(doc, "users_to_hook")["status"], "pending")
        self.assertEqual(self.sync_result(doc, "orders_to_file")["status"], "deleted")
        self.assertTrue(self.hook_has(7))
        self.assertEqual(self.file_has_orders_of(7), [])
        audit = self.audit()
        self.assertEqual(audit["pending"], {"requests": 1, "syncs": 1})
        self.assertEqual(audit["entries"][0]["event"], "pending")
        # what is pending is sealed: still no plaintext at rest
        self.assertEqual(scan_state(self.p, needles(7)), [])
        # a retry while it is still down stays pending
        rc, again, err = self.p.run_json("forget", "--retry")
        self.assertEqual(rc, 4, err)
        self.assertEqual(again["requests"][0]["status"], "pending")

        self.r.control(fail_after_requests=None)
        rc, again, err = self.p.run_json("forget", "--retry")
        self.assertEqual(rc, 0, err)
        self.assertEqual(len(again["requests"]), 1)
        res = again["requests"][0]
        self.assertEqual((res["request"], res["status"]), (doc["request"], "complete"))
        self.assertEqual([(s["sync"], s["status"]) for s in res["syncs"]], [("users_to_hook", "deleted")])
        self.assertFalse(self.hook_has(7))
        audit = self.audit()
        self.assertEqual(audit["pending"], {"requests": 0, "syncs": 0})
        retried = [e for e in audit["entries"] if e["event"] == "sync" and e["retry"]]
        self.assertEqual([e["status"] for e in retried], ["deleted", "pending"])
        self.assertFalse(os.path.exists(os.path.join(self.p.dir, ".backflow", "erasure_pending.bin")))
        rc, again, err = self.p.run_json("forget", "--retry")
        self.assertEqual((rc, again["requests"]), (0, []))
        rc, runs, err = self.p.run_json("run", "--all")
        self.assertEqual(rc, 0, err)
        self.assertFalse(self.hook_has(7))
        self.assertEqual(scan_state(self.p, needles(7)), [])

    def test_a_mirror_run_sends_a_pending_delete_itself(self):
        self.r.control(fail_after_requests=0)
        self.forget("--email", "person8@example.com", expect=4)
        self.r.control(fail_after_requests=None)
        self.assertTrue(self.hook_has(8))
        # the person's row is skipped, so for a mirror sync their key left the model
        run = self.run_sync(self.p, "users_to_hook")
        self.assertCounts(run, removed=1, skipped=1, added=0)
        self.assertFalse(self.hook_has(8))
        rc, again, err = self.p.run_json("forget", "--retry")  # resends; deletes are idempotent
        self.assertEqual((rc, again["requests"][0]["status"]), (0, "complete"), err)
        self.assertFalse(self.hook_has(8))

    def test_a_crash_during_the_erasure_is_finished_by_retry(self):
        for n, (i, point) in enumerate(((10, "forget-before-push"), (11, "forget-after-push")), 1):
            p = self.p.run("forget", "--email", f"person{i}@example.com",
                           env={"BACKFLOW_CRASH_AT": f"{point}:1"})
            self.assertEqual(p.returncode, -9, (point, p.stderr))
            self.assertEqual(scan_state(self.p, needles(i)), [])  # what is pending is sealed
            rc, runs, err = self.p.run_json("run", "orders_to_file")
            self.assertEqual(rc, 0, err)
            # the person is held back already (with the one erased before)
            self.assertEqual(runs["runs"][0]["skipped"], 2 * n)
            rc, again, err = self.p.run_json("forget", "--retry")
            self.assertEqual(rc, 0, err)
            self.assertEqual(again["requests"][0]["status"], "complete", again)
            self.assertFalse(self.hook_has(i))
            self.assertEqual(self.file_has_orders_of(i), [])
        self.assertEqual(self.audit()["pending"], {"requests": 0, "syncs": 0})

    def test_refused_delete_is_exit_1_and_stays_pending(self):
        self.r.control(reject_keys=[4])
        doc = self.forget("--email", "person4@example.com", expect=1)
        self.assertEqual(doc["status"], "pending")
        users = self.sync_result(doc, "users_to_hook")
        self.assertEqual(users["status"], "pending")
        self.assertIn("refused the delete", users["reason"])
        self.assertEqual(self.sync_result(doc, "orders_to_file")["status"], "deleted")
        self.assertTrue(self.hook_has(4))
        self.r.control(clear_faults=True)
        rc, again, err = self.p.run_json("forget", "--retry")
        self.assertEqual(rc, 0, err)
        self.assertEqual(again["requests"][0]["status"], "complete")
        self.assertFalse(self.hook_has(4))

    def test_a_running_sync_holds_the_erasure_back_until_retry(self):
        import fcntl
        lock_path = os.path.join(self.p.dir, ".backflow", "syncs", "users_to_hook", "lock")
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # as a run of that sync would
            doc = self.forget("--email", "person6@example.com", "--wait", "0.3", expect=4)
            users = self.sync_result(doc, "users_to_hook")
            self.assertEqual(users["status"], "pending")
            self.assertIn("held its lock", users["reason"])
            self.assertEqual(self.sync_result(doc, "orders_to_file")["status"], "deleted")
            self.assertTrue(self.hook_has(6))
        rc, again, err = self.p.run_json("forget", "--retry")
        self.assertEqual(rc, 0, err)
        self.assertFalse(self.hook_has(6))

    def test_person_gone_from_the_warehouse(self):
        """The row left the warehouse before the request: the mirror sync still
        names the record by its sealed identifier (vault); by email, a sync can
        only be reached if it matches by the email (docs/privacy.md, limits)."""
        self.p.sql("DELETE FROM users WHERE id = 9")
        doc = self.forget("--key", "users=9")
        users = self.sync_result(doc, "users_to_hook")
        self.assertEqual((users["status"], users["deleted"]), ("deleted", 1), users)
        self.assertFalse(self.hook_has(9))
        # no row, so no email: the orders of person 9 cannot be found by this key
        self.assertEqual(self.sync_result(doc, "orders_to_file")["status"], "not_found")
        self.assertEqual(len(self.file_has_orders_of(9)), 2)


class TestPii(ForgetCase):
    def test_pii_json_matches_the_config(self):
        rc, doc, err = self.p.run_json("pii")
        self.assertEqual(rc, 0, err)
        syncs = {s["sync"]: s for s in doc["syncs"]}
        self.assertEqual(set(syncs), {"users_to_hook", "orders_to_file"})
        u, o = syncs["users_to_hook"], syncs["orders_to_file"]
        self.assertEqual((u["model"], u["destination"], u["destination_type"], u["mode"]),
                         ("users", "hook", "webhook", "mirror"))
        self.assertEqual((o["model"], o["destination"], o["destination_type"], o["mode"]),
                         ("orders", "out", "file", "upsert"))
        self.assertEqual(u["records"], N_USERS)
        self.assertEqual(o["records"], 2 * N_USERS)
        self.assertEqual(u["vault"], {"entries": N_USERS})  # mirror to a webhook keeps identifiers
        # an upsert sync whose model declares an email keeps them too, for erasures,
        # with its identifier index: one pair per record (one email each)
        self.assertEqual(o["vault"], {"entries": 2 * N_USERS})
        self.assertEqual(o["identifier_index"], {"pairs": 2 * N_USERS, "complete": True})
        self.assertEqual(u["identifier_index"], {"pairs": N_USERS, "complete": True})
        cols = {c["column"]: c for c in u["pii"]}
        self.assertEqual(cols["email"]["kind"], "email")
        self.assertEqual(cols["email"]["sent"], "clear")
        self.assertEqual(cols["email"]["destination_fields"],
                         [{"field": "email", "role": "field", "policy": "allow"}])
        self.assertEqual(cols["first_name"]["sent"], "hashed")
        self.assertEqual(cols["first_name"]["destination_fields"],
                         [{"field": "first_name", "role": "field", "policy": "hash"}])
        self.assertEqual(cols["note"], {"column": "note", "kind": "other", "sent": "not_mapped",
                                        "destination_fields": []})
        ocols = {c["column"]: c for c in o["pii"]}
        self.assertEqual(ocols["customer_email"]["destination_fields"],
                         [{"field": "email", "role": "field", "policy": "allow"}])
        self.assertEqual(doc["suppression"], {"entries": 0, "requests": 0})

        # a dropped column, and the counts after an erasure
        self.p.write_config(make_config(self.r.url, users_policy="{first_name: drop}"))
        self.forget("--email", "person2@example.com")
        rc, doc, err = self.p.run_json("pii")
        self.assertEqual(rc, 0, err)
        u = next(s for s in doc["syncs"] if s["sync"] == "users_to_hook")
        cols = {c["column"]: c for c in u["pii"]}
        self.assertEqual(cols["first_name"]["sent"], "dropped")
        self.assertEqual(cols["first_name"]["destination_fields"],
                         [{"field": "first_name", "role": "field", "policy": "drop"}])
        self.assertEqual(u["records"], N_USERS - 1)
        self.assertEqual(u["vault"], {"entries": N_USERS - 1})
        self.assertEqual(doc["suppression"]["requests"], 1)
        # the email plus the primary keys found (1 user, 2 orders)
        self.assertEqual(doc["suppression"]["entries"], 4)
        self.assertEqual(doc["pending_erasures"], {"requests": 0, "syncs": 0})

    def test_every_sync_is_reached_by_email_after_the_row_left(self):
        """Without the row, a sync that matches by the email is reached by the
        email itself (under pii_policy: hash, the delete names the hash of the
        normalised email); the others by their identifier index (issue 13)."""
        text = make_config(self.r.url) + """  emails_to_file:
    model: users
    destination: out2
    match: {email: email}
    fields: {plan: plan}
    pii_policy: {email: hash}
"""
        text = text.replace("destinations:\n", "destinations:\n  out2: {type: file, path: out/emails.jsonl}\n")
        self.p.write_config(text)
        rc, doc, err = self.p.run_json("run", "emails_to_file")
        self.assertEqual(rc, 0, err)
        emails = os.path.join(self.p.dir, "out", "emails.jsonl")
        hashed = hashlib.sha256(b"person3@example.com").hexdigest()
        self.assertIn(canonical_key({"email": hashed}), fold_events(read_events(emails)))
        with open(emails) as f:
            self.assertNotIn("person3@example.com", f.read())
        self.p.sql("DELETE FROM users WHERE id = 3")
        self.p.sql("DELETE FROM orders WHERE customer_email LIKE '%erson3@%'")
        doc = self.forget("--email", "person3@example.com", expect=0)
        by_email = self.sync_result(doc, "emails_to_file")
        self.assertEqual((by_email["status"], by_email["deleted"]), ("deleted", 1), by_email)
        self.assertNotIn(canonical_key({"email": hashed}), fold_events(read_events(emails)))
        # the others match by ids: their identifier index names the records
        users = self.sync_result(doc, "users_to_hook")
        self.assertEqual((users["status"], users["deleted"]), ("deleted", 1), users)
        self.assertFalse(self.hook_has(3))
        orders = self.sync_result(doc, "orders_to_file")
        self.assertEqual((orders["status"], orders["deleted"]), ("deleted", 2), orders)
        self.assertEqual(self.file_has_orders_of(3), [])
        rc, pii, err = self.p.run_json("pii")
        self.assertEqual(rc, 0, err)
        e = next(s for s in pii["syncs"] if s["sync"] == "emails_to_file")
        col = next(c for c in e["pii"] if c["column"] == "email")
        self.assertEqual(col["sent"], "hashed")
        self.assertEqual(col["destination_fields"], [{"field": "email", "role": "match", "policy": "hash"}])

    def test_pii_before_any_run(self):
        p = Project(make_config("http://127.0.0.1:9/in"))
        self.addCleanup(p.cleanup)
        users_table(p, 1)
        p.sql("CREATE TABLE orders (order_id INTEGER, customer_email TEXT, amount REAL)")
        rc, doc, err = p.run_json("pii")
        self.assertEqual(rc, 0, err)
        self.assertEqual([s["records"] for s in doc["syncs"]], [None, None])
        self.assertFalse(os.path.exists(os.path.join(p.dir, ".backflow")))
        human = p.run("pii")
        self.assertEqual(human.returncode, 0)
        self.assertIn("never ran", human.stdout)


if __name__ == "__main__":
    import unittest
    unittest.main()
