#!/bin/sh
# Runs the in-suite fuzzers (tests/fuzz_sql.rs: mutated SQL, mutated wire messages) for longer than
# ./dev.sh test does. Usage: scripts/fuzz.sh [seconds] [seed]   (default 1800 s, seed 1)
# Each fuzzer runs for the given time; a failure prints the statements or messages that caused it.
set -eu
seconds="${1:-1800}"
seed="${2:-1}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weir-target}"
cd "$(dirname "$0")/.."
WEIR_FUZZ_SECONDS="$seconds" WEIR_FUZZ_SEED="$seed" \
    cargo test --release --test fuzz_sql -- --nocapture --test-threads 2
