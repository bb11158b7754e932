"""The call list (filters: period, number, direction, trunk, site, duration,
notice, held) and one call in detail."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query, Request

from appliance.governance.access import Action
from appliance.governance.holds import held_call_ids, list_holds
from appliance.present import ABSENT_JA, NOTICE_JA, STATE_JA, call_json
from appliance.store.catalog import to_local_text
from appliance.web.deps import Staff, current_staff
from appliance.web.routes.common import GROUND_CHOICES, TEXT_MAX, CallId, number_filter, when

router = APIRouter()
api = APIRouter(prefix="/api/calls", tags=["calls"])

MAX_PAGE = 500


def _row(r: dict, held: set[str]) -> dict:
    out = call_json(r)
    out["held"] = r["id"] in held
    out["notice_ja"] = NOTICE_JA.get(r["notice"], r["notice"])
    out["state_ja"] = STATE_JA.get(r["state"], r["state"])
    out["absent_ja"] = ABSENT_JA.get(r["number_absent_reason"] or "")
    return out


def search(staff: Staff, *, since=None, until=None, number=None, direction=None, trunk=None,
           site=None, min_duration=None, max_duration=None, notice=None, held=None,
           limit=100, offset=0) -> dict:
    session = staff.session()
    session.authorize(Action.LIST)
    rows = staff.catalog.calls(number=number_filter(number), since=when(since),
                               until=when(until, end_of_day=True))
    held_ids = held_call_ids(staff.catalog, session.now())

    def keep(r: dict) -> bool:
        d = r["duration_s"]
        return ((direction is None or r["direction"] == direction)
                and (trunk is None or r["trunk"] == trunk)
                and (site is None or r["site"] == site)
                and (min_duration is None or (d is not None and d >= min_duration))
                and (max_duration is None or (d is not None and d <= max_duration))
                and (notice is None or r["notice"] == notice)
                and (held is None or (r["id"] in held_ids) == held))
    found = [r for r in reversed(rows) if keep(r)]     # newest first
    return {"total": len(found), "offset": offset, "limit": limit,
            "calls": [_row(r, held_ids) for r in found[offset:offset + limit]]}


class Filters:
    """The list's filters, as query parameters of both the page and the API."""

    def __init__(
        self,
        since: str | None = Query(None, max_length=40, description="ISO 8601 date or time (JST)"),
        until: str | None = Query(None, max_length=40, description="a date alone includes that day"),
        number: str | None = Query(None, max_length=40, description="far, near or dialled number"),
        direction: Literal["in", "out"] | None = Query(None),
        trunk: str | None = Query(None, max_length=64),
        site: str | None = Query(None, max_length=64),
        min_duration: float | None = Query(None, ge=0, le=86400),
        max_duration: float | None = Query(None, ge=0, le=86400),
        notice: Literal["played", "not_heard", "none"] | None = Query(None),
        held: bool | None = Query(None),
        limit: int = Query(100, ge=1, le=MAX_PAGE),
        offset: int = Query(0, ge=0, le=1_000_000),
    ) -> None:
        self.values = {k: v for k, v in locals().items() if k != "self"}


@api.get("", summary="search call records (通話記録の検索)")
def list_calls(f: Filters = Depends(), staff: Staff = Depends(current_staff)) -> dict:
    return search(staff, **f.values)


def detail(staff: Staff, call_id: str) -> dict:
    session = staff.session()
    session.authorize(Action.LIST, call_ids=[call_id])
    row = staff.catalog.get_call(call_id)
    held_ids = held_call_ids(staff.catalog, session.now())
    holds = [h for h in list_holds(staff.catalog, active_only=False, now=session.now())
             if h["call_id"] == call_id]
    for h in holds:
        for k in ("until", "created_at", "released_at"):
            h[k] = to_local_text(h[k])
    out = _row(row, held_ids)
    out["holds"] = holds
    out["playable"] = row["state"] in ("complete", "truncated")
    return out


@api.get("/{call_id}", summary="one call record")
def get_call(call_id: CallId, staff: Staff = Depends(current_staff)) -> dict:
    return detail(staff, call_id)


router.include_router(api)


@router.get("/calls", include_in_schema=False)
def calls_page(request: Request, f: Filters = Depends(), staff: Staff = Depends(current_staff)):
    result = search(staff, **f.values)
    return request.app.state.render(request, "calls.html", {
        "result": result, "f": f.values, "staff": staff,
        "query": str(request.url.query)})


@router.get("/calls/{call_id}", include_in_schema=False)
def call_page(request: Request, call_id: CallId, staff: Staff = Depends(current_staff)):
    return request.app.state.render(request, "call.html", {
        "call": detail(staff, call_id), "grounds": GROUND_CHOICES, "staff": staff,
        "text_max": TEXT_MAX})
