"""Attacks on the centre's site listener: refused, on the city ledger, nothing stored.

A wrong certificate (not issued by the city CA), none at all, another
site's certificate, a replayed upload, a reordered one, and a site ledger
entry altered on its way: each is refused with its reason, lands on the
city ledger (REFUSED, with the peer and the reason), and leaves the
centre's index, site chains, key store and incoming files exactly as before.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import ssl
from datetime import datetime, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from appliance.replication import Outbox
from appliance.replication.link import load_link
from appliance.replication.sender import Sender
from appliance.store.datadir import DataDir
from tests.central.conftest import centre, make_site, pg_cluster  # noqa: F401 (fixtures)


def _ctx(site=None, cert=None, key=None, ca=None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=str(ca))
    if site is not None:
        link = load_link(site.root)
        ctx.load_cert_chain(link.client_cert, link.client_key)
    elif cert is not None:
        ctx.load_cert_chain(cert, key)
    return ctx


def _post(centre, ctx, path, body) -> tuple[int, dict]:
    conn = http.client.HTTPSConnection("127.0.0.1", centre.sites_port, context=ctx, timeout=20)
    try:
        conn.request("POST", path, body=json.dumps(body), headers={"Content-Type":
                                                                   "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    finally:
        conn.close()


def _snapshot(centre) -> dict:
    with centre.db() as db:
        snap = {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                for t in ("calls", "site_ledger", "holds")}
        snap["seq"] = db.execute("SELECT code, outbox_seq, ledger_seq FROM sites ORDER BY code"
                                 ).fetchall()
    snap["keys"] = sorted(p.name for p in (centre.root / "keys" / "data").glob("*"))
    snap["incoming"] = sorted((p.name, p.stat().st_size)
                              for p in (centre.root / "incoming").rglob("*") if p.is_file())
    return snap


def _refusals(centre) -> list[dict]:
    with centre.db() as db:
        return [json.loads(r[0]) for r in db.execute(
            "SELECT detail FROM ledger WHERE kind = 'refused' ORDER BY seq")]


def _batch(site, n: int, skip: int = 0) -> list[dict]:
    dd = DataDir(site.root)
    now = lambda: datetime.now(timezone.utc)   # noqa: E731
    with dd.open_catalog(now()) as cat, Outbox.open(site.root, now) as ob:
        ob.pull_ledger(cat)
        sender = Sender(dd, load_link(site.root), ob, cat, now)
        items = ob.pending(n + skip)[skip:]
        body, _ = sender._build(items)
    return body


@pytest.fixture
def two_sites(centre, make_site):  # noqa: F811
    east = make_site("higashi", "東庁舎")
    ote = make_site("ote", "大手事務所")
    for s, code in ((east, "higashi"), (ote, "ote")):
        s.enrol(centre.url, centre.add_site(code, s.name))
    run = east.run("demo.toml")
    assert run.wait(300) == 0
    return east, ote


def test_no_certificate_a_foreign_one_or_another_sites_is_refused(centre, two_sites,  # noqa: F811
                                                                  tmp_path):
    east, ote = two_sites
    ca = east.root / "central" / "ca.pem"
    body = {"items": _batch(east, 20)}
    before = _snapshot(centre)

    status, doc = _post(centre, _ctx(ca=ca), "/v1/sites/higashi/batch", body)
    assert (status, doc["error"]) == (401, "no_certificate")

    status, doc = _post(centre, _ctx(site=ote, ca=ca), "/v1/sites/higashi/batch", body)
    assert (status, doc["error"]) == (403, "wrong_site")

    # a certificate with the right name, but not issued by the city CA
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "higashi")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    (tmp_path / "forged.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "forged.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        _post(centre, _ctx(cert=tmp_path / "forged.pem", key=tmp_path / "forged.key", ca=ca),
              "/v1/sites/higashi/batch", body)

    assert _snapshot(centre) == before, "a refused upload stored something"
    reasons = [d["reason"] for d in _refusals(centre)]
    assert "no_client_certificate" in reasons
    assert "certificate_of_another_site" in reasons
    assert "tls_handshake" in reasons
    forged = next(d for d in _refusals(centre) if d["reason"] == "tls_handshake")
    assert forged["peer"] == "127.0.0.1" and forged["tls"]


def test_a_replayed_a_reordered_or_an_altered_upload_is_refused(centre, two_sites):  # noqa: F811
    east, _ = two_sites
    ca = east.root / "central" / "ca.pem"
    ctx = _ctx(site=east, ca=ca)
    first = _batch(east, 30)
    status, doc = _post(centre, ctx, "/v1/sites/higashi/batch", {"items": first})
    assert status == 200 and doc["stored_upto"] == first[-1]["seq"]
    stored = _snapshot(centre)

    status, doc = _post(centre, ctx, "/v1/sites/higashi/batch", {"items": first})
    assert (status, doc["error"]) == (409, "replay")
    assert doc["stored_upto"] == first[-1]["seq"]

    later = _batch(east, 10, skip=35)
    status, doc = _post(centre, ctx, "/v1/sites/higashi/batch", {"items": later})
    assert (status, doc["error"]) == (409, "reordered")

    # the next batch in order, but one site ledger entry altered on the way
    nxt = _batch(east, 400, skip=30)
    entries = [i for i in nxt if i["kind"] == "ledger"]
    assert entries, "the demo's ledger entries should follow its chunks"
    entries[0]["entry"]["actor"] = "誰か別人"
    status, doc = _post(centre, ctx, "/v1/sites/higashi/batch", {"items": nxt})
    assert (status, doc["error"]) == (409, "chain_broken")

    assert _snapshot(centre) == stored, "a refused upload stored something"
    reasons = [d["reason"] for d in _refusals(centre)]
    assert {"replay", "reordered", "chain_broken"} <= set(reasons)
    # the same batch, unaltered, is then stored
    nxt = _batch(east, 400, skip=30)
    status, doc = _post(centre, ctx, "/v1/sites/higashi/batch", {"items": nxt})
    assert status == 200, doc
