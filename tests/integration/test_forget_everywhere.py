"""Erasure of people who already left the warehouse (issue 13): one person is
synced by upsert syncs to a webhook (strict receiver), a JSON Lines file, a real
Redis, a real PostgreSQL and the strict HubSpot contract server; the row is
deleted from the warehouse; `forget --email` typed with other case and padding
(Unicode spaces included) then deletes them at every destination, through each
sync's identifier index (docs/privacy.md), audits it with no plaintext, and no
later run sends them again. The same through POST /api/erasures; a dead
destination leaves the request pending until `forget --retry`; a sync synced
before the index existed is indexed by its next run (the upgrade)."""
import json
import os
import time

from test_saas_crm_support import HS_SCHEMA, HS_TOKEN, hubspot_state  # puts contract/ on the path
from contract_base import ContractServer  # noqa: E402
from pgredis import shared_pg, shared_redis
from test_core_support import (WEBHOOK_SECRET, CoreCase, canonical_key, closed_port, fold_events,
                               read_events)
from test_serve_support import TOKEN, Server, wait_for

N = 20
GONE = 7  # the person who leaves the warehouse
TYPED = "\u00a0 PERSON7@Example.COM\u3000"  # how the erasure request types the address


def make_config(hook_url, redis_url, pg_dsn, hubspot_base):
    return f"""version: 1
server: {{listen: "127.0.0.1:8420", token: "{TOKEN}"}}
warehouses:
  local: {{type: sqlite, path: warehouse.db}}
models:
  users:
    warehouse: local
    sql: SELECT id, email, first_name, plan FROM users
    primary_key: id
    pii: {{email: email, first_name: name}}
destinations:
  hook:
    type: webhook
    url: "{hook_url}"
    signing_secret: "{WEBHOOK_SECRET}"
    timeout: 5s
    max_retries: 1
    retry_base: 10ms
    retry_max_wait: 1s
  out: {{type: file, path: out/users.jsonl, fsync: false}}
  cache: {{type: redis, url: "{redis_url}", prefix: "user:"}}
  db: {{type: postgres, dsn: "{pg_dsn}", table: crm_users, create_table: true}}
  crm:
    type: hubspot
    token: "{HS_TOKEN}"
    base_url: "{hubspot_base}"
    rate_limit: {{requests_per_second: 0}}
    max_retries: 1
    retry_base: 20ms
    retry_max_wait: 1s
    timeout: 5s
syncs:
  to_hook:
    model: users
    destination: hook
    match: {{user_id: id}}
    fields: {{email: email, plan: plan}}
  to_file:
    model: users
    destination: out
    match: {{user_id: id}}
    fields: {{email: email, plan: plan}}
  to_redis:
    model: users
    destination: cache
    match: {{user_id: id}}
    fields: {{email: email, plan: plan}}
  to_pg:
    model: users
    destination: db
    match: {{user_id: id}}
    fields: {{email: email, plan: plan}}
  to_hubspot:
    model: users
    destination: crm
    object: contacts
    match: {{email: email}}
    fields: {{firstname: first_name, plan: plan}}
"""


SYNCS = ["to_hook", "to_file", "to_redis", "to_pg", "to_hubspot"]


class ForgetEverywhere(CoreCase):
    def setUp(self):
        self.hook = self.new_receiver()
        self.redis = shared_redis()
        self.redis_db = 7
        self.redis.cli("FLUSHDB", db=self.redis_db)
        self.pg = shared_pg()
        self.dest_db = self.pg.create_db("forget")
        self.hs = ContractServer.start("hubspot_server.py", config={"token": HS_TOKEN,
                                                                    "schema": HS_SCHEMA})
        self.addCleanup(self.hs.stop)
        self.p = self.new_project()
        self.p.sql("CREATE TABLE users (id INTEGER, email TEXT, first_name TEXT, plan TEXT)")
        for i in range(1, N + 1):
            self.p.sql("INSERT INTO users VALUES (?,?,?,?)",
                       (i, f"person{i}@example.com", f"First{i}", "free"))
        self.write_config()
        rc, doc, err = self.p.run_json("run", "--all")
        self.assertEqual(rc, 0, err)
        self.assertTrue(all(self.holds(s, GONE) for s in SYNCS))

    def write_config(self, hook_url=None):
        self.p.write_config(make_config(hook_url or self.hook.url, self.redis.url(self.redis_db),
                                        self.pg.dsn(self.dest_db), self.hs.base))

    def holds(self, sync, i):
        """Whether sync's destination holds person i, read from the destination."""
        if sync == "to_hook":
            return canonical_key({"user_id": i}) in self.hook.store()
        if sync == "to_file":
            path = os.path.join(self.p.dir, "out", "users.jsonl")
            return canonical_key({"user_id": i}) in fold_events(read_events(path))
        if sync == "to_redis":
            return f"user:{i}" in self.redis.keys("user:*", db=self.redis_db)
        if sync == "to_pg":
            rows = self.pg.psql(f"SELECT count(*) FROM crm_users WHERE user_id = {int(i)}",
                                db=self.dest_db)
            return int(rows[0][0]) == 1
        if sync == "to_hubspot":
            return f"person{i}@example.com" in hubspot_state(self.hs)
        raise AssertionError(sync)

    def leave_warehouse(self, i):
        self.p.sql("DELETE FROM users WHERE id = ?", (i,))

    def assert_gone_everywhere(self, doc, i):
        by_sync = {s["sync"]: s for s in doc["syncs"]}
        for sync in SYNCS:
            self.assertEqual((by_sync[sync]["status"], by_sync[sync]["deleted"]), ("deleted", 1),
                             (sync, by_sync[sync]))
            self.assertFalse(self.holds(sync, i), sync)
        for sync in SYNCS:  # nobody else was touched
            self.assertTrue(self.holds(sync, 1), sync)

    def assert_never_resent(self, i):
        self.p.sql("INSERT INTO users VALUES (?,?,?,?)",
                   (i, f"person{i}@example.com", f"First{i}", "pro"))
        rc, doc, err = self.p.run_json("run", "--all")
        self.assertEqual(rc, 0, err)
        for run in doc["runs"]:
            self.assertEqual(run["skipped"], 1, run)
        for sync in SYNCS:
            self.assertFalse(self.holds(sync, i), sync)

    def assert_audit_has_no_plaintext(self):
        with open(os.path.join(self.p.dir, ".backflow", "audit.jsonl"), "rb") as f:
            text = f.read().lower()
        self.assertNotIn(b"person7", text)
        self.assertIn(b'"event":"complete"', text)
        for path in self.p.state_files():
            with open(path, "rb") as f:
                self.assertNotIn(b"person7@example.com", f.read().lower(), path)

    def test_forget_by_email_after_the_row_left(self):
        self.leave_warehouse(GONE)
        rc, doc, err = self.p.run_json("forget", "--email", TYPED)
        self.assertEqual(rc, 0, (err, doc))
        self.assertEqual(doc["status"], "complete")
        self.assert_gone_everywhere(doc, GONE)
        self.assert_audit_has_no_plaintext()
        rc, audit, err = self.p.run_json("audit", "--email", "person7@example.com")
        self.assertEqual(rc, 0, err)
        events = [e for e in audit["entries"] if e.get("event") == "sync"]
        self.assertEqual(sorted(e["sync"] for e in events), sorted(SYNCS))
        self.assert_never_resent(GONE)

    def test_forget_through_the_api(self):
        self.leave_warehouse(GONE)
        server = Server(self.p)
        self.addCleanup(server.stop)
        status, _, body = server.request("POST", "/api/erasures", body={"email": TYPED})
        self.assertEqual(status, 202, body)
        rid = json.loads(body)["id"]
        self.assertIsInstance(rid, int)
        done = wait_for(lambda: (lambda d: d if d["status"] == "complete" else None)(
            server.get_json(f"/api/erasures/{rid}")), timeout=30, what="erasure complete")
        self.assert_gone_everywhere(done, GONE)
        pii = server.get_json("/api/pii")
        self.assertEqual(pii["suppression"]["requests"], 1)
        self.assertEqual(pii["pending_erasures"], {"requests": 0, "syncs": 0})
        self.assertEqual({s["sync"]: s["identifier_index"]["pairs"] for s in pii["syncs"]},
                         {s: N for s in SYNCS})  # pairs stay; the records they name are gone
        self.assertNotIn(b"person7", json.dumps(pii).encode())
        # bad input: clear 4xx, nothing recorded
        for bad in ({}, {"email": ""}, {"email": "x", "phone": "y"}, {"name": "x"},
                    {"key": {"model": "nope", "value": 1}}, {"email": "not an email"}):
            status, _, body = server.request("POST", "/api/erasures", body=bad)
            self.assertEqual(status, 400, (bad, body))
            self.assertIn("error", json.loads(body))
        status, _, _ = server.request("POST", "/api/erasures", body=b"{not json")
        self.assertEqual(status, 400)
        status, _, _ = server.request("POST", "/api/erasures", token=None, body={"email": TYPED})
        self.assertEqual(status, 401)
        self.assertEqual(server.request("GET", "/api/erasures/999")[0], 404)
        self.assertEqual(server.request("GET", "/api/erasures/abc")[0], 400)
        self.assertEqual(server.stop(), 0)
        rc, audit, err = self.p.run_json("audit")
        self.assertEqual(rc, 0, err)
        self.assertEqual({e["request"] for e in audit["entries"]}, {rid})

    def test_a_dead_destination_completes_with_retry(self):
        self.leave_warehouse(GONE)
        self.write_config(hook_url=f"http://127.0.0.1:{closed_port()}/hook")
        rc, doc, err = self.p.run_json("forget", "--email", TYPED)
        self.assertEqual(rc, 4, (err, doc))
        by_sync = {s["sync"]: s for s in doc["syncs"]}
        self.assertEqual(by_sync["to_hook"]["status"], "pending")
        self.assertTrue(self.holds("to_hook", GONE))
        for sync in SYNCS[1:]:
            self.assertEqual(by_sync[sync]["status"], "deleted", by_sync[sync])
        self.write_config()
        rc, again, err = self.p.run_json("forget", "--retry")
        self.assertEqual(rc, 0, (err, again))
        self.assertFalse(self.holds("to_hook", GONE))

    def test_a_sync_that_ran_before_the_index_is_indexed_by_its_next_run(self):
        for sync in SYNCS:  # as a project synced by an older Backflow
            os.unlink(os.path.join(self.p.dir, ".backflow", "syncs", sync, "idindex.bin"))
        rc, pii, err = self.p.run_json("pii")
        self.assertEqual(rc, 0, err)
        self.assertTrue(all(s["identifier_index"] is None for s in pii["syncs"]), pii)
        self.leave_warehouse(GONE)
        rc, doc, err = self.p.run_json("forget", "--email", TYPED)
        self.assertEqual(rc, 0, err)
        by_sync = {s["sync"]: s for s in doc["syncs"]}
        self.assertEqual(by_sync["to_pg"]["status"], "not_found")
        self.assertIn("identifier index is not complete", by_sync["to_pg"]["reason"])
        self.assertTrue(self.holds("to_pg", GONE))  # honest: reported, not hidden
        # the next run (nothing changed) completes every index
        rc, doc, err = self.p.run_json("run", "--all")
        self.assertEqual(rc, 0, err)
        rc, pii, err = self.p.run_json("pii")
        for s in pii["syncs"]:
            self.assertEqual(s["identifier_index"], {"pairs": N - 1, "complete": True}, s)
        # someone else leaves afterwards: found although never sent since the upgrade
        self.leave_warehouse(3)
        rc, doc, err = self.p.run_json("forget", "--email", "Person3@example.com ")
        self.assertEqual(rc, 0, (err, doc))
        self.assert_gone_everywhere(doc, 3)

    def test_index_size_and_damage(self):
        path = os.path.join(self.p.dir, ".backflow", "syncs", "to_pg", "idindex.bin")
        self.assertEqual(os.path.getsize(path), 32 + 40 * N)  # header + one pair per record
        r = self.p.run("doctor")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(path, "r+b") as f:  # one bit of record 3 flips
            f.seek(32 + 40 * 2 + 5)
            b = f.read(1)
            f.seek(32 + 40 * 2 + 5)
            f.write(bytes([b[0] ^ 1]))
        r = self.p.run("doctor")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("idindex.bin", r.stdout + r.stderr)
        self.assertIn("damaged", r.stdout + r.stderr)
        # a run with something to send refuses to add to a damaged index rather
        # than losing what it says
        self.p.sql("UPDATE users SET plan = 'pro' WHERE id = 2")
        rc, doc, err = self.p.run_json("run", "to_pg")
        self.assertNotEqual(rc, 0)
        self.assertIn("idindex.bin", err)

    def test_forget_from_a_file_and_lift(self):
        for i in (4, 5):
            self.leave_warehouse(i)
        listing = os.path.join(self.p.dir, "erase.txt")
        with open(listing, "w") as f:
            f.write("# erasure requests of the week\n Person4@example.com\n\nnot-a-phone-or-mail\n"
                    "PERSON5@EXAMPLE.COM\n")
        rc, doc, err = self.p.run_json("forget", "--from", listing)
        self.assertEqual(rc, 1, (err, doc))  # one line refused, the others done
        self.assertIn("erase.txt:4:", err)
        self.assertNotIn("not-a-phone-or-mail", err)  # the value is not echoed
        self.assertEqual([r["status"] for r in doc["requests"]], ["complete", "complete"])
        for i in (4, 5):
            for sync in SYNCS:
                self.assertFalse(self.holds(sync, i), (sync, i))
        # person 5 asks to be contacted again: lifting request 2 lets runs send them
        first, second = (r["request"] for r in doc["requests"])
        self.p.sql("INSERT INTO users VALUES (5, 'person5@example.com', 'First5', 'pro')")
        rc, lifted, err = self.p.run_json("forget", "--lift", str(second))
        self.assertEqual(rc, 0, err)
        self.assertGreaterEqual(lifted["lifted"], 2)  # the email and the key found
        rc, runs, err = self.p.run_json("run", "--all")
        self.assertEqual(rc, 0, err)
        for sync in SYNCS:
            self.assertTrue(self.holds(sync, 5), sync)
        rc, audit, err = self.p.run_json("audit", "--request", str(second))
        self.assertEqual(rc, 0, err)
        self.assertIn("lift", [e["event"] for e in audit["entries"]])
        # request 1 still holds; a request that does not exist cannot be lifted
        r = self.p.run("forget", "--lift", "99")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("no erasure request 99", r.stderr)
        self.assertEqual(self.p.run("forget", "--lift", "x").returncode, 2)
        self.p.sql("INSERT INTO users VALUES (4, 'person4@example.com', 'First4', 'pro')")
        rc, runs, err = self.p.run_json("run", "to_file")
        self.assertEqual(runs["runs"][0]["skipped"], 1)
        self.assertFalse(self.holds("to_file", 4))
        self.assertEqual(first + 1, second)

    def test_a_batch_killed_midway_is_finished_by_retry(self):
        """--from writes once per group: a SIGKILL after some deletes were
        acknowledged leaves every request of the file recorded, the people held
        back from runs, and `forget --retry` finishes them all."""
        people = list(range(2, 14))
        for i in people:
            self.leave_warehouse(i)
        listing = os.path.join(self.p.dir, "erase.txt")
        with open(listing, "w") as f:
            f.writelines(f"person{i}@example.com\n" for i in people)
        # the 20th acknowledged delete batch: 4 people into the file's 12
        r = self.p.run("forget", "--from", listing, env={"BACKFLOW_CRASH_AT": "forget-after-push:20"})
        self.assertEqual(r.returncode, -9, r.stderr)
        rc, audit, err = self.p.run_json("audit")
        self.assertEqual(rc, 0, err)  # the audit log is whole
        self.assertEqual(audit["pending"]["requests"], len(people))
        for i in people:
            self.p.sql("INSERT INTO users VALUES (?,?,?,?)",
                       (i, f"person{i}@example.com", f"First{i}", "pro"))
        rc, runs, err = self.p.run_json("run", "to_file")
        self.assertEqual(rc, 0, err)
        self.assertEqual(runs["runs"][0]["skipped"], len(people))  # held back already
        rc, again, err = self.p.run_json("forget", "--retry")
        self.assertEqual(rc, 0, (err, again))
        self.assertEqual(sorted(r["status"] for r in again["requests"]), ["complete"] * len(people))
        for i in people:
            for sync in SYNCS:
                self.assertFalse(self.holds(sync, i), (sync, i))
        rc, audit, err = self.p.run_json("audit")
        self.assertEqual(audit["pending"]["requests"], 0)
