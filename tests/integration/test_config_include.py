"""`include:` in backflow.yml (issue 18): files or globs inside the project
whose models, syncs and destinations join the main file's; mistakes in an
included file are reported at that file's line and column."""
import os
import unittest

from bfhelp import Project, users_table

MAIN = ("version: 1\n"
        "warehouses:\n  local: {type: sqlite, path: warehouse.db}\n"
        "models:\n  users:\n    warehouse: local\n    sql: SELECT id, email FROM users\n"
        "    primary_key: id\n"
        "destinations:\n  out: {type: file, path: out/users.jsonl}\n"
        "syncs:\n  main_sync:\n    model: users\n    destination: out\n    match: {user_id: id}\n"
        "    fields: {email: email}\n")


class Include(unittest.TestCase):
    def project(self, include, files):
        p = Project(MAIN + include)
        self.addCleanup(p.cleanup)
        users_table(p, 3)
        for rel, text in files.items():
            os.makedirs(os.path.join(p.dir, os.path.dirname(rel)), exist_ok=True)
            with open(os.path.join(p.dir, rel), "w") as f:
                f.write(text)
        return p

    def test_included_models_and_syncs_run(self):
        p = self.project("include: [models/*.yml, syncs/extra.yml]\n", {
            "models/vip.yml": "models:\n  vip:\n    warehouse: local\n"
                              "    sql: SELECT id, email FROM users WHERE id > 1\n"
                              "    primary_key: id\n",
            "syncs/extra.yml": "syncs:\n  vip_sync:\n    model: vip\n    destination: out2\n"
                               "    match: {user_id: id}\n    fields: {email: email}\n"
                               "destinations:\n  out2: {type: file, path: out/vip.jsonl}\n",
        })
        r = p.run("validate")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = p.run("run", "vip_sync")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(os.path.join(p.dir, "out", "vip.jsonl")) as f:
            self.assertEqual(len(f.read().splitlines()), 2)

    def test_mistakes_name_the_included_file(self):
        cases = [
            ("include: [models/*.yml]\n",
             {"models/a.yml": "models:\n  users:\n    warehouse: local\n    sql: SELECT 1\n"
                              "    primary_key: id\n"},
             r"models/a\.yml:2:3: 'users' is already defined in 'models' at .*backflow\.yml:5:3"),
            ("include: [models/*.yml]\n", {"models/a.yml": "warehouses: {}\n"},
             r"models/a\.yml:1:1: unknown key 'warehouses' in an included file"),
            ("include: [models/a.yml]\n",
             {"models/a.yml": "models:\n  b:\n    warehouse: nowhere\n    sql: SELECT 1\n"
                              "    primary_key: id\n"},
             r"models/a\.yml:3:\d+: .*nowhere"),
            ("include: [../secret.yml]\n", {}, r"backflow\.yml:\d+:\d+: include '\.\./secret\.yml': "
                                              "expected a path inside the project"),
            ("include: [missing.yml]\n", {}, r"backflow\.yml:\d+:\d+: cannot read included file"),
            ("include: models/*.yml\n", {}, r"'include' must be a list"),
        ]
        for include, files, want in cases:
            with self.subTest(want=want):
                p = self.project(include, files)
                r = p.run("validate")
                self.assertNotEqual(r.returncode, 0, r.stdout)
                self.assertRegex(r.stdout + r.stderr, want)
                self.assertEqual(r.returncode, 2, r.stderr)  # a config error, not a crash or leak


if __name__ == "__main__":
    unittest.main()
