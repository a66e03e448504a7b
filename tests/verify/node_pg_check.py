#!/usr/bin/env python3
"""node-postgres against `weir serve`, as a Node.js user's first steps (node_pg_check.js beside
this file): connect, create a source, a table and a job, list tables, describe columns and the
primary key (information_schema and pg_catalog), parameters sent as text with the JS types read
from RowDescription (int8 a string, int4 a number, bool, timestamp a Date), `$1::bigint`,
`LIMIT $1`, `= ANY($1::varchar[])`, a pg-cursor read in chunks of 3, COPY out with
pg-copy-streams, error codes and a pg.Pool. Installs pg, pg-cursor and pg-copy-streams into
~/.cache/weir-npm (and Debian's nodejs and npm when root and node is missing); says so loudly and
exits 0 when node or the npm registry cannot be had."""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

from weir_server import PAR_CSV, run_client

NPM_DIR = os.path.join(os.path.expanduser("~"), ".cache", "weir-npm")
PACKAGES = ["pg", "pg-cursor", "pg-copy-streams"]
SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node_pg_check.js")


def skip(reason, detail=""):
    print(f"*** SKIPPING node-postgres check: {reason} ***" + ("\n" + detail[-2000:] if detail else ""))
    return None


def ensure_node():
    """node's path once node and npm are there (apt-get installing them when root); None, after
    saying so loudly, when they cannot be had."""
    if not (shutil.which("node") and shutil.which("npm")):
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            return skip("node and npm are not installed (apt-get install nodejs npm)")
        install = ["apt-get", "install", "-y", "--no-install-recommends", "nodejs", "npm"]
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        done = subprocess.run(install, capture_output=True, text=True, env=env)
        if done.returncode != 0:  # an old or missing package list: update once and try again
            subprocess.run(["apt-get", "update"], capture_output=True, text=True, env=env)
            done = subprocess.run(install, capture_output=True, text=True, env=env)
        if done.returncode != 0 or not (shutil.which("node") and shutil.which("npm")):
            return skip("cannot apt-get install nodejs npm", done.stderr)
    return shutil.which("node")


def ensure_packages(node, env):
    """True once `require` finds the packages under NPM_DIR (npm-installing them when it does not)."""
    probe = [node, "-e", "".join(f"require('{p}');" for p in PACKAGES)]
    if subprocess.run(probe, capture_output=True, env=env, cwd=NPM_DIR).returncode == 0:
        return True
    install = subprocess.run(["npm", "install", "--prefix", NPM_DIR, "--no-audit", "--no-fund", "--loglevel=error", *PACKAGES],
                             capture_output=True, text=True, env=env, cwd=NPM_DIR)
    if install.returncode != 0:
        return skip(f"cannot npm install {' '.join(PACKAGES)} from the npm registry", install.stderr) or False
    if subprocess.run(probe, capture_output=True, env=env, cwd=NPM_DIR).returncode != 0:
        return skip(f"{' '.join(PACKAGES)} installed into {NPM_DIR} but node cannot require them") or False
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weir", required=True)
    args = ap.parse_args()
    weir = os.path.abspath(args.weir)
    node = ensure_node()
    if node is None:
        return 0
    os.makedirs(NPM_DIR, exist_ok=True)
    # run_client runs the client with this process' environment and working directory.
    os.environ["NODE_PATH"] = os.path.join(NPM_DIR, "node_modules")
    os.environ["TZ"] = "UTC"
    if not ensure_packages(node, os.environ):
        return 0
    os.chdir(NPM_DIR)
    with tempfile.TemporaryDirectory() as data_dir:
        return run_client(weir, data_dir, lambda port: [node, SCRIPT, port, PAR_CSV], "node-postgres", 120)


if __name__ == "__main__":
    sys.exit(main())
