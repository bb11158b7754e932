"""Caller-ID message layers and receiver: what a technician would check on a line (R4)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from appliance.dsp.callerid import (
    AbsentReason, CallerIdReceiver, CallerIdSpec, Standard, clip_frame, crc16_kermit,
    decode_caller_id, encode_caller_id, jclip_frame, modulate_frame,
)

# shared/reference/telephony.md §1.5, computed by shared/tools/telephony_vectors.py
VECTORS = {
    "0263345000": "90 81 87 90 82 C0 0C 82 0A 30 B2 36 33 33 B4 35 30 30 30 90 03 A1 F1",
    "P": "90 81 87 90 82 C0 03 84 81 50 90 03 1E EE",
    "O": "90 81 87 90 82 C0 03 84 81 CF 90 03 A0 2D",
    "C": "90 81 87 90 82 C0 03 84 81 C3 90 03 03 88",
}
STANDARDS = pytest.mark.parametrize("std", ["jclip", "bellcore", "etsi"])


def quiet(x, lead=0.3, tail=0.3):
    return np.concatenate((np.zeros(int(lead * 8000)), x, np.zeros(int(tail * 8000))))


def test_crc_is_the_kermit_crc_with_check_value_0x2189():
    assert crc16_kermit(b"123456789") == 0x2189


@pytest.mark.parametrize("key", VECTORS)
def test_jclip_frames_match_the_reference_byte_vectors(key):
    kw = {"number": key} if key.isdigit() else {"absent_code": key}
    frame = jclip_frame(**kw)
    assert frame == bytes.fromhex(VECTORS[key])
    assert crc16_kermit(frame[2:]) == 0                      # zero residue, header…CRC


@pytest.mark.parametrize("key", VECTORS)
def test_reference_vectors_modulated_decode_to_their_meaning(key):
    x = quiet(modulate_frame("jclip", bytes.fromhex(VECTORS[key])))
    (m,) = decode_caller_id(x, "jclip")
    assert m.checksum_ok and m.standard is Standard.JCLIP
    if key.isdigit():
        assert (m.number, m.absent_reason, m.absent_code) == (key, None, None)
    else:
        reason = {"P": "withheld", "O": "unavailable", "C": "public_phone"}[key]
        assert (m.number, m.absent_reason, m.absent_code) == (None, reason, key)


def test_reason_s_is_reported_as_unavailable_keeping_the_raw_code():
    (m,) = decode_caller_id(quiet(encode_caller_id("jclip", absent_code="S")))
    assert (m.number, m.absent_reason, m.absent_code) == (None, AbsentReason.UNAVAILABLE, "S")


@STANDARDS
@pytest.mark.parametrize("mode", ["auto", "forced"])
def test_each_standard_round_trips_number_and_called_number(std, mode):
    x = quiet(encode_caller_id(std, "0312345678", called_number="0263345001"))
    msgs = decode_caller_id(x, "auto" if mode == "auto" else std)
    assert [(m.standard, m.number, m.called_number, m.checksum_ok) for m in msgs] == [
        (Standard(std), "0312345678", "0263345001", True)]
    assert msgs[0].start_s > 0.3                             # after the lead-in silence


@STANDARDS
@pytest.mark.parametrize("code,reason", [("P", "withheld"), ("O", "unavailable")])
def test_absence_reasons_in_every_standard(std, code, reason):
    (m,) = decode_caller_id(quiet(encode_caller_id(std, absent_code=code)))
    assert (m.number, str(m.absent_reason), m.absent_code) == (None, reason, code)


def test_bellcore_sdmf_number_and_reason():
    (m,) = decode_caller_id(quiet(encode_caller_id("bellcore", "5551234", sdmf=True)))
    assert (m.standard, m.number, m.message_type) == (Standard.BELLCORE, "5551234", 0x04)
    (m,) = decode_caller_id(quiet(encode_caller_id("bellcore", absent_code="P", sdmf=True)))
    assert (m.number, m.absent_code) == (None, "P")


def test_forcing_the_other_standard_finds_nothing():
    x = quiet(encode_caller_id("jclip", "0263345000"))
    assert decode_caller_id(x, "bellcore") == [] and decode_caller_id(x, "etsi") == []
    y = quiet(encode_caller_id("bellcore", "0263345000"))
    assert decode_caller_id(y, "jclip") == [] and decode_caller_id(y, "etsi") == []


def test_unknown_jclip_parameters_are_skipped_by_length():
    frame = jclip_frame("0263345000", called_number="0263345001",
                        extra_params=((0x21, b"215"), (0x22, b"215"), (0x7E, b"\x00\x01")))
    (m,) = decode_caller_id(quiet(modulate_frame("jclip", frame)))
    assert (m.number, m.called_number, m.checksum_ok) == ("0263345000", "0263345001", True)
    assert (0x21, b"215") in m.parameters


def test_jclip_dle_bytes_are_stuffed_and_unstuffed():
    # a parameter holding 0x10 and a body of exactly 16 bytes (LEN == DLE, stuffed too)
    frame = jclip_frame("0263345000", extra_params=((0x21, b"\x10\x10"),))
    assert frame.count(bytes([0x90, 0x90])) >= 2           # DLE with its parity bit, doubled
    (m,) = decode_caller_id(quiet(modulate_frame("jclip", frame)))
    assert m.checksum_ok and (0x21, b"\x10\x10") in m.parameters and m.number == "0263345000"
    frame16 = jclip_frame("02633450001234")                  # 2 + 14 = 16 body bytes
    assert frame16[6:8] == bytes([0x90, 0x90])
    (m,) = decode_caller_id(quiet(modulate_frame("jclip", frame16)))
    assert (m.number, m.checksum_ok) == ("02633450001234", True)


@STANDARDS
def test_a_flipped_bit_is_reported_as_a_failed_checksum_never_as_a_number(std):
    frame = bytearray(jclip_frame("0263345000") if std == "jclip" else clip_frame("0263345000"))
    i = frame.index(b"5")
    frame[i] ^= 0x01                                         # one bit of a digit
    (m,) = decode_caller_id(quiet(modulate_frame(std, bytes(frame))))
    assert (m.checksum_ok, m.number, m.absent_reason, m.called_number) == (False, None, None, None)


@STANDARDS
def test_a_truncated_message_yields_nothing(std):
    x = encode_caller_id(std, "0263345000")
    for keep in (0.5, 0.8, 0.95):
        assert decode_caller_id(quiet(x[: int(keep * x.size)])) == []


def _garbage():
    rng = np.random.default_rng(11)
    sig = encode_caller_id("jclip", "0263345000")
    return {
        "silence": np.zeros(16000),
        "white noise": rng.normal(0, 3000, 16000),
        "loud noise, clipped": np.clip(rng.normal(0, 30000, 16000), -32768, 32767),
        "dc": np.full(16000, 12000.0),
        "random bytes as audio": rng.integers(-32768, 32767, 16000).astype(np.int16),
        "clipped fsk": np.clip(quiet(sig, 0.1, 0.1) * 20, -32768, 32767),
        "fsk buried in noise": quiet(sig, 0.1, 0.1) + rng.normal(0, 20000, sig.size + 1600),
        "tone 1700 Hz": 8000 * np.sin(2 * np.pi * 1700 * np.arange(16000) / 8000),
    }


@pytest.mark.parametrize("name", list(_garbage()))
def test_garbage_raises_nothing_and_invents_no_number(name):
    x = _garbage()[name]
    for msg in decode_caller_id(x):
        if name == "clipped fsk":                            # hard clipping keeps FSK decodable
            assert msg.number in (None, "0263345000")
        else:
            assert msg.number is None and msg.called_number is None


def test_long_random_audio_yields_no_valid_message():
    rng = np.random.default_rng(2024)
    r = CallerIdReceiver()
    found = []
    for _ in range(30):                                       # 30 s of random samples, bounded
        found += r.feed(rng.integers(-32768, 32767, 8000).astype(np.int16))
    assert not [m for m in found if m.checksum_ok]


_LINE = np.concatenate([quiet(encode_caller_id(s, "0263345000"), 0.05, 0.05)
                        for s in ("etsi", "jclip", "bellcore")])
_LINE = _LINE + np.random.default_rng(7).normal(0, 500, _LINE.size)


@settings(max_examples=25, deadline=None)
@given(cuts=st.lists(st.integers(min_value=1, max_value=2000), min_size=1, max_size=40))
def test_receiver_results_do_not_depend_on_chunking(cuts):
    whole = CallerIdReceiver().feed(_LINE)
    assert [str(m.standard) for m in whole] == ["etsi", "jclip", "bellcore"]
    r, got, pos = CallerIdReceiver(), [], 0
    for n in cuts * (_LINE.size // sum(cuts) + 1):
        if pos >= _LINE.size:
            break
        got += r.feed(_LINE[pos:pos + n])
        pos += n
    assert got == whole


def test_frame_by_frame_equals_whole_file_and_reset_restarts_time():
    r = CallerIdReceiver()
    frames = [m for i in range(0, _LINE.size, 160) for m in r.feed(_LINE[i:i + 160])]
    assert frames == CallerIdReceiver().feed(_LINE)
    r.reset()
    assert r.feed(_LINE) == frames


def test_spec_rejects_unknown_standard():
    with pytest.raises(ValueError):
        CallerIdSpec("v23")


def test_json_form_has_the_contract_keys():
    (m,) = decode_caller_id(quiet(encode_caller_id("jclip", absent_code="P")))
    j = m.to_json()
    assert {"standard", "number", "absent_reason", "called_number", "checksum_ok",
            "start_s"} <= set(j)
    assert (j["standard"], j["absent_reason"], j["number"]) == ("jclip", "withheld", None)
