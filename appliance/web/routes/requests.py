"""開示請求 (disclosure requests, R15, 要綱第9条): list, open, show, the copy, close."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from appliance.governance.access import Action
from appliance.governance.requests import (close_request, export_request, get_request,
                                           list_requests, open_request)
from appliance.present import REQUEST_STATE_JA, call_json
from appliance.store.catalog import to_local_text
from appliance.web.deps import Staff, WebError, current_staff
from appliance.web.routes.common import TEXT_MAX, ObjectId, number_filter, when
from appliance.web.routes.exports import (keep_bundle_key, keyed_session, new_bundle_path,
                                          result_json)

router = APIRouter()
api = APIRouter(prefix="/api/requests", tags=["requests"])


class RequestIn(BaseModel):
    number: str = Field(min_length=1, max_length=40, description="the requester's number")
    since: dt.date = Field(description="first day (JST)")
    until: dt.date = Field(description="last day (JST), included")
    reference: str = Field(min_length=1, max_length=TEXT_MAX, description="請求の文書番号")


class RequestExportIn(BaseModel):
    recipient: str = Field(min_length=1, max_length=TEXT_MAX)
    password: str = Field(min_length=1, max_length=1024)


def _json(row: dict) -> dict:
    out = {k: row[k] for k in ("id", "number", "reference", "state", "opened_by", "closed_by",
                               "call_ids")}
    out["state_ja"] = REQUEST_STATE_JA.get(row["state"], row["state"])
    for k in ("since", "until", "opened_at", "closed_at"):
        out[k] = to_local_text(row[k])
    if "calls" in row:
        out["calls"] = [call_json(c) for c in row["calls"]]
        out["holds"] = [{"id": h["id"], "call_id": h["call_id"],
                         "active": h["released_at"] is None} for h in row["holds"]]
        out["exports"] = [{"id": e["id"], "recipient": e["recipient"], "actor": e["actor"],
                           "created_at": to_local_text(e["created_at"]),
                           "mine": e["actor"] == row.get("_viewer")} for e in row["exports"]]
    return out


def _one(staff: Staff, request_id: str) -> dict:
    session = staff.session()
    session.authorize(Action.REQUEST)
    if not list(staff.catalog.db["requests"].rows_where("id = ?", [request_id])):
        raise WebError(404, "not_found", f"開示請求 {request_id} はありません / no disclosure "
                                         f"request {request_id}")
    row = get_request(session, request_id, authorize=False)
    row["_viewer"] = staff.user.name
    return _json(row)


def requests_list(staff: Staff, all_: bool) -> list[dict]:
    rows = list_requests(staff.session(), state=None if all_ else "open")
    return [_json(r) for r in reversed(rows)]


@api.get("", summary="open (all=true: every) disclosure request")
def get_requests(all: bool = Query(False), staff: Staff = Depends(current_staff)) -> dict:
    return {"requests": requests_list(staff, all)}


@api.post("", summary="受付: open a request, find the calls and hold them", status_code=201)
def post_request(body: RequestIn, staff: Staff = Depends(current_staff)) -> dict:
    number = number_filter(body.number)
    row = open_request(staff.session(), number, when(body.since.isoformat()),
                       when(body.until.isoformat(), end_of_day=True), body.reference)
    row["_viewer"] = staff.user.name
    return _json(row)


@api.get("/{request_id}", summary="one request: its calls, holds and copies")
def get_one(request_id: ObjectId, staff: Staff = Depends(current_staff)) -> dict:
    return _one(staff, request_id)


@api.post("/{request_id}/export", summary="the requester's copy (ground disclosure)",
          status_code=201)
def post_request_export(request_id: ObjectId, body: RequestExportIn, request: Request,
                        staff: Staff = Depends(current_staff)) -> dict:
    _one(staff, request_id)                   # 404 before asking for a key
    keyed = keyed_session(staff, request, body.password)
    result = export_request(keyed, request_id, body.recipient, new_bundle_path(staff),
                            seal_audio=True)       # never plain audio at rest (issue 20)
    keep_bundle_key(staff, result)
    return result_json(result)


@api.post("/{request_id}/close", summary="close the request (holds stay)")
def post_close(request_id: ObjectId, staff: Staff = Depends(current_staff)) -> dict:
    _one(staff, request_id)
    row = close_request(staff.session(), request_id)
    row["_viewer"] = staff.user.name
    return _json(row)


router.include_router(api)


@router.get("/requests", include_in_schema=False)
def requests_page(request: Request, all: bool = False, staff: Staff = Depends(current_staff)):
    return request.app.state.render(request, "requests.html", {
        "requests": requests_list(staff, all), "all": all, "staff": staff,
        "text_max": TEXT_MAX})


@router.get("/requests/{request_id}", include_in_schema=False)
def request_page(request: Request, request_id: ObjectId, staff: Staff = Depends(current_staff)):
    return request.app.state.render(request, "request.html", {
        "r": _one(staff, request_id), "staff": staff, "text_max": TEXT_MAX})
