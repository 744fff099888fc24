#!/usr/bin/env python3
"""Regenerates the README's warehouse/destination reference from
`backflow types --markdown` (the tables that validate configs). `make docs`."""
import subprocess
import sys

BEGIN, END = "<!-- types:begin (make docs) -->", "<!-- types:end -->"


def generated(binary):
    return subprocess.run([binary, "types", "--markdown"], check=True, capture_output=True,
                          text=True).stdout


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "build/backflow"
    check = "--check" in sys.argv
    text = open("README.md").read()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    new = head + BEGIN + "\n" + generated(binary) + "\n" + END + tail
    if check:
        if new != text:
            sys.exit("README.md's type reference is stale: run `make docs`")
        return
    open("README.md", "w").write(new)


if __name__ == "__main__":
    main()
