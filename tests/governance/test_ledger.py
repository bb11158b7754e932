"""The ledger (通話記録管理簿, R14): any tampering is found and named; the CSV opens in Excel."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from appliance.governance.ledger import EntryKind, Ledger
from appliance.store.catalog import Catalog

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def ledger(tmp_path):
    cat = Catalog.open(tmp_path / "c.sqlite", T0, create=True)
    led = Ledger(cat)
    for i in range(6):
        led.append(EntryKind.EXTRACT, T0 + timedelta(minutes=i), call_ids=[f"C{i}"],
                   ground="duty", reference=f"参照-{i}", actor="kacho")
    yield led
    cat.close()


def sql(ledger, statement, *args):
    ledger.catalog.conn.execute(statement, args)


def test_intact_ledger_verifies(ledger):
    res = ledger.verify()
    assert res.ok and res.entries == 6 and res.head_seq == 6


@pytest.mark.parametrize("tamper, first_bad", [
    (lambda L: sql(L, "UPDATE ledger SET reference = 'changed' WHERE seq = 3"), 3),
    (lambda L: sql(L, "UPDATE ledger SET actor = 'someone' WHERE seq = 1"), 1),
    (lambda L: sql(L, "UPDATE ledger SET at = '2026-01-01T00:00:00.000+00:00' WHERE seq = 6"), 6),
    (lambda L: sql(L, "DELETE FROM ledger WHERE seq = 4"), 5),
    (lambda L: sql(L, "UPDATE ledger SET seq = seq + 100 WHERE seq >= 3"), 103),
])
def test_edits_deletions_and_gaps_are_named(ledger, tamper, first_bad):
    tamper(ledger)
    res = ledger.verify()
    assert not res.ok and res.first_bad_seq == first_bad


def test_insertion_is_found(ledger):
    cur = ledger.catalog.conn.execute("SELECT * FROM ledger WHERE seq = 2")
    row = dict(zip([d[0] for d in cur.description], cur.fetchone()))
    # make room from the top down (SQLite checks uniqueness row by row)
    for seq in range(6, 2, -1):
        sql(ledger, "UPDATE ledger SET seq = ? WHERE seq = ?", seq + 1, seq)
    row["seq"], row["reference"] = 3, "inserted"
    ledger.catalog.db["ledger"].insert(row)
    res = ledger.verify()
    assert not res.ok and res.first_bad_seq == 3


def test_reordering_is_found(ledger):
    sql(ledger, "UPDATE ledger SET seq = 100 WHERE seq = 2")
    sql(ledger, "UPDATE ledger SET seq = 2 WHERE seq = 3")
    sql(ledger, "UPDATE ledger SET seq = 3 WHERE seq = 100")
    res = ledger.verify()
    assert not res.ok and res.first_bad_seq == 2


def test_removing_the_tail_is_found_against_an_anchor(ledger):
    head = ledger.verify()
    sql(ledger, "DELETE FROM ledger WHERE seq >= 5")
    assert ledger.verify().ok                      # the chain alone cannot tell
    res = ledger.verify(anchor=(head.head_seq, head.head_hash))
    assert not res.ok and res.first_bad_seq == 6


def test_editing_the_database_file_is_found(tmp_path):
    path = tmp_path / "c.sqlite"
    cat = Catalog.open(path, T0, create=True)
    Ledger(cat).append(EntryKind.ERASE, T0, call_ids=["C1"], reference="REF-AAAA-1",
                       actor="retention")
    Ledger(cat).append(EntryKind.HOLD, T0, call_ids=["C2"], reference="REF-BBBB-2", actor="kacho")
    cat.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    cat.close()
    blob = path.read_bytes()
    assert blob.count(b"REF-AAAA-1") == 1
    path.write_bytes(blob.replace(b"REF-AAAA-1", b"REF-AAAA-7"))
    with Catalog.open(path, T0) as cat:
        res = Ledger(cat).verify()
    assert not res.ok and res.first_bad_seq == 1


def test_cli_verify_and_csv(run_cli, datadir, staff, tmp_path):
    code, out, err = run_cli("--data-dir", datadir, "ledger", "verify", "--json")
    assert code == 0 and json.loads(out)["ok"]
    head = json.loads(out)["head"]
    code, out, err = run_cli("--data-dir", datadir, "ledger", "verify", "--anchor", head)
    assert code == 0 and "ledger intact" in out
    target = tmp_path / "kanribo.csv"
    code, out, err = run_cli("--data-dir", datadir, "ledger", "export", "--csv", "--out", target,
                             *staff)
    assert code == 0, err
    raw = target.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")                 # BOM for Japanese Excel
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0][:8] == ["日時", "区分", "対象通話", "根拠", "参照番号", "提供先", "実施者", "承認者"]
    assert rows[1][1] == "初期設定" and rows[1][6] == "kacho"
    # tamper, then the CLI names the entry and fails
    conn = sqlite3.connect(datadir / "catalog.sqlite")
    conn.execute("UPDATE ledger SET actor = 'x' WHERE seq = 1")
    conn.commit()
    conn.close()
    code, out, err = run_cli("--data-dir", datadir, "ledger", "verify")
    assert code == 1 and "#1" in out


def test_csv_export_is_staff_only(run_cli, datadir, tmp_path):
    from appliance.governance.users import Role, add_user
    with Catalog.open(datadir / "catalog.sqlite", T0) as cat:
        add_user(cat, "hoshu", Role.TECHNICIAN, b"hoshu-pass-1", T0)
    pw = tmp_path / "h.pw"
    pw.write_text("hoshu-pass-1")
    code, out, err = run_cli("--data-dir", datadir, "ledger", "export", "--csv", "--user", "hoshu",
                             "--password-file", pw)
    assert code != 0 and out == ""
