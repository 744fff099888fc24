"""The README's configuration reference is generated from the same tables
that validate configs; this fails when someone forgets `make docs`."""
import os
import subprocess
import unittest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


class ReadmeIsCurrent(unittest.TestCase):
    def test_type_reference_matches_the_binary(self):
        binary = os.environ.get("BACKFLOW_BIN", os.path.join(ROOT, "build", "backflow"))
        p = subprocess.run(["python3", "scripts/gen_docs.py", binary, "--check"], cwd=ROOT,
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)


if __name__ == "__main__":
    unittest.main()
