"""sd_notify against a fake notify socket; a hung capture thread stops the pings (issue 8)."""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from datetime import datetime, timezone

import pytest

from appliance.clock import FakeClock
from appliance.config import load_config
from appliance.engine.capture import Engine
from appliance.engine.notice import load_notice
from appliance.engine.recorder import CallRecorder
from appliance.engine.writer import ThreadedSink, Writer
from appliance.ops.watchdog import CaptureWatchdog, Notifier, sd_notify, watchdog_interval
from appliance.store.datadir import DataDir
from appliance.store.verify import verify_recordings
from appliance.tapi.sim import SimInterface
from appliance.tapi.sim.scenario import parse_scenario

from .conftest import CONFIG


@pytest.fixture
def notify_socket(tmp_path):
    path = tmp_path / "notify"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path))
    s.settimeout(0.05)
    yield path, s
    s.close()


def drain(s: socket.socket, wait: float = 0.0) -> list[str]:
    out, end = [], time.monotonic() + wait
    while True:
        try:
            out.append(s.recv(4096).decode())
        except TimeoutError:
            if time.monotonic() >= end:
                return out


def test_ready_status_watchdog_stopping_reach_the_socket(notify_socket):
    path, s = notify_socket
    n = Notifier(str(path))
    assert n.ready("録音中") and n.watchdog() and n.status("x") and n.stopping()
    assert drain(s) == ["READY=1\nSTATUS=録音中", "WATCHDOG=1", "STATUS=x", "STOPPING=1"]


def test_abstract_socket_and_no_socket():
    name = f"appliance-test-{time.monotonic_ns()}"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("\0" + name)
    s.settimeout(1)
    try:
        assert sd_notify("READY=1", "@" + name)
        assert s.recv(100) == b"READY=1"
    finally:
        s.close()
    assert sd_notify("READY=1", None) is False          # not under systemd: a no-op
    assert sd_notify("READY=1", "/nonexistent/notify") is False


def test_watchdog_interval_from_the_environment():
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "20000000"}) == 10.0
    assert watchdog_interval({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "1"}, pid=2) is None
    assert watchdog_interval({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "2"}, pid=2) == 10.0
    assert watchdog_interval({"WATCHDOG_USEC": "junk"}) is None


class HangingInterface:
    """Wraps the simulator; after ``hang_at`` periods ``read`` blocks like a stuck driver."""

    def __init__(self, sim: SimInterface, hang_at: int) -> None:
        self.sim, self.hang_at = sim, hang_at
        self.epoch = sim.epoch
        self.reads = 0
        self.hung = threading.Event()
        self.release = threading.Event()

    def __getattr__(self, name):
        return getattr(self.sim, name)

    def read(self):
        if self.reads >= self.hang_at:
            self.hung.set()
            self.release.wait(120)        # bounded, but far longer than the test looks
            return None
        self.reads += 1
        return self.sim.read()


def test_hung_capture_stops_pings_and_the_restart_keeps_completed_calls(
        notify_socket, datadir, run_cli):
    path, s = notify_socket
    dd = DataDir(datadir)
    config = load_config(CONFIG)
    clock = FakeClock(datetime(2026, 1, 5, 0, 0, tzinfo=timezone.utc))
    scenario = parse_scenario({
        "trunk": [{"id": "T1"}, {"id": "T2"}],
        "call": [{"trunk": "T1", "at": 0.5, "direction": "in", "far_number": "0263345000",
                  "rings": 1, "talk": 3.0, "hangup": "near"},
                 {"trunk": "T2", "at": 1.0, "direction": "in", "far_number": "0312345678",
                  "rings": 1, "talk": 60.0, "hangup": "near"}],
        "scenario": {"tail": 2}}, CONFIG)
    iface = HangingInterface(SimInterface(scenario, clock), hang_at=20 * 50)   # 20 s of line
    catalog = dd.open_catalog(clock.now())
    sink = ThreadedSink(Writer(dd, catalog), wait_when_full=True)
    engine = Engine(iface, CallRecorder(dd, catalog, "東庁舎", config.encoder, sink), config,
                    load_notice(config.notice), lambda r: None)
    # the capture loop as systemd runs it, paced so the watchdog sees it progress
    pace = threading.Event()

    def capture():
        while True:
            p = iface.read()
            if p is None:
                return
            engine.step(p)
            pace.wait(0.001)

    wd = CaptureWatchdog(Notifier(str(path)), lambda: engine.stats.periods, 0.05).start()
    t = threading.Thread(target=capture, daemon=True)
    t.start()
    try:
        pings = [m for m in drain(s, 0.5) if m == "WATCHDOG=1"]
        assert len(pings) >= 3, "no pings while capture runs"
        assert iface.hung.wait(60), "capture never reached the hang"
        drain(s, 0.2)                                   # a ping already in flight
        after = [m for m in drain(s, 1.0) if m == "WATCHDOG=1"]
        assert after == [], "pings went on although capture is hung"
        assert wd.stalled and t.is_alive()
        # the completed call reached the disk before the hang; the long one is open
        deadline = time.monotonic() + 30
        while sink.queued_chunks and time.monotonic() < deadline:
            time.sleep(0.05)
        rows = {r["trunk"]: r for r in catalog.calls()}
        assert rows["T1"]["state"] == "complete" and rows["T2"]["state"] == "recording"
        done = rows["T1"]
        before = hashlib.sha256(dd.path_of(done["recording_path"]).read_bytes()).hexdigest()
        # systemd kills the hung recorder and starts it again: the next start recovers
        code, out, err = run_cli("--data-dir", datadir, "--config", CONFIG, "run", "--fast",
                                 "--demo-seconds", "1")
        assert code == 0, err
        assert f"closed interrupted recording {rows['T2']['id']}" in out
    finally:
        wd.stop()
        iface.release.set()
        t.join(10)
        sink.close(30)
        catalog.close()
    with dd.open_catalog(clock.now()) as cat:
        after_rows = {r["id"]: r for r in cat.calls()}
        findings = {f.call_id: f.status for f in verify_recordings(dd, cat)}
    assert after_rows[done["id"]]["state"] == "complete"
    assert after_rows[done["id"]]["sha256"] == done["sha256"] == before
    assert findings[done["id"]] == "intact"
    assert after_rows[rows["T2"]["id"]]["state"] == "truncated"
    assert findings[rows["T2"]["id"]] == "truncated"


def test_watchdog_tick_pings_only_on_progress():
    sent = []
    n = Notifier(None)
    n._send = lambda msg: sent.append(msg) or True          # noqa: SLF001 — record, no socket
    counter = {"n": 0}
    wd = CaptureWatchdog(n, lambda: counter["n"], 1.0)
    assert wd.check() is False and sent == ["STATUS=取込み停止 / capture loop stalled"]
    counter["n"] = 5
    assert wd.check() is True and sent[-1] == "WATCHDOG=1" and not wd.stalled
    assert wd.check() is False and wd.stalled
