"""The single-line scenario through gpio:// (real gpiozero, real pyalsaaudio) gives sim://'s catalog.

The stand-in (appliance/tapi/gpio_emulator.py: its audio side in a process of
its own, its pins here) renders the shipped scenario onto gpiozero ``MockFactory`` pins (ring detector and loop sensor,
active low, with 2 ms of contact bounce after every edge) and into the FIFO
an ALSA ``file`` PCM reads; it answers the loop relay pin as the exchange
does and mixes the host's notice playback into the near leg while the
notice-path relay pin is on. The appliance opens ``gpio://`` as configured,
with gpiozero's default pin factory set to that MockFactory; nothing of
gpiozero or pyalsaaudio is mocked.

What legitimately differs from sim://: the GPIO host sees a ring or loop
level only once it has held for the 30 ms debounce window, so it answers the
caller-ID signal (CAR) one or two periods later than on sim://, and the
exchange's FSK, ringing and the staff's answer all follow that later; edges
are stamped at the last bounce (2 ms after the edge). Call times and
durations therefore agree within 100 ms, not exactly. id and sha256 are per
recording; size follows the audio (and the notice, which the real ALSA
playback queue delivers 40 ms later).
"""

from __future__ import annotations

import math
import sqlite3
import sys
from datetime import datetime
from itertools import pairwise
from pathlib import Path

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

sys.path.insert(0, str(Path(__file__).parent))
from _hwbench import (HANG_GUARD_S, SCENARIOS, START, catalog_calls, identity, init_datadir,
                      record, run_bounded)

from appliance.cli.run import status_panel
from appliance.clock import FakeClock
from appliance.tapi import open_interface
from appliance.tapi.emulator import alsa_config
from appliance.tapi.gpio_emulator import GpioEmulator
from appliance.tapi.sim import load_scenario
from appliance.units import FRAME_SAMPLES, LINE_RATE

SCENARIO = SCENARIOS / "single-line.toml"
TIMES = ("started_at", "answered_at", "ended_at")
TOLERANCE_S = 0.1


@pytest.fixture
def factory(monkeypatch):
    f = MockFactory()
    monkeypatch.setattr(Device, "pin_factory", f)   # what gpio:// opens its pins with
    yield f
    f.reset()


def stored_times(datadir):
    """Each call's times as the catalog stores them (UTC, milliseconds), in order."""
    with sqlite3.connect(f"file:{datadir / 'catalog.sqlite'}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT offered_at, started_at, answered_at, ended_at FROM calls "
                          "ORDER BY started_at").fetchall()
    keys = ("offered_at",) + TIMES
    return [{k: None if v is None else datetime.fromisoformat(v) for k, v in zip(keys, r)}
            for r in rows]


def test_single_line_scenario_gives_the_same_catalog_through_gpio_and_alsa(
        run_cli, staff, tmp_path, monkeypatch, password_file, factory):
    scenario = load_scenario(SCENARIO)
    assert [t.kind for t in scenario.trunks] == ["analog"]
    sim_dir, hw_dir = tmp_path / "sim", tmp_path / "hw"
    init_datadir(run_cli, sim_dir, password_file, tmp_path)
    init_datadir(run_cli, hw_dir, password_file, tmp_path)

    sim_run = open_interface(f"sim://{SCENARIO}", FakeClock(START))
    record(sim_dir, sim_run)
    expected = catalog_calls(run_cli, sim_dir, staff)

    bench = tmp_path / "bench"
    bench.mkdir()
    conf = bench / "asound.conf"
    conf.write_text(alsa_config(bench / "capture.fifo", bench / "playback.raw"), encoding="utf-8")
    (bench / "playback.raw").write_bytes(b"")
    monkeypatch.setenv("ALSA_CONFIG_PATH", str(conf))
    clock = FakeClock(START)                      # the host's clock; the driver moves it
    periods = math.ceil(scenario.duration * LINE_RATE / FRAME_SAMPLES)
    with GpioEmulator(SCENARIO, START, factory, bench / "capture.fifo", bench / "playback.raw",
                      "lockstep", clock, bounce_ms=2.0) as emu:
        iface = open_interface("gpio://?ring=17&loop=27&relay=22&notice=23"
                               "&capture=appliance_capture&playback=appliance_playback", clock)
        panel = status_panel(iface)              # the front panel, as `appliance run` adds it
        engine = run_bounded(lambda: record(hw_dir, iface, [panel], max_periods=periods),
                             HANG_GUARD_S,
                             "gpio")
    assert emu.error is None
    got = catalog_calls(run_cli, hw_dir, staff)

    # what the staff see: the same calls, numbers, reasons and notices
    assert [c["direction"] for c in expected] == ["in", "in", "out"]
    assert [identity(c, TIMES) for c in got] == [identity(c, TIMES) for c in expected]
    assert [c["far_number"] for c in got] == ["0263345000", None, "0312345678"]
    assert [c["number_absent_reason"] for c in got] == [None, "withheld", None]
    assert [c["notice"] for c in got] == ["played", "played", "none"]
    assert [c["state"] for c in got] == ["complete"] * 3
    for g, e in zip(got, expected):
        for k in ("duration_s", "recorded_s"):
            assert abs(g[k] - e[k]) <= TOLERANCE_S, (k, g, e)
    # the catalog's own times (milliseconds): within the debounce's delay of sim://'s
    exp_t, got_t = stored_times(sim_dir), stored_times(hw_dir)
    assert len(got_t) == len(exp_t) == 3
    for g, e in zip(got_t, exp_t):
        for k in g:
            assert (g[k] is None) == (e[k] is None), (k, g, e)
            if g[k] is not None:
                assert abs((g[k] - e[k]).total_seconds()) <= TOLERANCE_S, (k, g, e)

    # the loop relay answered both CARs (primary response, then reception complete) on its pin,
    # within the debounce's delay of sim://'s relay; the notice path relay carried the notice
    sim_relay = [(r.sample, r.what == "relay_closed") for r in sim_run.history
                 if r.what in ("relay_closed", "relay_open")]
    assert [closed for _, closed in emu.relay_history] == [True, False, True, False]
    assert [closed for _, closed in sim_relay] == [True, False, True, False]
    for (g, _), (e, _) in zip(emu.relay_history, sim_relay):
        assert 0 <= g - e <= TOLERANCE_S * LINE_RATE, (emu.relay_history, sim_relay)
    relay_edges = [bool(s.state) for s in factory.pin(22).states]
    assert relay_edges.count(True) == 2
    assert emu.stats.notice_periods > 0 and emu.stats.capture_dropped == 0
    assert engine.stats.bad_periods == 0 and engine.stats.lost_frames == 0
    assert engine.stats.problems == {}
    # the recording LED lit once for each recorded call and is out at the end
    rec = [bool(s.state) for s in factory.pin(6).states]
    assert sum(1 for a, b in pairwise(rec) if b and not a) == 3 and not rec[-1]
    panel.close()
