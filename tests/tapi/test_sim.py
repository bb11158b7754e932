"""The simulator backend: scenario validation, wire signals, pacing, the URL registry."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from appliance.clock import FakeClock
from appliance.dsp import decode_dtmf
from appliance.dsp.callerid import decode_caller_id
from appliance.errors import ScenarioError, UnknownInterface
from appliance.tapi import EventKind, open_interface
from appliance.tapi.sim import load_scenario

T0 = datetime(2026, 1, 5, tzinfo=timezone.utc)
GOOD = """[[trunk]]
id = "T1"
[[call]]
trunk = "T1"
at = 0.5
direction = "{direction}"
far_number = "0263345000"
rings = 1
talk = 3.0
"""


def write(tmp_path, text) -> Path:
    p = tmp_path / "s.toml"
    p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.parametrize("text, line, reason", [
    ("[[trunk]]\nid = \"T1\"\n[[call]]\ntrunk = \"T9\"\nat = 1\ndirection = \"in\"\n"
     "far_number = \"1\"\n", 3, "not a [[trunk]]"),
    ("[[trunk]]\nid = \"T1\"\n\n[[call]]\ntrunk = \"T1\"\nat = 1\ndirection = \"sideways\"\n",
     4, "direction"),
    ("[[trunk]]\nid = \"T1\"\n[[call]]\ntrunk = \"T1\"\nat = 1\ndirection = \"in\"\n"
     "far_number = \"1\"\nabsent_reason = \"withheld\"\n", 3, "either far_number or absent_reason"),
    ("[[trunk]]\nid = \"T1\"\n[[call]]\ntrunk = \"T1\"\nat = 1\ndirection = \"out\"\n"
     "far_number = \"03-1234\"\n", 3, "DTMF digits"),
    ("[[trunk]]\nid = \"T1\"\n[[call]]\ntrunk = \"T1\"\nat = 1\ndirection = \"in\"\n"
     "far_number = \"1\"\ncolour = \"red\"\n", 3, "unknown key 'colour'"),
    ("[[trunk]]\nid = \"T1\"\n[[call]]\ntrunk = \"T1\"\nat = 1\ndirection = \"in\"\n"
     "far_number = \"1\"\n[[call]]\ntrunk = \"T1\"\nat = 3\ndirection = \"in\"\n"
     "far_number = \"2\"\n", 8, "still uses T1/1"),
    # ISDN calls are simulated; a public phone has no Q.931 encoding
    ("[[trunk]]\nid = \"I1\"\nkind = \"isdn\"\n[[call]]\ntrunk = \"I1\"\nat = 1\n"
     "direction = \"in\"\nabsent_reason = \"public_phone\"\n", 4, "no Q.931 encoding"),
    ("[[trunk]]\nid = \"I1\"\nkind = \"isdn\"\nchannels = 24\n", 1, "channels"),
    ("[[trunk]]\nid = \"T1\"\n[[glitch]]\ntrunk = \"T1\"\nat = 1\nevent = \"d_bad_fcs\"\n",
     3, "needs an ISDN trunk"),
])
def test_bad_scenarios_are_refused_with_file_line_and_reason(tmp_path, text, line, reason):
    p = write(tmp_path, text)
    with pytest.raises(ScenarioError) as exc:
        load_scenario(p)
    assert f"{p}:{line}:" in str(exc.value) and reason in str(exc.value)


def test_syntax_errors_and_missing_files_are_clear(tmp_path):
    with pytest.raises(ScenarioError, match="syntax error"):
        load_scenario(write(tmp_path, "[[trunk]\n"))
    with pytest.raises(ScenarioError, match="no such scenario"):
        load_scenario(tmp_path / "nope.toml")


def test_bad_scenario_through_the_cli_is_an_error_not_a_traceback(tmp_path, datadir, run_subprocess):
    p = write(tmp_path, "[[trunk]]\nid = \"T1\"\n[[call]]\ntrunk = \"T1\"\n")
    res = run_subprocess("--data-dir", datadir, "run", "--fast", "--interface", f"sim://{p}")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert f"{p}:3:" in res.stderr and "'at'" in res.stderr


def test_unknown_and_planned_backends_are_refused():
    with pytest.raises(UnknownInterface, match="unknown interface"):
        open_interface("tcp://x", FakeClock(T0))
    with pytest.raises(UnknownInterface, match="not available"):
        open_interface("alsa+serial://hw:1", FakeClock(T0))


def capture(sim, answer_car=True, max_periods=3000):
    far, near, events = [], [], []
    for _ in range(max_periods):
        p = sim.read()
        if p is None:
            break
        far.append(p.far[0].copy())
        near.append(p.near[0].copy())
        events += p.events
        if answer_car and [e for e in p.events if e.kind is EventKind.RING_ON] and \
                len([e for e in events if e.kind is EventKind.RING_ON]) == 2:
            sim.set_loop("T1", 1, True)       # primary response during the second CAR burst
        if sim.records("fsk_start") and not sim.records("relay_open") and \
                p.sample > sim.records("fsk_start")[0].sample + 4000:
            sim.set_loop("T1", 1, False)
    return np.concatenate(far), np.concatenate(near), events


def test_incoming_call_is_car_then_fsk_then_ringing_and_numbers_only_travel_as_signals(tmp_path):
    clock = FakeClock(T0)
    sim = open_interface(f"sim://{write(tmp_path, GOOD.format(direction='in'))}", clock)
    far, near, events = capture(sim)
    kinds = [e.kind for e in events]
    # CAR bursts of 0.5 s, then (after the FSK) normal ringing of 1 s, then the answer
    ons = [e.sample for e in events if e.kind is EventKind.RING_ON]
    offs = [e.sample for e in events if e.kind is EventKind.RING_OFF]
    assert offs[0] - ons[0] == 4000 and offs[-1] - ons[-1] == 8000
    assert kinds.index(EventKind.LOOP_CLOSED) > kinds.index(EventKind.RING_OFF)
    assert all(e.data is None for e in events)          # no metadata rides along
    (msg,) = decode_caller_id(far, "jclip")
    assert msg.number == "0263345000"
    assert not decode_dtmf(near)
    # real time by default: the clock moved 20 ms per period, exactly
    assert clock.monotonic() == pytest.approx(sim.sample / 8000)


def test_outgoing_call_carries_the_dialled_digits_as_dtmf_on_the_near_leg(tmp_path):
    sim = open_interface(f"sim://{write(tmp_path, GOOD.format(direction='out'))}", FakeClock(T0))
    far, near, events = capture(sim, answer_car=False)
    assert "".join(d.digit for d in decode_dtmf(near)) == "0263345000"
    assert [e.kind for e in events] == [EventKind.LOOP_CLOSED, EventKind.LOOP_OPEN]
