"""Self-test for the strict webhook test receiver (tests/integration/webhook_receiver.py).

Run: python3 -m unittest tests/integration/test_receiver_selftest.py -v
"""

import base64
import hashlib
import hmac
import http.client
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from webhook_receiver import Receiver  # noqa: E402

SECRET = "whsec_" + base64.b64encode(b"backflow-selftest-secret-0123456").decode()


def sign(secret, msg_id, ts, body):
    # Computed independently of the receiver module on purpose.
    key = base64.b64decode(secret[len("whsec_"):])
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def batch(records, sync="users_to_crm", batch_id="b1"):
    return json.dumps({"sync": sync, "batch_id": batch_id, "records": records}).encode()


def rec(op, uid, **fields):
    r = {"op": op, "sync": "users_to_crm", "key": {"user_id": uid}}
    if op != "delete":
        r["fields"] = fields
    return r


class ReceiverSelfTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.r = Receiver.start(SECRET, max_batch=5)

    @classmethod
    def tearDownClass(cls):
        cls.r.stop()

    def setUp(self):
        self.r.control(reset=True, clear_faults=True)
        self.conn = http.client.HTTPConnection("127.0.0.1", self.r.port, timeout=5)
        self.n = 0

    def tearDown(self):
        self.conn.close()

    def post(self, body, msg_id=None, secret=SECRET, ts=None, signature=None, conn=None):
        self.n += 1
        msg_id = msg_id or f"msg_{self.id()}_{self.n}"
        ts = int(time.time()) if ts is None else ts
        headers = {
            "Content-Type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(ts),
            "webhook-signature": signature or sign(secret, msg_id, ts, body),
        }
        conn = conn or self.conn
        conn.request("POST", "/in", body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        return resp, data

    def test_valid_batch_is_stored(self):
        body = batch([rec("upsert", 7, email="a@x", plan="pro"),
                      rec("upsert", 8, email="b@x"),
                      rec("delete", 9),
                      rec("update", 10, email="nope")])
        resp, data = self.post(body)
        self.assertEqual(resp.status, 200, data)
        self.assertEqual(resp.getheader("Content-Type"), "application/json")
        results = json.loads(data)["results"]
        self.assertEqual([x["status"] for x in results], ["ok", "ok", "ok", "rejected"])
        self.assertEqual(results[3]["reason"], "not found")
        store = self.r.store()
        self.assertEqual(store, {json.dumps({"user_id": 7}, sort_keys=True): {"email": "a@x", "plan": "pro"},
                                 json.dumps({"user_id": 8}, sort_keys=True): {"email": "b@x"}})
        self.assertEqual(self.r.get({"user_id": 7}), {"email": "a@x", "plan": "pro"})
        c = self.r.counters()
        self.assertEqual((c["requests"], c["records"], c["upsert"], c["delete"], c["update"]), (1, 4, 2, 1, 1))

        # delete + insert-over-existing + redelivery of the same webhook-id
        body2 = batch([rec("delete", 8), rec("insert", 7, email="c@x")], batch_id="b2")
        for _ in range(2):
            resp, data = self.post(body2, msg_id="msg_fixed")
            self.assertEqual(resp.status, 200, data)
        self.assertEqual(self.r.store(), {json.dumps({"user_id": 7}): {"email": "c@x"}})
        c = self.r.counters()
        self.assertEqual(c["redeliveries"], 1)
        self.assertEqual(c["reapplied_batches"], 1)
        self.assertEqual(c["duplicate_inserts"], 2)
        self.assertEqual(c["id_conflicts"], 0)

    def test_bad_signature_is_401_and_not_stored(self):
        body = batch([rec("upsert", 1, email="x")])
        resp, data = self.post(body, secret="whsec_" + base64.b64encode(b"wrong-secret-wrong-secret-000000").decode())
        self.assertEqual(resp.status, 401)
        self.assertIn("error", json.loads(data))
        # tampered body with a signature for the original body
        ts = int(time.time())
        good = sign(SECRET, "m1", ts, body)
        resp, _ = self.post(body.replace(b'"x"', b'"y"'), msg_id="m1", ts=ts, signature=good)
        self.assertEqual(resp.status, 401)
        # stale timestamp
        resp, _ = self.post(body, ts=int(time.time()) - 301)
        self.assertEqual(resp.status, 401)
        # missing headers
        self.conn.request("POST", "/in", body=body, headers={"Content-Type": "application/json"})
        resp = self.conn.getresponse()
        resp.read()
        self.assertEqual(resp.status, 401)
        self.assertEqual(self.r.store(), {})
        # a signature list containing one valid entry is accepted
        ts = int(time.time())
        sig = "v1,AAAA " + sign(SECRET, "m2", ts, body)
        resp, _ = self.post(body, msg_id="m2", ts=ts, signature=sig)
        self.assertEqual(resp.status, 200)

    def test_malformed_is_400(self):
        for body in (b"{not json", json.dumps({"sync": "s", "batch_id": "b", "records": {}}).encode(),
                     batch([{"op": "upsert", "fields": {}}]), batch([{"op": "zap", "key": {"id": 1}, "fields": {}}]),
                     batch([{"op": "upsert", "key": [1], "fields": {}}])):
            resp, _ = self.post(body)
            self.assertEqual(resp.status, 400, body)
        self.assertEqual(self.r.store(), {})

    def test_over_max_batch_is_413(self):
        resp, data = self.post(batch([rec("upsert", i, v=i) for i in range(6)]))
        self.assertEqual(resp.status, 413, data)
        self.assertEqual(self.r.store(), {})
        resp, _ = self.post(batch([rec("upsert", i, v=i) for i in range(5)]))
        self.assertEqual(resp.status, 200)

    def test_reject_and_retry_keys(self):
        self.r.control(reject_keys=[2], retry_keys=["3"])
        resp, data = self.post(batch([rec("upsert", 1), rec("upsert", 2), rec("upsert", 3)]))
        self.assertEqual(resp.status, 200)
        results = json.loads(data)["results"]
        self.assertEqual(results[0], {"status": "ok"})
        self.assertEqual(results[1], {"status": "rejected", "reason": "rejected by test receiver: user_id"})
        self.assertEqual(results[2]["status"], "retry")
        self.assertEqual(list(self.r.store()), [json.dumps({"user_id": 1})])

    def test_status_sequence_then_normal(self):
        self.r.control(status_sequence=[429, 500], retry_after=2)
        body = batch([rec("upsert", 1, a=1)])
        resp, _ = self.post(body, msg_id="seq")
        self.assertEqual(resp.status, 429)
        self.assertEqual(resp.getheader("Retry-After"), "2")
        resp, _ = self.post(body, msg_id="seq")
        self.assertEqual(resp.status, 500)
        self.assertEqual(self.r.store(), {})
        resp, data = self.post(body, msg_id="seq")
        self.assertEqual(resp.status, 200, data)
        self.assertEqual(len(self.r.store()), 1)
        self.assertEqual(self.r.counters()["redeliveries"], 2)
        # default Retry-After for 429 is 1
        self.r.control(status_sequence=[429], retry_after=None)
        resp, _ = self.post(body)
        self.assertEqual((resp.status, resp.getheader("Retry-After")), (429, "1"))

    def test_fail_after_requests_and_other_faults(self):
        self.r.control(fail_after_requests=1, retry_after=1)
        body = batch([rec("upsert", 1)])
        self.assertEqual(self.post(body)[0].status, 200)
        resp, _ = self.post(body)
        self.assertEqual((resp.status, resp.getheader("Retry-After")), (503, "1"))
        self.r.control(fail_after_requests=None)
        self.assertEqual(self.post(body)[0].status, 200)

        self.r.control(garbage_response=True)
        resp, data = self.post(batch([rec("upsert", 50)]))
        self.assertEqual(resp.status, 200)
        self.assertRaises(ValueError, json.loads, data)
        self.assertNotIn(json.dumps({"user_id": 50}), self.r.store())

        self.r.control(garbage_response=False, apply_then_fail=1)
        resp, _ = self.post(batch([rec("upsert", 51)]))
        self.assertEqual(resp.status, 500)
        self.assertIn(json.dumps({"user_id": 51}), self.r.store())
        self.assertEqual(self.post(batch([rec("upsert", 52)]))[0].status, 200)  # one-shot

        self.r.control(close_connection=1)
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionError)):
            self.post(batch([rec("upsert", 53)]))
        self.conn.close()
        self.assertNotIn(json.dumps({"user_id": 53}), self.r.store())

    def test_keep_alive(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.r.port, timeout=5)
        try:
            resp, _ = self.post(batch([rec("upsert", 1)]), conn=conn)
            self.assertEqual(resp.status, 200)
            self.assertIsNotNone(resp.getheader("Content-Length"))
            sock = conn.sock
            self.assertIsNotNone(sock)
            resp, _ = self.post(batch([rec("upsert", 2)]), conn=conn)
            self.assertEqual(resp.status, 200)
            self.assertIs(conn.sock, sock, "connection was not reused")
            # an error response also keeps the connection open
            resp, _ = self.post(batch([rec("upsert", 3)]), conn=conn, signature="v1,bad")
            self.assertEqual(resp.status, 401)
            self.assertIs(conn.sock, sock)
        finally:
            conn.close()
        self.assertEqual(self.r.counters()["requests"], 3)


if __name__ == "__main__":
    unittest.main()
