"""``appliance user …`` and ``appliance acting on|off``: staff administration."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from appliance.cli.common import add_credentials, open_session
from appliance.governance import staff
from appliance.governance.access import Action
from appliance.governance.users import ROLE_LABELS_JA, Role, list_users, read_password_file
from appliance.store.catalog import to_local_text


def cmd_user_add(args) -> int:
    password = read_password_file(args.new_password_file)
    with open_session(args) as s:
        staff.appoint(s, args.name, Role(args.role), password, args.reference)
    print(f"{ROLE_LABELS_JA[Role(args.role)]} {args.name} を登録しました / appointed {args.name} "
          f"as {args.role}")
    return 0


def cmd_user_remove(args) -> int:
    with open_session(args) as s:
        staff.remove(s, args.name, args.reference)
    print(f"{args.name} を削除しました / removed {args.name}")
    return 0


def cmd_user_list(args) -> int:
    with open_session(args) as s:
        s.authorize(Action.LEDGER)   # staff only: the list of who may hear records
        users = list_users(s.catalog)
    if args.json:
        json.dump(users, sys.stdout, ensure_ascii=False, indent=1)
        print()
        return 0
    for u in users:
        act = " (職務代理中 / acting)" if u["acting"] else ""
        print(f"{u['name']:<20} {u['role_ja']} / {u['role']}{act}  {to_local_text(u['created_at'])}")
    return 0


def cmd_user_passwd(args) -> int:
    password = read_password_file(args.new_password_file)
    with open_session(args) as s:
        name = args.name or s.user.name
        staff.change_password(s, name, password)
    print(f"{name} のパスワードを変更しました / password changed")
    return 0


def cmd_acting(args) -> int:
    with open_session(args) as s:
        staff.acting(s, args.state == "on", args.reference)
    print("職務代理を開始しました / acting started" if args.state == "on"
          else "職務代理を終了しました / acting ended")
    return 0


def register(sub) -> None:
    p = sub.add_parser("user", help="利用者管理 (管理責任者) / staff administration (manager)")
    usub = p.add_subparsers(dest="user_command", metavar="ACTION")
    usub.required = True

    a = usub.add_parser("add", help="職員・保守担当者を登録 / appoint a deputy, handler or technician")
    a.add_argument("name", metavar="NAME", help="利用者名 / user name")
    a.add_argument("--role", required=True, choices=[r.value for r in Role if r != Role.MANAGER],
                   help="役割 / role: deputy 代理, handler 管理取扱者, technician 保守")
    a.add_argument("--new-password-file", type=Path, required=True,
                   help="新しい利用者のパスワードファイル / the new user's password file")
    a.add_argument("--reference", help="任命の文書番号 / appointment reference")
    add_credentials(a)
    a.set_defaults(func=cmd_user_add)

    r = usub.add_parser("remove", help="利用者を削除 (鍵の写しも削除) / remove a user and their key copy")
    r.add_argument("name", metavar="NAME", help="利用者名 / user name")
    r.add_argument("--reference", help="解任の文書番号 / removal reference")
    add_credentials(r)
    r.set_defaults(func=cmd_user_remove)

    ls = usub.add_parser("list", help="利用者の一覧 / list users")
    ls.add_argument("--json", action="store_true", help="JSON で出力 / JSON output")
    add_credentials(ls)
    ls.set_defaults(func=cmd_user_list)

    pw = usub.add_parser("passwd", help="パスワード変更 / change a password")
    pw.add_argument("name", metavar="NAME", nargs="?",
                    help="対象 (省略時は自分; 他人は管理責任者のみ) / whose (default: yours)")
    pw.add_argument("--new-password-file", type=Path, required=True,
                    help="新しいパスワードのファイル / file with the new password")
    add_credentials(pw)
    pw.set_defaults(func=cmd_user_passwd)

    ac = sub.add_parser("acting", help="代理の職務代理の開始・終了 / the deputy starts or ends acting")
    ac.add_argument("state", choices=["on", "off"], help="on: 開始 / start, off: 終了 / end")
    ac.add_argument("--reference", help="理由・文書番号 / reason or reference")
    add_credentials(ac)
    ac.set_defaults(func=cmd_acting)
