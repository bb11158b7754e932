"""Test helpers: the interface emulator on stand-ins (pty, ALSA file PCM over a FIFO)."""

from __future__ import annotations

import threading
import json
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from appliance.tapi.emulator import Cut, EmulatorProcess, alsa_config
from appliance.tapi.sim import load_scenario

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"


@contextmanager
def bench(tmp_path: Path, monkeypatch, scenario: Path, pacing: str = "lockstep",
          cuts: list[Cut] | None = None, start: datetime | None = None):
    """The interface emulator speaking ``scenario`` in a process of its own (the host's
    alsa-lib opens the capture FIFO holding the GIL: an emulator thread here could starve);
    yields (emulator handle, alsa+serial URL without trunks)."""
    d = tmp_path / "bench"
    d.mkdir(exist_ok=True)
    conf = d / "asound.conf"
    conf.write_text(alsa_config(d / "capture.fifo", d / "playback.raw"), encoding="utf-8")
    (d / "playback.raw").write_bytes(b"")
    monkeypatch.setenv("ALSA_CONFIG_PATH", str(conf))
    scen = load_scenario(scenario)
    trunks = ",".join(t.id for t in scen.trunks)
    url = (f"alsa+serial://{d / 'ctl'}?capture=appliance_capture&playback=appliance_playback"
           f"&trunks={trunks}")
    with EmulatorProcess(scenario, start or scen.start or START, d, pacing, cuts) as emu:
        # the device is plugged in before the appliance starts (bounded wait)
        assert emu.wait_plugged(5.0), "emulator did not come up"
        yield emu, url


def relative_catalog(calls: list[dict]) -> list[dict]:
    """Catalog rows with times relative to the first call (each run has its own epoch)."""
    if not calls:
        return []
    t0 = min(datetime.fromisoformat(c["started_at"]) for c in calls)
    out = []
    for c in sorted(calls, key=lambda c: (c["started_at"], c["trunk"], c["channel"])):
        row = {k: v for k, v in c.items() if k not in ("id", "sha256")}
        for k in ("started_at", "answered_at", "ended_at"):
            if row.get(k):
                row[k] = round((datetime.fromisoformat(row[k]) - t0).total_seconds(), 4)
        out.append(row)
    return out


START = datetime(2026, 1, 5, 9, 0, 0).astimezone()


def record(datadir: Path, iface, listeners=(), max_periods: int | None = None):
    """Run the engine on ``iface`` into ``datadir`` as ``appliance run`` composes it."""
    from appliance.config import Config
    from appliance.engine.capture import Engine
    from appliance.engine.notice import load_notice
    from appliance.engine.recorder import CallRecorder
    from appliance.engine.reports import Reporter
    from appliance.engine.writer import ThreadedSink, Writer
    from appliance.store.datadir import DataDir

    config = Config()
    dd = DataDir(datadir)
    catalog = dd.open_catalog(iface.epoch)
    with catalog:
        sink = ThreadedSink(Writer(dd, catalog), config.engine.writer_queue_chunks,
                            wait_when_full=True)
        reporter = Reporter(list(listeners))
        recorder = CallRecorder(dd, catalog, config.site.name, config.encoder, sink)
        engine = Engine(iface, recorder, config, load_notice(config.notice), reporter)
        try:
            engine.run(max_periods)
        finally:
            engine.finish()
            sink.close()
            reporter.close()
    return engine


def catalog_calls(run_cli, datadir, staff) -> list[dict]:
    """``calls --json`` as staff see it, in a stable order (time, trunk, channel)."""
    code, out, err = run_cli("--data-dir", datadir, "calls", "--json", *staff)
    assert code == 0, err
    return sorted(json.loads(out), key=lambda c: (c["started_at"], c["trunk"], c["channel"]))


def init_datadir(run_cli, d, password_file, tmp_path) -> None:
    code, _out, err = run_cli("--data-dir", d, "init", "--manager", "kacho", "--password-file",
                              password_file, "--recovery-key-file", tmp_path / f"{d.name}.rk")
    assert code == 0, err


#: a hang guard, not a speed claim (speed is the bench's business): well above a run on a
#: loaded machine, below pytest-timeout's 300 s so the test fails with its own message
HANG_GUARD_S = 240.0


def run_bounded(fn, seconds: float, what: str):
    """Run ``fn`` in a thread; fail (not hang) if it takes longer than ``seconds``."""
    box = {}

    def target():
        try:
            box["result"] = fn()
        except BaseException as exc:     # noqa: BLE001 — re-raised in the test
            box["error"] = exc
    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"the {what} run did not finish within {seconds} s"
    if "error" in box:
        raise box["error"]
    return box["result"]


def identity(call: dict, times: tuple[str, ...]) -> dict:
    """A call without what legitimately differs between two runs of one scenario: its times
    (compared within a tolerance instead), the recording's id and sha256 (random per
    recording: each has its own sealed key) and its size (the audio)."""
    return {k: v for k, v in call.items()
            if k not in ("id", "sha256", "size", "duration_s", "recorded_s") + times}
