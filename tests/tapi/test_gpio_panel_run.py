"""The GPIO variant's front panel in the run path: recording LED per call, fault LED per alarm.

``appliance run`` on gpio:// puts a StatusPanel on the interface's pin factory
(gpiozero's MockFactory here): the recording LED follows the calls reported,
the fault LED follows the alarm registry (lit while any alarm is active, out
when the last one clears), not single alarm reports.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from appliance.cli.run import status_panel
from appliance.clock import FakeClock
from appliance.engine.reports import Alarm, CallEnded, CallStarted, Reporter
from appliance.ops.alarms import AlarmCode, AlarmRegistry
from appliance.store.datadir import DataDir
from appliance.tapi import open_interface
from appliance.tapi.gpio import GpioInterface

T = datetime(2026, 1, 5, 9).astimezone()
POWER, RECORDING, FAULT = 5, 6, 13


@pytest.fixture
def factory(monkeypatch):
    f = MockFactory()
    monkeypatch.setattr(Device, "pin_factory", f)
    yield f
    f.reset()


def lit(factory, pin):
    return bool(factory.pin(pin).state)


def test_run_path_panel_leds_follow_calls_and_the_alarm_registry(factory, datadir):
    iface = GpioInterface(FakeClock(T), None, capture=None)
    panel = status_panel(iface)
    assert panel is not None and lit(factory, POWER)
    assert not lit(factory, RECORDING) and not lit(factory, FAULT)
    fault_led = panel.fault_led()         # as cmd_run hands it to the alarm registry

    reporter = Reporter([panel])
    reporter(CallStarted("c1", "T1", 1, "in", T))
    reporter(Alarm("bad_frames", 1, "malformed audio"))   # a report alone lights nothing
    reporter.close(5)
    assert lit(factory, RECORDING) and not lit(factory, FAULT)

    with DataDir(datadir).open_catalog(T) as catalog:
        registry = AlarmRegistry(catalog, lambda: T, fault_led)
        registry.raise_(AlarmCode.DEVICE_LOST, "gpio")
        assert lit(factory, FAULT)
        registry.raise_(AlarmCode.STUCK_OFFHOOK, "T1/1")
        registry.clear(AlarmCode.DEVICE_LOST)
        assert lit(factory, FAULT)                          # one alarm still active
        registry.clear(AlarmCode.STUCK_OFFHOOK)
        assert not lit(factory, FAULT)

    reporter = Reporter([panel])
    reporter(CallEnded("c1", "T1", 1, "in", 3.0, 3.0, "played", 0))
    reporter.close(5)
    assert not lit(factory, RECORDING)
    panel.close()
    iface.close()


def test_other_backends_have_no_panel(factory):
    from pathlib import Path
    scenario = Path(__file__).resolve().parents[2] / "scenarios" / "single-line.toml"
    assert status_panel(open_interface(f"sim://{scenario}", FakeClock(T))) is None
    assert factory.pins == {}                               # no pin was claimed
