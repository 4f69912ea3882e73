#!/usr/bin/env bash
# A short sweep of the seeded fuzzer (tests/c/fuzz_host.c) under
# ThreadSanitizer, optionally with the API fuzzer too. Ends with
# "N passed, N failed".
#
# What is instrumented: pybridge itself (nightly rustc -Zsanitizer=thread) and
# the C fuzzer (gcc -fsanitize=thread), linked with rustc's TSan runtime
# (gcc 12's runtime lacks symbols rustc's instrumentation calls). What is not:
# Rust's std (rebuilding it needs -Zbuild-std and the rust-src component, which
# cannot be downloaded here; --unsafe-allow-abi-mismatch lets the crate link
# against the plain one) and CPython (the pyenv builds). Races inside CPython
# are therefore invisible, and std's Arc produces one known false positive,
# suppressed and explained in tests/tsan.supp.
#
# Usage: scripts/fuzz-tsan.sh [--api] [seeds (8)]
# --api also runs the API fuzzer (tests/c/fuzz_api.c, 4 threads x 60 ops, no
# fork(): a fork child of a TSan process can hang in the runtime's own locks)
# over the same seeds; about a minute more for 8 seeds.
cd "$(dirname "$0")/.."
source scripts/env.sh
programs="fuzz_host"
if [ "${1:-}" = "--api" ]; then
  programs="fuzz_host fuzz_api"
  shift
fi
seeds="${1:-8}"
if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "error: the nightly toolchain (for -Zsanitizer=thread) is not installed" >&2
  exit 1
fi
target="target/tsan"
triple="x86_64-unknown-linux-gnu"
RUSTFLAGS="-Zsanitizer=thread -Cunsafe-allow-abi-mismatch=sanitizer" CARGO_TARGET_DIR="$target" \
  cargo +nightly build --quiet --target "$triple"
libdir="$PWD/$target/$triple/debug"
runtime="$(rustc +nightly --print sysroot)/lib/rustlib/$triple/lib/librustc-nightly_rt.tsan.a"
pylib="$(pyb_python_libdir "$PYO3_PYTHON")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for program in $programs; do
  gcc -std=c11 -O1 -g -fsanitize=thread -Wall -Wextra -Werror -pedantic -pthread -Ibindings/c \
    -c "tests/c/$program.c" -o "$work/$program.o"
  g++ -o "$work/$program" "$work/$program.o" -Wl,--whole-archive "$runtime" -Wl,--no-whole-archive \
    -L"$libdir" -lpybridge -Wl,-rpath,"$libdir" -Wl,-rpath,"$pylib" -pthread -ldl -lm -rdynamic
done
export TSAN_OPTIONS="suppressions=$PWD/tests/tsan.supp halt_on_error=0 exitcode=66 print_suppressions=0"
passed=0
failed=0
for program in $programs; do
  if [ "$program" = fuzz_api ]; then
    size="4 60"
    export PYB_FUZZ_SKIP="fork${PYB_FUZZ_SKIP:+,$PYB_FUZZ_SKIP}"
  else
    size="4 300"
  fi
  echo "== $program under ThreadSanitizer: seeds 1..$seeds, interrupt off and on (${size% *} threads x ${size#* } ops)"
  for seed in $(seq 1 "$seeds"); do
    for interrupt in 0 1; do
      log="$work/$program-$seed-$interrupt.log"
      # shellcheck disable=SC2086
      if timeout 300 "$work/$program" "$seed" "$interrupt" $size >"$log" 2>&1 \
          && grep -q "$program: ok" "$log"; then
        passed=$((passed + 1))
      else
        failed=$((failed + 1))
        echo "FAILED: seed $seed interrupt $interrupt (replay: ${PYB_FUZZ_SKIP:+PYB_FUZZ_SKIP=$PYB_FUZZ_SKIP }$program $seed $interrupt $size under TSan)"
        grep -m1 -A25 "WARNING: ThreadSanitizer" "$log" || grep -m1 -A12 FAIL "$log" || tail -n 5 "$log"
      fi
    done
  done
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
