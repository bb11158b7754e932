"""How call records are shown to people, shared by every front end (CLI, web).

Japanese labels of the catalog's codes, the JSON shape of a call record
(times in Japan time), and how a typed date or time is read.
"""

from __future__ import annotations

from datetime import datetime
from datetime import time as dtime

from appliance.errors import ConfigError
from appliance.store.catalog import TOKYO, to_local_text

ABSENT_JA = {"withheld": "非通知", "unavailable": "表示圏外", "public_phone": "公衆電話"}
NOTICE_JA = {"played": "案内済", "not_heard": "案内未確認", "none": "案内なし"}
STATE_JA = {"recording": "録音中", "complete": "完了", "truncated": "途中切断",
            "unanswered": "不応答", "erased": "廃棄済"}
CALL_FIELDS = ("id", "site", "trunk", "channel", "direction", "started_at", "answered_at",
               "ended_at", "duration_s", "far_number", "near_number", "called_number",
               "number_absent_reason", "notice", "state", "sha256", "size", "recorded_s",
               "clock_unsynced")
REQUEST_STATE_JA = {"open": "処理中", "closed": "終了"}


def parse_when(text: str) -> datetime:
    """ISO date or date-time; without an offset it is Japan time."""
    try:
        if len(text) == 10:
            return datetime.combine(datetime.fromisoformat(text).date(), dtime.min, TOKYO)
        t = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"日時の形式が正しくありません / not an ISO 8601 date or time: {text!r}") from None
    return t if t.tzinfo else t.replace(tzinfo=TOKYO)


def call_json(row: dict) -> dict:
    out = {k: row.get(k) for k in CALL_FIELDS}
    # recorded while the clock was not synchronised: its times are doubtful
    out["clock_unsynced"] = bool(out["clock_unsynced"])
    for k in ("started_at", "answered_at", "ended_at"):
        out[k] = to_local_text(row.get(k))
    return out
