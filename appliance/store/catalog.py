"""The catalog: one SQLite database (WAL) of calls, users and the ledger.

Times are stored in UTC as ISO 8601 strings of one fixed shape (so they
sort as text) and shown in Asia/Tokyo by the front ends. Rows go in and out
as dicts through sqlite-utils; transactions are explicit
(``with catalog.transaction():``) and nest as savepoints.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlite_utils

from appliance.errors import CatalogCorrupt, CatalogError, DataDirError, UnknownCall
from appliance.store.migrations import migrate

TOKYO = ZoneInfo("Asia/Tokyo")
CALL_STATES = ("recording", "complete", "truncated", "unanswered", "erased")


def to_utc_text(t: datetime) -> str:
    if t.tzinfo is None:
        raise ValueError("naive datetime: times must carry their offset")
    return t.astimezone(timezone.utc).isoformat(timespec="milliseconds")


def from_utc_text(s: str | None) -> datetime | None:
    return None if s is None else datetime.fromisoformat(s)


def to_local_text(s: str | None) -> str | None:
    """A stored UTC time as ISO 8601 in Asia/Tokyo (+09:00)."""
    return None if s is None else datetime.fromisoformat(s).astimezone(TOKYO).isoformat(
        timespec="seconds")


class Catalog:
    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self.db = sqlite_utils.Database(conn)
        self._depth = 0

    @classmethod
    def open(cls, path: Path, now: datetime, *, create: bool = False) -> "Catalog":
        if not create and not path.exists():
            raise DataDirError(f"{path}: カタログがありません / no catalog (run 'appliance init')")
        try:
            conn = sqlite3.connect(path, isolation_level=None, timeout=10.0,
                                   check_same_thread=False)
        except sqlite3.Error as exc:
            raise CatalogError(f"{path}: cannot open the catalog ({exc})") from None
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            # erased rows (numbers, keys) must not linger in free pages (R8)
            conn.execute("PRAGMA secure_delete=ON")
            conn.execute("PRAGMA foreign_keys=ON")
            migrate(conn, to_utc_text(now))
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise CatalogCorrupt(
                f"{path}: カタログが壊れています / the catalog is damaged or not a catalog ({exc})"
            ) from None
        return cls(conn, path)

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.conn.close()

    def __enter__(self) -> "Catalog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """A transaction; nested calls become savepoints that roll back alone."""
        name = f"sp{self._depth}"
        self.conn.execute("BEGIN IMMEDIATE" if self._depth == 0 else f"SAVEPOINT {name}")
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            self.conn.execute("ROLLBACK" if self._depth == 0 else f"ROLLBACK TO {name}")
            if self._depth:
                self.conn.execute(f"RELEASE {name}")
            raise
        self._depth -= 1
        self.conn.execute("COMMIT" if self._depth == 0 else f"RELEASE {name}")

    # --- calls -----------------------------------------------------------------
    def insert_call(self, row: dict) -> None:
        self._guard(lambda: self.db["calls"].insert(row))

    def update_call(self, call_id: str, **fields) -> None:
        def go():
            cur = self.conn.execute(
                f"UPDATE calls SET {', '.join(f'{k} = ?' for k in fields)} WHERE id = ?",
                (*fields.values(), call_id))
            if cur.rowcount != 1:
                raise UnknownCall(f"no call {call_id}")
        self._guard(go)

    def get_call(self, call_id: str) -> dict:
        rows = self._guard(lambda: list(self.db["calls"].rows_where("id = ?", [call_id])))
        if not rows:
            raise UnknownCall(f"通話記録 {call_id} はありません / no call {call_id}")
        return rows[0]

    def calls(self, *, number: str | None = None, since: datetime | None = None,
              until: datetime | None = None, states: tuple[str, ...] | None = None) -> list[dict]:
        where, args = [], []
        if number:
            where.append("(far_number = ? OR near_number = ? OR called_number = ?)")
            args += [number] * 3
        if since:
            where.append("started_at >= ?")
            args.append(to_utc_text(since))
        if until:
            where.append("started_at < ?")
            args.append(to_utc_text(until))
        if states:
            where.append(f"state IN ({', '.join('?' * len(states))})")
            args += list(states)
        return self._guard(lambda: list(self.db["calls"].rows_where(
            " AND ".join(where) or None, args, order_by="started_at, id")))

    def _guard(self, fn):
        try:
            return fn()
        except sqlite3.IntegrityError as exc:
            raise CatalogError(f"catalog constraint refused the change ({exc})") from None
        except sqlite3.DatabaseError as exc:
            raise CatalogCorrupt(f"{self.path}: catalog error ({exc})") from None
