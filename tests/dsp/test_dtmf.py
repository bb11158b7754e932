"""DTMF receiver: what a technician reading dialled numbers relies on."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from appliance.dsp import DtmfReceiver, DtmfSpec, decode_dtmf, gen
from appliance.dsp.g711 import ulaw_roundtrip

ALL = "123A456B789C*0#D"


def digits_of(x, spec=DtmfSpec()) -> str:
    return "".join(d.digit for d in decode_dtmf(x, spec))


def test_every_digit_decodes_once_with_its_timing():
    x = np.concatenate((gen.silence(100), gen.dtmf(ALL, level=-10, on=50, off=50)))
    found = decode_dtmf(ulaw_roundtrip(x))
    assert "".join(d.digit for d in found) == ALL
    for i, d in enumerate(found):
        on = 0.1 + i * 0.1
        # a block (12.75 ms) of resolution on each edge, plus the start/stop rules
        assert on - 0.03 <= d.start_s <= on + 0.015
        assert on + 0.05 - 0.015 <= d.end_s <= on + 0.05 + 0.015


@pytest.mark.parametrize("on,off", [(50, 30), (40, 30), (40, 50), (60, 30), (100, 100)])
def test_japanese_and_att_minimum_timing(on, off):
    """50 ms / 30 ms is what Japanese exchanges accept; 40 ms tones, 30 ms pauses are our floor."""
    number = "0263345000" + ALL
    x = gen.dtmf(number, level=-12, twist=2, on=on, off=off)
    assert digits_of(ulaw_roundtrip(x)) == number


def test_repeated_digit_with_30_ms_pauses_is_not_merged():
    x = gen.dtmf("1111100000", level=-10, on=40, off=30)
    assert digits_of(ulaw_roundtrip(x)) == "1111100000"


@pytest.mark.parametrize("ms", [5, 10, 15, 20])
def test_bursts_of_20_ms_or_less_are_never_digits(ms):
    # two full 12.75 ms blocks are needed: 25.5 ms at least
    x = gen.dtmf("5" * 20, level=-6, on=ms, off=80)
    assert digits_of(x) == ""


def test_digits_over_japanese_dial_tone():
    """400 Hz dial tone under the digits (telephony.md §2.4) up to 10 dB above them."""
    d = gen.dtmf(ALL * 2, level=-15).astype(float)
    for dial in (-20.0, -10.0, -5.0):
        x = gen.saturate(d + gen.sine(400, dial, d.size / 8))
        assert digits_of(ulaw_roundtrip(x)) == ALL * 2, dial


def test_digits_over_dc_and_hum():
    d = gen.dtmf(ALL, level=-15).astype(float)
    x = gen.saturate(d + 3000.0 + gen.sine(50, -20, d.size / 8))
    assert digits_of(x) == ALL


def test_finish_reports_a_digit_cut_by_the_end_of_audio_and_reset_forgets():
    rx = DtmfReceiver()
    x = gen.dtmf("7", level=-10, on=200, off=0)
    assert rx.feed(x) == []
    [d] = rx.finish()
    assert d.digit == "7" and d.end_s == pytest.approx(0.2, abs=0.015)
    assert rx.finish() == []
    rx.feed(gen.dtmf("8", level=-10, on=200, off=0))
    rx.reset()
    assert rx.feed(gen.silence(200)) == [] and rx.finish() == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cuts=st.lists(st.integers(min_value=0, max_value=12000), max_size=25),
       seed=st.integers(0, 1000))
def test_events_do_not_depend_on_chunking(cuts, seed):
    rng = np.random.default_rng(seed)
    number = "".join(rng.choice(list(ALL), size=6))
    x = gen.saturate(gen.dtmf(number, level=-20, on=45, off=35).astype(float)
                     + gen.noise(6 * 640, -45, seed))
    x = np.concatenate((x, gen.speech_like(0.5, seed=seed)))
    whole = decode_dtmf(x)
    rx = DtmfReceiver()
    got = []
    for part in np.split(x, sorted(c % (x.size + 1) for c in cuts)):
        got += rx.feed(part)
    got += rx.finish()
    assert got == whole
    assert "".join(d.digit for d in whole) == number


@pytest.mark.parametrize("name,signal", [
    ("silence", lambda: np.zeros(80000, np.int16)),
    ("white noise -10 dBm0", lambda: gen.saturate(gen.noise(80000, -10, 1))),
    ("clipped noise", lambda: gen.saturate(gen.noise(80000, 10, 2) * 8)),
    ("DC", lambda: np.full(80000, 20000, np.int16)),
    ("full-scale square 1 kHz", lambda: np.where(np.arange(80000) % 8 < 4, 32767, -32768)),
    ("random bytes", lambda: np.frombuffer(np.random.default_rng(3).bytes(160000), "<i2")),
    ("speech-like", lambda: gen.speech_like(10, level=-10, seed=9)),
    ("NaN and inf floats", lambda: np.array([np.nan, np.inf, -np.inf, 1e30] * 20000)),
])
def test_garbage_gives_no_digit_and_no_exception(name, signal):
    assert decode_dtmf(signal()) == [], name


def test_huge_and_empty_chunks():
    rx = DtmfReceiver()
    assert rx.feed(np.zeros(0)) == []
    assert rx.feed([]) == []
    big = np.tile(gen.dtmf("9", level=-10, on=60, off=60), 2000)      # 4 minutes in one call
    assert len(rx.feed(big) + rx.finish()) == 2000


def test_spec_is_frozen_and_in_real_units():
    spec = DtmfSpec()
    with pytest.raises(AttributeError):
        spec.threshold = -50          # type: ignore[misc]
    assert spec.freq_tolerance == pytest.approx(0.025)
    assert spec.high_over_low >= 6 and spec.low_over_high >= 8
