#!/usr/bin/env bash
# Weir's one entry point for developers and CI, on a fresh Debian machine with Rust and gcc:
#   ./dev.sh weir [ARGS...]   build (release) and run Weir: REPL by default, `run FILE.sql`, ...
#   ./dev.sh test             build and run every test (unit, sqllogictest, window verification)
# It installs what the build needs (libclang for RocksDB's bindgen) when it is missing.
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weir-target}"

ensure_packages() {
    local missing=()
    if ! ls /usr/lib/llvm-*/lib/libclang.so* >/dev/null 2>&1 && ! ldconfig -p 2>/dev/null | grep -q libclang; then
        missing+=(libclang-dev)
    fi
    command -v python3 >/dev/null 2>&1 || missing+=(python3)
    # psql drives the wire-protocol tests; they skip loudly without it.
    if ! command -v psql >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then missing+=(postgresql-client); else echo "dev.sh: psql not found; the psql tests will be skipped (install postgresql-client)" >&2; fi
    fi
    # The JDBC driver for the JDBC check (skipped without Java).
    if command -v javac >/dev/null 2>&1 && ! ls /usr/share/java/postgresql*.jar >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then missing+=(libpostgresql-jdbc-java); else echo "dev.sh: no PostgreSQL JDBC driver; the JDBC check will be skipped" >&2; fi
    fi
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "dev.sh: installing ${missing[*]} (needed to build RocksDB / run the checks)" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "dev.sh: missing ${missing[*]}; install them (e.g. sudo apt-get install ${missing[*]}) and rerun" >&2
        exit 1
    fi
}

case "${1:-weir}" in
    weir)
        shift || true
        ensure_packages
        cargo build --release --bin weir
        exec "$CARGO_TARGET_DIR/release/weir" "$@"
        ;;
    test)
        ensure_packages
        if cargo fmt --version >/dev/null 2>&1; then cargo fmt --check; fi
        cargo build --tests --bins --benches
        cargo test
        # Windowed results over a generated CSV against an independent Python computation.
        for kind in tumble hop session; do
            python3 tests/verify/windows.py --weir "$CARGO_TARGET_DIR/debug/weir" --kind "$kind" --rows 100000 --parallelism 2
        done
        # Exactly-once across SIGKILL of the whole process, and across a damaged newest checkpoint.
        python3 tests/verify/recovery.py --weir "$CARGO_TARGET_DIR/debug/weir" --kills 4 --parallelism 2
        python3 tests/verify/recovery.py --weir "$CARGO_TARGET_DIR/debug/weir" --kills 2 --seed 7 --corrupt-latest
        python3 tests/verify/recovery.py --weir "$CARGO_TARGET_DIR/debug/weir" --kills 2 --seed 11 --mode AT_LEAST_ONCE --parallelism 3
        # A real Postgres driver from PyPI (psycopg 3, in a venv under ~/.cache) against weir serve.
        python3 tests/verify/psycopg_check.py --weir "$CARGO_TARGET_DIR/debug/weir"
        # JDBC (Debian's driver; Java is on the machine) against weir serve.
        python3 tests/verify/jdbc_check.py --weir "$CARGO_TARGET_DIR/debug/weir"
        # set -e: reaching this line means every check above passed.
        echo "verify: 8 passed, 0 failed"
        ;;
    *)
        echo "usage: ./dev.sh weir [ARGS...] | ./dev.sh test" >&2
        exit 2
        ;;
esac
