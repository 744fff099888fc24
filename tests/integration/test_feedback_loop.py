"""The closed feedback loop (issue 15): /hooks events and per-record outcomes
stored through one write path in SQLite and PostgreSQL (group commit, 200
only after commit, 503 while the warehouse is down and the sender's retry
stored once later), the vendors' own signatures over HTTP, and the shipped
examples/closed_loop project end to end under `backflow serve`: an
`unsubscribed` event removes the person from the destination. PostgreSQL
tests fail, never skip, when PostgreSQL cannot be started."""
import base64
import hashlib
import hmac
import json
import os
import shutil
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgredis  # noqa: E402
from bfhelp import WEBHOOK_SECRET, Project  # noqa: E402
from live_support import wait_until  # noqa: E402
from test_serve_support import TOKEN, Server, sign  # noqa: E402
from webhook_receiver import Receiver  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(HERE, "..", "..", "examples", "closed_loop")
HUBSPOT_SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
KLAVIYO_SECRET = "klaviyo-secret-123456"


HOOKS = f"""  crm: {{scheme: hubspot, secret: "{HUBSPOT_SECRET}", url: "https://backflow.example.com/hooks/crm"}}
  kl: {{scheme: klaviyo, secret: "{KLAVIYO_SECRET}"}}
  braze: {{scheme: token, secret: "braze-shared-token", header: X-Braze-Token}}
"""


def config(warehouse, write_back=True, hooks=HOOKS):
    wb = "    write_back: {warehouse: wh}\n" if write_back else ""
    return f"""version: 1
server: {{listen: "127.0.0.1:8420", token: "{TOKEN}"}}
warehouses:
  wh: {warehouse}
models:
  users:
    warehouse: wh
    sql: SELECT id, email FROM users
    primary_key: id
    pii: {{email: email}}
destinations:
  hook: {{type: webhook, url: "http://127.0.0.1:9/in", signing_secret: "{WEBHOOK_SECRET}"}}
  out: {{type: file, path: out.jsonl}}
  crm: {{type: file, path: crm.jsonl}}
  kl: {{type: file, path: kl.jsonl}}
  braze: {{type: file, path: braze.jsonl}}
hooks:
{hooks}syncs:
  s:
    model: users
    destination: out
    match: {{user_id: id}}
    fields: {{email: email}}
{wb}"""


class StoreCases:
    """The same cases on SQLite and PostgreSQL (subclasses say how to query)."""

    def post(self, body, dest="hook", headers=None, **kw):
        raw = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
        h = sign(WEBHOOK_SECRET, raw, **kw) if headers is None else dict(headers)
        h["Content-Type"] = "application/json"
        status, _, data = self.s.request("POST", f"/hooks/{dest}", token=None, body=raw, headers=h)
        return status, json.loads(data)

    def test_stored_once_per_webhook_id_and_committed_before_200(self):
        body = [{"event": "opened", "user_id": 1}, {"event": "clicked", "user_id": 1}]
        first = self.post(body, msg_id="msg_once")
        # The 200 comes after the commit: the rows are there at once.
        self.assertEqual(first, (200, {"received": 2, "stored": 2, "duplicates": 0}))
        self.assertEqual(self.count("events"), 2)
        self.assertEqual(self.post(body, msg_id="msg_once"),
                         (200, {"received": 2, "stored": 0, "duplicates": 2}))
        self.assertEqual(self.count("events"), 2)
        rows = self.q("SELECT event, webhook_id, seq FROM {events} ORDER BY id")
        self.assertEqual([tuple(map(str, r)) for r in rows],
                         [("opened", "msg_once", "0"), ("clicked", "msg_once", "1")])

    def test_concurrent_deliveries_share_commits_and_stay_unique(self):
        import concurrent.futures
        bodies = [({"event": "opened", "user_id": i}, f"msg_c{i % 40}") for i in range(120)]
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            res = list(ex.map(lambda b: self.post(b[0], msg_id=b[1]), bodies))
        self.assertTrue(all(st == 200 for st, _ in res), res)
        self.assertEqual(sum(d["stored"] for _, d in res), 40)
        self.assertEqual(self.count("events"), 40)

    def test_bad_signature_and_stale_timestamp_store_nothing(self):
        ev = {"event": "opened", "user_id": 1}
        raw = json.dumps(ev).encode()
        good = sign(WEBHOOK_SECRET, raw)
        self.assertEqual(self.post(raw, headers={**good, "webhook-signature": "v1,AAAA"})[0], 401)
        self.assertEqual(self.post(ev, timestamp=int(time.time()) - 301)[0], 401)
        self.assertEqual(self.post(ev, timestamp=int(time.time()) + 301)[0], 401)
        self.assertEqual(self.post(raw.replace(b"opened", b"bounced"), headers=good)[0], 401)
        self.assertEqual(self.count("events"), 0)

    def test_vendor_schemes(self):
        # HubSpot v3: method + the URL HubSpot was given + body + timestamp (ms).
        hs = json.dumps([{"eventId": 7, "subscriptionType": "contact.propertyChange",
                          "objectId": 123, "attemptNumber": 0}]).encode()
        ts = str(int(time.time() * 1000))
        mac = hmac.new(HUBSPOT_SECRET.encode(),
                       b"POST" + b"https://backflow.example.com/hooks/crm" + hs + ts.encode(),
                       hashlib.sha256).digest()
        h = {"X-HubSpot-Signature-v3": base64.b64encode(mac).decode(),
             "X-HubSpot-Request-Timestamp": ts}
        self.assertEqual(self.post(hs, dest="crm", headers=h)[0], 200)
        # A retry (attemptNumber changes, so does the signature) is stored once.
        hs2 = hs.replace(b'"attemptNumber": 0', b'"attemptNumber": 1')
        mac2 = hmac.new(HUBSPOT_SECRET.encode(),
                        b"POST" + b"https://backflow.example.com/hooks/crm" + hs2 + ts.encode(),
                        hashlib.sha256).digest()
        st, doc = self.post(hs2, dest="crm", headers={**h, "X-HubSpot-Signature-v3":
                                                      base64.b64encode(mac2).decode()})
        self.assertEqual((st, doc["stored"]), (200, 0))
        old = str(int(time.time() * 1000) - 6 * 60 * 1000)
        mac_old = hmac.new(HUBSPOT_SECRET.encode(),
                           b"POST" + b"https://backflow.example.com/hooks/crm" + hs + old.encode(),
                           hashlib.sha256).digest()
        self.assertEqual(self.post(hs, dest="crm", headers={
            "X-HubSpot-Signature-v3": base64.b64encode(mac_old).decode(),
            "X-HubSpot-Request-Timestamp": old})[0], 401)
        # Klaviyo: hex HMAC-SHA256 over body + timestamp.
        kl = json.dumps({"data": [{"topic": "event:klaviyo.unsubscribed_from_email_marketing",
                                   "external_id": "k1", "user_id": "9"}]}).encode()
        kts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        ksig = hmac.new(KLAVIYO_SECRET.encode(), kl + kts.encode(), hashlib.sha256).hexdigest()
        self.assertEqual(self.post(kl, dest="kl", headers={"Klaviyo-Signature": ksig,
                                                           "Klaviyo-Timestamp": kts})[0], 200)
        self.assertEqual(self.post(kl, dest="kl", headers={"Klaviyo-Signature": "00" * 32,
                                                           "Klaviyo-Timestamp": kts})[0], 401)
        # Braze: a shared token in a header the campaign sets.
        br = json.dumps({"event": "unsubscribed", "external_id": "ext-1"}).encode()
        self.assertEqual(self.post(br, dest="braze", headers={"X-Braze-Token": "nope"})[0], 401)
        self.assertEqual(self.post(br, dest="braze",
                                   headers={"X-Braze-Token": "braze-shared-token"})[0], 200)
        rows = self.q("SELECT destination, event FROM {events} ORDER BY id")
        self.assertEqual([tuple(r) for r in rows],
                         [("crm", "contact.propertyChange"),
                          ("kl", "event:klaviyo.unsubscribed_from_email_marketing"),
                          ("braze", "unsubscribed")])

    def test_outcomes_after_a_run_with_rejections(self):
        r = self.project.run("run", "s", env=self.env)
        self.assertEqual(r.returncode, 1, r.stderr)  # the NULL key is rejected
        rows = self.q("SELECT sync, run_id, key_hash, key, outcome, reason FROM {outcomes}"
                      " ORDER BY outcome, key")
        added = [r for r in rows if r[4] == "added"]
        rejected = [r for r in rows if r[4] == "rejected"]
        self.assertEqual(len(added), 5)
        self.assertEqual(sorted(str(r[3]) for r in added), ["1", "2", "3", "4", "5"])
        self.assertTrue(all(len(r[2]) == 32 for r in added))
        self.assertEqual(len(rejected), 1)
        self.assertIn("NULL", rejected[0][5])
        runs = json.loads(self.project.run("runs", "s", "--json", env=self.env).stdout)["runs"]
        self.assertEqual({int(r[1]) for r in rows}, {runs[0]["id"]})
        # The key hash is the one `backflow errors` and the events use.
        status, doc = self.post({"event": "bounced", "user_id": 3})
        self.assertEqual(status, 200, doc)
        joined = self.q("SELECT o.key FROM {outcomes} o JOIN {events} e"
                        " ON e.person_hash = o.key_hash WHERE e.event = 'bounced'")
        self.assertEqual([str(r[0]) for r in joined], ["3"])


class SqliteStore(StoreCases, unittest.TestCase):
    def setUp(self):
        self.project = Project(config("{type: sqlite, path: warehouse.db}"))
        self.project.sql("CREATE TABLE users (id INTEGER, email TEXT);"
                         "INSERT INTO users VALUES (1,'a@x.io'),(2,'b@x.io'),(3,'c@x.io'),"
                         "(4,'d@x.io'),(5,'e@x.io'),(NULL,'n@x.io');")
        self.env = {}
        self.s = Server(self.project)

    def tearDown(self):
        self.assertEqual(self.s.stop(), 0, self.s.log())
        self.project.cleanup()

    def q(self, sql):
        return self.project.query(sql.format(events="backflow_events",
                                             outcomes="backflow_outcomes"))

    def count(self, table):
        return self.q("SELECT count(*) FROM {%s}" % table)[0][0]

    def test_locked_warehouse_is_503_and_the_retry_is_stored_once(self):
        import sqlite3
        con = sqlite3.connect(self.project.db_path, timeout=0)
        con.execute("BEGIN EXCLUSIVE")
        body = {"event": "opened", "user_id": 1}
        t0 = time.monotonic()
        st, _ = self.post(body, msg_id="msg_locked")
        self.assertEqual(st, 503)
        self.assertLess(time.monotonic() - t0, 8)
        con.rollback()
        con.close()
        self.assertEqual(self.post(body, msg_id="msg_locked")[1]["stored"], 1)
        self.assertEqual(self.post(body, msg_id="msg_locked")[1]["stored"], 0)


class PgStore(StoreCases, unittest.TestCase):
    """A PostgreSQL of its own: one test stops it."""

    @classmethod
    def setUpClass(cls):
        cls.pg = pgredis.PgServer()
        cls.pg.start()

    @classmethod
    def tearDownClass(cls):
        cls.pg.destroy()

    def setUp(self):
        self.db = self.pg.create_db("loop")
        self.pg.psql("CREATE TABLE users (id int, email text);"
                     "INSERT INTO users VALUES (1,'a@x.io'),(2,'b@x.io'),(3,'c@x.io'),"
                     "(4,'d@x.io'),(5,'e@x.io'),(NULL,'n@x.io')", db=self.db)
        self.env = {"PG_DSN": self.pg.dsn(self.db)}
        self.project = Project(config('{type: postgres, dsn: "${PG_DSN}"}'))
        self.s = Server(self.project, env=self.env)

    def tearDown(self):
        if self.s.proc.poll() is None:
            self.assertEqual(self.s.stop(), 0, self.s.log())
        self.project.cleanup()

    def q(self, sql):
        return self.pg.psql(sql.format(events="backflow.events", outcomes="backflow.outcomes"),
                            db=self.db)

    def count(self, table):
        return int(self.q("SELECT count(*) FROM {%s}" % table)[0][0])

    def test_warehouse_down_is_503_and_the_retry_is_stored_once(self):
        body = {"event": "unsubscribed", "user_id": 2}
        self.assertEqual(self.post(body, msg_id="msg_before")[0], 200)
        self.pg.stop()
        try:
            st, doc = self.post(body, msg_id="msg_down")
            self.assertEqual(st, 503, doc)
        finally:
            self.pg.start()
        self.assertIn("cannot store events", self.s.log())
        # The sender retries: stored once, then recognised as a duplicate.
        self.assertEqual(self.post(body, msg_id="msg_down")[1]["stored"], 1)
        self.assertEqual(self.post(body, msg_id="msg_down")[1]["stored"], 0)
        self.assertEqual(self.count("events"), 2)


class HooksConfig(unittest.TestCase):
    def test_bad_hooks_entries_stop_serve_with_the_place(self):
        cases = {
            "crm: {scheme: hubspot, secret: x}": "HubSpot signs the URL",
            "crm: {scheme: hubspto, secret: x}": "one of standard, hubspot, klaviyo, token",
            "nope: {scheme: token, secret: x}": "no destination named 'nope'",
            "crm: {scheme: token, secret: x, sekret: y}": "sekret",
        }
        for entry, message in cases.items():
            p = Project(config("{type: sqlite, path: warehouse.db}", hooks=f"  {entry}\n"))
            try:
                p.sql("CREATE TABLE users (id INTEGER, email TEXT)")
                r = p.run("serve", "--listen", "127.0.0.1:0", timeout=20)
                self.assertEqual(r.returncode, 2, (entry, r.stderr))
                self.assertIn(message, r.stderr, entry)
                self.assertIn("backflow.yml:", r.stderr, entry)
            finally:
                p.cleanup()


class ClosedLoopExample(unittest.TestCase):
    """examples/closed_loop as shipped: serve, a live sync to the receiver,
    the receiver's `unsubscribed` event, the person gone from it."""

    def setUp(self):
        self.r = Receiver.start(WEBHOOK_SECRET)
        self.p = Project()
        shutil.copy(os.path.join(EXAMPLE, "backflow.yml"), self.p.dir)
        with open(os.path.join(EXAMPLE, "seed.sql")) as f:
            self.p.sql(f.read())
        self.env = {"BACKFLOW_TOKEN": TOKEN, "CRM_URL": self.r.url,
                    "CRM_SIGNING_SECRET": WEBHOOK_SECRET}
        r = self.p.run("live", "setup", "audience_to_crm", env=self.env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.s = Server(self.p, env=self.env)

    def tearDown(self):
        code = self.s.stop()
        self.r.stop()
        self.p.cleanup()
        self.assertEqual(code, 0)

    def test_unsubscribed_person_leaves_the_destination_within_two_seconds(self):
        wait_until(lambda: len(self.r.store()) == 5, 20, "the first full run")
        latencies = []
        for uid in (5, 3, 1):
            body = json.dumps({"event": "unsubscribed", "user_id": uid}).encode()
            h = sign(WEBHOOK_SECRET, body, msg_id="msg_" + uuid.uuid4().hex)
            h["Content-Type"] = "application/json"
            t0 = time.monotonic()
            st, _, data = self.s.request("POST", "/hooks/crm", token=None, body=body, headers=h)
            self.assertEqual(st, 200, data)
            wait_until(lambda: self.r.get({"user_id": uid}) is None, 5, f"user {uid} removed")
            latencies.append(time.monotonic() - t0)
        self.assertLess(max(latencies), 2.0, latencies)
        self.assertEqual(sorted(int(k) for k in (json.loads(k)["user_id"]
                                                 for k in self.r.store())), [2, 4])
        print(f"\n  closed loop event -> removed: {', '.join(f'{x * 1000:.0f} ms' for x in latencies)}",
              file=sys.stderr)
        # The model keeps them out on a full run too.
        outcomes = self.p.query("SELECT outcome, count(*) FROM backflow_outcomes"
                                " GROUP BY outcome ORDER BY outcome")
        self.assertEqual(dict(outcomes), {"added": 5, "removed": 3})


class ClosedLoopPostgres(unittest.TestCase):
    """The same loop on PostgreSQL: logical replication, backflow.events and
    backflow.outcomes, the model in PostgreSQL's dialect."""

    def setUp(self):
        self.pg = pgredis.shared_logical_pg()
        self.db = self.pg.create_db("loop")
        self.pg.psql("CREATE TABLE users (id bigint PRIMARY KEY, email text, plan text);"
                     "INSERT INTO users SELECT i, 'u' || i || '@example.com', 'pro'"
                     " FROM generate_series(1, 20) i", db=self.db)
        self.r = Receiver.start(WEBHOOK_SECRET)
        with open(os.path.join(EXAMPLE, "backflow.yml")) as f:
            text = f.read()
        text = (text.replace("local: {type: sqlite, path: warehouse.db}",
                             'local: {type: postgres, dsn: "${PG_DSN}"}')
                    .replace("FROM backflow_outcomes o", "FROM backflow.outcomes o")
                    .replace("JOIN backflow_events e", "JOIN backflow.events e")
                    .replace("live: {table: users, key: id}", "live: {table: public.users, key: id}"))
        self.p = Project(text)
        self.env = {"BACKFLOW_TOKEN": TOKEN, "CRM_URL": self.r.url,
                    "CRM_SIGNING_SECRET": WEBHOOK_SECRET, "PG_DSN": self.pg.dsn(self.db)}
        self.s = Server(self.p, env=self.env)

    def tearDown(self):
        code = self.s.stop() if self.s.proc.poll() is None else 0
        log = self.s.log()
        self.r.stop()
        self.p.cleanup()
        self.assertEqual(code, 0, log)

    def test_unsubscribed_person_leaves_the_destination(self):
        wait_until(lambda: len(self.r.store()) == 20, 30, "the first full run")
        for uid in (4, 17):
            body = json.dumps({"event": "unsubscribed", "user_id": uid}).encode()
            h = sign(WEBHOOK_SECRET, body)
            h["Content-Type"] = "application/json"
            t0 = time.monotonic()
            st, _, data = self.s.request("POST", "/hooks/crm", token=None, body=body, headers=h)
            self.assertEqual(st, 200, data)
            wait_until(lambda: self.r.get({"user_id": uid}) is None, 5, f"user {uid} removed")
            self.assertLess(time.monotonic() - t0, 2.0)
        self.assertEqual(len(self.r.store()), 18)
        # An ordinary change still flows, and the unsubscribed stay out of it.
        self.pg.psql("UPDATE users SET plan = 'free' WHERE id IN (4, 5)", db=self.db)
        wait_until(lambda: (self.r.get({"user_id": 5}) or {}).get("plan") == "free", 10, "update")
        self.assertIsNone(self.r.get({"user_id": 4}))
        rows = self.pg.psql("SELECT outcome, count(*) FROM backflow.outcomes GROUP BY outcome"
                            " ORDER BY outcome", db=self.db)
        self.assertEqual(dict((o, int(n)) for o, n in rows), {"added": 20, "changed": 1, "removed": 2})


if __name__ == "__main__":
    unittest.main()
