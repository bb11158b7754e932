"""Voice onset: the first words on a leg that is not a call-progress tone.

An analog line says nothing when the far party answers an outgoing call
(polarity reversal is contract-dependent: telephony.md §2.4), so the engine
dates the connect by the far party's first sound after dialling that is
neither silence nor the 400 Hz dial/ringback/busy tone.

How: 20 ms blocks aligned to the first sample fed. A block is *voice* when
its power (DC removed) is above ``threshold`` and less than ``max_tone_share``
of it lies within ±50 Hz of 400 Hz (each 10 ms half's DFT at 400 Hz, so AM
ringback's 15–20 Hz sidebands count as tone). Two voice blocks in a row make
an onset, dated at the first sample of the first block whose magnitude
reaches ``edge`` (sample resolution, not block). Pure numpy, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from appliance.dsp.level import dbm0_to_power, sine_amplitude
from appliance.units import DBm0, LINE_RATE

BLOCK = 160


@dataclass(frozen=True)
class OnsetSpec:
    threshold: DBm0 = DBm0(-42.0)
    max_tone_share: float = 0.5
    #: sample magnitude that dates the onset inside its block
    edge: DBm0 = DBm0(-40.0)


class VoiceOnset:
    """``feed(samples) -> [sample index of each onset]`` (indices since the first sample fed)."""

    def __init__(self, spec: OnsetSpec = OnsetSpec()) -> None:
        self.spec = spec
        m = np.arange(BLOCK)
        half = BLOCK // 2
        w = np.exp(-2j * np.pi * 400.0 * m / LINE_RATE)
        h = np.column_stack((np.where(m < half, w, 0), np.where(m >= half, w, 0)))
        self._basis = np.hstack((h.real, h.imag)) / half
        self._thr = dbm0_to_power(spec.threshold)
        self._edge = sine_amplitude(spec.edge)
        self.reset()

    def reset(self) -> None:
        self._buf = np.zeros(0)
        self._base = 0              # sample index of _buf[0]
        self._prev: int | None = None   # start of the previous voice block
        self._in_voice = False

    def feed(self, samples) -> list[int]:
        x = np.concatenate((self._buf, np.asarray(samples, np.float64).ravel()))
        n = x.size // BLOCK
        out: list[int] = []
        if n:
            blocks = x[:n * BLOCK].reshape(n, BLOCK)
            blocks = blocks - blocks.mean(axis=1, keepdims=True)
            power = np.einsum("ij,ij->i", blocks, blocks) / BLOCK
            y = blocks @ self._basis
            tone = (y ** 2).sum(axis=1)
            voice = (power >= self._thr) & (tone < self.spec.max_tone_share * power)
            for i in range(n):
                start = self._base + i * BLOCK
                if not voice[i]:
                    self._prev, self._in_voice = None, False
                    continue
                if self._prev is not None and not self._in_voice:
                    self._in_voice = True
                    out.append(self._date(self._prev, x, start))
                elif self._prev is None:
                    self._prev = start
        self._buf = x[n * BLOCK:]
        self._base += n * BLOCK
        return out

    def _date(self, first: int, x: np.ndarray, _second: int) -> int:
        seg = x[first - self._base:first - self._base + BLOCK]
        loud = np.flatnonzero(np.abs(seg) >= self._edge)
        return first + (int(loud[0]) if loud.size else 0)
