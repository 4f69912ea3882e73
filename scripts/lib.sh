# shellcheck shell=bash
# Sourced by the scripts (scripts/env.sh sources it too): what they share. It
# sets no shell options, so scripts with and without `set -e` may source it.

PYB_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# pyenv's shared CPython builds; found without the pyenv command on PATH too.
PYENV_ROOT="${PYENV_ROOT:-$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")}"
export PYENV_ROOT

# The supported versions (scripts/python-versions) that carry every word given,
# on one line: `pyb_python_versions pyenv`, `pyb_python_versions sid`,
# `pyb_python_versions pyenv own-gil`. `others` means the pyenv ones except the
# build's default.
pyb_python_versions() {
  awk -v want="$*" '
    /^[[:space:]]*(#|$)/ { next }
    {
      n = split(want, words, " ")
      keep = 1
      for (i = 1; i <= n; i++) {
        w = words[i]
        found = 0
        if (w == "others") { found = ($2 == "pyenv"); for (j = 3; j <= NF; j++) if ($j == "build") found = 0 }
        else for (j = 2; j <= NF; j++) if ($j == w) found = 1
        if (!found) keep = 0
      }
      if (keep) printf "%s%s", (out++ ? " " : ""), $1
    }
    END { print "" }' "$PYB_REPO/scripts/python-versions"
}

# The executable of a pyenv version: pyb_pyenv_python 3.12.1.
pyb_pyenv_python() {
  echo "$PYENV_ROOT/versions/$1/bin/python3"
}

# Where a CPython's libpython is (sysconfig's LIBDIR): pyb_python_libdir /path/to/python3.
pyb_python_libdir() {
  "$1" -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))'
}

# A CPython's full version: pyb_python_version /path/to/python3 -> 3.12.1.
pyb_python_version() {
  "$1" -c 'import platform; print(platform.python_version())'
}

# The .NET runtimes an mcs-built program runs on (scripts/install-csharp.sh installs them).
PYB_DOTNET_CORECLR="$PYB_REPO/.deps/dotnetcore2/dotnetcore2/bin/dotnet"
PYB_DOTNET_NET8="$PYB_REPO/.deps/dotnet8/dnv/net/runtime/.net/dotnet"

# Runs an mcs-built program on one runtime (mono, coreclr or net8), under a
# timeout when one is given: pyb_dotnet_run [--timeout SECONDS] RUNTIME EXE [ARGS...].
# CoreCLR and .NET 8 read <runtime>.runtimeconfig.json beside EXE
# (bindings/csharp/build-mcs.sh writes them).
pyb_dotnet_run() {
  local limit=()
  if [ "$1" = --timeout ]; then
    limit=(timeout -k 5 "$2")
    shift 2
  fi
  local runtime="$1" exe="$2"
  shift 2
  local config
  config="$(dirname "$exe")/$runtime.runtimeconfig.json"
  case "$runtime" in
    mono) "${limit[@]}" mono --debug "$exe" "$@" ;;
    coreclr | net8)
      local dotnet="$PYB_DOTNET_CORECLR"
      [ "$runtime" = net8 ] && dotnet="$PYB_DOTNET_NET8"
      DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 DOTNET_CLI_TELEMETRY_OPTOUT=1 \
        "${limit[@]}" "$dotnet" exec --runtimeconfig "$config" "$exe" "$@" ;;
    *)
      echo "error: unknown .NET runtime $runtime (mono, coreclr or net8)" >&2
      return 2 ;;
  esac
}
