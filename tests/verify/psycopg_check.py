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
    # Result columns are named as Postgres names them; two of one name are allowed.
    cur = conn.execute("SELECT 1, count(*), count(k), CAST(cnt AS VARCHAR), cnt, max(total) AS hi FROM t GROUP BY cnt ORDER BY cnt LIMIT 1")
    assert [c.name for c in cur.description] == ["?column?", "count", "count", "cnt", "cnt", "hi"], cur.description
    named = conn.execute("SELECT 1 AS a, count(*) AS b, count(k) AS c, CAST(cnt AS VARCHAR) AS d, cnt, max(total) AS hi "
                         "FROM t GROUP BY cnt ORDER BY cnt LIMIT 1").fetchone()
    assert cur.fetchone() == named and named[:4] == (1, named[1], named[1], "1"), named
    # Run-time parameters: SET / SHOW / RESET as Postgres, SHOW also when prepared (described),
    # and statement_timeout honoured.
    conn.execute("SET statement_timeout = 1500")
    assert conn.execute("SHOW statement_timeout").fetchone() == ("1500ms",)
    assert conn.execute("SHOW TimeZone", prepare=True).fetchone() == ("UTC",)
    assert conn.execute("SHOW transaction_isolation", prepare=True).fetchone() == ("read committed",)
    conn.execute("SET statement_timeout = '1s'")
    try:
        conn.execute("SELECT count(*) FROM generate_series(1, 100000000000)")
        raise AssertionError("statement_timeout was not honoured")
    except psycopg.errors.QueryCanceled as e:
        assert str(e).startswith("canceling statement due to statement timeout"), e
    conn.execute("RESET ALL")
    assert conn.execute("SHOW statement_timeout").fetchone() == ("0",)
    try:
        conn.execute("SET server_version = '17'")
        raise AssertionError("server_version was changed")
    except psycopg.errors.CantChangeRuntimeParam as e:
        assert e.sqlstate == "55P02", e
    try:
        conn.execute("RESET no_such_parameter")
        raise AssertionError("an unknown parameter was reset")
    except psycopg.errors.UndefinedObject as e:
        assert 'unrecognized configuration parameter "no_such_parameter"' in str(e), e
    # LISTEN / UNLISTEN are accepted (Weir sends no notifications).
    conn.execute("LISTEN weir_events")
    conn.execute("UNLISTEN *")
    # COPY ... TO STDOUT in text, CSV (with a header, quoting) and binary.
    cur = conn.cursor()
    query = "SELECT k, cnt, CASE WHEN cnt = 2 THEN 'a,b' END AS note FROM t WHERE k = 'p1' ORDER BY window_start"
    with cur.copy(f"COPY ({query}) TO STDOUT") as copy:
        assert b"".join(bytes(b) for b in copy) == b"p1\t1\t\\N\np1\t2\ta,b\np1\t4\t\\N\n"
    with cur.copy(f"COPY ({query}) TO STDOUT WITH (FORMAT csv, HEADER)") as copy:
        assert b"".join(bytes(b) for b in copy) == b'k,cnt,note\np1,1,\np1,2,"a,b"\np1,4,\n'
    with cur.copy(f"COPY ({query}) TO STDOUT (FORMAT binary)") as copy:
        copy.set_types(["text", "int8", "text"])
        assert list(copy.rows()) == [("p1", 1, None), ("p1", 2, "a,b"), ("p1", 4, None)]
    with cur.copy("COPY t (k, cnt) TO STDOUT") as copy:
        assert len(b"".join(bytes(b) for b in copy).splitlines()) == 20
    try:
        with cur.copy("COPY t FROM STDIN") as copy:
            pass
        raise AssertionError("COPY FROM was accepted")
    except psycopg.errors.FeatureNotSupported as e:
        assert "written by jobs" in str(e), e

# Server-side cursors: a named cursor DECLAREs in a transaction and FETCHes in pieces.
with psycopg.connect(f"host=127.0.0.1 port={port} user=weir dbname=weir") as conn:
    every = conn.execute("SELECT k, cnt FROM t WHERE cnt > %s ORDER BY k, window_start", (1,)).fetchall()
    assert len(every) > 5, every
    with conn.cursor(name="windows") as cur:
        cur.itersize = 2
        cur.execute("SELECT k, cnt FROM t WHERE cnt > %s ORDER BY k, window_start", (1,))
        assert cur.fetchmany(3) == every[:3]
        cur.scroll(1)
        assert cur.fetchone() == every[4]
        assert cur.fetchall() == every[5:]
    try:
        conn.execute("FETCH 1 FROM windows")
        raise AssertionError("a closed cursor fetched")
    except psycopg.errors.InvalidCursorName as e:
        assert 'cursor "windows" does not exist' in str(e), e
    conn.rollback()
    with conn.cursor(name="held", withhold=True) as cur:
        cur.execute("SELECT k FROM t ORDER BY k, window_start")
        conn.commit()
        assert cur.fetchmany(2) == [r[:1] for r in conn.execute("SELECT k FROM t ORDER BY k, window_start LIMIT 2").fetchall()]
    conn.commit()
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
