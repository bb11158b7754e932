"""TonesBank: the batched front end gives exactly the events of line-by-line feeding."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.dsp import CallProgressDetector, TonesBank, ToneSpec, gen
from appliance.dsp.tones import ToneDetected

F = 160  # samples per capture frame


def _line_signal(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Tones of every kind, speech-like audio, silence and noise, in a random order."""
    parts = []
    total = 0.0
    while total < seconds:
        kind = rng.integers(8)
        level = float(rng.uniform(-50, -8))
        secs = float(rng.uniform(0.3, 6.0))
        if kind <= 2:
            tone = ("dial", "busy", "ringback")[kind]
            p = gen.call_progress(tone, max(secs, 4.0), level=level,
                                  freq=float(rng.uniform(375, 425)))
        elif kind == 3:
            p = gen.speech_like(secs, level=level, seed=int(rng.integers(1 << 30)))
        elif kind == 4:
            p = gen.silence(secs * 1000)
        elif kind == 5:
            p = gen.noise(int(secs * 8000), level, seed=int(rng.integers(1 << 30)))
        elif kind == 6:   # a tone plus some noise, around the purity edge
            n = int(secs * 8000)
            p = (gen.sine(400, level, secs * 1000)[:n].astype(np.float64)
                 + gen.noise(n, level + float(rng.uniform(-6, 3)), seed=int(rng.integers(1 << 30))))
            p = np.clip(np.round(p), -32768, 32767).astype(np.int16)
        else:             # near the detector's minimum level
            p = gen.call_progress("busy", 4.0, level=float(rng.uniform(-47, -43)))
        parts.append(np.asarray(p, np.int16))
        total += parts[-1].size / 8000
    return np.concatenate(parts)


def _reference(x: np.ndarray, rng: np.random.Generator) -> list:
    """The old path: one detector alone, fed in random chunks."""
    det = CallProgressDetector()
    out, i = [], 0
    while i < x.size:
        step = int(rng.choice([1, 7, 80, 159, 160, 161, 333, 1000, 4000]))
        out += det.feed(x[i:i + step])
        i += step
    return out + det.finish()


def _run(far, start, seed, bank: TonesBank | None):
    """Feed like the engine does, with a bank or without; events per line and bank use."""
    lines, total = far.shape
    periods = total // F
    rng = np.random.default_rng(seed)        # the same schedule for both runs
    dets: list[CallProgressDetector | None] = [None] * lines
    got: list[list] = [[] for _ in range(lines)]
    used = 0
    for p in range(periods):
        p0 = p * F
        frame = far[:, p0:p0 + F]
        live = [k for k in range(lines) if dets[k] is not None]
        if bank is not None:
            used += bank.prefetch(p0, [dets[k] for k in live], frame[live])
        for k in range(lines):
            r = rng.random()
            if p0 <= start[k] < p0 + F:
                dets[k] = CallProgressDetector()
                got[k] += dets[k].feed(frame[k, start[k] - p0:])
            elif dets[k] is not None:
                if r < 0.05:                     # an event splits the frame: no token
                    cut = 1 + int(r * 1e6) % (F - 1)
                    got[k] += dets[k].feed(frame[k, :cut])
                    got[k] += dets[k].feed(frame[k, cut:])
                elif r < 0.07:                   # the line skips its detector this period
                    pass
                elif r < 0.08:                   # a stale token: must be ignored
                    got[k] += dets[k].feed(frame[k], frame=p0 - F)
                elif r < 0.085:                  # the call ends, a new one starts
                    got[k] += dets[k].finish()
                    dets[k] = CallProgressDetector()
                    got[k] += dets[k].feed(frame[k], frame=p0)
                elif r < 0.09:
                    dets[k].reset()
                    got[k] += dets[k].feed(frame[k], frame=p0)
                else:
                    got[k] += dets[k].feed(frame[k], frame=p0)
    for k in range(lines):
        if dets[k] is not None:
            got[k] += dets[k].finish()
    return got, used


def _mixed_far(seed, lines=7, periods=2000):
    rng = np.random.default_rng(seed)
    start = [int(rng.integers(0, 3 * F)) for _ in range(lines)]
    far = np.zeros((lines, periods * F), np.int16)
    for k in range(lines):
        sig = _line_signal(rng, periods * F / 8000)
        far[k, start[k]:] = sig[:periods * F - start[k]]
    return far, start


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_bank_and_line_by_line_give_identical_events(seed):
    far, start = _mixed_far(seed)
    want, _ = _run(far, start, seed, None)
    got, used = _run(far, start, seed, TonesBank())
    assert got == want
    assert used > far.shape[0] * far.shape[1] // F // 2        # the bank did the work
    assert sum(isinstance(e, ToneDetected) for ev in want for e in ev) >= 5


@pytest.mark.parametrize("seed", [0, 1])
def test_whole_frames_through_the_bank_equal_random_chunking(seed):
    """Lines fed only whole frames through the bank: the events of the old path,
    one detector per line fed in random chunks (the chunking property)."""
    far, _ = _mixed_far(seed + 10, lines=5, periods=1500)
    bank = TonesBank()
    dets = [CallProgressDetector() for _ in range(far.shape[0])]
    got: list[list] = [[] for _ in dets]
    for p0 in range(0, far.shape[1], F):
        assert bank.prefetch(p0, dets, far[:, p0:p0 + F]) == len(dets)
        for k, det in enumerate(dets):
            got[k] += det.feed(far[k, p0:p0 + F], frame=p0)
    for k, det in enumerate(dets):
        got[k] += det.finish()
        rng = np.random.default_rng(seed * 10 + k)
        assert got[k] == _reference(far[k], rng), k


def test_a_decision_near_an_edge_is_left_to_the_line():
    """A block whose 400 Hz energy ties the threshold gets no precomputed decision."""
    t = np.arange(F)
    block = np.round(3000 * np.sin(2 * np.pi * 400 * t / 8000)).astype(np.int16)
    bank = TonesBank()
    y = block.astype(np.float64) @ bank._proto._basis
    bank._proto._thr = (y[:4] ** 2).sum()      # a tie with the threshold
    det = CallProgressDetector()
    assert bank.prefetch(0, [det], block[None, :]) == 0
    assert det._pf is None
    # with an ordinary threshold the same block is decided in the batch
    assert TonesBank().prefetch(0, [det], block[None, :]) == 1


def test_other_spec_is_left_to_the_line():
    det = CallProgressDetector(ToneSpec(threshold=-30.0))
    assert TonesBank().prefetch(0, [det], np.zeros((1, F), np.int16)) == 0
    assert det.feed(np.zeros(F, np.int16), frame=0) == []


@pytest.mark.parametrize("seed", [4, 5])
def test_bank_gives_identical_block_decisions(seed, monkeypatch):
    """Sharper than events: every block's raw tone decision, in order, per detector."""
    far, start = _mixed_far(seed, lines=6, periods=1200)
    orig = CallProgressDetector._blocks

    def recorded(log):
        def _blocks(self, raw, first):
            log.append((self._rec_line, first, [bool(v) for v in raw]))
            return orig(self, raw, first)
        return _blocks

    def run(bank):
        log: list = []
        monkeypatch.setattr(CallProgressDetector, "_blocks", recorded(log))
        init = CallProgressDetector.__init__

        def tagged_init(self, *a, **kw):
            init(self, *a, **kw)
            self._rec_line = tagged_init.count
            tagged_init.count += 1
        tagged_init.count = 0
        monkeypatch.setattr(CallProgressDetector, "__init__", tagged_init)
        events, used = _run(far, start, seed, bank)
        monkeypatch.setattr(CallProgressDetector, "__init__", init)
        return sorted(log, key=lambda r: (r[0], r[1])), events, used

    want_log, want, _ = run(None)
    bank = TonesBank()      # its prototype detector is built before the tagging
    got_log, got, used = run(bank)
    assert used > 0
    assert sum(sum(r[2]) for r in want_log) > 500        # many tone blocks
    assert sum(len(r[2]) - sum(r[2]) for r in want_log) > 500
    # chunking differs (bank: one list per frame), so compare the flattened streams
    flat = lambda log: [(ln, f + i, v) for ln, f, raw in log for i, v in enumerate(raw)]
    assert flat(got_log) == flat(want_log)
    assert got == want
