#!/usr/bin/env bash
# Runs benches/interpreters.rs (Python on every core: the main interpreter
# against a pool of 2 own-GIL interpreters, 1/2/4 host threads) on each
# pyenv CPython that has own-GIL interpreters (scripts/python-versions; release builds in
# target/python-<version>), writing each throughput table to
# target/interpreters-<version>.csv.
#   --plot   also draws docs/interpreters-throughput.png from those tables
#            (matplotlib, pip-installed into .deps/plot on first use).
cd "$(dirname "$0")/.."
source scripts/env.sh
set +e
status=0
tables=()
for version in ${PYB_INTERPRETER_PYTHONS:-$(pyb_python_versions pyenv own-gil)}; do
  python="$(pyb_pyenv_python "$version")"
  if [ ! -x "$python" ]; then
    echo "== interpreters benchmark on CPython $version: not installed, skipped"
    continue
  fi
  csv="$PWD/target/interpreters-$version.csv"
  if PYO3_PYTHON="$python" CARGO_TARGET_DIR="target/python-$version" \
      cargo bench --bench interpreters -- --csv "$csv"; then
    tables+=("$version=$csv")
  else
    echo "== interpreters benchmark on CPython $version: FAILED"
    status=1
  fi
done
if [ "${1:-}" = "--plot" ] && [ ${#tables[@]} -gt 0 ]; then
  if ! PYTHONPATH=.deps/plot "$PYO3_PYTHON" -c 'import matplotlib' 2>/dev/null; then
    "$PYO3_PYTHON" -m pip install --quiet --target .deps/plot matplotlib || exit 1
  fi
  PYTHONPATH=.deps/plot "$PYO3_PYTHON" scripts/plot_interpreters.py docs/interpreters-throughput.png "${tables[@]}" || status=1
fi
exit $status
