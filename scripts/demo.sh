#!/usr/bin/env bash
# Builds pybridge and runs the demo host program (tests/c/demo.c): several host
# threads using Python, a Python thread ticking while the host works, and a
# shutdown from a thread that did not initialize.
cd "$(dirname "$0")/.."
source scripts/env.sh
cargo build --release
libdir="$(pyb_python_libdir "$PYO3_PYTHON")"
include="$("$PYO3_PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
ldver="$("$PYO3_PYTHON" -c 'import sysconfig; print(sysconfig.get_config_var("LDVERSION"))')"
out="target/demo"
mkdir -p "$out"
gcc -std=c11 -Wall -Wextra -Werror -O2 -I bindings/c -I "$include" tests/c/demo.c \
  -L target/release -lpybridge -L "$libdir" "-lpython$ldver" -lpthread \
  -Wl,-rpath,"$PWD/target/release" -Wl,-rpath,"$libdir" -o "$out/demo"
exec "$out/demo"
