"""The ISDN scenario through the real backends (isdn://) gives the same catalog as sim://.

The interface emulator (appliance/tapi/emulator.py) renders scenarios/isdn.toml
(an INS64 BRI and an INS1500 PRI) as the USB interface would: the D-channel
LAPD frames go over the serial control protocol on a pty (D_FRAME messages,
FCS checked and stripped by the "device"), the B-channels go into the
capture FIFO as G.711 codes (the interface does not know the bearer) that an
ALSA ``file`` PCM hands to the real pyalsaaudio; the host reads the control
channel with the real pyserial, re-appends the FCS, learns each call's law
from its SETUP and expands the codes. Nothing of either library is mocked.

Both runs start at the scenario's own start time (the host's clock is a
FakeClock set to it), so the catalogs compare as they are. What
legitimately differs: ``id`` and ``sha256`` (random per recording: each has
its own sealed key) and ``size`` (the audio: the notice reaches the line
through the real ALSA playback queue 40 ms later than on sim://, and the
near leg with the notice mixed in goes through a G.711 round trip on the
wire). Durations and times are compared within 100 ms.
"""

from __future__ import annotations

import sqlite3
import sys
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _hwbench import (HANG_GUARD_S, SCENARIOS, bench, catalog_calls, identity, init_datadir,
                      record, run_bounded)

import numpy as np

from appliance.clock import FakeClock
from appliance.store.opus import read_recording
from appliance.tapi import open_interface
from appliance.tapi import serialctl as sc
from appliance.tapi.sim import SimInterface, load_scenario

SCENARIO = SCENARIOS / "isdn.toml"
TIMES = ("offered_at", "started_at", "answered_at", "ended_at")
TOLERANCE_S = 0.1


def stored_times(datadir):
    """Each call's times as the catalog stores them, keyed by (trunk, channel, offered_at)."""
    with sqlite3.connect(f"file:{datadir / 'catalog.sqlite'}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT trunk, channel, offered_at, started_at, answered_at, ended_at "
                          "FROM calls ORDER BY offered_at, trunk, channel").fetchall()
    return [{k: None if v is None else datetime.fromisoformat(v) for k, v in zip(TIMES, r[2:])}
            | {"line": (r[0], r[1])} for r in rows]


def run_both(path, run_cli, staff, tmp_path, monkeypatch, password_file):
    """The scenario on sim:// and through isdn:// (emulator, real pyalsaaudio and pyserial)."""
    scenario = load_scenario(path)
    assert {t.kind for t in scenario.trunks} == {"isdn"}
    sim_dir, hw_dir = tmp_path / "sim", tmp_path / "hw"
    init_datadir(run_cli, sim_dir, password_file, tmp_path)
    init_datadir(run_cli, hw_dir, password_file, tmp_path)

    record(sim_dir, open_interface(f"sim://{path}", FakeClock(scenario.start)))
    expected = catalog_calls(run_cli, sim_dir, staff)

    sim = SimInterface(scenario, FakeClock(scenario.start))      # the lines it has
    with bench(tmp_path, monkeypatch, path, start=scenario.start) as (emu, _url):
        trunks = ",".join(f"{t.id}:isdn:{t.channels}" for t in scenario.trunks)
        url = (f"isdn://{emu.link}?capture=appliance_capture&playback=appliance_playback"
               f"&trunks={trunks}&stop_after={scenario.duration}")
        iface = open_interface(url, FakeClock(scenario.start))
        assert [(ln.trunk, ln.channel) for ln in iface.lines()] == \
            [(ln.trunk, ln.channel) for ln in sim.lines()]
        engine = run_bounded(lambda: record(hw_dir, iface), HANG_GUARD_S, "isdn://")
        sent = emu.received()
    got = catalog_calls(run_cli, hw_dir, staff)
    return scenario, expected, got, sent, iface, engine, sim_dir, hw_dir


def test_isdn_scenario_gives_the_same_catalog_through_alsa_and_serial(
        run_cli, staff, tmp_path, monkeypatch, password_file):
    scenario, expected, got, sent, iface, engine, sim_dir, hw_dir = run_both(
        SCENARIO, run_cli, staff, tmp_path, monkeypatch, password_file)

    # what the staff see: the same calls, numbers (national ones with their 0), reasons,
    # directions, B-channels and notices
    assert len(got) == len(expected) == len(scenario.calls)
    assert [identity(c, TIMES) for c in got] == [identity(c, TIMES) for c in expected]
    by_line = {}
    for c in sorted(scenario.calls, key=lambda c: c.at):
        by_line.setdefault((c.trunk, c.channel), []).append(c)
    for g in got:
        c = by_line[(g["trunk"], g["channel"])].pop(0)
        what = c.name
        assert g["direction"] == c.direction, what
        assert g["far_number"] == c.far_number, what
        assert g["number_absent_reason"] == c.absent_reason, what
        if c.direction == "in" and c.called_number:
            assert g["called_number"] == c.called_number, what
        assert g["notice"] == ("played" if c.direction == "in" and c.answered else "none"), what
        if c.answered:
            assert abs(g["duration_s"] - c.talk) <= TOLERANCE_S, (what, g["duration_s"])
    assert {c["far_number"] for c in got if c["far_number"]} >= {"0263345000", "09012345678"}
    for g, e in zip(got, expected):
        for k in ("duration_s", "recorded_s"):
            assert (g[k] is None) == (e[k] is None), (k, g, e)
            if g[k] is not None:
                assert abs(g[k] - e[k]) <= TOLERANCE_S, (k, g, e)
    # two calls at once on the BRI's two B-channels, recorded as two rows
    b1 = [c for c in got if c["trunk"] == "B1" and c["answered_at"]]
    assert any(a["channel"] != b["channel"] and a["started_at"] < b["started_at"] < a["ended_at"]
               for a in b1 for b in b1)
    # the catalog's own times: within 100 ms of sim://'s
    exp_t, got_t = stored_times(sim_dir), stored_times(hw_dir)
    assert [t["line"] for t in got_t] == [t["line"] for t in exp_t]
    for g, e in zip(got_t, exp_t):
        for k in TIMES:
            assert (g[k] is None) == (e[k] is None), (k, g, e)
            if g[k] is not None:
                assert abs((g[k] - e[k]).total_seconds()) <= TOLERANCE_S, (k, g, e)

    # the notice went over the wire for each answered incoming call; no relay on ISDN
    answered_in = sum(c.direction == "in" and c.answered for c in scenario.calls)
    assert sum(isinstance(m, sc.NoticePath) and m.on for m in sent) == answered_in
    assert not [m for m in sent if isinstance(m, sc.SetLoop)]
    assert iface.stats.late_sync == 0 and iface.stats.device_lost == 0
    assert iface.stats.unknown_lines == 0
    assert engine.stats.bad_periods == 0 and engine.stats.problems == {}
    # what the staff hear: the far party of an incoming and of an outgoing call
    # (whose B-channel is named only after the SETUP) is the sim:// recording's
    assert_far_legs_match(run_cli, staff, tmp_path, expected, got, sim_dir, hw_dir)


def assert_far_legs_match(run_cli, staff, tmp_path, expected, got, sim_dir, hw_dir) -> None:
    """Both runs carry the same G.711 round trip of the trunk's law, so the far legs match
    (a wrong law gives about 0.8). The near leg of an incoming call differs by design:
    the notice reaches the line through the real ALSA queue 40 ms later."""
    similar = {}
    for direction in ("in", "out"):
        e = next(c for c in expected if c["direction"] == direction)
        g = next(c for c in got if c["direction"] == direction)
        similar[direction] = _similarity(_far_leg(run_cli, sim_dir, e["id"], staff, tmp_path),
                                         _far_leg(run_cli, hw_dir, g["id"], staff, tmp_path))
    assert min(similar.values()) > 0.99, similar


def _far_leg(run_cli, datadir, call_id, staff, tmp_path):
    out = tmp_path / f"{datadir.name}-{call_id}.opus"
    code, _, err = run_cli("--data-dir", datadir, "extract", call_id, "--out", out,
                           "--ground", "duty", "--reference", "試験", *staff)
    assert code == 0, err
    return read_recording(out.read_bytes()).far.astype(np.float64)


def _similarity(x, y, max_lag: int = 400) -> float:
    """Best normalised correlation of two legs within ±50 ms (the notice's ALSA queue)."""
    n = min(x.size, y.size) - 2 * max_lag
    assert n > 8000, "too short to compare"
    a = x[max_lag:max_lag + n]
    best = 0.0
    for lag in range(-max_lag, max_lag + 1, 1):
        b = y[max_lag + lag:max_lag + lag + n]
        den = float(np.sqrt((a @ a) * (b @ b)))
        if den > 0:
            best = max(best, float(a @ b) / den)
    return best


def test_alaw_trunk_through_the_usb_path_as_on_sim(run_cli, staff, tmp_path, monkeypatch,
                                                   password_file):
    # an A-law bearer: the outgoing call's B-channel is named only in CALL PROCEEDING;
    # decoded with the wrong law, the far party's busy tone (the call's end) and the
    # notice's echo (the notice check) would not be heard
    scenario, expected, got, sent, iface, engine, sim_dir, hw_dir = run_both(
        SCENARIOS / "isdn-alaw.toml", run_cli, staff, tmp_path, monkeypatch, password_file)
    assert {t.law for t in scenario.trunks} == {"alaw"}
    assert len(got) == len(expected) == len(scenario.calls) == 2
    assert [identity(c, TIMES) for c in got] == [identity(c, TIMES) for c in expected]
    for g in got:
        c = next(c for c in scenario.calls if c.channel == g["channel"])
        assert g["direction"] == c.direction and g["far_number"] == c.far_number
        assert g["notice"] == ("played" if c.direction == "in" else "none"), c.name
        assert abs(g["duration_s"] - c.talk) <= TOLERANCE_S, (c.name, g["duration_s"])
    for g, e in zip(got, expected):
        assert abs(g["recorded_s"] - e["recorded_s"]) <= TOLERANCE_S, (g, e)
    assert engine.stats.bad_periods == 0 and engine.stats.problems == {}
    # what the staff hear: the far party of an incoming and of an outgoing call
    # (whose B-channel is named only after the SETUP) is the sim:// recording's
    assert_far_legs_match(run_cli, staff, tmp_path, expected, got, sim_dir, hw_dir)
