"""The studio's mapping and schedule editor API (issue 18): model columns,
destination fields listed from HubSpot's properties API (the strict contract
server, tests/contract/hubspot_server.py) and free text elsewhere, a sync's
plan before saving, syncs/NAME.yml saved only when it plans, conflicts and
bad input refused with a 4xx and nothing written."""
import json
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "contract"))
from contract_base import ContractServer  # noqa: E402
from test_serve_support import TOKEN, new_project, start_server  # noqa: E402

VIEWER = "viewer-token-0123456789ab"
EDITOR = "editor-token-0123456789ab"
HS_TOKEN = "pat-na1-11111111-2222-3333-4444-555555555555"
SF_TOKEN = "00D5g000004XyZa!AQ8AQLongSecretAccessToken.abc"


def config(hs_base, sf_base):
    return ("version: 1\n"
            f"server:\n  token: \"{TOKEN}\"\n  tokens:\n"
            f"    - {{name: ann, token: \"{VIEWER}\", role: viewer}}\n"
            f"    - {{name: bob, token: \"{EDITOR}\", role: editor}}\n"
            "warehouses:\n  local: {type: sqlite, path: warehouse.db}\n"
            "models:\n  users:\n    warehouse: local\n"
            "    sql: SELECT id, email, first_name, plan, ltv FROM users\n"
            "    primary_key: id\n    pii: {email: email, first_name: name}\n"
            "destinations:\n  out: {type: file, path: out/users.jsonl}\n"
            f"  crm: {{type: hubspot, token: \"{HS_TOKEN}\", base_url: \"{hs_base}\","
            " rate_limit: {requests_per_second: 0}, max_retries: 0, timeout: 5s}\n"
            f"  sf: {{type: salesforce, access_token: \"{SF_TOKEN}\", base_url: \"{sf_base}\","
            " max_retries: 0, timeout: 5s}\n"
            "syncs:\n  existing:\n    model: users\n    destination: out\n"
            "    match: {user_id: id}\n    fields: {email: email}\n")


SYNC = {"model": "users", "destination": "out", "mode": "upsert", "match": {"user_id": "id"},
        "fields": {"email": "email", "name": "first_name", "ltv": "ltv"},
        "schedule": {"every": "1h"}}


class StudioSync(unittest.TestCase):
    def setUp(self):
        self.hs = ContractServer.start("hubspot_server.py", config={"token": HS_TOKEN})
        self.addCleanup(self.hs.stop)
        self.sf = ContractServer.start("salesforce_server.py", config={"token": SF_TOKEN})
        self.addCleanup(self.sf.stop)
        self.p = new_project(self, config(self.hs.base, self.sf.base), rows=20)
        self.s = start_server(self, self.p)


    def tearDown(self):
        # A graceful stop exits 0: under ASan, a leak or memory error makes it fail.
        code = self.s.stop()
        self.assertEqual(code, 0, self.s.log())
    def call(self, method, path, body=None, token=EDITOR):
        status, _, data = self.s.request(method, path, token=token, body=body)
        return status, json.loads(data)

    def files(self):
        out = {}
        for root, _, names in os.walk(self.p.dir):
            if ".backflow" not in root:
                for n in names:
                    if n.endswith(".yml"):
                        with open(os.path.join(root, n)) as f:
                            out[os.path.relpath(os.path.join(root, n), self.p.dir)] = f.read()
        return out

    def test_columns_and_destination_fields(self):
        status, doc = self.call("GET", "/api/studio/models/users/columns", token=VIEWER)
        self.assertEqual(status, 200, doc)
        cols = {c["name"]: c for c in doc["columns"]}
        self.assertEqual(list(cols), ["id", "email", "first_name", "plan", "ltv"])
        self.assertEqual(cols["email"]["pii"], "email")
        self.assertIsNone(cols["plan"]["pii"])
        self.assertNotEqual(cols["ltv"]["type"], cols["email"]["type"])
        status, doc = self.call("GET", "/api/studio/destinations/crm/fields?object=contacts")
        self.assertEqual(status, 200, doc)
        self.assertTrue(doc["listed"])
        fields = {f["name"]: f["type"] for f in doc["fields"]}
        self.assertEqual(fields["email"], "string")
        self.assertEqual(fields["ltv"], "number")
        self.assertEqual(fields["vip"], "bool")
        self.assertIn("firstname", fields)
        status, doc = self.call("GET", "/api/studio/destinations/crm/fields?object=no_such")
        self.assertEqual(status, 502, doc)  # HubSpot's 404 for an unknown object type
        status, doc = self.call("GET", "/api/studio/destinations/crm/fields?object=a/b")
        self.assertEqual(status, 400, doc)
        # Salesforce: the object's createable/updateable fields from sObject Describe.
        status, doc = self.call("GET", "/api/studio/destinations/sf/fields?object=Contact")
        self.assertEqual(status, 200, doc)
        sf = {f["name"]: f for f in doc["fields"]}
        self.assertNotIn("Id", sf)
        self.assertEqual(sf["Email"]["type"], "email")
        self.assertEqual(sf["Ltv__c"]["type"], "double")
        self.assertTrue(sf["Warehouse_Id__c"]["external_id"])
        self.assertFalse(sf["Email"]["external_id"])
        status, doc = self.call("GET", "/api/studio/destinations/sf/fields?object=Nope__c")
        self.assertEqual(status, 502, doc)
        self.assertIn("NOT_FOUND", doc["error"])
        status, doc = self.call("GET", "/api/studio/destinations/out/fields")
        self.assertEqual(status, 200, doc)
        self.assertEqual((doc["listed"], doc["fields"]), (False, []))
        status, doc = self.call("GET", "/api/studio/destinations/nope/fields")
        self.assertEqual(status, 404, doc)

    def test_preview_save_and_run(self):
        before = self.files()
        status, doc = self.call("POST", "/api/studio/syncs/vip_out/preview", SYNC, token=VIEWER)
        self.assertEqual(status, 200, doc)
        plan = doc["plan"]
        self.assertEqual((plan["added"], plan["changed"], plan["removed"]), (20, 0, 0))
        self.assertEqual(len(plan["sample"]), 5)
        text = json.dumps(plan["sample"])
        self.assertNotIn("@example.com", text)  # pii masked below admin
        self.assertIn("***", text)
        self.assertIn("schedule: {\"every\": \"1h\"}", doc["yaml"])
        self.assertEqual(self.files(), before)  # a preview writes nothing
        # HubSpot: the plan of a sync to the CRM.
        status, doc = self.call("POST", "/api/studio/syncs/to_crm/preview", {
            "model": "users", "destination": "crm", "object": "contacts",
            "match": {"email": "email"}, "fields": {"firstname": "first_name", "ltv": "ltv"}})
        self.assertEqual(status, 200, doc)
        self.assertEqual(doc["plan"]["added"], 20)
        # Save: a viewer cannot.
        status, doc = self.call("PUT", "/api/studio/syncs/vip_out", dict(SYNC, version="new"),
                                token=VIEWER)
        self.assertEqual(status, 403, doc)
        self.assertEqual(self.files(), before)
        status, doc = self.call("PUT", "/api/studio/syncs/vip_out", dict(SYNC, version="new"))
        self.assertEqual(status, 200, doc)
        files = self.files()
        saved_version = doc["version"]
        self.assertEqual(files["syncs/vip_out.yml"], doc["yaml"])
        self.assertIn("include: [models/*.yml, syncs/*.yml]", files["backflow.yml"])
        r = self.p.run("validate")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # Run it from the studio (the server started without it), then see the run.
        status, doc = self.call("POST", "/api/studio/syncs/vip_out/run", token=VIEWER)
        self.assertEqual(status, 403, doc)
        status, doc = self.call("POST", "/api/studio/syncs/vip_out/run")
        self.assertEqual(status, 200, doc)
        self.assertEqual((doc["status"], doc["counts"]["added"]), ("succeeded", 20))
        status, runs = self.call("GET", "/api/studio/syncs/vip_out/runs", token=VIEWER)
        self.assertEqual([(r["id"], r["status"]) for r in runs["runs"]],
                         [(doc["run_id"], "succeeded")])
        status, doc = self.call("POST", "/api/studio/syncs/nope/run")
        self.assertEqual(status, 404, doc)
        with open(os.path.join(self.p.dir, "out", "users.jsonl")) as f:
            self.assertEqual(len(f.read().splitlines()), 20)
        # After the run, the plan of a changed mapping shows changes.
        status, got = self.call("GET", "/api/studio/syncs/vip_out")
        self.assertEqual(got["version"], saved_version)
        status, doc = self.call("POST", "/api/studio/syncs/vip_out/preview",
                                dict(SYNC, fields={"email": "email", "name": "plan"}))
        self.assertEqual(status, 200, doc)
        self.assertEqual((doc["plan"]["added"], doc["plan"]["changed"]), (0, 20))
        # Stale version and a second "new" are conflicts; nothing changes.
        saved = self.files()
        status, doc = self.call("PUT", "/api/studio/syncs/vip_out", dict(SYNC, version="new"))
        self.assertEqual(status, 409, doc)
        status, doc = self.call("PUT", "/api/studio/syncs/existing", dict(SYNC, version="new"))
        self.assertEqual(status, 409, doc)
        self.assertIn("already defined at", doc["error"])
        self.assertEqual(self.files(), saved)
        status, _, data = self.s.request("GET", "/api/edits", token=TOKEN)
        edits = json.loads(data)["edits"]
        self.assertEqual([(e["who"], e["target"]) for e in edits],
                         [("bob", "/api/studio/syncs/vip_out"),
                          ("bob", "/api/studio/syncs/vip_out/run")])

    def test_bad_input_is_refused_and_nothing_written(self):
        before = self.files()
        cases = [
            ("vip_out", dict(SYNC, fields={"email": "emial"}), 422, "emial"),
            ("vip_out", dict(SYNC, model="users\n    sql: SELECT 1"), 422, "unknown model"),
            ("vip_out", dict(SYNC, destination="nowhere"), 422, "nowhere"),
            ("vip_out", dict(SYNC, schedule={"every": "soon"}), 422, "soon"),
            ("vip_out", dict(SYNC, schedule={"hourly": True}), 400, "schedule:"),
            ("vip_out", dict(SYNC, match=["id"]), 400, "match:"),
            ("vip_out", dict(SYNC, sql="DROP TABLE users"), 400, "unknown key 'sql'"),
            ("vip_out", {k: v for k, v in SYNC.items() if k != "model"}, 400, "model:"),
            ("bad;name", SYNC, 400, "not a sync name"),
            ("vip_out", {"model": "users"}, 400, "destination:"),
        ]
        for name, body, want_status, want in cases:
            with self.subTest(want=want):
                status, doc = self.call("PUT", f"/api/studio/syncs/{name}",
                                        dict(body, version="new"))
                self.assertEqual(status, want_status, doc)
                self.assertIn(want, doc["error"])
                self.assertEqual(self.files(), before)
        status, _, data = self.s.request("PUT", "/api/studio/syncs/vip_out", token=EDITOR,
                                         body=b"[1,2]")
        self.assertEqual(status, 400, data)
        self.assertEqual(self.files(), before)
        self.assertFalse(os.path.exists(os.path.join(self.p.dir, ".backflow", "edits.jsonl")))


if __name__ == "__main__":
    unittest.main()
