#!/usr/bin/env bash
# The release package's tests for CPython 3.14 and 3.15: builds the package on
# the host (scripts/package.sh, which builds the cp314 and cp315 cores inside
# the sid chroot), then runs the `sid_*` tests of tests/package.rs inside the
# chroot, where the packaged loader loads those cores for Debian sid's
# /usr/bin/python3.14 and /usr/bin/python3.15 (C hosts built with sid's GCC
# from the unpacked package only).
#
#   scripts/test-package-sid.sh              package, then the tests
#   PYB_PACKAGE_REUSE=1 scripts/test-package-sid.sh
#                                            the tests on the existing dist/ tarball
#
# The test binary is built inside against the first sid version (3.14: target/sid-3.14, as for the
# chroot's other runs); the package it tests is the one in dist/.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
sid_versions="$(pyb_python_versions sid)"
first="${sid_versions%% *}"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
tarball="dist/pybridge-$version-linux-x86_64.tar.gz"
if [ "${PYB_PACKAGE_REUSE:-0}" != 1 ] || [ ! -f "$tarball" ]; then
  bash scripts/package.sh
fi
listing="$(tar -tzf "$tarball")"
for minor in $sid_versions; do
  tag="cp${minor/./}"
  grep -q "/lib/libpybridge-core-$tag.so\$" <<<"$listing" ||
    { echo "error: $tarball has no $tag core" >&2; exit 1; }
done
exec scripts/sid-chroot.sh run env PYO3_PYTHON="/usr/bin/python$first" CARGO_TARGET_DIR="target/sid-$first" \
  cargo nextest run --test package --run-ignored only -E 'test(/^sid_/)' --no-fail-fast
