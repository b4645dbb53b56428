#!/bin/sh
# The whole test suite, from a fresh Debian machine: installs what it needs, builds, runs the
# unit and integration tests (the real binaries over real sockets, as root), the
# real-guest suite (a Linux VM with qemu-ga-rs inside) and the libvirt suite (virsh driving it).
set -eu
cd "$(dirname "$0")/.."

tests/vm/deps.sh
if ! command -v cargo >/dev/null 2>&1; then
    echo "run-all.sh: cargo (the Rust toolchain) is required" >&2
    exit 1
fi

# Formatting and lints first: a change that is not rustfmt-clean or that clippy warns about
# fails here, before anything runs. The fuzz targets are a workspace of their own.
cargo fmt --all --check
(cd tests/fuzz && cargo fmt --check)
cargo clippy --workspace --all-targets --locked -- -D warnings
(cd tests/fuzz && cargo clippy --all-targets --locked -- -D warnings)

cargo build --release --workspace --locked
cargo test --release --workspace --locked
tests/fuzz/run.sh 20
python3 tests/qemu-test-qga/run.py
# The real-guest suite has grown past its default 570 s budget (68 checks, several guests of
# their own); the budget only stops a hung run, so give it room within the whole run's limit.
python3 tests/vm/run.py --agent target/release/qemu-ga-rs --budget 1800
# libvirt's virsh driving the agent in a guest (tests/libvirt). --strict: a check NOT RUN (the
# agent does not list a command it needs) fails the run; a check whose virsh option this
# libvirt lacks (guestinfo --load before libvirt 11.0) is N/A and does not.
python3 tests/libvirt/run.py --agent target/release/qemu-ga-rs --strict
tests/package/run.sh
