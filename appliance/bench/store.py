"""``appliance bench store``: the cost of recording, against bare libopus.

Baseline: the same frames through a bare multistream Opus encoder, measured
in the same run. The figure that matters is the ratio: what Ogg framing and
sealing add on top of the codec, whatever the machine's speed today.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import numpy as np
import opuslib_next as opus

from appliance.engine.synthetic import two_leg_frames
from appliance.store.opus import EncoderSettings
from appliance.store.recording import CallTags, RecordingEncoder


def _time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def run(seconds: float = 20.0, repeats: int = 3, complexity: int = 5) -> dict:
    frames = list(two_leg_frames(seconds))
    settings = EncoderSettings(complexity=complexity)

    def bare():
        enc = opus.MultiStreamEncoder(8000, 2, 2, 0, [0, 1], "voip")
        enc.bitrate, enc.complexity = settings.bitrate_per_leg * 2, settings.complexity
        for far, near in frames:
            pcm = np.empty((160, 2), "<i2")
            pcm[:, 0], pcm[:, 1] = far, near
            enc.encode(pcm.tobytes(), 160)

    def sealed():
        tags = CallTags("bench", "bench", "T0", 0, datetime.now(timezone.utc))
        enc = RecordingEncoder(tags, "00", bytes(32), settings)
        enc.start()
        for far, near in frames:
            enc.write(far, near)
        enc.close()

    t_bare, t_sealed = _time(bare, repeats), _time(sealed, repeats)
    return {
        "audio_s": seconds,
        "bare_opus_x_realtime": seconds / t_bare,
        "recording_x_realtime": seconds / t_sealed,
        "ratio_to_bare_opus": t_sealed / t_bare,
        "us_per_frame": 1e6 * t_sealed / len(frames),
    }


def cmd(args) -> int:
    r = run(args.seconds, args.repeats, args.complexity)
    print(f"録音処理の性能 / recording pipeline (encode + Ogg + seal), {r['audio_s']:g} s of two-leg audio")
    print(f"  bare libopus multistream (baseline): {r['bare_opus_x_realtime']:8.1f} × real time")
    print(f"  recording encoder                  : {r['recording_x_realtime']:8.1f} × real time, "
          f"{r['us_per_frame']:.1f} µs per 20 ms frame")
    print(f"  cost relative to the baseline      : {r['ratio_to_bare_opus']:.3f}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("store", help="録音処理の性能 / encode+seal cost against bare libopus")
    p.add_argument("--seconds", type=float, default=20.0, help="audio per run (default %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="runs; the best counts (default %(default)s)")
    p.add_argument("--complexity", type=int, default=5, help="Opus complexity (default %(default)s)")
    p.set_defaults(func=cmd)
