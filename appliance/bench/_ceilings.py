"""Ceilings for ``appliance bench pipeline``, measured on the same audio in the same run.

* **bare opuslib**: the recording's encoder configuration (two uncoupled
  mono streams, 8 kHz, VOIP, voice signal, the same bitrate and complexity)
  in a plain Python loop with nothing else: no DSP, no Ogg, no sealing, no
  disk. What the pipeline could reach at best on one core.
* **ffmpeg -c:a libopus** and **opusenc**: what a person would run instead,
  timed as whole processes (user + system CPU of the child). Neither offers
  two uncoupled streams from a stereo input: both encode coupled stereo at
  the same total bitrate; opusenc also resamples to 48 kHz first.

Figures are *two-leg calls per core*: seconds of call audio one CPU second
encodes, i.e. how many calls one core keeps up with.
"""

from __future__ import annotations

import resource
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import opuslib_next as opus

from appliance.store.opus import EncoderSettings
from appliance.units import FRAME_SAMPLES, LINE_RATE

#: a child encoder is stopped after this long (bounded)
CHILD_TIMEOUT_S = 120


def bare_opuslib(far: np.ndarray, near: np.ndarray, settings: EncoderSettings,
                 repeats: int = 3) -> float:
    """Calls per core of a bare multistream encoder loop (best of ``repeats``)."""
    n = far.size // FRAME_SAMPLES
    pcm = np.empty((n * FRAME_SAMPLES, 2), "<i2")
    pcm[:, 0], pcm[:, 1] = far[:n * FRAME_SAMPLES], near[:n * FRAME_SAMPLES]
    frames = [pcm[i * FRAME_SAMPLES:(i + 1) * FRAME_SAMPLES].tobytes() for i in range(n)]
    best = float("inf")
    for _ in range(repeats):
        enc = opus.MultiStreamEncoder(LINE_RATE, 2, 2, 0, [0, 1], "voip")
        enc.bitrate = settings.bitrate_per_leg * 2
        enc.complexity = settings.complexity
        enc.signal = opus.SIGNAL_VOICE
        t0 = time.thread_time()
        for f in frames:
            enc.encode(f, FRAME_SAMPLES)
        best = min(best, time.thread_time() - t0)
    return n * FRAME_SAMPLES / LINE_RATE / best


def _child_cpu(cmd: list[str]) -> float | None:
    """User + system CPU seconds of one child process; None if it failed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=CHILD_TIMEOUT_S,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def external(far: np.ndarray, near: np.ndarray, settings: EncoderSettings, workdir: Path,
             repeats: int = 3) -> dict[str, float | None]:
    """Calls per core of ffmpeg's libopus and of opusenc (None when a tool is missing)."""
    n = min(far.size, near.size)
    pcm = np.empty((n, 2), "<i2")
    pcm[:, 0], pcm[:, 1] = far[:n], near[:n]
    raw = workdir / "ceiling.s16"
    raw.write_bytes(pcm.tobytes())
    audio_s = n / LINE_RATE
    kbps = settings.bitrate_per_leg * 2 // 1000
    tools = {
        "ffmpeg": ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
                   "-f", "s16le", "-ar", str(LINE_RATE), "-ac", "2", "-i", str(raw),
                   "-c:a", "libopus", "-b:a", f"{kbps}k", "-application", "voip",
                   "-compression_level", str(settings.complexity), "-frame_duration", "20",
                   "-mapping_family", "255",
                   str(workdir / "ffmpeg.opus")],
        "opusenc": ["opusenc", "--quiet", "--raw", "--raw-rate", str(LINE_RATE),
                    "--raw-chan", "2", "--bitrate", str(kbps), "--comp", str(settings.complexity),
                    "--framesize", "20", "--speech", str(raw), str(workdir / "opusenc.opus")],
    }
    out: dict[str, float | None] = {}
    for name, cmd in tools.items():
        if shutil.which(cmd[0]) is None:
            out[name] = None
            continue
        times = [t for t in (_child_cpu(cmd) for _ in range(repeats)) if t]
        out[name] = audio_s / min(times) if times else None
    return out
