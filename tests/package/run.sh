#!/bin/sh
# The Debian package, end to end: install the tools, build the .deb with the README's
# command, lint it, build a newer one for the upgrade check, then boot both in Debian 12
# guests (run.py). Called by tests/run-all.sh after the VM suite; needs root.
set -eu
cd "$(dirname "$0")/../.."

# Packaging tools. cargo-deb is pinned so the package is built the same way everywhere.
CARGO_DEB_VERSION=3.8.0
missing=""
for pkg in mmdebstrap lintian; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
    echo "tests/package/run.sh: installing:$missing"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    # shellcheck disable=SC2086 # word splitting of the package list is intended
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
fi
if [ "$(cargo deb --version 2>/dev/null)" != "cargo-deb $CARGO_DEB_VERSION" ]; then
    cargo install --locked cargo-deb --version "$CARGO_DEB_VERSION"
fi

# The package, exactly as the README builds it.
cargo deb -p qemu-ga-rs --locked --strip
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
deb="target/debian/qemu-ga-rs_${version}-1_amd64.deb"
# cargo-deb deletes earlier .deb files of the package when it builds again: keep copies.
debs=target/package-test
rm -rf "$debs"
mkdir -p "$debs"
cp "$deb" "$debs/"
deb="$debs/${deb##*/}"

# lintian fails on errors; the warnings it may show are those overridden in
# pkg/lintian-overrides, each with its reason.
lintian --fail-on error,warning "$deb"

# A newer build of the same tree: what an upgrade installs.
cargo deb -p qemu-ga-rs --locked --strip --no-build --deb-revision 2 -o "$debs/"

exec python3 tests/package/run.py --deb "$deb" --upgrade-deb "$debs/qemu-ga-rs_${version}-2_amd64.deb" \
    --upgrade-version "${version}-2"
