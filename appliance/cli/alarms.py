"""``appliance alarms``: the alarm records (警報), for technicians and staff alike.

Technician-safe: alarm text never carries a telephone number. ``ack`` names
who acknowledged: a staff member with ``--user/--password-file``, otherwise
the Unix login running the command (a technician).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from appliance.cli.common import open_catalog, open_session
from appliance.clock import SystemClock
from appliance.errors import ConfigError
from appliance.ops.alarms import SEVERITY_JA, AlarmRegistry, list_alarms


def _login() -> str:
    login = os.environ.get("LOGNAME") or os.environ.get("USER") or str(os.getuid())
    return f"{login[:32]} (保守 technician)"


def cmd_list(args) -> int:
    with open_catalog(args) as (_, catalog):
        records = list_alarms(catalog, include_cleared=args.all)
    if args.json:
        json.dump([r.as_dict() for r in records], sys.stdout, ensure_ascii=False, indent=1)
        print()
        return 0
    if not records:
        print("警報なし / no alarms")
    for r in records:
        state = "発生中 RAISED" if r.active else f"解除 cleared {r.cleared_at}"
        ack = (f"確認 {r.acknowledged_by} {r.acknowledged_at}" if r.acknowledged_by
               else "未確認 / not acknowledged")
        print(f"[{SEVERITY_JA.get(r.severity, r.severity)} {r.severity}] {r.text} ({r.code}) "  # type: ignore
              f"— 発生 raised {r.raised_at}, {state}, {ack}")
    return 0


def cmd_ack(args) -> int:
    clock = SystemClock()
    if args.user:
        if not args.password_file:
            raise ConfigError("--user には --password-file が必要 / --user needs --password-file")
        with open_session(args) as s:
            records = AlarmRegistry(s.catalog, clock.now, actor=s.user.name).acknowledge(
                args.code, s.user.name, args.note, args.subject)
    else:
        with open_catalog(args) as (_, catalog):
            who = _login()
            records = AlarmRegistry(catalog, clock.now, actor=who).acknowledge(
                args.code, who, args.note, args.subject)
    if args.json:
        json.dump([r.as_dict() for r in records], sys.stdout, ensure_ascii=False, indent=1)
        print()
    else:
        for r in records:
            print(f"確認しました / acknowledged: {r.text} ({r.code}) — {r.acknowledged_by}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("alarms", help="警報の一覧と確認 / alarms: list and acknowledge")
    p.add_argument("--all", action="store_true",
                   help="解除済みも表示 (発生中が先) / cleared alarms too (raised first)")
    p.add_argument("--json", action="store_true", help="JSON で出力 / JSON output")
    p.set_defaults(func=cmd_list)
    asub = p.add_subparsers(dest="alarms_command", metavar="ACTION")
    a = asub.add_parser("ack", help="警報の確認 (誰が・いつ・内容を管理簿へ) / acknowledge an alarm "
                                    "(who, when and the note go on the ledger)")
    a.add_argument("code", metavar="CODE", help="警報コード / alarm code, e.g. recorder_not_answering")
    a.add_argument("--note", required=True, help="確認の内容 / what was done or seen")
    a.add_argument("--subject", help="回線・装置 (既定: すべて) / only this line or device")
    a.add_argument("--user", help="職員の利用者名 (省略時はログイン名) / staff user name "
                                  "(default: the login name, as technician)")
    a.add_argument("--password-file", type=Path,
                   help="パスワードのファイル / file holding the password")
    a.add_argument("--json", action="store_true", help="JSON で出力 / JSON output")
    a.set_defaults(func=cmd_ack)
