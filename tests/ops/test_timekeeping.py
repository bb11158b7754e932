"""The clock (issue 16 item 5) against a real chronyd (-x: it never sets this machine's clock).

A follower chronyd tracks a second chronyd serving a local reference on
loopback; chronyc asks the follower over its own command port. Offsets are
shown with chrony's ``server … offset`` (what the follower measures, not
the machine's clock); "not synchronised" is a follower with no server.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _receivers import Chrony, wait_for  # noqa: E402
from appliance.clock import FakeClock, SystemClock  # noqa: E402
from appliance.ops.alarms import AlarmRegistry  # noqa: E402
from appliance.ops.timekeeping import (ClockSettings, ClockWatch, parse_tracking,  # noqa: E402
                                       read_tracking)
from appliance.store.datadir import DataDir  # noqa: E402


def _run(argv):
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=10)


class _Recorder:
    clock_unsynced = False


def _watch(datadir, chrony: Chrony, clock=None, **kw) -> tuple[ClockWatch, AlarmRegistry]:
    clock = clock or SystemClock()
    reg = AlarmRegistry(DataDir(datadir).open_catalog(clock.now()), clock.now)
    settings = ClockSettings(host="127.0.0.1", port=chrony.cmd_port, **kw)
    return ClockWatch(reg, settings, lambda: read_tracking(settings, _run), clock.now,
                      clock.monotonic, _Recorder()), reg


def test_synchronised_then_offset_beyond_the_bound(datadir, tmp_path):
    good = Chrony(tmp_path / "good").start()
    off = Chrony(tmp_path / "off", offset=2.0).start()
    try:
        wait_for(lambda: (t := parse_tracking(good.tracking())) and t.synchronised, 30, 0.3,
                 "the follower to synchronise")
        watch, reg = _watch(datadir, good, max_offset_ms=500)
        t = watch.check()
        assert t.synchronised and t.stratum == 9 and abs(t.offset_s) < 0.5
        assert watch.recorder.clock_unsynced is False and not reg.active()

        # the real text output says the same as the CSV the watch reads
        assert "Leap status     : Normal" in good.tracking(csv=False)

        wait_for(lambda: (t := parse_tracking(off.tracking())) and t.synchronised
                 and abs(t.offset_s) > 1.0, 30, 0.3, "the follower to measure the offset")
        watch2, reg2 = _watch(datadir, off, max_offset_ms=500)
        watch2.check()
        assert reg2.is_active("clock_offset")
        assert "ms" in [a for a in reg2.active() if a.code == "clock_offset"][0].detail
    finally:
        good.stop()
        off.stop()


def test_unsynchronised_flags_recordings_at_once_and_alarms_after_the_grace(datadir, tmp_path):
    lone = Chrony(tmp_path / "lone", serve=False).start()
    try:
        clock = FakeClock(datetime(2026, 12, 8, 1, 0, tzinfo=timezone.utc))
        watch, reg = _watch(datadir, lone, clock=clock, unsynced_alarm_s=600)
        t = watch.check()
        assert t is not None and not t.synchronised and t.leap == "Not synchronised"
        assert watch.recorder.clock_unsynced is True        # calls from now on are flagged
        assert not reg.is_active("clock_unsynced")           # not yet: within the grace
        clock.advance(601)
        watch.check()
        assert reg.is_active("clock_unsynced")
    finally:
        lone.stop()
    # chronyd gone: unknown — neither raises nor clears
    clock.advance(10)
    assert watch.check() is None and reg.is_active("clock_unsynced")


def test_a_step_of_the_clock_is_on_the_ledger_with_old_and_new_time(datadir, tmp_path):
    lone = Chrony(tmp_path / "lone", serve=False).start()
    try:
        clock = FakeClock(datetime(2026, 12, 8, 1, 0, tzinfo=timezone.utc))
        wall = {"skew": timedelta(0)}
        watch, reg = _watch(datadir, lone, clock=clock, step_s=2.0)
        watch.now = lambda: clock.now() + wall["skew"]      # the wall clock, apart from monotonic
        watch.check()
        clock.advance(5)
        watch.check()                                        # 5 s on both: no step
        wall["skew"] = timedelta(seconds=125)                # someone sets the clock forward
        clock.advance(5)
        watch.check()
        entries = [json.loads(r[0]) for r in reg.catalog.conn.execute(
            "SELECT detail FROM ledger WHERE kind = 'clock'")]
        assert len(entries) == 1 and entries[0]["event"] == "step"
        assert entries[0]["step_s"] == 125.0
        assert entries[0]["old"] == "2026-12-08T10:00:10+09:00"
        assert entries[0]["new"] == "2026-12-08T10:02:15+09:00"
        stepped = [r for r in reg.catalog.conn.execute(
            "SELECT code, cleared_at, acknowledged_at FROM alarms WHERE code = 'clock_stepped'")]
        assert len(stepped) == 1 and stepped[0][1] is not None and stepped[0][2] is None
    finally:
        lone.stop()


def test_a_call_started_while_unsynchronised_is_flagged_in_its_row(rig):
    """calls.clock_unsynced is set when the call's row is written at its start."""
    r = rig({"trunk": [{"id": "T1"}],
             "call": [{"trunk": "T1", "at": 1.0, "direction": "in", "far_number": "0263345000",
                       "rings": 1, "talk": 10.0, "hangup": "near"},
                      {"trunk": "T1", "at": 25.0, "direction": "in", "far_number": "0263345001",
                       "rings": 1, "talk": 3.0, "hangup": "near"}],
             "scenario": {"tail": 2}})
    r.recorder.clock_unsynced = True            # what the watch sets while chrony is unsynced
    r.run_until(9)                              # the first call is answered: its row written
    r.recorder.clock_unsynced = False           # synchronised again before it ends
    r.run_until(45)
    r.engine.finish()
    rows = r.catalog.conn.execute(
        "SELECT clock_unsynced FROM calls WHERE recording_path IS NOT NULL ORDER BY started_at"
    ).fetchall()
    assert [x[0] for x in rows] == [1, 0]
