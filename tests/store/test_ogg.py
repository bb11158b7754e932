"""Ogg framing: CRC, lacing, pages, and the scanner on cut and damaged data."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings, strategies as st

from appliance.errors import OggError
from appliance.store import ogg


def crc_reference(data: bytes) -> int:
    """Bitwise Ogg CRC straight from RFC 3533's definition (slow, obviously right)."""
    crc = 0
    for b in data:
        crc ^= b << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if crc & 0x80000000 else (crc << 1) & 0xFFFFFFFF
    return crc


@given(st.binary(max_size=600))
@settings(max_examples=200)
def test_crc_matches_the_bitwise_definition(data):
    assert ogg.ogg_crc(data) == crc_reference(data)


def test_crc_of_known_page_header():
    # a page built by hand with a CRC from the reference must parse
    page = ogg.build_page([b"hello"], serial=7, sequence=0, granule=0, bos=True)
    raw = bytearray(page)
    stored = struct.unpack_from("<I", raw, 22)[0]
    struct.pack_into("<I", raw, 22, 0)
    assert stored == crc_reference(bytes(raw))


@pytest.mark.parametrize("length, expected", [
    (0, b"\x00"), (1, b"\x01"), (254, b"\xfe"), (255, b"\xff\x00"), (256, b"\xff\x01"),
    (510, b"\xff\xff\x00"),
])
def test_lacing(length, expected):
    assert ogg.lacing(length) == expected


@given(st.lists(st.binary(max_size=700), min_size=1, max_size=20))
@settings(max_examples=100)
def test_page_round_trip(packets):
    total = sum(len(p) // 255 + 1 for p in packets)
    if total > 255:
        with pytest.raises(OggError):
            ogg.build_page(packets, serial=1, sequence=3, granule=960)
        return
    page = ogg.build_page(packets, serial=1, sequence=3, granule=960, eos=True)
    scan = ogg.scan_pages(page, strict=True)
    assert len(scan.pages) == 1
    got = scan.pages[0]
    assert got.packets == packets
    assert (got.serial, got.sequence, got.granule, got.eos, got.bos) == (1, 3, 960, True, False)


def _stream(n_pages=5):
    return b"".join(ogg.build_page([bytes([i]) * (40 + i)], serial=9, sequence=i, granule=i * 960)
                    for i in range(n_pages))


def test_cut_anywhere_yields_every_complete_page():
    data = _stream()
    ends = [p.offset + p.length for p in ogg.scan_pages(data).pages]
    for cut in range(len(data) + 1):
        scan = ogg.scan_pages(data[:cut])
        complete = sum(1 for e in ends if e <= cut)
        assert len(scan.pages) == complete, cut
        assert scan.trailing_bytes == cut - (ends[complete - 1] if complete else 0)
        assert scan.damaged == 0


def test_damaged_page_costs_one_page_and_is_counted():
    data = bytearray(_stream())
    pages = ogg.scan_pages(bytes(data)).pages
    victim = pages[2]
    data[victim.offset + victim.length - 1] ^= 0x40      # a payload byte of page 2
    scan = ogg.scan_pages(bytes(data))
    assert [p.sequence for p in scan.pages] == [0, 1, 3, 4]
    assert scan.damaged == 1
    with pytest.raises(OggError, match="CRC"):
        ogg.scan_pages(bytes(data), strict=True)


def test_not_ogg_is_refused_in_strict_mode():
    with pytest.raises(OggError):
        ogg.scan_pages(b"RIFF" + b"\0" * 100, strict=True)
