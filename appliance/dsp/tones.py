"""Call-progress detector for Japanese tones, by cadence.

Digest (事業用電気通信設備規則 別表第5号; shared/reference/telephony.md §2):
* all three tones are 400 Hz (±20 Hz for ringback);
* dial tone (発信音): continuous;
* busy tone (話中音): 0.5 s on / 0.5 s off.  Also sent when the far party
  hangs up mid-call: the main call-end cue on analog lines;
* ringback tone (呼出音): 400 Hz amplitude-modulated at 15–20 Hz (spandsp
  models it as 384+416 Hz, Asterisk as 400+15 Hz), 1 s on / 2 s off.
* levels: dial tone down to about −30 dBm0 at the exchange port; busy and
  ringback louder.  Asterisk has no Japanese progress zone: this is ours.

How:
* 20 ms blocks aligned to the first sample fed.  Per block the 400 Hz
  energy (DFT over each 10 ms half: ±50 Hz wide, so the 15–20 Hz AM
  sidebands and the ±20 Hz tolerance fall inside) against the block's total
  energy.  A block is "tone" when that share and the level are high enough.
* On/off changes need two blocks (40 ms) in the new state, so a one-block
  glitch neither starts nor breaks a tone.
* Cadence, not single frames, names the tone: ``busy`` after on-off-on with
  each part 0.35–0.65 s; ``ringback`` when a 0.7–1.3 s burst is followed by
  1.5–2.6 s of quiet and the next burst starts; ``dial`` after 1.5 s of
  unbroken tone (longer than any ringback burst).  A run ends when the
  cadence breaks (a pause or burst out of range).
* Events: :class:`ToneDetected` as soon as the cadence is recognised (for
  the call engine), :class:`ToneEnded` with the whole run when it stops
  (for records and the CLI).  Times are samples since the first sample fed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from appliance.dsp._framing import BlockBuffer, Spans, StartsAt
from appliance.dsp.level import dbm0_to_power
from appliance.units import DBm0, Hz, LINE_RATE, Milliseconds, SampleRate, Seconds


class Tone(StrEnum):
    DIAL = "dial"
    BUSY = "busy"
    RINGBACK = "ringback"


#: Japanese names, for people
TONE_NAMES_JA = {Tone.DIAL: "発信音", Tone.BUSY: "話中音", Tone.RINGBACK: "呼出音"}


@dataclass(frozen=True)
class ToneSpec:
    rate: SampleRate = LINE_RATE
    freq: Hz = Hz(400.0)
    block: Milliseconds = Milliseconds(20.0)
    #: quietest tone reported (block average; AM ringback dips below its peak)
    threshold: DBm0 = DBm0(-45.0)
    #: share of the block's energy that must be at 400 Hz
    purity: float = 0.6
    busy_on: tuple[Seconds, Seconds] = (Seconds(0.35), Seconds(0.65))
    busy_off: tuple[Seconds, Seconds] = (Seconds(0.35), Seconds(0.65))
    ring_on: tuple[Seconds, Seconds] = (Seconds(0.7), Seconds(1.3))
    ring_off: tuple[Seconds, Seconds] = (Seconds(1.5), Seconds(2.6))
    dial_min: Seconds = Seconds(1.5)


@dataclass(frozen=True)
class ToneDetected(StartsAt):
    """A tone's cadence was recognised; it began at ``start`` (samples)."""

    tone: Tone
    start: int
    rate: int = LINE_RATE

    @property
    def start_s(self) -> float:
        return self.start / self.rate


@dataclass(frozen=True)
class ToneEnded(Spans):
    """A recognised tone stopped; it lasted from ``start`` to ``end`` (samples)."""

    tone: Tone
    start: int
    end: int
    rate: int = LINE_RATE

    @property
    def end_s(self) -> float:
        return self.end / self.rate


#: one shared default, so that detectors and a bank compare specs by identity
DEFAULT_SPEC = ToneSpec()


class CallProgressDetector:
    """``feed(samples) -> [ToneDetected | ToneEnded]``; ``finish()`` at end of audio."""

    def __init__(self, spec: ToneSpec = DEFAULT_SPEC) -> None:
        self.spec = spec
        n = int(round(spec.block * spec.rate / 1000.0))
        self._n = n
        half = n // 2
        m = np.arange(n)
        basis = np.exp(-2j * np.pi * spec.freq * m / spec.rate)
        # Re and Im of each half block's response, scaled so that the sum of
        # the four squares is the block's 400 Hz power (a sine of amplitude a
        # gives |X_half| = a*half/2 and reads a^2/2), DC removed
        halves = np.column_stack((np.where(m < half, basis, 0), np.where(m >= half, basis, 0)))
        cols = np.hstack((halves.real, halves.imag)) * (1.0 / half)
        self._basis = np.ascontiguousarray(np.hstack((cols - cols.mean(axis=0),
                                                      np.full((n, 1), 1.0 / n))))
        self._thr = dbm0_to_power(spec.threshold)
        bps = spec.rate / n  # blocks per second
        self._bps = bps
        self._busy_on = tuple(round(t * bps) for t in spec.busy_on)
        self._busy_off = tuple(round(t * bps) for t in spec.busy_off)
        self._ring_on = tuple(round(t * bps) for t in spec.ring_on)
        self._ring_off = tuple(round(t * bps) for t in spec.ring_off)
        self._dial_min = round(spec.dial_min * bps)
        self._buf = BlockBuffer(n)
        self._blk = np.empty(n)          # the one block of a frame-sized feed (feed)
        self._pf = None
        self.reset()

    def reset(self) -> None:
        self._buf.reset()
        #: decisions a TonesBank computed for the next frame (see feed)
        self._pf: tuple | None = None
        self._raw_prev = False     # previous block's raw decision
        self._state = False        # debounced tone on/off
        self._seg_start = 0        # block where the current on/off segment began
        self._segs: list[tuple[bool, int, int]] = []   # last completed segments
        self._run: Tone | None = None
        self._run_start = 0
        self._run_last_on_end = 0

    # ----------------------------------------------------------------- blocks
    def _raw(self, blocks: np.ndarray) -> np.ndarray:
        y = blocks @ self._basis
        band = (y[:, :4] ** 2).sum(axis=1)
        total = np.einsum("ij,ij->i", blocks, blocks) / self._n - y[:, 4] ** 2
        return (band >= self._thr) & (band >= self.spec.purity * total)

    def _raw1(self, block: np.ndarray) -> bool:
        """``_raw`` of one block with Python floats: a third of the numpy calls.
        The sums may differ from ``_raw``'s in the last bits (as ``_raw``'s own
        do between stacks of different heights); only an energy within
        rounding of a threshold could decide differently."""
        y0, y1, y2, y3, dc = (block @ self._basis).tolist()
        band = y0 * y0 + y1 * y1 + y2 * y2 + y3 * y3
        total = float(block @ block) / self._n - dc * dc
        return band >= self._thr and band >= self.spec.purity * total

    def feed(self, samples, *, frame: int | None = None) -> list[ToneDetected | ToneEnded]:
        """Feed the next samples; events in order.

        ``frame``: the caller's token for a whole capture frame that a
        :class:`TonesBank` may have analysed in advance (the engine passes the
        period's first sample when it feeds a line's whole far-leg frame). The
        precomputed decisions are used only if they were computed for this
        token and for this detector's buffer exactly as it stands; otherwise,
        and always without a token, the samples are analysed here. Either way
        the events are the same.
        """
        pf = self._pf
        if pf is not None:
            self._pf = None
            buf = self._buf
            if (frame is not None and pf[0] == frame and pf[1] is buf._tail
                    and pf[2] == buf.blocks_done and pf[3] == len(samples)):
                buf._tail = pf[4]
                buf.blocks_done += len(pf[5])
                return self._blocks(pf[5], pf[2])
        buf = self._buf
        n = self._n
        if type(samples) is np.ndarray and samples.dtype == np.int16 and samples.ndim == 1:
            t = buf._tail.size
            if n <= t + samples.size < 2 * n:
                # the capture loop's case: one frame completes exactly one block.
                # Same blocks as BlockBuffer.push, without its concatenations.
                blk = self._blk
                if t:
                    blk[:t] = buf._tail
                blk[t:] = samples[:n - t]
                buf._tail = samples[n - t:].astype(np.float64)
                first = buf.blocks_done
                buf.blocks_done += 1
                return self._blocks([self._raw1(blk)], first)
        blocks, first = buf.push(samples)
        if blocks.shape[0] == 0:
            return []
        return self._blocks(self._raw(blocks), first)

    def _blocks(self, raw, first: int) -> list[ToneDetected | ToneEnded]:
        """Run the cadence state machine over blocks' raw tone decisions
        (a bool array, or a list of bools from a TonesBank)."""
        out: list[ToneDetected | ToneEnded] = []
        prev = self._raw_prev
        # fast path: nothing on, nothing happening, no run whose pause may expire
        if not self._state and self._run is None and not (
                any(raw) if type(raw) is list else raw.any()):
            self._raw_prev = False
            return out
        for i in range(len(raw)):
            b = first + i
            cur = bool(raw[i])
            # two blocks in the new state make an edge, dated at the first of them
            if cur != self._state and prev == cur:
                self._edge(b - 1, out)
            prev = cur
            self._tick(b + 1, out)
        self._raw_prev = prev
        return out

    def finish(self) -> list[ToneDetected | ToneEnded]:
        """End of the audio: close a run still going."""
        out: list[ToneDetected | ToneEnded] = []
        end = self._buf.blocks_done
        if self._run is not None:
            if self._state:
                self._run_last_on_end = end
            self._close(out)
        return out

    # ---------------------------------------------------------------- cadence
    def _edge(self, at: int, out: list) -> None:
        seg = (self._state, self._seg_start, at)
        self._state = not self._state
        self._seg_start = at
        self._segs = (self._segs + [seg])[-3:]
        on, s, e = seg
        dur = e - s
        if on:
            run = self._run
            if run is Tone.DIAL:
                self._run_last_on_end = e
                self._close(out)
            elif run is not None:
                lo, hi = self._busy_on if run is Tone.BUSY else self._ring_on
                if lo <= dur <= hi:
                    self._run_last_on_end = e
                else:
                    self._close(out)
            if self._run is None and self._matches_busy():
                first_on = self._segs[-3]
                self._open(Tone.BUSY, first_on[1], e, out)
        else:
            # a pause ended: a burst starts now
            if self._run is None and self._matches_ringback():
                self._open(Tone.RINGBACK, self._segs[-2][1], self._segs[-2][2], out)

    def _tick(self, now: int, out: list) -> None:
        """Checks that depend on how long the current segment has lasted."""
        dur = now - self._seg_start
        run = self._run
        if self._state:
            if run is not Tone.DIAL and dur >= self._dial_min:
                if run is not None:
                    self._close(out)
                self._open(Tone.DIAL, self._seg_start, now, out)
            elif run is Tone.BUSY and dur > self._busy_on[1]:
                self._close(out)
            elif run is Tone.RINGBACK and dur > self._ring_on[1]:
                self._close(out)
        elif run is not None and run is not Tone.DIAL:
            hi = self._busy_off[1] if run is Tone.BUSY else self._ring_off[1]
            if dur > hi:
                self._close(out)

    def _matches_busy(self) -> bool:
        if len(self._segs) < 3:
            return False
        (a_on, a0, a1), (b_on, b0, b1), (c_on, c0, c1) = self._segs
        lo, hi = self._busy_on
        olo, ohi = self._busy_off
        return (a_on and not b_on and c_on and lo <= a1 - a0 <= hi
                and olo <= b1 - b0 <= ohi and lo <= c1 - c0 <= hi)

    def _matches_ringback(self) -> bool:
        if len(self._segs) < 2:
            return False
        (a_on, a0, a1), (b_on, b0, b1) = self._segs[-2:]
        lo, hi = self._ring_on
        olo, ohi = self._ring_off
        return a_on and not b_on and lo <= a1 - a0 <= hi and olo <= b1 - b0 <= ohi

    def _open(self, tone: Tone, start: int, last_on_end: int, out: list) -> None:
        self._run = tone
        self._run_start = start
        self._run_last_on_end = last_on_end
        out.append(ToneDetected(tone, start * self._n, self.spec.rate))

    def _close(self, out: list) -> None:
        out.append(ToneEnded(self._run, self._run_start * self._n,
                             self._run_last_on_end * self._n, self.spec.rate))
        self._run = None


class TonesBank:
    """The per-block analysis of many detectors' next frames in one go.

    The capture loop feeds every talking line's detector one 20 ms frame per
    period; analysing each alone costs a dozen small numpy calls a line.
    :meth:`prefetch` stacks the blocks those frames complete (each behind
    its detector's own buffered tail) and computes every block's 400 Hz and
    total energy with one matrix product, then leaves the decisions on each
    detector for its next :meth:`CallProgressDetector.feed` with the same
    ``frame`` token. The cadence state machine still runs in ``feed``, in the
    line's own order, so the events and their timing are unchanged.

    Exactness: a block's decision compares two energies. Computed for a
    stack of lines, they may differ from the per-line computation in the
    last bits (another BLAS kernel), so a decision is used only when it is
    far from both comparisons' edges — by ``TOL`` of the block's mean power,
    some 10^4 times the worst rounding of a 160-term product — and a line
    with any block near an edge gets no precomputed decisions: its ``feed``
    analyses the frame as before. Detectors must share one ``ToneSpec``.
    """

    TOL = 1e-9

    def __init__(self, spec: ToneSpec = DEFAULT_SPEC) -> None:
        self._proto = CallProgressDetector(spec)

    def prefetch(self, frame: int, dets: list[CallProgressDetector], rows: np.ndarray) -> int:
        """Analyse ``rows[k]`` (int16 samples) as ``dets[k]``'s next input.

        Returns how many detectors received decisions.
        """
        if not dets:
            return 0
        proto = self._proto
        spec = proto.spec
        n = proto._n
        width = rows.shape[1]
        if width == n:
            aligned = self._prefetch_aligned(frame, dets, rows)
            if aligned is not None:
                return aligned
        # one flat stream: each line's buffered tail then its frame (int16 is
        # exact in float64); the blocks are gathered from it in one go
        segs, starts, jobs = [], [], []
        at = 0
        for k, det in enumerate(dets):
            det._pf = None
            if det.spec is not spec and det.spec != spec:
                continue            # another spec: its feed analyses alone
            tail = det._buf._tail
            t = tail.size
            nb = (t + width) // n
            if nb == 0:
                continue
            if t:
                segs.append(tail)
            segs.append(rows[k])
            for b in range(nb):
                starts.append(at + b * n)
            jobs.append((det, tail, at + nb * n, at + t + width, nb))
            at += t + width
        if not jobs:
            return 0
        flat = np.concatenate(segs, dtype=np.float64)
        blocks = flat[np.add.outer(np.array(starts), np.arange(n))]
        raw, sure = self._decide(blocks)
        done = i = 0
        for det, tail, cut, end, nb in jobs:
            if all(sure[i:i + nb]):
                det._pf = (frame, tail, det._buf.blocks_done, width, flat[cut:end], raw[i:i + nb])
                done += 1
            i += nb
        return done

    def _prefetch_aligned(self, frame: int, dets: list, rows: np.ndarray) -> int | None:
        """``prefetch`` when every frame is exactly its detector's next block (no
        buffered tail, frame = block: the engine's lines start their detectors
        on the period grid). The blocks are then the rows themselves: one
        conversion instead of a gather. None: not the case, use the general path."""
        spec = self._proto.spec
        for det in dets:
            if det._buf._tail.size or (det.spec is not spec and det.spec != spec):
                return None
        blocks = rows.astype(np.float64)
        raw, sure = self._decide(blocks)
        done = 0
        for k, det in enumerate(dets):
            if sure[k]:
                buf = det._buf
                det._pf = (frame, buf._tail, buf.blocks_done, blocks.shape[1], _EMPTY, raw[k:k + 1])
                done += 1
            else:
                det._pf = None
        return done

    def _decide(self, blocks: np.ndarray) -> tuple[list, list]:
        """Every block's raw decision, and whether it is sure (far from both edges)."""
        proto = self._proto
        n = proto._n
        y = blocks @ proto._basis
        band = (y[:, :4] ** 2).sum(axis=1)
        ms = np.einsum("ij,ij->i", blocks, blocks) / n
        total = ms - y[:, 4] ** 2
        thr, purity = proto._thr, proto.spec.purity
        raw = ((band >= thr) & (band >= purity * total)).tolist()
        tol = self.TOL
        sure = ((np.abs(band - thr) > tol * (ms + thr)) & (
            (band < thr) | (np.abs(band - purity * total) > tol * ms))).tolist()
        return raw, sure


#: the tail of a detector whose blocks end exactly at its last frame (read only)
_EMPTY = np.zeros(0)
_EMPTY.flags.writeable = False


def detect_tones(samples, spec: ToneSpec = DEFAULT_SPEC) -> list[ToneEnded]:
    """Every recognised tone run in a whole signal."""
    det = CallProgressDetector(spec)
    ev = det.feed(samples) + det.finish()
    return [e for e in ev if isinstance(e, ToneEnded)]
