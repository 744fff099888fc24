"""The feedback loop (issue 6): POST /hooks/{destination} verifies the
Standard Webhooks signature with the destination's signing_secret and
appends the events to backflow_events in the SQLite warehouse before it
answers; a bad signature stores nothing; no plaintext personal data is
stored, the person only as the project's keyed hash."""
import json
import sqlite3
import time
import unittest
import urllib.parse

from test_serve_support import (WEBHOOK_SECRET, new_project, serve_config, sign, start_server,
                                wait_for)

OTHER_SECRET = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk="

SYNCS = ("  to_hook:\n    model: users\n    destination: hook\n    match: {user_id: id}\n"
         "    fields: {email: email}\n"
         "  to_file:\n    model: users\n    destination: out\n    match: {user_id: id}\n"
         "    fields: {email: email}\n")
DESTS = (f"  hook: {{type: webhook, url: \"http://127.0.0.1:9/in\", signing_secret: \"{WEBHOOK_SECRET}\"}}\n"
         "  out: {type: file, path: out/users.jsonl}\n")


class Hooks(unittest.TestCase):
    def setUp(self):
        self.p = new_project(self, serve_config(SYNCS, DESTS), rows=10)
        self.s = start_server(self, self.p)

    def tearDown(self):
        self.assertEqual(self.s.stop(), 0)

    def events(self):
        con = sqlite3.connect(self.p.db_path)
        try:
            return con.execute("SELECT received_at, destination, event, person_hash, payload,"
                               " webhook_id, seq FROM backflow_events ORDER BY id").fetchall()
        except sqlite3.OperationalError as e:
            if "no such table" in str(e):
                return []
            raise
        finally:
            con.close()

    def post(self, body, headers=None, dest="hook", secret=WEBHOOK_SECRET, ctype="application/json",
             **sign_kw):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        h = sign(secret, body, **sign_kw) if secret else {}
        h["Content-Type"] = ctype
        h.update(headers or {})
        status, _, data = self.s.request("POST", f"/hooks/{dest}", token=None, body=body, headers=h)
        return status, json.loads(data)

    def test_bad_signatures_are_401_and_store_nothing(self):
        ev = {"event": "opened", "email": "a@example.com"}
        body = json.dumps(ev).encode()
        good = sign(WEBHOOK_SECRET, body)
        cases = {
            "wrong secret": dict(body=ev, secret=OTHER_SECRET),
            "no signature": dict(body=ev, secret=None),
            "tampered body": dict(body=body.replace(b"opened", b"bounced"), secret=None, headers=good),
            "other id": dict(body=ev, secret=None, headers={**good, "webhook-id": "msg_other"}),
            "stale timestamp": dict(body=ev, timestamp=int(time.time()) - 600),
            "future timestamp": dict(body=ev, timestamp=int(time.time()) + 600),
            "garbled signature": dict(body=ev, secret=None,
                                      headers={**good, "webhook-signature": "v1,AAAA"}),
            "v2 scheme": dict(body=ev, secret=None,
                              headers={**good, "webhook-signature": good["webhook-signature"].replace("v1,", "v2,")}),
            "unknown destination": dict(body=ev, dest="nope"),
            "destination without signing_secret": dict(body=ev, dest="out"),
        }
        for name, kw in cases.items():
            status, doc = self.post(**kw)
            self.assertEqual(status, 401, name)
            self.assertEqual(doc, {"error": "missing or invalid webhook signature"}, name)
        # A bearer token is no substitute for the signature.
        status, _, _ = self.s.request("POST", "/hooks/hook", body=body,
                                      headers={"Content-Type": "application/json"})
        self.assertEqual(status, 401)
        self.assertEqual(self.events(), [])
        self.assertIn("signature does not match", self.s.log())

    def test_good_signature_stores_the_event_within_a_second_without_pii(self):
        t0 = time.monotonic()
        status, doc = self.post({"event": "opened", "email": "  Person1@Example.COM ",
                                 "campaign": "spring", "first_name": "Ann",
                                 "meta": {"to": "person1@example.com", "ip": "10.0.0.1"}})
        self.assertEqual(status, 200, doc)
        self.assertEqual(doc, {"received": 1, "stored": 1, "duplicates": 0})
        rows = wait_for(self.events, timeout=1.0, what="the event row")
        self.assertLess(time.monotonic() - t0, 1.0)
        received_at, dest, event, person, payload, wid, seq = rows[0]
        self.assertRegex(received_at, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertEqual((dest, event, seq), ("hook", "opened", 0))
        self.assertRegex(person, r"^[0-9a-f]{32}$")
        self.assertEqual(json.loads(payload), {"campaign": "spring", "event": "opened",
                                               "meta": {"to": "[redacted]"}})
        self.assertTrue(wid.startswith("msg_"))
        # Same person, spelled differently: same hash. Another person: another hash.
        self.post({"event": "clicked", "email": "person1@example.com"})
        self.post({"event": "clicked", "email": "person2@example.com"})
        hashes = [r[3] for r in self.events()]
        self.assertEqual(hashes[0], hashes[1])
        self.assertNotEqual(hashes[0], hashes[2])
        dump = repr(self.events()).lower()
        for needle in ("person1", "person2", "example.com", "ann", "10.0.0.1"):
            self.assertNotIn(needle, dump)

    def test_person_hash_of_an_id_is_the_key_hash_backflow_uses(self):
        # A duplicate primary key shows its keyed hash in the run's errors.
        self.p.sql("INSERT INTO users VALUES (7, 'dup@example.com', 'Dup', 'free', 1, 'n')")
        status, _, _ = self.s.request("POST", "/api/syncs/to_file/trigger")
        self.assertEqual(status, 202)
        run = wait_for(lambda: self.s.finished_runs("to_file"), timeout=10, what="the run")[0]
        errs = self.s.get_json(f"/api/runs/{run['id']}/errors")["errors"]
        self.assertEqual(len(errs), 1, errs)
        status, doc = self.post({"event": "bounced", "user_id": 7, "email": "x@example.com"})
        self.assertEqual(status, 200, doc)
        self.assertEqual(self.events()[0][3], errs[0]["key_hash"])
        self.assertNotIn("user_id", self.events()[0][4])

    def test_replayed_delivery_is_stored_once(self):
        body = json.dumps([{"event": "opened", "email": "a@example.com"},
                           {"event": "clicked", "email": "a@example.com"}]).encode()
        h = sign(WEBHOOK_SECRET, body, msg_id="msg_fixed")
        for expected in ({"received": 2, "stored": 2, "duplicates": 0},
                         {"received": 2, "stored": 0, "duplicates": 2}):
            status, _, data = self.s.request("POST", "/hooks/hook", token=None, body=body,
                                             headers={**h, "Content-Type": "application/json"})
            self.assertEqual((status, json.loads(data)), (200, expected))
        self.assertEqual([(r[2], r[6]) for r in self.events()], [("opened", 0), ("clicked", 1)])

    def test_vendor_shapes(self):
        hubspot = [{"eventId": 1, "subscriptionId": 9, "portalId": 62515, "occurredAt": 1700000000000,
                    "subscriptionType": "contact.propertyChange", "objectId": 123,
                    "propertyName": "email", "propertyValue": "hs@example.com"},
                   {"eventId": 2, "subscriptionType": "contact.deletion", "objectId": 124}]
        braze = {"events": [{"event_type": "users.messages.email.Open", "id": "e1", "time": 1700000000,
                             "user": {"user_id": "u1", "external_user_id": "ext-9"},
                             "properties": {"email_address": "braze@example.com", "campaign_name": "c"}}]}
        mailchimp = urllib.parse.urlencode({
            "type": "unsubscribe", "fired_at": "2009-03-26 21:35:57", "data[action]": "unsub",
            "data[reason]": "manual", "data[id]": "8a25ff1d98", "data[list_id]": "a6b5da1054",
            "data[email]": "api@mailchimp.com", "data[merges][EMAIL]": "api@mailchimp.com",
            "data[merges][FNAME]": "Mailchimp", "data[merges][LNAME]": "API"}).encode()
        self.assertEqual(self.post(hubspot)[0], 200)
        self.assertEqual(self.post(braze)[0], 200)
        status, doc = self.post(mailchimp, ctype="application/x-www-form-urlencoded")
        self.assertEqual((status, doc["stored"]), (200, 1), doc)
        rows = self.events()
        self.assertEqual([r[2] for r in rows], ["contact.propertyChange", "contact.deletion",
                                                "users.messages.email.Open", "unsubscribe"])
        self.assertTrue(all(r[3] and len(r[3]) == 32 for r in rows), rows)
        self.assertEqual(len({r[3] for r in rows}), 4)
        p0, p2, p3 = (json.loads(rows[i][4]) for i in (0, 2, 3))
        self.assertEqual(p0["propertyValue"], "[redacted]")
        self.assertNotIn("objectId", p0)
        self.assertEqual(p2["properties"], {"campaign_name": "c"})
        self.assertEqual(p3["data"]["merges"], {})
        self.assertEqual(p3["data"]["list_id"], "a6b5da1054")
        dump = repr(rows).lower()
        for needle in ("@", "mailchimp\"", "ext-9", "8a25ff1d98"):
            self.assertNotIn(needle, dump)

    def test_signed_garbage_is_400_and_stores_nothing(self):
        status, doc = self.post(b"{not json")
        self.assertEqual(status, 400)
        self.assertIn("not JSON", doc["error"])
        self.assertEqual(self.events(), [])
        status, _, body = self.s.request("GET", "/metrics")
        text = body.decode()
        self.assertIn('backflow_hook_requests_total{destination="hook",result="bad_request"} 1', text)


if __name__ == "__main__":
    unittest.main()
