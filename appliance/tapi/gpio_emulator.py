"""The single-line stand-in: a simulated scenario on gpiozero mock pins and the ALSA capture FIFO.

The GPIO variant (``gpio://``, appliance/tapi/gpio.py) has no control
channel: the ring detector and the loop-current sensor of its one analog
trunk module are GPIO inputs, the loop relay and the notice-path relay GPIO
outputs, the two legs an ALSA capture and the notice an ALSA playback. This
driver plays the trunk module's part on a machine without one:

- the scenario's ring and loop changes drive the input pins of a gpiozero
  ``MockFactory`` (active low, as the opto-couplers pull them; optional
  contact bounce of ``bounce_ms`` after each edge, which the host's own
  debounce must swallow). The pins carry the ring *level* the trunk module
  integrates from the 16 Hz ringing (hw/README.md);
- the far and near legs go into the FIFO the host's ALSA ``file`` PCM reads
  (``infile``; emulator.alsa_config writes the configuration);
- the loop relay pin, read before each period, acts on the simulator
  (``set_loop``: the Number Display primary response and reception
  complete), and the host's playback is mixed into the near leg while the
  notice-path relay pin is on and the trunk's notice path works.

Pacing: ``lockstep`` renders period *k* once the host's playback for it is
in the playback file — the host writes it when it asks for period *k*, so
everything it decided on period *k−1* (the relay) has happened — and moves
the clock it shares with the host (a FakeClock) to each edge before driving
the pin, so the host stamps edges exactly and runs as fast as it can.
``realtime`` renders every 20 ms of the clock (a SystemClock on a bench).
The simulator itself should get a clock of its own that never waits
(a FakeClock): this driver does the pacing.

MockFactory pins exist only inside one process, so the host runs in the
same process: ``python -m appliance.tapi.gpio_emulator SCENARIO.toml --dir
DIR --data-dir DATA`` runs ``appliance run`` on ``gpio://`` with this driver
(real time).
"""

from __future__ import annotations

import argparse
import errno
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from appliance.clock import Clock, FakeClock, SystemClock
from appliance.tapi.contract import EventKind, LineKind
from appliance.tapi.sim import SimInterface, load_scenario
from appliance.units import FRAME_SAMPLES, LINE_RATE

PINS = {"ring": 17, "loop": 27, "relay": 22, "notice": 23}


@dataclass
class GpioEmulatorStats:
    periods: int = 0
    edges: int = 0                  # debounced level changes driven (bounce not counted)
    relay_changes: int = 0
    notice_periods: int = 0         # periods with the notice path on
    playback_missing: int = 0       # realtime: the host's playback was not there in time
    capture_dropped: int = 0        # the host did not read: its FIFO was full


class GpioEmulator:
    def __init__(self, sim: SimInterface, pin_factory, capture_fifo: Path, playback: Path,
                 pacing: str = "lockstep", clock: Clock | None = None,
                 ring: int = PINS["ring"], loop: int = PINS["loop"],
                 relay: int = PINS["relay"], notice: int = PINS["notice"],
                 active_low: bool = True, bounce_ms: float = 0.0) -> None:
        lines = sim.lines()
        if len(lines) != 1 or lines[0].kind is not LineKind.ANALOG:
            raise ValueError("the GPIO variant has exactly one analog line; this scenario has "
                             f"{len(lines)} line(s) of kinds {sorted({str(x.kind) for x in lines})}")
        if pacing not in ("lockstep", "realtime"):
            raise ValueError(f"pacing must be 'lockstep' or 'realtime', not {pacing!r}")
        self.sim = sim
        self.line = lines[0]
        self.notice_ok = sim.scenario.trunks[0].notice_path == "ok"
        self.capture_fifo, self.playback = Path(capture_fifo), Path(playback)
        self.pacing = pacing
        self.clock = clock or SystemClock()
        self.active_low = active_low
        self.bounce = bounce_ms / 1000.0
        self.stats = GpioEmulatorStats()
        self.ended = threading.Event()      # the scenario is over (the line stays idle)
        self.host_seen = threading.Event()  # the host's first playback period arrived
        self.relay_history: list[tuple[int, bool]] = []   #: (device sample, closed)
        self.error: Exception | None = None                #: what stopped the driver, if anything
        self._ring = pin_factory.pin(ring)
        self._loop = pin_factory.pin(loop)
        self._relay = pin_factory.pin(relay)
        self._notice = pin_factory.pin(notice)
        for pin in (self._ring, self._loop):
            self._level(pin, False)         # idle: no ringing voltage, no loop current
        self._relay_closed = False
        self._dev0 = sim.sample
        self._t0 = 0.0
        self._stop = threading.Event()
        if not self.capture_fifo.exists():
            os.mkfifo(self.capture_fifo)
        # read-write: neither this open nor the host's PCM open waits for the other
        self._cap = os.open(self.capture_fifo, os.O_RDWR | os.O_NONBLOCK)
        self._thread = threading.Thread(target=self._run, name="gpio-emulator", daemon=True)

    # --- control --------------------------------------------------------------------------
    def start(self) -> GpioEmulator:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._cap is not None:
            os.close(self._cap)
            self._cap = None

    def __enter__(self) -> GpioEmulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- pins -------------------------------------------------------------------------------
    def _level(self, pin, active: bool) -> None:
        (pin.drive_low if active == self.active_low else pin.drive_high)()

    def _at(self, device_sample: int) -> None:
        self.clock.sleep_until(self._t0 + device_sample / LINE_RATE)

    def _edge(self, pin, active: bool, d: int) -> None:
        self._at(d)
        self._level(pin, active)
        if self.bounce > 0:             # the contact lets go once and settles
            self.clock.sleep_until(self._t0 + d / LINE_RATE + self.bounce / 2)
            self._level(pin, not active)
            self.clock.sleep_until(self._t0 + d / LINE_RATE + self.bounce)
            self._level(pin, active)
        self.stats.edges += 1

    # --- the host's playback (and, in lockstep, its request for the next period) -----------
    def _playback_period(self, d0: int) -> np.ndarray | None:
        """The host's playback for device samples [d0, d0+160) (the file's offset is the sample)."""
        size = FRAME_SAMPLES * 2
        while not self._stop.is_set():
            try:
                with open(self.playback, "rb") as f:
                    f.seek(d0 * 2)
                    buf = f.read(size)
            except OSError:
                buf = b""
            if len(buf) == size:
                return np.frombuffer(buf, "<i2")
            if self.pacing == "realtime":
                self.stats.playback_missing += 1
                return None
            time.sleep(0.0005)
        return None

    # --- the device ---------------------------------------------------------------------
    def _run(self) -> None:
        # the host is there once its first playback period is (ALSA's file PCM writes it when
        # the host asks for the first capture period)
        while not self._stop.is_set() and self._playback_period(0) is None:
            time.sleep(0.01)
        if self._stop.is_set():
            return
        self.host_seen.set()
        self.stats.playback_missing = 0
        self._t0 = self.clock.monotonic()
        d0 = 0
        try:
            while not self._stop.is_set():
                if self.pacing == "realtime":
                    self._at(d0)
                pb = self._playback_period(d0)
                if pb is None and self.pacing == "lockstep":
                    break                               # stopped while waiting for the host
                self._render(d0, pb)
                d0 += FRAME_SAMPLES
        except Exception as exc:
            self.error = exc
            raise

    def _render(self, d0: int, pb: np.ndarray | None) -> None:
        closed = bool(self._relay.state)
        if closed != self._relay_closed:                # what the host decided last period
            self._relay_closed = closed
            self.stats.relay_changes += 1
            self.relay_history.append((d0, closed))
            self.sim.set_loop(self.line.trunk, self.line.channel, closed)
        path_on = bool(self._notice.state)
        period = None if self.ended.is_set() else self.sim.read()
        far = np.zeros(FRAME_SAMPLES, np.int16)
        near = np.zeros(FRAME_SAMPLES, np.int32)
        if period is None:
            self.ended.set()                            # the line stays idle: silence
        else:
            far = np.asarray(period.far)[0]
            near += np.asarray(period.near)[0]
            for ev in sorted(period.events, key=lambda e: e.sample):
                d = min(max(ev.sample - self._dev0, d0), d0 + FRAME_SAMPLES)
                if ev.kind in (EventKind.RING_ON, EventKind.RING_OFF):
                    self._edge(self._ring, ev.kind is EventKind.RING_ON, d)
                elif ev.kind in (EventKind.LOOP_CLOSED, EventKind.LOOP_OPEN):
                    self._edge(self._loop, ev.kind is EventKind.LOOP_CLOSED, d)
                # nothing else of the simulator's reaches a single-line module's pins
        if path_on:
            self.stats.notice_periods += 1
            if pb is not None and self.notice_ok:
                near += pb
        self._at(d0 + FRAME_SAMPLES)                    # the period is complete
        inter = np.empty((FRAME_SAMPLES, 2), "<i2")
        inter[:, 0] = far
        inter[:, 1] = np.clip(near, -32768, 32767)
        try:
            os.write(self._cap, inter.tobytes())
        except OSError as exc:
            if exc.errno != errno.EAGAIN:
                raise
            self.stats.capture_dropped += 1
        self.stats.periods += 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m appliance.tapi.gpio_emulator",
                                 description="単一回線 GPIO 版の模擬装置 / single-line GPIO "
                                             "stand-in: runs `appliance run` on gpio:// with it")
    ap.add_argument("scenario", type=Path, help="シナリオ / single-line scenario TOML")
    ap.add_argument("--dir", type=Path, required=True, help="作業ディレクトリ / working directory")
    ap.add_argument("--data-dir", type=Path, required=True, help="データ / the appliance's data")
    ap.add_argument("--bounce-ms", type=float, default=2.0, help="接点のチャタリング / bounce")
    args = ap.parse_args(argv)
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory

    from appliance.cli import main as cli_main
    from appliance.tapi.emulator import alsa_config

    d = args.dir.resolve()
    d.mkdir(parents=True, exist_ok=True)
    conf = d / "asound.conf"
    conf.write_text(alsa_config(d / "capture.fifo", d / "playback.raw"), encoding="utf-8")
    (d / "playback.raw").write_bytes(b"")
    os.environ["ALSA_CONFIG_PATH"] = str(conf)
    Device.pin_factory = factory = MockFactory()
    sim = SimInterface(load_scenario(args.scenario), FakeClock(SystemClock().now()))
    emu = GpioEmulator(sim, factory, d / "capture.fifo", d / "playback.raw", "realtime",
                       bounce_ms=args.bounce_ms).start()
    url = "gpio://?capture=appliance_capture&playback=appliance_playback"
    print(f"{url}  ({sim.scenario.duration:.0f} s; Ctrl-C to stop)", flush=True)
    try:
        return cli_main(["--data-dir", str(args.data_dir), "run", "--interface", url])
    finally:
        emu.stop()
        factory.reset()


if __name__ == "__main__":
    raise SystemExit(main())
