#!/usr/bin/env python3
"""Structural check of sql/**/*.slt without building Weir (stdlib only).

Checks what the sqllogictest crate (0.29) would trip on, plus a few house rules:
  * every record is `statement ok`, `statement error <regex>`, `query <types> [rowsort]`,
    `sleep <duration>` (or a comment / blank line); records are separated by a blank line;
  * no comment line inside a record (the parser would take it as SQL);
  * the error regex compiles (Python's `re` as a stand-in for Rust's `regex`);
  * every query has `----`; each expected row has as many whitespace-separated values as the
    type string has letters (fixtures use no values containing spaces);
  * a query returning several rows is ordered (ORDER BY) or marked rowsort; with rowsort the
    expected rows are listed in the order the runner sorts them (so a reader sees the real order);
  * every `path = '...'` fixture exists (relative to the crate root), except the deliberately
    missing does_not_exist.csv.
Run from anywhere: python3 tests/verify/slt_lint.py   (exit 1 on any problem)
"""
import glob
import os
import re
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def lint(path):
    problems = []
    lines = open(path).read().split("\n")
    i = 0
    n = len(lines)

    def err(lineno, msg):
        problems.append(f"{os.path.relpath(path, ROOT)}:{lineno + 1}: {msg}")

    while i < n:
        line = lines[i]
        if line == "" or line.startswith("#"):
            i += 1
            continue
        head = line.split()
        start = i
        if head[0] == "sleep":
            if len(head) != 2 or not re.fullmatch(r"\d+(ms|s)", head[1]):
                err(i, f"sleep takes one duration like 500ms or 2s: {line!r}")
            i += 1
            continue
        if head[:2] == ["statement", "ok"] and len(head) == 2:
            kind = "stmt"
        elif head[:2] == ["statement", "error"]:
            kind = "stmt"
            rx = " ".join(head[2:])
            try:
                re.compile(rx)
            except re.error as e:
                err(i, f"bad regex {rx!r}: {e}")
        elif head[0] == "query" and len(head) in (2, 3):
            kind = "query"
            types = head[1]
            sort = head[2] if len(head) == 3 else None
            if sort not in (None, "rowsort"):
                err(i, f"unexpected sort mode {sort}")
            if not re.fullmatch(r"[ITR]+", types):
                err(i, f"type string {types!r} should use I/T/R")
        else:
            err(i, f"unrecognised record header: {line!r}")
            i += 1
            continue
        i += 1
        sql = []
        while i < n and lines[i] != "" and lines[i] != "----":
            if lines[i].startswith("#"):
                err(i, "comment line inside a record")
            sql.append(lines[i])
            i += 1
        if not sql:
            err(start, "record without SQL")
        for m in re.finditer(r"path'?\s*=\s*'([^']+)'", " ".join(sql)):
            p = m.group(1)
            if "does_not_exist" not in p and not os.path.exists(os.path.join(ROOT, p)):
                err(start, f"fixture {p} does not exist")
        if kind == "stmt":
            if i < n and lines[i] == "----":
                err(i, "statement with results")
            continue
        if i >= n or lines[i] != "----":
            err(start, "query without ----")
            continue
        i += 1
        rows = []
        while i < n and lines[i] != "":
            rows.append(lines[i])
            i += 1
        for j, r in enumerate(rows):
            if r.startswith("#"):
                err(i - len(rows) + j, "comment line inside expected rows")
            if len(r.split()) != len(types):
                err(i - len(rows) + j, f"{len(r.split())} values for {len(types)} columns: {r!r}")
        text = " ".join(sql).upper()
        if len(rows) > 1 and sort is None and "ORDER BY" not in text:
            err(start, "several rows, no ORDER BY and no rowsort")
        if sort == "rowsort":
            as_sorted = sorted(rows, key=lambda r: r.split())
            if rows != as_sorted:
                err(start, "rowsort expectations not listed in sorted order")
    return problems


def main():
    files = sorted(glob.glob(os.path.join(ROOT, "sql", "**", "*.slt"), recursive=True))
    problems = []
    for f in files:
        problems += lint(f)
    for p in problems:
        print(p)
    print(f"{len(files)} files, {len(problems)} problems")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
