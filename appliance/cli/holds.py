"""``appliance hold add|release|list``: 保管延長 (R7)."""

from __future__ import annotations

import json
import sys

from appliance.cli.common import add_credentials, open_session, parse_when
from appliance.governance.access import Action
from appliance.governance.grounds import GROUNDS, parse_ground
from appliance.governance.holds import add_holds, list_holds, release_holds
from appliance.governance.ledger import EntryKind
from appliance.store.catalog import to_local_text


def _ground(session, args, what: str):
    try:
        return parse_ground(args.ground, args.reference)
    except Exception as exc:
        session.ledger.append(EntryKind.REFUSED, session.now(), call_ids=list(args.call_ids),
                              actor=session.user.name, detail={"action": what, "reason": str(exc)})
        raise


def cmd_add(args) -> int:
    with open_session(args) as s:
        ground, reference = _ground(s, args, "hold")
        until = parse_when(args.until) if args.until else None
        ids = add_holds(s, list(args.call_ids), ground, reference, until)
    print(f"保管延長しました / held {len(ids)} call(s); 根拠 {GROUNDS[ground].label_ja}, "
          f"参照 {reference}" + (f", 期限 {until.isoformat()}" if until else ", 解除まで / until released"))
    return 0


def cmd_release(args) -> int:
    with open_session(args) as s:
        ground, reference = _ground(s, args, "release")
        n = release_holds(s, list(args.call_ids), ground, reference,
                          hold_ids=args.hold_ids or None)
    print(f"保管延長を解除しました / released {n} hold(s)")
    return 0


def cmd_list(args) -> int:
    with open_session(args) as s:
        s.authorize(Action.LIST)
        rows = list_holds(s.catalog, active_only=not args.all, now=s.now())
    for r in rows:
        for k in ("until", "created_at", "released_at"):
            r[k] = to_local_text(r[k])
    if args.json:
        json.dump(rows, sys.stdout, ensure_ascii=False, indent=1)
        print()
        return 0
    for r in rows:
        state = f"解除 {r['released_at']}" if r["released_at"] else "有効 / active"
        print(f"#{r['id']} {r['call_id']} 根拠 {r['ground']} 参照 {r['reference']} "
              f"期限 {r['until'] or '解除まで'} {state}")
    print(f"{len(rows)} 件 / holds")
    return 0


def _ground_args(p) -> None:
    p.add_argument("call_ids", nargs="+", metavar="CALL_ID")
    p.add_argument("--ground", help="根拠 / ground: " + ", ".join(g.value for g in GROUNDS))
    p.add_argument("--reference", help="参照番号 / reference (document number, case)")
    add_credentials(p)


def register(sub) -> None:
    p = sub.add_parser("hold", help="保管延長 / holds that keep records past retention (R7)")
    hsub = p.add_subparsers(dest="hold_command", metavar="ACTION")
    hsub.required = True
    a = hsub.add_parser("add", help="保管延長する / hold records")
    _ground_args(a)
    a.add_argument("--until", help="期限 (ISO 8601; 省略時は解除まで) / end date (default: until released)")
    a.set_defaults(func=cmd_add)
    r = hsub.add_parser("release", help="保管延長を解除 (管理責任者・職務代理中の代理) / release holds "
                        "(manager or acting deputy)")
    _ground_args(r)
    r.add_argument("--hold-id", dest="hold_ids", type=int, action="append", metavar="N",
                   help="この延長だけを解除 (hold list の #N; 複数可; 省略時はすべて) / release "
                        "only hold #N (repeatable; default: every active hold on the calls)")
    r.set_defaults(func=cmd_release)
    ls = hsub.add_parser("list", help="保管延長の一覧 / list holds")
    ls.add_argument("--all", action="store_true", help="解除済みも表示 / include released and expired")
    ls.add_argument("--json", action="store_true", help="JSON で出力 / JSON output")
    add_credentials(ls)
    ls.set_defaults(func=cmd_list)
