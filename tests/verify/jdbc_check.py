#!/usr/bin/env python3
"""Runs tests/verify/jdbc/JdbcCheck.java against `weir serve` with Debian's PostgreSQL JDBC driver.
Skips loudly when javac or the driver is missing (./dev.sh installs the driver as root)."""

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weir", required=True)
    args = ap.parse_args()
    jars = sorted(glob.glob("/usr/share/java/postgresql-4*.jar")) or sorted(glob.glob("/usr/share/java/postgresql.jar"))
    if not shutil.which("javac") or not shutil.which("java") or not jars:
        print("*** SKIPPING JDBC check: needs javac, java and libpostgresql-jdbc-java ***")
        return 0
    with tempfile.TemporaryDirectory() as work:
        subprocess.run(["javac", "-d", work, os.path.join(ROOT, "tests", "verify", "jdbc", "JdbcCheck.java")], check=True)
        server = subprocess.Popen([args.weir, "serve", "--listen", "127.0.0.1:0", "--data-dir", os.path.join(work, "data")],
                                  stdout=subprocess.PIPE, text=True, cwd=ROOT)
        try:
            port = server.stdout.readline().strip().rsplit(":", 1)[1]
            result = subprocess.run(["java", "-cp", f"{jars[-1]}:{work}", "JdbcCheck", port, os.path.join(ROOT, "sql", "data", "par.csv")],
                                    capture_output=True, text=True, timeout=180)
            sys.stdout.write(result.stdout)
            if result.returncode != 0:
                print("JDBC check FAILED:\n" + result.stderr[-4000:])
                return 1
        finally:
            server.kill()
            server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
