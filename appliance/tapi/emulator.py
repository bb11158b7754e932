"""The interface emulator: a simulated scenario spoken as the real device would (bench tests).

It plays the USB interface's part with stand-ins a Linux machine without
the hardware has: the control channel on a pseudo-terminal (its slave's
path published through a symlink, as udev would publish
``/dev/appliance/ctl``), the capture audio written into a FIFO that an ALSA
``file`` PCM reads (``infile``), and the playback read back from the file or
FIFO the ALSA ``file`` PCM writes. What happens on the wire comes from the
simulator (appliance.tapi.sim): the relay and notice commands that arrive
over the protocol act on it, and the notice played through ALSA is mixed
into the near leg when the notice path is on and the trunk's path works.

Pacing: ``lockstep`` renders a period when the host's HOST_SYNC asks for it
(as fast as the host reads, and exactly reproducible); ``realtime`` renders
every 20 ms of the clock. ``unplug()``/``replug()`` make the device vanish
and come back, as a USB cable would.

Technicians: ``python -m appliance.tapi.emulator SCENARIO.toml --dir DIR``
writes ``DIR/asound.conf`` and prints the ``alsa+serial://`` URL and the
``ALSA_CONFIG_PATH`` to give ``appliance run``.

Tests and benches run it in a process of its own (:class:`EmulatorProcess`,
over appliance/tapi/standin.py): the host's alsa-lib opens the capture FIFO
holding the GIL, so an emulator thread in the host's process could be kept
from ever running (a deadlock seen under load). What a test used to do from
a per-period hook is data now (:class:`CutPlan`: unplug a call's device so
long after its answer, replug after so long); stats, the simulator's truth
and history, and the messages the host sent are fetched over the channel.
"""

from __future__ import annotations

import argparse
import os
import socket
import select
import sys
import threading
import time
import tty
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from appliance.clock import Clock, FakeClock, SystemClock
from appliance.dsp import g711
from appliance.tapi import q931
from appliance.tapi import serialctl as sc
from appliance.tapi.contract import EventKind, LineKind
from appliance.tapi.lapd import fcs_ok
from appliance.tapi.lapd import parse as parse_lapd
from appliance.tapi.sim import SimInterface, load_scenario
from appliance.tapi.standin import serve
from appliance.units import FRAME_SAMPLES, LINE_RATE

FIRMWARE = "emulator-1"
#: hw/protocol.md: no HOST_SYNC for this long → every relay opens, every notice path drops
FAILSAFE_S = 2.0


def alsa_config(capture_fifo: Path, playback_file: Path, name: str = "appliance") -> str:
    """A hermetic ALSA configuration: ``NAME_capture`` reads the FIFO, ``NAME_playback`` writes."""
    return (f'pcm.{name}_capture {{\n  type file\n  slave.pcm {{ type null }}\n'
            f'  file "/dev/null"\n  infile "{capture_fifo}"\n  format "raw"\n}}\n'
            f'pcm.{name}_playback {{\n  type file\n  slave.pcm {{ type null }}\n'
            f'  file "{playback_file}"\n  format "raw"\n}}\n')


@dataclass
class EmulatorStats:
    periods: int = 0
    connections: int = 0
    commands: int = 0
    playback_missing: int = 0
    failsafe_trips: int = 0


class Emulator:
    def __init__(self, sim: SimInterface, link: Path, capture_fifo: Path, playback: Path,
                 pacing: str = "lockstep", clock: Clock | None = None, serial: str = "EMU0001",
                 boot_id: int = 1) -> None:
        self.sim = sim
        self.link, self.capture_fifo, self.playback = Path(link), Path(capture_fifo), Path(playback)
        self.pacing = pacing
        self.clock = clock or SystemClock()
        self.serial = serial
        self.boot_id = boot_id
        self.stats = EmulatorStats()
        self.lines = sim.lines()
        self.trunks = list(dict.fromkeys(ln.trunk for ln in self.lines))
        self.notice_ok = {t.id: t.notice_path == "ok" for t in sim.scenario.trunks}
        #: ISDN: the law of each call (trunk, call reference) and of each B-channel in use
        self._call_law: dict[tuple[str, int], str] = {}
        self._b_law: dict[tuple[str, int], str] = {}
        self.decoder = sc.Decoder()
        self.ended = threading.Event()
        self.plugged = threading.Event()
        self.on_period = None                    #: optional hook(sim sample), in the thread
        self.received: list = []                 #: every host message (history for tests)
        self._stop = threading.Event()
        self._want_plug = threading.Event()
        self._want_plug.set()
        self._lock = threading.Lock()
        self._master: int | None = None
        self._slave: int | None = None
        self._cap: int | None = None
        self._pb: int | None = None
        self._path_on: set[tuple[str, int]] = set()
        self._relays: set[tuple[str, int]] = set()      # loop relays the host has closed
        self._last_sync = 0.0                           # clock of the host's last HOST_SYNC
        self._dev0 = 0                           # sim sample of device sample 0
        self._next_ok = -1
        self._thread = threading.Thread(target=self._run, name="interface-emulator", daemon=True)
        if not self.capture_fifo.exists():
            os.mkfifo(self.capture_fifo)

    # --- control --------------------------------------------------------------------------
    def start(self) -> "Emulator":
        self._thread.start()
        return self

    def unplug(self) -> None:
        self._want_plug.clear()

    def replug(self, boot_id: int | None = None) -> None:
        if boot_id is not None:
            self.boot_id = boot_id
        self._want_plug.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._want_plug.set()
        self._thread.join(timeout)
        self._disconnect()

    # --- the device ---------------------------------------------------------------------
    def _connect(self) -> bool:
        # the capture FIFO first, read-write: this open never waits for the host's PCM, and
        # the host (which opens once the control node appears) never waits for this one —
        # alsa-lib opens its infile without releasing the GIL
        self._cap = os.open(self.capture_fifo, os.O_RDWR)
        self._pb = os.open(self.playback, os.O_RDONLY | os.O_NONBLOCK) \
            if self.playback.exists() and self.playback.is_fifo() else None
        master, slave = os.openpty()
        tty.setraw(slave)
        tty.setraw(master)
        tmp = self.link.with_name(self.link.name + ".new")
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        os.symlink(os.ttyname(slave), tmp)
        self._master, self._slave = master, slave
        os.replace(tmp, self.link)                 # the node appears atomically, like udev's
        self._dev0 = self.sim.sample
        # the ALSA file PCM truncates its output when the host opens it
        self._pb_offset = 0
        self._next_ok = 0 if self.pacing == "lockstep" else -1
        self.stats.connections += 1
        self._identity()
        self.plugged.set()
        return True

    def _disconnect(self) -> None:
        self.plugged.clear()
        with self._lock:
            if self.link.is_symlink():
                self.link.unlink()
            for fd in (self._cap, self._pb, self._master, self._slave):
                if fd is not None:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
            self._cap = self._pb = self._master = self._slave = None
        self._path_on.clear()
        self.decoder = sc.Decoder()

    def _send(self, msg) -> None:
        if self._master is not None:
            try:
                os.write(self._master, sc.encode(msg))
            except OSError:
                pass

    def _identity(self) -> None:
        self._send(sc.Identity(sc.PROTOCOL_VERSION, FIRMWARE, self.serial, len(self.trunks),
                               self.boot_id))

    def _run(self) -> None:
        while not self._stop.is_set():
            self._want_plug.wait()
            if self._stop.is_set():
                break
            if not self._connect():
                continue
            t_next = self._last_sync = self.clock.monotonic()
            while not self._stop.is_set() and self._want_plug.is_set() and not self.ended.is_set():
                if self.pacing == "realtime":
                    self.clock.sleep_until(t_next)
                    t_next += FRAME_SAMPLES / LINE_RATE
                    self._serve(0.0, render=False)
                    self._render()
                else:
                    self._serve(0.05, render=True)
                self._failsafe()
            self._disconnect()
            if self.ended.is_set():
                self._stop.wait()

    def _failsafe(self) -> None:
        """A silent host (crashed, hung, unplugged at its end) must not leave a line
        held off-hook or a notice path bridged: the exchange side then behaves as if
        the appliance were not there (hw/protocol.md)."""
        if not (self._relays or self._path_on):
            return
        if self.clock.monotonic() - self._last_sync <= FAILSAFE_S:
            return
        for trunk, channel in sorted(self._relays):
            self.sim.set_loop(trunk, channel, False)
        self._relays.clear()
        self._path_on.clear()
        self.stats.failsafe_trips += 1

    def _serve(self, wait: float, render: bool) -> None:
        """Read host messages (``wait`` s at most); in lockstep render what HOST_SYNC asks for."""
        if self._master is None:
            return
        r, _, _ = select.select([self._master], [], [], wait)
        if not r:
            return
        try:
            data = os.read(self._master, 4096)
        except OSError:
            return
        for m in self.decoder.feed(data):
            self.received.append(m)
            if isinstance(m, sc.HostSync):
                self._last_sync = self.clock.monotonic()
            if isinstance(m, sc.SetLoop):
                self.stats.commands += 1
                key = (self.trunks[m.trunk], m.channel)
                self.sim.set_loop(*key, m.closed)
                (self._relays.add if m.closed else self._relays.discard)(key)
            elif isinstance(m, sc.NoticePath):
                self.stats.commands += 1
                key = (self.trunks[m.trunk], m.channel)
                (self._path_on.add if m.on else self._path_on.discard)(key)
            elif isinstance(m, sc.Request) and m.what == sc.Msg.GET_IDENTITY:
                self._identity()
            elif isinstance(m, sc.Request) and m.what == sc.Msg.GET_COUNTERS:
                self._send(sc.Counters({"frames_sent": self.stats.periods,
                                        "bad_frames_received": self.decoder.stats.errors()}))
            elif isinstance(m, sc.HostSync) and render and self._cap is not None:
                # the host has consumed up to m.sample: it may have the next period
                while self.sim.sample - self._dev0 <= m.sample and not self.ended.is_set():
                    if not self._render():
                        break

    def _playback_size(self) -> int:
        try:
            return self.playback.stat().st_size if not self.playback.is_fifo() else 0
        except OSError:
            return 0

    def _playback_period(self, d0: int) -> np.ndarray | None:
        """The host's playback for device samples [d0, d0+160), one channel per line."""
        n = len(self.lines)
        size = FRAME_SAMPLES * n * 2
        if self._pb is not None:                          # a FIFO: read it in order
            buf = b""
            deadline = time.monotonic() + 1.0
            while len(buf) < size and time.monotonic() < deadline:
                r, _, _ = select.select([self._pb], [], [], 0.05)
                if r:
                    chunk = os.read(self._pb, size - len(buf))
                    if not chunk:
                        break
                    buf += chunk
        else:                                             # a regular file: read at its offset
            off = self._pb_offset + d0 * n * 2
            deadline = time.monotonic() + 1.0
            buf = b""
            while time.monotonic() < deadline:
                try:
                    with open(self.playback, "rb") as f:
                        f.seek(off)
                        buf = f.read(size)
                except OSError:
                    buf = b""
                if len(buf) == size or self.pacing == "realtime":
                    break
                time.sleep(0.002)
        if len(buf) < size:
            self.stats.playback_missing += 1
            return None
        return np.frombuffer(buf, "<i2").reshape(FRAME_SAMPLES, n)

    def _watch_bearer(self, trunk: str, frame: bytes) -> None:
        """The law on each B-channel: the call's bearer capability, on the channel it gets."""
        f = parse_lapd(frame)
        if not f.carries_q931:
            return
        m = q931.parse(f.info)
        if m.error is not None:
            return
        if m.law in ("ulaw", "alaw"):
            self._call_law[(trunk, m.cr)] = m.law
        if m.b_channel:
            self._b_law[(trunk, m.b_channel)] = self._call_law.get((trunk, m.cr), "ulaw")

    def _render(self) -> bool:
        d0 = self.sim.sample - self._dev0
        period = self.sim.read()
        if period is None:
            self.ended.set()
            return False
        self.stats.periods += 1
        far = np.asarray(period.far)
        near = np.asarray(period.near)
        if far.shape != (len(self.lines), FRAME_SAMPLES) or not np.issubdtype(far.dtype,
                                                                                np.integer):
            far = near = np.zeros((len(self.lines), FRAME_SAMPLES), np.int16)
        near = near.astype(np.int32)
        pb = self._playback_period(d0)
        if pb is not None:
            for row, ln in enumerate(self.lines):
                if (ln.trunk, ln.channel) in self._path_on and self.notice_ok.get(ln.trunk, True):
                    near[row] += pb[:, row]
        for ev in period.events:
            if ev.kind in (EventKind.DEVICE_LOST, EventKind.DEVICE_BACK) or ev.trunk is None:
                continue                       # the simulator's own glitches: not on this wire
            if ev.kind is EventKind.D_FRAME:
                # the device checks the FCS and sends the frame without it (hw/protocol.md)
                data = ev.data or b""
                ok = fcs_ok(data)
                if ok:
                    self._watch_bearer(ev.trunk, data[:-2])
                self._send(sc.DFrame(ev.sample - self._dev0, self.trunks.index(ev.trunk), True,
                                     ok, data[:-2] if len(data) >= 2 else data))
            elif str(ev.kind) in sc.EVENT_NUMBERS:
                self._send(sc.WireEvent(ev.sample - self._dev0, self.trunks.index(ev.trunk),
                                        ev.channel, str(ev.kind)))
        self._send(sc.Heartbeat(d0 + FRAME_SAMPLES))
        near = np.clip(near, -32768, 32767).astype(np.int16)
        far = far.astype(np.int16)
        for row, ln in enumerate(self.lines):
            if ln.kind is LineKind.ISDN:
                # a B-channel carries G.711 octets; the interface hands them over unchanged
                # in the low byte of its 16-bit channel (it does not know the bearer)
                law = self._b_law.get((ln.trunk, ln.channel), "ulaw")
                enc = g711.linear_to_alaw if law == "alaw" else g711.linear_to_ulaw
                far[row] = np.asarray(enc(far[row]), np.uint8)
                near[row] = np.asarray(enc(near[row]), np.uint8)
        inter = np.empty((FRAME_SAMPLES, 2 * len(self.lines)), "<i2")
        inter[:, 0::2] = far.T
        inter[:, 1::2] = near.T
        try:
            os.write(self._cap, inter.tobytes())
        except OSError:
            pass                               # the host went away: it will reopen
        if self.on_period is not None:
            self.on_period(self.sim.sample)
        return True


@dataclass
class Cut:
    """Unplug the device ``after_answer_s`` into call ``call``'s talk; replug ``down_s`` later."""
    call: int
    after_answer_s: float
    down_s: float


@dataclass
class CutPlan:
    """Period hooks as data: the cuts to make, and when they were made (CLOCK_MONOTONIC,
    which every process of the machine shares, so the host can compare)."""
    cuts: list[Cut] = field(default_factory=list)
    unplugged_at: dict[int, float] = field(default_factory=dict)
    replugged_at: dict[int, float] = field(default_factory=dict)

    def attach(self, emu: Emulator) -> None:
        pending = {c.call: c for c in self.cuts}

        def on_period(sample: int) -> None:
            for idx in list(pending):
                truth = emu.sim.truth.get(idx, {})
                cut = pending[idx]
                if "answer" in truth and sample > truth["answer"] + cut.after_answer_s * LINE_RATE:
                    del pending[idx]
                    self.unplugged_at[idx] = time.monotonic()
                    emu.unplug()
                    threading.Timer(cut.down_s, self._replug, (emu, idx)).start()
        emu.on_period = on_period

    def _replug(self, emu: Emulator, idx: int) -> None:
        self.replugged_at[idx] = time.monotonic()
        emu.replug()


def _jsonable(v):
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    return v


def child_main(channel, extra: list[socket.socket], args: dict) -> int:
    """The emulator's process (appliance/tapi/standin.py): build, start, answer the host."""
    d = Path(args["dir"])
    sim = SimInterface(load_scenario(Path(args["scenario"])),
                       FakeClock(datetime.fromisoformat(args["start"])))
    emu = Emulator(sim, d / "ctl", d / "capture.fifo", d / "playback.raw",
                   args.get("pacing", "lockstep"), boot_id=args.get("boot_id", 1))
    plan = CutPlan([Cut(**c) for c in args.get("cuts", [])])
    if plan.cuts:
        plan.attach(emu)
    emu.start()

    def received(include_sync: bool = False) -> dict:
        msgs = list(emu.received)
        keep = [m for m in msgs if include_sync or not isinstance(m, sc.HostSync)]
        return {"messages": [sc.encode(m).hex() for m in keep],
                "host_syncs": sum(isinstance(m, sc.HostSync) for m in msgs)}

    def records(what: str) -> list[dict]:
        return [_jsonable(asdict(r)) for r in sim.records(what)]

    handlers = {
        "wait_plugged": lambda timeout=5.0: emu.plugged.wait(min(float(timeout), 60.0)),
        "wait_ended": lambda timeout=5.0: emu.ended.wait(min(float(timeout), 600.0)),
        "unplug": lambda: emu.unplug(),
        "replug": lambda boot_id=None: emu.replug(boot_id),
        "stats": lambda: asdict(emu.stats),
        "truth": lambda: _jsonable(sim.truth),
        "records": records,
        "received": received,
        "path_on": lambda: sorted([list(k) for k in emu._path_on]),
        "cuts": lambda: {"unplugged_at": _jsonable(plan.unplugged_at),
                         "replugged_at": _jsonable(plan.replugged_at)},
    }
    channel.send({"ok": True, "result": {"link": str(emu.link), "pid": os.getpid()}})
    serve(channel, handlers, emu.stop)
    return 0


class EmulatorProcess:
    """The interface emulator in a child process (host side); a context manager.

    ``dir`` holds ``ctl`` (the pty link), ``capture.fifo`` and
    ``playback.raw`` (the ALSA file PCM's output, which the caller creates
    with the ``asound.conf`` of :func:`alsa_config`). The child opens the
    capture FIFO read-write before it answers, so the host's PCM open never
    waits for it.
    """

    def __init__(self, scenario: Path, start: datetime, dir: Path, pacing: str = "lockstep",
                 cuts: list[Cut] | None = None, boot_id: int = 1) -> None:
        from appliance.tapi.standin import StandinProcess
        self.dir = Path(dir)
        self.link = self.dir / "ctl"
        self._proc = StandinProcess("emulator", {
            "scenario": str(Path(scenario).resolve()), "start": start.isoformat(),
            "dir": str(self.dir.resolve()), "pacing": pacing, "boot_id": boot_id,
            "cuts": [asdict(c) for c in (cuts or [])]})

    @property
    def pid(self) -> int:
        return self._proc.pid

    def wait_plugged(self, timeout: float = 5.0) -> bool:
        return bool(self._proc.call("wait_plugged", timeout, timeout=timeout))

    def wait_ended(self, timeout: float = 5.0) -> bool:
        return bool(self._proc.call("wait_ended", timeout, timeout=timeout))

    def unplug(self) -> None:
        self._proc.call("unplug")

    def replug(self, boot_id: int | None = None) -> None:
        self._proc.call("replug", boot_id=boot_id)

    def stats(self) -> EmulatorStats:
        return EmulatorStats(**self._proc.call("stats"))

    def truth(self) -> dict[int, dict]:
        return {int(k): v for k, v in self._proc.call("truth").items()}

    def records(self, what: str) -> list:
        from appliance.tapi.sim.wire import SimRecord
        return [SimRecord(**r) for r in self._proc.call("records", what=what)]

    def received(self, include_sync: bool = False) -> list:
        """Every message the host sent (HOST_SYNC only when asked: one per period)."""
        got = self._proc.call("received", include_sync=include_sync)
        dec = sc.Decoder()
        out = []
        for hexed in got["messages"]:
            out += dec.feed(bytes.fromhex(hexed))
        return out

    def path_on(self) -> set[tuple[str, int]]:
        return {(t, c) for t, c in self._proc.call("path_on")}

    def cuts(self) -> dict[str, dict[int, float]]:
        got = self._proc.call("cuts")
        return {k: {int(i): t for i, t in v.items()} for k, v in got.items()}

    def stop(self) -> None:
        self._proc.stop()

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m appliance.tapi.emulator",
                                 description="回線インタフェースの模擬装置 / interface emulator")
    ap.add_argument("scenario", type=Path, help="シナリオ / scenario TOML")
    ap.add_argument("--dir", type=Path, required=True, help="作業ディレクトリ / working directory")
    ap.add_argument("--pacing", choices=("realtime", "lockstep"), default="realtime",
                    help="実時間 / real time, or as fast as the host reads")
    args = ap.parse_args(argv)
    d = args.dir.resolve()
    d.mkdir(parents=True, exist_ok=True)
    conf = d / "asound.conf"
    conf.write_text(alsa_config(d / "capture.fifo", d / "playback.raw"), encoding="utf-8")
    (d / "playback.raw").write_bytes(b"")
    sim = SimInterface(load_scenario(args.scenario), SystemClock())
    trunks = ",".join(t.id if t.kind == "analog" else f"{t.id}:isdn:{t.channels}"
                      for t in sim.scenario.trunks)
    emu = Emulator(sim, d / "ctl", d / "capture.fifo", d / "playback.raw", args.pacing).start()
    print(f"ALSA_CONFIG_PATH={conf}")
    print(f"alsa+serial://{d / 'ctl'}?capture=appliance_capture&playback=appliance_playback"
          f"&trunks={trunks}")
    sys.stdout.flush()
    try:
        while not emu.ended.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    emu.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
