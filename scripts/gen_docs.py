#!/usr/bin/env python3
"""Regenerates the README's generated blocks from the binary: the command
reference and exit statuses from `backflow help --markdown` (the command
table, src/cli/commands.c) and the warehouse/destination reference from
`backflow types --markdown` (the tables that validate configs). `make docs`;
--check fails when the README is stale (tests/integration/test_docs.py)."""
import subprocess
import sys

BLOCKS = [
    ("<!-- commands:begin (make docs) -->", "<!-- commands:end -->", ["help", "--markdown"]),
    ("<!-- types:begin (make docs) -->", "<!-- types:end -->", ["types", "--markdown"]),
]


def generated(binary, args):
    return subprocess.run([binary, *args], check=True, capture_output=True, text=True).stdout


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "build/backflow"
    check = "--check" in sys.argv
    text = open("README.md").read()
    new = text
    for begin, end, args in BLOCKS:
        head, rest = new.split(begin, 1)
        _, tail = rest.split(end, 1)
        new = head + begin + "\n" + generated(binary, args) + "\n" + end + tail
    if check:
        if new != text:
            sys.exit("README.md's generated reference is stale: run `make docs`")
        return
    open("README.md", "w").write(new)


if __name__ == "__main__":
    main()
