"""The catalog interface on PostgreSQL: the governance code runs on the centre unchanged.

The appliance's governance functions (holds, retention, disclosure
requests, exports, the ledger, users, alarms) talk to a
:class:`appliance.store.catalog.Catalog`: ``transaction()``, the call
methods, ``conn.execute(sql, params)`` with ``?`` placeholders and
``db[table].insert/rows_where`` in sqlite-utils' shape. Their SQL keeps to
the subset SQLite and PostgreSQL share (plain SELECT/INSERT/UPDATE, EXISTS,
substr, CAST). :class:`PgCatalog` is that interface over one psycopg
connection: it turns ``?`` into psycopg's ``%s`` (outside string literals),
maps the two SQLite-only features the governance code uses — ``lastrowid``
(answered with ``RETURNING id``) and ``PRAGMA`` (maintenance with no
PostgreSQL meaning: ignored; the centre's sweep runs VACUUM instead) — and
turns unique-key violations into :class:`CatalogConflict`. Anything else
PostgreSQL does not understand fails loudly, which the governance tests on
this backend catch (tests/central/test_pgcatalog.py).

Written here because no library offers sqlite-utils' table API over
psycopg; it is a few dozen lines and holds no SQL of its own beyond the
generic INSERT and SELECT.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg import errors as pgerr

from appliance.errors import CatalogCorrupt, CatalogError
from appliance.store.catalog import Catalog

#: tables whose integer ``id`` the database assigns (``lastrowid`` after an INSERT)
IDENTITY_TABLES = frozenset({"holds", "alarms", "alarm_events", "recording_gaps"})
_INSERT = re.compile(r"^\s*INSERT\s+INTO\s+(\w+)", re.IGNORECASE)
_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


class CatalogConflict(CatalogError, ValueError):
    """A unique key refused the change (two writers took the same number)."""


def qmark_to_pyformat(sql: str) -> str:
    """``?`` → ``%s`` and ``%`` → ``%%``, leaving quoted literals and identifiers alone."""
    out, quote = [], None
    for ch in sql:
        if quote:
            out.append("%%" if ch == "%" else ch)
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
            out.append(ch)
        elif ch == "?":
            out.append("%s")
        elif ch == "%":
            out.append("%%")
        else:
            out.append(ch)
    return "".join(out)


class Cursor:
    """The DB-API surface the governance code reads from a cursor."""

    def __init__(self, cur: psycopg.Cursor | None, lastrowid: int | None = None,
                 rows: list | None = None) -> None:
        self._cur = cur
        self.lastrowid = lastrowid
        self._rows = rows

    @property
    def rowcount(self) -> int:
        return self._cur.rowcount if self._cur is not None else -1

    @property
    def description(self):
        return self._cur.description if self._cur is not None else None

    def fetchone(self):
        if self._rows is not None:
            return self._rows.pop(0) if self._rows else None
        return self._cur.fetchone() if self._cur is not None else None

    def fetchall(self) -> list:
        if self._rows is not None:
            rows, self._rows = self._rows, []
            return rows
        return self._cur.fetchall() if self._cur is not None and self._cur.description else []

    def __iter__(self):
        return iter(self.fetchall())


class QmarkConnection:
    """``execute(sql, params)`` with SQLite's placeholders, on a psycopg connection."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.raw = conn

    def execute(self, sql: str, params=()) -> Cursor:
        if sql.lstrip().upper().startswith("PRAGMA"):
            return Cursor(None)
        text = qmark_to_pyformat(sql)
        m = _INSERT.match(sql)
        want_id = (m is not None and m.group(1).lower() in IDENTITY_TABLES
                   and "RETURNING" not in sql.upper())
        if want_id:
            text += " RETURNING id"
        cur = _guarded(lambda: self.raw.execute(text, tuple(params)))
        if want_id:
            return Cursor(cur, lastrowid=cur.fetchone()[0])
        return Cursor(cur)

    def executemany(self, sql: str, seq) -> None:
        text = qmark_to_pyformat(sql)
        with self.raw.cursor() as cur:
            _guarded(lambda: cur.executemany(text, [tuple(p) for p in seq]))

    def close(self) -> None:
        self.raw.close()


def _guarded(fn):
    try:
        return fn()
    except pgerr.UniqueViolation as exc:
        raise CatalogConflict(f"catalog constraint refused the change ({exc.diag.message_primary})"
                              ) from None
    except pgerr.IntegrityError as exc:
        raise CatalogError(f"catalog constraint refused the change ({exc.diag.message_primary})"
                           ) from None
    except (pgerr.OperationalError, pgerr.InterfaceError) as exc:
        raise CatalogError(f"データベースに接続できません / the centre's database is "
                           f"unavailable ({exc})") from None
    except psycopg.Error as exc:
        raise CatalogCorrupt(f"centre database error ({exc})") from None


def _ident(name: str) -> str:
    if not _IDENT.match(name):
        raise CatalogError(f"not a column or table name: {name!r}")
    return name


class Table:
    """``insert`` and ``rows_where`` in sqlite-utils' shape."""

    def __init__(self, conn: QmarkConnection, name: str) -> None:
        self.conn = conn
        self.name = _ident(name)

    def insert(self, row: dict) -> "Table":
        cols = [_ident(c) for c in row]
        self.conn.execute(f"INSERT INTO {self.name} ({', '.join(cols)}) VALUES "
                          f"({', '.join('?' * len(cols))})", list(row.values()))
        return self

    def rows_where(self, where: str | None = None, where_args=None, *,
                   order_by: str | None = None, limit: int | None = None) -> Iterator[dict]:
        sql = f"SELECT * FROM {self.name}"
        if where:
            sql += f" WHERE {where}"
        if order_by:
            sql += f" ORDER BY {order_by}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        cur = self.conn.execute(sql, list(where_args or []))
        cols = [d[0] for d in cur.description]
        for r in cur.fetchall():
            yield dict(zip(cols, r))

    @property
    def count(self) -> int:
        return self.conn.execute(f"SELECT COUNT(*) FROM {self.name}").fetchone()[0]


class Database:
    def __init__(self, conn: QmarkConnection) -> None:
        self.conn = conn

    def __getitem__(self, name: str) -> Table:
        return Table(self.conn, name)


class PgCatalog(Catalog):
    """A :class:`Catalog` over one PostgreSQL connection (autocommit outside transactions)."""

    def __init__(self, conn: psycopg.Connection, label: str = "centre") -> None:
        # not Catalog.__init__: no sqlite_utils here
        self.pg = conn
        self.conn = QmarkConnection(conn)
        self.path = Path(label)
        self.db = Database(self.conn)
        self._depth = 0

    def close(self) -> None:
        """The connection belongs to the pool (or the caller)."""

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """A transaction; nested calls become savepoints that roll back alone."""
        try:
            with self.pg.transaction():
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
        except (pgerr.OperationalError, pgerr.InterfaceError) as exc:
            raise CatalogError(f"データベースに接続できません / the centre's database is "
                               f"unavailable ({exc})") from None

    def _guard(self, fn):
        return fn()

    #: without a number, a search returns at most the newest this many calls of its period
    #: (10 million rows make "everything" no answer); the staff narrow the period instead
    LIST_CAP = 5000

    def calls(self, *, number: str | None = None, since=None, until=None,
              states: tuple[str, ...] | None = None, site_code: str | None = None,
              limit: int | None = None) -> list[dict]:
        from appliance.store.catalog import to_utc_text
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
        if site_code:
            where.append("site_code = ?")
            args.append(site_code)
        cap = limit if limit is not None else (None if number else self.LIST_CAP)
        sql = "SELECT * FROM calls" + (f" WHERE {' AND '.join(where)}" if where else "")
        if cap is None:
            return list(self._dicts(sql + " ORDER BY started_at, id", args))
        rows = list(self._dicts(sql + f" ORDER BY started_at DESC, id DESC LIMIT {int(cap)}", args))
        rows.reverse()
        return rows

    def _dicts(self, sql: str, args):
        cur = self.conn.execute(sql, args)
        cols = [d[0] for d in cur.description]
        for r in cur.fetchall():
            yield dict(zip(cols, r))
