"""The durable outbox: every alarm event reaches every delivery path, in order, once.

Events are rows of ``alarm_events`` in the catalog, written in the same
transaction as the alarm's change and its ledger entry, so an alarm raised
while the network is down — or just before a power cut — is on disk before
anyone tries to send it. Each path (``syslog``, ``mail``, ``mail_digest``,
``snmp``) keeps a cursor in ``alarm_delivery``: the id of the last event it
delivered. The deliverer sends the next event after the cursor and moves the
cursor in its own commit once the path accepted it; a failure leaves the
cursor where it was and the path is retried with a growing pause (2, 4, …
60 s), so what waited goes out in order when the path returns, and nothing
is skipped. This does not depend on how long a cut lasts: the cursor waits.

"None twice": a delivery is recorded right after the path accepted it. Only
a crash between the two sends that one event again; its ``seq`` (the event
id) is in the syslog structured data, the SNMP varbinds and the mail's
Message-ID, so a receiver can tell.

One deliverer at a time: the recorder and the web service both run one,
and a lease row (``alarm_delivery_lease``, renewed every few seconds, taken
over when it has expired) lets only its holder send. So alarms go out while
either process lives — the web service delivers "the recorder is not
answering" when the recorder is dead.

Bounded: at most ``MAX_EVENTS`` events are kept (the oldest delivered ones
go first, after ``KEEP_DAYS``); a new path starts after the events older
than a day, so enabling mail does not send last year's alarms.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from appliance.ops.alarms import SEVERITY_JA, AlarmCode, AlarmRegistry, Severity
from appliance.ops.delivery.message import AlarmMessage
from appliance.store.catalog import TOKYO, Catalog, to_utc_text

log = logging.getLogger("appliance.alarms.delivery")

MAX_EVENTS = 50_000
KEEP_DAYS = 30
LEASE_S = 15.0
BATCH = 50
MAX_PAUSE_S = 60.0


class Sender(Protocol):
    name: str

    def send(self, m: AlarmMessage) -> None: ...


class Outbox:
    def __init__(self, catalog: Catalog, now: Callable[[], datetime]) -> None:
        self.catalog = catalog
        self.now = now

    def cursor(self, channel: str) -> int:
        row = self.catalog.conn.execute(
            "SELECT last_event_id FROM alarm_delivery WHERE channel = ?", (channel,)).fetchone()
        if row is not None:
            return int(row[0])
        day_ago = to_utc_text(self.now() - timedelta(days=1))
        start = self.catalog.conn.execute(
            "SELECT COALESCE(MAX(id), 0) FROM alarm_events WHERE at < ?", (day_ago,)).fetchone()[0]
        with self.catalog.transaction():
            self.catalog.conn.execute(
                "INSERT OR IGNORE INTO alarm_delivery (channel, last_event_id) VALUES (?, ?)",
                (channel, start))
        return self.cursor(channel)

    def pending(self, channel: str, limit: int = BATCH) -> list[dict]:
        cols = ("id", "alarm_id", "event", "at", "code", "severity", "subject", "text")
        return [dict(zip(cols, r)) for r in self.catalog.conn.execute(
            f"SELECT {', '.join(cols)} FROM alarm_events WHERE id > ? AND event != 'test'"
            " ORDER BY id LIMIT ?", (self.cursor(channel), limit))]

    def delivered(self, channel: str, event_id: int, sent: bool = True) -> None:
        """Move the cursor past ``event_id`` (sent, or filtered out by the path)."""
        with self.catalog.transaction():
            self.catalog.conn.execute(
                "UPDATE alarm_delivery SET last_event_id = MAX(last_event_id, ?),"
                " sent = sent + ?, last_sent_at = CASE WHEN ? THEN ? ELSE last_sent_at END,"
                " failing_since = NULL, attempts = 0, last_error = NULL WHERE channel = ?",
                (event_id, int(sent), int(sent), to_utc_text(self.now()), channel))

    def failed(self, channel: str, error: str) -> tuple[int, datetime]:
        """Note a failed attempt; returns (attempts, failing since)."""
        at = to_utc_text(self.now())
        with self.catalog.transaction():
            self.catalog.conn.execute(
                "UPDATE alarm_delivery SET attempts = attempts + 1, last_error = ?,"
                " failing_since = COALESCE(failing_since, ?) WHERE channel = ?",
                (error[:300], at, channel))
            row = self.catalog.conn.execute(
                "SELECT attempts, failing_since FROM alarm_delivery WHERE channel = ?",
                (channel,)).fetchone()
        return int(row[0]), datetime.fromisoformat(row[1])

    def state(self) -> list[dict]:
        cols = ("channel", "last_event_id", "sent", "last_sent_at", "failing_since", "attempts",
                "last_error")
        top = self.catalog.conn.execute("SELECT COALESCE(MAX(id), 0) FROM alarm_events"
                                        ).fetchone()[0]
        return [dict(zip(cols, r), waiting=max(0, top - r[1])) for r in self.catalog.conn.execute(
            f"SELECT {', '.join(cols)} FROM alarm_delivery ORDER BY channel")]

    def acquire_lease(self, owner: str, ttl_s: float = LEASE_S) -> bool:
        now = self.now()
        with self.catalog.transaction():
            row = self.catalog.conn.execute(
                "SELECT owner, expires_at FROM alarm_delivery_lease WHERE id = 1").fetchone()
            if row is not None and row[0] != owner and datetime.fromisoformat(row[1]) > now:
                return False
            self.catalog.conn.execute(
                "INSERT INTO alarm_delivery_lease (id, owner, expires_at) VALUES (1, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET owner = excluded.owner,"
                " expires_at = excluded.expires_at",
                (owner, to_utc_text(now + timedelta(seconds=ttl_s))))
        return True

    def release_lease(self, owner: str) -> None:
        with self.catalog.transaction():
            self.catalog.conn.execute("DELETE FROM alarm_delivery_lease WHERE id = 1 AND owner = ?",
                                      (owner,))

    def prune(self, channels: list[str]) -> int:
        """Drop delivered events older than KEEP_DAYS, and any beyond MAX_EVENTS (oldest first)."""
        low = min((self.cursor(c) for c in channels), default=None)
        old = to_utc_text(self.now() - timedelta(days=KEEP_DAYS))
        with self.catalog.transaction():
            n = 0
            if low is not None:
                n += self.catalog.conn.execute(
                    "DELETE FROM alarm_events WHERE id <= ? AND at < ?", (low, old)).rowcount
            else:
                n += self.catalog.conn.execute("DELETE FROM alarm_events WHERE at < ?",
                                               (old,)).rowcount
            n += self.catalog.conn.execute(
                "DELETE FROM alarm_events WHERE id <= (SELECT MAX(id) FROM alarm_events) - ?",
                (MAX_EVENTS,)).rowcount
        return n


def _severity_at_least(severity: str, floor: str) -> bool:
    try:
        return Severity(severity).rank >= Severity(floor).rank
    except ValueError:
        return True


class Deliverer:
    """Sends the outbox to every configured path; one thread; holds the lease while alive."""

    def __init__(self, catalog: Catalog, senders: dict[str, Sender], *,
                 now: Callable[[], datetime], monotonic: Callable[[], float], site: str,
                 host: str, registry: AlarmRegistry | None = None,
                 min_severity: dict[str, str] | None = None, digest=None,
                 alarm_after_s: float = 300.0, poll_s: float = 1.0,
                 owner: str | None = None) -> None:
        self.outbox = Outbox(catalog, now)
        self.senders = senders
        self.now = now
        self.monotonic = monotonic
        self.site = site
        self.host = host
        self.registry = registry
        self.min_severity = min_severity or {}
        self.digest = digest            # appliance.ops.delivery.digest.DailyDigest or None
        self.alarm_after_s = alarm_after_s
        self.poll_s = poll_s
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._pause_until: dict[str, float] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_prune = -1e18

    # --- one round ---------------------------------------------------------------------
    def run_once(self) -> int:
        """Deliver what waits (if we hold the lease); how many messages went out."""
        if (not self.senders and self.digest is None) or not self.outbox.acquire_lease(self.owner):
            return 0
        sent = 0
        for name, sender in self.senders.items():
            if self.monotonic() < self._pause_until.get(name, -1e18):
                continue
            sent += self._drain(name, sender)
        if self.digest is not None:
            self.digest.maybe_send(self)
        if self.monotonic() - self._last_prune > 3600:
            self._last_prune = self.monotonic()
            self.outbox.prune([*self.senders, *(["mail_digest"] if self.digest else [])])
        return sent

    def _drain(self, name: str, sender: Sender) -> int:
        sent = 0
        for row in self.outbox.pending(name):
            if self._stop.is_set():
                break
            floor = self.min_severity.get(name)
            if floor and not _severity_at_least(row["severity"], floor):
                self.outbox.delivered(name, row["id"], sent=False)
                continue
            message = AlarmMessage.from_row(row, self.site, self.host)
            try:
                sender.send(message)
            except Exception as exc:     # noqa: BLE001 — any failure: keep it, retry later
                self._failed(name, exc)
                return sent
            self.outbox.delivered(name, row["id"])
            self._pause_until.pop(name, None)
            sent += 1
        if sent and self.registry is not None:
            self.registry.clear(AlarmCode.DELIVERY_FAILING, name)
        return sent

    def _failed(self, name: str, exc: Exception) -> None:
        # the error's text only: never the message (it holds nothing secret, but stays short)
        error = f"{type(exc).__name__}: {exc}"[:300]
        attempts, since = self.outbox.failed(name, error)
        pause = min(MAX_PAUSE_S, 2.0 ** min(attempts, 6))
        self._pause_until[name] = self.monotonic() + pause
        log.warning("alarm delivery via %s failed (attempt %d, retry in %.0f s): %s", name,
                    attempts, pause, error)
        if (self.registry is not None
                and (self.now() - since).total_seconds() >= self.alarm_after_s):
            self.registry.raise_(AlarmCode.DELIVERY_FAILING, name,
                                 f"{name} へ送信できません ({attempts} 回) / cannot deliver via "
                                 f"{name} ({attempts} attempts): {type(exc).__name__}")

    # --- thread ------------------------------------------------------------------------
    def wake(self) -> None:
        self._wake.set()

    def start(self) -> "Deliverer":
        self._thread = threading.Thread(target=self._run, name="alarm-delivery", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:            # noqa: BLE001 — the deliverer outlives one bad round
                log.exception("alarm delivery round failed")
            self._wake.wait(self.poll_s)
            self._wake.clear()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        try:
            self.outbox.release_lease(self.owner)
        except Exception:                # noqa: BLE001 — shutting down
            log.exception("could not release the delivery lease")


def describe_state(rows: list[dict]) -> list[str]:
    """Technician-level lines for the console: per path, sent, waiting, failing since."""
    out = []
    for r in rows:
        fail = (f", 失敗中 failing since {datetime.fromisoformat(r['failing_since']).astimezone(TOKYO):%Y-%m-%d %H:%M}"
                f" ({r['attempts']} 回)" if r["failing_since"] else "")
        out.append(f"{r['channel']}: 送信 sent {r['sent']}, 待ち waiting {r['waiting']}{fail}")
    return out


__all__ = ["Deliverer", "Outbox", "SEVERITY_JA", "describe_state"]
