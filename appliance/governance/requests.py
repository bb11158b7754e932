"""Disclosure requests (開示請求, R15; 要綱 第9条).

A person asks for the records of their own calls. Staff open a request with
the person's number, the period and the request's document number: the
matching calls are found and held (R7, ground ``disclosure``) so that no sweep
erases them while the request is handled; the copy is produced as an export
with ground ``disclosure`` holding exactly those calls; then the request is
closed. Opening and closing are 開示請求 entries of the ledger, the holds are
保管延長 entries and the copy is a 提供 entry.

Closing does not release the holds: an appeal (審査請求) may follow, and
releasing is the manager's decision (``appliance hold release``).
"""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import datetime
from pathlib import Path

from appliance.errors import ConfigError, GroundError, StoreError
from appliance.governance.access import Action, Session
from appliance.governance.exports import ExportResult, create_export
from appliance.governance.grounds import Ground, parse_ground
from appliance.governance.holds import add_holds
from appliance.governance.ledger import EntryKind
from appliance.store.catalog import TOKYO, to_utc_text

#: calls a request can find: they exist and are closed (erased ones are gone)
FINDABLE_STATES = ("complete", "truncated", "unanswered")
_NUMBER = re.compile(r"\+?[0-9]{3,20}")


class RequestError(StoreError, ValueError):
    """A disclosure request that does not exist or is in the wrong state."""


def normalize_number(text: str) -> str:
    """'０２６３－３４－３０００' or '0263-34-3000' → '0263343000' (as the catalog keeps them)."""
    compact = re.sub(r"[\s\-()]", "", unicodedata.normalize("NFKC", text or ""))
    if not _NUMBER.fullmatch(compact):
        # never repeat the input: it may be a number, and messages reach logs
        raise ConfigError("電話番号の形式が正しくありません / not a telephone number")
    return compact


def _refuse(session: Session, reason: str, reference: str | None, call_ids=()) -> None:
    session.ledger.append(EntryKind.REFUSED, session.now(), call_ids=list(call_ids),
                          ground=str(Ground.DISCLOSURE), reference=reference,
                          actor=session.user.name,
                          detail={"action": str(Action.REQUEST), "reason": reason})


def _new_request_id(session: Session, now: datetime) -> str:
    day = now.astimezone(TOKYO).strftime("%Y%m%d")
    # the highest number of the day, not a count: robust to gaps
    last = session.catalog.conn.execute(
        "SELECT MAX(CAST(substr(id, 14) AS INTEGER)) FROM requests WHERE id LIKE ?",
        (f"REQ-{day}-%",)).fetchone()[0]
    return f"REQ-{day}-{(last or 0) + 1:03d}"


def _row(raw: dict) -> dict:
    row = dict(raw)
    row["call_ids"] = json.loads(row["call_ids"])
    return row


def open_request(session: Session, number: str, since: datetime, until: datetime,
                 reference: str | None) -> dict:
    """Record the request, find the person's calls in [since, until) and hold them."""
    session.authorize(Action.REQUEST, ground=Ground.DISCLOSURE, reference=reference)
    try:
        _, reference = parse_ground(str(Ground.DISCLOSURE), reference)
    except GroundError as exc:
        _refuse(session, str(exc), reference)
        raise
    number = normalize_number(number)
    if since >= until:
        raise ConfigError("期間の終わりが始まりより前です / --until must be after --since")
    cat = session.catalog
    found = [r["id"] for r in cat.calls(number=number, since=since, until=until,
                                        states=FINDABLE_STATES)]
    # authorise the holds before the transaction: a refusal must stay on the ledger
    session.authorize(Action.HOLD, ground=Ground.DISCLOSURE, call_ids=found, reference=reference)
    now = session.now()
    with cat.transaction():
        request_id = _new_request_id(session, now)
        cat.db["requests"].insert({
            "id": request_id, "number": number, "since": to_utc_text(since),
            "until": to_utc_text(until), "reference": reference, "state": "open",
            "opened_by": session.user.name, "opened_at": to_utc_text(now),
            "call_ids": json.dumps(found)})
        # the number stays in the requests table: the ledger names calls, not people
        session.ledger.append(EntryKind.REQUEST, now, call_ids=found,
                              ground=str(Ground.DISCLOSURE), reference=reference,
                              actor=session.user.name,
                              detail={"step": "open", "request": request_id,
                                      "since": to_utc_text(since), "until": to_utc_text(until),
                                      "found": len(found)})
        if found:
            add_holds(session, found, Ground.DISCLOSURE, reference, request_id=request_id)
    return get_request(session, request_id, authorize=False)


def get_request(session: Session, request_id: str, *, authorize: bool = True) -> dict:
    if authorize:
        session.authorize(Action.REQUEST)
    rows = list(session.catalog.db["requests"].rows_where("id = ?", [request_id]))
    if not rows:
        raise RequestError(f"開示請求 {request_id} はありません / no disclosure request {request_id}")
    row = _row(rows[0])
    cat = session.catalog
    row["calls"] = [cat.get_call(cid) for cid in row["call_ids"]]
    row["holds"] = list(cat.db["holds"].rows_where("request_id = ?", [request_id], order_by="id"))
    row["exports"] = list(cat.db["exports"].rows_where("request_id = ?", [request_id],
                                                       order_by="created_at, id"))
    return row


def list_requests(session: Session, *, state: str | None = None) -> list[dict]:
    session.authorize(Action.REQUEST)
    where, args = ("state = ?", [state]) if state else (None, [])
    return [_row(r) for r in session.catalog.db["requests"].rows_where(
        where, args, order_by="opened_at, id")]


def _open_row(session: Session, request_id: str) -> dict:
    row = get_request(session, request_id, authorize=False)
    if row["state"] != "open":
        raise RequestError(f"開示請求 {request_id} は終了済みです / request {request_id} is closed")
    return row


def export_request(session: Session, request_id: str, recipient: str | None,
                   out: Path, *, stamp=None, seal_audio: bool = False) -> ExportResult:
    """The copy for the requester: an export with ground ``disclosure`` of the request's calls."""
    session.authorize(Action.REQUEST, ground=Ground.DISCLOSURE)
    row = _open_row(session, request_id)
    if not row["call_ids"]:
        raise RequestError(f"開示請求 {request_id} に該当する通話はありません / the request found "
                           "no calls: nothing to provide")
    return create_export(session, row["call_ids"], str(Ground.DISCLOSURE), row["reference"],
                         recipient, out, request=row, stamp=stamp, seal_audio=seal_audio)


def close_request(session: Session, request_id: str) -> dict:
    session.authorize(Action.REQUEST, ground=Ground.DISCLOSURE)
    row = _open_row(session, request_id)
    now = session.now()
    cat = session.catalog
    with cat.transaction():
        cat.conn.execute("UPDATE requests SET state = 'closed', closed_by = ?, closed_at = ?"
                         " WHERE id = ? AND state = 'open'",
                         (session.user.name, to_utc_text(now), request_id))
        session.ledger.append(EntryKind.REQUEST, now, call_ids=row["call_ids"],
                              ground=str(Ground.DISCLOSURE), reference=row["reference"],
                              actor=session.user.name,
                              detail={"step": "close", "request": request_id,
                                      "exports": [e["id"] for e in row["exports"]]})
    return get_request(session, request_id, authorize=False)
