#!/usr/bin/env python3
"""Independent end-to-end check of Weir's window aggregates on a large generated input.

  python3 tests/verify/windows.py --weir target/release/weir --kind tumble --rows 1000000 --parallelism 4

1. Generates a seeded CSV (k VARCHAR ~50 keys with a skewed distribution, v BIGINT, ts TIMESTAMP with
   millisecond precision) whose event time increases over hours with a bounded disorder of at most
   900 ms, occasional global pauses of 4-15 s, and some rows exactly on whole seconds.
2. Writes a Weir SQL script: CREATE SOURCE (watermark ts - 2 s), CREATE TABLE, CREATE JOB for the
   window kind (tumble 10 s | hop slide 5 s size 20 s | session gap 3 s), WAIT JOB, the job's
   late_rows_dropped, and
     SELECT k, CAST(EXTRACT(EPOCH FROM window_start) AS BIGINT), CAST(EXTRACT(EPOCH FROM window_end)
     AS BIGINT), cnt, total FROM t ORDER BY 1, 2
3. Runs `<weir> run --data-dir <tmp> --format csv <script>` and parses stdout (query results only, each
   as a CSV header line then rows).
4. Computes COUNT(*) and SUM(v) per key and window in Python (no Weir code involved) and compares.

Because the disorder (< 1 s) is below the watermark delay (2 s), no row may be late: the expected
late_rows_dropped is 0 and every row counts. Session windows are computed from their definition
(per key, rows sorted by time, a new session when the next row is more than 3 s after the previous
one; rows exactly 3 s apart merge; window_end = last row + 3 s); EXTRACT(EPOCH ...) of a session
bound with a fraction is truncated to whole seconds by the CAST, and so is the Python side.

Prints `windows: N rows compared, 0 mismatches` and exits 0, or shows the first differences and
exits 1. Python 3.11, standard library only.
"""
import argparse
import bisect
import csv
import io
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BASE_MS = 1704067200 * 1000  # 2024-01-01 00:00:00 UTC
DELAY_S = 2
TUMBLE_S = 10
HOP_SLIDE_S, HOP_SIZE_S = 5, 20
SESSION_GAP_S = 3
MAX_DISORDER_MS = 900  # < 1 s, below the 2 s watermark delay: no row is ever late
HEADER = ["k", "ws", "we", "cnt", "total"]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------
# Data

class TsFormatter:
    """Fast 'YYYY-MM-DD HH:MM:SS.mmm' for epoch milliseconds (UTC), caching the date part."""

    def __init__(self):
        self.days = {}

    def __call__(self, ms):
        secs, milli = divmod(ms, 1000)
        day, sod = divmod(secs, 86400)
        d = self.days.get(day)
        if d is None:
            d = time.strftime("%Y-%m-%d", time.gmtime(day * 86400))
            self.days[day] = d
        h, rem = divmod(sod, 3600)
        m, s = divmod(rem, 60)
        return f"{d} {h:02d}:{m:02d}:{s:02d}.{milli:03d}"


def generate(path, rows, keys, seed, span_hours):
    """Writes the CSV and returns per-key arrays of (ts_ms, v) in file order."""
    rng = random.Random(seed)
    names = [f"key{i:02d}" for i in range(keys)]
    # Zipf-like weights: a few busy keys, many sparse ones (sparse keys make sessions split).
    weights = [1.0 / (i + 1) ** 1.1 for i in range(keys)]
    cum = []
    acc = 0.0
    for w in weights:
        acc += w
        cum.append(acc)
    total_w = acc
    mean_step = span_hours * 3600 * 1000 / rows
    pause_p = min(0.01, 50.0 / rows)  # about 50 global pauses longer than the session gap
    fmt = TsFormatter()
    per_key = defaultdict(list)
    t_nominal = BASE_MS + 1000  # the first rows (minus disorder) stay on 2024-01-01
    max_ts = None
    max_disorder = 0
    rnd = rng.random
    with open(path, "w", newline="") as f:
        f.write("k,v,ts\n")
        buf = []
        for _ in range(rows):
            t_nominal += int(rnd() * 2 * mean_step)
            if rnd() < pause_p:
                t_nominal += rng.randint(4000, 15000)
            if rnd() < 0.03:
                # exactly on a whole second (so some rows sit exactly on window bounds)
                if t_nominal % 1000:
                    t_nominal += 1000 - t_nominal % 1000
                ts = t_nominal
            else:
                ts = t_nominal - rng.randint(0, MAX_DISORDER_MS)
            k = names[bisect.bisect_left(cum, rnd() * total_w)]
            v = rng.randint(-50, 1000)
            if max_ts is not None and max_ts - ts > max_disorder:
                max_disorder = max_ts - ts
            max_ts = ts if max_ts is None else max(max_ts, ts)
            per_key[k].append((ts, v))
            buf.append(f"{k},{v},{fmt(ts)}\n")
            if len(buf) >= 10000:
                f.write("".join(buf))
                buf = []
        f.write("".join(buf))
    assert max_disorder < DELAY_S * 1000, max_disorder
    return per_key, max_disorder


# ------------------------------------------------------------------------------------------------
# Expected results, computed from the definitions

def expected_windows(per_key, kind):
    out = {}
    if kind == "tumble":
        size = TUMBLE_S * 1000
        for k, rows in per_key.items():
            agg = defaultdict(lambda: [0, 0])
            for ts, v in rows:
                a = agg[ts // size]
                a[0] += 1
                a[1] += v
            for w, (c, s) in agg.items():
                out[(k, w * TUMBLE_S, w * TUMBLE_S + TUMBLE_S)] = (c, s)
    elif kind == "hop":
        slide, size = HOP_SLIDE_S * 1000, HOP_SIZE_S * 1000
        per = size // slide
        for k, rows in per_key.items():
            agg = defaultdict(lambda: [0, 0])
            for ts, v in rows:
                last = ts // slide  # index of the last window start (in slides) containing ts
                for i in range(per):
                    a = agg[last - i]
                    a[0] += 1
                    a[1] += v
            for w, (c, s) in agg.items():
                start = w * HOP_SLIDE_S
                out[(k, start, start + HOP_SIZE_S)] = (c, s)
    elif kind == "session":
        gap = SESSION_GAP_S * 1000
        for k, rows in per_key.items():
            rows = sorted(rows)
            first = last = rows[0][0]
            c = s = 0
            for ts, v in rows:
                if ts - last > gap:
                    out[(k, first // 1000, (last + gap) // 1000)] = (c, s)
                    first, c, s = ts, 0, 0
                last = ts
                c += 1
                s += v
            out[(k, first // 1000, (last + gap) // 1000)] = (c, s)
    else:
        raise ValueError(kind)
    return out


# ------------------------------------------------------------------------------------------------
# Weir

def window_clause(kind, syntax):
    if syntax == "flink":
        if kind == "tumble":
            return f"TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '{TUMBLE_S}' SECOND))"
        if kind == "hop":
            return (f"TABLE(HOP(TABLE events, DESCRIPTOR(ts), INTERVAL '{HOP_SLIDE_S}' SECOND, "
                    f"INTERVAL '{HOP_SIZE_S}' SECOND))")
        return (f"TABLE(SESSION(TABLE events PARTITION BY k, DESCRIPTOR(ts), "
                f"INTERVAL '{SESSION_GAP_S}' SECOND))")
    if kind == "tumble":
        return f"TUMBLE(events, ts, INTERVAL '{TUMBLE_S}' SECOND)"
    if kind == "hop":
        return f"HOP(events, ts, INTERVAL '{HOP_SLIDE_S}' SECOND, INTERVAL '{HOP_SIZE_S}' SECOND)"
    return f"SESSION(events, ts, INTERVAL '{SESSION_GAP_S}' SECOND)"


def write_script(path, data_path, kind, parallelism, syntax):
    sql = f"""CREATE SOURCE events (k VARCHAR, v BIGINT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '{DELAY_S}' SECOND) WITH (connector = 'file', path = '{data_path}', format = 'csv');
CREATE TABLE t (k VARCHAR, window_start TIMESTAMP, window_end TIMESTAMP, cnt BIGINT, total BIGINT, PRIMARY KEY (k, window_start));
CREATE JOB j WITH ('parallelism' = '{parallelism}') AS INSERT INTO t SELECT k, window_start, window_end, COUNT(*), SUM(v) FROM {window_clause(kind, syntax)} GROUP BY k, window_start, window_end;
WAIT JOB j;
SELECT late_rows_dropped FROM weir_jobs WHERE name = 'j';
SELECT k, CAST(EXTRACT(EPOCH FROM window_start) AS BIGINT) AS ws, CAST(EXTRACT(EPOCH FROM window_end) AS BIGINT) AS we, cnt, total FROM t ORDER BY 1, 2;
"""
    with open(path, "w") as f:
        f.write(sql)


def parse_output(stdout):
    """Returns (late_rows_dropped or None, [(k, ws, we, cnt, total)], problems)."""
    lines = stdout.splitlines()
    problems = []
    late = None
    for i, line in enumerate(lines):
        if line.strip().lower() == "late_rows_dropped" and i + 1 < len(lines):
            try:
                late = int(lines[i + 1].strip())
            except ValueError:
                problems.append(f"late_rows_dropped value {lines[i + 1]!r} is not an integer")
            break
    start = None
    for i, line in enumerate(lines):
        if [c.strip().lower() for c in line.split(",")] == HEADER:
            start = i + 1
    if start is None:
        head = "\n".join(lines[:10])
        raise SystemExit(f"windows: no result header {','.join(HEADER)!r} in weir's stdout; "
                         f"first lines:\n{head}")
    rows = []
    for rec in csv.reader(io.StringIO("\n".join(lines[start:]))):
        if not rec:
            break
        if len(rec) != 5:
            break  # another result block would start with its header
        k, ws, we, cnt, total = rec
        rows.append((k, int(ws), int(we), int(cnt), int(total)))
    return late, rows, problems


def compare(expected, rows):
    diffs = []
    actual = {}
    for k, ws, we, cnt, total in rows:
        key = (k, ws, we)
        if key in actual:
            diffs.append((key, "duplicate row in Weir's output", actual[key], (cnt, total)))
        actual[key] = (cnt, total)
    for key, exp in expected.items():
        got = actual.get(key)
        if got is None:
            diffs.append((key, "missing in Weir's output", exp, None))
        elif got != exp:
            diffs.append((key, "different (cnt, total)", exp, got))
    for key, got in actual.items():
        if key not in expected:
            diffs.append((key, "unexpected row in Weir's output", None, got))
    diffs.sort(key=lambda d: d[0])
    order_ok = [(r[0], r[1]) for r in rows] == sorted((r[0], r[1]) for r in rows)
    return len(set(expected) | set(actual)), diffs, order_ok


def default_weir():
    for p in ("target/release/weir", "target/debug/weir"):
        full = os.path.join(ROOT, p)
        if os.path.exists(full):
            return full
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weir", help="path to the weir binary (default: target/release/weir, "
                                   "else target/debug/weir)")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--kind", choices=["tumble", "hop", "session"], default="tumble")
    ap.add_argument("--parallelism", type=int, default=1)
    ap.add_argument("--keys", type=int, default=50)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--span-hours", type=float, default=3.0,
                    help="event-time span of the generated data (default 3 h)")
    ap.add_argument("--syntax", choices=["plain", "flink"], default="plain",
                    help="TUMBLE(src, ts, ...) or Flink's TABLE(TUMBLE(TABLE src, DESCRIPTOR(ts), ...))")
    ap.add_argument("--workdir", help="keep data, script, output and expected rows here "
                                      "(default: a temporary directory, removed on success)")
    ap.add_argument("--generate-only", action="store_true",
                    help="write data, script and expected.csv, do not run weir")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds allowed for weir")
    args = ap.parse_args()

    weir = None
    if not args.generate_only:
        weir = args.weir or default_weir()
        if not weir or not os.path.exists(weir):
            raise SystemExit("windows: no weir binary; pass --weir PATH (e.g. target/release/weir)")
        weir = os.path.abspath(weir)

    work = args.workdir or tempfile.mkdtemp(prefix="weir-verify-windows-")
    os.makedirs(work, exist_ok=True)
    data_path = os.path.abspath(os.path.join(work, "events.csv"))
    script_path = os.path.join(work, f"{args.kind}.sql")
    data_dir = os.path.join(work, "data")

    t0 = time.time()
    per_key, disorder = generate(data_path, args.rows, args.keys, args.seed, args.span_hours)
    log(f"generated {args.rows} rows, {len(per_key)} keys, max disorder {disorder} ms "
        f"in {time.time() - t0:.1f}s -> {data_path}")
    expected = expected_windows(per_key, args.kind)
    del per_key
    log(f"expected {len(expected)} {args.kind} windows")
    write_script(script_path, data_path, args.kind, args.parallelism, args.syntax)

    if args.generate_only:
        with open(os.path.join(work, "expected.csv"), "w") as f:
            f.write(",".join(HEADER) + "\n")
            for (k, ws, we), (c, s) in sorted(expected.items()):
                f.write(f"{k},{ws},{we},{c},{s}\n")
        print(f"windows: wrote {data_path}, {script_path} and expected.csv ({len(expected)} rows)")
        return 0

    if os.path.exists(data_dir):
        shutil.rmtree(data_dir)
    cmd = [weir, "run", "--data-dir", data_dir, "--file-root", os.path.abspath(work), "--format", "csv", script_path]
    log("running " + " ".join(cmd))
    t1 = time.time()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        raise SystemExit(f"windows: weir did not finish within {args.timeout:.0f}s (work dir {work})")
    elapsed = time.time() - t1
    with open(os.path.join(work, "stdout.csv"), "w") as f:
        f.write(proc.stdout)
    with open(os.path.join(work, "stderr.txt"), "w") as f:
        f.write(proc.stderr)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.splitlines()[-20:])
        raise SystemExit(f"windows: weir exited with {proc.returncode} after {elapsed:.1f}s "
                         f"(work dir {work}); stderr tail:\n{tail}")
    log(f"weir finished in {elapsed:.1f}s ({args.rows / max(elapsed, 1e-9):,.0f} rows/s end to end)")

    late, rows, problems = parse_output(proc.stdout)
    if late is None:
        problems.append("no late_rows_dropped result in weir's output")
    elif late != 0:
        problems.append(f"late_rows_dropped = {late}, expected 0 (disorder {disorder} ms < "
                        f"delay {DELAY_S} s)")
    compared, diffs, order_ok = compare(expected, rows)
    if not order_ok:
        problems.append("result rows are not in ORDER BY k, window_start order")

    log(f"{args.kind}, {args.rows} input rows, parallelism {args.parallelism}: "
        f"{len(rows)} rows from weir, {len(expected)} expected")
    print(f"windows: {compared} rows compared, {len(diffs)} mismatches")
    for key, what, exp, got in diffs[:20]:
        k, ws, we = key
        print(f"  {k} [{ws}, {we}): {what}: expected (cnt, total) = {exp}, weir = {got}")
    if len(diffs) > 20:
        print(f"  ... and {len(diffs) - 20} more")
    for p in problems:
        print(f"  problem: {p}")
    if diffs or problems:
        print(f"  (inputs and outputs kept in {work})")
        return 1
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
