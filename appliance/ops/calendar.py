"""The city's calendar: when a trunk is expected to carry calls (開庁日・開庁時間).

A business day is a weekday that is not a Japanese public holiday (the
``holidays`` package's Japan calendar, substitute holidays 振替休日 and
citizens' holidays 国民の休日 included), not in 年末年始 (29 December to 3
January, the closing days of Japanese city offices' holiday ordinances —
松本市の休日を定める条例 among them) and not in ``closed_days``; or any day in
``open_days`` (an election Sunday). Business hours are ``business_hours``
on such a day, Japan time.

Why ``holidays``: a maintained package (monthly releases) whose Japan
calendar follows the 国民の祝日に関する法律 and its amendments, with the
moved holidays of a given year; a hand-kept list in the configuration would
be wrong the first year someone forgets it. ``closed_days`` and
``open_days`` cover what is the city's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

import holidays

from appliance.errors import ConfigError
from appliance.store.catalog import TOKYO

#: business seconds are counted over at most this many days (a bounded loop)
MAX_DAYS = 400


@dataclass(frozen=True)
class CityCalendar:
    start: time = time(8, 30)
    end: time = time(17, 15)
    year_end: bool = True                      # 12/29–1/3 closed (年末年始)
    closed_days: frozenset[date] = frozenset()
    open_days: frozenset[date] = frozenset()
    _holidays: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_config(cls, table: dict | None) -> "CityCalendar":
        t = dict(table or {})
        unknown = set(t) - {"business_hours", "year_end", "closed_days", "open_days"}
        if unknown:
            raise ConfigError(f"[calendar] 不明なキー / unknown keys: {', '.join(sorted(unknown))}")
        hours = str(t.get("business_hours", "08:30-17:15"))
        try:
            a, b = (time.fromisoformat(x.strip()) for x in hours.split("-"))
            days = {k: frozenset(date.fromisoformat(str(d)) for d in t.get(k, []))
                    for k in ("closed_days", "open_days")}
        except ValueError:
            raise ConfigError("[calendar] business_hours は HH:MM-HH:MM, closed_days/open_days は "
                              "YYYY-MM-DD の一覧 / business_hours HH:MM-HH:MM, days as dates") from None
        if not a < b:
            raise ConfigError("[calendar] business_hours: the start comes before the end")
        return cls(a, b, bool(t.get("year_end", True)), days["closed_days"], days["open_days"])

    def holiday_name(self, d: date) -> str | None:
        if d.year not in self._holidays:
            self._holidays[d.year] = holidays.country_holidays("JP", years=d.year, language="ja")
        return self._holidays[d.year].get(d)

    def is_business_day(self, d: date) -> bool:
        if d in self.open_days:
            return True
        if d in self.closed_days or d.weekday() >= 5:
            return False
        if self.year_end and ((d.month == 12 and d.day >= 29) or (d.month == 1 and d.day <= 3)):
            return False
        return self.holiday_name(d) is None

    def business_seconds(self, since: datetime, until: datetime) -> float:
        """Seconds of business hours between two times (bounded to MAX_DAYS days)."""
        a, b = since.astimezone(TOKYO), until.astimezone(TOKYO)
        if b <= a:
            return 0.0
        a = max(a, b - timedelta(days=MAX_DAYS))
        total, day = 0.0, a.date()
        while day <= b.date():
            if self.is_business_day(day):
                open_at = datetime.combine(day, self.start, TOKYO)
                close_at = datetime.combine(day, self.end, TOKYO)
                lo, hi = max(a, open_at), min(b, close_at)
                if hi > lo:
                    total += (hi - lo).total_seconds()
            day += timedelta(days=1)
        return total
