"""Alarms (警報): raised when a cause is seen, cleared when it goes.

The registry keeps them in the catalog's ``alarms`` table (migration 4), so
every process sees the same list: the recorder raises most of them, the
console and the staff web read them, and they survive a restart. Each
transition is logged once (the journal, at technician level: never a
number) and the fault LED shows whether any alarm is active, whichever
process raised it (the recorder's monitor re-syncs the LED periodically).

A (code, subject) pair is active at most once (a partial unique index);
raising it again only counts and refreshes it. ``subject`` names the line
(``T1/1``) or device (``usb0``) concerned, or '' for the whole appliance.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from appliance.ops.leds import FaultLed, NullLed
from appliance.store.catalog import Catalog, to_local_text, to_utc_text

log = logging.getLogger("appliance.alarms")


class AlarmCode(StrEnum):
    LINE_DEAD = "line_dead"
    STUCK_OFFHOOK = "stuck_offhook"
    CAPTURE_OVERRUN = "capture_overrun"
    DEVICE_LOST = "device_lost"
    DISK_NEARLY_FULL = "disk_nearly_full"
    RETENTION_AT_RISK = "retention_at_risk"
    CLOCK_UNSYNCED = "clock_unsynced"
    NOTICE_NOT_HEARD = "notice_not_heard"


@dataclass(frozen=True)
class AlarmInfo:
    ja: str          # what the console, the web and the journal call it
    en: str
    cause: str       # what raises it
    cleared: str     # what clears it


ALARMS: dict[AlarmCode, AlarmInfo] = {
    AlarmCode.LINE_DEAD: AlarmInfo(
        "回線無信号", "line dead",
        "no loop change, ring or noise floor (analog) / no D-channel frame (ISDN) for "
        "[alarms] line_dead_s",
        "any sign of life on the line: noise floor, ring, loop change, D-channel frame"),
    AlarmCode.STUCK_OFFHOOK: AlarmInfo(
        "オフフック継続", "stuck off-hook",
        "loop current without a break for [alarms] stuck_offhook_s",
        "the loop opens (hang-up)"),
    AlarmCode.CAPTURE_OVERRUN: AlarmInfo(
        "取込み欠落", "capture overruns",
        "frames lost because the writer (disk) fell behind, malformed periods from the "
        "interface, or interface xruns",
        "no new loss for [alarms] overrun_clear_s"),
    AlarmCode.DEVICE_LOST: AlarmInfo(
        "インタフェース切断", "device lost",
        "the telephony interface vanished (USB unplugged, reset, power)",
        "the interface is back"),
    AlarmCode.DISK_NEARLY_FULL: AlarmInfo(
        "空き容量わずか", "disk nearly full",
        "free space below [alarms] disk_warn_mb",
        "free space back above [alarms] disk_warn_mb"),
    AlarmCode.RETENTION_AT_RISK: AlarmInfo(
        "保管期間を守れない恐れ", "retention at risk",
        "free space below [retention] min_free_mb: the sweep erases records before their "
        "period ends",
        "free space back above [retention] min_free_mb"),
    AlarmCode.CLOCK_UNSYNCED: AlarmInfo(
        "時刻未同期", "clock not synchronised",
        "timedatectl reports NTPSynchronized=no; recordings made meanwhile are flagged "
        "(calls.clock_unsynced)",
        "NTP synchronised again"),
    AlarmCode.NOTICE_NOT_HEARD: AlarmInfo(
        "音声案内未確認", "notice not heard",
        "an answered incoming call whose notice was not heard on the line",
        "the next incoming call on that line, or a console notice test, hears it"),
}


def label(code: str) -> str:
    info = ALARMS.get(code)   # type: ignore[call-overload]
    return f"{info.ja} / {info.en}" if info else code


@dataclass(frozen=True)
class ActiveAlarm:
    code: str
    subject: str
    raised_at: str       # Japan time, ISO 8601
    last_at: str
    count: int
    detail: str

    @property
    def label(self) -> str:
        return label(self.code)

    def as_dict(self) -> dict:
        return {"code": self.code, "label": self.label, "subject": self.subject,
                "raised_at": self.raised_at, "last_at": self.last_at, "count": self.count,
                "detail": self.detail}


def read_alarms(catalog: Catalog) -> list[ActiveAlarm]:
    """The active alarms, oldest first: what the console and the staff web show."""
    return [ActiveAlarm(r[0], r[1], to_local_text(r[2]), to_local_text(r[3]), r[4], r[5])
            for r in catalog.conn.execute(
                "SELECT code, subject, raised_at, last_at, count, detail FROM alarms"
                " WHERE cleared_at IS NULL ORDER BY raised_at, id")]


def alarm_history(catalog: Catalog, limit: int = 50) -> list[dict]:
    """Raised and cleared alarms, newest first (the technician-level log)."""
    return [{"code": r[0], "label": label(r[0]), "subject": r[1],
             "raised_at": to_local_text(r[2]), "cleared_at": to_local_text(r[3]),
             "count": r[4], "detail": r[5]}
            for r in catalog.conn.execute(
                "SELECT code, subject, raised_at, cleared_at, count, detail FROM alarms"
                " ORDER BY id DESC LIMIT ?", (max(1, min(limit, 1000)),))]


class AlarmRegistry:
    """Raise and clear alarms in the catalog; thread-safe; drives the fault LED."""

    def __init__(self, catalog: Catalog, now: Callable[[], datetime],
                 led: FaultLed | None = None) -> None:
        self.catalog = catalog
        self.now = now
        self.led = led or NullLed()
        self._lock = threading.Lock()

    def raise_(self, code: AlarmCode, subject: str = "", detail: str = "") -> bool:
        """Raise (or refresh) an alarm; True when it was not active before."""
        code = AlarmCode(code)
        at = to_utc_text(self.now())
        with self._lock, self.catalog.transaction():
            cur = self.catalog.conn.execute(
                "UPDATE alarms SET last_at = ?, count = count + 1, detail = ?"
                " WHERE code = ? AND subject = ? AND cleared_at IS NULL",
                (at, detail, str(code), subject))
            new = cur.rowcount == 0
            if new:
                self.catalog.conn.execute(
                    "INSERT INTO alarms (code, subject, raised_at, last_at, detail)"
                    " VALUES (?, ?, ?, ?, ?)", (str(code), subject, at, at, detail))
        if new:
            log.error("警報 ALARM %s%s: %s %s", code, f" [{subject}]" if subject else "",
                      label(code), detail)
            self.sync_led()
        return new

    def clear(self, code: AlarmCode, subject: str | None = None) -> int:
        """Clear an alarm (every subject of ``code`` when ``subject`` is None); how many."""
        code = AlarmCode(code)
        at = to_utc_text(self.now())
        where, args = "code = ? AND cleared_at IS NULL", [str(code)]
        if subject is not None:
            where += " AND subject = ?"
            args.append(subject)
        with self._lock, self.catalog.transaction():
            subjects = [r[0] for r in self.catalog.conn.execute(
                f"SELECT subject FROM alarms WHERE {where}", args)]
            self.catalog.conn.execute(f"UPDATE alarms SET cleared_at = ? WHERE {where}",
                                      [at, *args])
        for s in subjects:
            log.warning("警報解除 alarm cleared %s%s: %s", code, f" [{s}]" if s else "",
                        label(code))
        if subjects:
            self.sync_led()
        return len(subjects)

    def is_active(self, code: AlarmCode, subject: str | None = None) -> bool:
        return any(a.code == code and (subject is None or a.subject == subject)
                   for a in self.active())

    def active(self) -> list[ActiveAlarm]:
        with self._lock:
            return read_alarms(self.catalog)

    def sync_led(self) -> None:
        """The fault LED is lit while any alarm is active (raised by any process)."""
        with self._lock:
            n = self.catalog.conn.execute(
                "SELECT COUNT(*) FROM alarms WHERE cleared_at IS NULL").fetchone()[0]
        self.led.set(n > 0)
