"""Clocks are passed in, never read below a front end (tests run faster than real time)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...          # aware, UTC
    def monotonic(self) -> float: ...
    def sleep_until(self, t: float) -> None: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep_until(self, t: float) -> None:
        delay = t - time.monotonic()
        if delay > 0:
            time.sleep(delay)


class FakeClock:
    """Time that moves only when told to (or when asked to sleep)."""

    def __init__(self, start: datetime) -> None:
        self._start = start
        self._t = 0.0

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._t)

    def monotonic(self) -> float:
        return self._t

    def sleep_until(self, t: float) -> None:
        self._t = max(self._t, t)

    def advance(self, seconds: float) -> None:
        self._t += seconds
