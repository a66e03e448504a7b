#!/usr/bin/env python3
"""Independent oracle for the expected rows of the window and watermark suites.

Reads the hand-made fixtures in sql/data/, simulates the watermark of a parallelism-1 file
source (watermark = max event time seen so far - delay, advanced after every row), assigns
rows to TUMBLE / HOP / SESSION windows the way DESIGN.md §3 defines them, drops late rows,
and prints the expected result rows of every query in sql/window/*.slt and sql/watermark.slt
in sqllogictest format (same ORDER BY as the .slt query), plus the late-row counts.

It shares no code with Weir. Run from the crate root:  python3 tests/verify/fixture_oracle.py
Use it to re-derive the expectations when a fixture changes; compare by eye or with --check,
which diffs the printed blocks against the .slt files (each block is tagged with the table name
the .slt file selects from).

Semantics encoded here (the engine must match them):
  * windows are [start, end); TUMBLE/HOP are aligned to the epoch (start multiple of the size
    for TUMBLE, of the slide for HOP); CUMULATE(step, max) emits, for each max-long window
    [S, S + max) with S a multiple of max, the windows [S, S + step), [S, S + 2 step), ...,
    [S, S + max): a row is in those of its max window that end after it;
  * a row is late when every window it belongs to has window_end <= current watermark
    (checked with the watermark produced by the rows before it); a late row is dropped and
    counted; a row whose some windows have already fired still counts in the open ones;
  * SESSION: per key, rows at most `gap` apart share a session (exactly `gap` apart merge);
    session = [first row, last row + gap); a session fires when watermark >= its end;
  * at end of input every remaining window fires.
"""
import csv
import datetime as dt
import os
import re
import sys
from collections import defaultdict

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
EPOCH = dt.datetime(1970, 1, 1)


def parse_ts(s):
    return int((dt.datetime.strptime(s, "%Y-%m-%d %H:%M:%S") - EPOCH).total_seconds())


def fmt_ts(sec):
    return (EPOCH + dt.timedelta(seconds=sec)).strftime("%Y-%m-%dT%H:%M:%S")


def load(name):
    with open(os.path.join(ROOT, "sql", "data", name), newline="") as f:
        return [(r["k"], int(r["v"]), parse_ts(r["ts"])) for r in csv.DictReader(f)]


def tumble(size):
    return lambda t: [(t // size * size, t // size * size + size)]


def hop(slide, size):
    def assign(t):
        out = []
        last_start = t // slide * slide
        start = last_start
        while start > t - size:
            out.append((start, start + size))
            start -= slide
        return sorted(out)
    return assign


def cumulate(step, max_size):
    def assign(t):
        start = t // max_size * max_size
        end = t // step * step + step
        out = []
        while end <= start + max_size:
            out.append((start, end))
            end += step
        return out
    return assign


def run_fixed(rows, assign, delay, keyed=True, where=lambda r: True):
    """Returns ({(key, start, end): [values]}, late_count)."""
    acc = defaultdict(list)
    late = 0
    max_ts = None
    for k, v, t in rows:
        wm = None if max_ts is None else max_ts - delay
        # Weir filters before the window operator, but the watermark comes from the source,
        # so every row (filtered or not) advances it.
        if where((k, v, t)):
            open_windows = [w for w in assign(t) if wm is None or w[1] > wm]
            if not open_windows:
                late += 1
            for s, e in open_windows:
                acc[(k if keyed else None, s, e)].append(v)
        max_ts = t if max_ts is None else max(max_ts, t)
    return acc, late


def run_session(rows, gap, delay, keyed=True, group=None):
    """Sessions per k (keyed) or over all rows; `group(k, v)`: aggregate within each session per
    that key (Flink's SESSION TVF: PARTITION BY, or none, then GROUP BY more keys)."""
    open_s = defaultdict(list)   # key -> [[start, last, [values]]]
    fired = defaultdict(list)
    late = 0
    max_ts = None
    for k, v, t in rows:
        key = k if keyed else None
        wm = None if max_ts is None else max_ts - delay
        new = [t, t, [(k, v)]]
        keep = []
        for s in open_s[key]:
            # [s0, l0 + gap) and [t, t + gap) intersect inclusively (Flink TimeWindow.intersects)
            if s[0] <= t + gap and s[1] + gap >= t:
                new = [min(new[0], s[0]), max(new[1], s[1]), new[2] + s[2]]
            else:
                keep.append(s)
        for s in fired[key]:
            assert not (s[0] <= t + gap and s[1] + gap >= t), \
                f"fixture ambiguity: row {k},{t} touches a session that already fired"
        if wm is not None and new[1] + gap <= wm:
            late += 1  # the merged session already ended: drop the row, keep state as it was
            continue
        keep.append(new)
        open_s[key] = keep
        max_ts = t if max_ts is None else max(max_ts, t)
        wm = max_ts - delay
        for kk in list(open_s):
            still = []
            for s in open_s[kk]:
                (fired[kk] if s[1] + gap <= wm else still).append(s)
            open_s[kk] = still
    acc = defaultdict(list)
    for kk in set(open_s) | set(fired):
        for s in open_s[kk] + fired[kk]:
            for k, v in s[2]:
                acc[(kk if group is None else group(k, v), s[0], s[1] + gap)].append(v)
    return acc, late


def run_over(rows, delay, frame, preceding, keyed=True):
    """Flink's OVER aggregation on event time. Flink's watermark is max - delay - 1 ms (one less
    than the `wm` here). Rows wait until Flink's watermark reaches their time (t < wm), then are
    aggregated per key in (time, arrival) order. A late row is dropped: with an unbounded frame
    (preceding None) one at or before Flink's watermark (t < wm); with a bounded one, one at or
    before the last time its key aggregated (Flink's lastTriggeringTs). frame 'rows': the row and
    `preceding` rows before it (None: all); 'range': rows at most `preceding` seconds earlier plus
    every row with the same time (None: all). Returns ([(k, t, v, cnt, sum, max)], late)."""
    late = 0
    max_ts = None
    kept = defaultdict(list)
    for arrival, (k, v, t) in enumerate(rows):
        wm = None if max_ts is None else max_ts - delay
        part = k if keyed else None
        # The key's rows the watermark has reached are aggregated by now.
        done = [r[0] for r in kept[part] if wm is not None and r[0] < wm]
        if preceding is None and wm is not None and t < wm:
            late += 1
        elif preceding is not None and done and t <= max(done):
            late += 1
        else:
            kept[part].append((t, arrival, k, v))
        max_ts = t if max_ts is None else max(max_ts, t)
    out = []
    for part in kept.values():
        part.sort()
        for i, (t, _, k, v) in enumerate(part):
            if frame == "rows":
                lo = 0 if preceding is None else max(0, i - preceding)
                window = part[lo:i + 1]
            else:
                window = [r for r in part if r[0] <= t and (preceding is None or r[0] >= t - preceding)]
            vals = [r[3] for r in window]
            out.append((k, t, v, len(vals), sum(vals), max(vals)))
    return out, late


def over_lines(out, cols):
    order = {"k": 0, "ts": 1, "v": 2, "cnt": 3, "sum": 4, "max": 5}
    lines = []
    for r in sorted(out, key=lambda r: (r[0], r[1], r[2])):
        lines.append(" ".join(fmt_ts(r[1]) if c == "ts" else str(r[order[c]]) for c in cols))
    return lines


def rows_out(acc, cols, order):
    """cols: list of 'k','ws','we','cnt','sum','min','max'. order: list of those for sorting."""
    out = []
    for (k, s, e), vals in acc.items():
        d = {"k": k, "ws": s, "we": e, "cnt": len(vals), "sum": sum(vals),
             "min": min(vals), "max": max(vals)}
        out.append(d)
    out.sort(key=lambda d: tuple(d[c] for c in order))
    lines = []
    for d in out:
        cells = []
        for c in cols:
            x = d[c]
            cells.append(fmt_ts(x) if c in ("ws", "we") else str(x))
        lines.append(" ".join(cells))
    return lines


CASES = []


def case(tag, lines, late=None):
    CASES.append((tag, lines, late))


def updating(rows):
    """Per-key COUNT(*), SUM, MIN, MAX: the final state of an updating aggregate."""
    acc = defaultdict(list)
    for k, v, _ in rows:
        acc[k].append(v)
    return [f"{k} {len(vs)} {sum(vs)} {min(vs)} {max(vs)}" for k, vs in sorted(acc.items())]


def build():
    t_rows = load("tumble.csv")
    acc, late = run_fixed(t_rows, tumble(10), 1)
    case("tumble_keyed", rows_out(acc, ["k", "ws", "we", "cnt", "sum"], ["ws", "k"]), late)
    acc, late = run_fixed(t_rows, tumble(10), 1, keyed=False)
    case("tumble_global", rows_out(acc, ["ws", "we", "cnt", "sum", "min", "max"], ["ws"]), late)
    acc, late = run_fixed(t_rows, tumble(10), 1)
    case("tumble_flink", rows_out(acc, ["k", "ws", "we", "cnt", "sum"], ["k", "ws"]), late)
    acc, late = run_fixed(t_rows, tumble(60), 1, keyed=False, where=lambda r: r[1] > 5)
    case("tumble_minute", rows_out(acc, ["ws", "we", "cnt", "sum"], ["ws"]), late)

    h_rows = load("hop.csv")
    acc, late = run_fixed(h_rows, hop(5, 10), 1)
    case("hop_keyed", rows_out(acc, ["k", "ws", "we", "cnt", "sum"], ["k", "ws"]), late)
    acc, late = run_fixed(h_rows, hop(5, 10), 1, keyed=False)
    case("hop_global", rows_out(acc, ["ws", "we", "cnt", "sum"], ["ws"]), late)
    acc, late = run_fixed(h_rows, hop(5, 10), 1)
    case("hop_flink", rows_out(acc, ["k", "ws", "we", "cnt", "sum"], ["k", "ws"]), late)
    acc, late = run_fixed(h_rows, hop(5, 10), 1, where=lambda r: r[1] > 5)
    since = parse_ts("2024-01-01 00:00:10")
    acc = {key: vals for key, vals in acc.items() if key[1] >= since}
    case("hop_filtered", rows_out(acc, ["k", "ws", "we", "cnt", "sum"], ["k", "ws"]), late)
    acc, late = run_fixed(h_rows, hop(10, 30), 1, keyed=False)
    case("hop_wide", rows_out(acc, ["ws", "we", "cnt", "min", "max"], ["ws"]), late)

    acc, late = run_fixed(h_rows, cumulate(5, 20), 1)
    case("cumulate_keyed", rows_out(acc, ["k", "ws", "we", "cnt", "sum"], ["k", "we"]), late)
    acc, late = run_fixed(h_rows, cumulate(10, 30), 1, keyed=False)
    case("cumulate_flink", rows_out(acc, ["ws", "we", "cnt", "min", "max"], ["we"]), late)
    w_rows = load("watermark.csv")
    acc, late = run_fixed(w_rows, cumulate(5, 15), 2)
    case("cumulate_late", rows_out(acc, ["k", "ws", "we", "cnt", "sum"], ["k", "we"]), late)

    out, late = run_over(h_rows, 1, "rows", 2)
    case("over_rows", over_lines(out, ["k", "ts", "v", "cnt", "sum", "max"]), late)
    out, late = run_over(load("watermark.csv"), 2, "range", 10)
    case("over_range", over_lines(out, ["k", "ts", "v", "cnt", "sum", "max"]), late)
    out, late = run_over(load("watermark.csv"), 2, "range", None)
    case("over_unbounded", over_lines(out, ["k", "ts", "v", "cnt", "sum", "max"]), late)
    out, late = run_over(h_rows, 1, "rows", None, keyed=False)
    case("over_global", over_lines([(None, t, v, c, su, m) for (_, t, v, c, su, m) in out],
                                   ["ts", "v", "cnt", "sum"]), late)

    s_rows = load("session.csv")
    acc, late = run_session(s_rows, 5, 5)
    case("session_keyed", rows_out(acc, ["k", "ws", "we", "cnt", "sum"], ["k", "ws"]), late)
    acc, late = run_session(s_rows, 5, 5)
    case("session_flink", rows_out(acc, ["k", "ws", "we", "cnt", "sum"], ["k", "ws"]), late)
    acc, late = run_session(s_rows, 5, 5, keyed=False)
    case("session_global", rows_out(acc, ["ws", "we", "cnt"], ["ws"]), late)
    acc, late = run_session(s_rows, 5, 5, keyed=False, group=lambda k, v: k)
    case("session_all_rows", rows_out(acc, ["k", "ws", "we", "cnt", "sum"], ["ws", "k"]), late)
    acc, late = run_session(s_rows, 5, 5, group=lambda k, v: f"{k} {str(v % 2 == 0).lower()}")
    case("session_partitioned", rows_out(acc, ["k", "ws", "we", "cnt", "sum"], ["k", "ws"]), late)
    acc, late = run_session(s_rows, 10, 5)
    case("session_gap10", rows_out(acc, ["k", "ws", "we", "cnt", "min", "max"], ["k", "ws"]), late)

    w_rows = load("watermark.csv")
    acc, late = run_fixed(w_rows, tumble(10), 2)
    case("wm_tumble_2s", rows_out(acc, ["k", "ws", "we", "cnt", "sum"], ["k", "ws"]), late)
    acc, late = run_fixed(w_rows, tumble(10), 30)
    case("wm_tumble_30s", rows_out(acc, ["k", "ws", "we", "cnt", "sum"], ["k", "ws"]), late)
    acc, late = run_fixed(w_rows, hop(5, 10), 2)
    case("wm_hop_2s", rows_out(acc, ["k", "ws", "we", "cnt", "sum"], ["k", "ws"]), late)
    acc, late = run_fixed(w_rows, tumble(10), 0, keyed=False)
    case("wm_tumble_0s", rows_out(acc, ["ws", "we", "cnt", "sum"], ["ws"]), late)

    p_rows = load("par.csv")
    for p in (1, 4):
        acc, late = run_fixed(p_rows, tumble(20), 1)
        case(f"par{p}_tumble", rows_out(acc, ["k", "ws", "we", "cnt", "sum", "max"], ["k", "ws"]),
             late)
        acc, late = run_session(p_rows, 4, 1)
        case(f"par{p}_session", rows_out(acc, ["k", "ws", "we", "cnt", "sum"], ["k", "ws"]), late)
        case(f"par{p}_agg", updating(p_rows), 0)


def slt_blocks():
    """{table name: expected lines} for every `SELECT ... FROM <tag>` query in the suites."""
    blocks = {}
    for rel in ("sql/window/tumble.slt", "sql/window/hop.slt", "sql/window/cumulate.slt",
                "sql/window/session.slt", "sql/over.slt",
                "sql/watermark.slt", "sql/parallelism.slt"):
        path = os.path.join(ROOT, rel)
        if not os.path.exists(path):
            continue
        text = open(path).read()
        for m in re.finditer(r"^query [^\n]*\n(.*?)\n----\n(.*?)(?:\n\n|\Z)", text, re.S | re.M):
            sql, res = m.group(1), m.group(2)
            t = re.search(r"FROM (\w+)", sql)
            # the first query over each result table is the one the oracle reproduces
            if t and "weir_jobs" not in sql and t.group(1) not in blocks:
                blocks[t.group(1)] = [res.strip("\n").split("\n")]
    return blocks


def main():
    build()
    if "--check" in sys.argv:
        blocks = slt_blocks()
        bad = 0
        for tag, lines, _ in CASES:
            got = blocks.get(tag)
            if not got:
                print(f"{tag}: no query over table {tag} found in the suites")
                bad += 1
            elif any(b != lines for b in got):
                print(f"{tag}: MISMATCH\n  oracle: {lines}\n  slt:    {got}")
                bad += 1
            else:
                print(f"{tag}: ok")
        sys.exit(1 if bad else 0)
    for tag, lines, late in CASES:
        print(f"# {tag} (late rows dropped: {late})")
        print("\n".join(lines))
        print()


if __name__ == "__main__":
    main()
