#!/usr/bin/env bash
# Installs what the C# binding's sample and tests need, idempotently and without prompts
# (works under CI=true with no stdin):
#   - Mono (Debian's mono-devel: mcs, mono) through apt, only if mcs or mono is missing;
#   - CoreCLR 3.1 (PyPI dotnetcore2) into .deps/dotnetcore2 (git-ignored), only if missing.
# Nothing is committed: both come from their registries at run time.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

if ! command -v mcs >/dev/null 2>&1 || ! command -v mono >/dev/null 2>&1; then
  echo "installing mono-devel (once)..."
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo -n"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q </dev/null
  $SUDO apt-get install -y -q mono-devel </dev/null
fi

DOTNETCORE2_VERSION="${DOTNETCORE2_VERSION:-3.1.23}"
if [ ! -x .deps/dotnetcore2/dotnetcore2/bin/dotnet ]; then
  echo "installing dotnetcore2 $DOTNETCORE2_VERSION into .deps/dotnetcore2 (once)..."
  rm -rf .deps/dotnetcore2
  "$PYO3_PYTHON" -m pip install --quiet --disable-pip-version-check --no-input \
    --target .deps/dotnetcore2 "dotnetcore2==$DOTNETCORE2_VERSION" </dev/null
fi
echo "mono: $(mono --version | head -n 1)"
echo "dotnet: $(.deps/dotnetcore2/dotnetcore2/bin/dotnet --list-runtimes | head -n 1)"
