"""``appliance bench dsp``: microseconds per 20 ms frame per channel, per detector.

Each detector is fed one 20 ms frame (160 samples) at a time, as the capture
loop does, on a signal that exercises it.  Baselines measured in the same
run — a numpy RMS of a frame and a 160-point FFT — make the figures
comparable across machines: read the ratios.  A benchmark, not a test: it
prints, it asserts nothing.  Bounded: every entry gets ``frames`` frames.

Other detectors join by appending a :class:`BenchEntry` to :data:`DETECTORS`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from appliance.units import FRAME_SAMPLES


@dataclass(frozen=True)
class BenchEntry:
    name: str
    #: returns a fresh object whose ``feed(frame)`` is timed
    make: Callable[[], object]
    #: returns the test signal (int16, any length ≥ one frame)
    signal: Callable[[], np.ndarray]


def _dtmf_signal():
    from appliance.dsp import gen
    digits = gen.dtmf("0312345678", level=-15, on=60, off=60)
    speech = gen.speech_like(4.0, level=-20, seed=3)
    return np.concatenate((digits, speech))


def _tone_signal():
    from appliance.dsp import gen
    return np.concatenate((gen.call_progress("busy", 3.0), gen.speech_like(2.0, seed=4)))


def _callerid_signal():
    from appliance.dsp import gen
    from appliance.dsp.callerid import encode_caller_id
    fsk = encode_caller_id("jclip", "0263345000")
    return np.concatenate((np.zeros(4000, np.int16), np.asarray(fsk, np.int16),
                           gen.speech_like(2.0, seed=6)))


def _speech():
    from appliance.dsp import gen
    return gen.speech_like(5.0, level=-20, seed=5)


class _Ulaw:
    """G.711 both ways on one frame: what an ISDN leg costs."""

    def feed(self, frame):
        from appliance.dsp.g711 import linear_to_ulaw, ulaw_to_linear
        return ulaw_to_linear(linear_to_ulaw(frame))


def _make(path: str, cls: str):
    def make():
        import importlib
        return getattr(importlib.import_module(path), cls)()
    return make


DETECTORS: list[BenchEntry] = [
    BenchEntry("dtmf", _make("appliance.dsp.dtmf", "DtmfReceiver"), _dtmf_signal),
    BenchEntry("tones", _make("appliance.dsp.tones", "CallProgressDetector"), _tone_signal),
    BenchEntry("level", _make("appliance.dsp.level", "LevelMeter"), _speech),
    BenchEntry("g711 μ-law enc+dec", _Ulaw, _speech),
    BenchEntry("caller ID (auto)", _make("appliance.dsp.callerid", "CallerIdReceiver"),
               _callerid_signal),
]


def _frames(x: np.ndarray, frames: int) -> list[np.ndarray]:
    x = np.asarray(x, dtype=np.int16)
    reps = -(-frames * FRAME_SAMPLES // max(x.size, 1))
    x = np.tile(x, reps)[: frames * FRAME_SAMPLES]
    return [f.copy() for f in x.reshape(frames, FRAME_SAMPLES)]


def _per_frame(fn, frames: list[np.ndarray], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for f in frames:
            fn(f)
        best = min(best, time.perf_counter() - t0)
    return best / len(frames) * 1e6


def run(frames: int = 1000, repeats: int = 3) -> dict:
    """Figures as a dict: ``baseline`` (µs) and per detector µs and ratio."""
    base_frames = _frames(_speech(), frames)
    floats = [f.astype(np.float64) for f in base_frames]
    rms = _per_frame(lambda f: np.sqrt(np.mean(f * f)), floats, repeats)
    fft = _per_frame(np.fft.rfft, floats, repeats)
    out = {"frames": frames, "baseline_rms_us": rms, "baseline_fft160_us": fft, "detectors": []}
    for entry in DETECTORS:
        fr = _frames(entry.signal(), frames)

        def one(f, _det=[None]):      # fresh object per repeat, made outside the timing
            return _det[0].feed(f)
        best = float("inf")
        for _ in range(repeats):
            det = entry.make()
            one.__defaults__[0][0] = det
            best = min(best, _per_frame(one, fr, 1))
        out["detectors"].append({"name": entry.name, "us_per_frame": best,
                                 "x_rms": best / rms, "x_fft160": best / fft})
    return out


def register(bench_sub) -> None:
    p = bench_sub.add_parser(
        "dsp", help="検出器の処理時間 / µs per 20 ms frame per channel for each detector")
    p.add_argument("--frames", type=int, default=1000,
                   help="frames per detector and repeat (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="JSON で出力 / print JSON")
    p.set_defaults(func=cmd)


def cmd(args) -> int:
    import json

    from appliance.errors import ConfigError
    if not 10 <= args.frames <= 20000:
        raise ConfigError("--frames は 10〜20000 / --frames must be 10 … 20000")
    r = run(args.frames)
    if args.json:
        print(json.dumps(r, ensure_ascii=False))
        return 0
    print(f"1フレーム(20 ms)・1チャネルあたりの処理時間 / µs per 20 ms frame per channel "
          f"({r['frames']} frames, best of 3)")
    print(f"  基準 / baseline: numpy RMS {r['baseline_rms_us']:.2f} µs, "
          f"160-point FFT {r['baseline_fft160_us']:.2f} µs")
    print(f"  {'detector':22} {'µs/frame':>9} {'× RMS':>7} {'× FFT':>7}")
    for d in r["detectors"]:
        print(f"  {d['name']:22} {d['us_per_frame']:9.2f} {d['x_rms']:7.2f} {d['x_fft160']:7.2f}")
    return 0
