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

Two processes, and why the split falls where it does. gpiozero's
``MockFactory`` pins exist only inside one process — the host's, since the
appliance's ``gpio://`` backend opens its devices on them — so the pins stay
in the host: :class:`GpioPins` drives the input pins from a small thread and
reports the output pins (loop relay, notice path) the moment the host sets
them (a pin class whose state change sends a message: no thread involved).
Everything that touches the audio — the simulator, the capture FIFO the
host's alsa-lib reads, the playback file it writes, the notice mixing, the
relay acting on the simulated line — runs in a child process
(:class:`GpioAudioSide`, started through appliance/tapi/standin.py). alsa-lib
opens the capture FIFO holding the GIL, so a host thread that had to open or
feed it could be starved; the child opens the FIFO read-write before the
host is told to start, and feeds it from its own interpreter. The one host
thread left, the pin driver, only waits on a socket (which releases the
GIL) while the host's main thread blocks in ``PCM.read()`` (which releases
it too: measured, another thread runs millions of iterations meanwhile).

In lockstep each period is a round trip: the child renders period *k*,
sends its edges and the period's end time to the pin driver, which moves
the host's FakeClock to each edge, drives the pin (with bounce) and moves
the clock to the end of the period, then acknowledges; only then does the
child write period *k* into the FIFO, so the host reads the audio with the
pins and the clock already where the wire had them.

``python -m appliance.tapi.gpio_emulator SCENARIO.toml --dir DIR --data-dir
DATA`` runs ``appliance run`` on ``gpio://`` with this stand-in (real time).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import select
import socket
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from appliance.clock import Clock, FakeClock, SystemClock
from appliance.tapi.contract import EventKind
from appliance.tapi.sim import SimInterface, load_scenario
from appliance.tapi.sim.scenario import Scenario
from appliance.units import FRAME_SAMPLES, LINE_RATE

PINS = {"ring": 17, "loop": 27, "relay": 22, "notice": 23}
#: how long one side waits for the other before it calls the stand-in broken
PEER_TIMEOUT_S = 30.0


@dataclass
class GpioEmulatorStats:
    periods: int = 0
    edges: int = 0                  # debounced level changes driven (bounce not counted)
    relay_changes: int = 0
    notice_periods: int = 0         # periods with the notice path on
    playback_missing: int = 0       # realtime: the host's playback was not there in time
    capture_dropped: int = 0        # the host did not read: its FIFO was full


def check_single_line(scenario: Scenario) -> None:
    """The GPIO variant has exactly one analog line."""
    kinds = [(t.kind, t.channels) for t in scenario.trunks]
    if kinds != [("analog", 1)]:
        raise ValueError("the GPIO variant has exactly one analog line; this scenario has "
                         f"trunks {kinds}")


def _send(sock: socket.socket, obj) -> None:
    sock.send(json.dumps(obj, separators=(",", ":")).encode())


def _recv(sock: socket.socket, timeout: float):
    """One message (SOCK_SEQPACKET keeps their bounds); None on timeout; EOFError at the end."""
    r, _, _ = select.select([sock], [], [], timeout)
    if not r:
        return None
    data = sock.recv(65536)
    if not data:
        raise EOFError("the other side closed")
    return json.loads(data)


# --- the child: the audio side -------------------------------------------------------------

class GpioAudioSide:
    """The simulator, the capture FIFO and the host's playback (in the stand-in's process)."""

    def __init__(self, sim: SimInterface, pins: socket.socket, capture_fifo: Path,
                 playback: Path, pacing: str = "lockstep") -> None:
        check_single_line(sim.scenario)
        if pacing not in ("lockstep", "realtime"):
            raise ValueError(f"pacing must be 'lockstep' or 'realtime', not {pacing!r}")
        self.sim = sim
        self.line = sim.lines()[0]
        self.notice_ok = sim.scenario.trunks[0].notice_path == "ok"
        self.pins = pins
        self.capture_fifo, self.playback = Path(capture_fifo), Path(playback)
        self.pacing = pacing
        self.clock = SystemClock()
        self.stats = GpioEmulatorStats()
        self.ended = threading.Event()      # the scenario is over (the line stays idle)
        self.host_seen = threading.Event()  # the host's first playback period arrived
        self.relay_history: list[tuple[int, bool]] = []   #: (device sample, closed)
        self.error: str | None = None                      #: what stopped the driver
        self._out = {"relay": False, "notice": False}     # the host's output pins, as reported
        self._relay_closed = False
        self._dev0 = sim.sample
        self._t0 = 0.0
        self._stop = threading.Event()
        if not self.capture_fifo.exists():
            os.mkfifo(self.capture_fifo)
        # read-write, before the host is told to start: neither this open nor the host's
        # PCM open (alsa-lib, holding the host's GIL) waits for the other
        self._cap = os.open(self.capture_fifo, os.O_RDWR | os.O_NONBLOCK)
        self._thread = threading.Thread(target=self._run, name="gpio-audio", daemon=True)

    def start(self) -> GpioAudioSide:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._cap is not None:
            os.close(self._cap)
            self._cap = None

    # --- the host's pins, as its reports arrive -------------------------------------------
    def _take(self, msg) -> dict | None:
        if msg.get("t") == "out":
            self._out[msg["pin"]] = bool(msg["state"])
            return None
        return msg

    def _drain(self) -> None:
        while True:
            msg = _recv(self.pins, 0.0)
            if msg is None:
                return
            self._take(msg)

    def _await_ack(self, d0: int) -> bool:
        deadline = time.monotonic() + PEER_TIMEOUT_S
        while not self._stop.is_set():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the host's pin driver did not acknowledge period {d0}")
            msg = _recv(self.pins, 0.05)
            if msg is not None and self._take(msg) is not None and msg.get("ack") == d0:
                return True
        return False

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
        try:
            # the host is there once its first playback period is (ALSA's file PCM writes it
            # when the host asks for the first capture period)
            while not self._stop.is_set() and self._playback_period(0) is None:
                time.sleep(0.01)
            if self._stop.is_set():
                return
            self.host_seen.set()
            self.stats.playback_missing = 0
            self._t0 = self.clock.monotonic()
            _send(self.pins, {"t": "start"})
            d0 = 0
            while not self._stop.is_set():
                if self.pacing == "realtime":
                    self.clock.sleep_until(self._t0 + d0 / LINE_RATE)
                pb = self._playback_period(d0)
                if pb is None and self.pacing == "lockstep":
                    break                               # stopped while waiting for the host
                if not self._render(d0, pb):
                    break
                d0 += FRAME_SAMPLES
        except Exception as exc:                        # noqa: BLE001 — the host asks for it
            self.error = f"{type(exc).__name__}: {exc}"

    def _render(self, d0: int, pb: np.ndarray | None) -> bool:
        self._drain()                                   # what the host set on its pins
        closed = self._out["relay"]
        if closed != self._relay_closed:                # what the host decided last period
            self._relay_closed = closed
            self.stats.relay_changes += 1
            self.relay_history.append((d0, closed))
            self.sim.set_loop(self.line.trunk, self.line.channel, closed)
        path_on = self._out["notice"]
        period = None if self.ended.is_set() else self.sim.read()
        far = np.zeros(FRAME_SAMPLES, np.int16)
        near = np.zeros(FRAME_SAMPLES, np.int32)
        edges = []
        if period is None:
            self.ended.set()                            # the line stays idle: silence
        else:
            far = np.asarray(period.far)[0]
            near += np.asarray(period.near)[0]
            for ev in sorted(period.events, key=lambda e: e.sample):
                d = min(max(ev.sample - self._dev0, d0), d0 + FRAME_SAMPLES)
                if ev.kind in (EventKind.RING_ON, EventKind.RING_OFF):
                    edges.append(["ring", ev.kind is EventKind.RING_ON, d])
                elif ev.kind in (EventKind.LOOP_CLOSED, EventKind.LOOP_OPEN):
                    edges.append(["loop", ev.kind is EventKind.LOOP_CLOSED, d])
                # nothing else of the simulator's reaches a single-line module's pins
        self.stats.edges += len(edges)
        if path_on:
            self.stats.notice_periods += 1
            if pb is not None and self.notice_ok:
                near += pb
        lockstep = self.pacing == "lockstep"
        if edges or lockstep:
            _send(self.pins, {"t": "period", "d0": d0, "edges": edges,
                              "end": d0 + FRAME_SAMPLES, "ack": lockstep})
        if lockstep and not self._await_ack(d0):
            return False
        if not lockstep:
            self.clock.sleep_until(self._t0 + (d0 + FRAME_SAMPLES) / LINE_RATE)
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
        return True


def child_main(channel, extra: list[socket.socket], args: dict) -> int:
    """The stand-in's process (appliance/tapi/standin.py): the audio side, answering the host."""
    from appliance.tapi.standin import serve
    sim = SimInterface(load_scenario(Path(args["scenario"])),
                       FakeClock(datetime.fromisoformat(args["start"])))
    side = GpioAudioSide(sim, extra[0], Path(args["capture_fifo"]), Path(args["playback"]),
                         args.get("pacing", "lockstep")).start()
    handlers = {
        "snapshot": lambda: {"stats": asdict(side.stats), "error": side.error,
                             "relay_history": side.relay_history,
                             "ended": side.ended.is_set(), "host_seen": side.host_seen.is_set()},
    }
    channel.send({"ok": True, "result": {"pid": os.getpid()}})
    serve(channel, handlers, side.stop)
    return 0


# --- the host: the pins ------------------------------------------------------------------------

def _reporting_pin_class():
    from gpiozero.pins.mock import MockPin

    class ReportingPin(MockPin):
        """An output pin that tells the audio side the moment the host sets it."""

        def __init__(self, factory, info, report=None):
            super().__init__(factory, info)
            self._report = report

        def _change_state(self, value):
            changed = super()._change_state(value)
            if changed and self._report is not None:
                self._report(bool(value))
            return changed
    return ReportingPin


class GpioPins:
    """The host's half: drives the input pins, reports the output pins (see the module doc)."""

    def __init__(self, pin_factory, sock: socket.socket, clock: Clock, ring: int, loop: int,
                 relay: int, notice: int, active_low: bool, bounce_ms: float) -> None:
        self.sock = sock
        self.clock = clock
        self.active_low = active_low
        self.bounce = bounce_ms / 1000.0
        self.error: str | None = None
        self._lock = threading.Lock()
        self._ins = {"ring": pin_factory.pin(ring), "loop": pin_factory.pin(loop)}
        cls = _reporting_pin_class()
        for name, number in (("relay", relay), ("notice", notice)):
            pin = pin_factory.pin(number, pin_class=cls,
                                  report=lambda state, n=name: self._report(n, state))
            if not isinstance(pin, cls):
                raise ValueError(f"GPIO{number} is already in use: the stand-in must create the "
                                 "output pins before the appliance opens them")
        for pin in self._ins.values():
            self._level(pin, False)         # idle: no ringing voltage, no loop current
        self._t0 = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gpio-pins", daemon=True)

    def _report(self, name: str, state: bool) -> None:
        with self._lock:                    # the host's threads may set pins concurrently
            try:
                _send(self.sock, {"t": "out", "pin": name, "state": state})
            except OSError:
                pass                        # the stand-in has gone: nothing to tell

    def _level(self, pin, active: bool) -> None:
        (pin.drive_low if active == self.active_low else pin.drive_high)()

    def _edge(self, pin, active: bool, d: int) -> None:
        t = self._t0 + d / LINE_RATE
        self.clock.sleep_until(t)
        self._level(pin, active)
        if self.bounce > 0:                 # the contact lets go once and settles
            self.clock.sleep_until(t + self.bounce / 2)
            self._level(pin, not active)
            self.clock.sleep_until(t + self.bounce)
            self._level(pin, active)

    def start(self) -> GpioPins:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                msg = _recv(self.sock, 0.05)
                if msg is None:
                    continue
                if msg["t"] == "start":
                    self._t0 = self.clock.monotonic()
                elif msg["t"] == "period":
                    for name, active, d in msg["edges"]:
                        self._edge(self._ins[name], active, d)
                    if msg["ack"]:
                        # lockstep: the period is complete on the host's clock too
                        self.clock.sleep_until(self._t0 + msg["end"] / LINE_RATE)
                        with self._lock:
                            _send(self.sock, {"t": "ack", "ack": msg["d0"]})
        except EOFError:
            pass                            # the stand-in stopped
        except Exception as exc:            # noqa: BLE001 — reported through GpioEmulator
            self.error = f"{type(exc).__name__}: {exc}"


class GpioEmulator:
    """The single-line stand-in: the audio side in a child process, the pins here.

    A context manager; after it stops, ``stats``, ``relay_history`` and
    ``error`` hold the stand-in's final account.
    """

    def __init__(self, scenario: Path, start: datetime, pin_factory, capture_fifo: Path,
                 playback: Path, pacing: str = "lockstep", clock: Clock | None = None,
                 ring: int = PINS["ring"], loop: int = PINS["loop"],
                 relay: int = PINS["relay"], notice: int = PINS["notice"],
                 active_low: bool = True, bounce_ms: float = 0.0) -> None:
        from appliance.tapi.standin import StandinProcess
        check_single_line(load_scenario(Path(scenario)))
        if pacing not in ("lockstep", "realtime"):
            raise ValueError(f"pacing must be 'lockstep' or 'realtime', not {pacing!r}")
        self.stats = GpioEmulatorStats()
        self.relay_history: list[tuple[int, bool]] = []
        self.error: str | None = None
        self._proc = StandinProcess("gpio-audio", {
            "scenario": str(Path(scenario).resolve()), "start": start.isoformat(),
            "capture_fifo": str(Path(capture_fifo).resolve()),
            "playback": str(Path(playback).resolve()), "pacing": pacing}, extra=1)
        try:
            self.pins = GpioPins(pin_factory, self._proc.extra[0], clock or SystemClock(),
                                 ring, loop, relay, notice, active_low, bounce_ms).start()
        except Exception:
            self._proc.stop()
            raise
        self._stopped = False

    @property
    def pid(self) -> int:
        return self._proc.pid

    def snapshot(self) -> dict:
        snap = self._proc.call("snapshot")
        self.stats = GpioEmulatorStats(**snap["stats"])
        self.relay_history = [(int(d), bool(c)) for d, c in snap["relay_history"]]
        self.error = snap["error"] or self.pins.error
        return snap

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        try:
            self.snapshot()
        finally:
            self._proc.stop()
            self.pins.stop()
            self.error = self.error or self.pins.error

    def __enter__(self) -> GpioEmulator:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


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
    emu = GpioEmulator(args.scenario, SystemClock().now(), factory, d / "capture.fifo",
                       d / "playback.raw", "realtime", bounce_ms=args.bounce_ms)
    url = "gpio://?capture=appliance_capture&playback=appliance_playback"
    duration = load_scenario(args.scenario).duration
    print(f"{url}  ({duration:.0f} s; Ctrl-C to stop)", flush=True)
    try:
        return cli_main(["--data-dir", str(args.data_dir), "run", "--interface", url])
    finally:
        emu.stop()
        factory.reset()


if __name__ == "__main__":
    raise SystemExit(main())
