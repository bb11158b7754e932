"""The daily alarm mail (警報日報): one mail a day at ``digest_at`` (Japan time).

Its own outbox cursor (``mail_digest``): the digest lists every event after
the previous digest — or says there was none, which is itself the daily
sign that the appliance and its mail path are alive. A digest that cannot
be sent is retried like any delivery; the next day's digest then covers
both days.
"""

from __future__ import annotations

from datetime import datetime, time

from appliance.ops.delivery.mail import DIGEST_MAX_LINES, MailSender, build_digest
from appliance.ops.delivery.message import AlarmMessage
from appliance.store.catalog import TOKYO

CHANNEL = "mail_digest"


class DailyDigest:
    def __init__(self, sender: MailSender, at: time) -> None:
        self.sender = sender
        self.at = at

    def due(self, outbox, now: datetime) -> bool:
        local = now.astimezone(TOKYO)
        if local.time() < self.at:
            return False
        outbox.cursor(CHANNEL)
        last = outbox.catalog.conn.execute(
            "SELECT last_sent_at FROM alarm_delivery WHERE channel = ?", (CHANNEL,)).fetchone()[0]
        return last is None or datetime.fromisoformat(last).astimezone(TOKYO).date() < local.date()

    def maybe_send(self, deliverer) -> bool:
        outbox, now = deliverer.outbox, deliverer.now()
        if deliverer.monotonic() < deliverer._pause_until.get(CHANNEL, -1e18):
            return False
        if not self.due(outbox, now):
            return False
        cursor = outbox.cursor(CHANNEL)
        cat = outbox.catalog
        top = cat.conn.execute("SELECT COALESCE(MAX(id), ?) FROM alarm_events WHERE id > ?",
                               (cursor, cursor)).fetchone()[0]
        total = cat.conn.execute("SELECT COUNT(*) FROM alarm_events WHERE id > ? AND id <= ?"
                                 " AND event != 'test'", (cursor, top)).fetchone()[0]
        cols = ("id", "alarm_id", "event", "at", "code", "severity", "subject", "text")
        rows = [dict(zip(cols, r)) for r in cat.conn.execute(
            f"SELECT {', '.join(cols)} FROM alarm_events WHERE id > ? AND id <= ?"
            " AND event != 'test' ORDER BY id LIMIT ?", (cursor, top, DIGEST_MAX_LINES))]
        events = [AlarmMessage.from_row(r, deliverer.site, deliverer.host) for r in rows]
        msg = build_digest(events, total, self.sender.settings, deliverer.site, deliverer.host, now,
                           now)
        try:
            self.sender.send_mail(msg)
        except Exception as exc:         # noqa: BLE001 — retried like any delivery
            deliverer._failed(CHANNEL, exc)
            return False
        outbox.delivered(CHANNEL, top)
        deliverer._pause_until.pop(CHANNEL, None)
        return True
