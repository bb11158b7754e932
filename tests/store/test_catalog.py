"""The catalog: migrations, times, transactions, and damage reported clearly."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from appliance.errors import CatalogCorrupt, CatalogError, DataDirError, UnknownCall
from appliance.store import migrations
from appliance.store.catalog import Catalog, to_local_text

NOW = datetime(2026, 1, 5, 8, 30, tzinfo=timezone(timedelta(hours=9)))


def row(i, **kw):
    r = {"id": f"C{i}", "site": "東庁舎", "trunk": "T1", "channel": 1, "direction": "in",
         "started_at": (NOW + timedelta(minutes=i)).astimezone(timezone.utc).isoformat(
             timespec="milliseconds"), "state": "complete"}
    r.update(kw)
    return r


@pytest.fixture
def cat(tmp_path):
    c = Catalog.open(tmp_path / "c.sqlite", NOW, create=True)
    yield c
    c.close()


def test_migrations_are_recorded_and_idempotent(tmp_path, cat):
    versions = [r[0] for r in cat.conn.execute("SELECT version FROM schema_migrations")]
    assert versions == [m.version for m in migrations.MIGRATIONS]
    assert cat.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    cat.close()
    again = Catalog.open(tmp_path / "c.sqlite", NOW)
    assert [r[0] for r in again.conn.execute("SELECT version FROM schema_migrations")] == versions
    again.close()


def test_failed_migration_leaves_previous_version(tmp_path):
    conn = sqlite3.connect(tmp_path / "m.sqlite", isolation_level=None)

    def broken(c):
        c.execute("CREATE TABLE half (x)")
        raise RuntimeError("power cut")
    mig = migrations.MIGRATIONS + (migrations.Migration(99, "broken", broken),)
    with pytest.raises(RuntimeError):
        migrations.migrate(conn, "t", mig)
    assert migrations.current_version(conn) == migrations.MIGRATIONS[-1].version
    assert conn.execute("SELECT name FROM sqlite_master WHERE name='half'").fetchone() is None


def test_newer_schema_is_refused(tmp_path, cat):
    cat.conn.execute("INSERT INTO schema_migrations VALUES (999, 'future', 'x')")
    cat.close()
    with pytest.raises(CatalogError, match="newer"):
        Catalog.open(tmp_path / "c.sqlite", NOW)


def test_times_stored_utc_shown_tokyo(cat):
    cat.insert_call(row(0))
    stored = cat.get_call("C0")["started_at"]
    assert stored == "2026-01-04T23:30:00.000+00:00"
    assert to_local_text(stored) == "2026-01-05T08:30:00+09:00"


def test_filters(cat):
    cat.insert_call(row(0, far_number="0263345000"))
    cat.insert_call(row(1, far_number="0312345678"))
    cat.insert_call(row(2, near_number="0263345000", direction="out"))
    assert [r["id"] for r in cat.calls(number="0263345000")] == ["C0", "C2"]
    assert [r["id"] for r in cat.calls(since=NOW + timedelta(minutes=1))] == ["C1", "C2"]
    assert [r["id"] for r in cat.calls(until=NOW + timedelta(minutes=1))] == ["C0"]


def test_nested_transactions_roll_back_alone(cat):
    with cat.transaction():
        cat.insert_call(row(0))
        with pytest.raises(ValueError):
            with cat.transaction():
                cat.insert_call(row(1))
                raise ValueError("inner")
    assert [r["id"] for r in cat.calls()] == ["C0"]
    with pytest.raises(ValueError):
        with cat.transaction():
            cat.insert_call(row(2))
            raise ValueError("outer")
    assert [r["id"] for r in cat.calls()] == ["C0"]


def test_constraints_and_unknown_calls(cat):
    with pytest.raises(CatalogError):
        cat.insert_call(row(0, direction="sideways"))
    with pytest.raises(UnknownCall):
        cat.get_call("nope")
    with pytest.raises(UnknownCall):
        cat.update_call("nope", state="complete")


def test_corrupt_and_missing_catalogs(tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(CatalogCorrupt, match="damaged"):
        Catalog.open(bad, NOW)
    with pytest.raises(DataDirError):
        Catalog.open(tmp_path / "missing.sqlite", NOW)
