"""Ogg pages (RFC 3533): framing, CRC, and a tolerant page scanner.

Digest of the format: a page is ``"OggS"``, version 0, a header-type byte
(0x01 continued packet, 0x02 BOS, 0x04 EOS), a 64-bit granule position, a
32-bit stream serial, a 32-bit page sequence number, a 32-bit CRC over the
whole page with the CRC field zeroed (polynomial 0x04C11DB7, initial value 0,
no reflection, no final xor), the number of segments (≤ 255), the lacing
table and the data. A packet of length L occupies ``L // 255`` segments of
255 and one final segment of ``L % 255`` (0 when L is a multiple of 255).

Written by hand on purpose: no well-kept Python library writes Ogg pages on
our own flush schedule (a page at least every second so that a power cut
costs at most the last second), and libogg bindings are unmaintained.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from appliance.errors import OggError

CAPTURE = b"OggS"
HEADER = struct.Struct("<4sBBqIIIB")  # capture, version, type, granule, serial, seq, crc, nseg
FLAG_CONTINUED = 0x01
FLAG_BOS = 0x02
FLAG_EOS = 0x04
MAX_SEGMENTS = 255

# Ogg's CRC is the unreflected form of the CRC-32 polynomial. zlib computes
# the reflected form in C; reflecting every input byte and the result turns
# one into the other, which is ~50x faster than a table loop in Python.
_REVERSE_BYTE = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))


def _reverse32(x: int) -> int:
    return int(f"{x:032b}"[::-1], 2)


def ogg_crc(data: bytes) -> int:
    """CRC of an Ogg page (with its CRC field zeroed)."""
    # zlib.crc32(data, 0xFFFFFFFF) starts from an internal state of 0 and
    # xors the result with 0xFFFFFFFF: undo that xor for Ogg's "no xorout".
    reflected = zlib.crc32(data.translate(_REVERSE_BYTE), 0xFFFFFFFF) ^ 0xFFFFFFFF
    return _reverse32(reflected)


def lacing(length: int) -> bytes:
    """Lacing values for one complete packet of ``length`` bytes."""
    return b"\xff" * (length // 255) + bytes([length % 255])


def build_page(packets: list[bytes], *, serial: int, sequence: int, granule: int,
               bos: bool = False, eos: bool = False) -> bytes:
    """One page holding whole packets (we never split a packet across pages)."""
    table = b"".join(lacing(len(p)) for p in packets)
    if len(table) > MAX_SEGMENTS:
        raise OggError(f"{len(table)} segments do not fit in one Ogg page")
    flags = (FLAG_BOS if bos else 0) | (FLAG_EOS if eos else 0)
    header = HEADER.pack(CAPTURE, 0, flags, granule, serial, sequence, 0, len(table))
    page = bytearray(header + table + b"".join(packets))
    struct.pack_into("<I", page, 22, ogg_crc(bytes(page)))
    return bytes(page)


@dataclass
class Page:
    flags: int
    granule: int
    serial: int
    sequence: int
    offset: int               # where the page starts in the scanned bytes
    length: int               # whole page, header included
    packets: list[bytes] = field(default_factory=list)
    #: the last packet continues on the next page (we never write such pages)
    open_packet: bytes | None = None

    @property
    def bos(self) -> bool:
        return bool(self.flags & FLAG_BOS)

    @property
    def eos(self) -> bool:
        return bool(self.flags & FLAG_EOS)


@dataclass
class ScanResult:
    pages: list[Page]
    #: bytes after the last complete page that do not form a page (a cut file)
    trailing_bytes: int
    #: pages skipped because their CRC failed or their header was invalid
    damaged: int


def parse_page(data: bytes, offset: int) -> Page | None:
    """The page at ``offset``, or None if it is incomplete; OggError if invalid."""
    if len(data) - offset < HEADER.size:
        return None
    capture, version, flags, granule, serial, seq, crc, nseg = HEADER.unpack_from(data, offset)
    if capture != CAPTURE:
        raise OggError(f"no Ogg page at byte {offset}")
    if version != 0:
        raise OggError(f"unsupported Ogg version {version} at byte {offset}")
    table_end = offset + HEADER.size + nseg
    if len(data) < table_end:
        return None
    table = data[offset + HEADER.size:table_end]
    end = table_end + sum(table)
    if len(data) < end:
        return None
    raw = bytearray(data[offset:end])
    struct.pack_into("<I", raw, 22, 0)
    if ogg_crc(bytes(raw)) != crc:
        raise OggError(f"Ogg page CRC mismatch at byte {offset}")
    page = Page(flags, granule, serial, seq, offset, end - offset)
    pos, current = table_end, bytearray()
    for lace in table:
        current += data[pos:pos + lace]
        pos += lace
        if lace < 255:
            page.packets.append(bytes(current))
            current = bytearray()
    if current:
        page.open_packet = bytes(current)
    return page


def scan_pages(data: bytes, *, strict: bool = False) -> ScanResult:
    """Every complete, intact page in ``data``.

    A cut file ends in an incomplete page: it is counted in ``trailing_bytes``
    and the pages before it are returned. With ``strict`` a damaged page
    raises; otherwise the scanner resynchronises on the next capture pattern
    and counts the damage, so one bad page costs one page, not the file.
    """
    pages: list[Page] = []
    damaged = 0
    offset = 0
    while offset < len(data):
        try:
            page = parse_page(data, offset)
        except OggError:
            if strict:
                raise
            damaged += 1
            nxt = data.find(CAPTURE, offset + 1)
            if nxt < 0:
                return ScanResult(pages, 0, damaged)
            offset = nxt
            continue
        if page is None:
            return ScanResult(pages, len(data) - offset, damaged)
        pages.append(page)
        offset += page.length
    return ScanResult(pages, 0, damaged)
