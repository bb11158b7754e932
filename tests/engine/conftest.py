"""Run a scenario through the whole engine in-process, on a FakeClock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest

from appliance.clock import FakeClock
from appliance.config import Config, load_config
from appliance.engine.capture import Engine
from appliance.engine.notice import load_notice
from appliance.engine.recorder import CallRecorder
from appliance.engine.writer import ThreadedSink, Writer
from appliance.store.datadir import DataDir
from appliance.tapi.sim import SimInterface, load_scenario

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"
CONFIG = SCENARIOS / "appliance.toml"


@dataclass
class Run:
    engine: Engine
    sim: SimInterface
    sink: ThreadedSink
    rows: list[dict]
    reports: list


def run_engine(datadir: Path, scenario: Path, config: Config | None = None, *,
               capacity: int = 1024, wait_when_full: bool = True, open_file=None,
               before_close=None) -> Run:
    config = config or load_config(CONFIG)
    dd = DataDir(datadir)
    clock = FakeClock(datetime(2026, 1, 5, 0, 0, tzinfo=timezone.utc))
    catalog = dd.open_catalog(clock.now())
    sim = SimInterface(load_scenario(scenario), clock)
    writer = Writer(dd, catalog, **({"open_file": open_file} if open_file else {}))
    sink = ThreadedSink(writer, capacity, wait_when_full=wait_when_full)
    reports: list = []
    recorder = CallRecorder(dd, catalog, config.site.name, config.encoder, sink)
    engine = Engine(sim, recorder, config, load_notice(config.notice), reports.append)
    engine.run()
    engine.finish()
    if before_close:
        before_close()
    assert sink.close(timeout=120), "the writer did not drain"
    rows = catalog.calls()
    catalog.close()
    return Run(engine, sim, sink, rows, reports)


@pytest.fixture
def engine_run(datadir):
    return lambda scenario, **kw: run_engine(datadir, scenario, **kw)
