"""No plaintext personal data at rest (design.md §2) and bad input (issue 2,
design.md §3-§4): clear one-line errors with file:line:column, the right exit
status, and no state created or changed."""
import json
import os
import shutil
import sqlite3
import stat
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from test_core_support import (WEBHOOK_SECRET, CoreCase, config, expected_store, file_dest,
                               snapshot, sync_block, users_table, webhook_dest)

N = 40
PRIVATE_SQL = "SELECT id, email, first_name, plan, ltv, note FROM people"


def person(i):
    return (i, f"Zelda.Quux{i}@Example-Mail.org", f"Ximena{i}Qv", f"tier-{i}-gold",
            10000.25 + i, f"secretnote-{i}-unmapped")


def people_table(project, ids):
    project.sql("CREATE TABLE IF NOT EXISTS people (id INTEGER, email TEXT, first_name TEXT,"
                " plan TEXT, ltv REAL, note TEXT)")
    con = sqlite3.connect(project.db_path)
    con.executemany("INSERT INTO people VALUES (?,?,?,?,?,?)", [person(i) for i in ids])
    con.commit()
    con.close()


def needles_for(ids):
    """Every source text value (and its case variants, and the parts of the emails)."""
    out = set()
    for i in ids:
        _, email, first, plan, ltv, note = person(i)
        local, domain = email.split("@")
        for v in (email, first, plan, note, local, domain):
            out.update({v, v.lower(), v.upper()})
        out.add(repr(ltv))
    return sorted(out)


def scan(paths, needles):
    hits = []
    for path in paths:
        with open(path, "rb") as f:
            data = f.read()
        for n in needles:
            if n.encode("utf-8") in data:
                hits.append((os.path.basename(path), n))
    return hits


class StubReceiver:
    """A minimal (unsigned) webhook receiver whose answers quote the records'
    values, like many real APIs do. reply(records) -> (status, body dict)."""

    def __init__(self, reply):
        stub = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                records = json.loads(body)["records"]
                stub.requests += 1
                status, doc = reply(records)
                out = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.requests = 0
        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.srv.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}/in"
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


FIELDS = {"email": "email", "first_name": "first_name", "plan": "plan", "lifetime_value": "ltv"}
BY_EMAIL = {k: v for k, v in FIELDS.items() if k != "email"}  # when email is the match key


class NoPlaintextAtRest(CoreCase):
    def setUp(self):
        old = os.umask(0o022)  # a common default: the engine must not rely on the caller's
        self.addCleanup(os.umask, old)
        self.p = self.new_project()
        self.state_dir = os.path.join(self.p.dir, ".backflow")

    def hold_sqlite_files_open(self):
        """Keeps a connection on every SQLite file of the state so the WAL files of
        the next run stay on disk to be scanned too."""
        cons = []
        for path in self.p.state_files():
            if path.endswith(".db"):
                con = sqlite3.connect(path)
                con.execute("SELECT count(*) FROM sqlite_master").fetchall()
                cons.append(con)
        for con in cons:
            self.addCleanup(con.close)
        return cons

    def test_no_source_value_under_state_dir(self):
        r = self.new_receiver()
        ids = list(range(1, N + 1))
        people_table(self.p, ids)
        self.p.write_config(config(
            [webhook_dest(r.url), file_dest()],
            [sync_block("to_hook", "hook", mode="mirror", fields=FIELDS, model="people",
                        batch_size=7),
             sync_block("to_file", "out", mode="mirror", fields=BY_EMAIL, model="people",
                        match={"email": "email"})],
            models={"people": PRIVATE_SQL}))
        self.run_sync(self.p, "to_hook")
        self.run_sync(self.p, "to_file")
        cons = self.hold_sqlite_files_open()
        self.assertTrue(cons)
        # changes, deletes (the vault is read), a NULL key, a duplicate and rejections
        self.p.sql("UPDATE people SET plan = plan || '-x' WHERE id % 3 = 0;"
                   "DELETE FROM people WHERE id IN (2, 5, 11, 39);"
                   "INSERT INTO people VALUES (NULL, 'Nokey@Example-Mail.org', 'Nokeyname', 'p', 1, 'n');"
                   f"INSERT INTO people SELECT * FROM people WHERE id = 7")
        r.control(reject_keys=[9, 12], retry_keys=[15])
        run = self.run_sync(self.p, "to_hook", expect=1)
        # rejected: 9, 12, the NULL key and the duplicate of 7; failed: 15
        self.assertEqual((run["removed"], run["rejected"], run["failed"]), (4, 4, 1), run)
        run = self.run_sync(self.p, "to_file", expect=1)
        self.assertEqual((run["removed"], run["rejected"]), (4, 2), run)
        want = expected_store(self.p, fields=FIELDS, sql=PRIVATE_SQL)
        store = r.store()
        self.assertEqual(set(store), set(want))
        for k in want:
            if k not in ('{"user_id": 9}', '{"user_id": 12}', '{"user_id": 15}'):
                self.assertEqual(store[k], want[k], k)

        files = self.p.state_files()
        names = {os.path.basename(f) for f in files}
        self.assertIn("vault.bin", names)
        self.assertTrue(any(n.endswith("-wal") for n in names), names)
        needles = needles_for(ids) + ["Nokey@Example-Mail.org", "nokey@example-mail.org",
                                      "Nokeyname", "NOKEYNAME", "nokeyname"]
        self.assertEqual(scan(files, needles), [])
        # the errors are there, by hash and column name
        errs = self.errors(self.p, "to_hook")["errors"]
        self.assertEqual(len(errs), 5, errs)
        blob = json.dumps(errs)
        self.assertEqual([n for n in needles if n in blob], [])

    def test_state_files_are_private(self):
        r = self.new_receiver()
        people_table(self.p, range(1, 11))
        self.p.write_config(config([webhook_dest(r.url)],
                                   [sync_block("to_hook", "hook", fields=FIELDS, model="people")],
                                   models={"people": PRIVATE_SQL}))
        self.run_sync(self.p, "to_hook")
        self.hold_sqlite_files_open()
        self.p.sql("DELETE FROM people WHERE id = 1")
        self.run_sync(self.p, "to_hook")
        files = self.p.state_files()
        self.assertIn(os.path.join(self.state_dir, "secret"), files)
        for path in files:
            mode = stat.S_IMODE(os.stat(path).st_mode)
            self.assertEqual(mode, 0o600, f"{path} has mode {oct(mode)}")
        for root, dirs, _ in os.walk(self.state_dir):
            for d in [root] + [os.path.join(root, d) for d in dirs]:
                mode = stat.S_IMODE(os.stat(d).st_mode)
                self.assertEqual(mode & 0o077, 0, f"{d} has mode {oct(mode)}")
        with open(os.path.join(self.state_dir, "secret"), "rb") as f:
            self.assertGreaterEqual(len(f.read()), 32)


class DestinationReasonsAreScrubbed(CoreCase):
    """A destination's reason may quote what it refused; runs.db must not keep it."""

    def setUp(self):
        self.p = self.new_project()
        people_table(self.p, range(1, 9))

    def stub(self, reply):
        s = StubReceiver(reply)
        self.addCleanup(s.stop)
        self.p.write_config(config(
            [webhook_dest(s.url, max_retries=0)],
            [sync_block("to_hook", "hook", mode="upsert", fields=FIELDS, model="people")],
            models={"people": PRIVATE_SQL}))
        return s

    def assertNothingLeaked(self, extra=()):
        needles = needles_for(range(1, 9)) + list(extra)
        self.assertEqual(scan(self.p.state_files(), needles), [])

    def test_reject_keys_reason_is_kept_without_values(self):
        """With the strict receiver (its reason names the key field, not the value)."""
        r = self.new_receiver()
        self.p.write_config(config(
            [webhook_dest(r.url)],
            [sync_block("to_hook", "hook", mode="upsert", fields=BY_EMAIL, model="people",
                        match={"email": "email"})],
            models={"people": PRIVATE_SQL}))
        r.control(reject_keys=[person(3)[1], person(4)[1]])
        run = self.run_sync(self.p, "to_hook", expect=1)
        self.assertEqual(run["rejected"], 2, run)
        errs = self.errors(self.p, "to_hook")["errors"]
        self.assertEqual(sorted(e["reason"] for e in errs),
                         ["rejected by test receiver: email"] * 2)
        self.assertNothingLeaked()

    def test_reason_quoting_the_values_is_scrubbed(self):
        def reply(records):
            return 200, {"results": [
                {"status": "rejected",
                 "reason": f"invalid email {r['fields']['email']} for {r['fields']['first_name']}"
                           f" (user {r['key']['user_id'] + 1000})"}
                if r["key"]["user_id"] % 2 else {"status": "ok"} for r in records]}
        self.stub(reply)
        run = self.run_sync(self.p, "to_hook", expect=1)
        self.assertEqual((run["added"], run["rejected"]), (4, 4), run)
        errs = self.errors(self.p, "to_hook")["errors"]
        self.assertEqual(len(errs), 4)
        for e in errs:
            self.assertTrue(e["reason"].startswith("invalid email "), e)
            self.assertNotIn("@", e["reason"])
        self.assertNothingLeaked()

    def test_reason_quoting_the_email_in_another_case_is_scrubbed(self):
        """APIs normalise emails (HubSpot lowercases them) and quote the normalised form."""
        def reply(records):
            return 200, {"results": [
                {"status": "rejected",
                 "reason": f"contact {r['fields']['email'].lower()} already exists"}
                for r in records]}
        self.stub(reply)
        self.run_sync(self.p, "to_hook", expect=1)
        self.assertNothingLeaked()

    def test_reason_quoting_a_number_field_is_scrubbed(self):
        def reply(records):
            return 200, {"results": [
                {"status": "rejected",
                 "reason": f"lifetime_value {r['fields']['lifetime_value']} out of range"}
                for r in records]}
        self.stub(reply)
        self.run_sync(self.p, "to_hook", expect=1)
        self.assertNothingLeaked()

    def test_reasons_are_scrubbed_of_the_rows_own_values_by_whole_token(self):
        """Issue 13: short values of other rows were cut out of reasons ("not an
        ema[value]address"). A row's reason loses only that row's values, and only
        where one stands as a whole token."""
        self.p.sql("UPDATE people SET plan = 'ail' WHERE id = 8;"    # another row's short value
                   "UPDATE people SET plan = 'mail' WHERE id = 2;"   # the row's own, inside a word
                   "UPDATE people SET first_name = 'Address' WHERE id = 6")
        def reply(records):
            out = []
            for r in records:
                uid = r["key"]["user_id"]
                if uid in (1, 2, 3):
                    out.append({"status": "rejected", "reason": "EMAIL: not an email address"})
                elif uid == 4:
                    out.append({"status": "rejected",
                                "reason": f"bad plan {r['fields']['plan'].upper()}!"})
                elif uid == 6:
                    out.append({"status": "rejected", "reason": "first_name Address is not an address"})
                else:
                    out.append({"status": "ok"})
            return 200, {"results": out}
        self.stub(reply)
        run = self.run_sync(self.p, "to_hook", expect=1)
        self.assertEqual(run["rejected"], 5, run)
        errs = self.errors(self.p, "to_hook")["errors"]
        self.assertEqual(sorted(e["reason"] for e in errs), sorted(
            ["EMAIL: not an email address"] * 3 + ["bad plan [value]!",
                                                   "first_name [value] is not an [value]"]))
        self.assertNothingLeaked()

    def test_whole_batch_rejection_quoting_one_record_does_not_leak_it(self):
        """A 422 for the whole batch names one bad record; every record of the batch
        gets that reason, so it must be scrubbed of all the batch's values."""
        def reply(records):
            return 422, {"error": f"record 2: invalid email {records[1]['fields']['email']}"}
        self.stub(reply)
        run = self.run_sync(self.p, "to_hook", expect=1)
        self.assertEqual(run["rejected"], 8, run)
        self.assertNothingLeaked()


class BadInput(CoreCase):
    GOOD = ("version: 1\n"
            "warehouses:\n"
            "  local: {type: sqlite, path: warehouse.db}\n"
            "models:\n"
            "  users:\n"
            "    warehouse: local\n"
            "    sql: SELECT id, email, first_name, plan FROM users\n"
            "    primary_key: id\n"
            "    pii: {email: email, first_name: name}\n"
            "destinations:\n"
            "  out: {type: file, path: out/users.jsonl}\n"
            "  hook: {type: webhook, url: \"http://127.0.0.1:9/in\", signing_secret: \"%s\"}\n"
            "syncs:\n"
            "  users_file:\n"
            "    model: users\n"
            "    destination: out\n"
            "    mode: mirror\n"
            "    match: {user_id: id}\n"
            "    fields: {email: email, plan: plan}\n" % WEBHOOK_SECRET)

    def setUp(self):
        self.p = self.new_project(rows=5)
        os.environ.pop("BF_TEST_UNSET_SECRET", None)

    def broken(self, old, new):
        self.assertIn(old, self.GOOD)
        return self.GOOD.replace(old, new, 1)

    @staticmethod
    def loc(text, needle):
        """1-based line and column of needle's first occurrence."""
        idx = text.index(needle)
        line = text.count("\n", 0, idx) + 1
        col = idx - (text.rfind("\n", 0, idx) + 1) + 1
        return line, col

    def check(self, text, code, must_contain, at=None, args=("run", "users_file"),
              extra_lines=0):
        """Runs `args` (and `plan` when args is a run) on a fresh project and on one with
        state: exit `code`, one clear stderr line, no state created or changed."""
        state = os.path.join(self.p.dir, ".backflow")
        shutil.rmtree(state, ignore_errors=True)  # fresh project: no state yet
        shutil.rmtree(os.path.join(self.p.dir, "out"), ignore_errors=True)
        self.p.write_config(text)
        commands = [args] + ([("plan", args[1])] if args[0] == "run" else [])
        for cmd in commands:
            proc = self.p.run(*cmd)
            self.assertEqual(proc.returncode, code, f"{cmd}: {proc.stderr!r}")
            lines = proc.stderr.strip().splitlines()
            self.assertEqual(len(lines), 1 + extra_lines, lines)
            line = lines[0]
            self.assertTrue(line.startswith(f"backflow {cmd[0]}: "), line)
            if at is not None:  # () = some file:line:column, not checked further
                self.assertRegex(line, r"backflow\.yml:\d+:\d+: ")
            if at:
                self.assertIn(f"backflow.yml:{at[0]}:{at[1]}:" if len(at) == 2
                              else f"backflow.yml:{at[0]}:", line)
            for s in must_contain:
                self.assertIn(s, line)
            self.assertEqual(proc.stdout, "")
            self.assertFalse(os.path.exists(state), f"{cmd} created {state}")
            self.assertFalse(os.path.exists(os.path.join(self.p.dir, "out")))

        # Same error over existing state: nothing changes.
        self.p.write_config(self.GOOD)
        self.run_sync(self.p, "users_file")
        files = sorted(self.p.state_files())
        before = snapshot(files)
        self.p.write_config(text)
        for cmd in commands:
            proc = self.p.run(*cmd)
            self.assertEqual(proc.returncode, code, proc.stderr)
        self.assertEqual(sorted(self.p.state_files()), files)
        self.assertEqual(snapshot(files), before)

    def test_malformed_yaml(self):
        text = self.broken("    primary_key: id\n", "    primary_key: id: x\n")
        line, _ = self.loc(text, "id: x")
        self.check(text, 2, ["invalid YAML"], at=(line,))
        # An unclosed bracket is noticed on a later line; the message says where it opened.
        text = self.broken("    primary_key: id\n", "    primary_key: [id\n")
        line, col = self.loc(text, "[id")
        self.check(text, 2, ["invalid YAML", f"line {line}, column {col}"], at=())

    def test_unknown_key_with_did_you_mean(self):
        text = self.broken("    primary_key: id", "    primry_key: id")
        self.check(text, 2, ["'primry_key'", "did you mean 'primary_key'"],
                   at=self.loc(text, "primry_key"))
        text = self.broken("    fields:", "    feilds:")
        self.check(text, 2, ["'feilds'", "did you mean 'fields'"], at=self.loc(text, "feilds"))

    def test_missing_environment_variable(self):
        # In what the sync reads (its destination): refused, at the variable's place.
        text = self.broken("path: out/users.jsonl", "path: \"out/${BF_TEST_UNSET_SECRET}\"")
        line, _ = self.loc(text, "out/${BF_TEST_UNSET_SECRET}")
        self.check(text, 2, ["BF_TEST_UNSET_SECRET", "not set", "destination 'out'"], at=(line,))
        # In a destination no sync of the command uses: no concern of `run users_file`
        # (issue 16), but of every command that reads the whole file.
        text = self.broken(WEBHOOK_SECRET, "${BF_TEST_UNSET_SECRET}")
        self.p.write_config(text)
        self.assertEqual(self.p.run("run", "users_file").returncode, 0)
        self.check(text, 2, ["BF_TEST_UNSET_SECRET", "not set"], at=(self.loc(text, "${BF")[0],),
                   args=("run", "--all"))

    def test_bad_sql_is_a_warehouse_error(self):
        text = self.broken("SELECT id, email", "SELEC id, email")
        self.check(text, 3, ["model 'users'", "SELEC"], at=self.loc(text, "SELEC id"))
        text = self.broken("FROM users", "FROM no_such_table")
        self.check(text, 3, ["model 'users'", "no_such_table"], at=self.loc(text, "SELECT"))

    def test_model_without_its_primary_key_column(self):
        text = self.broken("SELECT id, email", "SELECT email")
        self.check(text, 2, ["primary key 'id'", "model 'users'"],
                   at=(self.loc(text, "primary_key")[0],))

    def test_mapping_to_a_missing_column(self):
        text = self.broken("plan: plan}", "plan: plann}")
        self.check(text, 2, ["'plann'", "did you mean 'plan'"], at=self.loc(text, "plann"))
        text = self.broken("match: {user_id: id}", "match: {user_id: user_id}")
        self.check(text, 2, ["'user_id' is not a column"], at=self.loc(text, "user_id}"))

    def test_unknown_sync_name(self):
        self.check(self.GOOD, 2, ["unknown sync 'users_fil'", "did you mean 'users_file'"],
                   args=("run", "users_fil"), extra_lines=1)

    def test_unknown_destination_type(self):
        text = self.broken("{type: file,", "{type: fiel,")
        self.check(text, 2, ["unknown destination type 'fiel'", "did you mean 'file'"],
                   at=self.loc(text, "fiel,"))

    def test_unknown_destination_and_model_names(self):
        text = self.broken("destination: out", "destination: outt")
        self.check(text, 2, ["'outt'", "did you mean 'out'"], at=self.loc(text, "outt"))
        text = self.broken("    model: users", "    model: userz")
        self.check(text, 2, ["'userz'", "did you mean 'users'"], at=self.loc(text, "userz"))


if __name__ == "__main__":
    import unittest
    unittest.main()
