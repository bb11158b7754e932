"""Live status of ISDN B-channels: their calls are the trunk controller's, not the line's."""

from __future__ import annotations

import json

import pytest


def _line(snapshot: dict, trunk: str, channel: int) -> dict:
    return next(x for x in snapshot["lines"] if x["trunk"] == trunk and x["channel"] == channel)


def test_b_channels_show_their_calls_and_no_number(rig):
    r = rig({"trunk": [{"id": "B1", "kind": "isdn"}],
             "call": [{"trunk": "B1", "channel": 1, "at": 0.5, "direction": "in",
                       "far_number": "0263345000", "called_number": "0263345001",
                       "rings": 2, "talk": 6.0, "hangup": "near"},
                      {"trunk": "B1", "channel": 2, "at": 1.0, "direction": "out",
                       "far_number": "0312345678", "rings": 2, "talk": 4.0, "hangup": "far"}],
             "scenario": {"tail": 3}})
    r.run_until(0.8)
    snap = r.live.snapshot()
    assert _line(snap, "B1", 1)["state"] == "ringing"
    assert _line(snap, "B1", 1)["direction"] == "in"
    r.run_until(9.0)
    snap = r.live.snapshot()
    b1, b2 = _line(snap, "B1", 1), _line(snap, "B1", 2)
    assert (b1["state"], b1["direction"]) == ("in_call", "in")
    assert (b2["state"], b2["direction"]) == ("in_call", "out")
    assert 0 < b1["duration_s"] < 9.0 and 0 < b2["duration_s"] < 9.0
    r.run_until(10.0)                      # the talk time runs on
    assert _line(r.live.snapshot(), "B1", 1)["duration_s"] == pytest.approx(b1["duration_s"] + 1.0)
    text = json.dumps(snap, ensure_ascii=False)
    for number in ("0263345000", "263345000", "0263345001", "0312345678", "312345678"):
        assert number not in text
    r.run_until(30.0)
    snap = r.live.snapshot()
    assert [_line(snap, "B1", ch)["state"] for ch in (1, 2)] == ["idle", "idle"]
    assert _line(snap, "B1", 1)["duration_s"] is None
