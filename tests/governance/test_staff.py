"""Who may do what (R10, R11, R12): every rule and every refusal, each on the ledger."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from appliance.store.catalog import Catalog


@pytest.fixture
def pw(tmp_path):
    def make(name: str, text: str):
        p = tmp_path / f"{name}.pw"
        p.write_text(text + "\n")
        return p
    return make


@pytest.fixture
def office(run_cli, datadir, staff, pw):
    """A manager, a handler, a deputy and a technician; one recorded call."""
    for name, role in (("tanto", "handler"), ("dairi", "deputy"), ("hoshu", "technician")):
        code, out, err = run_cli("--data-dir", datadir, "user", "add", name, "--role", role,
                                 "--new-password-file", pw(name, f"{name}-pass-1"),
                                 "--reference", "人事発令1", *staff)
        assert code == 0, err
    code, out, err = run_cli("--data-dir", datadir, "run", "--fast", "--demo-seconds", "1")
    assert code == 0, err
    code, out, err = run_cli("--data-dir", datadir, "calls", "--json", *staff)
    return json.loads(out)[0]["id"]


def as_(name, pw):
    return ["--user", name, "--password-file", pw(name, f"{name}-pass-1")]


def last_ledger(datadir):
    with Catalog.open(datadir / "catalog.sqlite", datetime.now(timezone.utc)) as cat:
        return list(cat.db["ledger"].rows_where(order_by="seq desc", limit=1))[0]


def test_handler_lists_and_extracts_on_duty(run_cli, datadir, office, pw, tmp_path):
    code, out, err = run_cli("--data-dir", datadir, "calls", "--json", *as_("tanto", pw))
    assert code == 0 and json.loads(out)[0]["id"] == office
    code, out, err = run_cli("--data-dir", datadir, "extract", office, "--out", tmp_path / "a.opus",
                             "--ground", "duty", "--reference", "苦情対応-7", *as_("tanto", pw))
    assert code == 0, err
    assert (tmp_path / "a.opus").read_bytes().startswith(b"OggS")


@pytest.mark.parametrize("who, args, message", [
    ("tanto", ["extract", "{call}", "--out", "{tmp}/x.opus", "--ground", "investigation",
               "--reference", "警察照会1"], "may not act on the ground investigation"),
    ("tanto", ["user", "add", "x2", "--role", "handler", "--new-password-file", "{tmp}/tanto.pw"],
     "may not appoint or remove staff"),
    ("tanto", ["hold", "release", "{call}", "--ground", "duty", "--reference", "r"],
     "may not release holds"),
    ("dairi", ["calls", "--json"], "acts only while marked acting"),
    ("hoshu", ["calls", "--json"], "technicians never see numbers or audio"),
    ("hoshu", ["extract", "{call}", "--out", "{tmp}/x.opus", "--ground", "duty", "--reference", "r"],
     "technicians never see numbers or audio"),
])
def test_refusals_are_clear_and_on_the_ledger(run_cli, datadir, office, pw, tmp_path,
                                              who, args, message):
    args = [a.format(call=office, tmp=tmp_path) for a in args]
    code, out, err = run_cli("--data-dir", datadir, *args, *as_(who, pw))
    assert code != 0 and message in err, err
    assert "Traceback" not in err
    entry = last_ledger(datadir)
    assert (entry["kind"], entry["actor"]) == ("refused", who)
    assert not (tmp_path / "x.opus").exists()


def test_deputy_acts_only_while_marked_acting(run_cli, datadir, office, pw, staff):
    deputy = as_("dairi", pw)
    assert run_cli("--data-dir", datadir, "calls", "--json", *deputy)[0] != 0
    code, out, err = run_cli("--data-dir", datadir, "acting", "on", "--reference", "課長出張",
                             *deputy)
    assert code == 0, err
    assert last_ledger(datadir)["kind"] == "user"
    assert run_cli("--data-dir", datadir, "calls", "--json", *deputy)[0] == 0
    # the acting deputy may release holds, which a handler may not
    assert run_cli("--data-dir", datadir, "hold", "add", office, "--ground", "law",
                   "--reference", "法令照会", *deputy)[0] == 0
    assert run_cli("--data-dir", datadir, "hold", "release", office, "--ground", "law",
                   "--reference", "照会終了", *deputy)[0] == 0
    assert run_cli("--data-dir", datadir, "acting", "off", *staff)[0] == 0
    code, out, err = run_cli("--data-dir", datadir, "calls", "--json", *deputy)
    assert code != 0 and "acting" in err


def test_only_the_deputy_starts_acting(run_cli, datadir, office, pw):
    code, out, err = run_cli("--data-dir", datadir, "acting", "on", *as_("tanto", pw))
    assert code != 0 and "only the deputy" in err


def test_removed_handler_old_password_opens_nothing(run_cli, datadir, office, pw, staff):
    keys = (datadir / "keys" / "wraps.json").read_text()
    assert '"tanto"' in keys and '"hoshu"' not in keys    # technicians hold no key
    code, out, err = run_cli("--data-dir", datadir, "user", "remove", "tanto",
                             "--reference", "人事異動", *staff)
    assert code == 0, err
    assert '"tanto"' not in (datadir / "keys" / "wraps.json").read_text()
    code, out, err = run_cli("--data-dir", datadir, "calls", "--json", *as_("tanto", pw))
    assert code != 0 and "wrong user name or password" in err
    entry = last_ledger(datadir)
    assert (entry["kind"], entry["actor"]) == ("refused", "tanto")


def test_password_change_rewraps_the_archive_key(run_cli, datadir, office, pw, tmp_path):
    new = pw("tanto-new", "tanto-pass-2")
    code, out, err = run_cli("--data-dir", datadir, "user", "passwd", "--new-password-file", new,
                             *as_("tanto", pw))
    assert code == 0, err
    assert run_cli("--data-dir", datadir, "calls", "--json", *as_("tanto", pw))[0] != 0
    code, out, err = run_cli("--data-dir", datadir, "extract", office, "--out", tmp_path / "b.opus",
                             "--ground", "duty", "--reference", "r1",
                             "--user", "tanto", "--password-file", new)
    assert code == 0, err


def test_user_list_shows_japanese_roles(run_cli, datadir, office, staff):
    code, out, err = run_cli("--data-dir", datadir, "user", "list", *staff)
    assert code == 0
    for label in ("管理責任者", "管理取扱者", "代理", "保守"):
        assert label in out
    assert "pass" not in out     # no password or hash material


def test_policy_config_can_widen_a_handlers_grounds(run_cli, datadir, office, pw, tmp_path):
    cfg = tmp_path / "appliance.toml"
    cfg.write_text('[policy.grounds]\nhandler = ["duty", "disclosure", "investigation"]\n')
    code, out, err = run_cli("--data-dir", datadir, "--config", cfg, "extract", office,
                             "--out", tmp_path / "c.opus", "--ground", "investigation",
                             "--reference", "警察照会2", *as_("tanto", pw))
    assert code == 0, err
    cfg.write_text('[policy.grounds]\ntechnician = ["duty"]\n')
    code, out, err = run_cli("--data-dir", datadir, "--config", cfg, "calls", "--json",
                             *as_("tanto", pw))
    assert code != 0 and "technicians may use no ground" in err
