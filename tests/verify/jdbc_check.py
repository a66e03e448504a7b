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

from weir_server import PAR_CSV, ROOT, run_client



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
        java = lambda port: ["java", "-cp", f"{jars[-1]}:{work}", "JdbcCheck", port, PAR_CSV]
        return run_client(args.weir, os.path.join(work, "data"), java, "JDBC", 180)

if __name__ == "__main__":
    sys.exit(main())
