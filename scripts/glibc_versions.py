#!/usr/bin/env python3
"""The glibc (and libstdc++) symbol versions a shared library needs.

    glibc_versions.py weaken FILE...   marks each version that only weak
                                       symbols need as weak (VER_FLG_WEAK)
    glibc_versions.py check MAX FILE... prints what each FILE needs and fails
                                       when one needs a GLIBC_ newer than MAX

Why weaken: Rust's standard library refers to functions newer glibcs add
(pidfd_spawnp and pidfd_getpid, glibc 2.39) as weak symbols and falls back
when they are absent. A library linked against a glibc that has them records
"needs GLIBC_2.39" all the same (neither lld nor GNU ld marks such a need
weak), and an older glibc's loader then refuses the whole library. A need
marked weak is only checked for the symbols that use it, which stay NULL
there, as std expects. Only needs whose every symbol is a weak undefined
reference are touched.

ELF64 little-endian only (the package is x86_64 Linux).
"""
import struct
import sys

SHT_DYNSYM = 11
SHT_GNU_VERNEED = 0x6FFFFFFE
SHT_GNU_VERSYM = 0x6FFFFFFF
STB_WEAK = 2
VER_FLG_WEAK = 0x2


class Elf:
    def __init__(self, path):
        self.path = path
        with open(path, "rb") as file:
            self.data = bytearray(file.read())
        if self.data[:4] != b"\x7fELF" or self.data[4] != 2 or self.data[5] != 1:
            raise SystemExit(f"error: {path} is not a little-endian ELF64 file")
        shoff, = struct.unpack_from("<Q", self.data, 0x28)
        shentsize, shnum = struct.unpack_from("<HH", self.data, 0x3A)
        self.sections = []
        for index in range(shnum):
            fields = struct.unpack_from("<IIQQQQIIQQ", self.data, shoff + index * shentsize)
            self.sections.append(
                {"type": fields[1], "offset": fields[4], "size": fields[5], "link": fields[6], "info": fields[7]}
            )

    def section(self, kind):
        found = [s for s in self.sections if s["type"] == kind]
        return found[0] if found else None

    def string(self, table, offset):
        start = table["offset"] + offset
        return self.data[start : self.data.index(0, start)].decode()

    def needs(self):
        """Each needed version: (file, name, flags, offset of vna_flags, [(symbol, weak undefined)])."""
        dynsym = self.section(SHT_DYNSYM)
        versym = self.section(SHT_GNU_VERSYM)
        verneed = self.section(SHT_GNU_VERNEED)
        if not (dynsym and versym and verneed):
            return []
        dynstr = self.sections[dynsym["link"]]
        by_index = {}
        for number in range(dynsym["size"] // 24):
            name, info, _other, shndx = struct.unpack_from("<IBBH", self.data, dynsym["offset"] + number * 24)
            index, = struct.unpack_from("<H", self.data, versym["offset"] + number * 2)
            weak_undefined = shndx == 0 and info >> 4 == STB_WEAK
            by_index.setdefault(index & 0x7FFF, []).append((self.string(dynstr, name), weak_undefined))
        strings = self.sections[verneed["link"]]
        found = []
        at = verneed["offset"]
        for _ in range(verneed["info"]):
            _version, count, file_name, aux, following = struct.unpack_from("<HHIII", self.data, at)
            library = self.string(strings, file_name)
            entry = at + aux
            for _ in range(count):
                _hash, flags, other, name, next_aux = struct.unpack_from("<IHHII", self.data, entry)
                found.append((library, self.string(strings, name), flags, entry + 4, by_index.get(other, [])))
                entry += next_aux
            at += following
        return found

    def save(self):
        with open(self.path, "wb") as file:
            file.write(self.data)


def version_key(name):
    return tuple(int(part) for part in name.split("_", 1)[1].split(".") if part.isdigit())


def weaken(paths):
    for path in paths:
        elf = Elf(path)
        changed = []
        for library, name, flags, flags_at, symbols in elf.needs():
            if symbols and all(weak for _, weak in symbols) and not flags & VER_FLG_WEAK:
                struct.pack_into("<H", elf.data, flags_at, flags | VER_FLG_WEAK)
                changed.append(f"{name} ({', '.join(symbol for symbol, _ in symbols)})")
        if changed:
            elf.save()
            print(f"{path}: weak only: {'; '.join(changed)}")


def check(maximum, paths):
    too_new = []
    for path in paths:
        newest = {}
        for _library, name, flags, _at, symbols in Elf(path).needs():
            family = name.split("_", 1)[0]
            if flags & VER_FLG_WEAK or family not in ("GLIBC", "GLIBCXX", "CXXABI"):
                continue
            if family not in newest or version_key(name) > version_key(newest[family][0]):
                newest[family] = (name, [symbol for symbol, _ in symbols])
        print(f"{path.rsplit('/', 1)[-1]}: needs " + ", ".join(newest[f][0] for f in sorted(newest)))
        glibc = newest.get("GLIBC")
        if glibc and version_key(glibc[0]) > version_key("GLIBC_" + maximum):
            too_new.append(f"{path} needs {glibc[0]} (for {', '.join(glibc[1])})")
    if too_new:
        print(f"error: the package promises glibc {maximum}:", file=sys.stderr)
        for line in too_new:
            print(f"  {line}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "weaken":
        weaken(sys.argv[2:])
    elif len(sys.argv) >= 4 and sys.argv[1] == "check":
        check(sys.argv[2], sys.argv[3:])
    else:
        raise SystemExit(__doc__)
