"""Holds (保管延長, R7) through the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from appliance.governance.ledger import Ledger
from appliance.store.catalog import Catalog


def test_hold_add_list_release(run_cli, datadir, staff):
    assert run_cli("--data-dir", datadir, "run", "--fast", "--demo-seconds", "1")[0] == 0
    cid = json.loads(run_cli("--data-dir", datadir, "calls", "--json", *staff)[1])[0]["id"]
    code, out, err = run_cli("--data-dir", datadir, "hold", "add", cid, "--ground", "investigation",
                             "--reference", "捜査関係事項照会書 第15号", *staff)
    assert code == 0, err
    holds = json.loads(run_cli("--data-dir", datadir, "hold", "list", "--json", *staff)[1])
    assert [(h["call_id"], h["ground"], h["reference"], h["created_by"]) for h in holds] == \
        [(cid, "investigation", "捜査関係事項照会書 第15号", "kacho")]
    code, out, err = run_cli("--data-dir", datadir, "hold", "release", cid, "--ground",
                             "investigation", "--reference", "照会終了", *staff)
    assert code == 0, err
    assert json.loads(run_cli("--data-dir", datadir, "hold", "list", "--json", *staff)[1]) == []
    all_ = json.loads(run_cli("--data-dir", datadir, "hold", "list", "--all", "--json", *staff)[1])
    assert all_[0]["released_by"] == "kacho" and all_[0]["release_reference"] == "照会終了"
    # nothing left to release: a clear error
    code, out, err = run_cli("--data-dir", datadir, "hold", "release", cid, "--ground",
                             "investigation", "--reference", "x", *staff)
    assert code != 0 and "no active hold" in err


def test_hold_needs_ground_and_a_future_date(run_cli, datadir, staff):
    assert run_cli("--data-dir", datadir, "run", "--fast", "--demo-seconds", "1")[0] == 0
    cid = json.loads(run_cli("--data-dir", datadir, "calls", "--json", *staff)[1])[0]["id"]
    code, out, err = run_cli("--data-dir", datadir, "hold", "add", cid, *staff)
    assert code != 0 and "ground is required" in err
    code, out, err = run_cli("--data-dir", datadir, "hold", "add", cid, "--ground", "law",
                             "--reference", "r", "--until", "2020-01-01", *staff)
    assert code != 0 and "in the past" in err
    code, out, err = run_cli("--data-dir", datadir, "hold", "add", "no-such-call", "--ground",
                             "law", "--reference", "r", *staff)
    assert code != 0 and "no call" in err


def test_release_one_matter_keeps_the_others_hold(run_cli, datadir, staff):
    # a call held for an investigation and for a disclosure request: when the
    # investigation ends, the request's hold must stay
    assert run_cli("--data-dir", datadir, "run", "--fast", "--demo-seconds", "1")[0] == 0
    cid = json.loads(run_cli("--data-dir", datadir, "calls", "--json", *staff)[1])[0]["id"]
    for ground, ref in (("investigation", "照会 第15号"), ("disclosure", "開示請求 第3号")):
        code, _, err = run_cli("--data-dir", datadir, "hold", "add", cid, "--ground", ground,
                               "--reference", ref, *staff)
        assert code == 0, err
    holds = json.loads(run_cli("--data-dir", datadir, "hold", "list", "--json", *staff)[1])
    by_ground = {h["ground"]: h["id"] for h in holds}
    # a hold id that is not one of this call's active holds: refused, nothing released
    code, _, err = run_cli("--data-dir", datadir, "hold", "release", cid, "--ground",
                           "investigation", "--reference", "照会終了", "--hold-id", "999", *staff)
    assert code != 0 and "#999" in err
    assert len(json.loads(run_cli("--data-dir", datadir, "hold", "list", "--json", *staff)[1])) == 2
    code, out, err = run_cli("--data-dir", datadir, "hold", "release", cid, "--ground",
                             "investigation", "--reference", "照会終了",
                             "--hold-id", str(by_ground["investigation"]), *staff)
    assert code == 0 and "released 1" in out, err
    left = json.loads(run_cli("--data-dir", datadir, "hold", "list", "--json", *staff)[1])
    assert [(h["id"], h["ground"]) for h in left] == [(by_ground["disclosure"], "disclosure")]
    # the ledger names the hold that was released
    with Catalog.open(datadir / "catalog.sqlite", datetime.now(UTC)) as cat:
        entries = Ledger(cat).entries()
    release = [e for e in entries if e["kind"] == "release"][-1]
    assert json.loads(release["detail"])["hold_ids"] == [by_ground["investigation"]]
    # without --hold-id, every active hold on the call goes (as before)
    code, out, err = run_cli("--data-dir", datadir, "hold", "release", cid, "--ground",
                             "disclosure", "--reference", "開示完了", *staff)
    assert code == 0 and "released 1" in out, err
    assert json.loads(run_cli("--data-dir", datadir, "hold", "list", "--json", *staff)[1]) == []
