"""The in-browser player: ground first, then audio decrypted on the fly.

``POST /api/calls/{id}/listen`` takes the ground (根拠), the reference and the
person's password again: the governance layer authorises the 閲覧, the
archive key is unwrapped for this request only, the recording's data key is
unsealed, and a LISTEN entry goes on the ledger. The answer holds the levels
of both legs over time (the picture on the call page) and the address of the
audio: a ticket bound to this session and this call, valid a few minutes,
that lets the audio element fetch and seek. The audio is decrypted into
memory on every fetch and never written to disk in clear.
"""

from __future__ import annotations

import re

import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from appliance.dsp.level import LevelMeter
from appliance.errors import KeyStoreError
from appliance.governance.access import Action
from appliance.governance.grounds import GROUNDS
from appliance.governance.ledger import EntryKind
from appliance.store.opus import read_recording
from appliance.store.sealed import open_sealed
from appliance.web.deps import Staff, WebError, current_staff
from appliance.web.routes.common import TEXT_MAX, CallId, ground_or_refuse
from appliance.web.routes.login import check_password, client_address

router = APIRouter(prefix="/api/calls", tags=["player"])
LEVEL_STEP_S = 0.1          # one point of the picture per 100 ms
_PLAYABLE = ("complete", "truncated")


class ListenIn(BaseModel):
    ground: str = Field(min_length=1, max_length=32)
    reference: str = Field(min_length=1, max_length=TEXT_MAX)
    password: str = Field(min_length=1, max_length=1024)


def _levels(far: np.ndarray, near: np.ndarray) -> dict:
    """Per-leg level in dBm0, one value per LEVEL_STEP_S (the loudest 20 ms frame in it)."""
    per = int(LEVEL_STEP_S / 0.02)
    out = {}
    for name, leg in (("far", far), ("near", near)):
        frames = [f.level_dbm0 for f in LevelMeter().feed(leg)]
        out[name] = [round(max(frames[i:i + per]), 1) for i in range(0, len(frames), per)]
    return {"step_s": LEVEL_STEP_S, "floor_dbm0": -60.0, **out}


@router.post("/{call_id}/listen", summary="閲覧: give the ground, get the audio and levels")
def listen(call_id: CallId, body: ListenIn, request: Request,
           staff: Staff = Depends(current_staff)) -> dict:
    session = staff.session()
    ground, reference = ground_or_refuse(session, body.ground, body.reference, "listen",
                                         [call_id])
    session.authorize(Action.LISTEN, ground=ground, call_ids=[call_id], reference=reference)
    row = staff.catalog.get_call(call_id)
    if row["state"] not in _PLAYABLE or not row["recording_path"]:
        raise KeyStoreError(f"この通話には再生できる録音がありません / call {call_id} has no "
                            "recording to play")
    password = body.password.encode()
    address = client_address(request)
    check_password(staff.ctx, staff.catalog, staff.user.name, password, address)
    keyed = staff.session(password)
    del password
    dd = staff.ctx.datadir
    private = keyed.archive_key()
    data_key = dd.keys.data_key(row["key_id"], private)
    del private, keyed
    opened = open_sealed(dd.path_of(row["recording_path"]).read_bytes(), data_key)
    decoded = read_recording(opened.payload)
    session.ledger.append(EntryKind.LISTEN, session.now(), call_ids=[call_id], ground=str(ground),
                          reference=reference, actor=session.user.name,
                          detail={"via": "web", "complete": opened.complete})
    ticket = staff.ctx.sessions.add_ticket(staff.ws, call_id, data_key)
    info = GROUNDS[ground]
    return {"call_id": call_id, "audio_url": f"/api/calls/{call_id}/audio?ticket={ticket}",
            "duration_s": round(decoded.duration_s, 3), "complete": opened.complete,
            "ground": {"code": str(ground), "label_ja": info.label_ja, "article": info.article},
            "reference": reference, "levels": _levels(decoded.far, decoded.near)}


_RANGE = re.compile(r"^bytes=([0-9]*)-([0-9]*)$")
#: longer digit strings are positions past any recording: read as "beyond the end"
#: (never handed to int(), which refuses 4,301+ digits with a ValueError)
_MAX_DIGITS = 18


class Unsatisfiable(Exception):
    """The range starts past the end: 416."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """One ``bytes=`` range (RFC 9110 §14.1.2) as (first, last), or None for the whole file.

    A header we do not understand (several ranges, another unit) is ignored,
    as the RFC allows: the whole file is sent.
    """
    m = _RANGE.match((header or "").strip())
    if not m or not (m.group(1) or m.group(2)):
        return None
    first, last = (None if not g else int(g) if len(g) <= _MAX_DIGITS else size + 1
                   for g in m.groups())
    if size == 0:
        raise Unsatisfiable               # no byte of an empty file can be asked for
    if first is None:                     # a suffix: the last N bytes
        if last == 0:
            raise Unsatisfiable
        return max(0, size - last), size - 1
    if first >= size or (last is not None and first > last):
        raise Unsatisfiable
    return first, size - 1 if last is None else min(last, size - 1)


@router.get("/{call_id}/audio", summary="the audio of a listen (Ogg Opus, needs its ticket)",
            response_class=Response,
            responses={200: {"content": {"audio/ogg": {}}}, 206: {"content": {"audio/ogg": {}}}})
def audio(call_id: CallId, request: Request,
          ticket: str = Query(..., min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$"),
          staff: Staff = Depends(current_staff)) -> Response:
    t = staff.ctx.sessions.ticket(staff.ws, ticket)
    if t is None or t.call_id != call_id:
        raise WebError(403, "no_ticket", "再生には根拠の入力が必要です / give a ground first: "
                                         "this audio address is not valid for this session")
    row = staff.catalog.get_call(call_id)
    dd = staff.ctx.datadir
    data = open_sealed(dd.path_of(row["recording_path"]).read_bytes(), t.data_key).payload
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "no-store"}
    size = len(data)
    try:
        wanted = parse_range(request.headers.get("range"), size)
    except Unsatisfiable:
        return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
    if wanted is not None:
        start, end = wanted
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        return Response(data[start:end + 1], status_code=206, media_type="audio/ogg",
                        headers=headers)
    return Response(data, media_type="audio/ogg", headers=headers)
