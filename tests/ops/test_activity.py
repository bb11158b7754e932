"""Per-trunk activity alarms with the city's calendar (issue 16 items 1 and 2)."""

from __future__ import annotations

from datetime import date, datetime, timezone

from appliance.clock import FakeClock
from appliance.ops.activity import ActivityWatch, trunk_rules
from appliance.ops.alarms import AlarmRegistry
from appliance.ops.calendar import CityCalendar
from appliance.store.catalog import TOKYO
from appliance.store.datadir import DataDir


def incoming(trunk: str, at: float, talk: float = 4.0) -> dict:
    return {"trunk": trunk, "at": at, "direction": "in", "far_number": "0263345000",
            "rings": 1, "talk": talk, "hangup": "near"}


def test_no_calls_in_business_hours_raised_per_trunk_and_cleared_by_a_call(rig):
    # the rig's clock starts Monday 2026-01-05 09:00 JST: inside business hours
    r = rig({"trunk": [{"id": "T1"}, {"id": "T2"}], "call": [incoming("T1", 60.0)],
             "scenario": {"tail": 5}},
            activity_rules=[{"trunk": "T1", "no_call_hours": 0.01},
                            {"trunk": "T2", "no_call_hours": 0.01}])
    r.run_until(30)
    r.monitor.check()
    assert not {c for c, _ in r.active()} & {"no_calls"}            # 30 s < 36 s
    r.run_until(40)
    r.monitor.check()
    assert {("no_calls", "T1"), ("no_calls", "T2")} <= r.active()
    r.run_until(70)                                                   # T1 rings at 60 s
    r.monitor.check()
    assert ("no_calls", "T1") not in r.active() and ("no_calls", "T2") in r.active()


def test_a_call_longer_than_the_maximum_until_it_ends(rig):
    r = rig({"trunk": [{"id": "T1"}], "call": [incoming("T1", 1.0, talk=45.0)],
             "scenario": {"tail": 5}},
            activity_rules=[{"trunk": "T1", "max_call_minutes": 0.5}])
    r.run_until(25)
    r.monitor.check()
    assert ("call_too_long", "T1/1") not in r.active()
    r.run_until(45)
    r.monitor.check()
    assert ("call_too_long", "T1/1") in r.active()
    r.run_until(60)                                                   # hung up
    r.monitor.check()
    assert ("call_too_long", "T1/1") not in r.active()


def test_a_trunk_has_its_own_stuck_off_hook_limit(rig):
    r = rig({"trunk": [{"id": "T1"}, {"id": "T2"}],
             "glitch": [{"at": 2.0, "trunk": "T1", "event": "loop_closed"},
                        {"at": 2.0, "trunk": "T2", "event": "loop_closed"}],
             "scenario": {"tail": 70}},
            activity_rules=[{"trunk": "T1", "stuck_offhook_minutes": 1}])
    r.run_until(65)
    r.monitor.check()
    assert ("stuck_offhook", "T1/1") in r.active()
    assert ("stuck_offhook", "T2/1") not in r.active()               # the 2 h default


def test_the_calendar_counts_business_hours_only():
    cal = CityCalendar.from_config({"business_hours": "08:30-17:15",
                                    "closed_days": ["2026-12-28"]})
    assert not cal.is_business_day(date(2026, 11, 23))                # 勤労感謝の日 (Mon)
    assert cal.holiday_name(date(2026, 5, 6)) == "振替休日"
    assert not cal.is_business_day(date(2027, 1, 2))                  # 年末年始
    assert not cal.is_business_day(date(2026, 12, 28))                # the city's own
    assert cal.is_business_day(date(2026, 12, 8))
    # Fri 17:00 → Mon 4 Jan 09:00 over a weekend and 年末年始: 15 min + 30 min
    a = datetime(2026, 12, 25, 17, 0, tzinfo=TOKYO)
    b = datetime(2027, 1, 4, 9, 0, tzinfo=TOKYO)
    assert cal.business_seconds(a, b) == 45 * 60
    # without the city's closed day, Monday 28 December counts whole (8 h 45 min)
    assert CityCalendar().business_seconds(a, b) == 45 * 60 + (8 * 60 + 45) * 60


def test_a_quiet_holiday_weekend_raises_nothing(datadir):
    # Saturday 2026-11-21 08:00 JST → Tuesday 24th 08:00: weekend + 勤労感謝の日 (Monday)
    clock = FakeClock(datetime(2026, 11, 20, 23, 0, tzinfo=timezone.utc))
    cat = DataDir(datadir).open_catalog(clock.now())
    reg = AlarmRegistry(cat, clock.now)
    watch = ActivityWatch(reg, CityCalendar(), trunk_rules({"trunk": [
        {"trunk": "T1", "no_call_hours": 1}]}), clock.now)
    clock.advance(72 * 3600)
    watch.check([])
    assert not reg.active()
    clock.advance(2 * 3600)                                            # Tuesday 10:00
    watch.check([])
    assert reg.is_active("no_calls", "T1")
    cat.close()
