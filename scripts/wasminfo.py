#!/usr/bin/env python3
"""Tiny, dependency-free reader of WebAssembly binaries for the benchmarks.

    wasminfo.py data FILE      -> "<kind> <data-section bytes> <data segments> <minimal bytes>"
    wasminfo.py exports FILE   -> the export names of a core module, one a line

kind is "module" or "component". The data-section size is the whole section,
header included (id byte, LEB size, payload), summed over every core module
of a component; segments is the count at the head of each data section,
summed likewise. The minimal size is the data-section size had its size
LEB been written in the fewest bytes (some linkers, Go's for one, pad it to
5 bytes; binaryen rewrites it minimal, segpack keeps an unchanged section
byte for byte), so that sizes compare the segments, not the padding. Only
section headers are read (the file is memory-mapped),
so this is quick on multi-GB files. It does not validate anything.
"""
import mmap
import sys

MAGIC = b"\0asm"


def uleb(buf, pos):
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def sections(buf, start, end):
    """Yield (id, header_start, payload_start, payload_end) of a binary in buf[start:end]."""
    if buf[start:start + 4] != MAGIC:
        raise ValueError("not a WebAssembly binary")
    pos = start + 8
    while pos < end:
        head = pos
        sid = buf[pos]
        size, pos = uleb(buf, pos + 1)
        yield sid, head, pos, pos + size
        pos += size


def is_component(buf, start):
    # version field: core modules have layer 0, components layer 1
    return buf[start + 6:start + 8] == b"\x01\x00"


def uleb_len(v):
    n = 1
    while v >= 0x80:
        v >>= 7
        n += 1
    return n


def data_info(buf, start, end):
    """(data-section bytes incl. header, data segments, bytes with a minimal
    size LEB) summed over core modules."""
    total = count = minimal = 0
    if is_component(buf, start):
        for sid, _head, lo, hi in sections(buf, start, end):
            if sid in (1, 4):  # core module, nested component
                t, c, m = data_info(buf, lo, hi)
                total += t
                count += c
                minimal += m
    else:
        for sid, head, lo, hi in sections(buf, start, end):
            if sid == 11:
                total += hi - head
                minimal += 1 + uleb_len(hi - lo) + hi - lo
                n, _ = uleb(buf, lo)
                count += n
    return total, count, minimal


def exports(buf):
    if is_component(buf, 0):
        return []
    names = []
    for sid, _head, lo, _hi in sections(buf, 0, len(buf)):
        if sid == 7:
            n, pos = uleb(buf, lo)
            for _ in range(n):
                length, pos = uleb(buf, pos)
                names.append(bytes(buf[pos:pos + length]).decode("utf-8", "replace"))
                pos += length + 1  # kind byte
                _index, pos = uleb(buf, pos)
    return names


def main(argv):
    if len(argv) != 3 or argv[1] not in ("data", "exports"):
        sys.exit(__doc__)
    with open(argv[2], "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        if argv[1] == "data":
            total, count, minimal = data_info(buf, 0, len(buf))
            kind = "component" if is_component(buf, 0) else "module"
            print(kind, total, count, minimal)
        else:
            for name in exports(buf):
                print(name)


if __name__ == "__main__":
    main(sys.argv)
