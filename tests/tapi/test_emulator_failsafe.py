"""The device's fail-safe (hw/protocol.md): a host silent for 2 s gets every relay
opened and every notice path dropped; a host that keeps syncing keeps them."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import serial

from appliance.tapi import serialctl as sc
from appliance.tapi.emulator import FAILSAFE_S

sys.path.insert(0, str(Path(__file__).parent))
from _hwbench import SCENARIOS, bench  # noqa: E402


def _host(emu) -> serial.Serial:
    port = serial.Serial(str(emu.link), timeout=0.1)
    port.write(sc.encode(sc.SetLoop(0, 1, True)) + sc.encode(sc.NoticePath(0, 1, True))
               + sc.encode(sc.HostSync(0)))
    port.flush()
    return port


def _wait(pred, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


def test_a_silent_host_gets_the_relays_opened(tmp_path, monkeypatch):
    with bench(tmp_path, monkeypatch, SCENARIOS / "demo.toml") as (emu, _):
        port = _host(emu)
        try:
            assert _wait(lambda: emu.records("relay_closed"), 2.0)
            assert emu.stats().failsafe_trips == 0
            # silence: nothing more from the host
            assert _wait(lambda: emu.stats().failsafe_trips == 1, FAILSAFE_S + 2.0)
            opened = emu.records("relay_open")
            assert [(r.trunk, r.channel) for r in opened] == [("T1", 1)]
            assert not emu.path_on()                      # the notice path is dropped too
            time.sleep(0.3)
            assert emu.stats().failsafe_trips == 1         # once, not again and again
        finally:
            port.close()


def test_a_syncing_host_keeps_its_relays(tmp_path, monkeypatch):
    with bench(tmp_path, monkeypatch, SCENARIOS / "demo.toml") as (emu, _):
        port = _host(emu)
        try:
            end = time.monotonic() + FAILSAFE_S + 1.5
            while time.monotonic() < end:                # bounded: about 3.5 s
                port.write(sc.encode(sc.HostSync(0)))
                port.flush()
                time.sleep(0.4)
            assert emu.stats().failsafe_trips == 0
            assert not emu.records("relay_open")
            assert emu.path_on()
        finally:
            port.close()
