"""Exports (提供, R12, R13): a signed bundle of plain recordings for a third party.

Rules (要綱 第8条, 第9条, 第10条):
- every export names its ground and reference; ``duty`` (設置目的内の確認,
  第7条第3項) allows looking at records inside the appliance's purpose, never
  providing them to someone else (第8条第1項);
- ``mayor`` (第8条第1項第3号) needs the reference of the mayor's approval;
- ``disclosure`` (第9条) copies go to the requester through their request
  (``appliance request export``), so they hold exactly that person's calls;
- the recipient is bound by the terms of 第8条第2項, which travel inside the
  signed manifest and on the printed cover sheet;
- each export is one 提供 entry of the ledger and one row of ``exports``;
  refusals are ledgered too.

The bundle is built in a hidden sibling directory and renamed into place in
the same transaction that records it, so a failure leaves neither a bundle
without a ledger entry nor a half-written bundle at ``out``.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from nacl.exceptions import CryptoError
from nacl.public import SealedBox
from nacl.secret import SecretBox

from appliance.errors import ConfigError, Forbidden, GroundError, SealedFileError, StoreError
from appliance.governance import bundle
from appliance.governance.access import Action, Session
from appliance.governance.cover import render_cover
from appliance.governance.grounds import GROUNDS, Ground, parse_ground
from appliance.governance.ledger import EntryKind
from appliance.governance.users import ROLE_LABELS_JA
from appliance.store.catalog import TOKYO, to_local_text, to_utc_text
from appliance.store.opus import read_recording
from appliance.store.sealed import open_sealed

TERMS_ARTICLE = "要綱第8条第2項"
#: the recipient's obligations, in the seed's words (第8条第2項第1号〜第3号)
TERMS_JA = (
    "通話記録を無断で複製しないこと。（無断複製の禁止）",
    "目的以外の利用及び第三者への無断提供を行わないこと。（目的外利用・第三者への無断提供の禁止）",
    ("目的を達成したとき又は目的が達成されないことが判明したときは、速やかにデータの返却、消去等"
     "必要な処理を行うこと。（目的達成後の速やかな返却・消去）"),
)
TERMS_EN = (
    "Do not copy the call records without permission.",
    "Do not use them for any other purpose, nor provide them to a third party without permission.",
    ("When the purpose is achieved, or is found to be unachievable, promptly return or erase the "
     "data and take any other necessary measures."),
)
# calls whose audio can be provided; 'unanswered' rows (and excluded lines) carry metadata only
_AUDIO_STATES = ("complete", "truncated")
_METADATA_STATES = ("unanswered",)


class ExportError(StoreError, ValueError):
    """An export that cannot be produced (nothing to provide, altered recording, bad path)."""


class UnknownExport(ExportError, KeyError):
    """No export with this id."""


class ExportNotHere(ExportError):
    """The export's bundle is not (or no longer) in this appliance's exports folder."""


class NotTheExporter(Forbidden):
    """Only the staff member who made an export may copy its bundle out."""


@dataclass(frozen=True)
class ExportResult:
    export_id: str
    path: Path
    call_ids: list[str]
    manifest_sha256: str
    fingerprint: str
    ground: Ground
    reference: str
    #: the key the bundle's audio is sealed under at rest (seal_audio=True), to hand to
    #: the download; never stored in clear
    bundle_key: bytes | None = None


#: inside a bundle kept on the appliance (the web's exports folder): the audio sealed
#: under a per-bundle key, and that key sealed to the archive key (R16, issue 20 item 3)
SEALED_SUFFIX = ".sealed"
BUNDLE_KEY = ".bundle-key"


def _refuse(session: Session, call_ids: list[str], reason: str, *, ground: str | None = None,
            reference: str | None = None) -> None:
    session.ledger.append(EntryKind.REFUSED, session.now(), call_ids=call_ids, ground=ground,
                          reference=reference, actor=session.user.name,
                          detail={"action": str(Action.EXPORT), "reason": reason})


def check_export_ground(session: Session, call_ids: list[str], ground_code: str | None,
                        reference: str | None, *, via_request: bool) -> tuple[Ground, str]:
    """The ground rules of 第8条/第9条; every refusal goes on the ledger first."""
    # role first: a technician or a deputy not acting is refused whatever the ground
    session.authorize(Action.EXPORT, call_ids=call_ids, reference=reference)
    try:
        if ground_code == Ground.MAYOR and not (reference or "").strip():
            raise GroundError("市長の承認文書の番号を --reference に指定してください / the ground "
                              "'mayor' needs the reference of the mayor's approval (--reference)")
        ground, reference = parse_ground(ground_code, reference)
        if ground == Ground.DUTY:
            raise Forbidden(
                "設置目的内の確認（要綱第7条第3項）は第三者への提供の根拠になりません。"
                "法令 (law)・捜査機関 (investigation)・市長の承認 (mayor) のいずれかを指定してください / "
                "'duty' is not a ground for providing records to a third party (要綱第8条第1項): "
                "use law, investigation or mayor")
        if ground == Ground.DISCLOSURE and not via_request:
            raise Forbidden("開示請求への提供は appliance request export で行ってください / "
                            "copies for a disclosure request are produced with "
                            "'appliance request export ID'")
    except (GroundError, Forbidden) as exc:
        _refuse(session, call_ids, str(exc), ground=ground_code, reference=reference)
        raise
    session.authorize(Action.EXPORT, ground=ground, call_ids=call_ids, reference=reference)
    return ground, reference


def _new_export_id(session: Session, now: datetime) -> str:
    day = now.astimezone(TOKYO).strftime("%Y%m%d")
    # the highest number of the day, not a count: robust to gaps
    last = session.catalog.conn.execute(
        "SELECT MAX(CAST(substr(id, 14) AS INTEGER)) FROM exports WHERE id LIKE ?",
        (f"EXP-{day}-%",)).fetchone()[0]
    return f"EXP-{day}-{(last or 0) + 1:03d}"


def _write(path: Path, data: bytes) -> None:
    """A new bundle file, owner-only (plain audio and numbers: R16), forced to storage."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _call_entry(row: dict) -> dict:
    return {
        "id": row["id"], "site": row["site"], "trunk": row["trunk"], "channel": row["channel"],
        "direction": row["direction"], "started_at": to_local_text(row["started_at"]),
        "answered_at": to_local_text(row["answered_at"]),
        "ended_at": to_local_text(row["ended_at"]), "duration_s": row["duration_s"],
        "far_number": row["far_number"], "near_number": row["near_number"],
        "called_number": row["called_number"],
        "number_absent_reason": row["number_absent_reason"], "notice": row["notice"],
        "state": row["state"], "recorded_s": row["recorded_s"],
        "recording_sha256": row["sha256"],   # the sealed file's hash, as in the ledger (R9)
        "file": None, "sha256": None, "size": None, "complete": None,
    }


def _readme(export_id: str, fp: str) -> str:
    return f"""通話記録 提供物 {export_id} / call-record export {export_id}

再生 / Playing
  calls/ の .opus ファイルは Ogg Opus です。ブラウザ (Chrome, Firefox, Edge) や VLC で再生できます。
  左チャンネル = 相手方、右チャンネル = 職員側。
  The .opus files are Ogg Opus (browser or VLC); left = far party, right = staff side.

真正性の確認 / Checking the bundle
  署名鍵の指紋 / signing-key fingerprint (SHA-256): {fp}
  これが市の公表する指紋と一致することを確認してください。
  Compare it with the fingerprint the city publishes.

  1. 署名 / signature (OpenSSL 3):
     openssl pkeyutl -verify -pubin -inkey signing-key.pem -rawin -in manifest.json -sigfile manifest.sig
  2. 各ファイルの SHA-256 / every file's SHA-256:
     python3 -c 'import json;[print(f["sha256"]+"  "+f["path"]) for f in json.load(open("manifest.json",encoding="utf-8"))["files"]]' | sha256sum -c
  3. 公開鍵の指紋 / the key's fingerprint:
     openssl pkey -pubin -in signing-key.pem -outform DER | tail -c 32 | sha256sum
  または / or: appliance verify-export . --public-key <公表された公開鍵 / published key>

遵守事項 / Terms: {TERMS_ARTICLE} — cover.html を参照 / see cover.html.
"""


def create_export(session: Session, call_ids: list[str], ground_code: str | None,
                  reference: str | None, recipient: str | None, out: Path, *,
                  approver: str | None = None, request: dict | None = None,
                  stamp=None, seal_audio: bool = False) -> ExportResult:
    """Write a signed bundle at ``out`` (a new directory), ledger it as 提供, record it.

    ``stamp(digest) -> token | None``: the RFC 3161 token over the manifest's
    SHA-256 (front ends pass the configured TSA; None when it failed).
    ``seal_audio``: the bundle stays on the appliance (the web's exports folder),
    so its audio is never plain at rest: each ``calls/<id>.opus`` is kept as
    ``<id>.opus.sealed`` under a fresh bundle key (returned, and sealed to the
    archive key in ``.bundle-key``); ``bundle_files`` restores the plain bundle
    for a download."""
    ids = list(dict.fromkeys(call_ids))        # keep order, drop repeats
    if not ids:
        raise ExportError("提供する通話がありません / no calls to provide")
    recipient = (recipient or "").strip()
    if not recipient:
        raise ConfigError("提供先を --recipient に指定してください / a recipient is required")
    out = Path(out)
    if out.exists() or out.is_symlink():
        raise ConfigError(f"{out}: 既に存在します / already exists (never overwritten)")
    if not out.parent.is_dir():
        raise ConfigError(f"{out.parent}: 出力先のフォルダがありません / no such directory")

    ground, reference = check_export_ground(session, ids, ground_code, reference,
                                            via_request=request is not None)
    if ground == Ground.MAYOR and not approver:
        approver = "市長"
    cat, dd = session.catalog, session.datadir
    rows = [cat.get_call(cid) for cid in ids]
    for row in rows:
        if row["state"] not in _AUDIO_STATES + _METADATA_STATES:
            raise ExportError(f"{row['id']}: 状態が {row['state']} のため提供できません / "
                              f"a call in state {row['state']} cannot be provided")

    now = session.now()
    private = session.archive_key()
    signer = dd.keys.signing_key(private)
    if bytes(signer.verify_key) != bytes(dd.keys.verify_key()):
        raise ExportError("署名鍵が公表鍵と一致しません / the signing key does not match "
                          "keys/signing.pub")
    fp = bundle.fingerprint(signer.verify_key)
    bundle_key = secrets.token_bytes(SecretBox.KEY_SIZE) if seal_audio else None
    tmp = out.parent / f".{out.name}.partial-{secrets.token_hex(4)}"
    tmp.mkdir(mode=0o700)
    renamed = False
    try:
        (tmp / bundle.CALLS_DIR).mkdir(mode=0o700)
        files: list[dict] = []
        calls: list[dict] = []
        for row in rows:
            entry = _call_entry(row)
            if row["state"] in _AUDIO_STATES and row["recording_path"]:
                sealed = dd.path_of(row["recording_path"]).read_bytes()
                if hashlib.sha256(sealed).hexdigest() != row["sha256"]:
                    raise SealedFileError(f"{row['id']}: 録音が改変されています (appliance verify) "
                                          "/ the recording is altered: it differs from the "
                                          "catalog")
                opened = open_sealed(sealed, dd.keys.data_key(row["key_id"], private))
                read_recording(opened.payload)   # hand out only what decodes
                rel = f"{bundle.CALLS_DIR}/{row['id']}.opus"
                if bundle_key is not None:
                    _write(tmp / (rel + SEALED_SUFFIX), SecretBox(bundle_key).encrypt(opened.payload))
                else:
                    _write(tmp / rel, opened.payload)
                digest = hashlib.sha256(opened.payload).hexdigest()
                entry.update(file=rel, sha256=digest, size=len(opened.payload),
                             complete=opened.complete)
                files.append({"path": rel, "sha256": digest, "size": len(opened.payload)})
            calls.append(entry)
        info = GROUNDS[ground]
        doc = {
            "format": bundle.FORMAT,
            "export_id": _new_export_id(session, now),
            "created_at": to_local_text(to_utc_text(now)),
            "actor": {"name": session.user.name, "role": str(session.user.role),
                      "role_ja": ROLE_LABELS_JA[session.user.role]},
            "ground": {"code": str(ground), "label_ja": info.label_ja,
                       "label_en": info.label_en, "article": info.article},
            "reference": reference,
            "recipient": recipient,
            "approver": approver,
            "request": ({"id": request["id"], "reference": request["reference"],
                         "since": to_local_text(request["since"]),
                         "until": to_local_text(request["until"])} if request else None),
            "terms": {"article": TERMS_ARTICLE, "ja": list(TERMS_JA), "en": list(TERMS_EN)},
            "calls": calls,
            "signing_key": {"algorithm": "Ed25519", "fingerprint": fp, "file": bundle.PUBLIC_KEY},
        }
        for name, text in ((bundle.COVER, render_cover(doc)),
                           (bundle.README, _readme(doc["export_id"], fp))):
            data = text.encode("utf-8")
            _write(tmp / name, data)
            files.append({"path": name, "sha256": hashlib.sha256(data).hexdigest(),
                          "size": len(data)})
        doc["files"] = files
        manifest = (json.dumps(doc, ensure_ascii=False, indent=1) + "\n").encode("utf-8")
        _write(tmp / bundle.MANIFEST, manifest)
        _write(tmp / bundle.SIGNATURE, signer.sign(manifest).signature)
        _write(tmp / bundle.PUBLIC_KEY, bundle.public_key_pem(signer.verify_key).encode())
        if bundle_key is not None:
            _write(tmp / BUNDLE_KEY, SealedBox(private.public_key).encrypt(bundle_key))
        token = stamp(hashlib.sha256(manifest).digest()) if stamp is not None else None
        if token:
            _write(tmp / bundle.TIMESTAMP, token)
        del signer, private
        manifest_sha = hashlib.sha256(manifest).hexdigest()
        with cat.transaction():
            cat.db["exports"].insert({
                "id": doc["export_id"], "created_at": to_utc_text(now),
                "actor": session.user.name, "ground": str(ground), "reference": reference,
                "recipient": recipient, "path": str(out.resolve()),
                "manifest_sha256": manifest_sha, "call_ids": json.dumps(ids),
                "request_id": request["id"] if request else None})
            session.ledger.append(
                EntryKind.PROVIDE, now, call_ids=ids, ground=str(ground), reference=reference,
                actor=session.user.name, approver=approver, recipient=recipient,
                detail={"export": doc["export_id"], "path": str(out.resolve()),
                        "manifest_sha256": manifest_sha, "fingerprint": fp,
                        "terms": TERMS_ARTICLE, "request": request["id"] if request else None})
            # the rename commits the bundle together with its ledger entry
            os.rename(tmp, out)
            renamed = True
        _fsync_dir(out.parent)
    except sqlite3.IntegrityError:
        # the number was taken while this bundle was built (two staff at once)
        shutil.rmtree(tmp, ignore_errors=True)
        raise ExportError("同時に作成された提供物と番号が重なりました。もう一度実行してください / "
                          "another export took the same number meanwhile: run the command again"
                          ) from None
    except BaseException:
        # nothing unrecorded may stay behind: not the partial build, nor a bundle
        # whose ledger entry did not commit
        if not renamed:
            shutil.rmtree(tmp, ignore_errors=True)
        elif not session.catalog.conn.execute(
                "SELECT 1 FROM exports WHERE id = ?", (doc["export_id"],)).fetchone():
            shutil.rmtree(out, ignore_errors=True)
        raise
    return ExportResult(doc["export_id"], out, ids, manifest_sha, fp, ground, reference,
                        bundle_key)


def bundle_files(folder: Path, bundle_key: bytes | None) -> list[tuple[str, bytes]]:
    """The bundle as the recipient gets it: (relative path, bytes), sealed audio opened."""
    out = []
    for path in sorted(Path(folder).rglob("*")):
        if not path.is_file() or path.is_symlink() or path.name == BUNDLE_KEY:
            continue
        rel = path.relative_to(folder).as_posix()
        data = path.read_bytes()
        if rel.endswith(SEALED_SUFFIX):
            if bundle_key is None:
                raise ExportError("提供物の鍵がありません / the bundle's key is needed")
            try:
                data = SecretBox(bundle_key).decrypt(data)
            except CryptoError:
                raise ExportError("提供物の鍵が違います / wrong key for this bundle") from None
            rel = rel[:-len(SEALED_SUFFIX)]
        out.append((rel, data))
    return out


def unlock_bundle(session: Session, folder: Path) -> bytes | None:
    """The bundle key, unsealed with the staff member's own archive key (None: nothing sealed)."""
    try:
        sealed_key = (Path(folder) / BUNDLE_KEY).read_bytes()
    except FileNotFoundError:
        return None
    try:
        return SealedBox(session.archive_key()).decrypt(sealed_key)
    except CryptoError:
        raise ExportError("提供物の鍵を開けません / the bundle's key does not open") from None


def bundle_for_copy(session: Session, export_id: str, exports_dir: Path) -> tuple[dict, Path]:
    """The export's row and bundle folder, for copying it out (R12).

    The bundle was made for one recipient by one staff member, who names the
    ground and hands it over: only that person may take a copy, and a refusal
    lands on the ledger like any other. The folder must lie inside
    ``exports_dir`` (a row pointing elsewhere is not served)."""
    session.authorize(Action.EXPORT, call_ids=[])
    rows = list(session.catalog.db["exports"].rows_where("id = ?", [export_id]))
    if not rows:
        raise UnknownExport(f"提供物 {export_id} はありません / no export {export_id}")
    row = rows[0]
    if row["actor"] != session.user.name:
        reason = ("提供物は作成した職員のみがダウンロードできます / only the staff member who "
                  "made an export may download it")
        session.ledger.append(EntryKind.REFUSED, session.now(), call_ids=json.loads(row["call_ids"]),
                              ground=row["ground"], reference=row["reference"],
                              actor=session.user.name,
                              detail={"action": "download", "export": export_id,
                                      "reason": reason})
        raise NotTheExporter(reason)
    folder = Path(row["path"])
    if Path(exports_dir).resolve() not in folder.resolve().parents or not folder.is_dir():
        raise ExportNotHere("この提供物はこの装置の提供物フォルダにありません / the bundle is not "
                            "in this appliance's exports folder")
    return row, folder


def record_copy(session: Session, row: dict, *, via: str, size: int) -> None:
    """The 複製 entry of a bundle copied out (after ``bundle_for_copy``)."""
    session.ledger.append(EntryKind.EXTRACT, session.now(), call_ids=json.loads(row["call_ids"]),
                          ground=row["ground"], reference=row["reference"],
                          actor=session.user.name, recipient=row["recipient"],
                          detail={"action": "download", "export": row["id"], "via": via,
                                  "zip_bytes": size})


def list_exports(session: Session) -> list[dict]:
    session.authorize(Action.LEDGER)
    return list(session.catalog.db["exports"].rows_where(order_by="created_at, id"))
