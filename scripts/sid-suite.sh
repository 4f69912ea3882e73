#!/usr/bin/env bash
# Runs inside the sid chroot (scripts/test-sid.sh starts it there): the suite
# for one CPython of the chroot, e.g. `scripts/sid-suite.sh 3.14`:
#   - the whole Rust-driven suite (engine, objects, C and C++ host programs
#     built with GCC 16 and run under the sanitizers, both fuzzers over this
#     version's window of seeds (scripts/lib.sh `pyb_fuzz_window`), the NumPy
#     tests with a NumPy that has wheels for it);
#   - the C# tests on .NET 8 (assemblies the host built with mcs);
#   - the benchmarks against raw CPython in the same run (GIL round trip,
#     pyb_call, own-GIL pools); they report and never fail on figures.
# Each part prints its time. Ends with "== CPython X: N part(s) failed".
set -uo pipefail
cd "$(dirname "$0")/.." || exit
source scripts/lib.sh
[ "${PYB_IN_SID_CHROOT:-}" = 1 ] || { echo "error: run me through scripts/test-sid.sh" >&2; exit 2; }
version="${1:?usage: scripts/sid-suite.sh <a sid version of scripts/python-versions, e.g. 3.14>}"
export PYO3_PYTHON="/usr/bin/python$version"
export CARGO_TARGET_DIR="target/sid-$version"
[ -x "$PYO3_PYTHON" ] || { echo "error: no $PYO3_PYTHON in the chroot" >&2; exit 2; }
echo "== CPython $("$PYO3_PYTHON" -c 'import sys; print(sys.version.split()[0])'), $(gcc --version | head -1)"
failed=0
part() {
  local name="$1" started=$SECONDS
  shift
  echo "== $version: $name"
  if ! "$@"; then
    echo "== $version: $name FAILED"
    failed=$((failed + 1))
  fi
  echo "== $version: $name took $((SECONDS - started)) s"
}
# The compiler is the same for both versions: once, with the newest headers
# (pep788_host.c needs 3.15's): the last sid version of scripts/python-versions.
sid_versions="$(pyb_python_versions sid)"
if [ "$version" = "${PYB_SID_GCC_CHECK:-${sid_versions##* }}" ]; then
  part "every C and C++ file under $(gcc --version | head -1)" bash scripts/check-gcc.sh
fi
pyb_fuzz_window "$version"
part "Rust, C and C++ tests (fuzz seeds $PYB_FUZZ_FIRST_SEED..$((PYB_FUZZ_FIRST_SEED + PYB_FUZZ_SEEDS - 1)))" \
  cargo nextest run --profile ci -E 'not binary(package)'
if [ "${PYB_SKIP_CSHARP:-0}" != "1" ]; then
  # The C# tests built by the host's C# stage (no Mono here), on .NET 8, against
  # this CPython's library.
  csharp() {
    cargo build --release --quiet || return 1
    rm -rf "$CARGO_TARGET_DIR/csharp-tests" && cp -r target/csharp-tests "$CARGO_TARGET_DIR/csharp-tests" || return 1
    PYB_CS_PREBUILT="$CARGO_TARGET_DIR/csharp-tests" PYB_LIB_DIR="$CARGO_TARGET_DIR/release" \
      PYB_CS_RUNTIMES=net8 bash scripts/test-csharp.sh
  }
  part "C# tests on .NET 8" csharp
fi
if [ "${PYB_SKIP_BENCH:-0}" != "1" ]; then
  part "GIL round trip and pyb_call benchmark" cargo bench --bench gil_roundtrip
  part "interpreter pool benchmark" \
    cargo bench --bench interpreters -- --csv "$PWD/target/interpreters-sid-$version.csv"
fi
echo "== CPython $version: $failed part(s) failed"
[ "$failed" -eq 0 ]
