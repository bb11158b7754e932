"""WAV files in and out for the CLI (front ends do the I/O, never dsp/)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from appliance.errors import ConfigError


class WavError(ConfigError):
    """A WAV file that is not 8 kHz 16-bit mono PCM, or not a WAV at all."""


def read_line_wav(path: Path, rate: int = 8000) -> np.ndarray:
    """Read an 8 kHz, 16-bit, mono WAV as int16 samples, with a clear error otherwise."""
    try:
        with wave.open(str(path), "rb") as w:
            if w.getnchannels() != 1 or w.getsampwidth() != 2 or w.getframerate() != rate:
                raise WavError(
                    f"{path}: {w.getframerate()} Hz, {w.getnchannels()} ch, "
                    f"{8 * w.getsampwidth()} bit; 8 kHz 16-bit mono が必要 / needs {rate} Hz 16-bit mono")
            data = w.readframes(w.getnframes())
    except FileNotFoundError:
        raise WavError(f"{path}: ファイルがありません / no such file") from None
    except (wave.Error, EOFError) as exc:
        raise WavError(f"{path}: WAV として読めません / not a readable WAV ({exc})") from None
    n = len(data) // 2
    return np.frombuffer(data[: 2 * n], dtype="<i2").astype(np.int16)


def write_line_wav(path: Path, samples: np.ndarray, rate: int = 8000) -> None:
    pcm = np.clip(np.asarray(samples), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
