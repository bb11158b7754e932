"""``appliance status``: the recorder, the alarms, and whether erasure is certain (no numbers)."""

from __future__ import annotations

import json
import sys

from appliance.cli.common import open_catalog
from appliance.ops.status import appliance_status


def cmd_status(args) -> int:
    with open_catalog(args) as (dd, catalog):
        st = appliance_status(dd.root, catalog)
    if args.json:
        json.dump(st, sys.stdout, ensure_ascii=False, indent=1, default=str)
        print()
        return 0
    print(f"録音装置 / recorder: {'稼働中 / running' if st['recorder_running'] else '停止 / not running'}")
    print(f"消去 / erasure: {st['erasure']}")
    print(f"警報 / alarms: {len(st['alarms'])} 件")
    for a in st["alarms"]:
        print(f"  {a['label']} {a['subject']} {a['detail']}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("status", help="装置の状態 (番号なし) / the appliance's state: recorder, "
                       "alarms, whether erasure is certain on flash")
    p.add_argument("--json", action="store_true", help="JSON で出力 / JSON output")
    p.set_defaults(func=cmd_status)
