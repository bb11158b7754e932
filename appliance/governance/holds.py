"""Holds (保管延長, R7): a held record survives every sweep and every rotation.

A hold names its ground and reference like every use of a record; it may run
until a date or until released. Only the manager or an acting deputy may
release one (the policy's ``release`` action). A record is *held* while it
has at least one hold that is neither released nor past its date.
"""

from __future__ import annotations

from datetime import datetime

from appliance.errors import ApplianceError, UnknownCall
from appliance.governance.access import Action, Session
from appliance.governance.grounds import Ground
from appliance.governance.ledger import EntryKind
from appliance.store.catalog import Catalog, to_utc_text


class HoldError(ApplianceError, ValueError):
    """A hold that cannot be placed or released."""


def active_holds_sql(now_text: str) -> str:
    """SQL condition (on a row alias ``calls``) true while the call is held."""
    return ("EXISTS (SELECT 1 FROM holds h WHERE h.call_id = calls.id AND h.released_at IS NULL"
            f" AND (h.until IS NULL OR h.until > '{now_text}'))")


def held_call_ids(catalog: Catalog, now: datetime) -> set[str]:
    now_text = to_utc_text(now)
    return {r[0] for r in catalog.conn.execute(
        "SELECT DISTINCT call_id FROM holds WHERE released_at IS NULL"
        " AND (until IS NULL OR until > ?)", (now_text,))}


def add_holds(session: Session, call_ids: list[str], ground: Ground, reference: str,
              until: datetime | None = None, request_id: str | None = None) -> list[int]:
    session.authorize(Action.HOLD, ground=ground, call_ids=call_ids, reference=reference)
    now = session.now()
    if until is not None and until <= now:
        raise HoldError("保管延長の期限が過去です / the hold's end date is in the past")
    cat = session.catalog
    ids = []
    with cat.transaction():
        for cid in call_ids:
            row = cat.get_call(cid)
            if row["state"] == "erased":
                raise HoldError(f"{cid}: 廃棄済みの記録は保管延長できません / already erased")
            cur = cat.conn.execute(
                "INSERT INTO holds (call_id, ground, reference, until, created_by, created_at,"
                " request_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (cid, str(ground), reference, to_utc_text(until) if until else None,
                 session.user.name, to_utc_text(now), request_id))
            ids.append(cur.lastrowid)
        session.ledger.append(EntryKind.HOLD, now, call_ids=call_ids, ground=str(ground),
                              reference=reference, actor=session.user.name,
                              detail={"until": to_utc_text(until) if until else None,
                                      "hold_ids": ids, "request": request_id})
    return ids


def release_holds(session: Session, call_ids: list[str], ground: Ground, reference: str,
                  hold_ids: list[int] | None = None) -> int:
    """Release the active holds on the calls; returns how many were released.

    ``hold_ids`` names which: a call held for two matters (say, an
    investigation and a disclosure request) keeps the other's hold when one
    matter ends. Without it every active hold on the calls is released. A
    named hold that is not an active hold on one of the calls is refused, and
    nothing is released.
    """
    session.authorize(Action.RELEASE, ground=ground, call_ids=call_ids, reference=reference)
    now = session.now()
    cat = session.catalog
    with cat.transaction():
        for cid in call_ids:
            cat.get_call(cid)
        marks = ",".join("?" * len(call_ids))
        active = {r[0] for r in cat.conn.execute(
            f"SELECT id FROM holds WHERE call_id IN ({marks}) AND released_at IS NULL",
            list(call_ids))}
        if hold_ids is not None:
            wrong = sorted(set(hold_ids) - active)
            if wrong or not hold_ids:
                raise HoldError("指定の保管延長はこの通話記録の有効な延長ではありません / not an "
                                f"active hold on these calls: {', '.join(f'#{i}' for i in wrong)}")
            active = set(hold_ids)
        if not active:
            raise HoldError("解除する保管延長がありません / no active hold on these calls")
        for hid in sorted(active):
            cat.conn.execute(
                "UPDATE holds SET released_at = ?, released_by = ?, release_reference = ?"
                " WHERE id = ?", (to_utc_text(now), session.user.name, reference, hid))
        session.ledger.append(EntryKind.RELEASE, now, call_ids=call_ids, ground=str(ground),
                              reference=reference, actor=session.user.name,
                              detail={"released": len(active), "hold_ids": sorted(active)})
    return len(active)


def list_holds(catalog: Catalog, *, active_only: bool = True, now: datetime | None = None) -> list[dict]:
    sql = "SELECT * FROM holds"
    args: tuple = ()
    if active_only:
        sql += " WHERE released_at IS NULL AND (until IS NULL OR until > ?)"
        args = (to_utc_text(now) if now else "",)
    cur = catalog.conn.execute(sql + " ORDER BY id", args)
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur]


__all__ = ["HoldError", "UnknownCall", "active_holds_sql", "add_holds", "held_call_ids",
           "list_holds", "release_holds"]
