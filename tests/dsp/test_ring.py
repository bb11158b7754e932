"""Ring cadence: normal ringing (1 s / 2 s) versus the Number Display CAR (0.5 s / 0.5 s)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from appliance.dsp import (
    RingBurst, RingCadence, RingCadenceClassifier, RingEdge, RingKind, RingStopped, gen,
)


def cadences(events):
    return [(e.kind, round(e.start_s, 3), round(e.at_s, 3)) for e in events if isinstance(e, RingCadence)]


@pytest.mark.parametrize("pulse_hz", [None, 32.0])
def test_normal_ringing(pulse_hz):
    c = RingCadenceClassifier()
    ev = c.feed(gen.ringing_edges("normal", 3, start=1.0, pulse_hz=pulse_hz), until=20.0)
    [(kind, start, at)] = cadences(ev)
    assert kind == RingKind.NORMAL and start == 1.0 and 1.75 <= at <= 1.8
    bursts = [e for e in ev if isinstance(e, RingBurst)]
    assert len(bursts) == 3
    assert all(0.95 <= b.end_s - b.start_s <= 1.0 for b in bursts)
    assert [e for e in ev if isinstance(e, RingStopped)] == [RingStopped(bursts[-1].end_s + 6.0)]


@pytest.mark.parametrize("pulse_hz", [None, 32.0])
def test_car_then_normal_ringing_is_the_number_display_sequence(pulse_hz):
    car = gen.ringing_edges("car", 3, start=0.0, pulse_hz=pulse_hz)
    ring = gen.ringing_edges("normal", 2, start=5.0, pulse_hz=pulse_hz)
    c = RingCadenceClassifier()
    ev = c.feed(car + ring, until=30.0)
    got = cadences(ev)
    assert [k for k, *_ in got] == [RingKind.CAR, RingKind.NORMAL]
    assert got[0][1] == 0.0 and got[0][2] == pytest.approx(1.0)   # decided at the 2nd burst
    assert got[1][1] == 5.0


@pytest.mark.parametrize("on,off", [(0.3, 0.3), (0.6, 0.6), (0.5, 0.4)])
def test_car_tolerance(on, off):
    ev = RingCadenceClassifier().feed(gen.ringing_edges("car", 2, on=on, off=off))
    assert [k for k, *_ in cadences(ev)] == [RingKind.CAR]


@pytest.mark.parametrize("on,off", [(0.8, 1.6), (1.2, 2.4), (1.0, 2.0)])
def test_normal_tolerance_20_percent(on, off):
    ev = RingCadenceClassifier().feed(gen.ringing_edges("normal", 3, on=on, off=off))
    assert [k for k, *_ in cadences(ev)] == [RingKind.NORMAL]


def test_single_short_burst_and_glitches_are_not_a_cadence():
    c = RingCadenceClassifier()
    assert cadences(c.feed([RingEdge(0.0, True), RingEdge(0.4, False)], until=3.0)) == []
    # 10 ms glitches, 2 s apart
    glitches = [RingEdge(t, on) for k in range(5) for t, on in ((2 * k, True), (2 * k + 0.01, False))]
    assert cadences(RingCadenceClassifier().feed(glitches, until=20.0)) == []


def test_garbage_edges_are_ignored():
    c = RingCadenceClassifier()
    ev = c.feed([RingEdge(5.0, True), RingEdge(1.0, False), (float("nan"), True), RingEdge(5.0, True),
                 RingEdge(5.2, False), RingEdge(5.2, False)], until=4.0)
    assert cadences(ev) == []
    assert c.feed([]) == []


@settings(max_examples=40, deadline=None)
@given(split=st.lists(st.integers(0, 400), max_size=10), pulse=st.sampled_from([None, 32.0]))
def test_events_do_not_depend_on_how_edges_are_grouped(split, pulse):
    edges = (gen.ringing_edges("car", 2, pulse_hz=pulse)
             + gen.ringing_edges("normal", 3, start=4.0, pulse_hz=pulse))
    whole = RingCadenceClassifier()
    expected = whole.feed(edges, until=40.0) + whole.finish()
    c = RingCadenceClassifier()
    got, prev = [], 0
    for cut in sorted(s % (len(edges) + 1) for s in split) + [len(edges)]:
        got += c.feed(edges[prev:cut])
        prev = cut
    got += c.feed([], until=40.0) + c.finish()
    assert got == expected
