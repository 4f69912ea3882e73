#!/usr/bin/env bash
# The suite on CPython 3.14 and 3.15, which this image cannot install: builds
# (once) the Debian sid chroot that has them (scripts/sid-chroot.sh, about
# 2 minutes and 200 MB of downloads on a fresh machine) and runs
# scripts/sid-suite.sh inside it for each, then the package's tests for both
# (scripts/test-package-sid.sh). PYB_SID_PYTHONS chooses the versions
# (default: the sid versions of scripts/python-versions). Exits non-zero when any part failed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit
source scripts/lib.sh
bash scripts/sid-chroot.sh setup || { echo "== the sid chroot could not be built"; exit 1; }
status=0
for version in ${PYB_SID_PYTHONS:-$(pyb_python_versions sid)}; do
  started=$SECONDS
  bash scripts/sid-chroot.sh run bash scripts/sid-suite.sh "$version" || status=1
  echo "== CPython $version in the sid chroot took $((SECONDS - started)) s"
done
# The release package (dist/, built by the CI's package stage with the cp314 and
# cp315 cores) on both: by executable, by libpython, in a venv, and refusals.
started=$SECONDS
PYB_PACKAGE_REUSE=1 bash scripts/test-package-sid.sh || status=1
echo "== the package's tests in the sid chroot took $((SECONDS - started)) s"
exit $status
