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
#   - tests/windows/engine_windows_host.c, built with mingw against the core
#     cross-built for each CPython: coroutines from 4 host threads, with
#     cancellation and a shutdown with tasks pending; 64 host threads that
#     take the GIL (16 in a sub-interpreter too) and exit while another
#     imports every .pyd and another loads a DLL under the GIL; every thread
#     state freed; under deadlines. It hangs when an exit waits for the GIL.
#
#   - the Windows package (scripts/package.sh --target windows, rebuilt when
#     older than its sources): its files, pybridge.dll's exports against the
#     header's functions, no mingw runtime DLL imported.
#   - tests/c/engine_host.c, objects_host.c and package_host.c built with
#     mingw against the unpacked package alone, and tests/cmake_consumer
#     cross-built through find_package(pybridge), run on each CPython.
#
#   - the C++ hosts of tests/cpp built with mingw's g++ (posix threads)
#     against the unpacked package alone, run on each CPython (docs/testing.md
#     lists the ones that stay Linux-only, and why).
#   - the C# tests (tests/csharp) on the Windows CoreCLR against the core DLL
#     cross-built for each CPython (scripts/test-csharp-windows.sh).
#
# Still to come (issue 23): the other C hosts of tests/c; the C# tests
# against the package's loader rather than the core DLL.
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

# --- pybridge.dll itself: coroutines and thread exits, on each embeddable CPython ---
# The core cross-built for x86_64-pc-windows-gnu (linked to python3XY.dll,
# which pyo3 makes an import library for), and tests/windows/
# engine_windows_host.c built with mingw against its import library: the event
# loop on Windows (a selector loop woken through a socket pair), host threads
# exiting while others import every .pyd and load a DLL under the GIL (the
# loader lock), and a shutdown with tasks pending, under deadlines.
for version in $(pyb_python_versions windows); do
  python_dir="$(pyb_windows_python_dir "$version")"
  abi="$(pyb_windows_python_abi "$version")"
  minor="${abi#3}"
  core_target="$PWD/target/windows/core-$version"
  core="$core_target/x86_64-pc-windows-gnu/release"
  out="$PYB_WINDOWS_TARGET/$version"
  mkdir -p "$out"
  if step "pybridge.dll cross-built for CPython 3.$minor" \
    env PYO3_CROSS_PYTHON_VERSION="3.$minor" CARGO_TARGET_DIR="$core_target" \
    cargo build --quiet --release --target x86_64-pc-windows-gnu -p pybridge; then
    if step "engine_windows_host.c built with mingw against pybridge.dll (CPython $version)" \
      x86_64-w64-mingw32-gcc -std=c11 "${strict[@]}" -O1 -g -Ibindings/c -Itests/c \
      -o "$out/engine_windows_host.exe" tests/windows/engine_windows_host.c -L"$core" -lpybridge; then
      # 3-6 s here with a started server; 120 s leaves room for a slow machine.
      step "engine_windows_host on CPython $version under wine" \
        bash scripts/wine-run.sh --timeout 120 --dll-dir "$python_dir" --dll-dir "$core" \
        "$out/engine_windows_host.exe" "$(pyb_wine_path "$python_dir")" "$version"
    fi
  fi
done

# --- the Windows package (scripts/package.sh --target windows) --------------------
# Built when missing or older than what goes into it (a rebuild takes 1-4
# minutes: each core rebuilds pyo3 for its CPython version).
package_name="pybridge-$(pyb_package_version)-windows-x86_64"
package_zip="dist/$package_name.zip"
if [ ! -f "$package_zip" ] ||
  [ -n "$(find src abi loader bindings packaging Cargo.toml Cargo.lock build.rs scripts/package-windows.sh \
    scripts/lib.sh -newer "$package_zip" -type f -print -quit)" ]; then
  step "scripts/package.sh --target windows" bash scripts/package.sh --target windows
fi
package="$PYB_WINDOWS_TARGET/package"
rm -rf "$package"
mkdir -p "$package"
unzip -q "$package_zip" -d "$package" 2>/dev/null
package="$package/$package_name"

# Runs a wine command (reg.exe, say) in the suite's prefix, its output discarded.
wine_quietly() {
  WINEPREFIX="$PYB_WINEPREFIX" WINEDEBUG=-all timeout 60 "$PYB_WINE" "$@" </dev/null >/dev/null 2>&1
}

# The zip holds exactly this: the headers, the loader and a core per
# supported CPython minor (each with its debug info), both import libraries, the
# CMake and pkg-config files, and the NuGet layout.
check_package_contents() {
  local expected actual tag
  expected="$( {
    echo include/pybridge.h
    echo include/pybridge.hpp
    for part in bindings/cpp/pybridge/*.hpp; do echo "include/pybridge/$(basename "$part")"; done
    for dll in pybridge.dll $(for minor in $(pyb_windows_core_minors); do
      echo "pybridge-core-cp${minor/./}.dll"; done); do
      echo "bin/$dll"
      echo "bin/debug/$dll.debug"
      echo "csharp/runtimes/win-x64/native/${dll/#pybridge.dll/libpybridge.dll}"
    done
    echo lib/libpybridge.dll.a
    echo lib/pybridge.lib
    echo lib/pkgconfig/pybridge.pc
    echo lib/cmake/pybridge/pybridgeConfig.cmake
    echo lib/cmake/pybridge/pybridgeConfigVersion.cmake
    echo csharp/PyBridge.nuspec
    echo csharp/lib/netstandard2.0/PyBridge.dll
  } | sort)"
  actual="$(cd "$package" && find . -type f | sed 's|^\./||' | sort)"
  if [ "$expected" != "$actual" ]; then
    echo "the zip's files differ from the expected ones (< expected, > in the zip):" >&2
    diff <(echo "$expected") <(echo "$actual") >&2
    return 1
  fi
}
# pybridge.dll exports the header's functions, no more and no fewer (each
# function of pybridge.h is declared on a line of its own, starting with its
# return type).
check_exports() {
  local header dll
  header="$(grep -E '^[a-z].*\bpyb_[a-z0-9_]+\(' "$package/include/pybridge.h" | grep -v '^typedef' |
    grep -oE '\bpyb_[a-z0-9_]+\(' | tr -d '(' | sort)"
  dll="$(x86_64-w64-mingw32-objdump -p "$package/bin/pybridge.dll" |
    awk '/^\[Ordinal\/Name Pointer\] Table/ { table = 1; next } table && /^[ \t]*\[/ { print $NF; next } table { exit }' | sort)"
  if [ -z "$header" ] || [ "$header" != "$dll" ]; then
    echo "pybridge.dll's exports differ from pybridge.h's functions (< header, > DLL):" >&2
    diff <(echo "$header") <(echo "$dll") >&2
    return 1
  fi
  echo "   $(echo "$dll" | wc -l) exports = the header's functions"
}
# No shipped DLL and no host built below leans on a mingw runtime DLL.
check_no_mingw_runtime() {
  local file found=0
  for file in "$@"; do
    if x86_64-w64-mingw32-objdump -p "$file" | grep -iE 'DLL Name: (libgcc|libstdc|libwinpthread)'; then
      echo "$file imports a mingw runtime DLL" >&2
      found=1
    fi
  done
  [ "$found" = 0 ]
}
step "the Windows zip's contents" check_package_contents
step "pybridge.dll's exports equal pybridge.h's functions" check_exports
step "the package's DLLs import no mingw runtime DLL" check_no_mingw_runtime "$package"/bin/*.dll

# --- the C hosts, built with mingw against the package alone ------------------------
# include/, lib/libpybridge.dll.a and, at run time, bin/: nothing from target/.
# C99 printf (%zu), winpthreads for <pthread.h>, everything static (the
# programs import no mingw runtime DLL). engine_host also calls CPython's C
# API inside its GIL scopes: the embeddable CPython has no Python.h, so it
# declares those functions itself (tests/c/python_declarations.h) and links
# the CPython it runs on.
windows_host_cc=(x86_64-w64-mingw32-gcc-posix -std=c11 "${strict[@]}" -O1 -g -pthread -static
  -D__USE_MINGW_ANSI_STDIO=1 -I"$package/include" -Itests/c)
hosts_dir="$PYB_WINDOWS_TARGET/hosts"
mkdir -p "$hosts_dir"
for host in objects_host package_host; do
  step "$host.c built with mingw against the package" \
    "${windows_host_cc[@]}" -o "$hosts_dir/$host.exe" "tests/c/$host.c" -L"$package/lib" -lpybridge
done
step "the C hosts import no mingw runtime DLL" check_no_mingw_runtime "$hosts_dir"/*.exe

# --- the CMake consumer (tests/cmake_consumer), cross-built for Windows -------------
cmake_build="$PYB_WINDOWS_TARGET/cmake_consumer"
rm -rf "$cmake_build"
step "tests/cmake_consumer cross-built with mingw through find_package(pybridge)" \
  cmake -S tests/cmake_consumer -B "$cmake_build" -DCMAKE_SYSTEM_NAME=Windows \
  -DCMAKE_CXX_COMPILER="$PYB_MINGW_CXX" -DCMAKE_PREFIX_PATH="$package" \
  -DCMAKE_FIND_ROOT_PATH_MODE_PACKAGE=BOTH -DCMAKE_EXE_LINKER_FLAGS="-static" \
  -DCMAKE_BUILD_TYPE=Release --log-level=ERROR -Wno-dev
step "cmake --build (the consumer)" cmake --build "$cmake_build" -- -s

for version in $(pyb_python_versions windows); do
  python_dir="$(pyb_windows_python_dir "$version")"
  abi="$(pyb_windows_python_abi "$version")"
  windows_python="$(pyb_wine_path "$python_dir")"
  out="$PYB_WINDOWS_TARGET/$version"
  mkdir -p "$out"
  if step "engine_host.c built with mingw against the package and python$abi.dll" \
    "${windows_host_cc[@]}" -DHOST_NO_PYTHON_H -o "$out/engine_host.exe" tests/c/engine_host.c \
    -L"$package/lib" -lpybridge "$python_dir/libpython$abi.dll.a"; then
    step "engine_host on CPython $version under wine" env PYBRIDGE_PYTHON="$windows_python" \
      bash scripts/wine-run.sh --timeout 120 --dll-dir "$package/bin" --dll-dir "$python_dir" \
      "$out/engine_host.exe"
  fi
  step "objects_host on CPython $version under wine" env PYBRIDGE_PYTHON="$windows_python" \
    bash scripts/wine-run.sh --timeout 120 --dll-dir "$package/bin" "$hosts_dir/objects_host.exe"
  # The Python named by pyb_config.python (the folder) over a PYBRIDGE_PYTHON
  # that names nothing usable, then by PYBRIDGE_PYTHON (python.exe) alone.
  step "package_host on CPython $version under wine, by pyb_config.python" \
    env PYBRIDGE_PYTHON='Z:\nowhere\python.exe' \
    bash scripts/wine-run.sh --timeout 120 --dll-dir "$package/bin" \
    --expect-start "package_host: CPython $version via config: 4 host threads x 200 rounds," \
    "$hosts_dir/package_host.exe" run config "$windows_python" "$version"
  step "package_host on CPython $version under wine, by PYBRIDGE_PYTHON" \
    env PYBRIDGE_PYTHON="$windows_python\\python.exe" \
    bash scripts/wine-run.sh --timeout 120 --dll-dir "$package/bin" \
    --expect-start "package_host: CPython $version via env: 4 host threads x 200 rounds," \
    "$hosts_dir/package_host.exe" run env "$windows_python\\python.exe" "$version"
  # Nothing named: the installation PEP 514's registry keys name, registered
  # for this step alone (so newest-first cannot pick the other version) and
  # removed after it. Output to /dev/null: a wine service started here must
  # not hold a captured pipe open.
  registry_key="HKCU\\Software\\Python\\PythonCore\\${version%.*}\\InstallPath"
  if step "CPython $version registered in the prefix's registry" \
    wine_quietly reg add "$registry_key" /ve /d "$windows_python" /f; then
    step "package_host on CPython $version under wine, nothing named: found in the registry" \
      env -u PYBRIDGE_PYTHON bash scripts/wine-run.sh --timeout 120 --dll-dir "$package/bin" \
      --expect-start "package_host: CPython $version via env: 4 host threads x 200 rounds," \
      "$hosts_dir/package_host.exe" run env "$windows_python" "$version"
    wine_quietly reg delete 'HKCU\Software\Python' /f
  fi
  step "the CMake consumer on CPython $version under wine" \
    bash scripts/wine-run.sh --timeout 60 --dll-dir "$package/bin" \
    --expect "consumer: $version says 42" "$cmake_build/consumer.exe" "$windows_python"
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

# --- the C++ hosts of tests/cpp, built with mingw's g++ against the package alone ---
# As tests/cpp_programs.rs builds them on Linux (C++17, strict), with the
# package's include/ and lib/ only, posix threads (std::thread, std::mutex),
# C99 printf (%zu) and everything static. Each runs as on Linux: no
# arguments, its Python from PYBRIDGE_PYTHON, judged by its last line. The
# hosts that stay Linux-only are listed in docs/testing.md ("Windows, under
# wine").
cpp_hosts=(interpreters shutdown_race coroutines buffers host_api calls_and_containers thread_pool
  native_worker raw_host_exceptions readme_example c_extension)
windows_host_cxx=("$PYB_MINGW_CXX" -std=c++17 "${strict[@]}" -O1 -g -pthread -static
  -D__USE_MINGW_ANSI_STDIO=1 -I"$package/include")
cpp_hosts_dir="$PYB_WINDOWS_TARGET/cpp_hosts"
rm -rf "$cpp_hosts_dir"
mkdir -p "$cpp_hosts_dir"
for host in "${cpp_hosts[@]}"; do
  step "$host.cpp built with mingw's g++ against the package" \
    "${windows_host_cxx[@]}" -o "$cpp_hosts_dir/$host.exe" "tests/cpp/$host.cpp" -L"$package/lib" -lpybridge
done
step "the C++ hosts import no mingw runtime DLL" check_no_mingw_runtime "$cpp_hosts_dir"/*.exe

for version in $(pyb_python_versions windows); do
  windows_python="$(pyb_wine_path "$(pyb_windows_python_dir "$version")")"
  for host in "${cpp_hosts[@]}"; do
    [ -f "$cpp_hosts_dir/$host.exe" ] || continue
    expect=()
    # The README's example ends with its own line (as in tests/cpp_programs.rs).
    [ "$host" = readme_example ] && expect=(--expect "readme_example: done")
    step "$host (C++) on CPython $version under wine" env PYBRIDGE_PYTHON="$windows_python" \
      bash scripts/wine-run.sh --timeout 120 --dll-dir "$package/bin" "${expect[@]}" "$cpp_hosts_dir/$host.exe"
  done
done

# End the prefix's wine server and its services (they would linger 30 s).
WINEPREFIX="$PYB_WINEPREFIX" wineserver -k </dev/null >/dev/null 2>&1

if [ "$failed" -gt 0 ]; then
  echo "failed: ${failures[*]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
