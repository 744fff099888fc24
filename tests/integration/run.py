#!/usr/bin/env python3
"""Runs every integration test (tests/integration/test_*.py, tests/crash/test_*.py)
against a built backflow binary. `make integration` calls this."""
import argparse
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "backflow"))
    ap.add_argument("-k", dest="pattern", help="only tests whose id contains this")
    ap.add_argument("-v", action="store_true")
    args = ap.parse_args()
    os.environ["BACKFLOW_BIN"] = os.path.abspath(args.binary)
    os.environ.setdefault("BACKFLOW_ROOT", ROOT)
    sys.path.insert(0, HERE)
    suite = unittest.TestSuite()
    loader = unittest.TestLoader()
    for folder in (HERE, os.path.join(ROOT, "tests", "crash")):
        if os.path.isdir(folder):
            suite.addTests(loader.discover(folder, pattern="test_*.py", top_level_dir=folder))

    def flatten(s):
        for t in s:
            if isinstance(t, unittest.TestSuite):
                yield from flatten(t)
            else:
                yield t

    tests = [t for t in flatten(suite) if not args.pattern or args.pattern in t.id()]
    result = unittest.TextTestRunner(verbosity=2 if args.v else 1).run(unittest.TestSuite(tests))
    sys.exit(0 if result.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
