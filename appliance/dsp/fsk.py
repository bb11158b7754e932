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
  (default −48 dBm0, measured over 1.2 bits); tone frequencies may be off by a
  few per cent (the 1.2-bit correlators are about 1000 Hz wide; docs/dsp.md
  has the measured range); any number of stop bits is accepted.

How it works: two quadrature correlators, one per tone, over a 1.2-bit
window (a fixed real FIR bank, so no oscillator phase to carry); the sign of
the energy difference is the bit, and the energy sum gates the carrier. A
start bit is the first mark-to-space zero crossing of that difference
(interpolated to a fraction of a sample); the ten bits of the character are
then read at their centres. Every output sample is the same sum in the same
order and everything is indexed by absolute sample number, so the output is
bit-for-bit the same however the audio is cut into chunks. Python loops run
per character (at most a few per 20 ms frame), never per sample.
"""

from __future__ import annotations

import math
from bisect import bisect_left
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
    #: below this level (over the correlation window) no start bit is accepted
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
    start_sample: int     #: the start edge as an absolute sample index


class FskReceiver:
    """Streaming FSK demodulator and async character framer.

    ``feed(samples)`` takes 16-bit-scaled samples (int16, or floats on that
    scale) and returns the characters completed by them. ``reset()`` forgets
    everything, including the time origin.
    """

    def __init__(self, spec: FskSpec = V23) -> None:
        self.spec = spec
        self._bit = spec.samples_per_bit
        # correlation window of 1.2 bits: a little longer than a bit averages
        # more noise than it loses to the neighbouring bits (measured: at 8 dB
        # SNR 28/30 messages against 5/30 with a one-bit window; docs/dsp.md)
        self._win = w = max(2, round(1.2 * self._bit))
        # |Σ x[n-k]·e^{jωk}| equals the magnitude of a mixer-plus-boxcar
        # correlator but needs no oscillator phase: a fixed FIR bank. Integer
        # taps and samples make every output exact, so results cannot depend
        # on how the stream was chunked (float BLAS sums are not order-stable).
        k = np.arange(w)[::-1]                        # row j multiplies x[n-(w-1)+j]
        cols = []
        for f in (spec.mark_hz, spec.space_hz):
            ph = 2 * np.pi * f * k / spec.sample_rate
            cols += [np.cos(ph), np.sin(ph)]
        self._taps = np.rint(np.stack(cols, axis=1) * _TAP_SCALE).astype(np.int64)  # (w, 4)
        amp = dbm0_to_amplitude(spec.min_level_dbm0)
        # a tone of that amplitude at either frequency opens the gate
        self._gate = int((w * amp * _TAP_SCALE / 2.0) ** 2)
        # below this peak amplitude in a window the gate cannot open (|y| <= w·A·scale)
        self._quiet = amp / (2.0 * math.sqrt(2.0))
        self.reset()

    def reset(self) -> None:
        self._n = 0                                  # absolute index of the next sample fed
        self._tail = np.zeros(self._win - 1, np.int64)        # raw samples carried between chunks
        self._d = np.zeros(1, np.int64)               # |mark|² − |space|² per sample
        self._ok = np.zeros(1, dtype=bool)            # carrier gate per sample
        self._base = -1                               # absolute index of buffer[0]
        self._search = 0                              # next absolute index to test for a start edge
        self._edge: float | None = None               # start-bit edge being framed
        self._last_end: float | None = None           # end of the previous character (samples)
        self.framing_errors = 0

    def feed(self, samples) -> list[FskChar]:
        x = np.asarray(samples)
        if x.dtype != np.int16:
            x = np.clip(np.rint(np.asarray(x, dtype=np.float64)), -32768, 32767)
        x = x.astype(np.int64).ravel()
        if x.size == 0:
            return []
        w = self._win
        ext = np.concatenate((self._tail, x))
        self._tail = ext[ext.size - (w - 1):]
        self._n += x.size
        if self._edge is None and np.abs(ext).max() < self._quiet:
            return self._idle()
        # overlapping view: row n holds the w samples ending at x[n]
        win = np.ndarray((x.size, w), np.int64, ext, 0, (8, 8))
        y = win @ self._taps
        y *= y
        em = y[:, 0] + y[:, 1]
        es = y[:, 2] + y[:, 3]
        ok = (em + es) >= self._gate
        if self._edge is None and not ok.any():
            return self._idle()
        self._d = np.concatenate((self._d, em - es))
        self._ok = np.concatenate((self._ok, ok))
        out = self._frame()
        self._trim()
        return out

    def _idle(self) -> list[FskChar]:
        # no start edge can be accepted in this chunk (one needs the gate open
        # on both of its samples), so hold just a closed last sample: the same
        # outcome as running the framer, at a fraction of the cost
        self._base = self._n - 1
        self._d = np.zeros(1, np.int64)
        self._ok = np.zeros(1, dtype=bool)
        self._search = self._n
        return []

    def _trim(self) -> None:
        keep_from = self._search - 1 if self._edge is None else int(self._edge) - 1
        cut = min(max(keep_from - self._base, 0), self._d.size - 1)
        if cut > 0:
            self._d = self._d[cut:]
            self._ok = self._ok[cut:]
            self._base += cut

    def _frame(self) -> list[FskChar]:
        out: list[FskChar] = []
        d, ok, base, T = self._d, self._ok, self._base, self._bit
        end = base + d.size                        # one past the last absolute index held
        rate = self.spec.sample_rate
        # every gated mark-to-space crossing in the buffer, found once per feed;
        # the per-character work below is plain Python on a handful of scalars
        cand = (np.flatnonzero((d[:-1] >= 0) & (d[1:] < 0) & ok[1:] & ok[:-1]) + 1).tolist()
        mark = None                                 # d > 0 as a list, made on first need
        half = (self._win - 1) / 2
        ci = 0
        for _ in range(len(cand) + 2):              # bounded: each pass uses up a candidate
            if self._edge is None:
                lo = max(self._search - base, 1)
                ci = bisect_left(cand, lo, ci)
                if ci >= len(cand):
                    self._search = end
                    break
                i = cand[ci]
                ci += 1
                a, b = float(d[i - 1]), float(d[i])
                self._edge = base + (i - 1) + a / (a - b)
                self._search = base + i + 1
            edge = self._edge
            last = math.floor(edge + 9.5 * T + 0.5)
            if last >= end:
                break                               # wait for the rest of the character
            if mark is None:
                mark = (d > 0).tolist()
            self._edge = None
            loc = [math.floor(edge + (k + 0.5) * T + 0.5) - base for k in range(10)]
            if mark[loc[0]]:
                continue                            # glitch, not a start bit
            self._search = last                     # next start edge lies after the stop-bit centre
            if not (mark[loc[9]] and ok[loc[9]]):
                self.framing_errors += 1
                continue
            value = 0
            for k in range(8):
                if mark[loc[k + 1]]:
                    value |= 1 << k
            t0 = edge - half                        # the correlator lags the line by half a window
            out.append(FskChar(
                value=value,
                start_s=t0 / rate,
                end_s=(t0 + 10 * T) / rate,
                gap_bits=math.inf if self._last_end is None else (t0 - self._last_end) / T,
                start_sample=math.floor(t0),
            ))
            self._last_end = t0 + 10 * T
        return out


#: FIR taps are cos/sin scaled to 12 bits: |y|² of a full-scale tone stays far below 2⁶³
_TAP_SCALE = 4096


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
