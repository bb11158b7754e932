"""Server-side sessions, listen tickets and the sign-in throttle (issue 7).

The browser holds only a random token; everything else stays here, in
memory, keyed by the token's SHA-256 (a memory dump of the store does not
hand out live cookies). A session dies after ``idle_s`` without a request,
on logout, and with the process (a restart signs everyone out, on purpose).

No password and no archive key is ever kept in a session. Listening and
exporting ask for the password again; a listen leaves behind only a *ticket*
holding that one recording's data key for a few minutes, so the audio
element can fetch (and seek in) the recording it was opened for, and nothing
else.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class ListenTicket:
    call_id: str
    data_key: bytes
    expires: datetime


@dataclass
class WebSession:
    user: str
    csrf: str
    created: datetime
    last_seen: datetime
    tickets: dict[str, ListenTicket] = field(default_factory=dict)


class SessionStore:
    """Sessions by token; bounded so a flood of sign-ins cannot exhaust memory."""

    MAX_SESSIONS = 1000
    MAX_TICKETS = 20          # per session: enough for a working morning's listening

    def __init__(self, now: Callable[[], datetime], idle_s: float, ticket_s: float = 600.0) -> None:
        self._now = now
        self.idle = timedelta(seconds=idle_s)
        self.ticket_life = timedelta(seconds=ticket_s)
        self._sessions: dict[str, WebSession] = {}
        self._lock = threading.Lock()

    def create(self, user: str) -> tuple[str, WebSession]:
        token = secrets.token_urlsafe(32)
        now = self._now()
        ws = WebSession(user, secrets.token_urlsafe(32), now, now)
        with self._lock:
            self._expire(now)
            if len(self._sessions) >= self.MAX_SESSIONS:
                oldest = min(self._sessions, key=lambda k: self._sessions[k].last_seen)
                self._drop(oldest)
            self._sessions[_digest(token)] = ws
        return token, ws

    def get(self, token: str | None) -> tuple[WebSession | None, bool]:
        """(session, expired): touches a live session; an idle one is destroyed."""
        if not token:
            return None, False
        key = _digest(token)
        now = self._now()
        with self._lock:
            ws = self._sessions.get(key)
            if ws is None:
                return None, False
            if now - ws.last_seen > self.idle:
                self._drop(key)
                return None, True
            ws.last_seen = now
            return ws, False

    def destroy(self, token: str | None) -> None:
        if token:
            with self._lock:
                self._drop(_digest(token))

    def destroy_user(self, user: str) -> None:
        with self._lock:
            for key in [k for k, s in self._sessions.items() if s.user == user]:
                self._drop(key)

    def add_ticket(self, ws: WebSession, call_id: str, data_key: bytes) -> str:
        ticket = secrets.token_urlsafe(24)
        now = self._now()
        with self._lock:
            for t in [t for t, v in ws.tickets.items() if v.expires <= now]:
                self._forget(ws, t)
            while len(ws.tickets) >= self.MAX_TICKETS:
                self._forget(ws, next(iter(ws.tickets)))
            ws.tickets[ticket] = ListenTicket(call_id, data_key, now + self.ticket_life)
        return ticket

    def keep_export_key(self, ws: WebSession, export_id: str, key: bytes) -> None:
        """A bundle's key (its audio is sealed at rest) for this session's downloads, a while."""
        with self._lock:
            ws.tickets[f"export:{export_id}"] = ListenTicket(export_id, key,
                                                             self._now() + self.ticket_life)
            while len(ws.tickets) > self.MAX_TICKETS:
                self._forget(ws, next(iter(ws.tickets)))

    def export_key(self, ws: WebSession, export_id: str) -> bytes | None:
        with self._lock:
            t = ws.tickets.get(f"export:{export_id}")
            if t is None:
                return None
            if t.expires <= self._now():
                self._forget(ws, f"export:{export_id}")
                return None
            return t.data_key

    def ticket(self, ws: WebSession, ticket: str) -> ListenTicket | None:
        with self._lock:
            t = ws.tickets.get(ticket)
            if t is None:
                return None
            if t.expires <= self._now():
                self._forget(ws, ticket)
                return None
            return t

    # --- internals (lock held) ------------------------------------------------
    def _expire(self, now: datetime) -> None:
        for key in [k for k, s in self._sessions.items() if now - s.last_seen > self.idle]:
            self._drop(key)

    def _drop(self, key: str) -> None:
        ws = self._sessions.pop(key, None)
        if ws is not None:
            for t in list(ws.tickets):
                self._forget(ws, t)

    @staticmethod
    def _forget(ws: WebSession, ticket: str) -> None:
        t = ws.tickets.pop(ticket, None)
        if t is not None:
            # bytes cannot be wiped in Python; dropping the only reference is what we can do
            t.data_key = b""


class LoginThrottle:
    """Failed sign-ins per user name and per client address, in a sliding window.

    ``max_failures`` failures within ``window_s`` lock the name (or the
    address) for ``lock_s``: further attempts are refused without checking
    the password, so guessing costs the guesser time, not the appliance
    argon2 work.
    """

    MAX_KEYS = 10000

    def __init__(self, now: Callable[[], datetime], max_failures: int = 5,
                 window_s: float = 900.0, lock_s: float = 900.0,
                 max_failures_per_address: int = 20) -> None:
        self._now = now
        self.max_failures = max_failures
        self.max_per_address = max_failures_per_address
        self.window = timedelta(seconds=window_s)
        self.lock = timedelta(seconds=lock_s)
        self._fails: dict[str, list[datetime]] = {}
        self._locked: dict[str, datetime] = {}
        self._mutex = threading.Lock()

    def locked(self, *keys: str) -> bool:
        now = self._now()
        with self._mutex:
            for k in keys:
                until = self._locked.get(k)
                if until is not None and until > now:
                    return True
                if until is not None:
                    del self._locked[k]
        return False

    def failure(self, name_key: str, address_key: str) -> bool:
        """Count a failure; True when it has just locked the name or the address."""
        now = self._now()
        newly = False
        with self._mutex:
            if len(self._fails) > self.MAX_KEYS:
                self._fails.clear()          # bounded memory beats perfect memory
            for key, limit in ((name_key, self.max_failures), (address_key, self.max_per_address)):
                recent = [t for t in self._fails.get(key, []) if now - t < self.window]
                recent.append(now)
                self._fails[key] = recent
                if len(recent) >= limit and key not in self._locked:
                    self._locked[key] = now + self.lock
                    self._fails[key] = []
                    newly = True
        return newly

    def success(self, name_key: str) -> None:
        with self._mutex:
            self._fails.pop(name_key, None)
