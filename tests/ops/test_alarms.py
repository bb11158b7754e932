"""Every alarm is raised by its cause and cleared when the cause goes (issue 8)."""

from __future__ import annotations

import logging

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from appliance.ops.alarms import ALARMS, AlarmCode, read_alarms
from appliance.ops.leds import GpioFaultLed
from appliance.ops.monitor import AlarmSettings

QUICK = AlarmSettings(line_dead_s=60, stuck_offhook_s=60, overrun_clear_s=5)


def incoming(trunk: str, at: float, talk: float = 4.0, number: str = "0263345000") -> dict:
    return {"trunk": trunk, "at": at, "direction": "in", "far_number": number, "rings": 1,
            "talk": talk, "hangup": "near"}


def test_line_dead_after_silence_and_cleared_by_a_ring(rig):
    r = rig({"trunk": [{"id": "T1"}, {"id": "T2"}],
             "call": [incoming("T1", 75.0), incoming("T2", 1.0, talk=3.0)],
             "scenario": {"tail": 5}}, QUICK)
    r.run_until(50)
    r.monitor.check()
    assert ("line_dead", "T1/1") not in r.active()          # 50 s: not yet
    r.run_until(70)
    r.monitor.check()
    assert ("line_dead", "T1/1") in r.active()
    # T2 was last heard when its call ended (about 8 s): more than 60 s ago
    assert ("line_dead", "T2/1") in r.active()
    r.run_until(77)                                            # T1 rings at 75 s
    r.monitor.check()
    assert ("line_dead", "T1/1") not in r.active()
    assert ("line_dead", "T2/1") in r.active()


def test_stuck_off_hook_raised_and_cleared_by_hang_up(rig):
    r = rig({"trunk": [{"id": "T1"}],
             "glitch": [{"at": 2.0, "trunk": "T1", "event": "loop_closed"},
                        {"at": 70.0, "trunk": "T1", "event": "loop_open"}],
             "scenario": {"tail": 3}}, QUICK)
    r.run_until(60)
    r.monitor.check()
    assert ("stuck_offhook", "T1/1") not in r.active()
    r.run_until(65)
    r.monitor.check()
    assert ("stuck_offhook", "T1/1") in r.active()
    r.run_until(71)
    r.monitor.check()
    assert ("stuck_offhook", "T1/1") not in r.active()


def test_device_lost_raised_and_cleared_when_back(rig):
    r = rig({"trunk": [{"id": "T1"}],
             "glitch": [{"at": 5.0, "event": "device_lost"},
                        {"at": 12.0, "event": "device_back"}],
             "scenario": {"tail": 3}}, QUICK)
    r.run_until(8)
    r.monitor.check()
    assert ("device_lost", "sim0") in r.active()
    r.run_until(13)
    r.monitor.check()
    assert ("device_lost", "sim0") not in r.active()


def test_capture_overrun_raised_by_bad_frames_and_cleared_after_quiet(rig):
    r = rig({"trunk": [{"id": "T1"}],
             "glitch": [{"at": 3.0, "event": "garbage_frames", "seconds": 0.5}],
             "scenario": {"tail": 15}}, QUICK)
    r.run_until(2)
    r.monitor.check()
    assert ("capture_overrun", "") not in r.active()
    r.run_until(4)
    r.monitor.check()
    assert ("capture_overrun", "") in r.active()
    r.run_until(6)
    r.monitor.check()
    assert ("capture_overrun", "") in r.active()      # 2 s without loss: not yet
    r.run_until(10)
    r.monitor.check()
    assert ("capture_overrun", "") not in r.active()


def test_disk_nearly_full_and_retention_at_risk_follow_free_space(rig):
    r = rig({"trunk": [{"id": "T1"}], "scenario": {"tail": 2}},
            AlarmSettings(disk_warn_mb=2000), min_free_mb=500)
    mb = 1024 * 1024
    r.free["bytes"] = 1500 * mb
    r.monitor.check()
    assert r.active() == {("disk_nearly_full", "")}
    r.free["bytes"] = 400 * mb
    r.monitor.check()
    assert r.active() == {("disk_nearly_full", ""), ("retention_at_risk", "")}
    r.free["bytes"] = 1000 * mb
    r.monitor.check()
    assert r.active() == {("disk_nearly_full", "")}
    r.free["bytes"] = 5000 * mb
    r.monitor.check()
    assert r.active() == set()


def test_clock_unsynchronised_flags_recordings_until_synchronised(rig):
    r = rig({"trunk": [{"id": "T1"}],
             "call": [incoming("T1", 1.0, talk=2.0), incoming("T1", 20.0, talk=2.0)],
             "scenario": {"tail": 3}}, QUICK)
    r.ntp["state"] = False
    r.monitor.check()
    assert ("clock_unsynced", "") in r.active()
    r.run_until(15)
    r.ntp["state"] = True
    r.monitor.check()
    assert ("clock_unsynced", "") not in r.active()
    r.run_until(40)
    rows = r.catalog.calls()
    assert [row["clock_unsynced"] for row in rows] == [1, 0]
    r.ntp["state"] = None           # unknown (no timedatectl): neither raised nor flagged
    r.monitor.check()
    assert ("clock_unsynced", "") not in r.active() and r.recorder.clock_unsynced is False


def test_notice_not_heard_raised_and_cleared_by_the_next_heard_notice(rig):
    r = rig({"trunk": [{"id": "T1", "notice_path": "broken"}],
             "call": [incoming("T1", 1.0, talk=12.0), incoming("T1", 40.0, talk=12.0)],
             "scenario": {"tail": 3}}, QUICK)
    r.run_until(30)
    assert [row["notice"] for row in r.catalog.calls()] == ["not_heard"]
    assert ("notice_not_heard", "T1/1") in r.active()
    r.sim._wires[0].notice_ok = True          # the technician repairs the injection path
    r.run_until(70)
    assert [row["notice"] for row in r.catalog.calls()] == ["not_heard", "played"]
    assert ("notice_not_heard", "T1/1") not in r.active()


def test_fault_led_lit_while_any_alarm_is_active(rig, caplog):
    factory = MockFactory()
    try:
        led = GpioFaultLed(17, pin_factory=factory)
        r = rig({"trunk": [{"id": "T1"}], "scenario": {"tail": 2}},
                AlarmSettings(disk_warn_mb=2000), led=led, min_free_mb=500)
        pin = factory.pin(17)
        assert pin.state == 0
        with caplog.at_level(logging.WARNING, logger="appliance.alarms"):
            r.free["bytes"] = 100 * 1024 * 1024
            r.monitor.check()
            assert pin.state == 1 and led.is_lit
            r.free["bytes"] = 10 ** 12
            r.monitor.check()
        assert pin.state == 0
        # the journal hears each transition once, in Japanese and English
        raised = [m for m in caplog.messages if "ALARM disk_nearly_full" in m]
        cleared = [m for m in caplog.messages if "cleared disk_nearly_full" in m]
        assert len(raised) == 1 and "空き容量わずか" in raised[0] and len(cleared) == 1
        led.close()
        led.close()                      # twice is fine
    finally:
        factory.close()
        Device.pin_factory = None


def test_alarm_raised_in_one_process_is_seen_by_another_reader(rig, datadir):
    from appliance.store.datadir import DataDir
    r = rig({"trunk": [{"id": "T1"}], "scenario": {"tail": 2}})
    r.registry.raise_(AlarmCode.DEVICE_LOST, "usb0", "gone")
    r.registry.raise_(AlarmCode.DEVICE_LOST, "usb0", "still gone")
    with DataDir(datadir).open_catalog(r.clock.now()) as other:
        (a,) = read_alarms(other)
        assert (a.code, a.subject, a.count, a.detail) == ("device_lost", "usb0", 2, "still gone")
    assert r.registry.clear(AlarmCode.DEVICE_LOST) == 1
    with DataDir(datadir).open_catalog(r.clock.now()) as other:
        assert read_alarms(other) == []


def test_every_alarm_is_documented_in_operations_md():
    from pathlib import Path
    doc = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text("utf-8")
    for code, info in ALARMS.items():
        assert f"`{code}`" in doc and info.ja in doc, code
    assert set(ALARMS) == set(AlarmCode)


@pytest.mark.parametrize("table", [{"line_dead_s": "x"}, {"bogus": 1}, {"check_every_s": 0}])
def test_bad_alarm_settings_are_refused(table):
    from appliance.errors import ConfigError
    with pytest.raises(ConfigError):
        AlarmSettings.from_config(table)
