"""A small appliance in-process: the real engine on a simulated scenario, stepped by hand."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pytest

from appliance.clock import FakeClock
from appliance.config import load_config
from appliance.engine.capture import Engine
from appliance.engine.notice import load_notice
from appliance.engine.recorder import CallRecorder
from appliance.ops.alarms import AlarmRegistry
from appliance.ops.leds import NullLed
from appliance.ops.live import LiveState
from appliance.ops.monitor import AlarmSettings, Monitor
from appliance.store.datadir import DataDir
from appliance.tapi.sim import SimInterface
from appliance.tapi.sim.scenario import parse_scenario
from appliance.units import LINE_RATE

CONFIG = Path(__file__).resolve().parents[2] / "scenarios" / "appliance.toml"
PERIODS_PER_S = LINE_RATE // 160


@dataclass
class Rig:
    engine: Engine
    sim: SimInterface
    live: LiveState
    monitor: Monitor
    registry: AlarmRegistry
    recorder: CallRecorder
    catalog: object
    reports: list
    clock: FakeClock
    free: dict = field(default_factory=dict)
    ntp: dict = field(default_factory=dict)

    def run_until(self, seconds: float) -> None:
        """Capture until line time ``seconds`` (bounded by the scenario's end)."""
        target = int(seconds * PERIODS_PER_S)
        self.engine.run(max_periods=max(0, target - self.engine.stats.periods))

    def active(self) -> set[tuple[str, str]]:
        return {(a.code, a.subject) for a in self.registry.active()}


@pytest.fixture
def rig(datadir):
    made = []

    def build(scenario: dict, settings: AlarmSettings | None = None, led=None,
              min_free_mb: int = 0, activity_rules: dict | None = None,
              calendar: dict | None = None) -> Rig:
        dd = DataDir(datadir)
        clock = FakeClock(datetime(2026, 1, 5, 0, 0, tzinfo=timezone.utc))
        catalog = dd.open_catalog(clock.now())
        config = load_config(CONFIG)
        sim = SimInterface(parse_scenario(scenario, Path("<test>")), clock)
        recorder = CallRecorder(dd, catalog, config.site.name, config.encoder)  # inline writer
        reports: list = []
        listeners: list = [reports.append]
        notice = load_notice(config.notice)
        engine = Engine(sim, recorder, config, notice,
                        lambda r: [fn(r) for fn in listeners])
        live = LiveState(engine, notice.samples)
        engine.observers.append(live)
        registry = AlarmRegistry(catalog, clock.now, led or NullLed())
        free = {"bytes": 10 ** 12}
        ntp = {"state": True}
        activity = None
        if activity_rules:
            from appliance.ops.activity import ActivityWatch, trunk_rules
            from appliance.ops.calendar import CityCalendar
            activity = ActivityWatch(registry, CityCalendar.from_config(calendar),
                                     trunk_rules({"trunk": activity_rules}), clock.now)
            listeners.append(activity.on_report)
        monitor = Monitor(registry, live, settings=settings or AlarmSettings(),
                          min_free_mb=min_free_mb, free_bytes=lambda: free["bytes"],
                          ntp=lambda: ntp["state"], recorder=recorder, activity=activity)
        listeners.append(monitor.on_report)
        r = Rig(engine, sim, live, monitor, registry, recorder, catalog, reports, clock,
                free, ntp)
        made.append(r)
        return r

    yield build
    for r in made:
        r.catalog.close()
