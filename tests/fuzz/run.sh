#!/bin/sh
# Runs the fuzz targets: tests/fuzz/run.sh SECONDS [TARGET...]
#
# Builds the targets (stable toolchain; RUSTC_BOOTSTRAP lets cargo fuzz use its unstable
# flags), then runs each given target (all by default) for SECONDS, starting from the committed
# corpus in tests/fuzz/corpus/TARGET. New inputs go to a scratch directory, so the committed
# corpus is left as it is; a crash is saved under tests/fuzz/artifacts/TARGET/ and makes the
# script fail. Extra libFuzzer options can be given in FUZZ_ARGS (e.g. FUZZ_ARGS=-runs=10000000),
# and FUZZ_WORK names a directory that keeps the new inputs (for `cargo fuzz cmin`) and logs.
#
# The targets are built without a sanitizer (the fuzzed code is safe Rust) and with debug
# assertions, so integer overflows are crashes too.
set -eu
cd "$(dirname "$0")/../.."

if [ $# -lt 1 ] || ! [ "$1" -ge 1 ] 2>/dev/null; then
    echo "usage: tests/fuzz/run.sh SECONDS [TARGET...]" >&2
    exit 2
fi
seconds=$1
shift
targets=${*:-stream dispatch helper_frames policy_file}

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
build="--fuzz-dir tests/fuzz --sanitizer none --debug-assertions"
# shellcheck disable=SC2086
cargo fuzz build $build

if [ -n "${FUZZ_WORK:-}" ]; then
    scratch=$FUZZ_WORK
    mkdir -p "$scratch"
else
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
fi
failed=""
for t in $targets; do
    mkdir -p "$scratch/$t" "tests/fuzz/corpus/$t"
    log="$scratch/$t.log"
    echo "fuzz: $t for ${seconds}s"
    # shellcheck disable=SC2086
    if cargo fuzz run $build "$t" "$scratch/$t" "tests/fuzz/corpus/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 ${FUZZ_ARGS:-} \
        >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
        secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n 1)
        cov=$(grep -E '^#[0-9]+.*(DONE|cov:)' "$log" | tail -n 1 | sed -n 's/.*\(cov: [0-9]*\).*\(corp: [^ ]*\).*/\1 \2/p')
        echo "fuzz: $t: ${runs:-?} executions in ${secs:-?}s, $cov, 0 crashes"
    else
        tail -n 60 "$log" >&2
        echo "fuzz: $t FAILED (see tests/fuzz/artifacts/$t/)" >&2
        failed="$failed $t"
    fi
done
if [ -n "$failed" ]; then
    echo "fuzz: failing targets:$failed" >&2
    exit 1
fi
