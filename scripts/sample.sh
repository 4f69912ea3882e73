#!/usr/bin/env bash
# Builds pybridge (release) and runs the C# sample (csharp-sample/Program.cs) on Mono, then on
# CoreCLR 3.1. Installs what it needs first (scripts/install-csharp.sh: mono-devel, dotnetcore2).
# PYB_SAMPLE_RUNTIMES="mono" (or "coreclr") runs on one runtime only.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-csharp.sh
source scripts/env.sh
cargo build --release
OUT="${CARGO_TARGET_DIR:-target}/csharp-sample"
bash bindings/csharp/build-mcs.sh "$OUT"
mcs -nologo -warnaserror -unsafe -debug -r:"$OUT/PyBridge.dll" -out:"$OUT/csharp-sample.exe" csharp-sample/Program.cs
for runtime in ${PYB_SAMPLE_RUNTIMES:-mono coreclr}; do
  echo
  echo "######## csharp-sample on $runtime"
  case "$runtime" in
    mono) timeout 120 mono --debug "$OUT/csharp-sample.exe" ;;
    coreclr) DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 timeout 120 \
        .deps/dotnetcore2/dotnetcore2/bin/dotnet exec --runtimeconfig "$OUT/coreclr.runtimeconfig.json" \
        "$OUT/csharp-sample.exe" ;;
    *) echo "unknown runtime $runtime" >&2; exit 2 ;;
  esac
done
