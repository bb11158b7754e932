"""Disclosure requests (開示請求, R15): find by number and period, hold, copy, close — on the ledger."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone

import pytest

from appliance.cli import main as cli_main
from appliance.engine.recorder import CallRecorder
from appliance.engine.synthetic import two_leg_frames
from appliance.governance.bundle import verify_bundle
from appliance.governance.holds import held_call_ids
from appliance.store.catalog import TOKYO, Catalog
from appliance.store.datadir import DataDir

MANAGER_PASSWORD = "kanri-pass-1"   # the password of conftest's 'staff' credentials
REQUESTER = "0263345678"
OTHER = "0263349999"
STAFF_LINE = "0263340001"


def jst(*args) -> datetime:
    return datetime(*args, tzinfo=TOKYO)


# (label, started_at, direction, far_number, called_number)
CALLS = [
    ("before", jst(2026, 1, 4, 23, 59, 59), "in", REQUESTER, None),
    ("first_moment", jst(2026, 1, 5, 0, 0, 0), "in", REQUESTER, None),
    ("other_person", jst(2026, 1, 7, 10, 0), "in", OTHER, None),
    ("outgoing", jst(2026, 1, 8, 14, 0), "out", REQUESTER, REQUESTER),
    ("withheld", jst(2026, 1, 8, 15, 0), "in", None, None),
    ("last_day", jst(2026, 1, 9, 23, 59, 0), "in", REQUESTER, None),
    ("after", jst(2026, 1, 10, 0, 0, 0), "in", REQUESTER, None),
]
EXPECTED = ["first_moment", "outgoing", "last_day"]


def record(dd: DataDir, cat: Catalog, started_at, direction, far_number, called_number) -> str:
    rec = CallRecorder(dd, cat, "大手事務所").start("T2", 1, direction, started_at)
    for far, near in two_leg_frames(0.4):
        rec.write(far, near)
    rec.finish(started_at + timedelta(seconds=0.4), answered_at=started_at,
               far_number=far_number, called_number=called_number, near_number=STAFF_LINE,
               number_absent_reason=None if far_number else "withheld")
    return rec.call_id


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """Built once and copied per test: kacho, handler tanto, technician hoshu, seven calls."""
    root = tmp_path_factory.mktemp("office")
    d = root / "data"
    (root / "kacho.pw").write_text(MANAGER_PASSWORD + "\n")

    def cli(*args):
        assert cli_main([str(a) for a in args]) == 0, args
    cli("--data-dir", d, "init", "--manager", "kacho", "--password-file", root / "kacho.pw",
        "--recovery-key-file", root / "recovery.txt")
    for name, role in (("tanto", "handler"), ("hoshu", "technician")):
        (root / f"{name}.pw").write_text(f"{name}-pass-1\n")
        cli("--data-dir", d, "user", "add", name, "--role", role, "--new-password-file",
            root / f"{name}.pw", "--reference", "人事発令1", "--user", "kacho",
            "--password-file", root / "kacho.pw")
    dd = DataDir(d)
    with dd.open_catalog(datetime.now(timezone.utc)) as cat:
        ids = {label: record(dd, cat, t, direction, far, called)
               for label, t, direction, far, called in CALLS}
    return d, ids


@pytest.fixture
def datadir(tmp_path, template):
    d = tmp_path / "data"
    shutil.copytree(template[0], d)
    return d


@pytest.fixture
def calls(datadir, template) -> dict[str, str]:
    return dict(template[1])


@pytest.fixture
def pw(tmp_path):
    def make(name: str) -> list[str]:
        p = tmp_path / f"{name}.pw"
        p.write_text(f"{name}-pass-1\n")
        return ["--user", name, "--password-file", str(p)]
    return make


def catalog(datadir) -> Catalog:
    return Catalog.open(datadir / "catalog.sqlite", datetime.now(timezone.utc))


def ledger(datadir) -> list[dict]:
    with catalog(datadir) as cat:
        return list(cat.db["ledger"].rows_where(order_by="seq"))


def open_request(run_cli, datadir, creds, number=REQUESTER, *extra):
    return run_cli("--data-dir", datadir, "request", "open", "--number", number,
                   "--since", "2026-01-05", "--until", "2026-01-09",
                   "--reference", "松本市個人情報開示請求 第2026-17号", *extra, *creds)


def test_open_finds_exactly_the_requesters_calls_in_the_period_and_holds_them(
        run_cli, datadir, staff, calls):
    before = len(ledger(datadir))
    # as a citizen writes it on the form: full-width digits and hyphens
    code, out, err = open_request(run_cli, datadir, staff, "０２６３－３４－５６７８", "--json")
    assert code == 0, err
    req = json.loads(out)
    expected = [calls[k] for k in EXPECTED]
    assert req["call_ids"] == expected
    assert [c["id"] for c in req["calls"]] == expected
    assert req["number"] == REQUESTER and req["state"] == "open"
    assert req["id"].startswith("REQ-")
    assert sorted(h["call_id"] for h in req["holds"] if h["active"]) == sorted(expected)
    with catalog(datadir) as cat:
        assert held_call_ids(cat, datetime.now(timezone.utc)) == set(expected)
        holds = list(cat.db["holds"].rows_where(order_by="id"))
    assert {(h["ground"], h["request_id"], h["until"]) for h in holds} == \
        {("disclosure", req["id"], None)}
    new = ledger(datadir)[before:]
    assert [e["kind"] for e in new] == ["request", "hold"]
    for e in new:
        assert (e["ground"], e["reference"], e["actor"]) == \
            ("disclosure", "松本市個人情報開示請求 第2026-17号", "kacho")
        assert json.loads(e["call_ids"]) == expected
    assert json.loads(new[0]["detail"])["step"] == "open"
    # the ledger names calls, never the person asking
    assert all(REQUESTER not in (e["detail"] + (e["reference"] or "")) for e in new)


def test_human_output_is_japanese_first_and_lists_the_calls(run_cli, datadir, staff, calls):
    code, out, err = open_request(run_cli, datadir, staff)
    assert code == 0, err
    first = out.splitlines()[0]
    assert first.startswith("開示請求 REQ-") and "3 件" in first
    for k in EXPECTED:
        assert calls[k] in out
    for k in ("before", "after", "other_person", "withheld"):
        assert calls[k] not in out


def test_list_show_export_close_as_a_handler(run_cli, datadir, calls, pw, tmp_path):
    tanto = pw("tanto")
    code, out, err = open_request(run_cli, datadir, tanto, REQUESTER, "--json")
    assert code == 0, err
    rid = json.loads(out)["id"]
    code, out, err = run_cli("--data-dir", datadir, "request", "list", "--json", *tanto)
    assert code == 0 and [r["id"] for r in json.loads(out)] == [rid]

    bundle = tmp_path / "kaiji"
    code, out, err = run_cli("--data-dir", datadir, "request", "export", rid, "--recipient",
                             "請求者本人 松本太郎", "--out", bundle, *tanto)
    assert code == 0, err
    check = verify_bundle(bundle)
    assert check.ok, check.problems
    m = check.manifest
    expected = [calls[k] for k in EXPECTED]
    assert [c["id"] for c in m["calls"]] == expected
    assert sorted(p.name for p in (bundle / "calls").iterdir()) == sorted(f"{c}.opus" for c in expected)
    assert (m["ground"]["code"], m["ground"]["label_ja"], m["ground"]["article"]) == \
        ("disclosure", "開示請求", "第9条")
    assert m["request"]["id"] == rid and m["reference"] == "松本市個人情報開示請求 第2026-17号"
    provide = ledger(datadir)[-1]
    assert (provide["kind"], provide["ground"], provide["recipient"], provide["actor"]) == \
        ("provide", "disclosure", "請求者本人 松本太郎", "tanto")

    code, out, err = run_cli("--data-dir", datadir, "request", "show", rid, "--json", *tanto)
    shown = json.loads(out)
    assert code == 0 and [e["id"] for e in shown["exports"]] == [m["export_id"]]

    code, out, err = run_cli("--data-dir", datadir, "request", "close", rid, *tanto)
    assert code == 0 and "終了しました" in out, err
    close = ledger(datadir)[-1]
    assert (close["kind"], json.loads(close["detail"])) == \
        ("request", {"step": "close", "request": rid, "exports": [m["export_id"]]})
    with catalog(datadir) as cat:
        row = list(cat.db["requests"].rows_where("id = ?", [rid]))[0]
        assert (row["state"], row["closed_by"]) == ("closed", "tanto")
        # closing keeps the holds: releasing them is the manager's decision
        assert held_call_ids(cat, datetime.now(timezone.utc)) == set(expected)

    code, out, err = run_cli("--data-dir", datadir, "request", "list", "--json", *tanto)
    assert json.loads(out) == []
    code, out, err = run_cli("--data-dir", datadir, "request", "list", "--all", "--json", *tanto)
    assert [r["state"] for r in json.loads(out)] == ["closed"]
    for cmd in (["close", rid], ["export", rid, "--recipient", "x", "--out", tmp_path / "again"]):
        code, out, err = run_cli("--data-dir", datadir, "request", *cmd, *tanto)
        assert code == 2 and "is closed" in err
    assert not (tmp_path / "again").exists()


def test_a_request_that_finds_nothing_is_recorded_and_has_nothing_to_copy(
        run_cli, datadir, staff, tmp_path):
    code, out, err = open_request(run_cli, datadir, staff, "0120000000", "--json")
    assert code == 0, err
    req = json.loads(out)
    assert req["call_ids"] == [] and req["holds"] == []
    assert ledger(datadir)[-1]["kind"] == "request"
    code, out, err = run_cli("--data-dir", datadir, "request", "export", req["id"],
                             "--recipient", "本人", "--out", tmp_path / "b", *staff)
    assert code == 2 and "nothing to provide" in err and not (tmp_path / "b").exists()


@pytest.mark.parametrize("who, args, message", [
    ("hoshu", [], "technicians never see numbers or audio"),
    ("kacho", ["--reference", " "], "reference"),
])
def test_refusals_land_on_the_ledger_and_hold_nothing(run_cli, datadir, staff, calls, pw,
                                                      who, args, message):
    creds = staff if who == "kacho" else pw(who)
    before = len(ledger(datadir))
    code, out, err = open_request(run_cli, datadir, creds, REQUESTER, *args)
    assert code == 2 and message in err, err
    new = ledger(datadir)[before:]
    assert [(e["kind"], e["actor"]) for e in new] == [("refused", who)]
    assert json.loads(new[0]["detail"])["action"] == "request"
    with catalog(datadir) as cat:
        assert list(cat.db["requests"].rows_where()) == []
        assert held_call_ids(cat, datetime.now(timezone.utc)) == set()


def test_technician_cannot_copy_a_request(run_cli, datadir, staff, calls, pw, tmp_path):
    code, out, err = open_request(run_cli, datadir, staff, REQUESTER, "--json")
    rid = json.loads(out)["id"]
    code, out, err = run_cli("--data-dir", datadir, "request", "export", rid, "--recipient", "x",
                             "--out", tmp_path / "t", *pw("hoshu"))
    assert code == 2 and "technicians" in err and not (tmp_path / "t").exists()
    entry = ledger(datadir)[-1]
    assert (entry["kind"], entry["actor"]) == ("refused", "hoshu")


@pytest.mark.parametrize("args, message", [
    (["--number", "abc"], "not a telephone number"),
    (["--since", "2026-01-09", "--until", "2026-01-05"], "--until must be after --since"),
])
def test_bad_input_is_refused_clearly(run_cli, datadir, staff, args, message):
    base = {"--number": REQUESTER, "--since": "2026-01-05", "--until": "2026-01-09",
            "--reference": "r"}
    for i in range(0, len(args), 2):
        base[args[i]] = args[i + 1]
    code, out, err = run_cli("--data-dir", datadir, "request", "open",
                             *[x for kv in base.items() for x in kv], *staff)
    assert code == 2 and message in err and "Traceback" not in err
    with catalog(datadir) as cat:
        assert list(cat.db["requests"].rows_where()) == []


def test_unknown_request_is_a_clear_error(run_cli, datadir, staff):
    code, out, err = run_cli("--data-dir", datadir, "request", "show", "REQ-20260101-999", *staff)
    assert code == 2 and "no disclosure request REQ-20260101-999" in err
