"""Helpers for the live sync tests (test_live_*.py): `backflow run SYNC --live`
as a child process, waiting for it to follow, and comparing the webhook
receiver's store with what the warehouse holds. Holds no tests itself."""
import os
import signal
import subprocess
import time

from bfhelp import BIN, RUN_PREFIX, WEBHOOK_SECRET  # noqa: F401
from webhook_receiver import canonical_key


def wait_until(cond, timeout=20.0, what="condition"):
    """Polls cond() until it returns a true value; returns it, or fails."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    last = None
    while True:
        last = cond()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


class Live:
    """`backflow -p DIR run SYNC --live`, stderr and stdout to files."""

    def __init__(self, project_dir, sync, env=None):
        self.dir = project_dir
        self.out_path = os.path.join(project_dir, f"live-{time.monotonic_ns()}.out")
        self.err_path = self.out_path[:-4] + ".err"
        full_env = dict(os.environ)
        full_env.update(env or {})
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen([*RUN_PREFIX, BIN, "-p", project_dir, "run", sync, "--live"],
                                         stdout=out, stderr=err, env=full_env)
        self.sync = sync

    def stdout(self):
        with open(self.out_path) as f:
            return f.read()

    def stderr(self):
        with open(self.err_path) as f:
            return f.read()

    def wait_following(self, timeout=30.0):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"backflow exited {self.proc.returncode}: {self.stderr()}")
            return f"sync '{self.sync}': following changes" in self.stderr()
        wait_until(ready, timeout, "the live sync to follow changes")

    def exited(self, timeout=30.0):
        """Waits for the process to end by itself; returns its status."""
        return self.proc.wait(timeout=timeout)

    def interrupt(self, timeout=30.0):
        """SIGINT, then the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=timeout)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def expected_store(rows, fields):
    """rows: (id, values...) as the model returns them; fields: destination
    field names in the same order as values. Returns the receiver's store."""
    return {canonical_key({"user_id": r[0]}): dict(zip(fields, r[1:])) for r in rows}


def store_equals(receiver, expected):
    """Receiver store == expected (values compared as the receiver keeps them)."""
    def check():
        got = receiver.store()
        return got == expected
    return check
