"""HubSpot destination against the strict HubSpot contract server (issue 4):
final destination state == model after a first run, changes, mirror deletes
and runs interrupted by injected faults, with exact counts; per-record
rejections carry HubSpot's reason; credentials never appear in output."""
import json
import os

from test_saas_crm_support import (HS_SCHEMA, HS_TOKEN, CrmCase, hubspot_config, hubspot_expected,
                                   hubspot_state, make_users)

N = 250


class HubSpotSync(CrmCase):
    def setUp(self):
        self.p = self.new_project(rows=N)
        self.s = self.new_server("hubspot_server.py", {"token": HS_TOKEN, "schema": HS_SCHEMA})

    def configure(self, **kw):
        self.p.write_config(hubspot_config(self.s.base, **kw))

    def assertStateIsModel(self):
        self.assertEqual(hubspot_state(self.s), hubspot_expected(self.p))

    def test_first_run_changes_and_mirror_deletes_match_model(self):
        self.configure()
        run = self.run_sync(self.p, "contacts")
        self.assertCounts(run, status="succeeded", added=N, changed=0, removed=0, rejected=0, failed=0)
        self.assertStateIsModel()
        c1 = self.s.counters()["counters"]
        self.assertEqual(c1["created"], N)
        self.assertEqual(c1["upsert_requests"], 3)  # 100 + 100 + 50 inputs
        self.assertNotIn("rate_limited", c1)

        changed, added, removed = self.change_rows(self.p)
        run = self.run_sync(self.p, "contacts")
        self.assertCounts(run, status="succeeded", added=added, changed=changed, removed=removed,
                          unchanged=N - changed - removed, rejected=0, failed=0)
        self.assertStateIsModel()
        c2 = self.s.counters()["counters"]
        self.assertEqual(c2["archived"] - c1.get("archived", 0), removed)
        self.assertEqual(c2["created"] - c1["created"], added)
        self.assertEqual(c2["updated"] - c1.get("updated", 0), changed)

        # Nothing changed: nothing is sent.
        run = self.run_sync(self.p, "contacts")
        self.assertCounts(run, added=0, changed=0, removed=0, unchanged=N - removed + added)
        c3 = self.s.counters()["counters"]
        self.assertEqual(c3["upserted_inputs"], c2["upserted_inputs"])

    def test_values_are_strings_typed_per_property(self):
        self.configure()
        self.run_sync(self.p, "contacts")
        c = hubspot_state(self.s)["person3@example.com"]
        self.assertEqual(c["ltv"], "4.5")
        self.assertEqual(c["vip"], "true")
        self.assertEqual(c["signup"], "2024-01-04T10:03:00Z")
        self.assertEqual(c["source"], "backflow")
        self.assertEqual(hubspot_state(self.s)["person2@example.com"]["vip"], "false")

    def test_injected_throttling_and_server_errors_lose_nothing(self):
        self.configure(batch_size=100, max_retries=6)
        self.s.control(status_sequence=[429, 503, "close", 500, 429, 502], retry_after=1,
                       fault_path="batch/upsert")
        run = self.run_sync(self.p, "contacts")
        self.assertCounts(run, status="succeeded", added=N, rejected=0, failed=0)
        self.assertStateIsModel()
        c = self.s.counters()["counters"]
        self.assertEqual(c["injected_faults"], 6)
        self.assertEqual(c["created"], N)

    def test_lost_acknowledgement_is_resent_and_idempotent(self):
        self.configure(batch_size=100)
        self.s.control(apply_then_fail=2, fault_path="batch/upsert")
        run = self.run_sync(self.p, "contacts")
        self.assertCounts(run, status="succeeded", added=N, failed=0)
        self.assertStateIsModel()
        c = self.s.counters()["counters"]
        self.assertEqual(c["created"], N)           # applied twice, created once
        self.assertEqual(c["upserted_inputs"], N + 200)

    def test_run_stopped_by_outage_then_next_run_completes_exactly(self):
        self.configure(batch_size=100, extra="    max_in_flight: 1\n")
        self.s.control(fail_after_requests=2)       # properties read + one upsert, then 503s
        run = self.run_sync(self.p, "contacts", expect=4)
        self.assertEqual(run["status"], "failed")
        self.assertIn("destination 'crm'", run["error"])
        first = run["added"]
        self.assertEqual(first, 100)
        self.s.control(clear_faults=True)
        run = self.run_sync(self.p, "contacts")
        self.assertCounts(run, status="succeeded", added=N - first, failed=0, rejected=0)
        self.assertStateIsModel()
        self.assertEqual(self.s.counters()["counters"]["created"], N)

    def test_partial_failures_are_row_errors_with_hubspot_reason(self):
        self.configure()
        self.s.control(reject_ids=["person7@example.com", "person77@example.com"])
        run = self.run_sync(self.p, "contacts", expect=1)
        self.assertCounts(run, status="partial", added=N - 2, rejected=2, failed=0)
        errs = self.errors(self.p, "contacts")
        self.assertEqual(len(errs), 2)
        for e in errs:
            self.assertIn("HubSpot VALIDATION_ERROR", e["reason"])
            self.assertNotIn("person7", e["reason"])  # row values never in reasons
        self.s.control(clear_faults=True)
        run = self.run_sync(self.p, "contacts")
        self.assertCounts(run, status="succeeded", added=2, rejected=0)
        self.assertStateIsModel()

    def test_invalid_value_rejects_only_its_record(self):
        # HubSpot refuses a whole batch for one bad input; Backflow splits it.
        self.p.sql("UPDATE users SET email = 'not-an-email' WHERE id = 42")
        self.configure()
        run = self.run_sync(self.p, "contacts", expect=1)
        self.assertCounts(run, status="partial", added=N - 1, rejected=1, failed=0)
        errs = self.errors(self.p, "contacts")
        self.assertEqual(len(errs), 1)
        self.assertIn("INVALID_EMAIL", errs[0]["reason"])
        self.assertNotIn("not-an-email", errs[0]["reason"])
        state = hubspot_state(self.s)
        self.assertEqual(len(state), N - 1)

    def test_unknown_property_stops_before_sending_with_a_hint(self):
        self.p.write_config(hubspot_config(self.s.base).replace("plan: plan", "plna: plan"))
        run = self.run_sync(self.p, "contacts", expect=2)
        self.assertIn("no property 'plna'", run["error"])
        self.assertIn("did you mean 'plan'", run["error"])
        self.assertNotIn("upsert_requests", self.s.counters()["counters"])

    def test_bad_token_is_unavailable_and_never_printed(self):
        self.configure(token="pat-na1-wrong-token-0000")
        p = self.p.run("run", "contacts", "--json")
        self.assertEqual(p.returncode, 4, p.stderr)
        self.assertIn("HTTP 401", p.stderr)
        self.assertIn("check the token", p.stderr)
        self.assertNotIn("pat-na1-wrong-token-0000", p.stdout + p.stderr)
        v = self.p.run("validate", "--connect")
        self.assertNotEqual(v.returncode, 0)
        self.assertNotIn("pat-na1-wrong-token-0000", v.stdout + v.stderr)
        for root, _, files in os.walk(os.path.join(self.p.dir, ".backflow")):
            for f in files:
                with open(os.path.join(root, f), "rb") as fh:
                    self.assertNotIn(b"pat-na1-wrong-token-0000", fh.read(), f)

    def test_validate_checks_credentials(self):
        self.configure()
        v = self.p.run("validate", "--connect")
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        self.assertIn("destination crm (hubspot)", v.stdout)

    def test_update_mode_touches_only_existing_contacts(self):
        self.configure()
        self.run_sync(self.p, "contacts")
        self.p.write_config(hubspot_config(self.s.base, mode="update"))
        self.p.run("reset", "contacts")
        make_users(self.p, 3, start=5001)
        run = self.run_sync(self.p, "contacts", expect=1)
        self.assertCounts(run, added=N, rejected=3)
        errs = self.errors(self.p, "contacts")
        self.assertTrue(all("mode update" in e["reason"] for e in errs), errs)
        self.assertEqual(len(hubspot_state(self.s)), N)

    def test_check_of_rate_limit_config_errors_name_the_place(self):
        self.configure(rate_limit="{requests_per_second: fast}")
        p = self.p.run("validate", "--connect")
        self.assertEqual(p.returncode, 2)
        self.assertIn("backflow.yml:", p.stderr + p.stdout)
        self.assertIn("rate_limit.requests_per_second", p.stderr + p.stdout)


class HubSpotDocState(CrmCase):
    def test_state_endpoint_shape(self):
        s = self.new_server("hubspot_server.py", {"token": HS_TOKEN})
        doc = s.state()
        self.assertIn("contacts", doc["objects"])
        json.dumps(doc)
