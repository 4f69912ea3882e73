#!/usr/bin/env bash
# Runs a seeded fuzzer over many seeds, each with and without
# PYB_SHUTDOWN_INTERRUPT, two processes at a time, and ends with
# "N passed, N failed". Failing seeds are listed with the command that replays
# them. Usage: scripts/fuzz-soak.sh [--api] [seeds (2000)] [first seed (1)]
# Without --api: the engine core's fuzzer, tests/c/fuzz_host.c; with it, the
# API fuzzer, tests/c/fuzz_api.c (PYB_FUZZ_SKIP=tasks,pools,... switches
# families of operations off, see the program).
# Against another CPython: PYB_PYTHON_VERSION=3.13.0 scripts/fuzz-soak.sh
cd "$(dirname "$0")/.."
source scripts/env.sh
program=fuzz_host
if [ "${1:-}" = "--api" ]; then
  program=fuzz_api
  shift
fi
seeds="${1:-2000}"
first="${2:-1}"
parallel="${PYB_FUZZ_PARALLEL:-2}"
target="${CARGO_TARGET_DIR:-target/fuzz-$(pyb_python_version "$PYO3_PYTHON")}"
CARGO_TARGET_DIR="$target" cargo build --quiet
libdir="$PWD/$target/debug"
pylib="$(pyb_python_libdir "$PYO3_PYTHON")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
gcc -std=c11 -O1 -g -Wall -Wextra -Werror -pedantic -pthread -Ibindings/c "tests/c/$program.c" \
  -L"$libdir" -lpybridge -Wl,-rpath,"$libdir" -Wl,-rpath,"$pylib" -o "$work/$program"
skip="${PYB_FUZZ_SKIP:+PYB_FUZZ_SKIP=$PYB_FUZZ_SKIP }"
echo "== $program soak: seeds $first..$((first + seeds - 1)), interrupt off and on, $parallel at a time ($(pyb_python_version "$PYO3_PYTHON"))${skip:+, $skip}"
run_one() {
  # $1 = seed, $2 = interrupt; a hung run is killed after 120 s.
  if timeout 120 "$work/$program" "$1" "$2" >"$work/out-$1-$2" 2>&1 && grep -q "$program: ok" "$work/out-$1-$2"; then
    rm -f "$work/out-$1-$2"
  else
    echo "FAILED: seed $1 interrupt $2 (replay: $skip$program $1 $2): $(grep -m1 FAIL "$work/out-$1-$2" || tail -n 3 "$work/out-$1-$2")"
  fi
}
export -f run_one
export work program skip
for seed in $(seq "$first" $((first + seeds - 1))); do
  echo "$seed 0"
  echo "$seed 1"
done | xargs -P "$parallel" -n 2 bash -c 'run_one "$0" "$1"' | tee "$work/failures"
failed=$(grep -c "^FAILED" "$work/failures" || true)
total=$((seeds * 2))
echo "$((total - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
