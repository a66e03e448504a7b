#!/usr/bin/env python3
"""Crash recovery check: SIGKILL Weir repeatedly while a checkpointed job runs; results stay exact.

  python3 tests/verify/recovery.py --weir target/release/weir [--rows 200000] [--kills 4] [--seed 42]

1. Writes a CSV of N rows: k VARCHAR (~20 keys), v BIGINT, ts TIMESTAMP starting at
   2024-01-01 00:00:00.000 and increasing by exactly 1 ms per row (so no row is ever late), and
   computes COUNT(*) and SUM(v) per key and 1 s TUMBLE window in Python (no Weir code involved).
2. Script A: CREATE SOURCE (WATERMARK ts - 1 s, connector file, 'rows-per-second' = N/8 so the job
   takes about 8 s of wall time), CREATE TABLE t with PRIMARY KEY (k, window_start), CREATE JOB j
   WITH ('execution.checkpointing.interval' = '200ms', 'parallelism' = '2'), a SELECT of the job's
   row in weir_jobs (a marker on stdout: the job exists), then WAIT JOB j. Runs
   `weir run --data-dir D --format csv A`.
3. K times, at a seeded random moment, kills the running Weir with SIGKILL and starts
   `weir run --data-dir D --format csv B` with B = `WAIT JOB j;` on the same data directory: on start
   Weir resumes every RUNNING job from its latest complete checkpoint (from the beginning if none
   completed yet). A kill that lands after the job finished (Weir already exited) is fine.
4. Lets the last B run to the end, then runs script C:
     SELECT status, restarts FROM weir_jobs WHERE name = 'j';
     SELECT k, CAST(EXTRACT(EPOCH FROM window_start) AS BIGINT) AS ws, cnt, total FROM t ORDER BY 1, 2;
   The job must be FINISHED and every (k, window) row present exactly once with the exact
   (cnt, total): exactly-once results across process crashes (DESIGN.md §5).

`--query updating` runs an updating aggregate instead (COUNT(*), SUM(v) GROUP BY k into a table
keyed by k; every input row updates its key's row), compared with the same Python totals.
`--query nested` runs an aggregate over that updating aggregate (keys and their totals per
COUNT(*) % 3 of the key): every input row moves its key from one bucket to the next, so the outer
aggregate takes rows back all the time (update-before / update-after) and its state of retractable
sums must survive the crashes too. Compared with the buckets of the same Python totals.
`--query join` joins two updating aggregates of the same source (COUNT(*) per key with SUM(v) per
key): both join inputs take their old rows back at every input row, so the join's state of both
sides is rewritten all the time. Compared with the same Python totals as `updating`.
`--query interval` runs an interval self-join (each row with the rows of its key 0 to 5 ms after
it) and counts and sums the pairs per key: the join's state is freed by the watermark as it goes.
Compared with the pairs counted in Python.
`--query windowjoin` runs a window self-join (TUMBLE 1 s, each row with the rows of its key in the
same window) and counts and sums the pairs per key and window: the join's state is each open
window's rows, joined and freed as the watermark closes it. Compared with n * n pairs and
n * SUM(v) per key and window, from the same totals as `window`.
`--query topn` keeps the 3 highest values per key (ROW_NUMBER() OVER (PARTITION BY k ORDER BY v
DESC) <= 3, an updating Top-N into a table keyed by (k, rank)), and `--query dedup` the last row
per key by event time (rank 1 of ORDER BY ts DESC): their rankings are rewritten as rows arrive.
Compared with each key's top values (ties do not matter: only the values are compared) and last
row (v and its time in ms), computed in Python.
`--query over` runs an OVER aggregation (COUNT and SUM over each row and the two before it of its
key, ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) into a table keyed by (k, ts): each row waits in
state for the watermark, and each key keeps its frame. Compared with the sums computed in Python.
`--unaligned` turns on unaligned checkpoints and slows the sink down (`debug.sink.rows-per-second`)
so that records queue up in the channels: the check then also requires that some restart resumed
from a checkpoint that kept records in flight (read from its `_metadata`), and the results must
still be exact.

Prints `recovery: N rows compared, 0 mismatches, K kills` and exits 0, or prints the first
differences (missing / duplicated / wrong / unexpected rows) and exits 1. Every Weir process runs
under a timeout; a hang is reported as a failure. Python 3.11, standard library only.
"""
import argparse
import csv
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BASE_S = 1704067200  # 2024-01-01 00:00:00 UTC
WINDOW_MS = 1000
HEADER = ["k", "ws", "cnt", "total"]
STATUS_HEADER = ["status", "restarts"]
MARKER_HEADER = ["name", "status"]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Failure(Exception):
    """A problem that ends the check with exit code 1 (message printed as is)."""


# ------------------------------------------------------------------------------------------------
# Data and expectation

def generate(path, rows, keys, seed, query="window"):
    """Writes the CSV; returns {(k, window_start_epoch_s): [cnt, total]} (the window start is 0 for
    the updating aggregate, which has one row per key)."""
    rng = random.Random(seed)
    names = [f"key{i:02d}" for i in range(keys)]
    # Mildly skewed: a few keys are busier, every key shows up in most windows.
    weights = [1.0 / (1 + i * 0.15) for i in range(keys)]
    expected = defaultdict(lambda: [0, 0])
    values = defaultdict(list)
    last = {}
    over = {}
    with open(path, "w", newline="") as f:
        f.write("k,v,ts\n")
        buf = []
        chosen = rng.choices(names, weights=weights, k=rows)
        for i in range(rows):
            k = chosen[i]
            v = rng.randint(-100, 1000)
            secs, milli = divmod(i, 1000)  # row i is at BASE + i ms
            h, rem = divmod(secs, 3600)
            m, s = divmod(rem, 60)
            if h >= 24:
                raise SystemExit("recovery: --rows too large (the timestamps must stay on 2024-01-01)")
            buf.append(f"{k},{v},2024-01-01 {h:02d}:{m:02d}:{s:02d}.{milli:03d}\n")
            windowed = query in ("window", "windowjoin")
            acc = expected[(k, BASE_S + i // WINDOW_MS if windowed else 0)]  # per key for the others
            acc[0] += 1
            acc[1] += v
            values[k].append(v)
            last[k] = (v, BASE_S * 1000 + i)
            if query == "over":
                # SUM(v) over the row and the two before it of its key, and how many rows that is.
                recent = values[k][-3:]
                over[(k, BASE_S * 1000 + i)] = [len(recent), sum(recent)]
            if len(buf) >= 10000:
                f.write("".join(buf))
                buf = []
        f.write("".join(buf))
    if query == "interval":
        expected = interval_pairs(path)
    if query == "topn":
        expected = {(k, rank): [v, 0] for k, vs in values.items() for rank, v in enumerate(sorted(vs, reverse=True)[:3], 1)}
    if query == "dedup":
        expected = {(k, 0): [v, ms] for k, (v, ms) in last.items()}
    if query == "over":
        expected = over
    if query == "windowjoin":
        # A window of n rows of a key makes n * n pairs; each row b is in n of them.
        expected = {key: [cnt * cnt, cnt * total] for key, (cnt, total) in expected.items()}
    if query == "nested":
        buckets = defaultdict(lambda: [0, 0])
        for (k, _), (cnt, total) in expected.items():
            buckets[(str(cnt % 3), 0)][0] += 1
            buckets[(str(cnt % 3), 0)][1] += total
        expected = buckets
    return {key: tuple(val) for key, val in expected.items()}


def interval_pairs(path):
    """Per key: the number of (a, b) pairs of rows with a.k = b.k and a.ts <= b.ts <= a.ts + 5 ms,
    and the sum of b.v over them (row i is at BASE + i ms)."""
    with open(path, newline="") as f:
        rows = [(r["k"], int(r["v"])) for r in csv.DictReader(f)]
    pairs = defaultdict(lambda: [0, 0])
    for i, (k, _) in enumerate(rows):
        for j in range(i, min(i + 6, len(rows))):
            if rows[j][0] == k:
                pairs[(k, 0)][0] += 1
                pairs[(k, 0)][1] += rows[j][1]
    return pairs


def write_scripts(work, data_path, rate, parallelism, interval, mode, checkpoint_dir=None, local_recovery=False,
                  query="window", unaligned=False, sink_rate=None, retained=None):
    extra = ""
    if retained:
        extra += f", 'execution.checkpointing.num-retained' = '{retained}'"
    if unaligned:
        extra += ", 'execution.checkpointing.unaligned.enabled' = 'true'"
    if sink_rate:
        extra += f", 'debug.sink.rows-per-second' = '{sink_rate}'"
    if checkpoint_dir:
        extra += f", 'execution.checkpointing.dir' = '{checkpoint_dir}'"
    if local_recovery:
        extra += ", 'state.backend.local-recovery' = 'true'"
    a = f"""CREATE SOURCE events (k VARCHAR, v BIGINT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) WITH (connector = 'file', path = '{data_path}', format = 'csv', 'rows-per-second' = '{rate}');
{QUERIES[query][0]}
CREATE JOB j WITH ('execution.checkpointing.interval' = '{interval}', 'execution.checkpointing.mode' = '{mode}', 'parallelism' = '{parallelism}'{extra}) AS {QUERIES[query][1]};
SELECT name, status FROM weir_jobs WHERE name = 'j';
WAIT JOB j;
"""
    b = "WAIT JOB j;\n"
    c = f"""SELECT status, restarts FROM weir_jobs WHERE name = 'j';
{QUERIES[query][2]};
"""
    paths = {}
    for name, text in (("A", a), ("B", b), ("C", c)):
        p = os.path.join(work, f"script_{name}.sql")
        with open(p, "w") as f:
            f.write(text)
        paths[name] = p
    return paths


# The result table, the job's INSERT and the query of its rows as (k, ws, cnt, total).
QUERIES = {
    "window": (
        "CREATE TABLE t (k VARCHAR, window_start TIMESTAMP, window_end TIMESTAMP, cnt BIGINT, total BIGINT, "
        "PRIMARY KEY (k, window_start));",
        "INSERT INTO t SELECT k, window_start, window_end, COUNT(*), SUM(v) FROM TUMBLE(events, ts, "
        "INTERVAL '1' SECOND) GROUP BY k, window_start, window_end",
        "SELECT k, CAST(EXTRACT(EPOCH FROM window_start) AS BIGINT) AS ws, cnt, total FROM t ORDER BY 1, 2",
    ),
    "updating": (
        "CREATE TABLE t (k VARCHAR, cnt BIGINT, total BIGINT, PRIMARY KEY (k));",
        "INSERT INTO t SELECT k, COUNT(*), SUM(v) FROM events GROUP BY k",
        "SELECT k, 0 AS ws, cnt, total FROM t ORDER BY 1, 2",
    ),
    "append": (
        # No primary key: every row appended once. A fallback to an older checkpoint must take back
        # the rows the newer one committed, or the replay would add them twice (or skip some).
        "CREATE TABLE t (k VARCHAR, v BIGINT, ts TIMESTAMP);",
        "INSERT INTO t SELECT k, v, ts FROM events",
        "SELECT k, 0 AS ws, COUNT(*) AS cnt, SUM(v) AS total FROM t GROUP BY k ORDER BY 1, 2",
    ),
    "nested": (
        "CREATE TABLE t (bucket BIGINT, cnt BIGINT, total BIGINT, PRIMARY KEY (bucket));",
        "INSERT INTO t SELECT cnt % 3, COUNT(*), SUM(total) FROM (SELECT k, COUNT(*) AS cnt, SUM(v) AS total "
        "FROM events GROUP BY k) AS per_key GROUP BY cnt % 3",
        "SELECT CAST(bucket AS VARCHAR) AS k, 0 AS ws, cnt, total FROM t ORDER BY 1, 2",
    ),
    "join": (
        "CREATE TABLE t (k VARCHAR, cnt BIGINT, total BIGINT, PRIMARY KEY (k));",
        "INSERT INTO t SELECT c.k, c.cnt, s.total FROM (SELECT k, COUNT(*) AS cnt FROM events GROUP BY k) AS c "
        "JOIN (SELECT k, SUM(v) AS total FROM events GROUP BY k) AS s ON c.k = s.k",
        "SELECT k, 0 AS ws, cnt, total FROM t ORDER BY 1, 2",
    ),
    "interval": (
        "CREATE TABLE t (k VARCHAR, cnt BIGINT, total BIGINT, PRIMARY KEY (k));",
        "INSERT INTO t SELECT a.k, COUNT(*), SUM(b.v) FROM events a JOIN events b ON a.k = b.k "
        "AND b.ts BETWEEN a.ts AND a.ts + INTERVAL '5 milliseconds' GROUP BY a.k",
        "SELECT k, 0 AS ws, cnt, total FROM t ORDER BY 1, 2",
    ),
    "topn": (
        "CREATE TABLE t (k VARCHAR, rn BIGINT, v BIGINT, PRIMARY KEY (k, rn));",
        "INSERT INTO t SELECT k, rn, v FROM (SELECT k, v, ROW_NUMBER() OVER (PARTITION BY k ORDER BY v DESC) AS rn "
        "FROM events) WHERE rn <= 3",
        "SELECT k, rn AS ws, v AS cnt, 0 AS total FROM t ORDER BY 1, 2",
    ),
    "dedup": (
        "CREATE TABLE t (k VARCHAR, v BIGINT, ts TIMESTAMP, PRIMARY KEY (k));",
        "INSERT INTO t SELECT k, v, ts FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY k ORDER BY ts DESC) AS rn "
        "FROM events) WHERE rn = 1",
        "SELECT k, 0 AS ws, v AS cnt, CAST(ROUND(EXTRACT(EPOCH FROM ts) * 1000) AS BIGINT) AS total FROM t ORDER BY 1, 2",
    ),
    "over": (
        "CREATE TABLE t (k VARCHAR, ts TIMESTAMP, cnt BIGINT, total BIGINT, PRIMARY KEY (k, ts));",
        "INSERT INTO t SELECT k, ts, COUNT(*) OVER w, SUM(v) OVER w FROM events "
        "WINDOW w AS (PARTITION BY k ORDER BY ts ROWS BETWEEN 2 PRECEDING AND CURRENT ROW)",
        "SELECT k, CAST(ROUND(EXTRACT(EPOCH FROM ts) * 1000) AS BIGINT) AS ws, cnt, total FROM t ORDER BY 1, 2",
    ),
    "windowjoin": (
        "CREATE TABLE t (k VARCHAR, window_start TIMESTAMP, cnt BIGINT, total BIGINT, PRIMARY KEY (k, window_start));",
        "INSERT INTO t SELECT a.k, a.window_start, COUNT(*), SUM(b.v) FROM TUMBLE(events, ts, INTERVAL '1' SECOND) a "
        "JOIN TUMBLE(events, ts, INTERVAL '1' SECOND) b ON a.k = b.k AND a.window_start = b.window_start "
        "AND a.window_end = b.window_end GROUP BY a.k, a.window_start",
        "SELECT k, CAST(EXTRACT(EPOCH FROM window_start) AS BIGINT) AS ws, cnt, total FROM t ORDER BY 1, 2",
    ),
}


def newest_in_flight(data_dir):
    """(id, in-flight records' bytes) of the newest complete checkpoint, or None."""
    root = os.path.join(data_dir, "checkpoints", "j")
    ids = sorted((int(d[4:]) for d in os.listdir(root) if d.startswith("chk-") and d[4:].isdigit()
                  and os.path.exists(os.path.join(root, d, "_metadata"))), reverse=True) if os.path.isdir(root) else []
    if not ids:
        return None
    with open(os.path.join(root, f"chk-{ids[0]}", "_metadata")) as f:
        f.readline()  # the checksum line
        manifest = json.load(f)
    return ids[0], sum(s["file"]["size"] for s in manifest.get("in_flight", []))


# ------------------------------------------------------------------------------------------------
# Running Weir

class WeirRun:
    """One `weir run` process with stdout/stderr in files under the work dir."""

    def __init__(self, weir, data_dir, script, work, label):
        self.label = label
        self.out_path = os.path.join(work, f"{label}.stdout")
        self.err_path = os.path.join(work, f"{label}.stderr")
        self._out = open(self.out_path, "w")
        self._err = open(self.err_path, "w")
        # The input file lives in the work directory: a file root.
        cmd = [weir, "run", "--data-dir", data_dir, "--file-root", work, "--format", "csv", script]
        self.started = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdout=self._out, stderr=self._err, stdin=subprocess.DEVNULL,
                                     cwd=ROOT)
        log(f"[{label}] started pid {self.proc.pid}: {' '.join(cmd)}")

    def elapsed(self):
        return time.monotonic() - self.started

    def running(self):
        return self.proc.poll() is None

    def stdout(self):
        self._out.flush()
        with open(self.out_path) as f:
            return f.read()

    def stderr_tail(self, n=20):
        self._err.flush()
        with open(self.err_path) as f:
            return "\n".join(f.read().splitlines()[-n:])

    def kill(self):
        """SIGKILL this process (and only it); True if it was still running."""
        if self.proc.poll() is not None:
            return False
        self.proc.kill()  # SIGKILL on POSIX
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise Failure(f"[{self.label}] pid {self.proc.pid} survived SIGKILL for 30 s")
        return True

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise Failure(f"[{self.label}] weir did not finish within {timeout:.0f}s (killed); "
                          f"stderr tail:\n{self.stderr_tail()}")

    def close(self):
        if self.proc.poll() is None:
            self.kill()
        self._out.close()
        self._err.close()

    def check_exit(self, rc):
        if rc != 0:
            raise Failure(f"[{self.label}] weir exited with {rc} after {self.elapsed():.1f}s; "
                          f"stderr tail:\n{self.stderr_tail()}")


def corrupt_newest_metadata(data_dir):
    """Flips a byte in the newest complete checkpoint's _metadata; returns its id (None if none yet)."""
    root = os.path.join(data_dir, "checkpoints", "j")
    ids = sorted((int(d[4:]) for d in os.listdir(root) if d.startswith("chk-") and d[4:].isdigit()
                  and os.path.exists(os.path.join(root, d, "_metadata"))), reverse=True) if os.path.isdir(root) else []
    if len(ids) < 2:
        raise Failure(f"complete checkpoints {ids}: two are needed, the newest to damage and one to fall back to")
    path = os.path.join(root, f"chk-{ids[0]}", "_metadata")
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        data[len(data) // 2] ^= 0x55
        f.seek(0)
        f.write(data)
    log(f"damaged {path}")
    return ids[0]


def wait_for_marker(run, timeout):
    """Waits until script A has printed the job's weir_jobs row (the job exists in the catalog)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = [ln.strip() for ln in run.stdout().splitlines()]
        for i, line in enumerate(lines):
            if [c.strip().lower() for c in line.split(",")] == MARKER_HEADER and i + 1 < len(lines):
                return lines[i + 1]
        if not run.running():
            rc = run.proc.returncode
            run.check_exit(rc)
            raise Failure(f"[{run.label}] weir exited before printing the job's row; stdout:\n"
                          f"{run.stdout()[:2000]}")
        time.sleep(0.05)
    run.kill()
    raise Failure(f"[{run.label}] no weir_jobs row for job j on stdout within {timeout:.0f}s "
                  f"(CREATE JOB hangs?); stderr tail:\n{run.stderr_tail()}")


# ------------------------------------------------------------------------------------------------
# Output and comparison

def result_blocks(stdout):
    """Splits `--format csv` output into {header tuple: [rows]} for the headers we know."""
    known = {tuple(HEADER), tuple(STATUS_HEADER), tuple(MARKER_HEADER)}
    blocks = {}
    current = None
    for line in stdout.splitlines():
        cells = next(csv.reader(io.StringIO(line)), [])
        norm = tuple(c.strip().lower() for c in cells)
        if norm in known:
            current = []
            blocks[norm] = current
        elif current is not None and line.strip():
            current.append(cells)
    return blocks


def compare(expected, rows):
    diffs = []
    actual = {}
    for k, ws, cnt, total in rows:
        key = (k, ws)
        if key in actual:
            diffs.append((key, "duplicated row in Weir's output", actual[key], (cnt, total)))
            continue
        actual[key] = (cnt, total)
    for key, exp in expected.items():
        got = actual.get(key)
        if got is None:
            diffs.append((key, "missing in Weir's output", exp, None))
        elif got != exp:
            diffs.append((key, "wrong (cnt, total)", exp, got))
    for key, got in actual.items():
        if key not in expected:
            diffs.append((key, "unexpected row in Weir's output", None, got))
    diffs.sort(key=lambda d: (d[0], d[1]))
    order_ok = [(r[0], r[1]) for r in rows] == sorted((r[0], r[1]) for r in rows)
    return len(set(expected) | set(actual)), diffs, order_ok


def default_weir():
    for p in ("target/release/weir", "target/debug/weir"):
        full = os.path.join(ROOT, p)
        if os.path.exists(full):
            return full
    cache = os.path.expanduser("~/.cache/weir-target")
    for p in ("release/weir", "debug/weir"):
        full = os.path.join(os.environ.get("CARGO_TARGET_DIR", cache), p)
        if os.path.exists(full):
            return full
    return None


# ------------------------------------------------------------------------------------------------

def main(argv=None, corrupt_latest=corrupt_newest_metadata):
    """`corrupt_latest(data_dir)` damages the newest checkpoint and returns its id (None if there
    is none yet); the S3 check passes one that damages an object in the bucket."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weir", help="path to the weir binary (default: target/{release,debug}/weir, "
                                   "then $CARGO_TARGET_DIR or ~/.cache/weir-target)")
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--kills", type=int, default=4)
    ap.add_argument("--mode", default="EXACTLY_ONCE", choices=["EXACTLY_ONCE", "AT_LEAST_ONCE"],
                    help="checkpointing mode; AT_LEAST_ONCE may apply rows twice, which upserts into the "
                         "primary-keyed result table absorb, so results must still be exact (never lost)")
    ap.add_argument("--corrupt-latest", action="store_true",
                    help="after the first kill, damage the newest chk-*/_metadata (the job retains two): the "
                         "restart must skip it (and say so on stderr), fall back to the older one and still give "
                         "exact results")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--keys", type=int, default=20)
    ap.add_argument("--parallelism", type=int, default=2)
    ap.add_argument("--duration", type=float, default=8.0,
                    help="wall seconds the paced source takes for all rows (rows-per-second = "
                         "rows / duration; default 8)")
    ap.add_argument("--interval", default="200ms", help="execution.checkpointing.interval")
    ap.add_argument("--timeout", type=float, default=300.0,
                    help="seconds allowed for the last restart to finish the job, and for script C")
    ap.add_argument("--checkpoint-dir", help="execution.checkpointing.dir of the job (e.g. s3://bucket/prefix; "
                                             "default: the data directory's)")
    ap.add_argument("--local-recovery", action="store_true", help="state.backend.local-recovery = true")
    ap.add_argument("--query", default="window", choices=sorted(QUERIES),
                    help="window: COUNT/SUM per key and 1 s TUMBLE window; updating: COUNT/SUM per key")
    ap.add_argument("--unaligned", action="store_true",
                    help="unaligned checkpoints; some restart must resume from one with records in flight")
    ap.add_argument("--sink-rate", type=float,
                    help="debug.sink.rows-per-second of the job (a slow sink: backpressure)")
    ap.add_argument("--workdir", help="keep data, scripts and outputs here (default: a temporary "
                                      "directory, removed on success)")
    args = ap.parse_args(argv)
    if args.rows < 1 or args.kills < 0 or args.duration <= 0:
        ap.error("--rows must be >= 1, --kills >= 0, --duration > 0")

    weir = args.weir or default_weir()
    if not weir or not os.path.exists(weir):
        raise SystemExit("recovery: no weir binary; pass --weir PATH (e.g. target/release/weir)")
    weir = os.path.abspath(weir)

    work = os.path.abspath(args.workdir or tempfile.mkdtemp(prefix="weir-verify-recovery-"))
    os.makedirs(work, exist_ok=True)
    data_path = os.path.join(work, "events.csv")
    data_dir = os.path.join(work, "data")
    if os.path.exists(data_dir):
        shutil.rmtree(data_dir)

    t0 = time.time()
    expected = generate(data_path, args.rows, args.keys, args.seed, args.query)
    rate = max(1, round(args.rows / args.duration))
    log(f"generated {args.rows} rows ({args.rows / 1000:.0f} s of event time, {args.keys} keys) "
        f"in {time.time() - t0:.1f}s -> {data_path}; {len(expected)} expected (k, window) rows; "
        f"source paced at {rate} rows/s (~{args.rows / rate:.1f} s)")
    scripts = write_scripts(work, data_path, rate, args.parallelism, args.interval, args.mode,
                            args.checkpoint_dir, args.local_recovery, args.query, args.unaligned, args.sink_rate,
                            # A damaged newest checkpoint needs an older one to fall back to.
                            retained=2 if args.corrupt_latest else None)

    rng = random.Random(args.seed * 7919 + 1)
    # Kill moments: seconds after the job exists (first run) or after the restart (later runs).
    # Spread so that K kills fall inside the ~duration s the job needs, some early (during the
    # restore), some late.
    hi = max(0.8, 2.0 * args.duration / (args.kills + 1))
    delays = [rng.uniform(0.3, hi) for _ in range(args.kills)]
    if args.corrupt_latest and delays:
        delays[0] = max(delays[0], 1.5)  # two checkpoints complete before the first kill
    log("kill schedule (s after start / job creation): " + ", ".join(f"{d:.2f}" for d in delays))

    runs = []
    landed = 0
    # Restarts that resumed from a checkpoint with records in flight: (checkpoint id, bytes).
    in_flight_restores = []
    try:
        run = WeirRun(weir, data_dir, scripts["A"], work, "run0-A")
        runs.append(run)
        marker = wait_for_marker(run, timeout=120)
        log(f"[run0-A] job created ({marker}) after {run.elapsed():.1f}s")
        for i, delay in enumerate(delays, start=1):
            start = time.monotonic()
            while run.running() and time.monotonic() - start < delay:
                time.sleep(0.01)
            if run.running():
                run.kill()
                landed += 1
                log(f"[{run.label}] SIGKILL after {run.elapsed():.2f}s (kill {i})")
            else:
                rc = run.proc.returncode
                run.check_exit(rc)
                log(f"[{run.label}] had already exited 0 (job finished) before kill {i}")
            run.close()
            if args.unaligned and not args.checkpoint_dir:
                newest = newest_in_flight(data_dir)
                log(f"newest checkpoint before restart {i} (id, bytes in flight): {newest}")
                if newest and newest[1] > 0:
                    in_flight_restores.append(newest)
            damaged = corrupt_latest(data_dir) if (args.corrupt_latest and i == 1) else None
            run = WeirRun(weir, data_dir, scripts["B"], work, f"run{i}-B")
            runs.append(run)
            if damaged is not None:
                # The restart reads the checkpoints first thing; give it a moment, then check its word.
                deadline = time.monotonic() + 30
                while f"skipping checkpoint {damaged}" not in run.stderr_tail(200) and time.monotonic() < deadline:
                    time.sleep(0.05)
                if f"skipping checkpoint {damaged}" not in run.stderr_tail(200):
                    raise Failure(f"restart did not report skipping damaged checkpoint {damaged}; stderr:\n{run.stderr_tail()}")
                log(f"[{run.label}] skipped damaged checkpoint {damaged}, as it should")
        rc = run.wait(args.timeout)
        run.check_exit(rc)
        log(f"[{run.label}] finished after {run.elapsed():.1f}s")
        run.close()

        final = WeirRun(weir, data_dir, scripts["C"], work, "query-C")
        runs.append(final)
        rc = final.wait(args.timeout)
        final.check_exit(rc)
        final.close()
    except Failure as e:
        print(f"recovery: FAILED: {e}")
        print(f"  (inputs and outputs kept in {work})")
        return 1
    finally:
        for r in runs:
            r.close()

    with open(os.path.join(work, "query-C.stdout")) as f:
        out = f.read()
    blocks = result_blocks(out)
    problems = []
    status_rows = blocks.get(tuple(STATUS_HEADER))
    if not status_rows:
        problems.append("no weir_jobs row for job j in script C's output")
    else:
        status = status_rows[0][0].strip()
        restarts = status_rows[0][1].strip() if len(status_rows[0]) > 1 else "?"
        log(f"job j: status {status}, restarts {restarts}")
        if status != "FINISHED":
            problems.append(f"job j has status {status}, expected FINISHED")
    if tuple(HEADER) not in blocks:
        head = "\n".join(out.splitlines()[:10])
        print(f"recovery: no result header {','.join(HEADER)!r} in script C's output; first lines:\n{head}")
        print(f"  (inputs and outputs kept in {work})")
        return 1
    rows = []
    for rec in blocks[tuple(HEADER)]:
        if len(rec) != 4:
            problems.append(f"malformed result row {rec!r}")
            continue
        try:
            rows.append((rec[0], int(rec[1]), int(rec[2]), int(rec[3])))
        except ValueError:
            problems.append(f"non-integer value in result row {rec!r}")
    compared, diffs, order_ok = compare(expected, rows)
    if args.unaligned and not args.checkpoint_dir and not in_flight_restores:
        problems.append("no restart resumed from a checkpoint with records in flight: the unaligned path "
                        "was not exercised (slow the sink down more, or kill more often)")
    if not order_ok:
        problems.append("result rows are not in ORDER BY k, ws order")

    if landed < args.kills:
        log(f"note: {args.kills - landed} of {args.kills} kills came after Weir had already exited "
            f"(job finished); use a larger --duration or fewer --kills for more crashes mid-job")
    print(f"recovery: {compared} rows compared, {len(diffs)} mismatches, {landed} kills"
          + (f", restores with records in flight (checkpoint, bytes): {in_flight_restores}" if args.unaligned else ""))
    for (k, ws), what, exp, got in diffs[:20]:
        print(f"  {k} window_start {ws} ({time.strftime('%H:%M:%S', time.gmtime(ws))}): {what}: "
              f"expected (cnt, total) = {exp}, weir = {got}")
    if len(diffs) > 20:
        kinds = defaultdict(int)
        for d in diffs:
            kinds[d[1]] += 1
        print(f"  ... and {len(diffs) - 20} more (" + ", ".join(f"{n} {w}" for w, n in kinds.items()) + ")")
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
