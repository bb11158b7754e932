"""Sites and their enrolment at the centre: one-time tokens, client certificates, on the ledger.

The city manager adds a site (``appliance central site add CODE --name 東庁舎``)
and gets a one-time token to hand to the technician installing the site's
appliance. The token carries a secret (kept here only as its SHA-256, valid
``[central] token_hours``) and the first 16 bytes of the city CA's
fingerprint, so the appliance can check it talks to the city's centre before
it sends anything. ``enrol`` spends the token: the CA signs the appliance's
CSR with the site code as common name, and the certificate's serial becomes
the only one the centre accepts for that site.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import timedelta

from appliance.central.ca import CityCA, EnrolError, fingerprint
from appliance.central.centre import Centre, parse_listen
from appliance.central.ingest import ledger_refusal, site_row
from appliance.errors import ConfigError
from appliance.governance.access import Action, Session
from appliance.governance.ledger import EntryKind, Ledger
from appliance.store.catalog import from_utc_text, to_utc_text

CA_FP_CHARS = 32


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def make_token(secret: str, ca_pem: bytes) -> str:
    return f"{secret}.{fingerprint(ca_pem)[:CA_FP_CHARS]}"


def parse_token(token: str) -> tuple[str, str]:
    secret, _, fp = (token or "").strip().partition(".")
    if len(secret) < 20 or len(fp) != CA_FP_CHARS or not all(c in "0123456789abcdef" for c in fp):
        raise EnrolError("登録トークンの形式が正しくありません / malformed enrolment token")
    return secret, fp


def add_site(session: Session, centre: Centre, code: str, name: str) -> str:
    """A new site (manager only); returns its one-time enrolment token."""
    session.authorize(Action.USERS)
    code = (code or "").strip()
    name = (name or "").strip()
    if not name or len(name) > 64:
        raise ConfigError("拠点名は1〜64文字 / a site name of 1–64 characters is required")
    import re
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,31}", code):
        raise ConfigError("拠点コードは英小文字・数字・ハイフン (32文字まで) / site codes are "
                          "lower-case letters, digits and hyphens, up to 32")
    now = session.now()
    secret = base64.b32encode(secrets.token_bytes(20)).decode().rstrip("=").lower()
    cat = session.catalog
    with cat.transaction():
        if site_row(cat, code) is not None:
            raise ConfigError(f"{code}: 既に登録されている拠点です / the site exists (a replaced "
                              "appliance is enrolled as a new site)")
        cat.db["sites"].insert({
            "code": code, "name": name, "created_at": to_utc_text(now),
            "token_hash": _hash(secret),
            "token_expires": to_utc_text(now + timedelta(hours=centre.settings.token_hours))})
        session.ledger.append(EntryKind.ARCHIVE, now, actor=session.user.name,
                              detail={"event": "site added", "site": code, "name": name})
    return make_token(secret, CityCA(centre.dir.ca_dir).ca_pem)


def enrol(centre: Centre, token_secret: str, csr_pem: bytes, peer: str,
          detail: dict | None = None) -> dict:
    """Spend a token: sign the site's CSR; refusals are ledgered."""
    now = centre.clock.now()
    digest = _hash(token_secret or "")
    with centre.catalog() as cat:
        rows = list(cat.db["sites"].rows_where("token_hash IS NOT NULL"))
    site = next((r for r in rows if hmac.compare_digest(r["token_hash"], digest)), None)
    if site is None or from_utc_text(site["token_expires"]) <= now:
        reason = "登録トークンが無効か期限切れです / the enrolment token is unknown, spent or expired"
        ledger_refusal(centre, f"peer:{peer}", "enrol", message=reason)
        raise EnrolError(reason)
    ca = CityCA(centre.dir.ca_dir)
    cert_pem, serial = ca.issue_client(site["code"], csr_pem, now)
    with centre.catalog() as cat, cat.transaction():
        n = cat.conn.execute(
            "UPDATE sites SET token_hash = NULL, token_expires = NULL, cert_serial = ?,"
            " cert_fingerprint = ?, enrolled_at = ? WHERE code = ? AND token_hash = ?",
            (serial, fingerprint(cert_pem), to_utc_text(now), site["code"], digest)).rowcount
        if n != 1:
            raise EnrolError("登録トークンは使用済みです / the token was spent meanwhile")
        Ledger(cat).append(EntryKind.ARCHIVE, now, actor=f"site:{site['code']}",
                           detail={"event": "enrolled", "site": site["code"],
                                   "name": site["name"], "peer": peer, "serial": serial,
                                   "certificate": fingerprint(cert_pem), **(detail or {})})
    _, port = parse_listen(centre.settings.sites_listen)
    return {"site": site["code"], "site_name": site["name"], "certificate": cert_pem.decode(),
            "ca": ca.ca_pem.decode(),
            "archive_public_key": base64.b64encode(
                centre.dir.keys.public_key().encode()).decode(),
            "url": f"https://{centre.settings.public_host}:{port}"}


def list_sites(centre: Centre) -> list[dict]:
    with centre.catalog() as cat:
        sites = list(cat.db["sites"].rows_where(order_by="code"))
        counts = {r[0]: (r[1], r[2]) for r in cat.conn.execute(
            "SELECT site_code, COUNT(*), COUNT(stored_at) FROM calls GROUP BY site_code")}
    out = []
    for s in sites:
        calls, stored = counts.get(s["code"], (0, 0))
        out.append({"code": s["code"], "name": s["name"], "enrolled_at": s["enrolled_at"],
                    "token_pending": s["token_hash"] is not None,
                    "last_seen_at": s["last_seen_at"], "outbox_seq": s["outbox_seq"],
                    "ledger_seq": s["ledger_seq"], "calls": calls, "stored": stored})
    return out
