"""通話記録管理簿 (the ledger, R14): entries, the chain check, the CSV of the paper 管理簿."""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from appliance.governance.access import Action
from appliance.governance.grounds import GROUNDS
from appliance.governance.ledger import EntryKind, KIND_LABELS_JA, Ledger, csv_bytes
from appliance.store.catalog import to_local_text
from appliance.web.deps import Staff, current_staff

router = APIRouter()
api = APIRouter(prefix="/api/ledger", tags=["ledger"])


def _entry(e: dict) -> dict:
    ground = GROUNDS.get(e["ground"]) if e["ground"] else None
    return {"seq": e["seq"], "at": to_local_text(e["at"]), "kind": e["kind"],
            "kind_ja": KIND_LABELS_JA.get(EntryKind(e["kind"]), e["kind"]),
            "call_ids": json.loads(e["call_ids"]), "ground": e["ground"],
            "ground_ja": ground.label_ja if ground else e["ground"],
            "reference": e["reference"], "actor": e["actor"], "approver": e["approver"],
            "recipient": e["recipient"], "detail": json.loads(e["detail"] or "{}"),
            "hash": e["hash"]}


def ledger_view(staff: Staff, kind: str | None, limit: int, offset: int) -> dict:
    session = staff.session()
    session.authorize(Action.LEDGER)
    ledger = Ledger(staff.catalog)
    res = ledger.verify()
    entries = [e for e in reversed(ledger.entries()) if kind is None or e["kind"] == kind]
    return {"verify": {"ok": res.ok, "entries": res.entries, "first_bad_seq": res.first_bad_seq,
                       "reason": res.reason, "head": f"{res.head_seq}:{res.head_hash}"},
            "total": len(entries), "offset": offset, "limit": limit,
            "entries": [_entry(e) for e in entries[offset:offset + limit]]}


@api.get("", summary="ledger entries, newest first, with the chain check")
def get_ledger(kind: EntryKind | None = Query(None), limit: int = Query(100, ge=1, le=1000),
               offset: int = Query(0, ge=0, le=10_000_000),
               staff: Staff = Depends(current_staff)) -> dict:
    return ledger_view(staff, str(kind) if kind else None, limit, offset)


@api.get("/csv", summary="the ledger as CSV (UTF-8 with BOM, columns of the paper 管理簿)",
         response_class=Response, responses={200: {"content": {"text/csv": {}}}})
def get_csv(staff: Staff = Depends(current_staff)) -> Response:
    session = staff.session()
    session.authorize(Action.LEDGER)
    return Response(csv_bytes(Ledger(staff.catalog).entries()),
                    media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="ledger.csv"'})


router.include_router(api)


@router.get("/ledger", include_in_schema=False)
def ledger_page(request: Request, kind: EntryKind | None = None, offset: int = Query(0, ge=0),
                staff: Staff = Depends(current_staff)):
    return request.app.state.render(request, "ledger.html", {
        "view": ledger_view(staff, str(kind) if kind else None, 100, offset),
        "kinds": [(k.value, KIND_LABELS_JA[k]) for k in EntryKind],
        "kind": str(kind) if kind else "", "staff": staff})
