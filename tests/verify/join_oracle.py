#!/usr/bin/env python3
"""Independent oracle for the expected rows of sql/window_join.slt and sql/lookup_join.slt.

Loads sql/data/interval_clicks.csv, interval_orders.csv and lookup_users.csv into SQLite and
computes each job's result with plain SQL written here. It shares no code with Weir.
  * Window joins: windows are integer arithmetic on the event time in seconds (TUMBLE 10 min:
    start = ts / 600 * 600; HOP 5 min / 10 min: the two windows starting at ts / 300 * 300 and
    300 s before), and a window join is an ordinary join that also equates the windows. The
    fixture's rows come in event-time order, so no row is late.
  * Lookup joins: the table does not change while the job runs, so a lookup join is an ordinary
    join with the table; a result table filled from lookup_users.csv keeps the last row per key.
It prints the expected rows in sqllogictest format; --check compares them with the .slt files'
blocks (each block is found by the table its query selects from).

  python3 tests/verify/join_oracle.py            # print the expected blocks
  python3 tests/verify/join_oracle.py --check    # exit 1 on any difference
"""
import csv
import datetime as dt
import os
import sqlite3
import sys

from nexmark_oracle import slt_blocks

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
SLTS = [os.path.join(ROOT, "sql", name) for name in ("window_join.slt", "lookup_join.slt")]
EPOCH = dt.datetime(1970, 1, 1)

TUMBLE = "SELECT t.*, ts / 600 * 600 AS ws, ts / 600 * 600 + 600 AS we FROM {table} t"
HOP = ("SELECT t.*, ts / 300 * 300 - k * 300 AS ws, ts / 300 * 300 - k * 300 + 600 AS we "
       "FROM {table} t, (SELECT 0 AS k UNION ALL SELECT 1)")

# table -> (SQL over the windowed inputs c and o, indices of the time columns). The ORDER BY is the
# .slt query's.
QUERIES = {
    "wj_inner": ("""
        SELECT c.user_id, c.page, c.ts, o.amount, c.ws, c.we FROM c JOIN o
        ON c.user_id = o.user_id AND c.ws = o.ws AND c.we = o.we
        ORDER BY 1, 3, 4""", TUMBLE, [2, 4, 5]),
    "wj_full": ("""
        SELECT c.user_id, c.page, o.user_id, o.amount, COALESCE(c.ws, o.ws), COALESCE(c.we, o.we)
        FROM c FULL JOIN o ON c.user_id = o.user_id AND c.ws = o.ws AND c.we = o.we AND o.amount > 8
        ORDER BY 5, 1 NULLS FIRST, 2 NULLS FIRST, 3 NULLS FIRST, 4""", TUMBLE, [4, 5]),
    "wj_hop": ("""
        SELECT c.user_id, c.page, c.ts, o.amount, c.ws, c.we FROM c LEFT JOIN o
        ON c.user_id = o.user_id AND c.ws = o.ws AND c.we = o.we
        ORDER BY 5, 1 NULLS FIRST, 3, 4 NULLS FIRST""", HOP, [2, 4, 5]),
    "wj_semi": ("""
        SELECT c.user_id, c.page, c.ts, c.ws FROM c
        WHERE c.user_id IN (SELECT o.user_id FROM o WHERE c.ws = o.ws AND c.we = o.we)
        ORDER BY 3, 1""", TUMBLE, [2, 3]),
    "wj_anti": ("""
        SELECT c.user_id, c.page, c.ts, c.ws FROM c
        WHERE NOT EXISTS (SELECT * FROM o WHERE o.user_id = c.user_id AND c.ws = o.ws AND c.we = o.we)
        ORDER BY 3, 1 NULLS FIRST""", TUMBLE, [2, 3]),
    # Per-window aggregates joined on their window ends; SQLite's GROUP BY keeps the NULL user's
    # group, which (NULL key) matches nothing.
    "wj_attached": ("""
        SELECT c.user_id, c.clicks, o.spent, c.we FROM
        (SELECT user_id, COUNT(*) AS clicks, we FROM c GROUP BY user_id, ws, we) c LEFT JOIN
        (SELECT user_id, SUM(amount) AS spent, we FROM o GROUP BY user_id, ws, we) o
        ON c.user_id = o.user_id AND c.we = o.we
        ORDER BY 4, 1 NULLS FIRST""", TUMBLE, [3]),
    "lj_inner": ("""
        SELECT o.user_id, o.amount, u.name, u.tier FROM orders o JOIN users u ON o.user_id = u.user_id
        ORDER BY 1, 2, 3""", None, []),
    "lj_left": ("""
        SELECT o.user_id, o.amount, u.name FROM orders o
        LEFT JOIN users u ON o.user_id = u.user_id AND u.tier > 1 AND o.amount > 8
        ORDER BY 1 NULLS FIRST, 2, 3 NULLS FIRST""", None, []),
    "lj_table": ("""
        SELECT o.user_id, o.amount, u.name FROM orders o LEFT JOIN users_last u ON o.user_id = u.user_id
        ORDER BY 1 NULLS FIRST, 2""", None, []),
}


def seconds(text):
    return int((dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S") - EPOCH).total_seconds())


def fmt_ts(sec):
    return (EPOCH + dt.timedelta(seconds=sec)).strftime("%Y-%m-%dT%H:%M:%S")


def load():
    db = sqlite3.connect(":memory:")
    for table, file, value in [("clicks", "interval_clicks.csv", "page"), ("orders", "interval_orders.csv", "amount")]:
        db.execute(f"CREATE TABLE {table} (user_id, ts, {value})")
        with open(os.path.join(ROOT, "sql", "data", file), newline="") as f:
            rows = [(r["user_id"] or None, seconds(r["ts"]), int(r[value]) if value == "amount" else r[value])
                    for r in csv.DictReader(f)]
        db.executemany(f"INSERT INTO {table} VALUES (?, ?, ?)", rows)
    db.execute("CREATE TABLE users (seq, user_id, name, tier)")
    with open(os.path.join(ROOT, "sql", "data", "lookup_users.csv"), newline="") as f:
        rows = [(i, r["user_id"] or None, r["name"], int(r["tier"])) for i, r in enumerate(csv.DictReader(f))]
    db.executemany("INSERT INTO users VALUES (?, ?, ?, ?)", rows)
    # The result table keyed by user_id: the last row of each key, no NULL key.
    db.execute("CREATE TABLE users_last AS SELECT user_id, name, tier FROM users u WHERE user_id IS NOT NULL "
               "AND seq = (SELECT MAX(seq) FROM users v WHERE v.user_id = u.user_id)")
    return db


def expected():
    db = load()
    blocks = {}
    for table, (sql, windows, time_columns) in QUERIES.items():
        with_inputs = sql if windows is None else \
            f"WITH c AS ({windows.format(table='clicks')}), o AS ({windows.format(table='orders')}) {sql}"
        lines = []
        for row in db.execute(with_inputs):
            cells = ["NULL" if v is None else fmt_ts(v) if i in time_columns else str(v) for i, v in enumerate(row)]
            lines.append(" ".join(cells))
        blocks[table] = lines
    return blocks


def main():
    blocks = expected()
    if "--check" not in sys.argv[1:]:
        for table, lines in blocks.items():
            print(f"# {table}\n" + "\n".join(lines) + "\n")
        return 0
    found = {}
    for slt in SLTS:
        with open(slt) as f:
            found.update(slt_blocks(f.read(), tables=r"(?:wj|lj)_\w+"))
    bad = 0
    for table, lines in blocks.items():
        got = found.get(table)
        if got != lines:
            print(f"{table}: MISMATCH\n  oracle: {lines}\n  slt:    {got}")
            bad += 1
        else:
            print(f"{table}: ok ({len(lines)} rows)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
