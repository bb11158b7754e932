"""Sealed recordings: unreadable without the key, any alteration detected, cuts recovered."""

from __future__ import annotations

import secrets
from datetime import datetime, timezone

import numpy as np
import pytest

from appliance.errors import SealedFileError
from appliance.store import sealed
from appliance.store.opus import read_recording
from appliance.store.recording import CallTags, RecordingEncoder

KEY = bytes(range(32))


def make_file(frames: int = 150, key: bytes = KEY) -> bytes:
    tags = CallTags("C1", "東庁舎", "T1", 1, datetime(2026, 1, 5, tzinfo=timezone.utc))
    enc = RecordingEncoder(tags, "00ff", key)
    rng = np.random.default_rng(3)
    out = [enc.start()]
    for _ in range(frames):
        out.append(enc.write(rng.normal(0, 3000, 160).astype(np.int16),
                             rng.normal(0, 1000, 160).astype(np.int16)))
    out.append(enc.close())
    return b"".join(out)


@pytest.fixture(scope="module")
def sealed_file():
    return make_file()


def test_round_trip(sealed_file):
    opened = sealed.open_sealed(sealed_file, KEY)
    assert opened.complete
    rec = read_recording(opened.payload)
    assert len(rec.far) == 150 * 160 and not rec.truncated
    layout = sealed.read_layout(sealed_file)
    assert layout.complete and layout.samples == 150 * 160
    assert (layout.call_id, layout.key_id) == ("C1", "00ff")


def test_nothing_in_clear(sealed_file):
    for marker in (b"OggS", b"OpusHead", b"OpusTags", "東庁舎".encode(), b"TRUNK=T1"):
        assert marker not in sealed_file, marker


def test_wrong_key_fails(sealed_file):
    with pytest.raises(SealedFileError):
        sealed.open_sealed(sealed_file, secrets.token_bytes(32))


def test_every_flipped_byte_is_detected():
    data = make_file(frames=60)
    for i in range(len(data)):
        altered = bytearray(data)
        altered[i] ^= 0x01
        try:
            opened = sealed.open_sealed(bytes(altered), KEY)
        except SealedFileError:
            continue
        # a flip in the clear framing may only ever read as a cut, never as intact
        assert not opened.complete, f"flip at byte {i} went unnoticed"


def test_cut_anywhere_yields_every_complete_chunk(sealed_file):
    chunks = sealed.read_layout(sealed_file).chunks
    header_end = chunks[0].offset
    for cut in range(header_end, len(sealed_file), 7):
        opened = sealed.open_sealed(sealed_file[:cut], KEY)
        done = [c for c in chunks if c.offset + sealed.FRAME.size + c.clen <= cut]
        assert not opened.complete
        assert opened.samples == (done[-1].samples_end if done else 0)
        if len(done) >= 1:
            rec = read_recording(opened.payload)
            assert rec.truncated
            assert len(rec.far) >= opened.samples - 160 - 52   # all but the look-ahead


def test_chunks_come_at_least_once_a_second(sealed_file):
    ends = [c.samples_end for c in sealed.read_layout(sealed_file).chunks]
    gaps = np.diff(ends)
    assert gaps.max() <= 8000


def test_chunk_reordering_is_detected():
    data = make_file(frames=120)
    layout = sealed.read_layout(data)
    a, b = layout.chunks[1], layout.chunks[2]
    ca = data[a.offset:b.offset]
    cb = data[b.offset:b.offset + sealed.FRAME.size + b.clen]
    swapped = data[:a.offset] + cb + ca + data[b.offset + len(cb):]
    with pytest.raises(SealedFileError):
        sealed.open_sealed(swapped, KEY)


@pytest.mark.parametrize("data", [b"", b"ACRSEAL", b"garbage" * 10, b"ACRSEAL\x00\x09\x00\x00"])
def test_malformed_files_get_a_clear_error(data):
    with pytest.raises(SealedFileError):
        sealed.read_layout(data)
