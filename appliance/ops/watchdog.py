"""systemd's notify protocol and a watchdog that only pings while capture is alive.

``appliance-recorder.service`` is ``Type=notify`` with ``WatchdogSec=``:
systemd waits for ``READY=1`` and restarts the recorder when ``WATCHDOG=1``
stops arriving. The pings come from their own thread, but only when the
capture loop has completed periods since the last ping: a capture thread
that hangs (a driver read that never returns, a deadlock) stops the pings,
so systemd kills and restarts the recorder, whose start closes the call
that was in progress as ``truncated`` and keeps every completed one.

Written by hand rather than with a library: the protocol is one datagram of
``KEY=VALUE`` lines to the AF_UNIX socket named in ``$NOTIFY_SOCKET`` (sd_notify(3)),
a dozen lines; python-systemd needs libsystemd headers to build and the
pure-Python ``sdnotify`` package has not been released since 2017.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


def sd_notify(message: str, socket_path: str | None) -> bool:
    """Send one notification; False when not run by systemd (no socket) or it failed."""
    if not socket_path:
        return False
    addr = "\0" + socket_path[1:] if socket_path.startswith("@") else socket_path
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.connect(addr)
            s.sendall(message.encode("utf-8"))
        return True
    except OSError as exc:        # systemd gone or socket removed: never fatal to capture
        log.warning("sd_notify failed: %s", exc)
        return False


def watchdog_interval(env: Mapping[str, str], pid: int | None = None) -> float | None:
    """Half of ``$WATCHDOG_USEC`` in seconds (sd_watchdog_enabled(3)), or None when off."""
    usec = env.get("WATCHDOG_USEC")
    if not usec:
        return None
    owner = env.get("WATCHDOG_PID")
    if owner and owner.isdigit() and int(owner) != (os.getpid() if pid is None else pid):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 2e6 if value > 0 else None


class Notifier:
    """The recorder's messages to systemd; a no-op outside systemd."""

    def __init__(self, socket_path: str | None) -> None:
        self.socket_path = socket_path
        self.sent: list[str] = []           # what was sent, for the status command and tests

    def _send(self, msg: str) -> bool:
        ok = sd_notify(msg, self.socket_path)
        if ok:
            self.sent.append(msg)
            del self.sent[:-50]
        return ok

    def ready(self, status: str = "") -> bool:
        return self._send("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def status(self, text: str) -> bool:
        return self._send(f"STATUS={text}")

    def watchdog(self) -> bool:
        return self._send("WATCHDOG=1")

    def stopping(self) -> bool:
        return self._send("STOPPING=1")


class CaptureWatchdog:
    """Pings ``WATCHDOG=1`` every ``interval_s`` while ``progress()`` keeps changing.

    ``progress`` is the capture loop's period counter (``engine.stats.periods``):
    read from this thread, written only by the capture thread, so a hung capture
    thread is seen as a counter that no longer moves.
    """

    def __init__(self, notifier: Notifier, progress: Callable[[], int], interval_s: float,
                 on_stall: Callable[[], object] | None = None,
                 on_resume: Callable[[], object] | None = None) -> None:
        if not 0.01 <= interval_s <= 3600:
            raise ValueError("watchdog interval out of range")
        self.notifier = notifier
        # whoever notices raises the alarm: the watchdog sees a hung capture loop first
        self.on_stall = on_stall
        self.on_resume = on_resume
        self.progress = progress
        self.interval = interval_s
        self.pings = 0
        self.stalled = False
        self._last = progress()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="appliance-watchdog", daemon=True)

    def start(self) -> "CaptureWatchdog":
        self._thread.start()
        return self

    def check(self) -> bool:
        """One tick: ping if capture progressed since the last tick; True if it pinged."""
        now = self.progress()
        if now != self._last:
            self._last = now
            if self.stalled:
                log.warning("capture loop running again")
                self.stalled = False
                self._call(self.on_resume)
            self.notifier.watchdog()
            self.pings += 1
            return True
        if not self.stalled:
            self.stalled = True
            log.error("capture loop made no progress for %.1f s: watchdog pings withheld",
                      self.interval)
            self.notifier.status("取込み停止 / capture loop stalled")
            self._call(self.on_stall)
        return False

    @staticmethod
    def _call(fn) -> None:
        if fn is None:
            return
        try:
            fn()
        except Exception:            # noqa: BLE001 — an alarm that fails to land must not stop pings
            log.exception("watchdog alarm callback failed")

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.check()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
