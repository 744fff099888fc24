"""Zendesk destination against the strict contract server (issue 4): users
create_or_update_many with job-status polling; state == model after first
run, changes, mirror deletes (by external_id and by email) and faults."""
from test_saas_crm_support import ZD_EMAIL, ZD_TOKEN, CrmCase, base_config, iso, model_rows

N = 230


def zd_config(base_url, match="external_id: id", token=ZD_TOKEN, mode="mirror", batch_size=None,
              extra=""):
    fields = "email: email, name: first_name, plan: plan, ltv: ltv, vip: vip, signup: signup"
    if match.startswith("email"):
        fields = "name: first_name, plan: plan, ltv: ltv, vip: vip, signup: signup"
    dest = (f"  zd:\n    type: zendesk\n    email: {ZD_EMAIL}\n    api_token: \"{token}\"\n"
            f"    base_url: \"{base_url}\"\n    poll_interval: 20ms\n    poll_max_interval: 200ms\n"
            f"    rate_limit: {{requests_per_second: 0}}\n    max_retries: 4\n    retry_base: 20ms\n"
            f"    retry_max_wait: 3s\n    timeout: 5s\n" + extra)
    sync = ("  users_zd:\n    model: users\n    destination: zd\n"
            f"    mode: {mode}\n    match: {{{match}}}\n    fields: {{{fields}}}\n")
    if batch_size:
        sync += f"    batch_size: {batch_size}\n"
    return base_config(dest, sync)


def zd_expected(project, by="external_id"):
    out = {}
    for r in model_rows(project):
        key = str(r["id"]) if by == "external_id" else r["email"]
        user = {"name": r["first_name"],
                "user_fields": {"plan": r["plan"], "ltv": r["ltv"], "vip": r["vip"],
                                "signup": iso(r["signup"]) if r["signup"] else None}}
        if by == "external_id":
            user["external_id"] = str(r["id"])
            user["email"] = r["email"]
        else:
            user["email"] = r["email"]
        out[key] = user
    return out


def zd_state(server, by="external_id"):
    out = {}
    for u in server.state()["users"].values():
        u = dict(u)
        u.pop("id")
        out[u[by]] = u
    return out


class ZendeskSync(CrmCase):
    def setUp(self):
        self.p = self.new_project(rows=N)
        self.s = self.new_server("zendesk_server.py", {"email": ZD_EMAIL, "api_token": ZD_TOKEN,
                                                       "processing_ms": 50})

    def test_first_run_changes_and_mirror_deletes_match_model(self):
        self.p.write_config(zd_config(self.s.base))
        run = self.run_sync(self.p, "users_zd")
        self.assertCounts(run, status="succeeded", added=N, rejected=0, failed=0)
        self.assertEqual(zd_state(self.s), zd_expected(self.p))
        c1 = self.s.counters()["counters"]
        self.assertEqual((c1["jobs"], c1["created"]), (3, N))

        changed, added, removed = self.change_rows(self.p)
        run = self.run_sync(self.p, "users_zd")
        self.assertCounts(run, status="succeeded", added=added, changed=changed, removed=removed,
                          rejected=0, failed=0)
        self.assertEqual(zd_state(self.s), zd_expected(self.p))
        self.assertEqual(self.s.counters()["counters"]["deleted"], removed)

    def test_match_by_email_and_delete_by_search(self):
        self.p.write_config(zd_config(self.s.base, match="email: email"))
        run = self.run_sync(self.p, "users_zd")
        self.assertCounts(run, status="succeeded", added=N)
        self.assertEqual(zd_state(self.s, "email"), zd_expected(self.p, "email"))
        self.p.sql("DELETE FROM users WHERE id > 220")
        run = self.run_sync(self.p, "users_zd")
        self.assertCounts(run, status="succeeded", removed=10)
        self.assertEqual(zd_state(self.s, "email"), zd_expected(self.p, "email"))
        self.assertEqual(self.s.counters()["counters"]["searches"], 10)

    def test_per_user_failures_are_rejected_with_zendesk_reason(self):
        self.p.sql("UPDATE users SET first_name = NULL WHERE id = 12")  # a new user needs a name
        self.p.write_config(zd_config(self.s.base))
        self.s.control(reject_ids=["15"])
        run = self.run_sync(self.p, "users_zd", expect=1)
        self.assertCounts(run, status="partial", added=N - 2, rejected=2, failed=0)
        reasons = sorted(e["reason"] for e in self.errors(self.p, "users_zd"))
        self.assertTrue(any("UserCreateError" in r and "Name" in r for r in reasons), reasons)
        self.assertTrue(any("UserUpdateError" in r for r in reasons), reasons)
        self.s.control(clear_faults=True)
        self.p.sql("UPDATE users SET first_name = 'Twelve' WHERE id = 12")
        run = self.run_sync(self.p, "users_zd")
        self.assertCounts(run, status="succeeded", added=2)
        self.assertEqual(zd_state(self.s), zd_expected(self.p))

    def test_injected_faults_lose_nothing(self):
        self.p.write_config(zd_config(self.s.base, batch_size=100))
        self.s.control(status_sequence=[429, 503, "close", 500], retry_after=1,
                       fault_path="create_or_update_many")
        run = self.run_sync(self.p, "users_zd")
        self.assertCounts(run, status="succeeded", added=N, failed=0)
        self.assertEqual(zd_state(self.s), zd_expected(self.p))
        self.s.control(status_sequence=[503, 502], fault_path="job_statuses")
        self.change_rows(self.p)
        run = self.run_sync(self.p, "users_zd")
        self.assertEqual(run["status"], "succeeded")
        self.assertEqual(zd_state(self.s), zd_expected(self.p))

    def test_bad_token_is_unavailable_and_never_printed(self):
        self.p.write_config(zd_config(self.s.base, token="zdWRONGsecret987654"))
        p = self.p.run("run", "users_zd", "--json")
        self.assertEqual(p.returncode, 4, p.stderr)
        self.assertIn("HTTP 401", p.stderr)
        self.assertNotIn("zdWRONGsecret987654", p.stdout + p.stderr)
        v = self.p.run("validate", "--connect")
        self.assertNotEqual(v.returncode, 0)
        self.assertNotIn("zdWRONGsecret987654", v.stdout + v.stderr)
