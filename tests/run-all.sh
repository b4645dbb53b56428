#!/bin/sh
# The whole test suite, from a fresh Debian machine: installs what it needs, builds, runs the
# unit and integration tests (the real binaries over real sockets, as root) and the
# real-guest suite (a Linux VM with qemu-ga-rs inside).
set -eu
cd "$(dirname "$0")/.."

tests/vm/deps.sh
if ! command -v cargo >/dev/null 2>&1; then
    echo "run-all.sh: cargo (the Rust toolchain) is required" >&2
    exit 1
fi

cargo build --release --workspace --locked
cargo test --release --workspace --locked
tests/fuzz/run.sh 20
python3 tests/vm/run.py --agent target/release/qemu-ga-rs
