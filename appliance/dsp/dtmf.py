"""DTMF receiver: dialled digits from the near (staff) leg of an analog line.

Digest of the limits (shared/reference/telephony.md §2.1, §3; ITU-T Q.23/Q.24;
the AT&T figures also quoted by spandsp and Asterisk):
* tones 697 770 852 941 / 1209 1336 1477 1633 Hz; digits 0-9 * # A-D.
* accept within ±1.5 %, reject beyond ±3.5 % of nominal frequency.
* tones of 40 ms and more, pauses of 30 ms and more (Japanese exchanges
  accept 50 ms / 30 ms; the AT&T list says 40 / 50 ms).
* twist: the high group up to 6 dB above the low one (Japanese phones send
  high ≥ low, up to 5 dB; spandsp's default is 4 dB) and the low group up to
  8 dB above the high one.
* spandsp's test bars: ≥ 35 dB dynamic range, decode every burst at S/N ≤ 26 dB.

How (ideas from spandsp's and Asterisk's detectors, our own code):
* Blocks of 102 samples (12.75 ms) aligned to the first sample fed.  At
  8 kHz a 102-point window puts its spectral nulls about 78 Hz apart, which
  is the spacing of the row tones, so neighbours barely leak into each other.
* One matrix product gives each block's complex response at the 8 tones and
  at 400 Hz, for each half block.  Per block: both group peaks above the
  threshold, twist within limits, the other tones of each group
  ``relative_peak`` below their peak, and the two peaks carrying most of the
  block's energy (after removing any 400 Hz dial tone and DC).
* Frequency check, which sets the ±1.5 % / ±3.5 % edges evenly for all eight
  tones: the phase advance of each tone's response from one block to the
  next measures its frequency offset within ±39 Hz; the advance between the
  half blocks (±78 Hz, coarser) picks the right 78 Hz alias.
* A digit starts on two consecutive blocks that pass with the same digit and
  pass the frequency check, and ends after two blocks that do not match
  (one bad block inside a digit is tolerated; a 30 ms pause always spoils at
  least two blocks).  ``start``/``end`` are sample indices from the first
  sample fed, to a block (12.75 ms) of resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from appliance.dsp._framing import BlockBuffer, Spans
from appliance.dsp.level import dbm0_to_power
from appliance.units import DBm0, Decibels, LINE_RATE, SampleRate

ROW_HZ = (697.0, 770.0, 852.0, 941.0)
COL_HZ = (1209.0, 1336.0, 1477.0, 1633.0)
KEYS = ("123A", "456B", "789C", "*0#D")
#: Japanese dial tone; removed from the energy budget so digits dialled over it still pass
_DIAL_HZ = 400.0


@dataclass(frozen=True)
class DtmfSpec:
    """Acceptance limits of the receiver, in the units of the standards."""

    rate: SampleRate = LINE_RATE
    #: each tone must be at least this loud
    threshold: DBm0 = DBm0(-38.0)
    #: low group may be this much louder than the high group ("normal twist")
    low_over_high: Decibels = Decibels(10.0)
    #: high group may be this much louder than the low group ("reverse twist")
    high_over_low: Decibels = Decibels(8.0)
    #: the other tones of a group must be this far below the group's peak
    relative_peak: Decibels = Decibels(8.0)
    #: the two tones must carry this share of the block's energy (dB, ≤ 0)
    to_total: Decibels = Decibels(-1.2)
    #: largest accepted frequency offset, as a fraction of nominal (between
    #: the ±1.5 % that must pass and the ±3.5 % that must fail)
    freq_tolerance: float = 0.025
    #: the two blocks that start a digit may differ in level by this much
    max_step: Decibels = Decibels(6.0)
    #: the two halves of a block may differ in energy by this much: a block
    #: only partly filled by a tone fails, so a digit needs
    #: about 22 ms of tone and bursts of 20 ms or less are never digits
    max_half_step: Decibels = Decibels(1.5)
    block: int = 102


@dataclass(frozen=True)
class DtmfDigit(Spans):
    """One received digit; ``start``/``end`` are samples since the first fed."""

    digit: str
    start: int
    end: int
    rate: int = LINE_RATE

    @property
    def end_s(self) -> float:
        return self.end / self.rate


class DtmfReceiver:
    """``feed(samples) -> [DtmfDigit]``; ``finish()`` closes a digit still on."""

    def __init__(self, spec: DtmfSpec = DtmfSpec()) -> None:
        self.spec = spec
        n = spec.block
        self._n = n
        freqs = np.array(ROW_HZ + COL_HZ + (_DIAL_HZ,))
        self._freqs = freqs[:8]
        m = np.arange(n)
        half = n // 2
        self._half = half
        basis = np.exp(-2j * np.pi * np.outer(m, freqs) / spec.rate)
        first = np.where((m < half)[:, None], basis[:, :8], 0)
        # One real matrix does all the per-block work (a float @ float product
        # costs about a microsecond; every extra numpy call costs as much):
        # columns  0-8 Re full block, 9-17 Im full block (8 tones + 400 Hz),
        # 18-25 Re first half, 26-33 Im first half, 34 the block mean.
        # Each column has its DC response removed, so DC never reaches a tone.
        # The full-block columns are scaled so that Re² + Im² is the tone's
        # power (a sine of amplitude a reads a²/2: |X|² = (a n / 2)²).
        scale = np.sqrt(2.0) / n
        cols = np.hstack((basis.real, basis.imag, first.real, first.imag)) * scale
        cols = cols - cols.mean(axis=0)
        self._basis = np.ascontiguousarray(np.hstack((cols, np.full((n, 1), 1.0 / n))))
        self._thr = dbm0_to_power(spec.threshold)
        self._tw_lo = 10.0 ** (spec.low_over_high / 10.0)
        self._tw_hi = 10.0 ** (spec.high_over_low / 10.0)
        self._rel = 10.0 ** (-spec.relative_peak / 10.0)
        self._tt = 10.0 ** (spec.to_total / 10.0)
        self._step = 10.0 ** (spec.max_step / 10.0)
        self._half_step = 10.0 ** (spec.max_half_step / 10.0)
        self._tol_hz = spec.freq_tolerance * self._freqs
        # phase a nominal tone advances over a block / half block
        self._unadvance = np.exp(-2j * np.pi * self._freqs * n / spec.rate)
        self._alias_hz = spec.rate / n
        self._buf = BlockBuffer(n)
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        self._buf.reset()
        self._prev_x = np.zeros(8, dtype=complex)   # last block's full responses
        self._prev_coarse = np.zeros(8)
        self._prev_digit = -1
        self._prev_p = np.zeros(2)
        self._cur = -1            # digit index being received, -1 none
        self._cur_start = 0
        self._cur_end = 0
        self._misses = 0

    # --------------------------------------------------------------- analysis
    def _analyse(self, blocks: np.ndarray):
        """Per-block candidate digit (or -1) and whether the pair ending there starts one."""
        nb = blocks.shape[0]
        y = blocks @ self._basis
        y2 = y[:, :18] ** 2
        p = y2[:, :9] + y2[:, 9:]
        mean = y[:, 34]
        total = np.einsum("ij,ij->i", blocks, blocks) / self._n - mean * mean - p[:, 8]
        peaks = p[:, :8].reshape(nb, 2, 4).max(axis=2)      # row peak, column peak
        gate = (peaks.min(axis=1) >= self._thr) & (peaks.sum(axis=1) >= self._tt * total)
        if not gate.any():
            # the usual case (silence, speech): no digit can start here
            self._prev_digit = -1
            return None, None
        rows, cols = p[:, :4], p[:, 4:8]
        pr, pc = peaks[:, 0], peaks[:, 1]
        r = rows.argmax(axis=1)
        c = cols.argmax(axis=1)
        idx = np.arange(nb)
        rs, cs = np.sort(rows, axis=1), np.sort(cols, axis=1)
        x = y[:, 0:8] + 1j * y[:, 9:17]
        xa = y[:, 18:26] + 1j * y[:, 26:34]
        xb = x - xa
        # a block only partly filled by the tone has unequal halves
        h = self._half
        a, b = blocks[:, :h], blocks[:, h:]
        sa, sb = a.sum(axis=1), b.sum(axis=1)
        e1 = np.einsum("ij,ij->i", a, a) - sa * sa / h
        e2 = np.einsum("ij,ij->i", b, b) - sb * sb / (self._n - h)
        whole = (e1 <= e2 * self._half_step) & (e2 <= e1 * self._half_step)
        ok = (gate & whole & (pr <= pc * self._tw_lo) & (pc <= pr * self._tw_hi)
              & (rs[:, 2] <= pr * self._rel) & (cs[:, 2] <= pc * self._rel))
        digit = np.where(ok, r * 4 + c, -1)

        # frequency offsets of every tone: coarse from the half blocks (the
        # basis runs on across the halves, so the phase step is the offset alone) ...
        coarse = np.angle(xb * np.conj(xa)) * (self.spec.rate / (2 * np.pi * self._half))
        # ... fine from this block against the previous one (each block's basis
        # restarts at phase 0, so the nominal advance is removed)
        xs = np.vstack((self._prev_x[None, :], x))
        cs_prev = np.vstack((self._prev_coarse[None, :], coarse))
        fine = np.angle(xs[1:] * np.conj(xs[:-1]) * self._unadvance)
        fine *= self.spec.rate / (2 * np.pi * self._n)
        guess = 0.5 * (cs_prev[1:] + cs_prev[:-1])
        fine += self._alias_hz * np.round((guess - fine) / self._alias_hz)
        dprev = np.concatenate(([self._prev_digit], digit[:-1]))
        pp = np.vstack((self._prev_p[None, :], np.column_stack((pr, pc))))
        steady = ((pp[1:] <= pp[:-1] * self._step) & (pp[:-1] <= pp[1:] * self._step)).all(axis=1)
        in_tol = np.abs(fine) <= self._tol_hz
        pair = ((digit >= 0) & (digit == dprev) & steady
                & in_tol[idx, r] & in_tol[idx, 4 + c])

        self._prev_x = x[-1].copy()
        self._prev_coarse = coarse[-1].copy()
        self._prev_digit = int(digit[-1])
        self._prev_p = np.array([pr[-1], pc[-1]])
        return digit, pair

    # ------------------------------------------------------------------- feed
    def feed(self, samples) -> list[DtmfDigit]:
        blocks, first = self._buf.push(samples)
        nb = blocks.shape[0]
        if nb == 0:
            return []
        digit, pair = self._analyse(blocks)
        if digit is None:
            if self._cur < 0:
                return []                   # the usual case: nothing going on
            digit = np.full(nb, -1)
            pair = np.zeros(nb, dtype=bool)
        starts = np.flatnonzero(pair)
        if self._cur < 0 and starts.size == 0:
            return []
        out: list[DtmfDigit] = []
        n = self._n
        i = 0
        while i < nb:
            if self._cur < 0:
                nxt = starts[np.searchsorted(starts, i)] if starts.size and starts[-1] >= i else -1
                if nxt < 0:
                    break
                i = int(nxt)
                self._begin(int(digit[i]), first + i)
            else:
                d = int(digit[i])
                if d == self._cur:
                    self._misses = 0
                    self._cur_end = (first + i + 1) * n
                elif pair[i]:
                    out.append(self._emit())
                    self._begin(d, first + i)
                else:
                    self._misses += 1
                    if self._misses >= 2:
                        out.append(self._emit())
            i += 1
        return out

    def finish(self) -> list[DtmfDigit]:
        """End of the audio: report a digit still being received."""
        return [self._emit()] if self._cur >= 0 else []

    def _begin(self, d: int, block: int) -> None:
        self._cur = d
        self._cur_start = (block - 1) * self._n
        self._cur_end = (block + 1) * self._n
        self._misses = 0

    def _emit(self) -> DtmfDigit:
        d = self._cur
        self._cur = -1
        self._misses = 0
        return DtmfDigit(KEYS[d // 4][d % 4], self._cur_start, self._cur_end, self.spec.rate)


def decode_dtmf(samples, spec: DtmfSpec = DtmfSpec()) -> list[DtmfDigit]:
    """All digits in a whole signal (for files and tests)."""
    rx = DtmfReceiver(spec)
    return rx.feed(samples) + rx.finish()
