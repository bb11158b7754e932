"""Registered schema migrations for the catalog.

Each migration runs in one transaction together with the row that records
it in ``schema_migrations``, so a crash mid-migration leaves the catalog at
the previous version, never in between. Append new migrations; never edit
one that has shipped.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from appliance.errors import CatalogError


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    apply: Callable[[sqlite3.Connection], None]


def _v1_initial(conn: sqlite3.Connection) -> None:
    # statement by statement: executescript() would commit the open transaction
    _run_script(conn, """
        CREATE TABLE calls (
            id TEXT PRIMARY KEY,
            site TEXT NOT NULL,
            trunk TEXT NOT NULL,
            channel INTEGER NOT NULL,
            direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
            started_at TEXT NOT NULL,          -- UTC, ISO 8601
            answered_at TEXT,
            ended_at TEXT,
            duration_s REAL,
            far_number TEXT,
            near_number TEXT,
            called_number TEXT,
            number_absent_reason TEXT CHECK (number_absent_reason IN
                ('withheld', 'unavailable', 'public_phone') OR number_absent_reason IS NULL),
            notice TEXT NOT NULL DEFAULT 'none' CHECK (notice IN ('played', 'not_heard', 'none')),
            state TEXT NOT NULL CHECK (state IN ('recording', 'complete', 'truncated',
                                                 'unanswered', 'erased')),
            recording_path TEXT,               -- relative to the data directory
            key_id TEXT,
            size INTEGER,
            sha256 TEXT,
            recorded_s REAL                    -- audio actually in the file
        );
        CREATE INDEX calls_started ON calls (started_at);
        CREATE INDEX calls_far ON calls (far_number);
        CREATE INDEX calls_near ON calls (near_number);
        CREATE INDEX calls_state ON calls (state);

        CREATE TABLE users (
            name TEXT PRIMARY KEY,
            role TEXT NOT NULL CHECK (role IN ('manager', 'deputy', 'handler', 'technician')),
            password_hash TEXT NOT NULL,
            acting INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL
        );

        CREATE TABLE ledger (
            seq INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            kind TEXT NOT NULL,
            call_ids TEXT NOT NULL DEFAULT '[]',
            ground TEXT,
            reference TEXT,
            actor TEXT,
            approver TEXT,
            recipient TEXT,
            detail TEXT NOT NULL DEFAULT '{}',
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        );
    """)


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    lines = [ln.split("--", 1)[0] for ln in script.splitlines()]
    for stmt in "\n".join(lines).split(";"):
        if stmt.strip():
            conn.execute(stmt)


def _v2_governance(conn: sqlite3.Connection) -> None:
    _run_script(conn, """
        CREATE TABLE holds (
            id INTEGER PRIMARY KEY,
            call_id TEXT NOT NULL REFERENCES calls (id),
            ground TEXT NOT NULL,
            reference TEXT NOT NULL,
            until TEXT,                        -- UTC; NULL = until released
            created_by TEXT NOT NULL,
            created_at TEXT NOT NULL,
            released_at TEXT,
            released_by TEXT,
            release_reference TEXT,
            request_id TEXT                    -- the disclosure request that placed it
        );
        CREATE INDEX holds_call ON holds (call_id);

        CREATE TABLE requests (
            id TEXT PRIMARY KEY,
            number TEXT NOT NULL,
            since TEXT NOT NULL,
            until TEXT NOT NULL,
            reference TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('open', 'closed')),
            opened_by TEXT NOT NULL,
            opened_at TEXT NOT NULL,
            closed_by TEXT,
            closed_at TEXT,
            call_ids TEXT NOT NULL DEFAULT '[]'
        );

        CREATE TABLE exports (
            id TEXT PRIMARY KEY,
            created_at TEXT NOT NULL,
            actor TEXT NOT NULL,
            ground TEXT NOT NULL,
            reference TEXT NOT NULL,
            recipient TEXT NOT NULL,
            path TEXT NOT NULL,
            manifest_sha256 TEXT NOT NULL,
            call_ids TEXT NOT NULL,
            request_id TEXT
        );

        ALTER TABLE calls ADD COLUMN erased_at TEXT;
        ALTER TABLE calls ADD COLUMN erase_reason TEXT
    """)


def _v3_engine(conn: sqlite3.Connection) -> None:
    _run_script(conn, """
        ALTER TABLE calls ADD COLUMN offered_at TEXT;              -- first ring/CAR or seizure (UTC)
        ALTER TABLE calls ADD COLUMN overrun_frames INTEGER NOT NULL DEFAULT 0;  -- lost to a stalled writer
        ALTER TABLE calls ADD COLUMN excluded INTEGER NOT NULL DEFAULT 0  -- metadata-only row (R5)
    """)


def _v4_operations(conn: sqlite3.Connection) -> None:
    _run_script(conn, """
        ALTER TABLE calls ADD COLUMN clock_unsynced INTEGER NOT NULL DEFAULT 0;  -- made while NTP was not synchronised
        CREATE TABLE alarms (
            id INTEGER PRIMARY KEY,
            code TEXT NOT NULL,                -- appliance.ops.alarms.AlarmCode
            subject TEXT NOT NULL DEFAULT '',  -- the line or device it concerns ('' = the appliance)
            raised_at TEXT NOT NULL,           -- UTC
            last_at TEXT NOT NULL,             -- UTC, the latest time the cause was seen
            cleared_at TEXT,                   -- UTC; NULL while active
            count INTEGER NOT NULL DEFAULT 1,
            detail TEXT NOT NULL DEFAULT ''    -- technician-level text, never a number
        );
        CREATE UNIQUE INDEX alarms_active ON alarms (code, subject) WHERE cleared_at IS NULL
    """)


def _v5_alarm_records(conn: sqlite3.Connection) -> None:
    _run_script(conn, """
        ALTER TABLE alarms ADD COLUMN severity TEXT NOT NULL DEFAULT 'error'
            CHECK (severity IN ('info', 'warning', 'error', 'critical'));
        ALTER TABLE alarms ADD COLUMN acknowledged_at TEXT;            -- UTC; NULL until acknowledged
        ALTER TABLE alarms ADD COLUMN acknowledged_by TEXT;
        ALTER TABLE alarms ADD COLUMN ack_note TEXT;
        -- every raise, clear, acknowledgement and test, in the order the outbox delivers them;
        -- AUTOINCREMENT: ids are never reused after pruning (each channel keeps a cursor)
        CREATE TABLE alarm_events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            alarm_id INTEGER,                  -- NULL for a test alarm
            event TEXT NOT NULL CHECK (event IN ('raised', 'cleared', 'acknowledged', 'test')),
            at TEXT NOT NULL,                  -- UTC
            code TEXT NOT NULL,
            severity TEXT NOT NULL,
            subject TEXT NOT NULL DEFAULT '',
            text TEXT NOT NULL DEFAULT ''      -- technician-level, never a number
        );
        -- the durable outbox's cursors: one per delivery path (syslog, mail, snmp …)
        CREATE TABLE alarm_delivery (
            channel TEXT PRIMARY KEY,
            last_event_id INTEGER NOT NULL,    -- delivered up to and including this event
            sent INTEGER NOT NULL DEFAULT 0,
            last_sent_at TEXT,
            failing_since TEXT,                -- UTC; NULL while deliveries succeed
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT
        );
        -- one deliverer at a time (recorder or web service): the holder renews its lease
        CREATE TABLE alarm_delivery_lease (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            owner TEXT NOT NULL,
            expires_at TEXT NOT NULL
        )
    """)


def _v6_gaps(conn: sqlite3.Connection) -> None:
    _run_script(conn, """
        -- time the appliance was not recording at all (a power shutdown until the restart):
        -- the completeness report counts it; calls are not rows here, they were never seen
        CREATE TABLE recording_gaps (
            id INTEGER PRIMARY KEY,
            started_at TEXT NOT NULL,          -- UTC
            ended_at TEXT NOT NULL,            -- UTC
            reason TEXT NOT NULL,              -- power, …
            seconds REAL NOT NULL,
            detail TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX recording_gaps_started ON recording_gaps (started_at)
    """)


def _v7_evidence(conn: sqlite3.Connection) -> None:
    _run_script(conn, """
        ALTER TABLE calls ADD COLUMN meta_salt TEXT;   -- salts the RECORD entry's digest of the row's fields; cleared on erasure
        CREATE TABLE capture_seals (
            call_id TEXT PRIMARY KEY,          -- the recording's latest device-signed coverage
            seq INTEGER NOT NULL,              -- the statement (one a second for every recording written)
            at TEXT NOT NULL,                  -- UTC, when it was signed
            length INTEGER NOT NULL,           -- bytes of the sealed file covered
            sha256 TEXT NOT NULL,              -- running SHA-256 of those bytes
            final INTEGER NOT NULL,            -- 1: the recording was closed at this length
            proof TEXT NOT NULL,               -- Merkle path from this entry to the statement's root
            root TEXT NOT NULL,                -- the statement's Merkle root (what was signed)
            sig TEXT NOT NULL                  -- the device's ECDSA P-256 signature (hex DER)
        )
    """)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial: calls, users, ledger", _v1_initial),
    Migration(2, "governance: holds, disclosure requests, exports, erasure", _v2_governance),
    Migration(3, "engine: offered_at, overrun_frames, excluded", _v3_engine),
    Migration(4, "operations: alarms, calls.clock_unsynced", _v4_operations),
    Migration(5, "alarm records: severity, acknowledgement, events, delivery outbox",
              _v5_alarm_records),
    Migration(6, "recording gaps: time without recording (power)", _v6_gaps),
    Migration(7, "evidence: calls.meta_salt, capture_seals", _v7_evidence),
)


def current_version(conn: sqlite3.Connection) -> int:
    conn.execute("""CREATE TABLE IF NOT EXISTS schema_migrations (
                        version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)""")
    row = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    return row[0] or 0


def migrate(conn: sqlite3.Connection, now_iso: str,
            migrations: tuple[Migration, ...] = MIGRATIONS) -> list[int]:
    """Apply every pending migration; returns the versions applied."""
    have = current_version(conn)
    known = max((m.version for m in migrations), default=0)
    if have > known:
        raise CatalogError(
            f"catalog schema version {have} is newer than this software ({known}): upgrade it")
    applied = []
    for m in sorted(migrations, key=lambda m: m.version):
        if m.version <= have:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            m.apply(conn)
            conn.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", (m.version, m.name, now_iso))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.append(m.version)
    return applied
