#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: lints, the header check, the
# Rust tests (each in its own process under cargo-nextest, because an engine
# shutdown finalizes that process's interpreter), and the C host programs
# (compiled with gcc -Wall -Wextra -Werror and run by tests/c_programs.rs).
# The benchmark runs first so its figures show in the log; it never fails on them.
# The release package is built first (scripts/package.sh): tests/package.rs
# unpacks it and uses nothing else, and the benchmark runs through it too.
# The engine tests also run against the image's other CPython versions, and the
# C# tests on Mono and CoreCLR; a short fuzz sweep runs under ThreadSanitizer.
cd "$(dirname "$0")/.."
source scripts/env.sh
ensure_nextest
echo "== building against $("$PYO3_PYTHON" -c 'import sys; print(sys.version.split()[0], sys.prefix)')"
ensure_apt_command cmake cmake
ensure_apt_command pkg-config pkg-config
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
# The release package (dist/): the package tests and the benchmark use it.
bash scripts/package.sh
if [ "${PYB_SKIP_BENCH:-0}" != "1" ] && [ -d benches ]; then
  cargo bench
  # Python on every core: the main interpreter against a pool of own-GIL
  # interpreters, on the CPythons that have them (3.12, 3.13).
  bash scripts/bench-interpreters.sh
fi
if [ "${PYB_SKIP_CSHARP:-0}" != "1" ]; then
  # The C# binding's tests on Mono and CoreCLR (installs both if missing).
  bash scripts/test-csharp.sh
  # The C# sample from the package's NuGet layout, the Python chosen by the option.
  bash scripts/test-package-csharp.sh
fi
if [ "${PYB_SKIP_TSAN:-0}" != "1" ]; then
  # A short fuzz sweep under ThreadSanitizer (about 30 s; see the script).
  bash scripts/fuzz-tsan.sh 8
fi
if [ "${PYB_SKIP_OTHER_PYTHONS:-0}" != "1" ]; then
  bash scripts/test-python-versions.sh
fi
# Last, so the log ends with the main run's summary.
cargo nextest run --profile ci "$@"
