"""``gpio://?ring=17&loop=27&relay=22&notice=23&capture=PCM&playback=PCM``: the single-line variant.

The ring detector and the loop-current sensor of one analog trunk module
are wired to the SBC's GPIO (hw/README.md, pin-out) and read through
gpiozero; the loop relay and the notice-path relay are GPIO outputs; the
line's two legs come from a 2-channel ALSA capture (far, near) and the
notice goes out through ALSA playback (alsa.py).

Debounce is ours (gpiozero's ``bounce_time`` is not honoured by every pin
factory): a level counts once it has held for ``debounce_ms`` (default
30 ms); the event is stamped at the edge that started it, in samples of the
capture clock (``sample_of(monotonic)``), so contact bounce shorter than
the window never reaches the engine.

The status panel (:class:`StatusPanel`): LEDs power, recording, fault and
the front-panel button, which plays a test notice on an idle line.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np

from appliance.clock import Clock
from appliance.errors import ConfigError, LineInterfaceError
from appliance.tapi.alsa import AlsaAudio, AudioLost
from appliance.tapi.contract import (EventKind, LineEvent, LineInfo, LineInterface, LineKind,
                                     Period)
from appliance.units import FRAME_SAMPLES, LINE_RATE


class Debouncer:
    """One input: raw edges in (time in samples), debounced level changes out."""

    def __init__(self, window: int, on: EventKind, off: EventKind) -> None:
        self.window = window
        self.on, self.off = on, off
        self.level = False              # debounced
        self._raw = False
        self._since = 0

    def edge(self, level: bool, sample: int) -> None:
        if level != self._raw:
            self._raw, self._since = level, sample

    def poll(self, now: int) -> list[tuple[int, EventKind]]:
        if self._raw != self.level and now - self._since >= self.window:
            self.level = self._raw
            return [(self._since, self.on if self.level else self.off)]
        return []


class GpioInterface(LineInterface):
    def __init__(self, clock: Clock, pin_factory=None, ring: int = 17, loop: int = 27,
                 relay: int = 22, notice: int = 23, capture: str | None = "hw:CARD=appliance",
                 playback: str | None = "hw:CARD=appliance", trunk: str = "T1",
                 debounce_ms: float = 30.0, active_low: bool = True, periods: int = 2) -> None:
        from gpiozero import DigitalInputDevice, DigitalOutputDevice
        self.clock = clock
        self.epoch = clock.now()
        self.info = LineInfo(trunk, 1, LineKind.ANALOG, "gpio")
        self._sample = 0
        self._mono0 = clock.monotonic()
        w = int(debounce_ms * LINE_RATE / 1000)
        self._ring = Debouncer(w, EventKind.RING_ON, EventKind.RING_OFF)
        self._loop = Debouncer(w, EventKind.LOOP_CLOSED, EventKind.LOOP_OPEN)
        kw = {"pin_factory": pin_factory} if pin_factory is not None else {}
        # opto-couplers pull the input low when ringing voltage / loop current is present
        self._ring_in = DigitalInputDevice(ring, pull_up=active_low, **kw)
        self._loop_in = DigitalInputDevice(loop, pull_up=active_low, **kw)
        self.relay = DigitalOutputDevice(relay, **kw)
        self.notice_path = DigitalOutputDevice(notice, **kw)
        for dev, deb in ((self._ring_in, self._ring), (self._loop_in, self._loop)):
            dev.when_activated = lambda d=deb: d.edge(True, self.sample_now())
            dev.when_deactivated = lambda d=deb: d.edge(False, self.sample_now())
            if dev.is_active:
                deb.edge(True, 0)
        self.audio = None
        if capture is not None:
            try:
                self.audio = AlsaAudio(capture, playback, 2, 1, periods)
                self.audio.prime()
            except AudioLost as exc:
                self.close()
                raise LineInterfaceError(f"gpio: ALSA {capture}: {exc}") from None
        self._plays: list[tuple[int, np.ndarray]] = []
        self._path_until: int | None = None   # line sample at which the notice has gone out
        self._closed = False

    def sample_now(self) -> int:
        """The capture clock's sample now (edges are stamped with it)."""
        return int(round((self.clock.monotonic() - self._mono0) * LINE_RATE))

    def lines(self) -> list[LineInfo]:
        return [self.info]

    @property
    def sample(self) -> int:
        return self._sample

    def read(self) -> Period | None:
        if self._closed:
            raise LineInterfaceError("gpio: interface is closed")
        p0, p1 = self._sample, self._sample + FRAME_SAMPLES
        far = np.zeros((1, FRAME_SAMPLES), np.int16)
        near = np.zeros((1, FRAME_SAMPLES), np.int16)
        if self._path_until is not None and p0 >= self._path_until:
            # the last notice sample has reached the line: only now open the path
            self.notice_path.off()
            self._path_until = None
        if self.audio is not None:
            self.audio.write(self._playback(p0 + self.audio.latency))
            block = self.audio.read()
            far[0], near[0] = block[:, 0], block[:, 1]
        else:
            self.clock.sleep_until(self._mono0 + p1 / LINE_RATE)
        events = [LineEvent(k, max(s, 0), self.info.trunk, 1, "gpio")
                  for deb in (self._ring, self._loop) for s, k in deb.poll(self.sample_now())]
        events.sort(key=lambda e: e.sample)
        self._sample = p1
        return Period(p0, far, near, events)

    def _playback(self, s0: int) -> np.ndarray:
        out = np.zeros((FRAME_SAMPLES, 1), np.int32)
        rest = []
        for start, x in self._plays:
            lo, hi = max(start, s0), min(start + x.size, s0 + FRAME_SAMPLES)
            if lo < hi:
                out[lo - s0:hi - s0, 0] += x[lo - start:hi - start]
            if start + x.size > s0 + FRAME_SAMPLES:
                rest.append((start, x))
        self._plays = rest
        return np.clip(out, -32768, 32767).astype(np.int16)

    def _check(self, trunk: str, channel: int) -> None:
        if (trunk, channel) != (self.info.trunk, 1):
            raise LineInterfaceError(f"gpio: no line {trunk}/{channel}")

    def play(self, trunk: str, channel: int, samples: np.ndarray) -> int:
        self._check(trunk, channel)
        start = self._sample + (self.audio.latency if self.audio is not None else 0)
        x = np.asarray(samples, np.int16)
        self._plays.append((start, x))
        # queued audio reaches the line ``latency`` later: the path stays closed until then
        self._path_until = max(self._path_until or 0, start + x.size)
        self.notice_path.on()
        return start

    def stop_play(self, trunk: str, channel: int) -> None:
        self._check(trunk, channel)
        self._plays = []
        self._path_until = None
        self.notice_path.off()

    def set_loop(self, trunk: str, channel: int, closed: bool) -> None:
        self._check(trunk, channel)
        self.relay.value = closed

    def close(self) -> None:
        if getattr(self, "_closed", True) and getattr(self, "audio", None) is None:
            pass
        self._closed = True
        for name in ("_ring_in", "_loop_in", "relay", "notice_path"):
            dev = getattr(self, name, None)
            if dev is not None:
                dev.close()
        if getattr(self, "audio", None) is not None:
            self.audio.close()
            self.audio = None


class StatusPanel:
    """Power, recording and fault LEDs and the test-notice button; a report listener."""

    def __init__(self, power: int = 5, recording: int = 6, fault: int = 13, button: int = 26,
                 pin_factory=None, on_button=None) -> None:
        from gpiozero import LED, Button
        kw = {"pin_factory": pin_factory} if pin_factory is not None else {}
        self.power, self.recording, self.fault = LED(power, **kw), LED(recording, **kw), \
            LED(fault, **kw)
        self.button = Button(button, **kw)
        self.power.on()
        self._active: set[str] = set()
        self._registry = False          # True once the alarm registry drives the fault LED
        if on_button is not None:
            self.button.when_pressed = lambda: on_button()

    def __call__(self, report) -> None:
        from appliance.engine.reports import Alarm, CallEnded, CallStarted
        if isinstance(report, CallStarted):
            self._active.add(report.call_id)
        elif isinstance(report, CallEnded):
            self._active.discard(report.call_id)
        elif isinstance(report, Alarm) and not self._registry:
            self.fault.on()
        self.recording.value = bool(self._active)

    def fault_led(self) -> PanelFaultLed:
        """The fault LED for the alarm registry (ops/leds.FaultLed): lit while any alarm is."""
        self._registry = True
        return PanelFaultLed(self.fault)

    def close(self) -> None:
        for d in (self.power, self.recording, self.fault, self.button):
            d.close()


class PanelFaultLed:
    """The panel's fault LED behind ops/leds.FaultLed; the panel closes the LED itself."""

    def __init__(self, led) -> None:
        self._led = led

    def set(self, on: bool) -> None:
        if not self._led.closed:
            self._led.value = on

    def close(self) -> None:
        pass


def open(rest: str, clock: Clock, base_dir: Path) -> GpioInterface:   # noqa: A001 (registry hook)
    q = {k: v[-1] for k, v in parse_qs(urlsplit("gpio://" + rest).query).items()}
    try:
        pins = {k: int(q[k]) for k in ("ring", "loop", "relay", "notice") if k in q}
        return GpioInterface(clock, None, capture=q.get("capture", "hw:CARD=appliance"),
                             playback=q.get("playback", "hw:CARD=appliance"),
                             trunk=q.get("trunk", "T1"),
                             debounce_ms=float(q.get("debounce_ms", 30)), **pins)
    except ValueError as exc:
        raise ConfigError(f"gpio://{rest}: {exc}") from None
