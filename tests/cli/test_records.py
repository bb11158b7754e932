"""The CLI over records, as staff, technicians and auditors use it."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone

import pytest

from appliance.governance.users import Role, add_user
from appliance.store.catalog import Catalog
from appliance.store.opus import read_recording

CALL_KEYS = {"id", "site", "trunk", "channel", "direction", "started_at", "answered_at",
             "ended_at", "duration_s", "far_number", "near_number", "number_absent_reason",
             "notice", "state", "sha256"}


def record_call(run_cli, datadir, seconds=2):
    code, out, err = run_cli("--data-dir", datadir, "run", "--fast", "--demo-seconds", seconds)
    assert code == 0, err


def list_calls(run_cli, datadir, staff, *extra):
    code, out, err = run_cli("--data-dir", datadir, "calls", "--json", *staff, *extra)
    assert code == 0, err
    return json.loads(out)


def test_calls_json_has_the_contract_keys(run_cli, datadir, staff):
    record_call(run_cli, datadir, 3)
    calls = list_calls(run_cli, datadir, staff)
    assert len(calls) == 1
    c = calls[0]
    assert CALL_KEYS <= set(c)
    assert c["direction"] in ("in", "out") and c["state"] == "complete"
    assert c["notice"] in ("played", "not_heard", "none")
    assert c["number_absent_reason"] in ("withheld", "unavailable", "public_phone", None)
    for k in ("started_at", "answered_at", "ended_at"):
        t = datetime.fromisoformat(c[k])
        assert t.utcoffset().total_seconds() == 9 * 3600       # shown in Japan time
    assert c["duration_s"] == pytest.approx(3.0, abs=0.05)
    assert len(c["sha256"]) == 64


def test_calls_filters_by_period(run_cli, datadir, staff):
    record_call(run_cli, datadir)
    assert len(list_calls(run_cli, datadir, staff, "--since", "2000-01-01")) == 1
    assert list_calls(run_cli, datadir, staff, "--until", "2000-01-01") == []
    assert list_calls(run_cli, datadir, staff, "--number", "0299999999") == []


def test_extract_returns_the_recording_and_lands_on_the_ledger(run_cli, datadir, staff, tmp_path):
    record_call(run_cli, datadir, 2)
    cid = list_calls(run_cli, datadir, staff)[0]["id"]
    out = tmp_path / "copy.opus"
    code, stdout, err = run_cli("--data-dir", datadir, "extract", cid, "--out", out,
                                "--ground", "duty", "--reference", "人事第12号", *staff)
    assert code == 0, err
    rec = read_recording(out.read_bytes())
    assert not rec.truncated and len(rec.far) == 2 * 8000
    assert rec.tags["CALL_ID"] == cid
    with Catalog.open(datadir / "catalog.sqlite", datetime.now(timezone.utc)) as cat:
        last = list(cat.db["ledger"].rows_where(order_by="seq desc", limit=1))[0]
    assert (last["kind"], last["ground"], last["reference"], last["actor"]) == \
        ("extract", "duty", "人事第12号", "kacho")
    assert json.loads(last["call_ids"]) == [cid]


@pytest.mark.parametrize("ground, reference, message", [
    (None, "x", "ground is required"),
    ("curiosity", "x", "unknown ground"),
    ("law", None, "reference"),
])
def test_extract_without_a_valid_ground_is_refused_and_logged(
        run_cli, datadir, staff, tmp_path, ground, reference, message):
    record_call(run_cli, datadir)
    cid = list_calls(run_cli, datadir, staff)[0]["id"]
    args = ["--data-dir", datadir, "extract", cid, "--out", tmp_path / "x.opus", *staff]
    if ground:
        args += ["--ground", ground]
    if reference:
        args += ["--reference", reference]
    code, out, err = run_cli(*args)
    assert code != 0 and message in err
    assert not (tmp_path / "x.opus").exists()
    with Catalog.open(datadir / "catalog.sqlite", datetime.now(timezone.utc)) as cat:
        kinds = [r["kind"] for r in cat.db["ledger"].rows_where(order_by="seq")]
    assert kinds[-1] == "refused"


def test_wrong_password_is_refused_clearly(run_cli, datadir, tmp_path):
    bad = tmp_path / "bad.pw"
    bad.write_text("not-the-password\n")
    code, out, err = run_cli("--data-dir", datadir, "calls", "--user", "kacho",
                             "--password-file", bad)
    assert code != 0 and "wrong user name or password" in err and out == ""


def test_technician_never_sees_a_number(run_cli, datadir, tmp_path):
    record_call(run_cli, datadir)
    pw = tmp_path / "tech.pw"
    pw.write_text("hoshu-pass-1\n")
    with Catalog.open(datadir / "catalog.sqlite", datetime.now(timezone.utc)) as cat:
        add_user(cat, "hoshu", Role.TECHNICIAN, b"hoshu-pass-1", datetime.now(timezone.utc))
    for cmd in (["calls", "--json"], ["extract", "X", "--out", tmp_path / "t.opus",
                                      "--ground", "duty", "--reference", "r"]):
        code, out, err = run_cli("--data-dir", datadir, *cmd, "--user", "hoshu",
                                 "--password-file", pw)
        assert code != 0 and "technicians" in err and out == ""


def test_verify_reports_every_kind_of_damage(run_cli, datadir, staff):
    for _ in range(3):
        record_call(run_cli, datadir)
    code, out, err = run_cli("--data-dir", datadir, "verify", "--json")
    assert code == 0 and json.loads(out)["ok"] is True
    calls = list_calls(run_cli, datadir, staff)
    with Catalog.open(datadir / "catalog.sqlite", datetime.now(timezone.utc)) as cat:
        paths = {c["id"]: datadir / cat.get_call(c["id"])["recording_path"] for c in calls}
    flipped, removed = calls[0]["id"], calls[1]["id"]
    data = bytearray(paths[flipped].read_bytes())
    data[len(data) // 2] ^= 0x01
    paths[flipped].write_bytes(bytes(data))
    paths[removed].unlink()
    code, out, err = run_cli("--data-dir", datadir, "verify", "--json")
    report = json.loads(out)
    assert code == 1 and report["ok"] is False
    assert {(p["call_id"], p["status"]) for p in report["problems"]} == \
        {(flipped, "altered"), (removed, "missing")}
    code, out, err = run_cli("--data-dir", datadir, "verify")
    assert code == 1 and flipped in out and "改変" in out


def test_one_flipped_byte_anywhere_is_reported(run_cli, datadir, staff):
    record_call(run_cli, datadir, 1)
    cid = list_calls(run_cli, datadir, staff)[0]["id"]
    with Catalog.open(datadir / "catalog.sqlite", datetime.now(timezone.utc)) as cat:
        path = datadir / cat.get_call(cid)["recording_path"]
    original = path.read_bytes()
    for pos in range(0, len(original), max(1, len(original) // 40)):
        data = bytearray(original)
        data[pos] ^= 0x80
        path.write_bytes(bytes(data))
        code, out, _ = run_cli("--data-dir", datadir, "verify", "--json")
        assert code == 1 and json.loads(out)["problems"][0]["status"] == "altered", pos
    path.write_bytes(original)
    assert run_cli("--data-dir", datadir, "verify")[0] == 0


def test_init_twice_is_refused(run_cli, datadir, password_file):
    code, out, err = run_cli("--data-dir", datadir, "init", "--manager", "x",
                             "--password-file", password_file)
    assert code != 0 and "already initialised" in err


def test_init_prints_the_recovery_key_once(run_cli, tmp_path, password_file):
    code, out, err = run_cli("--data-dir", tmp_path / "d", "init", "--manager", "kacho",
                             "--password-file", password_file)
    assert code == 0 and "RECOVERY KEY" in out
    key = out.split("RECOVERY KEY")[1].splitlines()[1].strip()
    assert len(key.replace("-", "")) == 52
    for p in (tmp_path / "d").rglob("*"):
        if p.is_file():
            assert key.encode() not in p.read_bytes()


@pytest.mark.parametrize("setup, args, message", [
    ("missing", ["verify"], "no such data directory"),
    ("corrupt", ["verify"], "damaged"),
    ("empty", ["run", "--fast"], "not initialised"),
])
def test_bad_data_dirs_get_a_clear_error_without_traceback(tmp_path, run_subprocess, setup, args,
                                                          message):
    d = tmp_path / "d"
    if setup == "corrupt":
        d.mkdir()
        (d / "catalog.sqlite").write_bytes(b"\x00garbage" * 500)
        (d / "keys").mkdir()
        (d / "keys" / "archive.pub").write_bytes(bytes(32))
    elif setup == "empty":
        d.mkdir()
    res = run_subprocess("--data-dir", d, *args)
    assert res.returncode != 0
    assert message in res.stderr
    assert "Traceback" not in res.stderr


def test_catalog_row_edit_is_caught_by_verify(run_cli, datadir, staff):
    record_call(run_cli, datadir)
    cid = list_calls(run_cli, datadir, staff)[0]["id"]
    conn = sqlite3.connect(datadir / "catalog.sqlite")
    conn.execute("UPDATE calls SET sha256 = ? WHERE id = ?", ("0" * 64, cid))
    conn.commit()
    conn.close()
    assert run_cli("--data-dir", datadir, "verify")[0] == 1
