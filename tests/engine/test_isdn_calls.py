"""ISDN trunks end to end: Q.931 on the D channel drives recordings on the B-channels (R1, R3, R4).

The simulator puts the numbers only inside the Q.931 frames (type national,
without the leading 0); the catalog must show what a handler expects to see.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from appliance.engine.reports import LineProblem
from appliance.store.catalog import Catalog, from_utc_text
from appliance.tapi.sim import load_scenario
from appliance.units import LINE_RATE
from tests.engine.conftest import CONFIG, SCENARIOS
from tests.engine.test_scenarios import check_catalog

ISDN = SCENARIOS / "isdn.toml"


def _rows_by_call(rows: list[dict], scenario) -> dict[int, dict]:
    """Each scenario call's row: the one on its trunk and B-channel, in time order."""
    by_line: dict = {}
    for r in sorted(rows, key=lambda r: r["offered_at"]):
        by_line.setdefault((r["trunk"], r["channel"]), []).append(r)
    out = {}
    for c in sorted(scenario.calls, key=lambda c: c.at):
        line = by_line.get((c.trunk, c.channel), [])
        assert line, f"no row on {c.trunk}/{c.channel} for call #{c.index + 1} {c.name!r}"
        out[c.index] = line.pop(0)
    return out


def test_isdn_scenario_end_to_end(datadir, run_cli, staff, caplog):
    caplog.set_level(logging.INFO)
    code, out, err = run_cli("--data-dir", datadir, "--config", CONFIG, "run", "--fast",
                             "--interface", f"sim://{ISDN}")
    assert code == 0, err
    with Catalog.open(datadir / "catalog.sqlite", from_utc_text("2026-01-01T00:00:00+00:00")) as cat:
        rows = cat.calls()
    # the same truth check as every shipped scenario (numbers, reasons, durations, notice)
    check_catalog(rows, ISDN)
    scenario = load_scenario(ISDN)
    rows_of = _rows_by_call(rows, scenario)
    for c in scenario.calls:
        r, what = rows_of[c.index], f"call #{c.index + 1} {c.name!r}"
        assert (r["trunk"], r["channel"]) == (c.trunk, c.channel), what
        if c.direction == "in":
            # national numbers regain their 0; the called number is the near party's
            assert r["far_number"] == c.far_number, what
            assert r["near_number"] == c.called_number, what
            assert r["called_number"] == c.called_number, what
        else:
            assert r["far_number"] == r["called_number"] == c.far_number, what
        if c.answered:
            assert r["duration_s"] == pytest.approx(c.talk, abs=0.1), what
            assert r["notice"] == ("played" if c.direction == "in" else "none"), what
    # the scenario has every case the brief asks for
    cases = {(c.direction, c.answered, c.absent_reason) for c in scenario.calls}
    assert {("in", True, None), ("in", True, "withheld"), ("out", True, None),
            ("in", False, None)} <= cases
    # two calls at once on the two B-channels of the BRI
    b1 = [c for c in scenario.calls if c.trunk == "B1" and c.answered]
    assert any(a.channel != b.channel and a.at < b.at < a.busy_until() for a in b1 for b in b1)
    # staff see them; technician logs and the console never carry a number (R11)
    code, listing, err = run_cli("--data-dir", datadir, "calls", "--json", *staff)
    assert code == 0 and len(json.loads(listing)) == len(rows)
    numbers = {r[k] for r in rows for k in ("far_number", "near_number") if r[k]}
    logged = caplog.text + out
    assert numbers and not [n for n in numbers if n in logged]


def test_isdn_notice_starts_within_40_ms_of_connect_towards_the_caller(engine_run):
    run = engine_run(ISDN)
    scenario = run.sim.scenario
    plays = run.sim.records("play_start")
    answered_in = [c for c in scenario.calls if c.direction == "in" and c.answered]
    assert len(plays) == len(answered_in)
    for c in answered_in:
        connect = run.sim.truth[c.index]["answer"]
        p = [r for r in plays if (r.trunk, r.channel) == (c.trunk, c.channel)
             and r.sample >= connect]
        assert p and 0 <= p[0].sample - connect <= 0.040 * LINE_RATE, c.name
    assert not run.engine.stats.problems


GARBAGE = """
[[trunk]]
id = "B1"
kind = "isdn"

[[call]]
name = "before"
trunk = "B1"
at = 0.5
direction = "in"
far_number = "0263345000"
rings = 1
talk = 4.0

[[glitch]]
trunk = "B1"
at = 1.0
event = "d_bad_fcs"

[[glitch]]
trunk = "B1"
at = 2.0
event = "d_garbage"

[[glitch]]
trunk = "B1"
at = 3.0
event = "d_unknown_call"

[[glitch]]
trunk = "B1"
at = 4.0
event = "d_release_without_setup"

[[call]]
name = "after"
trunk = "B1"
channel = 2
at = 5.0
direction = "out"
far_number = "0312345678"
rings = 1
talk = 3.0
"""


def test_garbage_d_frames_are_logged_and_survived(tmp_path: Path, engine_run, caplog):
    p = tmp_path / "garbage.toml"
    p.write_text(GARBAGE, encoding="utf-8")
    run = engine_run(p)
    problems = run.engine.stats.problems
    assert problems.get("d_frame_bad_fcs") == 1
    assert problems.get("q931_garbage") == 1                # a good FCS around nonsense
    assert problems.get("unknown_call_reference") == 2     # DISCONNECT and RELEASE
    reported = [r.what for r in run.reports if isinstance(r, LineProblem)]
    assert "d_frame_bad_fcs" in reported and "unknown_call_reference" in reported
    # the SETUP inside the bad frame made no call; the calls around the garbage are intact
    check_catalog(run.rows, p)
    assert len(run.rows) == 2 and run.engine.stats.line_errors == 0
