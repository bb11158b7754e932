"""The durable outbox: what the appliance still owes the city archive, in order.

An enrolled appliance queues here, in its own SQLite file
(``DATA_DIR/outbox.sqlite``, WAL), every sealed chunk as the writer appends
it, every catalog change the writer makes, every sealed data key, and every
ledger entry (pulled from the catalog's ledger by the sender, since the web
service, the command line and the sweeper append to it too). The sender
(:mod:`appliance.replication.sender`) sends items in ``seq`` order and drops
them once the centre has acknowledged them; nothing is ever dropped for lack
of room — the field failure to avoid is a memory queue that drops on
overflow.

An item names what to send, not the bytes: a chunk is (call id, chunk
index, offset, length) of the append-only sealed file, read when it is sent,
so the SD card is written once per chunk and the outbox costs about 2 % of
the audio it refers to (its size is bounded by the recordings, which storage
pressure bounds). Idempotence is by (call id, chunk index) and by ledger
``seq``: the centre stores each at most once.

``reconcile`` queues every byte of every recording that is not yet queued
(after a crash that lost the last outbox commits, and at enrolment for the
records made before it). The writer thread calls ``note_*`` — small SQLite
commits without fsync (synchronous=NORMAL in WAL: a process kill loses
nothing; a power cut may lose the last commits, which ``reconcile`` restores
at the next start) — and never the capture thread.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from appliance.errors import CatalogError
from appliance.store.catalog import Catalog, from_utc_text, to_utc_text

log = logging.getLogger(__name__)

OUTBOX_FILE = "outbox.sqlite"
#: the largest chunk item ``reconcile`` makes from a file's unqueued tail
RECONCILE_PIECE = 256 * 1024
KINDS = ("key", "call", "chunk", "ledger")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    queued_at TEXT NOT NULL,              -- UTC, wall clock: the outbox alarm's age
    kind TEXT NOT NULL CHECK (kind IN ('key', 'call', 'chunk', 'ledger')),
    call_id TEXT,
    key_id TEXT,
    chunk INTEGER,                        -- chunk index within the call's file, from 0
    offset INTEGER,
    length INTEGER,
    ledger_seq INTEGER
);
CREATE TABLE IF NOT EXISTS files (        -- what is queued of each call's file
    call_id TEXT PRIMARY KEY,
    chunks INTEGER NOT NULL DEFAULT 0,
    bytes INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS confirmed (    -- calls the centre holds complete (file, key, row)
    call_id TEXT PRIMARY KEY,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS central_holds (  -- holds placed at the centre, applied here
    central_id INTEGER PRIMARY KEY,
    call_id TEXT NOT NULL,
    local_id INTEGER,
    released INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS state (k TEXT PRIMARY KEY, v TEXT NOT NULL)
"""


@dataclass(frozen=True)
class Item:
    seq: int
    queued_at: str
    kind: str
    call_id: str | None
    key_id: str | None
    chunk: int | None
    offset: int | None
    length: int | None
    ledger_seq: int | None


class Outbox:
    """One connection to the outbox file; ``note_*`` are safe from one writer thread."""

    def __init__(self, conn: sqlite3.Connection, path: Path, now: Callable[[], datetime]) -> None:
        self.conn = conn
        self.path = path
        self.now = now

    @classmethod
    def open(cls, data_dir: Path, now: Callable[[], datetime]) -> "Outbox":
        path = data_dir / OUTBOX_FILE
        try:
            conn = sqlite3.connect(path, isolation_level=None, timeout=10.0,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    conn.execute(stmt)
        except sqlite3.DatabaseError as exc:
            raise CatalogError(f"{path}: 送信待ちキューを開けません / cannot open the outbox "
                               f"({exc})") from None
        return cls(conn, path, now)

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.conn.close()

    def __enter__(self) -> "Outbox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[None]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _add(self, kind: str, **fields) -> None:
        cols = ["queued_at", "kind", *fields]
        self.conn.execute(
            f"INSERT INTO items ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
            (to_utc_text(self.now()), kind, *fields.values()))

    # --- the writer's hook (writer thread) -------------------------------------------
    def note_key(self, call_id: str, key_id: str) -> None:
        with self._tx():
            self._add("key", call_id=call_id, key_id=key_id)
            self.conn.execute("INSERT OR IGNORE INTO files (call_id) VALUES (?)", (call_id,))

    def note_call(self, call_id: str) -> None:
        with self._tx():
            self._add("call", call_id=call_id)
            self.conn.execute("INSERT OR IGNORE INTO files (call_id) VALUES (?)", (call_id,))

    def note_chunk(self, call_id: str, offset: int, length: int) -> None:
        """Bytes [offset, offset+length) of the call's sealed file were appended and synced."""
        if length <= 0:
            return
        with self._tx():
            self._chunk(call_id, offset, length)

    def _chunk(self, call_id: str, offset: int, length: int) -> None:
        row = self.conn.execute("SELECT chunks, bytes FROM files WHERE call_id = ?",
                                (call_id,)).fetchone()
        chunks, queued = row if row else (0, 0)
        if offset != queued:
            # a hole or an overlap would corrupt the centre's copy: queue only what follows
            if offset + length <= queued:
                return
            if offset > queued:
                raise CatalogError(f"outbox: chunk of {call_id} at {offset} leaves a hole after "
                                   f"{queued}")
            length -= queued - offset
            offset = queued
        self._add("chunk", call_id=call_id, chunk=chunks, offset=offset, length=length)
        self.conn.execute(
            "INSERT INTO files (call_id, chunks, bytes) VALUES (?, ?, ?) ON CONFLICT (call_id)"
            " DO UPDATE SET chunks = excluded.chunks, bytes = excluded.bytes",
            (call_id, chunks + 1, offset + length))

    # --- the sender's side ----------------------------------------------------------
    def pull_ledger(self, catalog: Catalog, limit: int = 2000) -> int:
        """Queue ledger entries appended since the last pull (bounded per call)."""
        with self._tx():
            last = int(self._get("ledger_pulled", "0"))
            seqs = [r[0] for r in catalog.conn.execute(
                "SELECT seq FROM ledger WHERE seq > ? ORDER BY seq LIMIT ?", (last, limit))]
            for seq in seqs:
                self._add("ledger", ledger_seq=seq)
            if seqs:
                self._set("ledger_pulled", str(seqs[-1]))
        return len(seqs)

    def reconcile(self, catalog: Catalog, path_of: Callable[[str], Path]) -> int:
        """Queue everything of the catalog's calls not queued yet; returns items added.

        Run where no writer appends at the same time: at the recorder's start
        (after crash recovery) and at enrolment.
        """
        added = 0
        known = {r[0]: (r[1], r[2]) for r in self.conn.execute(
            "SELECT call_id, chunks, bytes FROM files")}
        rows = catalog.conn.execute(
            "SELECT id, key_id, recording_path, state FROM calls ORDER BY started_at, id"
        ).fetchall()
        for call_id, key_id, relpath, state in rows:
            with self._tx():
                if call_id not in known:
                    if key_id and state != "erased":
                        self._add("key", call_id=call_id, key_id=key_id)
                        added += 1
                    self._add("call", call_id=call_id)
                    self.conn.execute("INSERT OR IGNORE INTO files (call_id) VALUES (?)",
                                      (call_id,))
                    added += 1
                if not relpath or state == "erased":
                    continue
                try:
                    size = path_of(relpath).stat().st_size
                except FileNotFoundError:
                    continue
                queued = known.get(call_id, (0, 0))[1]
                if size <= queued:
                    continue
                for off in range(queued, size, RECONCILE_PIECE):
                    self._chunk(call_id, off, min(RECONCILE_PIECE, size - off))
                    added += 1
                # the row (state, size, hash) follows its bytes
                self._add("call", call_id=call_id)
                added += 1
        return added

    def pending(self, limit: int = 500) -> list[Item]:
        return [Item(*r) for r in self.conn.execute(
            "SELECT seq, queued_at, kind, call_id, key_id, chunk, offset, length, ledger_seq"
            " FROM items ORDER BY seq LIMIT ?", (limit,))]

    def ack(self, upto_seq: int) -> int:
        """The centre holds every item up to ``upto_seq``: drop them."""
        with self._tx():
            n = self.conn.execute("DELETE FROM items WHERE seq <= ?", (upto_seq,)).rowcount
            self._set("acked", str(max(upto_seq, int(self._get("acked", "0")))))
        return n

    def count(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM items").fetchone()[0]

    def oldest_queued_at(self) -> datetime | None:
        row = self.conn.execute("SELECT queued_at FROM items ORDER BY seq LIMIT 1").fetchone()
        return from_utc_text(row[0]) if row else None

    def last_seq(self) -> int:
        row = self.conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'items'").fetchone()
        return row[0] if row else 0

    # --- what the centre told us ------------------------------------------------------
    def confirm(self, call_ids: list[str]) -> None:
        if not call_ids:
            return
        with self._tx():
            at = to_utc_text(self.now())
            self.conn.executemany("INSERT OR IGNORE INTO confirmed VALUES (?, ?)",
                                  [(c, at) for c in call_ids])

    def confirmed(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT call_id FROM confirmed")}

    def _get(self, key: str, default: str) -> str:
        row = self.conn.execute("SELECT v FROM state WHERE k = ?", (key,)).fetchone()
        return row[0] if row else default

    def _set(self, key: str, value: str) -> None:
        self.conn.execute("INSERT INTO state VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET"
                          " v = excluded.v", (key, value))

    def get_state(self, key: str, default: str = "") -> str:
        return self._get(key, default)

    def set_state(self, key: str, value: str) -> None:
        with self._tx():
            self._set(key, value)
