#!/usr/bin/env bash
# Runs the seeded fuzzer (tests/c/fuzz_host.c) over many seeds, each with and
# without PYB_SHUTDOWN_INTERRUPT, two processes at a time, and ends with
# "N passed, N failed". Failing seeds are listed with the command that replays
# them. Usage: scripts/fuzz-soak.sh [seeds (2000)] [first seed (1)]
# Against another CPython: PYB_PYTHON_VERSION=3.13.0 scripts/fuzz-soak.sh
cd "$(dirname "$0")/.."
source scripts/env.sh
seeds="${1:-2000}"
first="${2:-1}"
parallel="${PYB_FUZZ_PARALLEL:-2}"
target="${CARGO_TARGET_DIR:-target/fuzz-$("$PYO3_PYTHON" -c 'import platform; print(platform.python_version())')}"
CARGO_TARGET_DIR="$target" cargo build --quiet
libdir="$PWD/$target/debug"
pylib="$("$PYO3_PYTHON" -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
gcc -std=c11 -O1 -g -Wall -Wextra -Werror -pedantic -pthread -Ibindings/c tests/c/fuzz_host.c \
  -L"$libdir" -lpybridge -Wl,-rpath,"$libdir" -Wl,-rpath,"$pylib" -o "$work/fuzz_host"
echo "== fuzz soak: seeds $first..$((first + seeds - 1)), interrupt off and on, $parallel at a time ($("$PYO3_PYTHON" -c 'import platform; print(platform.python_version())'))"
run_one() {
  # $1 = seed, $2 = interrupt; a hung run is killed after 120 s.
  if timeout 120 "$work/fuzz_host" "$1" "$2" >"$work/out-$1-$2" 2>&1 && grep -q "fuzz_host: ok" "$work/out-$1-$2"; then
    rm -f "$work/out-$1-$2"
  else
    echo "FAILED: seed $1 interrupt $2 (replay: fuzz_host $1 $2): $(grep -m1 FAIL "$work/out-$1-$2" || tail -n 3 "$work/out-$1-$2")"
  fi
}
export -f run_one
export work
for seed in $(seq "$first" $((first + seeds - 1))); do
  echo "$seed 0"
  echo "$seed 1"
done | xargs -P "$parallel" -n 2 bash -c 'run_one "$0" "$1"' | tee "$work/failures"
failed=$(grep -c "^FAILED" "$work/failures" || true)
total=$((seeds * 2))
echo "$((total - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
