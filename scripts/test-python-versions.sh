#!/usr/bin/env bash
# Builds pybridge against each other CPython the image has (pyenv shared builds)
# and runs the whole Rust-driven suite (engine, objects, C and C++ hosts with
# sanitizers) on it: thread-state and finalization rules differ between 3.10,
# 3.12 and 3.13 (see docs/CPYTHON-NOTES.md). The fuzz sweeps take a seed
# window per version (scripts/lib.sh, `pyb_fuzz_window`).
# Versions that are not installed are reported and skipped. The package tests
# run once, in the main run: the package holds a core for every version.
#   PYB_EXTRA_PYTHONS="3.12.1"   these versions only (default: scripts/python-versions'
#                                pyenv ones except the build's)
#   scripts/test-python-versions.sh -E 'binary(smoke)'
#                                nextest arguments replace the default filter
cd "$(dirname "$0")/.."
source scripts/env.sh
ensure_nextest
filter=("$@")
[ $# -gt 0 ] || filter=(-E 'not binary(package)')
status=0
for version in ${PYB_EXTRA_PYTHONS:-$(pyb_python_versions others)}; do
  python="$(pyb_pyenv_python "$version")"
  if [ ! -x "$python" ]; then
    echo "== CPython $version: not installed, skipped"
    continue
  fi
  pyb_fuzz_window "$version"
  echo "== CPython $version (fuzz seeds $PYB_FUZZ_FIRST_SEED..$((PYB_FUZZ_FIRST_SEED + PYB_FUZZ_SEEDS - 1)))"
  if ! PYO3_PYTHON="$python" CARGO_TARGET_DIR="target/python-$version" \
      cargo nextest run --profile ci "${filter[@]}"; then
    echo "== CPython $version: FAILED"
    status=1
  fi
done
exit $status
