"""The interface's audio through pyalsaaudio: multichannel capture, notice playback, xruns.

Capture: one interleaved S16_LE stream at 8 kHz, 20 ms periods (160
frames), ``len(channel_map)`` channels; each channel is (line row, leg). A
period that comes back short or with an error (an overrun: -EPIPE) is an
xrun: counted, the missing frames replaced by silence so the sample clock
stays true, and the stream goes on (pyalsaaudio re-prepares the PCM).

Playback: one channel per line (the notice injection of each trunk module);
the host keeps ``periods`` periods queued and writes one period per captured
period, so the notice reaches the line exactly ``latency`` samples after the
period it was asked for.

ISDN B-channels arrive as G.711 codes in the low byte of their 16-bit
channel (the interface does not know the bearer); :func:`expand_g711`
turns them into linear PCM with the law of the call's bearer capability.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from appliance.dsp import g711
from appliance.units import FRAME_SAMPLES, LINE_RATE


class AudioLost(Exception):
    """The PCM device went away (internal to the backends)."""


@dataclass
class AudioStats:
    periods: int = 0
    xruns: int = 0
    short_reads: int = 0
    playback_xruns: int = 0


def expand_g711(channel: np.ndarray, law: str) -> np.ndarray:
    codes = (np.asarray(channel).astype(np.int32) & 0xFF).astype(np.uint8)
    return g711.alaw_to_linear(codes) if law == "alaw" else g711.ulaw_to_linear(codes)


class AlsaAudio:
    def __init__(self, capture: str, playback: str | None, channels: int,
                 playback_channels: int, periods: int = 2) -> None:
        import alsaaudio
        self._alsa = alsaaudio
        self.channels = channels
        self.playback_channels = playback_channels
        self.stats = AudioStats()
        self.periods = periods
        self.cap = self.pb = None
        try:
            self.cap = alsaaudio.PCM(alsaaudio.PCM_CAPTURE, device=capture, channels=channels,
                                     rate=LINE_RATE, format=alsaaudio.PCM_FORMAT_S16_LE,
                                     periodsize=FRAME_SAMPLES, periods=max(periods, 2))
            if playback:
                self.pb = alsaaudio.PCM(alsaaudio.PCM_PLAYBACK, device=playback,
                                        channels=playback_channels, rate=LINE_RATE,
                                        format=alsaaudio.PCM_FORMAT_S16_LE,
                                        periodsize=FRAME_SAMPLES, periods=periods)
        except alsaaudio.ALSAAudioError as exc:
            self.close()
            raise AudioLost(str(exc)) from None
        self._pb_period = np.zeros((FRAME_SAMPLES, playback_channels), "<i2")

    @property
    def latency(self) -> int:
        """Samples between writing a playback period and it reaching the line."""
        return self.periods * FRAME_SAMPLES if self.pb is not None else 0

    def prime(self) -> None:
        """Queue ``periods`` periods of silence so playback runs ahead of capture."""
        for _ in range(self.periods):
            self.write(np.zeros((FRAME_SAMPLES, self.playback_channels), np.int16))

    def read(self) -> np.ndarray:
        """One period, shape (FRAME_SAMPLES, channels) int16; xruns become counted silence."""
        try:
            n, data = self.cap.read()
        except self._alsa.ALSAAudioError as exc:
            raise AudioLost(str(exc)) from None
        self.stats.periods += 1
        out = np.zeros((FRAME_SAMPLES, self.channels), np.int16)
        if n < 0:
            self.stats.xruns += 1
            return out
        got = np.frombuffer(data, "<i2")
        frames = min(got.size // self.channels, FRAME_SAMPLES)
        if frames < FRAME_SAMPLES:
            self.stats.short_reads += 1
            self.stats.xruns += 1
        out[:frames] = got[:frames * self.channels].reshape(frames, self.channels)
        return out

    def write(self, period: np.ndarray) -> None:
        if self.pb is None:
            return
        try:
            n = self.pb.write(np.ascontiguousarray(period, "<i2").tobytes())
        except self._alsa.ALSAAudioError as exc:
            raise AudioLost(str(exc)) from None
        if n is not None and n < 0:
            self.stats.playback_xruns += 1

    def close(self) -> None:
        for pcm in (self.cap, self.pb):
            if pcm is not None:
                try:
                    pcm.close()
                except Exception:       # noqa: BLE001 — a vanished device may fail to close
                    pass
        self.cap = self.pb = None
