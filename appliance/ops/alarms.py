"""Alarms (警報) as records: code, severity, raised and cleared, acknowledged.

The registry keeps them in the catalog's ``alarms`` table (migrations 4 and
5), so every process sees the same list: the recorder raises most of them,
the web service raises "the recorder is not answering" when it notices it,
the console and the web read and acknowledge them, and they survive a
restart. Every transition — raised, cleared, acknowledged (who, when, a
note) — is, in one transaction:

- a row change in ``alarms``;
- an entry of the 通話記録管理簿 (kind ``alarm``);
- an event in ``alarm_events``, the durable outbox from which
  :mod:`appliance.ops.delivery` sends it to syslog, mail and SNMP.

A (code, subject) pair is active at most once (a partial unique index);
raising it again only counts and refreshes it (no new ledger entry or
delivery). ``subject`` names the line (``T1/1``), trunk (``T1``) or device
(``usb0``) concerned, or '' for the whole appliance. Alarm text is
technician-level: it never carries a telephone number, and :func:`redact`
masks any long run of digits as a last guard before it is stored.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from appliance.errors import ApplianceError
from appliance.governance.ledger import EntryKind, Ledger
from appliance.logtext import redact  # the last guard: no run of digits leaves as text
from appliance.ops.leds import FaultLed, NullLed
from appliance.store.catalog import Catalog, to_local_text, to_utc_text

log = logging.getLogger("appliance.alarms")


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def ja(self) -> str:
        return SEVERITY_JA[self]


_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.ERROR: 2, Severity.CRITICAL: 3}
SEVERITY_JA = {Severity.INFO: "情報", Severity.WARNING: "注意", Severity.ERROR: "異常",
               Severity.CRITICAL: "重大"}


class AlarmCode(StrEnum):
    LINE_DEAD = "line_dead"
    STUCK_OFFHOOK = "stuck_offhook"
    CAPTURE_OVERRUN = "capture_overrun"
    DEVICE_LOST = "device_lost"
    DISK_NEARLY_FULL = "disk_nearly_full"
    RETENTION_AT_RISK = "retention_at_risk"
    CLOCK_UNSYNCED = "clock_unsynced"
    NOTICE_NOT_HEARD = "notice_not_heard"
    RECORDER_NOT_ANSWERING = "recorder_not_answering"
    CAPTURE_STALLED = "capture_stalled"
    NO_CALLS = "no_calls"
    CALL_TOO_LONG = "call_too_long"
    ON_BATTERY = "on_battery"
    LOW_BATTERY = "low_battery"
    UPS_UNREACHABLE = "ups_unreachable"
    CLOCK_OFFSET = "clock_offset"
    CLOCK_STEPPED = "clock_stepped"
    DELIVERY_FAILING = "delivery_failing"
    ALARM_TEST = "alarm_test"
    ARCHIVE_KEY_MISMATCH = "archive_key_mismatch"
    TIMESTAMP_FAILED = "timestamp_failed"
    EVIDENCE_UNSIGNED = "evidence_unsigned"
    # the city archive (appliance.replication on a site, appliance.central at the centre)
    OUTBOX_STALLED = "outbox_stalled"
    SITE_SILENT = "site_silent"
    UPLOAD_REFUSED = "upload_refused"
    ARCHIVE_MISMATCH = "archive_mismatch"


@dataclass(frozen=True)
class AlarmInfo:
    ja: str          # what the console, the web, the mail and the journal call it
    en: str
    severity: Severity
    cause: str       # what raises it
    cleared: str     # what clears it


S = Severity
ALARMS: dict[AlarmCode, AlarmInfo] = {
    AlarmCode.LINE_DEAD: AlarmInfo(
        "回線無信号", "line dead", S.ERROR,
        "no loop change, ring or noise floor (analog) / no D-channel frame (ISDN) for "
        "[alarms] line_dead_s",
        "any sign of life on the line: noise floor, ring, loop change, D-channel frame"),
    AlarmCode.STUCK_OFFHOOK: AlarmInfo(
        "オフフック継続", "stuck off-hook", S.WARNING,
        "loop current without a break for [alarms] stuck_offhook_s (or the trunk's own "
        "stuck_offhook_minutes)",
        "the loop opens (hang-up)"),
    AlarmCode.CAPTURE_OVERRUN: AlarmInfo(
        "取込み欠落", "capture overruns", S.ERROR,
        "frames lost because the writer (disk) fell behind, malformed periods from the "
        "interface, or interface xruns",
        "no new loss for [alarms] overrun_clear_s"),
    AlarmCode.DEVICE_LOST: AlarmInfo(
        "インタフェース切断", "device lost", S.CRITICAL,
        "the telephony interface vanished (USB unplugged, reset, power)",
        "the interface is back"),
    AlarmCode.DISK_NEARLY_FULL: AlarmInfo(
        "空き容量わずか", "disk nearly full", S.WARNING,
        "free space below [alarms] disk_warn_mb",
        "free space back above [alarms] disk_warn_mb"),
    AlarmCode.RETENTION_AT_RISK: AlarmInfo(
        "保管期間を守れない恐れ", "retention at risk", S.ERROR,
        "free space below [retention] min_free_mb: the sweep erases records before their "
        "period ends",
        "free space back above [retention] min_free_mb"),
    AlarmCode.CLOCK_UNSYNCED: AlarmInfo(
        "時刻未同期", "clock not synchronised", S.WARNING,
        "chrony reports the clock unsynchronised for longer than [clock] unsynced_alarm_s; "
        "recordings started meanwhile are flagged (calls.clock_unsynced)",
        "synchronised again"),
    AlarmCode.NOTICE_NOT_HEARD: AlarmInfo(
        "音声案内未確認", "notice not heard", S.ERROR,
        "an answered incoming call whose notice was not heard on the line",
        "the next incoming call on that line, or a console notice test, hears it"),
    AlarmCode.RECORDER_NOT_ANSWERING: AlarmInfo(
        "録音装置の応答なし", "recorder not answering", S.CRITICAL,
        "the recorder's live socket did not answer for [alarms] recorder_silent_s "
        "(noticed by the web service or the console)",
        "the recorder answers again (or starts)"),
    AlarmCode.CAPTURE_STALLED: AlarmInfo(
        "取込み停止", "capture stalled", S.CRITICAL,
        "the capture loop completed no period for a watchdog interval (the recorder's "
        "watchdog); systemd restarts the recorder",
        "the capture loop runs again"),
    AlarmCode.NO_CALLS: AlarmInfo(
        "通話なし", "no calls on a trunk", S.WARNING,
        "no call on the trunk for its no_call_hours of business hours (the city's calendar)",
        "the next call on the trunk"),
    AlarmCode.CALL_TOO_LONG: AlarmInfo(
        "長時間通話", "call longer than the maximum", S.WARNING,
        "a call on the trunk lasts longer than its max_call_minutes",
        "the call ends"),
    AlarmCode.ON_BATTERY: AlarmInfo(
        "停電 (バッテリー運転)", "on battery", S.ERROR,
        "the UPS reports mains power lost (NUT status OB)",
        "mains power is back (OL)"),
    AlarmCode.LOW_BATTERY: AlarmInfo(
        "バッテリー残量低下 (停止)", "low battery: shutting down", S.CRITICAL,
        "the UPS reports low battery (NUT status LB): every call is closed, the ledger "
        "notes it and the system shuts down",
        "the appliance runs on mains power again"),
    AlarmCode.UPS_UNREACHABLE: AlarmInfo(
        "UPS 監視不能", "UPS not reachable", S.WARNING,
        "upsd does not answer for the configured UPS",
        "upsd answers again"),
    AlarmCode.CLOCK_OFFSET: AlarmInfo(
        "時刻のずれ", "clock offset beyond the bound", S.WARNING,
        "chrony's offset from its reference exceeds [clock] max_offset_ms",
        "the offset is within the bound again"),
    AlarmCode.CLOCK_STEPPED: AlarmInfo(
        "時刻の飛び", "clock stepped", S.WARNING,
        "the system clock jumped by more than [clock] step_s against the monotonic clock "
        "(old and new time on the ledger)",
        "at once (an event): acknowledge it"),
    AlarmCode.DELIVERY_FAILING: AlarmInfo(
        "警報送信不能", "alarm delivery failing", S.ERROR,
        "a delivery path (syslog, mail, SNMP) has failed for [alarms] delivery_alarm_s; its "
        "alarms wait in the outbox",
        "the path delivers again (the waiting alarms go out in order)"),
    AlarmCode.ALARM_TEST: AlarmInfo(
        "試験警報", "test alarm", S.INFO,
        "the console's 'alarm test'", "at once (a test)"),
    AlarmCode.ARCHIVE_KEY_MISMATCH: AlarmInfo(
        "保管鍵の不一致", "archive key mismatch", S.CRITICAL,
        "keys/archive.pub differs from the archive key pinned in the ledger at init (a swap): "
        "the recorder seals to the pinned key and refuses the file's",
        "keys/archive.pub matches the pinned key again at the recorder's start"),
    AlarmCode.TIMESTAMP_FAILED: AlarmInfo(
        "時刻認証の失敗", "time-stamping failed", S.WARNING,
        "the time-stamping authority ([timestamp] url) did not answer or refused: ledger "
        "entries keep flowing, the next token covers them",
        "a token is obtained again"),
    AlarmCode.EVIDENCE_UNSIGNED: AlarmInfo(
        "装置署名の失敗", "capture statements not signed", S.ERROR,
        "the device key (TPM or key file) failed to sign a capture statement: recording goes "
        "on, but what was written meanwhile is not vouched for by the device",
        "the next statement is signed"),
    AlarmCode.OUTBOX_STALLED: AlarmInfo(
        "中央保管への送信滞留", "archive upload stalled", S.ERROR,
        "the oldest item of the outbox waits longer than [central] outbox_alarm_s (centre "
        "unreachable, refusing, or the link is too slow)",
        "the outbox's oldest item is younger than the threshold again"),
    AlarmCode.SITE_SILENT: AlarmInfo(
        "拠点からの送信途絶", "site silent", S.ERROR,
        "(centre) an enrolled site has not uploaded for [central] site_silent_s",
        "the site uploads again"),
    AlarmCode.UPLOAD_REFUSED: AlarmInfo(
        "送信拒否", "upload refused", S.WARNING,
        "(centre) a connection or upload was refused: wrong or missing certificate, another "
        "site's certificate, replay, reordering, broken chain (on the ledger)",
        "cleared by the technician after checking (the ledger keeps the record)"),
    AlarmCode.ARCHIVE_MISMATCH: AlarmInfo(
        "中央保管の不一致", "archive mismatch", S.ERROR,
        "(centre) a file that arrived complete does not have the SHA-256 the site recorded",
        "cleared by the technician after checking (the call stays unconfirmed)"),
}
del S


def label(code: str) -> str:
    info = ALARMS.get(code)   # type: ignore[call-overload]
    return f"{info.ja} / {info.en}" if info else code


def severity_of(code: str) -> Severity:
    info = ALARMS.get(code)   # type: ignore[call-overload]
    return info.severity if info else Severity.ERROR


class AlarmError(ApplianceError, ValueError):
    """An alarm command that cannot be carried out (unknown code, nothing to acknowledge)."""


@dataclass(frozen=True)
class AlarmRecord:
    id: int
    code: str
    subject: str
    severity: str
    raised_at: str       # Japan time, ISO 8601
    last_at: str
    cleared_at: str | None
    count: int
    detail: str
    acknowledged_at: str | None = None
    acknowledged_by: str | None = None
    ack_note: str | None = None

    @property
    def label(self) -> str:
        return label(self.code)

    @property
    def active(self) -> bool:
        return self.cleared_at is None

    @property
    def text(self) -> str:
        where = f" [{self.subject}]" if self.subject else ""
        return f"{self.label}{where}" + (f": {self.detail}" if self.detail else "")

    def as_dict(self) -> dict:
        """The contract of ``appliance alarms --json`` (and more keys besides)."""
        return {"code": self.code, "severity": self.severity, "raised_at": self.raised_at,
                "cleared_at": self.cleared_at, "acknowledged_by": self.acknowledged_by,
                "text": self.text,
                "id": self.id, "label": self.label, "subject": self.subject,
                "severity_ja": SEVERITY_JA.get(self.severity, self.severity),  # type: ignore
                "last_at": self.last_at, "count": self.count, "detail": self.detail,
                "acknowledged_at": self.acknowledged_at, "ack_note": self.ack_note}


#: kept for callers of the first registry
ActiveAlarm = AlarmRecord

_COLUMNS = ("id, code, subject, severity, raised_at, last_at, cleared_at, count, detail,"
            " acknowledged_at, acknowledged_by, ack_note")
# raised first; among them the unacknowledged, the most severe, the oldest first
_ORDER = ("(cleared_at IS NOT NULL), (acknowledged_at IS NOT NULL),"
          " CASE severity WHEN 'critical' THEN 0 WHEN 'error' THEN 1 WHEN 'warning' THEN 2"
          " ELSE 3 END")


def _record(r) -> AlarmRecord:
    return AlarmRecord(r[0], r[1], r[2], r[3], to_local_text(r[4]), to_local_text(r[5]),
                       to_local_text(r[6]), r[7], r[8], to_local_text(r[9]), r[10], r[11])


def read_alarms(catalog: Catalog) -> list[AlarmRecord]:
    """The raised (active) alarms: unacknowledged, most severe, oldest first."""
    return [_record(r) for r in catalog.conn.execute(
        f"SELECT {_COLUMNS} FROM alarms WHERE cleared_at IS NULL"
        f" ORDER BY {_ORDER}, raised_at, id")]


def list_alarms(catalog: Catalog, *, include_cleared: bool = False,
                limit: int = 200) -> list[AlarmRecord]:
    """Raised alarms first; with ``include_cleared`` the cleared ones after, newest first."""
    active = read_alarms(catalog)
    if not include_cleared:
        return active
    cleared = [_record(r) for r in catalog.conn.execute(
        f"SELECT {_COLUMNS} FROM alarms WHERE cleared_at IS NOT NULL"
        " ORDER BY cleared_at DESC, id DESC LIMIT ?", (max(1, min(limit, 5000)),))]
    return active + cleared


def alarm_history(catalog: Catalog, limit: int = 50) -> list[dict]:
    """Raised and cleared alarms, newest first (the technician-level log)."""
    return [{"code": r[1], "label": label(r[1]), "subject": r[2], "severity": r[3],
             "raised_at": to_local_text(r[4]), "cleared_at": to_local_text(r[6]),
             "count": r[7], "detail": r[8], "acknowledged_by": r[10]}
            for r in catalog.conn.execute(
                f"SELECT {_COLUMNS} FROM alarms ORDER BY id DESC LIMIT ?",
                (max(1, min(limit, 1000)),))]


def add_event(catalog: Catalog, event: str, at: datetime, code: str, severity: str,
              subject: str, text: str, alarm_id: int | None = None) -> int:
    """Append one event to the outbox (inside the caller's transaction)."""
    cur = catalog.conn.execute(
        "INSERT INTO alarm_events (alarm_id, event, at, code, severity, subject, text)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (alarm_id, event, to_utc_text(at), code, severity, subject, redact(text)))
    return int(cur.lastrowid)


class AlarmRegistry:
    """Raise, clear and acknowledge alarms in the catalog; thread-safe; drives the fault LED.

    ``actor`` names the process that raises (``recorder``, ``web``, ``console``):
    it is the 実施者 of the ledger entries for raises and clears.
    """

    def __init__(self, catalog: Catalog, now: Callable[[], datetime],
                 led: FaultLed | None = None, actor: str = "recorder") -> None:
        self.catalog = catalog
        self.now = now
        self.led = led or NullLed()
        self.actor = actor
        self._lock = threading.Lock()

    def raise_(self, code: AlarmCode, subject: str = "", detail: str = "",
               severity: Severity | None = None) -> bool:
        """Raise (or refresh) an alarm; True when it was not active before."""
        code = AlarmCode(code)
        sev = Severity(severity or severity_of(code))
        now = self.now()
        at, detail = to_utc_text(now), redact(detail)
        with self._lock, self.catalog.transaction():
            cur = self.catalog.conn.execute(
                "UPDATE alarms SET last_at = ?, count = count + 1, detail = ?"
                " WHERE code = ? AND subject = ? AND cleared_at IS NULL",
                (at, detail, str(code), subject))
            new = cur.rowcount == 0
            if new:
                cur = self.catalog.conn.execute(
                    "INSERT INTO alarms (code, subject, raised_at, last_at, detail, severity)"
                    " VALUES (?, ?, ?, ?, ?, ?)", (str(code), subject, at, at, detail, str(sev)))
                self._transition(int(cur.lastrowid), "raised", now, code, sev, subject, detail)
        if new:
            log.error("警報 ALARM %s (%s)%s: %s %s", code, sev, f" [{subject}]" if subject else "",
                      label(code), detail)
            self.sync_led()
        return new

    def clear(self, code: AlarmCode, subject: str | None = None) -> int:
        """Clear an alarm (every subject of ``code`` when ``subject`` is None); how many."""
        code = AlarmCode(code)
        now = self.now()
        at = to_utc_text(now)
        where, args = "code = ? AND cleared_at IS NULL", [str(code)]
        if subject is not None:
            where += " AND subject = ?"
            args.append(subject)
        with self._lock, self.catalog.transaction():
            rows = self.catalog.conn.execute(
                f"SELECT id, subject, severity, detail FROM alarms WHERE {where}", args).fetchall()
            for alarm_id, subj, sev, detail in rows:
                self.catalog.conn.execute("UPDATE alarms SET cleared_at = ? WHERE id = ?",
                                          (at, alarm_id))
                self._transition(alarm_id, "cleared", now, code, Severity(sev), subj, detail)
        for _id, s, _sev, _d in rows:
            log.warning("警報解除 alarm cleared %s%s: %s", code, f" [{s}]" if s else "",
                        label(code))
        if rows:
            self.sync_led()
        return len(rows)

    def event(self, code: AlarmCode, subject: str = "", detail: str = "") -> None:
        """An alarm that is an instant (a clock step): raised and cleared at once; still
        delivered, on the ledger, and listed until acknowledged."""
        self.raise_(code, subject, detail)
        self.clear(code, subject)

    def acknowledge(self, code: str, actor: str, note: str,
                    subject: str | None = None) -> list[AlarmRecord]:
        """確認: mark every unacknowledged alarm of ``code`` (raised or cleared) as seen by
        ``actor`` with ``note``; on the ledger and delivered. Returns what was acknowledged."""
        if code not in {c.value for c in AlarmCode}:
            raise AlarmError(f"不明な警報コード / unknown alarm code: {code!r}")
        note = redact(" ".join((note or "").split()))
        if not note:
            raise AlarmError("確認の内容 (--note) を入力してください / a note is required")
        if len(note) > 500:
            raise AlarmError("確認の内容は 500 文字以内 / the note is limited to 500 characters")
        now = self.now()
        at = to_utc_text(now)
        where, args = "code = ? AND acknowledged_at IS NULL", [code]
        if subject is not None:
            where += " AND subject = ?"
            args.append(subject)
        with self._lock, self.catalog.transaction():
            ids = [r[0] for r in self.catalog.conn.execute(
                f"SELECT id FROM alarms WHERE {where} ORDER BY id", args)]
            for alarm_id in ids:
                self.catalog.conn.execute(
                    "UPDATE alarms SET acknowledged_at = ?, acknowledged_by = ?, ack_note = ?"
                    " WHERE id = ?", (at, actor, note, alarm_id))
                row = self.catalog.conn.execute(
                    "SELECT subject, severity FROM alarms WHERE id = ?", (alarm_id,)).fetchone()
                Ledger(self.catalog).append(
                    EntryKind.ALARM, now, actor=actor,
                    detail={"event": "acknowledged", "alarm_id": alarm_id, "code": code,
                            "subject": row[0], "severity": row[1], "note": note})
                # delivered without the note: a person's free text stays on the ledger
                add_event(self.catalog, "acknowledged", now, code, row[1], row[0],
                          f"{label(code)}{' [' + row[0] + ']' if row[0] else ''}: "
                          f"確認 acknowledged by {actor}", alarm_id)
            records = [_record(r) for r in self.catalog.conn.execute(
                f"SELECT {_COLUMNS} FROM alarms WHERE id IN ({','.join('?' * len(ids))})",
                ids)] if ids else []
        if not ids:
            raise AlarmError(f"確認待ちの警報はありません / nothing to acknowledge for {code}")
        log.warning("警報確認 alarm acknowledged %s by %s (%d)", code, actor, len(ids))
        return records

    def _transition(self, alarm_id: int, event: str, at: datetime, code: AlarmCode,
                    sev: Severity, subject: str, detail: str) -> None:
        Ledger(self.catalog).append(
            EntryKind.ALARM, at, actor=self.actor,
            detail={"event": event, "alarm_id": alarm_id, "code": str(code), "subject": subject,
                    "severity": str(sev), "detail": detail})
        where = f" [{subject}]" if subject else ""
        add_event(self.catalog, event, at, str(code), str(sev), subject,
                  f"{label(code)}{where}" + (f": {detail}" if detail else ""), alarm_id)

    def is_active(self, code: AlarmCode, subject: str | None = None) -> bool:
        return any(a.code == code and (subject is None or a.subject == subject)
                   for a in self.active())

    def active(self) -> list[AlarmRecord]:
        with self._lock:
            return read_alarms(self.catalog)

    def sync_led(self) -> None:
        """The fault LED is lit while any alarm is active (raised by any process)."""
        with self._lock:
            n = self.catalog.conn.execute(
                "SELECT COUNT(*) FROM alarms WHERE cleared_at IS NULL").fetchone()[0]
        self.led.set(n > 0)
