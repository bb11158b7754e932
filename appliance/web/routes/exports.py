"""提供 (exports, R12, R13): the list, creating a bundle, downloading it.

Bundles made here are written under the web service's exports folder
(``[web] exports_dir``, default ``DATA_DIR/exports``). A bundle is handed
only to the staff member who made it — the person the ledger's 提供 entry
names — as a zip of the bundle folder; every download is a 複製 entry of the
ledger. Anyone else is refused, and the refusal is on the ledger.
"""

from __future__ import annotations

import io
import json

import secrets
import zipfile
from pathlib import Path

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from appliance.governance.access import Action
from appliance.governance.exports import (BUNDLE_KEY, ExportResult, bundle_files,
                                          bundle_for_copy, create_export, list_exports,
                                          record_copy, unlock_bundle)
from appliance.governance.grounds import GROUNDS
from appliance.store.catalog import to_local_text
from appliance.web.deps import Staff, WebError, current_staff

from appliance.web.routes.common import GROUND_CHOICES, TEXT_MAX, ObjectId, check_ids
from appliance.web.routes.login import check_password, client_address

router = APIRouter()
api = APIRouter(prefix="/api/exports", tags=["exports"])


class ExportIn(BaseModel):
    call_ids: list[str] = Field(min_length=1, max_length=100)
    ground: str = Field(min_length=1, max_length=32)
    reference: str = Field(min_length=1, max_length=TEXT_MAX)
    recipient: str = Field(min_length=1, max_length=TEXT_MAX)
    approver: str | None = Field(None, max_length=TEXT_MAX)
    password: str = Field(min_length=1, max_length=1024)


def new_bundle_path(staff: Staff) -> Path:
    root = staff.ctx.exports_dir
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    return root / f"web-{secrets.token_hex(8)}"


def keyed_session(staff: Staff, request: Request, password: str):
    """The person's own password unwraps the archive key, for this request only."""
    pw = password.encode()
    address = client_address(request)
    check_password(staff.ctx, staff.catalog, staff.user.name, pw, address)
    return staff.session(pw)


def result_json(r: ExportResult) -> dict:
    return {"export_id": r.export_id, "call_ids": r.call_ids, "ground": str(r.ground),
            "reference": r.reference, "manifest_sha256": r.manifest_sha256,
            "fingerprint": r.fingerprint, "download": f"/api/exports/{r.export_id}/bundle.zip"}


def exports(staff: Staff) -> list[dict]:
    rows = list_exports(staff.session())
    out = []
    for r in reversed(rows):
        info = GROUNDS.get(r["ground"])
        out.append({"id": r["id"], "created_at": to_local_text(r["created_at"]),
                    "actor": r["actor"], "ground": r["ground"],
                    "ground_ja": info.label_ja if info else r["ground"],
                    "reference": r["reference"], "recipient": r["recipient"],
                    "call_ids": json.loads(r["call_ids"]), "request_id": r["request_id"],
                    "mine": r["actor"] == staff.user.name})
    return out


@api.get("", summary="exports made so far")
def get_exports(staff: Staff = Depends(current_staff)) -> dict:
    return {"exports": exports(staff)}


@api.post("", summary="提供: create a signed bundle for a third party", status_code=201)
def post_export(body: ExportIn, request: Request, staff: Staff = Depends(current_staff)) -> dict:
    ids = check_ids(body.call_ids)
    session = staff.session()
    # the role is checked before the password is: a refusal costs no key
    session.authorize(Action.EXPORT, call_ids=ids, reference=body.reference)
    keyed = keyed_session(staff, request, body.password)
    # kept sealed at rest: the audio opens only with the bundle key this session holds
    result = create_export(keyed, ids, body.ground, body.reference, body.recipient,
                           new_bundle_path(staff), approver=body.approver or None,
                           seal_audio=True)
    keep_bundle_key(staff, result)
    return result_json(result)


def keep_bundle_key(staff: Staff, result: ExportResult) -> None:
    if result.bundle_key is not None:
        staff.ctx.sessions.keep_export_key(staff.ws, result.export_id, result.bundle_key)


def _zip(files: list[tuple[str, bytes]], top: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for rel, data in files:
            z.writestr(f"{top}/{rel}", data)
    return buf.getvalue()


@api.get("/{export_id}/bundle.zip", summary="download a bundle (its maker only)",
         response_class=Response, responses={200: {"content": {"application/zip": {}}}})
def download(export_id: ObjectId, staff: Staff = Depends(current_staff)):
    # the rule (its maker only, inside the exports folder) is governance's
    session = staff.session()
    row, folder = bundle_for_copy(session, export_id, staff.ctx.exports_dir)
    key = staff.ctx.sessions.export_key(staff.ws, export_id)
    if key is None and (folder / BUNDLE_KEY).exists():
        raise WebError(403, "bundle_locked", "提供物の音声は封印されています。パスワードを入力して"
                       "解錠してください / the bundle's audio is sealed at rest: unlock it with "
                       f"your password (POST /api/exports/{export_id}/unlock)")
    data = _zip(bundle_files(folder, key), export_id)
    record_copy(session, row, via="web", size=len(data))
    return Response(data, media_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="{export_id}.zip"',
        "Cache-Control": "no-store"})


class UnlockIn(BaseModel):
    password: str = Field(min_length=1, max_length=1024)


@api.post("/{export_id}/unlock", summary="open a sealed bundle's key for this session's download")
def unlock(export_id: ObjectId, body: UnlockIn, request: Request,
           staff: Staff = Depends(current_staff)) -> dict:
    session = staff.session()
    row, folder = bundle_for_copy(session, export_id, staff.ctx.exports_dir)
    keyed = keyed_session(staff, request, body.password)
    key = unlock_bundle(keyed, folder)
    if key is not None:
        staff.ctx.sessions.keep_export_key(staff.ws, export_id, key)
    return {"export_id": export_id, "download": f"/api/exports/{export_id}/bundle.zip"}


router.include_router(api)


@router.get("/exports", include_in_schema=False)
def exports_page(request: Request, call_ids: str = "", staff: Staff = Depends(current_staff)):
    grounds = [g for g in GROUND_CHOICES if g["code"] not in ("duty", "disclosure")]
    return request.app.state.render(request, "exports.html", {
        "exports": exports(staff), "grounds": grounds, "staff": staff,
        "call_ids": call_ids[:2000], "text_max": TEXT_MAX})



