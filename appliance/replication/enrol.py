"""``appliance enrol``: the appliance joins the city archive.

1. The token names the first half of the city CA's fingerprint: the
   appliance fetches the CA from the centre, checks it against the token,
   and from then on trusts only that CA for the centre.
2. It makes its own TLS key (never sent) and a CSR; the centre spends the
   token and returns the client certificate (common name = site code), the
   city archive public key and the address of its mutual-TLS listener.
3. With the site manager's consent — their password unlocks the site's
   archive key, and nothing else can — every existing data key is re-sealed
   to the city key, so the records made before enrolment are brought over as
   they are (their sealed files do not change).
4. ``keys/archive.pub`` becomes the city key (the site key is kept as
   ``keys/archive-site.pub``): new recordings are sealed to the city key,
   and staff open them with their one password at the centre.
5. One 鍵の登録 entry of the site's ledger (appliance.governance.keypins)
   pins the city key and records the change (both fingerprints), the
   centre, the certificate and the count of re-sealed keys; then every
   existing call, file and ledger entry is queued in the outbox.

Restart the recorder afterwards: it reads the archive key once, at start.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import ssl
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from nacl.public import PublicKey

from appliance.central.ca import EnrolError, check_signed_by, fingerprint, make_csr, new_key
from appliance.central.enrolment import parse_token
from appliance.errors import ConfigError, DataDirError, KeyStoreError
from appliance.governance.access import Action, Session
from appliance.governance.keypins import pin_archive_key
from appliance.replication.link import link_dir, load_link
from appliance.replication.outbox import Outbox
from appliance.store.catalog import to_utc_text
from appliance.store.keystore import atomic_write

TIMEOUT_S = 30


def key_fingerprint(public: bytes) -> str:
    return hashlib.sha256(public).hexdigest()


def _split(url: str) -> tuple[str, int]:
    u = urlsplit(url)
    if u.scheme != "https" or not u.hostname:
        raise ConfigError(f"{url}: https://HOST:PORT で指定してください / expected https://HOST:PORT")
    return u.hostname, u.port or 443


def _request(host: str, port: int, ctx: ssl.SSLContext, method: str, path: str,
             body: dict | None = None) -> dict:
    conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=TIMEOUT_S)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data,
                     headers={"Content-Type": "application/json"} if data else {})
        resp = conn.getresponse()
        doc = json.loads(resp.read() or b"{}")
    except (OSError, ssl.SSLError, http.client.HTTPException, ValueError) as exc:
        raise EnrolError(f"センターに接続できません / cannot talk to the centre at "
                         f"{host}:{port} ({exc})") from None
    finally:
        conn.close()
    if resp.status != 200:
        raise EnrolError(f"センターが登録を拒否しました / the centre refused: "
                         f"{doc.get('message', resp.status)}")
    return doc


def fetch_ca(url: str, ca_fp: str) -> bytes:
    """The centre's CA, checked against the fingerprint the token carries."""
    host, port = _split(url)
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    probe.check_hostname = False
    probe.verify_mode = ssl.CERT_NONE      # only to fetch the CA, which is checked below
    ca_pem = _request(host, port, probe, "GET", "/v1/ca")["ca"].encode()
    if fingerprint(ca_pem)[:len(ca_fp)] != ca_fp:
        raise EnrolError("センターの CA が登録トークンと一致しません (別のサーバーの可能性) / the "
                         "centre's CA does not match the token: not the city's centre?")
    return ca_pem


def enrol_site(session: Session, url: str, token: str, now: datetime) -> dict:
    """Enrol this appliance (the session is the site manager's consent)."""
    session.authorize(Action.USERS)
    dd = session.datadir
    if load_link(dd.root) is not None:
        raise DataDirError("この装置は既に登録済みです / this appliance is already enrolled")
    secret, ca_fp = parse_token(token)
    site_private = session.archive_key()        # the manager's consent, before anything changes
    ca_pem = fetch_ca(url, ca_fp)
    host, port = _split(url)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cadata=ca_pem.decode())
    tls_key = new_key()
    site_pub = bytes(dd.keys.public_key())
    answer = _request(host, port, ctx, "POST", "/v1/enrol", {
        "token": secret, "csr": make_csr(tls_key, "appliance").decode(),
        "archive_key": key_fingerprint(site_pub)})
    cert_pem = answer["certificate"].encode()
    check_signed_by(cert_pem, ca_pem)
    city_pub = base64.b64decode(answer["archive_public_key"])
    if len(city_pub) != 32:
        raise EnrolError("センターの公開鍵が不正です / the centre sent a malformed archive key")

    root = link_dir(dd.root)
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    from appliance.central.ca import write_key
    write_key(root / "client.key", tls_key)
    atomic_write(root / "client.pem", cert_pem, 0o644)
    atomic_write(root / "ca.pem", ca_pem, 0o644)

    resealed, foreign = reseal_data_keys(dd.keys, site_private, PublicKey(city_pub))
    del site_private
    atomic_write(dd.keys.root / "archive-site.pub", site_pub, 0o644)
    atomic_write(dd.keys.root / "archive.pub", city_pub, 0o644)
    detail = {"event": "enrolled", "centre": answer["url"], "site": answer["site"],
              "site_name": answer["site_name"], "certificate": fingerprint(cert_pem),
              "archive_key_old": key_fingerprint(site_pub),
              "archive_key_new": key_fingerprint(city_pub),
              "resealed_keys": resealed, "keys_not_site_sealed": foreign,
              "consent": session.user.name}
    _record_key_change(session, city_pub, now, answer["site"], detail)
    # the address the installer reached the centre at (through the city's network), which
    # may differ from the name the centre gives itself
    link = {"url": url.rstrip("/"), "site": answer["site"], "site_name": answer["site_name"],
            "enrolled_at": to_utc_text(now)}
    with Outbox.open(dd.root, session.now) as outbox:
        queued = outbox.reconcile(session.catalog, dd.path_of)
    # last: an appliance is enrolled once link.json exists, with everything above in place
    atomic_write(root / "link.json", json.dumps(link, ensure_ascii=False).encode(), 0o644)
    return {**detail, "queued": queued}


def _record_key_change(session: Session, city_pub: bytes, now: datetime, site: str,
                       detail: dict) -> None:
    """The ledgered change of the archive key: keypins' 鍵の登録 step, with this detail.

    The recorder seals to the key the ledger pins (whatever keys/archive.pub
    says), so the city key is in force from this entry on."""
    pin_archive_key(session.catalog, city_pub, now, actor=session.user.name, reference=site,
                    detail=detail)


def reseal_data_keys(keys, site_private, city: PublicKey) -> tuple[int, int]:
    """Re-seal every data key the site key opens to the city key; (re-sealed, left as they were).

    Safe to run twice (after a crash): a key already sealed to the city key
    no longer opens with the site key and is left alone. The key store keeps
    a TPM day or hold wrap around the re-sealed box.
    """
    done = foreign = 0
    for path in sorted(keys.data_dir.glob("*.key")):
        try:
            keys.reseal_data_key(path.stem, site_private, city)
        except KeyStoreError:
            foreign += 1
            continue
        done += 1
    return done, foreign
