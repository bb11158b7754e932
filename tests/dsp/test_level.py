"""Levels per leg: dBm0, dBFS, peak, clipping, voice activity."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from appliance.dsp import LevelMeter, gen, level_dbm0, sine_amplitude
import _spandsp_dtmf as R


@pytest.mark.parametrize("level", [0.0, -10.0, -30.0])
def test_sine_reads_its_level(level):
    x = gen.saturate(gen.sine(1004, level, 1000))
    frames = LevelMeter().feed(x)
    assert len(frames) == 50
    for f in frames:
        assert f.level_dbm0 == pytest.approx(level, abs=0.05)
        assert f.level_dbfs == pytest.approx(level - 3.14, abs=0.05)
        assert f.peak_dbfs == pytest.approx(level - 3.14, abs=0.1)


def test_our_dbm0_agrees_with_spandsps_generator():
    """spandsp's dtmf_tx at -10 dBm0 per tone: two tones read -10 + 3 dB."""
    x = R.spandsp_generate([("5", -10, 0, 1000, 0)])
    assert level_dbm0(x[800:7200]) == pytest.approx(-10 + 10 * np.log10(2), abs=0.2)
    assert sine_amplitude(3.14) == pytest.approx(32767, rel=1e-4)


def test_clipping_is_counted():
    x = gen.saturate(gen.sine(1000, 3.14, 100) * 2)
    frames = LevelMeter().feed(x)
    assert all(f.clipped > 20 for f in frames)
    assert all(f.clipped == 0 for f in LevelMeter().feed(gen.saturate(gen.sine(1000, -3, 100))))


def test_voice_activity_follows_speech_not_line_noise():
    noise = gen.saturate(gen.noise(8000 * 3, -60, 1))
    speech = gen.speech_like(3.0, level=-20, seed=2)
    x = np.concatenate((noise, noise + speech, noise))
    act = np.array([f.active for f in LevelMeter().feed(x)])
    assert act[:150].sum() == 0
    assert act[150:300].mean() > 0.7
    assert act[330:].sum() == 0               # hangover 300 ms, then quiet


def test_silence_and_garbage_read_the_floor_and_do_not_raise():
    frames = LevelMeter().feed(np.zeros(800, np.int16))
    assert all(f.level_dbm0 == -99.0 and f.level_dbfs == -99.0 and not f.active for f in frames)
    m = LevelMeter()
    assert m.feed([]) == []
    out = m.feed(np.array([np.nan, np.inf, -np.inf] * 1000))
    assert len(out) == 18 and all(np.isfinite(f.level_dbm0) for f in out)


@settings(max_examples=30, deadline=None)
@given(cuts=st.lists(st.integers(0, 16000), max_size=20))
def test_frames_do_not_depend_on_chunking(cuts):
    x = np.concatenate((gen.speech_like(1.0, seed=1), gen.silence(1000)))
    expected = LevelMeter().feed(x)
    m = LevelMeter()
    got = []
    for part in np.split(x, sorted(c % (x.size + 1) for c in cuts)):
        got += m.feed(part)
    assert got == expected
