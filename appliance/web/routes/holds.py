"""保管延長 (holds, R7): the list, placing a hold, releasing one."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from appliance.governance.access import Action
from appliance.governance.grounds import GROUNDS
from appliance.governance.holds import add_holds, list_holds, release_holds
from appliance.store.catalog import to_local_text
from appliance.web.deps import Staff, current_staff
from appliance.web.routes.common import (GROUND_CHOICES, TEXT_MAX, check_ids, ground_or_refuse,
                                         when)

router = APIRouter()
api = APIRouter(prefix="/api/holds", tags=["holds"])

class HoldIn(BaseModel):
    call_ids: list[str] = Field(min_length=1, max_length=100)
    ground: str = Field(min_length=1, max_length=32)
    reference: str = Field(min_length=1, max_length=TEXT_MAX)
    until: dt.date | None = Field(None, description="last day held (JST); empty: until released")

    model_config = {"json_schema_extra": {"examples": [
        {"call_ids": ["20260105T083012-T1c1-3f9a2b"], "ground": "duty", "reference": "人事第12号"}]}}


class ReleaseIn(BaseModel):
    call_ids: list[str] = Field(min_length=1, max_length=100)
    ground: str = Field(min_length=1, max_length=32)
    reference: str = Field(min_length=1, max_length=TEXT_MAX)
    #: only these holds (ids from GET /api/holds); omitted: every active hold on the calls
    hold_ids: list[int] | None = Field(default=None, min_length=1, max_length=100)


def holds(staff: Staff, all_: bool) -> list[dict]:
    session = staff.session()
    session.authorize(Action.LIST)
    rows = list_holds(staff.catalog, active_only=not all_, now=session.now())
    for r in rows:
        for k in ("until", "created_at", "released_at"):
            r[k] = to_local_text(r[k])
        info = GROUNDS.get(r["ground"])
        r["ground_ja"] = info.label_ja if info else r["ground"]
    return list(reversed(rows))


@api.get("", summary="active holds (all=true: released and expired too)")
def get_holds(all: bool = Query(False), staff: Staff = Depends(current_staff)) -> dict:
    return {"holds": holds(staff, all)}


@api.post("", summary="保管延長: hold calls", status_code=201)
def post_hold(body: HoldIn, staff: Staff = Depends(current_staff)) -> dict:
    ids = check_ids(body.call_ids)
    session = staff.session()
    ground, reference = ground_or_refuse(session, body.ground, body.reference, "hold", ids)
    # a date alone holds through that day (the way a form reads)
    until = when(body.until.isoformat(), end_of_day=True) if body.until else None
    hold_ids = add_holds(session, ids, ground, reference, until)
    return {"hold_ids": hold_ids, "call_ids": ids}


@api.post("/release", summary="延長解除: release the holds on calls")
def post_release(body: ReleaseIn, staff: Staff = Depends(current_staff)) -> dict:
    ids = check_ids(body.call_ids)
    session = staff.session()
    ground, reference = ground_or_refuse(session, body.ground, body.reference, "release", ids)
    return {"released": release_holds(session, ids, ground, reference, body.hold_ids)}


router.include_router(api)


@router.get("/holds", include_in_schema=False)
def holds_page(request: Request, all: bool = False, staff: Staff = Depends(current_staff)):
    return request.app.state.render(request, "holds.html", {
        "holds": holds(staff, all), "all": all, "grounds": GROUND_CHOICES, "staff": staff,
        "text_max": TEXT_MAX})
