"""A hostile or broken webhook receiver (issue 7): answers that are truncated,
miscounted, endless, slow or cut off, and 429 storms. Each must leave no
crash, exact accounting, a clear error, and nothing lost.

The stub receiver here applies every batch it is sent (upserts and deletes
on a keyed store) and then answers as scripted, so a bad answer is the worst
case: the records landed but Backflow cannot know. It counts deliveries per
key, so the tests measure what at-least-once costs (redeliveries) and that
the store ends equal to the model (nothing lost, nothing stale). The figures
are in docs/reliability.md."""
import json
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from test_core_support import (CoreCase, canonical_key, config, expected_store, sync_block,
                               webhook_dest)

N = 100
BATCH = 25


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        srv = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        doc = json.loads(body)
        with srv.lock:
            ids = {rec["key"].get("user_id") for rec in doc["records"]}
            action = "ok"
            for rule in srv.rules:  # [user_id, action, times]: requests holding that key
                if rule[0] in ids and rule[2] > 0:
                    action = rule[1]
                    rule[2] -= 1
                    break
            else:
                if srv.script:
                    action = srv.script.pop(0)
            srv.requests += 1
            for rec in doc["records"]:
                ck = canonical_key(rec["key"])
                same = (ck, rec["op"], json.dumps(rec.get("fields"), sort_keys=True))
                srv.deliveries[same] = srv.deliveries.get(same, 0) + 1
                if rec["op"] == "delete":
                    srv.store.pop(ck, None)
                else:
                    if rec["op"] == "insert" and ck in srv.store:
                        srv.duplicate_inserts += 1
                    srv.store[ck] = rec["fields"]
        n = len(doc["records"])
        ok = '{"status": "ok"}'
        if action == "ok":
            return self.reply(200, '{"results": [' + ", ".join([ok] * n) + "]}")
        if action == "truncated":
            full = '{"results": [' + ", ".join([ok] * n) + "]}"
            return self.reply(200, full[:len(full) // 2])
        if action == "fewer":
            return self.reply(200, '{"results": [' + ", ".join([ok] * (n - 1)) + "]}")
        if action == "more":
            return self.reply(200, '{"results": [' + ", ".join([ok] * (n + 1)) + "]}")
        if action == "429":
            return self.reply(429, '{"error": "slow down"}', [("Retry-After", "0")])
        if action == "slow":
            time.sleep(srv.slow_s)
            return self.reply(200, '{"results": [' + ", ".join([ok] * n) + "]}")
        if action == "huge":  # 9 MiB of JSON: more than Backflow reads (8 MiB)
            pad = " " * (9 << 20)
            return self.reply(200, '{"pad": "' + pad + '", "results": []}')
        if action == "reset":  # half an answer, then a TCP reset
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: 5000\r\n\r\n{\"results\": [{\"sta")
            self.wfile.flush()
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.close_connection = True
            return None
        raise AssertionError(action)

    def reply(self, code, text, headers=()):
        data = text.encode()
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading (the 8 MiB cap)

    def log_message(self, *a):
        pass


class StubReceiver:
    def __init__(self, script=(), slow_s=0.0):
        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.srv.daemon_threads = True
        self.srv.lock = threading.Lock()
        self.srv.script = list(script)
        self.srv.rules = []
        self.srv.slow_s = slow_s
        self.srv.requests = 0
        self.srv.deliveries = {}
        self.srv.store = {}
        self.srv.duplicate_inserts = 0
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}/in"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def redeliveries(self):
        """Records received again with the same op and fields."""
        return sum(n - 1 for n in self.srv.deliveries.values())

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


class HostileReceiver(CoreCase):
    def setUp(self):
        self.p = self.new_project(rows=N)

    def start(self, script, max_retries=2, timeout="5s", slow_s=0.0, mode="upsert"):
        self.r = StubReceiver(script, slow_s)
        self.addCleanup(self.r.stop)
        self.p.write_config(config([webhook_dest(self.r.url, max_retries=max_retries,
                                                 timeout=timeout)],
                                   [sync_block("users", "hook", mode=mode, batch_size=BATCH)]))

    def finish(self, redeliveries, most=2):
        """Store equals the model, the next run has nothing to send, and the
        records sent again are exactly the expected ones, each at most `most`
        times."""
        self.assertEqual(self.r.srv.store, expected_store(self.p))  # nothing lost or stale
        self.assertEqual(self.r.redeliveries(), redeliveries)
        self.assertEqual(self.r.srv.duplicate_inserts, 0)
        self.assertLessEqual(max(self.r.srv.deliveries.values()), most)
        before = self.r.srv.requests
        run = self.run_sync(self.p, "users")
        self.assertCounts(run, added=0, changed=0, removed=0, unchanged=len(self.r.srv.store),
                          failed=0)
        self.assertEqual(self.r.srv.requests, before)

    def assertWarned(self, run, needle):
        self.assertIn(needle, run["_stderr"])
        self.assertIn("destination 'hook'", run["_stderr"])
        self.assertIn("the batch will be sent again", run["_stderr"])

    def test_truncated_json_answer_is_resent_not_counted_delivered(self):
        self.start(["truncated"])
        run = self.run_sync(self.p, "users")
        self.assertCounts(run, status="succeeded", added=N, failed=0, rejected=0)
        self.assertWarned(run, "malformed JSON response")
        self.finish(redeliveries=BATCH)

    def test_fewer_results_than_records_resends_the_batch(self):
        self.start(["fewer"])
        run = self.run_sync(self.p, "users")
        self.assertCounts(run, status="succeeded", added=N, failed=0)
        self.assertWarned(run, f"response has {BATCH - 1} results for {BATCH} records")
        self.finish(redeliveries=BATCH)

    def test_more_results_than_records_resends_the_batch(self):
        self.start(["ok", "more"])
        run = self.run_sync(self.p, "users")
        self.assertCounts(run, status="succeeded", added=N, failed=0)
        self.assertWarned(run, f"response has {BATCH + 1} results for {BATCH} records")
        self.finish(redeliveries=BATCH)

    def test_wrong_counts_every_time_fail_the_records_after_three_attempts(self):
        self.start([])
        self.r.srv.rules.append([1, "fewer", 3])
        run = self.run_sync(self.p, "users", expect=1)
        self.assertCounts(run, status="partial", added=N - BATCH, failed=BATCH)
        errs = self.errors(self.p, "users")["errors"]
        self.assertEqual(len(errs), BATCH)
        self.assertIn("response has 24 results for 25 records", errs[0]["reason"])
        run = self.run_sync(self.p, "users")  # applied 3 times, acknowledged now
        self.assertCounts(run, added=BATCH, unchanged=N - BATCH)
        self.finish(redeliveries=3 * BATCH, most=4)

    def test_429_storm_beyond_the_retries_stops_the_run_and_loses_nothing(self):
        self.start(["ok", "429", "429", "429"], max_retries=2)
        run = self.run_sync(self.p, "users", expect=4)
        self.assertIn("HTTP 429 after 3 attempts", run["_stderr"])
        self.assertCounts(run, status="failed", added=BATCH, failed=BATCH)
        self.assertEqual(len(self.r.srv.store), 2 * BATCH)  # this receiver applies even a 429
        run = self.run_sync(self.p, "users")
        self.assertCounts(run, status="succeeded", added=N - BATCH, unchanged=BATCH)
        self.finish(redeliveries=3 * BATCH, most=4)

    def test_429_storm_within_the_retries_is_absorbed(self):
        self.start(["429", "429"], max_retries=2)
        run = self.run_sync(self.p, "users")
        self.assertCounts(run, status="succeeded", added=N, failed=0)
        self.finish(redeliveries=2 * BATCH, most=3)

    def test_answer_slower_than_the_timeout_is_retried(self):
        self.start(["slow"], timeout="1s", slow_s=2.5)
        t0 = time.monotonic()
        run = self.run_sync(self.p, "users")
        self.assertLess(time.monotonic() - t0, 30)
        self.assertCounts(run, status="succeeded", added=N, failed=0)
        self.finish(redeliveries=BATCH)

    def test_answer_slower_than_the_timeout_every_time_stops_the_run(self):
        self.start(["slow"] * 3, timeout="500ms", slow_s=1.0, max_retries=2)
        run = self.run_sync(self.p, "users", expect=4)
        self.assertIn("Timeout was reached after 3 attempts", run["_stderr"])
        self.assertCounts(run, added=0)
        run = self.run_sync(self.p, "users")
        self.assertCounts(run, status="succeeded", added=N)
        self.finish(redeliveries=3 * BATCH, most=4)

    def test_endless_answer_is_cut_at_the_cap_and_retried(self):
        self.start(["huge"])
        run = self.run_sync(self.p, "users")
        self.assertCounts(run, status="succeeded", added=N, failed=0)
        self.finish(redeliveries=BATCH)

    def test_connection_reset_mid_answer_is_retried(self):
        self.start(["reset", "ok", "reset"])
        run = self.run_sync(self.p, "users")
        self.assertCounts(run, status="succeeded", added=N, failed=0)
        self.finish(redeliveries=2 * BATCH)

    def test_mirror_deletes_under_bad_answers(self):
        self.start([], mode="mirror")
        self.run_sync(self.p, "users")
        self.p.sql("DELETE FROM users WHERE id > 60")
        self.r.srv.script.extend(["truncated", "reset", "429"])
        run = self.run_sync(self.p, "users")
        self.assertCounts(run, status="succeeded", removed=40, failed=0)
        # The three bad answers hit the first delete batch and its resends.
        self.finish(redeliveries=3 * BATCH, most=4)


if __name__ == "__main__":
    import unittest
    unittest.main()
