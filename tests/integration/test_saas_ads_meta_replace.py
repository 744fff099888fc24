"""meta_audience usersreplace on `run --full-resync` of a mirror sync (issue 5):
one replace session for the run's upserts, batch_seq 1..N, last_batch_flag on the
last; the audience ends exactly equal to the model (leftover identities gone)."""
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "contract"))

from meta_audience_server import meta_hash  # noqa: E402
from test_saas_ads_meta import MetaAudience, config, person  # noqa: E402

STRANGER = meta_hash("EMAIL", "stranger@example.com")


class MetaReplace(unittest.TestCase):
    # The Meta tests' fixture and helpers, without their tests.
    setUp = MetaAudience.setUp
    insert = MetaAudience.insert
    run_sync = MetaAudience.run_sync
    counts = MetaAudience.counts
    model_emails = MetaAudience.model_emails
    audience_emails = MetaAudience.audience_emails

    def run_args(self, *args, expect=0):
        rc, doc, err = self.p.run_json("run", "people_to_fb", *args)
        self.assertEqual(rc, expect, f"exit {rc}; stderr: {err!r}; out: {doc!r}")
        run = doc["runs"][0]
        run["_stderr"] = err
        return run

    def seed(self, n=45, batch_size=20, extra="", mode="mirror"):
        self.insert([person(i) for i in range(1, n + 1)])
        self.p.write_config(config(self.srv.url, batch_size=batch_size, extra=extra).replace(
            "mode: mirror", f"mode: {mode}"))
        self.counts(self.run_sync(), status="succeeded", added=n)
        # Someone uploaded a member by hand: only a replace drops it.
        st = self.srv.httpd.state
        with st.lock:
            st.add([("EMAIL", STRANGER), ("EXTERN_ID", "by-hand")])
        # person 3 changes email: Meta has no update, the old identity stays until a replace.
        self.p.sql("UPDATE people SET email = 'new3@example.com' WHERE id = 3")
        self.srv.control(known=[{"EMAIL": e, "PHONE": ph, "FN": fn, "COUNTRY": co, "EXTERN_ID": x}
                                for (e, ph, fn, co, x) in self.p.query(
                                    "SELECT email, phone, first_name, country, crm_id FROM people")]
                         + [{"EMAIL": person(i)["email"]} for i in range(1, n + 1)])

    def test_full_resync_replaces_the_audience_in_one_session(self):
        self.seed()
        self.p.sql("DELETE FROM people WHERE id > 39")
        self.assertEqual(len(self.audience_emails()), 46)  # 45 rows and the stranger
        run = self.run_args("--full-resync")
        self.counts(run, status="succeeded", added=0, changed=39, removed=6, rejected=0, failed=0)
        st = self.srv.state()
        c = st["counters"]
        self.assertEqual(c["replace_requests"], 2)      # 20 + 19 rows
        self.assertEqual(c["replace_sessions_closed"], 1)
        self.assertEqual([r["rows"] for r in st["replaced"]], [39])
        self.assertEqual(st["replacing"], {})
        self.assertEqual(self.audience_emails(), self.model_emails())
        self.assertNotIn(STRANGER, self.audience_emails())
        # The next normal run is incremental again.
        self.counts(self.run_sync(), status="succeeded", added=0, changed=0, removed=0, unchanged=39)

    def test_rows_ending_on_a_batch_boundary_still_close_the_session(self):
        self.seed(n=40)
        run = self.run_args("--full-resync")
        self.counts(run, status="succeeded", changed=40, removed=0)
        st = self.srv.state()
        self.assertEqual((st["counters"]["replace_requests"], st["counters"]["replace_sessions_closed"]), (2, 1))
        self.assertEqual(st["replaced"][0]["batches"], 2)
        self.assertEqual(self.audience_emails(), self.model_emails())  # the stranger is gone

    def test_a_refused_replace_batch_stops_the_run_and_leaves_the_audience(self):
        self.seed()
        before = self.audience_emails()
        self.srv.control(status_sequence=[200, 400])   # batch 2 of the session refused (code 1, not transient)
        run = self.run_args("--full-resync", expect=4)
        self.assertEqual(run["status"], "failed")
        self.assertIn("replace session", run["_stderr"])
        st = self.srv.state()
        self.assertEqual(st["counters"]["replace_sessions_closed"], 0)
        self.assertEqual(self.audience_emails(), before)
        self.assertIn(STRANGER, before)
        self.srv.control(status_sequence=[])
        self.counts(self.run_args("--full-resync"), status="succeeded", changed=45)
        self.assertEqual(self.audience_emails(), self.model_emails())

    def test_replace_can_be_turned_off_and_is_only_for_mirror_syncs(self):
        self.seed(extra="    replace_on_full_resync: false\n")
        self.counts(self.run_args("--full-resync"), status="succeeded", changed=45)
        c = self.srv.state()["counters"]
        self.assertEqual(c.get("replace_requests", 0), 0)
        self.assertIn(STRANGER, self.audience_emails())

    def test_upsert_syncs_add_on_full_resync(self):
        self.seed(mode="upsert")
        self.counts(self.run_args("--full-resync"), status="succeeded", changed=45)
        self.assertEqual(self.srv.state()["counters"].get("replace_requests", 0), 0)
        self.assertIn(STRANGER, self.audience_emails())


if __name__ == "__main__":
    unittest.main()
