#!/usr/bin/env bash
# The Windows run, under wine: everything the suite checks for Windows, on the
# official embeddable CPythons that scripts/python-versions lists as `windows`.
# Installs what it needs first (scripts/install-windows.sh), runs each program
# through scripts/wine-run.sh (pipes, a deadline, judged by its printed summary),
# prints each step's time and ends with "N passed, N failed"; exits non-zero
# if anything failed.
#
# Today:
#   - bindings/c/pybridge.h compiles with clang in MSVC mode, as C11 and as
#     C++17; bindings/cpp/pybridge.hpp compiles for the Windows ABI with clang
#     (mingw's libstdc++, -fms-extensions) and with mingw's g++ (posix
#     threads). MSVC's own C++ standard library is not on this machine, so
#     pybridge.hpp is not compiled against it (docs/testing.md, "Windows").
#   - tests/windows/rust_std.rs, built with rustc for x86_64-pc-windows-gnu:
#     Rust's standard library loads in the prefix (its stand-in
#     bcryptprimitives.dll) and its threads work.
#   - tests/windows/raw_python_threads.c, built with mingw against each
#     python3XY.dll: 4 Win32 threads x 1,000 PyGILState_Ensure/run/release
#     cycles, an exact total. No pybridge in it: it proves the environment.
#   - the C# tests (tests/csharp) on the Windows CoreCLR against the core DLL
#     cross-built for each CPython (scripts/test-csharp-windows.sh).
#
# Still to come (issue 23), here: pybridge.dll cross-built for
# x86_64-pc-windows-gnu and packaged (scripts/package.sh --target windows);
# the C and C++ hosts of tests/c and tests/cpp built with mingw against that
# package alone and run on each CPython here; its exports compared with the
# header's; the CMake consumer cross-built; the C# tests on the Windows CoreCLR
# (PyPI dotnetcore2's win_amd64 wheel) P/Invoking the DLL: done for the core DLL
# (scripts/test-csharp-windows.sh, below); the package's loader when it lands.
set -uo pipefail
cd "$(dirname "$0")/.." || exit
source scripts/lib.sh
export PATH="$HOME/.cargo/bin:$PATH"

if ! bash scripts/install-windows.sh; then
  echo "error: scripts/install-windows.sh failed" >&2
  echo "0 passed, 1 failed"
  exit 1
fi

passed=0
failed=0
failures=()
# step <label> <command...>: runs one check, prints its time and counts it.
step() {
  local label="$1" started
  shift
  started=$(date +%s%N)
  if "$@"; then
    passed=$((passed + 1))
    echo "ok   $label ($((($(date +%s%N) - started) / 1000000)) ms)"
  else
    failed=$((failed + 1))
    failures+=("$label")
    echo "FAIL $label ($((($(date +%s%N) - started) / 1000000)) ms)"
  fi
}

# --- the headers for Windows compilers ------------------------------------------
strict=(-Wall -Wextra -Werror -pedantic)
# A real MSVC mode (_MSC_VER defined, __GNUC__ not, LLP64): the C header needs
# only <stdbool.h>, <stddef.h> and <stdint.h>, which clang brings itself.
msvc=(clang --target=x86_64-pc-windows-msvc -fsyntax-only "${strict[@]}")
step "pybridge.h, clang in MSVC mode, C11" "${msvc[@]}" -x c -std=c11 bindings/c/pybridge.h
step "pybridge.h, clang in MSVC mode, C++17" "${msvc[@]}" -x c++ -std=c++17 bindings/c/pybridge.h
# pybridge.hpp needs a C++ standard library. MSVC's is not here, and mingw's
# C headers do not parse in MSVC mode, so it is checked for the Windows ABI
# (LLP64, Win32 threads underneath) with mingw's libstdc++ instead.
libstdcxx="$(dirname "$(x86_64-w64-mingw32-g++-posix -print-libgcc-file-name)")/include/c++"
step "pybridge.hpp, clang for x86_64-w64-windows-gnu with -fms-extensions, C++17" \
  clang --target=x86_64-w64-windows-gnu -fsyntax-only "${strict[@]}" -fms-extensions -x c++ -std=c++17 \
  -nostdinc++ -isystem "$libstdcxx" -isystem "$libstdcxx/x86_64-w64-mingw32" -Ibindings/c \
  bindings/cpp/pybridge.hpp
step "pybridge.hpp, $PYB_MINGW_CXX, C++17" \
  "$PYB_MINGW_CXX" -fsyntax-only "${strict[@]}" -x c++ -std=c++17 -Ibindings/c bindings/cpp/pybridge.hpp

# --- Rust's standard library under wine -------------------------------------------
# What every pybridge DLL needs from the prefix: std loads (the stand-in
# bcryptprimitives.dll), its threads and random hash keys work.
mkdir -p "$PYB_WINDOWS_TARGET"
if step "rust_std.rs built for x86_64-pc-windows-gnu" \
  rustc --edition 2021 --target x86_64-pc-windows-gnu -D warnings -O \
  -o "$PYB_WINDOWS_TARGET/rust_std.exe" tests/windows/rust_std.rs; then
  step "rust_std under wine" bash scripts/wine-run.sh --timeout 30 "$PYB_WINDOWS_TARGET/rust_std.exe"
fi

# --- raw CPython from Win32 threads, on each embeddable CPython -------------------
raw_cycles=1000
for version in $(pyb_python_versions windows); do
  python_dir="$(pyb_windows_python_dir "$version")"
  abi="$(pyb_windows_python_abi "$version")"
  out="$PYB_WINDOWS_TARGET/$version"
  mkdir -p "$out"
  # Built the way the C hosts are (tests/c_programs.rs): strict, C11.
  if step "raw_python_threads.c built with mingw against python$abi.dll" \
    x86_64-w64-mingw32-gcc -std=c11 "${strict[@]}" -O1 -g -o "$out/raw_python_threads.exe" \
    tests/windows/raw_python_threads.c -L"$python_dir" -l"python$abi"; then
    # 4 x 1,000 cycles take 0.2-0.7 s here, a first start of wine's services
    # 2-8 s more; 30 s leaves a machine 3 times slower room, no more.
    step "raw_python_threads on CPython $version under wine" \
      bash scripts/wine-run.sh --timeout 30 --dll-dir "$python_dir" \
      "$out/raw_python_threads.exe" "$raw_cycles" "$version"
  fi
done

# --- the C# tests on the Windows CoreCLR, on each embeddable CPython ---------------
# scripts/test-csharp-windows.sh: the mcs-built tests of tests/csharp run by dotnet.exe
# (PyPI dotnetcore2's win_amd64 wheel) against the core DLL cross-built for that CPython,
# every test in its own process from one wine start; the [NotOnWindows] ones skip by name
# with their reason. About 75 s a CPython once built (a first core build: 3-4 min).
for version in $(pyb_python_versions windows); do
  step "C# tests on the Windows CoreCLR, CPython $version under wine" \
    bash scripts/test-csharp-windows.sh "$version"
done

# End the prefix's wine server and its services (they would linger 30 s).
WINEPREFIX="$PYB_WINEPREFIX" wineserver -k </dev/null >/dev/null 2>&1

if [ "$failed" -gt 0 ]; then
  echo "failed: ${failures[*]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
