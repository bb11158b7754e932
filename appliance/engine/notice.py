"""The recording notice (音声案内, R3): its audio and its published wording (R17).

The shipped default is the city's wording spoken by espeak-ng
(tools/make_notice.sh), 8 kHz 16-bit mono; ``[notice] file`` replaces it.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from appliance.config import NoticeConfig
from appliance.errors import ConfigError
from appliance.units import LINE_RATE

DATA = Path(__file__).with_name("data")
DEFAULT_WAV = DATA / "notice_ja.wav"
DEFAULT_TEXT = (DATA / "notice_ja.txt").read_text(encoding="utf-8").strip()
#: a notice longer than this is a configuration mistake, not a notice
MAX_NOTICE_S = 60.0


@dataclass(frozen=True)
class Notice:
    samples: np.ndarray
    text: str
    source: Path

    @property
    def seconds(self) -> float:
        return self.samples.size / LINE_RATE


def load_notice(cfg: NoticeConfig = NoticeConfig()) -> Notice:
    path = cfg.file or DEFAULT_WAV
    try:
        with wave.open(str(path)) as w:
            if w.getframerate() != LINE_RATE or w.getsampwidth() != 2 or w.getnchannels() != 1:
                raise ConfigError(f"{path}: 音声案内は 8 kHz 16 bit モノラルの WAV / the notice "
                                  "must be an 8 kHz 16-bit mono WAV")
            if w.getnframes() > MAX_NOTICE_S * LINE_RATE or w.getnframes() == 0:
                raise ConfigError(f"{path}: notice must last 0–{MAX_NOTICE_S:g} s")
            x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.int16)
    except (OSError, wave.Error, EOFError) as exc:
        raise ConfigError(f"{path}: 音声案内を読めません / cannot read the notice ({exc})") from None
    x.setflags(write=False)
    return Notice(x, cfg.text or DEFAULT_TEXT, path)
