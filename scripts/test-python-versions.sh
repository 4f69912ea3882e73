#!/usr/bin/env bash
# Builds pybridge against each other CPython the image has (pyenv shared builds)
# and runs the whole Rust-driven suite (engine, objects, C and C++ hosts with
# sanitizers) on it: thread-state and finalization rules differ between 3.10,
# 3.12 and 3.13 (see docs/CPYTHON-NOTES.md).
# Versions that are not installed are reported and skipped. The package tests
# run once, in the main run: the package holds a core for every version.
cd "$(dirname "$0")/.."
source scripts/env.sh
ensure_nextest
status=0
for version in ${PYB_EXTRA_PYTHONS:-3.10.13 3.12.1 3.13.0}; do
  python="$PYENV_ROOT/versions/$version/bin/python3"
  if [ ! -x "$python" ]; then
    echo "== CPython $version: not installed, skipped"
    continue
  fi
  echo "== CPython $version"
  if ! PYO3_PYTHON="$python" CARGO_TARGET_DIR="target/python-$version" \
      cargo nextest run --profile ci -E 'not binary(package)'; then
    echo "== CPython $version: FAILED"
    status=1
  fi
done
exit $status
