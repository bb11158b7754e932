"""What the engine tells the world: typed reports, delivered off the capture thread.

The capture thread only appends a report to a queue; a reporter thread logs
it at technician level (never a number: R11) and hands it to listeners (the
CLI prints call starts and ends). A listener that raises is logged and
dropped from nothing else: capture never sees it.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

log = logging.getLogger("appliance.engine")


@dataclass(frozen=True)
class CallStarted:
    call_id: str
    trunk: str
    channel: int
    direction: str
    at: datetime


@dataclass(frozen=True)
class CallEnded:
    call_id: str
    trunk: str
    channel: int
    direction: str
    duration_s: float | None
    recorded_s: float
    notice: str
    lost_frames: int


@dataclass(frozen=True)
class NotRecorded:
    call_id: str | None
    trunk: str
    channel: int
    why: str            # "unanswered" | "excluded"


@dataclass(frozen=True)
class LineProblem:
    trunk: str
    channel: int
    what: str
    at: datetime


@dataclass(frozen=True)
class Alarm:
    what: str           # "writer_overrun" | "bad_frames" | "device_lost" …
    count: int
    detail: str = ""


def describe(r) -> tuple[int, str]:
    """(log level, technician-level text without numbers)."""
    if isinstance(r, CallStarted):
        return logging.INFO, (f"call {r.call_id} started: {r.trunk} channel {r.channel}, "
                              f"{r.direction}")
    if isinstance(r, CallEnded):
        dur = "-" if r.duration_s is None else f"{r.duration_s:.1f} s"
        return logging.INFO, (f"call {r.call_id} ended: {r.trunk} channel {r.channel}, "
                              f"duration {dur}, {r.recorded_s:.1f} s recorded, notice {r.notice}"
                              + (f", {r.lost_frames} frames lost" if r.lost_frames else ""))
    if isinstance(r, NotRecorded):
        return logging.INFO, f"{r.why} call on {r.trunk} channel {r.channel}: not recorded"
    if isinstance(r, LineProblem):
        return logging.WARNING, (f"line {r.trunk} channel {r.channel}: {r.what} "
                                 "(ignored; the line carries on)")
    if isinstance(r, Alarm):
        return logging.ERROR, f"ALARM {r.what}: count {r.count} {r.detail}".rstrip()
    return logging.INFO, repr(r)


class Reporter:
    def __init__(self, listeners: list[Callable] | None = None) -> None:
        self.listeners = list(listeners or [])
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="appliance-reporter", daemon=True)
        self._thread.start()

    def __call__(self, report) -> None:
        self._q.put(report)

    def _run(self) -> None:
        while True:
            r = self._q.get()
            if r is None:
                return
            level, text = describe(r)
            log.log(level, "%s", text)
            for fn in self.listeners:
                try:
                    fn(r)
                except Exception:       # noqa: BLE001 — a listener's bug is not capture's
                    log.exception("report listener failed")

    def close(self, timeout: float | None = None) -> None:
        self._q.put(None)
        self._thread.join(timeout)
