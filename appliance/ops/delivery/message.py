"""One alarm event as every delivery path shows it: text without numbers, Japan time.

Built from a row of ``alarm_events`` (the outbox) plus who is speaking (the
site and host name, passed in). The syslog, mail and SNMP modules each
render this one object, so they cannot disagree about what happened.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from appliance.ops.alarms import SEVERITY_JA, label, redact
from appliance.store.catalog import TOKYO

EVENT_JA = {"raised": "発生", "cleared": "解除", "acknowledged": "確認", "test": "試験"}
WEEKDAY_JA = "月火水木金土日"

#: Private Enterprise Number used in the syslog SD-ID and the SNMP OIDs. 32473 is
#: the number RFC 5612 reserves for documentation: a PLACEHOLDER until the
#: company's own PEN is assigned by IANA (then change it here and in the MIB).
ENTERPRISE_PEN = 32473


def ja_datetime(t: datetime) -> str:
    """2026年12月8日(火) 10:02 — the way a Japanese city office writes a time."""
    j = t.astimezone(TOKYO)
    return f"{j.year}年{j.month}月{j.day}日({WEEKDAY_JA[j.weekday()]}) {j:%H:%M}"


@dataclass(frozen=True)
class AlarmMessage:
    seq: int                  # the outbox event id: stable, so a receiver can drop a repeat
    event: str                # raised | cleared | acknowledged | test
    at: datetime              # aware (UTC)
    code: str
    severity: str
    subject: str
    text: str                 # technician-level, already masked
    site: str
    host: str

    @classmethod
    def from_row(cls, row: dict, site: str, host: str) -> "AlarmMessage":
        return cls(int(row["id"]), row["event"], datetime.fromisoformat(row["at"]), row["code"],
                   row["severity"], row["subject"] or "", redact(row["text"] or ""), site, host)

    @property
    def event_ja(self) -> str:
        return EVENT_JA.get(self.event, self.event)

    @property
    def severity_ja(self) -> str:
        return SEVERITY_JA.get(self.severity, self.severity)  # type: ignore[call-overload]

    @property
    def label(self) -> str:
        return label(self.code)

    @property
    def when_ja(self) -> str:
        return ja_datetime(self.at)

    @property
    def where_ja(self) -> str:
        return self.subject or "装置全体 / whole appliance"

    def one_line(self) -> str:
        """The syslog MSG and the SNMP text: event, alarm, subject, site, detail."""
        return redact(f"警報{self.event_ja} {self.event}: {self.text} — {self.site}")
