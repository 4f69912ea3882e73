# shellcheck shell=bash
# Sourced by the other scripts: picks the Python pybridge is built against and
# makes sure the tools the build needs are on PATH.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The default is the version scripts/python-versions marks "build".
PYB_PYTHON_VERSION="${PYB_PYTHON_VERSION:-$(pyb_python_versions build)}"
if [ -z "${PYO3_PYTHON:-}" ]; then
  if [ -x "$(pyb_pyenv_python "$PYB_PYTHON_VERSION")" ]; then
    PYO3_PYTHON="$(pyb_pyenv_python "$PYB_PYTHON_VERSION")"
  else
    PYO3_PYTHON="$(command -v python3)"
  fi
fi
export PYO3_PYTHON
# The library must be a shared-libpython build: pybridge links it and sets an rpath to it.
if [ "$("$PYO3_PYTHON" -c 'import sysconfig; print(sysconfig.get_config_var("Py_ENABLE_SHARED"))')" != "1" ]; then
  echo "error: $PYO3_PYTHON is not a shared-library build of CPython" >&2
  exit 1
fi
export PATH="$HOME/.cargo/bin:$PATH"

ensure_nextest() {
  if ! cargo nextest --version >/dev/null 2>&1; then
    echo "installing cargo-nextest (once)..."
    cargo install cargo-nextest --locked
  fi
}

# Installs Debian packages whose command is missing: ensure_apt_command <command> <package>.
ensure_apt_command() {
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "installing $2 (once)..."
    local sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo -n"; fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "$2" </dev/null ||
      { DEBIAN_FRONTEND=noninteractive $sudo apt-get update -q </dev/null &&
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "$2" </dev/null; }
  fi
}
