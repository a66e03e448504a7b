"""Runs a client command against a `weir serve` on a free loopback port (shared by the driver checks)."""

import argparse
import glob
import os
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAR_CSV = os.path.join(ROOT, "sql", "data", "par.csv")
# One venv for every Python client the checks use.
VENV = os.path.join(os.path.expanduser("~"), ".cache", "weir-venv")


def ensure_venv(label, modules, requirements):
    """The venv's python once `modules` import there (pip-installing `requirements` when they do
    not); None, after saying so loudly, when the venv or the packages cannot be had."""
    python = os.path.join(VENV, "bin", "python")
    if not os.path.exists(python):
        made = subprocess.run([sys.executable, "-m", "venv", VENV], capture_output=True, text=True)
        if made.returncode != 0:
            print(f"*** SKIPPING {label} check: cannot create a venv (install python3-venv) ***\n" + made.stderr[-2000:])
            return None
    probe = subprocess.run([python, "-c", "import " + ", ".join(modules)], capture_output=True)
    if probe.returncode != 0:
        install = subprocess.run([python, "-m", "pip", "install", "--quiet", *requirements], capture_output=True, text=True)
        if install.returncode != 0:
            print(f"*** SKIPPING {label} check: cannot install {' '.join(requirements)} from PyPI ***\n" + install.stderr[-2000:])
            return None
    return python


def run_client(weir, data_dir, client, label, timeout):
    """Starts `weir serve`, runs `client(port)` (an argv list) and returns 0 or 1, printing its output."""
    # The clients read sql/data/par.csv: a file root besides the data directory.
    server = subprocess.Popen([weir, "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir,
                               "--file-root", os.path.join(ROOT, "sql", "data")],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        port = server.stdout.readline().strip().rsplit(":", 1)[1]
        result = subprocess.run(client(port), capture_output=True, text=True, timeout=timeout)
        sys.stdout.write(result.stdout)
        if result.returncode != 0:
            print(f"{label} check FAILED:\n" + result.stderr[-4000:])
            return 1
        return 0
    finally:
        server.kill()
        server.wait()


class WeirServer:
    """`weir serve` on a free loopback port over one data dir, driven over psycopg (the venv's);
    kill() and start() keep the dir. Its log goes to `<data_dir>.log`."""

    def __init__(self, binary, data_dir, file_roots=(), extra_args=()):
        self.binary, self.data_dir = binary, data_dir
        self.file_roots = [arg for root in file_roots for arg in ("--file-root", root)]
        self.extra_args = list(extra_args)
        self.process = None
        self.port = None
        # With `--http ADDR` in extra_args: the port of /metrics, the API and the dashboard.
        self.http_port = None
        self.log_path = data_dir + ".log"

    def start(self):
        log_file = open(self.log_path, "ab")
        self.process = subprocess.Popen([self.binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", self.data_dir, *self.file_roots,
                                         *self.extra_args],
                                        stdout=subprocess.PIPE, stderr=log_file, text=True, cwd=ROOT)
        line = self.process.stdout.readline()
        if line.startswith("weir http listening on"):
            self.http_port = int(line.strip().rsplit(":", 1)[1])
            line = self.process.stdout.readline()
        if "listening on" not in line:
            raise RuntimeError(f"weir serve did not start: {line!r}; log: {self.log_tail()}")
        self.port = int(line.strip().rsplit(":", 1)[1])
        return self

    def log_tail(self, chars=3000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-chars:].decode(errors="replace")
        except OSError:
            return ""

    def kill(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()

    def connect(self):
        import psycopg
        deadline = time.monotonic() + 30
        while True:
            try:
                return psycopg.connect(f"host=127.0.0.1 port={self.port} user=weir dbname=weir", autocommit=True)
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise

    def sql(self, statement, params=None):
        with self.connect() as conn:
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description else []


def check_arguments(checks):
    """`--weir` (default: the release build in $CARGO_TARGET_DIR) and `--only NAME` (repeatable)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--weir", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/weir-target")), "release", "weir"))
    parser.add_argument("--only", choices=sorted(checks), action="append")
    return parser.parse_args()


def run_checks(label, checks, names, work, run):
    """Runs `run(check)` for each named check (it returns a summary line), printing
    `<label> <name>: ok ...` or `FAILED` with the tails of the *.log files in `work`; every check
    runs even after a failure. Removes `work` when all passed; returns the exit code."""
    failed = 0
    for name in names:
        started = time.monotonic()
        try:
            summary = run(checks[name])
            print(f"{label} {name}: ok in {time.monotonic() - started:.1f} s: {summary}", flush=True)
        except Exception as e:  # report every check, then fail
            failed += 1
            print(f"{label} {name}: FAILED after {time.monotonic() - started:.1f} s: {e}", flush=True)
            for log_file in sorted(glob.glob(os.path.join(work, "*.log"))):
                print(f"--- {log_file} (tail)\n" + open(log_file, errors="replace").read()[-3000:])
    if failed == 0:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{label}: {len(names) - failed} passed, {failed} failed")
    return 1 if failed else 0
