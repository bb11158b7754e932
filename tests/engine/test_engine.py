"""The engine on small scenarios: notice timing, alignment of the legs, slow disk, bad input."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import pytest

from appliance.engine.reports import Alarm, LineProblem
from appliance.store.recording import RecordingFile
from appliance.tapi.sim.audio import call_seed, talk_audio
from appliance.units import LINE_RATE

ONE_CALL = """
[[trunk]]
id = "T1"
{trunk_extra}
[[call]]
trunk = "T1"
at = 0.5
direction = "in"
far_number = "0263345000"
rings = 1
talk = {talk}
hangup = "near"
"""


def scenario(tmp_path: Path, text: str, name="s.toml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_notice_starts_within_40_ms_of_the_answer_and_is_heard(tmp_path, engine_run):
    run = engine_run(scenario(tmp_path, ONE_CALL.format(trunk_extra="", talk=12.0)))
    answer = [r.sample for r in run.sim.history if r.what == "loop_closed"]
    plays = [r.sample for r in run.sim.history if r.what == "play_start"]
    assert len(answer) == len(plays) == 1
    assert 0 <= plays[0] - answer[0] <= 0.040 * LINE_RATE
    assert run.rows[0]["notice"] == "played"


def test_a_broken_notice_path_is_recorded_as_not_heard(tmp_path, engine_run):
    run = engine_run(scenario(tmp_path, ONE_CALL.format(trunk_extra='notice_path = "broken"',
                                                        talk=12.0)))
    assert [r["notice"] for r in run.rows] == ["not_heard"]


def _lag(decoded: np.ndarray, source: np.ndarray, max_lag: int) -> int:
    """Lag (samples) of ``decoded`` behind ``source`` by cross-correlation."""
    n = source.size - 2 * max_lag
    ref = source[max_lag:max_lag + n].astype(np.float64)
    scores = [float(ref @ decoded[max_lag + k:max_lag + k + n].astype(np.float64))
              for k in range(-max_lag, max_lag + 1)]
    return int(np.argmax(scores)) - max_lag


def test_far_party_left_staff_right_aligned_within_20_ms(tmp_path, datadir, run_cli, staff):
    from appliance.store.opus import read_recording
    path = scenario(tmp_path, ONE_CALL.format(trunk_extra="", talk=10.0))
    code, out, err = run_cli("--data-dir", datadir, "run", "--fast", "--interface", f"sim://{path}")
    assert code == 0, err
    import json
    (call,) = json.loads(run_cli("--data-dir", datadir, "calls", "--json", *staff)[1])
    out_file = tmp_path / "c.opus"
    code, _, err = run_cli("--data-dir", datadir, "extract", call["id"], "--out", out_file,
                           "--ground", "duty", "--reference", "test", *staff)
    assert code == 0, err
    rec = read_recording(out_file.read_bytes())
    n = 8 * LINE_RATE
    # the recording starts at the answer; the sources start there too (tapi/sim/audio.py)
    far_src = talk_audio("speech", call_seed(0, "far"), "far", 0, n)
    near_src = talk_audio("speech", call_seed(0, "near"), "near", 0, n)
    max_lag = 800
    assert abs(_lag(rec.far[:n], far_src, max_lag)) <= 0.020 * LINE_RATE
    assert abs(_lag(rec.near[:n], near_src, max_lag)) <= 0.020 * LINE_RATE
    # and not swapped: the far party's speech is in the left channel, not the right
    corr = lambda a, b: abs(float(np.corrcoef(a[:n].astype(float), b.astype(float))[0, 1]))
    assert corr(rec.far, far_src) > 0.5 > corr(rec.near, far_src)


class StalledFile(RecordingFile):
    """A disk that hangs until released."""

    gate = threading.Event()

    def append(self, data: bytes) -> None:
        StalledFile.gate.wait(60)
        super().append(data)


@pytest.mark.parametrize("capacity, expect_loss", [(400, False), (12, True)])
def test_a_stalled_writer_loses_nothing_until_the_queue_is_full(tmp_path, engine_run, caplog,
                                                                capacity, expect_loss):
    caplog.set_level(logging.INFO)
    StalledFile.gate = threading.Event()
    seen_full: list[int] = []
    path = scenario(tmp_path, ONE_CALL.format(trunk_extra="", talk=60.0))

    from appliance.engine import writer as writer_mod
    orig = writer_mod.ThreadedSink.has_room

    def has_room(self):
        ok = orig(self)
        if not ok:
            seen_full.append(self.queued_chunks)
        return ok

    writer_mod.ThreadedSink.has_room = has_room
    try:
        run = engine_run(path, capacity=capacity, wait_when_full=False, open_file=StalledFile,
                         before_close=StalledFile.gate.set)
    finally:
        writer_mod.ThreadedSink.has_room = orig
    (row,) = run.rows
    assert row["state"] == "complete"            # never a crash, the call is closed
    lost = run.engine.stats.lost_frames
    alarms = [r for r in run.reports if isinstance(r, Alarm) and r.what == "writer_overrun"]
    if not expect_loss:
        assert lost == 0 and not alarms and row["overrun_frames"] == 0
        assert row["recorded_s"] >= 60.0
    else:
        # frames were lost only while the queue was full, and every loss is counted
        assert lost > 0 and seen_full and set(seen_full) == {capacity}
        assert row["overrun_frames"] == lost
        assert row["recorded_s"] == pytest.approx(row["duration_s"] - lost * 0.02, abs=0.1)
        assert alarms and alarms[0].count > 0


IMPOSSIBLE = ONE_CALL.format(trunk_extra="", talk=20.0) + """
[[trunk]]
id = "T2"

[[glitch]]
at = 0.1
trunk = "T2"
event = "loop_open"          # hang-up without a call

[[glitch]]
at = 14.0
trunk = "T1"
event = "ring_on"            # ringing during a call

[[glitch]]
at = 15.0
trunk = "T1"
event = "loop_closed"        # off-hook twice

[[glitch]]
at = 16.0
event = "garbage_frames"
seconds = 0.5

[[glitch]]
at = 30.0
event = "device_lost"

[[glitch]]
at = 31.0
event = "device_back"

[[call]]
trunk = "T2"
at = 33.0
direction = "out"
far_number = "0312345678"
rings = 1
talk = 4.0
"""


def test_impossible_line_events_are_reported_and_survived(tmp_path, engine_run):
    run = engine_run(scenario(tmp_path, IMPOSSIBLE))
    problems = run.engine.stats.problems
    assert problems.get("hangup_without_call") == 1
    assert problems.get("ring_during_call") == 1
    assert problems.get("loop_closed_during_call") == 1
    assert run.engine.stats.bad_periods == 25
    assert run.engine.stats.line_errors == 0
    assert any(isinstance(r, Alarm) and r.what == "bad_frames" for r in run.reports)
    assert any(isinstance(r, LineProblem) for r in run.reports)
    # the call in progress and the call after the device came back are both recorded
    assert [(r["direction"], r["state"], r["far_number"]) for r in run.rows] == [
        ("in", "complete", "0263345000"), ("out", "complete", "0312345678")]
    assert run.rows[0]["duration_s"] == pytest.approx(20.0, abs=0.1)


def test_device_lost_mid_call_closes_it_as_truncated(tmp_path, engine_run):
    text = ONE_CALL.format(trunk_extra="", talk=30.0) + """
[[glitch]]
at = 15.0
event = "device_lost"
"""
    run = engine_run(scenario(tmp_path, text))
    (row,) = run.rows
    assert row["state"] == "truncated"
    assert any(isinstance(r, Alarm) and r.what == "device_lost" for r in run.reports)


def test_excluded_call_metadata_only_when_configured(tmp_path, engine_run):
    from appliance.config import load_config
    cfg = tmp_path / "a.toml"
    cfg.write_text('[[exclusion]]\nfar_number = "0263345000"\nkeep_metadata = true\n')
    run = engine_run(scenario(tmp_path, ONE_CALL.format(trunk_extra="", talk=5.0)),
                     config=load_config(cfg))
    (row,) = run.rows
    assert row["excluded"] == 1 and row["recording_path"] is None and row["notice"] == "none"
    assert not [r for r in run.sim.history if r.what == "play_start"]    # no notice either
