#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: lints, the header check, the
# Rust tests (each in its own process under cargo-nextest, because an engine
# shutdown finalizes that process's interpreter), and the C host programs
# (compiled with gcc -Wall -Wextra -Werror and run by tests/c_programs.rs).
# The benchmark runs first so its figures show in the log; it never fails on them.
# The release package is built first (scripts/package.sh): tests/package.rs
# unpacks it and uses nothing else, and the benchmark runs through it too.
# The engine tests also run against the image's other CPython versions and, in
# a Debian sid chroot, CPython 3.14 and 3.15 (scripts/test-sid.sh); the C# tests
# on Mono, CoreCLR 3.1 and .NET 8; the Windows checks under wine
# (scripts/test-windows.sh); a short fuzz sweep runs under ThreadSanitizer.
cd "$(dirname "$0")/.."
source scripts/env.sh
ensure_nextest
echo "== building against $("$PYO3_PYTHON" -c 'import sys; print(sys.version.split()[0], sys.prefix)')"
ensure_apt_command cmake cmake
ensure_apt_command pkg-config pkg-config
# Each stage prints how long it took and the total so far (a CI run must stay
# well under an hour on a 2-core machine).
stage() {
  local name="$1" started=$SECONDS
  shift
  echo "== stage: $name"
  "$@"
  echo "== stage: $name took $((SECONDS - started)) s (total $SECONDS s)"
}
stage "format" cargo fmt --all --check
stage "clippy" cargo clippy --workspace --all-targets -- -D warnings
# Every C and C++ file with -Wall -Wextra -Werror (GCC 12 here, GCC 16 in the sid stage).
stage "C and C++ files under gcc $(gcc -dumpversion)" bash scripts/check-gcc.sh
# The release package (dist/): the package tests and the benchmark use it.
stage "release package" bash scripts/package.sh
if [ "${PYB_SKIP_BENCH:-0}" != "1" ] && [ -d benches ]; then
  stage "benchmark" cargo bench
  # Python on every core: the main interpreter against a pool of own-GIL
  # interpreters, on the CPythons that have them (3.12, 3.13).
  stage "interpreter benchmark" bash scripts/bench-interpreters.sh
fi
if [ "${PYB_SKIP_CSHARP:-0}" != "1" ]; then
  # The C# binding's tests on Mono, CoreCLR 3.1 and .NET 8 (installs them if missing).
  stage "C# tests" bash scripts/test-csharp.sh
  # The C# sample from the package's NuGet layout, the Python chosen by the option.
  stage "C# sample from the package" bash scripts/test-package-csharp.sh
fi
if [ "${PYB_SKIP_WINDOWS:-0}" != "1" ]; then
  # Windows under wine: the headers for Windows compilers, Rust's std and raw
  # CPython from Win32 threads on the embeddable CPythons (installs mingw, wine
  # and those CPythons if missing; about 10 s once installed).
  stage "Windows under wine" bash scripts/test-windows.sh
fi
if [ "${PYB_SKIP_TSAN:-0}" != "1" ]; then
  # A short fuzz sweep under ThreadSanitizer (about 30 s; see the script).
  stage "fuzz sweep under ThreadSanitizer" bash scripts/fuzz-tsan.sh 8
fi
if [ "${PYB_SKIP_OTHER_PYTHONS:-0}" != "1" ]; then
  stage "CPython 3.10, 3.12, 3.13" bash scripts/test-python-versions.sh
fi
if [ "${PYB_SKIP_SID:-0}" != "1" ]; then
  # CPython 3.14 and 3.15 and GCC 16, in a Debian sid chroot built on first use.
  stage "CPython 3.14 and 3.15 (sid chroot)" bash scripts/test-sid.sh
fi
# Last, so the log ends with the main run's summary (its time is nextest's own).
echo "== stage: Rust, C and C++ tests on CPython 3.11 (starting at $SECONDS s)"
cargo nextest run --profile ci "$@"
