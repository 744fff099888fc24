"""Salesforce (Bulk API 2.0) destination against the strict contract server
(issue 4): state == model after first run, changes, mirror deletes and faults;
failed rows are rejected with sf__Error, unprocessed rows retried."""
from test_saas_crm_support import SF_TOKEN, CrmCase, base_config, iso, model_rows, num_text

N = 120


def sf_config(base_url, token=SF_TOKEN, mode="mirror", batch_size=None, extra=""):
    dest = (f"  sf:\n    type: salesforce\n    access_token: \"{token}\"\n"
            f"    base_url: \"{base_url}\"\n    poll_interval: 20ms\n    poll_max_interval: 200ms\n"
            f"    max_retries: 4\n    retry_base: 20ms\n    retry_max_wait: 3s\n    timeout: 5s\n" + extra)
    sync = ("  people:\n    model: users\n    destination: sf\n"
            f"    mode: {mode}\n    object: Contact\n    match: {{Warehouse_Id__c: id}}\n"
            "    fields: {Email: email, FirstName: first_name, LastName: last_name, Plan__c: plan,"
            " Ltv__c: ltv, Vip__c: vip, Signup__c: signup}\n")
    if batch_size:
        sync += f"    batch_size: {batch_size}\n"
    return base_config(dest, sync)


def sf_expected(project):
    out = {}
    for r in model_rows(project):
        out[str(r["id"])] = {
            "Warehouse_Id__c": str(r["id"]), "Email": r["email"], "FirstName": r["first_name"],
            "LastName": r["last_name"], "Plan__c": r["plan"],
            "Ltv__c": num_text(r["ltv"]) if r["ltv"] is not None else None,
            "Vip__c": str(r["vip"]) if r["vip"] is not None else None,
            "Signup__c": iso(r["signup"]) if r["signup"] else None}
    return out


def sf_state(server):
    objs = server.state()["objects"]["Contact"]
    return {rec["Warehouse_Id__c"]: rec for rec in objs.values()}


class SalesforceSync(CrmCase):
    def setUp(self):
        self.p = self.new_project(rows=N)
        self.s = self.new_server("salesforce_server.py", {"token": SF_TOKEN, "processing_ms": 60,
                                                          "query_page_size": 7})

    def configure(self, **kw):
        self.p.write_config(sf_config(self.s.base, **kw))

    def assertStateIsModel(self):
        self.assertEqual(sf_state(self.s), sf_expected(self.p))

    def test_first_run_changes_and_mirror_deletes_match_model(self):
        self.configure()
        run = self.run_sync(self.p, "people")
        self.assertCounts(run, status="succeeded", added=N, removed=0, rejected=0, failed=0)
        self.assertStateIsModel()
        c1 = self.s.counters()["counters"]
        self.assertEqual((c1["jobs_created"], c1["uploads"], c1["created"]), (1, 1, N))

        changed, added, removed = self.change_rows(self.p)
        self.p.sql("UPDATE users SET plan = NULL WHERE id = 60")  # NULL blanks the field (#N/A)
        run = self.run_sync(self.p, "people")
        self.assertCounts(run, status="succeeded", added=added, changed=changed + 1, removed=removed,
                          rejected=0, failed=0)
        self.assertStateIsModel()
        self.assertIsNone(sf_state(self.s)["60"]["Plan__c"])
        c2 = self.s.counters()["counters"]
        self.assertEqual(c2["deleted"], removed)
        self.assertEqual(c2["query_pages"], 3)  # 20 ids over pages of 7

    def test_csv_quoting_round_trips(self):
        self.p.sql("UPDATE users SET first_name = 'Anne, \"the\" Great' || char(10) || 'II',"
                   " last_name = ' padded ' WHERE id = 5")
        self.configure()
        self.run_sync(self.p, "people")
        rec = sf_state(self.s)["5"]
        self.assertEqual(rec["FirstName"], 'Anne, "the" Great\nII')
        self.assertEqual(rec["LastName"], " padded ")
        self.assertStateIsModel()

    def test_injected_faults_lose_nothing(self):
        self.configure(batch_size=50)
        self.s.control(status_sequence=[503, 429, "close", 500], retry_after=1, fault_path="jobs/ingest")
        run = self.run_sync(self.p, "people")
        self.assertCounts(run, status="succeeded", added=N, failed=0, rejected=0)
        self.assertStateIsModel()
        self.assertEqual(self.s.counters()["counters"]["injected_faults"], 4)

    def test_failed_rows_rejected_with_sf_error_and_unprocessed_retried(self):
        self.p.sql("UPDATE users SET last_name = NULL WHERE id = 9")  # required on create
        self.configure()
        self.s.control(reject_ids=["4"], unprocessed_ids=["6"])
        run = self.run_sync(self.p, "people", expect=1)
        self.assertCounts(run, status="partial", added=N - 3, rejected=2, failed=1)
        reasons = sorted(e["reason"] for e in self.errors(self.p, "people"))
        self.assertEqual(len(reasons), 3, reasons)
        self.assertTrue(any("FIELD_CUSTOM_VALIDATION_EXCEPTION" in r for r in reasons), reasons)
        self.assertTrue(any("REQUIRED_FIELD_MISSING" in r for r in reasons), reasons)
        self.assertTrue(any("not accepted after 3 attempts" in r and "did not process" in r
                            for r in reasons), reasons)
        self.s.control(clear_faults=True, unprocessed_ids=[])
        self.p.sql("UPDATE users SET last_name = 'Nine' WHERE id = 9")
        run = self.run_sync(self.p, "people")
        self.assertCounts(run, status="succeeded", added=3, rejected=0, failed=0)
        self.assertStateIsModel()

    def test_outage_stops_run_then_next_run_completes(self):
        self.configure(batch_size=40, extra="    max_in_flight: 1\n")
        self.s.control(fail_after_requests=8)
        run = self.run_sync(self.p, "people", expect=4)
        first = run["added"]
        self.assertEqual(run["status"], "failed")
        self.s.control(clear_faults=True)
        run = self.run_sync(self.p, "people")
        self.assertEqual(first + run["added"], N)
        self.assertStateIsModel()

    def test_bad_token_is_unavailable_and_never_printed(self):
        self.configure(token="00DBAD!wrongwrongwrongtoken")
        p = self.p.run("run", "people", "--json")
        self.assertEqual(p.returncode, 4, p.stderr)
        self.assertIn("INVALID_SESSION_ID", p.stderr)
        self.assertNotIn("wrongwrongwrong", p.stdout + p.stderr)
        v = self.p.run("validate", "--connect")
        self.assertNotEqual(v.returncode, 0)
        self.assertNotIn("wrongwrongwrong", v.stdout + v.stderr)

    def test_config_needs_object_and_one_external_id(self):
        self.p.write_config(sf_config(self.s.base).replace("    object: Contact\n", ""))
        v = self.p.run("validate", "--connect")
        self.assertEqual(v.returncode, 2)
        self.assertIn("salesforce needs object", v.stdout + v.stderr)
