"""1200-baud FSK for caller ID: a streaming demodulator with async framing, and a modulator.

Digest of the standards (shared/reference/telephony.md §1.2, §1.6):

* ITU-T V.23 (used by Japanese Number Display / JCLIP and by ETSI CLIP):
  mark ("1") 1300 Hz, space ("0") 2100 Hz, 1200 bit/s.
* Bell 202 (Bellcore/Telcordia CLASS caller ID): mark 1200 Hz, space 2200 Hz,
  1200 bit/s.
* 8 kHz sampling gives 6.67 samples per bit. Characters are asynchronous:
  one start bit (space), 8 data bits LSB first, one or more stop bits (mark);
  between characters the line idles at mark. Channel seizure (Bellcore,
  ETSI) is 300 alternating bits, which frame as 0x55 characters; the mark
  period (JCLIP about 75 bits, Bellcore/ETSI 80–180 bits) frames as nothing.
* Numeric limits of this implementation: carrier gate at ``min_level_dbm0``
  (default −48 dBm0, measured over one bit); tone frequencies may be off by a
  few per cent (the one-bit correlators are about 1200 Hz wide; docs/dsp.md
  has the measured range); any number of stop bits is accepted.

How it works: two complex correlators, one per tone, summed over a one-bit
window; the sign of the energy difference is the bit. A start bit is the
first mark-to-space zero crossing of that difference (interpolated to a
fraction of a sample); the ten bits of the character are then read at their
centres. Everything is indexed by absolute sample number and the oscillators
come from tables indexed by that number, so the output is bit-for-bit the
same however the audio is cut into chunks. Python loops run per character
(at most a few per 20 ms frame), never per sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from appliance.units import LINE_RATE, Baud, DBm0, Hz, SampleRate

#: a full-scale 16-bit sine is +3.14 dBm0 (G.711's digital milliwatt convention)
FULL_SCALE_SINE_DBM0 = 3.14
#: largest message-plus-preamble burst the modulator will write (cap on audio size)
MAX_MODULATED_BITS = 20_000


def dbm0_to_amplitude(level: float) -> float:
    """Peak amplitude, in 16-bit units, of a sine at ``level`` dBm0."""
    return 32767.0 * 10.0 ** ((level - FULL_SCALE_SINE_DBM0) / 20.0)


@dataclass(frozen=True)
class FskSpec:
    """One FSK modem: its two tones, bit rate and receive gate, in real units."""

    name: str
    mark_hz: Hz
    space_hz: Hz
    baud: Baud = Baud(1200.0)
    sample_rate: SampleRate = LINE_RATE
    #: below this level (per one-bit window) no start bit is accepted
    min_level_dbm0: DBm0 = DBm0(-48.0)

    def __post_init__(self) -> None:
        nyq = self.sample_rate / 2
        if not (0 < self.mark_hz < nyq and 0 < self.space_hz < nyq):
            raise ValueError("FSK tones must lie between 0 Hz and half the sample rate")
        if self.mark_hz == self.space_hz:
            raise ValueError("mark and space must differ")
        if not (0 < self.baud <= self.sample_rate / 4):
            raise ValueError("baud must be positive and at most a quarter of the sample rate")

    @property
    def samples_per_bit(self) -> float:
        return self.sample_rate / self.baud


V23 = FskSpec("V.23", Hz(1300.0), Hz(2100.0))
BELL202 = FskSpec("Bell 202", Hz(1200.0), Hz(2200.0))


@dataclass(frozen=True)
class FskChar:
    """One asynchronously framed character as received."""

    value: int            #: the 8 data bits, LSB first on the line
    start_s: float        #: leading edge of the start bit, seconds since the first sample fed
    end_s: float          #: end of the (first) stop bit
    gap_bits: float       #: idle bit times since the previous character ended (inf: none before)
    #: sums of c[n]·conj(c[n-1]) over samples where that tone clearly dominates;
    #: their angles give the received tone frequencies (see ``tone_offsets_hz``)
    mark_rotation: complex
    space_rotation: complex


def tone_offsets_hz(spec: FskSpec, chars) -> tuple[float | None, float | None]:
    """Mean (mark, space) frequency error in Hz measured over ``chars``; None if unseen."""
    m = sum((c.mark_rotation for c in chars), 0j)
    s = sum((c.space_rotation for c in chars), 0j)
    k = spec.sample_rate / (2 * math.pi)
    return (math.atan2(m.imag, m.real) * k if m else None,
            math.atan2(s.imag, s.real) * k if s else None)


def _oscillator(freq: float, rate: int) -> tuple[np.ndarray | None, int]:
    """exp(-j2πfn/fs) as a table over its exact period, when it has a short one."""
    if float(freq).is_integer():
        period = rate // math.gcd(int(freq), rate)
        if period <= 8000:
            n = np.arange(period)
            return np.exp(-2j * np.pi * freq * n / rate), period
    return None, 0


class FskReceiver:
    """Streaming FSK demodulator and async character framer.

    ``feed(samples)`` takes 16-bit-scaled samples (int16, or floats on that
    scale) and returns the characters completed by them. ``reset()`` forgets
    everything, including the time origin.
    """

    def __init__(self, spec: FskSpec = V23) -> None:
        self.spec = spec
        self._bit = spec.samples_per_bit
        # one-bit correlation window, rounded down so a window centred on a bit
        # does not reach into its neighbours
        self._win = max(2, int(self._bit))
        thr_amp = dbm0_to_amplitude(spec.min_level_dbm0)
        # gate on the window sum of x²: a sine of amplitude A gives A²/2 per sample
        self._gate = self._win * thr_amp * thr_amp / 2.0
        self._osc = [_oscillator(f, spec.sample_rate) for f in (spec.mark_hz, spec.space_hz)]
        self.reset()

    def reset(self) -> None:
        self._n = 0                                  # absolute index of the next sample fed
        self._tail = np.zeros(self._win - 1)          # raw samples carried between chunks
        self._base = 0                                # absolute index of buffer[0]
        self._d = np.zeros(0)                         # |mark|² − |space|² per sample
        self._ok = np.zeros(0, dtype=bool)            # carrier gate per sample
        self._cm = np.zeros(0, dtype=complex)
        self._cs = np.zeros(0, dtype=complex)
        self._search = 1                              # next absolute index to test for a start edge
        self._edge: float | None = None               # start-bit edge being framed
        self._last_end: float | None = None           # end of the previous character (samples)
        self.framing_errors = 0

    # -- signal path ---------------------------------------------------------
    def _mix(self, which: int, ext: np.ndarray, first: int) -> np.ndarray:
        table, period = self._osc[which]
        idx = np.arange(first, first + ext.size)
        if table is not None:
            lo = table[idx % period]
        else:
            f = (self.spec.mark_hz, self.spec.space_hz)[which]
            lo = np.exp(-2j * np.pi * f * idx / self.spec.sample_rate)
        return ext * lo

    def _boxcar(self, v: np.ndarray) -> np.ndarray:
        # explicit slice sums: each output is the same sum in the same order
        # however the stream was chunked (np.convolve would not promise that)
        w = self._win
        n = v.size - w + 1
        acc = v[0:n].copy()
        for k in range(1, w):
            acc += v[k:k + n]
        return acc

    def feed(self, samples) -> list[FskChar]:
        x = np.asarray(samples, dtype=np.float64).ravel()
        if x.size == 0:
            return []
        ext = np.concatenate((self._tail, x))
        first = self._n - self._tail.size
        self._tail = ext[ext.size - (self._win - 1):].copy()
        self._n += x.size
        power = self._boxcar(ext * ext)
        ok = power >= self._gate
        if self._edge is None and not ok.any():
            # idle line: nothing can start here, so skip the correlators; the
            # search result is the same as computing them (a start edge needs
            # the gate open on both of its samples)
            self._base = self._n - 1
            self._d = np.zeros(1)
            self._ok = np.zeros(1, dtype=bool)
            self._cm = np.zeros(1, dtype=complex)
            self._cs = np.zeros(1, dtype=complex)
            self._search = self._n
            return []
        cm = self._boxcar(self._mix(0, ext, first))
        cs = self._boxcar(self._mix(1, ext, first))
        d = (cm.real * cm.real + cm.imag * cm.imag) - (cs.real * cs.real + cs.imag * cs.imag)
        self._d = np.concatenate((self._d, d))
        self._ok = np.concatenate((self._ok, ok))
        self._cm = np.concatenate((self._cm, cm))
        self._cs = np.concatenate((self._cs, cs))
        out = self._frame()
        self._trim()
        return out

    def _trim(self) -> None:
        keep_from = self._search - 1 if self._edge is None else int(self._edge) - 1
        cut = min(max(keep_from - self._base, 0), self._d.size - 1)
        if cut > 0:
            self._d = self._d[cut:]
            self._ok = self._ok[cut:]
            self._cm = self._cm[cut:]
            self._cs = self._cs[cut:]
            self._base += cut

    def _frame(self) -> list[FskChar]:
        out: list[FskChar] = []
        d, ok, base, T = self._d, self._ok, self._base, self._bit
        end = base + d.size                        # one past the last absolute index held
        rate = self.spec.sample_rate
        for _ in range(4 * d.size + 4):            # bounded: each pass consumes samples or stops
            if self._edge is None:
                lo = max(self._search - base, 1)
                if lo >= d.size:
                    self._search = end
                    break
                hit = np.flatnonzero((d[lo - 1:-1] >= 0) & (d[lo:] < 0) & ok[lo:] & ok[lo - 1:-1])
                if hit.size == 0:
                    self._search = end
                    break
                i = int(hit[0]) + lo
                a, b = d[i - 1], d[i]
                self._edge = base + (i - 1) + a / (a - b)
                self._search = base + i + 1
            centres = np.rint(self._edge + (np.arange(10) + 0.5) * T).astype(np.int64)
            if centres[-1] >= end:
                break                               # wait for the rest of the character
            loc = centres - base
            bits = d[loc] > 0
            edge = self._edge
            self._edge = None
            if bits[0]:
                continue                            # glitch, not a start bit
            self._search = int(centres[-1])         # next start edge lies after the stop-bit centre
            if not (bits[9] and ok[loc[9]]):
                self.framing_errors += 1
                continue
            value = int(np.dot(bits[1:9], 1 << np.arange(8)))
            lo_i = max(int(edge) - base, 1)
            hi_i = int(centres[-1]) - base + 1
            out.append(FskChar(
                value=value,
                start_s=edge / rate,
                end_s=(edge + 10 * T) / rate,
                gap_bits=math.inf if self._last_end is None else (edge - self._last_end) / T,
                mark_rotation=self._rotation(self._cm, self._cs, lo_i, hi_i),
                space_rotation=self._rotation(self._cs, self._cm, lo_i, hi_i),
            ))
            self._last_end = edge + 10 * T
        return out

    @staticmethod
    def _rotation(c: np.ndarray, other: np.ndarray, lo: int, hi: int) -> complex:
        seg = c[lo - 1:hi]
        e = seg.real * seg.real + seg.imag * seg.imag
        o = other[lo - 1:hi]
        dom = e > 4.0 * (o.real * o.real + o.imag * o.imag)   # this tone clearly dominates
        both = dom[1:] & dom[:-1]
        if not both.any():
            return 0j
        return complex(np.sum((seg[1:] * np.conj(seg[:-1]))[both]))


# -- transmit side ---------------------------------------------------------------
def async_bits(data: bytes, stop_bits: int = 1) -> np.ndarray:
    """Frame bytes as async characters: start bit 0, 8 data bits LSB first, stop bits 1."""
    if stop_bits < 1:
        raise ValueError("at least one stop bit")
    b = np.frombuffer(bytes(data), dtype=np.uint8)
    data_bits = (b[:, None] >> np.arange(8)) & 1
    frame = np.concatenate(
        (np.zeros((b.size, 1), np.uint8), data_bits, np.ones((b.size, stop_bits), np.uint8)),
        axis=1)
    return frame.ravel()


def fsk_modulate(bits, spec: FskSpec = V23, level_dbm0: float = -14.0,
                 freq_offset: float = 0.0, phase: float = 0.0) -> np.ndarray:
    """Phase-continuous FSK of ``bits`` (1 = mark) as float samples on the 16-bit scale.

    ``freq_offset`` scales both tones (0.015 = +1.5 %), for tolerance tests.
    Bit k occupies samples from k·fs/baud onward, so rates that do not divide
    the sample rate keep their long-term timing.
    """
    bits = np.asarray(bits, dtype=np.uint8).ravel()
    if bits.size > MAX_MODULATED_BITS:
        raise ValueError(f"at most {MAX_MODULATED_BITS} bits per burst")
    if bits.size == 0:
        return np.zeros(0)
    n = int(math.ceil(bits.size * spec.samples_per_bit))
    which = np.minimum((np.arange(n) * spec.baud / spec.sample_rate).astype(np.int64),
                       bits.size - 1)
    f = np.where(bits[which] == 1, spec.mark_hz, spec.space_hz) * (1.0 + freq_offset)
    ph = phase + np.cumsum(2 * np.pi * f / spec.sample_rate) - 2 * np.pi * f[0] / spec.sample_rate
    return dbm0_to_amplitude(level_dbm0) * np.sin(ph)
