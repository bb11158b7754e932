"""Alarm mail through the city's SMTP relay: Japanese subject and body, UTF-8.

Python's ``smtplib`` and ``email`` (policy SMTP): the subject is encoded as
RFC 2047 ``=?utf-8?b?…?=``, the body as UTF-8 in base64, so any relay and
any Japanese mail reader shows it. A message counts as delivered when the
relay answered 250 to its data; the ``Message-ID`` is made from the outbox
event id, so a repeat (a crash between the relay's answer and our record of
it) is recognisable as the same message.

Two ways (``mode``): ``each`` mails every event at or above
``min_severity`` as it happens; ``digest`` mails one 日報 a day at
``digest_at`` (Japan time) listing the day's events, or saying there were
none — a daily sign of life; ``both`` does both.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

from appliance.ops.delivery.message import AlarmMessage, ja_datetime
from appliance.store.catalog import TOKYO

#: a digest lists at most this many events (the rest are counted)
DIGEST_MAX_LINES = 500


@dataclass(frozen=True)
class MailSettings:
    host: str
    sender: str
    to: tuple[str, ...]
    port: int = 25
    starttls: bool = False
    ca_file: Path | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)   # read from password_file
    addressee: str = "ご担当者 様"       # 松本市 総務部 人事課 御中, …
    mode: str = "each"                   # each | digest | both
    digest_at: str = "08:30"
    min_severity: str = "warning"
    timeout_s: float = 20.0


def _subject(m: AlarmMessage) -> str:
    if m.event == "test":
        head = "【試験】"
    elif m.event == "raised":
        head = f"【警報・{m.severity_ja}】"
    else:
        head = f"【警報{m.event_ja}】"
    return f"{head}{m.site} 通話録音装置: {m.label.split(' / ')[0]}" + (
        f" ({m.subject})" if m.subject else "")


def _body(m: AlarmMessage, addressee: str) -> str:
    return "\n".join([
        addressee, "",
        f"{m.site}の通話録音装置から警報をお知らせします。", "",
        f"区分　　: {m.event_ja} ({m.event})",
        f"警報　　: {m.label}",
        f"重要度　: {m.severity_ja} ({m.severity})",
        f"対象　　: {m.where_ja}",
        f"日時　　: {m.when_ja}",
        f"内容　　: {m.text}",
        f"コード　: {m.code} / 通番 {m.seq}",
        f"装置　　: {m.host}", "",
        "保守コンソールの alarms または職員サービスの「装置の状態」で確認し、"
        "対応後に確認 (alarms ack) を記録してください。",
        "このメールには電話番号・通話内容は含まれません。", "",
        "-- ",
        f"Automatic message from the call recorder at {m.site} ({m.host}): "
        f"{m.event} {m.code} ({m.severity}).",
    ]) + "\n"


def build_message(m: AlarmMessage, s: MailSettings, now: datetime) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = _subject(m)
    msg["From"] = s.sender
    msg["To"] = ", ".join(s.to)
    msg["Date"] = format_datetime(now.astimezone(TOKYO))
    msg["Message-ID"] = f"<alarm-{m.seq}-{_domain_safe(m.host)}@{_domain_of(s.sender)}>"
    msg.set_content(_body(m, s.addressee), charset="utf-8", cte="base64")
    return msg


def build_digest(shown: list[AlarmMessage], total: int, s: MailSettings, site: str,
                 host: str, day_label_at: datetime, now: datetime) -> EmailMessage:
    shown = shown[:DIGEST_MAX_LINES]
    day = ja_datetime(day_label_at).split(" ")[0]
    lines = [s.addressee, "", f"{site}の通話録音装置の警報日報 ({day}) をお送りします。", ""]
    if not total:
        lines.append("前回の日報以降、警報はありません。装置は稼働しています。")
    for m in shown:
        lines.append(f"・{m.when_ja} {m.event_ja} [{m.severity_ja}] {m.text} (通番 {m.seq})")
    if total > len(shown):
        lines.append(f"…ほか {total - len(shown)} 件 (alarms --all で確認)")
    lines += ["", "このメールには電話番号・通話内容は含まれません。", "", "-- ",
              f"Daily alarm digest from the call recorder at {site} ({host}): "
              f"{total} event(s)."]
    msg = EmailMessage()
    msg["Subject"] = f"【警報日報】{day} {site} 通話録音装置: {total} 件"
    msg["From"] = s.sender
    msg["To"] = ", ".join(s.to)
    msg["Date"] = format_datetime(now.astimezone(TOKYO))
    msg["Message-ID"] = make_msgid("alarm-digest", _domain_of(s.sender))
    msg.set_content("\n".join(lines) + "\n", charset="utf-8", cte="base64")
    return msg


def _domain_of(address: str) -> str:
    return address.rpartition("@")[2].strip("<> ") or "localhost"


def _domain_safe(text: str) -> str:
    return "".join(c for c in text if c.isascii() and (c.isalnum() or c in "-.")) or "appliance"


class MailSender:
    name = "mail"

    def __init__(self, settings: MailSettings, now) -> None:
        if settings.mode not in ("each", "digest", "both"):
            raise ValueError("[alarms.mail] mode is each, digest or both")
        self.settings = settings
        self.now = now

    def send_mail(self, msg: EmailMessage) -> None:
        s = self.settings
        with smtplib.SMTP(s.host, s.port, timeout=s.timeout_s) as smtp:
            if s.starttls:
                smtp.starttls(context=ssl.create_default_context(
                    cafile=str(s.ca_file) if s.ca_file else None))
            if s.username and s.password:
                smtp.login(s.username, s.password)
            refused = smtp.send_message(msg)
        if refused:
            raise smtplib.SMTPRecipientsRefused(refused)

    def send(self, m: AlarmMessage) -> None:
        self.send_mail(build_message(m, self.settings, self.now()))
