"""Talk audio for simulated calls: deterministic, generated on demand, cheap for an hour.

Speech is cut from a small pool of speech-like blocks (appliance.dsp.gen) in a
per-call order, so a one-hour call costs no more memory than a short one and
the tests can regenerate exactly what the simulator put on the wire
(:func:`talk_audio`). The parties take turns: the far party speaks first
(an outgoing call's connect is heard as the far party's first words), then
the staff side, ``TURN_S`` each.
"""

from __future__ import annotations

import functools
import wave

import numpy as np

from appliance.dsp import gen
from appliance.errors import ScenarioError
from appliance.units import DBm0, LINE_RATE

TURN_S = 3.0
POOL_BLOCKS = 12
BLOCK_S = 3.0
SPEECH_LEVEL = DBm0(-16.0)
TONE_LEVEL = DBm0(-15.0)


@functools.lru_cache(maxsize=1)
def _pool() -> tuple[tuple[np.ndarray, ...], ...]:
    blocks = []
    for i in range(POOL_BLOCKS):
        x = gen.speech_like(BLOCK_S, SPEECH_LEVEL, seed=7000 + i)
        loud = np.flatnonzero(np.abs(x) > 300)
        # each block starts on sound: a turn's first words start when the turn does
        blocks.append(x[loud[0]:] if loud.size else x)
    return tuple(blocks)


class _Speech:
    def __init__(self, seed: int) -> None:
        pool = _pool()
        order = np.random.default_rng(seed).permutation(len(pool))
        self._cycle = np.concatenate([pool[i] for i in order])

    def take(self, offset: int, n: int) -> np.ndarray:
        c = self._cycle
        idx = (np.arange(offset, offset + n) % c.size)
        return c[idx]


@functools.lru_cache(maxsize=64)
def _wav(path: str) -> np.ndarray:
    try:
        with wave.open(path) as w:
            if w.getframerate() != LINE_RATE or w.getsampwidth() != 2 or w.getnchannels() != 1:
                raise ScenarioError(f"{path}: audio must be 8 kHz 16-bit mono WAV")
            return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)
    except (OSError, wave.Error, EOFError) as exc:
        raise ScenarioError(f"{path}: cannot read audio ({exc})") from None


@functools.lru_cache(maxsize=256)
def _speech(seed: int) -> _Speech:
    return _Speech(seed)


def talk_audio(spec: str, seed: int, leg: str, offset: int, n: int) -> np.ndarray:
    """``n`` samples of one leg's talk audio from ``offset`` samples after answer/connect."""
    if spec == "speech":
        x = _speech(seed).take(offset, n)
        turn = ((np.arange(offset, offset + n) // int(TURN_S * LINE_RATE)) % 2) == 0
        mine = turn if leg == "far" else ~turn
        return np.where(mine, x, 0).astype(np.int16)
    if spec.startswith("tone:"):
        f = float(spec[5:])
        t = np.arange(offset, offset + n) / LINE_RATE
        from appliance.dsp import sine_amplitude
        return gen.saturate(sine_amplitude(TONE_LEVEL) * np.sin(2 * np.pi * f * t))
    if spec.startswith("wav:"):
        x = _wav(spec[4:])
        out = np.zeros(n, np.int16)
        lo, hi = min(offset, x.size), min(offset + n, x.size)
        out[:hi - lo] = x[lo:hi]
        return out
    raise ScenarioError(f"unknown audio source {spec!r}")


def call_seed(call_index: int, leg: str) -> int:
    return 2 * call_index + (0 if leg == "far" else 1)
