"""The front-panel fault LED, behind a contract small enough for any backend.

``FaultLed`` is what the alarm registry drives: ``set(on)`` and ``close()``.
``GpioFaultLed`` lights a gpiozero ``LED`` (the pin factory is passed in, so
tests use gpiozero's ``MockFactory`` and a real board its own factory; the
mock is never chosen here by default). ``NullLed`` is for hosts without one
(``[alarms] fault_led_pin`` unset) and remembers what it was told, so tests
can assert on it. The hardware work may reuse this module for its other LEDs.
"""

from __future__ import annotations

import threading
from typing import Protocol


class FaultLed(Protocol):
    def set(self, on: bool) -> None: ...
    def close(self) -> None: ...


class NullLed:
    """No LED on this host; keeps the last state (and how often it changed) for tests."""

    def __init__(self) -> None:
        self.on = False
        self.changes = 0

    def set(self, on: bool) -> None:
        if on != self.on:
            self.changes += 1
        self.on = on

    def close(self) -> None:
        pass


class GpioFaultLed:
    """A gpiozero LED on ``pin`` (BCM numbering unless the pin name says otherwise)."""

    def __init__(self, pin: int | str, pin_factory=None) -> None:
        from gpiozero import LED   # imported here: hosts without GPIO never need it
        self._led = LED(pin, pin_factory=pin_factory)
        self._lock = threading.Lock()   # the monitor and the reporter threads both drive it
        self._closed = False

    @property
    def is_lit(self) -> bool:
        return bool(self._led.is_lit)

    def set(self, on: bool) -> None:
        with self._lock:
            if self._closed:
                return
            if on:
                self._led.on()
            else:
                self._led.off()

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._led.close()

    def __enter__(self) -> "GpioFaultLed":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
