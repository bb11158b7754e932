"""Signal generators for the simulator and the tests.

Everything returns 8 kHz samples at 16-bit scale (``int16`` unless said
otherwise) or, for ringing, ring-detector edges.  Levels are dBm0 per tone
(level.py: a full-scale sine is +3.14 dBm0); sums that exceed 16 bits are
saturated, as a codec would.  Lengths are capped (``MAX_SECONDS``) so a
typo cannot fill memory.  The caller-ID generators live in their own
modules and may be re-exported from here.
"""

from __future__ import annotations

import numpy as np

from appliance.dsp.dtmf import COL_HZ, KEYS, ROW_HZ
from appliance.dsp.level import dbm0_to_power, sine_amplitude
from appliance.dsp.ring import RingEdge
from appliance.units import DBm0, Decibels, LINE_RATE, Milliseconds

#: longest signal any generator here produces
MAX_SECONDS = 3600.0


def _n(ms: float, rate: int) -> int:
    n = int(round(ms * rate / 1000.0))
    if n < 0 or n > MAX_SECONDS * rate:
        raise ValueError(f"length {ms} ms out of range (0 … {MAX_SECONDS} s)")
    return n


def saturate(x: np.ndarray) -> np.ndarray:
    """Round and clip to int16, as a codec or ADC would."""
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16)


def silence(ms: float, rate: int = LINE_RATE) -> np.ndarray:
    return np.zeros(_n(ms, rate), dtype=np.int16)


def sine(freq: float, level: DBm0, ms: float, rate: int = LINE_RATE, phase: float = 0.0) -> np.ndarray:
    """A float sine (not saturated), for building sums."""
    t = np.arange(_n(ms, rate)) / rate
    return sine_amplitude(level) * np.sin(2 * np.pi * freq * t + phase)


def _digit_freqs(d: str) -> tuple[float, float]:
    for r, row in enumerate(KEYS):
        c = row.find(d.upper())
        if c >= 0:
            return ROW_HZ[r], COL_HZ[c]
    raise ValueError(f"not a DTMF digit: {d!r}")


def dtmf(digits: str, level: DBm0 = DBm0(-10.0), twist: Decibels = Decibels(0.0),
         on: Milliseconds = Milliseconds(50.0), off: Milliseconds = Milliseconds(50.0),
         offset_low: float = 0.0, offset_high: float = 0.0,
         rate: int = LINE_RATE) -> np.ndarray:
    """DTMF digits: each ``on`` ms of tone then ``off`` ms of silence.

    ``level`` is the low-group tone's level; ``twist`` is high minus low in dB
    (positive: high group louder, as Japanese phones send; the convention of
    spandsp's ``dtmf_tx_set_level``).  ``offset_*`` detune each group by a
    fraction (0.02 = +2 %).
    """
    parts = []
    for d in digits:
        lo, hi = _digit_freqs(d)
        tone = (sine(lo * (1 + offset_low), level, on, rate)
                + sine(hi * (1 + offset_high), level + twist, on, rate))
        parts.append(tone)
        parts.append(np.zeros(_n(off, rate)))
    return saturate(np.concatenate(parts) if parts else np.zeros(0))


def noise(n: int, level: DBm0, seed: int = 0) -> np.ndarray:
    """White Gaussian noise at ``level`` dBm0 (float, not saturated)."""
    if n < 0 or n > MAX_SECONDS * LINE_RATE:
        raise ValueError("noise length out of range")
    rng = np.random.default_rng(seed)
    return rng.standard_normal(n) * np.sqrt(dbm0_to_power(level))


def tone(freq: float, level: DBm0, ms: float, am_hz: float | None = None,
         am_depth: float = 1.0, rate: int = LINE_RATE) -> np.ndarray:
    """A sine, optionally amplitude-modulated; ``level`` is the carrier's level."""
    x = sine(freq, level, ms, rate)
    if am_hz:
        t = np.arange(x.size) / rate
        x = x * (1 - am_depth / 2 + am_depth / 2 * np.cos(2 * np.pi * am_hz * t))
    return x


#: Japanese call-progress cadences (on ms, off ms); None = continuous
CADENCES = {"dial": None, "busy": (500.0, 500.0), "ringback": (1000.0, 2000.0)}


def call_progress(kind: str, seconds: float, level: DBm0 = DBm0(-15.0),
                  freq: float = 400.0, am_hz: float = 16.0,
                  cadence: tuple[float, float] | None = None,
                  rate: int = LINE_RATE) -> np.ndarray:
    """Japanese dial, busy or ringback tone for ``seconds``, starting with tone on.

    Ringback is 400 Hz amplitude-modulated at ``am_hz`` (regulation: 15–20 Hz).
    ``cadence`` overrides the nominal (on, off) in ms, to test tolerances.
    """
    if kind not in CADENCES:
        raise ValueError(f"unknown tone {kind!r}")
    total = _n(seconds * 1000.0, rate)
    carrier = tone(freq, level, seconds * 1000.0,
                   am_hz=am_hz if kind == "ringback" else None, rate=rate)
    on_off = cadence or CADENCES[kind]
    if on_off is None:
        return saturate(carrier)
    on, off = (_n(v, rate) for v in on_off)
    gate = (np.arange(total) % (on + off)) < on
    return saturate(carrier * gate)


def ringing_edges(kind: str, bursts: int, start: float = 0.0, on: float | None = None,
                  off: float | None = None, pulse_hz: float | None = None) -> list[RingEdge]:
    """Ring-detector edges: ``normal`` (1 s / 2 s) or ``car`` (0.5 s / 0.5 s).

    With ``pulse_hz`` each burst is a train of pulses at that rate (what an
    opto-isolator gives on ringing: 2 pulses per ringing cycle, so 32 Hz for
    16 Hz ringing), otherwise one on and one off edge per burst.
    """
    on_s = on if on is not None else (1.0 if kind == "normal" else 0.5)
    off_s = off if off is not None else (2.0 if kind == "normal" else 0.5)
    if not 0 <= bursts <= 1000:
        raise ValueError("bursts out of range")
    edges: list[RingEdge] = []
    t = start
    for _ in range(bursts):
        if pulse_hz:
            period = 1.0 / pulse_hz
            k = int(on_s / period)
            for j in range(max(k, 1)):
                edges.append(RingEdge(round(t + j * period, 6), True))
                edges.append(RingEdge(round(t + j * period + period / 2, 6), False))
        else:
            edges += [RingEdge(round(t, 6), True), RingEdge(round(t + on_s, 6), False)]
        t += on_s + off_s
    return edges


def speech_like(seconds: float, level: DBm0 = DBm0(-20.0), seed: int = 0,
                rate: int = LINE_RATE) -> np.ndarray:
    """Speech-like sound: voiced syllables with gliding pitch and moving formants,
    fricative noise, pauses.  A stand-in for talk-off tests, not a voice.

    Voiced parts are harmonic series (which is what can fool a tone detector),
    shaped by three random formants per syllable.
    """
    rng = np.random.default_rng(seed)
    total = _n(seconds * 1000.0, rate)
    out = np.zeros(total)
    pos = 0
    guard = 0
    while pos < total and guard < 100000:      # bounded: each pass advances ≥ 40 ms
        guard += 1
        dur = int(rng.uniform(0.08, 0.35) * rate)
        seg = min(dur, total - pos)
        kind = rng.random()
        t = np.arange(seg) / rate
        env = np.sin(np.pi * (np.arange(seg) + 0.5) / seg) ** 0.6
        if kind < 0.65:        # voiced
            f0 = rng.uniform(85, 260) * (1 + rng.uniform(-0.25, 0.25) * t / max(t[-1], 1e-3))
            phase = 2 * np.pi * np.cumsum(f0) / rate
            formants = (rng.uniform(280, 850), rng.uniform(850, 2400), rng.uniform(2300, 3300))
            nh = int(3800 / f0.min())
            h = np.arange(1, nh + 1)
            fh = np.outer(f0, h)                          # harmonic frequencies over time
            gain = sum(1.0 / (1.0 + ((fh - f) / (60 + 0.08 * f)) ** 2) for f in formants)
            gain = gain * (fh < 3800) / h ** 0.5
            seg_x = (gain * np.sin(np.outer(phase, h))).sum(axis=1)
        elif kind < 0.85:      # fricative
            w = rng.standard_normal(seg)
            spec = np.fft.rfft(w)
            f = np.fft.rfftfreq(seg, 1 / rate)
            spec *= (f > rng.uniform(1500, 3000))
            seg_x = np.fft.irfft(spec, seg)
        else:                  # pause
            seg_x = np.zeros(seg)
        p = np.mean(seg_x ** 2)
        if p > 0:
            seg_x = seg_x * env * np.sqrt(dbm0_to_power(level + rng.uniform(-6, 4)) / p)
        out[pos:pos + seg] = seg_x
        pos += max(seg, int(0.04 * rate))
    return saturate(out)
