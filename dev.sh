#!/usr/bin/env bash
# Weir's one entry point for developers and CI, on a fresh Debian machine with Rust and gcc:
#   ./dev.sh weir [ARGS...]   build (release) and run Weir: REPL by default, `run FILE.sql`, ...
#   ./dev.sh test             build (the same release build) and run every test (unit, sqllogictest,
#                             window verification, recovery, psql/psycopg/JDBC)
# Both check every prerequisite before cargo starts: as root with apt-get they install what is missing
# (libclang-dev for RocksDB's bindgen, g++, make and libssl-dev for librdkafka, ...), otherwise they stop and print the command to run.
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weir-target}"
# libclang_present, clang_headers_present: the search clang-sys does for RocksDB's bindgen.
source scripts/prerequisites.sh

can_install() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; }

# The Debian command that installs packages, for the messages.
install_command() {
    if [ "$(id -u)" = 0 ]; then echo "apt-get install -y $*"; else echo "sudo apt-get install -y $*"; fi
}

# ensure_prerequisites weir|test [no-install]
# Checks what the build (both modes) and the tests (test) need. Required ones stop the script when
# they cannot be installed; optional ones only turn off the checks that need them, which say so loudly.
ensure_prerequisites() {
    local mode=$1 no_install=${2-}
    local required=() optional=() notes=() problems=()

    command -v cargo >/dev/null 2>&1 || problems+=("cargo not found: install Rust with rustup (https://rustup.rs)")
    # rustc links with cc; the cc crate compiles RocksDB (C++), lz4, mimalloc and ring with $CXX / $CC,
    # else c++ / cc.
    local var tool
    for var in CC CXX; do
        tool=${!var-}
        if [ -n "$tool" ]; then
            command -v "${tool%% *}" >/dev/null 2>&1 || problems+=("$var='$tool': ${tool%% *} not found")
        elif [ "$var" = CC ]; then
            command -v cc >/dev/null 2>&1 || required+=(gcc)
        else
            command -v c++ >/dev/null 2>&1 || required+=(g++)
        fi
    done
    # libclang for RocksDB's bindgen, found the way clang-sys finds it (not `ldconfig -p | grep
    # libclang`, which also matches Debian's libclang-cpp.so.14, a different library).
    if ! libclang_present ""; then
        if [ -n "${LIBCLANG_PATH+set}" ]; then
            problems+=("LIBCLANG_PATH='$LIBCLANG_PATH' holds no libclang.so / libclang-*.so / libclang.so.* (clang-sys then searches nowhere else): point it at the directory of libclang or unset it")
        else
            required+=(libclang-dev)
        fi
    elif ! clang_headers_present ""; then
        if [ -n "${LIBCLANG_PATH+set}" ]; then
            problems+=("no clang headers (stddef.h) next to ${LIBCLANG_FOUND[0]}: bindgen needs them; set BINDGEN_EXTRA_CLANG_ARGS='-isystem <clang's include directory>'")
        else
            # Debian's libclang1-* alone: the library without clang's headers (libclang-common-*-dev).
            required+=(libclang-dev)
        fi
    fi

    # librdkafka (the Kafka client) is built from source with its configure script and make; it
    # links the system OpenSSL (TLS, SASL/SCRAM), which openssl-sys finds through pkg-config.
    command -v make >/dev/null 2>&1 || required+=(make)
    command -v pkg-config >/dev/null 2>&1 || required+=(pkg-config)
    if ! pkg-config --exists openssl 2>/dev/null; then
        required+=(libssl-dev)
    fi

    if [ "$mode" = test ]; then
        # The verification scripts (tests/verify/*.py) and the psycopg check's venv.
        if ! command -v python3 >/dev/null 2>&1; then
            required+=(python3)
            optional+=(python3-venv)
        elif [ ! -x "$HOME/.cache/weir-venv/bin/python" ] && ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
            if [ "$(command -v python3)" = /usr/bin/python3 ]; then
                optional+=(python3-venv)
            else
                notes+=("$(command -v python3) cannot create a venv (no ensurepip): the psycopg check will be skipped")
            fi
        fi
        # psql drives the wire-protocol tests (tests/psql.rs); they skip loudly without it.
        command -v psql >/dev/null 2>&1 || optional+=(postgresql-client)
        # openssl makes the certificate of the psql TLS test; it skips loudly without it.
        command -v openssl >/dev/null 2>&1 || optional+=(openssl)
        # The JDBC driver for the JDBC check (which needs Java and is skipped without it), the jars
        # tests/verify/jdbc_check.py looks for.
        if command -v javac >/dev/null 2>&1 && ! compgen -G '/usr/share/java/postgresql-4*.jar' >/dev/null &&
            [ ! -e /usr/share/java/postgresql.jar ]; then
            optional+=(libpostgresql-jdbc-java)
        fi
    fi

    local problem
    if [ ${#problems[@]} -gt 0 ]; then
        for problem in "${problems[@]}"; do echo "dev.sh: $problem" >&2; done
        exit 1
    fi

    local wanted=("${required[@]}" "${optional[@]}")
    if [ ${#wanted[@]} -gt 0 ] && [ -z "$no_install" ] && can_install; then
        echo "dev.sh: installing ${wanted[*]} (needed to build RocksDB / run the checks)" >&2
        if apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${wanted[@]}" >/dev/null; then
            ensure_prerequisites "$mode" no-install
            return
        fi
        echo "dev.sh: apt-get could not install ${wanted[*]}" >&2
        ensure_prerequisites "$mode" no-install
        return
    fi

    if [ ${#required[@]} -gt 0 ]; then
        if [ -n "$no_install" ] && can_install; then
            echo "dev.sh: still missing after apt-get: ${required[*]}" >&2
        elif command -v apt-get >/dev/null 2>&1; then
            echo "dev.sh: missing ${required[*]}; nothing was compiled. Run${optional[*]:+ (${optional[*]}: for tests that otherwise skip)}:" >&2
            echo "    $(install_command "${wanted[@]}")" >&2
            echo "and rerun ./dev.sh $mode" >&2
        else
            echo "dev.sh: missing what these Debian packages provide: ${wanted[*]}; nothing was compiled. Install it and rerun ./dev.sh $mode" >&2
        fi
        exit 1
    fi
    local package
    for package in "${optional[@]}"; do
        case $package in
            postgresql-client) echo "dev.sh: psql not found; the psql tests will be skipped ($(install_command postgresql-client))" >&2 ;;
            openssl) echo "dev.sh: openssl not found; the psql TLS test will be skipped ($(install_command openssl))" >&2 ;;
            libpostgresql-jdbc-java) echo "dev.sh: no PostgreSQL JDBC driver; the JDBC check will be skipped ($(install_command libpostgresql-jdbc-java))" >&2 ;;
            python3-venv) echo "dev.sh: python3 cannot create a venv; the psycopg check will be skipped ($(install_command python3-venv))" >&2 ;;
        esac
    done
    local note
    for note in "${notes[@]}"; do echo "dev.sh: $note" >&2; done
}

case "${1:-weir}" in
    weir)
        shift || true
        ensure_prerequisites weir
        cargo build --release --bin weir
        exec "$CARGO_TARGET_DIR/release/weir" "$@"
        ;;
    test)
        ensure_prerequisites test
        if cargo fmt --version >/dev/null 2>&1; then cargo fmt --check; fi
        # The release profile, like `./dev.sh weir`: RocksDB and DataFusion are compiled once for both
        # (Cargo.toml keeps the dependencies' features the same with and without dev-dependencies).
        cargo build --release --tests --bins --benches
        cargo test --release
        weir="$CARGO_TARGET_DIR/release/weir"
        # Windowed results over a generated CSV against an independent Python computation.
        for kind in tumble hop session; do
            python3 tests/verify/windows.py --weir "$weir" --kind "$kind" --rows 100000 --parallelism 2
        done
        # Exactly-once across SIGKILL of the whole process, and across a damaged newest checkpoint.
        python3 tests/verify/recovery.py --weir "$weir" --kills 4 --parallelism 2
        python3 tests/verify/recovery.py --weir "$weir" --kills 2 --seed 7 --corrupt-latest
        # The same into a table without a primary key: the fallback takes back the newer epochs' rows.
        python3 tests/verify/recovery.py --weir "$weir" --kills 2 --seed 3 --corrupt-latest --query append --parallelism 2
        python3 tests/verify/recovery.py --weir "$weir" --kills 2 --seed 11 --mode AT_LEAST_ONCE --parallelism 3
        # Unaligned checkpoints behind a slow sink: restarts from checkpoints that kept records in
        # flight, exact for a window aggregate and for an updating aggregate.
        python3 tests/verify/recovery.py --weir "$weir" --kills 3 --unaligned --sink-rate 300
        python3 tests/verify/recovery.py --weir "$weir" --kills 3 --unaligned --sink-rate 50 --query updating --parallelism 3 --seed 5
        # An aggregate over an updating aggregate: retractions all the time, state across crashes.
        python3 tests/verify/recovery.py --weir "$weir" --kills 3 --query nested --parallelism 2 --keys 200 --seed 13
        # A regular join of two updating aggregates, and an interval self-join, across crashes.
        python3 tests/verify/recovery.py --weir "$weir" --kills 3 --query join --parallelism 2 --seed 17
        python3 tests/verify/recovery.py --weir "$weir" --kills 3 --query interval --parallelism 2 --seed 19
        # A window self-join (TUMBLE 1 s) across crashes: open windows' rows in the join's state.
        python3 tests/verify/recovery.py --weir "$weir" --kills 3 --query windowjoin --parallelism 2 --seed 23
        # Top-N (3 highest values per key) and keep-last deduplication across crashes.
        python3 tests/verify/recovery.py --weir "$weir" --kills 3 --query topn --parallelism 2 --seed 29
        python3 tests/verify/recovery.py --weir "$weir" --kills 3 --query dedup --parallelism 3 --seed 31
        python3 tests/verify/recovery.py --weir "$weir" --kills 3 --query over --parallelism 2 --seed 37
        # The window, watermark and OVER suites' expected rows (sql/window/*.slt, watermark.slt,
        # parallelism.slt, over.slt) against a Python simulation of Flink's semantics.
        python3 tests/verify/fixture_oracle.py --check
        # The Nexmark join queries' expected rows in sql/nexmark/nexmark.slt against SQLite.
        python3 tests/verify/nexmark_oracle.py --check
        # The window and lookup joins' expected rows (sql/window_join.slt, lookup_join.slt) against SQLite.
        python3 tests/verify/join_oracle.py --check
        # A real Postgres driver from PyPI (psycopg 3, in a venv under ~/.cache) against weir serve.
        python3 tests/verify/psycopg_check.py --weir "$weir"
        # SQLAlchemy 2 (psycopg 3 and psycopg2) and pandas, from PyPI into the same venv.
        python3 tests/verify/sqlalchemy_check.py --weir "$weir"
        # asyncpg (PyPI, same venv): a pool with its connection reset, typed binary parameters, COPY.
        python3 tests/verify/asyncpg_check.py --weir "$weir"
        # pgcli (PyPI, same venv): its start-up catalog reads, completion, \dt / \d, its -c runs.
        python3 tests/verify/pgcli_check.py --weir "$weir"
        # node-postgres, pg-cursor and pg-copy-streams (npm, into ~/.cache/weir-npm; Debian's nodejs
        # and npm when root and node is missing).
        python3 tests/verify/node_pg_check.py --weir "$weir"
        # JDBC (Debian's driver; Java is on the machine) against weir serve.
        python3 tests/verify/jdbc_check.py --weir "$weir"
        # Kafka source and sink against a real broker (noida-db and confluent-kafka from PyPI, in
        # the same venv): crashes, savepoints, a broker restart, an idle topic, bad input.
        python3 tests/verify/kafka_pipeline.py --weir "$weir"
        # Checkpoints and savepoints on S3 (moto in server mode from PyPI, same venv): SIGKILL
        # recovery with local recovery, a damaged object, a savepoint restored in a fresh data dir,
        # an S3 outage during checkpoints, and the errors at CREATE JOB.
        python3 tests/verify/s3_checkpoints.py --weir "$weir"
        # weir serve --http: /metrics parsed as OpenMetrics (prometheus-client from PyPI, same venv)
        # while a job checkpoints, the JSON API against SHOW, Basic auth, and the dashboard in
        # Debian's chromium through playwright-core (npm, ~/.cache/weir-npm).
        python3 tests/verify/http_check.py --weir "$weir"
        # set -e: reaching this line means every check above passed.
        echo "verify: 28 passed, 0 failed"
        ;;
    *)
        echo "usage: ./dev.sh weir [ARGS...] | ./dev.sh test" >&2
        exit 2
        ;;
esac
