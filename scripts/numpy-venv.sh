#!/usr/bin/env bash
# Makes (once) a venv with NumPy for one CPython and prints its path on stdout:
#   scripts/numpy-venv.sh 3.12.1                 ->   <repo>/.deps/numpy-venv-3.12.1
#   scripts/numpy-venv.sh /path/to/bin/python3   ->   <repo>/.deps/numpy-venv-<its version>
# (a pyenv version, or any CPython executable). Tests that need NumPy (buffers) use it
# through pyb_config.virtual_env or PyEngineOptions.VirtualEnv. The wheel comes from PyPI at the moment it is needed; nothing
# third-party is committed. Progress goes to stderr so the path is the only stdout line.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
what="${1:?usage: scripts/numpy-venv.sh <pyenv version, e.g. 3.11.7, or a python executable>}"
if [[ "$what" == */* ]]; then
  python="$what"
else
  source scripts/lib.sh
  python="$(pyb_pyenv_python "$what")"
fi
[ -x "$python" ] || { echo "error: no CPython at $python" >&2; exit 1; }
version="$("$python" -c 'import platform; print(platform.python_version())')"
venv="$ROOT/.deps/numpy-venv-$version"
# A lock, so concurrent test processes make the venv once.
mkdir -p "$ROOT/.deps"
exec 9>"$ROOT/.deps/numpy-venv-$version.lock"
flock 9
if ! "$venv/bin/python" -c 'import numpy' >/dev/null 2>&1; then
  rm -rf "$venv"
  "$python" -m venv "$venv" >&2
  # Wheels only (a source build takes minutes): NumPy has cp314 wheels from
  # 2.3.2 and cp315 ones from 2.5; 2.3 dropped CPython 3.10.
  case "$version" in
    3.10.*|3.11.*|3.12.*|3.13.*) wanted='numpy>=1.26,<2.3' ;;
    *) wanted='numpy>=2.3.2' ;;
  esac
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --only-binary=:all: "$wanted" >&2
fi
echo "$venv"
