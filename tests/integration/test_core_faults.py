"""Nothing lost (issue 2, design.md §1.4-§1.5): a destination that refuses,
asks to retry, throttles, dies mid-run, loses acknowledgements or answers
garbage leaves exactly the unacknowledged records for the next run."""
import time

from test_core_support import (CoreCase, closed_port, config, delta, expected_store,
                               sync_block, webhook_dest)

N = 100


class WebhookFaults(CoreCase):
    def setUp(self):
        self.p = self.new_project(rows=N)

    def start(self, mode="mirror", batch_size=25, max_retries=2, url=None, secret=None, **faults):
        self.r = self.new_receiver(**faults)
        dest = webhook_dest(url or self.r.url, max_retries=max_retries,
                            **({"secret": secret} if secret else {}))
        self.p.write_config(config([dest], [sync_block("users", "hook", mode=mode,
                                                       batch_size=batch_size)]))

    def assertStoreIsModel(self):
        self.assertEqual(self.r.store(), expected_store(self.p))

    def assertDestinationError(self, run, *needles):
        """The run stopped with one clear line on stderr naming the destination."""
        err = run["_stderr"].strip().splitlines()
        self.assertEqual(len(err), 1, err)
        last = err[0]
        self.assertTrue(last.startswith("backflow run: "), err)
        self.assertIn("destination 'hook'", last)
        for n in needles:
            self.assertIn(n, last)
        self.assertEqual(run["status"], "failed")
        self.assertTrue(run["error"])
        self.assertIn("hook", run["error"])

    def test_rejected_keys_are_counted_reported_and_sent_next_run(self):
        self.start(reject_keys=[3, 7, 64])
        run = self.run_sync(self.p, "users", expect=1)
        self.assertCounts(run, status="partial", added=N - 3, rejected=3, failed=0, removed=0)
        c1 = self.r.counters()
        self.assertEqual((c1["records"], c1["rejected"], c1["ok"]), (N, 3, N - 3))
        store = self.r.store()
        self.assertEqual(len(store), N - 3)
        for k in (3, 7, 64):
            self.assertIsNone(self.r.get({"user_id": k}))
        errs = self.errors(self.p, "users")
        self.assertEqual(errs["run_id"], run["run_id"])
        self.assertEqual(len(errs["errors"]), 3, errs)
        for e in errs["errors"]:
            self.assertIn("rejected by test receiver", e["reason"])
            self.assertRegex(e["key_hash"], r"^[0-9a-f]{32}$")
        self.assertEqual(len({e["key_hash"] for e in errs["errors"]}), 3)

        self.r.control(clear_faults=True)
        run = self.run_sync(self.p, "users")
        self.assertCounts(run, status="succeeded", added=3, changed=0, unchanged=N - 3,
                          rejected=0, removed=0)
        c2 = self.r.counters()
        self.assertEqual(delta(c1, c2, "records", "ok"), {"records": 3, "ok": 3})
        self.assertStoreIsModel()
        self.assertEqual(self.errors(self.p, "users")["errors"], [])

    def test_retry_keys_are_retried_three_times_then_failed_and_sent_next_run(self):
        self.start(retry_keys=[4])
        run = self.run_sync(self.p, "users", expect=1)
        self.assertCounts(run, status="partial", added=N - 1, rejected=0, failed=1)
        c1 = self.r.counters()
        self.assertEqual(c1["retry"], 3)             # three attempts within the run
        self.assertEqual(c1["records"], N + 2)       # the record went out 3 times
        self.assertEqual(c1["id_conflicts"], 0)
        self.assertIsNone(self.r.get({"user_id": 4}))
        errs = self.errors(self.p, "users")["errors"]
        self.assertEqual(len(errs), 1, errs)
        self.assertIn("3 attempts", errs[0]["reason"])
        self.assertIn("retry requested by test receiver", errs[0]["reason"])

        self.r.control(clear_faults=True)
        run = self.run_sync(self.p, "users")
        self.assertCounts(run, added=1, changed=0, failed=0, unchanged=N - 1)
        self.assertEqual(delta(c1, self.r.counters(), "records"), {"records": 1})
        self.assertStoreIsModel()

    def test_throttling_with_retry_after_is_honoured_and_nothing_is_lost(self):
        self.start(status_sequence=[429, 503], retry_after=1)
        t0 = time.monotonic()
        run = self.run_sync(self.p, "users")
        elapsed = time.monotonic() - t0
        self.assertCounts(run, status="succeeded", added=N, failed=0, rejected=0)
        c = self.r.counters()
        self.assertEqual(c["requests"], 4 + 2)
        self.assertEqual(c["injected_faults"], 2)
        # the retried batch kept its webhook-id and its body
        self.assertEqual((c["redeliveries"], c["id_conflicts"]), (2, 0))
        self.assertEqual((c["records"], c["ok"]), (N, N))  # injected answers parse nothing
        self.assertGreaterEqual(elapsed, 1.9, "Retry-After: 1 was not waited for (twice)")
        self.assertStoreIsModel()

    def test_destination_dying_mid_run_keeps_acknowledged_and_next_run_sends_the_rest(self):
        self.start(batch_size=10, fail_after_requests=3)
        run1 = self.run_sync(self.p, "users", expect=4)
        self.assertDestinationError(run1, "503")
        self.assertCounts(run1, added=30, removed=0, rejected=0)
        self.assertEqual(len(self.r.store()), 30)
        c1 = self.r.counters()
        self.assertEqual(c1["ok_requests"], 3)
        rc, hist, _ = self.p.run_json("runs")
        self.assertEqual(hist["runs"][0]["status"], "failed")
        self.assertIn("hook", hist["runs"][0]["error"])

        self.r.control(fail_after_requests=None)
        run2 = self.run_sync(self.p, "users")
        self.assertCounts(run2, status="succeeded", added=70, changed=0, unchanged=30,
                          removed=0, rejected=0, failed=0)
        self.assertEqual(run1["added"] + run2["added"], N)
        c2 = self.r.counters()
        self.assertEqual(delta(c1, c2, "ok"), {"ok": 70})  # nothing acknowledged went again
        self.assertStoreIsModel()

    def test_mirror_removals_wait_for_a_complete_scan_and_resume(self):
        self.start(batch_size=10)
        self.run_sync(self.p, "users")
        self.p.sql("DELETE FROM users WHERE id <= 5; UPDATE users SET plan = 'pro' WHERE id > 50")
        self.r.control(fail_after_requests=2)
        run = self.run_sync(self.p, "users", expect=4)
        self.assertDestinationError(run)
        self.assertCounts(run, changed=20, removed=0)
        self.assertEqual(self.r.counters()["delete"], 0)
        self.r.control(fail_after_requests=None)
        run = self.run_sync(self.p, "users")
        self.assertCounts(run, changed=30, removed=5, added=0)
        self.assertStoreIsModel()

    def test_lost_acknowledgement_is_resent_and_a_delivered_key_that_left_is_deleted(self):
        self.start(max_retries=1, apply_then_fail=True)
        run = self.run_sync(self.p, "users", expect=4)
        self.assertDestinationError(run, "500")
        self.assertCounts(run, added=0)
        c1 = self.r.counters()
        # The first batch reached the receiver (twice, same webhook-id) but no ack came back.
        self.assertEqual(c1["applied_requests"], 2)
        self.assertEqual(c1["reapplied_batches"], 1)
        self.assertEqual(len(self.r.store()), 25)
        delivered = sorted(int(k.split(": ")[1].rstrip("}")) for k in self.r.store())
        self.assertEqual(delivered, list(range(1, 26)))

        # Two of the delivered-but-unacknowledged keys leave the model.
        self.p.sql("DELETE FROM users WHERE id IN (2, 17)")
        self.r.control(clear_faults=True)
        run = self.run_sync(self.p, "users")
        self.assertCounts(run, status="succeeded", removed=2, rejected=0, failed=0)
        self.assertEqual(run["added"] + run["changed"], N - 2, run)
        c2 = self.r.counters()
        self.assertEqual(delta(c1, c2, "upsert", "delete"), {"upsert": N - 2, "delete": 2})
        self.assertStoreIsModel()
        self.assertIsNone(self.r.get({"user_id": 17}))
        run = self.run_sync(self.p, "users")
        self.assertCounts(run, added=0, changed=0, removed=0, unchanged=N - 2)

    def test_garbage_response_is_retried_not_lost(self):
        self.start(garbage_response=1)
        run = self.run_sync(self.p, "users")
        self.assertCounts(run, status="succeeded", added=N, failed=0, rejected=0)
        c = self.r.counters()
        self.assertEqual(c["injected_faults"], 1)
        self.assertEqual(c["records"], N + 25)
        self.assertEqual(c["ok"], N)
        self.assertStoreIsModel()
        self.assertEqual(self.run_sync(self.p, "users")["unchanged"], N)

    def test_dropped_connection_and_garbage_status_are_retried(self):
        self.start(status_sequence=["close", "garbage", 502])
        run = self.run_sync(self.p, "users")
        self.assertCounts(run, status="succeeded", added=N, failed=0, rejected=0)
        self.assertEqual(self.r.counters()["ok"], N)
        self.assertStoreIsModel()

    def test_unreachable_url_exits_4(self):
        port = closed_port()
        self.start(max_retries=1, url=f"http://127.0.0.1:{port}/in")
        run = self.run_sync(self.p, "users", expect=4)
        self.assertDestinationError(run, f"127.0.0.1:{port}")
        self.assertCounts(run, added=0, changed=0, removed=0)
        self.assertEqual(self.r.counters()["requests"], 0)
        # nothing was acknowledged: the plan still shows every row to add
        self.assertCounts(self.plan(self.p, "users"), added=N, changed=0)

    def test_wrong_signing_secret_exits_4_and_says_to_check_the_secret(self):
        self.start(secret="whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=")
        run = self.run_sync(self.p, "users", expect=4)
        self.assertDestinationError(run, "401", "check the signing secret")
        c = self.r.counters()
        self.assertEqual(c["requests"], 1)  # a 401 is not retried
        self.assertEqual(self.r.store(), {})
        self.assertCounts(self.plan(self.p, "users"), added=N)


if __name__ == "__main__":
    import unittest
    unittest.main()
