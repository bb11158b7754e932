"""Must hold: one request across both sites; holds and erasure on both copies; a lost site.

Two sites (東庁舎 and 大手事務所) record the demo scenario and replicate to
the centre. At the centre a disclosure request for one caller finds, holds
and exports that caller's calls at both sites; the bundle verifies offline.
The centre's holds reach both appliances, where a retention sweep four
months later keeps the held calls and erases the rest; the centre's own
sweep does the same. For every erased call neither place keeps a key that
opens it — checked the way an insider would: with a copy of the sealed file
taken before the sweep and the city's private key, every data key left at
the sites and at the centre is tried against it.
"""

from __future__ import annotations

import json

import httpx
import shutil
import sqlite3
from datetime import datetime, timedelta, timezone

from nacl.exceptions import CryptoError
from nacl.public import SealedBox

from appliance.central.centre import Centre, CentralSettings
from appliance.clock import SystemClock
from appliance.governance.retention import RetentionPolicy, Sweeper
from appliance.store.catalog import Catalog
from appliance.store.datadir import DataDir
from appliance.store.sealed import open_sealed
from appliance.errors import SealedFileError
from tests.central.conftest import CENTRE_MANAGER, CENTRE_PASSWORD, cli

CALLER = "0263345000"       # the demo's incoming caller, at both sites


def _replicate_both(sites):
    procs = [s.replicate("--until-empty", log=f"rep-{i}.log") for i, s in enumerate(sites)]
    for p in procs:
        assert p.wait(180) == 0, p.log_path.read_text()[-2000:]


def test_a_request_across_both_sites_holds_and_erasure_on_both_copies(centre, make_site,
                                                                      tmp_path):
    east = make_site("higashi", "東庁舎")
    ote = make_site("ote", "大手事務所")
    for s, code in ((east, "higashi"), (ote, "ote")):
        s.enrol(centre.url, centre.add_site(code, s.name))
    runs = [s.run("demo.toml") for s in (east, ote)]
    for r in runs:
        assert r.wait(300) == 0, r.log_path.read_text()[-2000:]
    _replicate_both((east, ote))

    # the centre's staff service lists both sites' calls, and filters by site
    with httpx.Client(base_url=f"http://127.0.0.1:{centre.web_port}", timeout=30) as web:
        token = web.get("/api/session/login-csrf").json()["csrf"]
        r = web.post("/api/session", json={"user": CENTRE_MANAGER, "password": CENTRE_PASSWORD},
                     headers={"X-CSRF-Token": token})
        assert r.status_code == 200, r.text
        web.headers["X-CSRF-Token"] = r.json()["csrf"]
        page = web.get("/calls")
        assert page.status_code == 200 and "東庁舎" in page.text and "大手事務所" in page.text
        listed = web.get("/api/calls").json()
        assert {c["site"] for c in listed["calls"]} == {"東庁舎", "大手事務所"}
        assert listed["total"] == 6
        only = web.get("/api/calls", params={"site": "大手事務所"}).json()
        assert {c["site"] for c in only["calls"]} == {"大手事務所"} and only["total"] == 3
        # 閲覧 at the centre: a call recorded at 大手事務所 plays with the city password
        played = next(c for c in only["calls"] if c["state"] == "complete")
        r = web.post(f"/api/calls/{played['id']}/listen",
                     json={"ground": "duty", "reference": "庁内確認 R8-002",
                           "password": CENTRE_PASSWORD})
        assert r.status_code == 200, r.text
        audio = web.get(r.json()["audio_url"])
        assert audio.status_code == 200 and audio.content[:4] == b"OggS"

    # 開示請求 at the centre: found at both sites, held, exported, verified offline
    today = datetime.now(timezone.utc).astimezone()
    code, out = centre.staff("request", "open", "--number", CALLER,
                             "--since", (today - timedelta(days=1)).date().isoformat(),
                             "--until", (today + timedelta(days=1)).date().isoformat(),
                             "--reference", "松総第123号", "--json")
    assert code == 0, out
    req = json.loads(out)
    sites = sorted(c["site"] for c in req["calls"])
    assert sites == ["大手事務所", "東庁舎"], req["calls"]
    bundle = tmp_path / "disclosure"
    code, out = centre.staff("request", "export", req["id"], "--recipient", "請求者 本人",
                             "--out", bundle, "--json")
    assert code == 0, out
    # offline, with nothing but the bundle and the city's published key
    code, out = centre.cli("signing-key", "--out", tmp_path / "city-signing.pem")
    assert code == 0, out
    code, out = cli("verify-export", bundle, "--public-key", tmp_path / "city-signing.pem",
                    "--json")
    assert code == 0, out
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    assert sorted(c["site"] for c in manifest["calls"]) == ["大手事務所", "東庁舎"]
    assert all(c["file"] for c in manifest["calls"])

    # the centre's holds reach both appliances (on their ledgers too)
    _replicate_both((east, ote))
    held = {}
    for s in (east, ote):
        with s.catalog() as c:
            rows = c.execute("SELECT call_id FROM holds WHERE created_by LIKE 'センター:%'"
                             " AND released_at IS NULL").fetchall()
            assert len(rows) == 1, rows
            held[s] = rows[0][0]
            assert c.execute("SELECT COUNT(*) FROM ledger WHERE kind = 'hold' AND detail LIKE"
                             " '%central_hold%'").fetchone()[0] == 1

    # keep copies of every sealed file, as an insider with a backup would
    copies = {}
    for s in (east, ote):
        with s.catalog() as c:
            for cid, relpath in c.execute("SELECT id, recording_path FROM calls WHERE"
                                          " recording_path IS NOT NULL").fetchall():
                copies[(s, cid)] = (s.root / relpath).read_bytes()

    # retention sweeps four months on, at each appliance and at the centre
    later = datetime.now(timezone.utc) + timedelta(days=125)
    policy = RetentionPolicy()
    for s in (east, ote):
        dd = DataDir(s.root)
        with dd.open_catalog(later) as cat:
            from appliance.replication import Outbox
            with Outbox.open(s.root, lambda: later) as ob:
                confirmed = ob.confirmed()
            result = Sweeper(dd, cat, policy, lambda: later, archived=lambda: confirmed).sweep()
        assert held[s] not in result.erased and result.erased
        with s.catalog() as c:
            state = dict(c.execute("SELECT id, state FROM calls").fetchall())
            assert state[held[s]] == "complete"
            assert c.execute("SELECT COUNT(*) FROM ledger WHERE kind = 'erase' AND detail LIKE"
                             " '%unconfirmed%'").fetchone()[0] == 0
    settings = CentralSettings(database=centre.conninfo)
    with Centre(centre.root, settings, SystemClock(), pool_size=2) as c:
        with c.catalog() as cat:
            result = Sweeper(c.dir, cat, policy, lambda: later).sweep()
            private = c.dir.keys.unwrap_with_password(CENTRE_MANAGER, CENTRE_PASSWORD.encode())
            kept = {r[0] for r in cat.conn.execute("SELECT site_call_id FROM calls WHERE"
                                                  " state != 'erased'")}
            erase_entries = cat.conn.execute("SELECT COUNT(*) FROM ledger WHERE kind = 'erase'"
                                             ).fetchone()[0]
    assert kept == set(held.values())
    assert erase_entries == len(result.erased) > 0

    # no usable key anywhere for an erased call: try every key left, at every place
    key_files = [p for s in (east, ote) for p in (s.root / "keys" / "data").glob("*.key")]
    key_files += list((centre.root / "keys" / "data").glob("*.key"))
    keys = []
    for p in key_files:
        try:
            keys.append(SealedBox(private).decrypt(p.read_bytes()))
        except CryptoError:
            pass
    assert len(keys) == 2 * 2       # the two held calls: at their site and at the centre
    erased = [(s, cid) for (s, cid) in copies if cid not in held.values()]
    assert erased
    for s, cid in erased:
        for k in keys:
            try:
                open_sealed(copies[(s, cid)], k)
            except SealedFileError:
                continue
            raise AssertionError(f"{cid}: a key left behind still opens the erased recording")
    # and the held ones still play from the centre
    for s in (east, ote):
        code, out = centre.staff("extract", f"{'higashi' if s is east else 'ote'}_{held[s]}",
                                 "--out", tmp_path / f"{held[s]}.opus", "--ground",
                                 "disclosure", "--reference", "松総第123号")
        assert code == 0, out
