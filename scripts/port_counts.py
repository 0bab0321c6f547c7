#!/usr/bin/env python3
"""Counts, per area of ../shared/reference/cpython-test-port.md, the port /
adapt / n/a rows and which of them have a test of the same name in this
repository; prints a Markdown table for docs/features.md.

Usage: python3 scripts/port_counts.py [PATH-TO-cpython-test-port.md]
"""
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOC = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared/reference/cpython-test-port.md"
AREAS = ["Core state machine", "Flow control", "TCP", "Buffered protocols", "Server lifecycle", "TLS"]


def rows_by_area(text):
    areas, cur = {}, None
    for line in text.splitlines():
        m = re.match(r"^## (.+)", line)
        if m:
            cur = m.group(1).strip()
            continue
        if cur and (line.startswith("| `") or line.startswith("| uvloop")):
            cols = line.split("|")
            if len(cols) < 4:
                continue
            names = re.findall(r"(test_\w+)", cols[1])
            verdict = cols[3].strip()
            kind = ("port" if verdict.startswith("**port") else
                    "adapt" if verdict.startswith("**adapt") else
                    "n/a" if verdict.startswith("**n/a") else None)
            if names and kind:
                areas.setdefault(cur, []).append((names[-1], kind, cols[1].strip().replace("`", "")))
    return areas


def tests_in_repo():
    out = subprocess.run(
        ["grep", "-rhoE", r"fn test_[A-Za-z0-9_]+", "crates", "tests", "examples"],
        cwd=ROOT, capture_output=True, text=True).stdout
    return {t for t in out.split() if t.startswith("test_")}


def main():
    areas = rows_by_area(DOC.read_text())
    have = tests_in_repo()
    print("| Area | port rows (with a test) | adapt rows (with a test) | n/a rows | rows without a test yet |")
    print("|---|---|---|---|---|")
    for area in AREAS:
        rows = areas.get(area, [])
        count = {k: sum(1 for _, v, _ in rows if v == k) for k in ("port", "adapt", "n/a")}
        done = {k: sum(1 for n, v, _ in rows if v == k and n in have) for k in ("port", "adapt")}
        missing = [t for n, v, t in rows if v in ("port", "adapt") and n not in have]
        left = "; ".join(f"`{m}`" for m in missing) or "none"
        print(f"| {area} | {count['port']} ({done['port']}) | {count['adapt']} ({done['adapt']}) | {count['n/a']} | {left} |")


if __name__ == "__main__":
    main()
