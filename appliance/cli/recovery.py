"""``appliance recovery rewrap``: regain access with the recovery key (R16).

When every staff password that unlocks the archive key is lost (the manager
left, the deputy forgot), the recovery key printed at ``appliance init`` and
kept in the city's safe re-wraps the archive key for a named staff member
with a new password. It is the only use of the recovery key, and it lands on
the ledger.
"""

from __future__ import annotations

from pathlib import Path

from appliance.cli.common import open_catalog
from appliance.clock import SystemClock
from appliance.errors import AuthError, ConfigError
from appliance.governance.ledger import EntryKind, Ledger
from appliance.governance.users import STAFF_ROLES, get_user, read_password_file, set_password


def cmd_rewrap(args) -> int:
    clock = SystemClock()
    try:
        key_text = args.recovery_key_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{args.recovery_key_file}: 回復キーを読めません / cannot read the "
                          f"recovery key ({exc.strerror})") from None
    password = read_password_file(args.new_password_file)
    with open_catalog(args) as (dd, catalog):
        user = get_user(catalog, args.name)
        if user.role not in STAFF_ROLES:
            raise ConfigError("保守担当者は鍵を持てません / technicians never hold the archive key")
        ledger = Ledger(catalog)
        try:
            private = dd.keys.unwrap_with_recovery(key_text)
        except AuthError as exc:
            ledger.append(EntryKind.REFUSED, clock.now(), actor=args.name,
                          detail={"action": "recovery", "reason": str(exc)})
            raise
        with catalog.transaction():
            set_password(catalog, user.name, password)
            ledger.append(EntryKind.USER, clock.now(), actor="recovery-key",
                          reference=args.reference,
                          detail={"action": "recovery rewrap", "user": user.name})
        dd.keys.wrap_for_user(user.name, password, private)
    print(f"回復キーにより {user.name} の鍵とパスワードを再設定しました / "
          f"re-wrapped the archive key for {user.name} with the recovery key")
    return 0


def register(sub) -> None:
    p = sub.add_parser("recovery", help="回復キーによる復旧 / regain access with the recovery key")
    rsub = p.add_subparsers(dest="recovery_command", metavar="ACTION")
    rsub.required = True
    r = rsub.add_parser("rewrap", help="職員に新しいパスワードで鍵を再設定 / give a staff member "
                        "the archive key again under a new password")
    r.add_argument("name", metavar="NAME", help="対象の職員 / the staff member")
    r.add_argument("--recovery-key-file", type=Path, required=True,
                   help="回復キーを記したファイル / file holding the recovery key")
    r.add_argument("--new-password-file", type=Path, required=True,
                   help="新しいパスワードのファイル / file with the new password")
    r.add_argument("--reference", help="復旧の決裁番号 / approval reference")
    r.set_defaults(func=cmd_rewrap)
