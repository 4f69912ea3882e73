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
  pyb_dotnet_run --timeout 120 "$runtime" "$OUT/csharp-sample.exe"
done
