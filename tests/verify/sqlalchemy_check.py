#!/usr/bin/env python3
"""SQLAlchemy 2 (over psycopg2 and psycopg 3) and pandas against `weir serve`: what a notebook does
first. Connect (the dialects read the server version, schema, isolation level and type oids), list
the tables, read a result table with `pandas.read_sql` (with a parameter), and a missing table's
error class, and its (empty) foreign keys. Column and key reflection (`get_columns`,
`get_pk_constraint`, `read_sql_table`) is not there yet (issue 14: json_build_object,
generate_subscripts). Installs SQLAlchemy, psycopg2 and
pandas into the venv under ~/.cache/weir-venv on first use; says so loudly and exits 0 when PyPI
cannot be reached."""

import argparse
import sys
import tempfile

from weir_server import PAR_CSV, ensure_venv, run_client

REQUIREMENTS = ["sqlalchemy>=2.0", "psycopg2-binary>=2.9", "psycopg[binary]>=3.1", "pandas>=2.0"]


CLIENT = r'''
import sys
import pandas as pd
import sqlalchemy as sa

port, data = int(sys.argv[1]), sys.argv[2]
setup = sa.create_engine(f"postgresql+psycopg://weir@127.0.0.1:{port}/weir", isolation_level="AUTOCOMMIT")
with setup.connect() as conn:
    conn.exec_driver_sql(f"CREATE SOURCE ev (k VARCHAR, v BIGINT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) "
                         f"WITH (connector = 'file', path = '{data}', format = 'csv')")
    conn.exec_driver_sql("CREATE TABLE t (k VARCHAR, window_start TIMESTAMP, cnt BIGINT, total BIGINT, PRIMARY KEY (k, window_start))")
    conn.exec_driver_sql("CREATE JOB j AS INSERT INTO t SELECT k, window_start, COUNT(*), SUM(v) "
                         "FROM TUMBLE(ev, ts, INTERVAL '20' SECOND) GROUP BY k, window_start")
    conn.exec_driver_sql("WAIT JOB j")

for driver in ["psycopg", "psycopg2"]:
    engine = sa.create_engine(f"postgresql+{driver}://weir@127.0.0.1:{port}/weir")
    inspector = sa.inspect(engine)
    assert inspector.get_table_names() == ["t"], (driver, inspector.get_table_names())
    assert inspector.has_table("t") and not inspector.has_table("nope"), driver
    assert inspector.get_foreign_keys("t") == [], driver
    # sql/parallelism.slt, worked out by hand: p1 has (1, 2), (2, 16), (4, 120).
    frame = pd.read_sql(sa.text("SELECT cnt, total FROM t WHERE k = :k ORDER BY window_start"), engine, params={"k": "p1"})
    assert frame.values.tolist() == [[1, 2], [2, 16], [4, 120]], (driver, frame)
    frame = pd.read_sql("SELECT k, window_start, cnt FROM t ORDER BY k, window_start", engine)
    assert list(frame.columns) == ["k", "window_start", "cnt"] and len(frame) == 20, (driver, frame)
    assert str(frame["window_start"].dtype).startswith("datetime64"), (driver, frame.dtypes)
    with engine.connect() as conn:
        try:
            conn.execute(sa.text("SELECT * FROM missing"))
            raise AssertionError("no error for a missing table")
        except sa.exc.ProgrammingError as e:
            assert e.orig.pgcode == "42P01" if driver == "psycopg2" else e.orig.sqlstate == "42P01", (driver, e)
print("sqlalchemy: ok")
'''


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weir", required=True)
    args = ap.parse_args()
    python = ensure_venv("SQLAlchemy", ["sqlalchemy", "psycopg2", "psycopg", "pandas"], REQUIREMENTS)
    if python is None:
        return 0
    with tempfile.TemporaryDirectory() as data_dir:
        return run_client(args.weir, data_dir, lambda port: [python, "-c", CLIENT, port, PAR_CSV], "sqlalchemy", 300)


if __name__ == "__main__":
    sys.exit(main())
