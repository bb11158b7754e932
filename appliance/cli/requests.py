"""``appliance request open|list|show|export|close``: 開示請求 (R15, 要綱第9条)."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path

from appliance.cli.common import (
    ABSENT_JA,
    STATE_JA,
    add_credentials,
    call_json,
    open_session,
    parse_when,
)
from appliance.cli.exports import print_export
from appliance.governance.requests import (
    close_request,
    export_request,
    get_request,
    list_requests,
    open_request,
)
from appliance.present import REQUEST_STATE_JA
from appliance.store.catalog import to_local_text


def _until(text: str):
    """A date alone means the whole of that day (the way a request form reads)."""
    t = parse_when(text)
    return t + timedelta(days=1) if len(text) == 10 else t


def request_json(row: dict, *, with_calls: bool = True) -> dict:
    out = {k: row[k] for k in ("id", "number", "reference", "state", "opened_by", "closed_by",
                               "call_ids")}
    for k in ("since", "until", "opened_at", "closed_at"):
        out[k] = to_local_text(row[k])
    if with_calls and "calls" in row:
        out["calls"] = [call_json(c) for c in row["calls"]]
        out["holds"] = [{"id": h["id"], "call_id": h["call_id"],
                         "active": h["released_at"] is None} for h in row["holds"]]
        out["exports"] = [{"id": e["id"], "recipient": e["recipient"], "path": e["path"],
                           "created_at": to_local_text(e["created_at"])} for e in row["exports"]]
    return out


def _print_request(r: dict) -> None:
    j = request_json(r)
    print(f"開示請求 / request     {j['id']} ({REQUEST_STATE_JA[j['state']]} / {j['state']})")
    print(f"電話番号 / number      {j['number']}")
    print(f"期間 / period          {j['since']} 〜 {j['until']} (終わりを含まない / end exclusive)")
    print(f"参照番号 / reference   {j['reference']}")
    print(f"受付 / opened          {j['opened_at']} {j['opened_by']}")
    if j["closed_at"]:
        print(f"終了 / closed          {j['closed_at']} {j['closed_by']}")
    active = sum(h["active"] for h in j["holds"])
    print(f"該当通話 / calls       {len(j['calls'])} 件 (保管延長中 / held: {active})")
    for c in j["calls"]:
        far = c["far_number"] or ABSENT_JA.get(c["number_absent_reason"] or "", "-")
        print(f"  {c['id']:<30} {c['started_at']} {'着信' if c['direction'] == 'in' else '発信'} "
              f"{far} {c['duration_s'] if c['duration_s'] is not None else '-'}秒 "
              f"{STATE_JA.get(c['state'], c['state'])}")
    for e in j["exports"]:
        print(f"提供 / export          {e['id']} {e['created_at']} → {e['recipient']} ({e['path']})")


def _emit(args, row: dict) -> None:
    if args.json:
        json.dump(request_json(row), sys.stdout, ensure_ascii=False, indent=1)
        print()
    else:
        _print_request(row)


def cmd_open(args) -> int:
    with open_session(args) as s:
        row = open_request(s, args.number, parse_when(args.since), _until(args.until),
                           args.reference)
    if not args.json:
        print(f"開示請求 {row['id']} を受け付けました。該当通話 {len(row['call_ids'])} 件を"
              f"保管延長しました / opened request {row['id']}: {len(row['call_ids'])} call(s) "
              "found and held")
    _emit(args, row)
    return 0


def cmd_list(args) -> int:
    with open_session(args) as s:
        rows = list_requests(s, state=None if args.all else "open")
    if args.json:
        json.dump([request_json(r, with_calls=False) for r in rows], sys.stdout,
                  ensure_ascii=False, indent=1)
        print()
        return 0
    for r in rows:
        print(f"{r['id']}  {REQUEST_STATE_JA[r['state']]}  番号 {r['number']}  "
              f"{to_local_text(r['since'])} 〜 {to_local_text(r['until'])}  参照 {r['reference']}  "
              f"通話 {len(r['call_ids'])} 件")
    print(f"{len(rows)} 件 / requests")
    return 0


def cmd_show(args) -> int:
    with open_session(args) as s:
        row = get_request(s, args.request_id)
    _emit(args, row)
    return 0


def cmd_export(args) -> int:
    from appliance.cli.exports import export_stamping
    stamping = export_stamping(args)
    with open_session(args) as s:
        result = export_request(
            s, args.request_id, args.recipient, args.out,
            stamp=(lambda d: stamping.manifest_token(d, s.catalog)) if stamping.enabled else None)
        stamping.stamp_ledger("export", s.catalog)
    if args.json:
        json.dump({"export_id": result.export_id, "path": str(result.path),
                   "call_ids": result.call_ids, "manifest_sha256": result.manifest_sha256,
                   "fingerprint": result.fingerprint, "request_id": args.request_id},
                  sys.stdout, ensure_ascii=False, indent=1)
        print()
    else:
        print_export(result, f"開示請求 {args.request_id} の写しを作成しました")
    return 0


def cmd_close(args) -> int:
    with open_session(args) as s:
        row = close_request(s, args.request_id)
    if args.json:
        json.dump(request_json(row), sys.stdout, ensure_ascii=False, indent=1)
        print()
    else:
        print(f"開示請求 {row['id']} を終了しました / closed request {row['id']}. "
              "保管延長は継続中です (解除は appliance hold release) / its holds stay until "
              "released with 'appliance hold release'")
    return 0


def register(sub) -> None:
    p = sub.add_parser("request", help="開示請求 / disclosure requests about one's own calls (R15)")
    rsub = p.add_subparsers(dest="request_command", metavar="ACTION")
    rsub.required = True

    o = rsub.add_parser("open", help="開示請求を受け付け、該当通話を検索・保管延長 / open a "
                        "request: find the calls by number and period and hold them")
    o.add_argument("--number", required=True, help="請求者の電話番号 / the requester's number")
    o.add_argument("--since", required=True,
                   help="期間の始まり (ISO 8601、日本時間) / period start (ISO 8601, Japan time)")
    o.add_argument("--until", required=True,
                   help="期間の終わり (日付のみならその日を含む) / period end (a date alone "
                        "includes that whole day; a date-time is exclusive)")
    o.add_argument("--reference", help="開示請求書の文書番号 / the request's document number")
    o.add_argument("--json", action="store_true", help="JSON で出力 / JSON output")
    add_credentials(o)
    o.set_defaults(func=cmd_open)

    ls = rsub.add_parser("list", help="開示請求の一覧 / list requests")
    ls.add_argument("--all", action="store_true", help="終了済みも表示 / include closed requests")
    ls.add_argument("--json", action="store_true", help="JSON で出力 / JSON output")
    add_credentials(ls)
    ls.set_defaults(func=cmd_list)

    sh = rsub.add_parser("show", help="開示請求の詳細 / one request in detail")
    sh.add_argument("request_id", metavar="ID")
    sh.add_argument("--json", action="store_true", help="JSON で出力 / JSON output")
    add_credentials(sh)
    sh.set_defaults(func=cmd_show)

    ex = rsub.add_parser("export", help="開示用の写しを作成 (根拠 disclosure) / produce the copy "
                         "as an export with ground disclosure")
    ex.add_argument("request_id", metavar="ID")
    ex.add_argument("--recipient", required=True, help="提供先 (請求者) / recipient (the requester)")
    ex.add_argument("--out", type=Path, required=True,
                    help="作成する提供物のフォルダ (新規) / bundle directory to create")
    ex.add_argument("--json", action="store_true", help="JSON で出力 / JSON output")
    add_credentials(ex)
    ex.set_defaults(func=cmd_export)

    c = rsub.add_parser("close", help="開示請求を終了 / close a request")
    c.add_argument("request_id", metavar="ID")
    c.add_argument("--json", action="store_true", help="JSON で出力 / JSON output")
    add_credentials(c)
    c.set_defaults(func=cmd_close)
