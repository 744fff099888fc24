"""${NAME} is resolved only for what a command touches (issue 16): a variable
missing for sync A does not block `run B`, `runs` or `errors`; `runs` and
`errors` open runs.db read-only, so another user who may read the state folder
can list runs."""
import json
import os
import pwd
import shutil
import subprocess
import unittest

from test_core_support import CoreCase, config, file_dest, sync_block

from bfhelp import BIN


def env_without(*names):
    return {k: v for k, v in os.environ.items() if k not in names}


class EnvScope(CoreCase):
    def project(self):
        hook = ("  hook: {type: webhook, url: \"${BF_T_HOOK_URL}\","
                " signing_secret: \"${BF_T_HOOK_SECRET}\"}\n")
        text = config([file_dest(), hook], [sync_block("a", "hook"), sync_block("b", "out"),
                                            sync_block("c", "out", model="other")],
                      models={"users": "SELECT id, email, first_name, plan FROM users",
                              "other": "SELECT id, email, first_name, plan FROM ${BF_T_TABLE}"})
        return self.new_project(rows=5, config_text=text)

    def bf(self, p, *args):
        return subprocess.run([BIN, "-p", p.dir, *args], capture_output=True, text=True,
                              env=env_without("BF_T_HOOK_URL", "BF_T_HOOK_SECRET", "BF_T_TABLE"),
                              timeout=60)

    def test_missing_variable_blocks_only_what_uses_it(self):
        p = self.project()
        r = self.bf(p, "run", "b", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["runs"][0]["added"], 5)
        r = self.bf(p, "run", "a")
        self.assertEqual(r.returncode, 2)
        self.assertRegex(r.stderr, r"backflow\.yml:\d+:\d+: environment variable BF_T_HOOK_URL is "
                                   r"not set \(needed by sync 'a': destination 'hook'\)")
        r = self.bf(p, "plan", "c")
        self.assertEqual(r.returncode, 2)
        self.assertIn("BF_T_TABLE is not set (needed by sync 'c': model 'other')", r.stderr)
        for args in (("runs",), ("runs", "a"), ("errors", "b")):
            r = self.bf(p, *args)
            self.assertEqual(r.returncode, 0, (args, r.stderr))
        # Commands that read everything still refuse, naming the variable.
        for args in (("run", "--all"), ("plan", "--all")):
            r = self.bf(p, *args)
            self.assertEqual(r.returncode, 2, args)
            self.assertIn("is not set", r.stderr)
        # validate lists each unset variable where it is needed.
        r = self.bf(p, "validate")
        self.assertEqual(r.returncode, 2)
        self.assertIn("FAIL destination hook:", r.stdout)
        self.assertIn("FAIL model other:", r.stdout)
        self.assertIn("ok   model users", r.stdout)

    def test_runs_and_errors_as_another_user(self):
        # CI runs as root (it installs packages); elsewhere this test fails
        # rather than pass without having checked anything.
        self.assertEqual(os.geteuid(), 0, "needs root to run as another user")
        user = next((u for u in ("nobody", "backflow-test") if self._has_user(u)), None)
        self.assertTrue(user and shutil.which("runuser"), "no unprivileged user / runuser")
        p = self.project()
        self.assertEqual(self.bf(p, "run", "b").returncode, 0)
        # Readable by others, writable by the owner only (e.g. a shared ops folder).
        for root, dirs, files in os.walk(p.dir):
            os.chmod(root, 0o755)
            for f in files:
                os.chmod(os.path.join(root, f), 0o644)
        shm = os.path.join(p.dir, ".backflow", "runs.db-shm")
        if os.path.exists(shm):
            os.chmod(shm, 0o600)  # the WAL index stays the owner's
        before = sorted(os.listdir(os.path.join(p.dir, ".backflow")))
        for args in (("runs", "--json"), ("errors", "b", "--json")):
            r = subprocess.run(["runuser", "-u", user, "--", BIN, "-p", p.dir, *args],
                               capture_output=True, text=True, timeout=60,
                               env=env_without("BF_T_HOOK_URL", "BF_T_HOOK_SECRET", "BF_T_TABLE"))
            self.assertEqual(r.returncode, 0, (args, r.stderr))
            self.assertNotIn("readonly", r.stderr)
        doc = json.loads(subprocess.run(["runuser", "-u", user, "--", BIN, "-p", p.dir, "runs",
                                         "--json"], capture_output=True, text=True).stdout)
        self.assertEqual([run["sync"] for run in doc["runs"]], ["b"])
        self.assertEqual(sorted(os.listdir(os.path.join(p.dir, ".backflow"))), before)

    def test_runs_before_any_run_creates_nothing(self):
        p = self.project()
        r = self.bf(p, "runs")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("no runs yet", r.stdout)
        self.assertFalse(os.path.exists(os.path.join(p.dir, ".backflow", "runs.db")))

    @staticmethod
    def _has_user(name):
        try:
            pwd.getpwnam(name)
            return True
        except KeyError:
            return False


if __name__ == "__main__":
    unittest.main()
