"""装置の状態 (appliance status) for staff: lines, storage and retention horizon, alarms.

Live line states come from the recorder's status socket (appliance.ops);
active alarms from the alarm registry in the catalog, the same list the
technician's console shows. Nothing here names a number.
"""

from __future__ import annotations

import shutil

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from appliance.governance.holds import held_call_ids
from appliance.governance.ledger import Ledger
from appliance.governance.retention import Sweeper
from appliance.governance.users import require_staff
from appliance.ops.alarms import AlarmRegistry, list_alarms
from appliance.ops.status import appliance_status
from appliance.present import STATE_JA
from appliance.store.catalog import to_local_text, to_utc_text
from appliance.web.deps import Staff, current_staff

router = APIRouter()


def status(staff: Staff, watch=None) -> dict:
    require_staff(staff.user)
    ctx, cat = staff.ctx, staff.catalog
    now = ctx.clock.now()
    lines = [{"site": r[0], "trunk": r[1], "channel": r[2], "calls": r[3],
              "last_call": to_local_text(r[4]), "recording_now": bool(r[5])}
             for r in cat.conn.execute(
                 "SELECT site, trunk, channel, COUNT(*), MAX(started_at),"
                 " SUM(state = 'recording') FROM calls GROUP BY site, trunk, channel"
                 " ORDER BY site, trunk, channel")]
    states = {r[0]: r[1] for r in cat.conn.execute(
        "SELECT state, COUNT(*) FROM calls GROUP BY state")}
    oldest = cat.conn.execute("SELECT MIN(started_at) FROM calls WHERE state != 'erased'"
                              ).fetchone()[0]
    usage = shutil.disk_usage(ctx.datadir.root)
    plan = Sweeper(ctx.datadir, cat, ctx.retention, lambda: now).plan(now)
    res = Ledger(cat).verify()
    ops = appliance_status(ctx.datadir.root, cat)
    if watch is not None:
        watch.observe(ops["recorder_running"])      # this request noticed it too
    # the alarm records first (raised, unacknowledged, most severe), then the catalog's notes
    alarms = [dict(a.as_dict(), at=a.raised_at,
                   message=f"{a.label}" + (f" ({a.subject})" if a.subject else ""))
              for a in list_alarms(cat)]
    if not res.ok:
        alarms.append({"at": None, "message": f"通話記録管理簿の改ざんを検出 (#{res.first_bad_seq}) / "
                                              f"ledger chain broken at #{res.first_bad_seq}"})
    if states.get("truncated"):
        alarms.append({"at": None, "message": f"途中切断の録音 {states['truncated']} 件 / "
                                              f"{states['truncated']} truncated recording(s)"})
    live = {(ln["trunk"], ln["channel"]): ln for ln in (ops["live"] or {}).get("lines", [])}
    for ln in lines:
        now_line = live.get((ln["trunk"], ln["channel"]))
        ln["state"] = now_line["state_label"] if now_line else None
    return {
        "now": to_local_text(to_utc_text(now)),
        "site": ctx.config.site.name,
        "lines": lines,
        "calls_by_state": [{"state": k, "state_ja": STATE_JA.get(k, k), "count": v}
                           for k, v in sorted(states.items())],
        "storage": {"total_bytes": usage.total, "free_bytes": usage.free,
                    "min_free_mb": ctx.retention.min_free_mb},
        "retention": {"policy": ctx.retention.kind, "policy_ja": ctx.retention.describe_ja(),
                      "oldest_record": to_local_text(oldest), "due_now": len(plan["erase"]),
                      "kept_by_holds": len(plan["held"]),
                      "held_calls": len(held_call_ids(cat, now))},
        "ledger": {"ok": res.ok, "entries": res.entries},
        "alarms": alarms,
        "recorder_running": ops["recorder_running"],
    }


def _watch(request: Request):
    return getattr(request.app.state, "recorder_watch", None)


@router.get("/api/status", tags=["status"], summary="appliance status for staff")
def get_status(request: Request, staff: Staff = Depends(current_staff)) -> dict:
    return status(staff, _watch(request))


@router.get("/status", include_in_schema=False)
def status_page(request: Request, staff: Staff = Depends(current_staff)):
    return request.app.state.render(request, "status.html",
                                    {"s": status(staff, _watch(request)), "staff": staff})


class AckIn(BaseModel):
    code: str = Field(min_length=1, max_length=64)
    note: str = Field(min_length=1, max_length=500)
    subject: str | None = Field(None, max_length=64)

    model_config = {"json_schema_extra": {"examples": [
        {"code": "recorder_not_answering", "note": "保守業者に連絡済み"}]}}


@router.get("/api/alarms", tags=["status"], summary="警報: raised first, cleared with all=true")
def get_alarms(all: bool = Query(False), staff: Staff = Depends(current_staff)) -> dict:
    require_staff(staff.user)
    return {"alarms": [a.as_dict() for a in list_alarms(staff.catalog, include_cleared=all)]}


@router.post("/api/alarms/ack", tags=["status"], summary="確認: acknowledge an alarm with a note")
def post_ack(body: AckIn, staff: Staff = Depends(current_staff)) -> dict:
    require_staff(staff.user)
    registry = AlarmRegistry(staff.catalog, staff.ctx.clock.now, actor=staff.user.name)
    # an unknown code or nothing to acknowledge: AlarmError, a 400 with its message
    done = registry.acknowledge(body.code, staff.user.name, body.note, body.subject)
    return {"acknowledged": [a.as_dict() for a in done]}
