"""The ledger time-stamped outside the box: RFC 3161 tokens over its head (R14).

Whoever controls the appliance can recompute the whole hash chain. A token
from a time-stamping authority (TSA) fixes the chain's head at the TSA's
time: a ledger rewritten from entry N onwards no longer matches a token
issued over any entry ≥ N before the rewrite, and that token names the time
after which the rewrite happened.

- ``TsaClient.stamp(digest)``: an RFC 3161 request (SHA-256, a nonce, the
  TSA's certificate asked for) over HTTP (``application/timestamp-query``);
  the reply's status, imprint and nonce are checked; the token (CMS
  SignedData, DER) is returned.
- ``stamp_ledger``: the head entry's hash is the imprint (it *is* a SHA-256,
  of the entry's fields and the previous hash); the token goes into the
  ledger as a 時刻認証 entry, so it is chained like any other.
- ``check_tokens``: each token's signature and certificate chain are checked
  by OpenSSL (``openssl ts -verify``, the reference implementation: no
  Python library verifies RFC 3161 tokens against a chain) with the TSA's
  CA from the configuration; its imprint must equal the covered entry's
  hash as it is now.

The same check by hand, for an entry's token saved as ``token.tsr``
(``appliance ledger tokens --out DIR`` writes them)::

    openssl ts -verify -digest <the entry's hash> -in token.tsr -token_in -CAfile tsa-ca.pem

Requests and replies are built and parsed with asn1crypto (its ``tsp``
module is RFC 3161's ASN.1).
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from asn1crypto import cms, tsp

from appliance.errors import ApplianceError
from appliance.governance.ledger import EntryKind, Ledger
from appliance.store.catalog import Catalog

#: a reply larger than this is not a time-stamp token
MAX_REPLY = 256 * 1024


class TimestampError(ApplianceError):
    """The TSA did not answer, refused, or answered something that is not our token."""


def make_request(digest: bytes) -> tuple[bytes, int]:
    nonce = secrets.randbits(63)
    req = tsp.TimeStampReq({
        "version": 1,
        "message_imprint": {"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": digest},
        "nonce": nonce, "cert_req": True})
    return req.dump(), nonce


def token_info(token: bytes) -> dict:
    """What a token says (no check of its signature): time, imprint, serial, TSA name."""
    try:
        info = cms.ContentInfo.load(token)
        tst = info["content"]["encap_content_info"]["content"].parsed
        imprint = tst["message_imprint"]
        tsa = tst["tsa"]
        return {"gen_time": tst["gen_time"].native.isoformat(),
                "imprint": imprint["hashed_message"].native.hex(),
                "algorithm": imprint["hash_algorithm"]["algorithm"].native,
                "serial": str(tst["serial_number"].native),
                "nonce": tst["nonce"].native,
                "tsa": tsa.native if tsa.native is None else tsa.chosen.human_friendly}
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise TimestampError(f"時刻認証トークンを読めません / not a time-stamp token ({exc})") \
            from None


class TsaClient:
    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self.url = url
        self.timeout_s = timeout_s

    def stamp(self, digest: bytes) -> bytes:
        """A token over ``digest`` (32 bytes, SHA-256)."""
        if len(digest) != 32:
            raise ValueError("a SHA-256 digest has 32 bytes")
        body, nonce = make_request(digest)
        req = urllib.request.Request(self.url, data=body, method="POST",
                                     headers={"Content-Type": "application/timestamp-query"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                reply = resp.read(MAX_REPLY + 1)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise TimestampError(f"時刻認証局に接続できません / the TSA does not answer "
                                 f"({self.url}: {getattr(exc, 'reason', exc)})") from None
        if len(reply) > MAX_REPLY:
            raise TimestampError("時刻認証局の応答が大きすぎます / the TSA's reply is too large")
        try:
            resp = tsp.TimeStampResp.load(reply)
            status = resp["status"]["status"].native
            token = resp["time_stamp_token"]
        except (ValueError, TypeError, KeyError) as exc:
            raise TimestampError(f"時刻認証局の応答が不正です / malformed TSA reply ({exc})") from None
        if status not in ("granted", "granted_with_mods") or token.native is None:
            raise TimestampError(f"時刻認証局が拒否しました / the TSA refused ({status})")
        der = token.dump()
        info = token_info(der)
        if info["imprint"] != digest.hex() or info["nonce"] != nonce:
            raise TimestampError("時刻認証局の応答が要求と一致しません / the TSA's token does not "
                                 "answer our request (imprint or nonce)")
        return der


def openssl_verify(token: bytes, ca_file: Path, *, digest_hex: str | None = None,
                   data_file: Path | None = None) -> str | None:
    """``openssl ts -verify``: None when the token holds, else OpenSSL's reason."""
    with tempfile.TemporaryDirectory(prefix="acr-ts-") as d:
        tok = Path(d) / "token.tsr"
        tok.write_bytes(token)
        args = ["openssl", "ts", "-verify", "-in", str(tok), "-token_in", "-CAfile", str(ca_file)]
        args += ["-digest", digest_hex] if digest_hex else ["-data", str(data_file)]
        try:
            done = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"openssl: {exc}"
    if done.returncode == 0 and "Verification: OK" in done.stdout:
        return None
    lines = [ln for ln in (done.stdout + done.stderr).splitlines() if ln.strip()]
    return lines[-1] if lines else "verification failed"


def stamp_ledger(catalog: Catalog, client: TsaClient, at: datetime, *, reason: str) -> dict | None:
    """Stamp the ledger's head; None when nothing new arrived since the last token."""
    head = catalog.conn.execute(
        "SELECT seq, hash, kind FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()
    if head is None or head[2] == EntryKind.TIMESTAMP:
        return None
    seq, digest, _ = head
    token = client.stamp(bytes.fromhex(digest))
    info = token_info(token)
    return Ledger(catalog).append(
        EntryKind.TIMESTAMP, at, actor="timestamp", reference=info["serial"],
        detail={"covers_seq": seq, "covers_hash": digest, "gen_time": info["gen_time"],
                "tsa": client.url, "reason": reason,
                "token": base64.b64encode(token).decode()})


@dataclass
class TokenReport:
    tokens: int = 0
    checked: bool = False                 # signatures checked against a CA
    fixed_seq: int | None = None          # the newest entry a valid token covers …
    fixed_at: str | None = None           # … and the TSA's time for it
    problems: list[dict] = field(default_factory=list)
    unstamped_since_seq: int | None = None

    def as_dict(self) -> dict:
        return {"tokens": self.tokens, "signatures_checked": self.checked,
                "fixed_through": ({"seq": self.fixed_seq, "at": self.fixed_at}
                                  if self.fixed_seq else None),
                "unstamped_since_seq": self.unstamped_since_seq,
                "token_problems": self.problems}


def ledger_tokens(catalog: Catalog) -> list[tuple[int, dict]]:
    out = []
    for seq, detail in catalog.conn.execute(
            "SELECT seq, detail FROM ledger WHERE kind = ? ORDER BY seq",
            (str(EntryKind.TIMESTAMP),)):
        try:
            out.append((seq, json.loads(detail)))
        except ValueError:
            out.append((seq, {}))
    return out


def check_tokens(catalog: Catalog, ca_file: Path | None) -> TokenReport:
    """Every token against the entry it covers as the ledger holds it now."""
    rep = TokenReport(checked=ca_file is not None)
    hashes = dict(catalog.conn.execute("SELECT seq, hash FROM ledger"))
    for seq, d in ledger_tokens(catalog):
        rep.tokens += 1
        covers = d.get("covers_seq")
        try:
            token = base64.b64decode(d.get("token", ""), validate=True)
            info = token_info(token)
        except (ValueError, TimestampError):
            rep.problems.append({"token_seq": seq, "covers_seq": covers,
                                 "problem": "時刻認証トークンが壊れています / the token is damaged"})
            continue
        now_hash = hashes.get(covers)
        if now_hash is None or info["imprint"] != now_hash:
            rep.problems.append({
                "token_seq": seq, "covers_seq": covers, "gen_time": info["gen_time"],
                "problem": (f"時刻認証 #{seq} ({info['gen_time']}) が記録 #{covers} と矛盾します: "
                            f"その時刻以降に管理簿が書き換えられました / the token of entry #{seq}, "
                            f"issued {info['gen_time']}, contradicts entry #{covers}: the ledger "
                            "was rewritten after that time")})
            continue
        if ca_file is not None:
            why = openssl_verify(token, ca_file, digest_hex=info["imprint"])
            if why is not None:
                rep.problems.append({"token_seq": seq, "covers_seq": covers,
                                     "gen_time": info["gen_time"],
                                     "problem": f"時刻認証の署名を確認できません / the token does not "
                                                f"verify against the TSA's CA: {why}"})
                continue
        if rep.fixed_seq is None or covers > rep.fixed_seq:
            rep.fixed_seq, rep.fixed_at = covers, info["gen_time"]
    last = catalog.conn.execute("SELECT MAX(seq) FROM ledger").fetchone()[0] or 0
    last_token = max((s for s, _ in ledger_tokens(catalog)), default=0)
    if last > max(last_token, rep.fixed_seq or 0):
        rep.unstamped_since_seq = max(last_token, rep.fixed_seq or 0) + 1
    return rep
