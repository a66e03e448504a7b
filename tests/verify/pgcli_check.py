#!/usr/bin/env python3
"""pgcli against `weir serve`, as a pgcli user's first minutes exercise it, through pgcli's own classes
rather than its screen: `PGExecute` connects (server version, search_path), every refresher of pgcli's
completion refresher runs (schemata, tables and their columns, views, foreign keys, types, databases,
casing, functions) and the completer it builds offers `t` and its columns; pgcli's special commands
go through `PGExecute.run` to pgspecial (`\\dt`, `\\d`, `\\d t`, `\\dn`, `\\l`, `\\l+`, `\\df`, `\\x`); plain
queries give exact rows; the error classes pgcli shows; and the real `pgcli` executable once, with
`-c` (its non-interactive mode: each `-c` command runs, its output is printed, pgcli exits).
Each check is reported on its own (with the last SQL pgcli sent when it fails), then one summary
line; exits 1 when any check failed. Installs pgcli into the checks' venv (~/.cache/weir-venv); says
so loudly and exits 0 when PyPI cannot be reached."""

import argparse
import os
import sys
import tempfile

from weir_server import PAR_CSV, VENV, ensure_venv, run_client

CLIENT = r'''
import logging, os, subprocess, sys, tempfile, traceback
import psycopg
import pgcli.pgexecute
from pgcli.completion_refresher import CompletionRefresher
from pgcli.main import exception_formatter
from pgcli.pgcompleter import PGCompleter
from pgcli.pgexecute import PGExecute
from pgspecial.main import PGSpecial
from prompt_toolkit.document import Document

port, data, pgcli_exe = int(sys.argv[1]), sys.argv[2], sys.argv[3]
# pgcli logs each failed statement with its traceback; the failures are reported below instead.
logging.getLogger("pgcli").addHandler(logging.NullHandler())
logging.getLogger("pgcli").propagate = False

# Every statement pgcli and pgspecial send goes through ProtocolSafeCursor.execute: keep the last
# one, as sent, to name it when a check fails.
SENT = []
_execute = pgcli.pgexecute.ProtocolSafeCursor.execute


def _recording_execute(self, query, params=None, *args, **kwargs):
    text = query.as_string(self) if isinstance(query, psycopg.sql.Composable) else query
    SENT.append(text if params is None else f"{text}\n    -- parameters: {params!r}")
    return _execute(self, query, params, *args, **kwargs)


pgcli.pgexecute.ProtocolSafeCursor.execute = _recording_execute

passed, failed = [], []


def check(name):
    """Runs the decorated function as one check, now."""
    def run(fn):
        SENT.clear()
        try:
            fn()
            passed.append(name)
        except Exception as e:
            failed.append(name)
            detail = str(e) if isinstance(e, AssertionError) else f"{type(e).__name__} ({getattr(e, 'sqlstate', None)}): {e}"
            print(f"FAIL {name}: {detail}")
            if SENT:
                print("  last SQL sent:\n    " + SENT[-1].strip().replace("\n", "\n    "))
        return fn
    return run


def run(executor, special, command):
    """`command` through PGExecute.run as pgcli's REPL sends it: [(title, rows, headers, status)]."""
    out = []
    for title, rows, headers, status, _sql, success, _is_special in executor.run(command, pgspecial=special):
        assert success, (command, status)
        out.append((title, list(rows) if rows is not None else None, headers, status))
    return out


# The same source, table and job as asyncpg_check.py, through psycopg (which pgcli runs on).
with psycopg.connect(f"host=127.0.0.1 port={port} user=weir dbname=weir", autocommit=True) as conn:
    conn.execute(f"CREATE SOURCE ev (k VARCHAR, v BIGINT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) "
                 f"WITH (connector = 'file', path = '{data}', format = 'csv')")
    conn.execute("CREATE TABLE t (k VARCHAR, window_start TIMESTAMP, cnt BIGINT, total BIGINT, PRIMARY KEY (k, window_start))")
    conn.execute("CREATE JOB j AS INSERT INTO t SELECT k, window_start, COUNT(*), SUM(v) "
                 "FROM TUMBLE(ev, ts, INTERVAL '20' SECOND) GROUP BY k, window_start")
    conn.execute("WAIT JOB j")

# pgcli's start-up: PGExecute(database, user, password, host, port, dsn).
ex = PGExecute("weir", "weir", None, "127.0.0.1", port, None)
special = PGSpecial()
T_COLUMNS = [("public", "t", "k", "character varying", False, None),
             ("public", "t", "window_start", "timestamp without time zone", False, None),
             ("public", "t", "cnt", "bigint", False, None),
             ("public", "t", "total", "bigint", False, None)]


@check("connect")
def _():
    assert (ex.dbname, ex.user, ex.host, ex.port) == ("weir", "weir", "127.0.0.1", str(port)), (ex.dbname, ex.user, ex.host, ex.port)
    assert ex.server_version.startswith("16."), ex.server_version
    assert ex.conn.info.server_version >= 160000, ex.conn.info.server_version
    assert not ex.is_virtual_database()
    assert run(ex, special, "SELECT current_database()")[0][1] == [("weir",)]


# What pgcli's completion refresher runs (pgcli/completion_refresher.py), one PGExecute method at a time.
@check("refresh: search_path")
def _():
    assert ex.search_path() == ["pg_catalog", "public"], ex.search_path()


@check("refresh: schemata")
def _():
    schemata = ex.schemata()
    assert "public" in schemata and "pg_catalog" in schemata, schemata


@check("refresh: tables")
def _():
    tables = list(ex.tables())
    assert ("public", "t") in tables, tables


@check("refresh: table_columns")
def _():
    columns = [tuple(c) for c in ex.table_columns() if c[1] == "t"]
    assert columns == T_COLUMNS, columns


@check("refresh: foreignkeys")
def _():
    assert list(ex.foreignkeys()) == []


@check("refresh: views (Weir's system tables)")
def _():
    views = sorted(v[1] for v in ex.views())
    assert views == ["weir_jobs", "weir_savepoints"], views
    columns = {(c[1], c[2]) for c in ex.view_columns()}
    assert ("weir_jobs", "status") in columns and ("weir_savepoints", "path") in columns, columns


@check("refresh: datatypes")
def _():
    # Postgres gives no row either: only types outside pg_catalog/information_schema that are not
    # a table's row type or an array.
    assert list(ex.datatypes()) == []


@check("refresh: databases")
def _():
    assert ex.databases() == ["weir"], ex.databases()


@check("refresh: casing (generate_casing_file = True)")
def _():
    # Postgres gives no row: no sql/plpgsql function outside pg_catalog and information_schema.
    assert list(ex.casing()) == []


@check("refresh: functions")
def _():
    functions = list(ex.functions())
    names = {(f.schema_name, f.func_name) for f in functions}
    assert ("pg_catalog", "abs") in names and ("pg_catalog", "count") in names, sorted(names)[:20]
    assert any(f.func_name == "count" and f.is_aggregate for f in functions)
    # `COALESCE(proallargtypes::regtype[], proargtypes::regtype[])::text[]` must come back as a
    # text[] (psycopg makes it a list of type names), not as a string psycopg leaves alone (which
    # FunctionMetadata then splits into characters).
    garbled = [(f.func_name, f.arg_types) for f in functions if f.arg_types and any(len(a) < 2 for a in f.arg_types)]
    assert not garbled, f"{len(garbled)} functions with arg_types split into characters, e.g. {garbled[:3]}"


@check("refresh: functions' return types")
def _():
    # `prorettype::regtype::text` is a type's name, never a bare OID.
    numeric = sorted({(f.func_name, f.return_type) for f in ex.functions() if f.return_type.isdigit()})
    assert not numeric, f"{len(numeric)} functions whose return type is a bare OID, e.g. {numeric[:3]}"


@check("text[] result")
def _():
    # The root of arg_types above: an array-typed result column in Postgres' text form.
    cur = ex.conn.cursor()
    cur.execute("SELECT ARRAY['a', 'b']::text[]")
    assert cur.description[0].type_code == 1009, f"column type OID {cur.description[0].type_code}, Postgres: 1009 (text[])"
    assert cur.fetchall() == [(["a", "b"],)]


# The refresher as pgcli runs it (a thread, on a copy of the executor), with pgcli's default
# settings (a casing file that is not there, generate_casing_file = False); then what the completer offers.
completers = []


@check("completion refresher")
def _():
    home = tempfile.mkdtemp()
    refresher = CompletionRefresher()
    refresher.refresh(ex, special, completers.append,
                      settings={"casing_file": os.path.join(home, "casing"), "generate_casing_file": False})
    refresher._completer_thread.join(120)
    assert completers, "the refresher did not finish (a refresher raised: see the checks above)"


@check("completions")
def _():
    assert completers, "no completer (the completion refresher failed)"
    completer = completers[0]

    def offered(text, cursor=None):
        document = Document(text=text, cursor_position=len(text) if cursor is None else cursor)
        return {c.text for c in completer.get_completions(document, None)}
    assert "t" in offered("SELECT * FROM "), sorted(offered("SELECT * FROM "))[:20]
    columns = offered("SELECT  FROM t", cursor=7)
    assert {"k", "window_start", "cnt", "total"} <= columns, sorted(columns)[:20]
    assert "public" in offered("SELECT * FROM "), "schema public not offered"


# pgcli's special commands, through PGExecute.run to pgspecial.
@check("\\dt")
def _():
    [(_, rows, headers, _)] = run(ex, special, "\\dt")
    assert headers == ["Schema", "Name", "Type", "Owner"], headers
    assert ("public", "t", "table", "weir") in rows, rows


@check("\\d")
def _():
    [(_, rows, headers, _)] = run(ex, special, "\\d")
    assert ("public", "t", "table", "weir") in rows, rows


@check("\\d t")
def _():
    [(_, rows, headers, status)] = run(ex, special, "\\d t")
    assert headers == ["Column", "Type", "Modifiers"], headers
    assert [tuple(r) for r in rows] == [("k", "character varying", " not null"),
                                       ("window_start", "timestamp without time zone", " not null"),
                                       ("cnt", "bigint", ""), ("total", "bigint", "")], rows
    assert status == 'Indexes:\n    "t_pkey" PRIMARY KEY, btree (k, window_start)\n', repr(status)


@check("\\dn")
def _():
    [(_, rows, headers, _)] = run(ex, special, "\\dn")
    assert headers == ["Name", "Owner"] and "public" in [r[0] for r in rows], (headers, rows)


@check("\\l")
def _():
    [(_, rows, headers, _)] = run(ex, special, "\\l")
    assert headers == ["Name", "Owner", "Encoding", "Collate", "Ctype", "Access privileges"], headers
    assert [r[:3] for r in rows] == [("weir", "weir", "UTF8")], rows


@check("\\l+")
def _():
    [(_, rows, headers, _)] = run(ex, special, "\\l+")
    assert headers[:3] == ["Name", "Owner", "Encoding"] and "Size" in headers, headers
    assert [r[0] for r in rows] == ["weir"], rows


@check("\\df")
def _():
    [(_, rows, headers, _)] = run(ex, special, "\\df")
    assert headers == ["Schema", "Name", "Result data type", "Argument data types", "Type"], headers
    assert rows == [], rows  # no user function (\df leaves pg_catalog out), as in Postgres
    [(_, rows, _, _)] = run(ex, special, "\\df abs")
    assert rows and all(r[:2] == ("pg_catalog", "abs") for r in rows), rows


@check("\\x")
def _():
    assert run(ex, special, "\\x") == [(None, None, None, "Expanded display is on.")]
    assert special.expanded_output
    assert run(ex, special, "\\x") == [(None, None, None, "Expanded display is off.")]
    assert not special.expanded_output


@check("queries")
def _():
    # sql/parallelism.slt, worked out by hand: p1 has (1, 2), (2, 16), (4, 120).
    [(_, rows, headers, status)] = run(ex, special, "SELECT cnt, total FROM t WHERE k = 'p1' ORDER BY window_start;")
    assert (rows, headers, status) == ([(1, 2), (2, 16), (4, 120)], ["cnt", "total"], "SELECT 3"), (rows, headers, status)
    # Two statements on one line, as typed at the prompt: pgcli splits them and runs each.
    results = run(ex, special, "SELECT count(*) FROM t; SELECT k, cnt FROM t ORDER BY k, window_start LIMIT 2")
    assert [r[1:] for r in results] == [([(20,)], ["count"], "SELECT 1"), ([("p1", 1), ("p1", 2)], ["k", "cnt"], "SELECT 2")], results


@check("timestamp text")
def _():
    # pgcli reads timestamps as text (register_typecasters) and shows that text as it came: Postgres
    # sends a whole-second timestamp without a fraction, and trims trailing zeros of one.
    [(_, rows, _, _)] = run(ex, special, "SELECT k, window_start FROM t ORDER BY k, window_start LIMIT 2")
    assert rows == [("p1", "2024-01-01 00:00:00"), ("p1", "2024-01-01 00:00:20")], rows


# Errors as pgcli meets them: PGExecute.run raises the psycopg error when given no formatter, and
# shows exception_formatter(e) (the message, in red) when given pgcli's.
for sql, error, sqlstate in [
    ("SELECT * FROM nosuch", psycopg.errors.UndefinedTable, "42P01"),
    ("SELECT nosuch FROM t", psycopg.errors.UndefinedColumn, "42703"),
    ("SELECT cnt / 0 FROM t", psycopg.errors.DivisionByZero, "22012"),
]:
    @check(f"error {sqlstate}")
    def _():
        try:
            run(ex, special, sql)
            raise AssertionError(f"no error for {sql}")
        except psycopg.Error as e:
            assert isinstance(e, error) and e.sqlstate == sqlstate, (sql, type(e).__name__, e.sqlstate, str(e))
            shown = list(ex.run(sql, pgspecial=special, exception_formatter=exception_formatter))
            assert [(s[3], s[5]) for s in shown] == [(exception_formatter(e), False)], shown
        # The connection is still usable after the error.
        assert run(ex, special, "SELECT 1")[0][1] == [(1,)]


# The real executable once, non-interactively: each -c command runs and pgcli exits (piping stdin
# instead would start the full-screen prompt). A private config dir keeps ~/.config/pgcli untouched.
@check("pgcli -c")
def _():
    env = dict(os.environ, XDG_CONFIG_HOME=tempfile.mkdtemp(), PAGER="cat", TERM="dumb")
    result = subprocess.run([pgcli_exe, "-h", "127.0.0.1", "-p", str(port), "-U", "weir", "-w", "-d", "weir", "--less-chatty",
                             "-c", "SELECT cnt, total FROM t WHERE k = 'p1' ORDER BY window_start",
                             "-c", "\\d t", "-c", "\\dt"],
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    out = result.stdout
    table = [[cell.strip() for cell in line.strip("|").split("|")] for line in out.splitlines() if line.startswith("| ")]
    assert table[:4] == [["cnt", "total"], ["1", "2"], ["2", "16"], ["4", "120"]], out
    assert "SELECT 3" in out, out
    assert ["window_start", "timestamp without time zone", "not null"] in table, out
    assert '"t_pkey" PRIMARY KEY, btree (k, window_start)' in out, out
    assert ["public", "t", "table", "weir"] in table, "\\dt printed:\n" + out[out.find("t_pkey"):]


print(f"pgcli: {len(passed)} passed, {len(failed)} failed" + (f" ({', '.join(failed)})" if failed else ""))
sys.exit(1 if failed else 0)
'''


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weir", required=True)
    args = ap.parse_args()
    python = ensure_venv("pgcli", ["pgcli.pgexecute", "pgspecial"], ["pgcli>=4.1"])
    if python is None:
        return 0
    pgcli_exe = os.path.join(VENV, "bin", "pgcli")
    with tempfile.TemporaryDirectory() as data_dir:
        return run_client(args.weir, data_dir, lambda port: [python, "-c", CLIENT, port, PAR_CSV, pgcli_exe], "pgcli", 300)


if __name__ == "__main__":
    sys.exit(main())
