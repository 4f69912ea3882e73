#!/usr/bin/env bash
# Writes dist/pybridge-<version>-windows-x86_64.zip (scripts/package.sh
# --target windows runs this), cross-built here with Rust's
# x86_64-pc-windows-gnu target and Debian's mingw-w64. It unpacks to one
# relocatable folder:
#   include/            pybridge.h, pybridge.hpp, pybridge/*.hpp (its parts)
#   bin/                pybridge.dll (the loader: link this one) and one core
#                       per CPython minor, pybridge-core-cp3XY.dll, stripped;
#                       bin/debug/ keeps their debug info (GNU debuglink, which
#                       gdb and WinDbg-less tools read)
#   lib/                libpybridge.dll.a (mingw's import library) and
#                       pybridge.lib (MSVC's, from the same .def)
#   lib/pkgconfig/      pybridge.pc; lib/cmake/pybridge/: pybridge::pybridge
#                       (IMPORTED_IMPLIB + IMPORTED_LOCATION on Windows)
#   csharp/             the NuGet layout: PyBridge.nuspec,
#                       lib/netstandard2.0/PyBridge.dll, runtimes/win-x64/native/ (the
#                       loader there as libpybridge.dll, the name the C# binding imports)
# Cores are built for PYB_WINDOWS_CORES (default: every minor of
# scripts/python-versions, 3.10-3.15; the Windows tests run those of the
# `windows` lines, 3.12 and 3.13, under wine), each with
# PYO3_CROSS_PYTHON_VERSION (pyo3 makes python3XY.dll's import library).
# The DLLs import only what Windows itself has (checked below): mingw's
# libgcc, libstdc++ and winpthread are linked statically. python3XY.dll is the
# user's, found at run time. A DLL that imports anything else stops the script.
cd "$(dirname "$0")/.."
source scripts/env.sh
ROOT="$(pwd)"
version="$(pyb_package_version)"
name="pybridge-$version-windows-x86_64"
stage="$ROOT/target/package/$name"
rust_target=x86_64-pc-windows-gnu
# One target folder for every core: switching PYO3_CROSS_PYTHON_VERSION
# rebuilds pyo3 and the core, not the other dependencies.
build_dir="$ROOT/target/package-build/windows"
rm -rf "$stage"
# A build that stops half-way leaves no package behind, not an older one.
rm -f "dist/$name.zip"
mkdir -p "$stage/bin/debug" "$stage/lib" "$stage/csharp/runtimes/win-x64/native"

if ! rustup target list --installed | grep -qx "$rust_target" ||
  ! command -v x86_64-w64-mingw32-gcc >/dev/null 2>&1; then
  bash scripts/install-windows.sh
fi

# Strips `file` in place and keeps its debug info in bin/debug/.
strip_keeping_debug() {
  local file="$1" base
  base="$(basename "$file")"
  x86_64-w64-mingw32-objcopy --only-keep-debug "$file" "$stage/bin/debug/$base.debug"
  x86_64-w64-mingw32-strip --strip-unneeded "$file"
  (cd "$stage/bin/debug" && x86_64-w64-mingw32-objcopy --add-gnu-debuglink="$base.debug" "$file")
}

built=()
for minor in ${PYB_WINDOWS_CORES:-$(pyb_windows_core_minors)}; do
  tag="cp${minor/./}"
  echo "== core for CPython $minor on Windows ($tag)"
  PYO3_CROSS_PYTHON_VERSION="$minor" CARGO_TARGET_DIR="$build_dir" \
    cargo build --release --lib --quiet --target "$rust_target"
  cp "$build_dir/$rust_target/release/pybridge.dll" "$stage/bin/pybridge-core-$tag.dll"
  strip_keeping_debug "$stage/bin/pybridge-core-$tag.dll"
  built+=("$tag")
done

echo "== loader"
CARGO_TARGET_DIR="$build_dir" cargo build --release -p pybridge-loader --quiet --target "$rust_target"
# Linked here rather than by rustc: the .def exports the header's functions
# and nothing else (tests/header.rs writes it), and makes the import library.
x86_64-w64-mingw32-gcc -shared -static-libgcc -static -o "$stage/bin/pybridge.dll" \
  packaging/pybridge.def \
  -Wl,--out-implib,"$stage/lib/libpybridge.dll.a" \
  -Wl,--whole-archive "$build_dir/$rust_target/release/libpybridge_loader.a" -Wl,--no-whole-archive \
  -lkernel32 -lntdll -luserenv -lws2_32 -ldbghelp -lbcrypt
strip_keeping_debug "$stage/bin/pybridge.dll"
# MSVC's import library, from the same .def (LLVM's dlltool writes the short
# import format MSVC's link.exe reads).
llvm-dlltool -m i386:x86-64 -d packaging/pybridge.def -D pybridge.dll -l "$stage/lib/pybridge.lib"

pyb_package_headers "$stage"
pyb_package_build_files "$stage" "$version"

echo "== C# binding"
pyb_package_csharp "$stage" "$version"
# The C# binding imports "libpybridge": Windows' file names ignore case, so a
# native pybridge.dll beside the assembly PyBridge.dll would be the same file.
# The loader finds its cores beside itself, whatever its own name.
for dll in "$stage"/bin/*.dll; do
  native="$(basename "$dll")"
  [ "$native" = pybridge.dll ] && native=libpybridge.dll
  cp "$dll" "$stage/csharp/runtimes/win-x64/native/$native"
done

# Every DLL a shipped DLL imports must come with Windows (or be the user's
# python3XY.dll): no mingw runtime DLL a user would not have.
echo "== DLLs imported"
for dll in "$stage"/bin/*.dll; do
  imports="$(x86_64-w64-mingw32-objdump -p "$dll" | sed -n 's/^\s*DLL Name: //p' | sort -u | tr '\n' ' ')"
  echo "   $(basename "$dll"): $imports"
  for import in $imports; do
    case "${import,,}" in
      # Windows' own (Windows 10 and later: bcryptprimitives.dll's ProcessPrng
      # came with Windows 10 1703)...
      kernel32.dll | ntdll.dll | userenv.dll | ws2_32.dll | dbghelp.dll | bcrypt.dll | \
        bcryptprimitives.dll | advapi32.dll | msvcrt.dll | oleaut32.dll | user32.dll | \
        api-ms-win-*.dll) ;;
      # ...and the user's CPython, which the loader loads first.
      python3[0-9]*.dll) ;;
      *)
        echo "error: $(basename "$dll") imports $import, which Windows does not have" >&2
        exit 1 ;;
    esac
  done
done

mkdir -p dist
(cd "$ROOT/target/package" && zip -q -r -X "$ROOT/dist/$name.zip" "$name")
echo "== dist/$name.zip (cores: ${built[*]})"
