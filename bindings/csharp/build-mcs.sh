#!/usr/bin/env bash
# Builds bindings/csharp with Mono's mcs into OUT_DIR (argument 1), copies libpybridge.so
# there (so DllImport("libpybridge") finds it on Mono and CoreCLR alike) and writes
# OUT_DIR/coreclr.runtimeconfig.json for `dotnet exec --runtimeconfig`.
# PYB_LIB_DIR: where libpybridge.so is (default: ${CARGO_TARGET_DIR:-target}/release).
# PYB_NATIVE_LIB: the native library to copy instead: a .dll (pybridge.dll, for Windows) is
# copied as libpybridge.dll, the name DllImport("libpybridge") finds on Windows (pybridge.dll
# would be the same file as PyBridge.dll there: Windows' names ignore case).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT_DIR="$1"
LIB_DIR="${PYB_LIB_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/release}"
mkdir -p "$OUT_DIR"
NATIVE_LIB="${PYB_NATIVE_LIB:-$LIB_DIR/libpybridge.so}"
if [ ! -f "$NATIVE_LIB" ]; then
  echo "error: $NATIVE_LIB not found (cargo build --release, or set PYB_LIB_DIR or PYB_NATIVE_LIB)" >&2
  exit 1
fi
case "$NATIVE_LIB" in
  *.dll) cp "$NATIVE_LIB" "$OUT_DIR/libpybridge.dll" ;;
  *) cp "$NATIVE_LIB" "$OUT_DIR/" ;;
esac
# TRACE: Dispose reports failures through System.Diagnostics.Trace (defined by the .NET SDK too).
# host_objects.py: Python the binding runs, embedded as a resource (HostObjects.cs).
mcs -nologo -warnaserror -unsafe -optimize+ -debug -define:TRACE -target:library -r:System.Core.dll -r:System.Numerics.dll -out:"$OUT_DIR/PyBridge.dll" \
  -resource:"$ROOT"/bindings/csharp/host_objects.py,PyBridge.host_objects.py "$ROOT"/bindings/csharp/*.cs
cat > "$OUT_DIR/coreclr.runtimeconfig.json" <<'JSON'
{
  "runtimeOptions": {
    "tfm": "netcoreapp3.1",
    "framework": { "name": "Microsoft.NETCore.App", "version": "3.1.0" }
  }
}
JSON
# .NET 8 runs the same assemblies (rolls forward to the newest 8.0 installed).
cat > "$OUT_DIR/net8.runtimeconfig.json" <<'JSON'
{
  "runtimeOptions": {
    "tfm": "net8.0",
    "framework": { "name": "Microsoft.NETCore.App", "version": "8.0.0" }
  }
}
JSON
