"""The catalog interface on PostgreSQL: the governance code's SQL, unchanged, on the centre."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from appliance.central.pgcatalog import CatalogConflict, PgCatalog, qmark_to_pyformat
from appliance.central.schema import migrate
from appliance.governance.ledger import EntryKind, Ledger
from tests.central.conftest import pg_cluster  # noqa: F401 (fixture)

T0 = datetime(2026, 1, 5, 1, 0, tzinfo=timezone.utc)


def test_placeholders_outside_literals_only():
    assert qmark_to_pyformat("SELECT ? , '?', \"a?\" FROM t WHERE x LIKE '50%' AND y = ?") == \
        "SELECT %s , '?', \"a?\" FROM t WHERE x LIKE '50%%' AND y = %s"


@pytest.fixture
def pg(pg_cluster):  # noqa: F811
    name = f"u_{secrets.token_hex(5)}"
    with psycopg.connect(pg_cluster.conninfo, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    conn = psycopg.connect(f"host={pg_cluster.root} user=app dbname={name}", autocommit=True)
    assert migrate(conn, "2026-01-05T00:00:00.000+00:00") == [1, 2, 3]
    assert migrate(conn, "2026-01-05T00:00:00.000+00:00") == []       # once
    yield PgCatalog(conn)
    conn.close()
    with psycopg.connect(pg_cluster.conninfo, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


def _call(cat, cid, number, started):
    cat.db["sites"].insert({"code": "higashi", "name": "東庁舎", "created_at": "x"}) \
        if not list(cat.db["sites"].rows_where("code = ?", ["higashi"])) else None
    cat.insert_call({"id": cid, "site": "東庁舎", "trunk": "T1", "channel": 1, "direction": "in",
                     "started_at": started, "state": "complete", "far_number": number,
                     "site_code": "higashi", "site_call_id": cid.split("_", 1)[1]})


def test_the_ledger_chain_and_its_check_run_on_postgresql(pg):
    ledger = Ledger(pg)
    for i in range(5):
        ledger.append(EntryKind.HOLD, T0 + timedelta(seconds=i), actor="kacho", detail={"i": i})
    assert ledger.verify().ok and ledger.verify().entries == 5
    # an insider edits an entry in the database: the check names it
    pg.conn.execute("UPDATE ledger SET actor = 'someone' WHERE seq = 3")
    result = ledger.verify()
    assert not result.ok and result.first_bad_seq == 3


def test_calls_search_transactions_and_conflicts(pg):
    _call(pg, "higashi_a", "0263345000", "2026-01-05T01:00:00.000+00:00")
    _call(pg, "higashi_b", "0312345678", "2026-01-06T01:00:00.000+00:00")
    assert [r["id"] for r in pg.calls(number="0263345000")] == ["higashi_a"]
    assert [r["id"] for r in pg.calls(since=datetime(2026, 1, 6, tzinfo=timezone.utc))] == \
        ["higashi_b"]
    with pytest.raises(CatalogConflict):
        _call(pg, "higashi_a", "0", "2026-01-07T01:00:00.000+00:00")
    with pytest.raises(RuntimeError):
        with pg.transaction():
            pg.update_call("higashi_a", far_number="changed")
            raise RuntimeError("rolled back")
    assert pg.get_call("higashi_a")["far_number"] == "0263345000"
    cur = pg.conn.execute("INSERT INTO holds (call_id, ground, reference, created_by, created_at)"
                          " VALUES (?, ?, ?, ?, ?)", ("higashi_a", "law", "r", "k", "t"))
    assert cur.lastrowid == 1
