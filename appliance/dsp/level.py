"""Levels and voice activity per leg: dBm0, dBFS, peak, clipping, activity.

Digest of the conventions (ITU-T G.711, G.100; spandsp's telephony.h):
* 0 dBm0 is the digital milliwatt.  A full-scale 16-bit sine (amplitude
  32767) is +3.14 dBm0, the value spandsp uses for both laws (the exact
  μ-law figure is +3.17 dBm0; the 0.03 dB difference is ignored here).
* dBFS here is relative to that full-scale *sine* (so a full-scale square wave
  reads +3 dBFS): dBm0 = dBFS + 3.14.
* Silence is reported as the floor -99 dBm0, never -inf.
* Clipping: a sample at or beyond ±32767 (what a saturated codec or ADC
  delivers).  A G.711 path saturates at ±32124 (μ) / ±32256 (A), so the
  clip threshold is a spec field.
* Voice activity is an energy detector with an adaptive noise floor (rises
  slowly, falls fast) and a hangover, per 20 ms frame.  It flags "someone is
  talking on this leg", not speech versus tones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from appliance.dsp._framing import BlockBuffer, StartsAt
from appliance.units import DBm0, Decibels, Milliseconds, LINE_RATE, SampleRate

#: dBm0 of a full-scale (amplitude 32767) 16-bit sine
DBM0_FULL_SCALE_SINE = 3.14
#: mean-square power of that sine
_FULL_SCALE_POWER = 32767.0 ** 2 / 2.0
#: what silence reads as
LEVEL_FLOOR = -99.0


def power_to_dbm0(power: float | np.ndarray) -> np.ndarray:
    """Mean-square power (16-bit sample units) to dBm0, floored at -99."""
    p = np.maximum(np.asarray(power, dtype=np.float64), 1e-30)
    return np.maximum(10.0 * np.log10(p / _FULL_SCALE_POWER) + DBM0_FULL_SCALE_SINE, LEVEL_FLOOR)


def dbm0_to_power(level: DBm0 | float) -> float:
    """dBm0 to mean-square power in 16-bit sample units."""
    return _FULL_SCALE_POWER * 10.0 ** ((level - DBM0_FULL_SCALE_SINE) / 10.0)


def sine_amplitude(level: DBm0 | float) -> float:
    """Peak amplitude of a sine at ``level`` dBm0."""
    return math.sqrt(2.0 * dbm0_to_power(level))


def level_dbm0(samples) -> float:
    """Level of a whole signal in dBm0 (mean-square power)."""
    x = np.asarray(samples, dtype=np.float64)
    if x.size == 0:
        return LEVEL_FLOOR
    return float(power_to_dbm0(np.mean(x * x)))


@dataclass(frozen=True)
class LevelSpec:
    """How a leg's level is measured."""

    rate: SampleRate = LINE_RATE
    frame: Milliseconds = Milliseconds(20.0)
    #: |sample| at or above this counts as clipped
    clip_at: int = 32767
    #: activity needs the frame this far above the noise floor ...
    activity_margin: Decibels = Decibels(9.0)
    #: ... and at least this loud
    activity_floor: DBm0 = DBm0(-50.0)
    #: activity stays on this long after the last loud frame (syllable gaps)
    hangover: Milliseconds = Milliseconds(300.0)
    #: how fast the noise floor may rise (falls immediately)
    floor_rise_db_per_s: float = 3.0


@dataclass(frozen=True)
class LevelFrame(StartsAt):
    """One frame's measurements; ``start`` is in samples since the first fed."""

    start: int
    samples: int
    level_dbm0: float
    level_dbfs: float
    peak_dbfs: float
    clipped: int
    active: bool
    rate: int = LINE_RATE

    @property
    def start_s(self) -> float:
        return self.start / self.rate


class LevelMeter:
    """Per-frame level, peak, clipping and activity of one leg."""

    def __init__(self, spec: LevelSpec = LevelSpec()) -> None:
        self.spec = spec
        self._n = max(1, int(round(spec.frame * spec.rate / 1000.0)))
        self._buf = BlockBuffer(self._n)
        self._hang_frames = int(round(spec.hangover / spec.frame))
        self._rise = spec.floor_rise_db_per_s * spec.frame / 1000.0
        self.reset()

    def reset(self) -> None:
        self._buf.reset()
        self._floor = float(self.spec.activity_floor) - self.spec.activity_margin
        self._hang = 0

    def feed(self, samples) -> list[LevelFrame]:
        blocks, first = self._buf.push(samples)
        if blocks.shape[0] == 0:
            return []
        sp = self.spec
        power = (np.einsum("ij,ij->i", blocks, blocks) / self._n).tolist()
        peaks = np.maximum(blocks.max(axis=1), -blocks.min(axis=1)).tolist()
        clipped = [0] * len(peaks)
        if max(peaks) >= sp.clip_at:        # rare: count only when a frame reaches it
            clipped = np.count_nonzero(np.abs(blocks) >= sp.clip_at, axis=1).tolist()
        out = []
        # the noise floor is a recursion over frames: one cheap step per
        # 20 ms frame, in plain Python (numpy calls cost more on 1 frame)
        floor, hang = self._floor, self._hang
        ref = _FULL_SCALE_POWER
        for i, pw in enumerate(power):
            lv = max(10.0 * math.log10(pw / ref) + DBM0_FULL_SCALE_SINE, LEVEL_FLOOR) \
                if pw > 0 else LEVEL_FLOOR
            pk = peaks[i]
            pk_db = max(20.0 * math.log10(pk / 32767.0), LEVEL_FLOOR) if pk > 0 else LEVEL_FLOOR
            loud = lv >= sp.activity_floor and lv >= floor + sp.activity_margin
            floor = lv if lv < floor else floor + self._rise
            hang = self._hang_frames if loud else max(0, hang - 1)
            out.append(LevelFrame(
                start=(first + i) * self._n, samples=self._n,
                level_dbm0=round(lv, 2), level_dbfs=round(max(lv - DBM0_FULL_SCALE_SINE, LEVEL_FLOOR), 2),
                peak_dbfs=round(pk_db, 2), clipped=int(clipped[i]),
                active=loud or hang > 0, rate=sp.rate))
        self._floor, self._hang = floor, hang
        return out
