"""FSK modem: characters in, characters out, whatever the chunking (V.23, Bell 202)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from appliance.dsp.fsk import BELL202, V23, FskReceiver, FskSpec, async_bits, fsk_modulate

MODEMS = pytest.mark.parametrize("spec", [V23, BELL202], ids=["v23", "bell202"])
DATA = bytes(range(0, 256, 7)) + b"\x00\xff\x55\xaa"


def burst(data: bytes, spec, *, marks=40, stops=1, level=-14.0, offset=0.0, lead=400):
    bits = np.concatenate((np.ones(marks, np.uint8), async_bits(data, stops), np.ones(5, np.uint8)))
    x = fsk_modulate(bits, spec, level_dbm0=level, freq_offset=offset)
    return np.concatenate((np.zeros(lead), x, np.zeros(400)))


def received(x, spec) -> bytes:
    return bytes(c.value for c in FskReceiver(spec).feed(x))


@MODEMS
@pytest.mark.parametrize("stops", [1, 2, 4])
def test_every_byte_value_round_trips_with_any_number_of_stop_bits(spec, stops):
    assert received(burst(DATA, spec, stops=stops), spec) == DATA


@MODEMS
@pytest.mark.parametrize("offset", [-0.03, -0.015, 0.015, 0.03])
def test_tone_offsets_within_three_percent_are_tolerated(spec, offset):
    assert received(burst(DATA, spec, offset=offset), spec) == DATA


def test_start_time_is_the_leading_edge_of_the_start_bit():
    x = burst(b"\x42", V23, marks=40, lead=800)
    (c,) = FskReceiver(V23).feed(x)
    expected = (800 + 40 * 8000 / 1200) / 8000
    assert abs(c.start_s - expected) < 0.5 / 1200          # within half a bit
    assert c.end_s == pytest.approx(c.start_s + 10 / 1200)


def test_channel_seizure_frames_as_0x55_and_mark_period_as_nothing():
    bits = np.concatenate((np.arange(300) & 1, np.ones(180), async_bits(b"\x80", 1), np.ones(5)))
    x = np.concatenate((np.zeros(400), fsk_modulate(bits, BELL202), np.zeros(400)))
    chars = FskReceiver(BELL202).feed(x)
    assert [c.value for c in chars[:-1]] == [0x55] * len(chars[:-1])
    assert len(chars) >= 25                                   # most of the 30 seizure characters
    assert chars[-1].value == 0x80 and chars[-1].gap_bits > 170


def test_silence_dc_and_weak_tone_below_the_gate_yield_no_characters():
    r = FskReceiver(V23)
    assert r.feed(np.zeros(8000)) == []
    assert r.feed(np.full(8000, 20000.0)) == []
    assert received(burst(DATA, V23, level=-60), V23) == b""


@MODEMS
def test_int16_and_float_input_give_the_same_characters(spec):
    x = np.rint(burst(DATA, spec))
    assert received(x.astype(np.int16), spec) == received(x, spec) == DATA


_SIGNAL = burst(DATA[:12], V23, offset=0.01)
_NOISE = np.random.default_rng(5).normal(0, 800, _SIGNAL.size)


@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.integers(min_value=1, max_value=700), min_size=1, max_size=60))
def test_results_do_not_depend_on_chunking(cuts):
    x = _SIGNAL + _NOISE                       # noisy, so zero crossings are fragile
    whole = FskReceiver(V23).feed(x)
    r, got, pos = FskReceiver(V23), [], 0
    for n in cuts * (x.size // max(sum(cuts), 1) + 1):
        if pos >= x.size:
            break
        got += r.feed(x[pos:pos + n])
        pos += n
    got += r.feed(x[pos:])
    assert got == whole
    assert DATA[:12] in bytes(c.value for c in whole)


def test_reset_restarts_time_and_framing():
    x = burst(b"\x31\x32", V23)
    r = FskReceiver(V23)
    first = r.feed(x)
    r.reset()
    assert r.feed(x) == first


def test_spec_rejects_impossible_modems():
    with pytest.raises(ValueError):
        FskSpec("bad", 1300, 1300)
    with pytest.raises(ValueError):
        FskSpec("bad", 1300, 4100)


def test_modulator_is_phase_continuous_and_at_the_asked_level():
    x = fsk_modulate(np.tile([0, 1], 600), V23, level_dbm0=-14.0)
    assert np.max(np.abs(np.diff(x))) < 2 * np.pi * 2100 / 8000 * np.max(np.abs(x)) * 1.01
    rms_dbm0 = 20 * np.log10(np.sqrt(np.mean(x ** 2)) * np.sqrt(2) / 32767) + 3.14
    assert rms_dbm0 == pytest.approx(-14.0, abs=0.05)
