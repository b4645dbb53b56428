"""The booted-guest test of the Debian package (see tests/package/README.md)."""
