"""server.tokens (issue 18): viewer, editor and admin tokens; the single
server.token stays valid as admin; write routes need editor; every write is
in the edit log (<state_dir>/edits.jsonl) with the token's name."""
import json
import os
import unittest

from test_serve_support import TOKEN, new_project, serve_config, start_server, wait_for

VIEWER = "viewer-token-0123456789ab"
EDITOR = "editor-token-0123456789ab"
ADMIN2 = "admin2-token-0123456789ab"
SYNCS = ("  by_hand:\n    model: users\n    destination: out\n    match: {user_id: id}\n"
         "    fields: {email: email}\n")


def tokens_config(tokens_yaml):
    return serve_config(SYNCS).replace(
        f"server: {{listen: \"127.0.0.1:8420\", token: \"{TOKEN}\"}}\n",
        f"server:\n  listen: \"127.0.0.1:8420\"\n  token: \"{TOKEN}\"\n  tokens:\n{tokens_yaml}")


TOKENS = (f"    - {{name: ann, token: \"{VIEWER}\", role: viewer}}\n"
          f"    - {{name: bob, token: \"{EDITOR}\", role: editor}}\n"
          f"    - {{name: cat, token: \"{ADMIN2}\", role: admin}}\n")


class Roles(unittest.TestCase):
    def test_roles_gate_routes_and_edits_are_logged(self):
        p = new_project(self, tokens_config(TOKENS))
        s = start_server(self, p)
        # Everyone with a token reads.
        for tok in (VIEWER, EDITOR, ADMIN2, TOKEN):
            status, _, body = s.request("GET", "/api/syncs", token=tok)
            self.assertEqual(status, 200, body)
        status, _, _ = s.request("GET", "/api/syncs", token="not-a-token-at-all-xx")
        self.assertEqual(status, 401)
        # A viewer cannot trigger; nothing runs and nothing is logged.
        status, _, body = s.request("POST", "/api/syncs/by_hand/trigger", token=VIEWER)
        self.assertEqual(status, 403, body)
        err = json.loads(body)["error"]
        self.assertIn("token 'ann' has role viewer", err)
        self.assertIn("needs editor", err)
        self.assertEqual(s.runs("by_hand"), [])
        self.assertFalse(os.path.exists(os.path.join(p.dir, ".backflow", "edits.jsonl")))
        # The editor can.
        status, _, body = s.request("POST", "/api/syncs/by_hand/trigger", token=EDITOR)
        self.assertEqual(status, 202, body)
        wait_for(lambda: s.finished_runs("by_hand"), timeout=10, what="the triggered run")
        # The old single token is an admin named "token".
        status, _, body = s.request("POST", "/api/syncs/by_hand/trigger", token=TOKEN)
        self.assertIn(status, (202, 409), body)
        # The edit log: admin only.
        for tok in (VIEWER, EDITOR):
            status, _, body = s.request("GET", "/api/edits", token=tok)
            self.assertEqual(status, 403, body)
        status, _, body = s.request("GET", "/api/edits", token=ADMIN2)
        self.assertEqual(status, 200, body)
        edits = json.loads(body)["edits"]
        self.assertGreaterEqual(len(edits), 1, edits)
        self.assertEqual(edits[0]["who"], "bob")
        self.assertEqual(edits[0]["action"], "/api/syncs/{name}/trigger")
        self.assertEqual(edits[0]["target"], "/api/syncs/by_hand/trigger")
        self.assertRegex(edits[0]["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        if len(edits) > 1:
            self.assertEqual(edits[1]["who"], "token")
        with open(os.path.join(p.dir, ".backflow", "edits.jsonl")) as f:
            text = f.read()
        self.assertNotIn(EDITOR, text)
        self.assertNotIn(TOKEN, text)
        self.assertEqual(s.stop(), 0)

    def test_bad_tokens_config_is_refused_with_location(self):
        cases = [
            ("    - {name: ann, token: \"short\", role: viewer}\n", "shorter than 16"),
            (f"    - {{name: ann, token: \"{VIEWER}\", role: editr}}\n",
             "unknown role 'editr' in 'server.tokens'; did you mean 'editor'?"),
            (f"    - {{name: ann, token: \"{VIEWER}\", role: viewer}}\n"
             f"    - {{name: ann, token: \"{EDITOR}\", role: viewer}}\n", "appears twice"),
            (f"    - {{name: ann, token: \"{VIEWER}\", role: viewer}}\n"
             f"    - {{name: bob, token: \"{VIEWER}\", role: viewer}}\n", "same token"),
            (f"    - {{name: ann, token: \"{TOKEN}xxxxxxxx\", roles: viewer}}\n",
             "unknown key 'roles'"),
            (f"    - {{name: \"a b\", token: \"{VIEWER}\", role: viewer}}\n", "invalid token name"),
        ]
        for tokens, want in cases:
            with self.subTest(want=want):
                p = new_project(self, tokens_config(tokens))
                r = p.run("validate")
                self.assertNotEqual(r.returncode, 0, r.stdout)
                self.assertIn(want, r.stderr + r.stdout)
                self.assertRegex(r.stderr + r.stdout, r"backflow\.yml:\d+:\d+: ")
                self.assertEqual(r.returncode, 2, r.stderr)  # a config error, not a crash or leak


if __name__ == "__main__":
    unittest.main()
