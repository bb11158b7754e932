"""Power (issue 16 item 4): NUT's dummy-ups driving upsd, switched by the test.

On battery → alarm; low battery → the recorder ledgers it, closes the call
in progress as complete (not truncated), runs the configured shutdown
command (a harmless one here) and exits; power back → the next start writes
the gap (reason power) and the alarms clear.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _receivers import Ups, wait_for  # noqa: E402
from appliance.clock import SystemClock  # noqa: E402
from appliance.ops.alarms import AlarmRegistry  # noqa: E402
from appliance.ops.power import PowerMonitor, PowerSettings, read_ups  # noqa: E402
from appliance.store.datadir import DataDir  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _run_quietly(argv):
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=10)


def _alarms(datadir, *extra) -> list[dict]:
    r = subprocess.run([sys.executable, "-m", "appliance", "--data-dir", str(datadir), "alarms",
                        "--json", *extra], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _codes(datadir) -> set[str]:
    return {a["code"] for a in _alarms(datadir)}


def test_on_battery_low_battery_clean_shutdown_and_the_gap_after(datadir, tmp_path):
    ups = Ups(tmp_path / "nut")
    marker = tmp_path / "powered-off"
    config = tmp_path / "appliance.toml"
    config.write_text((ROOT / "scenarios" / "appliance.toml").read_text(encoding="utf-8") + f'''
[power]
ups = "{ups.address}"
poll_s = 0.5
unreachable_after_s = 2
shutdown_command = ["{sys.executable}", "-c", "open('{marker}', 'w').write('off')"]
''', encoding="utf-8")
    log = tmp_path / "recorder.log"
    recorder = None
    try:
        ups.start()
        with open(log, "ab") as out:
            recorder = subprocess.Popen(
                [sys.executable, "-m", "appliance", "--data-dir", str(datadir), "--config",
                 str(config), "run", "--demo-seconds", "600"], stdout=out, stderr=out,
                stdin=subprocess.DEVNULL, start_new_session=True)
        wait_for(lambda: "録音開始" in log.read_text(errors="replace"), 60, 0.2, "the call")

        ups.set("OB", 80)
        wait_for(lambda: "on_battery" in _codes(datadir), 30, 0.5, "on_battery")
        assert recorder.poll() is None                       # on battery: still recording

        ups.set("OB LB", 5)
        assert recorder.wait(60) == 0                        # stopped cleanly, by itself
        assert marker.read_text() == "off"                   # the shutdown command ran
        assert "low_battery" in _codes(datadir)
        dd = DataDir(datadir)
        with dd.open_catalog(datetime.now(timezone.utc)) as cat:
            calls = [dict(zip(("state", "recorded_s", "ended_at"), r)) for r in cat.conn.execute(
                "SELECT state, recorded_s, ended_at FROM calls")]
            power = [(r[0], json.loads(r[1])) for r in cat.conn.execute(
                "SELECT seq, detail FROM ledger WHERE kind = 'power' ORDER BY seq")]
        assert len(calls) == 1 and calls[0]["state"] == "complete", calls   # not truncated
        assert calls[0]["recorded_s"] > 1.0
        assert [d["event"] for _, d in power] == ["low_battery_shutdown", "shutdown_command"]
        assert power[0][1]["charge"] == 5.0
        r = subprocess.run([sys.executable, "-m", "appliance", "--data-dir", str(datadir),
                            "verify", "--json"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout                   # the file is whole and sealed

        # power back: the machine boots and the recorder starts again
        ups.set("OL", 60)
        time.sleep(1.5)
        r = subprocess.run([sys.executable, "-m", "appliance", "--data-dir", str(datadir),
                            "--config", str(config), "run", "--demo-seconds", "1"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert "復電" in r.stdout
        with dd.open_catalog(datetime.now(timezone.utc)) as cat:
            gaps = cat.conn.execute("SELECT reason, seconds FROM recording_gaps").fetchall()
            last = json.loads(cat.conn.execute(
                "SELECT detail FROM ledger WHERE kind = 'power' ORDER BY seq DESC LIMIT 1"
            ).fetchone()[0])
        assert len(gaps) == 1 and gaps[0][0] == "power" and gaps[0][1] > 1.0
        assert last["event"] == "resumed" and last["gap_from"] and last["gap_to"]
        assert not {"on_battery", "low_battery"} & _codes(datadir)
        history = {a["code"] for a in _alarms(datadir, "--all")}
        assert {"on_battery", "low_battery"} <= history
    finally:
        if recorder is not None and recorder.poll() is None:
            recorder.send_signal(signal.SIGTERM)
            recorder.wait(30)
        ups.stop()


def test_an_unreachable_upsd_is_an_alarm(datadir, tmp_path):
    ups = Ups(tmp_path / "nut").start()
    clock = SystemClock()
    cat = DataDir(datadir).open_catalog(clock.now())
    reg = AlarmRegistry(cat, clock.now)
    settings = PowerSettings(ups.address, unreachable_after_s=0.0)
    stops = []
    mon = PowerMonitor(reg, cat, settings, lambda: read_ups(settings, _run_quietly), clock.now,
                       clock.monotonic, lambda: stops.append(1))
    try:
        state = mon.check()
        assert state is not None and state.online and state.charge == 100.0
        ups.stop()
        assert mon.check() is None
        assert reg.is_active("ups_unreachable")
        ups.start()
        mon.check()
        assert not reg.is_active("ups_unreachable") and not stops
    finally:
        ups.stop()
        cat.close()
