#!/usr/bin/env bash
# Runs Weir's fuzzers for longer than ./dev.sh test does (issue 12).
#   scripts/fuzz.sh suite [seconds] [seed]   the in-suite fuzzers of tests/fuzz_sql.rs (mutated SQL
#                                            and mutated wire messages against `weir serve`), release
#   scripts/fuzz.sh targets [seconds]        the cargo-fuzz targets of fuzz/ (libFuzzer, nightly,
#                                            AddressSanitizer): `statement` and `pgwire_frames`,
#                                            side by side, each for the given time
#                                            (FUZZ_TARGETS="statement" runs only those named)
#   scripts/fuzz.sh replay TARGET FILE       runs one target on one input (a crash it found)
# Default 1800 s. A failure prints the statements or messages that caused it; cargo-fuzz keeps a
# crashing input under fuzz/artifacts/<target>/ and the run's output in fuzz/logs/<target>.log.
set -euo pipefail
mode="${1:-suite}"
seconds="${2:-1800}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weir-target}"
cd "$(dirname "$0")/.."

# The cargo-fuzz build: nightly, cargo-fuzz, and the flags and environment every command repeats
# (a different one rebuilds everything).
fuzz_setup() {
    rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
    command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
    fuzz_dir="$CARGO_TARGET_DIR/fuzz"
    # The fuzz build compiles everything again under nightly with sanitizer flags. RocksDB's C++
    # (most of a clean build) is not instrumented either way, so the release build's archive is
    # linked when there is one.
    archive=$(ls -t "$CARGO_TARGET_DIR"/release/build/librocksdb-sys-*/out/librocksdb.a 2>/dev/null | head -1 || true)
    if [ -n "$archive" ]; then
        mkdir -p "$fuzz_dir/rocksdb"
        cp -u "$archive" "$fuzz_dir/rocksdb/librocksdb.a"
        export ROCKSDB_LIB_DIR="$fuzz_dir/rocksdb" ROCKSDB_STATIC=1
    fi
    # cargo-fuzz's default of one codegen unit would make DataFusion and Weir build for hours on
    # a small machine.
    flags=(--fuzz-dir fuzz --target-dir "$fuzz_dir" --codegen-units 16)
    # Weir allocates through mimalloc, whose memory LeakSanitizer does not scan: it would report
    # everything a Rust object holds as leaked.
    export ASAN_OPTIONS=detect_leaks=0
}

case "$mode" in
suite)
    seed="${3:-1}"
    WEIR_FUZZ_SECONDS="$seconds" WEIR_FUZZ_SEED="$seed" \
        cargo test --release --test fuzz_sql -- --nocapture --test-threads 2
    ;;
targets)
    fuzz_setup
    python3 scripts/fuzz_seeds.py fuzz
    targets=(${FUZZ_TARGETS:-statement pgwire_frames})
    for target in "${targets[@]}"; do
        cargo +nightly fuzz build "${flags[@]}" "$target"
    done
    mkdir -p fuzz/logs
    pids=()
    # An input taking this long is a hang. Planning runs 10-30x slower under ASan with debug
    # assertions than in a release build: the slt corpus' 1,000-term `1+1+...` took over 15 s.
    declare -A timeouts=([statement]=120 [pgwire_frames]=10)
    for target in "${targets[@]}"; do
        cargo +nightly fuzz run "${flags[@]}" "$target" "fuzz/corpus/$target" -- \
            -max_total_time="$seconds" -timeout="${timeouts[$target]}" -rss_limit_mb=4096 -detect_leaks=0 -print_final_stats=1 \
            >"fuzz/logs/$target.log" 2>&1 &
        pids+=($!)
    done
    status=0
    for i in "${!targets[@]}"; do
        if wait "${pids[$i]}"; then
            echo "${targets[$i]}: no failure in $seconds s"
        else
            echo "${targets[$i]}: FAILED, see fuzz/logs/${targets[$i]}.log"
            status=1
        fi
        grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ +DONE)' "fuzz/logs/${targets[$i]}.log" || true
    done
    exit $status
    ;;
replay)
    fuzz_setup
    python3 scripts/fuzz_seeds.py fuzz
    cargo +nightly fuzz run "${flags[@]}" "$2" "$3"
    ;;
*)
    echo "usage: scripts/fuzz.sh suite [seconds] [seed] | targets [seconds] | replay TARGET FILE" >&2
    exit 2
    ;;
esac
