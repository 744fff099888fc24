"""The command line (issue 16): one table of commands and options behind
`help`, the man page and the completions; --version; global options anywhere;
plan --all; types NAME / --json; strict numeric options; the project found
from a subfolder; `make install`; exit 130 / status `cancelled` on SIGINT and
exit 5 / status `skipped` on a held sync lock."""
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from test_core_support import (WEBHOOK_SECRET, Project, Receiver, config, file_dest, sync_block,
                               users_table, webhook_dest)

from bfhelp import BIN

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def bf(*args, cwd=None, env=None, timeout=60):
    full_env = {k: v for k, v in os.environ.items() if k != "BACKFLOW_PROJECT"}
    full_env.update(env or {})
    return subprocess.run([BIN, *args], capture_output=True, text=True, cwd=cwd, env=full_env,
                          timeout=timeout)


def table_commands():
    """Command names as `backflow help` lists them (printed from the table)."""
    out = bf("help").stdout
    block = out.split("commands:\n", 1)[1].split("\n\n", 1)[0]
    names = [line.split()[0] for line in block.splitlines() if line.strip()]
    assert len(names) >= 10, out
    return names


def command_options(name):
    out = bf("help", name).stdout
    if "options:\n" not in out:
        return []
    block = out.split("\noptions:\n", 1)[1].split("\n\n", 1)[0]
    return re.findall(r"(--[a-z-]+)", " ".join(line.split("  ")[1] for line in block.splitlines()
                                               if line.startswith("  ")))


def file_project(case, rows=30, syncs=("to_file",)):
    p = Project(config([file_dest()], [sync_block(s, "out") for s in syncs]))
    case.addCleanup(p.cleanup)
    users_table(p, rows)
    return p


class Version(unittest.TestCase):
    def test_version_comes_from_the_one_definition(self):
        r = bf("--version")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(ROOT, "src", "cli", "version.h")) as f:
            want = re.search(r'#define BF_VERSION "([^"]+)"', f.read())[1]
        self.assertRegex(want, r"^\d+\.\d+\.\d+$")
        self.assertEqual(r.stdout, f"backflow {want}\n")


class Help(unittest.TestCase):
    def test_help_lists_commands_and_help_command_describes_one(self):
        names = table_commands()
        for want in ("init", "validate", "plan", "run", "runs", "errors", "reset", "serve",
                     "types", "forget", "pii", "audit", "live", "help"):
            self.assertIn(want, names)
        r = bf("help", "runs")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("usage: backflow runs [SYNC] [--limit N]", r.stdout)
        self.assertIn("--limit N", r.stdout)
        # `COMMAND --help` and `help COMMAND` print the same, from the same row.
        self.assertEqual(bf("runs", "--help").stdout, r.stdout)
        self.assertEqual(bf("--help", "runs").stdout, r.stdout)
        r = bf("help", "nope")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown command 'nope'", r.stderr)

    def test_usage_errors_print_the_tables_usage_line(self):
        r = bf("-p", tempfile.gettempdir(), "runs", "--bogus")
        self.assertEqual(r.returncode, 2)
        self.assertIn("unknown option '--bogus'", r.stderr)
        self.assertIn("usage: backflow runs [SYNC] [--limit N]", r.stderr)
        self.assertEqual(bf("frobnicate").returncode, 2)

    def test_every_command_and_option_is_in_the_man_page_and_completions(self):
        man = bf("--help-man")
        bash = bf("--completion", "bash")
        zsh = bf("--completion", "zsh")
        for r in (man, bash, zsh):
            self.assertEqual(r.returncode, 0, r.stderr)
        man_text = man.stdout.replace("\\-", "-")
        for name in table_commands():
            self.assertIn(f'.SS "{name}', man_text)
            self.assertRegex(bash.stdout, rf"\n    {name}\) opts=")
            self.assertRegex(zsh.stdout, rf"\n    '{name}:")
            for opt in command_options(name):
                self.assertIn(opt, man_text, (name, opt))
                self.assertIn(opt, bash.stdout, (name, opt))
                self.assertIn(opt, zsh.stdout, (name, opt))
        self.assertEqual(bf("--completion", "fish").returncode, 2)

    def test_man_page_renders(self):
        # scripts/deps.sh installs man-db: a missing man is a broken setup, not a pass.
        self.assertTrue(shutil.which("man"), "man not installed (Debian package man-db)")
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d, True)
        page = os.path.join(d, "backflow.1")
        with open(page, "w") as f:
            f.write(bf("--help-man").stdout)
        r = subprocess.run(["man", "--warnings", "-l", page], capture_output=True, text=True,
                           env=dict(os.environ, MANPAGER="cat", PAGER="cat", MANWIDTH="80"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        self.assertIn("BACKFLOW(1)", r.stdout)
        self.assertIn("EXIT STATUS", r.stdout)

    def test_bash_completion_completes_commands_options_and_syncs(self):
        p = file_project(self, syncs=("alpha", "beta"))
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d, True)
        script = os.path.join(d, "backflow.bash")
        with open(script, "w") as f:
            f.write(bf("--completion", "bash").stdout)
        probe = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); '
                 '_backflow; printf "%s\\n" "${COMPREPLY[@]}"')

        def complete(*words):
            r = subprocess.run(["bash", "-c", probe, "-", script, "backflow", *words],
                               capture_output=True, text=True,
                               env=dict(os.environ, PATH=os.path.dirname(BIN) + ":" +
                                        os.environ["PATH"]))
            self.assertEqual(r.stderr, "")
            return sorted(r.stdout.split())

        self.assertEqual(complete("ru"), ["run", "runs"])
        self.assertEqual(complete("-p", p.dir, "run", ""), ["alpha", "beta"])
        self.assertIn("--limit", complete("runs", "--"))
        self.assertIn("--project", complete("runs", "--"))
        self.assertEqual(complete("live", ""), ["setup", "teardown"])
        self.assertIn("webhook", complete("types", ""))

    def test_zsh_completion_loads(self):
        self.assertTrue(shutil.which("zsh"), "zsh not installed (scripts/deps.sh installs it)")
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d, True)
        with open(os.path.join(d, "_backflow"), "w") as f:
            f.write(bf("--completion", "zsh").stdout)
        r = subprocess.run(["zsh", "-n", os.path.join(d, "_backflow")], capture_output=True,
                           text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = subprocess.run(["zsh", "-fc", f"fpath=({d} $fpath); autoload -U compinit; "
                            f"compinit -u -d {d}/zcd; print -r -- $_comps[backflow]"],
                           capture_output=True, text=True)
        self.assertEqual(r.stdout.strip(), "_backflow", r.stderr)


class GlobalOptionsAnywhere(unittest.TestCase):
    def test_project_and_verbose_after_the_command(self):
        p = file_project(self)
        r = bf("run", "to_file", "-p", p.dir, "-v")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("run 1 to_file: succeeded", r.stdout)
        r = bf("runs", "--json", "--project", p.dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(json.loads(r.stdout)["runs"]), 1)
        r = bf("runs", f"--project={p.dir}", "--limit=1")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = bf("runs", "-p")
        self.assertEqual(r.returncode, 2)
        self.assertIn("'-p' needs a value", r.stderr)


class Commands(unittest.TestCase):
    def test_plan_all(self):
        p = file_project(self, rows=12, syncs=("a", "b"))
        code, doc, err = p.run_json("plan", "--all", "--sample", "1")
        self.assertEqual(code, 0, err)
        self.assertEqual([x["sync"] for x in doc["plans"]], ["a", "b"])
        for x in doc["plans"]:
            self.assertEqual((x["status"], x["added"], len(x["sample"])), ("planned", 12, 1))
        r = p.run("plan", "--all")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(re.findall(r"^plan [ab]: 12 to add", r.stdout, re.M)), 2, r.stdout)
        self.assertEqual(p.run("plan", "--all", "a").returncode, 2)
        self.assertEqual(p.run("plan").returncode, 2)

    def test_types_name_and_json(self):
        r = bf("types", "webhook")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.startswith("destination webhook\n"), r.stdout)
        self.assertNotIn("warehouse sqlite", r.stdout)
        r = bf("types", "postgres")  # a warehouse and a destination
        self.assertIn("warehouse postgres", r.stdout)
        self.assertIn("destination postgres", r.stdout)
        r = bf("types", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        doc = json.loads(r.stdout)
        self.assertIn("sqlite", [t["name"] for t in doc["warehouses"]])
        hook = [t for t in doc["destinations"] if t["name"] == "webhook"][0]
        url = [k for k in hook["keys"] if k["key"] == "url"][0]
        self.assertEqual((url["type"], url["required"]), ("string", True))
        self.assertGreater(hook["max_batch"], 0)
        doc = json.loads(bf("types", "file", "--json").stdout)
        self.assertEqual(([t["name"] for t in doc["warehouses"]],
                          [t["name"] for t in doc["destinations"]]), ([], ["file"]))
        r = bf("types", "hubspto")
        self.assertEqual(r.returncode, 2)
        self.assertIn("no type 'hubspto'", r.stderr)
        self.assertIn("hubspot", r.stderr)


class NumericOptions(unittest.TestCase):
    def test_bad_numbers_exit_2_naming_the_option(self):
        p = file_project(self)
        for _ in range(2):
            self.assertEqual(p.run("run", "to_file").returncode, 0)
        cases = [
            (("runs", "--limit", "abc"), "--limit"),
            (("runs", "--limit", "2x"), "--limit"),
            (("runs", "--limit", "-1"), "--limit"),
            (("runs", "--limit", "0"), "--limit"),
            (("runs", "--limit="), "--limit"),
            (("runs", "--limit", " 3"), "--limit"),
            (("plan", "to_file", "--sample", "abc"), "--sample"),
            (("plan", "to_file", "--sample", "-2"), "--sample"),
            (("errors", "to_file", "--run", "1.5"), "--run"),
            (("audit", "--request", "0"), "--request"),
            (("forget", "--email", "a@b.c", "--wait", "abc"), "--wait"),
            (("forget", "--email", "a@b.c", "--wait", "-1"), "--wait"),
            (("init", os.path.join(p.dir, "new"), "--rows", "10k"), "--rows"),
        ]
        for args, opt in cases:
            r = p.run(*args)
            self.assertEqual(r.returncode, 2, (args, r.stdout, r.stderr))
            self.assertIn(opt, r.stderr, args)
            self.assertEqual(r.stdout, "", args)
        self.assertFalse(os.path.exists(os.path.join(p.dir, "new")))
        code, doc, err = p.run_json("runs", "--limit", "1")
        self.assertEqual((code, len(doc["runs"])), (0, 1), err)
        code, doc, err = p.run_json("runs", "--limit=2")
        self.assertEqual((code, len(doc["runs"])), (0, 2), err)


class ProjectFromSubfolder(unittest.TestCase):
    def test_found_upwards_like_git(self):
        p = file_project(self)
        sub = os.path.join(p.dir, "models", "deeper")
        os.makedirs(sub)
        r = bf("run", "to_file", cwd=sub)
        self.assertEqual(r.returncode, 0, r.stderr)
        # Relative paths still resolve against the project, not the current folder.
        self.assertTrue(os.path.exists(os.path.join(p.dir, "out", "users.jsonl")))
        self.assertFalse(os.path.exists(os.path.join(sub, "out")))
        self.assertFalse(os.path.exists(os.path.join(sub, ".backflow")))
        r = bf("runs", "--json", cwd=sub)
        self.assertEqual(len(json.loads(r.stdout)["runs"]), 1, r.stderr)
        # BACKFLOW_PROJECT and -p still win over the search.
        other = file_project(self)
        r = bf("runs", "--json", cwd=sub, env={"BACKFLOW_PROJECT": other.dir})
        self.assertEqual(json.loads(r.stdout)["runs"], [])
        r = bf("-p", other.dir, "runs", "--json", cwd=sub)
        self.assertEqual(json.loads(r.stdout)["runs"], [])

    def test_no_project_anywhere_is_a_config_error(self):
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d, True)
        r = bf("runs", cwd=d)
        self.assertEqual(r.returncode, 2)
        self.assertIn("no project here", r.stderr)


class MakeInstall(unittest.TestCase):
    def test_install_into_destdir(self):
        d = tempfile.mkdtemp(prefix="bf-install-")
        self.addCleanup(shutil.rmtree, d, True)
        r = subprocess.run(["make", "-s", "install", f"DESTDIR={d}"], cwd=ROOT,
                           capture_output=True, text=True, timeout=900)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        prefix = os.path.join(d, "usr", "local")
        r = subprocess.run([os.path.join(prefix, "bin", "backflow"), "--version"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"^backflow \d+\.\d+\.\d+\n$")
        for rel in ("share/bash-completion/completions/backflow",
                    "share/zsh/site-functions/_backflow"):
            self.assertTrue(os.path.isfile(os.path.join(prefix, rel)), rel)
        if shutil.which("man"):
            r = subprocess.run(["man", "-l", os.path.join(prefix, "share/man/man1/backflow.1")],
                               capture_output=True, text=True,
                               env=dict(os.environ, MANPAGER="cat", PAGER="cat"))
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("BACKFLOW(1)", r.stdout)


class MakeFlags(unittest.TestCase):
    def build_command(self, *args, env=None):
        # Run from `make test WERROR=1`, the parent's command-line variables
        # reach this make through MAKEFLAGS: the test decides them itself.
        clean = {k: v for k, v in os.environ.items()
                 if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "WERROR", "CFLAGS", "CPPFLAGS",
                              "LDFLAGS")}
        r = subprocess.run(["make", "-n", "-B", "build/obj/src/cli/main.o", *args], cwd=ROOT,
                           capture_output=True, text=True, timeout=60,
                           env=dict(clean, **(env or {})))
        self.assertEqual(r.returncode, 0, r.stderr)
        return [line for line in r.stdout.splitlines() if "-c src/cli/main.c" in line][0]

    def test_user_flags_are_added_and_werror_is_opt_in(self):
        cmd = self.build_command(env={"CPPFLAGS": "-DBF_FROM_ENV_CPP", "CFLAGS": "-DBF_FROM_ENV_C"})
        for flag in ("-DBF_FROM_ENV_CPP", "-DBF_FROM_ENV_C", "-std=c11", "-Wall", "-Isrc"):
            self.assertIn(flag, cmd)
        self.assertNotIn("-Werror", cmd)
        cmd = self.build_command("WERROR=1", "CFLAGS=-DBF_FROM_ARGS")
        self.assertIn("-Werror", cmd)
        self.assertIn("-DBF_FROM_ARGS", cmd)
        self.assertIn("-std=c11", cmd)  # a CFLAGS on the command line replaces nothing

    def test_make_test_installs_no_packages_but_ci_does(self):
        r = subprocess.run(["make", "-n", "test"], cwd=ROOT, capture_output=True, text=True,
                           timeout=120)
        self.assertNotIn("deps.sh", r.stdout)
        self.assertNotIn("apt-get", r.stdout)
        with open(os.path.join(ROOT, ".ci", "run")) as f:
            self.assertIn("scripts/deps.sh && make test WERROR=1", f.read())


class ExitStatuses(unittest.TestCase):
    def slow_project(self, rows):
        r = Receiver.start(WEBHOOK_SECRET, delay_ms=40)
        self.addCleanup(r.stop)
        p = Project(config([webhook_dest(r.url), file_dest()],
                           [sync_block("slow", "hook", batch_size=100), sync_block("after", "out")]))
        self.addCleanup(p.cleanup)
        users_table(p, rows)
        return p, r

    def test_sigint_mid_run_exits_130_and_logs_cancelled(self):
        self.stop_mid_run(signal.SIGINT, 130)

    def test_sigterm_mid_run_exits_143_and_logs_cancelled(self):
        self.stop_mid_run(signal.SIGTERM, 143)

    def stop_mid_run(self, sig, want_status):
        rows = 6000
        p, r = self.slow_project(rows)
        proc = subprocess.Popen([BIN, "-p", p.dir, "run", "slow", "after", "--json"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 20
        while r.counters()["requests"] < 3:
            self.assertLess(time.monotonic(), deadline, "no batches in flight")
            self.assertIsNone(proc.poll(), proc.stderr.read() if proc.poll() is not None else "")
            time.sleep(0.02)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
        self.assertEqual(proc.returncode, want_status, err)
        runs = json.loads(out)["runs"]
        self.assertEqual([x["sync"] for x in runs], ["slow"], "the stop ends the command")
        self.assertEqual(runs[0]["status"], "cancelled", runs)
        self.assertEqual(p.run_json("runs", "after")[1]["runs"], [])
        self.assertIn("interrupted", err)
        self.assertNotIn("destination unavailable", err)
        hist = p.run_json("runs", "slow")[1]["runs"]
        self.assertEqual([h["status"] for h in hist], ["cancelled"])
        sent = len(r.store())
        self.assertEqual(hist[0]["added"], sent)
        self.assertLess(sent, rows)
        # Nothing acknowledged is lost: the next run sends exactly the rest.
        r.control(delay_ms=0)
        code, doc, err = p.run_json("run", "slow")
        self.assertEqual(code, 0, err)
        self.assertEqual(doc["runs"][0]["added"], rows - sent)
        self.assertEqual(len(r.store()), rows)

    def test_held_lock_exits_5_and_logs_skipped(self):
        p = file_project(self)
        self.assertEqual(p.run("run", "to_file").returncode, 0)
        lock = os.path.join(p.dir, ".backflow", "syncs", "to_file", "lock")
        with open(lock, "a") as held:
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
            code, doc, err = p.run_json("run", "to_file")
            self.assertEqual(code, 5, err)
            self.assertEqual(doc["runs"][0]["status"], "skipped")
            self.assertIn("holds the lock", err)
            r = p.run("run", "to_file")
            self.assertEqual(r.returncode, 5, r.stderr)
        hist = p.run_json("runs", "to_file")[1]["runs"]
        self.assertEqual([h["status"] for h in hist], ["skipped", "skipped", "succeeded"])
        self.assertIn("holds the lock", hist[0]["error"])
        self.assertEqual(p.run("run", "to_file").returncode, 0)


if __name__ == "__main__":
    unittest.main()
