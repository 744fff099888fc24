"""validate refuses what run would refuse (issue 16): a short secret, a state_dir
that is not a writable directory, a batch_size above the destination's maximum;
every check runs and each failure is listed; destinations are contacted only
with --connect."""
import json
import os
import unittest

from test_core_support import (CoreCase, closed_port, config, file_dest, sync_block,
                               webhook_dest)


class Validate(CoreCase):
    def project(self, extra_top="", syncs=None, dests=None, rows=5):
        text = config(dests or [file_dest()], syncs or [sync_block("s", "out")])
        p = self.new_project(rows=rows, config_text=extra_top + text)
        return p

    def test_short_secret_fails_validate_and_run_alike(self):
        p = self.project('secret: "short"\n')
        for args in (("validate",), ("run", "s")):
            r = p.run(*args)
            self.assertEqual(r.returncode, 2, (args, r.stdout, r.stderr))
            self.assertIn("backflow.yml:1:9: secret is too short (5 characters)", r.stderr)
            self.assertNotIn("short\"", r.stderr)

    def test_state_dir_that_is_a_file_or_unwritable(self):
        p = self.project("state_dir: st\n")
        with open(os.path.join(p.dir, "st"), "w") as f:
            f.write("x")
        r = p.run("validate")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("backflow.yml:1:12: state_dir", r.stderr)
        self.assertIn("is not a directory", r.stderr)
        os.unlink(os.path.join(p.dir, "st"))
        self.assertEqual(p.run("validate").returncode, 0)  # absent but creatable
        if os.geteuid() != 0:  # root writes anywhere
            os.mkdir(os.path.join(p.dir, "st"), 0o500)
            self.addCleanup(os.chmod, os.path.join(p.dir, "st"), 0o700)
            r = p.run("validate")
            self.assertEqual(r.returncode, 2, r.stdout)
            self.assertIn("is not writable", r.stderr)

    def test_batch_size_above_the_maximum_is_refused_with_the_maximum(self):
        recv = self.new_receiver()
        p = self.project(dests=[webhook_dest(recv.url)],
                         syncs=[sync_block("s", "hook", batch_size=20000)])
        for args in (("validate",), ("run", "s")):
            r = p.run(*args)
            self.assertEqual(r.returncode, 2, (args, r.stdout, r.stderr))
            self.assertRegex(r.stderr, r"backflow\.yml:\d+:17: batch_size 20000 in sync 's' is "
                             r"above the maximum of destination type 'webhook'; expected at "
                             r"most 10000")
        self.assertEqual(recv.counters()["requests"], 0)

    def test_every_unreachable_destination_is_reported(self):
        dead1, dead2 = closed_port(), closed_port()
        dests = [webhook_dest(f"http://127.0.0.1:{dead1}/in"),
                 webhook_dest(f"http://127.0.0.1:{dead2}/in").replace("  hook:", "  hook2:")]
        p = self.project(dests=dests, syncs=[sync_block("s", "hook")])
        r = p.run("validate", "--connect")
        self.assertEqual(r.returncode, 4, r.stdout + r.stderr)
        self.assertIn("FAIL destination hook:", r.stdout)
        self.assertIn("FAIL destination hook2:", r.stdout)
        self.assertIn("2 checks failed", r.stderr)
        r = p.run("validate", "--connect", "--json")
        doc = json.loads(r.stdout)
        self.assertFalse(doc["ok"])
        self.assertEqual(doc["failed"], 2)
        self.assertEqual([c["name"] for c in doc["checks"] if not c["ok"]], ["hook", "hook2"])

    def test_destinations_are_contacted_only_with_connect(self):
        recv = self.new_receiver()
        p = self.project(dests=[webhook_dest(recv.url)], syncs=[sync_block("s", "hook")])
        r = p.run("validate")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("not contacted", r.stdout)
        self.assertEqual(recv.counters()["requests"], 0)
        r = p.run("validate", "--connect")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(recv.counters()["requests"], 1)
        # A dead destination passes without --connect (its settings are fine).
        p2 = self.project(dests=[webhook_dest(f"http://127.0.0.1:{closed_port()}/in")],
                          syncs=[sync_block("s", "hook")])
        self.assertEqual(p2.run("validate").returncode, 0)


if __name__ == "__main__":
    unittest.main()


class ValidateServeConfig(CoreCase):
    """validate checks what `serve` checks at start (issue 15): hooks and alerts."""

    def test_hooks_and_alerts_are_checked(self):
        text = config([file_dest()], [sync_block("s", "out")])
        for extra, where in (
                ("hooks:\n  nowhere: {scheme: standard, secret: whsec_x}\n", "no destination named 'nowhere'"),
                ("hooks:\n  out: {scheme: carrier-pigeon}\n", "hooks.out.scheme 'carrier-pigeon'"),
                ("hooks:\n  out: {scheme: hubspot, secret: abc}\n", "HubSpot signs the URL"),
                ("alerts:\n  - {url: 'ftp://example.invalid/'}\n", "alert: expected 'type: webhook'")):
            p = self.new_project(rows=1, config_text=text + extra)
            r = p.run("validate")
            self.assertEqual(r.returncode, 2, (extra, r.stdout, r.stderr))
            self.assertIn(where, r.stdout + r.stderr)
            self.assertIn("backflow.yml:", r.stdout + r.stderr)
        p = self.new_project(rows=1, config_text=text + "hooks:\n  out: {scheme: standard, secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw}\n")
        r = p.run("validate")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
