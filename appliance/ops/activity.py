"""Per-trunk activity alarms: a trunk without calls in business hours, a call too long.

Configured per trunk (``[[alarms.trunk]]``) with the city's calendar
(``[calendar]``, appliance/ops/calendar.py):

- ``no_call_hours``: no call seized on the trunk for this many hours *of
  business hours* → ``no_calls`` (subject the trunk). A silent weekend,
  holiday or 年末年始 counts nothing, so Monday morning raises nothing. The
  next call on the trunk clears it.
- ``max_call_minutes``: a call on any channel of the trunk lasting longer
  → ``call_too_long`` (subject the line); cleared when it ends.
- ``stuck_offhook_minutes``: the trunk's own limit for ``stuck_offhook``
  (the monitor applies it; default ``[alarms] stuck_offhook_s``).

Checked by the recorder's monitor thread; calls are seen through the
engine's reports (any report of a call or seizure on the trunk).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from appliance.errors import ConfigError
from appliance.ops.alarms import AlarmCode, AlarmRegistry
from appliance.ops.calendar import CityCalendar

_ACTIVITY = ("CallStarted", "NotRecorded", "CallEnded")


@dataclass(frozen=True)
class TrunkRule:
    trunk: str
    no_call_hours: float | None = None
    max_call_minutes: float | None = None
    stuck_offhook_minutes: float | None = None


def trunk_rules(table: dict | None) -> dict[str, TrunkRule]:
    raw = (table or {}).get("trunk", [])
    if not isinstance(raw, list) or not all(isinstance(x, dict) for x in raw):
        raise ConfigError("[[alarms.trunk]] の形式 / use [[alarms.trunk]] tables")
    rules = {}
    for i, t in enumerate(raw):
        unknown = set(t) - set(TrunkRule.__dataclass_fields__)
        if unknown or not isinstance(t.get("trunk"), str) or not t["trunk"]:
            raise ConfigError(f"[[alarms.trunk]] #{i + 1}: trunk (a name) and no_call_hours, "
                              "max_call_minutes, stuck_offhook_minutes only")
        for k in ("no_call_hours", "max_call_minutes", "stuck_offhook_minutes"):
            v = t.get(k)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                                  or v <= 0):
                raise ConfigError(f"[[alarms.trunk]] #{i + 1}: {k} must be a positive number")
        rules[t["trunk"]] = TrunkRule(**t)
    return rules


class ActivityWatch:
    def __init__(self, registry: AlarmRegistry, calendar: CityCalendar,
                 rules: dict[str, TrunkRule], now: Callable[[], datetime],
                 last_calls: dict[str, datetime] | None = None) -> None:
        self.registry = registry
        self.calendar = calendar
        self.rules = rules
        self.now = now
        started = now()
        # counted from the last call in the catalog, or from this start
        self.last_call = {t: (last_calls or {}).get(t) or started for t in rules}
        self._lock = threading.Lock()

    def stuck_offhook_s(self, trunk: str) -> float | None:
        rule = self.rules.get(trunk)
        return rule.stuck_offhook_minutes * 60 if rule and rule.stuck_offhook_minutes else None

    def on_report(self, r) -> None:
        trunk = getattr(r, "trunk", None)
        if type(r).__name__ not in _ACTIVITY or trunk not in self.rules:
            return
        with self._lock:
            self.last_call[trunk] = self.now()
        self.registry.clear(AlarmCode.NO_CALLS, trunk)

    def check(self, lines: list[dict]) -> None:
        now = self.now()
        for trunk, rule in self.rules.items():
            if rule.no_call_hours:
                with self._lock:
                    since = self.last_call[trunk]
                quiet = self.calendar.business_seconds(since, now)
                if quiet >= rule.no_call_hours * 3600:
                    self.registry.raise_(
                        AlarmCode.NO_CALLS, trunk,
                        f"開庁時間内 {quiet / 3600:.1f} 時間 通話なし / no call for "
                        f"{quiet / 3600:.1f} business hours")
        for ln in lines:
            rule = self.rules.get(ln["trunk"])
            if rule is None or not rule.max_call_minutes:
                continue
            subject = f"{ln['trunk']}/{ln['channel']}"
            dur = ln.get("duration_s")
            if ln.get("direction") and dur is not None and dur > rule.max_call_minutes * 60:
                self.registry.raise_(AlarmCode.CALL_TOO_LONG, subject,
                                     f"通話 {dur / 60:.0f} 分 (上限 {rule.max_call_minutes:g} 分) / "
                                     f"call of {dur / 60:.0f} min")
            else:
                self.registry.clear(AlarmCode.CALL_TOO_LONG, subject)
