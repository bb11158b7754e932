"""Live status from the recorder: line states, levels, devices, line tests.

Two halves:

* :class:`LiveState` is an observer the capture loop calls after each period
  (``engine.observers``). It runs in the capture thread, so it keeps to the
  capture contract: numpy arithmetic on the period already in memory, a few
  integer updates, and the interface's non-blocking ``play``/``stop_play``
  for line tests queued by the console. No I/O, no locks, no logging.
* :class:`LiveServer` answers on a Unix stream socket (``DATA_DIR/live.sock``):
  one JSON request line in, one JSON answer line out. The console and the
  staff web connect as clients (:func:`query`).

Why a socket rather than a status file rewritten every second: readers get
the state of this instant (level meters refresh at several Hz), nothing is
written to the flash card, a dead recorder is seen at once (connection
refused) rather than guessed from a file's age, and the console's line tests
need a way back to the recorder, which alone owns the interface. Alarms,
which must outlive the recorder, are in the catalog instead (alarms.py).

Nothing here carries a number: line states, durations, levels and counters.
"""

from __future__ import annotations

import collections
import json
import logging
import math
import os
import socket
import socketserver
import threading
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path

import numpy as np

from appliance.dsp.notice_check import NoticeCheck
from appliance.engine.line import State
from appliance.errors import ApplianceError
from appliance.tapi.contract import EventKind, LineKind
from appliance.units import LINE_RATE

log = logging.getLogger(__name__)

SOCKET_NAME = "live.sock"
#: RMS (in LSB of 16-bit audio) above which a leg shows the noise floor of a live line
LIFE_FLOOR = 1.0
#: level meters fall 1.5 dB a period after a peak, like a PPM
DECAY = 10 ** (-1.5 / 20)
SILENT_DB = -99.0
TEST_TONE_HZ = 1000.0
TEST_TONE_S = 1.0
MAX_REQUEST = 4096

STATE_LABELS = {
    "idle": "待機中 / idle", "ringing": "着信中 / ringing", "in_call": "通話中 / in call",
    "dialling": "発信中 / dialling", "clearing": "終話処理中 / clearing",
    "excluded": "通話中 (録音対象外) / in call (excluded)", "offline": "切断中 / offline",
}
_STATE_MAP = {State.IDLE: "idle", State.ALERTING: "ringing", State.CALLER_ID: "ringing",
              State.RINGING: "ringing", State.TALK: "in_call", State.DIALLING: "dialling",
              State.CLEARING: "clearing", State.EXCLUDED: "excluded", State.OFFLINE: "offline"}


class RecorderUnavailable(ApplianceError, ConnectionError):
    """The recorder is not running (or not answering on its live socket)."""


def socket_path(data_dir: Path) -> Path:
    return Path(data_dir) / SOCKET_NAME


def db(rms: float) -> float:
    return round(20 * math.log10(rms / 32768.0), 1) if rms > 0.5 else SILENT_DB


@dataclass
class LineTest:
    """A tone or the notice played on an idle line; heard if the near leg carries it back."""

    id: int
    kind: str                    # "tone" | "notice"
    trunk: str
    channel: int
    state: str = "queued"        # queued → running → passed | failed | refused | aborted
    detail: str = ""
    gain_db: float | None = None
    start: int = 0
    end: int = 0
    check: NoticeCheck | None = field(default=None, repr=False)

    def as_dict(self) -> dict:
        return {"id": self.id, "kind": self.kind, "trunk": self.trunk, "channel": self.channel,
                "state": self.state, "detail": self.detail, "gain_db": self.gain_db}


@dataclass(frozen=True)
class LineTestDone:
    """Reported (through the engine's reporter) when a line test finishes."""

    kind: str
    trunk: str
    channel: int
    heard: bool
    state: str


def tone(hz: float = TEST_TONE_HZ, seconds: float = TEST_TONE_S, dbfs: float = -10.0) -> np.ndarray:
    n = int(seconds * LINE_RATE)
    x = np.sin(2 * np.pi * hz * np.arange(n) / LINE_RATE) * 32767 * 10 ** (dbfs / 20)
    return x.astype(np.int16)


class LiveState:
    """The capture loop's observer: see the module docstring for what it may do."""

    def __init__(self, engine, notice_samples: np.ndarray | None = None) -> None:
        self.engine = engine
        lines = engine.lines
        n = len(lines)
        self.infos = [ln.info for ln in lines]
        self.rows = {(i.trunk, i.channel): r for r, i in enumerate(self.infos)}
        self.rms_far = np.zeros(n, np.float32)
        self.rms_near = np.zeros(n, np.float32)
        self.last_life = [0] * n              # sample of the latest sign of life
        self.loop_since: list[int | None] = [None] * n
        self.rings = [0] * n
        self.last_ring: list[int | None] = [None] * n
        self.loop_changes = [0] * n
        self.lost: dict[str, int] = {}        # device → sample it was lost
        self.devices = sorted({i.device for i in self.infos})
        self.sample = 0
        self.commands: collections.deque = collections.deque()   # appended by the server thread
        self.tests: dict[int, LineTest] = {}
        self._running: list[LineTest] = []
        self._notice = notice_samples if notice_samples is not None else np.zeros(0, np.int16)
        self._tone = tone()
        self._next_id = 1
        self._id_lock = threading.Lock()
        #: row → (state, direction, since) of the ISDN B-channels in a call: their
        #: calls live in the trunk's controller, not in the line (engine/isdn.py).
        #: Made by the capture thread, replaced whole, read by the server thread.
        self._isdn: dict[int, tuple[str, str, int]] = {}

    # --- capture thread --------------------------------------------------------------
    def __call__(self, engine, period, far: np.ndarray, near: np.ndarray) -> None:
        self.sample = period.end
        f = far.astype(np.float32)
        nr = near.astype(np.float32)
        rf = np.sqrt(np.mean(f * f, axis=1))
        rn = np.sqrt(np.mean(nr * nr, axis=1))
        np.maximum(rf, self.rms_far * DECAY, out=self.rms_far)
        np.maximum(rn, self.rms_near * DECAY, out=self.rms_near)
        for r in np.nonzero((rf > LIFE_FLOOR) | (rn > LIFE_FLOOR))[0]:
            if self.infos[r].device not in self.lost:
                self.last_life[r] = period.end
        for ev in period.events:
            self._event(ev)
        while self.commands:
            self._start(self.commands.popleft(), period.end)
        if self._running:
            self._feed(period, near)
        if engine.isdn:
            self._isdn = self._isdn_calls(engine)

    def _isdn_calls(self, engine) -> dict[int, tuple[str, str, int]]:
        out = {}
        for trunk, ctl in engine.isdn.items():
            for c in ctl.calls.values():
                r = self.rows.get((trunk, c.channel))
                if r is None or c.ended is not None:
                    continue
                if c.answered is not None:
                    state = "excluded" if c.excluded is not None else "in_call"
                else:
                    state = "ringing" if c.direction == "in" else "dialling"
                out[r] = (state, c.direction,
                          c.answered if c.answered is not None else c.offered)
        return out

    def _event(self, ev) -> None:
        if ev.kind is EventKind.DEVICE_LOST and ev.trunk is None:
            self.lost.setdefault(ev.device, ev.sample)
            return
        if ev.kind is EventKind.DEVICE_BACK and ev.trunk is None:
            self.lost.pop(ev.device, None)
            for r, info in enumerate(self.infos):
                if info.device == ev.device:
                    self.last_life[r] = ev.sample     # the line-dead timer starts again
                    self.loop_since[r] = None
            return
        if ev.kind is EventKind.D_FRAME:
            for r, info in enumerate(self.infos):
                if info.trunk == ev.trunk:
                    self.last_life[r] = ev.sample
            return
        r = self.rows.get((ev.trunk, ev.channel))
        if r is None:
            return
        self.last_life[r] = ev.sample
        if ev.kind is EventKind.LOOP_CLOSED:
            self.loop_changes[r] += 1
            if self.loop_since[r] is None:
                self.loop_since[r] = ev.sample
        elif ev.kind is EventKind.LOOP_OPEN:
            self.loop_changes[r] += 1
            self.loop_since[r] = None
        elif ev.kind is EventKind.RING_ON:
            self.rings[r] += 1
            self.last_ring[r] = ev.sample

    def _start(self, t: LineTest, now: int) -> None:
        r = self.rows.get((t.trunk, t.channel))
        line = self.engine.lines[r]
        if line.busy or self.infos[r].device in self.lost or self.loop_since[r] is not None:
            t.state, t.detail = "refused", "line_busy"
            return
        samples = self._notice if t.kind == "notice" else self._tone
        if samples.size == 0:
            t.state, t.detail = "refused", "no_audio"
            return
        t.start = self.engine.iface.play(t.trunk, t.channel, samples)
        t.end = t.start + samples.size
        t.check = NoticeCheck(samples, t.start)
        t.state = "running"
        self._running.append(t)

    def _feed(self, period, near: np.ndarray) -> None:
        still = []
        for t in self._running:
            r = self.rows[(t.trunk, t.channel)]
            if self.engine.lines[r].busy or self.infos[r].device in self.lost:
                # a call came in (or the device went): the call comes first
                self.engine.iface.stop_play(t.trunk, t.channel)
                t.state, t.detail = "aborted", "line_became_busy"
            else:
                t.check.feed(period.sample, near[r])
                if period.end < t.end:
                    still.append(t)
                    continue
                g = t.check.gain
                t.gain_db = round(20 * math.log10(g), 1) if g > 0 else None
                t.state = "passed" if t.check.heard else "failed"
            self.engine.report(LineTestDone(t.kind, t.trunk, t.channel,
                                            t.state == "passed", t.state))
        self._running = still

    # --- other threads ---------------------------------------------------------------
    def request_test(self, kind: str, trunk: str, channel: int) -> LineTest:
        if kind not in ("tone", "notice"):
            raise ValueError("kind")
        if (trunk, channel) not in self.rows:
            raise KeyError("no such line")
        with self._id_lock:
            t = LineTest(self._next_id, kind, trunk, channel)
            self._next_id += 1
            self.tests[t.id] = t
            for old in sorted(self.tests)[:-50]:      # bounded memory
                del self.tests[old]
        self.commands.append(t)
        return t

    def line_status(self, r: int) -> dict:
        info, line = self.infos[r], self.engine.lines[r]
        isdn = self._isdn.get(r)
        if isdn is not None:
            state, direction, since = isdn
        else:
            state = _STATE_MAP.get(line.state, str(line.state))
            call = line.call
            direction = call.direction if call is not None else None
            since = None
            if call is not None:
                since = call.answered if call.answered is not None else call.offered
        dur = round(max(0, self.sample - since) / LINE_RATE, 1) if since is not None else None
        return {
            "trunk": info.trunk, "channel": info.channel, "kind": str(info.kind),
            "device": info.device, "state": state, "state_label": STATE_LABELS.get(state, state),
            "direction": direction, "duration_s": dur,
            "level_far_dbfs": db(float(self.rms_far[r])),
            "level_near_dbfs": db(float(self.rms_near[r])),
            "loop_closed": self.loop_since[r] is not None,
            "loop_closed_s": (round((self.sample - self.loop_since[r]) / LINE_RATE, 1)
                              if self.loop_since[r] is not None else None),
            "loop_changes": self.loop_changes[r],
            "rings": self.rings[r],
            "last_ring_ago_s": (round((self.sample - self.last_ring[r]) / LINE_RATE, 1)
                                if self.last_ring[r] is not None else None),
            "quiet_s": round((self.sample - self.last_life[r]) / LINE_RATE, 1),
            "analog": info.kind is LineKind.ANALOG,
        }

    def snapshot(self) -> dict:
        eng = self.engine
        st = eng.stats
        return {
            "line_time_s": round(self.sample / LINE_RATE, 2),
            "lines": [self.line_status(r) for r in range(len(self.infos))],
            "devices": [{"device": d, "lost": d in self.lost} for d in self.devices],
            "engine": {"periods": st.periods, "bad_periods": st.bad_periods,
                       "lost_frames": st.lost_frames, "overrun_alarms": st.overrun_alarms,
                       "line_errors": st.line_errors,
                       "line_problems": sum(st.problems.values())},
            "interface": interface_info(eng.iface),
        }


def _plain(value, depth: int = 0):
    """Counters and short labels only: what an interface exposes, made JSON-safe."""
    if is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    elif hasattr(value, "__dict__") and not isinstance(value, (str, bytes, int, float)):
        value = {k: v for k, v in vars(value).items() if not k.startswith("_")}
    if isinstance(value, dict) and depth < 2:
        return {str(k): _plain(v, depth + 1) for k, v in value.items()
                if isinstance(v, (int, float, str, bool, dict)) or is_dataclass(v)}
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value[:64]
    return None


def interface_info(iface) -> dict:
    out = {"backend": type(iface).__name__,
           "lines": len(iface.lines()),
           "connected": bool(getattr(iface, "connected", True))}
    for name in ("identity", "stats"):
        v = getattr(iface, name, None)
        if v is not None:
            out[name] = _plain(v)
    return out


class _Handler(socketserver.StreamRequestHandler):
    timeout = 2.0

    def handle(self) -> None:
        try:
            line = self.rfile.readline(MAX_REQUEST)
            req = json.loads(line.decode("utf-8") or "{}")
            if not isinstance(req, dict):
                raise ValueError("request must be an object")
            answer = self.server.live_answer(req)            # type: ignore[attr-defined]
        except (ValueError, UnicodeDecodeError) as exc:
            answer = {"error": f"bad request: {type(exc).__name__}"}
        except Exception as exc:    # noqa: BLE001 — one bad request must not stop the server
            log.exception("live status request failed")
            answer = {"error": type(exc).__name__}
        try:
            self.wfile.write(json.dumps(answer, ensure_ascii=False).encode() + b"\n")
        except OSError:
            pass


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class LiveServer:
    """Serves :class:`LiveState` on ``path``; ``close()`` removes the socket."""

    def __init__(self, live: LiveState, path: Path, extra=None) -> None:
        self.live = live
        self.path = Path(path)
        self.extra = extra or (lambda: {})
        if len(os.fsencode(self.path)) > 100:
            raise ApplianceError(f"{self.path}: socket path too long for AF_UNIX")
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        self._server = _Server(str(self.path), _Handler)
        self._server.live_answer = self.answer                 # type: ignore[attr-defined]
        os.chmod(self.path, 0o660)      # group appliance: the web and the console read it
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={
            "poll_interval": 0.2}, name="appliance-live", daemon=True)
        self._thread.start()

    def answer(self, req: dict) -> dict:
        cmd = req.get("cmd", "status")
        if cmd == "status":
            return dict(self.live.snapshot(), **self.extra())
        if cmd == "test":
            try:
                t = self.live.request_test(str(req.get("kind")), str(req.get("trunk")),
                                           int(req.get("channel", 1)))
            except (KeyError, ValueError, TypeError):
                return {"error": "no_such_line"}
            return t.as_dict()
        if cmd == "test_result":
            t = self.live.tests.get(int(req.get("id", 0)))
            return t.as_dict() if t else {"error": "no_such_test"}
        return {"error": "unknown_command"}

    def close(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._server = None
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


def query(path: Path, request: dict | None = None, timeout: float = 2.0) -> dict:
    """Ask the recorder; RecorderUnavailable when it does not answer."""
    data = json.dumps(request or {"cmd": "status"}).encode() + b"\n"
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(path))
            s.sendall(data)
            chunks, size = [], 0
            while size < 4_000_000:      # bounded: a status is a few kB
                b = s.recv(65536)
                if not b:
                    break
                chunks.append(b)
                size += len(b)
                if b.endswith(b"\n"):
                    break
    except OSError as exc:
        raise RecorderUnavailable(
            f"録音処理が応答しません / the recorder is not answering ({type(exc).__name__})"
        ) from None
    try:
        return json.loads(b"".join(chunks).decode("utf-8"))
    except ValueError:
        raise RecorderUnavailable("録音処理の応答が不正です / bad answer from the recorder") from None
