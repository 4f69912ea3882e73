#!/usr/bin/env bash
# Installs the Windows CoreCLR the C# tests run on under wine (scripts/test-csharp-windows.sh),
# and Mono's mcs that builds them when missing (apt's mono-devel), idempotently and without
# prompts (CI-safe, no stdin); scripts/install-windows.sh calls it.
#
# The runtime is CoreCLR 3.1 for Windows x64 from PyPI's dotnetcore2 win_amd64 wheel (the
# Linux C# tests use the same package's manylinux wheel), pinned below by version and sha256
# as scripts/python-versions pins the embeddable CPythons. Its dotnet/ folder (dotnet.exe,
# host/, shared/Microsoft.NETCore.App/3.1.x) is unpacked into
# $PYB_WINDOWS_DEPS/dotnetcore2-<version> (.deps/windows, git-ignored). Nothing is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

# The tests are built by Mono's mcs, as on Linux.
pyb_install_mono

DOTNETCORE2_WINDOWS_VERSION=3.1.23
DOTNETCORE2_WINDOWS_SHA256=e2528813677d7a080522336cb530442408d1e2aea76fa8657018fb532c03c252

dir="$PYB_WINDOWS_DEPS/dotnetcore2-$DOTNETCORE2_WINDOWS_VERSION"
if [ -f "$dir/dotnet.exe" ] && [ -d "$dir/shared/Microsoft.NETCore.App" ]; then
  exit 0
fi
echo "installing CoreCLR for Windows (PyPI dotnetcore2==$DOTNETCORE2_WINDOWS_VERSION, win_amd64) into $dir (once)..."
mkdir -p "$PYB_WINDOWS_DEPS"
work="$(mktemp -d "$PYB_WINDOWS_DEPS/.download.XXXXXX")"
"$PYO3_PYTHON" -m pip download --quiet --disable-pip-version-check --no-input --no-deps \
  --platform win_amd64 --only-binary=:all: --dest "$work" \
  "dotnetcore2==$DOTNETCORE2_WINDOWS_VERSION" </dev/null
wheel="$work/dotnetcore2-$DOTNETCORE2_WINDOWS_VERSION-py3-none-win_amd64.whl"
if [ "$(sha256sum "$wheel" | cut -d' ' -f1)" != "$DOTNETCORE2_WINDOWS_SHA256" ]; then
  echo "error: $wheel does not have the pinned sha256 ($DOTNETCORE2_WINDOWS_SHA256)" >&2
  rm -rf "$work"
  exit 1
fi
# The wheel's dotnetcore2/bin/ is a dotnet folder as Microsoft's zip unpacks it.
"$PYO3_PYTHON" - "$wheel" "$work/unpacked" <<'PY'
import os, sys, zipfile
wheel, destination = sys.argv[1:]
prefix = "dotnetcore2/bin/"
with zipfile.ZipFile(wheel) as archive:
    for name in archive.namelist():
        if not name.startswith(prefix) or name.endswith("/"):
            continue
        target = os.path.join(destination, name[len(prefix):])
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with archive.open(name) as source, open(target, "wb") as out:
            out.write(source.read())
PY
if [ ! -f "$work/unpacked/dotnet.exe" ]; then
  echo "error: $wheel has no dotnetcore2/bin/dotnet.exe" >&2
  rm -rf "$work"
  exit 1
fi
rm -rf "$dir"
mv "$work/unpacked" "$dir"
rm -rf "$work"
echo "CoreCLR for Windows: $(ls "$dir/shared/Microsoft.NETCore.App") in $dir"
