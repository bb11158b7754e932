"""The GPIO single-line variant on gpiozero's MockFactory, audio through the ALSA file PCM.

The mock pins are driven as the opto-couplers would (active low, with
contact bounce); the ALSA capture reads a FIFO the test writes. Debounce is
our own: bounce never reaches the engine, and each event carries the sample
of the edge that started it.
"""

from __future__ import annotations

import os
import threading
from datetime import datetime

import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory

from appliance.clock import FakeClock
from appliance.engine.reports import Alarm, CallEnded, CallStarted
from appliance.tapi.contract import EventKind
from appliance.tapi.emulator import alsa_config
from appliance.tapi.gpio import GpioInterface, StatusPanel
from appliance.units import FRAME_SAMPLES


@pytest.fixture
def factory():
    f = MockFactory()
    yield f
    f.reset()


@pytest.fixture
def alsa(tmp_path, monkeypatch):
    fifo, pb = tmp_path / "cap.fifo", tmp_path / "pb.raw"
    os.mkfifo(fifo)
    conf = tmp_path / "asound.conf"
    conf.write_text(alsa_config(fifo, pb), encoding="utf-8")
    monkeypatch.setenv("ALSA_CONFIG_PATH", str(conf))
    fd = os.open(fifo, os.O_RDWR)
    yield fd, pb
    os.close(fd)


def test_ring_and_loop_debounced_and_stamped(factory, alsa):
    fd, pb = alsa
    clock = FakeClock(datetime(2026, 1, 5, 9).astimezone())
    iface = GpioInterface(clock, factory, capture="appliance_capture",
                          playback="appliance_playback")
    ring, loop = factory.pin(17), factory.pin(27)
    far = np.arange(FRAME_SAMPLES, dtype=np.int16)
    events = []
    for k in range(40):
        t = k * 0.02
        clock._t = t                         # the capture clock is the fake one
        if k == 5:
            ring.drive_low()                 # ringing: opto conducts
            clock._t = t + 0.002
            ring.drive_high()                # bounce: 2 ms
            clock._t = t + 0.004
            ring.drive_low()
        if k == 20:
            ring.drive_high()
        if k == 25:
            loop.drive_low()                 # loop current: the staff answered
        if k == 30:
            loop.drive_high()
            clock._t = t + 0.005
            loop.drive_low()                 # a 5 ms glitch is not a hang-up
        stereo = np.stack([far, -far], axis=1).astype("<i2")
        os.write(fd, stereo.tobytes())
        p = iface.read()
        events += [(e.kind, e.sample) for e in p.events]
        assert np.array_equal(p.far[0], far) and np.array_equal(p.near[0], -far)
    assert events == [(EventKind.RING_ON, 5 * 160 + 32), (EventKind.RING_OFF, 20 * 160),
                      (EventKind.LOOP_CLOSED, 25 * 160)]
    iface.set_loop("T1", 1, True)
    assert factory.pin(22).state
    start = iface.play("T1", 1, np.full(400, 1000, np.int16))
    assert factory.pin(23).state and start == iface.sample + 320
    # the notice path stays closed until its last sample has reached the line
    end = start + 400
    for _ in range(8):
        os.write(fd, np.zeros((160, 2), "<i2").tobytes())
        p = iface.read()
        assert factory.pin(23).state == (p.sample < end), p.sample
    assert not factory.pin(23).state
    iface.close()
    iface.close()


def test_status_panel_leds_and_button(factory):
    pressed = threading.Event()
    panel = StatusPanel(pin_factory=factory, on_button=pressed.set)
    assert factory.pin(5).state and not factory.pin(6).state
    t = datetime(2026, 1, 5, 9).astimezone()
    panel(CallStarted("c1", "T1", 1, "in", t))
    assert factory.pin(6).state
    panel(CallEnded("c1", "T1", 1, "in", 3.0, 3.0, "played", 0))
    assert not factory.pin(6).state and not factory.pin(13).state
    panel(Alarm("device_lost", 1, "device usb0"))
    assert factory.pin(13).state
    factory.pin(26).drive_low()
    assert pressed.is_set()
    panel.close()
