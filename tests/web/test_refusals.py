"""Every refusal of the staff service: the right status, no number in the answer,
and the ledger still verifies (issue 7, R11, R14)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from fastapi.testclient import TestClient

from appliance.governance.ledger import Ledger
from appliance.store.catalog import Catalog
from appliance.web import create_app

from _office import FAR, NEAR, PASSWORDS, login, make_context

NUMBERS = (*FAR, NEAR)


def entries(d) -> list[dict]:
    with Catalog.open(d / "catalog.sqlite", datetime.now(timezone.utc)) as cat:
        assert Ledger(cat).verify().ok
        return Ledger(cat).entries()


def refused(r, status: int) -> dict:
    assert r.status_code == status, (r.status_code, r.text[:300])
    for n in NUMBERS:
        assert n not in r.text, f"number leaked in a {status} answer"
    return r.json() if r.headers.get("content-type", "").startswith("application/json") else {}


def listen_body(user="tanto", ground="duty"):
    return {"ground": ground, "reference": "苦情第1号", "password": PASSWORDS[user]}


STAFF_GETS = ["/api/calls", "/api/calls/{c}", "/api/holds", "/api/requests", "/api/exports",
              "/api/ledger", "/api/ledger/csv", "/api/status", "/api/session"]


def test_no_session_is_401_everywhere_and_pages_send_to_login(client, office):
    d, calls = office
    for path in STAFF_GETS:
        refused(client.get(path.format(c=calls[0])), 401)
    refused(client.post(f"/api/calls/{calls[0]}/listen", json=listen_body()), 401)
    refused(client.post("/api/holds", json={"call_ids": [calls[0]], "ground": "duty",
                                            "reference": "x"}), 401)
    page = client.get("/calls", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/login"
    entries(d)


def test_expired_session_after_idle_timeout(client, office, clock):
    d, calls = office
    assert login(client, "tanto").status_code == 200
    assert client.get("/api/calls").status_code == 200
    clock.advance(14 * 60)                   # activity keeps it alive ...
    assert client.get("/api/calls").status_code == 200
    clock.advance(15 * 60 + 1)               # ... idleness ends it
    body = refused(client.get("/api/calls"), 401)
    assert body["error"] == "session_expired"
    refused(client.get("/api/calls"), 401)   # and it stays gone
    entries(d)


def test_wrong_role_is_refused_and_ledgered(client, office):
    d, calls = office
    login(client, "tanto")                   # a handler: duty and disclosure only
    n = len(entries(d))
    refused(client.post(f"/api/calls/{calls[0]}/listen", json=listen_body(ground="law")), 403)
    refused(client.post("/api/holds/release", json={"call_ids": [calls[0]], "ground": "duty",
                                                    "reference": "x"}), 403)
    body = {"call_ids": [calls[0]], "ground": "investigation", "reference": "照会1",
            "recipient": "警察署", "password": PASSWORDS["tanto"]}
    refused(client.post("/api/exports", json=body), 403)
    new = entries(d)[n:]
    assert [e["kind"] for e in new] == ["refused"] * 3
    assert all(e["actor"] == "tanto" for e in new)


def test_deputy_not_acting_may_sign_in_but_do_nothing(client, office):
    d, calls = office
    assert login(client, "dairi").status_code == 200
    refused(client.get("/api/calls"), 403)
    refused(client.post(f"/api/calls/{calls[0]}/listen", json=listen_body("dairi")), 403)
    assert entries(d)[-1]["kind"] == "refused"


def test_technician_cannot_sign_in(client, office):
    d, calls = office
    body = refused(login(client, "hoshu"), 403)
    assert body["error"] == "technician"
    assert "acr_session" not in client.cookies
    last = entries(d)[-1]
    assert last["kind"] == "refused" and last["actor"] == "hoshu"
    refused(client.get("/api/calls"), 401)


def test_missing_or_wrong_csrf_token(client, office):
    d, calls = office
    login(client, "kacho")
    token = client.headers.pop("X-CSRF-Token")
    hold = {"call_ids": [calls[0]], "ground": "duty", "reference": "x"}
    refused(client.post("/api/holds", json=hold), 403)
    refused(client.post("/api/holds", json=hold, headers={"X-CSRF-Token": "forged"}), 403)
    refused(client.delete("/api/session"), 403)
    assert client.get("/api/holds").json()["holds"] == []     # nothing was held
    # sign-in too needs the login page's token
    client.cookies.clear()
    r = client.post("/api/session", json={"user": "kacho", "password": PASSWORDS["kacho"]})
    refused(r, 403)
    assert client.post("/api/holds", json=hold, headers={"X-CSRF-Token": token}).status_code == 401
    entries(d)


def test_another_users_export_cannot_be_downloaded(ctx, office):
    d, calls = office
    app = create_app(ctx)
    with TestClient(app, base_url="https://testserver") as a, \
            TestClient(app, base_url="https://testserver") as b:
        login(a, "tanto")
        r = a.post("/api/requests", json={"number": FAR[2], "since": "2026-01-01",
                                          "until": "2026-01-31", "reference": "開示第2号"})
        req = r.json()["id"]
        r = a.post(f"/api/requests/{req}/export", json={"recipient": "本人",
                                                        "password": PASSWORDS["tanto"]})
        assert r.status_code == 201, r.text
        url = r.json()["download"]
        assert a.get(url).status_code == 200
        login(b, "tanto2")
        n = len(entries(d))
        body = refused(b.get(url), 403)
        assert body["error"] == "not_yours"
        [e] = entries(d)[n:]
        assert e["kind"] == "refused" and e["actor"] == "tanto2"
        listed = b.get("/api/exports").json()["exports"]
        assert [x["mine"] for x in listed] == [False]


def test_wrong_password_when_listening_is_refused_and_throttled(client, office):
    d, calls = office
    login(client, "tanto")
    n = len(entries(d))
    bad = dict(listen_body(), password="wrong-password")
    for _ in range(5):
        refused(client.post(f"/api/calls/{calls[0]}/listen", json=bad), 401)
    # locked now: even the right password is refused for a while
    refused(client.post(f"/api/calls/{calls[0]}/listen", json=listen_body()), 429)
    new = entries(d)[n:]
    assert all(e["kind"] == "refused" for e in new)
    assert not any(e["kind"] == "listen" for e in new)
    assert any("ロック" in e["detail"] for e in new)


def test_failed_logins_lock_the_name_and_the_lockout_is_on_the_ledger(client, office, clock):
    d, calls = office
    for _ in range(5):
        refused(login(client, "kacho", "nope-nope-nope"), 401)
    refused(login(client, "kacho"), 429)      # the right password during the lockout
    details = [e["detail"] for e in entries(d) if e["kind"] == "refused"]
    assert sum("ロック" in x for x in details) == 1
    assert len(details) == 6                  # five failures and the lockout itself
    clock.advance(15 * 60 + 1)
    assert login(client, "kacho").status_code == 200


IDS = ["../../etc/passwd", "..%2F..%2Fcatalog.sqlite", "x' OR '1'='1", "a;DROP TABLE calls",
       "%00", "<script>alert(1)</script>", "a" * 200, "REQ-1 OR 1=1"]


@pytest.mark.parametrize("bad", IDS)
def test_traversal_and_injection_in_identifiers(client, office, bad):
    d, calls = office
    login(client, "kacho")
    for path in (f"/api/calls/{bad}", f"/api/requests/{bad}", f"/api/exports/{bad}/bundle.zip",
                 f"/api/calls/{bad}/audio?ticket=abcdefgh1234"):
        r = client.get(path)
        assert r.status_code in (404, 422), (path, r.status_code)
        refused(r, r.status_code)
    for body, url in (({"call_ids": [bad], "ground": "duty", "reference": "x"}, "/api/holds"),
                      ({"call_ids": [calls[0], bad], "ground": "law", "reference": "x",
                        "recipient": "y", "password": PASSWORDS["kacho"]}, "/api/exports")):
        refused(client.post(url, json=body), 422)
    r = client.post(f"/api/calls/{bad}/listen", json=listen_body("kacho"))
    assert r.status_code in (404, 422), r.status_code
    refused(r, r.status_code)
    # nothing was held, nothing provided; the catalog is whole
    assert client.get("/api/holds").json()["holds"] == []
    assert client.get("/api/calls").json()["total"] == 3
    entries(d)


@pytest.mark.parametrize("param,bad", [
    ("number", "' OR 1=1 --"), ("number", "../../etc"), ("number", "0263%00"),
    ("since", "2026-13-45"), ("until", "yesterday; DROP TABLE calls"),
    ("direction", "sideways"), ("notice", "' OR ''='"), ("min_duration", "-1"),
    ("limit", "100000"), ("offset", "-5"), ("held", "maybe"), ("trunk", "x" * 200)])
def test_injection_in_filters_is_refused_without_echo(client, office, param, bad):
    d, calls = office
    login(client, "tanto")
    r = client.get("/api/calls", params={param: bad})
    refused(r, 422)
    assert bad not in r.text
    assert client.get("/api/calls").json()["total"] == 3
    entries(d)


def test_quotes_in_free_text_filters_match_nothing_and_break_nothing(client, office):
    login(client, "tanto")
    for value in ("' OR '1'='1", "東庁舎' --", "%", "_"):
        r = client.get("/api/calls", params={"site": value})
        assert r.status_code == 200 and r.json()["total"] == 0


def test_oversized_and_malformed_bodies(client, office):
    d, calls = office
    login(client, "kacho")
    big = {"call_ids": [calls[0]], "ground": "duty", "reference": "x" * 70000}
    refused(client.post("/api/holds", json=big), 413)
    refused(client.post("/api/holds", content=b"{not json",
                        headers={"Content-Type": "application/json"}), 422)
    refused(client.post("/api/holds", content=b"\xff\xfe\x00garbage",
                        headers={"Content-Type": "application/json"}), 422)
    refused(client.post("/api/holds", json=[1, 2, 3]), 422)
    refused(client.post("/api/holds", json={"call_ids": [], "ground": "duty",
                                            "reference": "x"}), 422)
    refused(client.post("/api/holds", json={"call_ids": [calls[0]] * 101, "ground": "duty",
                                            "reference": "x"}), 422)
    refused(client.post("/api/requests", json={"number": "not a number", "since": "2026-01-01",
                                               "until": "2026-01-31", "reference": "r"}), 422)
    refused(client.post("/api/requests", json={"number": FAR[0], "since": "2026-02-01",
                                               "until": "2026-01-01", "reference": "r"}), 422)
    refused(client.post(f"/api/calls/{calls[0]}/listen",
                        json={"ground": "gossip", "reference": "r",
                              "password": PASSWORDS["kacho"]}), 422)
    assert client.get("/api/holds").json()["holds"] == []
    entries(d)


def test_audio_needs_a_ticket_from_this_session(ctx, office):
    d, calls = office
    app = create_app(ctx)
    with TestClient(app, base_url="https://testserver") as a, \
            TestClient(app, base_url="https://testserver") as b:
        login(a, "tanto")
        refused(a.get(f"/api/calls/{calls[0]}/audio?ticket=madeupticket"), 403)
        url = a.post(f"/api/calls/{calls[0]}/listen", json=listen_body()).json()["audio_url"]
        assert a.get(url).status_code == 200
        login(b, "tanto2")
        refused(b.get(url), 403)                 # another session cannot use the ticket
        a.delete("/api/session")
        refused(a.get(url), 401)                 # signing out ends the ticket with the session


def test_cookies_are_secure_httponly_strict(client):
    r = login(client, "kacho")
    cookie = [v for k, v in r.headers.multi_items() if k == "set-cookie" and "acr_session" in v][0]
    low = cookie.lower()
    assert "secure" in low and "httponly" in low and "samesite=strict" in low


def test_plain_http_is_refused_off_loopback(run_cli, office):
    d, _ = office
    code, out, err = run_cli("--data-dir", d, "web", "--listen", "0.0.0.0:8080", "--http")
    assert code == 2
    assert "loopback" in err
