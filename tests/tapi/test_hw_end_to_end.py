"""One shipped scenario through the real backends gives the same catalog as sim://.

pyalsaaudio reads the capture from an ALSA ``file`` PCM over a FIFO and
writes the notice into another, pyserial talks to the interface emulator on
a pty (tests/tapi/_hwbench.py); nothing of either library is mocked. Both
runs start at the same (fake) wall-clock time, so the catalogs compare as
they are.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _hwbench import SCENARIOS, START, bench, catalog_calls, init_datadir, record  # noqa: E402

from appliance.clock import FakeClock  # noqa: E402
from appliance.tapi import open_interface  # noqa: E402
from appliance.tapi.sim import load_scenario  # noqa: E402



def comparable(rows):
    # id and sha256 are random per recording (each has its own sealed key); size follows
    # the audio, and the real playback path delivers the notice 40 ms later (the ALSA queue)
    return [{k: v for k, v in c.items() if k not in ("id", "sha256", "size")} for c in rows]



def test_demo_scenario_gives_the_same_catalog_through_alsa_and_serial(
        run_cli, staff, tmp_path, monkeypatch, password_file):
    scenario = SCENARIOS / "demo.toml"
    sim_dir, hw_dir = tmp_path / "sim", tmp_path / "hw"
    init_datadir(run_cli, sim_dir, password_file, tmp_path)
    init_datadir(run_cli, hw_dir, password_file, tmp_path)

    record(sim_dir, open_interface(f"sim://{scenario}", FakeClock(START)))
    expected = catalog_calls(run_cli, sim_dir, staff)
    assert [c["direction"] for c in expected] == ["out", "in", "in"]

    seconds = load_scenario(scenario).duration
    with bench(tmp_path, monkeypatch, scenario) as (emu, url):
        iface = open_interface(f"{url}&stop_after={seconds}", FakeClock(START))
        engine = record(hw_dir, iface)
        sent = emu.received()
    got = catalog_calls(run_cli, hw_dir, staff)
    assert comparable(got) == comparable(expected)
    assert [c["notice"] for c in got] == ["none", "played", "played"]
    assert [c["far_number"] for c in got] == [c["far_number"] for c in expected]
    # the relay (Number Display primary response) and the notice path went over the wire
    from appliance.tapi import serialctl as sc
    assert sum(isinstance(m, sc.SetLoop) for m in sent) == 4
    assert sum(isinstance(m, sc.NoticePath) and m.on for m in sent) == 2
    assert iface.stats.late_sync == 0 and iface.stats.device_lost == 0
    assert engine.stats.bad_periods == 0
