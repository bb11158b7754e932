"""Shapes and checks shared by the screens."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Annotated

from fastapi import Path, Response

from appliance.errors import ConfigError, GroundError
from appliance.governance.access import Session
from appliance.governance.grounds import GROUNDS, Ground, parse_ground
from appliance.governance.ledger import EntryKind
from appliance.governance.requests import normalize_number
from appliance.present import parse_when
from appliance.web.context import WebContext

#: identifiers the appliance makes (call ids, REQ-…, EXP-…): nothing else reaches a query
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,79}$"
CallId = Annotated[str, Path(pattern=ID_PATTERN, max_length=80, description="call id")]
ObjectId = Annotated[str, Path(pattern=ID_PATTERN, max_length=80,
                              description="REQ-… or EXP-… id")]
TEXT_MAX = 200

GROUND_CHOICES = [{"code": g.value, "label_ja": i.label_ja, "label_en": i.label_en,
                   "article": i.article} for g, i in GROUNDS.items()]


def set_cookie(response: Response, ctx: WebContext, name: str, value: str,
               max_age: int | None = None) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/", secure=ctx.secure_cookies,
                        httponly=True, samesite="strict")


def when(text: str | None, *, end_of_day: bool = False) -> datetime | None:
    """ISO date or date-time (Japan time without offset); a date as an end includes that day."""
    if not text:
        return None
    try:
        t = parse_when(text)
        if end_of_day and len(text) == 10:
            t += timedelta(days=1)
        t.astimezone(timezone.utc)          # year 1 or 9999 overflow here, not in a query
    except (ConfigError, ValueError, OverflowError):
        # parse_when's message repeats the input; answers never echo what was sent
        raise ConfigError("日時の形式が正しくありません / not an ISO 8601 date or time") from None
    return t


def number_filter(text: str | None) -> str | None:
    if not text:
        return None
    try:
        return normalize_number(text)
    except ConfigError:
        # the message of normalize_number repeats the input: say it without the number
        raise ConfigError("電話番号の形式が正しくありません / not a telephone number") from None


def ground_or_refuse(session: Session, code: str | None, reference: str | None, action: str,
                     call_ids: list[str]) -> tuple[Ground, str]:
    """parse_ground, with the refusal on the ledger as the command line does."""
    try:
        return parse_ground(code, reference)
    except GroundError as exc:
        session.ledger.append(EntryKind.REFUSED, session.now(), call_ids=call_ids,
                              actor=session.user.name,
                              detail={"action": action, "reason": str(exc)})
        raise


def check_ids(ids: list[str]) -> list[str]:
    """Only identifiers the appliance makes reach the catalog; repeats dropped."""
    for i in ids:
        if not re.fullmatch(ID_PATTERN, i):
            raise ConfigError("通話IDの形式が正しくありません / not a call id")
    return list(dict.fromkeys(ids))
