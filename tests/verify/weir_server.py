"""Runs a client command against a `weir serve` on a free loopback port (shared by the driver checks)."""

import os
import subprocess
import sys

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
