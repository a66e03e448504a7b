#!/usr/bin/env python3
"""psycopg 3 against `weir serve`: create a source, a table and a job, wait, read the results with a
parameter, SHOW JOBS, and an error with its SQLSTATE. Installs psycopg into a venv under
~/.cache/weir-venv on first use; says so loudly and exits 0 when PyPI cannot be reached."""

import argparse
import sys
import tempfile

from weir_server import PAR_CSV, ensure_venv, run_client


def ensure_psycopg():
    return ensure_venv("psycopg", ["psycopg"], ["psycopg[binary]>=3.1"])


CLIENT = r'''
import sys, psycopg
port, data = int(sys.argv[1]), sys.argv[2]


def _last_error(conn, sql):
    try:
        conn.execute(sql)
    except psycopg.Error as e:
        return e
    raise AssertionError(f"no error for {sql}")

with psycopg.connect(f"host=127.0.0.1 port={port} user=weir dbname=weir", autocommit=True) as conn:
    conn.execute(f"CREATE SOURCE ev (k VARCHAR, v BIGINT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) "
                 f"WITH (connector = 'file', path = '{data}', format = 'csv')")
    conn.execute("CREATE TABLE t (k VARCHAR, window_start TIMESTAMP, window_end TIMESTAMP, cnt BIGINT, total BIGINT, hi BIGINT, PRIMARY KEY (k, window_start))")
    conn.execute("CREATE JOB j WITH ('parallelism' = '2') AS INSERT INTO t SELECT k, window_start, window_end, COUNT(*), SUM(v), MAX(v) "
                 "FROM TUMBLE(ev, ts, INTERVAL '20' SECOND) GROUP BY k, window_start, window_end")
    conn.execute("WAIT JOB j")
    rows = conn.execute("SELECT cnt, total FROM t WHERE k = %s ORDER BY window_start", ("p1",)).fetchall()
    # sql/parallelism.slt, worked out by hand: p1 has (1, 2), (2, 16), (4, 120).
    assert rows == [(1, 2), (2, 16), (4, 120)], rows
    jobs = conn.execute("SHOW JOBS").fetchall()
    assert jobs[0][0] == "j" and jobs[0][1] == "FINISHED", jobs
    try:
        conn.execute("SELEC 1")
        raise AssertionError("no error for bad SQL")
    except psycopg.errors.SyntaxError as e:
        assert e.sqlstate == "42601", e.sqlstate
    assert conn.execute("SELECT 1 + 1").fetchone() == (2,)
    # Run a query often enough that psycopg prepares it (5 times); after DDL it sends DEALLOCATE ALL.
    for _ in range(7):
        assert conn.execute("SELECT count(*) FROM t WHERE k = %s", ("p1",)).fetchone() == (3,)
    conn.execute("CREATE TABLE scratch (k VARCHAR)")
    conn.execute("DROP TABLE scratch")
    for _ in range(7):
        assert conn.execute("SELECT count(*) FROM t WHERE k = %s", ("p1",)).fetchone() == (3,)
    # Several statements in one string: fine in the simple protocol, refused (42601) when prepared.
    cur = conn.cursor()
    cur.execute("SELECT 1; SELECT 2")
    assert cur.fetchone() == (1,)
    assert cur.nextset() and cur.fetchone() == (2,)
    try:
        conn.execute("SELECT 1; SELECT 2", prepare=True)
        raise AssertionError("two statements were prepared")
    except psycopg.errors.SyntaxError as e:
        assert "multiple commands" in str(e), e
    # The error classes drivers and ORMs branch on, as Postgres gives them.
    for sql, error, sqlstate in [
        ("SELECT * FROM no_such_table", psycopg.errors.UndefinedTable, "42P01"),
        ("SELECT no_such_column FROM t", psycopg.errors.UndefinedColumn, "42703"),
        ("SELECT cnt / 0 FROM t", psycopg.errors.DivisionByZero, "22012"),
        ("SELECT CAST('x1' AS BIGINT)", psycopg.errors.InvalidTextRepresentation, "22P02"),
    ]:
        try:
            conn.execute(sql).fetchall()
            raise AssertionError(f"no error for {sql}")
        except error as e:
            assert e.sqlstate == sqlstate, (sql, e.sqlstate, str(e))
    assert 'relation "no_such_table" does not exist' in str(_last_error(conn, "SELECT * FROM no_such_table"))
    # version() in Postgres' form (SQLAlchemy and psycopg read the major version from it), and
    # pg_catalog searched before the user's schema, as drivers expect (psycopg2's hstore lookup).
    version = conn.execute("SELECT version()").fetchone()[0]
    assert version.startswith("PostgreSQL 16.0 (Weir "), version
    assert conn.execute("SELECT pg_catalog.version()").fetchone()[0] == version
    # The server_version reported at startup is SHOW's; libpq reads the version number from it.
    assert conn.info.parameter_status("server_version") == conn.execute("SHOW server_version").fetchone()[0]
    assert conn.info.server_version == 160000, conn.info.server_version
    oids = conn.execute("SELECT t.oid, typarray FROM pg_type t JOIN pg_namespace ns ON typnamespace = ns.oid WHERE typname = 'hstore'").fetchall()
    assert oids == [], oids
    assert conn.execute("SELECT typname FROM pg_type WHERE oid = 20").fetchone() == ("int8",)
    # regclass: a name is looked up (a missing one is 42P01, as in Postgres), an oid stays itself.
    oid = conn.execute("SELECT oid FROM pg_class WHERE relname = 't'").fetchone()[0]
    assert conn.execute("SELECT 't'::regclass, 'public.t'::regclass, %s::regclass", (oid,)).fetchone() == (oid, oid, oid)
    assert conn.execute("SELECT to_regclass('nope')").fetchone() == (None,)
    try:
        conn.execute("SELECT 'nope'::regclass")
        raise AssertionError("no error for a missing relation")
    except psycopg.errors.UndefinedTable as e:
        assert 'relation "nope" does not exist' in str(e), e
print("psycopg: ok")
'''


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weir", required=True)
    args = ap.parse_args()
    python = ensure_psycopg()
    if python is None:
        return 0
    with tempfile.TemporaryDirectory() as data_dir:
        return run_client(args.weir, data_dir, lambda port: [python, "-c", CLIENT, port, PAR_CSV], "psycopg", 120)

if __name__ == "__main__":
    sys.exit(main())
