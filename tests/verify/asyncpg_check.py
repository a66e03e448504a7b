#!/usr/bin/env python3
"""asyncpg against `weir serve`, as a service reading result tables uses it: a connection pool
(whose release resets the connection with `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
RESET ALL`), binary parameters typed from where they stand (`$1::bigint`, `LIMIT $1`,
`= ANY($1::varchar[])`), a cursor in a transaction, COPY out, SHOW, and error classes. Installs asyncpg into
the checks' venv (~/.cache/weir-venv); says so loudly and exits 0 when PyPI cannot be reached."""

import argparse
import sys
import tempfile

from weir_server import PAR_CSV, ensure_venv, run_client

CLIENT = r'''
import asyncio, io, sys, asyncpg
port, data = int(sys.argv[1]), sys.argv[2]
DSN = f"postgresql://weir@127.0.0.1:{port}/weir"


async def main():
    conn = await asyncpg.connect(DSN)
    await conn.execute(f"CREATE SOURCE ev (k VARCHAR, v BIGINT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) "
                       f"WITH (connector = 'file', path = '{data}', format = 'csv')")
    await conn.execute("CREATE TABLE t (k VARCHAR, window_start TIMESTAMP, cnt BIGINT, total BIGINT, PRIMARY KEY (k, window_start))")
    await conn.execute("CREATE JOB j AS INSERT INTO t SELECT k, window_start, COUNT(*), SUM(v) "
                       "FROM TUMBLE(ev, ts, INTERVAL '20' SECOND) GROUP BY k, window_start")
    await conn.execute("WAIT JOB j")
    # sql/parallelism.slt, worked out by hand: p1 has (1, 2), (2, 16), (4, 120).
    rows = await conn.fetch("SELECT cnt, total FROM t WHERE k = $1 ORDER BY window_start", "p1")
    assert [tuple(r) for r in rows] == [(1, 2), (2, 16), (4, 120)], rows
    # Parameters typed by their place: asyncpg encodes them in binary by the announced type.
    # (Each answer is checked against the same query with literals, through the simple protocol.)
    async def literal(sql):
        return [tuple(r) for r in await conn.fetch(sql)]
    assert [(await conn.fetchval("SELECT count(*) FROM t WHERE cnt = $1::bigint", 2),)] == await literal("SELECT count(*) FROM t WHERE cnt = 2")
    assert [tuple(r) for r in await conn.fetch("SELECT k, cnt FROM t ORDER BY k, window_start LIMIT $1", 3)] == await literal(
        "SELECT k, cnt FROM t ORDER BY k, window_start LIMIT 3")
    assert len(await conn.fetch("SELECT k FROM t ORDER BY k, window_start LIMIT $1 OFFSET $2", 3, 18)) == 2
    # An int8[] parameter: asyncpg looks the array type up with its own `... = any($1::oid[])`
    # query, whose parameter must be announced as oid[] (a type it knows) for the lookup to end.
    assert [(await conn.fetchval("SELECT count(*) FROM t WHERE cnt = ANY($1::bigint[])", [1, 4]),)] == await literal(
        "SELECT count(*) FROM t WHERE cnt IN (1, 4)")
    assert [(await conn.fetchval("SELECT count(*) FROM t WHERE k = ANY($1::varchar[])", ["p1", "p2"]),)] == await literal(
        "SELECT count(*) FROM t WHERE k IN ('p1', 'p2')")
    assert await conn.fetchval("SELECT $1::bigint + 1", 41) == 42
    statement = await conn.prepare("SELECT total FROM t WHERE k = $1 AND cnt = $2")
    assert [t.name for t in statement.get_parameters()] == ["varchar", "int8"], statement.get_parameters()
    assert await statement.fetchval("p1", 4) == 120
    assert await conn.fetchval("SHOW TimeZone") == "UTC"
    # A cursor in a transaction: asyncpg reads it through a portal, a few rows at a time.
    async with conn.transaction():
        seen = [r["k"] async for r in conn.cursor("SELECT k FROM t ORDER BY k, window_start", prefetch=3)]
    assert len(seen) == 20 and seen[:3] == ["p1", "p1", "p1"], seen
    # COPY out of a table and of a query.
    out = io.BytesIO()
    await conn.copy_from_query("SELECT k, cnt FROM t WHERE k = 'p1' ORDER BY window_start", output=out, format="csv", header=True)
    assert out.getvalue() == b"k,cnt\np1,1\np1,2\np1,4\n", out.getvalue()
    out = io.BytesIO()
    await conn.copy_from_table("t", columns=["k", "cnt"], output=out)
    assert len(out.getvalue().splitlines()) == 20
    for sql, error in [
        ("SELECT * FROM nosuch", asyncpg.exceptions.UndefinedTableError),
        ("SELECT nosuch FROM t", asyncpg.exceptions.UndefinedColumnError),
        ("SELECT cnt / 0 FROM t", asyncpg.exceptions.DivisionByZeroError),
    ]:
        try:
            await conn.fetch(sql)
            raise AssertionError(f"no error for {sql}")
        except error:
            pass
    await conn.close()

    # A pool: every release resets the connection; a session setting does not leak to the next user.
    pool = await asyncpg.create_pool(DSN, min_size=1, max_size=2)
    for _ in range(3):
        async with pool.acquire() as c:
            assert await c.fetchval("SHOW statement_timeout") == "0"
            await c.execute("SET statement_timeout = '5s'")
            assert await c.fetchval("SELECT cnt FROM t WHERE k = $1 AND cnt > $2 LIMIT 1", "p1", 3) == 4
    assert await pool.fetchval("SELECT count(*) FROM t") == 20
    await pool.close()
    print("asyncpg: ok")

asyncio.run(main())
'''


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weir", required=True)
    args = ap.parse_args()
    python = ensure_venv("asyncpg", ["asyncpg"], ["asyncpg>=0.29"])
    if python is None:
        return 0
    with tempfile.TemporaryDirectory() as data_dir:
        return run_client(args.weir, data_dir, lambda port: [python, "-c", CLIENT, port, PAR_CSV], "asyncpg", 120)


if __name__ == "__main__":
    sys.exit(main())
