#!/usr/bin/env bash
# Runs the C# sample from the release package's NuGet layout, on Mono and on
# CoreCLR 3.1, with the Python chosen by PyEngineOptions.Python: it unpacks
# dist/pybridge-<version>-linux-x86_64.tar.gz (scripts/package.sh) into a
# temporary folder and uses nothing from target/. Fails unless both runtimes
# finish the sample on the chosen CPython (PYB_PACKAGE_CS_PYTHON, default
# the pyenv version scripts/python-versions marks "second", not the build's).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
bash scripts/install-csharp.sh >/dev/null
source scripts/env.sh
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
name="pybridge-$version-linux-x86_64"
tarball="$ROOT/dist/$name.tar.gz"
[ -f "$tarball" ] || bash scripts/package.sh
python="${PYB_PACKAGE_CS_PYTHON:-$(pyb_pyenv_python "$(pyb_python_versions pyenv second)")}"
want="$(pyb_python_version "$python")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tar -xzf "$tarball" -C "$work"
nuget="$work/$name/csharp"
app="$work/app"
mkdir -p "$app"
# What a NuGet restore puts beside the app: the managed assembly and the native libraries.
cp "$nuget/lib/netstandard2.0/PyBridge.dll" "$nuget"/runtimes/linux-x64/native/*.so "$app/"
mcs -nologo -warnaserror -unsafe -r:"$app/PyBridge.dll" -out:"$app/csharp-sample.exe" csharp-sample/Program.cs
# pyb_dotnet_run reads the runtime configuration beside the program.
cat > "$app/coreclr.runtimeconfig.json" <<'JSON'
{
  "runtimeOptions": {
    "tfm": "netcoreapp3.1",
    "framework": { "name": "Microsoft.NETCore.App", "version": "3.1.0" }
  }
}
JSON
status=0
for runtime in mono coreclr; do
  echo "== the packaged C# binding on $runtime, CPython $want chosen by PyEngineOptions.Python"
  if output="$(unset LD_LIBRARY_PATH PYBRIDGE_PYTHON
      pyb_dotnet_run --timeout 120 "$runtime" "$app/csharp-sample.exe" "$python" 2>&1)" &&
     grep -q "running CPython $want\$" <<<"$output" &&
     [ "$(tail -n 1 <<<"$output")" = "sample finished: OK" ]; then
    echo "PASS: $runtime ran the sample on CPython $want from the package"
  else
    echo "FAIL: $runtime"
    echo "$output" | tail -n 30
    status=1
  fi
done
exit $status
