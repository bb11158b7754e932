"""``sim://PATH.toml``: a line interface whose device is a scenario.

Real time by default (each ``read`` waits for its 20 ms on the clock it was
given); with a :class:`~appliance.clock.FakeClock` it runs as fast as the
engine can take it, with the same samples. It hands the engine what the wire
carries and nothing else: numbers only ever travel as FSK and DTMF, or
inside the Q.931 frames of an ISDN trunk's D channel (``D_FRAME`` events on
channel 0, FCS included; sim/isdn.py).

``history`` lists everything that happened (rings, loop changes, the relay,
FSK, the notice's playback, glitches) with its sample; ``truth[call index]``
holds the samples of each call's offer, answer/connect and end.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from appliance.clock import Clock
from appliance.errors import LineInterfaceError
from appliance.tapi.contract import (EventKind, LineEvent, LineInfo, LineInterface, LineKind,
                                     Period)
from appliance.tapi.sim.isdn import IsdnTrunkWire
from appliance.tapi.sim.scenario import D_GLITCHES, Scenario, load_scenario
from appliance.tapi.sim.wire import LineWire, S, SimRecord
from appliance.units import FRAME_SAMPLES, LINE_RATE


class SimInterface(LineInterface):
    def __init__(self, scenario: Scenario, clock: Clock) -> None:
        self.scenario = scenario
        self.clock = clock
        self.epoch = scenario.start or clock.now()
        self._mono0 = clock.monotonic()
        self.history: list[SimRecord] = []
        self.truth: dict[int, dict] = {}
        self._lines: list[LineInfo] = []
        self._wires: list = []
        self._index: dict[tuple[str, int], int] = {}
        #: ISDN trunks: their D channel's frames (their B-channels are in _wires)
        self._isdn: dict[str, IsdnTrunkWire] = {}
        for t in scenario.trunks:
            if t.kind == "isdn":
                tw = self._isdn[t.id] = IsdnTrunkWire(
                    t.id, t.channels, [c for c in scenario.calls if c.trunk == t.id],
                    t.notice_path == "ok", self.history, self.truth, t.law)
            for ch in range(1, t.channels + 1):
                self._index[(t.id, ch)] = len(self._lines)
                self._lines.append(LineInfo(t.id, ch, LineKind(t.kind), t.device))
                if t.kind == "isdn":
                    self._wires.append(tw.channels[ch])
                    continue
                calls = [c for c in scenario.calls if c.line == (t.id, ch)]
                self._wires.append(LineWire(t.id, ch, calls, t.notice_path == "ok",
                                            self.history, self.truth))
        self._device_of = {t.id: t.device for t in scenario.trunks}
        self._glitches = sorted(scenario.glitches, key=lambda g: g.at)
        self._down: set[str] = set()
        self._garbage_until = -1
        self._sample = 0
        self._end = S(scenario.duration)
        self._closed = False
        n = len(self._lines)
        self._far = np.zeros((n, FRAME_SAMPLES), np.int32)
        self._near = np.zeros((n, FRAME_SAMPLES), np.int32)

    def lines(self) -> list[LineInfo]:
        return list(self._lines)

    @property
    def sample(self) -> int:
        """The next sample to be captured (where a command issued now takes effect)."""
        return self._sample

    def read(self) -> Period | None:
        if self._closed:
            raise LineInterfaceError("sim: interface is closed")
        p0 = self._sample
        if p0 >= self._end:
            return None
        p1 = p0 + FRAME_SAMPLES
        self.clock.sleep_until(self._mono0 + p1 / LINE_RATE)
        self._far[:] = 0
        self._near[:] = 0
        events: list[LineEvent] = []
        for tid, tw in self._isdn.items():
            if tw.idle:
                continue
            frames = tw.render(p0, p1)
            device = self._device_of[tid]
            if device not in self._down:
                events += [LineEvent(k, s, tid, 0, device, data) for s, k, data in frames]
        for i, (info, wire) in enumerate(zip(self._lines, self._wires)):
            if wire.idle:
                continue
            raw: list = []
            wire.render(p0, p1, self._far[i], self._near[i], raw)
            if info.device in self._down:
                self._far[i] = self._near[i] = 0
                continue
            events += [LineEvent(k, s, info.trunk, info.channel, info.device) for s, k in raw]
        events += self._glitch_events(p0, p1)
        events.sort(key=lambda e: e.sample)
        self._sample = p1
        if p0 < self._garbage_until:
            # what a confused driver might hand over: wrong shape, wrong type, NaN
            bad = np.full((len(self._lines), FRAME_SAMPLES // 2), np.nan)
            return Period(p0, bad, bad, events)
        return Period(p0, np.clip(self._far, -32768, 32767).astype(np.int16),
                      np.clip(self._near, -32768, 32767).astype(np.int16), events)

    def _glitch_events(self, p0: int, p1: int) -> list[LineEvent]:
        out = []
        while self._glitches and S(self._glitches[0].at) < p1:
            g = self._glitches.pop(0)
            s = max(S(g.at), p0)
            device = next((t.device for t in self.scenario.trunks if t.id == g.trunk), "sim0")
            self.history.append(SimRecord(s, g.trunk or "*", g.channel, f"glitch:{g.event}"))
            if g.event in D_GLITCHES:
                out.append(LineEvent(EventKind.D_FRAME, s, g.trunk, 0, device,
                                     self._isdn[g.trunk].glitch(g, s)))
            elif g.event == "garbage_frames":
                self._garbage_until = s + S(g.seconds)
            elif g.event == "device_lost":
                self._down.add(device)
                out.append(LineEvent(EventKind.DEVICE_LOST, s, None, 0, device))
            elif g.event == "device_back":
                self._down.discard(device)
                out.append(LineEvent(EventKind.DEVICE_BACK, s, None, 0, device))
            else:
                out.append(LineEvent(EventKind(g.event), s, g.trunk, g.channel, device))
        return out

    def _wire(self, trunk: str, channel: int):
        try:
            return self._wires[self._index[(trunk, channel)]]
        except KeyError:
            raise LineInterfaceError(f"sim: no line {trunk}/{channel}") from None

    def play(self, trunk: str, channel: int, samples: np.ndarray) -> int:
        s = self._sample
        self._wire(trunk, channel).play(s, np.asarray(samples, np.int16))
        return s

    def stop_play(self, trunk: str, channel: int) -> None:
        self._wire(trunk, channel).stop_play(self._sample)

    def set_loop(self, trunk: str, channel: int, closed: bool) -> None:
        self._wire(trunk, channel).set_loop(closed, self._sample)

    def close(self) -> None:
        self._closed = True

    def records(self, what: str) -> list[SimRecord]:
        return [r for r in self.history if r.what == what]


def open(rest: str, clock: Clock, base_dir: Path) -> SimInterface:   # noqa: A001 (registry hook)
    path = Path(rest)
    if not path.is_absolute():
        path = base_dir / path
    return SimInterface(load_scenario(path), clock)
