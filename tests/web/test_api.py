"""The JSON API behind the screens, used as a staff member would (issue 7)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from datetime import datetime, timezone

from appliance.governance.ledger import Ledger
from appliance.store.catalog import Catalog

from _office import FAR, PASSWORDS, login


def ledger_kinds(d) -> list[str]:
    with Catalog.open(d / "catalog.sqlite", datetime.now(timezone.utc)) as cat:
        return [e["kind"] for e in Ledger(cat).entries()]


def test_health_answers_without_login_and_says_nothing_else(client, office):
    assert client.get("/livez").json() == {"status": "ok"}
    # no recorder runs beside this office: not ready, and it says which part
    r = client.get("/healthz")
    assert r.status_code == 503
    assert r.json() == {"status": "not_ready", "recorder": "not_answering", "catalog": "ready"}
    # a catalog that cannot be opened is not ready either (the web process stays alive)
    d, _ = office
    (d / "catalog.sqlite").rename(d / "catalog.moved")
    try:
        r = client.get("/healthz")
        assert r.status_code == 503 and r.json()["catalog"] == "unavailable"
        assert client.get("/livez").status_code == 200
    finally:
        (d / "catalog.moved").rename(d / "catalog.sqlite")


def test_search_by_number_period_and_filters(client, office):
    _, calls = office
    assert login(client, "tanto").status_code == 200
    every = client.get("/api/calls").json()
    assert every["total"] == 3
    assert [c["id"] for c in every["calls"]] == list(reversed(calls))   # newest first
    r = client.get("/api/calls", params={"number": "090-1234-5678"}).json()
    assert [c["id"] for c in r["calls"]] == [calls[1]]
    assert r["calls"][0]["far_number"] == FAR[1]
    # full-width digits, as typed on a Japanese keyboard
    r = client.get("/api/calls", params={"number": "０２６３３４５６７８"}).json()
    assert [c["id"] for c in r["calls"]] == [calls[0]]
    assert [c["id"] for c in client.get("/api/calls", params={"direction": "out"}).json()["calls"]] \
        == [calls[1]]
    assert [c["id"] for c in client.get("/api/calls", params={"site": "大手事務所"}).json()["calls"]] \
        == [calls[1]]
    assert [c["id"] for c in client.get("/api/calls", params={"trunk": "T2"}).json()["calls"]] \
        == [calls[1]]
    assert [c["id"] for c in client.get("/api/calls", params={"min_duration": 5}).json()["calls"]] \
        == [calls[0]]
    assert [c["id"] for c in client.get("/api/calls", params={"max_duration": 2.5}).json()["calls"]] \
        == [calls[2]]
    assert {c["id"] for c in client.get("/api/calls", params={"notice": "none"}).json()["calls"]} \
        == {calls[1]}
    # the period: a date alone as 'until' includes that day (JST)
    day1 = client.get("/api/calls", params={"since": "2026-01-06", "until": "2026-01-06"}).json()
    assert {c["id"] for c in day1["calls"]} == {calls[0], calls[1]}
    assert client.get("/api/calls", params={"held": "true"}).json()["total"] == 0


def test_listen_needs_a_ground_and_is_a_listen_entry(client, office):
    d, calls = office
    login(client, "tanto")
    before = ledger_kinds(d)
    r = client.post(f"/api/calls/{calls[0]}/listen",
                    json={"ground": "duty", "reference": "苦情対応2026-01",
                          "password": PASSWORDS["tanto"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert abs(body["duration_s"] - 6.0) < 0.05
    assert len(body["levels"]["far"]) == len(body["levels"]["near"]) >= 55
    # the synthetic call alternates talk turns of 2.5 s: far speaks first, then the staff side
    far, near = body["levels"]["far"], body["levels"]["near"]
    assert max(far[2:20]) > max(near[2:20]) + 20
    assert max(near[28:45]) > max(far[28:45]) + 20
    after = ledger_kinds(d)
    assert after[len(before):] == ["listen"]
    audio = client.get(body["audio_url"])
    assert audio.status_code == 200
    assert audio.headers["content-type"] == "audio/ogg"
    assert audio.content[:4] == b"OggS"
    part = client.get(body["audio_url"], headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == audio.content[:100]
    # the ticket opens this call only
    other = body["audio_url"].replace(calls[0], calls[2])
    assert client.get(other).status_code == 403


def test_hold_request_export_download_verify(client, office, tmp_path):
    d, calls = office
    login(client, "kacho")
    r = client.post("/api/holds", json={"call_ids": [calls[2]], "ground": "law",
                                        "reference": "令和8年照会第3号"})
    assert r.status_code == 201, r.text
    assert client.get("/api/calls", params={"held": "true"}).json()["calls"][0]["id"] == calls[2]
    assert [h["call_id"] for h in client.get("/api/holds").json()["holds"]] == [calls[2]]

    r = client.post("/api/requests", json={"number": FAR[0], "since": "2026-01-01",
                                           "until": "2026-01-31", "reference": "開示第1号"})
    assert r.status_code == 201, r.text
    req = r.json()
    assert req["call_ids"] == [calls[0]]
    r = client.post(f"/api/requests/{req['id']}/export",
                    json={"recipient": "請求者本人", "password": PASSWORDS["kacho"]})
    assert r.status_code == 201, r.text
    exp = r.json()
    z = client.get(exp["download"])
    assert z.status_code == 200
    out = tmp_path / "unzipped"
    zipfile.ZipFile(io.BytesIO(z.content)).extractall(out)
    bundle = out / exp["export_id"]
    # the appliance's own published key pins the signer (issue 20 item 7)
    check = subprocess.run([sys.executable, "-m", "appliance", "--data-dir", str(office[0]),
                            "verify-export", str(bundle), "--json"],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert json.loads(check.stdout)["ok"] is True
    r = client.post(f"/api/requests/{req['id']}/close")
    assert r.status_code == 200 and r.json()["state"] == "closed"
    kinds = ledger_kinds(d)
    assert kinds[-6:] == ["hold", "request", "hold", "provide", "extract", "request"]
    assert client.get("/api/ledger").json()["verify"]["ok"] is True


def test_pages_render_in_japanese_and_switch_to_english(client, office):
    d, calls = office
    login(client, "tanto")
    page = client.get("/calls")
    assert page.status_code == 200
    assert "通話記録" in page.text and FAR[0] in page.text
    assert client.get(f"/calls/{calls[0]}").status_code == 200
    for path in ("/holds", "/requests", "/exports", "/ledger", "/status"):
        r = client.get(path)
        assert r.status_code == 200, path
    client.get("/lang/en", params={"next": "/calls"}, follow_redirects=False)
    assert "Call records" in client.get("/calls").text


def test_release_names_the_hold_and_keeps_the_other(client, office):
    d, calls = office
    login(client, "kacho")
    ids = []
    for ground, ref in (("law", "照会第7号"), ("disclosure", "開示第9号")):
        r = client.post("/api/holds", json={"call_ids": [calls[1]], "ground": ground,
                                            "reference": ref})
        assert r.status_code == 201, r.text
        ids += r.json()["hold_ids"]
    release = {"call_ids": [calls[1]], "ground": "law", "reference": "照会終了"}
    # an id that is not one of this call's active holds: 409, nothing released
    r = client.post("/api/holds/release", json=dict(release, hold_ids=[ids[0], 10 ** 30]))
    assert r.status_code == 409, r.text
    assert len(client.get("/api/holds").json()["holds"]) == 2
    r = client.post("/api/holds/release", json=dict(release, hold_ids=[ids[0]]))
    assert r.status_code == 200 and r.json() == {"released": 1}, r.text
    assert [h["id"] for h in client.get("/api/holds").json()["holds"]] == [ids[1]]
    assert client.get("/api/calls", params={"held": "true"}).json()["calls"][0]["id"] == calls[1]
