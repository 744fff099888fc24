"""The studio's segment API (issue 18): preview builds SQL with bound
parameters against the warehouse's real columns, masks pii below admin;
save writes models/NAME.yml (included from backflow.yml), refuses stale
versions, bad input and viewers with a 4xx and writes nothing then."""
import json
import os
import sqlite3
import unittest

from test_serve_support import TOKEN, new_project, serve_config, start_server

VIEWER = "viewer-token-0123456789ab"
EDITOR = "editor-token-0123456789ab"
SYNCS = ("  by_hand:\n    model: users\n    destination: out\n    match: {user_id: id}\n"
         "    fields: {email: email}\n")


def config():
    return serve_config(SYNCS).replace(
        f"server: {{listen: \"127.0.0.1:8420\", token: \"{TOKEN}\"}}\n",
        f"server:\n  listen: \"127.0.0.1:8420\"\n  token: \"{TOKEN}\"\n  tokens:\n"
        f"    - {{name: ann, token: \"{VIEWER}\", role: viewer}}\n"
        f"    - {{name: bob, token: \"{EDITOR}\", role: editor}}\n")


TWO = {"all": [{"column": "ltv", "op": ">", "value": 10},
               {"column": "email", "op": "contains", "value": "1"}]}


class Studio(unittest.TestCase):
    def setUp(self):
        self.p = new_project(self, config(), rows=30)
        self.p.sql("CREATE TABLE customers (cid INTEGER, email TEXT, signed_up TEXT);"
                   "INSERT INTO customers VALUES (1, 'a@x', datetime('now', '-3 days')),"
                   "(2, 'b@x', datetime('now', '-60 days')), (3, 'c@x', datetime('now', '-1 day'));")
        self.s = start_server(self, self.p)


    def tearDown(self):
        # A graceful stop exits 0: under ASan, a leak or memory error makes it fail.
        code = self.s.stop()
        self.assertEqual(code, 0, self.s.log())
    def post(self, path, body, token=EDITOR, method="POST"):
        status, _, data = self.s.request(method, path, token=token, body=body)
        return status, json.loads(data)

    def files(self):
        out = {}
        for root, _, names in os.walk(self.p.dir):
            if ".backflow" in root:
                continue
            for n in names:
                if n.endswith(".yml"):
                    with open(os.path.join(root, n)) as f:
                        out[os.path.relpath(os.path.join(root, n), self.p.dir)] = f.read()
        return out

    def test_preview_binds_values_and_masks_pii(self):
        want = self.p.query("SELECT COUNT(*) FROM users WHERE ltv > 10 AND email LIKE '%1%'")[0][0]
        status, doc = self.post("/api/studio/segments/preview",
                                {"base": {"model": "users"}, "where": TWO, "sample": 5})
        self.assertEqual(status, 200, doc)
        self.assertEqual(doc["row_count"], want)
        self.assertGreater(want, 0)
        self.assertEqual(doc["params"], ["10", "%1%"])
        self.assertIn('"ltv" > $1', doc["sql"])
        self.assertNotIn("'%1%'", doc["sql"])
        self.assertEqual(len(doc["sample"]), 5)
        self.assertEqual(set(doc["masked"]), {"email", "first_name"})
        self.assertTrue(all(r["email"] == "***" for r in doc["sample"]))
        self.assertEqual(doc["columns"], ["id", "email", "first_name", "ltv"])
        # A viewer may preview (it writes nothing); the admin sees the values.
        status, doc = self.post("/api/studio/segments/preview",
                                {"base": {"model": "users"}, "where": TWO}, token=VIEWER)
        self.assertEqual(status, 200, doc)
        status, doc = self.post("/api/studio/segments/preview",
                                {"base": {"model": "users"}, "where": TWO}, token=TOKEN)
        self.assertEqual(doc["masked"], [])
        self.assertRegex(doc["sample"][0]["email"], r"^person\d+@example\.com$")
        # A table base with a relative date.
        status, doc = self.post("/api/studio/segments/preview", {
            "base": {"warehouse": "local", "table": "customers"},
            "where": {"column": "signed_up", "op": "in_last_days", "value": 30}})
        self.assertEqual(status, 200, doc)
        self.assertEqual(doc["row_count"], 2)
        self.assertEqual(sorted(r["cid"] for r in doc["sample"]), [1, 3])
        # A table has no pii declaration: its text values are masked below admin.
        self.assertEqual({r["email"] for r in doc["sample"]}, {"***"})
        self.assertEqual(doc["masked"], ["email", "signed_up"])

    def test_injection_attempts_are_refused_or_inert(self):
        status, doc = self.post("/api/studio/segments/preview", {
            "base": {"model": "users"},
            "where": {"column": "email", "op": "=", "value": "x' OR '1'='1"}})
        self.assertEqual(status, 200, doc)
        self.assertEqual(doc["row_count"], 0)
        bad = [
            ({"base": {"model": "users"},
              "where": {"column": "ltv\" OR 1=1 --", "op": "=", "value": 1}},
             "where.column: unknown column"),
            ({"base": {"model": "users"}, "where": {"column": "emial", "op": "=", "value": 1}},
             "did you mean 'email'?"),
            ({"base": {"model": "users"},
              "where": {"column": "ltv", "op": "= 1 OR 1 =", "value": 1}}, "unknown operator"),
            ({"base": {"warehouse": "local", "table": "users; DROP TABLE users"}},
             "is not a table name"),
            ({"base": {"warehouse": "local", "table": "nope"}}, "cannot read the columns"),
            ({"base": {"model": "nope"}}, "unknown model 'nope'"),
        ]
        for body, want in bad:
            with self.subTest(want=want):
                status, doc = self.post("/api/studio/segments/preview", body)
                self.assertIn(status, (400, 422), doc)
                self.assertIn(want, doc["error"])
        self.assertEqual(self.p.query("SELECT COUNT(*) FROM users")[0][0], 30)
        status, _, data = self.s.request("POST", "/api/studio/segments/preview", token=EDITOR,
                                         body=b"{not json")
        self.assertEqual(status, 400, data)

    def test_save_as_model_then_conflicts(self):
        before = self.files()
        status, doc = self.post("/api/studio/models/vip", None, method="GET")
        self.assertEqual(status, 200, doc)
        self.assertEqual(doc["version"], "new")
        self.assertFalse(doc["exists"])
        body = {"base": {"model": "users"}, "where": TWO, "version": "new"}
        # A viewer cannot save; nothing is written.
        status, doc = self.post("/api/studio/models/vip", body, token=VIEWER, method="PUT")
        self.assertEqual(status, 403, doc)
        self.assertEqual(self.files(), before)
        # Bad input: nothing is written.
        for name, b, want in [
            ("vip", dict(body, where={"column": "nope", "op": "=", "value": 1}), "unknown column"),
            ("vip", dict(body, primary_key="nope"), "primary_key: 'nope'"),
            ("vip", dict(body, sql="SELECT 1"), "unknown key 'sql'"),
            ("vip", {k: v for k, v in body.items() if k != "version"}, "version:"),
            ("users", body, "model 'users' is already defined at"),
            ("bad-name", body, "not a model name"),
        ]:
            with self.subTest(want=want):
                status, doc = self.post(f"/api/studio/models/{name}", b, method="PUT")
                self.assertIn(status, (400, 409), doc)
                self.assertIn(want, doc["error"])
                self.assertEqual(self.files(), before)
        status, doc = self.post("/api/studio/models/vip", body, method="PUT")
        self.assertEqual(status, 200, doc)
        files = self.files()
        self.assertIn("models/vip.yml", files)
        self.assertIn("include: [models/*.yml, syncs/*.yml]", files["backflow.yml"])
        self.assertIn("models:\n  vip:\n", files["models/vip.yml"])
        r = self.p.run("validate")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # The saved SQL selects what the preview counted.
        con = sqlite3.connect(self.p.db_path)
        n = con.execute(f"SELECT COUNT(*) FROM ({doc['sql']})").fetchone()[0]
        con.close()
        want = self.p.query("SELECT COUNT(*) FROM users WHERE ltv > 10 AND email LIKE '%1%'")[0][0]
        self.assertEqual(n, want)
        version = doc["version"]
        status, got = self.post("/api/studio/models/vip", None, method="GET")
        self.assertEqual(got["version"], version)
        self.assertEqual(got["yaml"], files["models/vip.yml"])
        # Saving again as "new" is a conflict.
        status, doc = self.post("/api/studio/models/vip", body, method="PUT")
        self.assertEqual(status, 409, doc)
        # A hand edit since the read: the studio refuses and keeps it.
        path = os.path.join(self.p.dir, "models", "vip.yml")
        with open(path, "a") as f:
            f.write("# hand edit\n")
        status, doc = self.post("/api/studio/models/vip", dict(body, version=version), method="PUT")
        self.assertEqual(status, 409, doc)
        self.assertIn("changed on disk since it was read", doc["error"])
        with open(path) as f:
            self.assertTrue(f.read().endswith("# hand edit\n"))
        # With the current version the save goes through.
        status, got = self.post("/api/studio/models/vip", None, method="GET")
        status, doc = self.post("/api/studio/models/vip",
                                dict(body, version=got["version"], where=TWO["all"][0]),
                                method="PUT")
        self.assertEqual(status, 200, doc)
        # The same with HTTP's ETag / If-Match instead of "version".
        status, hdrs, data = self.s.request("GET", "/api/studio/models/vip", token=EDITOR)
        etag = hdrs["etag"]
        self.assertEqual(etag, '"%s"' % json.loads(data)["version"])
        no_version = {k: v for k, v in body.items() if k != "version"}
        status, hdrs, data = self.s.request("PUT", "/api/studio/models/vip", token=EDITOR,
                                            body=no_version, headers={"If-Match": '"0123"'})
        self.assertEqual(status, 409, data)
        status, hdrs, data = self.s.request("PUT", "/api/studio/models/vip", token=EDITOR,
                                            body=dict(body, version="new"),
                                            headers={"If-Match": etag})
        self.assertEqual(status, 400, data)  # version and If-Match disagree
        status, hdrs, data = self.s.request("PUT", "/api/studio/models/vip", token=EDITOR,
                                            body=no_version, headers={"If-Match": etag})
        self.assertEqual(status, 200, data)
        self.assertEqual(hdrs["etag"], '"%s"' % json.loads(data)["version"])
        status, _, data = self.s.request("GET", "/api/edits", token=TOKEN)
        edits = [e for e in json.loads(data)["edits"] if e["action"] == "/api/studio/models/{name}"]
        self.assertEqual([e["who"] for e in edits], ["bob", "bob", "bob"])
        self.assertEqual(edits[0]["detail"]["path"], "models/vip.yml")
        self.assertEqual(edits[1]["detail"]["previous_version"], got["version"])


if __name__ == "__main__":
    unittest.main()
