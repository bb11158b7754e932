"""The clock's state from chrony, checked continuously (issue 16 item 5).

``chronyc -c tracking`` (chrony's own client, CSV output: reference id and
name, stratum, reference time, system-time offset, last offset, RMS offset,
frequency, residual frequency, skew, root delay, root dispersion, update
interval, leap status) is read by the recorder's monitor every
``check_every_s``:

- not synchronised (leap status ``Not synchronised`` or no reference):
  recordings started from that moment are flagged (``calls.clock_unsynced``,
  set when the row is written at the call's start); after
  ``unsynced_alarm_s`` the ``clock_unsynced`` alarm is raised;
- |offset| beyond ``max_offset_ms`` → ``clock_offset``;
- a step of the system clock (the wall clock moved against the monotonic
  clock by more than ``step_s`` between two checks) → the ``clock_stepped``
  event alarm and a 時刻 entry on the ledger with the old and the new time.
  chrony steps the clock itself only under ``makestep``; a person may with
  ``time set``; either way it lands here.

An unreadable chronyc (not installed, chronyd down) is "unknown": it
neither raises nor clears, and recordings are not flagged.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from appliance.errors import ConfigError
from appliance.governance.ledger import EntryKind, Ledger
from appliance.ops.alarms import AlarmCode, AlarmRegistry
from appliance.store.catalog import to_local_text, to_utc_text

log = logging.getLogger(__name__)

Runner = Callable[[Sequence[str]], subprocess.CompletedProcess]


@dataclass(frozen=True)
class ClockSettings:
    chronyc: str = "/usr/bin/chronyc"
    host: str | None = None              # chronyc -h (default: its own socket, then 127.0.0.1)
    port: int | None = None              # chronyc -p
    unsynced_alarm_s: float = 600.0
    max_offset_ms: float = 500.0
    step_s: float = 2.0

    @classmethod
    def from_config(cls, table: dict | None) -> "ClockSettings":
        table = dict(table or {})
        unknown = set(table) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"[clock] 不明なキー / unknown keys: {', '.join(sorted(unknown))}")
        try:
            s = cls(**table)
        except TypeError as exc:
            raise ConfigError(f"[clock] {exc}") from None
        if s.unsynced_alarm_s < 0 or s.max_offset_ms <= 0 or s.step_s <= 0:
            raise ConfigError("[clock] unsynced_alarm_s ≥ 0, max_offset_ms > 0, step_s > 0")
        return s

    def argv(self) -> list[str]:
        argv = [self.chronyc]
        if self.host:
            argv += ["-h", self.host]
        if self.port:
            argv += ["-p", str(self.port)]
        return [*argv, "-c", "-n", "tracking"]


@dataclass(frozen=True)
class Tracking:
    reference: str
    stratum: int
    offset_s: float          # system time against chrony's reference (either sign)
    leap: str

    @property
    def synchronised(self) -> bool:
        return self.leap != "Not synchronised" and self.reference not in ("", "00000000")


def parse_tracking(csv_line: str) -> Tracking | None:
    """One line of ``chronyc -c tracking``; None when it is not that."""
    fields = csv_line.strip().split(",")
    if len(fields) < 14:
        return None
    try:
        return Tracking(fields[0], int(fields[2]), float(fields[4]), fields[13])
    except ValueError:
        return None


def read_tracking(settings: ClockSettings, runner: Runner) -> Tracking | None:
    try:
        r = runner(settings.argv())
    except (OSError, subprocess.SubprocessError):
        return None
    if r.returncode != 0:
        return None
    lines = (r.stdout or "").strip().splitlines()
    return parse_tracking(lines[-1]) if lines else None


class ClockWatch:
    def __init__(self, registry: AlarmRegistry, settings: ClockSettings,
                 read: Callable[[], Tracking | None], now: Callable[[], datetime],
                 monotonic: Callable[[], float], recorder=None) -> None:
        self.registry = registry
        self.settings = settings
        self.read = read
        self.now = now
        self.monotonic = monotonic
        self.recorder = recorder
        self.state: Tracking | None = None
        self._unsynced_since: float | None = None
        self._last: tuple[datetime, float] | None = None

    @property
    def synchronised(self) -> bool | None:
        return None if self.state is None else self.state.synchronised

    def check(self) -> Tracking | None:
        self._check_step()
        t = self.read()
        self.state = t
        if t is None:
            return None                   # unknown: neither raise nor clear
        if self.recorder is not None:
            # a plain attribute read by the capture thread when a call's row is written
            self.recorder.clock_unsynced = not t.synchronised
        if not t.synchronised:
            now = self.monotonic()
            if self._unsynced_since is None:
                self._unsynced_since = now
            if now - self._unsynced_since >= self.settings.unsynced_alarm_s:
                self.registry.raise_(AlarmCode.CLOCK_UNSYNCED, "",
                                     f"未同期 {(now - self._unsynced_since) / 60:.0f} 分: この間の"
                                     "録音に印を付けます / recordings are flagged")
        else:
            self._unsynced_since = None
            self.registry.clear(AlarmCode.CLOCK_UNSYNCED)
        off_ms = abs(t.offset_s) * 1000
        if t.synchronised and off_ms > self.settings.max_offset_ms:
            self.registry.raise_(AlarmCode.CLOCK_OFFSET, "",
                                 f"ずれ {off_ms:.0f} ms (上限 {self.settings.max_offset_ms:.0f} ms) / "
                                 f"offset {off_ms:.0f} ms")
        elif t.synchronised:
            self.registry.clear(AlarmCode.CLOCK_OFFSET)
        return t

    def _check_step(self) -> None:
        wall, mono = self.now(), self.monotonic()
        last, self._last = self._last, (wall, mono)
        if last is None:
            return
        expected = last[0] + timedelta(seconds=mono - last[1])
        step = (wall - expected).total_seconds()
        if abs(step) <= self.settings.step_s:
            return
        detail = {"event": "step", "old": to_local_text(to_utc_text(expected)),
                  "new": to_local_text(to_utc_text(wall)), "step_s": round(step, 3)}
        with self.registry._lock:        # the registry's connection, shared with its thread
            Ledger(self.registry.catalog).append(EntryKind.CLOCK, wall, actor="recorder",
                                                 detail=detail)
        way = "進み" if step > 0 else "戻り"
        self.registry.event(AlarmCode.CLOCK_STEPPED, "",
                            f"時刻が {abs(step):.1f} 秒{way}ました ({detail['old']} → "
                            f"{detail['new']}) / clock stepped by {step:+.1f} s")
        log.warning("clock stepped by %+.3f s", step)
