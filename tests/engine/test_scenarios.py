"""Every shipped scenario, end to end with --fast: the catalog equals the scenario's truth."""

from __future__ import annotations

import json
import logging

import pytest

from appliance.config import load_config
from appliance.engine.exclusions import matching
from appliance.store.catalog import Catalog, from_utc_text
from appliance.tapi.sim import load_scenario
from tests.engine.conftest import CONFIG, SCENARIOS

FAST = ["demo.toml", "quiet-morning.toml", "busy-hour.toml"]


def check_catalog(rows: list[dict], scenario_path, config_path=CONFIG) -> None:
    scenario = load_scenario(scenario_path)
    config = load_config(config_path)
    expected = []
    for c in scenario.calls:
        ex = matching(config.exclusions, c.trunk, c.channel, c.far_number, c.called_number)
        if ex is not None:
            # nothing at all for an excluded line (keep_metadata is false in the shipped config)
            assert not ex.keep_metadata
            assert not [r for r in rows if r["trunk"] == c.trunk and r["far_number"] == c.far_number
                        and c.far_number], c.name
            continue
        expected.append(c)
    assert len(rows) == len(expected), ([r["far_number"] for r in rows],
                                        [c.far_number for c in expected])
    by_line: dict = {}
    for r in sorted(rows, key=lambda r: r["offered_at"]):
        by_line.setdefault((r["trunk"], r["channel"]), []).append(r)
    for c in sorted(expected, key=lambda c: c.at):
        r = by_line[(c.trunk, c.channel)].pop(0)
        what = f"call #{c.index + 1} {c.name!r}"
        assert r["direction"] == c.direction, what
        assert r["far_number"] == c.far_number, what
        assert r["number_absent_reason"] == c.absent_reason, what
        if c.called_number:
            assert r["called_number"] == c.called_number, what
        if c.direction == "in" and not c.answered:
            assert r["state"] == "unanswered" and r["recording_path"] is None, what
            assert r["duration_s"] is None and r["notice"] == "none", what
            continue
        assert r["state"] == "complete", what
        assert r["sha256"] and r["size"] > 0, what
        if c.answered:
            assert r["duration_s"] == pytest.approx(c.talk, abs=0.1), what
        else:
            assert r["duration_s"] is None and r["answered_at"] is None, what
        assert r["notice"] == ("played" if c.direction == "in" else "none"), what
        # the offer precedes the recording, which starts at the answer (in) or the seizure (out)
        assert from_utc_text(r["offered_at"]) <= from_utc_text(r["started_at"]), what


@pytest.mark.parametrize("name", FAST)
def test_shipped_scenario_end_to_end(name, datadir, run_cli, staff, caplog):
    caplog.set_level(logging.INFO)
    code, out, err = run_cli("--data-dir", datadir, "--config", CONFIG, "run", "--fast",
                             "--interface", f"sim://{SCENARIOS / name}")
    assert code == 0, err
    with Catalog.open(datadir / "catalog.sqlite", from_utc_text("2026-01-01T00:00:00+00:00")) as cat:
        rows = cat.calls()
    check_catalog(rows, SCENARIOS / name)
    # `appliance calls` lists them for staff
    code, listing, err = run_cli("--data-dir", datadir, "calls", "--json", *staff)
    assert code == 0 and len(json.loads(listing)) == len(rows)
    # technician-level logs and the console never carry a number (R11)
    numbers = {r["far_number"] for r in rows if r["far_number"]}
    logged = caplog.text + out
    assert numbers and not [n for n in numbers if n in logged]


def test_busy_hour_with_the_batched_tone_analysis(datadir, run_cli, monkeypatch):
    # busy hour has 8 lines, below the batch threshold: force the TonesBank path
    # so that the product's large-site path meets the same truth
    from appliance.engine import capture
    from appliance.dsp.tones import TonesBank
    batches, aligned = [], []
    real, real_aligned = TonesBank.prefetch, TonesBank._prefetch_aligned

    def counting(self, frame, dets, rows):
        batches.append(len(dets))
        return real(self, frame, dets, rows)

    def counting_aligned(self, frame, dets, rows):
        done = real_aligned(self, frame, dets, rows)
        aligned.append(done is not None)
        return done

    monkeypatch.setattr(capture, "TONES_BANK_MIN", 1)
    monkeypatch.setattr(TonesBank, "prefetch", counting)
    monkeypatch.setattr(TonesBank, "_prefetch_aligned", counting_aligned)
    code, out, err = run_cli("--data-dir", datadir, "--config", CONFIG, "run", "--fast",
                             "--interface", f"sim://{SCENARIOS / 'busy-hour.toml'}")
    assert code == 0, err
    assert batches and max(batches) >= 4
    # the lines start their detectors on the period grid: every batch is the cheap one
    assert len(aligned) == len(batches) and all(aligned)
    with Catalog.open(datadir / "catalog.sqlite", from_utc_text("2026-01-01T00:00:00+00:00")) as cat:
        check_catalog(cat.calls(), SCENARIOS / "busy-hour.toml")


@pytest.mark.slow
def test_edge_cases_end_to_end_including_the_hour_long_call(datadir, run_cli):
    code, out, err = run_cli("--data-dir", datadir, "--config", CONFIG, "run", "--fast",
                             "--interface", f"sim://{SCENARIOS / 'edge-cases.toml'}")
    assert code == 0, err
    with Catalog.open(datadir / "catalog.sqlite", from_utc_text("2026-01-01T00:00:00+00:00")) as cat:
        rows = cat.calls()
    check_catalog(rows, SCENARIOS / "edge-cases.toml")
    longest = max(r["duration_s"] or 0 for r in rows)
    assert longest > 3600
