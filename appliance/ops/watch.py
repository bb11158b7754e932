"""Watching the recorder from outside it: "the recorder is not answering" as an alarm.

The web service (and anything else long-running beside the recorder) asks
the recorder's live socket every ``check_s`` seconds. A recorder silent for
``silent_s`` raises ``recorder_not_answering`` (critical), which goes on the
ledger and out through every delivery path like any alarm; the first answer
clears it. The grace period keeps a restart (a few seconds) from paging
anyone; a status page request counts as one more observation, never as a
shorter grace.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from appliance.ops.alarms import AlarmCode, AlarmRegistry

log = logging.getLogger(__name__)


class RecorderWatch:
    def __init__(self, registry: AlarmRegistry, probe: Callable[[], bool],
                 monotonic: Callable[[], float], *, silent_s: float = 20.0,
                 check_s: float = 5.0, noticed_by: str = "web") -> None:
        if not 0 <= silent_s <= 3600 or not 0.2 <= check_s <= 600:
            raise ValueError("recorder watch: silent_s 0–3600, check_s 0.2–600")
        self.registry = registry
        self.probe = probe
        self.monotonic = monotonic
        self.silent_s = silent_s
        self.check_s = check_s
        self.noticed_by = noticed_by
        self._silent_since: float | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def observe(self, answering: bool) -> None:
        """One observation (the thread's probe, or a status page's)."""
        with self._lock:
            now = self.monotonic()
            if answering:
                self._silent_since = None
                raise_it = False
            else:
                if self._silent_since is None:
                    self._silent_since = now
                raise_it = now - self._silent_since >= self.silent_s
            silent_for = 0.0 if self._silent_since is None else now - self._silent_since
        if answering:
            self.registry.clear(AlarmCode.RECORDER_NOT_ANSWERING)
        elif raise_it:
            self.registry.raise_(AlarmCode.RECORDER_NOT_ANSWERING, "",
                                 f"{self.noticed_by} が検知: {silent_for:.0f} 秒応答なし / "
                                 f"noticed by {self.noticed_by}: silent for {silent_for:.0f} s")

    def check(self) -> bool:
        answering = self.probe()
        self.observe(answering)
        return answering

    def start(self) -> "RecorderWatch":
        self._thread = threading.Thread(target=self._run, name="recorder-watch", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while True:
            try:
                self.check()
            except Exception:                 # noqa: BLE001 — the watch outlives one bad check
                log.exception("recorder watch failed")
            if self._stop.wait(self.check_s):
                return

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
