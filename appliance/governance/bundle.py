"""The export bundle's format, and checking one offline (R12, R13).

A bundle is a directory (not a zip: ``sha256sum`` and a browser can read it
as it is, and nothing has to be unpacked to check it)::

    manifest.json      what was provided, to whom, on which ground, under which
                       terms; pins every other file by SHA-256 and size
    manifest.sig       detached Ed25519 signature over the exact bytes of
                       manifest.json (64 raw bytes, what ``openssl pkeyutl
                       -rawin -sigfile`` expects)
    signing-key.pem    the appliance's public signing key (SPKI PEM)
    cover.html         the printable 提供書 (cover sheet)
    README.txt         how to play and how to check the bundle
    calls/<id>.opus    each recording as plain Ogg Opus

Checking needs nothing but the bundle and the published public key: no data
directory, no password. The fingerprint of a key is the SHA-256 of its 32 raw
bytes in hex, which ``openssl pkey -pubin -outform DER | tail -c 32 |
sha256sum`` also prints.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import stat
from dataclasses import dataclass, field
from pathlib import Path

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from appliance.errors import ConfigError

FORMAT = "acr-export/1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
PUBLIC_KEY = "signing-key.pem"
COVER = "cover.html"
README = "README.txt"
CALLS_DIR = "calls"
#: the RFC 3161 token over manifest.json (when the TSA answered at export)
TIMESTAMP = "manifest.tsr"
#: files every bundle has besides those the manifest pins
SIGNATURE_FILES = (MANIFEST, SIGNATURE, PUBLIC_KEY)

# DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): the 32 raw bytes follow
_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")
# a bundle's manifest is small; refuse to parse something absurd
_MAX_MANIFEST = 16 * 1024 * 1024


def fingerprint(key: VerifyKey) -> str:
    return hashlib.sha256(bytes(key)).hexdigest()


def public_key_pem(key: VerifyKey) -> str:
    der = _SPKI_PREFIX + bytes(key)
    return ("-----BEGIN PUBLIC KEY-----\n" + base64.b64encode(der).decode()
            + "\n-----END PUBLIC KEY-----\n")


def parse_public_key(data: bytes) -> VerifyKey:
    """A public key as PEM (SPKI), 32 raw bytes (keys/signing.pub) or 64 hex digits."""
    text = data.strip()
    try:
        if text.startswith(b"-----BEGIN PUBLIC KEY-----"):
            body = b"".join(text.splitlines()[1:-1])
            der = base64.b64decode(body, validate=True)
            if len(der) != len(_SPKI_PREFIX) + 32 or not der.startswith(_SPKI_PREFIX):
                raise ValueError("not an Ed25519 public key")
            return VerifyKey(der[len(_SPKI_PREFIX):])
        if len(data) == 32:
            return VerifyKey(data)
        if len(text) == 64:
            return VerifyKey(bytes.fromhex(text.decode("ascii")))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        pass
    raise ConfigError("公開鍵の形式が正しくありません / not an Ed25519 public key "
                      "(PEM, 32 raw bytes or 64 hex digits)")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class BundleCheck:
    ok: bool
    reason: str | None                  # the first problem, Japanese / English
    problems: list[str] = field(default_factory=list)
    export_id: str | None = None
    fingerprint: str | None = None      # of the key the signature was checked with
    key_source: str | None = None       # "bundle" or "pinned"
    files_checked: int = 0
    manifest: dict | None = None

    signer: str = "unknown"             # "pinned" | "unknown" | "other"
    timestamp: dict | None = None       # the manifest's RFC 3161 token, checked

    def as_dict(self) -> dict:
        return {"ok": self.ok, "reason": self.reason, "problems": self.problems,
                "export_id": self.export_id, "fingerprint": self.fingerprint,
                "key_source": self.key_source, "files_checked": self.files_checked,
                "signer": self.signer, "timestamp": self.timestamp}

    def timestamp_text(self) -> str:
        t = self.timestamp or {}
        if t.get("ok"):
            return (f"{t.get('gen_time')} 以前に作成 / the manifest existed at {t.get('gen_time')} "
                    f"({t.get('tsa') or 'TSA'})")
        return t.get("problem") or "-"


SIGNER_TEXT = {
    "pinned": "公表された鍵で署名されています / signed by the published (pinned) key",
    "unknown": ("署名は有効、署名者不明: --public-key か --fingerprint で公表鍵を指定してください / "
                "signature valid, signer unknown: pin the published key with --public-key or "
                "--fingerprint"),
    "other": ("署名は有効ですが、公表された鍵ではありません / signature valid, but not by the "
              "published key"),
}


def pin_signer(check: "BundleCheck", pin_fp: str | None) -> "BundleCheck":
    """Who signed: a bundle is valid only when its signer is pinned (issue 20 item 7)."""
    if check.key_source == "pinned":
        check.signer = "pinned"
    elif check.fingerprint is not None:
        check.signer = ("unknown" if pin_fp is None
                        else "pinned" if pin_fp == check.fingerprint else "other")
    if check.signer != "pinned" and check.fingerprint is not None:
        check.problems.append(SIGNER_TEXT[check.signer])
    check.ok = not check.problems
    check.reason = check.problems[0] if check.problems else None
    return check


def _entries(root: Path, limit: int = 100_000) -> set[str]:
    """Every file and directory under root, relative, '/'-separated (bounded walk)."""
    out: set[str] = set()
    for i, p in enumerate(root.rglob("*")):
        if i >= limit:
            out.add("…")   # more entries than any bundle has: an extra by definition
            break
        out.add(p.relative_to(root).as_posix())
    return out


def check_timestamp(root: Path, manifest_bytes: bytes, tsa_ca: Path | None) -> dict | None:
    """The manifest's token: its imprint, and with the TSA's CA its signature (offline)."""
    from appliance.governance.timestamps import TimestampError, openssl_verify, token_info
    path = root / TIMESTAMP
    if not path.exists():
        return None
    try:
        token = path.read_bytes()
        info = token_info(token)
    except (OSError, TimestampError):
        return {"ok": False, "problem": "時刻認証トークンが壊れています / manifest.tsr is damaged"}
    out = {"gen_time": info["gen_time"], "tsa": info["tsa"], "serial": info["serial"],
           "pinned": tsa_ca is not None}
    if info["imprint"] != hashlib.sha256(manifest_bytes).hexdigest():
        return dict(out, ok=False, problem="時刻認証トークンが manifest.json と一致しません / "
                                           "manifest.tsr does not cover this manifest.json")
    if tsa_ca is not None:
        why = openssl_verify(token, tsa_ca, data_file=root / MANIFEST)
        if why is not None:
            return dict(out, ok=False, problem=f"時刻認証の署名を確認できません / manifest.tsr does "
                                               f"not verify against the TSA's CA: {why}")
    return dict(out, ok=True, problem=None)


def verify_bundle(root: Path, public_key: VerifyKey | None = None, *,
                  tsa_ca: Path | None = None) -> BundleCheck:
    """Signature, pinned hashes, no missing and no extra file. Never raises for a bad bundle."""
    def bad(reason: str, **kw) -> BundleCheck:
        return BundleCheck(False, reason, [reason], **kw)

    try:
        manifest_bytes = (root / MANIFEST).read_bytes()
    except OSError:
        return bad("manifest.json がありません / manifest.json is missing")
    try:
        signature = (root / SIGNATURE).read_bytes()
    except OSError:
        return bad("署名 manifest.sig がありません / manifest.sig is missing")
    try:
        pem = (root / PUBLIC_KEY).read_bytes()
        bundled_key = parse_public_key(pem)
        # byte for byte as written: PEM tolerates edits (armour lines, padding) that
        # would change the file without changing the key, and no byte may change
        if pem != public_key_pem(bundled_key).encode():
            raise ConfigError("not canonical")
    except OSError:
        return bad("公開鍵 signing-key.pem がありません / signing-key.pem is missing")
    except ConfigError:
        return bad("同梱の公開鍵が壊れています / signing-key.pem is damaged")
    key, source = (public_key, "pinned") if public_key is not None else (bundled_key, "bundle")
    fp = fingerprint(key)
    if public_key is not None and bytes(bundled_key) != bytes(public_key):
        return bad("同梱の公開鍵が指定の公開鍵と異なります / the bundle's signing-key.pem is not "
                   "the published key", fingerprint=fp, key_source=source)
    if len(manifest_bytes) > _MAX_MANIFEST:
        return bad("manifest.json が大きすぎます / manifest.json is too large",
                   fingerprint=fp, key_source=source)
    try:
        key.verify(manifest_bytes, signature)
    except (BadSignatureError, ValueError, TypeError):
        return bad("署名が一致しません (manifest.json が改変されたか別の鍵の署名) / the signature "
                   "does not match manifest.json (altered, or signed by another key)",
                   fingerprint=fp, key_source=source)

    # from here on the manifest is authentic: it tells what the bundle holds
    try:
        manifest = json.loads(manifest_bytes.decode("utf-8"))
        files = manifest["files"]
        export_id = manifest["export_id"]
        if manifest.get("format") != FORMAT:
            raise ValueError(manifest.get("format"))
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return bad("manifest.json の形式が不明です / unknown manifest format",
                   fingerprint=fp, key_source=source)
    problems: list[str] = []
    if manifest.get("signing_key", {}).get("fingerprint") != fingerprint(bundled_key):
        problems.append("manifest の鍵指紋が同梱の公開鍵と一致しません / the manifest's key "
                        "fingerprint does not match signing-key.pem")
    expected = set(SIGNATURE_FILES)
    stamp = check_timestamp(root, manifest_bytes, tsa_ca)
    if stamp is not None:
        expected.add(TIMESTAMP)
        if not stamp["ok"]:
            problems.append(stamp["problem"])
    checked = 0
    for entry in files:
        rel = entry.get("path", "")
        parts = rel.split("/")
        if not rel or rel.startswith("/") or ".." in parts or rel in expected:
            problems.append(f"{rel!r}: 不正なパス / invalid path in the manifest")
            continue
        expected.add(rel)
        expected.update("/".join(parts[:i]) for i in range(1, len(parts)))
        path = root / rel
        try:
            st = path.lstat()
        except OSError:
            problems.append(f"{rel}: ファイルがありません / missing")
            continue
        if not stat.S_ISREG(st.st_mode):
            problems.append(f"{rel}: 通常のファイルではありません / not a regular file")
            continue
        if st.st_size != entry.get("size") or sha256_file(path) != entry.get("sha256"):
            problems.append(f"{rel}: 内容が改変されています (SHA-256 不一致) / altered "
                            "(SHA-256 differs from the manifest)")
        checked += 1
    for call in manifest.get("calls", []):
        if call.get("file") and call["file"] not in expected:
            problems.append(f"{call['file']}: manifest の通話にファイルの記載がありません / "
                            "a call's file is not pinned")
    for extra in sorted(_entries(root) - expected):
        problems.append(f"{extra}: manifest にない余分なファイル / extra file not in the manifest")
    return BundleCheck(not problems, problems[0] if problems else None, problems,
                       export_id=export_id, fingerprint=fp, key_source=source,
                       files_checked=checked, manifest=manifest, timestamp=stamp)
