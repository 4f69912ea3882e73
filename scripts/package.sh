#!/usr/bin/env bash
# Writes dist/pybridge-<version>-linux-x86_64.tar.gz, which unpacks to one
# relocatable folder:
#   include/            pybridge.h, pybridge.hpp, pybridge/*.hpp (its parts)
#   lib/                libpybridge.so (the loader: link this one) and one core
#                       per CPython minor, libpybridge-core-cp3XX.so, stripped;
#                       lib/debug/ keeps their debug info (GNU debuglink)
#   lib/pkgconfig/      pybridge.pc (relative to ${pcfiledir})
#   lib/cmake/pybridge/ pybridgeConfig.cmake + version file: pybridge::pybridge
#   csharp/             a NuGet package layout: PyBridge.nuspec,
#                       lib/netstandard2.0/PyBridge.dll, runtimes/linux-x64/native/
# Cores are built for every version of scripts/python-versions: against
# pyenv's CPython builds (PYB_CORE_PYTHONS), each
# without an RPATH: the loader loads the chosen libpython first. The cores for
# CPython 3.14 and 3.15 (PYB_CORE_SID_PYTHONS) are built inside the Debian sid
# chroot (scripts/sid-chroot.sh) against its /usr/bin/python3.X: this image
# cannot install those CPythons. A core that cannot be built stops the script.
# Every core is checked to need no glibc newer than PYB_MAX_GLIBC (2.34, as
# the cores built here on bookworm; see docs/package.md).
#
# `scripts/package.sh --target windows` writes the Windows package instead
# (scripts/package-windows.sh).
cd "$(dirname "$0")/.."
case "${1:-}" in
  --target)
    case "${2:-}" in
      linux) ;;
      windows) exec bash scripts/package-windows.sh ;;
      *) echo "usage: scripts/package.sh [--target linux|windows]" >&2; exit 2 ;;
    esac ;;
  "") ;;
  *) echo "usage: scripts/package.sh [--target linux|windows]" >&2; exit 2 ;;
esac
source scripts/env.sh
ROOT="$(pwd)"
version="$(pyb_package_version)"
name="pybridge-$version-linux-x86_64"
stage="$ROOT/target/package/$name"
rm -rf "$stage"
# A build that stops half-way leaves no package behind, not an older one.
rm -f "dist/$name.tar.gz"
mkdir -p "$stage/include" "$stage/lib/debug" "$stage/lib/pkgconfig" "$stage/lib/cmake/pybridge" \
  "$stage/csharp/lib/netstandard2.0" "$stage/csharp/runtimes/linux-x64/native"

# Strips `file` in place and keeps its debug info in lib/debug/.
strip_keeping_debug() {
  local file="$1" base
  base="$(basename "$file")"
  objcopy --only-keep-debug "$file" "$stage/lib/debug/$base.debug"
  strip --strip-unneeded "$file"
  (cd "$stage/lib/debug" && objcopy --add-gnu-debuglink="$base.debug" "$file")
}

# Copies a built core into the package: version needs that only weak symbols
# have become weak (scripts/glibc_versions.py says why), then it is stripped.
add_core() {
  local built_library="$1" tag="$2"
  cp "$built_library" "$stage/lib/libpybridge-core-$tag.so"
  "$PYO3_PYTHON" scripts/glibc_versions.py weaken "$stage/lib/libpybridge-core-$tag.so"
  strip_keeping_debug "$stage/lib/libpybridge-core-$tag.so"
}

built=()
for python_version in ${PYB_CORE_PYTHONS:-$(pyb_python_versions pyenv)}; do
  python="$(pyb_pyenv_python "$python_version")"
  if [ ! -x "$python" ]; then
    echo "error: $python is missing: every core is built against its CPython" >&2
    exit 1
  fi
  tag="$("$python" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')"
  echo "== core for CPython $python_version ($tag)"
  PYB_NO_RPATH=1 PYO3_PYTHON="$python" CARGO_TARGET_DIR="target/package-build/python-$python_version" \
    cargo build --release --lib --quiet
  add_core "target/package-build/python-$python_version/release/libpybridge.so" "$tag"
  built+=("$tag")
done

# CPython 3.14 and 3.15: Debian sid's, inside the chroot (target dirs of their
# own there: what they link is sid's glibc). Set PYB_CORE_SID_PYTHONS to a
# subset to build fewer; set it empty to ship without them (said below).
sid_pythons="${PYB_CORE_SID_PYTHONS-$(pyb_python_versions sid)}"
if [ -n "$sid_pythons" ]; then
  echo "== cores for sid's CPython $sid_pythons (inside scripts/sid-chroot.sh)"
  # shellcheck disable=SC2016,SC2086
  if ! scripts/sid-chroot.sh run bash -c 'set -euo pipefail
      for minor in "$@"; do
        python="/usr/bin/python$minor"
        [ -x "$python" ] || { echo "error: the sid chroot has no $python" >&2; exit 1; }
        echo "   CPython $("$python" -c "import sys; print(sys.version.split()[0])")"
        PYB_NO_RPATH=1 PYO3_PYTHON="$python" CARGO_TARGET_DIR="target/package-build/sid-python-$minor" \
          cargo build --release --lib --quiet
      done' bash $sid_pythons; then
    echo "error: the cores for CPython $sid_pythons could not be built inside the sid chroot" \
      "(scripts/sid-chroot.sh run); the package is not written without them" \
      "(PYB_CORE_SID_PYTHONS= builds one without them on purpose)" >&2
    exit 1
  fi
  for sid_version in $sid_pythons; do
    add_core "target/package-build/sid-python-$sid_version/release/libpybridge.so" "cp${sid_version/./}"
    built+=("cp${sid_version/./}")
  done
else
  echo "== note: PYB_CORE_SID_PYTHONS is empty: this package has no cores for CPython $(pyb_python_versions sid)" >&2
fi

echo "== loader"
cargo build --release -p pybridge-loader --quiet
# Linked here rather than by rustc: the version script exports the header's
# functions, GNU indirect functions included (loader/src/lib.rs).
gcc -shared -o "$stage/lib/libpybridge.so" -Wl,-soname,libpybridge.so \
  -Wl,--version-script=packaging/loader.map \
  -Wl,--whole-archive target/release/libpybridge_loader.a -Wl,--no-whole-archive \
  -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
strip_keeping_debug "$stage/lib/libpybridge.so"

pyb_package_headers "$stage"
pyb_package_build_files "$stage" "$version"

echo "== C# binding"
pyb_package_csharp "$stage" "$version"
cp "$stage"/lib/*.so "$stage/csharp/runtimes/linux-x64/native/"

# The oldest glibc every shipped library runs on (what each needs is printed).
echo "== glibc and libstdc++ versions needed (at most glibc ${PYB_MAX_GLIBC:-2.34})"
"$PYO3_PYTHON" scripts/glibc_versions.py check "${PYB_MAX_GLIBC:-2.34}" "$stage"/lib/*.so

# No shipped file may point into the build machine.
for library in "$stage"/lib/*.so; do
  if readelf -d "$library" | grep -E 'R(UN)?PATH' | grep -v '\$ORIGIN' >/dev/null; then
    echo "error: $library has an RPATH/RUNPATH: $(readelf -d "$library" | grep -E 'R(UN)?PATH')" >&2
    exit 1
  fi
done

mkdir -p dist
tar -C "$ROOT/target/package" -czf "dist/$name.tar.gz" "$name"
echo "== dist/$name.tar.gz (cores: ${built[*]})"
