"""Retention and certain erasure (R6, R7, R8): exact boundaries, holds, crashes, pressure."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time as _time
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pytest

from appliance.clock import FakeClock
from appliance.engine.recorder import CallRecorder
from appliance.errors import ConfigError
from appliance.governance.access import Session
from appliance.governance.grounds import Ground
from appliance.governance.holds import add_holds
from appliance.governance.ledger import Ledger
from appliance.governance.retention import RetentionPolicy, Sweeper
from appliance.governance.users import authenticate
from appliance.store.catalog import TOKYO
from appliance.store.datadir import DataDir

JST = TOKYO


def jst(*a):
    return datetime(*a, tzinfo=JST)


@pytest.mark.parametrize("policy, recorded, erasable", [
    (RetentionPolicy(), date(2026, 1, 5), date(2026, 4, 6)),
    (RetentionPolicy(), date(2026, 1, 31), date(2026, 5, 1)),
    (RetentionPolicy(), date(2026, 11, 29), date(2027, 3, 1)),   # no 30 February: month's end
    (RetentionPolicy(), date(2026, 11, 30), date(2027, 3, 1)),
    (RetentionPolicy(), date(2026, 12, 31), date(2027, 4, 1)),
    (RetentionPolicy(months=6), date(2026, 1, 5), date(2026, 7, 6)),
    (RetentionPolicy(kind="days", days=30), date(2026, 1, 5), date(2026, 2, 5)),
    (RetentionPolicy(kind="days", days=90), date(2026, 1, 5), date(2026, 4, 6)),
    (RetentionPolicy(kind="end_of_next_month"), date(2026, 1, 5), date(2026, 3, 1)),
    (RetentionPolicy(kind="end_of_next_month"), date(2026, 12, 15), date(2027, 2, 1)),
    # 6 months, then 6 more on separate media (大阪市水道局)
    (RetentionPolicy(months=6, tier_months=6), date(2026, 1, 5), date(2027, 1, 6)),
    (RetentionPolicy(months=6, tier_months=6), date(2026, 8, 30), date(2027, 9, 1)),
])
def test_day_boundary(policy, recorded, erasable):
    assert policy.erasable_from(recorded) == erasable
    at = policy.erasable_at(recorded)
    assert at == datetime(erasable.year, erasable.month, erasable.day, tzinfo=JST)
    assert policy.last_expired_day(at) >= recorded
    assert policy.last_expired_day(at - timedelta(microseconds=1)) < recorded


@pytest.mark.parametrize("table", [{"policy": "weeks"}, {"months": 0}, {"color": "red"},
                                   {"days": "many"}])
def test_bad_retention_config_is_refused(table):
    with pytest.raises(ConfigError):
        RetentionPolicy.from_config(table)


class Office:
    """A data directory with calls recorded at chosen times, and a manager session."""

    def __init__(self, root, password=b"kanri-pass-1"):
        self.dd = DataDir(root)
        self.clock = FakeClock(jst(2026, 1, 5, 8, 0))
        self.catalog = self.dd.open_catalog(self.clock.now())
        self.recorder = CallRecorder(self.dd, self.catalog, "東庁舎")
        user = authenticate(self.catalog, "kacho", password)
        self.session = Session(user, password, self.dd, self.catalog, self.clock.now)

    def call(self, started: datetime, number="0263345000", frames=3) -> str:
        rec = self.recorder.start("T1", 1, "in", started)
        z = np.zeros(160, np.int16)
        for _ in range(frames):
            rec.write(z, z)
        rec.finish(started + timedelta(seconds=frames * 0.02), answered_at=started,
                   far_number=number)
        return rec.call_id

    def row(self, cid):
        return self.catalog.get_call(cid)

    def sweeper(self, policy=RetentionPolicy(), **kw):
        return Sweeper(self.dd, self.catalog, policy, self.clock.now, **kw)


@pytest.fixture
def office(datadir):
    o = Office(datadir)
    yield o
    o.catalog.close()


def intact(office, cid) -> bool:
    r = office.row(cid)
    return (r["state"] == "complete" and office.dd.keys.has_data_key(r["key_id"])
            and office.dd.path_of(r["recording_path"]).exists())


def erased(office, cid) -> bool:
    r = office.row(cid)
    return (r["state"] == "erased" and not office.dd.keys.has_data_key(r["key_id"])
            and not office.dd.path_of(r["recording_path"]).exists()
            and r["far_number"] is None and len(r["sha256"]) == 64)


def test_sweep_erases_exactly_the_expired_unheld_records(office):
    old = office.call(jst(2026, 1, 5, 9, 0))
    old_held = office.call(jst(2026, 1, 5, 10, 0))
    young = office.call(jst(2026, 1, 6, 9, 0))
    add_holds(office.session, [old_held], Ground.LAW, "法令照会-1")
    office.clock.sleep_until((jst(2026, 4, 6) - office.clock.now()).total_seconds()
                             + office.clock.monotonic())
    plan = office.sweeper().plan(office.clock.now())
    assert [i["id"] for i in plan["erase"]] == [old]
    assert [i["id"] for i in plan["held"]] == [old_held]
    # a second before midnight nothing is due
    assert office.sweeper().plan(jst(2026, 4, 5, 23, 59, 59))["erase"] == []

    result = office.sweeper().sweep()
    assert result.erased == [old] and result.held_kept == 1
    assert erased(office, old) and intact(office, old_held) and intact(office, young)
    entries = Ledger(office.catalog).entries()
    last = entries[-1]
    assert (last["kind"], json.loads(last["call_ids"])) == ("erase", [old])
    assert office.row(old)["sha256"] in last["detail"]
    assert office.sweeper().sweep().erased == []            # idempotent
    assert Ledger(office.catalog).verify().ok


def test_no_key_that_could_decrypt_an_erased_file_remains(office):
    cid = office.call(jst(2026, 1, 5, 9, 0))
    row = office.row(cid)
    private = office.session.archive_key()
    data_key = office.dd.keys.data_key(row["key_id"], private)
    sealed_key = (office.dd.keys.data_dir / f"{row['key_id']}.key").read_bytes()
    office.clock.advance(100 * 86400)
    assert office.sweeper().sweep().erased == [cid]
    office.catalog.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for path in office.dd.root.rglob("*"):
        if path.is_file():
            blob = path.read_bytes()
            for secret in (data_key, data_key.hex().encode(), sealed_key):
                assert secret not in blob, path
    # and the number is gone from the catalog file too (secure_delete)
    assert b"0263345000" not in (office.dd.root / "catalog.sqlite").read_bytes()


@pytest.mark.parametrize("step", ["marked", "key-destroyed", "file-removed"])
def test_a_crash_at_any_step_leaves_intact_or_erased(office, step):
    ids = [office.call(jst(2026, 1, 5, 9, i)) for i in range(4)]
    office.clock.advance(100 * 86400)
    victim = ids[1]

    def fault(at_step, call_id):
        if at_step == step and call_id == victim:
            raise KeyboardInterrupt("power cut")
    with pytest.raises(KeyboardInterrupt):
        office.sweeper(fault=fault).sweep()
    pending = 0
    for cid in ids:
        r = office.row(cid)
        # intact, or erased for everyone (the catalog refuses it) with remnants to finish
        assert r["state"] in ("complete", "erased")
        if r["state"] == "complete":
            assert intact(office, cid)
        elif not erased(office, cid):
            pending += 1
    # the batch was marked together: the victim (unless its file was already gone)
    # and the records after it await completion; the one before it was finished
    assert pending == len(ids) - 2 + (step != "file-removed")
    assert erased(office, ids[0])
    result = office.sweeper().sweep()
    assert all(erased(office, cid) for cid in ids)
    assert result.finished == pending


def test_kill_9_during_a_sweep_never_leaves_a_half_erased_record(office, tmp_path):
    ids = [office.call(jst(2026, 1, 5, 9, 0) + timedelta(seconds=i)) for i in range(150)]
    office.catalog.close()
    rng = random.Random(7)
    cfg = tmp_path / "appliance.toml"
    cfg.write_text('[retention]\npolicy = "days"\ndays = 1\n')
    cmd = [sys.executable, "-m", "appliance", "--data-dir", str(office.dd.root), "--config",
           str(cfg), "retention", "sweep", "--json"]
    for _ in range(3):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _time.sleep(rng.uniform(0.3, 1.0))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    office.catalog = office.dd.open_catalog(office.clock.now())
    for cid in ids:
        r = office.row(cid)
        assert r["state"] in ("complete", "erased")
        if r["state"] == "complete":
            assert intact(office, cid)
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert all(erased(office, cid) for cid in ids)
    assert Ledger(office.catalog).verify().ok


def test_storage_pressure_erases_oldest_unheld_first_and_raises_an_alarm(office):
    ids = [office.call(jst(2026, 1, 5, 9, i)) for i in range(5)]
    add_holds(office.session, [ids[0]], Ground.INVESTIGATION, "捜査関係事項照会-3")
    sizes = {cid: office.row(cid)["size"] for cid in ids}
    need = 1024 * 1024

    def free():  # disk is short by two recordings' worth
        gone = sum(sizes[c] for c in ids if office.row(c)["state"] == "erased")
        return need - sizes[ids[1]] - sizes[ids[2]] + gone
    policy = RetentionPolicy(min_free_mb=1)
    result = office.sweeper(policy, free_bytes=free).sweep()
    assert result.erased == []                              # nothing had expired
    assert result.pressure_erased == [ids[1], ids[2]]       # oldest unheld first
    assert intact(office, ids[0])                           # held: never touched
    assert intact(office, ids[3]) and intact(office, ids[4])
    assert result.alarms and "can no longer be kept" in result.alarms[0]
    assert Ledger(office.catalog).entries()[-1]["kind"] == "maintenance"


def test_storage_pressure_never_touches_held_records_even_when_still_short(office):
    ids = [office.call(jst(2026, 1, 5, 9, i)) for i in range(2)]
    add_holds(office.session, ids, Ground.DISCLOSURE, "開示請求-9")
    result = office.sweeper(RetentionPolicy(min_free_mb=1), free_bytes=lambda: 0).sweep()
    assert result.pressure_erased == [] and all(intact(office, c) for c in ids)
    assert any("only held records remain" in a for a in result.alarms)


def test_a_hold_until_a_date_expires(office):
    cid = office.call(jst(2026, 1, 5, 9, 0))
    add_holds(office.session, [cid], Ground.MAYOR, "市長決裁-4", until=jst(2026, 5, 1))
    office.clock.sleep_until((jst(2026, 4, 20) - jst(2026, 1, 5, 8, 0)).total_seconds())
    assert office.sweeper().sweep().erased == []
    office.clock.sleep_until((jst(2026, 5, 1) - jst(2026, 1, 5, 8, 0)).total_seconds())
    assert office.sweeper().sweep().erased == [cid]


def test_sweep_over_100000_calls(office, capsys):
    """Six months of calls: exactly the expired unheld ones go (and how long it took)."""
    rng = np.random.default_rng(11)
    start = jst(2026, 1, 1)
    offsets = np.sort(rng.uniform(0, 181 * 86400, 100_000))
    rows = []
    for i, off in enumerate(offsets):
        t = (start + timedelta(seconds=float(off))).astimezone(timezone.utc)
        rows.append((f"B{i:06d}", "東庁舎", "T1", 1, "in", t.isoformat(timespec="milliseconds"),
                     "complete", "0" * 64))
    cat = office.catalog
    with cat.transaction():
        cat.conn.executemany(
            "INSERT INTO calls (id, site, trunk, channel, direction, started_at, state, sha256)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    held = [rows[i][0] for i in rng.choice(50_000, 200, replace=False)]
    add_holds(office.session, held, Ground.LAW, "bench")
    now = jst(2026, 7, 1, 12, 0)
    office.clock.sleep_until((now - office.clock.now()).total_seconds())
    policy = RetentionPolicy()
    # the reference: recorded on or before 31 March JST (erasable 1 July 00:00), not held
    expired = {r[0] for r in rows
               if datetime.fromisoformat(r[5]).astimezone(JST).date() <= date(2026, 3, 31)}
    expected = expired - set(held)
    t0 = _time.perf_counter()
    result = office.sweeper(policy).sweep()
    elapsed = _time.perf_counter() - t0
    assert set(result.erased) == expected
    assert result.held_kept == len(expired & set(held))
    left = {r[0] for r in cat.conn.execute("SELECT id FROM calls WHERE state = 'complete'")}
    assert left == {r[0] for r in rows} - expected
    with capsys.disabled():
        print(f"\n[bench] retention sweep: {len(expected)} of 100000 calls erased in "
              f"{elapsed:.1f} s ({1e3 * elapsed / len(expected):.2f} ms per erasure)")


def test_export_bundles_on_the_appliance_are_removed_after_a_day(office):
    from appliance.governance.exports import create_export
    cid = office.call(jst(2026, 1, 5, 9, 0))
    inside = office.dd.root / "exports" / "web-1"
    inside.parent.mkdir()
    outside = office.dd.root.parent / "usb-stick-bundle"
    for out in (inside, outside):
        create_export(office.session, [cid], "law", "法令照会-2", "長野県警", out)
    assert any(p.suffix == ".opus" for p in inside.rglob("*"))
    office.clock.advance(23 * 3600)
    assert office.sweeper().sweep().exports_removed == []
    office.clock.advance(2 * 3600)
    result = office.sweeper().sweep()
    assert len(result.exports_removed) == 1
    assert not inside.exists()             # plain audio no longer on the appliance
    assert outside.exists()                # a copy written elsewhere is the exporter's
    assert Ledger(office.catalog).entries()[-1]["kind"] == "erase"
    assert intact(office, cid)             # the record itself is untouched


def test_tiered_policy_moves_to_separate_media_then_erases(office):
    from appliance.store.opus import read_recording
    from appliance.store.sealed import open_sealed
    policy = RetentionPolicy(months=6, tier_months=6)
    cid = office.call(jst(2026, 1, 5, 9, 0))
    row = office.row(cid)
    assert policy.primary_ends(date(2026, 1, 5)) == date(2026, 7, 6)
    start = office.clock.now()

    def go(t):
        office.clock.sleep_until((t - start).total_seconds())
    go(jst(2026, 7, 6))
    result = office.sweeper(policy).sweep()           # separate media not mounted yet
    assert result.moved_to_tier == [] and "not mounted" in result.alarms[0]
    assert intact(office, cid)
    (office.dd.root / "tier").mkdir()
    result = office.sweeper(policy).sweep()
    assert result.moved_to_tier == [cid] and result.erased == []
    moved = office.row(cid)
    assert moved["recording_path"] == "tier/" + row["recording_path"]
    assert not office.dd.path_of(row["recording_path"]).exists()
    # still a record: verified by hash, and staff can still open it
    data = office.dd.path_of(moved["recording_path"]).read_bytes()
    key = office.dd.keys.data_key(moved["key_id"], office.session.archive_key())
    assert read_recording(open_sealed(data, key).payload).duration_s > 0
    from appliance.store.verify import verify_recordings
    assert [f.status for f in verify_recordings(office.dd, office.catalog)] == ["intact"]
    assert Ledger(office.catalog).entries()[-1]["kind"] == "tier"
    go(jst(2027, 1, 5, 23, 59))
    assert office.sweeper(policy).sweep().erased == []
    go(jst(2027, 1, 6))
    assert office.sweeper(policy).sweep().erased == [cid]
    assert erased(office, cid)
