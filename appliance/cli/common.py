"""What every command group shares: credentials, sessions, time parsing, labels."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime, time as dtime
from pathlib import Path

from appliance.clock import SystemClock
from appliance.config import load_config
from appliance.errors import AuthError, ConfigError
from appliance.governance.access import Policy, Session
from appliance.governance.ledger import EntryKind, Ledger
from appliance.governance.users import authenticate, read_password_file
from appliance.store.catalog import TOKYO, Catalog, to_local_text
from appliance.store.datadir import DataDir

ABSENT_JA = {"withheld": "非通知", "unavailable": "表示圏外", "public_phone": "公衆電話"}
NOTICE_JA = {"played": "案内済", "not_heard": "案内未確認", "none": "案内なし"}
STATE_JA = {"recording": "録音中", "complete": "完了", "truncated": "途中切断",
            "unanswered": "不応答", "erased": "廃棄済"}
CALL_FIELDS = ("id", "site", "trunk", "channel", "direction", "started_at", "answered_at",
               "ended_at", "duration_s", "far_number", "near_number", "called_number",
               "number_absent_reason", "notice", "state", "sha256", "size", "recorded_s",
               "clock_unsynced")


def add_credentials(p) -> None:
    p.add_argument("--user", required=True, help="職員の利用者名 / staff user name")
    p.add_argument("--password-file", type=Path, required=True,
                   help="パスワードを1行で記したファイル / file holding the password")


@contextlib.contextmanager
def open_catalog(args) -> Iterator[tuple[DataDir, Catalog]]:
    dd = DataDir(args.data_dir)
    with dd.open_catalog(SystemClock().now()) as catalog:
        yield dd, catalog


@contextlib.contextmanager
def open_session(args) -> Iterator[Session]:
    """Sign in with --user/--password-file; a failed sign-in is on the ledger too."""
    clock = SystemClock()
    config = load_config(args.config)
    policy = Policy.from_config(config.raw.get("policy"))
    password = read_password_file(args.password_file)
    with open_catalog(args) as (dd, catalog):
        try:
            user = authenticate(catalog, args.user, password)
        except AuthError as exc:
            Ledger(catalog).append(EntryKind.REFUSED, clock.now(), actor=args.user,
                                   detail={"action": "sign-in", "reason": str(exc)})
            raise
        yield Session(user, password, dd, catalog, clock.now, policy)


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
