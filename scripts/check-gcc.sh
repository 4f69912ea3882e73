#!/usr/bin/env bash
# Compiles every C and C++ file of the repository with the gcc and g++ on PATH
# (-Wall -Wextra -Werror), each the way the build, the tests, the benchmark
# and the scripts compile it (same -std, -O, -pedantic, sanitizers), so a new
# compiler's warnings show up here before they break a test: run it on the
# host (GCC 12) and inside the sid chroot (GCC 16):
#
#   scripts/check-gcc.sh
#   scripts/sid-chroot.sh run env PYO3_PYTHON=/usr/bin/python3.15 scripts/check-gcc.sh
#
# Each file is compiled to an object file (-c), which runs the optimizer (some
# warnings need it) but needs no libpybridge or libpython to link against.
# Files that include Python.h use the headers of PYO3_PYTHON (else python3,
# else the newest python3.X on PATH). Ends with "N passed, N failed"; exits
# non-zero if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit

python="${PYO3_PYTHON:-}"
if [ -z "$python" ]; then
  python="$(command -v python3 || true)"
fi
if [ -z "$python" ]; then
  python="$(compgen -c python3. | grep -E '^python3\.[0-9]+$' | sort -V | tail -1 || true)"
fi
if [ -z "$python" ] || ! include="$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"; then
  echo "error: no Python found (set PYO3_PYTHON): the build's C files need Python.h" >&2
  echo "0 passed, 1 failed"
  exit 1
fi
if [ ! -f "$include/Python.h" ]; then
  echo "error: $python has no C headers at $include (install its -dev package)" >&2
  echo "0 passed, 1 failed"
  exit 1
fi
echo "gcc: $(gcc -dumpfullversion), g++: $(g++ -dumpfullversion), Python.h: $include"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

passed=0
failed=0
failures=()
# check <label> <compiler> <flags and source...>: compiles to an object file.
check() {
  local label="$1" compiler="$2" output
  shift 2
  if output="$("$compiler" "$@" -c -o "$work/out.o" 2>&1)"; then
    passed=$((passed + 1))
    echo "ok   $label"
  else
    failed=$((failed + 1))
    failures+=("$label")
    echo "FAIL $label: $compiler $*"
    echo "$output"
  fi
}

# The raw string constant `name` of a Rust test file (a snippet the test
# compiles), written to $work/<file>.
snippet() { # rust_file const_name out_file
  sed -n "/^const $2: &str = r#\"/,/^\"#;/p" "$1" | sed -e "1s/^const $2: &str = r#\"//" -e '$d' >"$work/$3"
  if [ ! -s "$work/$3" ]; then
    echo "error: no snippet $2 in $1" >&2
  fi
}

strict=(-Wall -Wextra -Werror)
pedantic=("${strict[@]}" -pedantic)
# support/src/host_programs.rs (build_c_program, build_cpp_program).
c_host=(-std=c11 "${pedantic[@]}" -O1 -g -pthread -Ibindings/c -Itests/c "-I$include")
cpp_host=(-std=c++17 "${pedantic[@]}" -O1 -g -pthread -Ibindings/cpp -Ibindings/c)
# tests/cpp_programs.rs (SANITIZE).
# shellcheck disable=SC2054 # the commas belong to the flag
sanitize=(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)

# C host programs: tests/c_programs.rs, tests/fuzz.rs, tests/fuzz_api.rs,
# tests/package.rs (package_host, a subset of these flags), scripts/fuzz-soak.sh.
# pep788_host.c uses PEP 788's API (CPython 3.15+; tests/c_programs.rs builds it only there).
has_pep788="$("$python" -c 'import sys; print(int(sys.version_info >= (3, 15)))')"
for source in tests/c/*.c; do
  if [ "$source" = tests/c/pep788_host.c ] && [ "$has_pep788" != 1 ]; then
    echo "skip $source (needs the headers of CPython 3.15+)"
    continue
  fi
  check "$source (C11, -O1)" gcc "${c_host[@]}" "$source"
done
# scripts/demo.sh (the sample): -O2, no -pedantic.
check "tests/c/demo.c (scripts/demo.sh, -O2)" gcc -std=c11 "${strict[@]}" -O2 -Ibindings/c "-I$include" tests/c/demo.c
# scripts/fuzz-tsan.sh.
for program in fuzz_host fuzz_api; do
  check "tests/c/$program.c (ThreadSanitizer)" gcc -std=c11 -O1 -g -fsanitize=thread "${pedantic[@]}" -pthread \
    -Ibindings/c "tests/c/$program.c"
done
# benches/gil_roundtrip.rs.
check "benches/c/gil_bench.c (C11, -O2)" gcc "${c_host[@]/-O1/-O2}" benches/c/gil_bench.c
# scripts/test-csharp.sh: the C# benchmark's native baseline (compiler's default -std).
check "tests/csharp/native_bench.c (-O2 -fPIC)" gcc -O2 -fPIC "${strict[@]}" -Ibindings/c tests/csharp/native_bench.c

# C++ host programs: tests/cpp_programs.rs, plain and under the sanitizers.
for source in tests/cpp/*.cpp; do
  check "$source (C++17, -O1)" g++ "${cpp_host[@]}" "$source"
  check "$source (C++17, ASan+UBSan)" g++ "${cpp_host[@]}" "${sanitize[@]}" "$source"
done
# tests/package.rs: the CMake consumer (CMake's default C++17 is gnu++17, no -O).
check "tests/cmake_consumer/main.cpp (gnu++17)" g++ -std=gnu++17 "${strict[@]}" -Ibindings/cpp -Ibindings/c \
  tests/cmake_consumer/main.cpp

# The headers on their own: the snippets tests/c_programs.rs and
# tests/cpp_programs.rs compile, plus the compilers' default standards (what a
# user who passes no -std gets: C17 on GCC 12, C23 on GCC 15+).
snippet tests/c_programs.rs HEADER_ALONE header_alone.c
cp "$work/header_alone.c" "$work/header_alone.cpp"
check "bindings/c/pybridge.h alone (C11)" gcc -std=c11 "${pedantic[@]}" -Ibindings/c "$work/header_alone.c"
check "bindings/c/pybridge.h alone (default C)" gcc "${pedantic[@]}" -Ibindings/c "$work/header_alone.c"
check "bindings/c/pybridge.h alone (C++17)" g++ -std=c++17 "${pedantic[@]}" -Ibindings/c "$work/header_alone.cpp"
snippet tests/cpp_programs.rs HPP_ALONE hpp_alone.cpp
check "bindings/cpp/pybridge.hpp alone (C++17)" g++ -std=c++17 "${pedantic[@]}" -Ibindings/cpp -Ibindings/c \
  "$work/hpp_alone.cpp"
check "bindings/cpp/pybridge.hpp alone (default C++)" g++ "${pedantic[@]}" -Ibindings/cpp -Ibindings/c \
  "$work/hpp_alone.cpp"

# The library's own C and C++ files, as build.rs compiles them (-O2 -fPIC; the
# cc crate passes no -std for C, so the compiler's default).
check "src/python/host_call.cpp (build.rs)" g++ -std=c++17 -O2 -fPIC "${strict[@]}" src/python/host_call.cpp
check "src/sys/current_slot.c (build.rs)" gcc -O2 -fPIC "${strict[@]}" src/sys/current_slot.c

if [ "$failed" -gt 0 ]; then
  echo "failed: ${failures[*]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
