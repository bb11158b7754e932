"""``appliance retention plan|sweep``: 保管期間 and certain erasure (R6, R8).

Neither needs a credential nor shows a number: the sweep runs from a timer
as the service, and the plan lists call ids and times only.
"""

from __future__ import annotations

import json
import sys

from appliance.clock import SystemClock
from appliance.cli.common import open_catalog, parse_when
from appliance.config import load_config
from appliance.governance.retention import RetentionPolicy, Sweeper


def _sweeper(args, dd, catalog) -> Sweeper:
    config = load_config(args.config)
    return Sweeper(dd, catalog, RetentionPolicy.from_config(config.raw.get("retention")),
                   SystemClock().now, archived=_archived(args, dd))


def _archived(args, dd):
    """On an enrolled appliance: the calls the city archive confirmed (else None)."""
    if getattr(args, "central", False):
        return None
    from appliance.replication import Outbox
    from appliance.replication.link import load_link
    if load_link(dd.root) is None:
        return None

    def confirmed() -> set[str]:
        with Outbox.open(dd.root, SystemClock().now) as outbox:
            return outbox.confirmed()
    return confirmed


def cmd_plan(args) -> int:
    with open_catalog(args) as (dd, catalog):
        sweeper = _sweeper(args, dd, catalog)
        at = parse_when(args.at) if args.at else SystemClock().now()
        plan = sweeper.plan(at)
    if args.json:
        json.dump(plan, sys.stdout, ensure_ascii=False, indent=1)
        print()
        return 0
    print(f"保管期間 / retention: {plan['policy_ja']}; 基準日時 / at {plan['at']}")
    for item in plan["erase"]:
        print(f"  廃棄予定 / erase  {item['id']}  (廃棄可能 {item['erasable_at']})")
    for item in plan["held"]:
        print(f"  保管延長中 / held {item['id']}")
    print(f"廃棄 {len(plan['erase'])} 件, 保管延長により保持 {len(plan['held'])} 件 / "
          f"{len(plan['erase'])} to erase, {len(plan['held'])} kept by holds")
    return 0


def cmd_sweep(args) -> int:
    with open_catalog(args) as (dd, catalog):
        result = _sweeper(args, dd, catalog).sweep()
    summary = {"erased": result.erased, "finished_interrupted": result.finished,
               "held_kept": result.held_kept, "pressure_erased": result.pressure_erased,
               "exports_removed": result.exports_removed,
               "moved_to_tier": result.moved_to_tier, "alarms": result.alarms}
    if args.json:
        json.dump(summary, sys.stdout, ensure_ascii=False, indent=1)
        print()
    else:
        print(f"廃棄 {len(result.erased)} 件 / erased {len(result.erased)}; "
              f"保管延長により保持 {result.held_kept} 件 / kept by holds {result.held_kept}")
        if result.moved_to_tier:
            print(f"別媒体へ移管 {len(result.moved_to_tier)} 件 / moved {len(result.moved_to_tier)} "
                  "to the separate media")
        if result.exports_removed:
            print(f"期限切れの提供物 {len(result.exports_removed)} 件を消去 / removed "
                  f"{len(result.exports_removed)} expired export bundle(s)")
        if result.finished:
            print(f"中断された廃棄を完了 {result.finished} 件 / finished {result.finished} "
                  "interrupted erasure(s)")
        for text in result.alarms:
            print(f"警報 / ALARM: {text}")
    return 3 if result.alarms else 0


def register(sub) -> None:
    p = sub.add_parser("retention", help="保管期間と廃棄 / retention and certain erasure (R6, R8)")
    rsub = p.add_subparsers(dest="retention_command", metavar="ACTION")
    rsub.required = True
    a = rsub.add_parser("plan", help="廃棄予定の一覧 / preview what a sweep would erase")
    a.add_argument("--at", help="基準日時 (ISO 8601; 既定は現在) / as of this time (default: now)")
    a.add_argument("--json", action="store_true", help="JSON で出力 / JSON output")
    a.set_defaults(func=cmd_plan)
    s = rsub.add_parser("sweep", help="期間を過ぎた記録を確実に廃棄 / erase expired unheld records "
                        "(exit 3 with an alarm)")
    s.add_argument("--json", action="store_true", help="JSON で出力 / JSON output")
    s.set_defaults(func=cmd_sweep)
