"""Unplug and replug the interface 20 times: no crash, no lost completed call, quick recovery.

The emulator (in a process of its own) vanishes mid-call (its control node
and pty disappear, its audio stops) and comes back 0.3 s of real time later:
the cuts are a plan handed to it as data. The host runs the
real backends; each return must be noticed and recording resume within
5 s (issue 5). Completed calls between the cuts are all in the catalog.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _hwbench import bench, record  # noqa: E402

from appliance.clock import SystemClock  # noqa: E402
from appliance.engine.reports import Alarm  # noqa: E402
from appliance.tapi.emulator import Cut  # noqa: E402
from appliance.tapi import open_interface  # noqa: E402
from appliance.tapi.contract import EventKind  # noqa: E402

CYCLES = 20
SPACING = 15.0


def scenario(path: Path) -> Path:
    text = '[scenario]\nname = "unplug"\ntail = 1.0\n\n[[trunk]]\nid = "T1"\n'
    for i in range(2 * CYCLES):
        text += (f'\n[[call]]\ntrunk = "T1"\nat = {1.0 + SPACING * i}\ndirection = "in"\n'
                 f'far_number = "02633450{i:02d}"\nrings = 0\ntalk = 3.0\nhangup = "near"\n')
    path.write_text(text, encoding="utf-8")
    return path


def test_twenty_unplugs(run_cli, datadir, staff, tmp_path, monkeypatch):
    path = scenario(tmp_path / "unplug.toml")
    back_at: list[float] = []
    alarms: list[str] = []

    def listener(r):
        if isinstance(r, Alarm):
            alarms.append(r.what)

    # odd calls are cut 1.5 s into their talk, the device back 0.3 s of real time later
    cuts = [Cut(call=i, after_answer_s=1.5, down_s=0.3) for i in range(1, 2 * CYCLES, 2)]
    with bench(tmp_path, monkeypatch, path, cuts=cuts) as (emu, url):
        iface = open_interface(f"{url}&stop_after={SPACING * 2 * CYCLES + 2}&retry=0.1",
                               SystemClock())
        read = iface.read

        def watched_read():
            p = read()
            if p is not None and any(e.kind is EventKind.DEVICE_BACK for e in p.events):
                back_at.append(time.monotonic())
            return p
        iface.read = watched_read
        engine = record(datadir, iface, [listener])
        made = emu.cuts()
    cut, replugged_at = made["unplugged_at"], sorted(made["replugged_at"].values())

    assert sorted(cut) == list(range(1, 2 * CYCLES, 2)) and len(replugged_at) == CYCLES
    assert iface.stats.device_lost == CYCLES and iface.stats.device_back == CYCLES
    for replug, back in zip(replugged_at, back_at):
        assert 0 <= back - replug < 5.0
    assert alarms.count("device_lost") == CYCLES
    code, out, err = run_cli("--data-dir", datadir, "calls", "--json", *staff)
    assert code == 0, err
    calls = sorted(json.loads(out), key=lambda c: c["started_at"])
    states = [c["state"] for c in calls]
    assert states.count("complete") == CYCLES          # every call that ended normally
    assert states.count("truncated") == CYCLES         # every call the cut interrupted
    assert all(c["far_number"] for c in calls)
    assert engine.stats.line_errors == 0
