#!/usr/bin/env bash
# The C# tests on the Windows CoreCLR, under wine: the same assemblies scripts/test-csharp.sh
# runs on Linux (bindings/csharp and tests/csharp built by Mono's mcs), run by
# `dotnet.exe exec --runtimeconfig coreclr.runtimeconfig.json tests.exe --each` (CoreCLR 3.1 for
# Windows, PyPI dotnetcore2's win_amd64 wheel: scripts/install-windows-csharp.sh) against the
# Windows pybridge DLL and an official embeddable CPython.
#
#   scripts/test-csharp-windows.sh VERSION [TEST_NAME...]     (VERSION: a `windows` line of
#                                                              scripts/python-versions, e.g. 3.13.2)
#
# The DLL is the core cross-built for that CPython's minor (PYO3_CROSS_PYTHON_VERSION, in
# target/windows/cargo-cp3XY), copied beside the tests as libpybridge.dll (the name
# DllImport("libpybridge") finds on Windows; see bindings/csharp/Native.cs). The Python is
# found the way a Windows user's would be with nothing named: python.exe on PATH (wine's
# WINEPATH: the embeddable CPython's folder).
# PYB_WINDOWS_CS_DLL=FILE: test this DLL instead (e.g. the package's loader), building nothing.
#
# One wine run for all tests: tests.exe --each starts every test in a child process of its own
# (a shutdown finalizes the interpreter, so engine tests cannot share a process), judges each
# as scripts/test-csharp.sh does (status, PASS line, deadline, exit lag), skips the
# [NotOnWindows] tests by name with their reason, and ends with "N passed, N skipped, N failed"
# then "tests: all checks passed", which scripts/wine-run.sh requires. Exit status: wine-run.sh's.
# Assumes scripts/install-windows.sh ran (scripts/test-windows.sh runs it first).
set -uo pipefail
cd "$(dirname "$0")/.." || exit
source scripts/lib.sh
export PATH="$HOME/.cargo/bin:$PATH"

version="${1:?usage: scripts/test-csharp-windows.sh VERSION [TEST_NAME...]}"
shift
abi="$(pyb_windows_python_abi "$version")"
python_dir="$(pyb_windows_python_dir "$version")"
dotnet_dir="$(ls -d "$PYB_WINDOWS_DEPS"/dotnetcore2-* 2>/dev/null | tail -n 1)"
if [ ! -f "$dotnet_dir/dotnet.exe" ] || [ ! -f "$python_dir/python$abi.dll" ]; then
  echo "test-csharp-windows: no Windows CoreCLR or CPython $version in $PYB_WINDOWS_DEPS: run scripts/install-windows.sh" >&2
  exit 1
fi

dll="${PYB_WINDOWS_CS_DLL:-}"
if [ -z "$dll" ]; then
  minor="${version%.*}"
  cargo_dir="$PYB_WINDOWS_TARGET/cargo-cp$abi"
  if ! PYO3_CROSS_PYTHON_VERSION="$minor" CARGO_TARGET_DIR="$cargo_dir" \
    cargo build --quiet --release --target x86_64-pc-windows-gnu; then
    echo "test-csharp-windows: the Windows core for CPython $minor did not build" >&2
    exit 1
  fi
  dll="$cargo_dir/x86_64-pc-windows-gnu/release/pybridge.dll"
fi

out="$PYB_WINDOWS_TARGET/csharp-tests-$version"
rm -rf "$out"
mkdir -p "$out"
if ! PYB_NATIVE_LIB="$dll" bash bindings/csharp/build-mcs.sh "$out" ||
  ! mcs -nologo -warnaserror -unsafe -debug -r:"$out/PyBridge.dll" -r:System.Core.dll -r:System.Numerics.dll \
    -r:Microsoft.CSharp.dll -out:"$out/tests.exe" tests/csharp/*.cs; then
  echo "test-csharp-windows: the C# build failed" >&2
  exit 1
fi
# The C baseline of the Benchmark test (DllImport("pybcsbench")). It imports libpybridge.dll,
# the copy the binding loads: linked to the file itself it would import the DLL's own name,
# pybridge.dll, which Windows would find as PyBridge.dll, the assembly. mingw's clock_gettime is
# winpthreads', linked in statically so that no mingw DLL is needed.
if ! (gendef - "$out/libpybridge.dll" >"$out/libpybridge.def" 2>/dev/null &&
  x86_64-w64-mingw32-dlltool --dllname libpybridge.dll --input-def "$out/libpybridge.def" \
    --output-lib "$out/libpybridge.dll.a" &&
  x86_64-w64-mingw32-gcc -std=c11 -O2 -shared -Wall -Wextra -Werror -Ibindings/c \
    tests/csharp/native_bench.c -o "$out/pybcsbench.dll" "$out/libpybridge.dll.a" \
    -static-libgcc -Wl,-Bstatic -lwinpthread -Wl,-Bdynamic); then
  echo "test-csharp-windows: the C benchmark helper did not build" >&2
  exit 1
fi

export PYB_ROOT="$(pyb_wine_path "$(pwd)")"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
# Per test 120 s, as on Linux; the whole run gets 10 minutes (about 1-2 s a test here).
bash scripts/wine-run.sh --timeout 600 --dll-dir "$python_dir" --expect "tests: all checks passed" \
  "$dotnet_dir/dotnet.exe" exec --runtimeconfig "$(pyb_wine_path "$out/coreclr.runtimeconfig.json")" \
  "$(pyb_wine_path "$out/tests.exe")" --each --runtimeconfig "$(pyb_wine_path "$out/coreclr.runtimeconfig.json")" \
  --timeout 120 "$@"
